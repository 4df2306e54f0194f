//! Helpers shared by the spec and config targets (included with
//! `#[path]`, not a crate of its own).
#![allow(dead_code)] // each target uses some of these

/// serde_json's text, made safe to read back with the YAML reader.
///
/// serde_json escapes the C0 controls (CR and LF as `\r`, `\n`) but
/// writes every other character raw inside strings. JSON allows that, but
/// to the YAML 1.2 reader (saphyr) U+0085 (NEL), U+2028 (LS) and U+2029
/// (PS) are line breaks, folded inside a quoted scalar, and DEL, the C1
/// controls, U+FEFF (a byte order mark) and U+FFFE/U+FFFF are not
/// printable characters. So a step id or argument holding one would read
/// back different, or be refused. `\uXXXX` means the same character in
/// JSON and in a YAML double-quoted scalar, and every such character of
/// serde_json's output is inside a string (outside strings it writes only
/// ASCII punctuation, digits, letters and spaces), so replacing them all
/// is exact.
pub fn yaml_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '\r'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// How many lines a text can have, counting every character the YAML
/// reader may take as a line break (LF, CR, CRLF as one, NEL, LS, PS).
pub fn max_lines(text: &str) -> usize {
    let mut lines = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => lines += 1,
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines += 1;
            }
            _ => {}
        }
    }
    lines
}

/// Checks a reported position: 1-based, and at most one line past the
/// input's last (the end of the input may be reported there).
pub fn check_position(text: &str, line: usize, column: usize, error: &dyn std::fmt::Display) {
    assert!(
        line >= 1 && column >= 1,
        "position {line}:{column} in {error}"
    );
    let lines = max_lines(text);
    assert!(
        line <= lines + 1,
        "line {line} of an input with {lines} lines: {error}"
    );
}
