//! The real `cogbroker` binary as a daemon against the emulator: readiness before any upstream
//! call, tokens over the Unix socket and TCP, the documented exit codes, config errors, graceful
//! SIGTERM, crash recovery between refresh and persist, `demo --once`, and no secret in any
//! output at `RUST_LOG=trace`.

use std::path::Path;

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{EmulatorHost, ProfileSpec, Sandbox, expect_code, read_text};
use serde_json::Value;

pub(crate) const POOL: &str = "us-east-1_E2eDaemon";
pub(crate) const CLIENT: &str = "e2e-client";
pub(crate) const ROTATING_CLIENT: &str = "e2e-rotating";
pub(crate) const ALICE_PASSWORD: &str = "Alice-Passw0rd!";
const TINA_PASSWORD: &str = "Tina-Passw0rd!";
const TINA_TOTP: &str = "JBSWY3DPEHPK3PXP";

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "{POOL}"
mfa = "optional"

[[pools.clients]]
id = "{CLIENT}"
access_token_ttl = 3600

[[pools.clients]]
id = "{ROTATING_CLIENT}"
access_token_ttl = 3600
rotation = {{ enabled = true, grace_seconds = 60 }}

[[pools.users]]
username = "alice"
password = "{ALICE_PASSWORD}"
status = "CONFIRMED"
email = "alice@example.com"

[[pools.users]]
username = "tina"
password = "{TINA_PASSWORD}"
status = "CONFIRMED"
mfa = "totp"
totp_secret = "{TINA_TOTP}"
"#
    )
}

fn alice(name: &str) -> ProfileSpec {
    ProfileSpec::new(name, POOL, CLIENT, "alice")
}

/// [`Sandbox::login_stdin`], which must also print the profile's success line.
fn login_stdin(sandbox: &Sandbox, profile: &str, password: &str) -> anyhow::Result<()> {
    let output = sandbox.login_stdin(profile, password)?;
    ensure!(
        output.stdout.starts_with(profile.as_bytes()),
        "login printed {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    Ok(())
}

/// A log line without its leading RFC 3339 timestamp.
pub(crate) fn without_timestamp(line: &str) -> &str {
    match line.split_once(' ') {
        Some((first, rest)) if first.ends_with('Z') && first.contains('T') => rest,
        _ => line,
    }
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_jwt(text: &str) -> anyhow::Result<()> {
    ensure!(
        text.split('.').count() == 3 && !text.contains(char::is_whitespace),
        "not a bare JWT: {text:?}"
    );
    Ok(())
}

/// The refresh token in the file store (the only place it may be read, for assertions).
fn stored_refresh_token(state_dir: &Path) -> anyhow::Result<Option<String>> {
    let mut found = None;
    let mut stack = vec![state_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(value) = serde_json::from_str::<Value>(&read_text(&path)?) {
                if let Some(token) = value.get("refresh_token").and_then(Value::as_str) {
                    found = Some(token.to_owned());
                }
            }
        }
    }
    Ok(found)
}

#[test]
fn tokens_over_socket_and_tcp_status_refresh_logout() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;
    let mut daemon = sandbox.serve(&[])?;
    login_stdin(&sandbox, "dev", ALICE_PASSWORD)?;

    // Unix socket (from the config) and explicit --socket: stdout is the token and a newline.
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;
    let token = stdout(&output);
    ensure!(
        token.ends_with('\n') && token.matches('\n').count() == 1,
        "{token:?}"
    );
    assert_jwt(token.trim_end())?;
    let socket = sandbox.socket.display().to_string();
    let output = sandbox.cli(&["--socket", &socket, "token", "dev"], None)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output) == token,
        "the same cached token over --socket"
    );

    // TCP.
    let tcp = daemon
        .tcp
        .context("the daemon's STATUS= names its TCP address")?;
    let url = format!("http://{tcp}");
    let output = sandbox.cli(&["--url", &url, "token", "dev"], None)?;
    expect_code(&output, 0)?;
    ensure!(stdout(&output) == token, "the same token over TCP");

    // Formats and kinds.
    let output = sandbox.cli(&["token", "dev", "--format", "header"], None)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output) == format!("Authorization: Bearer {token}"),
        "{}",
        stdout(&output)
    );
    let output = sandbox.cli(
        &["token", "dev", "--format", "json", "--min-ttl", "5m"],
        None,
    )?;
    expect_code(&output, 0)?;
    let json: Value = serde_json::from_str(&stdout(&output))?;
    ensure!(json["token"].as_str() == Some(token.trim_end()), "{json}");
    ensure!(
        json["expires_in"].as_u64().is_some_and(|s| s > 300),
        "{json}"
    );
    let output = sandbox.cli(&["token", "dev", "--kind", "id"], None)?;
    expect_code(&output, 0)?;
    assert_jwt(stdout(&output).trim_end())?;
    ensure!(
        stdout(&output) != token,
        "the id token differs from the access token"
    );

    // Status, profiles, refresh.
    let output = sandbox.cli(&["status"], None)?;
    expect_code(&output, 0)?;
    let table = stdout(&output);
    ensure!(
        table.starts_with("PROFILE") && table.contains("dev") && table.contains("alice"),
        "{table}"
    );
    let output = sandbox.cli(&["status", "dev", "--json"], None)?;
    expect_code(&output, 0)?;
    let status: Value = serde_json::from_str(&stdout(&output))?;
    ensure!(
        status["name"] == "dev" && status["state"] == "fresh",
        "{status}"
    );
    let output = sandbox.cli(&["profiles"], None)?;
    expect_code(&output, 0)?;
    ensure!(stdout(&output) == "dev\n", "{}", stdout(&output));
    let output = sandbox.cli(&["refresh", "dev"], None)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output).starts_with("dev: refreshed"),
        "{}",
        stdout(&output)
    );
    ensure!(
        emulator.handle.calls("GetTokensFromRefreshToken") + emulator.handle.calls("InitiateAuth")
            >= 2
    );

    // Logout: afterwards a token needs a login again (exit 4).
    let output = sandbox.cli(&["logout", "dev"], None)?;
    expect_code(&output, 0)?;
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 4)?;
    ensure!(stdout(&output).is_empty());

    let status = daemon.terminate()?;
    ensure!(status.success(), "SIGTERM → exit 0, got {status:?}");
    Ok(())
}

