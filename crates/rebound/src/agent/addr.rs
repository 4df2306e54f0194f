//! Agent addresses: `unix:PATH`, `tcp:HOST:PORT`, `vsock:[CID:]PORT` and
//! (host side only) `hvsock:PATH:PORT`.
//!
//! ```
//! use rebound::agent::addr::Addr;
//!
//! let guest: Addr = "vsock:3:7070".parse().unwrap();
//! assert_eq!(guest, Addr::Vsock { cid: Some(3), port: 7070 });
//! let firecracker: Addr = "hvsock:/run/fc/v.sock:7070".parse().unwrap();
//! assert_eq!(firecracker.to_string(), "hvsock:/run/fc/v.sock:7070");
//! let err = "vsock:1:99999999999".parse::<Addr>().unwrap_err();
//! assert!(err.to_string().contains("`vsock:1:99999999999`"));
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// Where the agent listens, or where the client finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Addr {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A TCP address; the host is loopback unless given.
    Tcp {
        /// Host name or IP (IPv6 without brackets).
        host: String,
        /// Port, 1-65535 (0 only for a listener: any free port).
        port: u16,
    },
    /// A vsock (virtio socket) address: a VM guest and its host.
    Vsock {
        /// The context ID; `None` (`vsock:PORT`) listens on any CID and
        /// names no peer to connect to.
        cid: Option<u32>,
        /// The vsock port.
        port: u32,
    },
    /// The hybrid vsock of Firecracker and Cloud Hypervisor, seen from the
    /// host: the VMM's Unix socket at `path`, where `CONNECT port\n`
    /// (answered `OK <n>\n`) opens a stream to the guest's vsock `port`.
    /// A client address only (the guest listens on `vsock:PORT`).
    Hvsock {
        /// The VMM's Unix socket (Firecracker's `uds_path`, Cloud
        /// Hypervisor's `--vsock socket=`).
        path: PathBuf,
        /// The guest's vsock port.
        port: u32,
    },
}

/// The longest Unix socket path the system takes (`sun_path` is 108
/// bytes with its terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The default agent socket.
pub const DEFAULT_LISTEN: &str = "unix:/run/rebound/agent.sock";

/// The forms an address may take, as error messages name them.
const FORMS: &str = "unix:PATH, tcp:HOST:PORT, vsock:[CID:]PORT or hvsock:PATH:PORT \
     (e.g. unix:/run/rebound/agent.sock, tcp:127.0.0.1:7070, vsock:3:7070, \
     hvsock:/run/firecracker/v.sock:7070)";

/// The vsock port and CID `u32::MAX` mean "any" (`VMADDR_PORT_ANY`,
/// `VMADDR_CID_ANY`): neither names a peer.
const VSOCK_RANGE: &str = "0-4294967294";

/// Why text is not an [`Addr`]. Every message starts with the address in
/// backquotes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// The text starts with none of `unix:`, `tcp:`, `vsock:`, `hvsock:`.
    #[error("`{address}`: expected {FORMS}")]
    UnknownScheme {
        /// The text given.
        address: String,
    },
    /// `unix:` or `hvsock:` with an empty path.
    #[error("`{address}`: the socket path is empty")]
    EmptyPath {
        /// The text given.
        address: String,
    },
    /// A socket path longer than [`MAX_SOCKET_PATH`].
    #[error(
        "`{address}`: the socket path is {len} bytes long; a Unix socket path may have at most {MAX_SOCKET_PATH}"
    )]
    PathTooLong {
        /// The text given.
        address: String,
        /// The path's length in bytes.
        len: usize,
    },
    /// `tcp:` with an empty host.
    #[error("`{address}`: the host is empty")]
    EmptyHost {
        /// The text given.
        address: String,
    },
    /// `tcp:` with something that cannot be a host.
    #[error(
        "`{address}`: `{host}` is not a host (an IPv6 address goes in brackets: tcp:[::1]:7070)"
    )]
    BadHost {
        /// The text given.
        address: String,
        /// The host part.
        host: String,
    },
    /// No port where one is needed (`vsock:`, `hvsock:PATH`, `hvsock:PATH:`).
    #[error("`{address}`: the port is missing (write {form})")]
    MissingPort {
        /// The text given.
        address: String,
        /// The form the address should have.
        form: &'static str,
    },
    /// A port that is not a number in range.
    #[error("`{address}`: the port must be a number {range}, got `{port}`")]
    BadPort {
        /// The text given.
        address: String,
        /// The port part.
        port: String,
        /// The allowed range.
        range: &'static str,
    },
    /// A vsock CID that is not a number in range.
    #[error(
        "`{address}`: the CID must be a number {VSOCK_RANGE} (the guest's context ID; write vsock:PORT to listen on any), got `{cid}`"
    )]
    BadCid {
        /// The text given.
        address: String,
        /// The CID part.
        cid: String,
    },
}

