//! Faults against the real `cogbroker` binary (security-reliability.md §2.6): SIGTERM while a
//! refresh is in flight (fault 18) or while a login waits for an MFA code, what a crash during a
//! session-file write leaves behind (fault 11), a kill before persisting a rotated token with no
//! grace period (fault 10); and two start-up checks of §1.7: a readable API key file (7) and a
//! missing keyring (28). No sleeps: the tests wait on the emulator's fault queue, systemd
//! notifications, the socket file and process exits.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{
    self, DaemonProcess, EmulatorHost, PROCESS_DEADLINE, ProfileSpec, Sandbox, expect_code,
    read_text,
};
use cognito_emulator::Fault;
use serde_json::Value;

const POOL: &str = "us-east-1_E2eFaults";
/// Rotation without a grace period: a refresh token is spent the moment it is rotated, so only
/// the rotated one can refresh afterwards.
const ROTATING: &str = "faults-rotating";
const CLIENT: &str = "faults-client";
const ALICE_PASSWORD: &str = "Alice-Passw0rd!";
const TINA_PASSWORD: &str = "Tina-Passw0rd!";
const REFRESH: &str = "GetTokensFromRefreshToken";

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "{POOL}"
mfa = "optional"

[[pools.clients]]
id = "{CLIENT}"
access_token_ttl = 3600

[[pools.clients]]
id = "{ROTATING}"
access_token_ttl = 3600
rotation = {{ enabled = true, grace_seconds = 0 }}

[[pools.users]]
username = "alice"
password = "{ALICE_PASSWORD}"
status = "CONFIRMED"

[[pools.users]]
username = "tina"
password = "{TINA_PASSWORD}"
status = "CONFIRMED"
mfa = "totp"
totp_secret = "JBSWY3DPEHPK3PXP"
"#
    )
}

fn sessions_dir(sandbox: &Sandbox) -> PathBuf {
    sandbox.dir.path().join("state").join("sessions")
}

/// The refresh token in a profile's session file (read only for assertions).
fn stored_refresh_token(sandbox: &Sandbox, profile: &str) -> anyhow::Result<Option<String>> {
    let path = sessions_dir(sandbox).join(format!("{profile}.json"));
    if !path.exists() {
        return Ok(None);
    }
    let record: Value = serde_json::from_str(&read_text(&path)?)
        .with_context(|| format!("{} is a complete record", path.display()))?;
    Ok(record["refresh_token"].as_str().map(str::to_owned))
}

