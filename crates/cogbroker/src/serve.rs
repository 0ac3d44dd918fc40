//! `cogbroker serve`: the daemon. Validates the configuration before binding, hardens the
//! process, binds, tells systemd `READY=1` before any network call, pings the watchdog while the
//! runtime is healthy, and shuts down gracefully on SIGTERM/SIGINT (security-reliability.md §2.3).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cognito_auth::env::{OsEntropy, SystemClock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerOptions};
use crate::config::{self, Config, ProcessEnv};
use crate::listen::{self, Listeners};
use crate::server::{self, ServerOptions};
use crate::store;

/// How long shutdown waits for in-flight requests and persists before giving up (the server's
/// own grace period).
pub use crate::server::SHUTDOWN_GRACE;

/// The `serve` command: everything up to the runtime is synchronous so the configuration is
/// validated and the sockets are bound before any thread starts.
pub fn main(config_path: Option<&Path>) -> anyhow::Result<()> {
    harden_process()?;
    let env = ProcessEnv;
    let path: PathBuf = config_path.map_or_else(|| config::default_path(&env), Path::to_path_buf);
    let config = config::load(&path, &env)?;
    init_tracing(&config.daemon.log);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Socket activation may edit the environment: bind before the runtime starts its threads.
    let listeners = listen::bind(&config.daemon, &env)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cogbroker")
        .enable_all()
        .build()
        .context("starting the async runtime failed")?;
    // The upstream jobs on a thread of their own: when a thousand callers arrive at once on
    // an expired token, the refresh they wait for does not queue behind their requests.
    let upstream = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cogbroker-upstream")
        .enable_all()
        .build()
        .context("starting the upstream runtime failed")?;
    let options = BrokerOptions {
        upstream: Some(upstream.handle().clone()),
        ..BrokerOptions::new()
    };
    let outcome = runtime.block_on(run(config, listeners, options));
    // The drain in `run` waited for every job: nothing is left on it to wait for.
    upstream.shutdown_background();
    outcome
}

/// Runs the daemon until SIGTERM or SIGINT.
async fn run(config: Config, listeners: Listeners, options: BrokerOptions) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed before READY=1 so a stop request right after readiness is handled gracefully.
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler failed")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("installing the SIGINT handler failed")?;

    let mut daemon = Daemon::start(config, listeners, options, Notify::Systemd).await?;
    let outcome = tokio::select! {
        _ = terminate.recv() => { tracing::info!("SIGTERM received: shutting down"); Ok(()) }
        _ = interrupt.recv() => { tracing::info!("SIGINT received: shutting down"); Ok(()) }
        result = daemon.stopped() => result.context("the server stopped unexpectedly"),
    };
    let stopped = daemon.stop().await;
    outcome.and(stopped)
}

/// The env var naming a file that holds a whole number of seconds the daemon's clock runs ahead
/// of the system's (a test hook of debug builds, like `COGBROKER_FAILPOINT`; release builds
/// ignore it). End-to-end tests move the daemon's time forward by writing the file, instead of
/// sleeping.
pub const TEST_CLOCK_VAR: &str = "COGBROKER_TEST_CLOCK_FILE";

/// The daemon's clock: the system's, or in debug builds with [`TEST_CLOCK_VAR`] set, the
/// system's plus the file's offset.
fn daemon_clock() -> anyhow::Result<Arc<dyn cognito_auth::env::Clock>> {
    let Some(path) = std::env::var_os(TEST_CLOCK_VAR).filter(|v| !v.is_empty()) else {
        return Ok(Arc::new(SystemClock));
    };
    if !cfg!(debug_assertions) {
        tracing::warn!(
            "{TEST_CLOCK_VAR} is set but the test clock exists only in debug builds; ignored"
        );
        return Ok(Arc::new(SystemClock));
    }
    let clock = OffsetFileClock {
        path: PathBuf::from(path),
    };
    // Read once now, so a bad file stops the start rather than every later reading.
    clock.offset()?;
    tracing::warn!(file = %clock.path.display(), "test clock armed");
    Ok(Arc::new(clock))
}

/// The system clock moved forward by the number of seconds in a file, re-read at every reading.
struct OffsetFileClock {
    path: PathBuf,
}

impl OffsetFileClock {
    fn offset(&self) -> anyhow::Result<Duration> {
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("{TEST_CLOCK_VAR}: reading {}", self.path.display()))?;
        let seconds: u64 = text.trim().parse().with_context(|| {
            format!(
                "{TEST_CLOCK_VAR}: {} must hold a whole number of seconds",
                self.path.display()
            )
        })?;
        Ok(Duration::from_secs(seconds))
    }
}

impl cognito_auth::env::Clock for OffsetFileClock {
    fn now(&self) -> std::time::SystemTime {
        // Tests replace the file by a rename, so every reading sees a whole number; a file
        // gone or garbled later reads as no offset.
        std::time::SystemTime::now() + self.offset().unwrap_or_default()
    }
}

