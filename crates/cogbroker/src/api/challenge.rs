//! Logins on the wire: the outcome of a login step (tokens, or a challenge for a person), the
//! challenge details by challenge, and the answer body (design.md §5, "Challenge answers").
//!
//! The broker's challenge presentation (which sentence, which fields, which details a Cognito
//! challenge shows) builds these types; the CLI reads them back.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::secret;

/// The answer to `POST /v1/profiles/{p}/login` and `POST /v1/logins/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginOutcome {
    /// Tokens obtained and the session persisted.
    Authenticated(Authenticated),
    /// A person must answer: `POST /v1/logins/{login_id}`.
    Challenge(ChallengeStep),
    /// A browser login: open `authorize_url`, then answer `POST /v1/logins/{login_id}` with
    /// `{"redirect_url": ...}` (the URL the browser was sent back to).
    Browser(BrowserStep),
}

/// `{"status": "browser", "authorize_url", "login_id"}`. `Debug` hides the login id.
#[derive(Clone, Serialize, Deserialize)]
pub struct BrowserStep {
    /// The `/oauth2/authorize` URL to open (carries the PKCE challenge and `state`, no secret).
    pub authorize_url: String,
    /// The pending login (random, 64 hex characters).
    pub login_id: String,
}

impl fmt::Debug for BrowserStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrowserStep")
            .field("authorize_url", &self.authorize_url)
            .field("login_id", &"[REDACTED]")
            .finish()
    }
}

/// `{"status": "authenticated", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticated {
    /// The profile.
    pub profile: String,
    /// Token expiry, RFC 3339 UTC.
    pub expires_at: String,
    /// The internal username Cognito answered with.
    pub username: Option<String>,
}

/// `{"status": "challenge", ...}`. `Debug` hides the login id and the MFA setup secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct ChallengeStep {
    /// The pending login (random, 64 hex characters).
    pub login_id: String,
    /// Cognito's challenge name, e.g. "SOFTWARE_TOKEN_MFA".
    pub challenge: String,
    /// What to do, for a person (a lowercase clause).
    pub message: String,
    /// The answer fields expected, e.g. ["code"].
    pub fields: Vec<String>,
    /// What the person needs to answer.
    pub details: ChallengeDetails,
}

impl fmt::Debug for ChallengeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeStep")
            .field("login_id", &"[REDACTED]")
            .field("challenge", &self.challenge)
            .field("message", &self.message)
            .field("fields", &self.fields)
            .field("details", &self.details)
            .finish()
    }
}

/// The `details` of a challenge, by challenge. On the wire it is a plain object whose members
/// say which shape it is (the challenge name is beside it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChallengeDetails {
    /// NEW_PASSWORD_REQUIRED.
    NewPassword(NewPasswordDetails),
    /// MFA_SETUP.
    MfaSetup(MfaSetupDetails),
    /// SELECT_MFA_TYPE and SELECT_CHALLENGE: the names to choose from.
    Options(OptionsDetails),
    /// CUSTOM_CHALLENGE.
    Custom(CustomDetails),
    /// SMS_MFA, SMS_OTP, EMAIL_OTP.
    Destination(DestinationDetails),
    /// SOFTWARE_TOKEN_MFA.
    Device(DeviceDetails),
    /// A challenge this version does not know: nothing beyond the `fields`.
    Other(OtherDetails),
}

/// NEW_PASSWORD_REQUIRED: `{"required_attributes": [...], "user_attributes": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPasswordDetails {
    /// Attributes the person must give a value (answer's `attributes`).
    pub required_attributes: Vec<String>,
    /// The user's current attributes.
    pub user_attributes: BTreeMap<String, String>,
}

/// MFA_SETUP: `{"secret_code", "otpauth_uri"}`. The person needs the secret once, to set up
/// their authenticator app; `Debug` never shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaSetupDetails {
    /// The TOTP secret, base32.
    #[serde(with = "secret")]
    pub secret_code: SecretString,
    /// The `otpauth://` URI (holds the secret too).
    #[serde(with = "secret")]
    pub otpauth_uri: SecretString,
}

