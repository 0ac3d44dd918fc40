//! [`App`]: the API as one service, around the router.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::Method;
use http::header;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use super::checks::{
    Checks, check_request, fixed_response_headers, logged_path, method_not_allowed, not_found,
};
use super::parse;
use super::state::AppState;
use crate::api::path;

/// The API as one service: the routes (with their fallbacks) behind the listener checks, and
/// the layers every response passes through, in order: sensitive request headers marked (so
/// `Authorization` never reaches a log), a trace span (method and a sanitised path only), the
/// listener checks, the routes, then the fixed response headers.
///
/// One service around the router rather than router layers: `Router::layer` wraps every route
/// in every layer, and the cache-hit path then paid for cloning and dropping that stack (and
/// boxing each middleware's future) on every request.
#[derive(Clone)]
pub struct App {
    routes: Router,
    checks: Arc<Checks>,
    /// Answers `GET /v1/profiles/<plain name>/token` without the router (the hot path).
    direct: Option<AppState>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    pub(super) fn new(routes: Router, checks: Checks) -> Self {
        Self {
            routes: routes
                .fallback(not_found)
                .method_not_allowed_fallback(method_not_allowed),
            checks: Arc::new(checks),
            direct: None,
        }
    }

    /// Answers the token route of plain profile names directly, with `state`.
    pub(super) fn with_direct_token_route(mut self, state: AppState) -> Self {
        self.direct = Some(state);
        self
    }
}

impl tower::Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // One pass comparing names (a lookup per name would hash it, and `entry` reserves).
        for (name, value) in request.headers_mut().iter_mut() {
            if name == header::AUTHORIZATION
                || name == header::PROXY_AUTHORIZATION
                || name == header::COOKIE
            {
                value.set_sensitive(true);
            }
        }
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %logged_path(request.uri().path())
        );
        let checked = span.in_scope(|| check_request(&self.checks, &request));
        // The token route of a plain profile name: its state and the name, parsed once here.
        let direct = self
            .direct
            .as_ref()
            .filter(|_| request.method() == Method::GET)
            .and_then(|state| {
                let profile = path::plain_token_profile(request.uri().path())?;
                Some((state.clone(), parse::plain_profile_name(profile)))
            });
        let routes = self.routes.clone();
        Box::pin(
            async move {
                let started = tokio::time::Instant::now();
                let mut response = match (checked, direct) {
                    (Ok(()), Some((state, profile))) => {
                        super::routes::token_direct(state, profile, request).await
                    }
                    (Ok(()), None) => match routes.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    (Err(error), _) => {
                        tracing::info!(
                            status = error.status().as_u16(),
                            code = error.code(),
                            "request refused by a listener check"
                        );
                        error.into_response()
                    }
                };
                fixed_response_headers(response.headers_mut());
                let status = response.status().as_u16();
                let latency_ms = started.elapsed().as_millis();
                if response.status().is_server_error() {
                    tracing::error!(status, latency_ms, "response failed");
                } else {
                    tracing::debug!(status, latency_ms, "finished processing request");
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