/// Whether to talk to systemd's notification socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// `READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1` to `$NOTIFY_SOCKET` (a no-op when unset).
    Systemd,
    /// In-process daemons (the demo) say nothing to systemd.
    Silent,
}

/// A running daemon: server, ticker and watchdog tasks around one [`Broker`].
#[derive(Debug)]
pub struct Daemon {
    broker: Broker,
    unix_path: Option<PathBuf>,
    tcp_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    ticker: JoinHandle<()>,
    watchdog: Option<JoinHandle<()>>,
    notify: Notify,
}

impl Daemon {
    /// Opens the store, builds and restores the broker (no network), then — with the sockets
    /// already bound — tells systemd `READY=1` before the server, the refresh ticker or anything
    /// else can reach Cognito.
    pub async fn start(
        config: Config,
        listeners: Listeners,
        options: BrokerOptions,
        notify: Notify,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let store_kind = config.daemon.store;
        let state_dir = config.daemon.state_dir.clone();
        // The keyring probe talks D-Bus synchronously: keep it off the executor.
        let (secret_store, why) =
            tokio::task::spawn_blocking(move || store::open(store_kind, &state_dir))
                .await
                .context("opening the secret store panicked")??;
        // `auto` falling back to plaintext files is said loudly (design.md §4).
        if store_kind == config::StoreKind::Auto && secret_store.kind() != "keyring" {
            tracing::warn!(backend = secret_store.kind(), "secret store: {why}");
        } else {
            tracing::info!(backend = secret_store.kind(), "secret store: {why}");
        }

        let server_options = server_options(&config)?;
        let profile_count = config.profiles.len();
        let broker = Broker::with_options(
            config,
            secret_store,
            daemon_clock()?,
            Arc::new(OsEntropy),
            options,
        )?;
        broker.restore().await;

        let unix_path = listeners.unix_path().map(Path::to_path_buf);
        let tcp_addr = listeners.tcp_addr();
        let status = listening_status(profile_count, unix_path.as_deref(), tcp_addr);
        tracing::info!("{status}");
        if notify == Notify::Systemd {
            // Readiness means "bound and loaded": the kernel already queues connections on the
            // bound sockets, and nothing has talked to Cognito yet.
            if let Err(error) = sd_notify::notify(
                false,
                &[
                    sd_notify::NotifyState::Ready,
                    sd_notify::NotifyState::Status(&status),
                ],
            ) {
                tracing::warn!("telling systemd READY=1 failed: {error}");
            }
        }

        let shutdown = CancellationToken::new();
        let server = tokio::spawn(server::serve(
            listeners,
            broker.clone(),
            server_options,
            shutdown.child_token(),
        ));
        let ticker = broker.spawn_ticker(shutdown.child_token());
        let watchdog = match notify {
            Notify::Systemd => watchdog_interval().map(|interval| {
                tracing::info!(
                    interval_ms = interval.as_millis() as u64,
                    "systemd watchdog enabled"
                );
                tokio::spawn(watchdog(broker.clone(), interval, shutdown.child_token()))
            }),
            Notify::Silent => None,
        };
        // Only when systemd listens: without `NOTIFY_SOCKET` nobody reads `STATUS=`.
        if notify == Notify::Systemd && std::env::var_os("NOTIFY_SOCKET").is_some() {
            // Detached: it ends when the broker's event channel closes or at shutdown.
            tokio::spawn(report_status(
                broker.clone(),
                status.clone(),
                shutdown.child_token(),
            ));
        }
        Ok(Self {
            broker,
            unix_path,
            tcp_addr,
            shutdown,
            server: Some(server),
            ticker,
            watchdog,
            notify,
        })
    }

    /// The broker, for in-process callers (the demo subscribes to its events).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The Unix socket path, when there is one.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// The bound TCP address, when there is one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// Resolves when the server task ends on its own (an accept loop failure).
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        match self.server.as_mut() {
            Some(server) => {
                let result = server.await;
                self.server = None;
                result.context("the server task panicked")?
            }
            None => std::future::pending().await,
        }
    }

    /// Graceful shutdown: `STOPPING=1`, stop accepting, let in-flight requests and persists
    /// finish, all under [`SHUTDOWN_GRACE`].
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if self.notify == Notify::Systemd {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        }
        self.shutdown.cancel();
        let server = self.server.take();
        let broker = self.broker.clone();
        let finish = async move {
            let server_result = async {
                match server {
                    Some(server) => server.await.context("the server task panicked")?,
                    None => Ok(()),
                }
            };
            let (server_result, ()) = tokio::join!(server_result, broker.drain());
            server_result
        };
        let result = match tokio::time::timeout(SHUTDOWN_GRACE, finish).await {
            Ok(result) => result,
            Err(_elapsed) => {
                tracing::warn!(
                    grace_seconds = SHUTDOWN_GRACE.as_secs(),
                    "shutdown grace elapsed with work still in flight; stopping anyway"
                );
                Ok(())
            }
        };
        self.ticker.abort();
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        tracing::info!("stopped");
        result
    }
}

