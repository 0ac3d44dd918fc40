//! `login <p>`: starts a login through the daemon and answers its challenges at the terminal
//! (new password twice, MFA codes, MFA type menu, MFA setup with a QR code, custom challenges,
//! challenge selection). Prompts go to `/dev/tty`; only the final result goes to stdout.

use std::collections::BTreeMap;

use anyhow::Context as _;
use cognito_auth::flow::AuthFlow;
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use super::terminal::{Terminal, qr_code, read_stdin_line};
use super::{Daemon, Interrupted, LoginArgs};
use crate::api::challenge::{Authenticated, MfaSetupDetails};
use crate::api::{
    AnswerBody, ChallengeDetails, ChallengeStep, LoginOutcome, LoginRequest, ProfileStatus,
};
use crate::client::ClientError;
use crate::output::{human_duration, write_stdout};

/// How many times a mistyped code or a refused new password is asked again before giving up.
const MAX_RETRIES: usize = 5;

/// Runs the whole login conversation.
pub(crate) async fn run(daemon: &Daemon, args: &LoginArgs) -> anyhow::Result<()> {
    // This process will hold the password and codes: no core dump, no same-uid ptrace or
    // /proc/PID/mem, as for the daemon (security test 25).
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("making the login process non-dumpable failed")?;
    let profile = args.profile.as_str();
    // Ask the daemon first: an unreachable daemon or an unknown profile fails before any prompt.
    let status = daemon
        .client
        .status(profile)
        .await
        .with_context(|| format!("logging {profile} in failed"))?;
    if status.auth_flow == "client_credentials" {
        anyhow::bail!(
            "profile {profile} is a machine client (grant = \"client_credentials\"): it needs no login; `cogbroker token {profile}` fetches a token"
        );
    }
    if args.browser || args.no_browser || status.auth_flow == "authorization_code" {
        let (status, done) = super::browser::run(daemon, args)
            .await
            .with_context(|| format!("the browser login of {profile} failed"))?;
        return report_success(daemon, profile, &status, &done).await;
    }
    // Standard input is read before the Ctrl-C handler exists, so Ctrl-C still stops a person
    // typing there.
    let stdin_password = if args.password_stdin {
        Some(read_stdin_line()?)
    } else {
        None
    };
    // From here Ctrl-C must not kill us half-way: the terminal may be in raw mode and the
    // daemon may hold a pending login that would block the next attempt. Prompts return
    // `Interrupted` instead; requests in flight finish, then the pending login is cancelled.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler failed")?;
    let mut terminal = Terminal::new();
    let mut password: Option<Zeroizing<String>> = match stdin_password {
        Some(password) => Some(password),
        None if needs_password(daemon, profile, &status) => {
            Some(ask_password(&mut terminal, daemon, profile)?)
        }
        None => None,
    };

    let (mut started, mut interrupted) =
        complete(&mut interrupt, start(daemon, profile, password.as_ref())).await;
    if let Err(error) = &started {
        if !interrupted && password.is_none() && error.is_missing_field("password") {
            // No password source after all: ask for it and start again.
            password = Some(ask_password(&mut terminal, daemon, profile)?);
            (started, interrupted) =
                complete(&mut interrupt, start(daemon, profile, password.as_ref())).await;
        }
    }
    let mut reply = started
        .map_err(|error| error.with_credentials_hint(profile))
        .with_context(|| format!("starting the login of {profile} failed"))?;
    if interrupted {
        if let LoginOutcome::Challenge(step) = &reply {
            cancel(daemon, &step.login_id).await;
        }
        return Err(
            anyhow::Error::new(Interrupted).context(format!("the login of {profile} failed"))
        );
    }

    loop {
        let step = match reply {
            LoginOutcome::Authenticated(done) => {
                return report_success(daemon, profile, &status, &done).await;
            }
            LoginOutcome::Challenge(step) => step,
            LoginOutcome::Browser(step) => {
                cancel(daemon, &step.login_id).await;
                anyhow::bail!(
                    "profile {profile} signs in through a browser: run `cogbroker login {profile} --browser` (or --no-browser)"
                );
            }
        };
        let answered = answer_until_accepted(
            daemon,
            &mut terminal,
            &mut interrupt,
            &step,
            password.as_ref(),
        )
        .await;
        match answered {
            Ok(next) => reply = next,
            Err(error) => {
                // Leave nothing pending behind, so the next `login` is not refused as "in
                // progress" (best effort: the daemon also expires it).
                cancel(daemon, &step.login_id).await;
                return Err(error.context(format!("the login of {profile} failed")));
            }
        }
    }
}

