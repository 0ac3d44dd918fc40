//! What a sign-in carries from call to call, the state it waits in (`Login`, `Waiting`), and
//! the automatic steps it answers itself. `login.rs` drives the machine.

use std::fmt;
use std::time::SystemTime;

use super::device::confirm_device_request;
use super::params::{parse_json_object, parse_json_strings, server_challenge};
use super::{
    AuthFlow, Challenge, DeviceCredentials, DeviceRemembering, FlowOptions, LoginSuccess, MfaType,
    Next, PendingLogin, Request,
};
use crate::env::Entropy;
use crate::error::Error;
use crate::pool::AppClient;
use crate::secret::{Password, SessionToken};
use crate::srp::{self, SrpEphemeral, SrpIdentity};
use crate::tokens::TokenSet;
use crate::wire::{
    AssociateSoftwareTokenRequest, AuthResponse, AuthenticationResult, InitiateAuthRequest,
    Parameters, RespondToAuthChallengeRequest,
};

/// Everything a sign-in carries from call to call.
#[derive(Clone)]
pub(super) struct Context {
    pub(super) app: AppClient,
    pub(super) options: FlowOptions,
    pub(super) flow: AuthFlow,
    pub(super) typed_username: String,
    /// The USERNAME to send: the latest challenge's USERNAME, else its USER_ID_FOR_SRP, else
    /// what was typed.
    pub(super) username: String,
    pub(super) password: Option<Password>,
    pub(super) device: Option<DeviceCredentials>,
    pub(super) remember: DeviceRemembering,
    pub(super) device_name: String,
    /// The newest session received, if the newest reply had one.
    pub(super) session: Option<SessionToken>,
    /// The one retry without DEVICE_KEY after "Device does not exist" has been used.
    pub(super) device_retry_used: bool,
}

impl Context {
    pub(super) fn secret_hash(&self, username: &str) -> Option<String> {
        self.app
            .client_secret
            .as_ref()
            .map(|secret| srp::secret_hash(secret, username, &self.app.client_id))
    }

    pub(super) fn password(&self, purpose: &str) -> Result<&Password, Error> {
        self.password
            .as_ref()
            .ok_or_else(|| Error::InvalidInput(format!("{purpose} needs a password")))
    }

    /// USERNAME, SECRET_HASH over it, and DEVICE_KEY: what every challenge response carries.
    pub(super) fn common_responses(&self) -> Parameters {
        let mut responses = Parameters::new();
        responses.insert("USERNAME", self.username.as_str());
        if let Some(hash) = self.secret_hash(&self.username) {
            responses.insert("SECRET_HASH", hash);
        }
        if let Some(device) = &self.device {
            responses.insert("DEVICE_KEY", device.device_key.as_str());
        }
        responses
    }

    /// The common responses plus an SRP password claim: the answer to PASSWORD_VERIFIER and
    /// DEVICE_PASSWORD_VERIFIER.
    pub(super) fn claim_responses(&self, claim: srp::PasswordClaim) -> Parameters {
        let mut responses = self.common_responses();
        responses.insert("PASSWORD_CLAIM_SIGNATURE", claim.signature_b64);
        responses.insert("PASSWORD_CLAIM_SECRET_BLOCK", claim.secret_block_b64);
        responses.insert("TIMESTAMP", claim.timestamp);
        responses
    }

    pub(super) fn respond(&self, challenge_name: &str, responses: Parameters) -> Request {
        Request::RespondToAuthChallenge(RespondToAuthChallengeRequest {
            client_id: self.app.client_id.clone(),
            challenge_name: challenge_name.to_owned(),
            session: self.session.clone(),
            challenge_responses: responses,
            client_metadata: None,
        })
    }

