//! The local HTTP API (design.md §5) and the listener checks every request passes first
//! (design.md §7): served identically on the Unix socket and on loopback TCP.
//!
//! Rooms, one job each:
//! - `accept`: the accept loop, one task per connection, HTTP/1 limits, graceful shutdown.
//! - `app`: [`App`], the API as one service: sensitive request headers marked (so
//!   `Authorization` never reaches a log), the trace span (method and a sanitised path only),
//!   the listener checks, the routes (the token route of a plain profile name answered directly),
//!   then the fixed response headers (`Cache-Control: no-store`, `nosniff`, never any
//!   `Access-Control-*`).
//! - `checks`: the listener checks and the fixed response headers.
//! - `routes`: the handlers; they answer with [`crate::api`] types only.
//! - `state`: what the handlers share.
//! - `parse`: paths, the token query and JSON bodies into [`crate::api`] request types.
//! - `errors`: [`ApiError`], the only place that knows HTTP status codes.
//! - `wire`: the broker's answers as [`crate::api`] types.
//! - `aws`: the container-credentials route the AWS SDKs call (exempt from the
//!   `X-Cogbroker-Request` rule, guarded by a per-child grant) and the grants of `exec --aws`.

mod accept;
mod app;
mod aws;
mod checks;
mod errors;
mod parse;
mod routes;
mod state;
mod wire;

use std::time::Duration;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::listen::{self, Listeners};

pub use app::App;
pub use errors::ApiError;

/// How long shutdown lets in-flight requests finish before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The OpenAPI 3 document of this API (served at `GET /v1/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Limits and the optional API key of the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The API key (`Authorization: Bearer`) that admits a TCP caller whose uid cannot be
    /// checked; read from the configured `api_key_file`.
    pub api_key: Option<SecretString>,
    /// How long a client may take to send a request's headers (slowloris); also closes
    /// kept-alive connections idle for that long.
    pub header_read_timeout: Duration,
    /// The largest request body accepted (413 beyond).
    pub body_limit: usize,
    /// The largest request head (request line and headers) accepted (431 beyond).
    pub header_limit: usize,
    /// Open connections at most (further ones are closed at once); lowered to fit the soft
    /// descriptor limit.
    pub max_connections: usize,
    /// TCP connections at most whose peer's uid is not known to be ours (being looked up, or
    /// unknown and admitted by the API key).
    pub max_unverified: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            header_read_timeout: Duration::from_secs(10),
            body_limit: 16 * 1024,
            header_limit: 16 * 1024,
            max_connections: 4096,
            max_unverified: 64,
        }
    }
}

/// The API as one service, listener checks included. Requests must carry a [`Peer`]
/// extension (the accept loop of [`serve`] inserts it); without one they are refused.
/// `tcp_port` is the port `Host` must name on TCP connections.
pub fn router(broker: Broker, options: &ServerOptions, tcp_port: Option<u16>) -> App {
    let tcp =
        tcp_port.map(|port| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
    build_router(broker, options, tcp, CancellationToken::new())
}

/// Serves `listeners` until `shutdown` is cancelled; then stops accepting (removing our socket
/// file), lets in-flight requests finish for up to [`SHUTDOWN_GRACE`], closes what is left, and
/// waits for the broker to finish an in-flight persist ([`Broker::drain`]).
pub async fn serve(
    listeners: Listeners,
    broker: Broker,
    options: ServerOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = build_router(
        broker.clone(),
        &options,
        listeners.tcp_addr(),
        shutdown.clone(),
    );
    accept::serve_app(listeners, app, &options, shutdown).await?;
    broker.drain().await;
    Ok(())
}

fn build_router(
    broker: Broker,
    options: &ServerOptions,
    tcp: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
) -> App {
    let (routes, state) = routes::routes(broker, options, shutdown, tcp);
    let checks = checks::Checks {
        api_key: options.api_key.clone().map(std::sync::Arc::new),
        tcp_port: tcp.map(|addr| addr.port()),
        our_uid: listen::our_uid(),
        header_limit: options.header_limit,
    };
    app::App::new(routes, checks).with_direct_token_route(state)
}

#[cfg(test)]
mod tests;

/// Entry points of the fuzz targets (`fuzz/`) and of their corpus replay test: the request
/// parsers, fed arbitrary bytes. Not an API.
#[doc(hidden)]
pub mod fuzz_entry {
    use axum::body::Body;
    use http::{HeaderMap, HeaderValue, header};

    use crate::api::{AnswerBody, LoginRequest, LogoutRequest};

    /// The token endpoint's query string.
    pub fn token_query(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = super::parse::token_query(Some(text));
        }
    }

    /// A `Host` header (and an absolute-form target) against the allowlist.
    pub fn host(data: &[u8]) {
        let Ok(value) = HeaderValue::from_bytes(data) else {
            return;
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value);
        let uri = std::str::from_utf8(data)
            .ok()
            .and_then(|text| format!("http://{text}/").parse::<http::Uri>().ok())
            .unwrap_or_else(|| http::Uri::from_static("/"));
        let local = std::net::Ipv4Addr::LOCALHOST.into();
        let _ = super::checks::host_allowed(&headers, &uri, 7467, local);
        let _ = super::checks::host_allowed(&headers, &http::Uri::from_static("/"), 7467, local);
    }

    /// A JSON request body as the login, answer and logout handlers read it.
    pub fn json_body(data: &[u8]) {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a current-thread runtime");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        RUNTIME.with(|runtime| {
            runtime.block_on(async {
                let body = || Body::from(data.to_vec());
                let limit = 16 * 1024;
                let _ = super::parse::json_body::<LoginRequest>(&headers, body(), limit).await;
                let _ = super::parse::json_body::<AnswerBody>(&headers, body(), limit).await;
                let _ = super::parse::json_body::<LogoutRequest>(&headers, body(), limit).await;
            });
        });
    }
}
