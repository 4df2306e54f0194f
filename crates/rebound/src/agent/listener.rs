//! Where the agent listens: binding an [`Addr`] or taking the socket a
//! service manager passed ([`Inherited`], socket activation), accepting
//! connections, and the Unix socket's lifetime (a lock file held for the
//! agent's life, and a socket file removed only if it is still the one this
//! process bound).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::addr::Addr;

/// A bound listener: [`Listener::bind`] it (or take it from the service
/// manager: [`Listener::inherit`]), hand it to
/// [`serve`](super::server::serve).
pub struct Listener {
    kind: Kind,
}

enum Kind {
    /// A Unix socket, with the lock and identity of its file (none for a
    /// socket the service manager passed: its file is the manager's).
    Unix(UnixListener, Option<SocketFile>),
    /// A TCP socket.
    Tcp(TcpListener),
    /// A vsock port.
    Vsock(tokio_vsock::VsockListener),
}

impl Listener {
    /// Binds `addr`.
    ///
    /// A Unix socket is taken over under a lock file beside it (`PATH.lock`,
    /// `flock`ed for the agent's life): an agent that cannot take the lock
    /// fails at once with "another agent is listening on PATH", so two
    /// agents started at the same moment on a stale socket never both
    /// listen. Holding the lock, a stale socket file is removed (a live one,
    /// answered by an agent that takes no lock, is an error) and the socket
    /// is bound with mode 0600 in place (under a umask that leaves only the
    /// owner's read and write, so nobody can connect before it is private,
    /// and a path the system accepts is never made longer by a temporary
    /// name).
    ///
    /// A vsock port (`vsock:PORT` on any CID, `vsock:CID:PORT` on one) is
    /// bound as it is; a port that already has a listener is "address in
    /// use", and a system without vsock says so. `hvsock:` is refused: it is
    /// how a host reaches a guest, not a place to listen.
    pub async fn bind(addr: &Addr) -> io::Result<Self> {
        let kind = match addr {
            Addr::Unix(path) => bind_unix(path).await?,
            Addr::Tcp { host, port } => Kind::Tcp(TcpListener::bind((host.as_str(), *port)).await?),
            Addr::Vsock { cid, port } => bind_vsock(*cid, *port)?,
            Addr::Hvsock { .. } => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{addr}: {HVSOCK_LISTEN}"),
                ));
            }
        };
        Ok(Self { kind })
    }

    /// Makes the listening socket a service manager passed (see
    /// [`Inherited::take`]) this process's listener. It is used as it is:
    /// no lock file, and its file (for a Unix socket) is left in place when
    /// the agent stops, since the manager owns it.
    pub fn inherit(inherited: Inherited) -> io::Result<Self> {
        let kind = match inherited.socket {
            Socket::Tcp(l) => {
                l.set_nonblocking(true)?;
                Kind::Tcp(TcpListener::from_std(l)?)
            }
            Socket::Unix(l) => {
                l.set_nonblocking(true)?;
                Kind::Unix(UnixListener::from_std(l)?, None)
            }
            Socket::Vsock(fd) => Kind::Vsock(tokio_vsock::VsockListener::from(fd)),
        };
        Ok(Self { kind })
    }

    /// The bound address (with the real port for `tcp:...:0`).
    pub fn local_addr(&self) -> Addr {
        match &self.kind {
            Kind::Unix(_, Some(file)) => Addr::Unix(file.path.clone()),
            Kind::Unix(l, None) => Addr::Unix(unix_name(
                l.local_addr()
                    .ok()
                    .map(std::os::unix::net::SocketAddr::from)
                    .as_ref(),
            )),
            Kind::Tcp(l) => match l.local_addr() {
                Ok(a) => Addr::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                },
                Err(_) => Addr::Tcp {
                    host: "?".into(),
                    port: 0,
                },
            },
            Kind::Vsock(l) => match l.local_addr() {
                Ok(a) => Addr::Vsock {
                    cid: (a.cid() != tokio_vsock::VMADDR_CID_ANY).then_some(a.cid()),
                    port: a.port(),
                },
                Err(_) => Addr::Vsock { cid: None, port: 0 },
            },
        }
    }

    /// The next connection.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        match &self.kind {
            Kind::Unix(l, _) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
            Kind::Tcp(l) => l.accept().await.map(|(s, _)| Stream::Tcp(s)),
            Kind::Vsock(l) => l.accept().await.map(|(s, _)| Stream::Vsock(s)),
        }
    }

    /// Stops accepting (the socket is closed; new connections are
    /// refused) and hands back what must outlive the in-flight requests:
    /// the socket file and its lock, released by [`Closed::remove`] (or
    /// when dropped).
    pub(crate) fn close(self) -> Closed {
        match self.kind {
            Kind::Unix(listener, file) => {
                drop(listener);
                Closed(file)
            }
            Kind::Tcp(_) | Kind::Vsock(_) => Closed(None),
        }
    }
}

