//! The sign-in state machine, sans IO: a reply goes in, and out comes the next request to send, a
//! challenge for a person, or the tokens.
//!
//! Nothing here performs IO or reads a clock: `now` and the randomness are arguments. The SRP
//! math runs inside these calls, so the async driver ([`crate::authenticator`]) calls them on a
//! blocking thread.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::env::Entropy;
use crate::error::{Error, ErrorCode};
use crate::pool::AppClient;
use crate::secret::{
    AccessToken, DevicePassword, OneTimeCode, Password, RefreshToken, SessionToken, TotpSecret,
};
use crate::srp::{self, ServerChallenge, SrpEphemeral, SrpIdentity};
use crate::tokens::TokenSet;
use crate::wire::{
    AssociateSoftwareTokenRequest, AssociateSoftwareTokenResponse, AuthResponse,
    AuthenticationResult, ConfirmDeviceRequest, ConfirmDeviceResponse, DeviceRememberedStatus,
    DeviceSecretVerifierConfig, InitiateAuthRequest, NewDeviceMetadata, Parameters,
    RespondToAuthChallengeRequest, UpdateDeviceStatusRequest, VerifySoftwareTokenRequest,
    VerifySoftwareTokenResponse,
};

/// How a sign-in starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFlow {
    /// `USER_SRP_AUTH`: the password never leaves the machine.
    UserSrp,
    /// `USER_PASSWORD_AUTH`: the password is sent (over TLS).
    UserPassword,
    /// `USER_AUTH`: choice-based. With a preference (`PASSWORD`, `PASSWORD_SRP`, `EMAIL_OTP`,
    /// `SMS_OTP`) that factor is asked for directly; without one the server offers a choice.
    UserAuth {
        /// `PREFERRED_CHALLENGE`.
        preferred: Option<String>,
    },
    /// `CUSTOM_AUTH`, optionally verifying the password by SRP first.
    Custom {
        /// Send `CHALLENGE_NAME=SRP_A` and `SRP_A` so PASSWORD_VERIFIER comes first.
        srp_first: bool,
    },
}

impl AuthFlow {
    /// The `AuthFlow` wire value.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthFlow::UserSrp => "USER_SRP_AUTH",
            AuthFlow::UserPassword => "USER_PASSWORD_AUTH",
            AuthFlow::UserAuth { .. } => "USER_AUTH",
            AuthFlow::Custom { .. } => "CUSTOM_AUTH",
        }
    }
}

impl fmt::Display for AuthFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuthFlow {
    type Err = Error;

    /// Accepts the wire names `USER_SRP_AUTH`, `USER_PASSWORD_AUTH`, `USER_AUTH` and
    /// `CUSTOM_AUTH` (case-insensitive; no preference, no SRP first).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "USER_SRP_AUTH" => Ok(AuthFlow::UserSrp),
            "USER_PASSWORD_AUTH" => Ok(AuthFlow::UserPassword),
            "USER_AUTH" => Ok(AuthFlow::UserAuth { preferred: None }),
            "CUSTOM_AUTH" => Ok(AuthFlow::Custom { srp_first: false }),
            _ => Err(Error::InvalidInput(format!(
                "unknown auth flow {s:?}; expected USER_SRP_AUTH, USER_PASSWORD_AUTH, USER_AUTH or CUSTOM_AUTH"
            ))),
        }
    }
}

/// A remembered device: what DEVICE_SRP_AUTH needs. The device password is a long-lived secret.
#[derive(Clone)]
pub struct DeviceCredentials {
    /// `<region>_<uuid>`.
    pub device_key: String,
    /// The device group key.
    pub device_group_key: String,
    /// The random password generated at ConfirmDevice time.
    pub device_password: DevicePassword,
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("device_key", &self.device_key)
            .field("device_group_key", &self.device_group_key)
            .field("device_password", &"[REDACTED]")
            .finish()
    }
}

/// Whether a new device should be remembered (skips MFA on later sign-ins where the pool
/// allows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRemembering {
    /// Mark the device `remembered`.
    Remember,
    /// Leave it tracked but `not_remembered`.
    #[default]
    DoNotRemember,
}

/// What a sign-in needs.
#[derive(Clone)]
pub struct LoginRequest {
    /// What the user typed: the username or an alias (email, phone).
    pub username: String,
    /// The password; required by every flow except passwordless USER_AUTH and plain CUSTOM_AUTH.
    pub password: Option<Password>,
    /// How to sign in.
    pub flow: AuthFlow,
    /// A remembered device; its key is sent on every call.
    pub device: Option<DeviceCredentials>,
    /// Whether a device Cognito creates during this sign-in should be remembered.
    pub remember_device: DeviceRemembering,
    /// The friendly name sent with ConfirmDevice (empty: none).
    pub device_name: String,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("flow", &self.flow)
            .field("device", &self.device)
            .field("remember_device", &self.remember_device)
            .field("device_name", &self.device_name)
            .finish()
    }
}

/// Tunables of a sign-in.
#[derive(Debug, Clone)]
pub struct FlowOptions {
    /// How long a challenge may wait for its answer: the app client's `AuthSessionValidity`
    /// (3 minutes by default, at most 15).
    pub session_validity: Duration,
    /// The issuer shown in the TOTP URI of MFA_SETUP.
    pub totp_issuer: String,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            session_validity: Duration::from_secs(180),
            totp_issuer: "AWSCognito".to_owned(),
        }
    }
}

/// Where a sign-in stands after a call.
#[derive(Debug)]
pub enum LoginStep {
    /// Signed in.
    Authenticated(Box<LoginSuccess>),
    /// A person must answer a challenge.
    Challenge(Box<PendingLogin>),
}

/// A finished sign-in.
pub struct LoginSuccess {
    /// The access and ID tokens.
    pub tokens: TokenSet,
    /// The refresh token.
    pub refresh_token: RefreshToken,
    /// The device now valid for refreshes (a new confirmed one, or the one passed in); `None`
    /// when there is none or the stored one was dropped as unknown.
    pub device: Option<DeviceCredentials>,
}

