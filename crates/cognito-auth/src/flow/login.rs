//! The machine between a request and its reply: what each reply leads to.

use std::time::SystemTime;

use super::context::{Context, Login, Waiting};
use super::params::otpauth_uri;
use super::{
    Challenge, ChallengeAnswer, DeviceRemembering, FlowOptions, LoginRequest, Next, Reply, Request,
    RespondError,
};
use crate::env::Entropy;
use crate::error::{Error, ErrorCode};
use crate::pool::AppClient;
use crate::secret::TotpSecret;
use crate::wire::{DeviceRememberedStatus, UpdateDeviceStatusRequest};

impl Login {
    /// Starts a sign-in: returns the machine and the InitiateAuth to send.
    pub fn start(
        app: AppClient,
        request: LoginRequest,
        options: FlowOptions,
        entropy: &dyn Entropy,
    ) -> Result<(Login, Request), Error> {
        let username = request.username.trim().to_owned();
        if username.is_empty() {
            return Err(Error::InvalidInput("the username is empty".into()));
        }
        let ctx = Context {
            app,
            options,
            flow: request.flow,
            typed_username: username.clone(),
            username,
            password: request.password.filter(|password| !password.is_empty()),
            device: request.device,
            remember: request.remember_device,
            device_name: request.device_name,
            session: None,
            device_retry_used: false,
        };
        ctx.initiate(entropy)
    }

    /// Whether feeding `reply` to [`Login::on_reply`] does SRP math (a password claim, a fresh
    /// SRP_A, a new device's verifier, or a restart of an SRP flow without the unknown device),
    /// so an async driver should compute it on a blocking thread. Every other step is cheap.
    pub fn reply_needs_srp(&self, reply: &Result<Reply, Error>) -> bool {
        if !matches!(self.waiting, Waiting::Auth { .. }) {
            return false;
        }
        match reply {
            Ok(Reply::Auth(response)) => {
                if let Some(result) = &response.authentication_result {
                    return result.new_device_metadata.is_some();
                }
                matches!(
                    response.challenge_name.as_deref(),
                    Some(
                        "PASSWORD_VERIFIER"
                            | "DEVICE_SRP_AUTH"
                            | "DEVICE_PASSWORD_VERIFIER"
                            | "PASSWORD_SRP"
                    )
                )
            }
            Ok(_) => false,
            Err(error) => {
                error.is_unknown_device()
                    && self.ctx.device.is_some()
                    && !self.ctx.device_retry_used
                    && self.ctx.flow.starts_with_srp()
            }
        }
    }