/// A closed listener whose socket file (if any) is still in place.
pub(crate) struct Closed(Option<SocketFile>);

impl Closed {
    /// Removes the socket file if it is still the one bound here, then
    /// releases the lock.
    pub(crate) fn remove(self) {
        drop(self.0);
    }
}

/// One accepted connection, of whichever kind.
pub(crate) enum Stream {
    /// Over a Unix socket.
    Unix(UnixStream),
    /// Over TCP.
    Tcp(TcpStream),
    /// Over vsock.
    Vsock(tokio_vsock::VsockStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Vsock(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Vsock(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Vsock(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Vsock(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Vsock(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Vsock(s) => s.is_write_vectored(),
        }
    }
}

/// The display name of a Unix socket's address: its path, `@NAME` for an
/// abstract one, `?` for an unnamed one.
fn unix_name(addr: Option<&std::os::unix::net::SocketAddr>) -> PathBuf {
    use std::os::linux::net::SocketAddrExt as _;
    match addr {
        Some(a) => match (a.as_pathname(), a.as_abstract_name()) {
            (Some(path), _) => path.to_owned(),
            (None, Some(name)) => PathBuf::from(format!("@{}", String::from_utf8_lossy(name))),
            (None, None) => PathBuf::from("?"),
        },
        None => PathBuf::from("?"),
    }
}

/// The listening socket a service manager passed to the agent (socket
/// activation, `sd_listen_fds(3)`): systemd, `systemd-socket-activate`, or
/// anything that sets `LISTEN_FDS`, `LISTEN_PID` and (optionally)
/// `LISTEN_FDNAMES` and leaves the descriptors open from fd 3 on.
///
/// ```no_run
/// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
/// use rebound::agent::addr::Addr;
/// use rebound::agent::listener::{Inherited, Listener};
///
/// // Before any thread starts: the variables are removed from the
/// // environment.
/// let listener = match Inherited::take(Some("agent"))? {
///     Some(socket) => {
///         println!("listening on {} ({})", socket.addr(), socket.describe());
///         Listener::inherit(socket)?
///     }
///     None => Listener::bind(&"unix:/run/rebound/agent.sock".parse::<Addr>()?).await?,
/// };
/// # let _ = listener; Ok(()) }
/// ```
#[derive(Debug)]
pub struct Inherited {
    fd: i32,
    name: Option<String>,
    socket: Socket,
}

/// An inherited socket of a kind the agent serves, not yet registered with
/// the async runtime.
#[derive(Debug)]
enum Socket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
    Vsock(OwnedFd),
}

/// Why the sockets a service manager passed cannot be used. Each message
/// names the variable or the descriptor at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// `LISTEN_PID` or `LISTEN_FDS` is not a number.
    #[error("{variable}={value:?} is not a number")]
    NotANumber {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// Several sockets were passed and none was chosen by name.
    #[error(
        "{count} sockets were passed (LISTEN_FDS={count}, names: {names}); \
         choose the one to listen on with --fdname NAME (systemd: \
         FileDescriptorName= of the socket unit)"
    )]
    Ambiguous {
        /// How many were passed.
        count: usize,
        /// Their names, `unknown` for an unnamed one.
        names: String,
    },
    /// No passed socket has the name asked for.
    #[error(
        "no socket named `{wanted}` was passed (--fdname); the names passed \
         (LISTEN_FDNAMES) are: {names}"
    )]
    NoSuchName {
        /// The name asked for.
        wanted: String,
        /// The names passed, `unknown` for an unnamed one.
        names: String,
    },
    /// Several passed sockets have the name asked for.
    #[error(
        "{count} sockets named `{wanted}` were passed (LISTEN_FDNAMES={names}); names must be unique"
    )]
    NameNotUnique {
        /// The name asked for.
        wanted: String,
        /// How many sockets have it.
        count: usize,
        /// The names passed.
        names: String,
    },
    /// The descriptor is not open.
    #[error("fd {fd}{} is not open", named(.name))]
    NotOpen {
        /// The descriptor.
        fd: i32,
        /// Its name, if it has one.
        name: Option<String>,
    },
    /// The descriptor is open but is no socket.
    #[error("fd {fd}{} is not a socket but {what}", named(.name))]
    NotASocket {
        /// The descriptor.
        fd: i32,
        /// Its name, if it has one.
        name: Option<String>,
        /// What it is instead (a regular file, a pipe ...).
        what: &'static str,
    },
    /// A socket the agent cannot serve on: a datagram socket, or a family
    /// other than TCP (IPv4, IPv6), Unix and vsock.
    #[error(
        "fd {fd}{} is not a TCP, Unix or vsock stream \
         socket (a datagram socket? systemd: use ListenStream=)",
        named(.name)
    )]
    Unsupported {
        /// The descriptor.
        fd: i32,
        /// Its name, if it has one.
        name: Option<String>,
    },
    /// A stream socket nobody called `listen(2)` on.
    #[error(
        "fd {fd}{} is a stream socket that is not \
         listening (systemd: Accept=no, the default, passes a listening one)",
        named(.name)
    )]
    NotListening {
        /// The descriptor.
        fd: i32,
        /// Its name, if it has one.
        name: Option<String>,
    },
    /// The socket could not be read or prepared.
    #[error("fd {fd}{}: {source}", named(.name))]
    Io {
        /// The descriptor.
        fd: i32,
        /// Its name, if it has one.
        name: Option<String>,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

/// ` (NAME)` for a named descriptor, nothing otherwise.
fn named(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!(" (`{n}`)"))
        .unwrap_or_default()
}

