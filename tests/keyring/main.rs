//! The keyring store against a real Secret Service: gnome-keyring, unlocked, in a private D-Bus
//! session that `make keyring` (or `scripts/keyring-test.sh`) creates and tears down. It never
//! touches a person's own keyring.
//!
//! What is proved here, and nowhere else:
//! - `store::open(Keyring | Auto)` picks the Secret Service, and a session saved through it is
//!   read back by another process and erased for real (checked with `secret-tool`, libsecret's
//!   own client, not with our code);
//! - the real `cogbroker serve` keeps the refresh token and the remembered device across a restart
//!   in the keyring: after SIGTERM and a new start, a token request costs one refresh and no login;
//! - the password typed at login never reaches the keyring (nor the state directory, nor the logs);
//! - a password stored with `secret-tool store`, as docs/configuration.md says, is a working
//!   `password = { keyring = true }` source, and logout leaves that user entry alone.
//!
//! `secret-tool` (Debian: libsecret-tools) must be installed; a missing tool fails the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use cogbroker::config::{ProfileName, StoreKind};
use cogbroker::store::{self, StoredSession};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, Sandbox, toml_string};
use cognito_auth::flow::DeviceCredentials;
use cognito_auth::secret::{DevicePassword, RefreshToken};
use serde_json::{Value, json};

/// Set by `make keyring` inside its private D-Bus session.
const GATE_VAR: &str = "COGBROKER_TEST_KEYRING";
/// Set by the round-trip test for the child process it starts (see `CHILD_TEST`).
const CHILD_PROFILE_VAR: &str = "COGBROKER_KEYRING_CHILD_PROFILE";
/// The test that runs only as that child: a fresh process reading what the parent saved.
const CHILD_TEST: &str = "child_process_loads_the_saved_session";
/// The keyring service of every cogbroker entry (`store::KEYRING_SERVICE`).
const SERVICE: &str = store::KEYRING_SERVICE;

/// Refuses to run outside `make keyring`: a bare `cargo test --test keyring` would otherwise
/// write into the developer's own keyring, or fail for want of one.
fn require_private_keyring() -> anyhow::Result<()> {
    if std::env::var(GATE_VAR).as_deref() != Ok("1") {
        bail!(
            "{GATE_VAR} is not 1: these tests need a throwaway Secret Service; run `make keyring` \
             (or scripts/keyring-test.sh), which starts gnome-keyring in a private D-Bus session"
        );
    }
    ensure!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|address| !address.is_empty()),
        "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset or empty): run `make keyring`, \
         which starts one with dbus-run-session"
    );
    Ok(())
}

/// A profile name no other test run uses, so parallel runs never share an entry.
fn unique_profile(tag: &str) -> anyhow::Result<ProfileName> {
    format!("keyring-e2e-{tag}-{}", std::process::id())
        .parse()
        .map_err(|error| anyhow::anyhow!("profile name: {error}"))
}

// ---------------------------------------------------------------------------------------------
// Sessions at the store level.

const FIRST_REFRESH_TOKEN: &str = "keyring-e2e-refresh-token-one";

fn session(refresh_token: &str, with_device: bool) -> StoredSession {
    StoredSession {
        refresh_token: RefreshToken::new(refresh_token),
        username: Some("alice".to_owned()),
        device: with_device.then(|| DeviceCredentials {
            device_key: "us-east-1_0d7b1c5e-2f4a-4b8e-9c3d-1a2b3c4d5e6f".to_owned(),
            device_group_key: "-AbCdEfGh".to_owned(),
            device_password: DevicePassword::new("keyring-e2e-device-password"),
        }),
        rotates: None,
        refresh_unconfirmed: false,
        identity: with_device.then(|| cogbroker::store::StoredIdentity {
            pool_id: "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f".to_owned(),
            identity_id: "us-east-1:11111111-2222-3333-4444-555555555555".to_owned(),
        }),
    }
}

