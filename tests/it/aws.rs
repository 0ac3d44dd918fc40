//! AWS credentials from an identity pool, end to end: the real `cogbroker` against the
//! emulator's identity pools and STS. `aws-credential-process` in both flows (the exact JSON
//! botocore needs), the container-credentials route and its grants, `exec --aws`, GetId asked
//! once across a daemon restart, throttling retried, and a revoked session as exit 4 / 401.
//! The real AWS CLI and boto3 drive the same paths in tests/interop (they need a venv).

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, expect_code};
use cognito_emulator::Fault;
use serde_json::Value;

const POOL: &str = "us-east-1_E2eAws";
const CLIENT: &str = "aws-client";
const USER: &str = "alice";
const PASSWORD: &str = "Aws-Passw0rd!";
const IDENTITY_POOL: &str = "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f";
const BASIC_POOL: &str = "us-east-1:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const ROLE: &str = "arn:aws:iam::123456789012:role/CognitoAuth";

fn seed() -> String {
    format!(
        "[[pools]]\nid = \"{POOL}\"\n\n[[pools.clients]]\nid = \"{CLIENT}\"\n\n\
         [[pools.users]]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n\
         [[identity_pools]]\nid = \"{IDENTITY_POOL}\"\nuser_pool = \"{POOL}\"\nclient_id = \"{CLIENT}\"\n\
         credentials_ttl = 900\nroles = {{ authenticated = \"{ROLE}\" }}\n\n\
         [[identity_pools]]\nid = \"{BASIC_POOL}\"\nuser_pool = \"{POOL}\"\nclient_id = \"{CLIENT}\"\n\
         roles = {{ authenticated = \"{ROLE}\" }}\nallow_basic_flow = true\n"
    )
}

/// An emulator with both identity pools, a daemon with profiles `dev` (enhanced), `classic`
/// (basic) and `plain` (no identity pool), `dev` and `classic` logged in.
struct World {
    emulator: EmulatorHost,
    sandbox: Sandbox,
    daemon: DaemonProcess,
}

impl World {
    fn start() -> anyhow::Result<Self> {
        let emulator = EmulatorHost::start(&seed())?;
        let mut dev = ProfileSpec::new("dev", POOL, CLIENT, USER);
        dev.extra = format!("identity_pool_id = \"{IDENTITY_POOL}\"");
        let mut classic = ProfileSpec::new("classic", POOL, CLIENT, USER);
        classic.extra = format!(
            "identity_pool_id = \"{BASIC_POOL}\"\nidentity_flow = \"basic\"\nrole_arn = \"{ROLE}\""
        );
        let plain = ProfileSpec::new("plain", POOL, CLIENT, USER);
        let sandbox = Sandbox::new(&emulator.endpoint, &[dev, classic, plain])?;
        let daemon = sandbox.serve(&[])?;
        sandbox.login_stdin("dev", PASSWORD)?;
        sandbox.login_stdin("classic", PASSWORD)?;
        Ok(Self {
            emulator,
            sandbox,
            daemon,
        })
    }

    /// `cogbroker aws-credential-process PROFILE`: its exit status, stdout and stderr.
    fn credential_process(&self, profile: &str) -> anyhow::Result<(Option<i32>, String, String)> {
        let output = self
            .sandbox
            .cli(&["aws-credential-process", profile], None)?;
        Ok((
            output.status.code(),
            String::from_utf8(output.stdout)?,
            String::from_utf8(output.stderr)?,
        ))
    }

    fn calls(&self, operation: &str) -> u64 {
        self.emulator.handle.calls(operation)
    }
}

/// Runs a test's async steps on a runtime of their own (the emulator host has its own).
fn block_on(steps: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime for the test's requests")?
        .block_on(steps)
}

/// Checks the `credential_process` document exactly as botocore needs it; returns it.
fn check_credential_process_json(stdout: &str) -> anyhow::Result<Value> {
    ensure!(
        stdout.ends_with('\n') && stdout.trim_end().lines().count() == 1,
        "one JSON document on one line: {stdout:?}"
    );
    let json: Value = serde_json::from_str(stdout).context("stdout is JSON")?;
    let object = json.as_object().context("an object")?;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    ensure!(
        keys == [
            "AccessKeyId",
            "Expiration",
            "SecretAccessKey",
            "SessionToken",
            "Version"
        ],
        "{keys:?}"
    );
    ensure!(
        json["Version"] == 1 && json["Version"].is_u64(),
        "Version is the integer 1"
    );
    let expiration = json["Expiration"]
        .as_str()
        .context("Expiration is a string")?;
    ensure!(
        expiration.len() == 20 && expiration.ends_with('Z') && &expiration[10..11] == "T",
        "Expiration is RFC 3339 UTC with its zone: {expiration}"
    );
    for key in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
        ensure!(
            json[key].as_str().is_some_and(|value| !value.is_empty()),
            "{key} is a non-empty string"
        );
    }
    Ok(json)
}

