//! Binding the daemon's listeners (a Unix socket in a private directory, loopback TCP, or sockets
//! handed over by systemd) and finding out which user is on the other end of each connection.
//!
//! The checks here are the transport half of the security model (design.md §7); the HTTP half
//! (Host, Origin, custom header, API key) lives in `server.rs` and uses the [`Peer`] recorded here.

use std::fs::{self, File};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _,
    PermissionsExt as _,
};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use crate::config::{DaemonConfig, EnvSource, Listen, SocketSetting};

/// The sockets the daemon serves on: bound and checked, not yet accepting.
///
/// Dropping it closes the sockets and removes the socket file this process created (never one
/// inherited from systemd, never one that has been replaced behind our back).
#[derive(Debug)]
pub struct Listeners {
    tcp: Option<std::net::TcpListener>,
    tcp_addr: Option<SocketAddr>,
    unix: Option<UnixSocket>,
    /// Set when the TCP port was taken and only the Unix socket is served.
    tcp_unavailable: Option<String>,
}

/// Who is on the other end of one accepted connection. The accept loop inserts it into every
/// request on that connection as an extension; the server's checks refuse requests without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// How the connection arrived.
    pub transport: Transport,
    /// The peer's uid: `SO_PEERCRED` on the Unix socket, the kernel's socket table for TCP.
    /// `None` when it could not be determined (non-Linux TCP, a vanished table entry).
    pub uid: Option<u32>,
    /// The peer's pid, when the transport tells it (Unix socket only); for logs.
    pub pid: Option<i32>,
}

/// The transport of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Loopback TCP; `local` is our end (its port is the one `Host` must name).
    Tcp {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// The Unix socket.
    Unix,
}

/// What the uid policy says about a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerVerdict {
    /// The peer runs as our uid.
    Ours,
    /// The peer's uid could not be determined; only the API key can admit it.
    Unverified,
    /// The peer runs as another uid (root included, unless we are root): refused.
    Foreign(u32),
}

/// Binds what `daemon` asks for, adopting sockets passed by systemd socket activation when
/// `LISTEN_FDS` is set and `LISTEN_PID` is our pid.
///
/// Unix socket: its directory is created 0700 if missing, and must be a real directory (not a
/// symlink) owned by us and closed to group and others; the socket is made 0600 right after
/// `bind` (the 0700 directory closes the window in between, so the inherited umask does not
/// matter); a stale socket left by a dead instance is replaced; a live instance answering on it,
/// or holding the lock file beside it, is an "already running" error. TCP: loopback only.
///
/// Socket activation takes the descriptors with the `listenfd` crate, which also removes
/// `LISTEN_FDS`/`LISTEN_PID` from the environment (as `sd_listen_fds(1)` does): call this before
/// starting threads that read the environment. Adopted sockets are never unlinked.
pub fn bind(daemon: &DaemonConfig, env: &dyn EnvSource) -> anyhow::Result<Listeners> {
    let mut listeners = Listeners {
        tcp: None,
        tcp_addr: None,
        unix: None,
        tcp_unavailable: None,
    };
    if let Some(count) = activation_fd_count(env)? {
        listeners.adopt(count)?;
    }
    // The socket first: its lock tells a second instance apart from a foreign program on the port.
    if let (None, SocketSetting::Path(path)) = (&listeners.unix, &daemon.socket) {
        listeners.unix = Some(UnixSocket::bind(path)?);
    }
    if let (None, Listen::Tcp(addr)) = (&listeners.tcp, &daemon.listen) {
        listeners.bind_tcp_beside_socket(*addr)?;
    }
    ensure!(
        listeners.tcp.is_some() || listeners.unix.is_some(),
        "nothing to listen on: both `listen` and `socket` are \"off\" in [daemon]"
    );
    Ok(listeners)
}

