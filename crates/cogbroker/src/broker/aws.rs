//! AWS credentials from a Cognito identity pool (design.md §13): the upstream calls
//! ([`AwsSource`]), the published state ([`AwsSnapshot`]), the credentials handed out
//! ([`IssuedAws`]) and the per-child grants of `exec --aws`.
//!
//! The profile task owns all of it (profile/aws.rs): one fetch in flight, its waiters, the
//! backoff, the identity id persisted with the session. Readers get credentials from the
//! published snapshot like tokens. The secret key and session token are secret types: `Debug`
//! never shows them, and nothing here logs them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cognito_auth::identity::AssumeRoleWithWebIdentity;
use cognito_auth::secret::IdToken;
use cognito_auth::{AwsCredentials, IdentityClient, Logins, StsClient};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::error::BrokerError;
use super::policy::{Backoff, TokenTimes};
use super::ticket::RefreshTicket;
use super::upstream::Upstreams;
use crate::config::{AwsConfig, IdentityFlow, ProfileName};

/// The most grants (`exec --aws` children) one profile holds at a time.
pub const MAX_GRANTS: usize = 256;
/// What AWS credentials must have left when handed out, unless the caller asks otherwise:
/// botocore fetches again whenever they have less than 15 minutes left (its advisory window), so
/// anything shorter would be fetched again on every use. Capped, like any `min_ttl`, by what a
/// fresh set can give (short-lived credentials are refreshed at most every 10 % of their life).
pub const AWS_MIN_TTL: Duration = Duration::from_secs(15 * 60);

/// The identity-pool calls of one profile. One exchange per method, nothing retried here.
pub(crate) struct AwsSource {
    config: AwsConfig,
    identity: IdentityClient,
    sts: Option<StsClient>,
    role_session_name: String,
}

impl AwsSource {
    /// The clients for `config` (shared per endpoint through `upstreams`).
    pub(crate) fn new(
        profile: &ProfileName,
        config: AwsConfig,
        upstreams: &Upstreams,
    ) -> Result<Self, BrokerError> {
        let identity = upstreams.identity(&config.identity_endpoint)?;
        let sts = match config.flow {
            IdentityFlow::Basic => Some(upstreams.sts(&config.sts_endpoint)?),
            IdentityFlow::Enhanced => None,
        };
        // STS allows 2 to 64 of [\w+=,.@-]; profile names are [A-Za-z0-9._-].
        let mut role_session_name = format!("cogbroker-{profile}");
        role_session_name.truncate(64);
        Ok(Self {
            config,
            identity,
            sts,
            role_session_name,
        })
    }

    pub(crate) fn pool_id(&self) -> &str {
        &self.config.identity_pool_id
    }

    fn logins(&self, id_token: &IdToken) -> Logins {
        Logins::single(
            self.config.logins_provider.clone(),
            IdToken::new(id_token.expose_secret()),
        )
    }

    /// `GetId`: the identity id of the user whose ID token this is.
    pub(crate) async fn get_id(&self, id_token: &IdToken) -> Result<String, cognito_auth::Error> {
        self.identity
            .get_id(&self.config.identity_pool_id, &self.logins(id_token))
            .await
    }

    /// The credentials of `identity_id`: GetCredentialsForIdentity (enhanced), or
    /// GetOpenIdToken then AssumeRoleWithWebIdentity (basic).
    pub(crate) async fn credentials(
        &self,
        identity_id: &str,
        id_token: &IdToken,
    ) -> Result<AwsCredentials, cognito_auth::Error> {
        let logins = self.logins(id_token);
        match (&self.sts, self.config.flow) {
            (Some(sts), IdentityFlow::Basic) => {
                let token = self
                    .identity
                    .get_open_id_token(identity_id, &logins)
                    .await?;
                let role_arn = self.config.role_arn.as_deref().unwrap_or_default();
                sts.assume_role_with_web_identity(&AssumeRoleWithWebIdentity {
                    role_arn,
                    role_session_name: &self.role_session_name,
                    web_identity_token: &token,
                    duration_seconds: None,
                })
                .await
            }
            _ => {
                self.identity
                    .get_credentials_for_identity(
                        identity_id,
                        &logins,
                        self.config.role_arn.as_deref(),
                    )
                    .await
            }
        }
    }
}