/// What a person reads after `cogbroker login`: who is logged in and how long the token lives,
/// the whole line (the token lives 3600 s; the seconds the login itself took are allowed for).
#[test]
fn login_says_who_is_logged_in_and_for_how_long() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;
    let _daemon = sandbox.serve(&[])?;
    let output = sandbox.login_stdin("dev", ALICE_PASSWORD)?;
    let line = stdout(&output);
    let expected: Vec<String> = (3500..=3600)
        .map(|seconds| {
            let shown = if seconds >= 3600 {
                "1h00m".to_owned()
            } else {
                format!("{}m{:02}s", seconds / 60, seconds % 60)
            };
            format!("dev: logged in as alice; token valid for {shown}\n")
        })
        .collect();
    ensure!(expected.contains(&line), "login printed {line:?}");
    Ok(())
}

#[test]
fn exit_codes_for_no_daemon_login_required_and_upstream_down() -> anyhow::Result<()> {
    let mut emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;

    // 3: no daemon; the message says how to start it.
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 3)?;
    let message = stderr(&output);
    ensure!(
        message.contains("cogbroker serve") && message.contains("systemctl --user start cogbroker"),
        "{message}"
    );
    ensure!(
        message.matches('\n').count() == 1,
        "one line, printed once: {message}"
    );
    ensure!(stdout(&output).is_empty());

    let mut daemon = sandbox.serve(&[])?;
    // 4: never logged in; the message says what to run.
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 4)?;
    ensure!(
        stderr(&output).contains("cogbroker login dev"),
        "{}",
        stderr(&output)
    );

    // 1: an unknown profile is a plain error.
    let output = sandbox.cli(&["token", "nope"], None)?;
    expect_code(&output, 1)?;

    // 2: usage.
    let output = sandbox.cli(&["token", "dev", "--min-ttl", "soon"], None)?;
    expect_code(&output, 2)?;

    // 5: a restarted daemon holds only the stored refresh token, no valid access token; with
    // Cognito down it has nothing to hand out.
    login_stdin(&sandbox, "dev", ALICE_PASSWORD)?;
    ensure!(daemon.terminate()?.success());
    emulator.stop();
    let mut daemon = sandbox.serve(&[])?;
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 5)?;
    ensure!(stdout(&output).is_empty());
    ensure!(
        stderr(&output).contains("retry in"),
        "Retry-After is passed on: {}",
        stderr(&output)
    );

    ensure!(daemon.terminate()?.success());
    Ok(())
}

