//! File sinks against the real daemon (design.md §14): written without any caller as soon as
//! the daemon has a token, 0600, rewritten on every token change, `on_change` run, removed on
//! logout.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{EmulatorHost, ProfileSpec, Sandbox, expect_code, read_text};

const SECRET: &str = "e2e-Sink-Secret-0123456789";

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "us-east-1_E2eSinks"

[[pools.resource_servers]]
identifier = "https://api.example.com"
scopes = ["read"]

[[pools.clients]]
id = "machine"
secret = "{SECRET}"
access_token_ttl = 3600
allowed_oauth_flows = ["client_credentials"]
allowed_scopes = ["https://api.example.com/read"]
"#
    )
}

#[test]
fn sinks_follow_the_token_and_go_away_on_logout() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let files = tempfile::tempdir()?;
    let raw = files.path().join("tokens/raw");
    let json = files.path().join("tokens/token.json");
    let netrc = files.path().join("netrc");
    let fifo = files.path().join("changed");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    ensure!(made.success(), "mkfifo failed");
    let profile = ProfileSpec::raw(
        "m2m",
        &format!(
            r#"grant = "client_credentials"
domain = "{domain}"
client_id = "machine"
client_secret = {{ env = "M2M_SECRET" }}

[[profiles.m2m.sinks]]
path = "{raw}"
on_change = {{ command = "printf '%s\n' \"$COGBROKER_PROFILE $COGBROKER_SINK\" > {fifo}" }}

[[profiles.m2m.sinks]]
path = "{json}"
format = "json"

[[profiles.m2m.sinks]]
path = "{netrc}"
format = "netrc"
host = "registry.example.com"
"#,
            domain = emulator.endpoint,
            raw = raw.display(),
            json = json.display(),
            netrc = netrc.display(),
            fifo = fifo.display(),
        ),
    );
    let sandbox = Sandbox::new(&emulator.endpoint, &[profile])?;
    let mut daemon = sandbox.serve(&[("M2M_SECRET", SECRET)])?;

    // Nobody asked for a token: the daemon fetches one for the sinks and runs on_change.
    // Opened read-write: a FIFO whose last writer closed reads as at its end, and each
    // on_change is a writer that comes and goes; holding a write end ourselves means a read
    // waits for the next line instead (Linux never blocks a read-write open of a FIFO).
    let mut changes = std::io::BufReader::new(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)?,
    );
    let mut line = String::new();
    changes.read_line(&mut line)?;
    ensure!(line.trim() == format!("m2m {}", raw.display()), "{line:?}");
    let first = read_text(&raw)?;
    let token = first.trim_end().to_owned();
    ensure!(
        first == format!("{token}\n") && token.split('.').count() == 3,
        "{first:?}"
    );
    for path in [&raw, &json, &netrc] {
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "{} has mode {mode:o}", path.display());
    }
    let dir_mode = std::fs::metadata(raw.parent().context("dir")?)?
        .permissions()
        .mode()
        & 0o777;
    ensure!(
        dir_mode == 0o700,
        "the sink directory has mode {dir_mode:o}"
    );
    let body: serde_json::Value = serde_json::from_str(&read_text(&json)?)?;
    ensure!(
        body["token"] == token.as_str() && body["kind"] == "access",
        "{body}"
    );
    ensure!(
        read_text(&netrc)?
            == format!("machine registry.example.com login oauth2 password {token}\n")
    );
    let output = sandbox.cli(&["token", "m2m"], None)?;
    expect_code(&output, 0)?;
    ensure!(String::from_utf8_lossy(&output.stdout).trim() == token);

    // A new token (an explicit refresh is a new grant): every sink is rewritten before the
    // command returns.
    let output = sandbox.cli(&["refresh", "m2m"], None)?;
    expect_code(&output, 0)?;
    let second = read_text(&raw)?;
    ensure!(second != first, "the sink still holds the old token");
    let body: serde_json::Value = serde_json::from_str(&read_text(&json)?)?;
    ensure!(body["token"] == second.trim_end(), "{body}");
    line.clear();
    changes.read_line(&mut line)?;
    ensure!(line.trim() == format!("m2m {}", raw.display()), "{line:?}");

    let output = sandbox.cli(&["logout", "m2m"], None)?;
    expect_code(&output, 0)?;
    for path in [&raw, &json, &netrc] {
        ensure!(!path.exists(), "{} survived the logout", path.display());
    }
    daemon.terminate()?;
    let (out, err) = daemon.finished_output();
    ensure!(
        !out.contains(&token) && !err.contains(&token),
        "a token was logged"
    );
    Ok(())
}

