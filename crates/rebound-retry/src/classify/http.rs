//! HTTP status codes and the `Retry-After` header.

use std::time::{Duration, SystemTime};

use super::Decision;

/// The longest `Retry-After` that [`http_status`] honours; a longer one is
/// cut to this, so that a server cannot park a caller for hours.
///
/// ```
/// use rebound_retry::{classify, Decision};
/// assert_eq!(
///     classify::http_status(429, Some("3600")),
///     Decision::RetryAfter(classify::DEFAULT_RETRY_AFTER_CAP)
/// );
/// ```
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// Classifies an HTTP response status, honouring `Retry-After` up to
/// [`DEFAULT_RETRY_AFTER_CAP`] (see [`http_status_capped`]).
///
/// ```
/// use rebound_retry::{classify, Decision};
/// use std::time::Duration;
/// assert_eq!(classify::http_status(503, None), Decision::Retry);
/// assert_eq!(
///     classify::http_status(429, Some("7")),
///     Decision::RetryAfter(Duration::from_secs(7))
/// );
/// assert_eq!(classify::http_status(404, None), Decision::Stop);
/// ```
pub fn http_status(status: u16, retry_after: Option<&str>) -> Decision {
    http_status_capped(
        status,
        retry_after,
        DEFAULT_RETRY_AFTER_CAP,
        SystemTime::now(),
    )
}

/// Classifies an HTTP response status with an explicit cap and clock.
///
/// - 408, 429, 502, 503, 504: retry; when `retry_after` parses (seconds or
///   an HTTP date, against `now`), `RetryAfter` that delay, cut to `cap`.
/// - any other 4xx: stop (the request itself is wrong).
/// - any other 5xx: retry.
/// - 1xx, 2xx, 3xx and codes outside 100..=599 are not failures: stop.
///
/// ```
/// use rebound_retry::{classify, Decision};
/// use std::time::{Duration, SystemTime};
/// let d = classify::http_status_capped(503, Some("3600"), Duration::from_secs(30), SystemTime::now());
/// assert_eq!(d, Decision::RetryAfter(Duration::from_secs(30)));
/// ```
pub fn http_status_capped(
    status: u16,
    retry_after: Option<&str>,
    cap: Duration,
    now: SystemTime,
) -> Decision {
    match status {
        408 | 429 | 502 | 503 | 504 => retry_after
            .and_then(|value| parse_retry_after(value, now))
            .map_or(Decision::Retry, |d| Decision::RetryAfter(d.min(cap))),
        400..=499 => Decision::Stop,
        500..=599 => Decision::Retry,
        _ => Decision::Stop,
    }
}

/// Parses a `Retry-After` value: delay-seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, and the two obsolete date forms).
/// A date in the past gives zero. `None` when the value is neither.
///
/// ```
/// use rebound_retry::classify::parse_retry_after;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
///     Some(Duration::from_secs(10))
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: delay-seconds. Absurdly long values saturate (the
        // caller caps them anyway).
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn now() -> SystemTime {
        // Sun, 06 Nov 1994 08:49:27 GMT
        UNIX_EPOCH + Duration::from_secs(784_111_767)
    }

    #[test]
    fn retry_after_all_three_date_forms_and_seconds() {
        let ten = Some(Duration::from_secs(10));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now()),
            ten
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now()),
            ten
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now()), ten);
        assert_eq!(parse_retry_after(" 10 ", now()), ten);
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_past_date_is_zero_and_garbage_is_none() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "  ",
            "-5",
            "1.5",
            "tomorrow",
            "Sun, 99 Nov 1994 08:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
        }
        assert_eq!(
            parse_retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn status_table() {
        let cap = Duration::from_secs(60);
        for s in [408, 429, 502, 503, 504, 500, 501, 599] {
            assert_eq!(
                http_status_capped(s, None, cap, now()),
                Decision::Retry,
                "{s}"
            );
        }
        for s in [
            400, 401, 403, 404, 409, 422, 499, 200, 204, 301, 100, 0, 600, 999,
        ] {
            assert_eq!(
                http_status_capped(s, None, cap, now()),
                Decision::Stop,
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap_and_only_on_retryable_codes() {
        let cap = Duration::from_secs(60);
        assert_eq!(
            http_status_capped(429, Some("5"), cap, now()),
            Decision::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(
            http_status_capped(503, Some("86400"), cap, now()),
            Decision::RetryAfter(cap)
        );
        assert_eq!(
            http_status_capped(503, Some("Sun, 06 Nov 1994 08:49:37 GMT"), cap, now()),
            Decision::RetryAfter(Duration::from_secs(10))
        );
        // An unparsable header falls back to the backoff.
        assert_eq!(
            http_status_capped(503, Some("later"), cap, now()),
            Decision::Retry
        );
        // A 4xx stays permanent whatever the header says.
        assert_eq!(
            http_status_capped(404, Some("5"), cap, now()),
            Decision::Stop
        );
    }
}
