//! One test run alone in a child process of the test binary, for what cannot share a process
//! with the other tests: a process-wide tracing subscriber at TRACE. (A thread-local one,
//! `set_default`, misses events whose callsites other tests' threads met first and cached as
//! uninteresting: under `cargo test` the log-capture tests then failed about half the time.)
//!
//! The parent test calls [`run`] with the child's path; the child test starts with
//! `let Some(dir) = test_child::dir() else { return };` (a no-op in the ordinary run) and ends
//! with [`done`], so a child that did not run to its end fails the parent. Children started
//! another way (under a umask, under `systemd-socket-activate`) use [`this_test_binary`],
//! [`CHILD`] and [`DIR`] themselves.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Set in the child's environment.
pub(crate) const CHILD: &str = "COGBROKER_TEST_CHILD";
/// The child's scratch directory, in its environment.
pub(crate) const DIR: &str = "COGBROKER_TEST_DIR";
const DONE: &str = "child-done";

/// This very test binary for a child process: `/proc/<pid>/exe` still works when cargo has
/// rebuilt the file meanwhile (a shared target directory), where `current_exe()` would not.
pub(crate) fn this_test_binary() -> PathBuf {
    PathBuf::from(format!("/proc/{}/exe", std::process::id()))
}

/// Runs the test `path` (e.g. `server::tests::api::no_secret_child`) alone in a child of this
/// test binary; panics with its output unless it passed and reached [`done`].
pub(crate) fn run(path: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(this_test_binary())
        .args(["--exact", path, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env(DIR, dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join(DONE).exists(), "the child test {path} ran");
}

/// In the child: its scratch directory. `None` in the ordinary test run.
pub(crate) fn dir() -> Option<PathBuf> {
    std::env::var_os(CHILD)?;
    std::env::var_os(DIR).map(PathBuf::from)
}

/// In the child, at its very end: tells the parent it got there.
pub(crate) fn done(dir: &Path) {
    std::fs::write(dir.join(DONE), b"ok").unwrap();
}

/// Everything the process-wide subscriber of [`capture_globally`] wrote.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The log so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a process-wide subscriber at TRACE (the emulator's own logs off) and returns what
/// it writes.
pub(crate) fn capture_globally() -> Captured {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,cognito_emulator=off",
        ))
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    captured
}
