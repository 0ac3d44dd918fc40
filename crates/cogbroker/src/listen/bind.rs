//! Binding: the Unix socket in its private directory, loopback TCP, and sockets from systemd.

use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _,
    PermissionsExt as _,
};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use super::{Listeners, our_uid};
use crate::config::{DaemonConfig, EnvSource, Listen, SocketSetting};

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
pub(super) fn activation_fd_count(env: &dyn EnvSource) -> anyhow::Result<Option<usize>> {
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