/// The name systemd reports for an unnamed descriptor.
const UNKNOWN: &str = "unknown";

/// The name of each of `count` descriptors from `LISTEN_FDNAMES` (`None`:
/// unset): the colon-separated names in order; missing, empty or
/// `unknown` ones are unnamed.
fn fd_names(count: usize, names: Option<&str>) -> Vec<Option<String>> {
    let mut given = names.map(|n| n.split(':')).into_iter().flatten();
    (0..count)
        .map(|_| {
            given
                .next()
                .filter(|n| !n.is_empty() && *n != UNKNOWN)
                .map(str::to_owned)
        })
        .collect()
}

fn name_list(names: &[Option<String>]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .map(|n| n.as_deref().unwrap_or(UNKNOWN))
        .collect();
    shown.join(", ")
}

/// Which descriptor to listen on: the one named `wanted`, else the only
/// one passed.
fn pick(names: &[Option<String>], wanted: Option<&str>) -> Result<usize, ActivationError> {
    match wanted {
        Some(wanted) => {
            let matching: Vec<usize> = (0..names.len())
                .filter(|&i| names[i].as_deref() == Some(wanted))
                .collect();
            match matching.as_slice() {
                [one] => Ok(*one),
                [] => Err(ActivationError::NoSuchName {
                    wanted: wanted.to_owned(),
                    names: name_list(names),
                }),
                several => Err(ActivationError::NameNotUnique {
                    wanted: wanted.to_owned(),
                    count: several.len(),
                    names: name_list(names),
                }),
            }
        }
        None if names.len() == 1 => Ok(0),
        None => Err(ActivationError::Ambiguous {
            count: names.len(),
            names: name_list(names),
        }),
    }
}

