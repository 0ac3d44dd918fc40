//! The HTTP side: JSON 1.1 on `POST /`, JWKS and OpenID discovery, and the accept loop that can drop
//! a connection without answering.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::clock::Clock;
use crate::error::ApiError;
use crate::faults::{FaultQueue, Stats};
use crate::handle::{Handle, Shared, lock};
use crate::inject::{AbortConnection, Injected, inject_faults, record};
use crate::jwt::KeySet;
use crate::seed::Seed;
use crate::state::State as World;
use crate::{control, ids, oauth, ops, sts};

const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
const IDENTITY_TARGET_PREFIX: &str = "AWSCognitoIdentityService.";
const JSON_11: &str = "application/x-amz-json-1.1";

/// Starts emulators.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Binds `listen` (port 0 picks a free port), generates the signing keys and serves `seed`.
    pub async fn start(seed: Seed, listen: SocketAddr) -> anyhow::Result<RunningEmulator> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        Emulator::serve(seed, listener).await
    }

    /// Starts on `127.0.0.1` with a free port: the usual choice in tests.
    pub async fn start_local(seed: Seed) -> anyhow::Result<RunningEmulator> {
        Emulator::start(seed, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves `seed` on an already bound listener.
    pub async fn serve(seed: Seed, listener: TcpListener) -> anyhow::Result<RunningEmulator> {
        let local_addr = listener
            .local_addr()
            .context("listener has no local address")?;
        let shared = tokio::task::spawn_blocking(move || -> anyhow::Result<Shared> {
            let mut rng = rand::thread_rng();
            let kid_prefix = ids::uuid(&mut rng);
            let keys =
                KeySet::shared(&kid_prefix[..8]).context("cannot generate RSA signing keys")?;
            Ok(Shared {
                state: Mutex::new(World::from_seed(&seed, &mut rng)),
                keys,
                clock: Clock::default(),
                faults: Mutex::new(FaultQueue::default()),
                stats: Mutex::new(Stats::default()),
            })
        })
        .await
        .context("emulator set-up panicked")??;
        let shared = Arc::new(shared);
        let router = router(Arc::clone(&shared));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(accept_loop(
            listener,
            router,
            cancel.clone(),
            tracker.clone(),
        ));
        tracing::info!(%local_addr, "cognito emulator listening");
        Ok(RunningEmulator {
            endpoint: format!("http://{local_addr}"),
            local_addr,
            handle: Handle { shared },
            cancel,
            tracker,
        })
    }
}

/// A serving emulator. Dropping it stops the server; [`RunningEmulator::shutdown`] also waits.
#[derive(Debug)]
pub struct RunningEmulator {
    endpoint: String,
    local_addr: SocketAddr,
    handle: Handle,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`, the Cognito endpoint (and the JWKS host).
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle for counters, faults, the clock and test inspection.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops accepting, lets in-flight requests finish and waits for every connection to close.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    // Back off briefly: accept errors (e.g. too many open files) tend to repeat.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let router = router.clone();
                async move {
                    let response = match router.oneshot(request.map(Body::new)).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    // A service error makes hyper close the connection without writing a response.
                    if response.extensions().get::<AbortConnection>().is_some() {
                        return Err(AbortConnection);
                    }
                    Ok::<_, AbortConnection>(response)
                }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection closed with an error");
                    }
                }
                () = cancel.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection closed with an error during shutdown");
                    }
                }
            }
        });
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", post(cognito))
        .route("/{pool_id}/.well-known/jwks.json", get(jwks))
        .route(
            "/{pool_id}/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .merge(control::routes())
        .merge(oauth::routes())
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({ "message": "Not Found" })),
            )
        })
        .layer(axum::middleware::map_response_with_state(
            Arc::clone(&shared),
            date_header,
        ))
        .with_state(shared)
}

/// Every answer carries a `Date` from the emulator clock (host time plus the offset), as
/// Cognito's `Date` follows Cognito's clock: `cogbroker doctor` measures clock skew from it.
/// hyper adds its own (host time) `Date` only when the response has none.
async fn date_header(State(shared): State<Arc<Shared>>, mut response: Response) -> Response {
    let date = httpdate::fmt_http_date(shared.clock.now());
    if let Ok(value) = HeaderValue::from_str(&date) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

/// One Cognito call: faults first, then the operation in a blocking task (SRP is CPU work).
async fn cognito(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    if target.is_none() && sts::is_query_request(&headers) {
        return sts::handle(shared, headers, body).await;
    }
    let (identity, operation) = match target {
        Some(target) => match target.strip_prefix(IDENTITY_TARGET_PREFIX) {
            Some(operation) => (true, operation),
            None => (false, target.strip_prefix(TARGET_PREFIX).unwrap_or("")),
        },
        None => (false, ""),
    };
    let operation = operation.to_owned();
    let label = if operation.is_empty() {
        "<none>"
    } else {
        operation.as_str()
    };
    let outcome = match inject_faults(&shared, label).await {
        Injected::Nothing => None,
        Injected::Error(error) => Some(Err(error)),
        Injected::Throttle => {
            let mut error = ApiError::new("TooManyRequestsException", "Rate exceeded");
            if identity {
                error.status = ops::identity_status(&error.code);
            }
            Some(Err(error))
        }
        Injected::Respond(response) => return response,
    };
    let result = match outcome {
        Some(result) => result,
        None if operation.is_empty() => Err(ApiError::new(
            "UnknownOperationException",
            "Missing or unknown X-Amz-Target header",
        )),
        None => {
            let worker = Arc::clone(&shared);
            let op = operation.clone();
            tokio::task::spawn_blocking(move || {
                if identity {
                    worker.call_identity(&op, &body)
                } else {
                    worker.call(&op, &body)
                }
            })
            .await
            .unwrap_or_else(|_| {
                tracing::error!(operation = %operation, "operation panicked");
                Err(ApiError::new("InternalErrorException", "Internal error"))
            })
        }
    };
    match result {
        Ok(value) => {
            record(&shared, label, "ok");
            json_response(StatusCode::OK, &value, None)
        }
        Err(error) => {
            record(&shared, label, &error.code);
            tracing::info!(operation = %label, error = %error.code, message = %error.message, "call failed");
            let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
            json_response(
                status,
                &json!({ "__type": error.code, "message": error.message }),
                Some(&error),
            )
        }
    }
}

fn json_response(status: StatusCode, body: &Value, error: Option<&ApiError>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_11));
    if let Ok(id) = HeaderValue::from_str(&ids::uuid(&mut rand::thread_rng())) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(error) = error {
        let kind = format!(
            "{}:http://internal.amazon.com/coral/com.amazonaws.swbup.model/",
            error.code
        );
        if let Ok(value) = HeaderValue::from_str(&kind) {
            headers.insert("x-amzn-errortype", value);
        }
        if let Ok(value) = HeaderValue::from_str(&error.message) {
            headers.insert("x-amzn-errormessage", value);
        }
    }
    response
}

async fn jwks(State(shared): State<Arc<Shared>>, Path(pool_id): Path<String>) -> Response {
    if !lock(&shared.state).pools.contains_key(&pool_id) {
        return pool_not_found(&pool_id);
    }
    axum::Json(shared.keys.jwks()).into_response()
}

async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(pool_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(issuer) = (Handle { shared }).issuer(&pool_id) else {
        return pool_not_found(&pool_id);
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("http://{host}/{pool_id}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": ["RS256"],
        "authorization_endpoint": format!("http://{host}/oauth2/authorize"),
        "token_endpoint": format!("http://{host}/oauth2/token"),
        "revocation_endpoint": format!("http://{host}/oauth2/revoke"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
    .into_response()
}

fn pool_not_found(pool_id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({ "message": format!("User pool {pool_id} does not exist.") })),
    )
        .into_response()
}