/// Answers one challenge, asking again after a mistyped code or a refused new password.
async fn answer_until_accepted(
    daemon: &Daemon,
    terminal: &mut Terminal,
    interrupt: &mut tokio::signal::unix::Signal,
    challenge: &ChallengeStep,
    password: Option<&Zeroizing<String>>,
) -> anyhow::Result<LoginOutcome> {
    let mut attempt = 0;
    loop {
        let answer = ask_answer(terminal, challenge, password, attempt == 0)?;
        let (answered, interrupted) = complete(
            interrupt,
            daemon.client.answer(&challenge.login_id, &answer),
        )
        .await;
        if interrupted {
            return Err(Interrupted.into());
        }
        match answered {
            Ok(reply) => return Ok(reply),
            Err(ClientError::Api { code, message, .. })
                if (code == "code_mismatch" || code == "invalid_password")
                    && attempt < MAX_RETRIES =>
            {
                attempt += 1;
                let what = if code == "code_mismatch" {
                    "that code was not accepted"
                } else {
                    "that password was refused"
                };
                terminal.say(&format!("{what}: {message}"))?;
                terminal.say("Please try again.")?;
            }
            Err(ClientError::Api { code, .. }) if code == "challenge_expired" => {
                anyhow::bail!(
                    "the login took too long and expired at Cognito; run `cogbroker login` again"
                );
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Builds the answer to one challenge by asking the person.
fn ask_answer(
    terminal: &mut Terminal,
    challenge: &ChallengeStep,
    password: Option<&Zeroizing<String>>,
    first_time: bool,
) -> anyhow::Result<AnswerBody> {
    let name = challenge.challenge.as_str();
    let details = &challenge.details;
    let message = challenge.message.trim();
    if first_time && !message.is_empty() {
        terminal.say(&sentence(message))?;
    }
    match (name, details) {
        ("NEW_PASSWORD_REQUIRED", _) => {
            let new_password = ask_new_password(terminal)?;
            let mut attributes = BTreeMap::new();
            if let ChallengeDetails::NewPassword(details) = details {
                for attribute in &details.required_attributes {
                    let value = terminal.ask_non_empty(&format!("{attribute}: "))?;
                    attributes.insert(attribute.clone(), value);
                }
            }
            Ok(AnswerBody::new_password(secret(&new_password), attributes))
        }
        ("SMS_MFA" | "SMS_OTP" | "EMAIL_OTP" | "SOFTWARE_TOKEN_MFA", _) => {
            if first_time && message.is_empty() {
                terminal.say(&code_origin(name, details))?;
            }
            let code = terminal.ask_non_empty("Code: ")?;
            Ok(AnswerBody::code(SecretString::from(code)))
        }
        ("SELECT_MFA_TYPE", ChallengeDetails::Options(details)) if !details.options.is_empty() => {
            let labels: Vec<String> = details.options.iter().map(|o| mfa_label(o)).collect();
            let chosen = terminal.choose("Which second factor do you want to use?", &labels)?;
            Ok(AnswerBody::mfa_type(details.options[chosen].clone()))
        }
        ("MFA_SETUP", ChallengeDetails::MfaSetup(setup)) => {
            if first_time {
                show_mfa_setup(terminal, setup)?;
            }
            let code = terminal.ask_non_empty("Code from the authenticator app: ")?;
            Ok(AnswerBody::code(SecretString::from(code)))
        }
        ("MFA_SETUP", _) => {
            anyhow::bail!("the MFA setup challenge carries no secret_code")
        }
        ("SELECT_CHALLENGE", ChallengeDetails::Options(details)) if !details.options.is_empty() => {
            let labels: Vec<String> = details
                .options
                .iter()
                .map(|option| challenge_label(option))
                .collect();
            let chosen = terminal.choose("How do you want to sign in?", &labels)?;
            let challenge_name = details.options[chosen].clone();
            if challenge_name.starts_with("PASSWORD") {
                let typed = match password {
                    Some(password) => password.clone(),
                    None => terminal.ask_secret("Password: ")?,
                };
                Ok(AnswerBody::select_challenge(
                    challenge_name,
                    Some(secret(&typed)),
                ))
            } else {
                Ok(AnswerBody::select_challenge(challenge_name, None))
            }
        }
        ("CUSTOM_CHALLENGE", _) => {
            if first_time {
                if let ChallengeDetails::Custom(custom) = details {
                    for (key, value) in &custom.parameters {
                        terminal.say(&format!("  {key}: {value}"))?;
                    }
                }
            }
            let answer = terminal.ask_secret("Answer: ")?;
            Ok(AnswerBody::custom(secret(&answer)))
        }
        _ => ask_fields(terminal, challenge),
    }
}

/// A challenge this CLI does not know by name: ask for each field the daemon lists, among the
/// answer fields the API has.
fn ask_fields(terminal: &mut Terminal, challenge: &ChallengeStep) -> anyhow::Result<AnswerBody> {
    let unanswerable = || {
        anyhow::anyhow!(
            "the daemon sent a challenge this CLI cannot answer ({})",
            if challenge.challenge.is_empty() {
                "unnamed"
            } else {
                &challenge.challenge
            }
        )
    };
    if challenge.fields.is_empty() {
        return Err(unanswerable());
    }
    let mut answer = AnswerBody::default();
    for field in &challenge.fields {
        let prompt = format!("{}: ", field.replace('_', " "));
        let slot = match field.as_str() {
            "new_password" => &mut answer.new_password,
            "code" => &mut answer.code,
            "password" => &mut answer.password,
            "answer" => &mut answer.answer,
            "mfa_type" => {
                answer.mfa_type = Some(terminal.ask_non_empty(&prompt)?);
                continue;
            }
            "challenge" => {
                answer.challenge = Some(terminal.ask_non_empty(&prompt)?);
                continue;
            }
            _ => return Err(unanswerable()),
        };
        let value = if ["password", "answer"]
            .iter()
            .any(|secret| field.contains(secret))
        {
            secret(&terminal.ask_secret(&prompt)?)
        } else {
            SecretString::from(terminal.ask_non_empty(&prompt)?)
        };
        *slot = Some(value);
    }
    Ok(answer)
}

/// A typed secret as it goes into a request body.
fn secret(text: &Zeroizing<String>) -> SecretString {
    SecretString::from(text.as_str().to_owned())
}

fn ask_new_password(terminal: &mut Terminal) -> anyhow::Result<Zeroizing<String>> {
    loop {
        let first = terminal.ask_secret("New password: ")?;
        if first.is_empty() {
            terminal.say("The password cannot be empty.")?;
            continue;
        }
        let second = terminal.ask_secret("Repeat the new password: ")?;
        if *first == *second {
            return Ok(first);
        }
        terminal.say("The two passwords do not match; please type them again.")?;
    }
}

fn ask_password(
    terminal: &mut Terminal,
    daemon: &Daemon,
    profile: &str,
) -> anyhow::Result<Zeroizing<String>> {
    let username = profile_config(daemon, profile)
        .map(|config| format!(" for {}", config.username))
        .unwrap_or_default();
    loop {
        let password = terminal.ask_secret(&format!("Password{username} ({profile}): "))?;
        if !password.is_empty() {
            return Ok(password);
        }
    }
}

/// Runs `request` to completion even if Ctrl-C arrives meanwhile (so the daemon's state is
/// known afterwards), and says whether it did.
async fn complete<T>(
    interrupt: &mut tokio::signal::unix::Signal,
    request: impl Future<Output = T>,
) -> (T, bool) {
    let mut request = std::pin::pin!(request);
    let mut interrupted = false;
    loop {
        tokio::select! {
            outcome = &mut request => return (outcome, interrupted),
            _ = interrupt.recv(), if !interrupted => interrupted = true,
        }
    }
}

/// Cancels a pending login, ignoring failures (it may already be gone).
async fn cancel(daemon: &Daemon, login_id: &str) {
    let _ = daemon.client.cancel(login_id).await;
}

async fn start(
    daemon: &Daemon,
    profile: &str,
    password: Option<&Zeroizing<String>>,
) -> Result<LoginOutcome, ClientError> {
    let body = LoginRequest {
        password: password.map(secret),
    };
    daemon.client.login(profile, &body).await
}

/// Whether to ask for the password before starting: not when the profile has a password source,
/// nor for flows that start without one (USER_AUTH asks in SELECT_CHALLENGE, CUSTOM_AUTH without SRP).
fn needs_password(daemon: &Daemon, profile: &str, status: &ProfileStatus) -> bool {
    let Some(config) = profile_config(daemon, profile) else {
        // Without the configuration (e.g. `--socket` alone), the daemon's status names the flow.
        return !matches!(status.auth_flow.as_str(), "USER_AUTH" | "CUSTOM_AUTH");
    };
    if config.password.is_some() {
        return false;
    }
    match &config.auth_flow {
        AuthFlow::UserAuth { preferred } => preferred
            .as_deref()
            .is_some_and(|preferred| preferred.starts_with("PASSWORD")),
        AuthFlow::Custom { srp_first } => *srp_first,
        _ => true,
    }
}

fn profile_config<'a>(
    daemon: &'a Daemon,
    profile: &str,
) -> Option<&'a crate::config::ProfileConfig> {
    daemon
        .config
        .as_ref()?
        .profiles
        .iter()
        .find(|(name, _)| name.as_str() == profile)
        .map(|(_, config)| config)
}

/// `<profile>: logged in as <user>; token valid for <time>`: the name the user signs in with
/// (the profile's `username`, from the status read before the login), not the internal one
/// Cognito answers with, which is a UUID in pools that sign in by email; and how long the new
/// token lives, as the daemon counts it (its status after the login: the outcome carries the
/// absolute expiry only, and the daemon's clock is the one that counts).
async fn report_success(
    daemon: &Daemon,
    profile: &str,
    status: &ProfileStatus,
    done: &Authenticated,
) -> anyhow::Result<()> {
    let username = status
        .username
        .as_deref()
        .or(done.username.as_deref())
        .map(|username| format!(" as {username}"))
        .unwrap_or_default();
    // Only decoration: the login has succeeded, so a failed status read leaves it out.
    let expires_in = daemon
        .client
        .status(profile)
        .await
        .ok()
        .and_then(|after| after.expires_in);
    write_stdout(&success_line(profile, &username, expires_in))
}

fn success_line(profile: &str, username: &str, expires_in: Option<u64>) -> String {
    let expires = expires_in
        .map(|seconds| format!("; token valid for {}", human_duration(seconds)))
        .unwrap_or_default();
    format!("{profile}: logged in{username}{expires}\n")
}

fn show_mfa_setup(terminal: &mut Terminal, setup: &MfaSetupDetails) -> anyhow::Result<()> {
    terminal.say(&format!(
        "Secret key: {}",
        setup.secret_code.expose_secret()
    ))?;
    let uri = setup.otpauth_uri.expose_secret();
    terminal.say(&format!("URI: {uri}"))?;
    match qr_code(uri) {
        Ok(drawing) => {
            terminal.say("Scan this QR code with the app:")?;
            terminal.say(&drawing)?;
        }
        Err(error) => terminal.say(&format!("(no QR code: {error:#})"))?,
    }
    Ok(())
}

/// The daemon's messages are lowercase clauses; show them as sentences.
fn sentence(message: &str) -> String {
    let mut characters = message.chars();
    let mut text: String = match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    };
    if !text.ends_with(['.', '!', '?', ':']) {
        text.push('.');
    }
    text
}

fn code_origin(name: &str, details: &ChallengeDetails) -> String {
    let destination = match details {
        ChallengeDetails::Destination(details) => details
            .destination
            .as_deref()
            .map(|destination| format!(" to {destination}"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    match name {
        "SMS_MFA" | "SMS_OTP" => format!("A code was sent by SMS{destination}."),
        "EMAIL_OTP" => format!("A code was sent by email{destination}."),
        _ => "Enter the code shown by your authenticator app.".to_owned(),
    }
}

fn mfa_label(option: &str) -> String {
    let human = match option {
        "SOFTWARE_TOKEN_MFA" => "authenticator app",
        "SMS_MFA" => "text message (SMS)",
        "EMAIL_OTP" => "email",
        other => other,
    };
    format!("{human} ({option})")
}

fn challenge_label(option: &str) -> String {
    let human = match option {
        "PASSWORD" => "password",
        "PASSWORD_SRP" => "password (SRP, not sent over the network)",
        "EMAIL_OTP" => "one-time code by email",
        "SMS_OTP" => "one-time code by SMS",
        "WEB_AUTHN" => "passkey (not supported on the command line)",
        other => other,
    };
    format!("{human} ({option})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::challenge::DestinationDetails;

    #[test]
    fn lists_and_labels() {
        assert_eq!(
            mfa_label("SOFTWARE_TOKEN_MFA"),
            "authenticator app (SOFTWARE_TOKEN_MFA)"
        );
        let destination = ChallengeDetails::Destination(DestinationDetails {
            destination: Some("+*****1234".to_owned()),
        });
        assert!(code_origin("SMS_MFA", &destination).contains("+*****1234"));
        assert_eq!(sentence("choose a new password"), "Choose a new password.");
        assert_eq!(sentence("Done!"), "Done!");
    }

    #[test]
    fn the_success_line_says_how_long_the_token_lives() {
        assert_eq!(
            success_line("dev", " as alice", Some(3599)),
            "dev: logged in as alice; token valid for 59m59s\n"
        );
        assert_eq!(success_line("dev", "", None), "dev: logged in\n");
    }
}