#[test]
fn ready_comes_before_any_upstream_call_and_sigterm_exits_zero() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;

    let mut first = sandbox.serve(&[])?;
    ensure!(
        emulator.total_calls() == 0,
        "no upstream call before READY=1"
    );
    // Hardened: core dumps off (RLIMIT_CORE 0, soft and hard).
    let limits = read_text(Path::new(&format!("/proc/{}/limits", first.pid())))?;
    let core = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .context("a core limit line")?;
    let fields: Vec<&str> = core.split_whitespace().collect();
    ensure!(
        fields.get(4) == Some(&"0") && fields.get(5) == Some(&"0"),
        "{core}"
    );
    ensure!(
        first.ready.contains("STATUS=serving 1 profile"),
        "{}",
        first.ready
    );
    login_stdin(&sandbox, "dev", ALICE_PASSWORD)?;
    // STATUS= follows the broker: systemctl status shows the logged-in profile.
    let status = first.wait_for_notification("1 fresh")?;
    ensure!(status.starts_with("STATUS=serving 1 profile"), "{status}");
    let status = first.terminate()?;
    ensure!(status.success(), "SIGTERM → exit 0, got {status:?}");
    first.wait_for_notification("STOPPING=1")?;

    // A restart restores the stored session; READY=1 still precedes any call to Cognito.
    let calls_before = emulator.total_calls();
    let mut second = sandbox.serve(&[])?;
    ensure!(
        emulator.total_calls() == calls_before,
        "an upstream call happened before READY=1"
    );
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;
    assert_jwt(stdout(&output).trim_end())?;
    ensure!(second.terminate()?.success());
    let (_, log) = second.finished_output();
    ensure!(log.contains("serving 1 profile"), "{log}");
    Ok(())
}

#[test]
fn config_errors_exit_1_naming_file_line_and_key() -> anyhow::Result<()> {
    let sandbox = Sandbox::new("http://127.0.0.1:9", &[alice("dev")])?;
    let mut text = read_text(&sandbox.config_path)?;
    text = text.replace(
        &format!("user_pool_id = \"{POOL}\""),
        "user_pool_id = \"not-a-pool\"",
    );
    std::fs::write(&sandbox.config_path, &text)?;
    let line = text
        .lines()
        .position(|line| line.starts_with("user_pool_id"))
        .context("the line exists")?
        + 1;

    let output = sandbox.cli(&["serve"], None)?;
    expect_code(&output, 1)?;
    let message = stderr(&output);
    let path = sandbox.config_path.display().to_string();
    ensure!(
        message.contains(&format!("{path}:{line}")),
        "file and line: {message}"
    );
    ensure!(
        message.contains("profiles.dev.user_pool_id"),
        "key: {message}"
    );
    ensure!(!sandbox.socket.exists(), "nothing was bound");
    Ok(())
}

#[test]
fn kill_between_refresh_and_persist_recovers_within_the_grace_period() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new("rot", POOL, ROTATING_CLIENT, "alice")],
    )?;
    let state_dir = sandbox.dir.path().join("state");

    let mut doomed = sandbox.serve(&[("COGBROKER_FAILPOINT", "after-refresh-before-persist")])?;
    login_stdin(&sandbox, "rot", ALICE_PASSWORD)?;
    let before = stored_refresh_token(&state_dir)?.context("login persisted a refresh token")?;
    let refreshes_before = emulator.handle.calls("GetTokensFromRefreshToken");

    // The refresh reaches Cognito, which rotates the token; the daemon dies before persisting.
    let output = sandbox.cli(&["refresh", "rot"], None)?;
    ensure!(
        !output.status.success(),
        "the refresh cannot succeed: the daemon died"
    );
    let status = doomed.wait()?;
    ensure!(!status.success(), "killed by the failpoint, got {status:?}");
    ensure!(emulator.handle.calls("GetTokensFromRefreshToken") == refreshes_before + 1);
    ensure!(
        stored_refresh_token(&state_dir)?.as_deref() == Some(before.as_str()),
        "nothing was persisted"
    );

    // Restart within the grace period: the old refresh token still works.
    let mut revived = sandbox.serve(&[])?;
    let output = sandbox.cli(&["token", "rot"], None)?;
    expect_code(&output, 0)?;
    assert_jwt(stdout(&output).trim_end())?;
    let after = stored_refresh_token(&state_dir)?.context("a session is stored")?;
    ensure!(after != before, "the rotated refresh token was persisted");
    ensure!(revived.terminate()?.success());
    Ok(())
}

