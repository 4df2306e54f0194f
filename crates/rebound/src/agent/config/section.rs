//! `start:` and `probe:` of the agent config, read by rebound-init's own
//! loader on the file's own lines: the YAML parser finds where each value
//! begins, the node is cut out with its line numbers kept (every other line
//! blanked), wrapped as an init section, and rebound-init's errors are put
//! back in the agent file's terms (`runtimes.NAME.start...`).

use std::fmt;

use rebound_init::spec::{Spec, SpecError};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::ConfigError;

/// Where the value of `runtimes.{runtime}.{key}` begins (1-based line and
/// column), found by the YAML parser itself: a seed walks to the node and
/// fails there, and the parser stamps the failure with the node's position.
pub(super) fn locate(text: &str, runtime: &str, key: &str) -> Option<(usize, usize)> {
    let path = ["runtimes", runtime, key];
    let de = serde_norway::Deserializer::from_str(text);
    match (Find { path: &path }).deserialize(de) {
        Err(e) if e.to_string().contains(MARK) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

const MARK: &str = "\u{1}rebound-agent-locate";

struct Find<'a> {
    path: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            d.deserialize_any(Mark)
        } else {
            d.deserialize_map(self)
        }
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<serde_norway::Value>()? {
            if key.as_str() == self.path.first().copied() {
                map.next_value_seed(Find {
                    path: &self.path[1..],
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Mark;

impl<'de> Visitor<'de> for Mark {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(MARK))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(MARK))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(MARK))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(MARK))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(MARK))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(MARK))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(MARK))
    }
}

/// The node at `(line, column)` cut out of `text` with its line numbers
/// kept: `(lines, index of the value's line, key indentation, end index)`.
struct Cut<'a> {
    lines: Vec<&'a str>,
    value_line: usize,
    /// 0-based column where the value starts.
    value_col: usize,
    /// First line after the node.
    end: usize,
}

fn cut(text: &str, line: usize, column: usize) -> Cut<'_> {
    let lines: Vec<&str> = text.split('\n').collect();
    let value_line = line.saturating_sub(1).min(lines.len().saturating_sub(1));
    let value_col = column.saturating_sub(1);
    let meaningful = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    let indent = |l: &str| l.len() - l.trim_start().len();
    // The key's line: the value's own line when the value follows the key
    // (flow style), else the last meaningful line before it.
    let own = lines[value_line]
        .chars()
        .take(value_col)
        .any(|c| !c.is_whitespace());
    let key_line = if own {
        value_line
    } else {
        (0..value_line)
            .rev()
            .find(|&i| meaningful(lines[i]))
            .unwrap_or(value_line)
    };
    let key_indent = indent(lines[key_line]);
    let block_end = || {
        (value_line + 1..lines.len())
            .find(|&i| meaningful(lines[i]) && indent(lines[i]) <= key_indent)
            .unwrap_or(lines.len())
    };
    // A flow value (`{...}`, `[...]`) ends at its closing bracket, which may
    // sit on a line no deeper than the key.
    let end = match lines[value_line].chars().nth(value_col) {
        Some('{' | '[') => flow_end(&lines, value_line, value_col).unwrap_or_else(block_end),
        _ => block_end(),
    };
    Cut {
        lines,
        value_line,
        value_col,
        end,
    }
}

/// The line after the one holding the bracket that closes the flow
/// collection opening at (`line`, `col`), skipping quoted text and comments.
fn flow_end(lines: &[&str], line: usize, col: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, text) in lines.iter().enumerate().skip(line) {
        let chars: Vec<char> = text.chars().collect();
        let mut k = if i == line { col } else { 0 };
        let mut after_space = true;
        while let Some(&c) = chars.get(k) {
            match quote {
                Some('"') if c == '\\' => k += 1,
                Some('"') if c == '"' => quote = None,
                Some('\'') if c == '\'' => {
                    if chars.get(k + 1) == Some(&'\'') {
                        k += 1;
                    } else {
                        quote = None;
                    }
                }
                Some(_) => {}
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '{' | '[' => depth += 1,
                    '}' | ']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    '#' if after_space => break,
                    _ => {}
                },
            }
            after_space = c.is_whitespace();
            k += 1;
        }
    }
    None
}

impl Cut<'_> {
    /// The word at 1-based (`line`, `column`), up to the next space, comma
    /// or bracket.
    fn token_at(&self, line: usize, column: usize) -> Option<&str> {
        let text = self.lines.get(line.checked_sub(1)?)?;
        let start = text.char_indices().nth(column.checked_sub(1)?)?.0;
        let rest = &text[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|t| !t.is_empty())
    }

    /// `start:`/`probe:` whose value is an alias (`*name`) or carries an
    /// anchor (`&name`): both are refused, since the section is re-read on
    /// its own lines (an anchor's prefix and an alias's target are not part
    /// of them).
    fn refuse_anchor(&self, origin: &str, place: &str) -> Result<(), ConfigError> {
        let (line, column) = (self.value_line + 1, self.value_col + 1);
        let Some(token) = self.token_at(line, column) else {
            return Ok(());
        };
        let what = match token.chars().next() {
            Some('*') => "a YAML alias",
            Some('&') => "a YAML anchor",
            _ => return Ok(()),
        };
        Err(ConfigError(format!(
            "{origin}:{line}:{column}: {place}: {what} (`{token}`) is not supported on \
             `start` or `probe`: write the value out for each runtime"
        )))
    }

    /// The value's line with everything before the value blanked.
    fn value_tail(&self, prefix: &str) -> String {
        let rest: String = self.lines[self.value_line]
            .chars()
            .skip(self.value_col)
            .collect();
        let pad = self.value_col.saturating_sub(prefix.len());
        format!("{}{prefix}{rest}", " ".repeat(pad))
    }

    fn render(&self, header: &[&str], value: String, extra: Option<String>) -> String {
        let first_header = self.value_line.saturating_sub(header.len());
        let mut out: Vec<String> = Vec::with_capacity(self.lines.len() + 1);
        for i in 0..self.lines.len() {
            let line = if i >= first_header && i < self.value_line {
                header[i - first_header].to_owned()
            } else if i == self.value_line {
                value.clone()
            } else if i > self.value_line && i < self.end {
                self.lines[i].to_owned()
            } else {
                String::new()
            };
            out.push(line);
            if i + 1 == self.end {
                if let Some(extra) = &extra {
                    out.push(extra.clone());
                }
            }
        }
        out.join("\n")
    }
}

