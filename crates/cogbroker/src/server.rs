//! The local HTTP API (design.md §5) and the listener checks every request passes first
//! (design.md §7): served identically on the Unix socket and on loopback TCP.
//!
//! Layers, outermost first: response headers (`Cache-Control: no-store`, `nosniff`, never any
//! `Access-Control-*`), sensitive request headers (so `Authorization` never reaches a log), the
//! trace span (method and a sanitised path only), then the listener checks, then the routes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode, Uri};
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use zeroize::Zeroize as _;

use crate::broker::state::rfc3339;
use crate::broker::{AnswerInput, Broker, BrokerError, BrokerEvent, LoginOutcome, TokenKind};
use crate::config::ProfileName;
use crate::listen::{self, Listeners, Peer, PeerVerdict, Transport};
use cognito_auth::secret::{OneTimeCode, Password};

/// How long shutdown lets in-flight requests finish before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The header every `/v1/*` request must carry (`X-Cogbroker-Request: 1`).
pub const REQUEST_HEADER: &str = "x-cogbroker-request";

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
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            header_read_timeout: Duration::from_secs(10),
            body_limit: 16 * 1024,
            header_limit: 16 * 1024,
        }
    }
}

/// An error answer: `{"error": code, "message": ...}` with its status, and `Retry-After` or
/// `WWW-Authenticate` where they apply. Messages never carry secrets or raw request input.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with this status, machine-readable code and human message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: bad input, naming the field.
    pub fn bad_input(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_input",
            format!("{field}: {message}"),
        )
    }

    /// 403: a listener check refused the request; the message says which.
    fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<BrokerError> for ApiError {
    fn from(error: BrokerError) -> Self {
        let status = status_of(&error);
        if let BrokerError::Internal(_) = error {
            // Internal failures are logged in full here and answered plainly.
            tracing::error!(error = format_args!("{error:#}"), "request failed");
            return Self::new(status, error.code(), "internal error; see the daemon's log");
        }
        if status.is_server_error() {
            tracing::warn!(code = error.code(), error = %error, "request failed");
        }
        Self {
            status,
            code: error.code(),
            message: error.to_string(),
            retry_after: error.retry_after(),
        }
    }
}

/// The HTTP status of a broker error: the only place that knows it.
pub fn status_of(error: &BrokerError) -> StatusCode {
    match error {
        BrokerError::UnknownProfile(_) | BrokerError::UnknownLogin => StatusCode::NOT_FOUND,
        BrokerError::LoginInProgress => StatusCode::CONFLICT,
        BrokerError::LoginRequired { .. } | BrokerError::NotAuthorized(_) => {
            StatusCode::UNAUTHORIZED
        }
        BrokerError::UpstreamUnavailable { .. } | BrokerError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        BrokerError::CodeMismatch(_)
        | BrokerError::InvalidPassword(_)
        | BrokerError::ChallengeExpired
        | BrokerError::Unsupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
        BrokerError::BadInput { .. } => StatusCode::BAD_REQUEST,
        BrokerError::Misconfigured(_) | BrokerError::Internal(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The API as an axum router, listener checks included. Requests must carry a [`Peer`]
/// extension (the accept loop of [`serve`] inserts it); without one they are refused.
/// `tcp_port` is the port `Host` must name on TCP connections.
pub fn router(broker: Broker, options: &ServerOptions, tcp_port: Option<u16>) -> Router {
    build_router(broker, options, tcp_port, CancellationToken::new())
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
        listeners.tcp_port(),
        shutdown.clone(),
    );
    serve_app(listeners, app, &options, shutdown).await?;
    broker.drain().await;
    Ok(())
}

/// The accept loop of [`serve`], for any router (tests use a small one).
async fn serve_app(
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
        let service =
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(peer.clone());
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

// ---------------------------------------------------------------------------------------------
// Router and listener checks

/// What the listener checks need to know.
#[derive(Clone)]
struct Checks {
    api_key: Option<Arc<SecretString>>,
    tcp_port: Option<u16>,
    our_uid: u32,
    header_limit: usize,
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    broker: Broker,
    body_limit: usize,
    /// Ends event streams at shutdown, so graceful shutdown does not wait on them.
    shutdown: CancellationToken,
}

fn build_router(
    broker: Broker,
    options: &ServerOptions,
    tcp_port: Option<u16>,
    shutdown: CancellationToken,
) -> Router {
    let state = AppState {
        broker,
        body_limit: options.body_limit,
        shutdown,
    };
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/profiles", get(profiles))
        .route("/v1/profiles/{profile}", get(profile_status))
        .route("/v1/profiles/{profile}/token", get(token))
        .route("/v1/profiles/{profile}/login", post(login))
        .route("/v1/profiles/{profile}/refresh", post(refresh))
        .route("/v1/profiles/{profile}/logout", post(logout))
        .route("/v1/profiles/{profile}/events", get(events))
        .route("/v1/logins/{login_id}", post(answer).delete(cancel_login))
        .with_state(state);
    let checks = Checks {
        api_key: options.api_key.clone().map(Arc::new),
        tcp_port,
        our_uid: listen::our_uid(),
        header_limit: options.header_limit,
    };
    with_listener_checks(routes, checks)
}

/// Wraps `routes` in the fallbacks and the layers every response passes through.
fn with_listener_checks(routes: Router, checks: Checks) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(checks, listener_checks))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::debug_span!("request", method = %request.method(), path = %logged_path(request.uri().path()))
                }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::PROXY_AUTHORIZATION, header::COOKIE]))
        .layer(middleware::from_fn(response_headers))
}