fn assert_same(loaded: &StoredSession, expected: &StoredSession) -> anyhow::Result<()> {
    ensure!(
        loaded.refresh_token.expose_secret() == expected.refresh_token.expose_secret(),
        "the refresh token read back differs from the one saved"
    );
    ensure!(
        loaded.username == expected.username,
        "username {:?}",
        loaded.username
    );
    match (&loaded.device, &expected.device) {
        (None, None) => {}
        (Some(loaded), Some(expected)) => {
            ensure!(
                loaded.device_key == expected.device_key,
                "device key {}",
                loaded.device_key
            );
            ensure!(
                loaded.device_group_key == expected.device_group_key,
                "device group key {}",
                loaded.device_group_key
            );
            ensure!(
                loaded.device_password.expose_secret() == expected.device_password.expose_secret(),
                "the device password read back differs from the one saved"
            );
        }
        (loaded, _) => bail!(
            "device read back as {:?}",
            loaded.as_ref().map(|device| &device.device_key)
        ),
    }
    ensure!(
        loaded.identity == expected.identity,
        "identity read back as {:?}",
        loaded.identity
    );
    Ok(())
}

/// Fails if any file under `dir` contains `needle` (`what` names it in the message).
fn assert_not_on_disk(dir: &Path, needle: &str, what: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry?.path();
        let kind = std::fs::symlink_metadata(&path)
            .with_context(|| format!("inspect {}", path.display()))?
            .file_type();
        if kind.is_dir() {
            assert_not_on_disk(&path, needle, what)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            ensure!(
                !contains(&bytes, needle),
                "{} holds the {what}: it must live only in the keyring",
                path.display()
            );
        }
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn keyring_store_saves_reloads_rotates_and_erases() -> anyhow::Result<()> {
    require_private_keyring()?;
    let secret_tool = SecretTool::find()?;
    let state_dir = tempfile::tempdir().context("a state dir")?;
    let (store, reason) = store::open(StoreKind::Keyring, state_dir.path())?;
    ensure!(
        store.kind() == "keyring",
        "store = keyring opened {} ({reason})",
        store.kind()
    );

    let profile = unique_profile("roundtrip")?;
    let name = profile.to_string();
    let meta_name = format!("{name}/session");
    ensure!(
        store.load(&profile)?.is_none(),
        "a fresh profile already has a stored session"
    );

    let first = session(FIRST_REFRESH_TOKEN, true);
    store.save(&profile, &first)?;

    // libsecret's own client sees exactly the two documented entries: the refresh token alone,
    // and the username and device as JSON.
    let token_secret = secret_tool
        .lookup(&name)?
        .context("secret-tool finds no entry for the profile after save")?;
    ensure!(
        token_secret == FIRST_REFRESH_TOKEN.as_bytes(),
        "the entry `{name}` must hold the refresh token alone ({} bytes found)",
        token_secret.len()
    );
    let meta = secret_tool
        .lookup(&meta_name)?
        .context("secret-tool finds no `NAME/session` entry after save")?;
    let meta: Value = serde_json::from_slice(&meta).context("the session entry is not JSON")?;
    ensure!(
        meta["username"] == "alice" && meta["device"]["device_key"].is_string(),
        "the session entry lacks the username or the device"
    );
    ensure!(
        !contains(meta.to_string().as_bytes(), FIRST_REFRESH_TOKEN),
        "the session entry repeats the refresh token"
    );

    // A fresh process reads it back over D-Bus, as the daemon does after a restart.
    run_child_test(&profile)?;

    // Rotation replaces the token; the device can be dropped.
    let (reopened, _) = store::open(StoreKind::Keyring, state_dir.path())?;
    let rotated = session("keyring-e2e-refresh-token-two", false);
    store.save(&profile, &rotated)?;
    let loaded = reopened
        .load(&profile)?
        .context("the rotated session is not in the keyring")?;
    assert_same(&loaded, &rotated)?;

    assert_not_on_disk(
        state_dir.path(),
        "keyring-e2e-refresh-token",
        "refresh token",
    )?;

    store.erase(&profile)?;
    ensure!(
        reopened.load(&profile)?.is_none(),
        "the session survived erase"
    );
    let left = secret_tool.entries_of(&name)?;
    ensure!(
        left.is_empty(),
        "after erase secret-tool still finds {left:?}"
    );
    store
        .erase(&profile)
        .context("erasing an absent session must succeed")?;
    Ok(())
}

/// Runs [`CHILD_TEST`] in a new process of this test binary and requires that it passed.
fn run_child_test(profile: &ProfileName) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locate the test executable")?;
    let output = Command::new(exe)
        .args([CHILD_TEST, "--exact", "--ignored", "--test-threads=1"])
        .env(CHILD_PROFILE_VAR, profile.as_str())
        .output()
        .context("start the child test process")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && stdout.contains("1 passed"),
        "the child process could not load the session ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[test]
#[ignore = "a helper: keyring_store_saves_reloads_rotates_and_erases runs it in a child process"]
fn child_process_loads_the_saved_session() -> anyhow::Result<()> {
    require_private_keyring()?;
    let profile: ProfileName = std::env::var(CHILD_PROFILE_VAR)
        .with_context(|| {
            format!(
                "{CHILD_PROFILE_VAR} is unset: this helper only runs as the child of \
                 keyring_store_saves_reloads_rotates_and_erases"
            )
        })?
        .parse()
        .map_err(|error| anyhow::anyhow!("{CHILD_PROFILE_VAR}: {error}"))?;
    let state_dir = tempfile::tempdir().context("a state dir")?;
    let (store, reason) = store::open(StoreKind::Keyring, state_dir.path())?;
    ensure!(
        store.kind() == "keyring",
        "opened {} ({reason})",
        store.kind()
    );
    let loaded = store
        .load(&profile)?
        .context("a new process finds no session in the keyring")?;
    assert_same(&loaded, &session(FIRST_REFRESH_TOKEN, true))
}

#[test]
fn auto_chooses_an_unlocked_keyring() -> anyhow::Result<()> {
    require_private_keyring()?;
    let state_dir = tempfile::tempdir().context("a state dir")?;
    let (store, reason) = store::open(StoreKind::Auto, state_dir.path())?;
    ensure!(
        store.kind() == "keyring",
        "store = auto chose {} ({reason})",
        store.kind()
    );
    // The reason is what the startup log and `status` show: it must say keyring, and auto.
    ensure!(
        reason.contains("keyring") && reason.contains("auto") && !reason.contains("file store"),
        "store = auto gave the reason {reason:?}"
    );

    let profile = unique_profile("auto")?;
    let saved = session("keyring-e2e-refresh-token-auto", false);
    store.save(&profile, &saved)?;
    let loaded = store
        .load(&profile)?
        .context("the saved session is not in the keyring")?;
    assert_same(&loaded, &saved)?;
    // Nothing of the session went to the file store's directory.
    assert_not_on_disk(
        state_dir.path(),
        "keyring-e2e-refresh-token",
        "refresh token",
    )?;
    store.erase(&profile)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// secret-tool: libsecret's command-line client, an independent reader of the Secret Service.

#[derive(Debug)]
struct SecretTool {
    path: PathBuf,
}

impl SecretTool {
    fn find() -> anyhow::Result<Self> {
        let path = std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("secret-tool"))
                    .find(|candidate| candidate.is_file())
            })
            .unwrap_or_default();
        match path {
            Some(path) => Ok(Self { path }),
            None => bail!(
                "secret-tool not found on PATH: install it (Debian: apt-get install \
                 libsecret-tools); the keyring tests read the Secret Service with it"
            ),
        }
    }

    /// `secret-tool search --all service cogbroker`: its whole output (secrets and labels on
    /// stdout, attributes on stderr) and the `username` attribute of every item.
    fn search_all(&self) -> anyhow::Result<(String, Vec<String>)> {
        let output = Command::new(&self.path)
            .args(["search", "--all", "service", SERVICE])
            .output()
            .context("run secret-tool search")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        ensure!(
            output.status.success(),
            "secret-tool search failed ({}): {stderr}",
            output.status
        );
        let usernames = stderr
            .lines()
            .filter_map(|line| line.strip_prefix("attribute.username = "))
            .map(str::to_owned)
            .collect();
        Ok((format!("{stdout}\n{stderr}"), usernames))
    }

    /// The usernames of the items that belong to `profile`: `profile` and `profile/...`.
    fn entries_of(&self, profile: &str) -> anyhow::Result<Vec<String>> {
        let prefix = format!("{profile}/");
        let (_, usernames) = self.search_all()?;
        let mut mine: Vec<String> = usernames
            .into_iter()
            .filter(|user| user == profile || user.starts_with(&prefix))
            .collect();
        mine.sort();
        Ok(mine)
    }

    /// `secret-tool store`, as configuration.md tells users to store a `{ keyring = true }`
    /// secret: the attributes `service` and `username` only, the secret on stdin.
    fn store(&self, username: &str, secret: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut child = Command::new(&self.path)
            .args(["store", "--label", "cogbroker", "service", SERVICE])
            .args(["username", username])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("run secret-tool store")?;
        child
            .stdin
            .take()
            .context("no stdin pipe to secret-tool")?
            .write_all(secret.as_bytes())
            .context("write the secret to secret-tool")?;
        let status = child.wait().context("wait for secret-tool store")?;
        ensure!(status.success(), "secret-tool store failed ({status})");
        Ok(())
    }

    /// `secret-tool clear`: removes the entries with this username.
    fn clear(&self, username: &str) -> anyhow::Result<()> {
        let status = Command::new(&self.path)
            .args(["clear", "service", SERVICE, "username", username])
            .status()
            .context("run secret-tool clear")?;
        ensure!(status.success(), "secret-tool clear failed ({status})");
        Ok(())
    }

    /// The exact secret of the entry with this username, if there is one.
    fn lookup(&self, username: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let output = Command::new(&self.path)
            .args(["lookup", "service", SERVICE, "username", username])
            .output()
            .context("run secret-tool lookup")?;
        if output.status.success() {
            return Ok(Some(output.stdout));
        }
        // Exit 1 with nothing on stderr is "no such item"; anything else is a failure.
        ensure!(
            output.status.code() == Some(1) && output.stderr.is_empty(),
            "secret-tool lookup failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// The real daemon.

const POOL: &str = "us-east-1_KeyringE2e";
const CLIENT: &str = "keyring-e2e";
const USERNAME: &str = "kira";
const PASSWORD: &str = "Kira-Keyring-Passw0rd!";
/// A second user, whose password a test stores in the keyring itself (as a `{ keyring = true }`
/// password source): it must differ from [`PASSWORD`], which no keyring item may ever contain.
const SOURCE_USERNAME: &str = "sol";
const SOURCE_PASSWORD: &str = "Sol-Source-Passw0rd!";

/// Device tracking is on, so the stored session carries a device, and the emulator refuses a
/// refresh of a device-bound token without that device's key: a restart that lost the device
/// would fail. Rotation is on, so the restarted daemon must write to the keyring too.
fn seed() -> String {
    format!(
        r#"[[pools]]
id = "{POOL}"
device_tracking = "always"

[[pools.clients]]
id = "{CLIENT}"
access_token_ttl = 3600
rotation = {{ enabled = true, grace_seconds = 60 }}

[[pools.users]]
username = "{USERNAME}"
password = "{PASSWORD}"
status = "CONFIRMED"
email = "kira@example.com"

[[pools.users]]
username = "{SOURCE_USERNAME}"
password = "{SOURCE_PASSWORD}"
status = "CONFIRMED"
email = "sol@example.com"
"#
    )
}

/// A private directory whose config has one profile on the emulator, `store = "keyring"`, the
/// socket in the directory and TCP off.
fn keyring_sandbox(endpoint: &str, profile: &str) -> anyhow::Result<Sandbox> {
    keyring_sandbox_with(endpoint, profile, USERNAME, "")
}

/// [`keyring_sandbox`] for another user, with `extra` TOML lines in the profile's table.
fn keyring_sandbox_with(
    endpoint: &str,
    profile: &str,
    username: &str,
    extra: &str,
) -> anyhow::Result<Sandbox> {
    let dir = tempfile::Builder::new()
        .prefix("cb-keyring-")
        .tempdir()
        .context("create a temporary directory")?;
    let socket = dir.path().join("run").join("cogbroker.sock");
    let state = dir.path().join("state");
    let text = format!(
        "[daemon]\nlisten = \"off\"\nsocket = {}\nstore = \"keyring\"\nstate_dir = {}\nlog = \"info\"\n\
         \n[profiles.{profile}]\nuser_pool_id = \"{POOL}\"\nclient_id = \"{CLIENT}\"\n\
         username = \"{username}\"\nendpoint = \"{endpoint}\"\n{extra}\n",
        toml_string(&socket),
        toml_string(&state),
    );
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, text).context("write the test config")?;
    Ok(Sandbox {
        dir,
        config_path,
        socket,
    })
}

/// The daemon's HTTP API over its Unix socket.
#[derive(Debug)]
struct Api {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Api {
    fn new(socket: &Path) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("a runtime for the HTTP client")?;
        let client = reqwest::Client::builder()
            .unix_socket(socket)
            .timeout(Duration::from_secs(30))
            .build()
            .context("an HTTP client on the Unix socket")?;
        Ok(Self { runtime, client })
    }

    /// Sends a `/v1` request and returns the status and the JSON body.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method.clone(), format!("http://localhost{path}"))
            .header("X-Cogbroker-Request", "1");
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .with_context(|| format!("{method} {path}"))?;
            let status = response.status().as_u16();
            let text = response
                .text()
                .await
                .with_context(|| format!("read the answer to {method} {path}"))?;
            let json = serde_json::from_str(&text)
                .with_context(|| format!("{method} {path} answered {status} with non-JSON"))?;
            Ok((status, json))
        })
    }

    fn login(&self, profile: &str, password: &str) -> anyhow::Result<()> {
        let (status, body) = self.call(
            reqwest::Method::POST,
            &format!("/v1/profiles/{profile}/login"),
            Some(json!({ "password": password })),
        )?;
        ensure!(
            status == 200 && body["status"] == "authenticated",
            "login answered {status}: {body}"
        );
        Ok(())
    }

    /// `GET /v1/profiles/{p}/token`: requires 200 and returns the access token.
    fn token(&self, profile: &str) -> anyhow::Result<String> {
        let (status, body) = self.call(
            reqwest::Method::GET,
            &format!("/v1/profiles/{profile}/token"),
            None,
        )?;
        // Only the error is shown: the body of a 200 is a live token.
        ensure!(
            status == 200,
            "GET token answered {status}: {} {}",
            body["error"],
            body["message"]
        );
        let token = body["token"]
            .as_str()
            .context("the token answer has no `token`")?;
        ensure!(
            token.split('.').count() == 3,
            "the token answer is not a JWT"
        );
        Ok(token.to_owned())
    }

    fn status(&self, profile: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(
            reqwest::Method::GET,
            &format!("/v1/profiles/{profile}"),
            None,
        )?;
        ensure!(status == 200, "GET status answered {status}: {body}");
        Ok(body)
    }

    fn logout(&self, profile: &str) -> anyhow::Result<()> {
        let (status, body) = self.call(
            reqwest::Method::POST,
            &format!("/v1/profiles/{profile}/logout"),
            None,
        )?;
        ensure!(
            status == 200 && body["status"] == "logged_out",
            "logout answered {status}: {body}"
        );
        Ok(())
    }
}

