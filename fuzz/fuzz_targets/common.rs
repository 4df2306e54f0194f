//! Helpers shared by the spec and config targets (included with
//! `#[path]`, not a crate of its own).
#![allow(dead_code)] // each target uses some of these

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
