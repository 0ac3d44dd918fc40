//! The v1 HTTP API as types (design.md §5): one set of serde wire types for every request,
//! response and error body, used by the daemon's [`server`](crate::server) and by the CLI's
//! [`client`](crate::client), plus the constants both sides share (the request header, the
//! paths, the longest `min_ttl`).
//!
//! **Invariant:** neither side builds or reads JSON by hand; what one side writes, the other
//! reads with the same type. Secrets on the wire (a token, a password, a code, the MFA setup
//! secret) are [`SecretString`]s: `Debug` never shows them; serialising does, because that is
//! where they go on the wire.

pub mod challenge;
pub mod duration;
pub mod path;

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Which token a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// The access token (default).
    Access,
    /// The ID token.
    Id,
}

impl TokenKind {
    /// "access" or "id".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Id => "id",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "access" => Ok(Self::Access),
            "id" => Ok(Self::Id),
            _ => Err(format!(
                "unknown token kind {s:?}; use \"access\" or \"id\""
            )),
        }
    }
}
pub use challenge::{AnswerBody, ChallengeDetails, ChallengeStep, LoginOutcome};

/// The header every `/v1/*` request must carry (`X-Cogbroker-Request: 1`): a browser cannot
/// send it cross-site without a preflight, and a server-side request forgery rarely can.
pub const REQUEST_HEADER: &str = "x-cogbroker-request";

/// The longest `min_ttl` the token endpoint accepts: a day (no Cognito token lives longer).
pub const MAX_MIN_TTL: Duration = Duration::from_secs(86_400);

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always "ok".
    pub status: String,
    /// The daemon's version.
    pub version: String,
}

/// One token hand-out as `GET /v1/audit` shows it: when, which profile's token, and who took
/// it. Never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The profile.
    pub profile: String,
    /// Which token.
    pub kind: TokenKind,
    /// `unix` or `tcp`.
    pub transport: String,
    /// The consumer's uid, when known.
    pub uid: Option<u32>,
    /// The consumer's pid, when known.
    pub pid: Option<i32>,
    /// The consumer's executable, when known.
    pub exe: Option<String>,
    /// The process that started the consumer, its parent and so on (three at most, not init):
    /// for a `cogbroker` credential helper, the git, docker, kubectl or cargo that ran it, often
    /// through a shell. Absent from older daemons' answers.
    #[serde(default)]
    pub parents: Vec<AuditProcess>,
}

/// A process above an audit entry's consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditProcess {
    /// Its pid.
    pub pid: i32,
    /// Its executable, when readable.
    pub exe: Option<String>,
}

/// `GET /v1/audit[?profile=P]`: the recent hand-outs, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditList {
    /// The hand-outs.
    pub entries: Vec<AuditEntry>,
}

/// `GET /v1/profiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileList {
    /// Every configured profile.
    pub profiles: Vec<ProfileStatus>,
}

/// One profile (`GET /v1/profiles/{p}`, and `POST /v1/profiles/{p}/refresh`). Never holds a
/// token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileStatus {
    /// The profile name.
    pub name: String,
    /// logged_out | logging_in | fresh | stale | refreshing | login_required | degraded
    pub state: String,
    /// The configured username.
    pub username: Option<String>,
    /// Token expiry, RFC 3339 UTC.
    pub expires_at: Option<String>,
    /// Seconds until expiry.
    pub expires_in: Option<u64>,
    /// Last time tokens were obtained, RFC 3339 UTC.
    pub last_refresh: Option<String>,
    /// The class of the last failure (transient, throttled, login_required, terminal, store, ...).
    pub last_error: Option<String>,
    /// Why a login is required, when it is.
    pub login_required_reason: Option<String>,
    /// The store backend ("keyring", "file", "memory").
    pub store: String,
    /// A device is remembered.
    pub device_remembered: bool,
    /// The auth flow ("USER_SRP_AUTH", ...).
    pub auth_flow: String,
    /// A rotated refresh token is in memory only (the store refused it); retried every tick.
    pub persistence_degraded: bool,
    /// Measured skew (token `iat` minus local receipt time), seconds.
    pub clock_skew_seconds: Option<i64>,
}

/// `GET /v1/profiles/{p}/token` as JSON. `Debug` hides the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The profile.
    pub profile: String,
    /// Access or ID.
    pub kind: TokenKind,
    /// The bearer token.
    #[serde(with = "secret")]
    pub token: SecretString,
    /// Always "Bearer".
    pub token_type: String,
    /// Expiry, RFC 3339 UTC.
    pub expires_at: String,
    /// Seconds left, relative (robust against a caller's skewed clock).
    pub expires_in: u64,
    /// Refreshing is failing and this is the last valid token: below what was asked.
    pub degraded: bool,
}

/// The query of `GET /v1/profiles/{p}/token`: `kind` (default access) and `min_ttl` in whole
/// seconds, at most [`MAX_MIN_TTL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenQuery {
    /// Which token.
    pub kind: TokenKind,
    /// How long it must stay valid at least (default: the profile's floor).
    pub min_ttl: Option<Duration>,
}

/// The body of `POST /v1/profiles/{p}/login` (optional when a password source is configured).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The password.
    #[serde(
        default,
        with = "secret::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SecretString>,
}

/// The body of `POST /v1/profiles/{p}/refresh`: an empty object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {}

/// The body of `POST /v1/profiles/{p}/logout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Also forget this device at Cognito.
    #[serde(default)]
    pub forget_device: bool,
}