/// `exec --token-file`: a child that outlives two token lifetimes always reads a valid token
/// from its file, can ask the daemon itself through `COGBROKER_SOCKET`, and its file goes
/// when it exits, whose exit code is `exec`'s.
#[test]
fn exec_keeps_a_token_file_fresh_for_a_long_running_child() -> anyhow::Result<()> {
    const LIFETIME: u64 = 6;
    let emulator = EmulatorHost::start(&seed().replace(
        "access_token_ttl = 3600",
        &format!("access_token_ttl = {LIFETIME}"),
    ))?;
    let profile = ProfileSpec::raw(
        "m2m",
        &format!(
            "grant = \"client_credentials\"\ndomain = \"{}\"\nclient_id = \"machine\"\nclient_secret = {{ env = \"M2M_SECRET\" }}\n",
            emulator.endpoint
        ),
    );
    let sandbox = Sandbox::new(&emulator.endpoint, &[profile])?;
    let mut daemon = sandbox.serve(&[("M2M_SECRET", SECRET)])?;
    let files = tempfile::tempdir()?;
    let token_file = files.path().join("run/token");
    let log = files.path().join("reads.log");
    let asked = files.path().join("asked");
    // The child reads its file every 200 ms for two lifetimes and a bit, stamping each read,
    // then asks the daemon itself through the exported socket.
    let script = format!(
        r#"end=$(( $(date +%s) + {duration} ))
while [ "$(date +%s)" -lt "$end" ]; do
  printf '%s %s\n' "$(date +%s%N)" "$(cat "$COGBROKER_TOKEN_FILE")" >> {log}
  sleep 0.2
done
"$COGBROKER_BIN" token m2m > {asked} || exit 9
exit 7"#,
        duration = 2 * LIFETIME + 1,
        log = log.display(),
        asked = asked.display(),
    );
    let mut command = sandbox.command()?;
    command
        .args(["exec", "m2m", "--token-file"])
        .arg(&token_file)
        .args(["--", "sh", "-c", &script])
        .env(
            "COGBROKER_BIN",
            cogbroker_e2e::workspace_binary("cogbroker")?,
        );
    let output = cogbroker_e2e::daemon::run_with_stdin(command, None)?;
    ensure!(
        output.status.code() == Some(7),
        "exec ended with {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(!token_file.exists(), "the token file outlived the child");
    ensure!(
        !token_file
            .parent()
            .context("dir")?
            .join(".token.cogbroker-")
            .exists()
    );

    let reads = read_text(&log)?;
    let mut tokens = std::collections::BTreeSet::new();
    let mut count = 0;
    for line in reads.lines() {
        let (stamp, token) = line.split_once(' ').context("a stamped read")?;
        let read_at_ms: u128 = stamp.parse::<u128>()? / 1_000_000;
        let claims = cognito_auth::tokens::decode_claims(token)
            .with_context(|| format!("read {count} is not a whole token: {token:?}"))?;
        let exp_ms = u128::try_from(claims.exp)? * 1000;
        ensure!(
            read_at_ms < exp_ms,
            "read {count} saw a token that had expired {} ms before",
            read_at_ms - exp_ms
        );
        tokens.insert(token.to_owned());
        count += 1;
    }
    ensure!(count >= 40, "only {count} reads");
    ensure!(
        tokens.len() >= 3,
        "the file was renewed only {} times",
        tokens.len() - 1
    );
    let asked = read_text(&asked)?;
    ensure!(
        cognito_auth::tokens::decode_claims(asked.trim()).is_ok(),
        "the child could not ask the daemon through COGBROKER_SOCKET: {asked:?}"
    );
    daemon.terminate()?;
    Ok(())
}
