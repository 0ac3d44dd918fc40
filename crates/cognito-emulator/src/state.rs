//! The emulator's mutable world: pools, clients, users, devices, sessions and refresh tokens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use num_bigint::BigUint;
use rand::RngCore;
use serde::Serialize;

use crate::ids;
use crate::seed::{
    DeviceTracking, IdentityPoolSeed, PasswordPolicy, PoolMfa, Seed, UserMfa, UserStatus,
};
use crate::srp::{Handshake, Verifier};

/// Everything behind the emulator's one lock. Operations run as short synchronous transactions.
pub(crate) struct State {
    pub(crate) pools: BTreeMap<String, Pool>,
    /// Client id → pool id.
    pub(crate) client_pools: HashMap<String, String>,
    pub(crate) sessions: HashMap<String, Session>,
    /// Pending SRP exchanges by SECRET_BLOCK.
    pub(crate) srp: HashMap<String, SrpPending>,
    pub(crate) refresh_tokens: HashMap<String, RefreshRecord>,
    /// Sign-in sessions ("families") by origin_jti.
    pub(crate) families: HashMap<String, Family>,
    pub(crate) messages: Vec<SentMessage>,
    /// OAuth authorization codes from `/oauth2/authorize`.
    pub(crate) auth_codes: HashMap<String, AuthCode>,
    /// Identity pools by id.
    pub(crate) identity_pools: BTreeMap<String, IdentityPoolSeed>,
    /// Identities by identity id.
    pub(crate) identities: HashMap<String, Identity>,
    /// AWS credentials handed out, by access key id.
    pub(crate) aws_credentials: HashMap<String, AwsCredentials>,
}

/// An identity of an identity pool: one per (provider, `sub`).
pub(crate) struct Identity {
    pub(crate) identity_pool: String,
    pub(crate) provider: String,
    pub(crate) sub: String,
}

/// Temporary AWS credentials the emulator issued (the secret key is not kept: nothing checks
/// SigV4 signatures).
pub(crate) struct AwsCredentials {
    pub(crate) session_token: String,
    pub(crate) expires_at: i64,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub(crate) arn: String,
    /// `<role id>:<session>`.
    pub(crate) user_id: String,
    pub(crate) account: String,
}

pub(crate) struct Pool {
    pub(crate) cfg: PoolCfg,
    pub(crate) clients: BTreeMap<String, Client>,
    /// By internal username.
    pub(crate) users: BTreeMap<String, User>,
}

#[derive(Clone)]
pub(crate) struct PoolCfg {
    pub(crate) id: String,
    pub(crate) region: String,
    /// The part after `_`: the SRP realm.
    pub(crate) name: String,
    pub(crate) device_tracking: DeviceTracking,
    pub(crate) mfa: PoolMfa,
    pub(crate) email_username: bool,
    pub(crate) password_policy: PasswordPolicy,
    pub(crate) lockout_threshold: u32,
    pub(crate) lockout_seconds: i64,
    pub(crate) mfa_setup: Vec<String>,
    /// The resource servers' scopes, `<identifier>/<scope>`.
    pub(crate) custom_scopes: BTreeSet<String>,
}

impl PoolCfg {
    /// `https://cognito-idp.<region>.amazonaws.com/<pool_id>`, the `iss` of the pool's tokens.
    pub(crate) fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region, self.id
        )
    }
}

#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) pool_id: String,
    pub(crate) secret: Option<String>,
    pub(crate) access_ttl: i64,
    pub(crate) id_ttl: i64,
    pub(crate) refresh_ttl: i64,
    pub(crate) session_ttl: i64,
    pub(crate) rotation: bool,
    pub(crate) grace_seconds: i64,
    pub(crate) flows: BTreeSet<String>,
    pub(crate) refresh_token_auth: bool,
    pub(crate) prevent_user_existence_errors: bool,
    pub(crate) token_revocation: bool,
    pub(crate) srp_challenge_session: bool,
    pub(crate) first_auth_factors: Vec<String>,
    pub(crate) callback_urls: Vec<String>,
    pub(crate) oauth_flows: BTreeSet<String>,
    pub(crate) allowed_scopes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum MfaKind {
    Sms,
    Totp,
    Email,
}