/// The path as it may appear in logs: login ids and anything outside a plain character set
/// are not written out.
fn logged_path(path: &str) -> &str {
    if path.starts_with("/v1/logins/") {
        return "/v1/logins/{login_id}";
    }
    let plain = path.len() <= 200
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if plain { path } else { "{unprintable path}" }
}

async fn response_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let cors: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(name);
    }
    response
}

/// The listener checks of design.md §7, in order: connection identity, header size, proxy
/// headers, Host (TCP: DNS rebinding), Origin, Sec-Fetch-Site, the peer's uid, the API key,
/// and the custom request header on `/v1/*`.
async fn listener_checks(State(checks): State<Checks>, request: Request, next: Next) -> Response {
    match check_request(&checks, &request) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::info!(
                status = error.status.as_u16(),
                code = error.code,
                "request refused by a listener check"
            );
            error.into_response()
        }
    }
}

fn check_request(checks: &Checks, request: &Request) -> Result<(), ApiError> {
    let Some(peer) = request.extensions().get::<Peer>() else {
        return Err(ApiError::forbidden(
            "forbidden_peer",
            "the connection's origin is unknown; requests must arrive through the daemon's listeners",
        ));
    };
    let headers = request.headers();

    let head_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + request
            .uri()
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
    if head_bytes > checks.header_limit {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request's headers exceed {} bytes", checks.header_limit),
        ));
    }

    for name in ["forwarded", "x-forwarded-for", "via"] {
        if headers.contains_key(name) {
            return Err(ApiError::forbidden(
                "forbidden_proxy",
                format!("requests relayed by a proxy (a `{name}` header is present) are refused"),
            ));
        }
    }

    if let Transport::Tcp { local, .. } = peer.transport {
        let port = checks.tcp_port.unwrap_or(local.port());
        if !host_allowed(headers, request.uri(), port, local.ip()) {
            return Err(ApiError::forbidden(
                "forbidden_host",
                format!(
                    "the Host header must be 127.0.0.1:{port}, localhost:{port} or [::1]:{port} (DNS rebinding protection)"
                ),
            ));
        }
    }

    if headers.contains_key(header::ORIGIN) {
        return Err(ApiError::forbidden(
            "forbidden_origin",
            "requests carrying an Origin header (browsers) are refused",
        ));
    }

    for value in headers.get_all("sec-fetch-site") {
        let allowed = value.to_str().is_ok_and(|site| {
            let site = site.trim();
            site.eq_ignore_ascii_case("none") || site.eq_ignore_ascii_case("same-origin")
        });
        if !allowed {
            return Err(ApiError::forbidden(
                "forbidden_fetch_site",
                "cross-site and same-site browser requests (Sec-Fetch-Site) are refused",
            ));
        }
    }

    let path = request.uri().path();
    let verdict = listen::judge_peer(peer.uid, checks.our_uid);
    if let PeerVerdict::Foreign(uid) = verdict {
        return Err(ApiError::forbidden(
            "forbidden_peer",
            format!(
                "the caller runs as uid {uid}, not as the daemon's user (uid {})",
                checks.our_uid
            ),
        ));
    }
    let api_key_ok = match (&checks.api_key, headers.get(header::AUTHORIZATION)) {
        (Some(key), Some(value)) => {
            if !bearer_matches(value, key) {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the API key is wrong",
                ));
            }
            true
        }
        _ => false,
    };
    // `/healthz` needs no API key: it says nothing but "ok" and the version.
    if verdict == PeerVerdict::Unverified && !api_key_ok && path != "/healthz" {
        return Err(match checks.api_key {
            Some(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the caller's uid cannot be checked: send the API key as `Authorization: Bearer <key>`",
            ),
            None => ApiError::forbidden(
                "forbidden_peer",
                "the caller's uid cannot be checked and no api_key_file is configured",
            ),
        });
    }

    if path == "/v1" || path.starts_with("/v1/") {
        let present = headers
            .get(REQUEST_HEADER)
            .is_some_and(|value| value.as_bytes() == b"1");
        if !present {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "missing_request_header",
                "requests to /v1/ must carry the header `X-Cogbroker-Request: 1`",
            ));
        }
    }
    Ok(())
}

