//! Server-Sent Events (the `text/event-stream` format of the WHATWG HTML
//! standard, "Server-sent events"): the encoder the agent writes its watch
//! streams with, and the incremental decoder `rebound ensure` reads them
//! with.

use hyper::body::Bytes;

/// One event: `event:` name and `data:` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field (`message` when the stream gave none).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Encodes one event. `data` is split on line breaks into `data:` lines, so
/// any text survives the round trip.
///
/// ```
/// let bytes = rebound::agent::sse::encode("ready", r#"{"name":"db"}"#);
/// assert_eq!(&bytes[..], b"event: ready\ndata: {\"name\":\"db\"}\n\n");
/// ```
pub fn encode(event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(event.len() + data.len() + 16);
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// A comment line: ignored by readers, it keeps idle connections alive.
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {text}\n\n"))
}

/// An incremental decoder: feed it bytes as they arrive, take the events
/// that are complete.
///
/// ```
/// use rebound::agent::sse::Decoder;
/// let mut d = Decoder::default();
/// assert!(d.push(b": keep-alive\n\nevent: ready\ndata: {\"a\"").is_empty());
/// let events = d.push(b":1}\n\n");
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].event, "ready");
/// assert_eq!(events[0].data, "{\"a\":1}");
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes of a line not ended yet.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one
    /// belongs to that line break.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
}

impl Decoder {
    /// The largest line kept; longer ones are cut (a stream that never ends
    /// a line cannot use up memory).
    pub const MAX_LINE: usize = 1 << 20;

    /// Feeds `chunk`; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in chunk {
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&line) {
                        out.push(event);
                    }
                }
                _ if self.line.len() < Self::MAX_LINE => self.line.push(b),
                _ => {}
            }
        }
        out
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            let data = self.data.take();
            let event = self.event.take();
            return data.map(|data| Event {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = Some(value.into_owned()),
            b"data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            },
            // `id` and `retry` have no use here; unknown fields are ignored.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_multi_line_data_in_any_chunking() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&comment("keep-alive"));
        stream.extend_from_slice(&encode("starting", "one\ntwo\r\nthree"));
        stream.extend_from_slice(&encode("ready", "{}"));
        for size in [1, 2, 3, 7, stream.len()] {
            let mut d = Decoder::default();
            let events: Vec<Event> = stream.chunks(size).flat_map(|c| d.push(c)).collect();
            assert_eq!(
                events,
                vec![
                    Event {
                        event: "starting".into(),
                        data: "one\ntwo\nthree".into()
                    },
                    Event {
                        event: "ready".into(),
                        data: "{}".into()
                    },
                ],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn follows_the_standard_on_line_ends_fields_and_empty_events() {
        let mut d = Decoder::default();
        // CR, CRLF split across chunks, a field without a colon, no space
        // after the colon, an event with no data (not dispatched), a data
        // line without an event name (`message`).
        assert!(d.push(b"event:x\rdata\r").is_empty());
        let got = d.push(b"\n\r\nevent: lonely\n\ndata: plain\n\n");
        assert_eq!(
            got,
            vec![
                Event {
                    event: "x".into(),
                    data: String::new()
                },
                Event {
                    event: "message".into(),
                    data: "plain".into()
                },
            ]
        );
    }

    #[test]
    fn an_endless_line_is_cut_not_kept() {
        let mut d = Decoder::default();
        let big = vec![b'a'; Decoder::MAX_LINE + 10];
        assert!(d.push(b"data: ").is_empty());
        assert!(d.push(&big).is_empty());
        let got = d.push(b"\n\n");
        assert_eq!(got[0].data.len(), Decoder::MAX_LINE - "data: ".len());
    }
}
