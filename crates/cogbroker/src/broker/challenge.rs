//! How a challenge is shown to a person through the API (a sentence, the answer fields, the
//! details), and how an answer body becomes the [`ChallengeAnswer`] the flow expects.

use std::str::FromStr;

use cognito_auth::secret::OneTimeCode;
use cognito_auth::{Challenge, ChallengeAnswer, MfaType};

use super::{AnswerInput, BrokerError};

fn mfa_type_name(mfa: &MfaType) -> &'static str {
    match mfa {
        MfaType::Sms => "SMS_MFA",
        MfaType::SoftwareToken => "SOFTWARE_TOKEN_MFA",
        MfaType::Email => "EMAIL_OTP",
    }
}

pub(crate) type DescribedChallenge = (&'static str, String, Vec<&'static str>, serde_json::Value);

/// The challenge as the API shows it: name, a sentence for a person, the answer fields, details.
pub(crate) fn describe_challenge(challenge: &Challenge) -> Option<DescribedChallenge> {
    use serde_json::json;
    let name = challenge.name();
    let to = |destination: &Option<String>| {
        destination
            .as_deref()
            .map_or_else(String::new, |d| format!(" to {d}"))
    };
    let described = match challenge {
        Challenge::NewPasswordRequired {
            required_attributes,
            user_attributes,
        } => {
            let mut fields = vec!["new_password"];
            if !required_attributes.is_empty() {
                fields.push("attributes");
            }
            (
                "choose a new password".to_owned(),
                fields,
                json!({ "required_attributes": required_attributes, "user_attributes": user_attributes }),
            )
        }
        Challenge::SmsMfa { destination } | Challenge::SmsOtp { destination } => (
            format!("enter the code sent by SMS{}", to(destination)),
            vec!["code"],
            json!({ "destination": destination }),
        ),
        Challenge::EmailOtp { destination } => (
            format!("enter the code sent by email{}", to(destination)),
            vec!["code"],
            json!({ "destination": destination }),
        ),
        Challenge::SoftwareTokenMfa {
            friendly_device_name,
        } => (
            "enter the 6-digit code from your authenticator app".to_owned(),
            vec!["code"],
            json!({ "friendly_device_name": friendly_device_name }),
        ),
        Challenge::SelectMfaType { options } => (
            "choose an MFA method".to_owned(),
            vec!["mfa_type"],
            json!({ "options": options.iter().map(mfa_type_name).collect::<Vec<_>>() }),
        ),
        Challenge::MfaSetup {
            secret_code,
            otpauth_uri,
        } => (
            "add this secret to your authenticator app, then enter the 6-digit code it shows"
                .to_owned(),
            vec!["code"],
            // The person needs the secret to set up their app: this is its one way out.
            json!({ "secret_code": secret_code.expose_secret(), "otpauth_uri": otpauth_uri.expose_secret() }),
        ),
        Challenge::SelectChallenge { available } => (
            "choose how to sign in".to_owned(),
            vec!["challenge", "password"],
            json!({ "options": available }),
        ),
        Challenge::CustomChallenge { parameters } => (
            "answer the custom challenge".to_owned(),
            vec!["answer"],
            json!({ "parameters": parameters }),
        ),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some((name, described.0, described.1, described.2))
}

fn required<T>(value: Option<T>, field: &'static str, challenge: &str) -> Result<T, BrokerError> {
    value.ok_or_else(|| BrokerError::BadInput {
        field,
        message: format!("{challenge} needs `{field}`"),
    })
}

pub(crate) fn build_answer(
    challenge: &Challenge,
    input: AnswerInput,
) -> Result<ChallengeAnswer, BrokerError> {
    let name = challenge.name();
    match challenge {
        Challenge::NewPasswordRequired { .. } => Ok(ChallengeAnswer::NewPassword {
            password: required(input.new_password, "new_password", name)?,
            attributes: input.attributes,
        }),
        Challenge::SmsMfa { .. }
        | Challenge::SmsOtp { .. }
        | Challenge::EmailOtp { .. }
        | Challenge::SoftwareTokenMfa { .. }
        | Challenge::MfaSetup { .. } => {
            let code = required(input.code, "code", name)?;
            let trimmed = code.expose_secret().trim();
            if trimmed.is_empty()
                || trimmed.len() > 16
                || !trimmed.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(BrokerError::BadInput {
                    field: "code",
                    message: "the code must be 1 to 16 letters or digits".to_owned(),
                });
            }
            Ok(ChallengeAnswer::Code(OneTimeCode::new(trimmed)))
        }
        Challenge::SelectMfaType { .. } => {
            let choice = required(input.mfa_type, "mfa_type", name)?;
            let mfa = MfaType::from_str(&choice).map_err(|_| BrokerError::BadInput {
                field: "mfa_type",
                message: format!(
                    "unknown MFA type {choice:?}; use \"SMS_MFA\", \"SOFTWARE_TOKEN_MFA\" or \"EMAIL_OTP\""
                ),
            })?;
            Ok(ChallengeAnswer::MfaType(mfa))
        }
        Challenge::SelectChallenge { .. } => Ok(ChallengeAnswer::SelectChallenge {
            challenge: required(input.challenge, "challenge", name)?,
            password: input.password,
        }),
        Challenge::CustomChallenge { .. } => Ok(ChallengeAnswer::CustomAnswer(required(
            input.answer,
            "answer",
            name,
        )?)),
        #[allow(unreachable_patterns)]
        _ => Err(BrokerError::Unsupported(format!("{name} is not supported"))),
    }
}
