//! Cognito operations over [`State`]: request parsing, dispatch and the steps they share.
//!
//! Each call runs as one synchronous transaction under the state lock (see `server.rs`).

mod auth;
mod challenges;
mod devices;
mod identity;
mod mfa;
mod oauth;
mod srp_auth;
mod sts;
mod tokens;

pub(crate) use identity::{IDENTITY_OPERATIONS, identity_status};
pub(crate) use oauth::{
    AuthorizeError, AuthorizeRequest, BasicAuth, Form, LoginOutcome, OAuthError,
};
pub(crate) use sts::{AssumedRole, CallerIdentity, StsError};
pub(crate) use tokens::revoke_user;

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::error::{
    ATTEMPTS_EXCEEDED, ApiError, ApiResult, INCORRECT_CREDENTIALS, SESSION_EXPIRED, SESSION_USED,
    USER_DISABLED,
};
use crate::ids;
use crate::jwt::KeySet;
use crate::state::{Client, Login, PoolCfg, SentMessage, Session, State, Step, User};

/// The operations this emulator implements (anything else is UnknownOperationException).
pub(crate) const OPERATIONS: [&str; 14] = [
    "InitiateAuth",
    "RespondToAuthChallenge",
    "GetTokensFromRefreshToken",
    "RevokeToken",
    "GlobalSignOut",
    "GetUser",
    "ConfirmDevice",
    "UpdateDeviceStatus",
    "ForgetDevice",
    "ListDevices",
    "GetDevice",
    "AssociateSoftwareToken",
    "VerifySoftwareToken",
    "SetUserMFAPreference",
];

/// Runs one operation. `body` is the raw JSON request.
pub(crate) fn dispatch(
    st: &mut State,
    keys: &KeySet,
    now: i64,
    operation: &str,
    body: &[u8],
) -> ApiResult<Value> {
    if !OPERATIONS.contains(&operation) {
        return Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation {operation}"),
        ));
    }
    let req = Req::parse(body)?;
    st.purge(now);
    let mut cx = Ctx {
        st,
        keys,
        now,
        rng: rand::thread_rng(),
    };
    match operation {
        "InitiateAuth" => cx.initiate_auth(&req),
        "RespondToAuthChallenge" => cx.respond_to_auth_challenge(&req),
        "GetTokensFromRefreshToken" => cx.get_tokens_from_refresh_token(&req),
        "RevokeToken" => cx.revoke_token(&req),
        "GlobalSignOut" => cx.global_sign_out(&req),
        "GetUser" => cx.get_user(&req),
        "ConfirmDevice" => cx.confirm_device(&req),
        "UpdateDeviceStatus" => cx.update_device_status(&req),
        "ForgetDevice" => cx.forget_device(&req),
        "ListDevices" => cx.list_devices(&req),
        "GetDevice" => cx.get_device(&req),
        "AssociateSoftwareToken" => cx.associate_software_token(&req),
        "VerifySoftwareToken" => cx.verify_software_token(&req),
        "SetUserMFAPreference" => cx.set_user_mfa_preference(&req),
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation {other}"),
        )),
    }
}

/// Runs one identity-pool operation (`AWSCognitoIdentityService.<operation>`).
pub(crate) fn dispatch_identity(
    st: &mut State,
    keys: &KeySet,
    now: i64,
    operation: &str,
    body: &[u8],
) -> ApiResult<Value> {
    if !IDENTITY_OPERATIONS.contains(&operation) {
        return Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation {operation}"),
        ));
    }
    let req = Req::parse(body)?;
    transact(st, keys, now, |cx| match operation {
        "GetId" => cx.get_id(&req),
        "GetCredentialsForIdentity" => cx.get_credentials_for_identity(&req),
        "GetOpenIdToken" => cx.get_open_id_token(&req),
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation {other}"),
        )),
    })
}