impl MfaKind {
    /// The challenge name, which is also the SELECT_MFA_TYPE answer.
    pub(crate) fn challenge(self) -> &'static str {
        match self {
            MfaKind::Sms => "SMS_MFA",
            MfaKind::Totp => "SOFTWARE_TOKEN_MFA",
            MfaKind::Email => "EMAIL_OTP",
        }
    }

    pub(crate) fn from_challenge(name: &str) -> Option<Self> {
        match name {
            "SMS_MFA" => Some(MfaKind::Sms),
            "SOFTWARE_TOKEN_MFA" => Some(MfaKind::Totp),
            "EMAIL_OTP" | "EMAIL_MFA" => Some(MfaKind::Email),
            _ => None,
        }
    }
}

pub(crate) struct User {
    pub(crate) username: String,
    /// The seed's sign-in name (the username, or the email in email pools).
    pub(crate) login: String,
    pub(crate) sub: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) phone_number: Option<String>,
    pub(crate) phone_number_verified: bool,
    pub(crate) attributes: BTreeMap<String, String>,
    pub(crate) status: UserStatus,
    pub(crate) enabled: bool,
    pub(crate) verifier: Verifier,
    pub(crate) mfa_enabled: BTreeSet<MfaKind>,
    pub(crate) mfa_preferred: Option<MfaKind>,
    pub(crate) totp_secret: Option<String>,
    /// A secret from AssociateSoftwareToken(AccessToken) awaiting VerifySoftwareToken.
    pub(crate) pending_totp_secret: Option<String>,
    pub(crate) required_attributes: Vec<String>,
    pub(crate) custom_answer: Option<String>,
    pub(crate) groups: Vec<String>,
    pub(crate) failed_attempts: u32,
    pub(crate) locked_until: Option<i64>,
    pub(crate) device_group_key: String,
    pub(crate) devices: BTreeMap<String, Device>,
}

pub(crate) struct Device {
    pub(crate) key: String,
    pub(crate) name: Option<String>,
    pub(crate) confirmed: bool,
    pub(crate) remembered: bool,
    pub(crate) verifier: Option<Verifier>,
    pub(crate) created: i64,
    pub(crate) last_modified: i64,
    pub(crate) last_authenticated: i64,
}

/// What a login carries from step to step.
#[derive(Clone, Debug)]
pub(crate) struct Login {
    pub(crate) pool_id: String,
    pub(crate) client_id: String,
    pub(crate) username: String,
    /// A known device presented with the login (DEVICE_KEY).
    pub(crate) device_key: Option<String>,
    /// Signed in without a password (USER_AUTH one-time code): no MFA.
    pub(crate) passwordless: bool,
    /// CUSTOM_AUTH: the custom challenge follows the (optional) SRP step.
    pub(crate) custom: bool,
    /// The device has been authenticated by device SRP (skips MFA).
    pub(crate) device_authenticated: bool,
}

/// Where a challenge session stands. Its one-time codes and TOTP secrets never reach a Debug print.
#[derive(Clone)]
pub(crate) enum Step {
    NewPasswordRequired,
    Mfa {
        kind: MfaKind,
        code: Option<String>,
        wrong: u32,
    },
    SignInCode {
        challenge: &'static str,
        code: String,
        wrong: u32,
    },
    SelectMfaType {
        options: Vec<MfaKind>,
    },
    MfaSetup {
        secret: Option<String>,
        verified: bool,
    },
    CustomChallenge {
        wrong: u32,
    },
    DeviceSrpAuth {
        device_key: String,
    },
    SelectChallenge {
        available: Vec<String>,
    },
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "[REDACTED]";
        let redacted = |present: bool| if present { REDACTED } else { "None" };
        match self {
            Step::NewPasswordRequired => f.write_str("NewPasswordRequired"),
            Step::Mfa { kind, code, wrong } => f
                .debug_struct("Mfa")
                .field("kind", kind)
                .field("code", &format_args!("{}", redacted(code.is_some())))
                .field("wrong", wrong)
                .finish(),
            Step::SignInCode {
                challenge, wrong, ..
            } => f
                .debug_struct("SignInCode")
                .field("challenge", challenge)
                .field("code", &format_args!("{REDACTED}"))
                .field("wrong", wrong)
                .finish(),
            Step::SelectMfaType { options } => f
                .debug_struct("SelectMfaType")
                .field("options", options)
                .finish(),
            Step::MfaSetup { secret, verified } => f
                .debug_struct("MfaSetup")
                .field("secret", &format_args!("{}", redacted(secret.is_some())))
                .field("verified", verified)
                .finish(),
            Step::CustomChallenge { wrong } => f
                .debug_struct("CustomChallenge")
                .field("wrong", wrong)
                .finish(),
            Step::DeviceSrpAuth { device_key } => f
                .debug_struct("DeviceSrpAuth")
                .field("device_key", device_key)
                .finish(),
            Step::SelectChallenge { available } => f
                .debug_struct("SelectChallenge")
                .field("available", available)
                .finish(),
        }
    }
}

