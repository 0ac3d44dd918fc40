//! End-to-end proof that `cognito-auth` speaks every Cognito flow exactly, against
//! `cognito-emulator` (which verifies SRP, SECRET_HASH, timestamps and TOTP) over real HTTP.
//!
//! Every test seeds its own emulator on `127.0.0.1:0`. Time never passes by sleeping: the
//! emulator's clock is advanced through its handle and the client's injected clock follows it.

mod custom;
mod devices;
mod faults;
mod mfa;
mod password;
mod raw;
mod refresh;
mod tokens;
mod user_auth;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cognito_auth::authenticator::Authenticator;
use cognito_auth::client::{ClientOptions, CognitoClient};
use cognito_auth::env::{Clock, OsEntropy};
use cognito_auth::error::{Error, ErrorCode, ServiceError};
use cognito_auth::flow::{
    AuthFlow, ChallengeAnswer, DeviceCredentials, DeviceRemembering, LoginRequest, LoginStep,
    LoginSuccess, PendingLogin,
};
use cognito_auth::pool::{AppClient, UserPoolId};
use cognito_auth::secret::{ClientSecret, OneTimeCode, Password};
use cognito_emulator::{Emulator, Handle, RunningEmulator, Seed};

/// The pool every test seeds (each test runs its own emulator, so they never collide).
const POOL_ID: &str = "us-east-1_FlowsPool1";
const REGION: &str = "us-east-1";
/// A client without a secret.
const PUBLIC_CLIENT: &str = "flowspublicclient";
/// A confidential client: SECRET_HASH is required on every InitiateAuth and challenge response.
const SECRET_CLIENT: &str = "flowssecretclient";
const CLIENT_SECRET: &str = "flowsclientsecret0123456789abcdefgh";
/// The seeded users' password; it satisfies Cognito's default policy.
const PASSWORD: &str = "Flows-Passw0rd!";
/// The access-token lifetime of the default clients, in seconds.
const ACCESS_TTL: u64 = 900;

/// A wall clock that can be moved forward together with the emulator's.
#[derive(Debug, Default)]
struct TestClock {
    offset_seconds: AtomicI64,
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        let offset = self.offset_seconds.load(Ordering::SeqCst);
        let magnitude = Duration::from_secs(offset.unsigned_abs());
        if offset >= 0 {
            SystemTime::now() + magnitude
        } else {
            SystemTime::now() - magnitude
        }
    }
}

/// One running emulator plus the client-side pieces pointed at it.
struct Harness {
    emulator: RunningEmulator,
    handle: Handle,
    clock: Arc<TestClock>,
    endpoint: url::Url,
}

impl Harness {
    /// Seeds an emulator from `toml` and starts it on an ephemeral loopback port.
    async fn start(toml: &str) -> Self {
        let seed = Seed::from_toml(toml).expect("the test seed is valid");
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("a literal socket address");
        let emulator = Emulator::start(seed, listen)
            .await
            .expect("the emulator starts");
        let handle = emulator.handle();
        let endpoint =
            url::Url::parse(&emulator.endpoint()).expect("the emulator's endpoint is a url");
        Self {
            emulator,
            handle,
            clock: Arc::new(TestClock::default()),
            endpoint,
        }
    }

    fn client(&self) -> CognitoClient {
        self.client_with(ClientOptions::default())
    }

    fn client_with(&self, options: ClientOptions) -> CognitoClient {
        CognitoClient::new(self.endpoint.clone(), options).expect("a client for the emulator")
    }

    /// An authenticator for `client_id`, with `secret` when the client is confidential.
    fn authenticator(&self, client_id: &str, secret: Option<&str>) -> Authenticator {
        self.authenticator_with(client_id, secret, ClientOptions::default())
    }

    fn authenticator_with(
        &self,
        client_id: &str,
        secret: Option<&str>,
        options: ClientOptions,
    ) -> Authenticator {
        let app = AppClient {
            user_pool_id: pool_id(),
            client_id: client_id.to_owned(),
            client_secret: secret.map(ClientSecret::new),
        };
        let clock: Arc<dyn Clock> = self.clock.clone();
        Authenticator::new(self.client_with(options), app, clock, Arc::new(OsEntropy))
    }

    fn public(&self) -> Authenticator {
        self.authenticator(PUBLIC_CLIENT, None)
    }

    fn confidential(&self) -> Authenticator {
        self.authenticator(SECRET_CLIENT, Some(CLIENT_SECRET))
    }

    /// Moves the emulator's clock and the client's clock forward by the same amount.
    fn advance(&self, seconds: i64) {
        self.handle.advance_clock(seconds);
        self.clock
            .offset_seconds
            .fetch_add(seconds, Ordering::SeqCst);
    }