impl fmt::Debug for LoginSuccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginSuccess")
            .field("tokens", &self.tokens)
            .field("refresh_token", &"[REDACTED]")
            .field("device", &self.device)
            .finish()
    }
}

/// A challenge a person must answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Challenge {
    /// A new password is required (an admin-created user on a temporary password).
    NewPasswordRequired {
        /// Attributes that must be given a value, without the `userAttributes.` prefix.
        required_attributes: Vec<String>,
        /// The user's current attributes.
        user_attributes: BTreeMap<String, String>,
    },
    /// A code sent by SMS (MFA).
    SmsMfa {
        /// The masked phone number.
        destination: Option<String>,
    },
    /// A code sent by email (MFA, or passwordless under USER_AUTH).
    EmailOtp {
        /// The masked address.
        destination: Option<String>,
    },
    /// A code sent by SMS (passwordless under USER_AUTH).
    SmsOtp {
        /// The masked phone number.
        destination: Option<String>,
    },
    /// A TOTP code from the user's authenticator.
    SoftwareTokenMfa {
        /// The authenticator's name, if one was given at setup.
        friendly_device_name: Option<String>,
    },
    /// Pick one of several MFA methods.
    SelectMfaType {
        /// The methods offered.
        options: Vec<MfaType>,
    },
    /// Set up TOTP: add the secret to an authenticator, then answer with its current code.
    /// AssociateSoftwareToken has already run.
    MfaSetup {
        /// The base32 secret.
        secret_code: TotpSecret,
        /// `otpauth://totp/<issuer>:<user>?secret=..&issuer=..`, for a QR code.
        otpauth_uri: TotpSecret,
    },
    /// USER_AUTH: pick a first factor.
    SelectChallenge {
        /// `AvailableChallenges`, e.g. `PASSWORD`, `PASSWORD_SRP`, `EMAIL_OTP`, `SMS_OTP`.
        available: Vec<String>,
    },
    /// A custom challenge from the pool's Lambdas.
    CustomChallenge {
        /// The public challenge parameters.
        parameters: BTreeMap<String, String>,
    },
}

impl Challenge {
    /// The wire name, e.g. `SOFTWARE_TOKEN_MFA`.
    pub fn name(&self) -> &'static str {
        match self {
            Challenge::NewPasswordRequired { .. } => "NEW_PASSWORD_REQUIRED",
            Challenge::SmsMfa { .. } => "SMS_MFA",
            Challenge::EmailOtp { .. } => "EMAIL_OTP",
            Challenge::SmsOtp { .. } => "SMS_OTP",
            Challenge::SoftwareTokenMfa { .. } => "SOFTWARE_TOKEN_MFA",
            Challenge::SelectMfaType { .. } => "SELECT_MFA_TYPE",
            Challenge::MfaSetup { .. } => "MFA_SETUP",
            Challenge::SelectChallenge { .. } => "SELECT_CHALLENGE",
            Challenge::CustomChallenge { .. } => "CUSTOM_CHALLENGE",
        }
    }
}

/// An MFA method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MfaType {
    /// `SMS_MFA`.
    Sms,
    /// `SOFTWARE_TOKEN_MFA` (TOTP).
    SoftwareToken,
    /// `EMAIL_OTP`.
    Email,
}

impl MfaType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaType::Sms => "SMS_MFA",
            MfaType::SoftwareToken => "SOFTWARE_TOKEN_MFA",
            MfaType::Email => "EMAIL_OTP",
        }
    }
}

impl fmt::Display for MfaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MfaType {
    type Err = Error;

    /// Accepts the wire names `SMS_MFA`, `SOFTWARE_TOKEN_MFA`, `EMAIL_OTP` (and the model prose's
    /// `EMAIL_MFA`), plus `sms`, `totp` and `email`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "SMS_MFA" | "SMS" => Ok(MfaType::Sms),
            "SOFTWARE_TOKEN_MFA" | "TOTP" | "SOFTWARE_TOKEN" => Ok(MfaType::SoftwareToken),
            "EMAIL_OTP" | "EMAIL_MFA" | "EMAIL" => Ok(MfaType::Email),
            _ => Err(Error::InvalidInput(format!("unknown mfa type {s:?}"))),
        }
    }
}

/// An answer to a [`Challenge`].
#[derive(Clone)]
pub enum ChallengeAnswer {
    /// NEW_PASSWORD_REQUIRED: the new password and values for the required attributes (names
    /// with or without the `userAttributes.` prefix).
    NewPassword {
        /// The new password.
        password: Password,
        /// Attribute values to set.
        attributes: BTreeMap<String, String>,
    },
    /// SMS_MFA, EMAIL_OTP, SMS_OTP, SOFTWARE_TOKEN_MFA, MFA_SETUP: the code.
    Code(OneTimeCode),
    /// SELECT_MFA_TYPE: the chosen method.
    MfaType(MfaType),
    /// SELECT_CHALLENGE: the chosen factor, with the password for `PASSWORD` / `PASSWORD_SRP`
    /// (the login's password is used when absent).
    SelectChallenge {
        /// One of `AvailableChallenges`.
        challenge: String,
        /// The password, when the factor needs one.
        password: Option<Password>,
    },
    /// CUSTOM_CHALLENGE: the answer (treated as a secret).
    CustomAnswer(Password),
}

impl fmt::Debug for ChallengeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChallengeAnswer::NewPassword { attributes, .. } => f
                .debug_struct("NewPassword")
                .field("password", &"[REDACTED]")
                .field("attributes", &attributes.keys().collect::<Vec<_>>())
                .finish(),
            ChallengeAnswer::Code(_) => f.write_str("Code([REDACTED])"),
            ChallengeAnswer::MfaType(kind) => f.debug_tuple("MfaType").field(kind).finish(),
            ChallengeAnswer::SelectChallenge {
                challenge,
                password,
            } => f
                .debug_struct("SelectChallenge")
                .field("challenge", challenge)
                .field("password", &password.as_ref().map(|_| "[REDACTED]"))
                .finish(),
            ChallengeAnswer::CustomAnswer(_) => f.write_str("CustomAnswer([REDACTED])"),
        }
    }
}

