//! Agent addresses: `unix:PATH` or `tcp:HOST:PORT`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// Where the agent listens, or where the client finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// The longest Unix socket path the system takes (`sun_path` is 108
/// bytes with its terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The default agent socket (DESIGN.md).
pub const DEFAULT_LISTEN: &str = "unix:/run/rebound/agent.sock";

impl Addr {
    /// Whether a TCP host is a loopback address (`localhost` counts).
    pub fn is_loopback(&self) -> bool {
        match self {
            Addr::Unix(_) => true,
            Addr::Tcp { host, .. } => {
                host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

impl FromStr for Addr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("`{text}`: the socket path is empty"));
            }
            if path.len() > MAX_SOCKET_PATH {
                return Err(format!(
                    "`{text}`: the socket path is {} bytes long; a Unix socket path may have at most {MAX_SOCKET_PATH}",
                    path.len()
                ));
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        let Some(rest) = text.strip_prefix("tcp:") else {
            return Err(format!(
                "`{text}`: expected unix:PATH or tcp:HOST:PORT (e.g. unix:/run/rebound/agent.sock, tcp:127.0.0.1:7070)"
            ));
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
            return Err(format!("`{text}`: the host is empty"));
        }
        if host.contains(['[', ']', '/']) {
            return Err(format!(
                "`{text}`: `{host}` is not a host (an IPv6 address goes in brackets: tcp:[::1]:7070)"
            ));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{text}`: the port must be a number 0-65535, got `{port}`"))?;
        Ok(Addr::Tcp { host, port })
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = "http://x".parse::<Addr>().unwrap_err();
        assert!(err.contains("expected unix:PATH or tcp:HOST:PORT"), "{err}");
        let err = "tcp:127.0.0.1:70000".parse::<Addr>().unwrap_err();
        assert!(err.contains("0-65535, got `70000`"), "{err}");
        assert!("unix:".parse::<Addr>().is_err());
        let err = "tcp:[::1:80".parse::<Addr>().unwrap_err();
        assert!(err.contains("is not a host"), "{err}");
        let longest = format!("unix:/{}", "s".repeat(MAX_SOCKET_PATH - 1));
        assert!(longest.parse::<Addr>().is_ok());
        let err = format!("unix:/{}", "s".repeat(MAX_SOCKET_PATH))
            .parse::<Addr>()
            .unwrap_err();
        assert!(err.contains("108 bytes long"), "{err}");
    }
}
