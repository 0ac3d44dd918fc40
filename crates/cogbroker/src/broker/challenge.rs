//! How a challenge is shown to a person through the API (a sentence, the answer fields, the
//! details), and how an answer body becomes the [`ChallengeAnswer`] the flow expects.

use std::str::FromStr;

use cognito_auth::secret::OneTimeCode;
use cognito_auth::{Challenge, ChallengeAnswer, MfaType};

use super::{AnswerInput, BrokerError};
use crate::api::challenge::{
    ChallengeDetails, CustomDetails, DestinationDetails, DeviceDetails, MfaSetupDetails,
    NewPasswordDetails, OptionsDetails,
};

fn mfa_type_name(mfa: &MfaType) -> &'static str {
    match mfa {
        MfaType::Sms => "SMS_MFA",
        MfaType::SoftwareToken => "SOFTWARE_TOKEN_MFA",
        MfaType::Email => "EMAIL_OTP",
    }
}

/// A challenge as shown: its name, a sentence for a person, the answer fields, the details.
pub(crate) type DescribedChallenge = (&'static str, String, Vec<&'static str>, ChallengeDetails);

/// The challenge as the API shows it: name, a sentence for a person, the answer fields, details.
pub(crate) fn describe_challenge(challenge: &Challenge) -> Option<DescribedChallenge> {
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
                ChallengeDetails::NewPassword(NewPasswordDetails {
                    required_attributes: required_attributes.clone(),
                    user_attributes: user_attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }),
            )
        }
        Challenge::SmsMfa { destination } | Challenge::SmsOtp { destination } => (
            format!("enter the code sent by SMS{}", to(destination)),
            vec!["code"],
            ChallengeDetails::Destination(DestinationDetails {
                destination: destination.clone(),
            }),
        ),
        Challenge::EmailOtp { destination } => (
            format!("enter the code sent by email{}", to(destination)),
            vec!["code"],
            ChallengeDetails::Destination(DestinationDetails {
                destination: destination.clone(),
            }),
        ),
        Challenge::SoftwareTokenMfa {
            friendly_device_name,
        } => (
            "enter the 6-digit code from your authenticator app".to_owned(),
            vec!["code"],
            ChallengeDetails::Device(DeviceDetails {
                friendly_device_name: friendly_device_name.clone(),
            }),
        ),
        Challenge::SelectMfaType { options } => (
            "choose an MFA method".to_owned(),
            vec!["mfa_type"],
            ChallengeDetails::Options(OptionsDetails {
                options: options
                    .iter()
                    .map(|m| mfa_type_name(m).to_owned())
                    .collect(),
            }),
        ),
        Challenge::MfaSetup {
            secret_code,
            otpauth_uri,
        } => (
            "add this secret to your authenticator app, then enter the 6-digit code it shows"
                .to_owned(),
            vec!["code"],
            // The person needs the secret to set up their app: this is its one way out.
            ChallengeDetails::MfaSetup(MfaSetupDetails {
                secret_code: secret_code.expose_secret().to_owned().into(),
                otpauth_uri: otpauth_uri.expose_secret().to_owned().into(),
            }),
        ),
        Challenge::SelectChallenge { available } => (
            "choose how to sign in".to_owned(),
            vec!["challenge", "password"],
            ChallengeDetails::Options(OptionsDetails {
                options: available.clone(),
            }),
        ),
        Challenge::CustomChallenge { parameters } => (
            "answer the custom challenge".to_owned(),
            vec!["answer"],
            ChallengeDetails::Custom(CustomDetails {
                parameters: parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }),
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
