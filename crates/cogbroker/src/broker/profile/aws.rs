//! The profile task's AWS credentials: one fetch in flight with its waiters, the backoff, the
//! identity id persisted with the session (before the credentials it led to are published),
//! and the grants of `exec --aws` children, each revoked when its `cogbroker exec` process
//! ends.
//!
//! A fetch is a job like a refresh. It first gets an ID token with enough time left the way any
//! caller does (joining or starting the profile's token refresh, so single flight and backoff
//! hold for tokens too), then asks GetId only when no identity id is known for this pool, then
//! the credentials. Results are applied here only, and only from the job in the slot.

use std::sync::Arc;
use std::time::Duration;

use cognito_auth::secret::IdToken;
use cognito_auth::{AwsCredentials, ErrorCode};
use secrecy::SecretString;
use tokio::sync::oneshot;

use tokio::task::{AbortHandle, Id};

use super::fetch::{AwsDone, FetchError, Fetched};
use super::jobs::{Done, Mode, random_fraction};
use super::{Command, ProfileHandle, ProfileTask};
use crate::broker::aws::{AwsSource, Grant, HeldCredentials, MAX_GRANTS, NewGrant, id_token_floor};
use crate::broker::error::{AttemptFailure, AttemptOutcome, FailureClass, describe_error};
use crate::broker::policy;
use crate::broker::source::TokenSource;
use crate::broker::ticket::Waiters;
use crate::broker::{BrokerError, BrokerEvent, Settled, Shared, settle_token};
use crate::store::StoredIdentity;

/// The AWS part of a profile task (present when the profile has an identity pool).
pub(crate) struct AwsRoom {
    source: Arc<AwsSource>,
    in_flight: Option<AwsInFlight>,
    grants: Vec<(Grant, Option<ProcessWatch>)>,
    /// The task's own mailbox, weakly: jobs and grant watchers talk to the task through it
    /// without keeping it alive.
    commands: flume::WeakSender<Command>,
}

impl AwsRoom {
    pub(crate) fn new(source: AwsSource, commands: flume::WeakSender<Command>) -> Self {
        Self {
            source: Arc::new(source),
            in_flight: None,
            grants: Vec::new(),
            commands,
        }
    }
}

struct AwsInFlight {
    job: AbortHandle,
    /// Who waits for it: commands and the snapshot's ticket.
    waiters: Waiters,
}

