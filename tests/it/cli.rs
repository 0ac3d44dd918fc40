//! `cogbroker login` driven from a pseudo-terminal, as a person would: hidden password, a new
//! password typed twice (mismatch and pool policy re-prompts), TOTP codes (a wrong one first),
//! SMS and email codes, the MFA type menu, MFA setup with the secret, the otpauth URI and a QR
//! code, USER_PASSWORD_AUTH, email-alias sign-in with a confidential client, and a remembered
//! device that skips MFA on the next login. Also SMS and email codes answered over the HTTP API.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, api, expect_code};
use expectrl::{Eof, Regex, Session, WaitStatus};

const POOL: &str = "us-east-1_E2eCli";
const SETUP_POOL: &str = "us-east-1_E2eSetup";
const ALIAS_POOL: &str = "us-east-1_E2eAlias";
const DEVICE_POOL: &str = "us-east-1_E2eDevice";
const CLIENT: &str = "cli-client";
const SETUP_CLIENT: &str = "cli-setup-client";
const ALIAS_CLIENT: &str = "cli-alias-client";
const DEVICE_CLIENT: &str = "cli-device-client";
/// The alias pool's client secret, handed to the daemon in this environment variable.
const ALIAS_SECRET_VAR: &str = "E2E_ALIAS_CLIENT_SECRET";
const ALIAS_SECRET: &str = "AliasClientSecret0123456789abcdefghijklmn";
const ALIAS_EMAIL: &str = "ann@example.com";
const SUE_PHONE: &str = "+15555550142";
const EVE_EMAIL: &str = "eve@example.com";
const PASSWORD: &str = "Cli-Passw0rd!";
const NEW_PASSWORD: &str = "Brand-New-Passw0rd!";
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "{POOL}"
mfa = "optional"

[[pools.clients]]
id = "{CLIENT}"

[[pools.users]]
username = "alice"
password = "{PASSWORD}"
status = "CONFIRMED"

[[pools.users]]
username = "newbie"
password = "{PASSWORD}"
status = "FORCE_CHANGE_PASSWORD"

[[pools.users]]
username = "tina"
password = "{PASSWORD}"
mfa = "totp"
totp_secret = "{TOTP_SECRET}"

[[pools.users]]
username = "sam"
password = "{PASSWORD}"
phone_number = "+15555550100"
mfa = "totp"
totp_secret = "{TOTP_SECRET}"
totp_mfa = true
sms_mfa = true
mfa_preferred = false

[[pools.users]]
username = "carl"
password = "{PASSWORD}"
custom_challenge_answer = "forty-two"

[[pools.users]]
username = "uma"
password = "{PASSWORD}"
email = "uma@example.com"

[[pools.users]]
username = "sue"
password = "{PASSWORD}"
phone_number = "{SUE_PHONE}"
mfa = "sms"

[[pools.users]]
username = "eve"
password = "{PASSWORD}"
email = "{EVE_EMAIL}"
mfa = "email"

[[pools]]
id = "{SETUP_POOL}"
mfa = "on"

[[pools.clients]]
id = "{SETUP_CLIENT}"

[[pools.users]]
username = "setup"
password = "{PASSWORD}"

[[pools]]
id = "{ALIAS_POOL}"
username_attributes = ["email"]

[[pools.clients]]
id = "{ALIAS_CLIENT}"
secret = "{ALIAS_SECRET}"

[[pools.users]]
email = "{ALIAS_EMAIL}"
password = "{PASSWORD}"

[[pools]]
id = "{DEVICE_POOL}"
mfa = "optional"
device_tracking = "always"

[[pools.clients]]
id = "{DEVICE_CLIENT}"

[[pools.users]]
username = "dora"
password = "{PASSWORD}"
mfa = "totp"
totp_secret = "{TOTP_SECRET}"
"#
    )
}

struct Fixture {
    emulator: EmulatorHost,
    sandbox: Sandbox,
    daemon: DaemonProcess,
}

