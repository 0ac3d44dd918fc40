//! The profile task's logins and logout: one pending login per profile, its challenge held
//! here until a person answers, and expired logins remembered for a while so a late answer
//! hears `challenge_expired` rather than `unknown_login`.

use std::time::SystemTime;

use cognito_auth::LoginStep;
use secrecy::ExposeSecret as _;
use tokio::sync::oneshot;

use super::jobs::{self, Done};
use super::{
    EXPIRED_LOGIN_GRACE, EXPIRED_REMEMBERED, LoginReply, LoginSlot, ProfileTask, UnitReply,
};
use crate::broker::challenge::{build_answer, describe_challenge};
use crate::broker::error::BrokerError;
use crate::broker::source::{StepFailure, TokenSource};
use crate::broker::state::{LoginFlag, Snapshot};
use crate::broker::{AnswerInput, BrokerEvent, LoginOutcome};

/// How long a browser login waits for its redirect.
const BROWSER_LOGIN_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl<S: TokenSource> ProfileTask<S> {
    /// A login for this profile is running or waits for an unexpired answer.
    pub(super) fn login_active(&self, now: SystemTime) -> bool {
        match &self.login {
            LoginSlot::Idle => false,
            LoginSlot::Busy { .. } => true,
            LoginSlot::Pending { pending, .. } => pending.expires_at() > now,
            LoginSlot::Browser { expires_at, .. } => *expires_at > now,
        }
    }

    /// Frees the profile of a pending login past its expiry (a new login may start) and forgets
    /// expired ones for good after [`EXPIRED_LOGIN_GRACE`].
    pub(super) fn expire_logins(&mut self, now: SystemTime) {
        if matches!(&self.login, LoginSlot::Pending { pending, .. } if pending.expires_at() <= now)
            && let LoginSlot::Pending { login_id, pending } =
                std::mem::replace(&mut self.login, LoginSlot::Idle)
        {
            let forget_at = pending
                .expires_at()
                .checked_add(EXPIRED_LOGIN_GRACE)
                .unwrap_or(now);
            self.remember_expired(login_id, forget_at);
            self.publish_flags(|s| s.login = LoginFlag::Idle);
        }
        if matches!(&self.login, LoginSlot::Browser { expires_at, .. } if *expires_at <= now)
            && let LoginSlot::Browser {
                login_id,
                expires_at,
                ..
            } = std::mem::replace(&mut self.login, LoginSlot::Idle)
        {
            let forget_at = expires_at.checked_add(EXPIRED_LOGIN_GRACE).unwrap_or(now);
            self.remember_expired(login_id, forget_at);
            self.publish_flags(|s| s.login = LoginFlag::Idle);
        }
        // Oldest first: forget the leading ones that are due.
        let due = self
            .expired
            .iter()
            .take_while(|(_, forget_at)| *forget_at <= now)
            .count();
        for (login_id, _) in self.expired.drain(..due) {
            self.shared.logins.remove(&login_id);
        }
    }

    fn remember_expired(&mut self, login_id: String, forget_at: SystemTime) {
        if self.expired.len() >= EXPIRED_REMEMBERED {
            let (oldest, _) = self.expired.remove(0);
            self.shared.logins.remove(&oldest);
        }
        self.expired.push((login_id, forget_at));
    }

    /// Takes an expired login id out of memory; true if it was there.
    fn forget_expired(&mut self, login_id: &str) -> bool {
        match self.expired.iter().position(|(id, _)| id == login_id) {
            Some(index) => {
                self.expired.remove(index);
                self.shared.logins.remove(login_id);
                true
            }
            None => false,
        }
    }

    fn new_login_id(&self) -> String {
        let mut bytes = [0u8; 32];
        self.shared.entropy.fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(super) fn login(
        &mut self,
        password: Option<cognito_auth::secret::Password>,
        reply: LoginReply,
    ) {
        let now = self.now();
        self.expire_logins(now);
        if self.login_active(now) {
            let _ = reply.send(Err(BrokerError::LoginInProgress));
            return;
        }
        if self.stopping {
            let _ = reply.send(Err(BrokerError::ShuttingDown));
            return;
        }
        let login_id = self.new_login_id();
        if let Some(begun) = self.source.begin_browser(self.shared.entropy.as_ref()) {
            let login = match begun {
                Ok(login) => login,
                Err(error) => {
                    let _ = reply.send(Err(error));
                    return;
                }
            };
            let expires_at = now + BROWSER_LOGIN_TTL;
            let authorize_url = login.url.to_string();
            self.shared
                .logins
                .insert(&login_id, self.info.name.as_str());
            self.login = LoginSlot::Browser {
                login_id: login_id.clone(),
                login: Box::new(login),
                expires_at,
            };
            self.publish_flags(|s| s.login = LoginFlag::PendingUntil(expires_at));
            self.emit(BrokerEvent::LoginStarted {
                profile: self.name(),
            });
            tracing::info!(profile = %self.info.name, "browser login started");
            let _ = reply.send(Ok(LoginOutcome::Browser {
                login_id,
                authorize_url,
            }));
            return;
        }
        let source = self.source.clone();
        let device = self.session.as_ref().and_then(|s| s.device.clone());
        let events = self.shared.events.clone();
        let profile = self.name();
        let job = self
            .jobs
            .spawn(self.shared.options.upstream.as_ref(), async move {
                let started = move || {
                    let _ = events.send(BrokerEvent::LoginStarted { profile });
                };
                Done::LoginStep(source.start_login(password, device, started).await)
            });
        self.shared
            .logins
            .insert(&login_id, self.info.name.as_str());
        self.login = LoginSlot::Busy {
            login_id,
            job,
            reply,
        };
        self.publish_flags(|s| s.login = LoginFlag::Busy);
    }

    pub(super) fn answer(&mut self, login_id: &str, input: AnswerInput, reply: LoginReply) {
        let now = self.now();
        self.expire_logins(now);
        if matches!(&self.login, LoginSlot::Browser { login_id: id, .. } if id == login_id) {
            self.answer_browser(input, reply);
            return;
        }
        match &self.login {
            LoginSlot::Pending { login_id: id, .. } if id == login_id => {}
            LoginSlot::Busy { login_id: id, .. } if id == login_id => {
                let _ = reply.send(Err(BrokerError::LoginInProgress));
                return;
            }
            _ => {
                let error = if self.forget_expired(login_id) {
                    BrokerError::ChallengeExpired
                } else {
                    BrokerError::UnknownLogin
                };
                let _ = reply.send(Err(error));
                return;
            }
        }
        let LoginSlot::Pending { login_id, pending } =
            std::mem::replace(&mut self.login, LoginSlot::Idle)
        else {
            unreachable!("matched as pending above");
        };
        let answer = match build_answer(pending.challenge(), input) {
            Ok(answer) => answer,
            Err(error) => {
                self.login = LoginSlot::Pending { login_id, pending };
                let _ = reply.send(Err(error));
                return;
            }
        };
        let source = self.source.clone();
        let job = self
            .jobs
            .spawn(self.shared.options.upstream.as_ref(), async move {
                jobs::respond(source.as_ref(), *pending, answer).await
            });
        self.login = LoginSlot::Busy {
            login_id,
            job,
            reply,
        };
        self.publish_flags(|s| s.login = LoginFlag::Busy);
    }

    /// The redirect of a browser login: its `state` is checked here (a mismatch leaves the
    /// login pending and the code unredeemed), then the code is redeemed in a job.
    fn answer_browser(&mut self, input: AnswerInput, reply: LoginReply) {
        let Some(redirect) = input.redirect_url else {
            let _ = reply.send(Err(BrokerError::BadInput {
                field: "redirect_url",
                message: "a browser login is answered with {\"redirect_url\": \"<the URL the browser was sent back to>\"}".to_owned(),
            }));
            return;
        };
        let LoginSlot::Browser {
            login_id,
            login,
            expires_at,
        } = std::mem::replace(&mut self.login, LoginSlot::Idle)
        else {
            unreachable!("matched as a browser login by the caller");
        };
        let code = match login.code_from_redirect(redirect.expose_secret()) {
            Ok(code) => code,
            Err(cognito_auth::Error::StateMismatch) => {
                tracing::warn!(profile = %self.info.name, "a browser redirect with a wrong state was refused; its code is not redeemed");
                self.login = LoginSlot::Browser {
                    login_id,
                    login,
                    expires_at,
                };
                let _ = reply.send(Err(BrokerError::BadInput {
                    field: "redirect_url",
                    message: "its state does not match this login's (a stale or forged redirect): refused, and its code was not redeemed".to_owned(),
                }));
                return;
            }
            Err(cognito_auth::Error::InvalidInput(message)) => {
                self.login = LoginSlot::Browser {
                    login_id,
                    login,
                    expires_at,
                };
                let _ = reply.send(Err(BrokerError::BadInput {
                    field: "redirect_url",
                    message,
                }));
                return;
            }
            Err(error) => {
                // The login pages answered with an error (access_denied, ...): it is over.
                self.shared.logins.remove(&login_id);
                self.publish_flags(|s| s.login = LoginFlag::Idle);
                let error = crate::broker::error::map_login_error(&error);
                self.login_finished(&Err(BrokerError::NotAuthorized(error.to_string())));
                let _ = reply.send(Err(BrokerError::NotAuthorized(error.to_string())));
                return;
            }
        };
        let source = self.source.clone();
        let job = self
            .jobs
            .spawn(self.shared.options.upstream.as_ref(), async move {
                Done::LoginStep(source.finish_browser(*login, code).await)
            });
        self.login = LoginSlot::Busy {
            login_id,
            job,
            reply,
        };
        self.publish_flags(|s| s.login = LoginFlag::Busy);
    }

    pub(super) fn cancel(&mut self, login_id: &str) -> Result<(), BrokerError> {
        match &self.login {
            LoginSlot::Pending { login_id: id, .. } | LoginSlot::Browser { login_id: id, .. }
                if id == login_id =>
            {
                self.shared.logins.remove(login_id);
                self.login = LoginSlot::Idle;
                self.publish_flags(|s| s.login = LoginFlag::Idle);
                Ok(())
            }
            LoginSlot::Busy { login_id: id, .. } if id == login_id => {
                Err(BrokerError::LoginInProgress)
            }
            _ => {
                if self.forget_expired(login_id) {
                    Ok(())
                } else {
                    Err(BrokerError::UnknownLogin)
                }
            }
        }
    }

    pub(super) async fn on_login_step(
        &mut self,
        job: tokio::task::Id,
        result: Result<LoginStep, StepFailure>,
    ) {
        if !matches!(&self.login, LoginSlot::Busy { job: busy, .. } if busy.id() == job) {
            // Ended by a logout while upstream was answering: keep nothing.
            return;
        }
        let LoginSlot::Busy {
            login_id, reply, ..
        } = std::mem::replace(&mut self.login, LoginSlot::Idle)
        else {
            unreachable!("matched as busy above");
        };
        let outcome = match result {
            Ok(LoginStep::Authenticated(success)) => {
                let username = success.tokens.username().map(str::to_owned);
                let expires_at = self.commit_login(*success).await;
                self.shared.logins.remove(&login_id);
                Ok(LoginOutcome::Authenticated {
                    profile: self.name(),
                    expires_at,
                    username,
                })
            }
            Ok(LoginStep::Challenge(pending)) => match describe_challenge(pending.challenge()) {
                Some((challenge, message, fields, details)) => {
                    let outcome = LoginOutcome::Challenge {
                        login_id: login_id.clone(),
                        challenge,
                        message,
                        fields,
                        details,
                    };
                    self.login = LoginSlot::Pending { login_id, pending };
                    Ok(outcome)
                }
                None => {
                    self.shared.logins.remove(&login_id);
                    Err(BrokerError::Unsupported(
                        "this challenge is not supported".to_owned(),
                    ))
                }
            },
            Err(StepFailure { error, pending }) => {
                match pending {
                    Some(pending) => self.login = LoginSlot::Pending { login_id, pending },
                    None => self.shared.logins.remove(&login_id),
                }
                Err(error)
            }
        };
        let flag = match &self.login {
            LoginSlot::Pending { pending, .. } => LoginFlag::PendingUntil(pending.expires_at()),
            LoginSlot::Browser { expires_at, .. } => LoginFlag::PendingUntil(*expires_at),
            LoginSlot::Busy { .. } => LoginFlag::Busy,
            LoginSlot::Idle => LoginFlag::Idle,
        };
        self.publish_flags(|s| s.login = flag);
        self.login_finished(&outcome);
        let _ = reply.send(outcome);
    }

    fn login_finished(&self, result: &Result<LoginOutcome, BrokerError>) {
        let profile = self.name();
        let metrics = &self.shared.metrics;
        match result {
            Ok(LoginOutcome::Authenticated { .. }) => {
                metrics.login("authenticated");
                tracing::info!(profile = %profile, "login completed");
                self.emit(BrokerEvent::LoginCompleted { profile });
            }
            Ok(LoginOutcome::Browser { .. }) => {
                metrics.login("browser");
            }
            Ok(LoginOutcome::Challenge { challenge, .. }) => {
                metrics.login("challenge");
                tracing::info!(profile = %profile, challenge = *challenge, "login waits for a challenge answer");
            }
            Err(error) => {
                metrics.login(error.code());
                tracing::info!(profile = %profile, error = error.code(), "login step failed");
                self.emit(BrokerEvent::LoginFailed {
                    profile,
                    error: error.code().to_owned(),
                });
            }
        }
    }

    /// Logs out: the local session is erased whatever happens upstream; RevokeToken (and
    /// ForgetDevice when asked) are best effort, in a job, and the reply waits for them.
    pub(super) async fn logout(&mut self, forget_device: bool, reply: UnitReply) {
        match std::mem::replace(&mut self.login, LoginSlot::Idle) {
            LoginSlot::Busy {
                login_id,
                job,
                reply: waiting,
            } => {
                job.abort();
                self.shared.logins.remove(&login_id);
                let _ = waiting.send(Err(BrokerError::login_required(
                    self.info.name.as_str(),
                    "the login was ended by a logout",
                )));
            }
            LoginSlot::Pending { login_id, .. } | LoginSlot::Browser { login_id, .. } => {
                self.shared.logins.remove(&login_id);
            }
            LoginSlot::Idle => {}
        }
        self.abandon_refresh();
        self.aws_session_changed();
        self.due = None;
        self.dormant = true;
        let session = self.session.take();
        let tokens = self.snapshot().tokens.clone();
        let sessionless = self.source.sessionless();
        self.publish(|s| {
            *s = Snapshot {
                generation: s.generation,
                has_session: sessionless,
                // `exec --aws` children keep their grants: they hear `login_required` now.
                aws: crate::broker::aws::SharedAws::from(crate::broker::aws::AwsSnapshot {
                    generation: s.aws.generation.wrapping_add(1),
                    grants: s.aws.grants.clone(),
                    ..Default::default()
                }),
                ..Snapshot::default()
            };
        });
        self.update_sinks().await;
        let store = self.shared.store.clone();
        let name = self.info.name.clone();
        let erased = tokio::task::spawn_blocking(move || store.erase(&name))
            .await
            .map_err(|error| anyhow::anyhow!("the erase task failed: {error}"))
            .and_then(|result| result);
        let Some(session) = session else {
            self.finish_logout(reply, erased);
            return;
        };
        let source = self.source.clone();
        self.jobs
            .spawn(self.shared.options.upstream.as_ref(), async move {
                source.end_session(session, tokens, forget_device).await;
                Done::LoggedOut { reply, erased }
            });
    }

    pub(super) fn finish_logout(
        &self,
        reply: oneshot::Sender<Result<(), BrokerError>>,
        erased: anyhow::Result<()>,
    ) {
        tracing::info!(profile = %self.info.name, "logged out");
        self.emit(BrokerEvent::LoggedOut {
            profile: self.name(),
        });
        let _ = reply.send(erased.map_err(|error| {
            BrokerError::Internal(error.context("cannot erase the stored session"))
        }));
    }
}