impl Step {
    /// The ChallengeName a response to this step must carry.
    pub(crate) fn challenge(&self) -> &'static str {
        match self {
            Step::NewPasswordRequired => "NEW_PASSWORD_REQUIRED",
            Step::Mfa { kind, .. } => kind.challenge(),
            Step::SignInCode { challenge, .. } => challenge,
            Step::SelectMfaType { .. } => "SELECT_MFA_TYPE",
            Step::MfaSetup { .. } => "MFA_SETUP",
            Step::CustomChallenge { .. } => "CUSTOM_CHALLENGE",
            Step::DeviceSrpAuth { .. } => "DEVICE_SRP_AUTH",
            Step::SelectChallenge { .. } => "SELECT_CHALLENGE",
        }
    }
}

/// A challenge session. Debug shows its step redacted (see [`Step`]).
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) login: Login,
    pub(crate) step: Step,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum SrpKind {
    User,
    Device {
        device_key: String,
    },
    /// An unknown user: the exchange always fails.
    Fake,
}

/// A PASSWORD_VERIFIER or DEVICE_PASSWORD_VERIFIER in flight.
#[derive(Clone, Debug)]
pub(crate) struct SrpPending {
    pub(crate) login: Login,
    pub(crate) kind: SrpKind,
    pub(crate) realm: String,
    pub(crate) user_id: String,
    pub(crate) a: BigUint,
    pub(crate) handshake: Handshake,
    pub(crate) session: Option<String>,
    pub(crate) expires_at: i64,
    pub(crate) used: bool,
}

pub(crate) struct RefreshRecord {
    pub(crate) family: String,
    pub(crate) client_id: String,
    /// When rotation replaced this token, and by which.
    pub(crate) replaced: Option<(i64, String)>,
}

/// One sign-in and everything refreshed from it (shares `origin_jti`).
pub(crate) struct Family {
    pub(crate) pool_id: String,
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) device_key: Option<String>,
    pub(crate) auth_time: i64,
    pub(crate) expires_at: i64,
    pub(crate) revoked: bool,
    pub(crate) event_id: String,
    /// The OAuth scopes granted (the access token's `scope`); `None` for the JSON API's sign-ins.
    pub(crate) scope: Option<String>,
}

/// An authorization code: single-use, short-lived, bound to its client, redirect URI and PKCE
/// challenge.
pub(crate) struct AuthCode {
    pub(crate) pool_id: String,
    pub(crate) client_id: String,
    pub(crate) username: String,
    pub(crate) redirect_uri: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) code_challenge: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) expires_at: i64,
    /// The sign-in family it was redeemed for (revoked if the code is presented again).
    pub(crate) redeemed: Option<String>,
    pub(crate) burnt: bool,
}

/// An SMS or email code the emulator "sent".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SentMessage {
    /// The pool.
    pub pool_id: String,
    /// The internal username.
    pub username: String,
    /// `"SMS"` or `"EMAIL"`.
    pub medium: String,
    /// The full phone number or email address.
    pub destination: String,
    /// The six-digit code.
    pub code: String,
}

/// A device as the test handle sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// `<region>_<uuid>`.
    pub device_key: String,
    /// The user's device group key.
    pub device_group_key: String,
    /// Remembered (skips MFA through device SRP).
    pub remembered: bool,
    /// ConfirmDevice stored a verifier.
    pub confirmed: bool,
    /// The DeviceName given to ConfirmDevice.
    pub name: Option<String>,
}

