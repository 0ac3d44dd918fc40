//! `login <p>`: starts a login through the daemon and answers its challenges at the terminal
//! (new password twice, MFA codes, MFA type menu, MFA setup with a QR code, custom challenges,
//! challenge selection). Prompts go to `/dev/tty`; only the final result goes to stdout.

use anyhow::Context as _;
use cognito_auth::flow::AuthFlow;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::session::{human_duration, write_stdout};
use super::terminal::{Terminal, qr_code, read_stdin_line};
use super::{Daemon, Interrupted, LoginArgs};
use crate::client::{ClientError, segment};

/// How many times a mistyped code or a refused new password is asked again before giving up.
const MAX_RETRIES: usize = 5;

/// Runs the whole login conversation.
pub(crate) async fn run(daemon: &Daemon, args: &LoginArgs) -> anyhow::Result<()> {
    let profile = args.profile.as_str();
    // Ask the daemon first: an unreachable daemon or an unknown profile fails before any prompt.
    let status = daemon
        .client
        .get_json(&format!("/v1/profiles/{}", segment(profile)))
        .await
        .with_context(|| format!("logging {profile} in failed"))?;
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

    let start_path = format!("/v1/profiles/{}/login", segment(profile));
    let (mut started, mut interrupted) = complete(
        &mut interrupt,
        start(daemon, &start_path, password.as_ref()),
    )
    .await;
    if let Err(ClientError::Api { code, message, .. }) = &started {
        if !interrupted && password.is_none() && code == "bad_input" && message.contains("password")
        {
            // No password source after all: ask for it and start again.
            password = Some(ask_password(&mut terminal, daemon, profile)?);
            (started, interrupted) = complete(
                &mut interrupt,
                start(daemon, &start_path, password.as_ref()),
            )
            .await;
        }
    }
    let mut reply = started
        .map_err(|error| error.with_credentials_hint(profile))
        .with_context(|| format!("starting the login of {profile} failed"))?;
    if interrupted {
        if let Some(login_id) = reply.get("login_id").and_then(Value::as_str) {
            cancel(daemon, login_id).await;
        }
        return Err(
            anyhow::Error::new(Interrupted).context(format!("the login of {profile} failed"))
        );
    }

    loop {
        match reply.get("status").and_then(Value::as_str) {
            Some("authenticated") => return report_success(profile, &status, &reply),
            Some("challenge") => {}
            other => {
                anyhow::bail!("the daemon answered the login with an unknown status {other:?}")
            }
        }
        let login_id = reply
            .get("login_id")
            .and_then(Value::as_str)
            .context("the daemon's challenge has no login_id")?
            .to_owned();
        let answered = answer_until_accepted(
            daemon,
            &mut terminal,
            &mut interrupt,
            &reply,
            &login_id,
            password.as_ref(),
        )
        .await;
        match answered {
            Ok(next) => reply = next,
            Err(error) => {
                // Leave nothing pending behind, so the next `login` is not refused as "in
                // progress" (best effort: the daemon also expires it).
                cancel(daemon, &login_id).await;
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
    challenge: &Value,
    login_id: &str,
    password: Option<&Zeroizing<String>>,
) -> anyhow::Result<Value> {
    let path = format!("/v1/logins/{}", segment(login_id));
    let mut attempt = 0;
    loop {
        let answer = ask_answer(terminal, challenge, password, attempt == 0)?;
        let (answered, interrupted) =
            complete(interrupt, daemon.client.post_json(&path, answer)).await;
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

/// Builds the JSON answer to one challenge by asking the person.
fn ask_answer(
    terminal: &mut Terminal,
    challenge: &Value,
    password: Option<&Zeroizing<String>>,
    first_time: bool,
) -> anyhow::Result<Value> {
    let name = challenge
        .get("challenge")
        .and_then(Value::as_str)
        .unwrap_or("");
    let details = challenge.get("details").cloned().unwrap_or(Value::Null);
    let message = challenge
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if first_time && !message.is_empty() {
        terminal.say(&sentence(message))?;
    }
    match name {
        "NEW_PASSWORD_REQUIRED" => {
            let new_password = ask_new_password(terminal)?;
            let mut attributes = Map::new();
            for attribute in string_list(&details, "required_attributes") {
                let value = terminal.ask_non_empty(&format!("{attribute}: "))?;
                attributes.insert(attribute, Value::String(value));
            }
            Ok(json!({ "new_password": new_password.as_str(), "attributes": attributes }))
        }
        "SMS_MFA" | "SMS_OTP" | "EMAIL_OTP" | "SOFTWARE_TOKEN_MFA" => {
            if first_time && message.is_empty() {
                terminal.say(&code_origin(name, &details))?;
            }
            let code = terminal.ask_non_empty("Code: ")?;
            Ok(json!({ "code": code }))
        }
        "SELECT_MFA_TYPE" => {
            let options = mfa_options(&details);
            let labels: Vec<String> = options.iter().map(|option| mfa_label(option)).collect();
            let chosen = terminal.choose("Which second factor do you want to use?", &labels)?;
            Ok(json!({ "mfa_type": options[chosen] }))
        }
        "MFA_SETUP" => {
            if first_time {
                show_mfa_setup(terminal, &details)?;
            }
            let code = terminal.ask_non_empty("Code from the authenticator app: ")?;
            Ok(json!({ "code": code }))
        }
        "SELECT_CHALLENGE" => {
            let mut available = string_list(&details, "options");
            if available.is_empty() {
                available = string_list(&details, "available");
            }
            let labels: Vec<String> = available
                .iter()
                .map(|option| challenge_label(option))
                .collect();
            let chosen = terminal.choose("How do you want to sign in?", &labels)?;
            let challenge_name = available[chosen].clone();
            if challenge_name.starts_with("PASSWORD") {
                let secret = match password {
                    Some(password) => password.clone(),
                    None => terminal.ask_secret("Password: ")?,
                };
                Ok(json!({ "challenge": challenge_name, "password": secret.as_str() }))
            } else {
                Ok(json!({ "challenge": challenge_name }))
            }
        }
        "CUSTOM_CHALLENGE" => {
            if first_time {
                if let Some(parameters) = details.get("parameters").and_then(Value::as_object) {
                    for (key, value) in parameters {
                        let shown = value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned);
                        terminal.say(&format!("  {key}: {shown}"))?;
                    }
                }
            }
            let answer = terminal.ask_secret("Answer: ")?;
            Ok(json!({ "answer": answer.as_str() }))
        }
        _ => ask_fields(terminal, challenge),
    }
}

/// A challenge this CLI does not know by name: ask for each field the daemon lists.
fn ask_fields(terminal: &mut Terminal, challenge: &Value) -> anyhow::Result<Value> {
    let fields = string_list(challenge, "fields");
    anyhow::ensure!(
        !fields.is_empty(),
        "the daemon sent a challenge this CLI cannot answer ({})",
        challenge
            .get("challenge")
            .and_then(Value::as_str)
            .unwrap_or("unnamed")
    );
    let mut answer = Map::new();
    for field in fields {
        let prompt = format!("{}: ", field.replace('_', " "));
        let value = if ["password", "answer"]
            .iter()
            .any(|secret| field.contains(secret))
        {
            terminal.ask_secret(&prompt)?.as_str().to_owned()
        } else {
            terminal.ask_non_empty(&prompt)?
        };
        answer.insert(field, Value::String(value));
    }
    Ok(Value::Object(answer))
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
    let _ = daemon
        .client
        .delete(&format!("/v1/logins/{}", segment(login_id)))
        .await;
}

async fn start(
    daemon: &Daemon,
    path: &str,
    password: Option<&Zeroizing<String>>,
) -> Result<Value, ClientError> {
    let body = match password {
        Some(password) => json!({ "password": password.as_str() }),
        None => json!({}),
    };
    daemon.client.post_json(path, body).await
}

/// Whether to ask for the password before starting: not when the profile has a password source,
/// nor for flows that start without one (USER_AUTH asks in SELECT_CHALLENGE, CUSTOM_AUTH without SRP).
fn needs_password(daemon: &Daemon, profile: &str, status: &Value) -> bool {
    let Some(config) = profile_config(daemon, profile) else {
        // Without the configuration (e.g. `--socket` alone), the daemon's status names the flow.
        return !matches!(
            status.get("auth_flow").and_then(Value::as_str),
            Some("USER_AUTH" | "CUSTOM_AUTH")
        );
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

/// `<profile>: logged in as <user>`: the name the user signs in with (the profile's `username`,
/// from the status read before the login), not the internal one Cognito answers with, which is
/// a UUID in pools that sign in by email.
fn report_success(profile: &str, status: &Value, reply: &Value) -> anyhow::Result<()> {
    let username = status
        .get("username")
        .and_then(Value::as_str)
        .or_else(|| reply.get("username").and_then(Value::as_str))
        .map(|username| format!(" as {username}"))
        .unwrap_or_default();
    let expires = reply
        .get("expires_in")
        .and_then(Value::as_u64)
        .map(|seconds| format!("; token valid for {}", human_duration(seconds)))
        .unwrap_or_default();
    write_stdout(&format!("{profile}: logged in{username}{expires}\n"))
}

fn show_mfa_setup(terminal: &mut Terminal, details: &Value) -> anyhow::Result<()> {
    let secret = details
        .get("secret_code")
        .and_then(Value::as_str)
        .context("the MFA setup challenge carries no secret_code")?;
    terminal.say(&format!("Secret key: {secret}"))?;
    if let Some(uri) = details.get("otpauth_uri").and_then(Value::as_str) {
        terminal.say(&format!("URI: {uri}"))?;
        match qr_code(uri) {
            Ok(drawing) => {
                terminal.say("Scan this QR code with the app:")?;
                terminal.say(&drawing)?;
            }
            Err(error) => terminal.say(&format!("(no QR code: {error:#})"))?,
        }
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

fn code_origin(name: &str, details: &Value) -> String {
    let destination = details
        .get("destination")
        .and_then(Value::as_str)
        .map(|destination| format!(" to {destination}"))
        .unwrap_or_default();
    match name {
        "SMS_MFA" | "SMS_OTP" => format!("A code was sent by SMS{destination}."),
        "EMAIL_OTP" => format!("A code was sent by email{destination}."),
        _ => "Enter the code shown by your authenticator app.".to_owned(),
    }
}

fn mfa_options(details: &Value) -> Vec<String> {
    let options = string_list(details, "options");
    if options.is_empty() {
        string_list(details, "mfa_types")
    } else {
        options
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

fn string_list(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_labels() {
        let details = json!({"options": ["SMS_MFA", "SOFTWARE_TOKEN_MFA"]});
        assert_eq!(mfa_options(&details), vec!["SMS_MFA", "SOFTWARE_TOKEN_MFA"]);
        assert_eq!(
            mfa_label("SOFTWARE_TOKEN_MFA"),
            "authenticator app (SOFTWARE_TOKEN_MFA)"
        );
        assert!(
            code_origin("SMS_MFA", &json!({"destination": "+*****1234"})).contains("+*****1234")
        );
        assert_eq!(string_list(&json!({}), "x"), Vec::<String>::new());
        assert_eq!(sentence("choose a new password"), "Choose a new password.");
        assert_eq!(sentence("Done!"), "Done!");
    }
}
