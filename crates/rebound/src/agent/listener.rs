//! Where the agent listens: binding an [`Addr`], accepting connections, and
//! the Unix socket's lifetime (a lock file held for the agent's life, and a
//! socket file removed only if it is still the one this process bound).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::addr::Addr;

/// A bound listener: [`Listener::bind`] it, hand it to
/// [`serve`](super::server::serve).
pub struct Listener {
    kind: Kind,
}

enum Kind {
    /// A Unix socket, with the lock and identity of its file.
    Unix(UnixListener, SocketFile),
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

    /// The bound address (with the real port for `tcp:...:0`).
    pub fn local_addr(&self) -> Addr {
        match &self.kind {
            Kind::Unix(_, file) => Addr::Unix(file.path.clone()),
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
                Closed(Some(file))
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
        SocketFile {
            path: path.to_owned(),
            id,
            _lock: lock,
        },
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