impl Inherited {
    /// Takes the listening socket passed by a service manager, if one was
    /// passed to this process: `LISTEN_PID` is this process's pid and
    /// `LISTEN_FDS` is 1 or more (`Ok(None)` otherwise, when the agent binds
    /// its address itself: `LISTEN_PID` unset or naming another process,
    /// `LISTEN_FDS` unset or 0).
    ///
    /// Which descriptor: the one `LISTEN_FDNAMES` names `name` when a name
    /// is given, else the only one passed; several passed and no name, a
    /// name none has, or a name several have, are errors. The descriptor
    /// must be a listening stream socket: TCP (IPv4 or IPv6), Unix or vsock.
    /// It is made close-on-exec, and so are the other descriptors passed
    /// that are sockets (those are closed: the agent serves one), so that
    /// no process the agent starts inherits them.
    ///
    /// `LISTEN_PID` and `LISTEN_FDS` are removed from the environment once
    /// read, so the processes the agent starts do not take the sockets
    /// for theirs (`LISTEN_FDNAMES` stays: a safe program cannot remove
    /// more, and without the other two it means nothing). Call it before
    /// starting threads.
    pub fn take(name: Option<&str>) -> Result<Option<Self>, ActivationError> {
        let Some(count) = std::env::var_os("LISTEN_FDS") else {
            return Ok(None);
        };
        let ours = match std::env::var("LISTEN_PID") {
            Ok(pid) => match pid.trim().parse::<u32>() {
                Ok(pid) => pid == std::process::id(),
                Err(_) => {
                    return Err(ActivationError::NotANumber {
                        variable: "LISTEN_PID",
                        value: pid,
                    });
                }
            },
            Err(_) => false,
        };
        if !ours {
            tracing::debug!("LISTEN_FDS is not for this process (LISTEN_PID): binding");
            return Ok(None);
        }
        let count = count
            .to_str()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .ok_or_else(|| ActivationError::NotANumber {
                variable: "LISTEN_FDS",
                value: count.to_string_lossy().into_owned(),
            })?;
        let names = fd_names(count, std::env::var("LISTEN_FDNAMES").ok().as_deref());
        let first: i32 = std::env::var("LISTEN_FDS_FIRST_FD")
            .ok()
            .and_then(|f| f.parse().ok())
            .unwrap_or(3);
        // Reads LISTEN_FDS and LISTEN_PID again (the same way) and removes
        // them.
        let mut fds = listenfd::ListenFd::from_env();
        if count == 0 {
            return Ok(None);
        }
        let index = pick(&names, name)?;
        let fd = first.saturating_add(i32::try_from(index).unwrap_or(i32::MAX));
        let name = names[index].clone();
        let socket = take_socket(&mut fds, index, fd, &name)?;
        for other in (0..count).filter(|&i| i != index) {
            if take_any(&mut fds, other).is_none() {
                tracing::debug!(
                    fd = first.saturating_add(i32::try_from(other).unwrap_or(i32::MAX)),
                    "a passed descriptor that is no known socket is left as it is"
                );
            }
        }
        Ok(Some(Self { fd, name, socket }))
    }

    /// The socket's address: `tcp:HOST:PORT`, `unix:PATH` (`unix:@NAME`
    /// for an abstract one), `vsock:[CID:]PORT`.
    pub fn addr(&self) -> Addr {
        match &self.socket {
            Socket::Tcp(l) => match l.local_addr() {
                Ok(a) => Addr::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                },
                Err(_) => Addr::Tcp {
                    host: "?".into(),
                    port: 0,
                },
            },
            Socket::Unix(l) => Addr::Unix(unix_name(l.local_addr().ok().as_ref())),
            Socket::Vsock(fd) => {
                match nix::sys::socket::getsockname::<nix::sys::socket::VsockAddr>(
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                ) {
                    Ok(a) => Addr::Vsock {
                        cid: (a.cid() != tokio_vsock::VMADDR_CID_ANY).then_some(a.cid()),
                        port: a.port(),
                    },
                    Err(_) => Addr::Vsock { cid: None, port: 0 },
                }
            }
        }
    }

    /// Which descriptor it was: `fd 3`, or ``fd 3 named `agent` `` when
    /// `LISTEN_FDNAMES` names it.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("fd {} named `{name}`", self.fd),
            None => format!("fd {}", self.fd),
        }
    }
}

