//! The work a profile task hands to spawned jobs: everything that waits on the network. A job
//! gets copies of what it needs and returns a [`Done`]; only the task applies results, so a
//! job can never overwrite newer state.

use std::time::Duration;

use cognito_auth::{ChallengeAnswer, LoginStep, LoginSuccess, PendingLogin, Refreshed};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};

use super::super::BrokerOptions;
use super::super::error::FailureClass;
use super::super::policy;
use super::super::source::{RenewError, StepFailure, TokenSource};
use crate::store::StoredSession;

/// How a refresh was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A caller waits: up to `blocking_attempts` within the blocking deadline.
    Blocking,
    /// The tick (or a stale hit) started it: one attempt, backoff on failure.
    Background,
}

/// Why a refresh job failed.
#[derive(Debug)]
pub(crate) enum RefreshError {
    Setup(super::super::BrokerError),
    Upstream(cognito_auth::Error),
    Deadline,
}

/// A finished job, for the task to apply.
pub(crate) enum Done {
    Refreshed {
        result: Result<Refreshed, RefreshError>,
        elapsed: Duration,
        /// The session the refresh started from (`None` for a sessionless source).
        session: Option<StoredSession>,
    },
    Unattended(Option<LoginSuccess>),
    LoginStep(Result<LoginStep, StepFailure>),
    LoggedOut {
        reply: oneshot::Sender<Result<(), super::super::BrokerError>>,
        erased: anyhow::Result<()>,
    },
    /// An AWS credentials fetch finished.
    Aws(super::fetch::AwsDone),
}

/// A uniform fraction in `[0, 1)` from the injected entropy.
pub(crate) fn random_fraction(entropy: &dyn cognito_auth::env::Entropy) -> f64 {
    let mut bytes = [0u8; 8];
    entropy.fill(&mut bytes);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The upstream call(s) of one refresh: one attempt in the background; when a caller waits, up
/// to `blocking_attempts` with full-jitter backoff within `blocking_deadline`.
pub(crate) async fn refresh<S: TokenSource>(
    source: &S,
    session: Option<&StoredSession>,
    mode: Mode,
    options: &BrokerOptions,
    entropy: &dyn cognito_auth::env::Entropy,
) -> Result<Refreshed, RefreshError> {
    let once = || async {
        source.renew(session).await.map_err(|error| match error {
            RenewError::Setup(error) => RefreshError::Setup(error),
            RenewError::Upstream(error) => RefreshError::Upstream(error),
        })
    };
    if mode == Mode::Background {
        return once().await;
    }
    let deadline = tokio::time::Instant::now() + options.blocking_deadline;
    let attempts = async {
        let mut attempt = 0;
        loop {
            let error = match once().await {
                Ok(refreshed) => return Ok(refreshed),
                Err(RefreshError::Upstream(error)) => error,
                Err(other) => return Err(other),
            };
            attempt += 1;
            let class = FailureClass::of(&error);
            let base = match class {
                FailureClass::Transient => options.transient_base,
                FailureClass::Throttled => options.throttle_base,
                FailureClass::LoginRequired | FailureClass::Terminal => {
                    return Err(RefreshError::Upstream(error));
                }
            };
            if attempt >= options.blocking_attempts {
                return Err(RefreshError::Upstream(error));
            }
            let delay = policy::backoff_delay(
                attempt - 1,
                base,
                options.blocking_cap,
                random_fraction(entropy),
            );
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(RefreshError::Upstream(error));
            }
            tracing::debug!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                class = class.name(),
                "refresh retry"
            );
            tokio::time::sleep(delay).await;
        }
    };
    match tokio::time::timeout_at(deadline, attempts).await {
        Ok(result) => result,
        Err(_) => Err(RefreshError::Deadline),
    }
}

/// Answers a challenge.
pub(crate) async fn respond<S: TokenSource>(
    source: &S,
    pending: PendingLogin,
    answer: ChallengeAnswer,
) -> Done {
    Done::LoginStep(source.respond(pending, answer).await)
}

/// A profile task's jobs in flight.
#[derive(Default)]
pub(super) struct Jobs {
    /// Only while a job runs: an empty `JoinSet` still holds its lists (~80 bytes), once per
    /// profile for weeks.
    set: Option<JoinSet<Box<Done>>>,
}

impl Jobs {
    /// Spawns a profile's network work on `runtime` ([`BrokerOptions::upstream`]; `None`: the
    /// task's own). Its result comes back boxed: a `Done` is ~900 bytes, and the task's own
    /// future (resident once per profile) would otherwise keep room for it while it waits.
    pub(super) fn spawn(
        &mut self,
        runtime: Option<&Handle>,
        job: impl Future<Output = Done> + Send + 'static,
    ) -> AbortHandle {
        let job = async move { Box::new(job.await) };
        let set = self.set.get_or_insert_with(JoinSet::new);
        match runtime {
            Some(runtime) => set.spawn_on(job, runtime),
            None => set.spawn(job),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.set.as_ref().is_none_or(JoinSet::is_empty)
    }

    /// The next job to end: its result, or why it has none (panicked, aborted). `None` at once
    /// when no job runs.
    pub(super) async fn join_next_with_id(&mut self) -> Option<Result<(Id, Box<Done>), JoinError>> {
        let set = self.set.as_mut()?;
        let next = set.join_next_with_id().await;
        if set.is_empty() {
            self.set = None;
        }
        next
    }
}