/// Binds a loopback TCP address and/or a Unix socket path, with the same checks as [`bind`] and
/// without socket activation.
pub fn bind_addresses(tcp: Option<SocketAddr>, socket: Option<&Path>) -> anyhow::Result<Listeners> {
    let mut listeners = Listeners {
        tcp: None,
        tcp_addr: None,
        unix: None,
        tcp_unavailable: None,
    };
    if let Some(path) = socket {
        listeners.unix = Some(UnixSocket::bind(path)?);
    }
    if let Some(addr) = tcp {
        listeners.bind_tcp_beside_socket(addr)?;
    }
    Ok(listeners)
}

impl Listeners {
    /// The bound TCP address (with the real port when the configuration asked for port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound TCP port: the only port `Host` may name.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp_addr.map(|addr| addr.port())
    }

    /// The Unix socket's path, when there is one with a name.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_ref().and_then(|unix| unix.path.as_deref())
    }

    /// Whether the Unix socket was handed over by systemd (and so is never unlinked by us).
    pub fn unix_inherited(&self) -> bool {
        self.unix
            .as_ref()
            .is_some_and(|unix| unix.cleanup.is_none())
    }

    /// Takes the listeners apart for the accept loop.
    pub(crate) fn into_parts(self) -> (Option<std::net::TcpListener>, Option<UnixSocket>) {
        (self.tcp, self.unix)
    }

    /// Why the configured TCP port is not served (another program holds it), if so.
    pub fn tcp_unavailable(&self) -> Option<&str> {
        self.tcp_unavailable.as_deref()
    }

    /// Binds TCP; when the port is taken by someone else and the Unix socket is already bound,
    /// the daemon goes on without TCP (a squatted port must not take the socket down with it)
    /// and says so loudly. Without a Unix socket a taken port is fatal.
    fn bind_tcp_beside_socket(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let Err(error) = self.bind_tcp(addr) else {
            return Ok(());
        };
        let in_use = error
            .chain()
            .filter_map(|cause| cause.downcast_ref::<io::Error>())
            .any(|cause| cause.kind() == io::ErrorKind::AddrInUse);
        if !in_use || self.unix.is_none() {
            return Err(error);
        }
        let reason = format!(
            "{addr} is taken by another program; serving the Unix socket only (free the port and \
             restart, or pick another in [daemon] listen or COGBROKER_LISTEN)"
        );
        tracing::warn!("TCP listener not started: {reason}");
        self.tcp_unavailable = Some(reason);
        Ok(())
    }

    fn bind_tcp(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        ensure!(
            addr.ip().is_loopback(),
            "refusing to listen on {addr}: only loopback addresses (127.0.0.1, ::1) are allowed"
        );
        let listener = std::net::TcpListener::bind(addr).map_err(|error| {
            let hint = if error.kind() == io::ErrorKind::AddrInUse {
                " (is cogbroker already running? `cogbroker status` tells; else another program \
                 holds the port: pick another in [daemon] listen or COGBROKER_LISTEN, or \"off\")"
            } else {
                ""
            };
            anyhow::Error::new(error).context(format!("cannot listen on {addr}{hint}"))
        })?;
        listener
            .set_nonblocking(true)
            .context("cannot make the TCP listener non-blocking")?;
        self.tcp_addr = Some(
            listener
                .local_addr()
                .context("cannot read the TCP listener's address")?,
        );
        self.tcp = Some(listener);
        Ok(())
    }

    fn adopt(&mut self, count: usize) -> anyhow::Result<()> {
        let mut fds = listenfd::ListenFd::from_env();
        for index in 0..count {
            let fd = index + 3;
            if let Ok(Some(listener)) = fds.take_unix_listener(index) {
                ensure!(
                    self.unix.is_none(),
                    "socket activation passed more than one Unix socket (fd {fd})"
                );
                listener
                    .set_nonblocking(true)
                    .context("cannot make the inherited socket non-blocking")?;
                let path = listener
                    .local_addr()
                    .ok()
                    .and_then(|addr| addr.as_pathname().map(Path::to_path_buf));
                if let Some(path) = &path {
                    warn_if_loose(path);
                }
                tracing::info!(fd, path = ?path, "adopted the Unix socket passed by systemd");
                self.unix = Some(UnixSocket {
                    listener,
                    path,
                    cleanup: None,
                    _lock: None,
                });
            } else if let Ok(Some(listener)) = fds.take_tcp_listener(index) {
                ensure!(
                    self.tcp.is_none(),
                    "socket activation passed more than one TCP socket (fd {fd})"
                );
                let addr = listener
                    .local_addr()
                    .context("cannot read the inherited TCP socket's address")?;
                ensure!(
                    addr.ip().is_loopback(),
                    "refusing the TCP socket passed by systemd on {addr}: only loopback addresses are allowed"
                );
                listener
                    .set_nonblocking(true)
                    .context("cannot make the inherited TCP socket non-blocking")?;
                tracing::info!(fd, %addr, "adopted the TCP socket passed by systemd");
                self.tcp_addr = Some(addr);
                self.tcp = Some(listener);
            } else {
                bail!(
                    "socket activation passed fd {fd}, which is neither a Unix stream nor a TCP listening socket"
                );
            }
        }
        Ok(())
    }
}

