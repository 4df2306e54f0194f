//! Property tests of the one duration grammar and the name parsers: what
//! humantime writes reads back exactly, bare seconds read exactly, no text
//! makes the parser panic, and what it accepts is within the clock's range.

use std::time::Duration;

use proptest::prelude::*;
use rebound_retry::duration::{self, DurationError, MAX};
use rebound_retry::{BackoffKind, Jitter};

/// Durations up to the grammar's maximum, with whole and fractional parts.
fn in_range() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..=MAX.as_secs(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..=86_400_000_000_000).prop_map(Duration::from_nanos),
        (0u64..=MAX.as_secs()).prop_map(Duration::from_secs),
        Just(Duration::ZERO),
        Just(MAX),
    ]
    .prop_filter("at most MAX", |d| *d <= MAX)
}

proptest! {
    #[test]
    fn humantime_output_reads_back_exactly(d in in_range()) {
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(duration::parse(&text), Ok(d), "{}", text);
    }

    #[test]
    fn bare_seconds_read_back_exactly(secs in 0u64..=MAX.as_secs(), nanos in 0u32..1_000_000_000) {
        let text = format!("{secs}.{nanos:09}");
        prop_assert_eq!(duration::parse(&text), Ok(Duration::new(secs, nanos)));
        prop_assert_eq!(duration::parse(&secs.to_string()), Ok(Duration::from_secs(secs)));
    }

    #[test]
    fn above_max_is_too_large(secs in (MAX.as_secs() + 1)..=u64::MAX) {
        let too_large = matches!(duration::parse(&secs.to_string()), Err(DurationError::TooLarge { .. }));
        prop_assert!(too_large);
        let text = format!("{secs}s");
        let too_large = matches!(duration::parse(&text), Err(DurationError::TooLarge { .. }));
        prop_assert!(too_large, "{}", text);
    }

    #[test]
    fn negatives_are_refused(d in in_range()) {
        let text = format!("-{}", humantime::format_duration(d));
        let negative = matches!(duration::parse(&text), Err(DurationError::Negative { .. }));
        prop_assert!(negative, "{}", text);
    }

    #[test]
    fn no_text_panics_and_accepted_values_are_in_range(text in "\\PC{0,24}") {
        if let Ok(d) = duration::parse(&text) {
            prop_assert!(d <= MAX);
        }
        match duration::parse_positive(&text) {
            Ok(d) => prop_assert!(!d.is_zero() && d <= MAX),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let _ = text.parse::<Jitter>();
        let _ = text.parse::<BackoffKind>();
    }

    #[test]
    fn names_round_trip_in_any_case(upper in any::<bool>()) {
        for j in Jitter::ALL {
            let name = if upper { j.name().to_uppercase() } else { j.name().to_string() };
            prop_assert_eq!(name.parse::<Jitter>(), Ok(j));
        }
        for k in BackoffKind::ALL {
            let name = if upper { k.name().to_uppercase() } else { k.name().to_string() };
            prop_assert_eq!(name.parse::<BackoffKind>(), Ok(k));
        }
    }
}
