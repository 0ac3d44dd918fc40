//! The TOML seed (design.md §9 plus extras): pools, app clients and users, parsed strictly.
//!
//! Unknown keys and bad enum values are rejected by the TOML layer with their line and column;
//! range and shape checks after parsing name the offending key, e.g. `pools[0].clients[1].session_ttl`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// A validated seed: what the emulator starts with.
#[derive(Clone)]
pub struct Seed {
    pub(crate) pools: Vec<PoolSeed>,
    pub(crate) identity_pools: Vec<IdentityPoolSeed>,
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Seeds hold passwords and client secrets: show only the shape.
        let mut list = f.debug_list();
        for pool in &self.pools {
            list.entry(&format_args!(
                "{} ({} clients, {} users)",
                pool.id,
                pool.clients.len(),
                pool.users.len()
            ));
        }
        for pool in &self.identity_pools {
            list.entry(&format_args!("identity pool {}", pool.id));
        }
        list.finish()
    }
}

/// Why a seed was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// Not TOML, an unknown key, a wrong type or an unknown enum value (with line and column).
    #[error("invalid seed: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value out of range or of the wrong shape.
    #[error("invalid seed: `{key}`: {message}")]
    Invalid {
        /// The dotted path of the key, e.g. `pools[0].users[2].totp_secret`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The seed file could not be read.
    #[error("cannot read seed file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Seed {
    /// Parses and validates a seed.
    pub fn from_toml(text: &str) -> Result<Seed, SeedError> {
        let file: SeedFile = toml::from_str(text)?;
        validate(&file.pools)?;
        validate_identity_pools(&file.pools, &file.identity_pools)?;
        Ok(Seed {
            pools: file.pools,
            identity_pools: file.identity_pools,
        })
    }

    /// Reads, parses and validates a seed file.
    pub fn from_file(path: &Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Seed::from_toml(&text)
    }

    /// The pool IDs, in seed order.
    pub fn pool_ids(&self) -> Vec<&str> {
        self.pools.iter().map(|p| p.id.as_str()).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    pools: Vec<PoolSeed>,
    #[serde(default)]
    identity_pools: Vec<IdentityPoolSeed>,
}

/// An identity pool (Cognito Identity) over one user pool and app client.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityPoolSeed {
    /// `<region>:<uuid>`.
    pub(crate) id: String,
    /// The user pool whose ID tokens it accepts.
    pub(crate) user_pool: String,
    /// The app client those ID tokens must be for (`aud`).
    pub(crate) client_id: String,
    /// Lifetime of the AWS credentials it hands out, in seconds.
    #[serde(default = "defaults::credentials_ttl")]
    pub(crate) credentials_ttl: u64,
    pub(crate) roles: IdentityRoles,
    /// Whether the basic (classic) flow, GetOpenIdToken + AssumeRoleWithWebIdentity, is allowed.
    #[serde(default)]
    pub(crate) allow_basic_flow: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityRoles {
    pub(crate) authenticated: String,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolSeed {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) device_tracking: DeviceTracking,
    #[serde(default)]
    pub(crate) mfa: PoolMfa,
    /// `["email"]` makes email the sign-in name; internal usernames are then the `sub`.
    #[serde(default)]
    pub(crate) username_attributes: Vec<String>,
    #[serde(default)]
    pub(crate) password_policy: PasswordPolicy,
    #[serde(default = "defaults::lockout_threshold")]
    pub(crate) lockout_threshold: u32,
    #[serde(default = "defaults::lockout_seconds")]
    pub(crate) lockout_seconds: u64,
    /// What MFA_SETUP offers in MFAS_CAN_SETUP.
    #[serde(default = "defaults::mfa_setup")]
    pub(crate) mfa_setup: Vec<String>,
    #[serde(default)]
    pub(crate) clients: Vec<ClientSeed>,
    #[serde(default)]
    pub(crate) users: Vec<UserSeed>,
    /// Resource servers: custom OAuth scopes `<identifier>/<scope>`.
    #[serde(default)]
    pub(crate) resource_servers: Vec<ResourceServerSeed>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourceServerSeed {
    pub(crate) identifier: String,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeviceTracking {
    #[default]
    Off,
    Always,
    UserOptIn,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PoolMfa {
    #[default]
    Off,
    Optional,
    On,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PasswordPolicy {
    pub(crate) min_length: usize,
    pub(crate) require_uppercase: bool,
    pub(crate) require_lowercase: bool,
    pub(crate) require_numbers: bool,
    pub(crate) require_symbols: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientSeed {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
    #[serde(default = "defaults::token_ttl")]
    pub(crate) access_token_ttl: u64,
    #[serde(default = "defaults::token_ttl")]
    pub(crate) id_token_ttl: u64,
    #[serde(default = "defaults::refresh_token_ttl")]
    pub(crate) refresh_token_ttl: u64,
    #[serde(default = "defaults::session_ttl")]
    pub(crate) session_ttl: u64,
    #[serde(default)]
    pub(crate) rotation: RotationSeed,
    /// ExplicitAuthFlows (`ALLOW_*`); default: all of them.
    pub(crate) flows: Option<Vec<String>>,
    /// Default: on unless rotation is enabled (rotating clients cannot use REFRESH_TOKEN_AUTH).
    pub(crate) refresh_token_auth_enabled: Option<bool>,
    #[serde(default = "defaults::yes")]
    pub(crate) prevent_user_existence_errors: bool,
    #[serde(default = "defaults::yes")]
    pub(crate) token_revocation: bool,
    /// Whether PASSWORD_VERIFIER / DEVICE_PASSWORD_VERIFIER challenges carry a Session.
    #[serde(default)]
    pub(crate) srp_challenge_session: bool,
    /// USER_AUTH first factors offered; default PASSWORD, PASSWORD_SRP, EMAIL_OTP, SMS_OTP.
    pub(crate) first_auth_factors: Option<Vec<String>>,
    /// OAuth redirect URIs, matched exactly at `/oauth2/authorize` and `/oauth2/token`.
    #[serde(default)]
    pub(crate) callback_urls: Vec<String>,
    /// AllowedOAuthFlows: `code`, `client_credentials`.
    #[serde(default)]
    pub(crate) allowed_oauth_flows: Vec<String>,
    /// AllowedOAuthScopes: standard ones and `<resource server>/<scope>`.
    #[serde(default)]
    pub(crate) allowed_scopes: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotationSeed {
    #[serde(default)]
    pub(crate) enabled: bool,
    #[serde(default)]
    pub(crate) grace_seconds: u64,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSeed {
    /// The sign-in name; in email pools it defaults to (and must equal) `email`.
    pub(crate) username: Option<String>,
    pub(crate) password: String,
    #[serde(default)]
    pub(crate) status: UserStatus,
    #[serde(default = "defaults::yes")]
    pub(crate) enabled: bool,
    pub(crate) email: Option<String>,
    #[serde(default = "defaults::yes")]
    pub(crate) email_verified: bool,
    pub(crate) phone_number: Option<String>,
    #[serde(default = "defaults::yes")]
    pub(crate) phone_number_verified: bool,
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) mfa: UserMfa,
    #[serde(default = "defaults::yes")]
    pub(crate) mfa_preferred: bool,
    #[serde(default)]
    pub(crate) sms_mfa: bool,
    #[serde(default)]
    pub(crate) email_mfa: bool,
    #[serde(default)]
    pub(crate) totp_mfa: bool,
    pub(crate) totp_secret: Option<String>,
    #[serde(default)]
    pub(crate) attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) required_attributes: Vec<String>,
    pub(crate) custom_challenge_answer: Option<String>,
    #[serde(default)]
    pub(crate) groups: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub(crate) enum UserStatus {
    #[default]
    #[serde(rename = "CONFIRMED")]
    Confirmed,
    #[serde(rename = "FORCE_CHANGE_PASSWORD")]
    ForceChangePassword,
    #[serde(rename = "RESET_REQUIRED")]
    ResetRequired,
    #[serde(rename = "UNCONFIRMED")]
    Unconfirmed,
}

impl UserStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UserStatus::Confirmed => "CONFIRMED",
            UserStatus::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
            UserStatus::ResetRequired => "RESET_REQUIRED",
            UserStatus::Unconfirmed => "UNCONFIRMED",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UserMfa {
    #[default]
    None,
    Totp,
    Sms,
    Email,
}

pub(crate) const ALL_FLOWS: [&str; 5] = [
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_CUSTOM_AUTH",
    "ALLOW_USER_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
];
const ALL_FIRST_FACTORS: [&str; 4] = ["PASSWORD", "PASSWORD_SRP", "EMAIL_OTP", "SMS_OTP"];
const MFA_SETUP_TYPES: [&str; 3] = ["SOFTWARE_TOKEN_MFA", "EMAIL_OTP", "SMS_MFA"];
const OAUTH_FLOWS: [&str; 2] = ["code", "client_credentials"];
/// The scopes every pool knows without a resource server.
pub(crate) const STANDARD_SCOPES: [&str; 5] = [
    "openid",
    "email",
    "phone",
    "profile",
    "aws.cognito.signin.user.admin",
];

impl ClientSeed {
    pub(crate) fn flows(&self) -> BTreeSet<String> {
        match &self.flows {
            Some(flows) => flows.iter().cloned().collect(),
            None => ALL_FLOWS.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    pub(crate) fn first_auth_factors(&self) -> Vec<String> {
        match &self.first_auth_factors {
            Some(factors) => factors.clone(),
            None => ALL_FIRST_FACTORS.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    pub(crate) fn refresh_token_auth(&self) -> bool {
        self.refresh_token_auth_enabled
            .unwrap_or(!self.rotation.enabled && self.flows().contains("ALLOW_REFRESH_TOKEN_AUTH"))
    }
}

mod defaults {
    pub(super) fn lockout_threshold() -> u32 {
        5
    }
    pub(super) fn lockout_seconds() -> u64 {
        900
    }
    pub(super) fn mfa_setup() -> Vec<String> {
        vec!["SOFTWARE_TOKEN_MFA".to_owned()]
    }
    pub(super) fn token_ttl() -> u64 {
        3600
    }
    pub(super) fn refresh_token_ttl() -> u64 {
        30 * 86_400
    }
    pub(super) fn session_ttl() -> u64 {
        180
    }
    pub(super) fn credentials_ttl() -> u64 {
        3600
    }
    pub(super) fn yes() -> bool {
        true
    }
}

mod validate;

pub(crate) use validate::{role_account, split_pool_id};
use validate::{validate, validate_identity_pools};

#[cfg(test)]
mod tests;
