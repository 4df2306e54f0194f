//! The agent's HTTP handling: raw request bytes through the real router
//! (`rebound::agent::server::Server` over hyper), on an in-memory
//! connection (`serve_stream` over `tokio::io::duplex`).
//!
//! The server has two runtimes whose start and probe return at once (one
//! starts, one refuses: no process runs) and requires a bearer token. The
//! bytes are written and the answer read until the server closes the
//! connection (after its 10 s header timeout on the idle connection, or a
//! `Connection: close`, or a bad request), bounded by 30 s of a paused
//! clock (a watch stream never ends by itself; the paused clock jumps
//! ahead when nothing else can run, so the bounds cost no real time).
//!
//! The write side is left open: the server (hyper without half-close)
//! drops a connection whose client shuts its write side, unanswered,
//! which would leave the invariants below nothing to check.
//!
//! Invariants: nothing panics; every answer is HTTP (the bytes written
//! back parse as a sequence of responses, each starting with `HTTP/1.1 `,
//! or `HTTP/1.0 ` for a request that says `HTTP/1.0`: hyper answers in
//! the request's version); no 2xx answer unless the request bytes hold
//! the token.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rebound::agent::server::{Server, serve_stream};
use rebound_ensure::{Ensure, EnsureConfig, EnsureMap, ProbeOutcome, ReadyInfo, StartError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "fuzz-token-4f1c";

fn server() -> std::sync::Arc<Server> {
    let mut runtimes = EnsureMap::new();
    runtimes.insert(
        "web".to_owned(),
        Ensure::new(
            EnsureConfig::default(),
            || async { Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:8080", "started")) },
            || async { ProbeOutcome::Down("not yet".into()) },
        ),
    );
    runtimes.insert(
        "db".to_owned(),
        Ensure::new(
            EnsureConfig::default(),
            || async { Err::<ReadyInfo, _>(StartError::new("refused to start")) },
            || async { ProbeOutcome::Down("down".into()) },
        ),
    );
    Server::new(runtimes, Some(TOKEN.to_owned()))
}

/// What the server wrote back, and the status of each whole response
/// (a stream's chunked body is not followed: its status comes first).
fn statuses(mut out: &[u8], http10: bool) -> Vec<u16> {
    let mut found = Vec::new();
    while !out.is_empty() {
        assert!(
            out.starts_with(b"HTTP/1.1 ") || (http10 && out.starts_with(b"HTTP/1.0 ")),
            "an answer that is not HTTP/1.1: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(200)])
        );
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "an answer that does not parse ({other:?}): {:?}",
                String::from_utf8_lossy(&out[..out.len().min(200)])
            ),
        };
        found.push(response.code.expect("a complete response has a status"));
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| {
                std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a numeric content-length")
            });
        match length {
            Some(length) => {
                assert!(head + length <= out.len(), "a body cut short");
                out = &out[head + length..];
            }
            // A stream (chunked) or a body to the end: the last answer.
            None => break,
        }
    }
    found
}

fuzz_target!(|bytes: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let out = rt.block_on(async {
        let (mut client, stream) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(serve_stream(stream, server()));
        let (mut reader, mut writer) = tokio::io::split(&mut client);
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            let write = async {
                // The server may close before it read everything.
                let _ = writer.write_all(bytes).await;
            };
            let read = reader.read_to_end(&mut out);
            let (_, read) = tokio::join!(write, read);
            read
        })
        .await;
        drop(client);
        serving.abort();
        out
    });
    if std::env::var_os("FUZZ_SHOW").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&out));
    }
    let with_token = bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
    let http10 = bytes.windows(8).any(|w| w == b"HTTP/1.0");
    for status in statuses(&out, http10) {
        assert!(
            with_token || !(200..300).contains(&status),
            "{status} without the token for {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
});