/// STS GetCallerIdentity at the emulator with these credentials, as an SDK sends it (the
/// emulator reads the key id from the Authorization header and checks the session token).
async fn caller_identity(
    endpoint: &str,
    access_key_id: &str,
    session_token: &str,
) -> anyhow::Result<(u16, String)> {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key_id}/20261202/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0"
            ),
        )
        .header("x-amz-security-token", session_token)
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[test]
fn credential_process_in_both_flows_gives_credentials_sts_accepts() -> anyhow::Result<()> {
    let mut world = World::start()?;
    block_on(steps_credential_process_in_both_flows_gives_credentials_sts_accepts(&mut world))
}

async fn steps_credential_process_in_both_flows_gives_credentials_sts_accepts(
    world: &mut World,
) -> anyhow::Result<()> {
    for profile in ["dev", "classic"] {
        let (code, stdout, stderr) = world.credential_process(profile)?;
        ensure!(code == Some(0), "{profile}: exit {code:?}: {stderr}");
        let json = check_credential_process_json(&stdout)?;
        let (status, body) = caller_identity(
            &world.emulator.endpoint,
            json["AccessKeyId"].as_str().unwrap_or_default(),
            json["SessionToken"].as_str().unwrap_or_default(),
        )
        .await?;
        ensure!(
            status == 200,
            "{profile}: GetCallerIdentity {status}: {body}"
        );
        ensure!(
            body.contains("assumed-role/CognitoAuth/"),
            "{profile}: {body}"
        );
    }
    ensure!(world.calls("GetCredentialsForIdentity") == 1);
    ensure!(world.calls("GetOpenIdToken") == 1);
    ensure!(world.calls("AssumeRoleWithWebIdentity") == 1);

    // A second run is a cache hit of the daemon's.
    let (code, _, _) = world.credential_process("dev")?;
    ensure!(code == Some(0));
    ensure!(world.calls("GetCredentialsForIdentity") == 1);

    // A profile without an identity pool: exit 1, a message naming the key, nothing on stdout.
    let (code, stdout, stderr) = world.credential_process("plain")?;
    ensure!(code == Some(1), "{code:?} {stderr}");
    ensure!(stdout.is_empty(), "{stdout}");
    ensure!(stderr.contains("identity_pool_id"), "{stderr}");
    Ok(())
}

#[test]
fn get_id_is_asked_once_across_a_daemon_restart() -> anyhow::Result<()> {
    let mut world = World::start()?;
    block_on(steps_get_id_is_asked_once_across_a_daemon_restart(
        &mut world,
    ))
}

async fn steps_get_id_is_asked_once_across_a_daemon_restart(
    world: &mut World,
) -> anyhow::Result<()> {
    let (code, _, stderr) = world.credential_process("dev")?;
    ensure!(code == Some(0), "{stderr}");
    world.daemon.terminate()?;
    world.daemon = world.sandbox.serve(&[])?;
    let (code, stdout, stderr) = world.credential_process("dev")?;
    ensure!(code == Some(0), "{stderr}");
    check_credential_process_json(&stdout)?;
    ensure!(world.calls("GetId") == 1, "GetId {}", world.calls("GetId"));
    ensure!(world.calls("GetCredentialsForIdentity") == 2);
    Ok(())
}

#[test]
fn throttled_credentials_are_retried() -> anyhow::Result<()> {
    let mut world = World::start()?;
    block_on(steps_throttled_credentials_are_retried(&mut world))
}

async fn steps_throttled_credentials_are_retried(world: &mut World) -> anyhow::Result<()> {
    world
        .emulator
        .handle
        .inject(Fault::throttle("GetCredentialsForIdentity").times(2));
    let (code, stdout, stderr) = world.credential_process("dev")?;
    ensure!(code == Some(0), "{stderr}");
    check_credential_process_json(&stdout)?;
    let stats = world.emulator.handle.stats();
    ensure!(stats.count("GetCredentialsForIdentity", "TooManyRequestsException") == 2);
    ensure!(stats.count("GetCredentialsForIdentity", "ok") == 1);
    Ok(())
}

#[test]
fn a_revoked_session_is_exit_4_and_401() -> anyhow::Result<()> {
    let mut world = World::start()?;
    block_on(steps_a_revoked_session_is_exit_4_and_401(&mut world))
}