#[test]
fn no_secret_in_any_output_at_trace() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[alice("dev"), ProfileSpec::new("mfa", POOL, CLIENT, "tina")],
    )?;
    let trace = [("RUST_LOG", "trace")];
    let mut daemon = sandbox.serve(&trace)?;
    let mut cli_stderr = String::new();
    let mut tokens = Vec::new();
    let mut run = |args: &[&str], stdin: Option<&str>| -> anyhow::Result<std::process::Output> {
        let mut command = sandbox.command()?;
        command.args(args).env("RUST_LOG", "trace");
        let output = cogbroker_e2e::daemon::run_with_stdin(command, stdin)?;
        cli_stderr.push_str(&stderr(&output));
        Ok(output)
    };

    let output = run(
        &["login", "dev", "--password-stdin"],
        Some(&format!("{ALICE_PASSWORD}\n")),
    )?;
    expect_code(&output, 0)?;
    for args in [
        &["token", "dev"][..],
        &["token", "dev", "--kind", "id"],
        &["refresh", "dev"],
        &["token", "dev"],
    ] {
        let output = run(args, None)?;
        expect_code(&output, 0)?;
        if args[0] == "token" {
            tokens.push(stdout(&output).trim_end().to_owned());
        } else {
            ensure!(!stdout(&output).contains("eyJ"), "refresh prints no token");
        }
    }
    let refresh_token =
        stored_refresh_token(&sandbox.dir.path().join("state"))?.context("stored session")?;

    // A TOTP login answered over the HTTP API, so a one-time code passes through the daemon.
    let tcp = daemon.tcp.context("TCP address")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = runtime.block_on(async {
        let client = reqwest::Client::new();
        let started: Value = client
            .post(format!("http://{tcp}/v1/profiles/mfa/login"))
            .header("X-Cogbroker-Request", "1")
            .json(&serde_json::json!({ "password": TINA_PASSWORD }))
            .send()
            .await?
            .json()
            .await?;
        ensure!(started["challenge"] == "SOFTWARE_TOKEN_MFA", "{started}");
        let code = emulator
            .handle
            .totp_code(POOL, "tina")
            .context("a TOTP code")?;
        let done: Value = client
            .post(format!(
                "http://{tcp}/v1/logins/{}",
                started["login_id"].as_str().context("login_id")?
            ))
            .header("X-Cogbroker-Request", "1")
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await?
            .json()
            .await?;
        ensure!(done["status"] == "authenticated", "{done}");
        Ok::<_, anyhow::Error>(code)
    })?;
    let output = run(&["logout", "dev"], None)?;
    expect_code(&output, 0)?;
    ensure!(daemon.terminate()?.success());
    let (daemon_stdout, daemon_stderr) = daemon.finished_output();
    ensure!(
        daemon_stderr.contains("TRACE") || daemon_stderr.contains("DEBUG"),
        "trace logging is on"
    );

    let mut secrets: Vec<(String, String)> = vec![
        ("alice's password".to_owned(), ALICE_PASSWORD.to_owned()),
        ("tina's password".to_owned(), TINA_PASSWORD.to_owned()),
        ("the TOTP secret".to_owned(), TINA_TOTP.to_owned()),
        ("the refresh token".to_owned(), refresh_token),
    ];
    for token in &tokens {
        secrets.push(("a token".to_owned(), token.clone()));
        // The signature alone is enough to replay nothing, but it must not leak either.
        let signature = token.rsplit('.').next().unwrap_or_default().to_owned();
        secrets.push(("a token signature".to_owned(), signature));
    }
    let outputs = [
        ("daemon stdout", &daemon_stdout),
        ("daemon stderr", &daemon_stderr),
        ("CLI stderr", &cli_stderr),
    ];
    for (what, secret) in &secrets {
        for (place, text) in outputs {
            ensure!(
                !text.contains(secret.as_str()),
                "{what} appears in the {place}"
            );
        }
    }
    // A six-digit code is short: look for it as a whole number in the logs, leaving out each
    // line's timestamp (its microseconds are six digits too).
    for (place, text) in outputs {
        let leaked = text
            .lines()
            .map(without_timestamp)
            .flat_map(|line| line.split(|c: char| !c.is_ascii_digit()))
            .any(|number| number == code);
        ensure!(!leaked, "the TOTP code appears in the {place}");
    }
    Ok(())
}