/// Our Unix socket: the listener, and what to remove when we are done with it.
#[derive(Debug)]
pub(crate) struct UnixSocket {
    listener: StdUnixListener,
    path: Option<PathBuf>,
    /// `None` for an inherited socket: systemd owns that file.
    cleanup: Option<SocketFile>,
    /// Held for the life of the listener: a second instance fails to take it.
    _lock: Option<File>,
}

/// The socket file we created, identified by device and inode so that a file put in its place
/// by someone else is left alone.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let still_ours = fs::symlink_metadata(&self.path).is_ok_and(|meta| {
            meta.file_type().is_socket() && meta.dev() == self.dev && meta.ino() == self.ino
        });
        if !still_ours {
            return;
        }
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the socket file");
        }
    }
}

/// What must outlive the accept loop of a Unix socket: the lock, and the file to remove.
#[derive(Debug)]
pub(crate) struct UnixGuard {
    _cleanup: Option<SocketFile>,
    _lock: Option<File>,
}

impl UnixSocket {
    /// The tokio listener (needs a runtime) and the guard to drop once accepting has stopped.
    pub(crate) fn into_tokio(self) -> io::Result<(tokio::net::UnixListener, UnixGuard)> {
        let listener = tokio::net::UnixListener::from_std(self.listener)?;
        Ok((
            listener,
            UnixGuard {
                _cleanup: self.cleanup,
                _lock: self._lock,
            },
        ))
    }

    fn bind(path: &Path) -> anyhow::Result<Self> {
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .with_context(|| format!("socket path {} has no directory", path.display()))?;
        prepare_private_dir(dir)?;
        let lock = take_lock(path)?;
        remove_stale_socket(path)?;
        let listener = StdUnixListener::bind(path)
            .with_context(|| format!("cannot bind the Unix socket {}", path.display()))?;
        // The directory is 0700 and ours, so nobody else could connect between bind and chmod.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} mode 0600", path.display()))?;
        let meta = fs::symlink_metadata(path)
            .with_context(|| format!("cannot inspect {}", path.display()))?;
        ensure!(
            meta.mode() & 0o777 == 0o600,
            "{} is mode {:o} after chmod 0600",
            path.display(),
            meta.mode() & 0o777
        );
        listener
            .set_nonblocking(true)
            .context("cannot make the Unix listener non-blocking")?;
        let cleanup = SocketFile {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        };
        Ok(Self {
            listener,
            path: Some(path.to_path_buf()),
            cleanup: Some(cleanup),
            _lock: Some(lock),
        })
    }
}