async fn steps_a_revoked_session_is_exit_4_and_401(world: &mut World) -> anyhow::Result<()> {
    let (code, _, stderr) = world.credential_process("dev")?;
    ensure!(code == Some(0), "{stderr}");
    ensure!(world.emulator.handle.global_sign_out(POOL, USER));
    // `refresh` meets the revoked refresh token at once; the session and its AWS credentials
    // go with it.
    let output = world.sandbox.cli(&["refresh", "dev"], None)?;
    expect_code(&output, 4)?;
    let (code, stdout, stderr) = world.credential_process("dev")?;
    ensure!(code == Some(4), "{code:?} {stderr}");
    ensure!(stdout.is_empty(), "{stdout}");
    ensure!(stderr.contains("cogbroker login dev"), "{stderr}");

    let tcp = world.daemon.tcp.context("the TCP listener")?;
    let response = reqwest::Client::new()
        .get(format!("http://{tcp}/v1/profiles/dev/aws-credentials"))
        .header("X-Cogbroker-Request", "1")
        .send()
        .await?;
    ensure!(response.status().as_u16() == 401);
    let body: Value = response.json().await?;
    ensure!(body["error"] == "login_required", "{body}");
    Ok(())
}

#[test]
fn the_container_route_needs_a_live_grant() -> anyhow::Result<()> {
    let mut world = World::start()?;
    block_on(steps_the_container_route_needs_a_live_grant(&mut world))
}

async fn steps_the_container_route_needs_a_live_grant(world: &mut World) -> anyhow::Result<()> {
    let tcp = world.daemon.tcp.context("the TCP listener")?;
    let http = reqwest::Client::new();
    let url = format!("http://{tcp}/v1/profiles/dev/aws-credentials");

    // What an SDK sends without a grant: no custom header, no or a wrong Authorization.
    for authorization in [None, Some("wrong"), Some("")] {
        let mut request = http.get(&url).header("accept", "application/json");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await?;
        ensure!(
            response.status().as_u16() == 401,
            "{authorization:?}: {}",
            response.status()
        );
    }
    // Every other route keeps the 412 rule.
    let response = http
        .get(format!("http://{tcp}/v1/profiles/dev/token"))
        .header("authorization", "wrong")
        .send()
        .await?;
    ensure!(response.status().as_u16() == 412);
    // The other listener checks apply to the AWS route too.
    let response = http
        .get(&url)
        .header("origin", "https://evil.example")
        .send()
        .await?;
    ensure!(response.status().as_u16() == 403);

    // A grant, as `exec --aws` gets one (here over TCP: no pid, so it lives until revoked).
    let (status, grant) = cogbroker_e2e::daemon::api(
        &http,
        &world.daemon,
        "/v1/profiles/dev/aws-grants",
        Some(serde_json::json!({})),
    )
    .await?;
    ensure!(status == 200, "{grant}");
    ensure!(grant["credentials_url"] == url.as_str(), "{grant}");
    let token = grant["token"].as_str().context("a token")?.to_owned();
    let grant_id = grant["grant_id"].as_str().context("an id")?.to_owned();
    let response = http
        .get(&url)
        .header("authorization", &token)
        .header("accept", "application/json")
        .send()
        .await?;
    ensure!(response.status().as_u16() == 200, "{}", response.status());
    let json: Value = response.json().await?;
    for key in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        ensure!(
            json[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {json}"
        );
    }
    ensure!(
        json.get("SessionToken").is_none(),
        "the container format says Token"
    );
    // The grant is dev's only.
    let response = http
        .get(format!("http://{tcp}/v1/profiles/classic/aws-credentials"))
        .header("authorization", &token)
        .send()
        .await?;
    ensure!(response.status().as_u16() == 401);

    let response = http
        .delete(format!(
            "http://{tcp}/v1/profiles/dev/aws-grants/{grant_id}"
        ))
        .header("X-Cogbroker-Request", "1")
        .send()
        .await?;
    ensure!(response.status().as_u16() == 200);
    let response = http
        .get(&url)
        .header("authorization", &token)
        .send()
        .await?;
    ensure!(response.status().as_u16() == 401, "revoked");
    let logs = world.daemon.stderr_text();
    for secret in [
        token.as_str(),
        json["SecretAccessKey"].as_str().unwrap_or("-"),
        json["Token"].as_str().unwrap_or("-"),
    ] {
        ensure!(!logs.contains(secret), "a secret in the daemon's log");
    }
    Ok(())
}

#[test]
fn exec_aws_gives_the_child_a_grant_that_ends_with_it() -> anyhow::Result<()> {
    let mut world = World::start()?;
    block_on(steps_exec_aws_gives_the_child_a_grant_that_ends_with_it(
        &mut world,
    ))
}