    /// The InitiateAuth that starts (or restarts) this sign-in. Both callers have just set
    /// `username` to what was typed, so the common parameters name the typed username.
    pub(super) fn initiate(self, entropy: &dyn Entropy) -> Result<(Login, Request), Error> {
        debug_assert_eq!(self.username, self.typed_username);
        let mut parameters = self.common_responses();
        let mut srp = None;
        let mut with_srp = |parameters: &mut Parameters| {
            let ephemeral = SrpEphemeral::generate(entropy);
            parameters.insert("SRP_A", ephemeral.public_hex());
            srp = Some(ephemeral);
        };
        match &self.flow {
            AuthFlow::UserSrp => {
                self.password("USER_SRP_AUTH")?;
                with_srp(&mut parameters);
            }
            AuthFlow::UserPassword => {
                parameters.insert(
                    "PASSWORD",
                    self.password("USER_PASSWORD_AUTH")?.expose_secret(),
                );
            }
            AuthFlow::Custom { srp_first } => {
                if *srp_first {
                    self.password("CUSTOM_AUTH with SRP first")?;
                    parameters.insert("CHALLENGE_NAME", "SRP_A");
                    with_srp(&mut parameters);
                }
            }
            AuthFlow::UserAuth { preferred } => {
                if let Some(preferred) = preferred {
                    let preferred = preferred.trim().to_ascii_uppercase();
                    match preferred.as_str() {
                        "PASSWORD" => {
                            parameters.insert(
                                "PASSWORD",
                                self.password("USER_AUTH with PASSWORD")?.expose_secret(),
                            );
                        }
                        "PASSWORD_SRP" => {
                            self.password("USER_AUTH with PASSWORD_SRP")?;
                            with_srp(&mut parameters);
                        }
                        "EMAIL_OTP" | "SMS_OTP" => {}
                        "WEB_AUTHN" => return Err(web_authn_unsupported()),
                        other => {
                            return Err(Error::InvalidInput(format!(
                                "unknown preferred challenge {other:?}; expected PASSWORD, PASSWORD_SRP, EMAIL_OTP or SMS_OTP"
                            )));
                        }
                    }
                    parameters.insert("PREFERRED_CHALLENGE", preferred);
                }
            }
        }
        let request = InitiateAuthRequest {
            auth_flow: self.flow.as_str().to_owned(),
            client_id: self.app.client_id.clone(),
            auth_parameters: parameters,
            client_metadata: None,
            session: None,
        };
        let login = Login {
            ctx: self,
            waiting: Waiting::Auth { srp, retry: None },
        };
        Ok((login, Request::InitiateAuth(request)))
    }

    pub(super) fn human(self, challenge: Challenge, now: SystemTime) -> Next {
        let expires_at = now + self.options.session_validity;
        Next::Challenge(Box::new(PendingLogin {
            ctx: self,
            challenge,
            expires_at,
        }))
    }

    pub(super) fn send(self, request: Request, srp: Option<SrpEphemeral>) -> Next {
        Next::Send {
            login: Box::new(Login {
                ctx: self,
                waiting: Waiting::Auth { srp, retry: None },
            }),
            request,
        }
    }

