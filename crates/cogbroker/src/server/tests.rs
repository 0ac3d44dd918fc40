//! Tests of the server: every listener check and error shape in-process with `oneshot`, the
//! request parsing helpers, and the accept loop over real sockets (Host over TCP, uid lookups,
//! 431, slowloris, graceful shutdown, other users via `setpriv`).

mod api;

use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post};
use http::Request as HttpRequest;
use http_body_util::Full;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use super::*;

// What the rooms of the server keep to themselves, and what the tests build with.
use super::accept::serve_app;
use super::app::App;
use super::checks::{Checks, bearer_matches, logged_path};
use super::errors::ApiError;
use super::parse::{
    JsonFields, login_id, profile_name, token_query as parse_token_query, wants_plain_text,
};
use crate::api::REQUEST_HEADER;
use crate::broker::TokenKind;
use crate::listen::{Peer, Transport};
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const PORT: u16 = 7467;

fn tcp_peer(uid: Option<u32>) -> Peer {
    Peer {
        transport: Transport::Tcp {
            local: SocketAddr::from(([127, 0, 0, 1], PORT)),
            remote: SocketAddr::from(([127, 0, 0, 1], 50_000)),
        },
        uid,
        pid: None,
    }
}

fn unix_peer(uid: Option<u32>) -> Peer {
    Peer {
        transport: Transport::Unix,
        uid,
        pid: Some(4242),
    }
}

const US: u32 = 1000;

fn checks(api_key: Option<&str>) -> Checks {
    Checks {
        api_key: api_key.map(|key| Arc::new(SecretString::from(key.to_owned()))),
        tcp_port: Some(PORT),
        our_uid: US,
        header_limit: 16 * 1024,
    }
}

/// A small API behind the real listener checks: enough to test the checks without a broker.
fn test_app(checks: Checks) -> App {
    async fn echo(headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
        let mut fields = JsonFields::read(&headers, body, 16 * 1024).await?;
        let password = fields.take_secret("password")?;
        let flag = fields.take_bool("flag")?;
        let name = fields.take_string("name")?;
        let attributes = fields.take_string_map("attributes")?;
        fields.finish()?;
        Ok(axum::Json(json!({
            "has_password": password.is_some(),
            "flag": flag,
            "name": name,
            "attributes": attributes,
        }))
        .into_response())
    }
    let routes = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route(
            "/v1/ping",
            get(|| async { axum::Json(json!({ "pong": true })) }),
        )
        .route("/v1/echo", post(echo))
        .route(
            "/v1/cors",
            get(|| async {
                (
                    [
                        ("access-control-allow-origin", "*"),
                        ("access-control-allow-private-network", "true"),
                    ],
                    "x",
                )
            }),
        );
    App::new(routes, checks)
}

/// A request that passes every check over TCP from our uid.
fn good(method: Method, uri: &str) -> http::request::Builder {
    bare(method, uri, &format!("127.0.0.1:{PORT}")).header(REQUEST_HEADER, "1")
}

/// A request over TCP from our uid with this Host and without the custom header.
fn bare(method: Method, uri: &str, host: &str) -> http::request::Builder {
    HttpRequest::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, host)
        .extension(tcp_peer(Some(US)))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every answer's fixed headers, and never any CORS header.
    fn assert_common_headers(&self) {
        assert_eq!(self.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(self.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            !self
                .headers
                .keys()
                .any(|name| name.as_str().starts_with("access-control-")),
            "{:?}",
            self.headers
        );
    }

    /// An error answer: JSON `{"error","message"}` with this status and code.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/json");
        let body = self.json();
        assert_eq!(body["error"], code, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "{body}"
        );
        self.assert_common_headers();
    }
}

