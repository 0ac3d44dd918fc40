//! Starting the daemon on first use, as gpg-agent does (design.md §12).
//!
//! A client command that finds nobody on the daemon's socket (or port) starts `cogbroker serve`
//! in the background, waits until it accepts connections, and carries on; the session the daemon
//! restores from the store makes a login unnecessary. It does nothing when `[daemon] autostart`
//! is off (`COGBROKER_NO_AUTOSTART=1`), when a systemd user unit owns the daemon, or when the
//! client was pointed at a daemon explicitly (`--socket`, `--url`).
//!
//! Two clients starting at once start one daemon: an exclusive `flock` on a lock file beside the
//! socket is held around check, spawn and wait, so the second client finds the first one's daemon
//! when it gets the lock. The daemon itself refuses a second instance on a live socket (its own
//! lock, `listen.rs`), which covers a `cogbroker serve` started by hand at the same moment.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{ClientError, Target};
use crate::config::Config;

/// How long a client waits for the daemon it started to accept connections.
pub const START_DEADLINE: Duration = Duration::from_secs(5);
/// The daemon's log when the CLI started it: its stderr, in the state directory.
pub const LOG_FILE: &str = "daemon.log";
/// The longest the `systemctl --user is-active` check may take.
const SYSTEMCTL_DEADLINE: Duration = Duration::from_secs(2);
/// Variables that describe this process's own supervisor; the daemon must not inherit them
/// (a `READY=1` to our `NOTIFY_SOCKET` would tell systemd lies about another unit).
const SUPERVISOR_VARS: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// What [`ensure_running`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Something already accepts on the target.
    Running,
    /// Autostart is off, or a systemd unit owns the daemon: nothing was started.
    NotStarted,
    /// A daemon was started: its pid and log file.
    Started { pid: u32, log: PathBuf },
}

/// Makes sure a daemon accepts on `target` (the address `config` describes), starting one in the
/// background if needed, with `--config` naming the file `config` was read from (made absolute:
/// the daemon runs in `/`).
///
/// Errors are [`ClientError::Unreachable`] (exit code 3) naming what went wrong.
pub fn ensure_running(config: &Config, target: &Target) -> anyhow::Result<Outcome> {
    if reachable(target) {
        return Ok(Outcome::Running);
    }
    if !config.daemon.autostart || matches!(target, Target::Tcp(addr) if addr.port() == 0) {
        return Ok(Outcome::NotStarted);
    }
    if systemd_unit_active() {
        return Ok(Outcome::NotStarted);
    }
    let deadline = Instant::now() + START_DEADLINE;
    let lock_path = lock_path(config, target);
    let _lock = take_lock(&lock_path, deadline, target)?;
    // Another client may have started it while we waited for the lock.
    if reachable(target) {
        return Ok(Outcome::Running);
    }
    let log = config.daemon.state_dir.join(LOG_FILE);
    // A missing default file means the defaults, which the daemon finds the same way.
    let config_file = config
        .path
        .is_file()
        .then(|| std::path::absolute(&config.path).unwrap_or_else(|_| config.path.clone()));
    let (mut child, log_start) = spawn(config_file.as_deref(), &log, target)?;
    let pid = child.id();
    if wait_until_accepting(target, &mut child, deadline, &log, log_start)? {
        Ok(Outcome::Started { pid, log })
    } else {
        Ok(Outcome::Running)
    }
}

/// Tells the person on stderr that a daemon was started (one line; nothing otherwise).
pub fn announce(outcome: Outcome) {
    use std::io::Write as _;
    if let Outcome::Started { pid, log } = outcome {
        let _ = writeln!(
            std::io::stderr().lock(),
            "cogbroker: started the daemon in the background (pid {pid}; log: {})",
            log.display()
        );
    }
}

/// Whether something accepts a connection on `target` now.
pub fn reachable(target: &Target) -> bool {
    crate::client::Connected::now(target).is_some()
}

/// `<socket>.autostart.lock` beside the socket (in the private runtime directory), or
/// `<state_dir>/autostart.lock` when the daemon is reached over TCP.
pub fn lock_path(config: &Config, target: &Target) -> PathBuf {
    match target {
        Target::Unix(socket) => {
            let mut name = socket.as_os_str().to_owned();
            name.push(".autostart.lock");
            PathBuf::from(name)
        }
        Target::Tcp(_) => config.daemon.state_dir.join("autostart.lock"),
    }
}

fn unreachable(target: &Target, reason: String) -> anyhow::Error {
    ClientError::Unreachable {
        target: target.to_string(),
        reason,
    }
    .into()
}

/// Whether `cogbroker.socket` or `cogbroker.service` is active in the user's systemd: then
/// systemd owns the daemon and a second one must not be started beside it.
fn systemd_unit_active() -> bool {
    let child = Command::new("systemctl")
        .args([
            "--user",
            "is-active",
            "--quiet",
            "cogbroker.socket",
            "cogbroker.service",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false; // no systemctl: no systemd unit either
    };
    let deadline = Instant::now() + SYSTEMCTL_DEADLINE;
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Takes an exclusive `flock` on `path`, retrying until `deadline`.
fn take_lock(path: &Path, deadline: Instant, target: &Target) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| {
                unreachable(
                    target,
                    format!("cannot create {} to start it: {error}", dir.display()),
                )
            })?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|error| {
            unreachable(
                target,
                format!("cannot open the lock file {}: {error}", path.display()),
            )
        })?;
    let mut pause = Duration::from_millis(2);
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(unreachable(
                    target,
                    format!(
                        "another client has been starting the daemon for {} s (it holds {})",
                        START_DEADLINE.as_secs(),
                        path.display()
                    ),
                ));
            }
            Err(error) => {
                return Err(unreachable(
                    target,
                    format!("cannot lock {}: {error}", path.display()),
                ));
            }
        }
    }
}