/// Exactly one Host naming `127.0.0.1`, `localhost`, `[::1]` or the very address the
/// connection arrived on (another 127.x.y.z listener; an IP literal cannot be rebound), always
/// with our port; an absolute-form request target must name the same.
fn host_allowed(headers: &HeaderMap, uri: &Uri, port: u16, local_ip: std::net::IpAddr) -> bool {
    let allowed = |authority: &str| {
        let Some((host, host_port)) = authority.rsplit_once(':') else {
            return false;
        };
        let literal = match host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
        {
            Some(v6) => v6
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(std::net::IpAddr::V6),
            None => host
                .parse::<std::net::Ipv4Addr>()
                .ok()
                .map(std::net::IpAddr::V4),
        };
        host_port.parse::<u16>().ok() == Some(port)
            && (host.eq_ignore_ascii_case("localhost")
                || host == "127.0.0.1"
                || host == "[::1]"
                || literal == Some(local_ip))
    };
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    allowed(host)
        && uri
            .authority()
            .is_none_or(|authority| allowed(authority.as_str()))
}

/// `Authorization: Bearer <key>`, compared in constant time.
fn bearer_matches(value: &HeaderValue, key: &SecretString) -> bool {
    let bytes = value.as_bytes();
    let Some(presented) = bytes
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .and(bytes.get(7..))
    else {
        return false;
    };
    presented
        .trim_ascii()
        .ct_eq(key.expose_secret().as_bytes())
        .into()
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see GET /v1/openapi.json",
    )
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on this endpoint", method_label(&method)),
    )
}

fn method_label(method: &Method) -> &str {
    let name = method.as_str();
    if name.len() <= 16 && name.bytes().all(|b| b.is_ascii_uppercase()) {
        name
    } else {
        "this method"
    }
}

async fn healthz(_: NoQuery) -> Response {
    axum::Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })).into_response()
}

async fn metrics(State(state): State<AppState>, _: NoQuery) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.broker.metrics(),
    )
        .into_response()
}

async fn openapi(_: NoQuery) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn profiles(State(state): State<AppState>, _: NoQuery) -> Response {
    axum::Json(json!({ "profiles": state.broker.profiles() })).into_response()
}

async fn profile_status(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    let profile = profile_name(path)?;
    Ok(axum::Json(state.broker.status(profile.as_str())?).into_response())
}

async fn token(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let profile = profile_name(path)?;
    let query = TokenQuery::parse(uri.query())?;
    let issued = state
        .broker
        .token(profile.as_str(), query.kind, query.min_ttl)
        .await?;
    if wants_plain_text(&headers) {
        let mut response = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            issued.token.expose_secret().to_owned(),
        )
            .into_response();
        let extra = response.headers_mut();
        extra.insert(
            "x-cogbroker-expires-in",
            HeaderValue::from(issued.expires_in),
        );
        if issued.degraded {
            extra.insert("x-cogbroker-degraded", HeaderValue::from_static("true"));
        }
        return Ok(response);
    }
    #[derive(Serialize)]
    struct TokenBody<'a> {
        profile: &'a str,
        kind: &'static str,
        token: &'a str,
        token_type: &'static str,
        expires_at: String,
        expires_in: u64,
        degraded: bool,
    }
    let body = TokenBody {
        profile: &issued.profile,
        kind: query.kind.as_str(),
        token: issued.token.expose_secret(),
        token_type: "Bearer",
        expires_at: rfc3339(issued.expires_at),
        expires_in: issued.expires_in,
        degraded: issued.degraded,
    };
    Ok(axum::Json(body).into_response())
}

async fn login(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let profile = profile_name(path)?;
    let mut fields = JsonFields::read(&headers, body, state.body_limit).await?;
    let password = fields.take_secret("password")?.map(Password::new);
    fields.finish()?;
    let outcome = state.broker.login(profile.as_str(), password).await?;
    Ok(outcome_response(outcome))
}