/// Names in the sessions directory other than the lock file.
fn session_files(sandbox: &Sandbox) -> anyhow::Result<Vec<String>> {
    let dir = sessions_dir(sandbox);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != ".lock" {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Waits (without sleeping, bounded by [`PROCESS_DEADLINE`]) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PROCESS_DEADLINE;
    while !done() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
    Ok(())
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// [`daemon::api`] from synchronous code.
fn api(
    runtime: &tokio::runtime::Runtime,
    daemon: &DaemonProcess,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    runtime.block_on(daemon::api(&reqwest::Client::new(), daemon, path, body))
}

/// Fault 18: SIGTERM while a refresh is in flight upstream. The refresh and the persist of the
/// rotated refresh token complete, the waiting request gets its answer, new connections are
/// refused meanwhile, and the daemon exits 0. The stored token is the rotated one: with no
/// grace period only it can refresh after a restart.
#[test]
fn sigterm_during_a_refresh_completes_it_and_persists_the_rotated_token() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new("rot", POOL, ROTATING, "alice")],
    )?;
    let mut daemon = sandbox.serve(&[])?;
    sandbox.login_stdin("rot", ALICE_PASSWORD)?;
    let before = stored_refresh_token(&sandbox, "rot")?.context("login persisted a session")?;
    let tcp = daemon.tcp.context("the daemon's TCP address")?;

    // Cognito takes 2.5 s to answer the refresh (well inside the 5 s shutdown grace).
    emulator.handle.inject(Fault::latency(REFRESH, 2500));
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let in_flight = scope.spawn(|| sandbox.cli(&["refresh", "rot"], None));
        // The fault is taken when the call arrives: from then on the refresh is in flight.
        wait_until("the refresh to reach Cognito", || {
            emulator.handle.pending_faults().is_empty()
        })?;
        daemon.signal(rustix::process::Signal::TERM)?;
        daemon.wait_for_notification("STOPPING=1")?;
        // Stopping to accept removes the socket file; from then on connections are refused.
        wait_until("the daemon to stop accepting", || !sandbox.socket.exists())?;
        ensure!(
            emulator.handle.stats().calls(REFRESH) == 0,
            "the refresh is still in flight upstream"
        );
        let refused = std::os::unix::net::UnixStream::connect(&sandbox.socket);
        ensure!(refused.is_err(), "a new Unix connection was accepted");
        let refused = std::net::TcpStream::connect(tcp);
        ensure!(refused.is_err(), "a new TCP connection was accepted");

        let output = in_flight
            .join()
            .map_err(|_| anyhow::anyhow!("the CLI thread panicked"))??;
        expect_code(&output, 0)?;
        ensure!(
            stdout(&output).starts_with("rot: refreshed"),
            "{}",
            stdout(&output)
        );
        Ok(())
    })?;
    let status = daemon.wait()?;
    ensure!(status.success(), "SIGTERM → exit 0, got {status:?}");
    ensure!(emulator.handle.stats().count(REFRESH, "ok") == 1);
    let after = stored_refresh_token(&sandbox, "rot")?.context("a session is stored")?;
    ensure!(after != before, "the rotated refresh token was persisted");
    ensure!(
        session_files(&sandbox)? == ["rot.json"],
        "no temp file left: {:?}",
        session_files(&sandbox)?
    );

    // After a restart the stored (rotated) token refreshes; the spent one would be refused.
    let logins = emulator.handle.calls("InitiateAuth");
    let mut revived = sandbox.serve(&[])?;
    let output = sandbox.cli(&["refresh", "rot"], None)?;
    expect_code(&output, 0)?;
    ensure!(emulator.handle.stats().count(REFRESH, "ok") == 2);
    ensure!(
        emulator.handle.calls("InitiateAuth") == logins,
        "no new login"
    );
    ensure!(revived.terminate()?.success());
    Ok(())
}