/// Starts `cogbroker [--config FILE] serve` detached: its own process group (job control and the
/// terminal's Ctrl-C and hangup never reach it), stdin and stdout on /dev/null, stderr appended
/// to `log`, working directory `/`. Returns the child and the log's length before it started.
fn spawn(config_file: Option<&Path>, log: &Path, target: &Target) -> anyhow::Result<(Child, u64)> {
    let failed = |what: String| unreachable(target, what);
    if let Some(dir) = log.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| failed(format!("cannot create {}: {error}", dir.display())))?;
    }
    let log_file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(log)
        .map_err(|error| failed(format!("cannot open {}: {error}", log.display())))?;
    let log_start = log_file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let exe = std::env::current_exe()
        .map_err(|error| failed(format!("cannot find the cogbroker binary: {error}")))?;
    let mut command = Command::new(exe);
    if let Some(path) = config_file {
        command.arg("--config").arg(path);
    }
    command
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .current_dir("/")
        .process_group(0);
    for var in SUPERVISOR_VARS {
        command.env_remove(var);
    }
    let child = command
        .spawn()
        .map_err(|error| failed(format!("cannot start `cogbroker serve`: {error}")))?;
    Ok((child, log_start))
}

/// Polls `target` with a short backoff until it accepts, the child exits, or `deadline` passes.
/// `true`: our child accepts; `false`: it exited because another daemon (started some other way)
/// won the socket, which accepts now.
fn wait_until_accepting(
    target: &Target,
    child: &mut Child,
    deadline: Instant,
    log: &Path,
    log_start: u64,
) -> anyhow::Result<bool> {
    let mut pause = Duration::from_millis(2);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            if reachable(target) {
                return Ok(false);
            }
            return Err(unreachable(
                target,
                format!(
                    "`cogbroker serve` started in the background exited ({status}){}",
                    log_excerpt(log, log_start)
                ),
            ));
        }
        if reachable(target) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Err(unreachable(
                target,
                format!(
                    "`cogbroker serve` started in the background (pid {}) does not accept after {} s; \
                     its log is {}",
                    child.id(),
                    START_DEADLINE.as_secs(),
                    log.display()
                ),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The last lines the daemon wrote to its log since `start` (bounded), for an error message.
fn log_excerpt(log: &Path, start: u64) -> String {
    const MAX: u64 = 2048;
    let text = (|| -> std::io::Result<String> {
        let mut file = File::open(log)?;
        let end = file.metadata()?.len();
        file.seek(SeekFrom::Start(start.max(end.saturating_sub(MAX))))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })()
    .unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        format!("; its log is {}", log.display())
    } else {
        format!(": {tail} (log: {})", log.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str, dir: &Path) -> Config {
        let mut env = std::collections::BTreeMap::new();
        env.insert("HOME".to_owned(), dir.display().to_string());
        crate::config::parse(text, &dir.join("config.toml"), &env).unwrap()
    }

    #[test]
    fn the_lock_sits_beside_the_socket_or_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(
            &format!("[daemon]\nstate_dir = \"{}/state\"\n", dir.path().display()),
            dir.path(),
        );
        assert_eq!(
            lock_path(
                &config,
                &Target::Unix("/run/u/cogbroker/cogbroker.sock".into())
            ),
            Path::new("/run/u/cogbroker/cogbroker.sock.autostart.lock")
        );
        assert_eq!(
            lock_path(&config, &Target::Tcp("127.0.0.1:7467".parse().unwrap())),
            dir.path().join("state/autostart.lock")
        );
    }

    #[test]
    fn a_listening_socket_is_running_and_nothing_is_started() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let config = config("", dir.path());
        let outcome = ensure_running(&config, &Target::Unix(socket)).unwrap();
        assert_eq!(outcome, Outcome::Running);
    }

    #[test]
    fn autostart_off_starts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = config("[daemon]\nautostart = false\n", dir.path());
        let target = Target::Unix(dir.path().join("run/none.sock"));
        assert_eq!(
            ensure_running(&config, &target).unwrap(),
            Outcome::NotStarted
        );
        assert!(!dir.path().join("run").exists(), "not even the lock file");
    }

    #[test]
    fn a_held_lock_times_out_with_an_unreachable_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let target = Target::Unix(dir.path().join("x.sock"));
        let held = take_lock(&path, Instant::now(), &target).unwrap();
        let error = take_lock(&path, Instant::now(), &target).unwrap_err();
        assert_eq!(
            crate::cli::exit_code(&error),
            crate::cli::EXIT_DAEMON_UNREACHABLE
        );
        assert!(format!("{error:#}").contains("x.lock"), "{error:#}");
        drop(held);
        take_lock(&path, Instant::now(), &target).unwrap();
    }

    #[test]
    fn the_log_excerpt_shows_only_what_this_start_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("daemon.log");
        fs::write(&log, "old line\n").unwrap();
        let start = fs::metadata(&log).unwrap().len();
        fs::write(&log, "old line\nerror: cannot bind\n\n").unwrap();
        let excerpt = log_excerpt(&log, start);
        assert!(excerpt.contains("error: cannot bind"), "{excerpt}");
        assert!(!excerpt.contains("old line"), "{excerpt}");
        assert!(log_excerpt(&log, 1000).contains("its log is"));
    }
}