fn fixture() -> anyhow::Result<Fixture> {
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[
            ProfileSpec::new("dev", POOL, CLIENT, "alice"),
            ProfileSpec::new("newbie", POOL, CLIENT, "newbie"),
            ProfileSpec::new("totp", POOL, CLIENT, "tina"),
            ProfileSpec::new("choose", POOL, CLIENT, "sam"),
            ProfileSpec::new("setup", SETUP_POOL, SETUP_CLIENT, "setup"),
            ProfileSpec {
                extra: "auth_flow = \"CUSTOM_AUTH\"".to_owned(),
                ..ProfileSpec::new("custom", POOL, CLIENT, "carl")
            },
            ProfileSpec {
                extra: "auth_flow = \"USER_AUTH\"".to_owned(),
                ..ProfileSpec::new("select", POOL, CLIENT, "uma")
            },
            ProfileSpec {
                extra: "auth_flow = \"USER_PASSWORD_AUTH\"".to_owned(),
                ..ProfileSpec::new("plain", POOL, CLIENT, "alice")
            },
            ProfileSpec::new("sms", POOL, CLIENT, "sue"),
            ProfileSpec::new("email", POOL, CLIENT, "eve"),
            ProfileSpec {
                extra: format!("client_secret = {{ env = \"{ALIAS_SECRET_VAR}\" }}"),
                ..ProfileSpec::new("alias", ALIAS_POOL, ALIAS_CLIENT, ALIAS_EMAIL)
            },
            ProfileSpec {
                extra: "remember_device = true".to_owned(),
                ..ProfileSpec::new("device", DEVICE_POOL, DEVICE_CLIENT, "dora")
            },
        ],
    )?;
    let daemon = sandbox.serve(&[(ALIAS_SECRET_VAR, ALIAS_SECRET)])?;
    Ok(Fixture {
        emulator,
        sandbox,
        daemon,
    })
}

/// `cogbroker login <profile>` on a fresh pseudo-terminal.
fn spawn_login(sandbox: &Sandbox, profile: &str) -> anyhow::Result<Session> {
    let mut command: Command = sandbox.command()?;
    command.args(["login", profile]);
    let mut session = Session::spawn(command).context("spawn the CLI on a pty")?;
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    Ok(session)
}

/// Waits for the end of the session and checks exit code 0 and the success line.
fn finish(session: &mut Session, profile: &str) -> anyhow::Result<()> {
    session.expect(format!("{profile}: logged in").as_str())?;
    session.expect(Eof)?;
    let status = session.get_process().wait()?;
    ensure!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "login exited with {status:?}"
    );
    Ok(())
}

fn totp_now(secret: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    cognito_emulator::totp(secret, now).context("a TOTP code")
}

fn token_works(sandbox: &Sandbox, profile: &str) -> anyhow::Result<()> {
    access_claims(sandbox, profile).map(drop)
}

/// The claims of the access token the daemon serves for `profile` (unverified: for assertions).
fn access_claims(sandbox: &Sandbox, profile: &str) -> anyhow::Result<cognito_auth::Claims> {
    let output = sandbox.cli(&["token", profile], None)?;
    expect_code(&output, 0)?;
    let token = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned();
    ensure!(token.split('.').count() == 3, "not a JWT: {token:?}");
    cognito_auth::tokens::decode_claims(&token).context("decode the access token")
}

/// A code that differs from `right`.
fn wrong_code(right: &str) -> &'static str {
    if right == "123456" {
        "654321"
    } else {
        "123456"
    }
}

/// The last SMS or email code the emulator "sent" to `username`, checking its medium and
/// destination.
fn sent_code(
    emulator: &EmulatorHost,
    username: &str,
    medium: &str,
    destination: &str,
) -> anyhow::Result<String> {
    let message = emulator
        .handle
        .messages()
        .into_iter()
        .rev()
        .find(|message| message.username == username)
        .with_context(|| format!("a code was sent to {username}"))?;
    ensure!(
        message.medium == medium && message.destination == destination,
        "sent by {} to {}",
        message.medium,
        message.destination
    );
    ensure!(emulator.handle.last_code(username).as_deref() == Some(message.code.as_str()));
    Ok(message.code)
}

