//! The `/_control/` API: the [`Handle`](crate::Handle) over HTTP, for the binary and non-Rust tests.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::faults::Fault;
use crate::handle::{Handle, Shared};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_control/health",
            get(|| async { axum::Json(json!({ "ok": true })) }),
        )
        .route("/_control/stats", get(stats).delete(reset_stats))
        .route(
            "/_control/faults",
            get(faults).post(inject).delete(clear_faults),
        )
        .route("/_control/messages", get(messages).delete(clear_messages))
        .route("/_control/clock", get(clock).post(set_clock))
        .route("/_control/totp", get(totp))
        .route("/_control/user", get(user))
}

fn handle(shared: Arc<Shared>) -> Handle {
    Handle { shared }
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "message": message.into() })),
    )
        .into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(handle(shared).stats()).into_response()
}

async fn reset_stats(State(shared): State<Arc<Shared>>) -> StatusCode {
    handle(shared).reset_stats();
    StatusCode::NO_CONTENT
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(handle(shared).pending_faults()).into_response()
}

/// Accepts one Fault object or an array of them.
async fn inject(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Fault),
        Many(Vec<Fault>),
    }
    let faults = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::One(fault)) => vec![fault],
        Ok(OneOrMany::Many(faults)) => faults,
        Err(error) => {
            // The untagged error hides the cause; re-parse as one fault for a useful message.
            let detail = serde_json::from_slice::<Fault>(&body)
                .err()
                .map_or(error.to_string(), |e| e.to_string());
            return bad_request(format!("invalid fault: {detail}"));
        }
    };
    let handle = handle(shared);
    let queued = faults.len();
    for fault in faults {
        handle.inject(fault);
    }
    axum::Json(json!({ "queued": queued })).into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    handle(shared).clear_faults();
    StatusCode::NO_CONTENT
}

async fn messages(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(handle(shared).messages()).into_response()
}

async fn clear_messages(State(shared): State<Arc<Shared>>) -> StatusCode {
    handle(shared).clear_messages();
    StatusCode::NO_CONTENT
}

fn clock_json(handle: &Handle) -> Response {
    let now = handle
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    axum::Json(json!({ "offset_seconds": handle.clock_offset(), "now": now })).into_response()
}

async fn clock(State(shared): State<Arc<Shared>>) -> Response {
    clock_json(&handle(shared))
}

/// `{"offset_seconds": n}` sets the offset; `{"advance_seconds": n}` moves the clock.
async fn set_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ClockRequest {
        offset_seconds: Option<i64>,
        advance_seconds: Option<i64>,
    }
    let request: ClockRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(format!("invalid clock request: {error}")),
    };
    let handle = handle(shared);
    match (request.offset_seconds, request.advance_seconds) {
        (Some(offset), None) => handle.set_clock_offset(offset),
        (None, Some(delta)) => handle.advance_clock(delta),
        _ => return bad_request("give exactly one of offset_seconds and advance_seconds"),
    }
    clock_json(&handle)
}

#[derive(Deserialize)]
struct UserQuery {
    pool_id: String,
    username: String,
}

async fn totp(State(shared): State<Arc<Shared>>, Query(query): Query<UserQuery>) -> Response {
    match handle(shared).totp_code(&query.pool_id, &query.username) {
        Some(code) => axum::Json(json!({ "code": code })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "no such user or no TOTP secret" })),
        )
            .into_response(),
    }
}

async fn user(State(shared): State<Arc<Shared>>, Query(query): Query<UserQuery>) -> Response {
    match handle(shared).user_report(&query.pool_id, &query.username) {
        Some(report) => axum::Json(report).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "no such user" })),
        )
            .into_response(),
    }
}
