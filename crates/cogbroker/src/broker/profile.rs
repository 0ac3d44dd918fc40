//! One task per profile owns its session: the refresh token and device (only here and in the
//! store), the in-flight refresh and its waiters, the pending login, the backoff and the
//! scheduled background refresh. Commands arrive on a bounded channel with oneshot replies;
//! network work runs in spawned jobs whose results only this task applies. Readers never come
//! here for a cached token: they read the published [`Snapshot`] ([`published::Published`]).
//!
//! What holds by construction: one refresh at a time (there is one slot for it); persist before
//! publish (the task awaits the store before it publishes); an old refresh never overwrites a
//! newer login (a login or logout aborts the in-flight refresh job and answers its waiters
//! first, and a result is applied only if it comes from the job in the slot).

mod aws;
mod fetch;
mod jobs;
mod login;
mod published;
mod refresh;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cognito_auth::PendingLogin;
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, Id};

pub(crate) use aws::AwsRoom;
use jobs::Done;
pub(crate) use jobs::Mode;
pub(crate) use jobs::random_fraction;
use published::Published;

use super::error::{AttemptFailure, AttemptOutcome, BrokerError};
use super::policy::{self, Tuning};
use super::source::TokenSource;
use super::state::{LoginFlag, Snapshot};
use super::ticket::{RefreshTicket, Waiters};
use super::{AnswerInput, BrokerEvent, EXPIRED_LOGIN_GRACE, LoginOutcome, Shared};
use crate::config::ProfileName;
use crate::store::StoredSession;

/// How many commands may wait for a profile task before senders wait too. The mailbox is a
/// flume channel: a few hundred bytes per profile while empty, where tokio's mpsc takes ~2 KB (its
/// cache-padded channel and a first block of 32 slots), and profiles are counted in thousands.
const COMMAND_QUEUE: usize = 256;
/// How many expired login ids a profile remembers (to answer `challenge_expired`).
const EXPIRED_REMEMBERED: usize = 8;

type LoginReply = oneshot::Sender<Result<LoginOutcome, BrokerError>>;
type UnitReply = oneshot::Sender<Result<(), BrokerError>>;

/// What a profile task is asked to do.
pub(crate) enum Command {
    /// Load the stored session (no network).
    Restore {
        done: oneshot::Sender<()>,
    },
    /// The periodic tick: expire logins, retry a failed persist or store read, plan refreshes.
    Tick,
    /// Refresh (or join the refresh in flight). A blocking request whose `observed` generation
    /// is no longer current is answered at once: something already happened.
    Refresh {
        mode: Mode,
        observed: u64,
        reply: Option<oneshot::Sender<AttemptOutcome>>,
    },
    Login {
        password: Option<cognito_auth::secret::Password>,
        reply: LoginReply,
    },
    Answer {
        login_id: String,
        /// Boxed: queued commands sit inline in the mailbox, so a command stays small.
        input: Box<AnswerInput>,
        reply: LoginReply,
    },
    Cancel {
        login_id: String,
        reply: UnitReply,
    },
    Logout {
        forget_device: bool,
        reply: UnitReply,
    },
    /// An explicit refresh is coming: forget that upstream refused the configuration, so it is
    /// tried again (once).
    ClearMisconfigured,
    /// Fetch AWS credentials (or join the fetch in flight); like `Refresh`, with the AWS
    /// generation as `observed`.
    AwsRefresh {
        mode: Mode,
        observed: u64,
        reply: Option<oneshot::Sender<AttemptOutcome>>,
    },
    /// A grant for an `exec --aws` child, ended when the process `pid` ends (if given).
    AwsGrant {
        pid: Option<i32>,
        reply: oneshot::Sender<Result<super::aws::NewGrant, BrokerError>>,
    },
    /// Ends a grant.
    AwsRevoke {
        grant_id: String,
        reply: Option<oneshot::Sender<bool>>,
    },
    /// Finish the jobs in flight (persisting their results), then end.
    Stop,
    /// The refresh token held in memory (tests check it matches what was persisted).
    #[cfg(test)]
    HeldRefreshToken {
        reply: oneshot::Sender<Option<String>>,
    },
}

/// What never changes about a profile, shared with readers.
#[derive(Debug)]
pub(crate) struct ProfileInfo {
    pub(crate) name: ProfileName,
    pub(crate) username: String,
    pub(crate) auth_flow_name: &'static str,
    pub(crate) grant: crate::config::Grant,
    pub(crate) tuning: Tuning,
    /// Files kept holding the current token; a profile with sinks is kept fresh without a
    /// caller (its first tokens are fetched on the first tick).
    pub(crate) sinks: Vec<crate::config::SinkConfig>,
    /// The profile has an identity pool (AWS credentials).
    pub(crate) aws: bool,
}