fn not_found(origin: &str, runtime: &str, key: &str) -> ConfigError {
    ConfigError(format!(
        "{origin}: runtime `{runtime}`: cannot find `{key}` in the file"
    ))
}

/// `start:` read as an init section (`steps: [...]`).
pub(super) fn section(
    text: &str,
    origin: &str,
    runtime: &str,
    key: &str,
) -> Result<Spec, ConfigError> {
    let (line, column) =
        locate(text, runtime, key).ok_or_else(|| not_found(origin, runtime, key))?;
    let c = cut(text, line, column);
    if c.value_line < 1 {
        return Err(not_found(origin, runtime, key));
    }
    let place = format!("runtimes.{runtime}.{key}");
    c.refuse_anchor(origin, &place)?;
    let synthetic = c.render(&["init:"], c.value_tail(""), None);
    Spec::from_yaml(&synthetic, origin, None)
        .map_err(|e| spec_error(&e, ("init", &place), None, &c))
}

const PROBE_ID: &str = "probe";

/// `probe:` read as the one step of an init section. When the probe has no
/// `id`, `id: probe` is added: after the mapping for block style (no
/// position moves), inside the braces for flow style (positions on that
/// line after the brace are moved back in errors).
pub(super) fn probe_section(
    text: &str,
    origin: &str,
    runtime: &str,
    add_id: bool,
) -> Result<Spec, ConfigError> {
    let (line, column) =
        locate(text, runtime, "probe").ok_or_else(|| not_found(origin, runtime, "probe"))?;
    let c = cut(text, line, column);
    let place = format!("runtimes.{runtime}.probe");
    c.refuse_anchor(origin, &place)?;
    if c.value_line < 2 || c.value_col < 3 {
        return Err(ConfigError(format!(
            "{origin}:{line}:{column}: runtime `{runtime}`: `probe` must be a step mapping"
        )));
    }
    let tail = c.value_tail("- ");
    let flow = tail.trim_start().starts_with("- {");
    let mut shift = None;
    let (value, extra) = match (add_id, flow) {
        (false, _) => (tail, None),
        (true, true) => {
            let inserted = format!("id: {PROBE_ID}, ");
            shift = Some((line, column, inserted.len()));
            (tail.replacen("- {", &format!("- {{{inserted}"), 1), None)
        }
        (true, false) => (
            tail,
            Some(format!("{}id: {PROBE_ID}", " ".repeat(c.value_col))),
        ),
    };
    let synthetic = c.render(&["init:", " steps:"], value, extra);
    let spec = Spec::from_yaml(&synthetic, origin, None)
        .map_err(|e| spec_error(&e, ("init.steps[0]", &place), shift, &c))?;
    if spec.init.steps.len() != 1 {
        return Err(ConfigError(format!(
            "{origin}:{line}:{column}: runtime `{runtime}`: `probe` must be one step"
        )));
    }
    Ok(spec)
}

/// A rebound-init error in the agent file's terms: the synthetic path
/// (`init.steps[0]...`) renamed to where it is written
/// (`runtimes.NAME.probe...`), columns moved back past text the agent
/// inserted on one line, and an alias to an anchor outside the section
/// explained.
fn spec_error(
    e: &SpecError,
    rename: (&str, &str),
    shift: Option<(usize, usize, usize)>,
    c: &Cut<'_>,
) -> ConfigError {
    let message = match e.message().strip_prefix(rename.0) {
        Some(rest) => format!("{}{rest}", rename.1),
        None if e.message().starts_with("unknown anchor") => {
            let alias = e
                .line()
                .zip(e.column())
                .and_then(|(line, col)| c.token_at(line, col))
                .unwrap_or("*...");
            format!(
                "{}: the YAML alias `{alias}` refers to an anchor outside it; `start` and \
                 `probe` are read on their own, so aliases there may only refer to anchors \
                 inside the same `start` or `probe`: write the value out",
                rename.1
            )
        }
        None => e.message().to_owned(),
    };
    let position = match (e.line(), e.column(), shift) {
        (Some(line), Some(col), Some((at_line, at_col, by))) if line == at_line && col > at_col => {
            Some((line, col.saturating_sub(by).max(at_col)))
        }
        (Some(line), Some(col), _) => Some((line, col)),
        _ => None,
    };
    match position {
        Some((line, col)) => ConfigError(format!("{}:{line}:{col}: {message}", e.origin())),
        None => ConfigError(format!("{}: {message}", e.origin())),
    }
}
