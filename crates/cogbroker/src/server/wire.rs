//! The broker's answers as wire types. The broker hands out its own types where they carry more
//! than the wire does (a `SystemTime` expiry, `&'static str` states); challenge details are
//! already [`crate::api`] types. These conversions are all the server does.

use hyper::body::Bytes;
use zeroize::Zeroize as _;

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
        let token = issued.expose_token().into();
        Self {
            profile: issued.profile,
            kind: issued.kind,
            token,
            token_type: "Bearer".to_owned(),
            expires_at: rfc3339(issued.expires_at),
            expires_in: issued.expires_in,
            degraded: issued.degraded,
        }
    }
}

/// The JSON of a token answer, byte for byte as `serde_json` writes [`api::TokenResponse`]:
/// everything up to `"expires_in":` comes from the rendering its token set keeps (made by the
/// first caller of this token set and kind), the seconds left and the degraded flag are written
/// per request. The hot path of every cache hit: no JSON escaping, no time formatting.
pub(super) fn token_json(issued: &IssuedToken) -> Bytes {
    let Some(head) = issued.rendered().get_or_init(|| token_json_head(issued)) else {
        return serde_json::to_vec(&api::TokenResponse::from(issued.clone()))
            .map(Bytes::from)
            .unwrap_or_default();
    };
    let mut body = Vec::with_capacity(head.len() + 40);
    body.extend_from_slice(head);
    push_decimal(&mut body, issued.expires_in);
    body.extend_from_slice(if issued.degraded {
        br#","degraded":true}"#
    } else {
        br#","degraded":false}"#
    });
    Bytes::from(body)
}

/// `serde_json`'s rendering of the answer with the per-request fields cut off, in a buffer
/// wiped when the last answer using it is gone; `None` if the rendering does not end as
/// expected (then every answer is rendered whole).
fn token_json_head(issued: &IssuedToken) -> Option<Bytes> {
    const TAIL: &[u8] = br#"0,"degraded":false}"#;
    const HEAD_END: &[u8] = br#""expires_in":"#;
    let mut probe = issued.clone();
    probe.expires_in = 0;
    probe.degraded = false;
    let mut json = Wiped(Vec::with_capacity(issued.expose_token().len() + 256));
    serde_json::to_writer(&mut json.0, &api::TokenResponse::from(probe)).ok()?;
    let head = json.0.len().checked_sub(TAIL.len())?;
    if !json.0.ends_with(TAIL) || !json.0[..head].ends_with(HEAD_END) {
        return None;
    }
    json.0.truncate(head);
    Some(Bytes::from_owner(json))
}

/// Bytes that held a token: zeroed (their whole capacity) when dropped.
struct Wiped(Vec<u8>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Appends `value` in decimal, as `serde_json` writes a `u64`.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::broker::TokenKind;
    use crate::broker::state::HeldTokens;

    #[test]
    fn a_token_answer_is_byte_for_byte_what_serde_json_writes() {
        let held = Arc::new(HeldTokens::new(crate::broker::sinks::tests::tokens("u")));
        let now = SystemTime::now();
        for (expires_in, degraded) in [(0, false), (7, true), (3599, false), (u64::MAX, true)] {
            let mut issued = IssuedToken::new(
                "dev".to_owned(),
                TokenKind::Access,
                Arc::clone(&held),
                now,
                false,
            )
            .expect("an access token");
            issued.expires_in = expires_in;
            issued.degraded = degraded;
            let fast = token_json(&issued);
            let whole = serde_json::to_vec(&api::TokenResponse::from(issued.clone())).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&whole)
            );
        }
        // Neither the issued token nor the token set it views shows the token in `Debug`.
        let issued = IssuedToken::new(
            "dev".to_owned(),
            TokenKind::Access,
            Arc::clone(&held),
            now,
            false,
        )
        .expect("an access token");
        let token = issued.expose_token().to_owned();
        assert!(!format!("{issued:?} {held:?}").contains(&token));
        // Rendered once for the token set, shared by every later answer.
        let head = held.rendered(TokenKind::Access).get().cloned().flatten();
        assert!(head.is_some_and(|head| head.ends_with(br#""expires_in":"#)));
        assert!(held.rendered(TokenKind::Id).get().is_none());
    }

    #[test]
    fn an_id_token_is_not_issued_from_a_set_without_one() {
        let held = Arc::new(HeldTokens::new(crate::broker::sinks::tests::tokens("u")));
        let issued = IssuedToken::new(
            "dev".to_owned(),
            TokenKind::Id,
            held,
            SystemTime::now(),
            false,
        );
        assert!(issued.is_none());
    }
}