    /// Feeds the reply (or the failure) of the request this machine emitted.
    pub fn on_reply(
        self,
        reply: Result<Reply, Error>,
        now: SystemTime,
        entropy: &dyn Entropy,
    ) -> Result<Next, RespondError> {
        let Login { mut ctx, waiting } = self;
        match (waiting, reply) {
            (Waiting::Auth { srp, .. }, Ok(Reply::Auth(response))) => ctx
                .on_auth(srp, response, now, entropy)
                .map_err(RespondError::from),
            (Waiting::Auth { retry, .. }, Err(error)) => {
                if error.is_unknown_device() && ctx.device.is_some() && !ctx.device_retry_used {
                    tracing::info!(
                        "the stored device is unknown to cognito; signing in again without it"
                    );
                    ctx.device = None;
                    ctx.device_retry_used = true;
                    ctx.session = None;
                    ctx.username = ctx.typed_username.clone();
                    let (login, request) = ctx.initiate(entropy)?;
                    return Ok(Next::Send {
                        login: Box::new(login),
                        request,
                    });
                }
                let pending = retry.filter(|_| retryable(&error));
                Err(RespondError { error, pending })
            }
            (Waiting::Associate, Ok(Reply::AssociateSoftwareToken(response))) => {
                if response.session.is_some() {
                    ctx.session = response.session;
                }
                let secret_code = response.secret_code.ok_or_else(|| {
                    Error::Protocol("AssociateSoftwareToken returned no secret code".into())
                })?;
                let otpauth_uri = TotpSecret::new(otpauth_uri(
                    &ctx.options.totp_issuer,
                    &ctx.typed_username,
                    secret_code.expose_secret(),
                ));
                Ok(ctx.human(
                    Challenge::MfaSetup {
                        secret_code,
                        otpauth_uri,
                    },
                    now,
                ))
            }
            (Waiting::Verify { retry }, Ok(Reply::VerifySoftwareToken(response))) => {
                if response
                    .status
                    .as_deref()
                    .is_some_and(|status| status != "SUCCESS")
                {
                    // Cognito normally raises EnableSoftwareTokenMFAException instead; treat a
                    // plain ERROR status the same way.
                    let error = Error::Service(crate::error::ServiceError {
                        code: ErrorCode::EnableSoftwareTokenMfa,
                        message: "the code was not accepted".into(),
                        status: 200,
                    });
                    return Err(RespondError {
                        error,
                        pending: Some(retry),
                    });
                }
                if response.session.is_some() {
                    ctx.session = response.session;
                }
                let request = ctx.respond("MFA_SETUP", ctx.common_responses());
                Ok(Next::Send {
                    login: Box::new(Login {
                        ctx,
                        waiting: Waiting::Auth {
                            srp: None,
                            retry: None,
                        },
                    }),
                    request,
                })
            }
            (Waiting::Verify { retry }, Err(error)) => {
                let pending = retryable(&error).then_some(retry);
                Err(RespondError { error, pending })
            }
            (
                Waiting::ConfirmDevice {
                    mut success,
                    device,
                },
                Ok(Reply::ConfirmDevice(response)),
            ) => {
                let remember = ctx.remember == DeviceRemembering::Remember;
                let device_key = device.device_key.clone();
                success.device = Some(device);
                if !(response.user_confirmation_necessary || remember) {
                    return Ok(Next::Done(success));
                }
                let status = if remember {
                    DeviceRememberedStatus::Remembered
                } else {
                    DeviceRememberedStatus::NotRemembered
                };
                let request = UpdateDeviceStatusRequest {
                    access_token: success.tokens.access_token().clone(),
                    device_key,
                    device_remembered_status: Some(status),
                };
                Ok(Next::Send {
                    login: Box::new(Login {
                        ctx,
                        waiting: Waiting::UpdateDeviceStatus { success },
                    }),
                    request: Request::UpdateDeviceStatus(request),
                })
            }
            (Waiting::ConfirmDevice { success, .. }, Err(error)) => {
                // The tokens are good; without a confirmed device later refreshes may fail, and
                // the next sign-in will create a new device.
                tracing::warn!(error = %error, "ConfirmDevice failed; continuing without a device");
                Ok(Next::Done(success))
            }
            (Waiting::UpdateDeviceStatus { success }, Ok(Reply::UpdateDeviceStatus)) => {
                Ok(Next::Done(success))
            }
            (Waiting::UpdateDeviceStatus { success }, Err(error)) => {
                // The device is confirmed, so refreshes work; only remembering it failed.
                tracing::warn!(error = %error, "UpdateDeviceStatus failed; the device stays confirmed");
                Ok(Next::Done(success))
            }
            (_, Err(error)) => Err(RespondError::from(error)),
            (_, Ok(_)) => Err(RespondError::from(Error::Protocol(
                "internal: the reply does not match the request".into(),
            ))),
        }
    }
}

/// Errors after which the same challenge may be answered again.
fn retryable(error: &Error) -> bool {
    matches!(
        error.code(),
        Some(
            ErrorCode::CodeMismatch
                | ErrorCode::InvalidPassword
                | ErrorCode::PasswordHistoryPolicyViolation
                | ErrorCode::EnableSoftwareTokenMfa
        )
    )
}

pub(super) fn answer_kind(answer: &ChallengeAnswer) -> &'static str {
    match answer {
        ChallengeAnswer::NewPassword { .. } => "a new password",
        ChallengeAnswer::Code(_) => "a code",
        ChallengeAnswer::MfaType(_) => "an mfa type",
        ChallengeAnswer::SelectChallenge { .. } => "a challenge choice",
        ChallengeAnswer::CustomAnswer(_) => "a custom answer",
    }
}