/// Creates `dir` 0700 if it is missing (and any missing directory above it, also 0700), then
/// insists that it is a real directory owned by us and closed to group and others, and that no
/// directory above it lets someone else swap it: every ancestor must be owned by us or root and
/// writable by nobody else unless sticky (like `/tmp`). So the `$TMPDIR/cogbroker-UID` fallback,
/// if another user created it first (or it is group/world writable), is refused.
pub fn prepare_private_dir(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    let us = our_uid();
    let absolute = std::path::absolute(dir).with_context(|| format!("cannot resolve {shown}"))?;
    // Each directory above is judged before anything is created below it.
    let mut above = PathBuf::new();
    let components: Vec<_> = absolute.components().collect();
    for component in components.iter().take(components.len().saturating_sub(1)) {
        above.push(component);
        if fs::symlink_metadata(&above).is_err() {
            make_private_dir(&above)?;
        }
        check_ancestor(&above, dir, us)?;
    }
    make_private_dir(dir)?;
    let meta = fs::symlink_metadata(dir).with_context(|| format!("cannot inspect {shown}"))?;
    ensure!(
        !meta.file_type().is_symlink(),
        "refusing {shown}: it is a symbolic link"
    );
    ensure!(meta.is_dir(), "refusing {shown}: it is not a directory");
    ensure!(
        meta.uid() == us,
        "refusing {shown}: it is owned by uid {}, not by us (uid {us})",
        meta.uid()
    );
    let mode = meta.mode() & 0o777;
    ensure!(
        mode & 0o077 == 0,
        "refusing {shown}: it is mode {mode:o}, open to group or others (run `chmod 700 {shown}`)"
    );
    Ok(())
}

/// `mkdir` 0700 (the umask may take owner bits away, so the mode is set again); an existing
/// entry is left for the checks to judge (someone, maybe another user, made it first).
fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} mode 0700", dir.display())),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error)
            .with_context(|| format!("cannot create the runtime directory {}", dir.display())),
    }
}

/// A directory above the socket's: it (and a symbolic link naming it) owned by us or root, and
/// not writable by group or others unless sticky, so nobody else can replace what is below.
fn check_ancestor(ancestor: &Path, dir: &Path, us: u32) -> anyhow::Result<()> {
    let refuse = |why: String| {
        anyhow::anyhow!(
            "refusing the socket directory {}: {} above it {why}",
            dir.display(),
            ancestor.display()
        )
    };
    let link = fs::symlink_metadata(ancestor)
        .with_context(|| format!("cannot inspect {}", ancestor.display()))?;
    if link.file_type().is_symlink() && link.uid() != us && link.uid() != 0 {
        return Err(refuse(format!(
            "is a symbolic link owned by uid {}, not by us (uid {us}) or root",
            link.uid()
        )));
    }
    let meta =
        fs::metadata(ancestor).with_context(|| format!("cannot inspect {}", ancestor.display()))?;
    if !meta.is_dir() {
        return Err(refuse("is not a directory".to_owned()));
    }
    let owner = meta.uid();
    if owner != us && owner != 0 {
        return Err(refuse(format!(
            "is owned by uid {owner}, not by us (uid {us}) or root, so that user could replace it"
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(refuse(format!(
            "is mode {:o}, writable by others without the sticky bit, so anyone could replace it",
            mode & 0o777
        )));
    }
    Ok(())
}

/// Takes an exclusive `flock` on `<socket>.lock`, held for the life of the listener.
fn take_lock(socket: &Path) -> anyhow::Result<File> {
    let mut lock_path = socket.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&lock_path)
        .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => {
            bail!(
                "cogbroker is already running (it holds {}); stop it first \
                 (`systemctl --user stop cogbroker`, or Ctrl-C where `cogbroker serve` runs), \
                 or give this instance another [daemon] socket",
                lock_path.display()
            )
        }
        Err(error) => Err(io::Error::from(error))
            .with_context(|| format!("cannot lock {}", lock_path.display())),
    }
}

/// Removes a socket file nobody answers on; refuses a live one, a symlink or any other file.
fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("cannot inspect {shown}")),
    };
    ensure!(
        !meta.file_type().is_symlink(),
        "refusing socket path {shown}: it is a symbolic link"
    );
    ensure!(
        meta.file_type().is_socket(),
        "refusing socket path {shown}: it exists and is not a socket"
    );
    match StdUnixStream::connect(path) {
        Ok(_) => bail!(
            "cogbroker is already running: {shown} answers; stop it first \
             (`systemctl --user stop cogbroker`), or give this instance another [daemon] socket"
        ),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {shown}"))?;
            tracing::info!(path = %shown, "replaced a stale socket left by a previous instance");
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("cannot tell whether {shown} is in use")),
    }
}