async fn steps_exec_aws_gives_the_child_a_grant_that_ends_with_it(
    world: &mut World,
) -> anyhow::Result<()> {
    let out = world.sandbox.dir.path().join("child-env");
    let script = format!(
        "printf '%s\\n%s\\n%s|%s|%s|%s\\n' \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\" \"$AWS_CONTAINER_AUTHORIZATION_TOKEN\" \
         \"${{AWS_ACCESS_KEY_ID-unset}}\" \"${{AWS_PROFILE-unset}}\" \"${{AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE-unset}}\" \
         \"${{COGBROKER_TOKEN:+token}}\" > {}; exit 7",
        out.display()
    );
    let mut command = world.sandbox.command()?;
    command
        .args(["exec", "dev", "--aws", "--", "sh", "-c", &script])
        .env("AWS_ACCESS_KEY_ID", "AKIA-stale")
        .env("AWS_PROFILE", "other")
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/nonexistent");
    let output = cogbroker_e2e::daemon::run_with_stdin(command, None)?;
    expect_code(&output, 7)?;
    let text = std::fs::read_to_string(&out)?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() == 3, "{text}");
    let tcp = world.daemon.tcp.context("the TCP listener")?;
    ensure!(
        lines[0] == format!("http://{tcp}/v1/profiles/dev/aws-credentials"),
        "{}",
        lines[0]
    );
    ensure!(lines[1].len() == 64, "a 64-hex grant");
    ensure!(lines[2] == "unset|unset|unset|token", "{}", lines[2]);
    // The child has exited, and its grant with it.
    let response = reqwest::Client::new()
        .get(lines[0])
        .header("authorization", lines[1])
        .send()
        .await?;
    ensure!(response.status().as_u16() == 401, "{}", response.status());

    // A login needed (`plain` never logged in): exit 4 before the command runs.
    let never = world.sandbox.dir.path().join("never-ran");
    let output = world.sandbox.cli(
        &[
            "exec",
            "plain",
            "--aws",
            "--",
            "touch",
            &never.display().to_string(),
        ],
        None,
    )?;
    expect_code(&output, 4)?;
    ensure!(String::from_utf8_lossy(&output.stderr).contains("cogbroker login plain"));
    ensure!(
        !never.exists(),
        "the command must not run without credentials"
    );
    Ok(())
}

#[test]
fn a_grant_ends_when_the_exec_process_is_killed() -> anyhow::Result<()> {
    let mut world = World::start()?;
    block_on(steps_a_grant_ends_when_the_exec_process_is_killed(
        &mut world,
    ))
}

async fn steps_a_grant_ends_when_the_exec_process_is_killed(
    world: &mut World,
) -> anyhow::Result<()> {
    // The child prints its grant and its pid (`exec sleep` keeps the shell's pid), then waits;
    // reading those lines from the pipe is the event that it runs.
    let script = "printf '%s\\n%s\\n%s\\n' \"$AWS_CONTAINER_CREDENTIALS_FULL_URI\" \"$AWS_CONTAINER_AUTHORIZATION_TOKEN\" $$ && exec sleep 600";
    let mut command = world.sandbox.command()?;
    command
        .args(["exec", "dev", "--aws", "--", "sh", "-c", script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut exec = command.spawn()?;
    let mut stdout = std::io::BufReader::new(exec.stdout.take().context("stdout")?);
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line)?;
        lines.push(line.trim().to_owned());
    }
    let (url, token) = (lines[0].as_str(), lines[1].as_str());
    let child = rustix::process::Pid::from_raw(lines[2].parse()?).context("the child's pid")?;
    let http = reqwest::Client::new();
    let live = http.get(url).header("authorization", token).send().await?;
    ensure!(live.status().as_u16() == 200, "{}", live.status());

    // `cogbroker exec` dies without a chance to revoke; its child lives on.
    exec.kill()?;
    exec.wait()?;
    // The task sweeps grants of ended processes on its tick and before any grant command: a
    // revoke of an unknown grant is answered after the sweep.
    let tcp = world.daemon.tcp.context("the TCP listener")?;
    let response = http
        .delete(format!(
            "http://{tcp}/v1/profiles/dev/aws-grants/00000000000000000000000000000000"
        ))
        .header("X-Cogbroker-Request", "1")
        .send()
        .await?;
    ensure!(response.status().as_u16() == 404);
    let dead = http.get(url).header("authorization", token).send().await?;
    let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
    ensure!(dead.status().as_u16() == 401, "{}", dead.status());
    Ok(())
}
