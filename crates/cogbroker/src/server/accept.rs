//! The accept loop and its connections: one task per connection over the Unix socket or loopback
//! TCP, each request tagged with who is on the other end ([`Peer`]), HTTP/1 limits (header read
//! timeout, header size), and graceful shutdown under a grace period.

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use super::{SHUTDOWN_GRACE, ServerOptions};
use crate::listen::{self, Listeners, Peer, PeerVerdict, Transport};

/// The accept loop of [`serve`], for any router (tests use a small one).
pub(super) async fn serve_app(
    listeners: Listeners,
    app: Router,
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
    let connections = Connections {
        app,
        http,
        graceful: shutdown.clone(),
        force: CancellationToken::new(),
    };
    let tracker = TaskTracker::new();

    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = accept_tcp(tcp.as_ref()) => match accepted {
                Ok((stream, remote)) => {
                    let connections = connections.clone();
                    tracker.spawn(async move { connections.serve_tcp(stream, remote).await });
                }
                Err(error) => accept_failed(&error).await,
            },
            accepted = accept_unix(unix.as_ref()) => match accepted {
                Ok(stream) => {
                    let connections = connections.clone();
                    tracker.spawn(async move { connections.serve_unix(stream).await });
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
    app: Router,
    http: hyper::server::conn::http1::Builder,
    /// Cancelled at shutdown: finish the request in flight, then close.
    graceful: CancellationToken,
    /// Cancelled when the grace period is over: close now.
    force: CancellationToken,
}

impl Connections {
    async fn serve_tcp(self, stream: tokio::net::TcpStream, remote: std::net::SocketAddr) {
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(error) => {
                tracing::debug!(%error, "accepted TCP connection vanished");
                return;
            }
        };
        // Answers are small and written at once: never wait for Nagle.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let peer = Peer::of_tcp(local, remote).await;
        self.serve(stream, peer).await;
    }

    async fn serve_unix(self, stream: tokio::net::UnixStream) {
        let peer = Peer::of_unix(&stream);
        self.serve(stream, peer).await;
    }

    async fn serve<S>(self, stream: S, peer: Peer)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let PeerVerdict::Foreign(uid) = listen::judge_peer(peer.uid, listen::our_uid()) {
            tracing::warn!(
                peer_uid = uid,
                peer_pid = peer.pid,
                transport = transport_name(&peer.transport),
                "connection from another user: every request on it is refused"
            );
        }
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

async fn accept_tcp(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
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

fn transport_name(transport: &Transport) -> &'static str {
    match transport {
        Transport::Tcp { .. } => "tcp",
        Transport::Unix => "unix",
    }
}