/// Systemd's default `SocketMode` is 0666: say so loudly (the per-connection uid check still
/// refuses other users).
fn warn_if_loose(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                "the socket passed by systemd is open to group or others; set SocketMode=0600 in the .socket unit"
            );
        }
    }
}

/// `Some(n)` when systemd passed `n` sockets to this very process.
fn activation_fd_count(env: &dyn EnvSource) -> anyhow::Result<Option<usize>> {
    let Some(fds) = env.var("LISTEN_FDS") else {
        return Ok(None);
    };
    let for_us = env
        .var("LISTEN_PID")
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_us {
        tracing::debug!("LISTEN_FDS is set for another process; ignoring it");
        return Ok(None);
    }
    let count = fds.trim().parse::<usize>().with_context(|| {
        format!(
            "LISTEN_FDS is not a number: {:?}",
            fds.chars().take(16).collect::<String>()
        )
    })?;
    ensure!(
        count <= 2,
        "socket activation passed {count} sockets; cogbroker takes at most a Unix and a TCP one"
    );
    Ok(Some(count))
}

/// Our effective uid.
pub fn our_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The uid policy: a peer is ours only with our uid. Root (uid 0) is refused unless we are root
/// ourselves: a root process can read our memory anyway, but a tool run under `sudo` by mistake
/// should not silently receive the user's tokens.
pub fn judge_peer(peer_uid: Option<u32>, our_uid: u32) -> PeerVerdict {
    match peer_uid {
        None => PeerVerdict::Unverified,
        Some(uid) if uid == our_uid => PeerVerdict::Ours,
        Some(uid) => PeerVerdict::Foreign(uid),
    }
}

impl Peer {
    /// The peer of an accepted Unix connection, from `SO_PEERCRED`.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Self {
        match stream.peer_cred() {
            Ok(cred) => Self {
                transport: Transport::Unix,
                uid: Some(cred.uid()),
                pid: cred.pid(),
            },
            Err(error) => {
                tracing::debug!(%error, "cannot read SO_PEERCRED; the connection is closed");
                Self {
                    transport: Transport::Unix,
                    uid: None,
                    pid: None,
                }
            }
        }
    }

    /// The peer of an accepted TCP connection; its uid comes from the kernel's socket table
    /// (see [`tcp_peer_uid`]).
    pub async fn of_tcp(local: SocketAddr, remote: SocketAddr) -> Self {
        let lookup = tokio::task::spawn_blocking(move || tcp_peer_uid(local, remote)).await;
        let uid = match lookup {
            Ok(Ok(uid)) => uid,
            Ok(Err(error)) => {
                tracing::debug!(%error, "cannot read the kernel's TCP socket table; the caller's uid is unknown");
                None
            }
            Err(error) => {
                tracing::debug!(%error, "the TCP uid lookup failed");
                None
            }
        };
        Self {
            transport: Transport::Tcp { local, remote },
            uid,
            pid: None,
        }
    }
}

/// Looks up TCP peers' uids for the accept loop: one worker reads the kernel's socket table on
/// a blocking thread for every lookup waiting at that moment, so a burst of connections costs a
/// few table reads, not one each, and never more than one blocking thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TcpUidResolver {
    requests: tokio::sync::mpsc::Sender<UidRequest>,
}

type UidRequest = (
    SocketAddr,
    SocketAddr,
    tokio::sync::oneshot::Sender<Option<u32>>,
);