/// The descriptor at `index` as a listening stream socket of a kind the
/// agent serves, or why it is not one.
fn take_socket(
    fds: &mut listenfd::ListenFd,
    index: usize,
    fd: i32,
    name: &Option<String>,
) -> Result<Socket, ActivationError> {
    use nix::libc::{AF_VSOCK, SOCK_STREAM};
    let socket = if let Ok(Some(l)) = fds.take_tcp_listener(index) {
        Socket::Tcp(l)
    } else if let Ok(Some(l)) = fds.take_unix_listener(index) {
        Socket::Unix(l)
    } else if let Ok(Some(fd)) =
        fds.take_custom::<OwnedFd>(index, AF_VSOCK, SOCK_STREAM, "vsock stream socket")
    {
        Socket::Vsock(fd)
    } else {
        // Not taken: say what it is instead, from its /proc entry.
        let name = name.clone();
        return Err(match std::fs::metadata(format!("/proc/self/fd/{fd}")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => ActivationError::NotOpen { fd, name },
            Err(source) => ActivationError::Io { fd, name, source },
            Ok(meta) => {
                let kind = meta.file_type();
                let what = if kind.is_socket() {
                    return Err(ActivationError::Unsupported { fd, name });
                } else if kind.is_file() {
                    "a regular file"
                } else if kind.is_dir() {
                    "a directory"
                } else if kind.is_fifo() {
                    "a pipe"
                } else if kind.is_char_device() {
                    "a character device"
                } else if kind.is_block_device() {
                    "a block device"
                } else {
                    "something else"
                };
                ActivationError::NotASocket { fd, name, what }
            }
        });
    };
    let listening = match &socket {
        Socket::Tcp(l) => accepts(l),
        Socket::Unix(l) => accepts(l),
        Socket::Vsock(l) => accepts(l),
    };
    match listening {
        Ok(true) => Ok(socket),
        Ok(false) => Err(ActivationError::NotListening {
            fd,
            name: name.clone(),
        }),
        Err(source) => Err(ActivationError::Io {
            fd,
            name: name.clone(),
            source,
        }),
    }
}

/// Whether `listen(2)` was called on the socket (`SO_ACCEPTCONN`).
fn accepts(socket: &impl std::os::fd::AsFd) -> io::Result<bool> {
    nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::AcceptConn)
        .map_err(io::Error::from)
}

/// The descriptor at `index` if it is a socket of a common kind (made
/// close-on-exec on the way), to be closed.
fn take_any(fds: &mut listenfd::ListenFd, index: usize) -> Option<OwnedFd> {
    use nix::libc::{
        AF_INET, AF_NETLINK, AF_UNIX, AF_VSOCK, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM,
    };
    [
        (AF_INET, SOCK_STREAM),
        (AF_UNIX, SOCK_STREAM),
        (AF_INET, SOCK_DGRAM),
        (AF_UNIX, SOCK_DGRAM),
        (AF_UNIX, SOCK_SEQPACKET),
        (AF_INET, SOCK_SEQPACKET),
        (AF_VSOCK, SOCK_STREAM),
        (AF_NETLINK, SOCK_DGRAM),
    ]
    .into_iter()
    .find_map(|(family, kind)| {
        fds.take_custom::<OwnedFd>(index, family, kind, "socket")
            .ok()
            .flatten()
    })
}

/// Why `hvsock:` cannot be listened on.
pub const HVSOCK_LISTEN: &str = "hvsock: is how a host reaches a guest through its VMM; \
     in the guest, listen on vsock:PORT";