/// A sign-in waiting for a person. Consumed by the answer; it expires `session_validity` after
/// the last reply.
pub struct PendingLogin {
    ctx: Context,
    challenge: Challenge,
    expires_at: SystemTime,
}

impl PendingLogin {
    /// The challenge to present.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// When the server's session for this challenge runs out (local clock).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The username as typed at the start.
    pub fn typed_username(&self) -> &str {
        &self.ctx.typed_username
    }

    fn snapshot(&self) -> Box<PendingLogin> {
        Box::new(PendingLogin {
            ctx: self.ctx.clone(),
            challenge: self.challenge.clone(),
            expires_at: self.expires_at,
        })
    }

    /// Builds the request answering this challenge. Errors that consumed nothing (an answer of
    /// the wrong kind, a missing attribute) hand the pending login back for another try.
    pub fn answer(
        self,
        answer: ChallengeAnswer,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<(Login, Request), RespondError> {
        if now >= self.expires_at {
            return Err(RespondError::from(Error::ChallengeExpired));
        }
        match self.build_answer(answer, entropy) {
            Ok(step) => Ok(step),
            Err(error) => {
                let pending = Some(Box::new(self));
                Err(RespondError { error, pending })
            }
        }
    }

    fn build_answer(
        &self,
        answer: ChallengeAnswer,
        entropy: &dyn Entropy,
    ) -> Result<(Login, Request), Error> {
        let mut ctx = self.ctx.clone();
        let code_answer = |key: &str, code: &OneTimeCode| -> Result<Parameters, Error> {
            let code = code.expose_secret().trim();
            if code.is_empty() {
                return Err(Error::InvalidInput("the code is empty".into()));
            }
            let mut responses = ctx.common_responses();
            responses.insert(key, code);
            Ok(responses)
        };
        // `retry`: whether a refusal of this answer hands the challenge back for another try.
        let (name, responses, srp, retry) = match (&self.challenge, answer) {
            (Challenge::SmsMfa { .. }, ChallengeAnswer::Code(code)) => {
                ("SMS_MFA", code_answer("SMS_MFA_CODE", &code)?, None, true)
            }
            (Challenge::EmailOtp { .. }, ChallengeAnswer::Code(code)) => (
                "EMAIL_OTP",
                code_answer("EMAIL_OTP_CODE", &code)?,
                None,
                true,
            ),
            (Challenge::SmsOtp { .. }, ChallengeAnswer::Code(code)) => {
                ("SMS_OTP", code_answer("SMS_OTP_CODE", &code)?, None, true)
            }
            (Challenge::SoftwareTokenMfa { .. }, ChallengeAnswer::Code(code)) => (
                "SOFTWARE_TOKEN_MFA",
                code_answer("SOFTWARE_TOKEN_MFA_CODE", &code)?,
                None,
                true,
            ),
            (Challenge::MfaSetup { .. }, ChallengeAnswer::Code(code)) => {
                let trimmed = code.expose_secret().trim();
                if trimmed.is_empty() {
                    return Err(Error::InvalidInput("the code is empty".into()));
                }
                let request = VerifySoftwareTokenRequest {
                    access_token: None,
                    session: ctx.session.clone(),
                    user_code: OneTimeCode::new(trimmed),
                    friendly_device_name: None,
                };
                let login = Login {
                    ctx,
                    waiting: Waiting::Verify {
                        retry: self.snapshot(),
                    },
                };
                return Ok((login, Request::VerifySoftwareToken(request)));
            }
            (
                Challenge::NewPasswordRequired {
                    required_attributes,
                    user_attributes,
                },
                ChallengeAnswer::NewPassword {
                    password,
                    attributes,
                },
            ) => {
                if password.is_empty() {
                    return Err(Error::InvalidInput("the new password is empty".into()));
                }
                let attributes: BTreeMap<String, String> = attributes
                    .into_iter()
                    .map(|(name, value)| {
                        let name = name
                            .strip_prefix("userAttributes.")
                            .map(str::to_owned)
                            .unwrap_or(name);
                        (name, value)
                    })
                    .collect();
                let missing: Vec<&str> = required_attributes
                    .iter()
                    .filter(|name| {
                        let given = attributes.get(*name).is_some_and(|v| !v.is_empty());
                        let present = user_attributes.get(*name).is_some_and(|v| !v.is_empty());
                        !given && !present
                    })
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "required attributes have no value: {}",
                        missing.join(", ")
                    )));
                }
                let mut responses = ctx.common_responses();
                responses.insert("NEW_PASSWORD", password.expose_secret());
                for (name, value) in &attributes {
                    responses.insert(format!("userAttributes.{name}"), value.as_str());
                }
                ("NEW_PASSWORD_REQUIRED", responses, None, true)
            }
            (Challenge::SelectMfaType { options }, ChallengeAnswer::MfaType(kind)) => {
                if !options.is_empty() && !options.contains(&kind) {
                    return Err(Error::InvalidInput(format!(
                        "{kind} is not one of the offered mfa types"
                    )));
                }
                let mut responses = ctx.common_responses();
                responses.insert("ANSWER", kind.as_str());
                ("SELECT_MFA_TYPE", responses, None, false)
            }
            (
                Challenge::SelectChallenge { available },
                ChallengeAnswer::SelectChallenge {
                    challenge,
                    password,
                },
            ) => {
                let choice = challenge.trim().to_ascii_uppercase();
                if !available.is_empty() && !available.contains(&choice) {
                    return Err(Error::InvalidInput(format!(
                        "{choice} is not one of the offered challenges"
                    )));
                }
                if let Some(password) = password.filter(|p| !p.is_empty()) {
                    ctx.password = Some(password);
                }
                let mut responses = ctx.common_responses();
                responses.insert("ANSWER", choice.as_str());
                let mut srp = None;
                match choice.as_str() {
                    "PASSWORD" => {
                        responses.insert("PASSWORD", ctx.password("PASSWORD")?.expose_secret())
                    }
                    "PASSWORD_SRP" => {
                        ctx.password("PASSWORD_SRP")?;
                        let ephemeral = SrpEphemeral::generate(entropy);
                        responses.insert("SRP_A", ephemeral.public_hex());
                        srp = Some(ephemeral);
                    }
                    "EMAIL_OTP" | "SMS_OTP" => {}
                    "WEB_AUTHN" => return Err(web_authn_unsupported()),
                    other => {
                        return Err(Error::Unsupported(format!(
                            "first factor {other} is not supported"
                        )));
                    }
                }
                ("SELECT_CHALLENGE", responses, srp, false)
            }
            (Challenge::CustomChallenge { .. }, ChallengeAnswer::CustomAnswer(answer)) => {
                let mut responses = ctx.common_responses();
                responses.insert("ANSWER", answer.expose_secret());
                ("CUSTOM_CHALLENGE", responses, None, false)
            }
            (challenge, answer) => {
                return Err(Error::InvalidInput(format!(
                    "{} cannot be answered with {}",
                    challenge.name(),
                    answer_kind(&answer)
                )));
            }
        };
        let request = ctx.respond(name, responses);
        let login = Login {
            ctx,
            waiting: Waiting::Auth {
                srp,
                retry: retry.then(|| self.snapshot()),
            },
        };
        Ok((login, request))
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("challenge", &self.challenge.name())
            .field("username", &self.ctx.typed_username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A failed answer. `pending` is `Some` when another answer to the same challenge makes sense
/// (a wrong code, a password the policy refused, an answer of the wrong kind).
#[derive(Debug)]
pub struct RespondError {
    /// What went wrong.
    pub error: Error,
    /// The sign-in, still waiting, when a retry makes sense.
    pub pending: Option<Box<PendingLogin>>,
}

impl fmt::Display for RespondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for RespondError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Error> for RespondError {
    fn from(error: Error) -> Self {
        RespondError {
            error,
            pending: None,
        }
    }
}

/// A request the state machine wants sent.
#[derive(Debug, Clone)]
pub enum Request {
    /// `InitiateAuth`.
    InitiateAuth(InitiateAuthRequest),
    /// `RespondToAuthChallenge`.
    RespondToAuthChallenge(RespondToAuthChallengeRequest),
    /// `AssociateSoftwareToken` (MFA_SETUP).
    AssociateSoftwareToken(AssociateSoftwareTokenRequest),
    /// `VerifySoftwareToken` (MFA_SETUP).
    VerifySoftwareToken(VerifySoftwareTokenRequest),
    /// `ConfirmDevice` after a sign-in that created a device.
    ConfirmDevice(ConfirmDeviceRequest),
    /// `UpdateDeviceStatus` after ConfirmDevice.
    UpdateDeviceStatus(UpdateDeviceStatusRequest),
}

/// The reply to a [`Request`], of the matching kind.
#[derive(Debug)]
pub enum Reply {
    /// To `InitiateAuth` or `RespondToAuthChallenge`.
    Auth(AuthResponse),
    /// To `AssociateSoftwareToken`.
    AssociateSoftwareToken(AssociateSoftwareTokenResponse),
    /// To `VerifySoftwareToken`.
    VerifySoftwareToken(VerifySoftwareTokenResponse),
    /// To `ConfirmDevice`.
    ConfirmDevice(ConfirmDeviceResponse),
    /// To `UpdateDeviceStatus`.
    UpdateDeviceStatus,
}

/// What to do after a reply.
#[derive(Debug)]
pub enum Next {
    /// Send `request`, then feed its reply to `login`.
    Send {
        /// The state machine, waiting for the reply.
        login: Box<Login>,
        /// The request to send.
        request: Request,
    },
    /// Ask a person.
    Challenge(Box<PendingLogin>),
    /// Signed in.
    Done(Box<LoginSuccess>),
}

/// A sign-in waiting for the reply to the request it emitted.
pub struct Login {
    ctx: Context,
    waiting: Waiting,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = match &self.waiting {
            Waiting::Auth { .. } => "auth",
            Waiting::Associate => "associate_software_token",
            Waiting::Verify { .. } => "verify_software_token",
            Waiting::ConfirmDevice { .. } => "confirm_device",
            Waiting::UpdateDeviceStatus { .. } => "update_device_status",
        };
        f.debug_struct("Login")
            .field("username", &self.ctx.typed_username)
            .field("flow", &self.ctx.flow)
            .field("waiting", &waiting)
            .finish_non_exhaustive()
    }
}