/// The readers' side of a profile: its published snapshot and its task's mailbox.
#[derive(Debug)]
pub(crate) struct ProfileHandle {
    pub(crate) info: Arc<ProfileInfo>,
    commands: flume::Sender<Command>,
    snapshot: Arc<Published>,
}

impl ProfileHandle {
    /// The published snapshot: one `Arc` clone.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.current()
    }

    /// Waits until the published snapshot satisfies `ready`: tests wait on state, not time.
    #[cfg(test)]
    pub(crate) async fn published(&self, ready: impl FnMut(&Arc<Snapshot>) -> bool) {
        self.snapshot.wait_for(ready).await;
    }

    /// Sends a command and waits for its reply. A task that is gone (shut down) answers
    /// [`BrokerError::ShuttingDown`].
    pub(crate) async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, BrokerError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send_async(command(reply))
            .await
            .map_err(|_| BrokerError::ShuttingDown)?;
        answer.await.map_err(|_| BrokerError::ShuttingDown)
    }

    /// Waits for the refresh (or AWS fetch) in flight through its `ticket`, or, with none in
    /// the snapshot, asks the task for one with `command` (which joins one started since).
    pub(crate) async fn join_or_ask(
        &self,
        ticket: Option<&RefreshTicket>,
        command: impl FnOnce(oneshot::Sender<AttemptOutcome>) -> Command,
    ) -> AttemptOutcome {
        match ticket {
            Some(ticket) => ticket.outcome().await,
            None => self
                .ask(command)
                .await
                .unwrap_or(Err(AttemptFailure::ShuttingDown)),
        }
    }

    /// Sends a command nobody waits for; dropped when the mailbox is full (the tick and
    /// background refreshes: a full mailbox means the task has work queued anyway).
    pub(crate) fn nudge(&self, command: Command) {
        let _ = self.commands.try_send(command);
    }

    /// Sends a command nobody waits for, waiting for room in the mailbox.
    pub(crate) async fn tell(&self, command: Command) {
        let _ = self.commands.send_async(command).await;
    }
}

enum LoginSlot {
    Idle,
    Busy {
        login_id: String,
        job: AbortHandle,
        reply: LoginReply,
    },
    Pending {
        login_id: String,
        pending: Box<PendingLogin>,
    },
    /// A browser login waits for its redirect (the PKCE verifier and `state` live here).
    Browser {
        login_id: String,
        login: Box<cognito_auth::BrowserLogin>,
        expires_at: SystemTime,
    },
}

/// The refresh in flight (or the unattended login that follows a refused refresh token).
struct InFlight {
    job: AbortHandle,
    /// Who waits for it: commands (the first of a herd, `POST …/refresh`) and the ticket.
    waiters: Waiters,
    /// Set while the unattended login runs: the reason to report if it fails too.
    unattended_after: Option<String>,
}

pub(crate) struct ProfileTask<S> {
    info: Arc<ProfileInfo>,
    source: Arc<S>,
    shared: Arc<Shared>,
    publish: Arc<Published>,
    session: Option<StoredSession>,
    /// Boxed, like `aws`: both are rare or brief, and the task is resident per profile.
    refresh: Option<Box<InFlight>>,
    login: LoginSlot,
    /// Expired login ids and when to forget them, oldest first (at most
    /// [`EXPIRED_REMEMBERED`]: a `Vec`, 8 bytes smaller than a `VecDeque` in every task).
    expired: Vec<(String, SystemTime)>,
    jobs: jobs::Jobs,
    /// A background refresh planned for later within the tick interval.
    due: Option<tokio::time::Instant>,
    stopping: bool,
    /// Logged out: the sinks are not refilled by the tick until someone asks for a token.
    dormant: bool,
    /// AWS credentials, when the profile has an identity pool.
    aws: Option<Box<AwsRoom>>,
}