fn bind_vsock(cid: Option<u32>, port: u32) -> io::Result<Kind> {
    use rustix::io::Errno;
    let at = tokio_vsock::VsockAddr::new(cid.unwrap_or(tokio_vsock::VMADDR_CID_ANY), port);
    tokio_vsock::VsockListener::bind(at)
        .map(Kind::Vsock)
        .map_err(|e| {
            let why = match Errno::from_io_error(&e) {
                Some(Errno::ADDRINUSE) => format!(
                    "address in use: vsock port {port} already has a listener (another agent?)"
                ),
                Some(Errno::AFNOSUPPORT) => "this system has no vsock (address family not \
                     supported): in a guest, load the virtio vsock transport \
                     (vmw_vsock_virtio_transport) and give the VM a vsock device"
                    .to_owned(),
                Some(Errno::NODEV) => {
                    "no vsock transport on this system (no vsock device)".to_owned()
                }
                Some(Errno::ADDRNOTAVAIL) => match cid {
                    Some(cid) => format!(
                        "CID {cid} is not this machine's (write vsock:{port} to listen on any)"
                    ),
                    None => "address not available".to_owned(),
                },
                Some(Errno::ACCESS) => {
                    "permission denied: vsock ports below 1024 need CAP_NET_BIND_SERVICE".to_owned()
                }
                _ => e.to_string(),
            };
            io::Error::new(e.kind(), format!("{why} ({e})"))
        })
}

/// The path of the lock file beside a socket: `PATH.lock`.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The error of an agent that finds another one on its socket.
fn in_use(socket: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("another agent is listening on {}", socket.display()),
    )
}

/// A file's identity: device and inode.
type FileId = (u64, u64);

fn id_of(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// The identity of what `path` names now (without following a symlink).
fn id_at(path: &Path) -> Option<FileId> {
    std::fs::symlink_metadata(path).ok().map(|m| id_of(&m))
}

/// `PATH.lock`, created 0600 and `flock`ed (exclusive, non-blocking). The
/// lock lives as long as the descriptor, which is close-on-exec: the
/// processes the agent starts never inherit it, so a daemon left running by
/// a start step does not keep a dead agent's lock.
struct LockFile {
    _fd: OwnedFd,
    path: PathBuf,
    id: FileId,
}

impl LockFile {
    /// Takes the lock of `socket`, or fails with "another agent is
    /// listening" when another process holds it.
    fn take(socket: &Path) -> io::Result<Self> {
        use rustix::fs::{FlockOperation, Mode, OFlags};
        let path = lock_path(socket);
        // An agent that stops removes its lock file while holding the lock;
        // one that opened the old file just before gets a lock on a file no
        // longer at the path, which guards nothing: it opens the path again.
        for _ in 0..16 {
            let fd = rustix::fs::open(
                &path,
                OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| {
                let e = io::Error::from(e);
                io::Error::new(
                    e.kind(),
                    format!("cannot open the lock file {}: {e}", path.display()),
                )
            })?;
            match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => return Err(in_use(socket)),
                Err(e) => {
                    let e = io::Error::from(e);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot lock {}: {e}", path.display()),
                    ));
                }
            }
            let held = rustix::fs::fstat(&fd).map_err(io::Error::from)?;
            let id = (held.st_dev, held.st_ino);
            if id_at(&path) == Some(id) {
                return Ok(Self { _fd: fd, path, id });
            }
        }
        Err(io::Error::other(format!(
            "cannot take the lock {}: it keeps being replaced",
            path.display()
        )))
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Still holding the lock: remove the file only if it is ours (a
        // process that opened it meanwhile finds it gone and opens anew).
        if id_at(&self.path) == Some(self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
        // Then `_fd` is closed, which releases the lock.
    }
}

