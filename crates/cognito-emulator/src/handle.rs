//! [`Handle`]: the test-facing control surface of a running emulator (also behind `/_control/`).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::clock::Clock;
use crate::faults::{Fault, FaultQueue, Stats};
use crate::jwt::KeySet;
use crate::seed::UserStatus;
use crate::state::{DeviceInfo, SentMessage, State, Step};
use crate::{ops, srp, totp};

/// Everything one emulator shares between its connections and its handles.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) keys: KeySet,
    pub(crate) clock: Clock,
    pub(crate) faults: Mutex<FaultQueue>,
    pub(crate) stats: Mutex<Stats>,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the state consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Runs one Cognito operation as a transaction.
    pub(crate) fn call(
        &self,
        operation: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, crate::error::ApiError> {
        let now = self.clock.unix();
        let mut state = lock(&self.state);
        ops::dispatch(&mut state, &self.keys, now, operation, body)
    }
}

/// The last code sent to the user called `username` in any pool (see [`Handle::last_code`]).
fn last_code(state: &State, username: &str) -> Option<String> {
    let internal: Vec<(&str, &str)> = state
        .pools
        .keys()
        .filter_map(|pool_id| {
            state
                .find_user_loose(pool_id, username)
                .map(|u| (pool_id.as_str(), u.username.as_str()))
        })
        .collect();
    state
        .messages
        .iter()
        .rev()
        .find(|m| {
            internal
                .iter()
                .any(|(pool, user)| *pool == m.pool_id && *user == m.username)
        })
        .map(|m| m.code.clone())
}

impl Shared {
    /// Runs one identity-pool operation as a transaction.
    pub(crate) fn call_identity(
        &self,
        operation: &str,
        body: &[u8],
    ) -> Result<serde_json::Value, crate::error::ApiError> {
        let now = self.clock.unix();
        let mut state = lock(&self.state);
        ops::dispatch_identity(&mut state, &self.keys, now, operation, body)
    }

    /// Runs `f` as one transaction over the world, by the emulator clock.
    pub(crate) fn transact<T>(&self, f: impl FnOnce(&mut ops::Ctx<'_>) -> T) -> T {
        let now = self.clock.unix();
        let mut state = lock(&self.state);
        ops::transact(&mut state, &self.keys, now, f)
    }
}

/// Inspect and steer a running emulator: counters, faults, the clock, sent codes, users, devices.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("clock_offset", &self.shared.clock.offset())
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// Calls of `operation` so far (any outcome, including injected faults).
    pub fn calls(&self, operation: &str) -> u64 {
        lock(&self.shared.stats).calls(operation)
    }

    /// Calls per operation and outcome.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// Forgets all counters.
    pub fn reset_stats(&self) {
        *lock(&self.shared.stats) = Stats::default();
    }

    /// Queues a fault for the next `fault.times` calls of `fault.operation`.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Drops all pending faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Faults not yet used up.
    pub fn pending_faults(&self) -> Vec<Fault> {
        lock(&self.shared.faults).pending()
    }