impl<S: TokenSource> ProfileTask<S> {
    /// Fetch credentials (or join the fetch in flight). A blocking request whose `observed`
    /// generation is no longer current is answered at once: something already happened.
    pub(super) fn aws_refresh(
        &mut self,
        mode: Mode,
        observed: u64,
        reply: Option<oneshot::Sender<AttemptOutcome>>,
    ) {
        let snapshot = self.snapshot();
        let Some(room) = self.aws.as_mut() else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(AttemptFailure::Misconfigured(format!(
                    "profile {} has no identity pool (identity_pool_id)",
                    self.info.name
                ))));
            }
            return;
        };
        if let Some(in_flight) = &mut room.in_flight {
            in_flight.waiters.add(reply);
            return;
        }
        if mode == Mode::Blocking && snapshot.aws.generation != observed {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        let failure = if self.stopping {
            Some(AttemptFailure::ShuttingDown)
        } else if self.session.is_none() || !snapshot.can_refresh() {
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
        let Some(commands) = room.commands.upgrade() else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(AttemptFailure::ShuttingDown));
            }
            return;
        };
        let handle = ProfileHandle {
            info: self.info.clone(),
            commands,
            snapshot: Arc::clone(&self.publish),
        };
        let known = self.session.as_ref().and_then(|s| s.identity.clone());
        let source = room.source.clone();
        let shared = self.shared.clone();
        let job = self
            .jobs
            .spawn(self.shared.options.upstream.as_ref(), async move {
                let started = tokio::time::Instant::now();
                let result = fetch(&handle, &shared, &source, known, mode).await;
                Done::Aws(AwsDone {
                    result,
                    elapsed: started.elapsed(),
                })
            });
        let (waiters, ticket) = Waiters::new(reply);
        room.in_flight = Some(AwsInFlight { job, waiters });
        self.publish_flags(|s| s.aws.refresh = Some(ticket));
    }

    /// The tick: grants of ended processes end; a background fetch when the credentials are
    /// inside their stale window.
    pub(super) fn aws_tick(&mut self) {
        self.sweep_grants();
        let Some(room) = &self.aws else {
            return;
        };
        if room.in_flight.is_some() {
            return;
        }
        let snapshot = self.snapshot();
        let due = policy::on_tick(
            self.now(),
            snapshot.aws.times(),
            &self.info.tuning,
            &snapshot.aws.backoff,
            snapshot.can_refresh() && snapshot.aws.login_required.is_none(),
        );
        if due {
            self.aws_refresh(Mode::Background, snapshot.aws.generation, None);
        }
    }

    pub(super) async fn on_aws_done(&mut self, job: Id, done: AwsDone) {
        let Some(room) = self.aws.as_mut() else {
            return;
        };
        if room.in_flight.as_ref().is_none_or(|f| f.job.id() != job) {
            return;
        }
        let outcome = match done.result {
            Ok(fetched) => self.commit_aws(fetched).await,
            Err(FetchError::Token(error)) => Err(attempt_failure(error)),
            Err(FetchError::ShuttingDown) => Err(AttemptFailure::ShuttingDown),
            Err(FetchError::Deadline) => {
                self.shared.metrics.upstream_error("timeout");
                let retry_after = self.aws_back_off(FailureClass::Transient);
                self.emit(BrokerEvent::AwsCredentialsFailed {
                    profile: self.name(),
                    class: "transient".to_owned(),
                });
                Err(AttemptFailure::Upstream {
                    retry_after,
                    reason: "the identity pool did not answer within the deadline".to_owned(),
                })
            }
            Err(FetchError::Upstream(error)) => {
                let class = FailureClass::of(&error);
                let reason = describe_error(&error);
                self.shared.metrics.upstream_error(class.name());
                tracing::warn!(profile = %self.info.name, class = class.name(), error = %reason, elapsed_ms = done.elapsed.as_millis() as u64, "aws credentials fetch failed");
                self.emit(BrokerEvent::AwsCredentialsFailed {
                    profile: self.name(),
                    class: class.name().to_owned(),
                });
                match class {
                    FailureClass::LoginRequired => {
                        let reason = format!("the identity pool refused the login: {reason}");
                        self.publish_flags(|s| {
                            s.aws.credentials = None;
                            s.aws.login_required = Some(reason.clone());
                            s.aws.last_error = Some("login_required");
                            s.aws.degraded = false;
                            s.aws.backoff = policy::Backoff::default();
                            s.aws.generation = s.aws.generation.wrapping_add(1);
                        });
                        Err(AttemptFailure::LoginRequired(reason))
                    }
                    FailureClass::Terminal => {
                        self.aws_back_off(FailureClass::Terminal);
                        Err(AttemptFailure::Misconfigured(format!(
                            "the identity pool refused the request: {reason}"
                        )))
                    }
                    FailureClass::Transient | FailureClass::Throttled => {
                        let retry_after = self.aws_back_off(class);
                        Err(AttemptFailure::Upstream {
                            retry_after,
                            reason: format!("aws credentials: {reason}"),
                        })
                    }
                }
            }
        };
        self.finish_aws(outcome);
    }

    /// Persists a newly learned identity id, then publishes the credentials.
    async fn commit_aws(&mut self, fetched: Fetched) -> AttemptOutcome {
        let Fetched {
            credentials,
            identity,
            received_at,
        } = fetched;
        let Some(session) = self.session.as_mut() else {
            // Logged out while the fetch ran: keep nothing.
            return Err(AttemptFailure::NoSession);
        };
        if session.identity.as_ref() != Some(&identity) {
            session.identity = Some(identity);
            let session = session.clone();
            if let Err(error) = self.persist(session).await {
                // The credentials are good; only the saving of a GetId call is lost.
                tracing::warn!(profile = %self.info.name, error = %format!("{error:#}"), "cannot store the identity id; the next start asks GetId again");
            } else {
                tracing::info!(profile = %self.info.name, "identity id stored");
            }
        }
        let expires_at = credentials.expiration;
        self.publish_flags(|s| {
            s.aws.credentials = Some(Arc::new(HeldCredentials {
                credentials,
                received_at,
            }));
            s.aws.login_required = None;
            s.aws.last_error = None;
            s.aws.degraded = false;
            s.aws.backoff = policy::Backoff::default();
            s.aws.generation = s.aws.generation.wrapping_add(1);
        });
        tracing::info!(profile = %self.info.name, "aws credentials fetched");
        self.emit(BrokerEvent::AwsCredentialsRefreshed {
            profile: self.name(),
            expires_at,
        });
        Ok(())
    }

    fn finish_aws(&mut self, outcome: AttemptOutcome) {
        let Some(room) = self.aws.as_mut() else {
            return;
        };
        if let Some(in_flight) = room.in_flight.take() {
            in_flight.waiters.answer(outcome);
        }
        self.publish_flags(|s| s.aws.refresh = None);
    }

    /// Arms the AWS backoff after a failed fetch. Returns how long until the next attempt.
    fn aws_back_off(&self, class: FailureClass) -> Duration {
        let options = &self.shared.options;
        let now = self.now();
        let random = random_fraction(self.shared.entropy.as_ref());
        let mut wait = options.min_retry_gap;
        self.publish_flags(|s| {
            let aws = &mut s.aws;
            aws.backoff = if class == FailureClass::Terminal {
                policy::Backoff {
                    failures: aws.backoff.failures.saturating_add(1),
                    next_attempt_at: now.checked_add(options.background_cap),
                }
            } else {
                policy::after_failure(
                    now,
                    &aws.backoff,
                    aws.times(),
                    options.background_base,
                    options.background_cap,
                    options.min_retry_gap,
                    random,
                )
            };
            aws.degraded = true;
            aws.last_error = Some(class.name());
            aws.generation = aws.generation.wrapping_add(1);
            if let Some(left) = aws.backoff.wait_at(now) {
                wait = left;
            }
        });
        wait
    }

    /// A login replaced the session or a logout ended it: credentials of the old session go,
    /// and so does a refusal by the identity pool (the new login may be accepted).
    pub(super) fn aws_session_changed(&mut self) {
        if self.aws.is_none() {
            return;
        }
        if let Some(in_flight) = self.aws.as_mut().and_then(|room| room.in_flight.as_ref()) {
            in_flight.job.abort();
        }
        self.finish_aws(Err(AttemptFailure::NoSession));
        self.publish_flags(|s| {
            let grants = s.aws.grants.clone();
            let generation = s.aws.generation.wrapping_add(1);
            s.aws = crate::broker::aws::SharedAws::from(crate::broker::aws::AwsSnapshot {
                generation,
                grants,
                ..Default::default()
            });
        });
    }

    /// The session's tokens were refused (login required): the credentials go too.
    pub(super) fn aws_login_required(&mut self) {
        if self.aws.is_none() {
            return;
        }
        self.publish_flags(|s| {
            s.aws.credentials = None;
            s.aws.generation = s.aws.generation.wrapping_add(1);
        });
    }

    /// Shutting down: a fetch waiting on this task would wait forever.
    pub(super) fn aws_stop(&mut self) {
        if let Some(in_flight) = self.aws.as_mut().and_then(|room| room.in_flight.as_ref()) {
            in_flight.job.abort();
        }
        self.finish_aws(Err(AttemptFailure::ShuttingDown));
    }

    /// A job ended without an answer (panicked or aborted).
    pub(super) fn aws_job_lost(&mut self, job: Id) {
        let lost = self
            .aws
            .as_ref()
            .and_then(|room| room.in_flight.as_ref())
            .is_some_and(|f| f.job.id() == job);
        if lost {
            self.finish_aws(Err(AttemptFailure::Internal(
                "the aws credentials task ended without an answer".to_owned(),
            )));
        }
    }

    // ----- grants -----

    /// A grant for an `exec --aws` child. With the caller's pid (the Unix socket says it), the
    /// grant ends when that process does.
    pub(super) fn aws_grant(&mut self, pid: Option<i32>) -> Result<NewGrant, BrokerError> {
        self.sweep_grants();
        let profile = self.name();
        let Some(room) = self.aws.as_mut() else {
            return Err(BrokerError::Unsupported(format!(
                "profile {profile} has no identity pool (identity_pool_id)"
            )));
        };
        if room.grants.len() >= MAX_GRANTS {
            return Err(BrokerError::Unsupported(format!(
                "profile {profile} already has {MAX_GRANTS} live `exec --aws` grants; end some of those commands first"
            )));
        }
        let mut bytes = [0u8; 48];
        self.shared.entropy.fill(&mut bytes);
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let grant = Grant {
            id: hex(&bytes[..16]),
            token: SecretString::from(hex(&bytes[16..])),
        };
        let watch = match pid {
            Some(pid) => ProcessWatch::open(pid)?,
            None => None,
        };
        room.grants.push((grant.clone(), watch));
        let grants = Arc::new(room.grants.iter().map(|(grant, _)| grant.clone()).collect());
        self.publish_flags(|s| s.aws.grants = grants);
        tracing::info!(profile = %profile, grants = self.aws.as_ref().map_or(0, |r| r.grants.len()), "exec --aws grant created");
        Ok(NewGrant {
            id: grant.id,
            token: grant.token,
        })
    }

    /// Ends a grant; false if there was none with that id.
    pub(super) fn aws_revoke(&mut self, grant_id: &str) -> bool {
        self.sweep_grants();
        let Some(room) = self.aws.as_mut() else {
            return false;
        };
        let before = room.grants.len();
        room.grants.retain(|(grant, _)| grant.id != grant_id);
        if room.grants.len() == before {
            return false;
        }
        self.publish_grants();
        tracing::info!(profile = %self.info.name, "exec --aws grant ended");
        true
    }

    /// Ends the grants whose `cogbroker exec` process has ended.
    fn sweep_grants(&mut self) {
        let Some(room) = self.aws.as_mut() else {
            return;
        };
        let before = room.grants.len();
        room.grants
            .retain(|(_, watch)| watch.as_ref().is_none_or(|watch| !watch.ended()));
        let ended = before - room.grants.len();
        if ended > 0 {
            self.publish_grants();
            tracing::info!(profile = %self.info.name, ended, "exec --aws grants of ended processes ended");
        }
    }

    fn publish_grants(&self) {
        let Some(room) = &self.aws else {
            return;
        };
        let grants = Arc::new(room.grants.iter().map(|(grant, _)| grant.clone()).collect());
        self.publish_flags(|s| s.aws.grants = grants);
    }
}