enum Waiting {
    /// For InitiateAuth or RespondToAuthChallenge. `srp` is the ephemeral whose A was sent;
    /// `retry` is the challenge to hand back if the answer is refused in a retryable way.
    Auth {
        srp: Option<SrpEphemeral>,
        retry: Option<Box<PendingLogin>>,
    },
    Associate,
    Verify {
        retry: Box<PendingLogin>,
    },
    ConfirmDevice {
        success: Box<LoginSuccess>,
        device: DeviceCredentials,
    },
    UpdateDeviceStatus {
        success: Box<LoginSuccess>,
    },
}

/// Everything a sign-in carries from call to call.
#[derive(Clone)]
struct Context {
    app: AppClient,
    options: FlowOptions,
    flow: AuthFlow,
    typed_username: String,
    /// The USERNAME to send: the latest challenge's USERNAME, else its USER_ID_FOR_SRP, else
    /// what was typed.
    username: String,
    password: Option<Password>,
    device: Option<DeviceCredentials>,
    remember: DeviceRemembering,
    device_name: String,
    /// The newest session received, if the newest reply had one.
    session: Option<SessionToken>,
    /// The one retry without DEVICE_KEY after "Device does not exist" has been used.
    device_retry_used: bool,
}

impl Login {
    /// Starts a sign-in: returns the machine and the InitiateAuth to send.
    pub fn start(
        app: AppClient,
        request: LoginRequest,
        options: FlowOptions,
        entropy: &dyn Entropy,
    ) -> Result<(Login, Request), Error> {
        let username = request.username.trim().to_owned();
        if username.is_empty() {
            return Err(Error::InvalidInput("the username is empty".into()));
        }
        let ctx = Context {
            app,
            options,
            flow: request.flow,
            typed_username: username.clone(),
            username,
            password: request.password.filter(|password| !password.is_empty()),
            device: request.device,
            remember: request.remember_device,
            device_name: request.device_name,
            session: None,
            device_retry_used: false,
        };
        ctx.initiate(entropy)
    }