/// `cogbroker serve` on the sandbox, ready (`READY=1` on our `NOTIFY_SOCKET`), and a client of
/// its socket. The profile's status must name the keyring as its store.
fn start_daemon(sandbox: &Sandbox, profile: &str) -> anyhow::Result<(DaemonProcess, Api)> {
    let daemon = sandbox.serve(&[])?;
    let api = Api::new(&sandbox.socket)?;
    let status = api.status(profile)?;
    ensure!(
        status["store"] == "keyring",
        "the daemon's store is {}, not the keyring",
        status["store"]
    );
    Ok((daemon, api))
}

/// SIGTERM: the daemon must exit 0, and its log must have said it used the keyring (read only
/// now: the pipes are drained once it has exited). Returns everything it printed.
fn stop_daemon(daemon: &mut DaemonProcess) -> anyhow::Result<String> {
    let status = daemon.terminate()?;
    let (stdout, stderr) = daemon.finished_output();
    ensure!(
        status.success(),
        "the daemon exited with {status} after SIGTERM; stderr:\n{stderr}"
    );
    ensure!(
        stderr
            .lines()
            .any(|line| line.contains("store") && line.contains("keyring")),
        "the daemon never logged that its store is the keyring; stderr:\n{stderr}"
    );
    Ok(format!("{stdout}\n{stderr}"))
}

