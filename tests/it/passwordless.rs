//! Passwordless first factors through the daemon (design.md §14): USER_AUTH with
//! `preferred_challenge = "EMAIL_OTP"` or `"SMS_OTP"`, no password anywhere, the one-time code
//! read from the emulator's sent messages; a wrong code keeps the login pending.

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, api};
use serde_json::{Value, json};

const POOL: &str = "us-east-1_E2ePwless";

fn call(daemon: &DaemonProcess, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(api(&reqwest::Client::new(), daemon, path, body))
}

#[test]
fn email_and_sms_codes_log_in_without_a_password() -> anyhow::Result<()> {
    let emulator = EmulatorHost::start(&format!(
        r#"[[pools]]
id = "{POOL}"

[[pools.clients]]
id = "pwless"

[[pools.users]]
username = "uma"
password = "Uma-Passw0rd!-unused"
email = "uma@example.com"
phone_number = "+15555550199"
"#
    ))?;
    let profile = |name: &str, factor: &str| {
        let mut spec = ProfileSpec::new(name, POOL, "pwless", "uma");
        spec.extra = format!("auth_flow = \"USER_AUTH\"\npreferred_challenge = \"{factor}\"\n");
        spec
    };
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[profile("email", "EMAIL_OTP"), profile("sms", "SMS_OTP")],
    )?;
    let mut daemon = sandbox.serve(&[])?;
    for (name, challenge) in [("email", "EMAIL_OTP"), ("sms", "SMS_OTP")] {
        let (status, reply) = call(
            &daemon,
            &format!("/v1/profiles/{name}/login"),
            Some(json!({})),
        )?;
        ensure!(status == 200 && reply["status"] == "challenge", "{reply}");
        ensure!(reply["challenge"] == challenge, "{reply}");
        let login_id = reply["login_id"].as_str().context("login_id")?.to_owned();
        let code = emulator
            .handle
            .last_code("uma")
            .context("a code was sent")?;

        // A wrong code: refused, and the same login may be answered again.
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let (status, reply) = call(
            &daemon,
            &format!("/v1/logins/{login_id}"),
            Some(json!({"code": wrong})),
        )?;
        ensure!(
            status == 422 && reply["error"] == "code_mismatch",
            "{status} {reply}"
        );
        let (status, reply) = call(
            &daemon,
            &format!("/v1/logins/{login_id}"),
            Some(json!({"code": code})),
        )?;
        ensure!(
            status == 200 && reply["status"] == "authenticated",
            "{status} {reply}"
        );
        let (status, token) = call(&daemon, &format!("/v1/profiles/{name}/token?kind=id"), None)?;
        ensure!(status == 200, "{token}");
        let claims =
            cognito_auth::tokens::decode_claims(token["token"].as_str().context("token")?)?;
        ensure!(claims.username.as_deref() == Some("uma"), "{claims:?}");
    }
    ensure!(
        emulator.handle.calls("InitiateAuth") == 2,
        "one InitiateAuth per login"
    );
    daemon.terminate()?;
    Ok(())
}