    /// Feeds the reply (or the failure) of the request this machine emitted.
    pub fn on_reply(
        self,
        reply: Result<Reply, Error>,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<Next, RespondError> {
        let Login { mut ctx, waiting } = self;
        match (waiting, reply) {
            (Waiting::Auth { srp, .. }, Ok(Reply::Auth(response))) => ctx
                .on_auth(srp, response, now, entropy)
                .map_err(RespondError::from),
            (Waiting::Auth { retry, .. }, Err(error)) => {
                if error.is_unknown_device() && ctx.device.is_some() && !ctx.device_retry_used {
                    tracing::info!(
                        "the stored device is unknown to cognito; signing in again without it"
                    );
                    ctx.device = None;
                    ctx.device_retry_used = true;
                    ctx.session = None;
                    ctx.username = ctx.typed_username.clone();
                    let (login, request) = ctx.initiate(entropy)?;
                    return Ok(Next::Send {
                        login: Box::new(login),
                        request,
                    });
                }
                let pending = retry.filter(|_| retryable(&error));
                Err(RespondError { error, pending })
            }
            (Waiting::Associate, Ok(Reply::AssociateSoftwareToken(response))) => {
                if response.session.is_some() {
                    ctx.session = response.session;
                }
                let secret_code = response.secret_code.ok_or_else(|| {
                    Error::Protocol("AssociateSoftwareToken returned no secret code".into())
                })?;
                let otpauth_uri = TotpSecret::new(otpauth_uri(
                    &ctx.options.totp_issuer,
                    &ctx.typed_username,
                    secret_code.expose_secret(),
                ));
                Ok(ctx.human(
                    Challenge::MfaSetup {
                        secret_code,
                        otpauth_uri,
                    },
                    now,
                ))
            }
            (Waiting::Verify { retry }, Ok(Reply::VerifySoftwareToken(response))) => {
                if response
                    .status
                    .as_deref()
                    .is_some_and(|status| status != "SUCCESS")
                {
                    // Cognito normally raises EnableSoftwareTokenMFAException instead; treat a
                    // plain ERROR status the same way.
                    let error = Error::Service(crate::error::ServiceError {
                        code: ErrorCode::EnableSoftwareTokenMfa,
                        message: "the code was not accepted".into(),
                        status: 200,
                    });
                    return Err(RespondError {
                        error,
                        pending: Some(retry),
                    });
                }
                if response.session.is_some() {
                    ctx.session = response.session;
                }
                let request = ctx.respond("MFA_SETUP", ctx.common_responses());
                Ok(Next::Send {
                    login: Box::new(Login {
                        ctx,
                        waiting: Waiting::Auth {
                            srp: None,
                            retry: None,
                        },
                    }),
                    request,
                })
            }
            (Waiting::Verify { retry }, Err(error)) => {
                let pending = retryable(&error).then_some(retry);
                Err(RespondError { error, pending })
            }
            (
                Waiting::ConfirmDevice {
                    mut success,
                    device,
                },
                Ok(Reply::ConfirmDevice(response)),
            ) => {
                let remember = ctx.remember == DeviceRemembering::Remember;
                let device_key = device.device_key.clone();
                success.device = Some(device);
                if !(response.user_confirmation_necessary || remember) {
                    return Ok(Next::Done(success));
                }
                let status = if remember {
                    DeviceRememberedStatus::Remembered
                } else {
                    DeviceRememberedStatus::NotRemembered
                };
                let request = UpdateDeviceStatusRequest {
                    access_token: success.tokens.access_token().clone(),
                    device_key,
                    device_remembered_status: Some(status),
                };
                Ok(Next::Send {
                    login: Box::new(Login {
                        ctx,
                        waiting: Waiting::UpdateDeviceStatus { success },
                    }),
                    request: Request::UpdateDeviceStatus(request),
                })
            }
            (Waiting::ConfirmDevice { success, .. }, Err(error)) => {
                // The tokens are good; without a confirmed device later refreshes may fail, and
                // the next sign-in will create a new device.
                tracing::warn!(error = %error, "ConfirmDevice failed; continuing without a device");
                Ok(Next::Done(success))
            }
            (Waiting::UpdateDeviceStatus { success }, Ok(Reply::UpdateDeviceStatus)) => {
                Ok(Next::Done(success))
            }
            (Waiting::UpdateDeviceStatus { success }, Err(error)) => {
                // The device is confirmed, so refreshes work; only remembering it failed.
                tracing::warn!(error = %error, "UpdateDeviceStatus failed; the device stays confirmed");
                Ok(Next::Done(success))
            }
            (_, Err(error)) => Err(RespondError::from(error)),
            (_, Ok(_)) => Err(RespondError::from(Error::Protocol(
                "internal: the reply does not match the request".into(),
            ))),
        }
    }
}

/// Errors after which the same challenge may be answered again.
fn retryable(error: &Error) -> bool {
    matches!(
        error.code(),
        Some(
            ErrorCode::CodeMismatch
                | ErrorCode::InvalidPassword
                | ErrorCode::PasswordHistoryPolicyViolation
                | ErrorCode::EnableSoftwareTokenMfa
        )
    )
}

fn web_authn_unsupported() -> Error {
    Error::Unsupported(
        "WEB_AUTHN (passkey) sign-in needs a platform authenticator, which a headless broker does not have; choose another factor or flow".into(),
    )
}

fn answer_kind(answer: &ChallengeAnswer) -> &'static str {
    match answer {
        ChallengeAnswer::NewPassword { .. } => "a new password",
        ChallengeAnswer::Code(_) => "a code",
        ChallengeAnswer::MfaType(_) => "an mfa type",
        ChallengeAnswer::SelectChallenge { .. } => "a challenge choice",
        ChallengeAnswer::CustomAnswer(_) => "a custom answer",
    }
}

