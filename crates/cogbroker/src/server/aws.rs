//! The AWS routes (design.md §13): the container-credentials route the AWS SDKs call, and the
//! grants `exec --aws` asks for its child.
//!
//! The SDKs send `GET /v1/profiles/{p}/aws-credentials` with `Authorization` (verbatim, the
//! child's grant), `Accept` and `Host` only: no `X-Cogbroker-Request`. So that route alone is
//! exempt from the 412 rule when it carries no such header, and then its grant stands in for the
//! API key (`checks`); every other listener check applies. With the header it is an ordinary
//! API call (the CLI's `aws-credential-process`).

use std::net::SocketAddr;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header;

use super::checks::is_sdk_call;
use super::errors::{self, ApiError};
use super::parse::{self, FromFields, JsonFields, NoQuery};
use super::state::AppState;
use crate::api::{
    AwsCredentialsResponse, AwsGrant, AwsGrantRequest, AwsGrantRevoked, MAX_MIN_TTL, path,
};
use crate::broker::aws::IssuedAws;
use crate::broker::state::rfc3339;
use crate::listen::{Peer, Transport};

/// `GET /v1/profiles/{p}/aws-credentials[?min_ttl=SECONDS]`.
pub(super) async fn credentials(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    if is_sdk_call(&request) {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if presented.is_empty() || !state.broker.aws_grant_matches(profile.as_str(), presented) {
            return Err(errors::unauthorized(
                "this route needs the Authorization value `cogbroker exec --aws` gives its child (AWS_CONTAINER_AUTHORIZATION_TOKEN); that child's command may have ended",
            ));
        }
    }
    let min_ttl = min_ttl_query(request.uri().query())?;
    let issued = state
        .broker
        .aws_credentials(profile.as_str(), min_ttl)
        .await?;
    Ok(axum::Json(AwsCredentialsResponse::from(issued)).into_response())
}

/// `POST /v1/profiles/{p}/aws-grants`: a grant for one `exec --aws` child, ended when the
/// requesting process ends (its pid comes from the Unix socket) or on `DELETE`.
pub(super) async fn create_grant(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    let (parts, body) = request.into_parts();
    let AwsGrantRequest {} = parse::json_body(&parts.headers, body, state.body_limit).await?;
    let Some(tcp) = state.tcp else {
        return Err(ApiError::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported",
            "the AWS SDKs reach the daemon over loopback TCP, and its TCP listener is off: set [daemon] listen = \"127.0.0.1:7467\"",
        ));
    };
    let pid = parts
        .extensions
        .get::<Peer>()
        .filter(|peer| peer.transport == Transport::Unix)
        .and_then(|peer| peer.pid);
    let grant = state.broker.aws_grant(profile.as_str(), pid).await?;
    Ok(axum::Json(AwsGrant {
        grant_id: grant.id,
        token: grant.token,
        credentials_url: credentials_url(tcp, profile.as_str()),
    })
    .into_response())
}

/// `DELETE /v1/profiles/{p}/aws-grants/{id}`.
pub(super) async fn revoke_grant(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    let Ok(Path((profile, grant_id))) = path else {
        return Err(ApiError::bad_input(
            "grant_id",
            "expected /v1/profiles/{profile}/aws-grants/{grant_id}",
        ));
    };
    let profile = parse::profile_name(Ok(Path(profile)))?;
    let valid =
        (1..=64).contains(&grant_id.len()) && grant_id.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(ApiError::bad_input(
            "grant_id",
            "a grant id is 32 hex characters",
        ));
    }
    if !state.broker.aws_revoke(profile.as_str(), &grant_id).await? {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "unknown_grant",
            "no such grant (it ended with its process, or was revoked already)",
        ));
    }
    Ok(axum::Json(AwsGrantRevoked {
        status: "revoked".to_owned(),
    })
    .into_response())
}

/// `http://ADDR/v1/profiles/{p}/aws-credentials` on the TCP listener's own address (an IP
/// literal: SDKs accept loopback addresses for plain http).
pub(super) fn credentials_url(tcp: SocketAddr, profile: &str) -> String {
    format!("http://{tcp}{}", path::aws_credentials(profile))
}

fn min_ttl_query(query: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    let max = MAX_MIN_TTL.as_secs();
    match query.split_once('=') {
        Some(("min_ttl", value)) if !value.contains('&') => value
            .parse::<u64>()
            .ok()
            .filter(|seconds| *seconds <= max)
            .map(|seconds| Some(std::time::Duration::from_secs(seconds)))
            .ok_or_else(|| {
                ApiError::bad_input(
                    "min_ttl",
                    format_args!("must be a whole number of seconds up to {max}"),
                )
            }),
        _ => Err(ApiError::bad_input("query", "only `min_ttl` is accepted")),
    }
}

impl From<IssuedAws> for AwsCredentialsResponse {
    fn from(issued: IssuedAws) -> Self {
        Self {
            access_key_id: issued.access_key_id,
            secret_access_key: issued.secret_access_key,
            token: issued.session_token,
            expiration: rfc3339(issued.expiration),
        }
    }
}

impl FromFields for AwsGrantRequest {
    fn from_fields(_: &mut JsonFields) -> Result<Self, ApiError> {
        Ok(Self {})
    }
}