#[test]
fn daemon_restart_keeps_the_session_in_the_keyring() -> anyhow::Result<()> {
    require_private_keyring()?;
    let secret_tool = SecretTool::find()?;
    let emulator = EmulatorHost::start(&seed())?;
    let calls = |operation: &str| emulator.handle.calls(operation);
    let profile = unique_profile("daemon")?.to_string();
    let sandbox = keyring_sandbox(&emulator.endpoint, &profile)?;

    // First run: log in with the password, get a token.
    let (mut first, api) = start_daemon(&sandbox, &profile)?;
    api.login(&profile, PASSWORD)?;
    api.token(&profile)?;
    ensure!(
        calls("InitiateAuth") == 1 && calls("GetTokensFromRefreshToken") == 0,
        "first run: {} InitiateAuth, {} refreshes",
        calls("InitiateAuth"),
        calls("GetTokensFromRefreshToken")
    );
    ensure!(
        calls("ConfirmDevice") == 1,
        "the login did not remember a device: {} ConfirmDevice",
        calls("ConfirmDevice")
    );
    let entries = secret_tool.entries_of(&profile)?;
    ensure!(
        entries == [profile.clone(), format!("{profile}/session")],
        "after login the keyring holds {entries:?}"
    );
    let stored_before = secret_tool
        .lookup(&profile)?
        .context("no refresh token entry after login")?;
    let first_output = stop_daemon(&mut first)?;

    // Second run: a token without a new login, from the refresh token (and device) in the
    // keyring.
    let logins = calls("InitiateAuth");
    let challenges = calls("RespondToAuthChallenge");
    let (mut second, api) = start_daemon(&sandbox, &profile)?;
    api.token(&profile)?;
    ensure!(
        calls("InitiateAuth") == logins && calls("RespondToAuthChallenge") == challenges,
        "the restarted daemon logged in again ({} InitiateAuth, {} RespondToAuthChallenge)",
        calls("InitiateAuth"),
        calls("RespondToAuthChallenge")
    );
    ensure!(
        calls("GetTokensFromRefreshToken") == 1
            && emulator
                .handle
                .stats()
                .count("GetTokensFromRefreshToken", "ok")
                == 1,
        "the restarted daemon made {} refreshes ({:?}), expected exactly one that succeeded",
        calls("GetTokensFromRefreshToken"),
        emulator
            .handle
            .stats()
            .outcomes("GetTokensFromRefreshToken")
    );
    let status = api.status(&profile)?;
    ensure!(
        status["state"] == "fresh" && status["device_remembered"] == true,
        "after the restart: state {}, device_remembered {}",
        status["state"],
        status["device_remembered"]
    );
    // The rotated refresh token went to the keyring, replacing the first one.
    let stored_after = secret_tool
        .lookup(&profile)?
        .context("no refresh token entry after the restart")?;
    ensure!(
        stored_after != stored_before,
        "the rotated refresh token was not written to the keyring"
    );

    // Logout erases both entries for real.
    api.logout(&profile)?;
    let left = secret_tool.entries_of(&profile)?;
    ensure!(
        left.is_empty(),
        "after logout the keyring still holds {left:?}"
    );
    let second_output = stop_daemon(&mut second)?;

    for output in [&first_output, &second_output] {
        ensure!(
            !contains(output.as_bytes(), PASSWORD),
            "the daemon's output contains the password"
        );
    }
    Ok(())
}