#[test]
fn demo_once_logs_in_refreshes_and_exits_zero() -> anyhow::Result<()> {
    let sandbox = Sandbox::new("http://127.0.0.1:9", &[])?;
    let output = sandbox.cli(&["demo", "--once"], None)?;
    expect_code(&output, 0)?;
    let text = stdout(&output);
    ensure!(
        text.contains("--socket") && text.contains("token demo"),
        "{text}"
    );
    ensure!(
        text.contains("curl") && text.contains("X-Cogbroker-Request: 1"),
        "{text}"
    );
    ensure!(text.contains("refreshed"), "{text}");
    ensure!(
        text.contains("aws-credential-process demo") && text.contains("identity pool"),
        "{text}"
    );
    Ok(())
}

#[test]
fn watchdog_pings_at_half_the_interval_while_healthy() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;
    // WatchdogSec=400ms: a ping every 200 ms, each after a health probe of the runtime.
    let mut daemon = sandbox.serve_with_watchdog(400_000)?;
    daemon.wait_for_notifications("WATCHDOG=1", 3)?;
    let status = daemon.terminate()?;
    ensure!(status.success(), "SIGTERM → exit 0, got {status:?}");
    let (_, log) = daemon.finished_output();
    ensure!(log.contains("systemd watchdog enabled"), "{log}");
    Ok(())
}

#[test]
fn doctor_reports_pass_warn_fail_with_advice() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;

    // No daemon yet: that check fails, and doctor exits 1.
    let output = sandbox.cli(&["doctor"], None)?;
    expect_code(&output, 1)?;
    let report = stdout(&output);
    ensure!(report.contains("PASS  config"), "{report}");
    ensure!(
        report.contains("FAIL  daemon") && report.contains("cogbroker serve"),
        "{report}"
    );
    ensure!(report.contains("PASS  dev endpoint"), "{report}");
    ensure!(
        report.contains("PASS  dev clock") && report.contains("skew"),
        "{report}"
    );

    let mut daemon = sandbox.serve(&[])?;
    let output = sandbox.cli(&["doctor"], None)?;
    expect_code(&output, 0)?;
    let report = stdout(&output);
    ensure!(
        report.contains("PASS  socket dir") && report.contains("0700"),
        "{report}"
    );
    ensure!(
        report.contains("PASS  socket ") && report.contains("0600"),
        "{report}"
    );
    ensure!(report.contains("PASS  daemon"), "{report}");
    ensure!(
        report.contains("WARN  dev session") && report.contains("cogbroker login dev"),
        "{report}"
    );
    ensure!(
        report.contains("PASS  store") && report.contains("file"),
        "{report}"
    );
    ensure!(daemon.terminate()?.success());
    Ok(())
}

/// The doctor line of `check` (e.g. `dev clock`) and the number of seconds it names.
fn doctor_clock_line(report: &str, check: &str) -> anyhow::Result<(String, i64)> {
    let line = report
        .lines()
        .find(|line| line.get(6..).is_some_and(|rest| rest.starts_with(check)))
        .with_context(|| format!("a {check} line in:\n{report}"))?
        .to_owned();
    let seconds = line
        .split_whitespace()
        .zip(line.split_whitespace().skip(1))
        .find(|(_, unit)| *unit == "s")
        .and_then(|(number, _)| number.parse::<i64>().ok())
        .with_context(|| format!("a number of seconds in {line:?}"))?;
    Ok((line, seconds))
}

