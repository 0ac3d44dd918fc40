//! The accept loop and its connections: one task per connection over the Unix socket or loopback
//! TCP, each request tagged with who is on the other end ([`Peer`]), HTTP/1 limits (header read
//! timeout, header size), and graceful shutdown under a grace period.
//!
//! Who is on the other end is settled before any HTTP is spoken (design.md §7): a connection
//! from another uid is closed at once, without a reply; so is one whose uid cannot be found when
//! no API key is configured (fail closed). Connections are capped in total and, separately,
//! while unverified (a TCP peer's uid lookup reads the kernel's socket table off the executor,
//! a few at a time), so another user flooding the port can neither exhaust our descriptors nor
//! starve the Unix socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context as _;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::{App, SHUTDOWN_GRACE, ServerOptions};
use crate::listen::{self, Listeners, Peer, PeerVerdict, Transport};

/// The accept loop of [`serve`], for any router (tests use a small one).
pub(super) async fn serve_app(
    listeners: Listeners,
    app: App,
    options: &ServerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (tcp, unix) = listeners.into_parts();
    let tcp = tcp
        .map(tokio::net::TcpListener::from_std)
        .transpose()
        .context("cannot register the TCP listener with the runtime")?;
    let (unix, unix_guard) = match unix {
        Some(unix) => {
            let (listener, guard) = unix
                .into_tokio()
                .context("cannot register the Unix listener with the runtime")?;
            (Some(listener), Some(guard))
        }
        None => (None, None),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_header_size(options.header_limit)
        .max_buf_size(options.header_limit.max(8192) + 1024);
    let total = options.max_connections.min(descriptor_budget()).max(1);
    let connections = Connections {
        app,
        http,
        graceful: shutdown.clone(),
        force: CancellationToken::new(),
        api_key_configured: options.api_key.is_some(),
        total: Arc::new(Semaphore::new(total)),
        unverified: Arc::new(Semaphore::new(options.max_unverified.max(1))),
        resolver: listen::TcpUidResolver::start(options.max_unverified),
        refusals: Arc::new(RefusalLog::default()),
    };
    tracing::debug!(
        max_connections = total,
        max_unverified = options.max_unverified,
        "connection limits"
    );
    let tracker = TaskTracker::new();

    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            // TCP is accepted only with both permits in hand: at the caps, connections wait in
            // the kernel's backlog (in order, ours among them) instead of being dropped.
            (permits, accepted) = connections.accept_tcp_admitted(tcp.as_ref()) => match accepted {
                Ok((stream, remote)) => {
                    let connections = connections.clone();
                    tracker.spawn(async move { connections.serve_tcp(stream, remote, permits).await });
                }
                Err(error) => accept_failed(&error).await,
            },
            accepted = accept_unix(unix.as_ref()) => match accepted {
                Ok(stream) => {
                    let Some((peer, permit)) = connections.admit_unix(&stream) else {
                        drop(stream);
                        continue;
                    };
                    let connections = connections.clone();
                    tracker.spawn(async move {
                        let _permit = permit;
                        connections.serve(stream, peer).await;
                    });
                }
                Err(error) => accept_failed(&error).await,
            },
        }
    }

    // Stop accepting: close the listeners and remove our socket file.
    drop(tcp);
    drop(unix);
    drop(unix_guard);
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tracker.len(),
            "connections still busy after the shutdown grace period; closing them"
        );
        connections.force.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// Everything a connection task needs.
#[derive(Clone)]
struct Connections {
    app: App,
    http: hyper::server::conn::http1::Builder,
    /// Cancelled at shutdown: finish the request in flight, then close.
    graceful: CancellationToken,
    /// Cancelled when the grace period is over: close now.
    force: CancellationToken,
    /// Whether an API key can admit a TCP peer whose uid is unknown.
    api_key_configured: bool,
    /// One permit per open connection.
    total: Arc<Semaphore>,
    /// One permit per TCP connection whose uid is not (yet) known to be ours.
    unverified: Arc<Semaphore>,
    /// Socket-table lookups, batched: one blocking read of /proc at a time.
    resolver: listen::TcpUidResolver,
    refusals: Arc<RefusalLog>,
}

/// The permits a TCP connection holds while its peer is being identified.
struct TcpPermits {
    total: OwnedSemaphorePermit,
    unverified: OwnedSemaphorePermit,
}

impl Connections {
    /// Waits for a total and an unverified permit, then accepts one TCP connection. Cancel
    /// safe: dropping the future releases the permits and loses no connection.
    async fn accept_tcp_admitted(
        &self,
        listener: Option<&tokio::net::TcpListener>,
    ) -> (
        TcpPermits,
        std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>,
    ) {
        let Some(listener) = listener else {
            return std::future::pending().await;
        };
        let (Ok(total), Ok(unverified)) = (
            Arc::clone(&self.total).acquire_owned().await,
            Arc::clone(&self.unverified).acquire_owned().await,
        ) else {
            // The semaphores are never closed.
            return std::future::pending().await;
        };
        (TcpPermits { total, unverified }, listener.accept().await)
    }