impl State {
    /// Builds the world from a validated seed, computing each password verifier.
    pub(crate) fn from_seed(seed: &Seed, rng: &mut impl RngCore) -> State {
        let mut pools = BTreeMap::new();
        let mut client_pools = HashMap::new();
        let mut salt_high_bit = false;
        for pool in &seed.pools {
            let (region, name) = crate::seed::split_pool_id(&pool.id)
                .expect("pool ids are validated when the seed is parsed");
            let cfg = PoolCfg {
                id: pool.id.clone(),
                region: region.to_owned(),
                name: name.to_owned(),
                device_tracking: pool.device_tracking,
                mfa: pool.mfa,
                email_username: !pool.username_attributes.is_empty(),
                password_policy: pool.password_policy.clone(),
                lockout_threshold: pool.lockout_threshold,
                lockout_seconds: pool.lockout_seconds as i64,
                mfa_setup: pool.mfa_setup.clone(),
                custom_scopes: pool
                    .resource_servers
                    .iter()
                    .flat_map(|r| r.scopes.iter().map(|s| format!("{}/{s}", r.identifier)))
                    .collect(),
            };
            let clients = pool
                .clients
                .iter()
                .map(|c| {
                    client_pools.insert(c.id.clone(), pool.id.clone());
                    let client = Client {
                        id: c.id.clone(),
                        pool_id: pool.id.clone(),
                        secret: c.secret.clone(),
                        access_ttl: c.access_token_ttl as i64,
                        id_ttl: c.id_token_ttl as i64,
                        refresh_ttl: c.refresh_token_ttl as i64,
                        session_ttl: c.session_ttl as i64,
                        rotation: c.rotation.enabled,
                        grace_seconds: c.rotation.grace_seconds as i64,
                        flows: c.flows(),
                        refresh_token_auth: c.refresh_token_auth(),
                        prevent_user_existence_errors: c.prevent_user_existence_errors,
                        token_revocation: c.token_revocation,
                        srp_challenge_session: c.srp_challenge_session,
                        first_auth_factors: c.first_auth_factors(),
                        callback_urls: c.callback_urls.clone(),
                        oauth_flows: c.allowed_oauth_flows.iter().cloned().collect(),
                        allowed_scopes: c.allowed_scopes.clone(),
                    };
                    (c.id.clone(), client)
                })
                .collect();
            let mut users = BTreeMap::new();
            for seed_user in &pool.users {
                let sub = seed_user.sub.clone().unwrap_or_else(|| ids::uuid(rng));
                let login = seed_user
                    .username
                    .clone()
                    .or_else(|| seed_user.email.clone())
                    .expect("validated: every user has a username or, in email pools, an email");
                let username = if cfg.email_username {
                    sub.clone()
                } else {
                    login.clone()
                };
                // Alternate the salt's top bit so that PAD's extra zero byte is always exercised.
                salt_high_bit = !salt_high_bit;
                let salt = crate::srp::user_salt(rng, salt_high_bit);
                let verifier =
                    Verifier::from_password(salt, &cfg.name, &username, &seed_user.password);
                let mut mfa_enabled = BTreeSet::new();
                let seeded = match seed_user.mfa {
                    UserMfa::None => None,
                    UserMfa::Sms => Some(MfaKind::Sms),
                    UserMfa::Totp => Some(MfaKind::Totp),
                    UserMfa::Email => Some(MfaKind::Email),
                };
                mfa_enabled.extend(seeded);
                if seed_user.sms_mfa {
                    mfa_enabled.insert(MfaKind::Sms);
                }
                if seed_user.totp_mfa {
                    mfa_enabled.insert(MfaKind::Totp);
                }
                if seed_user.email_mfa {
                    mfa_enabled.insert(MfaKind::Email);
                }
                let user = User {
                    username: username.clone(),
                    login,
                    sub,
                    email: seed_user.email.clone(),
                    email_verified: seed_user.email_verified,
                    phone_number: seed_user.phone_number.clone(),
                    phone_number_verified: seed_user.phone_number_verified,
                    attributes: seed_user.attributes.clone(),
                    status: seed_user.status,
                    enabled: seed_user.enabled,
                    verifier,
                    mfa_enabled,
                    mfa_preferred: seeded.filter(|_| seed_user.mfa_preferred),
                    totp_secret: seed_user.totp_secret.clone(),
                    pending_totp_secret: None,
                    required_attributes: seed_user.required_attributes.clone(),
                    custom_answer: seed_user.custom_challenge_answer.clone(),
                    groups: seed_user.groups.clone(),
                    failed_attempts: 0,
                    locked_until: None,
                    device_group_key: ids::device_group_key(rng),
                    devices: BTreeMap::new(),
                };
                users.insert(username, user);
            }
            pools.insert(
                pool.id.clone(),
                Pool {
                    cfg,
                    clients,
                    users,
                },
            );
        }
        State {
            pools,
            client_pools,
            sessions: HashMap::new(),
            srp: HashMap::new(),
            refresh_tokens: HashMap::new(),
            families: HashMap::new(),
            messages: Vec::new(),
            auth_codes: HashMap::new(),
            identity_pools: seed
                .identity_pools
                .iter()
                .map(|p| (p.id.clone(), p.clone()))
                .collect(),
            identities: HashMap::new(),
            aws_credentials: HashMap::new(),
        }
    }