async fn answer(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let login_id = login_id(path)?;
    let mut fields = JsonFields::read(&headers, body, state.body_limit).await?;
    let input = AnswerInput {
        new_password: fields.take_secret("new_password")?.map(Password::new),
        attributes: fields.take_string_map("attributes")?,
        code: fields.take_secret("code")?.map(OneTimeCode::new),
        mfa_type: fields.take_string("mfa_type")?,
        challenge: fields.take_string("challenge")?,
        password: fields.take_secret("password")?.map(Password::new),
        answer: fields.take_secret("answer")?.map(Password::new),
    };
    fields.finish()?;
    let outcome = state.broker.answer(&login_id, input).await?;
    Ok(outcome_response(outcome))
}

async fn cancel_login(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    let login_id = login_id(path)?;
    state.broker.cancel_login(&login_id).await?;
    Ok(axum::Json(json!({ "status": "cancelled" })).into_response())
}

async fn refresh(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let profile = profile_name(path)?;
    JsonFields::read(&headers, body, state.body_limit)
        .await?
        .finish()?;
    Ok(axum::Json(state.broker.refresh(profile.as_str()).await?).into_response())
}

async fn logout(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let profile = profile_name(path)?;
    let mut fields = JsonFields::read(&headers, body, state.body_limit).await?;
    let forget_device = fields.take_bool("forget_device")?.unwrap_or(false);
    fields.finish()?;
    state.broker.logout(profile.as_str(), forget_device).await?;
    Ok(axum::Json(json!({ "status": "logged_out" })).into_response())
}

async fn events(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    let profile = profile_name(path)?;
    // Subscribe first: an event between the two calls is then sent, not lost.
    let receiver = state.broker.subscribe();
    let status = state.broker.status(profile.as_str())?;
    let first = Event::default()
        .event("status")
        .json_data(&status)
        .unwrap_or_default();
    let name = profile.as_str().to_owned();
    let shutdown = state.shutdown.clone();
    let later = futures_util::stream::unfold(
        (receiver, name, shutdown),
        |(mut receiver, name, shutdown)| async move {
            loop {
                let received = tokio::select! {
                    () = shutdown.cancelled() => return None,
                    received = receiver.recv() => received,
                };
                let event = match received {
                    Ok(event) => match event_for(&event, &name) {
                        Some(event) => event,
                        None => continue,
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        Event::default().event("lagged").data(missed.to_string())
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok::<_, Infallible>(event), (receiver, name, shutdown)));
            }
        },
    );
    let stream = futures_util::StreamExt::chain(futures_util::stream::iter([Ok(first)]), later);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The server-sent event for `event` when it concerns `profile` (events never carry a token).
fn event_for(event: &BrokerEvent, profile: &str) -> Option<Event> {
    (event.profile() == profile).then(|| {
        Event::default()
            .event(event.name())
            .json_data(event)
            .unwrap_or_default()
    })
}

fn outcome_response(outcome: LoginOutcome) -> Response {
    axum::Json(outcome).into_response()
}

// ---------------------------------------------------------------------------------------------
// Request parsing

/// Refuses any query string: no endpoint but the token one takes parameters, and tokens are
/// never accepted in URLs.
struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match parts.uri.query() {
            None | Some("") => Ok(Self),
            Some(_) => Err(ApiError::bad_input(
                "query",
                "this endpoint takes no query parameters",
            )),
        }
    }
}

/// A validated profile name from the path; the raw value is never echoed or logged.
fn profile_name(path: Result<Path<String>, PathRejection>) -> Result<ProfileName, ApiError> {
    let invalid = || {
        tracing::debug!("refused a malformed profile name");
        ApiError::bad_input(
            "profile",
            "a profile name is 1 to 64 characters of A-Z a-z 0-9 . _ - and not \".\" or \"..\"",
        )
    };
    let Ok(Path(raw)) = path else {
        return Err(invalid());
    };
    raw.parse::<ProfileName>().map_err(|_| invalid())
}