    /// A reply to InitiateAuth or RespondToAuthChallenge.
    pub(super) fn on_auth(
        mut self,
        srp: Option<SrpEphemeral>,
        response: AuthResponse,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<Next, Error> {
        // A session is single-use: the newest reply's session (or none) is the one to send next.
        self.session = response.session;
        if let Some(result) = response.authentication_result {
            return self.finish(&result, now, entropy);
        }
        let Some(name) = response.challenge_name.filter(|name| !name.is_empty()) else {
            return Err(Error::Protocol(
                "the reply holds neither a challenge nor tokens".into(),
            ));
        };
        let parameters = response.challenge_parameters;
        if let Some(username) = parameters
            .non_empty("USERNAME")
            .or(parameters.non_empty("USER_ID_FOR_SRP"))
        {
            self.username = username.to_owned();
        }
        tracing::debug!(challenge = %name, "cognito challenge");
        let destination = || {
            parameters
                .non_empty("CODE_DELIVERY_DESTINATION")
                .map(str::to_owned)
        };
        match name.as_str() {
            "PASSWORD_VERIFIER" => {
                let ephemeral = srp.ok_or_else(|| {
                    Error::Protocol("PASSWORD_VERIFIER arrived but no SRP_A was sent".into())
                })?;
                let user_id = parameters
                    .non_empty("USER_ID_FOR_SRP")
                    .or(parameters.non_empty("USERNAME"))
                    .ok_or_else(|| {
                        Error::Protocol("PASSWORD_VERIFIER has no USER_ID_FOR_SRP".into())
                    })?;
                let password = self.password("PASSWORD_VERIFIER")?;
                let claim = srp::password_claim(
                    &ephemeral,
                    &SrpIdentity {
                        realm: self.app.user_pool_id.pool_name(),
                        user_id,
                        password: password.expose_secret(),
                    },
                    &server_challenge(&parameters, "PASSWORD_VERIFIER")?,
                    &srp::cognito_timestamp(now),
                )?;
                let responses = self.claim_responses(claim);
                let request = self.respond("PASSWORD_VERIFIER", responses);
                Ok(self.send(request, None))
            }
            "DEVICE_SRP_AUTH" => {
                if self.device.is_none() {
                    return Err(Error::Protocol(
                        "DEVICE_SRP_AUTH arrived but no device key was sent".into(),
                    ));
                }
                // A fresh a for the device proof, never the user-SRP one.
                let ephemeral = SrpEphemeral::generate(entropy);
                let mut responses = self.common_responses();
                responses.insert("SRP_A", ephemeral.public_hex());
                let request = self.respond("DEVICE_SRP_AUTH", responses);
                Ok(self.send(request, Some(ephemeral)))
            }
            "DEVICE_PASSWORD_VERIFIER" => {
                let ephemeral = srp.ok_or_else(|| {
                    Error::Protocol(
                        "DEVICE_PASSWORD_VERIFIER arrived but no device SRP_A was sent".into(),
                    )
                })?;
                let device = self.device.as_ref().ok_or_else(|| {
                    Error::Protocol(
                        "DEVICE_PASSWORD_VERIFIER arrived but no device key was sent".into(),
                    )
                })?;
                let claim = srp::password_claim(
                    &ephemeral,
                    &SrpIdentity {
                        realm: &device.device_group_key,
                        user_id: &device.device_key,
                        password: device.device_password.expose_secret(),
                    },
                    &server_challenge(&parameters, "DEVICE_PASSWORD_VERIFIER")?,
                    &srp::cognito_timestamp(now),
                )?;
                let responses = self.claim_responses(claim);
                let request = self.respond("DEVICE_PASSWORD_VERIFIER", responses);
                Ok(self.send(request, None))
            }
            // USER_AUTH may name the factor itself; answer it from what we hold.
            "PASSWORD" => {
                let mut responses = self.common_responses();
                responses.insert(
                    "PASSWORD",
                    self.password("the PASSWORD challenge")?.expose_secret(),
                );
                let request = self.respond("PASSWORD", responses);
                Ok(self.send(request, None))
            }
            "PASSWORD_SRP" => {
                self.password("the PASSWORD_SRP challenge")?;
                let ephemeral = SrpEphemeral::generate(entropy);
                let mut responses = self.common_responses();
                responses.insert("SRP_A", ephemeral.public_hex());
                let request = self.respond("PASSWORD_SRP", responses);
                Ok(self.send(request, Some(ephemeral)))
            }
            "NEW_PASSWORD_REQUIRED" => {
                let user_attributes = parse_json_object(parameters.get("userAttributes"))?;
                let required_attributes =
                    parse_json_strings(parameters.get("requiredAttributes"), "requiredAttributes")?
                        .into_iter()
                        .map(|name| {
                            name.strip_prefix("userAttributes.")
                                .map(str::to_owned)
                                .unwrap_or(name)
                        })
                        .collect();
                Ok(self.human(
                    Challenge::NewPasswordRequired {
                        required_attributes,
                        user_attributes,
                    },
                    now,
                ))
            }
            "SMS_MFA" => {
                let destination = destination();
                Ok(self.human(Challenge::SmsMfa { destination }, now))
            }
            "EMAIL_OTP" => {
                let destination = destination();
                Ok(self.human(Challenge::EmailOtp { destination }, now))
            }
            "SMS_OTP" => {
                let destination = destination();
                Ok(self.human(Challenge::SmsOtp { destination }, now))
            }
            "SOFTWARE_TOKEN_MFA" => {
                let friendly_device_name = parameters
                    .non_empty("FRIENDLY_DEVICE_NAME")
                    .map(str::to_owned);
                Ok(self.human(
                    Challenge::SoftwareTokenMfa {
                        friendly_device_name,
                    },
                    now,
                ))
            }
            "SELECT_MFA_TYPE" => {
                let names =
                    parse_json_strings(parameters.get("MFAS_CAN_CHOOSE"), "MFAS_CAN_CHOOSE")?;
                let options: Vec<MfaType> =
                    names.iter().filter_map(|name| name.parse().ok()).collect();
                if options.is_empty() {
                    return Err(Error::Unsupported(format!(
                        "none of the offered mfa types is supported: {}",
                        names.join(", ")
                    )));
                }
                Ok(self.human(Challenge::SelectMfaType { options }, now))
            }
            "MFA_SETUP" => {
                let can_setup =
                    parse_json_strings(parameters.get("MFAS_CAN_SETUP"), "MFAS_CAN_SETUP")?;
                if !can_setup.is_empty()
                    && !can_setup.iter().any(|name| name == "SOFTWARE_TOKEN_MFA")
                {
                    return Err(Error::Unsupported(format!(
                        "mfa setup is supported for an authenticator app (SOFTWARE_TOKEN_MFA) only; the pool offers {}",
                        can_setup.join(", ")
                    )));
                }
                let Some(session) = self.session.clone() else {
                    return Err(Error::Protocol(
                        "MFA_SETUP arrived without a session".into(),
                    ));
                };
                let request = AssociateSoftwareTokenRequest {
                    access_token: None,
                    session: Some(session),
                };
                Ok(Next::Send {
                    login: Box::new(Login {
                        ctx: self,
                        waiting: Waiting::Associate,
                    }),
                    request: Request::AssociateSoftwareToken(request),
                })
            }
            "SELECT_CHALLENGE" => {
                let available = response.available_challenges.unwrap_or_default();
                Ok(self.human(Challenge::SelectChallenge { available }, now))
            }
            "CUSTOM_CHALLENGE" => {
                let parameters = parameters
                    .iter()
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .collect();
                Ok(self.human(Challenge::CustomChallenge { parameters }, now))
            }
            "WEB_AUTHN" => Err(web_authn_unsupported()),
            other => Err(Error::Unsupported(format!(
                "the {other} challenge is not supported"
            ))),
        }
    }

    /// Tokens arrived: confirm a new device if Cognito created one, else done.
    pub(super) fn finish(
        self,
        result: &AuthenticationResult,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<Next, Error> {
        let tokens = TokenSet::from_result(result, now)?;
        let refresh_token = result
            .refresh_token
            .clone()
            .ok_or_else(|| Error::Protocol("the sign-in result has no refresh token".into()))?;
        let Some(metadata) = &result.new_device_metadata else {
            return Ok(Next::Done(Box::new(LoginSuccess {
                tokens,
                refresh_token,
                device: self.device,
            })));
        };
        let device_name = Some(self.device_name.trim().to_owned()).filter(|name| !name.is_empty());
        let (device, request) =
            confirm_device_request(tokens.access_token(), metadata, device_name, entropy);
        let success = Box::new(LoginSuccess {
            tokens,
            refresh_token,
            device: None,
        });
        Ok(Next::Send {
            login: Box::new(Login {
                ctx: self,
                waiting: Waiting::ConfirmDevice { success, device },
            }),
            request: Request::ConfirmDevice(request),
        })
    }
}

/// A sign-in waiting for the reply to the request it emitted.
pub struct Login {
    pub(super) ctx: Context,
    pub(super) waiting: Waiting,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = match &self.waiting {
            Waiting::Auth { .. } => "auth",
            Waiting::Associate => "associate_software_token",
            Waiting::Verify { .. } => "verify_software_token",
            Waiting::ConfirmDevice { .. } => "confirm_device",
            Waiting::UpdateDeviceStatus { .. } => "update_device_status",
        };
        f.debug_struct("Login")
            .field("username", &self.ctx.typed_username)
            .field("flow", &self.ctx.flow)
            .field("waiting", &waiting)
            .finish_non_exhaustive()
    }
}

pub(super) enum Waiting {
    /// For InitiateAuth or RespondToAuthChallenge. `srp` is the ephemeral whose A was sent;
    /// `retry` is the challenge to hand back if the answer is refused in a retryable way.
    Auth {
        srp: Option<SrpEphemeral>,
        retry: Option<Box<PendingLogin>>,
    },
    Associate,
    Verify {
        retry: Box<PendingLogin>,
    },
    ConfirmDevice {
        success: Box<LoginSuccess>,
        device: DeviceCredentials,
    },
    UpdateDeviceStatus {
        success: Box<LoginSuccess>,
    },
}

pub(super) fn web_authn_unsupported() -> Error {
    Error::Unsupported(
        "WEB_AUTHN (passkey) sign-in needs a platform authenticator, which a headless broker does not have; choose another factor or flow".into(),
    )
}