/// Credentials as held: what upstream gave and when it arrived.
#[derive(Debug)]
pub(crate) struct HeldCredentials {
    pub(crate) credentials: AwsCredentials,
    pub(crate) received_at: SystemTime,
}

impl HeldCredentials {
    pub(crate) fn times(&self) -> TokenTimes {
        TokenTimes {
            received_at: self.received_at,
            // Upstream's `Expiration` is the server's clock; a clock behind it by more than
            // the lifetime would make them look expired on arrival: never earlier than receipt.
            expires_at: self.credentials.expiration.max(self.received_at),
        }
    }
}

/// One `exec --aws` child's bearer for the container-credentials route.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) id: String,
    pub(crate) token: SecretString,
}

/// [`AwsSnapshot`] shared between a profile's snapshots, copied on write. Profiles without an
/// identity pool (most) all share one empty one: 8 bytes in their snapshot instead of 112
/// (design.md §11: 1,000 profiles in 15 MB). Writing through it (`snapshot.aws.x = …`) copies
/// the shared value first ([`Arc::make_mut`]), so a published snapshot never changes.
#[derive(Debug, Clone)]
pub(crate) struct SharedAws(Arc<AwsSnapshot>);

impl Default for SharedAws {
    fn default() -> Self {
        static EMPTY: std::sync::LazyLock<Arc<AwsSnapshot>> =
            std::sync::LazyLock::new(Arc::default);
        Self(Arc::clone(&EMPTY))
    }
}

impl From<AwsSnapshot> for SharedAws {
    fn from(snapshot: AwsSnapshot) -> Self {
        Self(Arc::new(snapshot))
    }
}

impl std::ops::Deref for SharedAws {
    type Target = AwsSnapshot;

    fn deref(&self) -> &AwsSnapshot {
        &self.0
    }
}

impl std::ops::DerefMut for SharedAws {
    fn deref_mut(&mut self) -> &mut AwsSnapshot {
        Arc::make_mut(&mut self.0)
    }
}

/// The AWS side of a profile's published state.
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsSnapshot {
    /// Bumped whenever the credentials or the failure state change.
    pub(crate) generation: u64,
    pub(crate) credentials: Option<Arc<HeldCredentials>>,
    pub(crate) backoff: Backoff,
    /// The class of the last failure, cleared by a success.
    pub(crate) last_error: Option<&'static str>,
    /// The last fetch failed while credentials were still valid.
    pub(crate) degraded: bool,
    /// The identity pool refused the login (NotAuthorized): a login is needed.
    pub(crate) login_required: Option<String>,
    /// A fetch is running: callers who need it wait on its ticket (as for the tokens).
    pub(crate) refresh: Option<RefreshTicket>,
    /// The live grants.
    pub(crate) grants: Arc<Vec<Grant>>,
}

impl AwsSnapshot {
    /// A fetch is in flight.
    pub(crate) fn refreshing(&self) -> bool {
        self.refresh.is_some()
    }

    pub(crate) fn times(&self) -> Option<TokenTimes> {
        self.credentials.as_ref().map(|held| held.times())
    }

    /// Whether `presented` (an `Authorization` header value, verbatim) is a live grant's
    /// token. Every grant is compared, in constant time.
    pub(crate) fn grant_matches(&self, presented: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for grant in self.grants.iter() {
            found |= grant.token.expose_secret().as_bytes().ct_eq(presented);
        }
        found.into()
    }
}