impl Addr {
    /// Whether a TCP host is a loopback address (`localhost` counts); a
    /// Unix socket is local too, vsock and hybrid vsock are not.
    pub fn is_loopback(&self) -> bool {
        match self {
            Addr::Unix(_) => true,
            Addr::Tcp { host, .. } => {
                host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            Addr::Vsock { .. } | Addr::Hvsock { .. } => false,
        }
    }

    /// Whether an agent listening here must require a bearer token: any
    /// local process can reach a TCP port, and any process of a guest (or
    /// of its host) a vsock port. A Unix socket is guarded by its mode.
    pub fn needs_token(&self) -> bool {
        matches!(self, Addr::Tcp { .. } | Addr::Vsock { .. })
    }

    /// Why a client cannot connect to this address, when it cannot:
    /// `tcp:HOST:0` and `vsock:PORT` (no CID) name no peer.
    ///
    /// ```
    /// use rebound::agent::addr::Addr;
    ///
    /// let any: Addr = "vsock:7070".parse().unwrap();
    /// assert!(any.unconnectable().unwrap().contains("vsock:CID:PORT"));
    /// assert_eq!("vsock:3:7070".parse::<Addr>().unwrap().unconnectable(), None);
    /// ```
    pub fn unconnectable(&self) -> Option<&'static str> {
        match self {
            Addr::Tcp { port: 0, .. } => {
                Some("port 0 names no agent (give the port it listens on)")
            }
            Addr::Vsock { cid: None, .. } => Some(
                "no CID: vsock:PORT only listens; to reach a guest give its CID (vsock:CID:PORT)",
            ),
            _ => None,
        }
    }
}

/// A port or CID: ASCII digits only (no sign, no space), in range.
fn number<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A vsock port or CID: `u32::MAX` means "any" and is refused.
fn vsock_number(text: &str) -> Option<u32> {
    number::<u32>(text).filter(|&n| n != u32::MAX)
}

fn socket_path(address: &str, path: &str) -> Result<PathBuf, AddrError> {
    if path.is_empty() {
        return Err(AddrError::EmptyPath {
            address: address.to_owned(),
        });
    }
    if path.len() > MAX_SOCKET_PATH {
        return Err(AddrError::PathTooLong {
            address: address.to_owned(),
            len: path.len(),
        });
    }
    Ok(PathBuf::from(path))
}