/// Makes the process non-dumpable (no core dumps, no same-uid ptrace or /proc/PID/mem reads)
/// and sets RLIMIT_CORE to 0, as ssh-agent does.
pub fn harden_process() -> anyhow::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context("making the process non-dumpable failed")?;
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .context("turning core dumps off failed")?;
    raise_descriptor_limit();
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (systemd's soft default is 1024), so a
/// burst of connections cannot starve the store and the Unix socket of descriptors; the accept
/// loop also caps connections below the soft limit. A failure is logged, not fatal.
fn raise_descriptor_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(hard) = limit.maximum else {
        return;
    };
    if limit.current.is_some_and(|soft| soft >= hard) {
        return;
    }
    if let Err(error) = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    ) {
        tracing::warn!(%error, "cannot raise the descriptor limit (RLIMIT_NOFILE)");
    }
}

/// Logs to stderr (journald adds timestamps under systemd): `RUST_LOG` wins over the
/// configured level. Secrets are never logged, at any level.
pub fn init_tracing(configured: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .and_then(|value| EnvFilter::try_new(value).ok())
        .or_else(|| EnvFilter::try_new(configured).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // A second call (tests, the demo after a failed start) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// The human status line for logs and systemd's `STATUS=`.
fn listening_status(profiles: usize, unix: Option<&Path>, tcp: Option<SocketAddr>) -> String {
    let mut places = Vec::new();
    if let Some(path) = unix {
        places.push(format!("unix:{}", path.display()));
    }
    if let Some(addr) = tcp {
        places.push(format!("http://{addr}"));
    }
    let plural = if profiles == 1 { "" } else { "s" };
    format!(
        "serving {profiles} profile{plural} on {}",
        places.join(" and ")
    )
}

fn server_options(config: &Config) -> anyhow::Result<ServerOptions> {
    let api_key = match &config.daemon.api_key_file {
        Some(path) => Some(crate::apikey::read(path)?),
        None => None,
    };
    Ok(ServerOptions {
        api_key,
        ..ServerOptions::default()
    })
}

/// Keeps systemd's `STATUS=` current: after broker events, the listeners and how many
/// profiles are in each state (what `systemctl --user status cogbroker` shows). A burst of
/// events (1,000 profiles refreshing in the same minute) is one count: the events already
/// queued are taken together, and counting reads each snapshot without building a status.
async fn report_status(broker: Broker, listening: String, shutdown: CancellationToken) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut events = broker.subscribe();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => match event {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
        loop {
            match events.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
        let status = format!("{listening}; {}", state_summary(&broker.state_counts()));
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status)]);
    }
}

/// `{fresh: 2, logged_out: 1}` → `2 fresh, 1 logged_out`.
fn state_summary(counts: &std::collections::BTreeMap<&str, usize>) -> String {
    counts
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Half of `WatchdogSec`, when systemd enabled the watchdog for this process.
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec) / 2)
    } else {
        None
    }
}

/// Pings `WATCHDOG=1` only after proving the runtime still schedules tasks and the broker still
/// answers: a wedged executor stops the pings and systemd restarts us.
async fn watchdog(broker: Broker, interval: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let probe_broker = broker.clone();
        // A snapshot read on another task: it returns at once unless the executor or the
        // broker's state is wedged.
        let probe = tokio::spawn(async move { broker_health(&probe_broker) });
        match tokio::time::timeout(interval / 2, probe).await {
            Ok(Ok(_profiles)) => {
                if let Err(error) = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]) {
                    tracing::warn!("watchdog ping failed: {error}");
                }
            }
            Ok(Err(_panicked)) => {
                tracing::error!("the watchdog health probe panicked; withholding WATCHDOG=1");
            }
            Err(_elapsed) => {
                tracing::error!(
                    "the runtime did not run the health probe in time; withholding WATCHDOG=1"
                );
            }
        }
    }
}

/// Reads every profile's snapshot; how many there are.
fn broker_health(broker: &Broker) -> usize {
    broker.state_counts().values().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_every_listener() {
        let status = listening_status(
            2,
            Some(Path::new("/run/user/1000/cogbroker/cogbroker.sock")),
            Some("127.0.0.1:7467".parse().unwrap()),
        );
        assert_eq!(
            status,
            "serving 2 profiles on unix:/run/user/1000/cogbroker/cogbroker.sock and http://127.0.0.1:7467"
        );
        assert_eq!(listening_status(1, None, None), "serving 1 profile on ");
    }

    #[test]
    fn states_are_counted() {
        let counts = [("logged_out", 1), ("fresh", 2)].into_iter().collect();
        assert_eq!(state_summary(&counts), "2 fresh, 1 logged_out");
        assert_eq!(state_summary(&Default::default()), "");
    }
}
