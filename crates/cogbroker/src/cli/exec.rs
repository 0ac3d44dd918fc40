//! `exec P --token-file PATH -- cmd…`: the command runs as our child while we keep `PATH`
//! holding a valid token (a per-child sink, atomic and 0600 like the daemon's), asking the
//! daemon again before the token in the file runs low; the file is removed when the child
//! exits, and its exit code (or 128 + its signal) is ours. Signals we get are passed on.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use tokio::signal::unix::{SignalKind, signal};

use super::helpers::Broker;
use crate::broker::sinks;
use crate::config::{SinkConfig, SinkFormat, TokenKind, check_sink_path};

/// The shortest wait between two asks (a token about to expire is not asked for in a loop).
const MIN_RECHECK: Duration = Duration::from_millis(500);
/// The wait after a failed ask (the daemon restarting, a network hiccup).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// What to run and where the token goes.
pub(crate) struct TokenFileRun<'a> {
    pub(crate) broker: &'a Broker,
    pub(crate) profile: &'a str,
    pub(crate) kind: TokenKind,
    pub(crate) path: PathBuf,
    pub(crate) format: SinkFormat,
    pub(crate) var: &'a str,
    pub(crate) socket: Option<PathBuf>,
    pub(crate) program: &'a OsString,
    pub(crate) args: &'a [OsString],
}

/// Runs the child to its end; returns the exit code to leave with.
pub(crate) async fn run(run: TokenFileRun<'_>) -> anyhow::Result<i32> {
    let uid = rustix::process::getuid().as_raw();
    check_sink_path(&run.path, uid)
        .map_err(|message| super::UsageError(format!("--token-file: {message}")))?;
    let sink = SinkConfig {
        path: run.path.clone(),
        kind: run.kind,
        format: run.format,
        host: None,
        login: None,
        on_change: None,
    };
    let mut current = write_fresh(&run, &sink).await?;
    let mut command = tokio::process::Command::new(run.program);
    command
        .args(run.args)
        .env("COGBROKER_TOKEN_FILE", &run.path)
        .env(run.var, current.0.expose_secret());
    if let Some(socket) = &run.socket {
        command.env("COGBROKER_SOCKET", socket);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            let _ = sinks::remove(&sink);
            let code = if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let _ = writeln!(
                std::io::stderr().lock(),
                "cogbroker: running {} failed: {error}",
                run.program.to_string_lossy()
            );
            return Ok(code);
        }
    };
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let status = loop {
        let wait = recheck_after(current.1);
        tokio::select! {
            status = child.wait() => break status.context("cannot wait for the command")?,
            () = tokio::time::sleep(wait) => {
                match write_fresh(&run, &sink).await {
                    Ok(fresh) => current = fresh,
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "cannot renew the token file; trying again");
                        current.1 = RETRY_AFTER_FAILURE.as_secs();
                    }
                }
            }
            _ = terminate.recv() => pass_on(&child, rustix::process::Signal::TERM),
            _ = interrupt.recv() => pass_on(&child, rustix::process::Signal::INT),
            _ = hangup.recv() => pass_on(&child, rustix::process::Signal::HUP),
        }
    };
    sinks::remove(&sink)?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Asks the daemon for a token and writes it if it changed; returns the token and its
/// seconds left.
async fn write_fresh(
    run: &TokenFileRun<'_>,
    sink: &SinkConfig,
) -> anyhow::Result<(secrecy::SecretString, u64)> {
    let credential = run.broker.token(run.profile, run.kind, None).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let left = credential.expires_unix.saturating_sub(now);
    let bytes = sinks::render_token(
        sink,
        run.profile,
        credential.secret(),
        &credential.expires_rfc3339,
    )
    .context("cannot render the token file")?;
    let sink = sink.clone();
    tokio::task::spawn_blocking(move || sinks::write(&sink, &bytes))
        .await
        .context("the token file writer failed")??;
    Ok((credential.token.clone(), left))
}

/// Ask again when half of what is left has passed: the token in the file always has half
/// its remaining life when it is replaced.
fn recheck_after(seconds_left: u64) -> Duration {
    Duration::from_millis(seconds_left.saturating_mul(500)).max(MIN_RECHECK)
}

fn pass_on(child: &tokio::process::Child, signal: rustix::process::Signal) {
    let Some(pid) = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process(pid, signal);
}
