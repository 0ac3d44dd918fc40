//! A sign-in waiting for a person, and how an answer becomes the next request.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use super::context::Context;
use super::context::{Login, Waiting, web_authn_unsupported};
use super::login::answer_kind;
use super::{Challenge, ChallengeAnswer, Request, RespondError};
use crate::env::Entropy;
use crate::error::Error;
use crate::secret::OneTimeCode;
use crate::srp::SrpEphemeral;
use crate::wire::{Parameters, VerifySoftwareTokenRequest};

/// A sign-in waiting for a person. Consumed by the answer; it expires `session_validity` after
/// the last reply.
pub struct PendingLogin {
    pub(super) ctx: Context,
    pub(super) challenge: Challenge,
    pub(super) expires_at: SystemTime,
}

impl PendingLogin {
    /// The challenge to present.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// When the server's session for this challenge runs out (local clock).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The username as typed at the start.
    pub fn typed_username(&self) -> &str {
        &self.ctx.typed_username
    }

    pub(super) fn snapshot(&self) -> Box<PendingLogin> {
        Box::new(PendingLogin {
            ctx: self.ctx.clone(),
            challenge: self.challenge.clone(),
            expires_at: self.expires_at,
        })
    }

    /// Whether building the answer does SRP math (choosing PASSWORD_SRP generates an SRP_A), so
    /// an async driver should compute it on a blocking thread.
    pub fn answer_needs_srp(answer: &ChallengeAnswer) -> bool {
        matches!(answer, ChallengeAnswer::SelectChallenge { challenge, .. }
            if challenge.trim().eq_ignore_ascii_case("PASSWORD_SRP"))
    }