#[test]
fn the_password_never_reaches_the_keyring() -> anyhow::Result<()> {
    require_private_keyring()?;
    let secret_tool = SecretTool::find()?;
    let emulator = EmulatorHost::start(&seed())?;
    let profile = unique_profile("password")?.to_string();
    let sandbox = keyring_sandbox(&emulator.endpoint, &profile)?;

    let (mut daemon, api) = start_daemon(&sandbox, &profile)?;
    api.login(&profile, PASSWORD)?;
    api.token(&profile)?;
    let output = stop_daemon(&mut daemon)?;

    // No item of the service, in its secret, label or attributes, holds the password.
    let (everything, _) = secret_tool.search_all()?;
    ensure!(
        !contains(everything.as_bytes(), PASSWORD),
        "a keyring item of service {SERVICE} contains the password"
    );
    let entries = secret_tool.entries_of(&profile)?;
    ensure!(
        entries == [profile.clone(), format!("{profile}/session")],
        "the keyring holds {entries:?} for the profile"
    );

    // `NAME/session`: the username and the device, nothing else.
    let meta = secret_tool
        .lookup(&format!("{profile}/session"))?
        .context("no session entry")?;
    let meta: Value = serde_json::from_slice(&meta).context("the session entry is not JSON")?;
    let mut keys: Vec<&str> = meta
        .as_object()
        .context("the session entry is not a JSON object")?
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    ensure!(
        keys == ["device", "username", "version"],
        "the session entry has the fields {keys:?}"
    );
    ensure!(
        meta["username"] == USERNAME,
        "the session entry's username is {}",
        meta["username"]
    );
    let device_key = meta["device"]["device_key"]
        .as_str()
        .context("the session entry has no device key")?
        .to_owned();

    // `NAME`: the refresh token alone, which the pool accepts for this device.
    let token = secret_tool
        .lookup(&profile)?
        .context("no refresh token entry")?;
    let token = String::from_utf8(token).context("the refresh token entry is not UTF-8")?;
    ensure!(
        !token.is_empty() && !token.contains(|c: char| c.is_whitespace() || c == '{'),
        "the entry `{profile}` holds more than a token"
    );
    refresh_with(&emulator.endpoint, &token, &device_key)?;

    // Nor does the password (or the refresh token) sit in a file or in the daemon's output.
    assert_not_on_disk(sandbox.dir.path(), PASSWORD, "password")?;
    assert_not_on_disk(sandbox.dir.path(), &token, "refresh token")?;
    ensure!(
        !contains(output.as_bytes(), PASSWORD) && !contains(output.as_bytes(), &token),
        "the daemon's output contains the password or the refresh token"
    );

    // Leave nothing behind in the keyring.
    let state_dir = tempfile::tempdir().context("a state dir")?;
    let (store, _) = store::open(StoreKind::Keyring, state_dir.path())?;
    let name: ProfileName = profile
        .parse()
        .map_err(|error| anyhow::anyhow!("profile name: {error}"))?;
    store.erase(&name)
}

