//! The profile task's refreshes: one in flight at a time with its waiters, the unattended
//! login its failure may lead to, and the commit points (persist, then publish) shared with
//! logins.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cognito_auth::{LoginSuccess, Refreshed, TokenSet};
use tokio::sync::oneshot;

use super::jobs::{self, Done, Mode, RefreshError, random_fraction};
use super::{InFlight, ProfileTask};
use crate::broker::error::{AttemptFailure, AttemptOutcome, FailureClass, describe_error};
use crate::broker::policy::{self, Backoff};
use crate::broker::source::TokenSource;
use crate::broker::state::{HeldTokens, Snapshot};
use crate::broker::ticket::Waiters;
use crate::broker::{BrokerEvent, FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST};
use crate::store::StoredSession;

impl<S: TokenSource> ProfileTask<S> {
    pub(super) async fn refresh(
        &mut self,
        mode: Mode,
        observed: u64,
        reply: Option<oneshot::Sender<AttemptOutcome>>,
    ) {
        if let Some(in_flight) = &mut self.refresh {
            in_flight.waiters.add(reply);
            return;
        }
        let snapshot = self.snapshot();
        if mode == Mode::Blocking && snapshot.generation != observed {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        if mode == Mode::Background && !snapshot.can_refresh() {
            return;
        }
        self.start_refresh(mode, reply).await;
    }

    pub(super) async fn start_refresh(
        &mut self,
        mode: Mode,
        reply: Option<oneshot::Sender<AttemptOutcome>>,
    ) {
        if self.refresh.is_some() {
            if let (Some(in_flight), Some(reply)) = (&mut self.refresh, reply) {
                in_flight.waiters.add(Some(reply));
            }
            return;
        }
        let failure = if self.stopping {
            Some(AttemptFailure::ShuttingDown)
        } else if self.session.is_none() && !self.source.sessionless() {
            Some(AttemptFailure::NoSession)
        } else {
            None
        };
        if let Some(failure) = failure {
            if let Some(reply) = reply {
                let _ = reply.send(Err(failure));
            }
            return;
        }
        self.mark_unconfirmed().await;
        let session = self.session.clone();
        let source = self.source.clone();
        let shared = self.shared.clone();
        let job = self
            .jobs
            .spawn(self.shared.options.upstream.as_ref(), async move {
                let started = tokio::time::Instant::now();
                let result = jobs::refresh(
                    source.as_ref(),
                    session.as_ref(),
                    mode,
                    &shared.options,
                    shared.entropy.as_ref(),
                )
                .await;
                Done::Refreshed {
                    result,
                    elapsed: started.elapsed(),
                    session,
                }
            });
        let (waiters, ticket) = Waiters::new(reply);
        self.refresh = Some(Box::new(InFlight {
            job,
            waiters,
            unattended_after: None,
        }));
        self.publish_flags(|s| s.refresh = Some(ticket));
    }

    /// Before a refresh that may rotate the refresh token (rotation seen, or not known yet),
    /// records durably that one is under way: if the daemon dies before the result is stored,
    /// the next start refreshes at once, inside the upstream's grace for the old token, instead
    /// of waiting for a caller who may come too late. A failed save is logged and the refresh
    /// goes ahead: it is the protection that is lost, not the session.
    async fn mark_unconfirmed(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if session.rotates == Some(false) || session.refresh_unconfirmed {
            return;
        }
        session.refresh_unconfirmed = true;
        let marked = session.clone();
        if let Err(error) = self.persist(marked).await {
            tracing::warn!(profile = %self.info.name, error = %format!("{error:#}"), "cannot record the refresh about to start; a crash before its result is stored may need a login");
        }
    }

    /// Ends the refresh in flight with `outcome` for every waiter: those who asked with a
    /// command and those who joined through the snapshot's ticket.
    pub(super) fn finish_refresh(&mut self, outcome: AttemptOutcome) {
        if let Some(in_flight) = self.refresh.take() {
            in_flight.waiters.answer(outcome);
        }
        self.publish_flags(|s| s.refresh = None);
    }

    /// A login or logout replaces the session: the refresh in flight is of the old one.
    pub(super) fn abandon_refresh(&mut self) {
        if let Some(in_flight) = &self.refresh {
            in_flight.job.abort();
        }
        self.finish_refresh(Err(AttemptFailure::NoSession));
    }

    pub(super) async fn on_refreshed(
        &mut self,
        result: Result<Refreshed, RefreshError>,
        elapsed: Duration,
        session: Option<StoredSession>,
    ) {
        let metrics = &self.shared.metrics;
        match result {
            Ok(refreshed) => {
                if self.shared.failpoint.as_deref() == Some(FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST)
                {
                    tracing::error!(
                        "failpoint {}: aborting",
                        FAILPOINT_AFTER_REFRESH_BEFORE_PERSIST
                    );
                    std::process::abort();
                }
                metrics.refresh("ok", elapsed);
                self.commit_refresh(session, refreshed).await;
                self.finish_refresh(Ok(()));
            }
            Err(RefreshError::Setup(error)) => {
                let message = error.to_string();
                self.back_off(FailureClass::Terminal);
                self.publish(|s| s.last_error = Some("misconfigured"));
                self.emit(BrokerEvent::RefreshFailed {
                    profile: self.name(),
                    class: "misconfigured".to_owned(),
                });
                self.finish_refresh(Err(AttemptFailure::Misconfigured(message)));
            }
            Err(RefreshError::Deadline) => {
                metrics.refresh("transient", elapsed);
                metrics.upstream_error("timeout");
                let retry_after = self.back_off(FailureClass::Transient);
                self.emit(BrokerEvent::RefreshFailed {
                    profile: self.name(),
                    class: "transient".to_owned(),
                });
                self.finish_refresh(Err(AttemptFailure::Upstream {
                    retry_after,
                    reason: "refresh deadline exceeded".to_owned(),
                }));
            }
            Err(RefreshError::Upstream(error))
                if self.source.misconfiguration(&error).is_some() =>
            {
                let message = self.source.misconfiguration(&error).unwrap_or_default();
                metrics.refresh("misconfigured", elapsed);
                metrics.upstream_error("terminal");
                tracing::error!(profile = %self.info.name, error = %describe_error(&error), "upstream refused the profile's configuration; not retrying");
                self.publish(|s| {
                    s.misconfigured = Some(message.clone());
                    s.last_error = Some("misconfigured");
                    s.degraded = s.tokens.is_some();
                });
                self.emit(BrokerEvent::RefreshFailed {
                    profile: self.name(),
                    class: "misconfigured".to_owned(),
                });
                self.finish_refresh(Err(AttemptFailure::Misconfigured(message)));
            }
            Err(RefreshError::Upstream(error)) => {
                let class = FailureClass::of(&error);
                metrics.refresh(class.name(), elapsed);
                metrics.upstream_error(class.name());
                let reason = describe_error(&error);
                tracing::warn!(profile = %self.info.name, class = class.name(), error = %reason, "refresh failed");
                self.emit(BrokerEvent::RefreshFailed {
                    profile: self.name(),
                    class: class.name().to_owned(),
                });
                match class {
                    FailureClass::LoginRequired => {
                        let reason = format!("the refresh token was refused: {reason}");
                        if !self.try_unattended_login(reason.clone()) {
                            self.require_login(reason);
                        }
                    }
                    FailureClass::Transient | FailureClass::Throttled | FailureClass::Terminal => {
                        let retry_after = self.back_off(class);
                        self.finish_refresh(Err(AttemptFailure::Upstream {
                            retry_after,
                            reason,
                        }));
                    }
                }
            }
        }
    }

    /// After the refresh token was refused: the task's own decision to log in again with the
    /// configured password source, keeping the refresh's waiters. False when impossible.
    pub(super) fn try_unattended_login(&mut self, reason: String) -> bool {
        let now = self.now();
        if self.stopping || !self.source.can_log_in_unattended() || self.login_active(now) {
            return false;
        }
        let Some(in_flight) = self.refresh.as_mut() else {
            return false;
        };
        let source = self.source.clone();
        let device = self.session.as_ref().and_then(|s| s.device.clone());
        let job = self
            .jobs
            .spawn(self.shared.options.upstream.as_ref(), async move {
                Done::Unattended(source.unattended_login(device).await)
            });
        in_flight.job = job;
        in_flight.unattended_after = Some(reason);
        true
    }

    pub(super) async fn on_unattended(&mut self, success: Option<LoginSuccess>) {
        let reason = self
            .refresh
            .as_mut()
            .and_then(|in_flight| in_flight.unattended_after.take())
            .unwrap_or_else(|| "the refresh token was refused".to_owned());
        let metrics = &self.shared.metrics;
        match success {
            Some(success) => {
                metrics.login("unattended_ok");
                // Keep the waiters: they are answered once the new session is published.
                let in_flight = self.refresh.take();
                self.commit_login(success).await;
                if let Some(in_flight) = in_flight {
                    in_flight.waiters.answer(Ok(()));
                }
            }
            None => {
                metrics.login("unattended_failed");
                self.require_login(reason);
            }
        }
    }

    pub(super) fn require_login(&mut self, reason: String) {
        self.publish(|s| {
            s.tokens = None;
            s.login_required = Some(reason.clone());
            s.degraded = false;
            s.last_error = Some("login_required");
            s.backoff = Backoff::default();
        });
        self.aws_login_required();
        self.finish_refresh(Err(AttemptFailure::LoginRequired(reason)));
    }

    /// Persists (if anything changed) and only then publishes the new tokens.
    pub(super) async fn commit_refresh(
        &mut self,
        old: Option<StoredSession>,
        refreshed: Refreshed,
    ) {
        let Some(old) = old else {
            // A sessionless grant: nothing to persist.
            self.install(None, refreshed.tokens, false, |_| {});
            tracing::info!(profile = %self.info.name, "tokens granted");
            self.update_sinks().await;
            return;
        };
        let Refreshed {
            tokens,
            rotated_refresh_token,
            new_device,
        } = refreshed;
        let username = tokens
            .username()
            .map(str::to_owned)
            .or_else(|| old.username.clone());
        let rotates = Some(rotated_refresh_token.is_some());
        // The held session may carry the mark of this refresh (set after `old` was copied).
        let marked = self.session.as_ref().is_some_and(|s| s.refresh_unconfirmed);
        let changed = rotated_refresh_token.is_some()
            || new_device.is_some()
            || username != old.username
            || rotates != old.rotates
            || marked;
        let session = StoredSession {
            refresh_token: rotated_refresh_token.unwrap_or(old.refresh_token),
            username,
            device: new_device.or(old.device),
            rotates,
            refresh_unconfirmed: false,
            // An AWS fetch may have stored the identity id since `old` was copied.
            identity: self
                .session
                .as_ref()
                .and_then(|s| s.identity.clone())
                .or(old.identity),
        };
        let persisted = if changed {
            self.persist(session.clone()).await
        } else {
            Ok(())
        };
        let failed = persisted.is_err();
        if let Err(error) = persisted {
            tracing::error!(profile = %self.info.name, error = %format!("{error:#}"), "cannot persist the rotated refresh token; keeping it in memory and retrying");
        }
        self.install(Some(session), tokens, failed, |s| {
            // An unchanged session was not saved: an earlier persist failure still stands.
            s.persistence_degraded = failed || (s.persistence_degraded && !changed);
        });
        tracing::info!(profile = %self.info.name, rotated = changed, "tokens refreshed");
        self.update_sinks().await;
    }

    /// Rewrites the profile's sinks with the published tokens (or removes them when there are
    /// none). Awaited, so whoever waits for these tokens finds the files written.
    pub(super) async fn update_sinks(&self) {
        if self.info.sinks.is_empty() {
            return;
        }
        let tokens = self.snapshot().tokens.clone();
        crate::broker::sinks::update(
            self.info.name.as_str(),
            &self.info.sinks,
            tokens.as_deref().map(|held| &**held),
        )
        .await;
    }

    /// Persists a new login's session, then publishes its tokens; the refresh in flight (of
    /// the old session) is abandoned first. Returns when the tokens expire.
    pub(super) async fn commit_login(&mut self, success: LoginSuccess) -> SystemTime {
        self.abandon_refresh();
        let LoginSuccess {
            tokens,
            refresh_token,
            device,
        } = success;
        let username = tokens.username().map(str::to_owned);
        let mut session = StoredSession::new(refresh_token, username.clone(), device);
        // The same user keeps the identity GetId gave it (GetId is asked once per user).
        session.identity = self
            .session
            .as_ref()
            .filter(|old| old.username.is_some() && old.username == username)
            .and_then(|old| old.identity.clone());
        self.aws_session_changed();
        let persisted = self.persist(session.clone()).await;
        if let Err(error) = &persisted {
            tracing::error!(profile = %self.info.name, error = %format!("{error:#}"), "cannot persist the session; keeping it in memory and retrying");
        }
        let failed = persisted.is_err();
        let expires_at = self.install(Some(session), tokens, failed, |s| {
            s.persistence_degraded = failed;
            s.store_error = None;
        });
        self.update_sinks().await;
        expires_at
    }

    /// Holds `session` and publishes `tokens` as a success, then `adjust`; emits
    /// `TokenRefreshed`. Returns when the tokens expire.
    pub(super) fn install(
        &mut self,
        session: Option<StoredSession>,
        tokens: TokenSet,
        persistence_failed: bool,
        adjust: impl FnOnce(&mut Snapshot),
    ) -> SystemTime {
        self.dormant = false;
        let device_remembered = session.as_ref().is_some_and(|s| s.device.is_some());
        if session.is_some() {
            self.session = session;
        }
        let now = self.now();
        let expires_at = tokens.expires_at();
        if let Some(skew) = tokens.clock_skew().filter(|skew| skew.abs() > 60) {
            tracing::warn!(profile = %self.info.name, skew_seconds = skew, "the local clock and cognito's differ");
        }
        self.publish(|s| {
            s.tokens = Some(Arc::new(HeldTokens::new(tokens)));
            s.has_session = true;
            s.login_required = None;
            s.last_refresh = Some(now);
            s.last_error = persistence_failed.then_some("store");
            s.degraded = false;
            s.backoff = Backoff::default();
            s.device_remembered = device_remembered;
            s.misconfigured = None;
            adjust(s);
        });
        self.emit(BrokerEvent::TokenRefreshed {
            profile: self.name(),
            expires_at,
        });
        expires_at
    }

    /// Arms the backoff after a failed attempt and marks the profile degraded. Returns how long
    /// until the next attempt.
    pub(super) fn back_off(&self, class: FailureClass) -> Duration {
        let options = &self.shared.options;
        let now = self.now();
        let random = random_fraction(self.shared.entropy.as_ref());
        let published = self.publish(|s| {
            let token = s.token_times();
            s.backoff = if class == FailureClass::Terminal {
                // A configuration error will not fix itself quickly: wait the longest.
                Backoff {
                    failures: s.backoff.failures.saturating_add(1),
                    next_attempt_at: now.checked_add(options.background_cap),
                }
            } else {
                policy::after_failure(
                    now,
                    &s.backoff,
                    token,
                    options.background_base,
                    options.background_cap,
                    options.min_retry_gap,
                    random,
                )
            };
            s.degraded = true;
            s.last_error = Some(class.name());
        });
        published
            .backoff
            .wait_at(now)
            .unwrap_or(options.min_retry_gap)
    }
}