/// SELECT_MFA_TYPE (`SMS_MFA`, `SOFTWARE_TOKEN_MFA`, `EMAIL_OTP`) and SELECT_CHALLENGE
/// (`PASSWORD`, `PASSWORD_SRP`, `EMAIL_OTP`, ...): `{"options": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsDetails {
    /// The names to choose from.
    pub options: Vec<String>,
}

/// CUSTOM_CHALLENGE: `{"parameters": {...}}`, what the pool's Lambda sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetails {
    /// The public challenge parameters.
    pub parameters: BTreeMap<String, String>,
}

/// SMS_MFA, SMS_OTP, EMAIL_OTP: `{"destination": "+*****1234" | null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationDetails {
    /// Where the code was sent, masked.
    #[serde(deserialize_with = "present")]
    pub destination: Option<String>,
}

/// SOFTWARE_TOKEN_MFA: `{"friendly_device_name": ... | null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDetails {
    /// The authenticator's name, when the person gave one.
    #[serde(deserialize_with = "present")]
    pub friendly_device_name: Option<String>,
}

/// The details of a challenge this version does not know (read as nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherDetails {}

/// A nullable member that must be present (so an empty object is not taken for it).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// The body of `POST /v1/logins/{id}`; which fields a challenge needs is in its `fields`:
/// NEW_PASSWORD_REQUIRED `new_password` (+ `attributes`), the code challenges and MFA_SETUP
/// `code`, SELECT_MFA_TYPE `mfa_type`, SELECT_CHALLENGE `challenge` (+ `password`),
/// CUSTOM_CHALLENGE `answer`. `Debug` hides every secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// NEW_PASSWORD_REQUIRED.
    #[serde(
        default,
        with = "secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub new_password: Option<SecretString>,
    /// NEW_PASSWORD_REQUIRED's required attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// SMS_MFA, SOFTWARE_TOKEN_MFA, EMAIL_OTP, SMS_OTP, MFA_SETUP.
    #[serde(
        default,
        with = "secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<SecretString>,
    /// SELECT_MFA_TYPE: "SMS_MFA", "SOFTWARE_TOKEN_MFA" or "EMAIL_OTP".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_type: Option<String>,
    /// SELECT_CHALLENGE: the chosen challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// SELECT_CHALLENGE with PASSWORD or PASSWORD_SRP.
    #[serde(
        default,
        with = "secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SecretString>,
    /// CUSTOM_CHALLENGE.
    #[serde(
        default,
        with = "secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub answer: Option<SecretString>,
    /// A browser login: the redirect URL (with `code` and `state`).
    #[serde(
        default,
        with = "secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub redirect_url: Option<SecretString>,
}

impl AnswerBody {
    /// A browser login's redirect URL.
    pub fn redirect(url: SecretString) -> Self {
        Self {
            redirect_url: Some(url),
            ..Self::default()
        }
    }

    /// NEW_PASSWORD_REQUIRED.
    pub fn new_password(password: SecretString, attributes: BTreeMap<String, String>) -> Self {
        Self {
            new_password: Some(password),
            attributes,
            ..Self::default()
        }
    }

    /// A one-time code (SMS_MFA, SMS_OTP, EMAIL_OTP, SOFTWARE_TOKEN_MFA, MFA_SETUP).
    pub fn code(code: SecretString) -> Self {
        Self {
            code: Some(code),
            ..Self::default()
        }
    }

    /// SELECT_MFA_TYPE.
    pub fn mfa_type(mfa_type: String) -> Self {
        Self {
            mfa_type: Some(mfa_type),
            ..Self::default()
        }
    }

    /// SELECT_CHALLENGE, with the password for PASSWORD and PASSWORD_SRP.
    pub fn select_challenge(challenge: String, password: Option<SecretString>) -> Self {
        Self {
            challenge: Some(challenge),
            password,
            ..Self::default()
        }
    }

    /// CUSTOM_CHALLENGE.
    pub fn custom(answer: SecretString) -> Self {
        Self {
            answer: Some(answer),
            ..Self::default()
        }
    }
}