/// Fault 18, second half: SIGTERM while a login waits for the person's MFA code. The daemon
/// exits 0 at once, nothing about the half-done login is persisted, and after a restart the
/// profile is logged out and the old login id is unknown.
#[test]
fn sigterm_while_a_login_waits_for_an_mfa_code_persists_nothing() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new("mfa", POOL, CLIENT, "tina")],
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut daemon = sandbox.serve(&[])?;
    let (status, started) = api(
        &runtime,
        &daemon,
        "/v1/profiles/mfa/login",
        Some(serde_json::json!({ "password": TINA_PASSWORD })),
    )?;
    ensure!(
        status == 200
            && started["status"] == "challenge"
            && started["challenge"] == "SOFTWARE_TOKEN_MFA",
        "{status} {started}"
    );
    let login_id = started["login_id"]
        .as_str()
        .context("a login id")?
        .to_owned();
    // PASSWORD_VERIFIER was answered; the MFA answer never will be.
    let answers = emulator.handle.calls("RespondToAuthChallenge");

    let status = daemon.terminate()?;
    ensure!(status.success(), "SIGTERM → exit 0, got {status:?}");
    ensure!(
        session_files(&sandbox)?.is_empty(),
        "nothing persisted: {:?}",
        session_files(&sandbox)?
    );

    let mut revived = sandbox.serve(&[])?;
    let output = sandbox.cli(&["status", "mfa", "--json"], None)?;
    expect_code(&output, 0)?;
    let shown: Value = serde_json::from_str(&stdout(&output))?;
    ensure!(shown["state"] == "logged_out", "{shown}");
    let code = emulator
        .handle
        .totp_code(POOL, "tina")
        .context("a TOTP code")?;
    let (status, answer) = api(
        &runtime,
        &revived,
        &format!("/v1/logins/{login_id}"),
        Some(serde_json::json!({ "code": code })),
    )?;
    ensure!(
        status == 404 && answer["error"] == "unknown_login",
        "{status} {answer}"
    );
    ensure!(emulator.handle.calls("RespondToAuthChallenge") == answers);
    ensure!(revived.terminate()?.success());
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Fault 11: what a crash during a session-file write can leave. A truncated temp file next to
/// the complete file: the daemon uses the complete file and removes the leftover. A zero-length
/// session file (a crash on a file system without ordered writes): the daemon starts, refuses
/// the file with a clear log line and `last_error = store`, asks for a login instead of
/// reading a partial record, and a new login replaces the file.
#[test]
fn crash_leftovers_in_the_sessions_dir_are_never_read_as_a_session() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new("dev", POOL, CLIENT, "alice")],
    )?;
    let mut daemon = sandbox.serve(&[])?;
    sandbox.login_stdin("dev", ALICE_PASSWORD)?;
    ensure!(daemon.terminate()?.success());
    let complete = stored_refresh_token(&sandbox, "dev")?.context("a stored session")?;
    // Security test 26 for the file store: the password is never written.
    for name in session_files(&sandbox)? {
        let bytes = std::fs::read(sessions_dir(&sandbox).join(&name))?;
        ensure!(
            !String::from_utf8_lossy(&bytes).contains(ALICE_PASSWORD),
            "the password is in {name}"
        );
    }

    // 1. Killed between write and rename: a truncated temp file beside the complete one.
    let leftover = sessions_dir(&sandbox).join(".dev.json.tmp-4242-0");
    write_private(&leftover, b"{\"version\":1,\"refresh_tok")?;
    let mut daemon = sandbox.serve(&[])?;
    ensure!(!leftover.exists(), "the leftover temp file was removed");
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;
    ensure!(stored_refresh_token(&sandbox, "dev")?.as_deref() == Some(complete.as_str()));
    ensure!(daemon.terminate()?.success());

    // 2. A zero-length session file.
    let file = sessions_dir(&sandbox).join("dev.json");
    write_private(&file, b"")?;
    let mut daemon = sandbox.serve(&[])?;
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 4)?;
    ensure!(stdout(&output).is_empty(), "no token printed");
    let output = sandbox.cli(&["status", "dev", "--json"], None)?;
    expect_code(&output, 0)?;
    let shown: Value = serde_json::from_str(&stdout(&output))?;
    ensure!(
        shown["last_error"] == "store" && shown["expires_in"].is_null(),
        "{shown}"
    );
    ensure!(
        daemon
            .stderr_text()
            .contains("cannot read the stored session"),
        "a clear log line: {}",
        daemon.stderr_text()
    );
    // A login writes a complete file again.
    sandbox.login_stdin("dev", ALICE_PASSWORD)?;
    let output = sandbox.cli(&["token", "dev"], None)?;
    expect_code(&output, 0)?;
    let replaced = stored_refresh_token(&sandbox, "dev")?.context("a complete record")?;
    ensure!(!replaced.is_empty());
    ensure!(daemon.terminate()?.success());
    let mut text = String::new();
    std::fs::File::open(&file)?.read_to_string(&mut text)?;
    ensure!(text.trim_end().ends_with('}'), "a complete record on disk");
    Ok(())
}

/// Security test 7, start-up half: an API key file that group or others can read stops the
/// daemon before it binds anything (exit 1, a message saying what to do); at 0600 it starts.
#[test]
fn a_readable_api_key_file_is_refused_at_start() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = Sandbox::new(
        "http://127.0.0.1:9",
        &[ProfileSpec::new("dev", POOL, CLIENT, "alice")],
    )?;
    let key = sandbox.dir.path().join("api-key");
    write_private(&key, b"a-local-api-key-for-tests\n")?;
    let text = read_text(&sandbox.config_path)?.replacen(
        "[daemon]\n",
        &format!("[daemon]\napi_key_file = \"{}\"\n", key.display()),
        1,
    );
    std::fs::write(&sandbox.config_path, text)?;

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640))?;
    let output = sandbox.cli(&["serve"], None)?;
    expect_code(&output, 1)?;
    let message = String::from_utf8_lossy(&output.stderr);
    ensure!(
        message.contains("readable by others") && message.contains("chmod 600"),
        "{message}"
    );
    ensure!(
        !message.contains("a-local-api-key"),
        "the key is not shown: {message}"
    );
    ensure!(!sandbox.socket.exists(), "nothing was bound");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    let mut daemon = sandbox.serve(&[])?;
    ensure!(daemon.terminate()?.success());
    Ok(())
}

