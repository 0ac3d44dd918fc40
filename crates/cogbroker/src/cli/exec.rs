//! Handing a token to a program: `env P`, `exec P -- cmd…` (plain, `--aws`, `--token-file`) and
//! `aws-credential-process P`.
//!
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

use super::helpers::{
    AwsCredentialProcessArgs, Broker, EnvArgs, ExecArgs, ShellArg, TokenFileFormat, write_stdout,
};
use super::{GlobalArgs, UsageError, block_on};
use crate::broker::sinks;
use crate::config::{SinkConfig, SinkFormat, TokenKind, check_sink_path};
use crate::helpers::{aws, env};

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

/// `env P`.
pub(crate) fn env(global: &GlobalArgs, args: &EnvArgs) -> anyhow::Result<()> {
    env::check_name(&args.var).map_err(|error| UsageError(format!("--var: {error}")))?;
    let broker = Broker::connect(global)?;
    let kind = broker.kind(&args.profile, args.kind, TokenKind::Access);
    let credential = block_on(broker.token(&args.profile, kind, None))?;
    let shell = match args.shell {
        ShellArg::Sh => env::Shell::Sh,
        ShellArg::Fish => env::Shell::Fish,
        ShellArg::Powershell => env::Shell::PowerShell,
    };
    write_stdout(&env::assignment(shell, &args.var, credential.secret()))
}

/// `exec P -- cmd…`: this process becomes the command (no shell, no parent in between), so
/// signals reach it directly and its exit code or signal death is what the caller sees.
pub(crate) fn exec(global: &GlobalArgs, args: &ExecArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    env::check_name(&args.var).map_err(|error| UsageError(format!("--var: {error}")))?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| UsageError("exec needs a command after `--`".to_owned()))?;
    let broker = Broker::connect(global)?;
    let kind = broker.kind(&args.profile, args.kind, TokenKind::Access);
    if args.aws {
        return exec_with_aws(&broker, args, kind, program, rest);
    }
    // The child can ask the same daemon again (`cogbroker token`, or the API on the socket).
    let socket = match broker.target() {
        crate::client::Target::Unix(path) => Some(path.clone()),
        crate::client::Target::Tcp(_) => None,
    };
    if let Some(path) = &args.token_file {
        let code = block_on(super::exec::run(super::exec::TokenFileRun {
            broker: &broker,
            profile: &args.profile,
            kind,
            path: path.clone(),
            format: match args.token_format {
                TokenFileFormat::Raw => crate::config::SinkFormat::Raw,
                TokenFileFormat::Json => crate::config::SinkFormat::Json,
                TokenFileFormat::Header => crate::config::SinkFormat::Header,
            },
            var: &args.var,
            socket,
            program,
            args: rest,
        }))?;
        std::process::exit(code);
    }
    let credential = block_on(broker.token(&args.profile, kind, None))?;
    let mut command = std::process::Command::new(program);
    command.args(rest).env(&args.var, credential.secret());
    if let Some(socket) = &socket {
        command.env("COGBROKER_SOCKET", socket);
    }
    let error = command.exec();
    drop(credential);
    let code = match error.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "cogbroker: running {} failed: {error}",
        program.to_string_lossy()
    );
    std::process::exit(code);
}

/// `aws-credential-process P`: the profile's AWS credentials as the `credential_process`
/// JSON on stdout. Login needed: exit 4 naming `cogbroker login P` on stderr, nothing on stdout.
pub(crate) fn aws_credential_process(
    global: &GlobalArgs,
    args: &AwsCredentialProcessArgs,
) -> anyhow::Result<()> {
    let broker = Broker::connect(global)?;
    let credentials = block_on(async {
        broker
            .daemon
            .client
            .aws_credentials(&args.profile, None)
            .await
            .map_err(|error| error.with_login_hint(&args.profile))
            .with_context(|| format!("getting AWS credentials for {} failed", args.profile))
    })?;
    write_stdout(&aws::credential_process_output(&credentials))
}

/// `exec P --aws -- cmd…`: the command runs as our child, served AWS credentials through the
/// container provider with a grant of its own; when it ends the grant is revoked (and the
/// daemon ends it anyway once this process is gone), and its exit status is ours.
fn exec_with_aws(
    broker: &Broker,
    args: &ExecArgs,
    kind: TokenKind,
    program: &OsString,
    rest: &[OsString],
) -> anyhow::Result<()> {
    let profile = args.profile.as_str();
    let client = &broker.daemon.client;
    let code = block_on(async {
        let credential = broker.token(profile, kind, None).await?;
        let grant = client
            .aws_grant(profile)
            .await
            .map_err(|error| error.with_login_hint(profile))
            .with_context(|| format!("setting up AWS credentials for {profile} failed"))?;
        // Fail now, with the CLI's exit code, rather than inside the child's first AWS call.
        let checked = client
            .aws_credentials(profile, None)
            .await
            .map_err(|error| error.with_login_hint(profile))
            .with_context(|| format!("getting AWS credentials for {profile} failed"));
        if let Err(error) = checked {
            let _ = client.aws_revoke(profile, &grant.grant_id).await;
            return Err(error);
        }
        let mut command = tokio::process::Command::new(program);
        command.args(rest).env(&args.var, credential.secret());
        for name in aws::CONFLICTING_VARS {
            command.env_remove(name);
        }
        for (name, value) in aws::container_env(&grant) {
            command.env(name, value);
        }
        let status = run_child(command, program).await;
        if let Err(error) = client.aws_revoke(profile, &grant.grant_id).await {
            let _ = writeln!(
                std::io::stderr().lock(),
                "cogbroker: revoking the child's AWS grant failed ({error}); the daemon ends it once this process has exited"
            );
        }
        Ok(status)
    })?;
    std::process::exit(code);
}

/// Runs the child to its end and returns the exit code we should exit with (128 + the signal
/// if one ended it; 126/127 if it could not start). SIGTERM and SIGHUP sent to us are passed on;
/// SIGINT and SIGQUIT from the terminal reach the child by its process group, so we only keep
/// them from ending us first.
async fn run_child(mut command: tokio::process::Command, program: &OsString) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "cogbroker: running {} failed: {error}",
                program.to_string_lossy()
            );
            return match error.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
        }
    };
    let streams = [
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::interrupt(),
        SignalKind::quit(),
    ]
    .map(|kind| signal(kind).ok());
    let [mut term, mut hup, mut int, mut quit] = streams;
    let pass_on = |child: &tokio::process::Child, signal: rustix::process::Signal| {
        if let Some(pid) = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            let _ = rustix::process::kill_process(pid, signal);
        }
    };
    async fn next(stream: &mut Option<tokio::signal::unix::Signal>) {
        match stream {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            () = next(&mut term) => pass_on(&child, rustix::process::Signal::TERM),
            () = next(&mut hup) => pass_on(&child, rustix::process::Signal::HUP),
            () = next(&mut int) => {}
            () = next(&mut quit) => {}
        }
    };
    match status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|signal| 128 + signal))
            .unwrap_or(1),
        Err(error) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "cogbroker: waiting for {} failed: {error}",
                program.to_string_lossy()
            );
            1
        }
    }
}