/// GetTokensFromRefreshToken straight at the emulator: proves `token` is a live refresh token.
fn refresh_with(endpoint: &str, token: &str, device_key: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime for the HTTP client")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("an HTTP client")?;
    let request = client
        .post(format!("{endpoint}/"))
        .header(
            "X-Amz-Target",
            "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken",
        )
        .header("Content-Type", "application/x-amz-json-1.1")
        .body(
            json!({ "ClientId": CLIENT, "RefreshToken": token, "DeviceKey": device_key })
                .to_string(),
        );
    let (status, body) = runtime.block_on(async {
        let response = request.send().await.context("call the emulator")?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .context("read the emulator's answer")?;
        anyhow::Ok((status, body))
    })?;
    let body: Value = serde_json::from_str(&body).context("the emulator answered non-JSON")?;
    ensure!(
        status == 200 && body["AuthenticationResult"]["AccessToken"].is_string(),
        "the pool refused the stored refresh token: {status} {} {}",
        body["__type"],
        body["message"]
    );
    Ok(())
}

#[test]
fn a_password_stored_with_secret_tool_logs_in_unattended() -> anyhow::Result<()> {
    require_private_keyring()?;
    let secret_tool = SecretTool::find()?;
    let emulator = EmulatorHost::start(&seed())?;
    let profile = unique_profile("source")?.to_string();
    let password_entry = format!("{profile}/password");
    // What configuration.md documents for `password = { keyring = true }`.
    secret_tool.store(&password_entry, SOURCE_PASSWORD)?;
    let sandbox = keyring_sandbox_with(
        &emulator.endpoint,
        &profile,
        SOURCE_USERNAME,
        "password = { keyring = true }",
    )?;

    let (mut daemon, api) = start_daemon(&sandbox, &profile)?;
    let (status, body) = api.call(
        reqwest::Method::POST,
        &format!("/v1/profiles/{profile}/login"),
        None,
    )?;
    ensure!(
        status == 200 && body["status"] == "authenticated",
        "a login without a password answered {status}: {body}"
    );
    api.token(&profile)?;

    // Logout erases what cogbroker wrote, never what the user stored.
    api.logout(&profile)?;
    let left = secret_tool.entries_of(&profile)?;
    ensure!(
        left == [password_entry.clone()],
        "after logout the keyring holds {left:?}, expected only the user's {password_entry}"
    );
    stop_daemon(&mut daemon)?;
    secret_tool.clear(&password_entry)
}