fn attempt_failure(error: BrokerError) -> AttemptFailure {
    match error {
        BrokerError::LoginRequired { reason, .. } => AttemptFailure::LoginRequired(reason),
        BrokerError::UpstreamUnavailable {
            retry_after,
            reason,
        } => AttemptFailure::Upstream {
            retry_after,
            reason,
        },
        BrokerError::Misconfigured(message) => AttemptFailure::Misconfigured(message),
        // E.g. a source without ID tokens: the identity pool cannot work for this profile.
        BrokerError::Unsupported(message) => AttemptFailure::Misconfigured(format!(
            "the identity pool needs the profile's ID token: {message}"
        )),
        BrokerError::ShuttingDown => AttemptFailure::ShuttingDown,
        other => AttemptFailure::Internal(other.to_string()),
    }
}

/// The `cogbroker exec` process a grant belongs to (Linux: a pidfd, which names that very
/// process even once its pid is reused). Elsewhere a grant lives until it is revoked.
pub(crate) struct ProcessWatch {
    #[cfg(target_os = "linux")]
    pidfd: std::os::fd::OwnedFd,
}

impl ProcessWatch {
    /// Watches `pid`; `None` where that is impossible (then the grant lives until revoked).
    #[cfg(target_os = "linux")]
    fn open(pid: i32) -> Result<Option<Self>, BrokerError> {
        use rustix::process::{Pid, PidfdFlags, pidfd_open};
        let Some(pid) = Pid::from_raw(pid) else {
            return Ok(None);
        };
        match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(pidfd) => Ok(Some(Self { pidfd })),
            Err(rustix::io::Errno::SRCH) => Err(BrokerError::BadInput {
                field: "pid",
                message: "the requesting process has already ended".to_owned(),
            }),
            Err(error) => {
                tracing::warn!(error = %error, "cannot watch the exec process (pidfd_open); its grant lives until it is revoked");
                Ok(None)
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open(_pid: i32) -> Result<Option<Self>, BrokerError> {
        Ok(None)
    }

    /// Whether the process has ended: a pidfd polls readable once it has.
    #[cfg(target_os = "linux")]
    fn ended(&self) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&now)) {
            Ok(ready) => ready > 0,
            Err(_) => false,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn ended(&self) -> bool {
        false
    }
}

// ----- the fetch job -----

/// One fetch: an ID token with enough time left, the identity id (cached, else GetId), the
/// credentials. In the background one attempt; when a caller waits, up to `blocking_attempts`
/// with full-jitter backoff within `blocking_deadline`, as token refreshes.
async fn fetch(
    handle: &ProfileHandle,
    shared: &Shared,
    source: &AwsSource,
    known: Option<StoredIdentity>,
    mode: Mode,
) -> Result<Fetched, FetchError> {
    let lifetime = handle
        .snapshot()
        .token_times()
        .map(|times| times.lifetime());
    let floor = id_token_floor(lifetime);
    let id_token = id_token(handle, shared, floor)
        .await
        .map_err(|error| match error {
            BrokerError::ShuttingDown => FetchError::ShuttingDown,
            other => FetchError::Token(other),
        })?;
    let mut identity = known.filter(|known| known.pool_id == source.pool_id());
    let options = &shared.options;
    let deadline = tokio::time::Instant::now() + options.blocking_deadline;
    let attempts = async {
        let mut attempt = 0;
        loop {
            let error = match once(source, &id_token, &mut identity).await {
                Ok((credentials, identity)) => {
                    return Ok(Fetched {
                        credentials,
                        identity,
                        received_at: shared.clock.now(),
                    });
                }
                Err(error) => error,
            };
            if mode == Mode::Background {
                return Err(FetchError::Upstream(error));
            }
            attempt += 1;
            let class = FailureClass::of(&error);
            let base = match class {
                FailureClass::Transient => options.transient_base,
                FailureClass::Throttled => options.throttle_base,
                FailureClass::LoginRequired | FailureClass::Terminal => {
                    return Err(FetchError::Upstream(error));
                }
            };
            if attempt >= options.blocking_attempts {
                return Err(FetchError::Upstream(error));
            }
            let delay = policy::backoff_delay(
                attempt - 1,
                base,
                options.blocking_cap,
                random_fraction(shared.entropy.as_ref()),
            );
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(FetchError::Upstream(error));
            }
            tracing::debug!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                class = class.name(),
                "aws credentials retry"
            );
            tokio::time::sleep(delay).await;
        }
    };
    if mode == Mode::Background {
        return attempts.await;
    }
    match tokio::time::timeout_at(deadline, attempts).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Deadline),
    }
}