impl Context {
    fn secret_hash(&self, username: &str) -> Option<String> {
        self.app
            .client_secret
            .as_ref()
            .map(|secret| srp::secret_hash(secret, username, &self.app.client_id))
    }

    fn password(&self, purpose: &str) -> Result<&Password, Error> {
        self.password
            .as_ref()
            .ok_or_else(|| Error::InvalidInput(format!("{purpose} needs a password")))
    }

    /// USERNAME, SECRET_HASH over it, and DEVICE_KEY: what every challenge response carries.
    fn common_responses(&self) -> Parameters {
        let mut responses = Parameters::new();
        responses.insert("USERNAME", self.username.as_str());
        if let Some(hash) = self.secret_hash(&self.username) {
            responses.insert("SECRET_HASH", hash);
        }
        if let Some(device) = &self.device {
            responses.insert("DEVICE_KEY", device.device_key.as_str());
        }
        responses
    }

    /// The common responses plus an SRP password claim: the answer to PASSWORD_VERIFIER and
    /// DEVICE_PASSWORD_VERIFIER.
    fn claim_responses(&self, claim: srp::PasswordClaim) -> Parameters {
        let mut responses = self.common_responses();
        responses.insert("PASSWORD_CLAIM_SIGNATURE", claim.signature_b64);
        responses.insert("PASSWORD_CLAIM_SECRET_BLOCK", claim.secret_block_b64);
        responses.insert("TIMESTAMP", claim.timestamp);
        responses
    }

    fn respond(&self, challenge_name: &str, responses: Parameters) -> Request {
        Request::RespondToAuthChallenge(RespondToAuthChallengeRequest {
            client_id: self.app.client_id.clone(),
            challenge_name: challenge_name.to_owned(),
            session: self.session.clone(),
            challenge_responses: responses,
            client_metadata: None,
        })
    }

    /// The InitiateAuth that starts (or restarts) this sign-in. Both callers have just set
    /// `username` to what was typed, so the common parameters name the typed username.
    fn initiate(self, entropy: &dyn Entropy) -> Result<(Login, Request), Error> {
        debug_assert_eq!(self.username, self.typed_username);
        let mut parameters = self.common_responses();
        let mut srp = None;
        let mut with_srp = |parameters: &mut Parameters| {
            let ephemeral = SrpEphemeral::generate(entropy);
            parameters.insert("SRP_A", ephemeral.public_hex());
            srp = Some(ephemeral);
        };
        match &self.flow {
            AuthFlow::UserSrp => {
                self.password("USER_SRP_AUTH")?;
                with_srp(&mut parameters);
            }
            AuthFlow::UserPassword => {
                parameters.insert(
                    "PASSWORD",
                    self.password("USER_PASSWORD_AUTH")?.expose_secret(),
                );
            }
            AuthFlow::Custom { srp_first } => {
                if *srp_first {
                    self.password("CUSTOM_AUTH with SRP first")?;
                    parameters.insert("CHALLENGE_NAME", "SRP_A");
                    with_srp(&mut parameters);
                }
            }
            AuthFlow::UserAuth { preferred } => {
                if let Some(preferred) = preferred {
                    let preferred = preferred.trim().to_ascii_uppercase();
                    match preferred.as_str() {
                        "PASSWORD" => {
                            parameters.insert(
                                "PASSWORD",
                                self.password("USER_AUTH with PASSWORD")?.expose_secret(),
                            );
                        }
                        "PASSWORD_SRP" => {
                            self.password("USER_AUTH with PASSWORD_SRP")?;
                            with_srp(&mut parameters);
                        }
                        "EMAIL_OTP" | "SMS_OTP" => {}
                        "WEB_AUTHN" => return Err(web_authn_unsupported()),
                        other => {
                            return Err(Error::InvalidInput(format!(
                                "unknown preferred challenge {other:?}; expected PASSWORD, PASSWORD_SRP, EMAIL_OTP or SMS_OTP"
                            )));
                        }
                    }
                    parameters.insert("PREFERRED_CHALLENGE", preferred);
                }
            }
        }
        let request = InitiateAuthRequest {
            auth_flow: self.flow.as_str().to_owned(),
            client_id: self.app.client_id.clone(),
            auth_parameters: parameters,
            client_metadata: None,
            session: None,
        };
        let login = Login {
            ctx: self,
            waiting: Waiting::Auth { srp, retry: None },
        };
        Ok((login, Request::InitiateAuth(request)))
    }

    fn human(self, challenge: Challenge, now: SystemTime) -> Next {
        let expires_at = now + self.options.session_validity;
        Next::Challenge(Box::new(PendingLogin {
            ctx: self,
            challenge,
            expires_at,
        }))
    }

    fn send(self, request: Request, srp: Option<SrpEphemeral>) -> Next {
        Next::Send {
            login: Box::new(Login {
                ctx: self,
                waiting: Waiting::Auth { srp, retry: None },
            }),
            request,
        }
    }

