//! What a plain scalar means under the YAML 1.2 core schema (plus the hex,
//! octal and binary integers, signs and exponent forms the previous YAML
//! reader accepted, so the same specs mean the same numbers).

/// A plain scalar resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Resolved<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    U128(u128),
    I128(i128),
    F64(f64),
    Str(&'a str),
}

pub(super) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn bool_of(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Leading zeros followed by digits (`0123`) are text in YAML 1.2.
fn digits_but_not_number(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    t.len() > 1 && t.starts_with('0') && t[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Splits a sign off: `(negative, rest)`; `None` for a doubled sign.
fn sign(text: &str) -> Option<(bool, &str)> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest.starts_with(['+', '-']) || rest.is_empty() {
        return None;
    }
    Some((negative, rest))
}

/// The magnitude of an integer literal (decimal, `0x`, `0o`, `0b`).
fn magnitude(rest: &str) -> Option<u128> {
    let (radix, digits) = if let Some(d) = rest.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = rest.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = rest.strip_prefix("0b") {
        (2, d)
    } else {
        (10, rest)
    };
    // from_str_radix takes its own sign: refuse one here.
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    u128::from_str_radix(digits, radix).ok()
}

fn int(text: &str) -> Option<Resolved<'_>> {
    if digits_but_not_number(text) {
        return None;
    }
    let (negative, rest) = sign(text)?;
    let m = magnitude(rest)?;
    Some(if !negative {
        match u64::try_from(m) {
            Ok(v) => Resolved::U64(v),
            Err(_) => Resolved::U128(m),
        }
    } else if m <= 1u128 << 63 {
        // -(2^63) is i64::MIN.
        Resolved::I64(0i64.wrapping_sub_unsigned(m as u64))
    } else if m <= 1u128 << 127 {
        Resolved::I128(0i128.wrapping_sub_unsigned(m))
    } else {
        return None;
    })
}

fn float(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    // Rust's parser also takes `inf`, `nan` and `infinity`: those stay text.
    if !unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// What the plain scalar `text` means.
pub(super) fn resolve(text: &str) -> Resolved<'_> {
    if is_null(text) {
        return Resolved::Null;
    }
    if let Some(b) = bool_of(text) {
        return Resolved::Bool(b);
    }
    if let Some(i) = int(text) {
        return i;
    }
    if !digits_but_not_number(text) {
        if let Some(f) = float(text) {
            return Resolved::F64(f);
        }
    }
    Resolved::Str(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Resolved::*;

    #[test]
    fn core_schema_values() {
        for t in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve(t), Null, "{t:?}");
        }
        assert_eq!(resolve("true"), Bool(true));
        assert_eq!(resolve("FALSE"), Bool(false));
        assert_eq!(resolve("yes"), Str("yes"));
        assert_eq!(resolve("5432"), U64(5432));
        assert_eq!(resolve("+5"), U64(5));
        assert_eq!(resolve("-5"), I64(-5));
        assert_eq!(resolve("-9223372036854775808"), I64(i64::MIN));
        assert_eq!(resolve("0x1F"), U64(31));
        assert_eq!(resolve("-0x10"), I64(-16));
        assert_eq!(resolve("0o17"), U64(15));
        assert_eq!(resolve("0b101"), U64(5));
        assert_eq!(
            resolve("99999999999999999999"),
            U128(99_999_999_999_999_999_999)
        );
        assert_eq!(
            resolve("-99999999999999999999"),
            I128(-99_999_999_999_999_999_999)
        );
        assert_eq!(resolve("0123"), Str("0123"));
        assert_eq!(resolve("1.5"), F64(1.5));
        assert_eq!(resolve("1e3"), F64(1000.0));
        assert_eq!(resolve("-.inf"), F64(f64::NEG_INFINITY));
        assert!(matches!(resolve(".nan"), F64(f) if f.is_nan()));
        for t in [
            "inf",
            "nan",
            "infinity",
            "1_000",
            "--1",
            "+-1",
            "0x",
            "-",
            "1e",
            "5 parsecs",
        ] {
            assert_eq!(resolve(t), Str(t), "{t:?}");
        }
    }
}