/// Starts the task of one profile on the shared tracker and returns its handle.
pub(crate) fn spawn<S: TokenSource>(
    info: ProfileInfo,
    source: S,
    aws: Option<super::aws::AwsSource>,
    shared: Arc<Shared>,
) -> ProfileHandle {
    let info = Arc::new(info);
    let (commands, mailbox) = flume::bounded(COMMAND_QUEUE);
    let publish = Published::new(Snapshot {
        has_session: source.sessionless(),
        ..Snapshot::default()
    });
    let snapshot = Arc::clone(&publish);
    let aws = aws.map(|source| Box::new(AwsRoom::new(source, commands.downgrade())));
    let task = ProfileTask {
        info: info.clone(),
        source: Arc::new(source),
        shared: shared.clone(),
        publish,
        session: None,
        refresh: None,
        login: LoginSlot::Idle,
        expired: Vec::new(),
        jobs: jobs::Jobs::default(),
        due: None,
        stopping: false,
        dormant: false,
        aws,
    };
    let run = task.run(mailbox);
    // One of these is resident per profile for the daemon's life: beyond the task's own fields
    // it holds only the three futures of its `select!` (an `async fn` would hold `self` twice).
    // With tokio's header and trailer it fills a 640-byte task cell (528 + 112).
    debug_assert!(
        std::mem::size_of_val(&run) <= std::mem::size_of::<ProfileTask<S>>() + 224,
        "the profile task's future is {} bytes for a {}-byte task",
        std::mem::size_of_val(&run),
        std::mem::size_of::<ProfileTask<S>>()
    );
    shared.tasks.spawn(run);
    ProfileHandle {
        info,
        commands,
        snapshot,
    }
}