impl TcpUidResolver {
    /// Starts the worker (on the current runtime); it ends when every clone is dropped.
    pub fn start(queue: usize) -> Self {
        let (requests, mut incoming) = tokio::sync::mpsc::channel::<UidRequest>(queue.max(1));
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = incoming.try_recv() {
                    batch.push(more);
                }
                let wanted: Vec<(SocketAddr, SocketAddr)> = batch
                    .iter()
                    .map(|(local, remote, _)| (*local, *remote))
                    .collect();
                let found = tokio::task::spawn_blocking(move || tcp_peer_uids(&wanted)).await;
                let uids = match found {
                    Ok(Ok(uids)) => uids,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "cannot read the kernel's TCP socket table; the callers' uids are unknown");
                        Vec::new()
                    }
                    Err(error) => {
                        tracing::debug!(%error, "the TCP uid lookup failed");
                        Vec::new()
                    }
                };
                for (index, (_, _, reply)) in batch.into_iter().enumerate() {
                    let _ = reply.send(uids.get(index).copied().flatten());
                }
            }
        });
        Self { requests }
    }

    /// The peer of an accepted TCP connection; `uid` is `None` when the table does not show it
    /// or cannot be read (which the accept loop treats as unverified: fail closed).
    pub async fn peer(&self, local: SocketAddr, remote: SocketAddr) -> Peer {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let uid = match self.requests.send((local, remote, reply)).await {
            Ok(()) => answer.await.ok().flatten(),
            Err(_) => None,
        };
        Peer {
            transport: Transport::Tcp { local, remote },
            uid,
            pid: None,
        }
    }
}

/// The uids of the client ends of several loopback connections (`(local, remote)` as the
/// server sees them), from one read of `/proc/net/tcp` and `/proc/net/tcp6` (see
/// [`tcp_peer_uid`]); `None` for those not found. Linux only (all `None` elsewhere).
pub fn tcp_peer_uids(connections: &[(SocketAddr, SocketAddr)]) -> io::Result<Vec<Option<u32>>> {
    let mut uids = vec![None; connections.len()];
    if !cfg!(target_os = "linux") || connections.is_empty() {
        return Ok(uids);
    }
    let mut wanted = std::collections::HashMap::new();
    for (index, (local, remote)) in connections.iter().enumerate() {
        // The client's entry: its local address is our remote one, and the other way round.
        wanted.insert((canonical(*remote), canonical(*local)), index);
    }
    let mut text = String::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match File::open(table) {
            Ok(mut file) => {
                text.clear();
                io::Read::read_to_string(&mut file, &mut text)?;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        }
        for (client, server, uid) in established_entries(&text) {
            if let Some(&index) = wanted.get(&(client, server)) {
                uids[index] = Some(uid);
            }
        }
    }
    Ok(uids)
}

/// `(local, remote, uid)` of every entry of a socket table that is a full socket (not a
/// listener, nor a SYN_RECV or TIME_WAIT minisocket, whose uid column is 0).
fn established_entries(table: &str) -> impl Iterator<Item = (SocketAddr, SocketAddr, u32)> + '_ {
    const SYN_RECV: u8 = 0x03;
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let remote = fields.next()?;
        let state = u8::from_str_radix(fields.next()?, 16).ok()?;
        if matches!(state, SYN_RECV | TIME_WAIT | LISTEN) {
            return None;
        }
        let uid = fields.nth(3)?.parse().ok()?;
        Some((parse_proc_addr(local)?, parse_proc_addr(remote)?, uid))
    })
}