#[test]
fn password_login_on_a_terminal() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "dev")?;
    session.expect("Password for alice (dev): ")?;
    session.send_line(PASSWORD)?;
    finish(&mut session, "dev")?;
    token_works(&fixture.sandbox, "dev")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn new_password_required_asks_twice_and_shows_the_policy() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "newbie")?;
    session.expect("Password for newbie (newbie): ")?;
    session.send_line(PASSWORD)?;

    // Two different entries: asked again.
    session.expect("New password: ")?;
    session.send_line(NEW_PASSWORD)?;
    session.expect("Repeat the new password: ")?;
    session.send_line("Something-Else-1!")?;
    session.expect("do not match")?;

    // Matching but too weak for the pool: the policy message is shown, asked again.
    session.expect("New password: ")?;
    session.send_line("weak")?;
    session.expect("Repeat the new password: ")?;
    session.send_line("weak")?;
    session.expect("that password was refused")?;
    session.expect("New password: ")?;
    session.send_line(NEW_PASSWORD)?;
    session.expect("Repeat the new password: ")?;
    session.send_line(NEW_PASSWORD)?;
    finish(&mut session, "newbie")?;

    ensure!(
        fixture
            .emulator
            .handle
            .user_status(POOL, "newbie")
            .as_deref()
            == Some("CONFIRMED")
    );
    token_works(&fixture.sandbox, "newbie")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn totp_code_with_a_mistyped_code_first() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "totp")?;
    session.expect("Password for tina (totp): ")?;
    session.send_line(PASSWORD)?;
    session.expect("authenticator app")?;
    session.expect("Code: ")?;
    session.send_line(wrong_code(&totp_now(TOTP_SECRET)?))?;
    session.expect("not accepted")?;
    session.expect("Code: ")?;
    session.send_line(totp_now(TOTP_SECRET)?)?;
    finish(&mut session, "totp")?;
    token_works(&fixture.sandbox, "totp")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn mfa_type_menu_then_code() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "choose")?;
    session.expect("Password for sam (choose): ")?;
    session.send_line(PASSWORD)?;
    let menu = session.expect("Choose 1-")?;
    let menu = String::from_utf8_lossy(menu.before()).into_owned();
    let choice = menu
        .lines()
        .find(|line| line.contains("SOFTWARE_TOKEN_MFA"))
        .and_then(|line| line.trim().split(')').next().map(str::to_owned))
        .with_context(|| format!("the menu offers the authenticator app: {menu}"))?;
    session.send_line(&choice)?;
    session.expect("Code: ")?;
    session.send_line(totp_now(TOTP_SECRET)?)?;
    finish(&mut session, "choose")?;
    token_works(&fixture.sandbox, "choose")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn mfa_setup_shows_secret_uri_and_qr_code() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "setup")?;
    session.expect("Password for setup (setup): ")?;
    session.send_line(PASSWORD)?;
    let secret = session.expect(Regex("Secret key: ([A-Z2-7]+)"))?;
    let secret = String::from_utf8_lossy(secret.get(1).context("the secret")?).into_owned();
    session.expect("otpauth://totp/")?;
    let drawing = session.expect("Code from the authenticator app: ")?;
    let drawing = String::from_utf8_lossy(drawing.before()).into_owned();
    ensure!(
        drawing.contains('▀') || drawing.contains('▄'),
        "a QR code in half blocks:\n{drawing}"
    );
    session.send_line(totp_now(&secret)?)?;
    finish(&mut session, "setup")?;
    token_works(&fixture.sandbox, "setup")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn password_stdin_without_a_terminal() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let output = fixture.sandbox.cli(
        &["login", "dev", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    )?;
    expect_code(&output, 0)?;
    ensure!(!String::from_utf8_lossy(&output.stdout).contains(PASSWORD));
    ensure!(!String::from_utf8_lossy(&output.stderr).contains(PASSWORD));
    token_works(&fixture.sandbox, "dev")?;

    // A wrong password is a plain error, with nothing to retry.
    let output = fixture.sandbox.cli(
        &["login", "dev", "--password-stdin"],
        Some("Wrong-Passw0rd!\n"),
    )?;
    expect_code(&output, 1)?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn custom_challenge_shows_parameters_and_hides_the_answer() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "custom")?;
    // CUSTOM_AUTH without SRP asks no password first.
    session.expect("Answer the custom challenge.")?;
    session.expect("QUESTION: custom challenge")?;
    session.expect("Answer: ")?;
    session.send_line("forty-two")?;
    finish(&mut session, "custom")?;
    token_works(&fixture.sandbox, "custom")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn select_challenge_menu_then_srp_password() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "select")?;
    let menu = session.expect("Choose 1-")?;
    let menu = String::from_utf8_lossy(menu.before()).into_owned();
    ensure!(menu.contains("How do you want to sign in?"), "{menu}");
    ensure!(
        menu.contains("EMAIL_OTP") && !menu.contains("SMS_OTP"),
        "{menu}"
    );
    let choice = menu
        .lines()
        .find(|line| line.contains("(PASSWORD_SRP)"))
        .and_then(|line| line.trim().split(')').next().map(str::to_owned))
        .with_context(|| format!("the menu offers PASSWORD_SRP: {menu}"))?;
    session.send_line(&choice)?;
    session.expect("Password: ")?;
    session.send_line(PASSWORD)?;
    finish(&mut session, "select")?;
    token_works(&fixture.sandbox, "select")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn ctrl_c_at_a_prompt_cancels_the_pending_login() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "totp")?;
    session.expect("Password for tina (totp): ")?;
    session.send_line(PASSWORD)?;
    session.expect("Code: ")?;
    // The prompt is printed just before the CLI switches the terminal to raw mode to read the
    // answer; a Ctrl-C in that gap is a plain SIGINT that the read never sees (pressing it
    // again works). Wait for the switch, which turns echo off, so the test presses it once the
    // answer is being read.
    wait_for_echo_off(&session)?;
    session.send("\x03")?;
    session.expect(Eof)?;
    let status = session.get_process().wait()?;
    ensure!(
        matches!(status, WaitStatus::Exited(_, 130)),
        "Ctrl-C exits 130, got {status:?}"
    );

    // The pending login was cancelled: a new one is not refused as "in progress".
    let mut session = spawn_login(&fixture.sandbox, "totp")?;
    session.expect("Password for tina (totp): ")?;
    session.send_line(PASSWORD)?;
    session.expect("Code: ")?;
    session.send_line(totp_now(TOTP_SECRET)?)?;
    finish(&mut session, "totp")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