/// An ID token with at least `floor` left, decided as a token request is
/// ([`settle_token`]: the hand-out rules, the backoff, one refresh at most, joining the
/// profile's single refresh in flight, a still-valid token rather than an error).
async fn id_token(
    handle: &ProfileHandle,
    shared: &Shared,
    floor: Duration,
) -> Result<IdToken, BrokerError> {
    let profile = handle.info.name.as_str();
    let snapshot = match settle_token(handle, shared, Some(floor), false).await {
        Settled::Serve { snapshot, .. } => snapshot,
        Settled::Refused { error, .. } => return Err(error),
    };
    let tokens = snapshot
        .tokens
        .as_ref()
        .ok_or_else(|| BrokerError::login_required(profile, "not logged in"))?;
    // A machine client has no ID token; config refuses an identity pool on one.
    let id = tokens.id_token().ok_or_else(|| {
        BrokerError::Misconfigured(format!(
            "profile {profile} has no ID token to trade for AWS credentials"
        ))
    })?;
    Ok(IdToken::new(id.expose_secret()))
}

/// One attempt. A cached identity id that the pool no longer accepts for this login (another
/// user's, or deleted) is asked of GetId again, once.
async fn once(
    source: &AwsSource,
    id_token: &IdToken,
    identity: &mut Option<StoredIdentity>,
) -> Result<(AwsCredentials, StoredIdentity), cognito_auth::Error> {
    let (known, from_cache) = match identity.clone() {
        Some(known) => (known, true),
        None => (ask_get_id(source, id_token, identity).await?, false),
    };
    match source.credentials(&known.identity_id, id_token).await {
        Ok(credentials) => Ok((credentials, known)),
        Err(error)
            if from_cache
                && matches!(
                    error.code(),
                    Some(ErrorCode::NotAuthorized | ErrorCode::ResourceNotFound)
                ) =>
        {
            tracing::info!(error = %describe_error(&error), "the stored identity id was refused; asking GetId again");
            let fresh = ask_get_id(source, id_token, identity).await?;
            let credentials = source.credentials(&fresh.identity_id, id_token).await?;
            Ok((credentials, fresh))
        }
        Err(error) => Err(error),
    }
}

/// GetId, remembered in `identity` for the attempts that follow.
async fn ask_get_id(
    source: &AwsSource,
    id_token: &IdToken,
    identity: &mut Option<StoredIdentity>,
) -> Result<StoredIdentity, cognito_auth::Error> {
    let fresh = StoredIdentity {
        pool_id: source.pool_id().to_owned(),
        identity_id: source.get_id(id_token).await?,
    };
    *identity = Some(fresh.clone());
    Ok(fresh)
}
