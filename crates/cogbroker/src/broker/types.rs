//! The broker's values as callers see them: which token, a token handed out, a profile's
//! status, a login step's outcome, a challenge answer, and events. None of them carries a
//! refresh token; `Debug` never shows a token or a setup secret.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use hyper::body::Bytes;

use cognito_auth::secret::{OneTimeCode, Password};
use serde::Serialize;

use super::state::{HeldTokens, rfc3339, unix_seconds};
pub use crate::api::TokenKind;

/// A token handed to a caller: a view of the token set it comes from, copied nowhere. `Debug`
/// never shows the token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The profile.
    pub profile: String,
    /// Access or ID.
    pub kind: TokenKind,
    /// The token set holding the token (an ID token is there when `kind` is `Id`).
    tokens: Arc<HeldTokens>,
    /// Expiry (local wall clock).
    pub expires_at: SystemTime,
    /// Seconds left, relative (robust against a caller's skewed clock).
    pub expires_in: u64,
    /// Refreshing is failing and this is the last valid token: below what was asked.
    pub degraded: bool,
}

impl IssuedToken {
    /// `kind`'s token of `tokens`, or `None` when the set has no such token (no ID token).
    pub(crate) fn new(
        profile: String,
        kind: TokenKind,
        tokens: Arc<HeldTokens>,
        now: SystemTime,
        degraded: bool,
    ) -> Option<Self> {
        if kind == TokenKind::Id && tokens.id_token().is_none() {
            return None;
        }
        let expires_at = tokens.expires_at();
        Some(Self {
            profile,
            kind,
            tokens,
            expires_at,
            expires_in: expires_at
                .duration_since(now)
                .map_or(0, |left| left.as_secs()),
            degraded,
        })
    }

    /// The bearer token.
    pub fn expose_token(&self) -> &str {
        match (self.kind, self.tokens.id_token()) {
            (TokenKind::Id, Some(id)) => id.expose_secret(),
            // `new` made sure an ID token is there when one was asked for.
            _ => self.tokens.access_token().expose_secret(),
        }
    }

    /// Where the server keeps its rendering of this token's answer, shared by every caller of
    /// the same token set.
    pub(crate) fn rendered(&self) -> &OnceLock<Option<Bytes>> {
        self.tokens.rendered(self.kind)
    }
}

/// One profile as `GET /v1/profiles/{p}` shows it. Never holds a token.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileStatus {
    /// The profile name.
    pub name: String,
    /// logged_out | logging_in | fresh | stale | refreshing | login_required | degraded
    pub state: &'static str,
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
    pub store: &'static str,
    /// A device is remembered.
    pub device_remembered: bool,
    /// The auth flow ("USER_SRP_AUTH", ...).
    pub auth_flow: String,
    /// A rotated refresh token is in memory only (the store refused it); retried every tick.
    pub persistence_degraded: bool,
    /// Measured skew (token `iat` minus local receipt time), seconds.
    pub clock_skew_seconds: Option<i64>,
}

/// The result of a login step. `Debug` hides MFA_SETUP's secret (serialising shows it: the
/// person needs it once to set up their authenticator).
#[derive(Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoginOutcome {
    /// Tokens obtained and the session persisted.
    Authenticated {
        /// The profile.
        profile: String,
        /// Token expiry.
        #[serde(serialize_with = "serialize_rfc3339")]
        expires_at: SystemTime,
        /// The internal username.
        username: Option<String>,
    },
    /// A person must answer: `POST /v1/logins/{login_id}`.
    Challenge {
        /// The pending login (random, 64 hex characters).
        login_id: String,
        /// Cognito's challenge name, e.g. "SOFTWARE_TOKEN_MFA".
        challenge: &'static str,
        /// What to do, for a person.
        message: String,
        /// The answer fields expected, e.g. ["code"].
        fields: Vec<&'static str>,
        /// What the person needs to answer (MFA_SETUP's secret is redacted by its `Debug`).
        details: crate::api::ChallengeDetails,
    },
    /// A browser login: open `authorize_url`, answer with the redirect URL.
    Browser {
        /// The pending login.
        login_id: String,
        /// The authorize URL.
        authorize_url: String,
    },
}

impl fmt::Debug for LoginOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authenticated {
                profile,
                expires_at,
                username,
            } => f
                .debug_struct("Authenticated")
                .field("profile", profile)
                .field("expires_at", expires_at)
                .field("username", username)
                .finish(),
            Self::Browser { authorize_url, .. } => f
                .debug_struct("Browser")
                .field("login_id", &"[REDACTED]")
                .field("authorize_url", authorize_url)
                .finish(),
            Self::Challenge {
                login_id: _,
                challenge,
                message,
                fields,
                details,
            } => f
                .debug_struct("Challenge")
                .field("login_id", &"[REDACTED]")
                .field("challenge", challenge)
                .field("message", message)
                .field("fields", fields)
                .field("details", details)
                .finish(),
        }
    }
}

fn serialize_rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*time))
}

fn serialize_unix<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(unix_seconds(*time))
}

/// An answer to a pending challenge; which fields are needed depends on the challenge.
#[derive(Debug, Clone, Default)]
pub struct AnswerInput {
    /// NEW_PASSWORD_REQUIRED.
    pub new_password: Option<Password>,
    /// NEW_PASSWORD_REQUIRED's required attributes.
    pub attributes: BTreeMap<String, String>,
    /// SMS_MFA, SOFTWARE_TOKEN_MFA, EMAIL_OTP, SMS_OTP, MFA_SETUP.
    pub code: Option<OneTimeCode>,
    /// SELECT_MFA_TYPE: "SMS_MFA", "SOFTWARE_TOKEN_MFA" or "EMAIL_OTP".
    pub mfa_type: Option<String>,
    /// SELECT_CHALLENGE: the chosen challenge.
    pub challenge: Option<String>,
    /// SELECT_CHALLENGE with PASSWORD or PASSWORD_SRP.
    pub password: Option<Password>,
    /// CUSTOM_CHALLENGE.
    pub answer: Option<Password>,
    /// A browser login: the URL the browser was redirected to.
    pub redirect_url: Option<secrecy::SecretString>,
}

/// Something that happened; never carries a token value.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BrokerEvent {
    /// New tokens were published (login or refresh).
    TokenRefreshed {
        /// The profile.
        profile: String,
        /// New expiry (unix seconds when serialised).
        #[serde(serialize_with = "serialize_unix")]
        expires_at: SystemTime,
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
        /// The error code (as [`BrokerError::code`]).
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
    /// New AWS credentials were published.
    AwsCredentialsRefreshed {
        /// The profile.
        profile: String,
        /// Their expiry (unix seconds when serialised).
        #[serde(serialize_with = "serialize_unix")]
        expires_at: SystemTime,
    },
    /// An AWS credentials fetch failed.
    AwsCredentialsFailed {
        /// The profile.
        profile: String,
        /// transient | throttled | login_required | terminal
        class: String,
    },
}

impl BrokerEvent {
    /// The profile the event is about.
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

    /// The event name (SSE `event:` field).
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
}