impl<S: TokenSource> ProfileTask<S> {
    /// The task's loop. Not an `async fn`: its future would keep the moved-in `self` twice (the
    /// argument and the local it is moved into; when this changed, 1,248 bytes against 768 for
    /// an `async move` block that captures it once; design.md §11: 1,000 profiles in 15 MB).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn's future would hold self twice"
    )]
    fn run(mut self, mailbox: flume::Receiver<Command>) -> impl Future<Output = ()> {
        async move {
            loop {
                if self.stopping && self.jobs.is_empty() {
                    break;
                }
                let due = self.due;
                tokio::select! {
                    biased;
                    Some(done) = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => {
                        match done {
                            // The handlers' futures are boxed so the task's own future stays small
                            // while it waits (it is resident once per profile: 1,000 profiles).
                            Ok((job, done)) => Box::pin(self.on_done(job, done)).await,
                            Err(error) => self.on_job_lost(error.id()),
                        }
                    }
                    command = mailbox.recv_async(), if !self.stopping => match command {
                        Ok(Command::Stop) | Err(_) => self.stop(),
                        Ok(command) => Box::pin(self.on_command(command)).await,
                    },
                    () = sleep_until(due), if due.is_some() && !self.stopping => {
                        self.due = None;
                        Box::pin(self.on_due()).await;
                    }
                }
            }
        }
    }

    fn name(&self) -> String {
        self.info.name.to_string()
    }

    fn now(&self) -> SystemTime {
        self.shared.clock.now()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.publish.current()
    }

    /// Publishes a changed copy of the snapshot; the generation moves (tokens, session or
    /// failure state changed).
    fn publish(&self, change: impl FnOnce(&mut Snapshot)) -> Arc<Snapshot> {
        self.publish_with(true, change)
    }

    /// Publishes a change of the `refreshing`/`login` flags only.
    fn publish_flags(&self, change: impl FnOnce(&mut Snapshot)) {
        self.publish_with(false, change);
    }

    fn publish_with(&self, bump: bool, change: impl FnOnce(&mut Snapshot)) -> Arc<Snapshot> {
        let mut next = Snapshot::clone(&self.publish.current());
        change(&mut next);
        if bump {
            next.generation = next.generation.wrapping_add(1);
        }
        let next = Arc::new(next);
        self.publish.publish(next.clone());
        next
    }

    fn emit(&self, event: BrokerEvent) {
        let _ = self.shared.events.send(event);
    }

    fn stop(&mut self) {
        self.stopping = true;
        self.due = None;
        self.aws_stop();
        if let LoginSlot::Pending { login_id, .. } | LoginSlot::Browser { login_id, .. } =
            &self.login
        {
            self.shared.logins.remove(login_id);
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Restore { done } => {
                self.restore().await;
                let _ = done.send(());
            }
            Command::Tick => self.tick().await,
            Command::Refresh {
                mode,
                observed,
                reply,
            } => self.refresh(mode, observed, reply).await,
            Command::Login { password, reply } => self.login(password, reply),
            Command::Answer {
                login_id,
                input,
                reply,
            } => self.answer(&login_id, *input, reply),
            Command::Cancel { login_id, reply } => {
                let _ = reply.send(self.cancel(&login_id));
            }
            Command::Logout {
                forget_device,
                reply,
            } => self.logout(forget_device, reply).await,
            Command::ClearMisconfigured => {
                if self.snapshot().misconfigured.is_some() {
                    self.publish_flags(|s| s.misconfigured = None);
                }
            }
            Command::AwsRefresh {
                mode,
                observed,
                reply,
            } => self.aws_refresh(mode, observed, reply),
            Command::AwsGrant { pid, reply } => {
                let _ = reply.send(self.aws_grant(pid));
            }
            Command::AwsRevoke { grant_id, reply } => {
                let revoked = self.aws_revoke(&grant_id);
                if let Some(reply) = reply {
                    let _ = reply.send(revoked);
                }
            }
            Command::Stop => self.stop(),
            #[cfg(test)]
            Command::HeldRefreshToken { reply } => {
                let held = self
                    .session
                    .as_ref()
                    .map(|s| s.refresh_token.expose_secret().to_owned());
                let _ = reply.send(held);
            }
        }
    }

    // ----- store -----

    async fn restore(&mut self) {
        if self.session.is_some() || self.source.sessionless() {
            // A login finished first (its session is newer), or there is nothing to store.
            return;
        }
        let store = self.shared.store.clone();
        let name = self.info.name.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load(&name)).await;
        match loaded {
            Ok(Ok(Some(session))) => {
                let device = session.device.is_some();
                let unconfirmed = session.refresh_unconfirmed;
                self.session = Some(session);
                self.publish(|s| {
                    s.has_session = true;
                    s.device_remembered = device;
                    s.store_error = None;
                    if s.last_error == Some("store") {
                        s.last_error = None;
                    }
                });
                tracing::info!(profile = %self.info.name, "session restored");
                if unconfirmed {
                    tracing::warn!(profile = %self.info.name, "the last refresh may have rotated the refresh token before its result was stored; refreshing now, within the upstream's grace");
                    self.start_refresh(Mode::Background, None).await;
                }
            }
            Ok(Ok(None)) => {
                self.publish(|s| {
                    s.store_error = None;
                    if s.last_error == Some("store") {
                        s.last_error = None;
                    }
                });
            }
            Ok(Err(error)) => {
                tracing::warn!(profile = %self.info.name, error = %format!("{error:#}"), "cannot read the stored session; retrying every tick");
                self.publish(|s| {
                    s.store_error = Some(format!("{error:#}"));
                    s.last_error = Some("store");
                });
            }
            Err(_) => tracing::warn!(profile = %self.info.name, "the store read was cancelled"),
        }
    }

    /// Saves through the store on a blocking thread: once started it completes even if this
    /// task were dropped.
    async fn persist(&self, session: StoredSession) -> anyhow::Result<()> {
        let store = self.shared.store.clone();
        let name = self.info.name.clone();
        tokio::task::spawn_blocking(move || store.save(&name, &session))
            .await
            .map_err(|error| anyhow::anyhow!("the persist task failed: {error}"))?
    }

    async fn retry_persist(&mut self) {
        let Some(session) = self.session.clone() else {
            return;
        };
        match self.persist(session).await {
            Ok(()) => {
                tracing::info!(profile = %self.info.name, "session persisted after an earlier failure");
                self.publish(|s| {
                    s.persistence_degraded = false;
                    if s.last_error == Some("store") {
                        s.last_error = None;
                    }
                });
            }
            Err(error) => {
                tracing::warn!(profile = %self.info.name, error = %format!("{error:#}"), "persist retry failed");
            }
        }
    }

    // ----- scheduling -----

    async fn tick(&mut self) {
        let now = self.now();
        self.expire_logins(now);
        self.aws_tick();
        let snapshot = self.snapshot();
        if snapshot.persistence_degraded {
            self.retry_persist().await;
        }
        if snapshot.store_error.is_some() && self.session.is_none() {
            self.restore().await;
        }
        let snapshot = self.snapshot();
        let unconfirmed = self.session.as_ref().is_some_and(|s| s.refresh_unconfirmed);
        if unconfirmed
            && snapshot.tokens.is_none()
            && snapshot.can_refresh()
            && snapshot.backoff.wait_at(now).is_none()
        {
            // Restored after a crash mid-refresh and the first try failed: keep trying while
            // the old refresh token may still be inside its grace, not only when asked.
            self.start_refresh(Mode::Background, None).await;
            return;
        }
        if !self.info.sinks.is_empty()
            && !self.dormant
            && snapshot.tokens.is_none()
            && snapshot.can_refresh()
            && snapshot.backoff.wait_at(now).is_none()
        {
            // Nobody may ever ask: the sinks' readers only read files.
            self.start_refresh(Mode::Background, None).await;
            return;
        }
        let interval = self.shared.options.tick_interval;
        match policy::tick_start(
            now,
            snapshot.token_times(),
            &self.info.tuning,
            &snapshot.backoff,
            snapshot.can_refresh(),
            interval,
        ) {
            Some(delay) if delay.is_zero() => self.start_refresh(Mode::Background, None).await,
            // At most one plan: a later tick does not push a planned refresh back.
            Some(delay) if self.due.is_none() => {
                self.due = Some(tokio::time::Instant::now() + delay);
            }
            Some(_) | None => {}
        }
    }

    /// The planned background refresh is due: decide again (a caller may have refreshed).
    async fn on_due(&mut self) {
        let snapshot = self.snapshot();
        // A timer may fire a hair before the wall clock agrees: allow a second.
        let due = policy::tick_start(
            self.now(),
            snapshot.token_times(),
            &self.info.tuning,
            &snapshot.backoff,
            snapshot.can_refresh(),
            Duration::from_secs(1),
        );
        if due.is_some() {
            self.start_refresh(Mode::Background, None).await;
        }
    }

    // ----- jobs -----

    async fn on_done(&mut self, job: Id, done: Box<Done>) {
        match *done {
            Done::Refreshed {
                result,
                elapsed,
                session,
            } => {
                if self.refresh.as_ref().is_some_and(|f| f.job.id() == job) {
                    self.on_refreshed(result, elapsed, session).await;
                }
            }
            Done::Unattended(success) => {
                if self.refresh.as_ref().is_some_and(|f| f.job.id() == job) {
                    self.on_unattended(success).await;
                }
            }
            Done::LoginStep(result) => self.on_login_step(job, result).await,
            Done::LoggedOut { reply, erased } => self.finish_logout(reply, erased),
            Done::Aws(done) => self.on_aws_done(job, done).await,
        }
    }

    /// A job panicked or was aborted.
    fn on_job_lost(&mut self, job: Id) {
        self.aws_job_lost(job);
        if self.refresh.as_ref().is_some_and(|f| f.job.id() == job) {
            self.finish_refresh(Err(AttemptFailure::Internal(
                "the refresh task ended without an answer".to_owned(),
            )));
        }
        if matches!(&self.login, LoginSlot::Busy { job: busy, .. } if busy.id() == job)
            && let LoginSlot::Busy {
                login_id, reply, ..
            } = std::mem::replace(&mut self.login, LoginSlot::Idle)
        {
            self.shared.logins.remove(&login_id);
            self.publish_flags(|s| s.login = LoginFlag::Idle);
            let _ = reply.send(Err(BrokerError::Internal(anyhow::anyhow!(
                "the login task failed"
            ))));
        }
    }
}