/// A bound Unix socket's file: its path, the identity it was bound with,
/// and the lock that guards it. Dropping it removes the socket file only if
/// the path still names that very file (a socket this process did not bind
/// is never removed), then releases the lock.
struct SocketFile {
    path: PathBuf,
    id: FileId,
    // Dropped after the socket file is removed (fields drop in order).
    _lock: LockFile,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if id_at(&self.path) == Some(self.id) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn bind_unix(path: &Path) -> io::Result<Kind> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await?;
    }
    let lock = LockFile::take(path)?;
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.file_type().is_socket() => {
            // Holding the lock, a socket file is stale unless an agent that
            // takes no lock (an older rebound) answers on it.
            if UnixStream::connect(path).await.is_ok() {
                return Err(in_use(path));
            }
            tokio::fs::remove_file(path).await?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = bind_private(path)?;
    let id = match std::fs::symlink_metadata(path) {
        Ok(meta) => id_of(&meta),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("{} vanished right after bind: {e}", path.display()),
            ));
        }
    };
    Ok(Kind::Unix(
        listener,
        Some(SocketFile {
            path: path.to_owned(),
            id,
            _lock: lock,
        }),
    ))
}

/// Binds a Unix socket that is born with mode 0600: the umask is set to
/// 0177 around `bind` and put back at once. The umask is the process's: the
/// agent binds before it runs any start, so no other file is being created
/// meanwhile. The mode is set again afterwards, for directories whose
/// default ACL overrides the umask.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use rustix::fs::Mode;
    let previous = rustix::process::umask(Mode::from_raw_mode(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(previous);
    let listener = bound.map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => in_use(path),
        _ => e,
    })?;
    let placed = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| listener.set_nonblocking(true))
        .and_then(|()| UnixListener::from_std(listener));
    if placed.is_err() {
        let _ = std::fs::remove_file(path);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Option<String>> {
        list.iter()
            .map(|n| (!n.is_empty()).then(|| (*n).to_owned()))
            .collect()
    }

    #[test]
    fn descriptor_names_come_in_order_and_missing_ones_are_unnamed() {
        assert_eq!(fd_names(2, Some("http:agent")), names(&["http", "agent"]));
        assert_eq!(fd_names(3, Some("a::unknown")), names(&["a", "", ""]));
        assert_eq!(fd_names(2, Some("a")), names(&["a", ""]));
        assert_eq!(fd_names(1, None), names(&[""]));
        assert_eq!(fd_names(1, Some("a:b")), names(&["a"]));
    }

    #[test]
    fn the_socket_is_the_named_one_else_the_only_one() {
        assert_eq!(pick(&names(&[""]), None).unwrap(), 0);
        assert_eq!(pick(&names(&["x"]), None).unwrap(), 0);
        assert_eq!(pick(&names(&["a", "agent"]), Some("agent")).unwrap(), 1);
        let err = pick(&names(&["", ""]), None).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "2 sockets were passed (LISTEN_FDS=2, names: unknown, unknown); choose"
            ),
            "{err}"
        );
        assert!(err.contains("--fdname NAME"), "{err}");
        let err = pick(&names(&["a", ""]), Some("agent"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "no socket named `agent` was passed (--fdname); the names passed (LISTEN_FDNAMES) are: a, unknown"
        );
        let err = pick(&names(&["agent", "agent"]), Some("agent")).unwrap_err();
        assert!(
            matches!(err, ActivationError::NameNotUnique { count: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn lock_path_is_beside_the_socket() {
        assert_eq!(
            lock_path(Path::new("/run/rebound/agent.sock")),
            PathBuf::from("/run/rebound/agent.sock.lock")
        );
    }

    #[test]
    fn a_held_lock_refuses_a_second_taker_and_is_removed_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("a.sock");
        let first = LockFile::take(&socket).unwrap();
        let mode = std::fs::metadata(lock_path(&socket)).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        let err = LockFile::take(&socket).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(
            err.to_string().contains(&format!(
                "another agent is listening on {}",
                socket.display()
            )),
            "{err}"
        );
        drop(first);
        assert!(!lock_path(&socket).exists());
        let again = LockFile::take(&socket).unwrap();
        drop(again);
    }

    #[test]
    fn a_lock_file_replaced_under_the_holder_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("b.sock");
        let lock = LockFile::take(&socket).unwrap();
        std::fs::remove_file(lock_path(&socket)).unwrap();
        std::fs::write(lock_path(&socket), b"").unwrap();
        drop(lock);
        assert!(lock_path(&socket).exists());
    }
}
