//! The sign-in state machine, sans IO: a reply goes in, and out comes the next request to send, a
//! challenge for a person, or the tokens.
//!
//! Nothing here performs IO or reads a clock: `now` and the randomness are arguments. Some steps
//! do SRP math; [`AuthFlow::starts_with_srp`], [`PendingLogin::answer_needs_srp`] and
//! [`Login::reply_needs_srp`] say which, so the async driver ([`crate::authenticator`]) moves
//! only those to a blocking thread.
//!
//! [`RefreshPlan`] decides the refresh: which call, when to fall back, which verdict stands.

mod context;
mod device;
mod login;
mod params;
mod pending;
mod refresh;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use context::Login;
pub(crate) use device::confirm_device_request;
pub use device::new_device;
pub use pending::PendingLogin;
pub use refresh::{RefreshCall, RefreshPlan, RefreshStep};

use crate::error::Error;
use crate::secret::{DevicePassword, OneTimeCode, Password, RefreshToken, TotpSecret};
use crate::tokens::TokenSet;
use crate::wire::{
    AssociateSoftwareTokenRequest, AssociateSoftwareTokenResponse, AuthResponse,
    ConfirmDeviceRequest, ConfirmDeviceResponse, InitiateAuthRequest,
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
    /// Whether the InitiateAuth of this flow carries an SRP_A (SRP math to compute).
    pub fn starts_with_srp(&self) -> bool {
        match self {
            AuthFlow::UserSrp => true,
            AuthFlow::UserPassword => false,
            AuthFlow::UserAuth { preferred } => preferred
                .as_deref()
                .is_some_and(|name| name.trim().eq_ignore_ascii_case("PASSWORD_SRP")),
            AuthFlow::Custom { srp_first } => *srp_first,
        }
    }

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

#[cfg(test)]
mod tests;