    /// The internal username a sign-in name refers to: the username itself (case-insensitively),
    /// or in email pools the email address or the `sub`.
    pub(crate) fn resolve_user(&self, pool_id: &str, name: &str) -> Option<String> {
        let pool = self.pools.get(pool_id)?;
        pool.users
            .values()
            .find(|u| {
                u.username.eq_ignore_ascii_case(name)
                    || (pool.cfg.email_username
                        && u.email
                            .as_deref()
                            .is_some_and(|e| e.eq_ignore_ascii_case(name)))
            })
            .map(|u| u.username.clone())
    }

    /// Like [`State::resolve_user`] but also accepting the seed's sign-in name, the email and the
    /// sub in any pool: for the test handle.
    pub(crate) fn find_user_loose(&self, pool_id: &str, name: &str) -> Option<&User> {
        let pool = self.pools.get(pool_id)?;
        pool.users.values().find(|u| {
            u.username.eq_ignore_ascii_case(name)
                || u.login.eq_ignore_ascii_case(name)
                || u.sub == name
                || u.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(name))
        })
    }

    pub(crate) fn find_user_loose_mut(&mut self, pool_id: &str, name: &str) -> Option<&mut User> {
        let username = self.find_user_loose(pool_id, name)?.username.clone();
        self.pools.get_mut(pool_id)?.users.get_mut(&username)
    }

    /// Drops expired sessions and SRP exchanges (called on each request; keeps the maps small).
    pub(crate) fn purge(&mut self, now: i64) {
        // Keep used entries a while so reuse reports "can only be used once".
        self.sessions.retain(|_, s| now <= s.expires_at + 900);
        self.srp.retain(|_, s| now <= s.expires_at + 900);
        self.auth_codes.retain(|_, c| now <= c.expires_at + 900);
    }
}

impl User {
    /// The attributes GetUser and the ID token show (except `sub`), as strings.
    pub(crate) fn attribute_map(&self) -> BTreeMap<String, String> {
        let mut map = self.attributes.clone();
        if let Some(email) = &self.email {
            map.insert("email".to_owned(), email.clone());
            map.insert("email_verified".to_owned(), self.email_verified.to_string());
        }
        if let Some(phone) = &self.phone_number {
            map.insert("phone_number".to_owned(), phone.clone());
            map.insert(
                "phone_number_verified".to_owned(),
                self.phone_number_verified.to_string(),
            );
        }
        map
    }

    pub(crate) fn device_info(&self) -> Vec<DeviceInfo> {
        self.devices
            .values()
            .map(|d| DeviceInfo {
                device_key: d.key.clone(),
                device_group_key: self.device_group_key.clone(),
                remembered: d.remembered,
                confirmed: d.confirmed,
                name: d.name.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_never_print_their_codes_or_secrets() {
        let login = Login {
            pool_id: "us-east-1_P".into(),
            client_id: "c".into(),
            username: "u".into(),
            device_key: None,
            passwordless: false,
            custom: false,
            device_authenticated: false,
        };
        for step in [
            Step::Mfa {
                kind: MfaKind::Sms,
                code: Some("314159".into()),
                wrong: 1,
            },
            Step::SignInCode {
                challenge: "EMAIL_OTP",
                code: "314159".into(),
                wrong: 0,
            },
            Step::MfaSetup {
                secret: Some("JBSWY3DPEHPK3PXP314159".into()),
                verified: false,
            },
        ] {
            let session = Session {
                login: login.clone(),
                step,
                expires_at: 0,
                used: false,
            };
            let printed = format!("{session:?} {session:#?}");
            assert!(!printed.contains("314159"), "{printed}");
            assert!(printed.contains("[REDACTED]"), "{printed}");
        }
        let printed = format!(
            "{:?}",
            Step::Mfa {
                kind: MfaKind::Totp,
                code: None,
                wrong: 0
            }
        );
        assert!(printed.contains("code: None"), "{printed}");
    }
}
