//! TOTP enrolment (AssociateSoftwareToken, VerifySoftwareToken) and SetUserMFAPreference.

use rand::RngCore;
use serde_json::{Map, Value, json};

use super::{Ctx, Req};
use crate::error::{ApiError, ApiResult};
use crate::state::{MfaKind, Step};
use crate::totp;

impl Ctx<'_> {
    pub(crate) fn associate_software_token(&mut self, req: &Req) -> ApiResult<Value> {
        let mut key = [0u8; 20];
        self.rng.fill_bytes(&mut key);
        let secret = totp::encode_secret(&key);
        match (req.opt("AccessToken")?, req.opt("Session")?) {
            (Some(token), None) => {
                let (pool_id, username, _) = self.authorize(token)?;
                self.user_mut(&pool_id, &username)?.pending_totp_secret = Some(secret.clone());
                Ok(json!({ "SecretCode": secret }))
            }
            (None, Some(session)) => {
                let (session_id, current) = self.session(Some(session), None)?;
                if !matches!(current.step, Step::MfaSetup { .. }) {
                    return Err(ApiError::not_authorized("Invalid session for the user."));
                }
                self.consume_session(&session_id);
                let step = Step::MfaSetup {
                    secret: Some(secret.clone()),
                    verified: false,
                };
                let session = self.new_session(current.login, step)?;
                Ok(json!({ "SecretCode": secret, "Session": session }))
            }
            _ => Err(ApiError::invalid_parameter(
                "Exactly one of AccessToken and Session must be given",
            )),
        }
    }

    pub(crate) fn verify_software_token(&mut self, req: &Req) -> ApiResult<Value> {
        let code = req.required("UserCode")?;
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid_parameter(
                "1 validation error detected: Value at 'userCode' failed to satisfy constraint: Member must satisfy \
                 regular expression pattern: [0-9]+ and have length 6",
            ));
        }
        let now = u64::try_from(self.now).unwrap_or(0);
        let mismatch = || ApiError::new("EnableSoftwareTokenMFAException", "Code mismatch");
        match (req.opt("AccessToken")?, req.opt("Session")?) {
            (Some(token), None) => {
                let (pool_id, username, _) = self.authorize(token)?;
                let user = self.user_mut(&pool_id, &username)?;
                let secret = user.pending_totp_secret.clone().ok_or_else(|| {
                    ApiError::new(
                        "SoftwareTokenMFANotFoundException",
                        "Software token MFA not associated with the user",
                    )
                })?;
                if !totp::verify(&secret, code, now) {
                    return Err(mismatch());
                }
                user.totp_secret = Some(secret);
                user.pending_totp_secret = None;
                user.mfa_enabled.insert(MfaKind::Totp);
                user.mfa_preferred.get_or_insert(MfaKind::Totp);
                Ok(json!({ "Status": "SUCCESS" }))
            }
            (None, Some(session)) => {
                let (session_id, current) = self.session(Some(session), None)?;
                let Step::MfaSetup {
                    secret: Some(secret),
                    ..
                } = &current.step
                else {
                    return Err(ApiError::new(
                        "SoftwareTokenMFANotFoundException",
                        "Call AssociateSoftwareToken with this Session first",
                    ));
                };
                if !totp::verify(secret, code, now) {
                    return Err(mismatch());
                }
                let login = current.login.clone();
                let user = self.user_mut(&login.pool_id, &login.username)?;
                user.totp_secret = Some(secret.clone());
                user.mfa_enabled.insert(MfaKind::Totp);
                user.mfa_preferred = Some(MfaKind::Totp);
                self.consume_session(&session_id);
                let session = self.new_session(
                    login,
                    Step::MfaSetup {
                        secret: None,
                        verified: true,
                    },
                )?;
                Ok(json!({ "Status": "SUCCESS", "Session": session }))
            }
            _ => Err(ApiError::invalid_parameter(
                "Exactly one of AccessToken and Session must be given",
            )),
        }
    }

    pub(crate) fn set_user_mfa_preference(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        let settings = [
            ("SMSMfaSettings", MfaKind::Sms),
            ("SoftwareTokenMfaSettings", MfaKind::Totp),
            ("EmailMfaSettings", MfaKind::Email),
        ];
        let mut changes = Vec::new();
        for (member, kind) in settings {
            if let Some(object) = req.object(member)? {
                changes.push((kind, flag(object, "Enabled"), flag(object, "PreferredMfa")));
            }
        }
        let user = self.user_mut(&pool_id, &username)?;
        for (kind, enabled, preferred) in changes {
            let available = match kind {
                MfaKind::Sms => user.phone_number.is_some(),
                MfaKind::Totp => user.totp_secret.is_some(),
                MfaKind::Email => user.email.is_some(),
            };
            if enabled == Some(true) && !available {
                return Err(ApiError::invalid_parameter(format!(
                    "User has not set up {}",
                    kind.challenge()
                )));
            }
            match enabled {
                Some(true) => {
                    user.mfa_enabled.insert(kind);
                }
                Some(false) => {
                    user.mfa_enabled.remove(&kind);
                    if user.mfa_preferred == Some(kind) {
                        user.mfa_preferred = None;
                    }
                }
                None => {}
            }
            match preferred {
                Some(true) => user.mfa_preferred = Some(kind),
                Some(false) if user.mfa_preferred == Some(kind) => user.mfa_preferred = None,
                _ => {}
            }
        }
        Ok(json!({}))
    }
}

fn flag(object: &Map<String, Value>, name: &str) -> Option<bool> {
    object.get(name).and_then(Value::as_bool)
}
