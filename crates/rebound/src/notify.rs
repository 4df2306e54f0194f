//! The sd_notify protocol: telling a service manager (systemd, or anything
//! that sets `NOTIFY_SOCKET`) that rebound is ready, what it is doing, that
//! it is stopping, and that it is alive (the watchdog).
//!
//! A message is one datagram of `KEY=VALUE` lines (`READY=1`,
//! `STATUS=...`, `STOPPING=1`, `WATCHDOG=1`). `NOTIFY_SOCKET` is:
//! - a path (`/run/systemd/notify`): a Unix datagram socket;
//! - `@name`: a Unix datagram socket in the abstract namespace;
//! - `vsock:CID:PORT`: an `AF_VSOCK` seqpacket socket, systemd's interface
//!   for a virtual machine to notify its host (e.g. `vsock:2:1234`, CID 2
//!   being the host). Each message is sent on a new connection.
//!
//! The watchdog: when `WATCHDOG_USEC` is set (and `WATCHDOG_PID`, if set, is
//! rebound's pid), `WATCHDOG=1` is sent every half of that interval.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go (the value of `NOTIFY_SOCKET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix datagram socket at this path.
    Path(PathBuf),
    /// A Unix datagram socket in the abstract namespace (`@name`; the name
    /// without the `@`).
    Abstract(Vec<u8>),
    /// An `AF_VSOCK` address (`vsock:CID:PORT`).
    Vsock {
        /// The context id (2: the host).
        cid: u32,
        /// The port.
        port: u32,
    },
}

/// An invalid `NOTIFY_SOCKET` value, with the reason.
fn invalid(value: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("NOTIFY_SOCKET={value:?}: {why}"),
    )
}

impl Address {
    /// Parses a `NOTIFY_SOCKET` value.
    ///
    /// # Errors
    ///
    /// An empty value, a relative path, or a `vsock:` address whose CID
    /// and port are not two numbers.
    pub fn parse(value: &OsStr) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt as _;
        let bytes = value.as_bytes();
        let text = value.to_string_lossy();
        if let Some(name) = bytes.strip_prefix(b"@") {
            if name.is_empty() {
                return Err(invalid(&text, "an abstract socket needs a name after `@`"));
            }
            return Ok(Address::Abstract(name.to_vec()));
        }
        if let Some(rest) = text.strip_prefix("vsock:") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| invalid(&text, "expected vsock:CID:PORT"))?;
            let number = |what: &str, s: &str| {
                s.parse::<u32>()
                    .map_err(|e| invalid(&text, &format!("the {what} `{s}` is not a number: {e}")))
            };
            return Ok(Address::Vsock {
                cid: number("CID", cid)?,
                port: number("port", port)?,
            });
        }
        let path = PathBuf::from(value);
        if !path.is_absolute() {
            return Err(invalid(
                &text,
                "expected an absolute path, @name or vsock:CID:PORT",
            ));
        }
        Ok(Address::Path(path))
    }
}

/// Sends notifications to the service manager.
#[derive(Debug, Clone)]
pub struct Notifier {
    address: Address,
}

impl Notifier {
    /// A notifier for `address`.
    pub fn new(address: Address) -> Self {
        Self { address }
    }

    /// The notifier `NOTIFY_SOCKET` asks for; `None` when it is unset or
    /// empty (no service manager listens).
    ///
    /// # Errors
    ///
    /// `NOTIFY_SOCKET` is set to something that is not an address.
    pub fn from_env() -> io::Result<Option<Self>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(value) if !value.is_empty() => Ok(Some(Self::new(Address::parse(&value)?))),
            _ => Ok(None),
        }
    }

    /// Sends one message (`KEY=VALUE` lines).
    ///
    /// # Errors
    ///
    /// The socket could not be created or the datagram not sent (no one
    /// listens there, for example).
    pub fn send(&self, message: &str) -> io::Result<()> {
        match &self.address {
            Address::Path(path) => {
                UnixDatagram::unbound()?.send_to(message.as_bytes(), path)?;
            }
            Address::Abstract(name) => {
                let addr = SocketAddr::from_abstract_name(name)?;
                UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
            }
            Address::Vsock { cid, port } => send_vsock(*cid, *port, message)?,
        }
        Ok(())
    }

    /// Sends `message`; a failure is logged (at debug level) and dropped:
    /// a service manager that went away must not stop the service.
    pub fn notify(&self, message: &str) {
        if let Err(err) = self.send(message) {
            tracing::debug!(%err, ?self.address, "sd_notify");
        }
    }

    /// `STATUS=text` (one line: line breaks become spaces).
    pub fn status(&self, text: &str) {
        self.notify(&format!("STATUS={}", text.replace('\n', " ")));
    }

    /// Sends `WATCHDOG=1` every `every`, forever (the first one `every`
    /// after the call). With `states`, a tick whose `states()` differs from
    /// the last one sent also carries `STATUS=<states>` (in the same
    /// datagram): the status follows without a timer of its own.
    pub async fn watchdog(
        &self,
        every: Duration,
        states: Option<&(dyn Fn() -> String + Send + Sync)>,
    ) -> std::convert::Infallible {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<String> = None;
        loop {
            ticks.tick().await;
            match states.map(|f| f()) {
                Some(now) if last.as_ref() != Some(&now) => {
                    self.notify(&format!("WATCHDOG=1\nSTATUS={}", now.replace('\n', " ")));
                    last = Some(now);
                }
                _ => self.notify("WATCHDOG=1"),
            }
        }
    }
}