    /// The current time as both sides see it.
    fn clock_now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The current time as both sides see it, in Unix seconds.
    fn unix_now(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    /// The code the emulator "sent" last to `username` by SMS or email.
    fn last_code(&self, username: &str) -> OneTimeCode {
        let code = self
            .handle
            .last_code(username)
            .unwrap_or_else(|| panic!("the emulator sent no code to {username}"));
        OneTimeCode::new(code)
    }

    /// The current TOTP code for `username`, computed by the emulator from the user's secret.
    fn totp_code(&self, username: &str) -> OneTimeCode {
        let code = self
            .handle
            .totp_code(POOL_ID, username)
            .unwrap_or_else(|| panic!("{username} has no TOTP secret"));
        OneTimeCode::new(code)
    }

    /// Moves to the next TOTP time step, so a fresh code can be used (the emulator refuses a
    /// code it already accepted in the same step, as Cognito does).
    fn next_totp_step(&self) {
        self.advance(30);
    }

    async fn shutdown(self) {
        self.emulator.shutdown().await;
    }
}

fn pool_id() -> UserPoolId {
    UserPoolId::parse(POOL_ID).expect("the test pool id is valid")
}

/// A seed with one pool (`pool_settings` are extra keys of `[[pools]]`), the two default
/// clients and `users` (each a `[[pools.users]]` table, see [`user`]).
fn seed(pool_settings: &str, users: &str) -> String {
    seed_with_clients(pool_settings, &default_clients(""), users)
}

/// The public and the confidential client, with `extra` keys added to both.
fn default_clients(extra: &str) -> String {
    format!(
        r#"
[[pools.clients]]
id = "{PUBLIC_CLIENT}"
access_token_ttl = {ACCESS_TTL}
{extra}

[[pools.clients]]
id = "{SECRET_CLIENT}"
secret = "{CLIENT_SECRET}"
access_token_ttl = {ACCESS_TTL}
{extra}
"#
    )
}

fn seed_with_clients(pool_settings: &str, clients: &str, users: &str) -> String {
    format!(
        r#"
[[pools]]
id = "{POOL_ID}"
{pool_settings}
{clients}
{users}
"#
    )
}

/// A confirmed user with the standard password, an email and `extra` keys.
fn user(username: &str, extra: &str) -> String {
    format!(
        r#"
[[pools.users]]
username = "{username}"
password = "{PASSWORD}"
email = "{username}@example.com"
{extra}
"#
    )
}

/// A confirmed user of a pool with `username_attributes = ["email"]`: the email is the sign-in
/// name and the internal username is the user's `sub`.
fn email_user(email: &str, extra: &str) -> String {
    format!(
        r#"
[[pools.users]]
password = "{PASSWORD}"
email = "{email}"
{extra}
"#
    )
}

/// A login request without a device.
fn login(username: &str, password: Option<&str>, flow: AuthFlow) -> LoginRequest {
    LoginRequest {
        username: username.to_owned(),
        password: password.map(Password::new),
        flow,
        device: None,
        remember_device: DeviceRemembering::DoNotRemember,
        device_name: "cogbroker flows test".to_owned(),
    }
}

fn srp_login(username: &str) -> LoginRequest {
    login(username, Some(PASSWORD), AuthFlow::UserSrp)
}

/// A login request that presents (or asks to remember) a device.
fn device_login(username: &str, device: Option<DeviceCredentials>) -> LoginRequest {
    LoginRequest {
        device,
        remember_device: DeviceRemembering::Remember,
        ..srp_login(username)
    }
}

/// The tokens of a completed login; panics, naming the challenge, if one came instead.
fn authenticated(step: LoginStep) -> LoginSuccess {
    match step {
        LoginStep::Authenticated(success) => *success,
        LoginStep::Challenge(pending) => {
            panic!(
                "expected tokens, got the challenge {}",
                pending.challenge().name()
            )
        }
    }
}

/// The pending challenge; panics if the login completed instead.
fn challenged(step: LoginStep) -> PendingLogin {
    match step {
        LoginStep::Challenge(pending) => *pending,
        LoginStep::Authenticated(_) => panic!("expected a challenge, got tokens"),
    }
}

/// The service error inside `error`; panics on any other kind.
fn service(error: &Error) -> &ServiceError {
    match error {
        Error::Service(service) => service,
        other => panic!("expected an error from the service, got {other:?}"),
    }
}

/// Asserts that `error` is the service error `code` and its message contains `message`.
fn assert_service(error: &Error, code: ErrorCode, message: &str) {
    let service = service(error);
    assert_eq!(service.code, code, "error code of {error:?}");
    assert!(
        service.message.contains(message),
        "expected a message containing {message:?}, got {:?}",
        service.message
    );
}

/// Answers the pending challenge and expects tokens.
async fn answer_for_tokens(
    auth: &Authenticator,
    pending: PendingLogin,
    answer: ChallengeAnswer,
) -> LoginSuccess {
    let name = pending.challenge().name();
    match auth.respond(pending, answer).await {
        Ok(step) => authenticated(step),
        Err(error) => panic!("answering {name} failed: {:?}", error.error),
    }
}

/// Answers the pending challenge and expects another challenge.
async fn answer_for_challenge(
    auth: &Authenticator,
    pending: PendingLogin,
    answer: ChallengeAnswer,
) -> PendingLogin {
    let name = pending.challenge().name();
    match auth.respond(pending, answer).await {
        Ok(step) => challenged(step),
        Err(error) => panic!("answering {name} failed: {:?}", error.error),
    }
}

/// The internal username (the `username` claim) of a login's tokens.
fn internal_username(success: &LoginSuccess) -> String {
    success
        .tokens
        .username()
        .expect("the access token names the user")
        .to_owned()
}