/// A login id from the path: 1 to 128 characters of A-Z a-z 0-9 _ -.
fn login_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let valid = |id: &str| {
        (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match path {
        Ok(Path(id)) if valid(&id) => Ok(id),
        _ => Err(ApiError::bad_input(
            "login_id",
            "a login id is 1 to 128 characters of A-Z a-z 0-9 _ -",
        )),
    }
}

struct TokenQuery {
    kind: TokenKind,
    min_ttl: Option<Duration>,
}

impl TokenQuery {
    /// The longest `min_ttl` accepted: a day (Cognito tokens live at most that long).
    const MAX_MIN_TTL: u64 = 86_400;

    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut kind = None;
        let mut min_ttl = None;
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*name {
                "kind" if kind.is_none() => {
                    kind = Some(match &*value {
                        "access" => TokenKind::Access,
                        "id" => TokenKind::Id,
                        _ => {
                            return Err(ApiError::bad_input(
                                "kind",
                                "must be \"access\" or \"id\"",
                            ));
                        }
                    });
                }
                "min_ttl" if min_ttl.is_none() => {
                    let seconds = value
                        .parse::<u64>()
                        .ok()
                        .filter(|seconds| *seconds <= Self::MAX_MIN_TTL)
                        .ok_or_else(|| {
                            ApiError::bad_input(
                                "min_ttl",
                                "must be a whole number of seconds up to 86400",
                            )
                        })?;
                    min_ttl = Some(Duration::from_secs(seconds));
                }
                "kind" | "min_ttl" => {
                    return Err(ApiError::bad_input(&name, "given more than once"));
                }
                _ => {
                    return Err(ApiError::bad_input(
                        "query",
                        "only `kind` and `min_ttl` are accepted (tokens are never accepted in URLs)",
                    ));
                }
            }
        }
        Ok(Self {
            kind: kind.unwrap_or(TokenKind::Access),
            min_ttl,
        })
    }
}

/// `Accept: text/plain` (before any `application/json`) asks for the bare token.
fn wants_plain_text(headers: &HeaderMap) -> bool {
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let media = range.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case("text/plain") {
                return true;
            }
            if media.eq_ignore_ascii_case("application/json") {
                return false;
            }
        }
    }
    false
}

/// The fields of an optional JSON object body, taken one by one so that every error names its
/// field and none repeats a submitted value (serde's messages quote the input, so they are not
/// used).
struct JsonFields(Map<String, Value>);

impl JsonFields {
    /// Reads the body: a non-JSON `Content-Type` is 415 (blocking cross-site "simple" POSTs),
    /// more than `limit` bytes 413, malformed JSON or a non-object 400. An empty body is an
    /// empty object.
    async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Self, ApiError> {
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            let media = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim();
            if !media.eq_ignore_ascii_case("application/json") {
                return Err(unsupported_media_type());
            }
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large(limit));
        }
        let bytes = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(too_large(limit));
            }
            Err(_) => {
                return Err(ApiError::bad_input(
                    "body",
                    "the request body could not be read",
                ));
            }
        };
        if bytes.is_empty() {
            return Ok(Self(Map::new()));
        }
        if !headers.contains_key(header::CONTENT_TYPE) {
            return Err(unsupported_media_type());
        }
        let parsed = serde_json::from_slice::<Value>(&bytes);
        wipe(bytes);
        match parsed {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_input("body", "must be a JSON object")),
            Err(error) => Err(ApiError::bad_input(
                "body",
                format_args!(
                    "malformed JSON at line {} column {}",
                    error.line(),
                    error.column()
                ),
            )),
        }
    }

    /// A string field holding a secret, moved out without copying.
    fn take_secret(&mut self, field: &'static str) -> Result<Option<String>, ApiError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(ApiError::bad_input(field, "must be a string")),
        }
    }

    /// A string field of at most 256 bytes.
    fn take_string(&mut self, field: &'static str) -> Result<Option<String>, ApiError> {
        match self.take_secret(field)? {
            Some(value) if value.len() > 256 => {
                Err(ApiError::bad_input(field, "is longer than 256 characters"))
            }
            value => Ok(value),
        }
    }

    fn take_bool(&mut self, field: &'static str) -> Result<Option<bool>, ApiError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(value)),
            Some(_) => Err(ApiError::bad_input(field, "must be true or false")),
        }
    }

    fn take_string_map(
        &mut self,
        field: &'static str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(key, value)| match value {
                    Value::String(value) => Ok((key, value)),
                    _ => Err(ApiError::bad_input(
                        field,
                        "every attribute value must be a string",
                    )),
                })
                .collect(),
            Some(_) => Err(ApiError::bad_input(field, "must be an object of strings")),
        }
    }

    /// Refuses fields nobody took, naming the first one when its name is plain.
    fn finish(self) -> Result<(), ApiError> {
        let Some(name) = self.0.keys().next() else {
            return Ok(());
        };
        let plain =
            name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let shown = if plain { name.as_str() } else { "body" };
        Err(ApiError::bad_input(shown, "unknown field"))
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "request bodies must be JSON with `Content-Type: application/json`",
    )
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body exceeds {limit} bytes"),
    )
}

/// Overwrites a request body (it may hold a password) when we hold the only reference to it.
fn wipe(bytes: Bytes) {
    if let Ok(mut owned) = bytes.try_into_mut() {
        owned.as_mut().zeroize();
    }
}

#[cfg(test)]
mod tests;