/// The notifications of a long-running service (`rebound agent`): ready
/// with a status, the watchdog while it runs, stopping. Does nothing when
/// `NOTIFY_SOCKET` is unset.
#[derive(Debug, Default)]
pub struct Service {
    notifier: Option<Notifier>,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

impl Service {
    /// The service `NOTIFY_SOCKET` asks for (none when it is unset; an
    /// invalid value is logged as a warning and ignored: the service runs
    /// without a manager rather than not at all).
    pub fn from_env() -> Self {
        let notifier = Notifier::from_env().unwrap_or_else(|err| {
            tracing::warn!("{err}; not notifying the service manager");
            None
        });
        Self {
            notifier,
            watchdog: None,
        }
    }

    /// `READY=1` with `STATUS=status`, then, when `WATCHDOG_USEC` asks for
    /// it, `WATCHDOG=1` every half of it from a task of the current tokio
    /// runtime, until the service is dropped; a pet whose `states()` (e.g.
    /// each runtime's state) changed since the last one also sends them as
    /// `STATUS=`.
    pub fn ready(&mut self, status: &str, states: impl Fn() -> String + Send + Sync + 'static) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        notifier.notify(&format!("READY=1\nSTATUS={}", status.replace('\n', " ")));
        if let Some(every) = watchdog_every() {
            let notifier = notifier.clone();
            self.watchdog = Some(tokio::spawn(async move {
                match notifier.watchdog(every, Some(&states)).await {}
            }));
        }
    }

    /// Waits for `stop`, then sends `STOPPING=1` (the watchdog goes on
    /// until the service is dropped: a slow shutdown is still alive).
    pub async fn stopping_on<F: std::future::Future>(&self, stop: F) -> F::Output {
        let out = stop.await;
        if let Some(notifier) = &self.notifier {
            notifier.notify("STOPPING=1\nSTATUS=stopping");
        }
        out
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(task) = self.watchdog.take() {
            task.abort();
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set
/// for this process (`WATCHDOG_PID` unset, or rebound's pid).
pub fn watchdog_every() -> Option<Duration> {
    watchdog_every_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_every_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// One message on a new `AF_VSOCK` seqpacket connection.
fn send_vsock(cid: u32, port: u32, message: &str) -> io::Result<()> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockType, VsockAddr, connect, send, socket,
    };
    let fd = socket(
        AddressFamily::Vsock,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &VsockAddr::new(cid, port))?;
    send(fd.as_raw_fd(), message.as_bytes(), MsgFlags::empty())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> io::Result<Address> {
        Address::parse(OsStr::new(text))
    }

    #[test]
    fn parses_paths_abstract_names_and_vsock() {
        assert_eq!(
            parse("/run/systemd/notify").unwrap(),
            Address::Path("/run/systemd/notify".into())
        );
        assert_eq!(
            parse("@rebound/notify").unwrap(),
            Address::Abstract(b"rebound/notify".to_vec())
        );
        assert_eq!(
            parse("vsock:2:1234").unwrap(),
            Address::Vsock { cid: 2, port: 1234 }
        );
    }

    #[test]
    fn rejects_what_is_no_address() {
        for (value, why) in [
            ("relative/path", "expected an absolute path"),
            ("@", "needs a name"),
            ("vsock:2", "expected vsock:CID:PORT"),
            ("vsock:host:1", "the CID `host` is not a number"),
            (
                "vsock:2:99999999999",
                "the port `99999999999` is not a number",
            ),
        ] {
            let err = parse(value).unwrap_err().to_string();
            assert!(err.contains(why), "{value}: {err}");
            assert!(err.starts_with("NOTIFY_SOCKET="), "{err}");
        }
    }

    #[test]
    fn watchdog_is_half_the_interval_for_this_pid_only() {
        assert_eq!(
            watchdog_every_from(Some("2000000"), None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_every_from(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_every_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_every_from(None, None, 7), None);
        assert_eq!(watchdog_every_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_every_from(Some("soon"), None, 7), None);
    }

    #[test]
    fn sends_datagrams_to_a_path_and_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        Notifier::new(Address::Path(path)).send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("rebound-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier = Notifier::new(parse(&format!("@{name}")).unwrap());
        notifier.status("step 1\nof 2");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=step 1 of 2");
    }

    #[test]
    fn a_socket_no_one_listens_on_is_an_error_for_send_only() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(Address::Path(dir.path().join("nobody")));
        assert!(notifier.send("READY=1").is_err());
        notifier.notify("READY=1"); // logged, not fatal
    }
}
