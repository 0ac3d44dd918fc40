//! InitiateAuth and RespondToAuthChallenge: the first factors, what follows a password, MFA and
//! the end of a login. The SRP exchanges live in `srp_auth`, session-bound answers in `challenges`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Ctx, Req, param};
use crate::error::{
    ApiError, ApiResult, DEVICE_NOT_FOUND, INCORRECT_CREDENTIALS, SESSION_EXPIRED, USER_DISABLED,
};
use crate::seed::{PoolMfa, UserStatus};
use crate::state::{Client, Login, MfaKind, Step};

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
    pub(super) fn known_user(
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

    pub(super) fn check_device(
        &self,
        pool_id: &str,
        username: &str,
        device_key: &str,
    ) -> ApiResult<()> {
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

    /// After a verified password: the user's status decides what comes next.
    pub(super) fn after_password(&mut self, login: Login) -> ApiResult<Value> {
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
    pub(super) fn after_first_factor(&mut self, login: Login) -> ApiResult<Value> {
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

    pub(super) fn mfa_challenge(&mut self, login: Login, kind: MfaKind) -> ApiResult<Value> {
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

    pub(super) fn custom_challenge(&mut self, login: Login, wrong: u32) -> ApiResult<Value> {
        let parameters = json!({ "USERNAME": login.username, "QUESTION": "custom challenge" });
        self.challenge(login, Step::CustomChallenge { wrong }, parameters)
    }

    /// Ends a successful login with tokens.
    pub(super) fn finish(&mut self, login: Login) -> ApiResult<Value> {
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
    pub(super) fn first_factor(
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
}

/// Whether a challenge response's USERNAME is the user's internal username.
///
/// After the first step every challenge carries the internal username (USER_ID_FOR_SRP, or
/// ChallengeParameters.USERNAME), and clients must answer with it, SECRET_HASH included: the
/// service refuses an alias here (cognito-protocol.md §3). Accepting the alias would let a
/// client that regressed to hashing the typed email pass against the emulator and fail
/// against Cognito.
pub(super) fn names_internal_user(sent: &str, internal: &str) -> bool {
    sent.eq_ignore_ascii_case(internal)
}