/// Waits (bounded) until the program on the terminal has turned echo off, i.e. is reading an
/// answer in raw mode. There is no notification for a termios change, so this checks it
/// between yields of the thread.
fn wait_for_echo_off(session: &Session) -> anyhow::Result<()> {
    let deadline = SystemTime::now() + Duration::from_secs(30);
    while session.get_process().get_echo()? {
        ensure!(
            SystemTime::now() < deadline,
            "the login never started reading its answer"
        );
        std::thread::yield_now();
    }
    Ok(())
}

#[test]
fn user_password_auth_sends_the_password_without_srp() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "plain")?;
    session.expect("Password for alice (plain): ")?;
    session.send_line(PASSWORD)?;
    finish(&mut session, "plain")?;
    token_works(&fixture.sandbox, "plain")?;
    // One InitiateAuth answered with tokens: no PASSWORD_VERIFIER round (that is SRP's).
    let stats = fixture.emulator.handle.stats();
    ensure!(
        stats.count("InitiateAuth", "ok") == 1
            && stats.calls("InitiateAuth") == 1
            && stats.calls("RespondToAuthChallenge") == 0,
        "{:?}",
        serde_json::to_string(&stats)
    );
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn sms_mfa_code_with_a_mistyped_code_first() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "sms")?;
    session.expect("Password for sue (sms): ")?;
    session.send_line(PASSWORD)?;
    // The masked destination: never the whole number.
    let shown = session.expect(Regex("Enter the code sent by SMS to ([^ \r\n]+)"))?;
    let shown = String::from_utf8_lossy(shown.get(1).context("a destination")?)
        .trim_end_matches('.')
        .to_owned();
    ensure!(
        shown.ends_with("0142") && shown != SUE_PHONE,
        "destination {shown:?}"
    );
    session.expect("Code: ")?;
    let code = sent_code(&fixture.emulator, "sue", "SMS", SUE_PHONE)?;
    session.send_line(wrong_code(&code))?;
    session.expect("not accepted")?;
    session.expect("Code: ")?;
    session.send_line(&code)?;
    finish(&mut session, "sms")?;
    token_works(&fixture.sandbox, "sms")?;
    ensure!(
        fixture.emulator.handle.messages().len() == 1,
        "one SMS, not resent"
    );
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn email_otp_mfa_code() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "email")?;
    session.expect("Password for eve (email): ")?;
    session.send_line(PASSWORD)?;
    session.expect("Enter the code sent by email")?;
    session.expect("Code: ")?;
    let code = sent_code(&fixture.emulator, "eve", "EMAIL", EVE_EMAIL)?;
    session.send_line(&code)?;
    finish(&mut session, "email")?;
    token_works(&fixture.sandbox, "email")?;
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn email_alias_with_a_confidential_client() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let mut session = spawn_login(&fixture.sandbox, "alias")?;
    session.expect(format!("Password for {ALIAS_EMAIL} (alias): ").as_str())?;
    session.send_line(PASSWORD)?;
    finish(&mut session, "alias")?;

    // SRP with SECRET_HASH (the emulator verifies both): InitiateAuth, then PASSWORD_VERIFIER.
    let stats = fixture.emulator.handle.stats();
    ensure!(
        stats.count("InitiateAuth", "ok") == 1 && stats.count("RespondToAuthChallenge", "ok") == 1,
        "{:?}",
        serde_json::to_string(&stats)
    );
    // The tokens name the internal username (the sub), not the email used to sign in.
    let internal = fixture
        .emulator
        .handle
        .internal_username(ALIAS_POOL, ALIAS_EMAIL)
        .context("the alias user's internal username")?;
    ensure!(internal != ALIAS_EMAIL);
    let claims = access_claims(&fixture.sandbox, "alias")?;
    ensure!(
        claims.username.as_deref() == Some(internal.as_str()) && claims.sub == internal,
        "{claims:?}"
    );
    // A refresh needs SECRET_HASH over the internal username: it works too.
    let output = fixture.sandbox.cli(&["refresh", "alias"], None)?;
    expect_code(&output, 0)?;
    token_works(&fixture.sandbox, "alias")?;
    ensure!(
        !fixture.daemon.stderr_text().contains(ALIAS_SECRET),
        "the client secret is never logged"
    );
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn remembered_device_skips_mfa_on_the_next_login() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let handle = fixture.emulator.handle.clone();

    // First login: password and TOTP; the device is confirmed and remembered.
    let mut session = spawn_login(&fixture.sandbox, "device")?;
    session.expect("Password for dora (device): ")?;
    session.send_line(PASSWORD)?;
    session.expect("authenticator app")?;
    session.expect("Code: ")?;
    session.send_line(totp_now(TOTP_SECRET)?)?;
    finish(&mut session, "device")?;
    let devices = handle.devices(DEVICE_POOL, "dora");
    ensure!(
        devices.len() == 1 && devices[0].confirmed && devices[0].remembered,
        "{devices:?}"
    );
    let device_key = devices[0].device_key.clone();
    ensure!(handle.calls("ConfirmDevice") == 1);
    let status = fixture.sandbox.cli(&["status", "device", "--json"], None)?;
    expect_code(&status, 0)?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    ensure!(status["device_remembered"] == true, "{status}");

    // Second login (still logged in: `logout` erases the stored device): password only, the
    // device answers DEVICE_SRP_AUTH and DEVICE_PASSWORD_VERIFIER, no code is asked.
    let before = handle.stats();
    let mut session = spawn_login(&fixture.sandbox, "device")?;
    session.expect("Password for dora (device): ")?;
    session.send_line(PASSWORD)?;
    let rest = session.expect("device: logged in")?;
    let rest = String::from_utf8_lossy(rest.before()).into_owned();
    ensure!(
        !rest.contains("Code") && !rest.contains("authenticator"),
        "no MFA prompt: {rest:?}"
    );
    session.expect(Eof)?;
    let exit = session.get_process().wait()?;
    ensure!(matches!(exit, WaitStatus::Exited(_, 0)), "{exit:?}");

    let after = handle.stats();
    let delta = |operation: &str| after.calls(operation) - before.calls(operation);
    // PASSWORD_VERIFIER, DEVICE_SRP_AUTH, DEVICE_PASSWORD_VERIFIER: three answers, all accepted;
    // a fourth would have been SOFTWARE_TOKEN_MFA.
    ensure!(
        delta("InitiateAuth") == 1
            && delta("RespondToAuthChallenge") == 3
            && after.count("RespondToAuthChallenge", "ok")
                - before.count("RespondToAuthChallenge", "ok")
                == 3,
        "before {:?} after {:?}",
        serde_json::to_string(&before),
        serde_json::to_string(&after)
    );
    // The same device, not a new one.
    ensure!(delta("ConfirmDevice") == 0);
    ensure!(handle.devices(DEVICE_POOL, "dora").len() == 1);
    let claims = access_claims(&fixture.sandbox, "device")?;
    ensure!(
        claims.device_key.as_deref() == Some(device_key.as_str()),
        "{claims:?}"
    );
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}

