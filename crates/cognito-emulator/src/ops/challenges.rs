//! Answers to session-bound challenges: NEW_PASSWORD_REQUIRED, MFA and sign-in codes,
//! SELECT_MFA_TYPE, MFA_SETUP, CUSTOM_CHALLENGE and SELECT_CHALLENGE.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Ctx, param};
use crate::error::{ApiError, ApiResult, INCORRECT_CREDENTIALS};
use crate::seed::{PasswordPolicy, UserStatus};
use crate::state::{Login, MfaKind, Step};
use crate::{srp, totp};

/// Wrong codes (or custom answers) a session survives before it is burnt.
const MAX_WRONG_CODES: u32 = 3;

impl Ctx<'_> {
    /// Answers to session-bound challenges.
    pub(super) fn respond_step(
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
