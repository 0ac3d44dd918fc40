//! InitiateAuth and RespondToAuthChallenge: first factors, SRP, challenges, MFA and devices.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use num_bigint::BigUint;
use num_traits::Zero;
use serde_json::{Value, json};

use super::{Ctx, Req, param};
use crate::error::{
    ApiError, ApiResult, DEVICE_NOT_FOUND, INCORRECT_CREDENTIALS, SESSION_EXPIRED, SESSION_USED,
    TIMESTAMP_FORMAT, USER_DISABLED,
};
use crate::seed::{PasswordPolicy, PoolMfa, UserStatus};
use crate::srp::{self, Handshake};
use crate::state::{Client, Login, MfaKind, SrpKind, SrpPending, Step};
use crate::{ids, timefmt, totp};

/// How far a TIMESTAMP may be from the emulator's clock.
const TIMESTAMP_TOLERANCE_SECONDS: i64 = 300;
/// Wrong codes (or custom answers) a session survives before it is burnt.
const MAX_WRONG_CODES: u32 = 3;

const AUTH_FLOWS: &str = "[USER_SRP_AUTH, REFRESH_TOKEN_AUTH, REFRESH_TOKEN, CUSTOM_AUTH, ADMIN_NO_SRP_AUTH, \
                          USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH, USER_AUTH]";