/// Runs `f` as one transaction over the world (the OAuth and identity endpoints).
pub(crate) fn transact<T>(
    st: &mut State,
    keys: &KeySet,
    now: i64,
    f: impl FnOnce(&mut Ctx<'_>) -> T,
) -> T {
    st.purge(now);
    let mut cx = Ctx {
        st,
        keys,
        now,
        rng: rand::thread_rng(),
    };
    f(&mut cx)
}

/// A JSON 1.1 request body.
pub(crate) struct Req(Map<String, Value>);

impl Req {
    fn parse(body: &[u8]) -> ApiResult<Req> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Req(Map::new()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Req(map)),
            _ => Err(ApiError::new(
                "SerializationException",
                "Unable to parse the request body as a JSON object",
            )),
        }
    }

    /// A string member; `null` counts as absent.
    fn opt(&self, member: &str) -> ApiResult<Option<&str>> {
        match self.0.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(type_error(member)),
        }
    }

    /// A required string member, with the service's validation message when absent.
    fn required(&self, member: &str) -> ApiResult<&str> {
        self.opt(member)?.ok_or_else(|| {
            let mut name = member.to_owned();
            if let Some(first) = name.get_mut(0..1) {
                first.make_ascii_lowercase();
            }
            ApiError::invalid_parameter(format!(
                "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }

    /// A map<string,string> member (AuthParameters, ChallengeResponses).
    fn map(&self, member: &str) -> ApiResult<BTreeMap<String, String>> {
        match self.0.get(member) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(type_error(member)),
                })
                .collect(),
            Some(_) => Err(type_error(member)),
        }
    }

    fn object(&self, member: &str) -> ApiResult<Option<&Map<String, Value>>> {
        match self.0.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(type_error(member)),
        }
    }
}

fn type_error(member: &str) -> ApiError {
    ApiError::new(
        "SerializationException",
        format!("Unexpected value type for member {member}"),
    )
}

/// A required key of AuthParameters or ChallengeResponses.
fn param<'a>(params: &'a BTreeMap<String, String>, key: &str) -> ApiResult<&'a str> {
    params
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::missing(key))
}

/// One operation's view of the world.
pub(crate) struct Ctx<'a> {
    st: &'a mut State,
    keys: &'a KeySet,
    now: i64,
    rng: rand::rngs::ThreadRng,
}