async fn send(app: &App, request: HttpRequest<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a complete body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get_with(app: &App, request: http::request::Builder) -> Answer {
    send(app, request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn a_good_request_passes_with_the_fixed_headers() {
    let app = test_app(checks(None));
    let answer = get_with(&app, good(Method::GET, "/v1/ping")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(answer.json(), json!({ "pong": true }));
    answer.assert_common_headers();
}

#[tokio::test]
async fn host_must_be_loopback_with_our_port() {
    let app = test_app(checks(None));
    for host in [
        "127.0.0.1:7467",
        "localhost:7467",
        "LocalHost:7467",
        "[::1]:7467",
    ] {
        let answer = get_with(
            &app,
            bare(Method::GET, "/v1/ping", host).header(REQUEST_HEADER, "1"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{host}");
    }
    for host in [
        "evil.example:7467",
        "127.0.0.1:7468",
        "localhost:80",
        "127.0.0.1",
        "localhost",
        "[::1]",
        "127.0.0.2:7467",
        "[::1]:7467]",
        "::1:7467",
        "[127.0.0.1]:7467",
        "localhost.:7467",
        "127.0.0.1:7467.evil.example",
        "",
    ] {
        let answer = get_with(
            &app,
            bare(Method::GET, "/v1/ping", host).header(REQUEST_HEADER, "1"),
        )
        .await;
        answer.assert_error(StatusCode::FORBIDDEN, "forbidden_host");
        assert!(
            answer.json()["message"].as_str().unwrap().contains("Host"),
            "{host}"
        );
    }
    // Missing, and two Host headers.
    let mut request = good(Method::GET, "/v1/ping").body(Body::empty()).unwrap();
    request.headers_mut().remove(header::HOST);
    send(&app, request)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden_host");
    let mut request = good(Method::GET, "/v1/ping").body(Body::empty()).unwrap();
    request
        .headers_mut()
        .append(header::HOST, HeaderValue::from_static("evil.example:7467"));
    send(&app, request)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden_host");
    // The address the connection arrived on is as good as 127.0.0.1 (an IP cannot be rebound).
    let other_loopback = Peer {
        transport: Transport::Tcp {
            local: SocketAddr::from(([127, 0, 0, 2], PORT)),
            remote: SocketAddr::from(([127, 0, 0, 1], 50_000)),
        },
        uid: Some(US),
        pid: None,
    };
    let request = bare(Method::GET, "/v1/ping", "127.0.0.2:7467")
        .header(REQUEST_HEADER, "1")
        .extension(other_loopback);
    assert_eq!(get_with(&app, request).await.status, StatusCode::OK);
    // An absolute-form target naming another host.
    let answer = get_with(&app, good(Method::GET, "http://evil.example:7467/v1/ping")).await;
    answer.assert_error(StatusCode::FORBIDDEN, "forbidden_host");
}

#[tokio::test]
async fn host_is_checked_before_the_api_key() {
    let app = test_app(checks(Some("s3cret-key")));
    let request = bare(Method::GET, "/v1/ping", "evil.example:7467")
        .header(REQUEST_HEADER, "1")
        .header(header::AUTHORIZATION, "Bearer s3cret-key")
        .extension(tcp_peer(None));
    get_with(&app, request)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden_host");
    let request = bare(Method::GET, "/v1/ping", "evil.example:7467").extension(tcp_peer(None));
    get_with(&app, request)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden_host");
}

#[tokio::test]
async fn host_is_not_checked_on_the_unix_socket() {
    let app = test_app(checks(None));
    let request = bare(Method::GET, "/v1/ping", "whatever")
        .header(REQUEST_HEADER, "1")
        .extension(unix_peer(Some(US)));
    assert_eq!(get_with(&app, request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn browsers_are_refused() {
    let app = test_app(checks(None));
    for peer in [tcp_peer(Some(US)), unix_peer(Some(US))] {
        for origin in ["http://localhost:7467", "http://evil.example", "null"] {
            let request = good(Method::GET, "/v1/ping")
                .header(header::ORIGIN, origin)
                .extension(peer.clone());
            get_with(&app, request)
                .await
                .assert_error(StatusCode::FORBIDDEN, "forbidden_origin");
        }
        // `same-origin` is what a page on a DNS-rebound name sends: refused too.
        for site in [
            "cross-site",
            "same-site",
            "same-origin",
            "CROSS-SITE",
            "bogus",
        ] {
            let request = good(Method::GET, "/v1/ping")
                .header("sec-fetch-site", site)
                .extension(peer.clone());
            get_with(&app, request)
                .await
                .assert_error(StatusCode::FORBIDDEN, "forbidden_fetch_site");
        }
        for site in ["none", "None"] {
            let request = good(Method::GET, "/v1/ping")
                .header("sec-fetch-site", site)
                .extension(peer.clone());
            assert_eq!(
                get_with(&app, request).await.status,
                StatusCode::OK,
                "{site}"
            );
        }
        // Every value counts, not only the first.
        let request = good(Method::GET, "/v1/ping")
            .header("sec-fetch-site", "none")
            .header("sec-fetch-site", "same-origin")
            .extension(peer.clone());
        get_with(&app, request)
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden_fetch_site");
        // The first `X-Cogbroker-Request` value is the one read (as `HeaderMap::get` does).
        let request = bare(Method::GET, "/v1/ping", &format!("127.0.0.1:{PORT}"))
            .header("x-cogbroker-request", "0")
            .header("x-cogbroker-request", "1")
            .extension(peer.clone());
        get_with(&app, request)
            .await
            .assert_error(StatusCode::PRECONDITION_FAILED, "missing_request_header");
    }
}

#[tokio::test]
async fn preflights_get_no_cors_headers() {
    let app = test_app(checks(None));
    let preflight = good(Method::OPTIONS, "/v1/ping")
        .header(header::ORIGIN, "http://evil.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-private-network", "true");
    get_with(&app, preflight)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden_origin");
    // Without Origin, OPTIONS is simply a method no route has.
    get_with(&app, good(Method::OPTIONS, "/v1/ping"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    // Even a handler that tried to set CORS headers does not get them out.
    let answer = get_with(&app, good(Method::GET, "/v1/cors")).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.assert_common_headers();
}

#[tokio::test]
async fn proxied_requests_are_refused() {
    let app = test_app(checks(None));
    for peer in [tcp_peer(Some(US)), unix_peer(Some(US))] {
        for (name, value) in [
            ("forwarded", "for=10.0.0.1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("via", "1.1 proxy"),
        ] {
            let request = good(Method::GET, "/v1/ping")
                .header(name, value)
                .extension(peer.clone());
            let answer = get_with(&app, request).await;
            answer.assert_error(StatusCode::FORBIDDEN, "forbidden_proxy");
            assert!(answer.json()["message"].as_str().unwrap().contains(name));
        }
    }
}

#[tokio::test]
async fn v1_needs_the_request_header_on_both_transports() {
    let app = test_app(checks(None));
    for peer in [tcp_peer(Some(US)), unix_peer(Some(US))] {
        let mut request = good(Method::GET, "/v1/ping")
            .extension(peer.clone())
            .body(Body::empty())
            .unwrap();
        request.headers_mut().remove(REQUEST_HEADER);
        send(&app, request)
            .await
            .assert_error(StatusCode::PRECONDITION_FAILED, "missing_request_header");
        for value in ["0", "true", "11", ""] {
            let request = bare(Method::GET, "/v1/ping", "localhost:7467")
                .header(REQUEST_HEADER, value)
                .extension(peer.clone());
            get_with(&app, request)
                .await
                .assert_error(StatusCode::PRECONDITION_FAILED, "missing_request_header");
        }
        // Unknown /v1 routes too: the header check runs before routing decides 404.
        let mut request = good(Method::GET, "/v1/nothing")
            .extension(peer.clone())
            .body(Body::empty())
            .unwrap();
        request.headers_mut().remove(REQUEST_HEADER);
        send(&app, request)
            .await
            .assert_error(StatusCode::PRECONDITION_FAILED, "missing_request_header");
        // Outside /v1 it is not needed.
        let mut request = good(Method::GET, "/healthz")
            .extension(peer)
            .body(Body::empty())
            .unwrap();
        request.headers_mut().remove(REQUEST_HEADER);
        assert_eq!(send(&app, request).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn other_users_are_refused() {
    let app = test_app(checks(None));
    for peer in [
        tcp_peer(Some(US + 1)),
        unix_peer(Some(US + 1)),
        unix_peer(Some(0)),
        tcp_peer(Some(0)),
    ] {
        let uid = peer.uid.unwrap();
        let answer = get_with(&app, good(Method::GET, "/v1/ping").extension(peer)).await;
        answer.assert_error(StatusCode::FORBIDDEN, "forbidden_peer");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains(&format!("uid {uid}"))
        );
        // Not even the health check.
        let answer = get_with(
            &app,
            good(Method::GET, "/healthz").extension(tcp_peer(Some(uid))),
        )
        .await;
        answer.assert_error(StatusCode::FORBIDDEN, "forbidden_peer");
    }
    // Root is us when we are root.
    let root = test_app(Checks {
        our_uid: 0,
        ..checks(None)
    });
    assert_eq!(
        get_with(
            &root,
            good(Method::GET, "/v1/ping").extension(tcp_peer(Some(0)))
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_request_without_a_peer_is_refused() {
    let app = test_app(checks(None));
    let request = HttpRequest::get("/healthz")
        .header(header::HOST, "127.0.0.1:7467")
        .body(Body::empty())
        .unwrap();
    send(&app, request)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden_peer");
}

#[tokio::test]
async fn unverified_callers_need_the_api_key() {
    // No key configured: an unverifiable caller is refused outright.
    let app = test_app(checks(None));
    let answer = get_with(
        &app,
        good(Method::GET, "/v1/ping").extension(tcp_peer(None)),
    )
    .await;
    answer.assert_error(StatusCode::FORBIDDEN, "forbidden_peer");

    let app = test_app(checks(Some("s3cret-key")));
    let unverified = || good(Method::GET, "/v1/ping").extension(tcp_peer(None));
    let answer = get_with(&app, unverified()).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
    for wrong in [
        "Bearer s3cret-kez",
        "Bearer s3cret-key-longer",
        "Bearer ",
        "Basic czNjcmV0LWtleQ==",
        "s3cret-key",
    ] {
        let answer = get_with(&app, unverified().header(header::AUTHORIZATION, wrong)).await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(!answer.text().contains("s3cret"), "{}", answer.text());
    }
    for right in [
        "Bearer s3cret-key",
        "bearer s3cret-key",
        "BEARER  s3cret-key ",
    ] {
        let answer = get_with(&app, unverified().header(header::AUTHORIZATION, right)).await;
        assert_eq!(answer.status, StatusCode::OK, "{right}");
    }
    // A wrong key is refused even from our own uid; a foreign uid is refused even with the key.
    let answer = get_with(
        &app,
        good(Method::GET, "/v1/ping").header(header::AUTHORIZATION, "Bearer nope"),
    )
    .await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let foreign = good(Method::GET, "/v1/ping")
        .header(header::AUTHORIZATION, "Bearer s3cret-key")
        .extension(tcp_peer(Some(US + 1)));
    get_with(&app, foreign)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden_peer");
    // The health check needs no key from our own uid; an unverified caller needs it there too
    // (a failed uid lookup never lets anything through).
    let answer = get_with(&app, good(Method::GET, "/healthz")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = get_with(
        &app,
        good(Method::GET, "/healthz").extension(tcp_peer(None)),
    )
    .await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let answer = get_with(
        &app,
        good(Method::GET, "/healthz")
            .header(header::AUTHORIZATION, "Bearer s3cret-key")
            .extension(tcp_peer(None)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

/// Security test 7: with a key configured, every TCP request needs it, even from our own uid
/// (a same-uid relay such as ssh -L or socat makes any caller look like us); `/healthz` is the
/// one exception. The Unix socket, whose peer is checked by the kernel, needs no key.
#[tokio::test]
async fn with_a_key_every_tcp_request_needs_it() {
    let app = test_app(checks(Some("s3cret-key")));
    let answer = get_with(&app, good(Method::GET, "/v1/ping")).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        answer.text().contains("every TCP request"),
        "{}",
        answer.text()
    );
    let answer = get_with(
        &app,
        good(Method::GET, "/v1/ping").header(header::AUTHORIZATION, "Bearer s3cret-key"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = get_with(
        &app,
        good(Method::GET, "/v1/ping").extension(unix_peer(Some(US))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

/// Proxy headers, the ones reverse proxies and relays add, are refused on every transport.
#[tokio::test]
async fn every_proxy_header_is_refused() {
    let app = test_app(checks(None));
    for name in [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "via",
    ] {
        for peer in [tcp_peer(Some(US)), unix_peer(Some(US))] {
            let request = good(Method::GET, "/v1/ping")
                .header(name, "127.0.0.1")
                .extension(peer);
            get_with(&app, request)
                .await
                .assert_error(StatusCode::FORBIDDEN, "forbidden_proxy");
        }
    }
}

#[test]
fn bearer_comparison() {
    let key = SecretString::from("k3y".to_owned());
    let check = |value: &'static str| bearer_matches(&HeaderValue::from_static(value), &key);
    assert!(check("Bearer k3y"));
    assert!(check("bearer k3y"));
    assert!(!check("Bearer k3"));
    assert!(!check("Bearer k3yy"));
    assert!(!check("Bearerk3y"));
    assert!(!check("Token k3y"));
    assert!(!check(""));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = test_app(checks(None));
    get_with(&app, good(Method::GET, "/v1/nothing"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    get_with(&app, good(Method::GET, "/nothing"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    get_with(&app, good(Method::DELETE, "/v1/ping"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    get_with(&app, good(Method::GET, "/v1/echo"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let app = test_app(checks(None));
    let big = "a".repeat(20 * 1024);
    let answer = get_with(&app, good(Method::GET, "/v1/ping").header("x-big", big)).await;
    answer.assert_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    );
    let fits = "a".repeat(8 * 1024);
    assert_eq!(
        get_with(&app, good(Method::GET, "/v1/ping").header("x-big", fits))
            .await
            .status,
        StatusCode::OK
    );
}

fn post_json(body: impl Into<Body>) -> HttpRequest<Body> {
    good(Method::POST, "/v1/echo")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn bodies_must_be_json() {
    let app = test_app(checks(None));
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
    ] {
        let request = good(Method::POST, "/v1/echo")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from("password=hunter2"))
            .unwrap();
        send(&app, request)
            .await
            .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
        // Even with an empty body: a cross-site form post never reaches a handler.
        let request = good(Method::POST, "/v1/echo")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::empty())
            .unwrap();
        send(&app, request)
            .await
            .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    let request = good(Method::POST, "/v1/echo")
        .body(Body::from("{}"))
        .unwrap();
    send(&app, request)
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    // No body and no content type: an empty object.
    let answer = send(
        &app,
        good(Method::POST, "/v1/echo").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["has_password"], false);
    let answer = send(
        &app,
        post_json(r#"{"password":"pw","flag":true,"name":"n","attributes":{"a":"b"}}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json(),
        json!({ "has_password": true, "flag": true, "name": "n", "attributes": { "a": "b" } })
    );
    let request = good(Method::POST, "/v1/echo")
        .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&app, request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn large_bodies_get_413() {
    let app = test_app(checks(None));
    let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(17 * 1024));
    // Declared length and streamed body alike.
    let request = good(Method::POST, "/v1/echo")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    send(&app, request)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    send(&app, post_json(big))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let fits = format!(r#"{{"password":"{}"}}"#, "a".repeat(8 * 1024));
    assert_eq!(send(&app, post_json(fits)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_json_names_the_field_and_never_repeats_a_secret() {
    let app = test_app(checks(None));
    let secret = "hunter2-Very-Secret";
    let cases = [
        (format!(r#"{{"password": "{secret}""#), "body"),
        (format!(r#"{{"password": "{secret}", }}"#), "body"),
        (
            format!(r#"{{"password": 12, "x": "{secret}"}}"#),
            "password",
        ),
        (format!(r#"{{"flag": "{secret}"}}"#), "flag"),
        (format!(r#"{{"name": ["{secret}"]}}"#), "name"),
        (
            format!(r#"{{"attributes": {{"a": 1}}, "b": "{secret}"}}"#),
            "attributes",
        ),
        (format!(r#"["{secret}"]"#), "body"),
        (format!(r#""{secret}""#), "body"),
        (format!(r#"{{"passw0rd": "{secret}"}}"#), "passw0rd"),
        (format!(r#"{{"{secret} ": 1}}"#), "body"),
        (format!("{{\"password\": \"{secret}\u{0}\"}}"), "body"),
    ];
    for (body, field) in cases {
        let answer = send(&app, post_json(body.clone())).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "bad_input");
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{body} → {message}"
        );
        assert!(!answer.text().contains("hunter2"), "{body} → {message}");
    }
}

#[test]
fn token_query() {
    let parse = |query: &str| parse_token_query(Some(query));
    let query = parse("").unwrap();
    assert!(matches!(query.kind, TokenKind::Access));
    assert_eq!(query.min_ttl, None);
    assert!(parse_token_query(None).is_ok());
    let query = parse("kind=id&min_ttl=300").unwrap();
    assert!(matches!(query.kind, TokenKind::Id));
    assert_eq!(query.min_ttl, Some(Duration::from_secs(300)));
    assert!(parse("min_ttl=86400").is_ok());
    for (bad, field) in [
        ("kind=refresh", "kind"),
        ("kind=", "kind"),
        ("min_ttl=-1", "min_ttl"),
        ("min_ttl=1.5", "min_ttl"),
        ("min_ttl=86401", "min_ttl"),
        ("min_ttl=99999999999999999999999", "min_ttl"),
        ("kind=id&kind=access", "kind"),
        ("access_token=eyJabc", "query"),
        ("token=eyJabc", "query"),
        ("kind=id&password=x", "query"),
    ] {
        let error = parse(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad} must be refused"));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(
            error.message.starts_with(&format!("{field}:")),
            "{bad}: {}",
            error.message
        );
        assert!(!error.message.contains("eyJ"), "{}", error.message);
    }
}

#[test]
fn accept_negotiation() {
    let wants = |accept: Option<&'static str>| {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        }
        wants_plain_text(&headers)
    };
    assert!(!wants(None));
    assert!(wants(Some("text/plain")));
    assert!(wants(Some("text/plain; charset=utf-8")));
    assert!(wants(Some("Text/Plain, application/json")));
    assert!(!wants(Some("application/json, text/plain")));
    assert!(!wants(Some("*/*")));
    assert!(!wants(Some("application/json")));
}

#[test]
fn logged_paths_hide_login_ids_and_odd_input() {
    assert_eq!(
        logged_path("/v1/profiles/dev/token"),
        "/v1/profiles/dev/token"
    );
    assert_eq!(logged_path("/v1/logins/abc123"), "/v1/logins/{login_id}");
    assert_eq!(
        logged_path("/v1/profiles/%2e%2e/token"),
        "{unprintable path}"
    );
    assert_eq!(logged_path("/v1/profiles/a b"), "{unprintable path}");
    assert_eq!(
        logged_path(&format!("/{}", "a".repeat(300))),
        "{unprintable path}"
    );
}

#[test]
fn profile_and_login_id_validation() {
    let profile = |raw: &str| profile_name(Ok(Path(raw.to_owned())));
    assert_eq!(profile("dev").unwrap().as_str(), "dev");
    assert!(profile(&"a".repeat(64)).is_ok());
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a\0b",
        "é",
        &"a".repeat(65),
        "a b",
        "%2F",
    ] {
        let error = profile(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad:?} must be refused"));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(error.message.starts_with("profile:"));
        assert!(
            bad.len() < 3 || !error.message.contains(bad),
            "{}",
            error.message
        );
    }
    let login = |raw: &str| login_id(Ok(Path(raw.to_owned())));
    assert!(login("AbC-12_x").is_ok());
    for bad in ["", "a.b", "a/b", &"a".repeat(129)] {
        assert_eq!(login(bad).err().unwrap().code(), "bad_input");
    }
}

// ---------------------------------------------------------------------------------------------
// Real sockets: the accept loop of `serve_app`

/// A server on real sockets running a small app whose `/v1/slow` waits for `release`.
struct TestServer {
    tcp: SocketAddr,
    unix: PathBuf,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    release: Arc<Notify>,
    entered: Arc<Notify>,
    dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(options: ServerOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let unix = dir.path().join("run").join("cogbroker.sock");
        let listeners =
            listen::bind_addresses(Some("127.0.0.1:0".parse().unwrap()), Some(&unix)).unwrap();
        let tcp = listeners.tcp_addr().unwrap();
        let checks = Checks {
            api_key: None,
            tcp_port: Some(tcp.port()),
            our_uid: listen::our_uid(),
            header_limit: options.header_limit,
        };
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let (slow_release, slow_entered) = (Arc::clone(&release), Arc::clone(&entered));
        let routes = Router::new()
            .route(
                "/healthz",
                get(|| async { axum::Json(json!({ "status": "ok" })) }),
            )
            .route(
                "/v1/ping",
                get(|| async { axum::Json(json!({ "pong": true })) }),
            )
            .route(
                "/v1/slow",
                get(move || async move {
                    slow_entered.notify_one();
                    slow_release.notified().await;
                    axum::Json(json!({ "slow": true }))
                }),
            );
        let app = App::new(routes, checks);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve_app(listeners, app, &options, shutdown).await }
        });
        Self {
            tcp,
            unix,
            shutdown,
            task,
            release,
            entered,
            dir,
        }
    }
}

/// One HTTP/1 request over `stream` with hyper's client.
async fn http_over<S>(stream: S, request: HttpRequest<Full<Bytes>>) -> Answer
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn client_request(host: &str, path: &str) -> HttpRequest<Full<Bytes>> {
    HttpRequest::get(path)
        .header(header::HOST, host)
        .header(REQUEST_HEADER, "1")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn real_tcp_checks_host_and_finds_our_uid() {
    let server = TestServer::start(ServerOptions::default()).await;
    let port = server.tcp.port();
    for (host, status) in [
        (format!("127.0.0.1:{port}"), StatusCode::OK),
        (format!("localhost:{port}"), StatusCode::OK),
        (format!("evil.example:{port}"), StatusCode::FORBIDDEN),
        (
            format!("127.0.0.1:{}", port.wrapping_add(1)),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let stream = tokio::net::TcpStream::connect(server.tcp).await.unwrap();
        let answer = http_over(stream, client_request(&host, "/v1/ping")).await;
        // 200 proves the uid lookup through /proc/net/tcp found our uid for this connection.
        assert_eq!(answer.status, status, "{host}: {}", answer.text());
        answer.assert_common_headers();
    }
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn real_unix_socket_serves_us_via_so_peercred() {
    let server = TestServer::start(ServerOptions::default()).await;
    let stream = tokio::net::UnixStream::connect(&server.unix).await.unwrap();
    let answer = http_over(stream, client_request("localhost", "/v1/ping")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json(), json!({ "pong": true }));
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
    assert!(
        !server.unix.exists(),
        "the socket file is removed at shutdown"
    );
}

#[tokio::test]
async fn real_tcp_refuses_a_70_kb_header_with_431() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mut stream = tokio::net::TcpStream::connect(server.tcp).await.unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Big: {}\r\n\r\n",
        server.tcp.port(),
        "a".repeat(70 * 1024)
    );
    // The server may stop reading (and close) before all of it is written.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn slowloris_is_cut_off_at_the_header_timeout() {
    let options = ServerOptions {
        header_read_timeout: Duration::from_secs(10),
        ..ServerOptions::default()
    };
    let server = TestServer::start(options).await;
    let started = tokio::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(server.tcp).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let server = TestServer::start(ServerOptions::default()).await;
    let stream = tokio::net::TcpStream::connect(server.tcp).await.unwrap();
    let host = format!("127.0.0.1:{}", server.tcp.port());
    let in_flight = tokio::spawn(http_over(stream, client_request(&host, "/v1/slow")));
    server.entered.notified().await;
    server.shutdown.cancel();
    // Wait until the listeners are gone: the socket file disappears with them.
    while server.unix.exists() {
        tokio::task::yield_now().await;
    }
    assert!(
        tokio::net::TcpStream::connect(server.tcp).await.is_err(),
        "no longer accepting"
    );
    assert!(
        !server.task.is_finished(),
        "waits for the request in flight"
    );
    server.release.notify_one();
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer
            .headers
            .get(header::CONNECTION)
            .map(|value| value.as_bytes()),
        Some(&b"close"[..])
    );
    server.task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_stuck_requests_after_the_grace_period() {
    let server = TestServer::start(ServerOptions::default()).await;
    let stream = tokio::net::UnixStream::connect(&server.unix).await.unwrap();
    let _stuck = tokio::spawn(http_over(stream, client_request("localhost", "/v1/slow")));
    server.entered.notified().await;
    let started = tokio::time::Instant::now();
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
    assert!(started.elapsed() >= SHUTDOWN_GRACE);
}

/// Runs `curl` as uid 65534 (nobody) with `setpriv`. Panics when it cannot: security test 2
/// must run (CI runs as root), not pass by skipping.
async fn curl_as_nobody(args: &[&str]) -> (i32, String) {
    assert_eq!(
        listen::our_uid(),
        0,
        "this test runs a client as uid 65534 and needs root (CI runs as root)"
    );
    for program in ["setpriv", "curl"] {
        assert!(which(program).is_some(), "this test needs `{program}`");
    }
    let output = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-sS",
            "--max-time",
            "20",
        ])
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Security test 2: another uid gets EACCES from the kernel; with the permissions loosened by
/// hand, SO_PEERCRED (and on TCP the socket table) closes its connection without a byte of
/// HTTP: curl sees an empty reply (52), a reset (56) or, when the close wins the race with its
/// connect check, "couldn't connect" (7) — never an answer (the code before this change
/// answered 403 there, curl exit 0).
#[tokio::test]
async fn another_user_is_refused_on_both_transports() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = TestServer::start(ServerOptions::default()).await;
    let socket = server.unix.to_str().unwrap().to_owned();
    let header = format!("{REQUEST_HEADER}: 1");
    // With the permissions we set, the kernel refuses the connection (EACCES: curl exit 7).
    let (code, _) = curl_as_nobody(&[
        "--unix-socket",
        &socket,
        "-H",
        &header,
        "http://localhost/v1/ping",
    ])
    .await;
    assert_eq!(code, 7, "connect() must fail for another user");

    // Loosened by hand: SO_PEERCRED still refuses, before any HTTP.
    let runtime = server.unix.parent().unwrap();
    for (path, mode) in [
        (server.dir.path(), 0o711),
        (runtime, 0o777),
        (server.unix.as_path(), 0o777),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let (code, body) = curl_as_nobody(&[
        "--unix-socket",
        &socket,
        "-H",
        &header,
        "http://localhost/healthz",
    ])
    .await;
    assert!(
        matches!(code, 7 | 52 | 56),
        "closed without a reply, got curl exit {code}: {body}"
    );
    assert_eq!(body, "");

    // TCP: the kernel's socket table names the other user; `/healthz` included.
    for path in ["/healthz", "/v1/ping"] {
        let url = format!("http://127.0.0.1:{}{path}", server.tcp.port());
        let (code, body) = curl_as_nobody(&["-H", &header, &url]).await;
        assert!(
            matches!(code, 7 | 52 | 56),
            "closed without a reply, got curl exit {code}: {body}"
        );
        assert_eq!(body, "");
    }
    // Our own requests still answer on both.
    let stream = tokio::net::UnixStream::connect(&server.unix).await.unwrap();
    let answer = http_over(stream, client_request("localhost", "/v1/ping")).await;
    assert_eq!(answer.status, StatusCode::OK);
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_kept_alive_connections_close_after_the_header_timeout() {
    let server = TestServer::start(ServerOptions::default()).await;
    let stream = tokio::net::UnixStream::connect(&server.unix).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(client_request("localhost", "/v1/ping"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
    let idle_since = tokio::time::Instant::now();
    connection.await.unwrap().unwrap();
    assert!(idle_since.elapsed() >= ServerOptions::default().header_read_timeout);
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

/// Security test 17, the other half: more headers than hyper's limit of 100 get 431.
#[tokio::test]
async fn real_tcp_refuses_more_than_100_headers_with_431() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mut stream = tokio::net::TcpStream::connect(server.tcp).await.unwrap();
    let mut head = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
        server.tcp.port()
    );
    for i in 0..120 {
        head.push_str(&format!("X-Many-{i}: {i}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

/// Security test 18 with a trickling client: one header byte every two seconds (each one
/// would reset a naive idle timer) is still cut off at the header read timeout, and not much
/// later: the timer runs from the first byte, not from the last.
#[tokio::test(start_paused = true)]
async fn a_trickling_client_is_cut_off_within_the_header_timeout() {
    let timeout = Duration::from_secs(10);
    let options = ServerOptions {
        header_read_timeout: timeout,
        ..ServerOptions::default()
    };
    let server = TestServer::start(options).await;
    let started = tokio::time::Instant::now();
    let stream = tokio::net::TcpStream::connect(server.tcp).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in head {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = read.read_to_end(&mut answer).await;
    let elapsed = started.elapsed();
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(elapsed >= timeout, "closed after {elapsed:?}");
    assert!(
        elapsed <= timeout + Duration::from_secs(3),
        "the trickle kept the connection open for {elapsed:?}"
    );
    trickle.abort();
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}