impl FromStr for Addr {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<Self, AddrError> {
        let address = || text.to_owned();
        if let Some(path) = text.strip_prefix("unix:") {
            return socket_path(text, path).map(Addr::Unix);
        }
        if let Some(rest) = text.strip_prefix("vsock:") {
            if rest.is_empty() {
                return Err(AddrError::MissingPort {
                    address: address(),
                    form: "vsock:PORT or vsock:CID:PORT",
                });
            }
            let (cid, port) = match rest.split_once(':') {
                Some((cid, port)) => {
                    let cid = vsock_number(cid).ok_or_else(|| AddrError::BadCid {
                        address: address(),
                        cid: cid.to_owned(),
                    })?;
                    (Some(cid), port)
                }
                None => (None, rest),
            };
            if port.is_empty() {
                return Err(AddrError::MissingPort {
                    address: address(),
                    form: "vsock:CID:PORT",
                });
            }
            let port = vsock_number(port).ok_or_else(|| AddrError::BadPort {
                address: address(),
                port: port.to_owned(),
                range: VSOCK_RANGE,
            })?;
            return Ok(Addr::Vsock { cid, port });
        }
        if let Some(rest) = text.strip_prefix("hvsock:") {
            let missing = || AddrError::MissingPort {
                address: address(),
                form: "hvsock:PATH:PORT, e.g. hvsock:/run/firecracker/v.sock:7070",
            };
            // The port follows the last colon: a path may hold colons.
            let (path, port) = rest.rsplit_once(':').ok_or_else(missing)?;
            if port.is_empty() {
                return Err(missing());
            }
            let path = socket_path(text, path)?;
            let port = vsock_number(port).ok_or_else(|| AddrError::BadPort {
                address: address(),
                port: port.to_owned(),
                range: VSOCK_RANGE,
            })?;
            return Ok(Addr::Hvsock { path, port });
        }
        let Some(rest) = text.strip_prefix("tcp:") else {
            return Err(AddrError::UnknownScheme { address: address() });
        };
        // `tcp:PORT` listens on loopback; `[::1]:PORT` and `HOST:PORT` name a host.
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                (host.to_owned(), port)
            }
            None => (Ipv4Addr::LOCALHOST.to_string(), rest),
        };
        if host.is_empty() {
            return Err(AddrError::EmptyHost { address: address() });
        }
        if host.contains(['[', ']', '/']) {
            return Err(AddrError::BadHost {
                address: address(),
                host,
            });
        }
        let port = number::<u16>(port).ok_or_else(|| AddrError::BadPort {
            address: address(),
            port: port.to_owned(),
            range: "0-65535",
        })?;
        Ok(Addr::Tcp { host, port })
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Addr::Vsock { cid: None, port } => write!(f, "vsock:{port}"),
            Addr::Vsock {
                cid: Some(cid),
                port,
            } => write!(f, "vsock:{cid}:{port}"),
            Addr::Hvsock { path, port } => write!(f, "hvsock:{}:{port}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        text.parse::<Addr>().unwrap_err().to_string()
    }

    #[test]
    fn parses_unix_tcp_and_bare_port() {
        assert_eq!(
            "unix:/tmp/a.sock".parse::<Addr>().unwrap(),
            Addr::Unix("/tmp/a.sock".into())
        );
        let tcp: Addr = "tcp:10.0.0.1:7070".parse().unwrap();
        assert_eq!(tcp.to_string(), "tcp:10.0.0.1:7070");
        assert!(!tcp.is_loopback());
        let port_only: Addr = "tcp:7070".parse().unwrap();
        assert_eq!(port_only.to_string(), "tcp:127.0.0.1:7070");
        assert!(port_only.is_loopback());
        let v6: Addr = "tcp:[::1]:80".parse().unwrap();
        assert!(v6.is_loopback());
        assert_eq!(v6.to_string(), "tcp:[::1]:80");
    }

    #[test]
    fn rejects_bad_addresses_with_the_reason() {
        let e = err("http://x");
        assert!(
            e.contains("expected unix:PATH, tcp:HOST:PORT, vsock:[CID:]PORT or hvsock:PATH:PORT"),
            "{e}"
        );
        let e = err("tcp:127.0.0.1:70000");
        assert!(e.contains("0-65535, got `70000`"), "{e}");
        assert!("unix:".parse::<Addr>().is_err());
        let e = err("tcp:[::1:80");
        assert!(e.contains("is not a host"), "{e}");
        let longest = format!("unix:/{}", "s".repeat(MAX_SOCKET_PATH - 1));
        assert!(longest.parse::<Addr>().is_ok());
        let e = err(&format!("unix:/{}", "s".repeat(MAX_SOCKET_PATH)));
        assert!(e.contains("108 bytes long"), "{e}");
        let e = err("tcp:127.0.0.1:+80");
        assert!(e.contains("got `+80`"), "{e}");
    }

    #[test]
    fn parses_vsock_with_and_without_a_cid() {
        let any: Addr = "vsock:7070".parse().unwrap();
        assert_eq!(
            any,
            Addr::Vsock {
                cid: None,
                port: 7070
            }
        );
        assert_eq!(any.to_string(), "vsock:7070");
        let guest: Addr = "vsock:3:7070".parse().unwrap();
        assert_eq!(
            guest,
            Addr::Vsock {
                cid: Some(3),
                port: 7070
            }
        );
        assert_eq!(guest.to_string(), "vsock:3:7070");
        assert!(guest.needs_token());
        assert!(!guest.is_loopback());
        let top: Addr = "vsock:4294967294:4294967294".parse().unwrap();
        assert_eq!(top.to_string(), "vsock:4294967294:4294967294");
    }

    #[test]
    fn parses_hvsock_with_colons_in_the_path() {
        let fc: Addr = "hvsock:/run/fc/v.sock:7070".parse().unwrap();
        assert_eq!(
            fc,
            Addr::Hvsock {
                path: "/run/fc/v.sock".into(),
                port: 7070
            }
        );
        assert_eq!(fc.to_string(), "hvsock:/run/fc/v.sock:7070");
        assert!(!fc.needs_token());
        let colons: Addr = "hvsock:/run/a:b.sock:5".parse().unwrap();
        assert_eq!(
            colons,
            Addr::Hvsock {
                path: "/run/a:b.sock".into(),
                port: 5
            }
        );
    }

    #[test]
    fn bad_vsock_and_hvsock_addresses_name_the_address_and_the_fault() {
        let cases = [
            ("vsock:x", "the port must be a number 0-4294967294, got `x`"),
            (
                "vsock:1:99999999999",
                "the port must be a number 0-4294967294, got `99999999999`",
            ),
            (
                "vsock:",
                "the port is missing (write vsock:PORT or vsock:CID:PORT)",
            ),
            ("vsock:3:", "the port is missing (write vsock:CID:PORT)"),
            ("vsock:x:5", "the CID must be a number 0-4294967294"),
            ("vsock:-1:5", "got `-1`"),
            ("vsock:4294967295:5", "the CID must be a number"),
            ("vsock:3:4294967295", "got `4294967295`"),
            ("vsock:1:2:3", "got `2:3`"),
            ("vsock: 5", "got ` 5`"),
            ("hvsock:", "the port is missing (write hvsock:PATH:PORT"),
            ("hvsock:/run/v.sock", "the port is missing"),
            ("hvsock:/run/v.sock:", "the port is missing"),
            ("hvsock::7070", "the socket path is empty"),
            ("hvsock:/run/v.sock:x", "got `x`"),
            ("hvsock:/run/v.sock:99999999999", "got `99999999999`"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.starts_with(&format!("`{text}`: ")), "{text}: {e}");
            assert!(e.contains(want), "{text}: {e}");
        }
        let long = format!("hvsock:/{}:5", "s".repeat(MAX_SOCKET_PATH));
        assert!(err(&long).contains("108 bytes long"));
        assert!(matches!(
            "vsock:x".parse::<Addr>(),
            Err(AddrError::BadPort { .. })
        ));
    }
}
