//! The broker's answers as wire types. The broker hands out its own types where they carry more
//! than the wire does (a `SystemTime` expiry, `&'static str` states); challenge details are
//! already [`crate::api`] types. These conversions are all the server does.

use crate::api::{self, ChallengeStep};
use crate::broker::state::{rfc3339, unix_seconds};
use crate::broker::{BrokerEvent, IssuedToken, LoginOutcome, ProfileStatus};

impl From<ProfileStatus> for api::ProfileStatus {
    fn from(status: ProfileStatus) -> Self {
        Self {
            name: status.name,
            state: status.state.to_owned(),
            username: status.username,
            expires_at: status.expires_at,
            expires_in: status.expires_in,
            last_refresh: status.last_refresh,
            last_error: status.last_error,
            login_required_reason: status.login_required_reason,
            store: status.store.to_owned(),
            device_remembered: status.device_remembered,
            auth_flow: status.auth_flow,
            persistence_degraded: status.persistence_degraded,
            clock_skew_seconds: status.clock_skew_seconds,
        }
    }
}

impl From<IssuedToken> for api::TokenResponse {
    fn from(issued: IssuedToken) -> Self {
        Self {
            profile: issued.profile,
            kind: issued.kind,
            token: issued.token,
            token_type: "Bearer".to_owned(),
            expires_at: rfc3339(issued.expires_at),
            expires_in: issued.expires_in,
            degraded: issued.degraded,
        }
    }
}

impl From<LoginOutcome> for api::LoginOutcome {
    fn from(outcome: LoginOutcome) -> Self {
        match outcome {
            LoginOutcome::Authenticated {
                profile,
                expires_at,
                username,
            } => Self::Authenticated(api::challenge::Authenticated {
                profile,
                expires_at: rfc3339(expires_at),
                username,
            }),
            LoginOutcome::Browser {
                login_id,
                authorize_url,
            } => Self::Browser(api::challenge::BrowserStep {
                authorize_url,
                login_id,
            }),
            LoginOutcome::Challenge {
                login_id,
                challenge,
                message,
                fields,
                details,
            } => Self::Challenge(ChallengeStep {
                login_id,
                challenge: challenge.to_owned(),
                message,
                fields: fields.into_iter().map(str::to_owned).collect(),
                details,
            }),
        }
    }
}

impl From<&BrokerEvent> for api::Event {
    fn from(event: &BrokerEvent) -> Self {
        match event {
            BrokerEvent::TokenRefreshed {
                profile,
                expires_at,
            } => Self::TokenRefreshed {
                profile: profile.clone(),
                expires_at: unix_seconds(*expires_at),
            },
            BrokerEvent::LoginStarted { profile } => Self::LoginStarted {
                profile: profile.clone(),
            },
            BrokerEvent::LoginCompleted { profile } => Self::LoginCompleted {
                profile: profile.clone(),
            },
            BrokerEvent::LoginFailed { profile, error } => Self::LoginFailed {
                profile: profile.clone(),
                error: error.clone(),
            },
            BrokerEvent::RefreshFailed { profile, class } => Self::RefreshFailed {
                profile: profile.clone(),
                class: class.clone(),
            },
            BrokerEvent::LoggedOut { profile } => Self::LoggedOut {
                profile: profile.clone(),
            },
            BrokerEvent::AwsCredentialsRefreshed {
                profile,
                expires_at,
            } => Self::AwsCredentialsRefreshed {
                profile: profile.clone(),
                expires_at: unix_seconds(*expires_at),
            },
            BrokerEvent::AwsCredentialsFailed { profile, class } => Self::AwsCredentialsFailed {
                profile: profile.clone(),
                class: class.clone(),
            },
        }
    }
}