    /// Sets the emulator clock to host time + `seconds`.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.shared.clock.set_offset(seconds);
    }

    /// Moves the emulator clock forward (or back, if negative) by `seconds`.
    pub fn advance_clock(&self, seconds: i64) {
        self.shared.clock.advance(seconds);
    }

    /// The current clock offset in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.shared.clock.offset()
    }

    /// The emulator's current time.
    pub fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    /// Every SMS and email code "sent" so far, oldest first.
    pub fn messages(&self) -> Vec<SentMessage> {
        lock(&self.shared.state).messages.clone()
    }

    /// Forgets the sent messages.
    pub fn clear_messages(&self) {
        lock(&self.shared.state).messages.clear();
    }

    /// The last code sent to the user called `username` (internal username, sign-in name, email or
    /// sub) in any pool.
    pub fn last_code(&self, username: &str) -> Option<String> {
        last_code(&lock(&self.shared.state), username)
    }

    /// What `/_control/user` shows, read under one lock: `{username, sub, status, devices,
    /// last_code}`, or `None` for an unknown user.
    pub(crate) fn user_report(&self, pool_id: &str, username: &str) -> Option<serde_json::Value> {
        let state = lock(&self.shared.state);
        let user = state.find_user_loose(pool_id, username)?;
        Some(serde_json::json!({
            "username": user.username,
            "sub": user.sub,
            "status": user.status.as_str(),
            "devices": user.device_info(),
            "last_code": last_code(&state, username),
        }))
    }

    /// The TOTP code now (by the emulator clock) for the user's secret, seeded or set up.
    pub fn totp_code(&self, pool_id: &str, username: &str) -> Option<String> {
        let now = u64::try_from(self.shared.clock.unix()).ok()?;
        self.totp_code_at(pool_id, username, now)
    }

    /// The TOTP code at `unix_time` for the user's secret: the verified one, else one associated
    /// but not yet verified (AssociateSoftwareToken by access token, or in an MFA_SETUP session).
    pub fn totp_code_at(&self, pool_id: &str, username: &str, unix_time: u64) -> Option<String> {
        let state = lock(&self.shared.state);
        let user = state.find_user_loose(pool_id, username)?;
        let in_setup = || {
            state
                .sessions
                .values()
                .filter(|s| {
                    !s.used && s.login.pool_id == pool_id && s.login.username == user.username
                })
                .filter_map(|s| match &s.step {
                    Step::MfaSetup {
                        secret: Some(secret),
                        ..
                    } => Some((s.expires_at, secret.clone())),
                    _ => None,
                })
                .max_by_key(|(expires_at, _)| *expires_at)
                .map(|(_, secret)| secret)
        };
        let secret = user
            .totp_secret
            .clone()
            .or_else(|| user.pending_totp_secret.clone())
            .or_else(in_setup)?;
        totp::totp(&secret, unix_time)
    }

    /// `CONFIRMED`, `FORCE_CHANGE_PASSWORD`, `RESET_REQUIRED` or `UNCONFIRMED`.
    pub fn user_status(&self, pool_id: &str, username: &str) -> Option<String> {
        let state = lock(&self.shared.state);
        state
            .find_user_loose(pool_id, username)
            .map(|u| u.status.as_str().to_owned())
    }

    /// The internal username (the `sub` in email pools).
    pub fn internal_username(&self, pool_id: &str, username: &str) -> Option<String> {
        let state = lock(&self.shared.state);
        state
            .find_user_loose(pool_id, username)
            .map(|u| u.username.clone())
    }

    /// The user's `sub`.
    pub fn user_sub(&self, pool_id: &str, username: &str) -> Option<String> {
        let state = lock(&self.shared.state);
        state
            .find_user_loose(pool_id, username)
            .map(|u| u.sub.clone())
    }

    /// The user's devices (tracked, confirmed or remembered).
    pub fn devices(&self, pool_id: &str, username: &str) -> Vec<DeviceInfo> {
        let state = lock(&self.shared.state);
        state
            .find_user_loose(pool_id, username)
            .map(|u| u.device_info())
            .unwrap_or_default()
    }

    /// Sets a user's status (as an administrator would), e.g. `RESET_REQUIRED`. Returns false for an
    /// unknown user or status.
    pub fn set_user_status(&self, pool_id: &str, username: &str, status: &str) -> bool {
        let status = match status {
            "CONFIRMED" => UserStatus::Confirmed,
            "FORCE_CHANGE_PASSWORD" => UserStatus::ForceChangePassword,
            "RESET_REQUIRED" => UserStatus::ResetRequired,
            "UNCONFIRMED" => UserStatus::Unconfirmed,
            _ => return false,
        };
        let mut state = lock(&self.shared.state);
        state
            .find_user_loose_mut(pool_id, username)
            .map(|u| u.status = status)
            .is_some()
    }

    /// Enables or disables a user (disabled users get "User is disabled.").
    pub fn set_user_enabled(&self, pool_id: &str, username: &str, enabled: bool) -> bool {
        let mut state = lock(&self.shared.state);
        state
            .find_user_loose_mut(pool_id, username)
            .map(|u| u.enabled = enabled)
            .is_some()
    }

    /// Sets a user's password (AdminSetUserPassword with Permanent = true).
    pub fn set_password(&self, pool_id: &str, username: &str, password: &str) -> bool {
        let mut state = lock(&self.shared.state);
        let Some(realm) = state.pools.get(pool_id).map(|p| p.cfg.name.clone()) else {
            return false;
        };
        let Some(user) = state.find_user_loose_mut(pool_id, username) else {
            return false;
        };
        let salt = srp::user_salt(&mut rand::thread_rng(), rand::random());
        user.verifier =
            srp::Verifier::from_password(salt, &realm, &user.username.clone(), password);
        user.status = UserStatus::Confirmed;
        true
    }

    /// Revokes every sign-in of the user (AdminUserGlobalSignOut).
    pub fn global_sign_out(&self, pool_id: &str, username: &str) -> bool {
        let mut state = lock(&self.shared.state);
        let Some(internal) = state
            .find_user_loose(pool_id, username)
            .map(|u| u.username.clone())
        else {
            return false;
        };
        ops::revoke_user(&mut state.families, pool_id, &internal);
        true
    }

    /// The identity id GetId gave the user `username` of `identity_pool_id`'s user pool, if any.
    pub fn identity_id(&self, identity_pool_id: &str, username: &str) -> Option<String> {
        let state = lock(&self.shared.state);
        let pool = state.identity_pools.get(identity_pool_id)?;
        let sub = state
            .find_user_loose(&pool.user_pool, username)?
            .sub
            .clone();
        state
            .identities
            .iter()
            .find(|(_, i)| i.identity_pool == identity_pool_id && i.sub == sub)
            .map(|(id, _)| id.clone())
    }

    /// The JWKS of `pool_id` (the same two keys serve every pool of one emulator).
    pub fn jwks_json(&self, pool_id: &str) -> String {
        let known = lock(&self.shared.state).pools.contains_key(pool_id);
        if known {
            self.shared.keys.jwks().to_string()
        } else {
            r#"{"keys":[]}"#.to_owned()
        }
    }

    /// `https://cognito-idp.<region>.amazonaws.com/<pool_id>`, the `iss` of the pool's tokens.
    pub fn issuer(&self, pool_id: &str) -> Option<String> {
        let state = lock(&self.shared.state);
        Some(state.pools.get(pool_id)?.cfg.issuer())
    }
}