impl Ctx<'_> {
    fn client(&self, client_id: &str) -> ApiResult<Client> {
        self.st
            .client_pools
            .get(client_id)
            .and_then(|pool_id| self.st.pools.get(pool_id))
            .and_then(|pool| pool.clients.get(client_id))
            .cloned()
            .ok_or_else(|| {
                ApiError::resource_not_found(format!(
                    "User pool client {client_id} does not exist."
                ))
            })
    }

    fn pool_cfg(&self, pool_id: &str) -> PoolCfg {
        self.st.pools[pool_id].cfg.clone()
    }

    fn user(&self, pool_id: &str, username: &str) -> ApiResult<&User> {
        self.st
            .pools
            .get(pool_id)
            .and_then(|p| p.users.get(username))
            .ok_or_else(ApiError::user_not_found)
    }

    fn user_mut(&mut self, pool_id: &str, username: &str) -> ApiResult<&mut User> {
        self.st
            .pools
            .get_mut(pool_id)
            .and_then(|p| p.users.get_mut(username))
            .ok_or_else(ApiError::user_not_found)
    }

    fn require_flow(&self, client: &Client, allow: &str, flow: &str) -> ApiResult<()> {
        if client.flows.contains(allow) {
            Ok(())
        } else {
            Err(ApiError::invalid_parameter(format!(
                "{flow} flow not enabled for this client"
            )))
        }
    }

    /// SECRET_HASH = Base64(HMAC-SHA256(secret, username ‖ client_id)), checked for secret clients.
    fn check_secret_hash(
        &self,
        client: &Client,
        username: &str,
        provided: Option<&String>,
    ) -> ApiResult<()> {
        let Some(secret) = &client.secret else {
            return Ok(());
        };
        let Some(provided) = provided else {
            return Err(ApiError::not_authorized(format!(
                "Client {} is configured with secret but SECRET_HASH was not received",
                client.id
            )));
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(username.as_bytes());
        mac.update(client.id.as_bytes());
        let matches = STANDARD
            .decode(provided)
            .is_ok_and(|tag| mac.verify_slice(&tag).is_ok());
        if matches {
            Ok(())
        } else {
            Err(ApiError::not_authorized(format!(
                "Unable to verify secret hash for client {}",
                client.id
            )))
        }
    }

    /// Starts a challenge session for `login`.
    fn new_session(&mut self, login: Login, step: Step) -> ApiResult<String> {
        let client = self.client(&login.client_id)?;
        let id = ids::session(&mut self.rng);
        let session = Session {
            login,
            step,
            expires_at: self.now + client.session_ttl,
            used: false,
        };
        self.st.sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// Looks up a live, unused session; `client` (when the call names one) must match.
    fn session(&self, id: Option<&str>, client: Option<&Client>) -> ApiResult<(String, Session)> {
        let id = id.ok_or_else(|| ApiError::missing("Session"))?;
        let session = self
            .st
            .sessions
            .get(id)
            .filter(|s| client.is_none_or(|c| c.id == s.login.client_id))
            .ok_or_else(|| ApiError::not_authorized(SESSION_EXPIRED))?;
        if session.used {
            return Err(ApiError::not_authorized(SESSION_USED));
        }
        if self.now > session.expires_at {
            return Err(ApiError::not_authorized(SESSION_EXPIRED));
        }
        Ok((id.to_owned(), session.clone()))
    }

    fn consume_session(&mut self, id: &str) {
        if let Some(session) = self.st.sessions.get_mut(id) {
            session.used = true;
        }
    }

    fn update_step(&mut self, id: &str, step: Step) {
        if let Some(session) = self.st.sessions.get_mut(id) {
            session.step = step;
        }
    }

    /// A challenge answer with a fresh session.
    fn challenge(&mut self, login: Login, step: Step, parameters: Value) -> ApiResult<Value> {
        let name = step.challenge();
        let session = self.new_session(login, step)?;
        Ok(json!({ "ChallengeName": name, "Session": session, "ChallengeParameters": parameters }))
    }

    /// Fails while the user is locked out.
    fn check_lockout(&mut self, pool_id: &str, username: &str) -> ApiResult<()> {
        let now = self.now;
        let user = self.user_mut(pool_id, username)?;
        match user.locked_until {
            Some(until) if now < until => Err(ApiError::not_authorized(ATTEMPTS_EXCEEDED)),
            Some(_) => {
                user.locked_until = None;
                user.failed_attempts = 0;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a wrong password; at the pool's threshold the user is locked out for a while.
    fn record_failure(&mut self, pool_id: &str, username: &str) {
        let cfg = self.pool_cfg(pool_id);
        let now = self.now;
        if let Ok(user) = self.user_mut(pool_id, username) {
            user.failed_attempts += 1;
            if user.failed_attempts >= cfg.lockout_threshold {
                user.locked_until = Some(now + cfg.lockout_seconds);
                tracing::info!(pool = %pool_id, user = %username, "user locked out after repeated wrong passwords");
            }
        }
    }

    /// Checks a plain password against the stored verifier, with lockout.
    fn verify_password(&mut self, pool_id: &str, username: &str, password: &str) -> ApiResult<()> {
        let user = self.user(pool_id, username)?;
        if !user.enabled {
            return Err(ApiError::not_authorized(USER_DISABLED));
        }
        self.check_lockout(pool_id, username)?;
        let realm = self.pool_cfg(pool_id).name;
        if self
            .user(pool_id, username)?
            .verifier
            .matches(&realm, username, password)
        {
            self.user_mut(pool_id, username)?.failed_attempts = 0;
            Ok(())
        } else {
            self.record_failure(pool_id, username);
            Err(ApiError::not_authorized(INCORRECT_CREDENTIALS))
        }
    }

    /// "Sends" a six-digit code by SMS or email and returns (code, masked destination).
    fn send_code(&mut self, login: &Login, email: bool) -> ApiResult<(String, String)> {
        let user = self.user(&login.pool_id, &login.username)?;
        let destination = if email {
            user.email.clone()
        } else {
            user.phone_number.clone()
        };
        let destination = destination.ok_or_else(|| {
            ApiError::invalid_parameter(if email {
                "User has no email address"
            } else {
                "User has no phone number"
            })
        })?;
        let code = ids::code(&mut self.rng);
        self.st.messages.push(SentMessage {
            pool_id: login.pool_id.clone(),
            username: login.username.clone(),
            medium: if email { "EMAIL" } else { "SMS" }.to_owned(),
            destination: destination.clone(),
            code: code.clone(),
        });
        tracing::info!(pool = %login.pool_id, user = %login.username, medium = if email { "EMAIL" } else { "SMS" }, "code sent");
        Ok((code, mask(&destination, email)))
    }

    fn issuer(&self, pool_id: &str) -> String {
        self.st.pools[pool_id].cfg.issuer()
    }
}

/// CODE_DELIVERY_DESTINATION: `a***@e***` or `+*******1234`.
fn mask(destination: &str, email: bool) -> String {
    if email {
        let (local, domain) = destination.split_once('@').unwrap_or((destination, ""));
        let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
        format!("{}***@{}***", first(local), first(domain))
    } else {
        let tail: String = destination
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("+*******{tail}")
    }
}
