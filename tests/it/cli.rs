//! `cogbroker login` driven from a pseudo-terminal, as a person would: hidden password, a new
//! password typed twice (mismatch and pool policy re-prompts), TOTP codes (a wrong one first),
//! the MFA type menu, and MFA setup with the secret, the otpauth URI and a QR code.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, expect_code};
use expectrl::{Eof, Regex, Session, WaitStatus};

const POOL: &str = "us-east-1_E2eCli";
const SETUP_POOL: &str = "us-east-1_E2eSetup";
const CLIENT: &str = "cli-client";
const SETUP_CLIENT: &str = "cli-setup-client";
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

[[pools]]
id = "{SETUP_POOL}"
mfa = "on"

[[pools.clients]]
id = "{SETUP_CLIENT}"

[[pools.users]]
username = "setup"
password = "{PASSWORD}"
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
        ],
    )?;
    let daemon = sandbox.serve(&[])?;
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
    let output = sandbox.cli(&["token", profile], None)?;
    expect_code(&output, 0)?;
    ensure!(String::from_utf8_lossy(&output.stdout).split('.').count() == 3);
    Ok(())
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
    let right = totp_now(TOTP_SECRET)?;
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    session.send_line(wrong)?;
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
