//! Faults applied at the HTTP edge: what the fault queue decided for one call (after its
//! latency), the marker that makes the server drop a connection, and the call counters. The
//! user-pool API, the OAuth endpoints and STS all go through here.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::faults::FaultKind;
use crate::handle::{Shared, lock};

/// The response marker that makes the connection task close the socket without answering.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AbortConnection;

impl std::fmt::Display for AbortConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for AbortConnection {}

/// What the fault queue decided for one call, after any injected latency.
pub(crate) enum Injected {
    /// Run the call.
    Nothing,
    /// Answer with this error, in the endpoint's own error shape.
    Error(ApiError),
    /// Answer as the endpoint does when it throttles.
    Throttle,
    /// Already answered (a dropped connection or an HTML page), and counted.
    Respond(Response),
}

/// Applies the pending faults for one call of `label`: waits out the latency, then says what to do.
pub(crate) async fn inject_faults(shared: &Shared, label: &str) -> Injected {
    let planned = lock(&shared.faults).take(label);
    if !planned.delay.is_zero() {
        tokio::time::sleep(planned.delay).await;
    }
    match planned.action {
        Some(FaultKind::Latency { .. }) | None => Injected::Nothing,
        Some(FaultKind::Error {
            code,
            message,
            status,
        }) => Injected::Error(ApiError {
            code,
            message,
            status,
        }),
        Some(FaultKind::Throttle) => Injected::Throttle,
        Some(FaultKind::DropConnection) => {
            record(shared, label, "DropConnection");
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(AbortConnection);
            Injected::Respond(response)
        }
        Some(FaultKind::HtmlError { status }) => {
            record(shared, label, "HtmlError");
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let page = format!(
                "<!DOCTYPE html><html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
            );
            Injected::Respond(
                (
                    status,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    page,
                )
                    .into_response(),
            )
        }
    }
}

/// Counts one call of `operation` with its outcome.
pub(crate) fn record(shared: &Shared, operation: &str, outcome: &str) {
    lock(&shared.stats).record(operation, outcome);
    if outcome == "ok" {
        tracing::debug!(%operation, "call succeeded");
    }
}
