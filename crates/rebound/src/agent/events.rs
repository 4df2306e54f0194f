//! The agent's watch streams: `GET /v1/runtimes/{name}/watch` and
//! `GET /v1/events`, as Server-Sent Events.
//!
//! Each stream is fed by tasks of its own, one per runtime it follows, that
//! read the runtime's change feed ([`Ensure::subscribe`]) and write into a
//! small bounded channel that the response body drains. Nothing the agent
//! does waits for a reader: the feed never blocks its sender, a reader that
//! does not read fills only its own channel, and once it is more than the
//! feed's capacity behind it gets a `resync` event with the current state
//! instead of the changes it missed.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame};
use rebound_ensure::{Ensure, StateView};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use super::protocol::{RuntimeEntry, event};
use super::sse;

/// How often an idle stream gets a comment line, so that proxies and
/// readers with an idle timeout keep the connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Frames buffered per stream before its tasks wait for the reader.
const BUFFER: usize = 16;

/// A streaming response body: the frames its tasks send, until they all end.
#[derive(Debug)]
pub struct EventBody {
    rx: mpsc::Receiver<Bytes>,
    _open: OpenGuard,
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
    }
}

/// Counts open streams (a gauge of the agent's metrics).
#[derive(Debug)]
struct OpenGuard(Arc<AtomicU64>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every stream shares: the signal that the agent is stopping (every
/// stream then ends, so that the server can drain) and the count of open
/// streams.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use http_body_util::BodyExt;
/// use rebound::agent::events::Streams;
/// use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
///
/// let db = Ensure::new(
///     EnsureConfig::default(),
///     || async { Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:5432", "up")) },
///     || async { ProbeOutcome::Down("no answer".into()) },
/// );
/// let streams = Streams::default();
/// let mut body = streams.watch("db", &db);
/// let first = body.frame().await.unwrap().unwrap();
/// assert!(first.data_ref().unwrap().starts_with(b"event: not_started\n"));
/// db.ensure(true).await;
/// let next = body.frame().await.unwrap().unwrap();
/// assert!(next.data_ref().unwrap().starts_with(b"event: starting\n"));
/// streams.close();
/// # }
/// ```
#[derive(Debug)]
pub struct Streams {
    closing: watch::Sender<bool>,
    open: Arc<AtomicU64>,
    keep_alive: Duration,
}

impl Default for Streams {
    fn default() -> Self {
        Self::new(KEEP_ALIVE)
    }
}

impl Streams {
    /// Streams with a keep-alive comment every `keep_alive`.
    pub fn new(keep_alive: Duration) -> Self {
        Self {
            closing: watch::channel(false).0,
            open: Arc::new(AtomicU64::new(0)),
            keep_alive,
        }
    }

    /// Ends every stream, now and from now on.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Streams open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// One runtime: its current state, then each change.
    pub fn watch(&self, name: &str, runtime: &Ensure) -> EventBody {
        let (tx, body) = self.body();
        self.follow(name, runtime, &tx);
        self.keep_alive(tx);
        body
    }

    /// Every runtime: `first` (the `agent_ready` event), then each runtime's
    /// current state, then every change.
    pub fn all<'a>(
        &self,
        first: Bytes,
        runtimes: impl IntoIterator<Item = (&'a String, &'a Ensure)>,
    ) -> EventBody {
        let (tx, body) = self.body();
        // The channel is empty: the first frame always fits.
        let _ = tx.try_send(first);
        for (name, runtime) in runtimes {
            self.follow(name, runtime, &tx);
        }
        self.keep_alive(tx);
        body
    }

    fn body(&self) -> (mpsc::Sender<Bytes>, EventBody) {
        let (tx, rx) = mpsc::channel(BUFFER);
        self.open.fetch_add(1, Ordering::Relaxed);
        let body = EventBody {
            rx,
            _open: OpenGuard(Arc::clone(&self.open)),
        };
        (tx, body)
    }

    /// Spawns the task that sends `runtime`'s state and changes into `tx`.
    fn follow(&self, name: &str, runtime: &Ensure, tx: &mpsc::Sender<Bytes>) {
        // Subscribed before the state is read, so no change falls between
        // the two (one may be seen twice: repeats are skipped).
        let feed = runtime.subscribe();
        let current = runtime.state();
        let task = Follow {
            name: name.to_owned(),
            runtime: runtime.clone(),
            tx: tx.clone(),
            closing: self.closing.subscribe(),
        };
        tokio::spawn(task.run(feed, current));
    }

    fn keep_alive(&self, tx: mpsc::Sender<Bytes>) {
        let mut closing = self.closing.subscribe();
        let every = self.keep_alive;
        tokio::spawn(async move {
            let ping = sse::comment("keep-alive");
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {
                        // A full channel already has something to send.
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(ping.clone()) {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                    _ = closing.wait_for(|c| *c) => return,
                }
            }
        });
    }
}

/// The event of a state.
pub fn state_event(name: &str, kind: &str, view: &StateView) -> Bytes {
    let data = serde_json::to_string(&RuntimeEntry::from_view(name, view))
        .unwrap_or_else(|_| "{}".to_owned());
    sse::encode(kind, &data)
}

/// Whether two views are the same state (a repeat is not a change).
fn same(a: &StateView, b: &StateView) -> bool {
    a.kind() == b.kind()
        && a.endpoint() == b.endpoint()
        && a.message() == b.message()
        && a.failures() == b.failures()
}

struct Follow {
    name: String,
    runtime: Ensure,
    tx: mpsc::Sender<Bytes>,
    closing: watch::Receiver<bool>,
}

impl Follow {
    async fn run(
        mut self,
        mut feed: tokio::sync::broadcast::Receiver<StateView>,
        current: StateView,
    ) {
        if !self
            .send(state_event(&self.name, current.kind().as_str(), &current))
            .await
        {
            return;
        }
        let mut last = current;
        loop {
            let next = tokio::select! {
                next = feed.recv() => next,
                () = self.tx.closed() => return,
                _ = self.closing.wait_for(|c| *c) => return,
            };
            let frame = match next {
                Ok(view) if same(&view, &last) => continue,
                Ok(view) => {
                    let frame = state_event(&self.name, view.kind().as_str(), &view);
                    last = view;
                    frame
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(runtime = %self.name, missed, "a watcher fell behind; resync");
                    last = self.runtime.state();
                    state_event(&self.name, event::RESYNC, &last)
                }
                Err(RecvError::Closed) => return,
            };
            if !self.send(frame).await {
                return;
            }
        }
    }

    /// Sends one frame, waiting while the reader is behind; false once the
    /// stream is gone or the agent is stopping.
    async fn send(&mut self, frame: Bytes) -> bool {
        tokio::select! {
            sent = self.tx.send(frame) => sent.is_ok(),
            _ = self.closing.wait_for(|c| *c) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use rebound_ensure::{EnsureConfig, FEED_CAPACITY, ProbeOutcome, ReadyInfo, StartError};

    fn failing() -> Ensure {
        Ensure::new(
            EnsureConfig::builder()
                .backoff(
                    rebound_retry::ExponentialBuilder::new()
                        .with_initial_delay(Duration::from_millis(10))
                        .with_max_delay(Duration::from_millis(10))
                        .without_jitter()
                        .forever()
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
            || async { Err::<ReadyInfo, _>(StartError::new("exit status 1")) },
            || async { ProbeOutcome::Down("down".into()) },
        )
    }

    async fn next(body: &mut EventBody) -> sse::Event {
        let mut decoder = sse::Decoder::default();
        loop {
            let frame = body.frame().await.expect("stream ended").unwrap();
            let events = decoder.push(frame.data_ref().unwrap());
            if let Some(first) = events.into_iter().next() {
                return first;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_the_state_then_changes_and_keep_alive_when_idle() {
        let streams = Streams::default();
        let runtime = failing();
        let mut body = streams.watch("db", &runtime);
        assert_eq!(streams.open(), 1);
        assert_eq!(next(&mut body).await.event, "not_started");
        runtime.ensure(true).await;
        assert_eq!(next(&mut body).await.event, "starting");
        let failed = next(&mut body).await;
        assert_eq!(failed.event, "failed");
        let data: serde_json::Value = serde_json::from_str(&failed.data).unwrap();
        assert_eq!(data["retry_after_ms"], 10);
        assert_eq!(data["message"], "exit status 1");
        // Idle for the keep-alive period: one comment frame.
        tokio::time::sleep(KEEP_ALIVE).await;
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap(), &sse::comment("keep-alive"));
        drop(body);
        assert_eq!(streams.open(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_far_behind_gets_resync_with_the_current_state() {
        let streams = Streams::default();
        let runtime = failing();
        let mut slow = streams.watch("db", &runtime);
        let mut quick = streams.watch("db", &runtime);
        assert_eq!(next(&mut quick).await.event, "not_started");
        // Many more changes than the slow reader's channel and the feed
        // hold; the quick reader sees every one meanwhile.
        for _ in 0..(BUFFER + FEED_CAPACITY) {
            runtime.ensure(true).await;
            assert_eq!(next(&mut quick).await.event, "starting");
            assert_eq!(next(&mut quick).await.event, "failed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut seen = Vec::new();
        loop {
            let event = next(&mut slow).await;
            let resync = event.event == "resync";
            seen.push(event);
            if resync {
                break;
            }
        }
        let resync: serde_json::Value = serde_json::from_str(&seen.last().unwrap().data).unwrap();
        assert_eq!(resync["state"], "failed");
        assert_eq!(resync["failures"], (BUFFER + FEED_CAPACITY) as u64);
        // It got what fit in its channel, then the resync: not every change.
        assert!(seen.len() < 2 * (BUFFER + FEED_CAPACITY), "{}", seen.len());
    }

    #[tokio::test(start_paused = true)]
    async fn closing_ends_every_stream() {
        let streams = Streams::default();
        let runtime = failing();
        let map = [("db".to_owned(), runtime.clone())];
        let mut all = streams.all(
            sse::encode("agent_ready", "{}"),
            map.iter().map(|(n, e)| (n, e)),
        );
        assert_eq!(next(&mut all).await.event, "agent_ready");
        assert_eq!(next(&mut all).await.event, "not_started");
        streams.close();
        assert!(all.frame().await.is_none());
        // A stream opened after the close ends at once too.
        let mut late = streams.watch("db", &runtime);
        while late.frame().await.is_some() {}
    }
}