/// The uid owning the client end of a loopback TCP connection whose server end is
/// `local` ← `remote`, from `/proc/net/tcp` and `/proc/net/tcp6` (Linux; `Ok(None)` elsewhere).
///
/// Both ends of a loopback connection live in the same network namespace, so the client's entry
/// (local address = our `remote`, remote address = our `local`) is in the same tables we can
/// read. The uid column is the uid that created the client socket. Entries in TIME_WAIT or
/// SYN_RECV are minisockets whose uid column is 0 and are skipped, as are listeners.
pub fn tcp_peer_uid(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u32>> {
    if !cfg!(target_os = "linux") {
        return Ok(None);
    }
    let tables: [&str; 2] = if canonical(remote).is_ipv4() {
        ["/proc/net/tcp", "/proc/net/tcp6"]
    } else {
        ["/proc/net/tcp6", "/proc/net/tcp"]
    };
    for table in tables {
        let file = match File::open(table) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        // Read line by line and stop at the match: the kernel renders the table as it is read,
        // and with many sockets (TIME_WAIT after a load test) it is long.
        let lines = io::BufRead::lines(io::BufReader::new(file)).map_while(Result::ok);
        if let Some(uid) = uid_in_lines(lines, remote, local) {
            return Ok(Some(uid));
        }
    }
    Ok(None)
}

/// Who owns the daemon end of our loopback TCP connection from `client` to `server`, for the
/// CLI's check that the daemon is ours before it sends anything (Linux; `Ok(vec![])` elsewhere
/// or when the kernel's tables do not show it).
///
/// The server end of the connection (local address = `server`, remote = `client`) carries the
/// uid of the listener that accepted it, even before the daemon calls `accept`; if that entry is
/// not in the table yet, every listening socket that covers `server` (its exact address or a
/// wildcard on the port) is returned instead, so one foreign listener is enough to refuse.
pub fn tcp_server_owners(server: SocketAddr, client: SocketAddr) -> io::Result<Vec<u32>> {
    if !cfg!(target_os = "linux") {
        return Ok(Vec::new());
    }
    let mut text = String::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match File::open(table) {
            Ok(mut file) => {
                io::Read::read_to_string(&mut file, &mut text)?;
                text.push('\n');
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(server_owners_in_table(&text, server, client))
}

/// The owners [`tcp_server_owners`] looks for, in the text of the tables (headers included).
pub fn server_owners_in_table(table: &str, server: SocketAddr, client: SocketAddr) -> Vec<u32> {
    const SYN_RECV: u8 = 0x03;
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;
    let (server, client) = (canonical(server), canonical(client));
    let mut listeners = Vec::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(uid)) =
            (fields.get(1), fields.get(2), fields.get(3), fields.get(7))
        else {
            continue;
        };
        let (Some(state), Some(local), Some(uid)) = (
            u8::from_str_radix(state, 16).ok(),
            parse_proc_addr(local),
            uid.parse::<u32>().ok(),
        ) else {
            continue;
        };
        if state == LISTEN {
            let covers = local.port() == server.port()
                && (local.ip() == server.ip() || local.ip().is_unspecified());
            if covers {
                listeners.push(uid);
            }
        } else if !matches!(state, SYN_RECV | TIME_WAIT)
            && local == server
            && parse_proc_addr(remote) == Some(client)
        {
            return vec![uid];
        }
    }
    listeners
}

/// Finds the uid of the socket whose local address is `client` and remote address is `server`
/// in the text of `/proc/net/tcp` or `/proc/net/tcp6`.
#[cfg(test)]
fn uid_in_table(table: &str, client: SocketAddr, server: SocketAddr) -> Option<u32> {
    uid_in_lines(table.lines(), client, server)
}

/// The uid column of the matching entry, from the lines of the table (header line included).
fn uid_in_lines<L: AsRef<str>>(
    lines: impl Iterator<Item = L>,
    client: SocketAddr,
    server: SocketAddr,
) -> Option<u32> {
    const SYN_RECV: u8 = 0x03;
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;
    let (client, server) = (canonical(client), canonical(server));
    lines.skip(1).find_map(|line| {
        let line = line.as_ref();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, rem, state, uid) = (
            fields.get(1)?,
            fields.get(2)?,
            fields.get(3)?,
            fields.get(7)?,
        );
        let state = u8::from_str_radix(state, 16).ok()?;
        if matches!(state, SYN_RECV | TIME_WAIT | LISTEN) {
            return None;
        }
        if parse_proc_addr(local)? != client || parse_proc_addr(rem)? != server {
            return None;
        }
        uid.parse().ok()
    })
}

/// Parses `0100007F:1F2B` (IPv4) or 32 hex digits + port (IPv6). The kernel prints each 32-bit
/// word of the address as a number in host byte order, so the bytes come back with `to_ne_bytes`.
pub(crate) fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (index, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(addr.get(index * 8..index * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(canonical(SocketAddr::new(ip, port)))
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer) as plain IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests;