/// Security test 28: with no Secret Service reachable, `store = "auto"` starts on the file
/// store and says so, while `store = "keyring"` (keyring required) exits 1 with a clear message
/// and leaves no socket behind.
#[test]
fn a_missing_keyring_falls_back_to_the_file_or_stops_when_required() -> anyhow::Result<()> {
    let no_bus = [(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/cogbroker-test-bus",
    )];
    let profiles = [ProfileSpec::new("dev", POOL, CLIENT, "alice")];

    let sandbox = Sandbox::with_store("http://127.0.0.1:9", &profiles, "auto")?;
    let mut daemon = sandbox.serve(&no_bus)?;
    let output = sandbox.cli(&["status", "dev", "--json"], None)?;
    expect_code(&output, 0)?;
    let shown: Value = serde_json::from_str(&stdout(&output))?;
    ensure!(shown["store"] == "file", "{shown}");
    ensure!(daemon.terminate()?.success());

    let sandbox = Sandbox::with_store("http://127.0.0.1:9", &profiles, "keyring")?;
    let mut command = sandbox.command()?;
    command.arg("serve");
    for (key, value) in no_bus {
        command.env(key, value);
    }
    let output = cogbroker_e2e::daemon::run_with_stdin(command, None)?;
    expect_code(&output, 1)?;
    let message = String::from_utf8_lossy(&output.stderr);
    ensure!(
        message.contains("the keyring is unusable") && message.contains("store = \"file\""),
        "says what failed and what to do: {message}"
    );
    ensure!(!sandbox.socket.exists(), "no socket left behind");
    Ok(())
}

/// Fault 10, after the grace period: the daemon dies between Cognito's rotating reply and the
/// persist, and the pool keeps no grace period for the old token. The restarted daemon does not
/// loop or serve anything from the lost reply: the profile needs a login, said plainly (exit 4),
/// and one login recovers it.
#[test]
fn kill_before_persist_without_a_grace_period_needs_a_login() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new("rot", POOL, ROTATING, "alice")],
    )?;
    let mut doomed = sandbox.serve(&[("COGBROKER_FAILPOINT", "after-refresh-before-persist")])?;
    sandbox.login_stdin("rot", ALICE_PASSWORD)?;
    let before = stored_refresh_token(&sandbox, "rot")?.context("a stored session")?;
    let output = sandbox.cli(&["refresh", "rot"], None)?;
    ensure!(!output.status.success(), "the daemon died mid-refresh");
    ensure!(!doomed.wait()?.success(), "killed by the failpoint");
    ensure!(
        emulator.handle.stats().count(REFRESH, "ok") == 1,
        "Cognito rotated"
    );
    ensure!(stored_refresh_token(&sandbox, "rot")?.as_deref() == Some(before.as_str()));

    let mut revived = sandbox.serve(&[])?;
    let output = sandbox.cli(&["token", "rot"], None)?;
    expect_code(&output, 4)?;
    ensure!(stdout(&output).is_empty(), "no token from the lost reply");
    let message = String::from_utf8_lossy(&output.stderr);
    ensure!(message.contains("cogbroker login rot"), "{message}");
    let refused = emulator.handle.stats().calls(REFRESH);
    // No retry loop on a refused refresh token.
    let output = sandbox.cli(&["token", "rot"], None)?;
    expect_code(&output, 4)?;
    ensure!(emulator.handle.stats().calls(REFRESH) == refused);
    sandbox.login_stdin("rot", ALICE_PASSWORD)?;
    let output = sandbox.cli(&["token", "rot"], None)?;
    expect_code(&output, 0)?;
    ensure!(revived.terminate()?.success());
    Ok(())
}