/// AWS credentials handed to a caller. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub struct IssuedAws {
    /// The profile.
    pub profile: String,
    /// `AccessKeyId`.
    pub access_key_id: SecretString,
    /// `SecretAccessKey`.
    pub secret_access_key: SecretString,
    /// `SessionToken` (`Token` in the container format).
    pub session_token: SecretString,
    /// When they stop working.
    pub expiration: SystemTime,
    /// Seconds left.
    pub expires_in: u64,
    /// Fetching is failing and these are the last valid credentials.
    pub degraded: bool,
}

impl IssuedAws {
    pub(crate) fn from_held(
        profile: &str,
        held: &HeldCredentials,
        now: SystemTime,
        degraded: bool,
    ) -> Self {
        let credentials = &held.credentials;
        let expiration = held.times().expires_at;
        Self {
            profile: profile.to_owned(),
            access_key_id: SecretString::from(credentials.access_key_id.expose_secret().to_owned()),
            secret_access_key: SecretString::from(
                credentials.secret_access_key.expose_secret().to_owned(),
            ),
            session_token: SecretString::from(credentials.session_token.expose_secret().to_owned()),
            expiration,
            expires_in: expiration
                .duration_since(now)
                .map_or(0, |left| left.as_secs()),
            degraded,
        }
    }
}

/// A new grant: its id (to revoke it) and its token (the child's bearer).
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// The grant's id, 32 hex characters.
    pub id: String,
    /// The bearer, 64 hex characters.
    pub token: SecretString,
}

/// How long before expiry the ID token must still be valid when it goes to the identity pool:
/// five minutes (cognito-protocol.md §7.3), at most half its lifetime.
pub(crate) fn id_token_floor(lifetime: Option<Duration>) -> Duration {
    let five_minutes = Duration::from_secs(300);
    lifetime.map_or(five_minutes, |lifetime| five_minutes.min(lifetime / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cognito_auth::secret::{AwsAccessKeyId, AwsSecretAccessKey, AwsSessionToken};

    #[test]
    fn issued_credentials_and_grants_print_no_secret() {
        let now = SystemTime::now();
        let held = HeldCredentials {
            credentials: AwsCredentials {
                access_key_id: AwsAccessKeyId::new("ASIAKEYVALUE"),
                secret_access_key: AwsSecretAccessKey::new("secret-access-key-value"),
                session_token: AwsSessionToken::new("session-token-value"),
                expiration: now + Duration::from_secs(3600),
            },
            received_at: now,
        };
        let issued = IssuedAws::from_held("dev", &held, now, false);
        assert_eq!(issued.expires_in, 3600);
        let grant = Grant {
            id: "g1".to_owned(),
            token: SecretString::from("grant-token-value".to_owned()),
        };
        let snapshot = AwsSnapshot {
            credentials: Some(Arc::new(held)),
            grants: Arc::new(vec![grant.clone()]),
            ..AwsSnapshot::default()
        };
        let printed = format!("{issued:?} {snapshot:?} {grant:?}");
        for secret in [
            "ASIAKEYVALUE",
            "secret-access-key-value",
            "session-token-value",
            "grant-token-value",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(snapshot.grant_matches(b"grant-token-value"));
        assert!(!snapshot.grant_matches(b"grant-token-valu"));
        assert!(!snapshot.grant_matches(b""));
    }

    #[test]
    fn the_id_token_floor_is_five_minutes_at_most_half_the_lifetime() {
        assert_eq!(id_token_floor(None), Duration::from_secs(300));
        assert_eq!(
            id_token_floor(Some(Duration::from_secs(3600))),
            Duration::from_secs(300)
        );
        assert_eq!(
            id_token_floor(Some(Duration::from_secs(60))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn credentials_never_expire_before_they_arrive() {
        let now = SystemTime::now();
        let held = HeldCredentials {
            credentials: AwsCredentials {
                access_key_id: AwsAccessKeyId::new("a"),
                secret_access_key: AwsSecretAccessKey::new("s"),
                session_token: AwsSessionToken::new("t"),
                expiration: now - Duration::from_secs(10),
            },
            received_at: now,
        };
        assert_eq!(held.times().expires_at, now);
    }
}
