//! The OAuth ways in against the real daemon (design.md §14): a machine client's
//! client_credentials grant served by the CLI, the helpers and the API, and a refused secret
//! that stops upstream calls.

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, api, expect_code};

const SECRET: &str = "e2e-M2m-Secret-0123456789";

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "us-east-1_E2eOauth"

[[pools.resource_servers]]
identifier = "https://api.example.com"
scopes = ["read", "write"]

[[pools.clients]]
id = "machine"
secret = "{SECRET}"
access_token_ttl = 3600
allowed_oauth_flows = ["client_credentials"]
allowed_scopes = ["https://api.example.com/read", "https://api.example.com/write"]
"#
    )
}

fn machine(name: &str, domain: &str, secret_var: &str) -> ProfileSpec {
    ProfileSpec::raw(
        name,
        &format!(
            "grant = \"client_credentials\"\ndomain = \"{domain}\"\nclient_id = \"machine\"\nclient_secret = {{ env = \"{secret_var}\" }}\nscopes = [\"https://api.example.com/read\", \"https://api.example.com/write\"]\n"
        ),
    )
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One API call over TCP, from a synchronous test.
fn get(daemon: &DaemonProcess, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(api(&reqwest::Client::new(), daemon, path, None))
}

#[test]
fn client_credentials_is_served_by_the_cli_the_helpers_and_the_api() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[machine("m2m", &emulator.endpoint, "M2M_SECRET")],
    )?;
    let mut daemon = sandbox.serve(&[("M2M_SECRET", SECRET)])?;

    let output = sandbox.cli(&["token", "m2m"], None)?;
    expect_code(&output, 0)?;
    let token = stdout(&output).trim().to_owned();
    let claims = cognito_auth::tokens::decode_claims(&token).context("a jwt")?;
    ensure!(claims.sub == "machine", "sub {:?}", claims.sub);
    ensure!(
        claims.scope.as_deref()
            == Some("https://api.example.com/read https://api.example.com/write"),
        "scope {:?}",
        claims.scope
    );
    ensure!(emulator.handle.calls("oauth2/token") == 1);

    // The helpers hand out the same cached token.
    let output = sandbox.cli(
        &[
            "exec",
            "m2m",
            "--",
            "sh",
            "-c",
            "printf %s \"$COGBROKER_TOKEN\"",
        ],
        None,
    )?;
    expect_code(&output, 0)?;
    ensure!(stdout(&output) == token, "exec gave another token");
    let output = sandbox.cli(&["env", "m2m"], None)?;
    expect_code(&output, 0)?;
    ensure!(stdout(&output).contains(&token));
    ensure!(emulator.handle.calls("oauth2/token") == 1);

    // No ID token: the CLI and the API say so.
    let output = sandbox.cli(&["token", "m2m", "--kind", "id"], None)?;
    expect_code(&output, 1)?;
    ensure!(
        stderr(&output).contains("access tokens only"),
        "{}",
        stderr(&output)
    );
    let (status, body) = get(&daemon, "/v1/profiles/m2m/token?kind=id")?;
    ensure!(
        status == 422 && body["error"] == "unsupported",
        "{status} {body}"
    );
    let (status, body) = get(&daemon, "/v1/profiles/m2m")?;
    ensure!(
        status == 200 && body["auth_flow"] == "client_credentials",
        "{body}"
    );

    daemon.terminate()?;
    let (out, err) = daemon.finished_output();
    ensure!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "the secret was logged"
    );
    ensure!(!err.contains(&token), "the token was logged");
    Ok(())
}

#[test]
fn a_refused_client_secret_is_a_config_error_without_a_retry_storm() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[machine("bad", &emulator.endpoint, "BAD_SECRET")],
    )?;
    let mut daemon = sandbox.serve(&[("BAD_SECRET", "wrong-secret-value")])?;
    for _ in 0..5 {
        let output = sandbox.cli(&["token", "bad"], None)?;
        expect_code(&output, 1)?;
        let message = stderr(&output);
        ensure!(message.contains("client_secret"), "{message}");
        ensure!(!message.contains("wrong-secret-value"), "{message}");
    }
    let (status, body) = get(&daemon, "/v1/profiles/bad/token")?;
    ensure!(
        status == 500 && body["error"] == "misconfigured",
        "{status} {body}"
    );
    ensure!(
        emulator.handle.calls("oauth2/token") == 1,
        "{} token calls",
        emulator.handle.calls("oauth2/token")
    );
    let output = sandbox.cli(&["status", "bad"], None)?;
    ensure!(
        stdout(&output).contains("misconfigured"),
        "{}",
        stdout(&output)
    );

    // An explicit refresh tries again, once.
    let output = sandbox.cli(&["refresh", "bad"], None)?;
    expect_code(&output, 1)?;
    ensure!(emulator.handle.calls("oauth2/token") == 2);
    daemon.terminate()?;
    Ok(())
}