#[test]
fn sms_and_email_codes_through_the_http_api() -> anyhow::Result<()> {
    let mut fixture = fixture()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    for (profile, username, challenge, medium, destination) in [
        ("sms", "sue", "SMS_MFA", "SMS", SUE_PHONE),
        ("email", "eve", "EMAIL_OTP", "EMAIL", EVE_EMAIL),
    ] {
        runtime.block_on(async {
            let daemon = &fixture.daemon;
            let (status, started) = api(
                &client,
                daemon,
                &format!("/v1/profiles/{profile}/login"),
                Some(serde_json::json!({ "password": PASSWORD })),
            )
            .await?;
            ensure!(
                status == 200
                    && started["status"] == "challenge"
                    && started["challenge"] == challenge
                    && started["fields"] == serde_json::json!(["code"]),
                "{started}"
            );
            let shown = started["details"]["destination"]
                .as_str()
                .context("a destination")?;
            ensure!(shown != destination, "masked: {started}");
            let answers = format!(
                "/v1/logins/{}",
                started["login_id"].as_str().context("login_id")?
            );
            let code = sent_code(&fixture.emulator, username, medium, destination)?;

            let (status, refused) = api(
                &client,
                daemon,
                &answers,
                Some(serde_json::json!({ "code": wrong_code(&code) })),
            )
            .await?;
            ensure!(
                status == 422 && refused["error"] == "code_mismatch",
                "{status} {refused}"
            );
            let (status, done) = api(
                &client,
                daemon,
                &answers,
                Some(serde_json::json!({ "code": code })),
            )
            .await?;
            ensure!(
                status == 200 && done["status"] == "authenticated" && done["profile"] == profile,
                "{status} {done}"
            );
            let text = done.to_string();
            ensure!(!text.contains(&code) && !text.contains(PASSWORD), "{text}");

            let (status, token) = api(
                &client,
                daemon,
                &format!("/v1/profiles/{profile}/token"),
                None,
            )
            .await?;
            ensure!(
                status == 200
                    && token["token"]
                        .as_str()
                        .is_some_and(|t| t.split('.').count() == 3),
                "{status} {token}"
            );
            Ok::<_, anyhow::Error>(())
        })?;
    }
    ensure!(fixture.daemon.terminate()?.success());
    Ok(())
}