    /// A reply to InitiateAuth or RespondToAuthChallenge.
    fn on_auth(
        mut self,
        srp: Option<SrpEphemeral>,
        response: AuthResponse,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<Next, Error> {
        // A session is single-use: the newest reply's session (or none) is the one to send next.
        self.session = response.session;
        if let Some(result) = response.authentication_result {
            return self.finish(&result, now, entropy);
        }
        let Some(name) = response.challenge_name.filter(|name| !name.is_empty()) else {
            return Err(Error::Protocol(
                "the reply holds neither a challenge nor tokens".into(),
            ));
        };
        let parameters = response.challenge_parameters;
        if let Some(username) = parameters
            .non_empty("USERNAME")
            .or(parameters.non_empty("USER_ID_FOR_SRP"))
        {
            self.username = username.to_owned();
        }
        tracing::debug!(challenge = %name, "cognito challenge");
        let destination = || {
            parameters
                .non_empty("CODE_DELIVERY_DESTINATION")
                .map(str::to_owned)
        };
        match name.as_str() {
            "PASSWORD_VERIFIER" => {
                let ephemeral = srp.ok_or_else(|| {
                    Error::Protocol("PASSWORD_VERIFIER arrived but no SRP_A was sent".into())
                })?;
                let user_id = parameters
                    .non_empty("USER_ID_FOR_SRP")
                    .or(parameters.non_empty("USERNAME"))
                    .ok_or_else(|| {
                        Error::Protocol("PASSWORD_VERIFIER has no USER_ID_FOR_SRP".into())
                    })?;
                let password = self.password("PASSWORD_VERIFIER")?;
                let claim = srp::password_claim(
                    &ephemeral,
                    &SrpIdentity {
                        realm: self.app.user_pool_id.pool_name(),
                        user_id,
                        password: password.expose_secret(),
                    },
                    &server_challenge(&parameters, "PASSWORD_VERIFIER")?,
                    &srp::cognito_timestamp(now),
                )?;
                let responses = self.claim_responses(claim);
                let request = self.respond("PASSWORD_VERIFIER", responses);
                Ok(self.send(request, None))
            }
            "DEVICE_SRP_AUTH" => {
                if self.device.is_none() {
                    return Err(Error::Protocol(
                        "DEVICE_SRP_AUTH arrived but no device key was sent".into(),
                    ));
                }
                // A fresh a for the device proof, never the user-SRP one.
                let ephemeral = SrpEphemeral::generate(entropy);
                let mut responses = self.common_responses();
                responses.insert("SRP_A", ephemeral.public_hex());
                let request = self.respond("DEVICE_SRP_AUTH", responses);
                Ok(self.send(request, Some(ephemeral)))
            }
            "DEVICE_PASSWORD_VERIFIER" => {
                let ephemeral = srp.ok_or_else(|| {
                    Error::Protocol(
                        "DEVICE_PASSWORD_VERIFIER arrived but no device SRP_A was sent".into(),
                    )
                })?;
                let device = self.device.as_ref().ok_or_else(|| {
                    Error::Protocol(
                        "DEVICE_PASSWORD_VERIFIER arrived but no device key was sent".into(),
                    )
                })?;
                let claim = srp::password_claim(
                    &ephemeral,
                    &SrpIdentity {
                        realm: &device.device_group_key,
                        user_id: &device.device_key,
                        password: device.device_password.expose_secret(),
                    },
                    &server_challenge(&parameters, "DEVICE_PASSWORD_VERIFIER")?,
                    &srp::cognito_timestamp(now),
                )?;
                let responses = self.claim_responses(claim);
                let request = self.respond("DEVICE_PASSWORD_VERIFIER", responses);
                Ok(self.send(request, None))
            }
            // USER_AUTH may name the factor itself; answer it from what we hold.
            "PASSWORD" => {
                let mut responses = self.common_responses();
                responses.insert(
                    "PASSWORD",
                    self.password("the PASSWORD challenge")?.expose_secret(),
                );
                let request = self.respond("PASSWORD", responses);
                Ok(self.send(request, None))
            }
            "PASSWORD_SRP" => {
                self.password("the PASSWORD_SRP challenge")?;
                let ephemeral = SrpEphemeral::generate(entropy);
                let mut responses = self.common_responses();
                responses.insert("SRP_A", ephemeral.public_hex());
                let request = self.respond("PASSWORD_SRP", responses);
                Ok(self.send(request, Some(ephemeral)))
            }
            "NEW_PASSWORD_REQUIRED" => {
                let user_attributes = parse_json_object(parameters.get("userAttributes"))?;
                let required_attributes =
                    parse_json_strings(parameters.get("requiredAttributes"), "requiredAttributes")?
                        .into_iter()
                        .map(|name| {
                            name.strip_prefix("userAttributes.")
                                .map(str::to_owned)
                                .unwrap_or(name)
                        })
                        .collect();
                Ok(self.human(
                    Challenge::NewPasswordRequired {
                        required_attributes,
                        user_attributes,
                    },
                    now,
                ))
            }
            "SMS_MFA" => {
                let destination = destination();
                Ok(self.human(Challenge::SmsMfa { destination }, now))
            }
            "EMAIL_OTP" => {
                let destination = destination();
                Ok(self.human(Challenge::EmailOtp { destination }, now))
            }
            "SMS_OTP" => {
                let destination = destination();
                Ok(self.human(Challenge::SmsOtp { destination }, now))
            }
            "SOFTWARE_TOKEN_MFA" => {
                let friendly_device_name = parameters
                    .non_empty("FRIENDLY_DEVICE_NAME")
                    .map(str::to_owned);
                Ok(self.human(
                    Challenge::SoftwareTokenMfa {
                        friendly_device_name,
                    },
                    now,
                ))
            }
            "SELECT_MFA_TYPE" => {
                let names =
                    parse_json_strings(parameters.get("MFAS_CAN_CHOOSE"), "MFAS_CAN_CHOOSE")?;
                let options: Vec<MfaType> =
                    names.iter().filter_map(|name| name.parse().ok()).collect();
                if options.is_empty() {
                    return Err(Error::Unsupported(format!(
                        "none of the offered mfa types is supported: {}",
                        names.join(", ")
                    )));
                }
                Ok(self.human(Challenge::SelectMfaType { options }, now))
            }
            "MFA_SETUP" => {
                let can_setup =
                    parse_json_strings(parameters.get("MFAS_CAN_SETUP"), "MFAS_CAN_SETUP")?;
                if !can_setup.is_empty()
                    && !can_setup.iter().any(|name| name == "SOFTWARE_TOKEN_MFA")
                {
                    return Err(Error::Unsupported(format!(
                        "mfa setup is supported for an authenticator app (SOFTWARE_TOKEN_MFA) only; the pool offers {}",
                        can_setup.join(", ")
                    )));
                }
                let Some(session) = self.session.clone() else {
                    return Err(Error::Protocol(
                        "MFA_SETUP arrived without a session".into(),
                    ));
                };
                let request = AssociateSoftwareTokenRequest {
                    access_token: None,
                    session: Some(session),
                };
                Ok(Next::Send {
                    login: Box::new(Login {
                        ctx: self,
                        waiting: Waiting::Associate,
                    }),
                    request: Request::AssociateSoftwareToken(request),
                })
            }
            "SELECT_CHALLENGE" => {
                let available = response.available_challenges.unwrap_or_default();
                Ok(self.human(Challenge::SelectChallenge { available }, now))
            }
            "CUSTOM_CHALLENGE" => {
                let parameters = parameters
                    .iter()
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .collect();
                Ok(self.human(Challenge::CustomChallenge { parameters }, now))
            }
            "WEB_AUTHN" => Err(web_authn_unsupported()),
            other => Err(Error::Unsupported(format!(
                "the {other} challenge is not supported"
            ))),
        }
    }

    /// Tokens arrived: confirm a new device if Cognito created one, else done.
    fn finish(
        self,
        result: &AuthenticationResult,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<Next, Error> {
        let tokens = TokenSet::from_result(result, now)?;
        let refresh_token = result
            .refresh_token
            .clone()
            .ok_or_else(|| Error::Protocol("the sign-in result has no refresh token".into()))?;
        let Some(metadata) = &result.new_device_metadata else {
            return Ok(Next::Done(Box::new(LoginSuccess {
                tokens,
                refresh_token,
                device: self.device,
            })));
        };
        let device_name = Some(self.device_name.trim().to_owned()).filter(|name| !name.is_empty());
        let (device, request) =
            confirm_device_request(tokens.access_token(), metadata, device_name, entropy);
        let success = Box::new(LoginSuccess {
            tokens,
            refresh_token,
            device: None,
        });
        Ok(Next::Send {
            login: Box::new(Login {
                ctx: self,
                waiting: Waiting::ConfirmDevice { success, device },
            }),
            request: Request::ConfirmDevice(request),
        })
    }
}

/// Credentials for a device Cognito just created, and the ConfirmDevice call registering it
/// (after a sign-in, and after a refresh).
pub(crate) fn confirm_device_request(
    access_token: &AccessToken,
    metadata: &NewDeviceMetadata,
    device_name: Option<String>,
    entropy: &dyn Entropy,
) -> (DeviceCredentials, ConfirmDeviceRequest) {
    let (device, config) = new_device(&metadata.device_key, &metadata.device_group_key, entropy);
    let request = ConfirmDeviceRequest {
        access_token: access_token.clone(),
        device_key: device.device_key.clone(),
        device_secret_verifier_config: Some(config),
        device_name,
    };
    (device, request)
}

/// A device password and its verifier for a device Cognito just created.
pub fn new_device(
    device_key: &str,
    device_group_key: &str,
    entropy: &dyn Entropy,
) -> (DeviceCredentials, DeviceSecretVerifierConfig) {
    let device_password = srp::generate_device_password(entropy);
    let mut salt = [0_u8; 16];
    entropy.fill(&mut salt);
    let verifier = srp::device_verifier(device_group_key, device_key, &device_password, salt);
    let device = DeviceCredentials {
        device_key: device_key.to_owned(),
        device_group_key: device_group_key.to_owned(),
        device_password,
    };
    let config = DeviceSecretVerifierConfig {
        password_verifier: verifier.password_verifier_b64,
        salt: verifier.salt_b64,
    };
    (device, config)
}

fn server_challenge<'a>(
    parameters: &'a Parameters,
    challenge: &str,
) -> Result<ServerChallenge<'a>, Error> {
    let field = |name: &str| {
        parameters
            .non_empty(name)
            .ok_or_else(|| Error::Protocol(format!("{challenge} has no {name}")))
    };
    Ok(ServerChallenge {
        salt_hex: field("SALT")?,
        srp_b_hex: field("SRP_B")?,
        secret_block_b64: field("SECRET_BLOCK")?,
    })
}

/// A challenge parameter holding a JSON list of strings (`MFAS_CAN_CHOOSE`, ...). Absent or
/// empty means an empty list.
fn parse_json_strings(value: Option<&str>, name: &str) -> Result<Vec<String>, Error> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(Vec::new());
    };
    serde_json::from_str(value)
        .map_err(|_| Error::Protocol(format!("{name} is not a json list of strings")))
}

/// `userAttributes`: a JSON object; non-string values are kept in their JSON form.
fn parse_json_object(value: Option<&str>) -> Result<BTreeMap<String, String>, Error> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value)
        .map_err(|_| Error::Protocol("userAttributes is not a json object".into()))?;
    Ok(object
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect())
}

/// `otpauth://totp/<issuer>:<account>?secret=<secret>&issuer=<issuer>`, percent-encoded.
fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}",
        percent_encode(account),
        percent_encode(secret)
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