impl<S> Drop for ProfileTask<S> {
    fn drop(&mut self) {
        if let LoginSlot::Busy { login_id, .. }
        | LoginSlot::Pending { login_id, .. }
        | LoginSlot::Browser { login_id, .. } = &self.login
        {
            self.shared.logins.remove(login_id);
        }
        for (login_id, _) in &self.expired {
            self.shared.logins.remove(login_id);
        }
    }
}

/// Boxed: the task's future keeps room for this one while it waits on its mailbox, and a
/// `Sleep` is 112 bytes; a refresh planned before the next tick (the only `due`) is rare.
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => Box::pin(tokio::time::sleep_until(due)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    /// Queued commands sit inline in the mailbox's ring buffer (flume allocates it as commands
    /// arrive, not for the whole capacity up front): a command stays small (design.md §11:
    /// 1,000 profiles in 15 MB).
    /// What every profile keeps for the daemon's life (design.md §11: 1,000 profiles in 15
    /// MB): the published snapshot (an AWS part only for identity-pool profiles), the source
    /// (the rare grants boxed) and the task (its refresh in flight and AWS room boxed, the
    /// jobs' runtime read from the shared options).
    #[test]
    fn what_each_profile_keeps_stays_small() {
        use std::mem::size_of;
        let sizes = [
            ("snapshot", size_of::<super::Snapshot>(), 200),
            ("source", size_of::<crate::broker::source::Source>(), 576),
            (
                "task",
                size_of::<super::ProfileTask<crate::broker::source::Source>>(),
                320,
            ),
        ];
        for (what, size, most) in sizes {
            assert!(size <= most, "the {what} is {size} bytes (at most {most})");
        }
    }

    #[test]
    fn a_command_stays_small() {
        let size = std::mem::size_of::<super::Command>();
        assert!(size <= 64, "a command is {size} bytes");
    }
}