/// `POST /v1/profiles/{p}/logout`: `{"status": "logged_out"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedOut {
    /// Always "logged_out".
    pub status: String,
}

impl LoggedOut {
    /// The one answer.
    pub fn new() -> Self {
        Self {
            status: "logged_out".to_owned(),
        }
    }
}

impl Default for LoggedOut {
    fn default() -> Self {
        Self::new()
    }
}

/// `DELETE /v1/logins/{id}`: `{"status": "cancelled"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    /// Always "cancelled".
    pub status: String,
}

impl Cancelled {
    /// The one answer.
    pub fn new() -> Self {
        Self {
            status: "cancelled".to_owned(),
        }
    }
}

impl Default for Cancelled {
    fn default() -> Self {
        Self::new()
    }
}

/// Every error answer: `{"error": code, "message": ...}`, plus the field a `bad_input` error
/// is about (so a client can tell "the password is missing" without reading the message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable machine-readable code.
    pub error: String,
    /// What went wrong and what to do, for a person; never a secret or raw request input.
    pub message: String,
    /// The request field a `bad_input` error names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A server-sent event of `GET /v1/profiles/{p}/events` (the `event:` line is its `event`).
/// Events never carry a token value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// New tokens were published (login or refresh).
    TokenRefreshed {
        /// The profile.
        profile: String,
        /// New expiry, unix seconds.
        expires_at: u64,
    },
    /// A login started.
    LoginStarted {
        /// The profile.
        profile: String,
    },
    /// A login finished with tokens.
    LoginCompleted {
        /// The profile.
        profile: String,
    },
    /// A login failed.
    LoginFailed {
        /// The profile.
        profile: String,
        /// The error code.
        error: String,
    },
    /// A refresh attempt failed.
    RefreshFailed {
        /// The profile.
        profile: String,
        /// transient | throttled | login_required | terminal | misconfigured
        class: String,
    },
    /// The profile was logged out.
    LoggedOut {
        /// The profile.
        profile: String,
    },
    /// New AWS credentials were published (never their values).
    AwsCredentialsRefreshed {
        /// The profile.
        profile: String,
        /// Their expiry, unix seconds.
        expires_at: u64,
    },
    /// An AWS credentials fetch failed.
    AwsCredentialsFailed {
        /// The profile.
        profile: String,
        /// transient | throttled | login_required | terminal
        class: String,
    },
}

impl Event {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TokenRefreshed { .. } => "token_refreshed",
            Self::LoginStarted { .. } => "login_started",
            Self::LoginCompleted { .. } => "login_completed",
            Self::LoginFailed { .. } => "login_failed",
            Self::RefreshFailed { .. } => "refresh_failed",
            Self::LoggedOut { .. } => "logged_out",
            Self::AwsCredentialsRefreshed { .. } => "aws_credentials_refreshed",
            Self::AwsCredentialsFailed { .. } => "aws_credentials_failed",
        }
    }

    /// The profile it is about.
    pub fn profile(&self) -> &str {
        match self {
            Self::TokenRefreshed { profile, .. }
            | Self::LoginStarted { profile }
            | Self::LoginCompleted { profile }
            | Self::LoginFailed { profile, .. }
            | Self::RefreshFailed { profile, .. }
            | Self::LoggedOut { profile }
            | Self::AwsCredentialsRefreshed { profile, .. }
            | Self::AwsCredentialsFailed { profile, .. } => profile,
        }
    }
}

/// `GET /v1/profiles/{p}/aws-credentials`: the container-credentials format the AWS SDKs read
/// (`Token`, not `SessionToken`; `Expiration` RFC 3339 UTC). `Debug` hides every secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AwsCredentialsResponse {
    /// `AccessKeyId`.
    #[serde(with = "secret")]
    pub access_key_id: SecretString,
    /// `SecretAccessKey`.
    #[serde(with = "secret")]
    pub secret_access_key: SecretString,
    /// The session token.
    #[serde(with = "secret")]
    pub token: SecretString,
    /// Expiry, RFC 3339 UTC.
    pub expiration: String,
}

/// The body of `POST /v1/profiles/{p}/aws-grants`: an empty object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsGrantRequest {}

/// `POST /v1/profiles/{p}/aws-grants`: a bearer for one `exec --aws` child. `Debug` hides the
/// token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AwsGrant {
    /// Revokes it: `DELETE /v1/profiles/{p}/aws-grants/{grant_id}`.
    pub grant_id: String,
    /// What the child sends as `Authorization` (`AWS_CONTAINER_AUTHORIZATION_TOKEN`).
    #[serde(with = "secret")]
    pub token: SecretString,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI`: the route on the daemon's loopback TCP listener.
    pub credentials_url: String,
}

/// `DELETE /v1/profiles/{p}/aws-grants/{id}`: `{"status": "revoked"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsGrantRevoked {
    /// Always "revoked".
    pub status: String,
}

/// (De)serialises a [`SecretString`] as a JSON string: the one place a wire secret is exposed.
pub(crate) mod secret {
    use secrecy::{ExposeSecret as _, SecretString};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.expose_secret())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }

    /// The same for an optional secret.
    pub(crate) mod option {
        use secrecy::{ExposeSecret as _, SecretString};
        use serde::{Deserialize as _, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            value: &Option<SecretString>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => s.serialize_some(value.expose_secret()),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SecretString>, D::Error> {
            Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
        }
    }
}

#[cfg(test)]
mod tests;
