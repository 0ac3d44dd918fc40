//! The SRP exchanges, verified from the server's side: PASSWORD_VERIFIER (USER_SRP_AUTH, CUSTOM_AUTH
//! with SRP_A, USER_AUTH's PASSWORD_SRP) and DEVICE_SRP_AUTH → DEVICE_PASSWORD_VERIFIER.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use num_bigint::BigUint;
use num_traits::Zero;
use serde_json::{Value, json};

use super::auth::names_internal_user;
use super::{Ctx, param};
use crate::error::{
    ApiError, ApiResult, DEVICE_NOT_FOUND, INCORRECT_CREDENTIALS, SESSION_EXPIRED, SESSION_USED,
    TIMESTAMP_FORMAT, USER_DISABLED,
};
use crate::srp::{self, Handshake};
use crate::state::{Client, Login, SrpKind, SrpPending, Step};
use crate::{ids, timefmt};

/// How far a TIMESTAMP may be from the emulator's clock.
const TIMESTAMP_TOLERANCE_SECONDS: i64 = 300;

impl Ctx<'_> {
    /// PASSWORD_VERIFIER for a user (or a fake one for an unknown user).
    pub(super) fn start_srp(
        &mut self,
        client: &Client,
        name: &str,
        srp_a: &str,
        device_key: Option<&str>,
        custom: bool,
    ) -> ApiResult<Value> {
        let a = parse_srp_a(srp_a)?;
        let realm = self.pool_cfg(&client.pool_id).name;
        if self.st.resolve_user(&client.pool_id, name).is_none() {
            if !client.prevent_user_existence_errors {
                return Err(ApiError::user_not_found());
            }
            // Hide the user's absence: a challenge with a random (often negative) salt that fails later.
            let login = Login {
                pool_id: client.pool_id.clone(),
                client_id: client.id.clone(),
                username: name.to_owned(),
                device_key: None,
                passwordless: false,
                custom,
                device_authenticated: false,
            };
            let handshake = Handshake::fake(&mut self.rng);
            let salt_hex = srp::fake_salt_hex(&mut self.rng);
            return self.srp_challenge(client, login, SrpKind::Fake, realm, a, handshake, salt_hex);
        }
        let mut login = self.known_user(client, name, device_key)?;
        login.custom = custom;
        let user = self.user(&login.pool_id, &login.username)?;
        let salt_hex = user.verifier.salt_hex();
        let handshake = Handshake::start(&user.verifier.clone(), &mut self.rng);
        self.srp_challenge(client, login, SrpKind::User, realm, a, handshake, salt_hex)
    }

    /// Records the exchange under a fresh SECRET_BLOCK and answers with the verifier challenge.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per SRP kind; a struct would only rename them"
    )]
    fn srp_challenge(
        &mut self,
        client: &Client,
        login: Login,
        kind: SrpKind,
        realm: String,
        a: BigUint,
        handshake: Handshake,
        salt_hex: String,
    ) -> ApiResult<Value> {
        let block = ids::secret_block(&mut self.rng);
        let session = client
            .srp_challenge_session
            .then(|| ids::session(&mut self.rng));
        let (challenge, user_id) = match &kind {
            SrpKind::Device { device_key } => ("DEVICE_PASSWORD_VERIFIER", device_key.clone()),
            _ => ("PASSWORD_VERIFIER", login.username.clone()),
        };
        let mut parameters = json!({
            "SALT": salt_hex,
            "SRP_B": handshake.b_hex(),
            "SECRET_BLOCK": block,
            "USERNAME": login.username,
        });
        match &kind {
            SrpKind::Device { device_key } => parameters["DEVICE_KEY"] = json!(device_key),
            _ => parameters["USER_ID_FOR_SRP"] = json!(login.username),
        }
        let pending = SrpPending {
            login,
            kind,
            realm,
            user_id,
            a,
            handshake,
            session: session.clone(),
            expires_at: self.now + client.session_ttl,
            used: false,
        };
        self.st.srp.insert(block, pending);
        let mut answer = json!({ "ChallengeName": challenge, "ChallengeParameters": parameters });
        if let Some(session) = session {
            answer["Session"] = json!(session);
        }
        Ok(answer)
    }

    /// Verifies PASSWORD_CLAIM_SIGNATURE from the server's side.
    pub(super) fn respond_srp(
        &mut self,
        client: &Client,
        challenge: &str,
        responses: &BTreeMap<String, String>,
        session: Option<&str>,
    ) -> ApiResult<Value> {
        let username = param(responses, "USERNAME")?;
        let block = param(responses, "PASSWORD_CLAIM_SECRET_BLOCK")?;
        let signature = param(responses, "PASSWORD_CLAIM_SIGNATURE")?;
        let timestamp = param(responses, "TIMESTAMP")?;
        let now = self.now;
        let pending = self
            .st
            .srp
            .get_mut(block)
            .filter(|p| p.login.client_id == client.id)
            .ok_or_else(|| ApiError::not_authorized(SESSION_EXPIRED))?;
        let expected = if matches!(pending.kind, SrpKind::Device { .. }) {
            "DEVICE_PASSWORD_VERIFIER"
        } else {
            "PASSWORD_VERIFIER"
        };
        if expected != challenge {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid challenge name {challenge}: this SECRET_BLOCK expects {expected}"
            )));
        }
        if pending.used {
            return Err(ApiError::not_authorized(SESSION_USED));
        }
        if now > pending.expires_at {
            return Err(ApiError::not_authorized(SESSION_EXPIRED));
        }
        if let (Some(sent), Some(ours)) = (session, &pending.session) {
            if sent != ours {
                return Err(ApiError::not_authorized(SESSION_EXPIRED));
            }
        }
        pending.used = true;
        let pending = pending.clone();

        let Some(instant) = timefmt::parse(timestamp) else {
            return Err(ApiError::invalid_parameter(TIMESTAMP_FORMAT));
        };
        let login = pending.login.clone();
        if matches!(pending.kind, SrpKind::Fake) {
            return Err(ApiError::not_authorized(INCORRECT_CREDENTIALS));
        }
        if !names_internal_user(username, &login.username) {
            return Err(ApiError::not_authorized(INCORRECT_CREDENTIALS));
        }
        let user_srp = matches!(pending.kind, SrpKind::User);
        if user_srp {
            if !self.user(&login.pool_id, &login.username)?.enabled {
                return Err(ApiError::not_authorized(USER_DISABLED));
            }
            self.check_lockout(&login.pool_id, &login.username)?;
        }
        if (instant - now).abs() > TIMESTAMP_TOLERANCE_SECONDS {
            tracing::warn!(
                skew_seconds = instant - now,
                "TIMESTAMP too far from the emulator clock"
            );
            return Err(ApiError::not_authorized(INCORRECT_CREDENTIALS));
        }
        let key = pending
            .handshake
            .session_key(&pending.a)
            .map_err(|_| ApiError::not_authorized(INCORRECT_CREDENTIALS))?;
        let block_bytes = decode_block(block);
        let signature = STANDARD.decode(signature).unwrap_or_default();
        let canonical = timefmt::format(instant);
        if !srp::verify_claim(
            &key,
            &pending.realm,
            &pending.user_id,
            &block_bytes,
            &canonical,
            &signature,
        ) {
            if canonical != timestamp
                && srp::verify_claim(
                    &key,
                    &pending.realm,
                    &pending.user_id,
                    &block_bytes,
                    timestamp,
                    &signature,
                )
            {
                tracing::warn!(
                    sent = %timestamp, canonical = %canonical,
                    "the claim was signed over a non-canonical TIMESTAMP (zero-padded day or wrong weekday?)"
                );
            }
            if user_srp {
                self.record_failure(&login.pool_id, &login.username);
            }
            return Err(ApiError::not_authorized(INCORRECT_CREDENTIALS));
        }
        match pending.kind {
            SrpKind::Device { device_key } => {
                let now = self.now;
                let mut login = login;
                if let Some(device) = self
                    .user_mut(&login.pool_id, &login.username)?
                    .devices
                    .get_mut(&device_key)
                {
                    device.last_authenticated = now;
                }
                login.device_key = Some(device_key);
                login.device_authenticated = true;
                self.finish(login)
            }
            _ => {
                self.user_mut(&login.pool_id, &login.username)?
                    .failed_attempts = 0;
                let mut login = login;
                if let Some(key) = responses.get("DEVICE_KEY").filter(|k| !k.is_empty()) {
                    self.check_device(&login.pool_id, &login.username, key)?;
                    login.device_key = Some(key.clone());
                }
                self.after_password(login)
            }
        }
    }

    /// DEVICE_SRP_AUTH → DEVICE_PASSWORD_VERIFIER. Works with the Session of the DEVICE_SRP_AUTH
    /// challenge, or without one (as AWS's Java sample sends it) by the pending device login.
    pub(super) fn respond_device_srp_auth(
        &mut self,
        client: &Client,
        responses: &BTreeMap<String, String>,
        session: Option<&str>,
    ) -> ApiResult<Value> {
        let username = param(responses, "USERNAME")?;
        let device_key = param(responses, "DEVICE_KEY")?;
        let srp_a = param(responses, "SRP_A")?;
        let session_id = match session {
            Some(id) => id.to_owned(),
            None => self
                .st
                .sessions
                .iter()
                .find(|(_, s)| {
                    s.login.client_id == client.id
                        && !s.used
                        && self.now <= s.expires_at
                        && matches!(&s.step, Step::DeviceSrpAuth { device_key: k } if k == device_key)
                })
                .map(|(id, _)| id.clone())
                .ok_or_else(|| ApiError::missing("Session"))?,
        };
        let (session_id, current) = self.session(Some(&session_id), Some(client))?;
        let Step::DeviceSrpAuth {
            device_key: expected,
        } = &current.step
        else {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid challenge name DEVICE_SRP_AUTH: this session expects {}",
                current.step.challenge()
            )));
        };
        if expected != device_key || !names_internal_user(username, &current.login.username) {
            return Err(ApiError::not_authorized(SESSION_EXPIRED));
        }
        let a = parse_srp_a(srp_a)?;
        let login = current.login;
        let user = self.user(&login.pool_id, &login.username)?;
        let group_key = user.device_group_key.clone();
        let verifier = user
            .devices
            .get(device_key)
            .and_then(|d| d.verifier.clone())
            .ok_or_else(|| ApiError::resource_not_found(DEVICE_NOT_FOUND))?;
        self.consume_session(&session_id);
        let handshake = Handshake::start(&verifier, &mut self.rng);
        let kind = SrpKind::Device {
            device_key: device_key.to_owned(),
        };
        self.srp_challenge(
            client,
            login,
            kind,
            group_key,
            a,
            handshake,
            verifier.salt_hex(),
        )
    }
}

/// SRP_A as a number, refusing `A mod N == 0`.
fn parse_srp_a(srp_a: &str) -> ApiResult<BigUint> {
    let a = srp::parse_hex(srp_a)
        .ok_or_else(|| ApiError::invalid_parameter("SRP_A is not a hexadecimal number"))?;
    if (&a % &srp::group().n).is_zero() {
        return Err(ApiError::invalid_parameter(
            "SRP_A must not be zero modulo N",
        ));
    }
    Ok(a)
}

/// SECRET_BLOCK bytes: standard base64, else URL-safe (as lenient clients also decode it).
fn decode_block(block: &str) -> Vec<u8> {
    STANDARD
        .decode(block)
        .or_else(|_| URL_SAFE.decode(block))
        .or_else(|_| URL_SAFE_NO_PAD.decode(block))
        .unwrap_or_else(|_| block.as_bytes().to_vec())
}