    /// Builds the request answering this challenge. Errors that consumed nothing (an answer of
    /// the wrong kind, a missing attribute) hand the pending login back for another try.
    pub fn answer(
        self,
        answer: ChallengeAnswer,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<(Login, Request), RespondError> {
        if now >= self.expires_at {
            return Err(RespondError::from(Error::ChallengeExpired));
        }
        match self.build_answer(answer, entropy) {
            Ok(step) => Ok(step),
            Err(error) => {
                let pending = Some(Box::new(self));
                Err(RespondError { error, pending })
            }
        }
    }

    fn build_answer(
        &self,
        answer: ChallengeAnswer,
        entropy: &dyn Entropy,
    ) -> Result<(Login, Request), Error> {
        let mut ctx = self.ctx.clone();
        let code_answer = |key: &str, code: &OneTimeCode| -> Result<Parameters, Error> {
            let code = code.expose_secret().trim();
            if code.is_empty() {
                return Err(Error::InvalidInput("the code is empty".into()));
            }
            let mut responses = ctx.common_responses();
            responses.insert(key, code);
            Ok(responses)
        };
        // `retry`: whether a refusal of this answer hands the challenge back for another try.
        let (name, responses, srp, retry) = match (&self.challenge, answer) {
            (Challenge::SmsMfa { .. }, ChallengeAnswer::Code(code)) => {
                ("SMS_MFA", code_answer("SMS_MFA_CODE", &code)?, None, true)
            }
            (Challenge::EmailOtp { .. }, ChallengeAnswer::Code(code)) => (
                "EMAIL_OTP",
                code_answer("EMAIL_OTP_CODE", &code)?,
                None,
                true,
            ),
            (Challenge::SmsOtp { .. }, ChallengeAnswer::Code(code)) => {
                ("SMS_OTP", code_answer("SMS_OTP_CODE", &code)?, None, true)
            }
            (Challenge::SoftwareTokenMfa { .. }, ChallengeAnswer::Code(code)) => (
                "SOFTWARE_TOKEN_MFA",
                code_answer("SOFTWARE_TOKEN_MFA_CODE", &code)?,
                None,
                true,
            ),
            (Challenge::MfaSetup { .. }, ChallengeAnswer::Code(code)) => {
                let trimmed = code.expose_secret().trim();
                if trimmed.is_empty() {
                    return Err(Error::InvalidInput("the code is empty".into()));
                }
                let request = VerifySoftwareTokenRequest {
                    access_token: None,
                    session: ctx.session.clone(),
                    user_code: OneTimeCode::new(trimmed),
                    friendly_device_name: None,
                };
                let login = Login {
                    ctx,
                    waiting: Waiting::Verify {
                        retry: self.snapshot(),
                    },
                };
                return Ok((login, Request::VerifySoftwareToken(request)));
            }
            (
                Challenge::NewPasswordRequired {
                    required_attributes,
                    user_attributes,
                },
                ChallengeAnswer::NewPassword {
                    password,
                    attributes,
                },
            ) => {
                if password.is_empty() {
                    return Err(Error::InvalidInput("the new password is empty".into()));
                }
                let attributes: BTreeMap<String, String> = attributes
                    .into_iter()
                    .map(|(name, value)| {
                        let name = name
                            .strip_prefix("userAttributes.")
                            .map(str::to_owned)
                            .unwrap_or(name);
                        (name, value)
                    })
                    .collect();
                let missing: Vec<&str> = required_attributes
                    .iter()
                    .filter(|name| {
                        let given = attributes.get(*name).is_some_and(|v| !v.is_empty());
                        let present = user_attributes.get(*name).is_some_and(|v| !v.is_empty());
                        !given && !present
                    })
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "required attributes have no value: {}",
                        missing.join(", ")
                    )));
                }
                let mut responses = ctx.common_responses();
                responses.insert("NEW_PASSWORD", password.expose_secret());
                for (name, value) in &attributes {
                    responses.insert(format!("userAttributes.{name}"), value.as_str());
                }
                ("NEW_PASSWORD_REQUIRED", responses, None, true)
            }
            (Challenge::SelectMfaType { options }, ChallengeAnswer::MfaType(kind)) => {
                if !options.is_empty() && !options.contains(&kind) {
                    return Err(Error::InvalidInput(format!(
                        "{kind} is not one of the offered mfa types"
                    )));
                }
                let mut responses = ctx.common_responses();
                responses.insert("ANSWER", kind.as_str());
                ("SELECT_MFA_TYPE", responses, None, false)
            }
            (
                Challenge::SelectChallenge { available },
                ChallengeAnswer::SelectChallenge {
                    challenge,
                    password,
                },
            ) => {
                let choice = challenge.trim().to_ascii_uppercase();
                if !available.is_empty() && !available.contains(&choice) {
                    return Err(Error::InvalidInput(format!(
                        "{choice} is not one of the offered challenges"
                    )));
                }
                if let Some(password) = password.filter(|p| !p.is_empty()) {
                    ctx.password = Some(password);
                }
                let mut responses = ctx.common_responses();
                responses.insert("ANSWER", choice.as_str());
                let mut srp = None;
                match choice.as_str() {
                    "PASSWORD" => {
                        responses.insert("PASSWORD", ctx.password("PASSWORD")?.expose_secret())
                    }
                    "PASSWORD_SRP" => {
                        ctx.password("PASSWORD_SRP")?;
                        let ephemeral = SrpEphemeral::generate(entropy);
                        responses.insert("SRP_A", ephemeral.public_hex());
                        srp = Some(ephemeral);
                    }
                    "EMAIL_OTP" | "SMS_OTP" => {}
                    "WEB_AUTHN" => return Err(web_authn_unsupported()),
                    other => {
                        return Err(Error::Unsupported(format!(
                            "first factor {other} is not supported"
                        )));
                    }
                }
                ("SELECT_CHALLENGE", responses, srp, false)
            }
            (Challenge::CustomChallenge { .. }, ChallengeAnswer::CustomAnswer(answer)) => {
                let mut responses = ctx.common_responses();
                responses.insert("ANSWER", answer.expose_secret());
                ("CUSTOM_CHALLENGE", responses, None, false)
            }
            (challenge, answer) => {
                return Err(Error::InvalidInput(format!(
                    "{} cannot be answered with {}",
                    challenge.name(),
                    answer_kind(&answer)
                )));
            }
        };
        let request = ctx.respond(name, responses);
        let login = Login {
            ctx,
            waiting: Waiting::Auth {
                srp,
                retry: retry.then(|| self.snapshot()),
            },
        };
        Ok((login, request))
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("challenge", &self.challenge.name())
            .field("username", &self.ctx.typed_username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
