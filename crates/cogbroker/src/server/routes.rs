//! The routes of the v1 API and their handlers. Each handler parses its input
//! ([`super::parse`]), calls the broker, and answers with [`crate::api`] types; errors go
//! through [`ApiError`].

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::Uri;
use http::header::{self, HeaderMap, HeaderValue};
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;

use super::errors::ApiError;
use super::parse::{self, NoQuery};
use super::state::{AppState, Shared};
use super::{OPENAPI, ServerOptions};
use crate::api::{
    self, AnswerBody, Cancelled, Health, LoggedOut, LoginRequest, LogoutRequest, ProfileList,
    RefreshRequest, path, path::route,
};
use crate::broker::{Broker, BrokerEvent};
use crate::config::ProfileName;

/// The routes, without the listener checks, and their state (for the direct token route).
pub(super) fn routes(
    broker: Broker,
    options: &ServerOptions,
    shutdown: CancellationToken,
    tcp: Option<std::net::SocketAddr>,
) -> (Router, AppState) {
    let state = AppState(std::sync::Arc::new(Shared {
        broker,
        body_limit: options.body_limit,
        audit: std::sync::Arc::default(),
        shutdown,
        tcp,
    }));
    let routes = Router::new()
        .route(path::HEALTH, get(healthz))
        .route(path::METRICS, get(metrics))
        .route(path::OPENAPI, get(openapi))
        .route(path::PROFILES, get(profiles))
        .route(path::AUDIT, get(audit))
        .route(route::PROFILE, get(profile_status))
        .route(route::TOKEN, get(token))
        .route(route::LOGIN, post(login))
        .route(route::REFRESH, post(refresh))
        .route(route::LOGOUT, post(logout))
        .route(route::EVENTS, get(events))
        .route(route::PENDING_LOGIN, post(answer).delete(cancel_login))
        .route(route::AWS_CREDENTIALS, get(super::aws::credentials))
        .route(route::AWS_GRANTS, post(super::aws::create_grant))
        .route(
            route::AWS_GRANT,
            axum::routing::delete(super::aws::revoke_grant),
        )
        .with_state(state.clone());
    (routes, state)
}

async fn healthz(_: NoQuery) -> Response {
    axum::Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
    .into_response()
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

async fn profiles(State(state): State<AppState>, _: NoQuery) -> Response {
    let profiles = state
        .broker
        .profiles()
        .into_iter()
        .map(Into::into)
        .collect();
    axum::Json(ProfileList { profiles }).into_response()
}

async fn profile_status(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    let status: api::ProfileStatus = state.broker.status(profile.as_str())?.into();
    Ok(axum::Json(status).into_response())
}

async fn audit(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let profile = parse::audit_query(uri.query())?;
    if let Some(profile) = &profile {
        state.broker.status(profile.as_str())?;
    }
    let entries = state
        .audit
        .entries(profile.as_ref().map(crate::config::ProfileName::as_str));
    Ok(axum::Json(api::AuditList { entries }).into_response())
}

/// `GET /v1/profiles/{p}/token` through the router (a percent-encoded profile name); the
/// plain paths every client sends are answered by [`token_direct`] before routing.
async fn token(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    token_answer(&state, profile, &request.into_parts().0).await
}

/// `GET /v1/profiles/{p}/token` for a plain profile segment (see
/// [`api::path::plain_token_profile`]), without the router: the hot path of every cache hit.
pub(super) async fn token_direct(
    state: AppState,
    profile: Result<ProfileName, ApiError>,
    request: axum::extract::Request,
) -> Response {
    let answer = match profile {
        Ok(profile) => token_answer(&state, profile, &request.into_parts().0).await,
        Err(error) => Err(error),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// The token answer: the request is read in place (no header map, URI or extension is cloned)
/// and the body is the token set's pre-rendered JSON (see [`super::wire::token_json`]).
async fn token_answer(
    state: &AppState,
    profile: ProfileName,
    request: &http::request::Parts,
) -> Result<Response, ApiError> {
    let query = parse::token_query(request.uri.query())?;
    let issued = state
        .broker
        .token(profile.as_str(), query.kind, query.min_ttl)
        .await?;
    let extensions = &request.extensions;
    if let (Some(peer), Some(consumers)) = (
        extensions.get::<crate::listen::Peer>(),
        extensions.get::<crate::audit::ConsumerCache>(),
    ) {
        // Who takes it, found while the consumer still waits for the answer: once per
        // connection, so a kept-alive client pays for the lookup on its first token only.
        let at = std::time::SystemTime::now();
        let consumer = consumers.resolve(peer).await;
        state
            .audit
            .record(at, &issued.profile, query.kind, &peer.transport, consumer);
    }
    if parse::wants_plain_text(&request.headers) {
        let mut response = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            issued.expose_token().to_owned(),
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
    let mut response = Response::new(Body::from(super::wire::token_json(&issued)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn login(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    let request: LoginRequest = parse::json_body(&headers, body, state.body_limit).await?;
    let password = request
        .password
        .map(|password| cognito_auth::secret::Password::new(password.expose_secret()));
    let outcome = state.broker.login(profile.as_str(), password).await?;
    Ok(axum::Json(api::LoginOutcome::from(outcome)).into_response())
}

async fn answer(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let login_id = parse::login_id(path)?;
    let request: AnswerBody = parse::json_body(&headers, body, state.body_limit).await?;
    let outcome = state
        .broker
        .answer(&login_id, parse::answer_input(request))
        .await?;
    Ok(axum::Json(api::LoginOutcome::from(outcome)).into_response())
}

async fn cancel_login(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    let login_id = parse::login_id(path)?;
    state.broker.cancel_login(&login_id).await?;
    Ok(axum::Json(Cancelled::new()).into_response())
}

async fn refresh(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    let RefreshRequest {} = parse::json_body(&headers, body, state.body_limit).await?;
    let status: api::ProfileStatus = state.broker.refresh(profile.as_str()).await?.into();
    Ok(axum::Json(status).into_response())
}

async fn logout(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    let request: LogoutRequest = parse::json_body(&headers, body, state.body_limit).await?;
    state
        .broker
        .logout(profile.as_str(), request.forget_device)
        .await?;
    Ok(axum::Json(LoggedOut::new()).into_response())
}

async fn events(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    let profile = parse::profile_name(path)?;
    // Subscribe first: an event between the two calls is then sent, not lost.
    let receiver = state.broker.subscribe();
    let status: api::ProfileStatus = state.broker.status(profile.as_str())?.into();
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
pub(super) fn event_for(event: &BrokerEvent, profile: &str) -> Option<Event> {
    let event = api::Event::from(event);
    (event.profile() == profile).then(|| {
        Event::default()
            .event(event.name())
            .json_data(&event)
            .unwrap_or_default()
    })
}