#[test]
fn doctor_measures_clock_skew_from_the_servers_date_header() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;
    let mut daemon = sandbox.serve(&[])?;

    // Cognito's clock 10 minutes ahead of ours: beyond the 60 s limit, a failure.
    emulator.handle.set_clock_offset(600);
    let output = sandbox.cli(&["doctor"], None)?;
    expect_code(&output, 1)?;
    let report = stdout(&output);
    let (line, seconds) = doctor_clock_line(&report, "dev clock")?;
    ensure!(line.starts_with("FAIL"), "{report}");
    ensure!(
        (598..=602).contains(&seconds) && line.contains("behind the server"),
        "{line}"
    );
    ensure!(line.contains("timedatectl set-ntp true"), "{line}");
    ensure!(report.contains("PASS  daemon"), "{report}");
    ensure!(
        report.contains("1 failed"),
        "only the clock fails: {report}"
    );

    // 30 s behind ours: a warning, and doctor succeeds.
    emulator.handle.set_clock_offset(-30);
    let output = sandbox.cli(&["doctor"], None)?;
    expect_code(&output, 0)?;
    let report = stdout(&output);
    let (line, seconds) = doctor_clock_line(&report, "dev clock")?;
    ensure!(line.starts_with("WARN"), "{report}");
    ensure!(
        (28..=32).contains(&seconds) && line.contains("ahead of the server"),
        "{line}"
    );

    // Back in step: a pass.
    emulator.handle.set_clock_offset(0);
    let output = sandbox.cli(&["doctor"], None)?;
    expect_code(&output, 0)?;
    let report = stdout(&output);
    let (line, _) = doctor_clock_line(&report, "dev clock")?;
    ensure!(line.starts_with("PASS") && line.contains("skew"), "{line}");
    ensure!(daemon.terminate()?.success());
    Ok(())
}

#[test]
fn completions_and_help() -> anyhow::Result<()> {
    let sandbox = Sandbox::new("http://127.0.0.1:9", &[])?;
    let output = sandbox.cli(&["completions", "bash"], None)?;
    expect_code(&output, 0)?;
    ensure!(
        stdout(&output).contains("cogbroker"),
        "a bash completion script"
    );
    let output = sandbox.cli(&["--help"], None)?;
    expect_code(&output, 0)?;
    let help = stdout(&output);
    for command in [
        "serve",
        "login",
        "token",
        "status",
        "refresh",
        "logout",
        "profiles",
        "doctor",
        "completions",
        "demo",
    ] {
        ensure!(help.contains(command), "--help lists {command}: {help}");
    }
    ensure!(help.contains("Exit codes"), "{help}");
    let output = sandbox.cli(&["frobnicate"], None)?;
    expect_code(&output, 2)?;
    Ok(())
}

#[test]
fn socket_activation_serves_the_request_that_started_the_daemon() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(&emulator.endpoint, &[alice("dev")])?;
    let (mut daemon, socket) = sandbox.socket_activated()?;

    // This connection arrives before the daemon exists; the activator then execs it, and the
    // daemon adopts the socket and answers (exit 4: not logged in yet, but answered).
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 4)?;
    let ready = daemon.wait_for_notification("READY=1")?;
    ensure!(ready.contains("STATUS=serving 1 profile"), "{ready}");
    login_stdin(&sandbox, "dev", ALICE_PASSWORD)?;
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;

    ensure!(daemon.terminate()?.success());
    ensure!(socket.exists(), "an inherited socket is never unlinked");
    Ok(())
}

#[test]
fn systemd_units_verify() -> anyhow::Result<()> {
    let units = cogbroker_e2e::workspace_root().join("systemd");
    let service = read_text(&units.join("cogbroker.service"))?;
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=%h/.local/bin/cogbroker serve",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "LimitCORE=0",
        "NoNewPrivileges=yes",
    ] {
        ensure!(
            service.lines().any(|l| l == line),
            "cogbroker.service lacks {line}"
        );
    }
    let socket = read_text(&units.join("cogbroker.socket"))?;
    for line in [
        "ListenStream=%t/cogbroker/cogbroker.sock",
        "SocketMode=0600",
        "DirectoryMode=0700",
    ] {
        ensure!(
            socket.lines().any(|l| l == line),
            "cogbroker.socket lacks {line}"
        );
    }

    // `systemd-analyze verify` resolves %h from HOME: give it a home with the binary installed.
    let home = tempfile::tempdir()?;
    let bin_dir = home.path().join(".local/bin");
    std::fs::create_dir_all(&bin_dir)?;
    std::os::unix::fs::symlink(
        cogbroker_e2e::workspace_binary("cogbroker")?,
        bin_dir.join("cogbroker"),
    )?;
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("cogbroker.socket"))
        .arg(units.join("cogbroker.service"))
        .env("HOME", home.path())
        .output()
        .context("run systemd-analyze (Debian package systemd)")?;
    expect_code(&output, 0)?;
    ensure!(
        output.stderr.is_empty(),
        "systemd-analyze warns: {}",
        stderr(&output)
    );
    Ok(())
}