impl Ctx<'_> {
    pub(crate) fn initiate_auth(&mut self, req: &Req) -> ApiResult<Value> {
        let flow = req.required("AuthFlow")?;
        let client = self.client(req.required("ClientId")?)?;
        let params = req.map("AuthParameters")?;
        let device_key = params
            .get("DEVICE_KEY")
            .map(String::as_str)
            .filter(|k| !k.is_empty());
        match flow {
            "USER_SRP_AUTH" => {
                self.require_flow(&client, "ALLOW_USER_SRP_AUTH", flow)?;
                let name = param(&params, "USERNAME")?;
                self.check_secret_hash(&client, name, params.get("SECRET_HASH"))?;
                let srp_a = param(&params, "SRP_A")?;
                self.start_srp(&client, name, srp_a, device_key, false)
            }
            "USER_PASSWORD_AUTH" => {
                self.require_flow(&client, "ALLOW_USER_PASSWORD_AUTH", flow)?;
                let name = param(&params, "USERNAME")?;
                self.check_secret_hash(&client, name, params.get("SECRET_HASH"))?;
                let password = param(&params, "PASSWORD")?;
                let login = self.known_user(&client, name, device_key)?;
                self.verify_password(&login.pool_id, &login.username, password)?;
                self.after_password(login)
            }
            "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN" => self.refresh_token_auth(&client, &params),
            "CUSTOM_AUTH" => {
                self.require_flow(&client, "ALLOW_CUSTOM_AUTH", flow)?;
                let name = param(&params, "USERNAME")?;
                self.check_secret_hash(&client, name, params.get("SECRET_HASH"))?;
                if params.get("CHALLENGE_NAME").map(String::as_str) == Some("SRP_A") {
                    let srp_a = param(&params, "SRP_A")?;
                    return self.start_srp(&client, name, srp_a, device_key, true);
                }
                let mut login = self.known_user(&client, name, device_key)?;
                login.custom = true;
                if self
                    .user(&login.pool_id, &login.username)?
                    .custom_answer
                    .is_none()
                {
                    // No challenge is defined for this user: the define-auth step fails the login.
                    return Err(ApiError::not_authorized(INCORRECT_CREDENTIALS));
                }
                self.custom_challenge(login, 0)
            }
            "USER_AUTH" => {
                self.require_flow(&client, "ALLOW_USER_AUTH", flow)?;
                self.start_user_auth(&client, &params, device_key)
            }
            "ADMIN_NO_SRP_AUTH" | "ADMIN_USER_PASSWORD_AUTH" => Err(ApiError::invalid_parameter(
                "Initiate Auth method not supported.",
            )),
            other => Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{other}' at 'authFlow' failed to satisfy constraint: \
                 Member must satisfy enum value set: {AUTH_FLOWS}"
            ))),
        }
    }

    pub(crate) fn respond_to_auth_challenge(&mut self, req: &Req) -> ApiResult<Value> {
        let name = req.required("ChallengeName")?;
        let client = self.client(req.required("ClientId")?)?;
        let responses = req.map("ChallengeResponses")?;
        let session = req.opt("Session")?;
        let username = param(&responses, "USERNAME")?;
        self.check_secret_hash(&client, username, responses.get("SECRET_HASH"))?;
        match name {
            "PASSWORD_VERIFIER" | "DEVICE_PASSWORD_VERIFIER" => {
                self.respond_srp(&client, name, &responses, session)
            }
            "DEVICE_SRP_AUTH" => self.respond_device_srp_auth(&client, &responses, session),
            "ADMIN_NO_SRP_AUTH" => Err(ApiError::invalid_parameter(
                "ADMIN_NO_SRP_AUTH is not a valid challenge response",
            )),
            _ => {
                let (session_id, current) = self.session(session, Some(&client))?;
                if !names_internal_user(username, &current.login.username) {
                    return Err(ApiError::not_authorized(SESSION_EXPIRED));
                }
                if current.step.challenge() != name {
                    return Err(ApiError::invalid_parameter(format!(
                        "Invalid challenge name {name}: this session expects {}",
                        current.step.challenge()
                    )));
                }
                self.respond_step(&session_id, current.login, current.step, &responses)
            }
        }
    }

    /// A sign-in name that must belong to a known, enabled user.
    fn known_user(
        &mut self,
        client: &Client,
        name: &str,
        device_key: Option<&str>,
    ) -> ApiResult<Login> {
        let Some(username) = self.st.resolve_user(&client.pool_id, name) else {
            return Err(if client.prevent_user_existence_errors {
                ApiError::not_authorized(INCORRECT_CREDENTIALS)
            } else {
                ApiError::user_not_found()
            });
        };
        if !self.user(&client.pool_id, &username)?.enabled {
            return Err(ApiError::not_authorized(USER_DISABLED));
        }
        if let Some(key) = device_key {
            self.check_device(&client.pool_id, &username, key)?;
        }
        Ok(Login {
            pool_id: client.pool_id.clone(),
            client_id: client.id.clone(),
            username,
            device_key: device_key.map(str::to_owned),
            passwordless: false,
            custom: false,
            device_authenticated: false,
        })
    }

    fn check_device(&self, pool_id: &str, username: &str, device_key: &str) -> ApiResult<()> {
        if self
            .user(pool_id, username)?
            .devices
            .contains_key(device_key)
        {
            Ok(())
        } else {
            Err(ApiError::resource_not_found(DEVICE_NOT_FOUND))
        }
    }

    /// PASSWORD_VERIFIER for a user (or a fake one for an unknown user).
    fn start_srp(
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
    fn respond_srp(
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

    /// After a verified password: the user's status decides what comes next.
    fn after_password(&mut self, login: Login) -> ApiResult<Value> {
        let user = self.user(&login.pool_id, &login.username)?;
        match user.status {
            UserStatus::Unconfirmed => Err(ApiError::new(
                "UserNotConfirmedException",
                "User is not confirmed.",
            )),
            UserStatus::ResetRequired => Err(ApiError::new(
                "PasswordResetRequiredException",
                "Password reset required for the user",
            )),
            UserStatus::ForceChangePassword => {
                let attributes = user.attribute_map();
                let required: Vec<String> = user
                    .required_attributes
                    .iter()
                    .filter(|name| !attributes.contains_key(*name))
                    .map(|name| format!("userAttributes.{name}"))
                    .collect();
                let parameters = json!({
                    "USER_ID_FOR_SRP": login.username,
                    "userAttributes": serde_json::to_string(&attributes).expect("a string map serializes"),
                    "requiredAttributes": serde_json::to_string(&required).expect("a string list serializes"),
                });
                self.challenge(login, Step::NewPasswordRequired, parameters)
            }
            UserStatus::Confirmed => self.after_first_factor(login),
        }
    }

    /// After the first factor: a custom challenge, device SRP for a remembered device, or MFA.
    fn after_first_factor(&mut self, login: Login) -> ApiResult<Value> {
        if login.custom {
            return if self
                .user(&login.pool_id, &login.username)?
                .custom_answer
                .is_some()
            {
                self.custom_challenge(login, 0)
            } else {
                self.finish(login)
            };
        }
        if let (Some(device_key), false) = (&login.device_key, login.device_authenticated) {
            let user = self.user(&login.pool_id, &login.username)?;
            let remembered = user
                .devices
                .get(device_key)
                .is_some_and(|d| d.confirmed && d.remembered && d.verifier.is_some());
            if remembered {
                let parameters = json!({ "USERNAME": login.username, "DEVICE_KEY": device_key });
                let step = Step::DeviceSrpAuth {
                    device_key: device_key.clone(),
                };
                return self.challenge(login, step, parameters);
            }
        }
        self.mfa_or_tokens(login)
    }

    fn mfa_or_tokens(&mut self, login: Login) -> ApiResult<Value> {
        let cfg = self.pool_cfg(&login.pool_id);
        if cfg.mfa == PoolMfa::Off || login.passwordless || login.device_authenticated {
            return self.finish(login);
        }
        let user = self.user(&login.pool_id, &login.username)?;
        let enabled: Vec<MfaKind> = user.mfa_enabled.iter().copied().collect();
        if let Some(kind) = user.mfa_preferred.filter(|k| enabled.contains(k)) {
            return self.mfa_challenge(login, kind);
        }
        match enabled.as_slice() {
            [] if cfg.mfa == PoolMfa::On => {
                let parameters = json!({
                    "MFAS_CAN_SETUP": serde_json::to_string(&cfg.mfa_setup).expect("a string list serializes"),
                    "USER_ID_FOR_SRP": login.username,
                });
                self.challenge(
                    login,
                    Step::MfaSetup {
                        secret: None,
                        verified: false,
                    },
                    parameters,
                )
            }
            [] => self.finish(login),
            [only] => self.mfa_challenge(login, *only),
            several => {
                let names: Vec<&str> = several.iter().map(|k| k.challenge()).collect();
                let parameters = json!({
                    "MFAS_CAN_CHOOSE": serde_json::to_string(&names).expect("a string list serializes"),
                    "USER_ID_FOR_SRP": login.username,
                });
                self.challenge(
                    login,
                    Step::SelectMfaType {
                        options: several.to_vec(),
                    },
                    parameters,
                )
            }
        }
    }

    fn mfa_challenge(&mut self, login: Login, kind: MfaKind) -> ApiResult<Value> {
        let mut parameters = json!({ "USER_ID_FOR_SRP": login.username });
        let code = match kind {
            MfaKind::Totp => {
                parameters["FRIENDLY_DEVICE_NAME"] = json!("TOTP device");
                None
            }
            MfaKind::Sms | MfaKind::Email => {
                let email = kind == MfaKind::Email;
                let (code, destination) = self.send_code(&login, email)?;
                parameters["CODE_DELIVERY_DELIVERY_MEDIUM"] =
                    json!(if email { "EMAIL" } else { "SMS" });
                parameters["CODE_DELIVERY_DESTINATION"] = json!(destination);
                Some(code)
            }
        };
        self.challenge(
            login,
            Step::Mfa {
                kind,
                code,
                wrong: 0,
            },
            parameters,
        )
    }

    fn custom_challenge(&mut self, login: Login, wrong: u32) -> ApiResult<Value> {
        let parameters = json!({ "USERNAME": login.username, "QUESTION": "custom challenge" });
        self.challenge(login, Step::CustomChallenge { wrong }, parameters)
    }

    /// Ends a successful login with tokens.
    fn finish(&mut self, login: Login) -> ApiResult<Value> {
        let result = self.issue_tokens(&login)?;
        Ok(json!({ "AuthenticationResult": result, "ChallengeParameters": {} }))
    }

    /// USER_AUTH: the preferred first factor, or SELECT_CHALLENGE.
    fn start_user_auth(
        &mut self,
        client: &Client,
        params: &BTreeMap<String, String>,
        device_key: Option<&str>,
    ) -> ApiResult<Value> {
        let name = param(params, "USERNAME")?;
        self.check_secret_hash(client, name, params.get("SECRET_HASH"))?;
        let preferred = params.get("PREFERRED_CHALLENGE").map(String::as_str);
        if preferred == Some("PASSWORD_SRP")
            && self.st.resolve_user(&client.pool_id, name).is_none()
        {
            return self.start_srp(client, name, param(params, "SRP_A")?, None, false);
        }
        let login = self.known_user(client, name, device_key)?;
        let user = self.user(&login.pool_id, &login.username)?;
        let available: Vec<String> = client
            .first_auth_factors
            .iter()
            .filter(|f| match f.as_str() {
                "EMAIL_OTP" => user.email.is_some(),
                "SMS_OTP" => user.phone_number.is_some(),
                _ => true,
            })
            .cloned()
            .collect();
        match preferred {
            Some(choice) if available.iter().any(|a| a == choice) => {
                self.first_factor(client, login, choice, params)
            }
            _ => {
                let step = Step::SelectChallenge {
                    available: available.clone(),
                };
                let mut answer = self.challenge(login, step, json!({}))?;
                answer["AvailableChallenges"] = json!(available);
                Ok(answer)
            }
        }
    }

    /// Runs one USER_AUTH first factor (from PREFERRED_CHALLENGE or SELECT_CHALLENGE's ANSWER).
    fn first_factor(
        &mut self,
        client: &Client,
        login: Login,
        choice: &str,
        params: &BTreeMap<String, String>,
    ) -> ApiResult<Value> {
        match choice {
            "PASSWORD" => {
                let password = param(params, "PASSWORD")?;
                self.verify_password(&login.pool_id, &login.username, password)?;
                self.after_password(login)
            }
            "PASSWORD_SRP" => {
                let srp_a = param(params, "SRP_A")?;
                let device_key = login.device_key.clone();
                self.start_srp(client, &login.username, srp_a, device_key.as_deref(), false)
            }
            "EMAIL_OTP" | "SMS_OTP" => {
                let email = choice == "EMAIL_OTP";
                let (code, destination) = self.send_code(&login, email)?;
                let challenge = if email { "EMAIL_OTP" } else { "SMS_OTP" };
                let parameters = json!({
                    "CODE_DELIVERY_DELIVERY_MEDIUM": if email { "EMAIL" } else { "SMS" },
                    "CODE_DELIVERY_DESTINATION": destination,
                    "USERNAME": login.username,
                });
                self.challenge(
                    login,
                    Step::SignInCode {
                        challenge,
                        code,
                        wrong: 0,
                    },
                    parameters,
                )
            }
            other => Err(ApiError::invalid_parameter(format!(
                "Unsupported challenge {other}"
            ))),
        }
    }

    /// Answers to session-bound challenges.
    fn respond_step(
        &mut self,
        session_id: &str,
        login: Login,
        step: Step,
        responses: &BTreeMap<String, String>,
    ) -> ApiResult<Value> {
        match step {
            Step::NewPasswordRequired => self.respond_new_password(session_id, login, responses),
            Step::Mfa { kind, code, wrong } => {
                let field = match kind {
                    MfaKind::Sms => "SMS_MFA_CODE",
                    MfaKind::Totp => "SOFTWARE_TOKEN_MFA_CODE",
                    MfaKind::Email => "EMAIL_OTP_CODE",
                };
                let given = param(responses, field)?;
                let ok = match (&code, kind) {
                    (Some(code), _) => code == given,
                    (None, _) => {
                        let user = self.user(&login.pool_id, &login.username)?;
                        let now = u64::try_from(self.now).unwrap_or(0);
                        user.totp_secret
                            .as_deref()
                            .is_some_and(|secret| totp::verify(secret, given, now))
                    }
                };
                if !ok {
                    return self.wrong_code(
                        session_id,
                        Step::Mfa {
                            kind,
                            code,
                            wrong: wrong + 1,
                        },
                    );
                }
                self.consume_session(session_id);
                self.finish(login)
            }
            Step::SignInCode {
                challenge,
                code,
                wrong,
            } => {
                let field = if challenge == "EMAIL_OTP" {
                    "EMAIL_OTP_CODE"
                } else {
                    "SMS_OTP_CODE"
                };
                if param(responses, field)? != code {
                    return self.wrong_code(
                        session_id,
                        Step::SignInCode {
                            challenge,
                            code,
                            wrong: wrong + 1,
                        },
                    );
                }
                self.consume_session(session_id);
                let mut login = login;
                login.passwordless = true;
                self.after_password(login)
            }
            Step::SelectMfaType { options } => {
                let answer = param(responses, "ANSWER")?;
                let kind = MfaKind::from_challenge(answer)
                    .filter(|k| options.contains(k))
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(format!("Invalid MFA type {answer}"))
                    })?;
                self.consume_session(session_id);
                self.mfa_challenge(login, kind)
            }
            Step::MfaSetup { verified: true, .. } => {
                self.consume_session(session_id);
                self.finish(login)
            }
            Step::MfaSetup {
                verified: false, ..
            } => {
                let cfg = self.pool_cfg(&login.pool_id);
                match responses.get("EMAIL") {
                    Some(email) if cfg.mfa_setup.iter().any(|m| m == "EMAIL_OTP") => {
                        self.consume_session(session_id);
                        let user = self.user_mut(&login.pool_id, &login.username)?;
                        user.email.get_or_insert_with(|| email.clone());
                        user.mfa_enabled.insert(MfaKind::Email);
                        user.mfa_preferred.get_or_insert(MfaKind::Email);
                        self.mfa_challenge(login, MfaKind::Email)
                    }
                    _ => Err(ApiError::invalid_parameter(
                        "MFA_SETUP is not complete: verify a software token with VerifySoftwareToken (Session) first",
                    )),
                }
            }
            Step::CustomChallenge { wrong } => {
                let answer = param(responses, "ANSWER")?;
                self.consume_session(session_id);
                let expected = self
                    .user(&login.pool_id, &login.username)?
                    .custom_answer
                    .clone();
                if expected.as_deref() == Some(answer) {
                    return self.finish(login);
                }
                if wrong + 1 >= MAX_WRONG_CODES {
                    return Err(ApiError::not_authorized(INCORRECT_CREDENTIALS));
                }
                self.custom_challenge(login, wrong + 1)
            }
            Step::SelectChallenge { available } => {
                let answer = param(responses, "ANSWER")?;
                if !available.iter().any(|a| a == answer) {
                    return Err(ApiError::invalid_parameter(format!(
                        "Invalid ANSWER {answer}: not an available challenge"
                    )));
                }
                self.consume_session(session_id);
                let client = self.client(&login.client_id)?;
                self.first_factor(&client, login, answer, responses)
            }
            // DEVICE_SRP_AUTH answers are routed to respond_device_srp_auth before the session lookup.
            Step::DeviceSrpAuth { .. } => Err(ApiError::invalid_parameter(
                "Invalid challenge name: this session expects DEVICE_SRP_AUTH",
            )),
        }
    }

    /// CodeMismatch; the session survives until the third wrong code.
    fn wrong_code(&mut self, session_id: &str, step: Step) -> ApiResult<Value> {
        let wrong = match &step {
            Step::Mfa { wrong, .. } | Step::SignInCode { wrong, .. } => *wrong,
            _ => MAX_WRONG_CODES,
        };
        if wrong >= MAX_WRONG_CODES {
            self.consume_session(session_id);
        } else {
            self.update_step(session_id, step);
        }
        Err(ApiError::code_mismatch())
    }

    fn respond_new_password(
        &mut self,
        session_id: &str,
        login: Login,
        responses: &BTreeMap<String, String>,
    ) -> ApiResult<Value> {
        let new_password = param(responses, "NEW_PASSWORD")?;
        let cfg = self.pool_cfg(&login.pool_id);
        check_policy(&cfg.password_policy, new_password)?;
        let mut given = BTreeMap::new();
        for (key, value) in responses {
            if let Some(name) = key.strip_prefix("userAttributes.") {
                if matches!(name, "sub" | "email_verified" | "phone_number_verified") {
                    return Err(ApiError::invalid_parameter(format!(
                        "Cannot modify the non-mutable attribute {name}"
                    )));
                }
                given.insert(name.to_owned(), value.clone());
            }
        }
        let user = self.user(&login.pool_id, &login.username)?;
        let existing = user.attribute_map();
        if let Some(missing) = user
            .required_attributes
            .iter()
            .find(|name| !existing.contains_key(*name) && !given.contains_key(*name))
        {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid attributes given, {missing} is missing"
            )));
        }
        let salt = srp::user_salt(&mut self.rng, rand::random());
        let verifier = srp::Verifier::from_password(salt, &cfg.name, &login.username, new_password);
        let user = self.user_mut(&login.pool_id, &login.username)?;
        for (name, value) in given {
            match name.as_str() {
                "email" => user.email = Some(value),
                "phone_number" => user.phone_number = Some(value),
                _ => {
                    user.attributes.insert(name, value);
                }
            }
        }
        user.verifier = verifier;
        user.status = UserStatus::Confirmed;
        self.consume_session(session_id);
        self.after_first_factor(login)
    }

    /// DEVICE_SRP_AUTH → DEVICE_PASSWORD_VERIFIER. Works with the Session of the DEVICE_SRP_AUTH
    /// challenge, or without one (as AWS's Java sample sends it) by the pending device login.
    fn respond_device_srp_auth(
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

/// The pool's password policy, with the service's messages.
pub(crate) fn check_policy(policy: &PasswordPolicy, password: &str) -> ApiResult<()> {
    let fail = |why: &str| {
        Err(ApiError::new(
            "InvalidPasswordException",
            format!("Password did not conform with policy: {why}"),
        ))
    };
    if password.chars().count() < policy.min_length {
        return fail("Password not long enough");
    }
    if policy.require_lowercase && !password.chars().any(|c| c.is_ascii_lowercase()) {
        return fail("Password must have lowercase characters");
    }
    if policy.require_uppercase && !password.chars().any(|c| c.is_ascii_uppercase()) {
        return fail("Password must have uppercase characters");
    }
    if policy.require_numbers && !password.chars().any(|c| c.is_ascii_digit()) {
        return fail("Password must have numeric characters");
    }
    if policy.require_symbols
        && !password
            .chars()
            .any(|c| c.is_ascii_punctuation() || c == ' ')
    {
        return fail("Password must have symbol characters");
    }
    Ok(())
}

/// Whether a challenge response's USERNAME is the user's internal username.
///
/// After the first step every challenge carries the internal username (USER_ID_FOR_SRP, or
/// ChallengeParameters.USERNAME), and clients must answer with it, SECRET_HASH included: the
/// service refuses an alias here (cognito-protocol.md §3). Accepting the alias would let a
/// client that regressed to hashing the typed email pass against the emulator and fail
/// against Cognito.
fn names_internal_user(sent: &str, internal: &str) -> bool {
    sent.eq_ignore_ascii_case(internal)
}