    /// The peer of a Unix connection (`SO_PEERCRED`, a cheap syscall done right here) and its
    /// permit; `None` for another uid, an unreadable peer, or the total cap reached.
    fn admit_unix(&self, stream: &tokio::net::UnixStream) -> Option<(Peer, OwnedSemaphorePermit)> {
        let peer = Peer::of_unix(stream);
        if !self.peer_admitted(&peer) {
            return None;
        }
        let Ok(permit) = Arc::clone(&self.total).try_acquire_owned() else {
            self.refusals
                .note("too many connections open: new ones are closed until some end");
            return None;
        };
        Some((peer, permit))
    }

    /// Whether `peer` may speak HTTP at all: ours, or unknown with an API key configured (every
    /// request must then carry the key). Refusals are logged with the peer's uid, rate-limited.
    fn peer_admitted(&self, peer: &Peer) -> bool {
        match listen::judge_peer(peer.uid, listen::our_uid()) {
            PeerVerdict::Ours => true,
            PeerVerdict::Foreign(uid) => {
                self.refusals.note_peer(uid, peer);
                false
            }
            PeerVerdict::Unverified
                if self.api_key_configured && peer.transport != Transport::Unix =>
            {
                true
            }
            PeerVerdict::Unverified => {
                self.refusals
                    .note("a connection whose user cannot be identified was closed (fail closed)");
                false
            }
        }
    }

    async fn serve_tcp(
        self,
        stream: tokio::net::TcpStream,
        remote: std::net::SocketAddr,
        permits: TcpPermits,
    ) {
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(error) => {
                tracing::debug!(%error, "accepted TCP connection vanished");
                return;
            }
        };
        // At most `max_unverified` connections wait for a lookup (they hold the permits taken
        // at accept), all answered by one read of the table.
        let peer = self.resolver.peer(local, remote).await;
        if !self.peer_admitted(&peer) {
            return;
        }
        // Our own connection no longer counts as unverified; an unknown one keeps its permit.
        let TcpPermits { total, unverified } = permits;
        let _unverified = (peer.uid.is_none()).then_some(unverified);
        let _total = total;
        // Answers are small and written at once: never wait for Nagle.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        self.serve(stream, peer).await;
    }

    async fn serve<S>(self, stream: S, peer: Peer)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let app = self.app;
        // Who the peer process is, found once per connection (on the first token handed out).
        let consumer = crate::audit::ConsumerCache::default();
        let service =
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(peer.clone());
                request.extensions_mut().insert(consumer.clone());
                app.clone().oneshot(request.map(Body::new))
            });
        let connection = self.http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = self.graceful.cancelled() => {
                connection.as_mut().graceful_shutdown();
                tokio::select! {
                    result = connection.as_mut() => result,
                    () = self.force.cancelled() => Ok(()),
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}

async fn accept_unix(
    listener: Option<&tokio::net::UnixListener>,
) -> std::io::Result<tokio::net::UnixStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Out of file descriptors and the like: say so and pause briefly instead of spinning.
async fn accept_failed(error: &std::io::Error) {
    tracing::warn!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// How many descriptors connections may use: the soft `RLIMIT_NOFILE` (raised to the hard
/// limit at start) minus room for the store, the keyring, logs and upstream connections.
fn descriptor_budget() -> usize {
    const RESERVED: u64 = 128;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit
        .current
        .map_or(usize::MAX, |soft| {
            usize::try_from(soft.saturating_sub(RESERVED)).unwrap_or(usize::MAX)
        })
        .max(16)
}

/// Refused connections, logged at most once per [`RefusalLog::EVERY`] with a count of those
/// not logged: another user's flood must not flood the journal too.
#[derive(Default)]
struct RefusalLog {
    state: Mutex<RefusalState>,
}

#[derive(Default)]
struct RefusalState {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(10);

    /// Whether to log now; returns how many refusals went unlogged since the last line.
    fn due(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if state
            .last
            .is_some_and(|last| now.duration_since(last) < Self::EVERY)
        {
            state.unlogged += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.unlogged))
    }

    fn note(&self, what: &'static str) {
        if let Some(unlogged) = self.due() {
            tracing::warn!(also_refused_since_last_line = unlogged, "{what}");
        }
    }

    fn note_peer(&self, uid: u32, peer: &Peer) {
        if let Some(unlogged) = self.due() {
            tracing::warn!(
                peer_uid = uid,
                peer_pid = peer.pid,
                transport = transport_name(&peer.transport),
                also_refused_since_last_line = unlogged,
                "connection from another user closed without a reply"
            );
        }
    }
}

fn transport_name(transport: &Transport) -> &'static str {
    match transport {
        Transport::Tcp { .. } => "tcp",
        Transport::Unix => "unix",
    }
}
