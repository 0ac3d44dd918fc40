use super::*;

#[test]
fn url_targets_are_loopback_only() {
    let parse = |s: &str| Target::from_url(&url::Url::parse(s).unwrap());
    assert_eq!(
        parse("http://127.0.0.1:7467").unwrap(),
        Target::Tcp("127.0.0.1:7467".parse().unwrap())
    );
    assert_eq!(
        parse("http://localhost:9000/").unwrap(),
        Target::Tcp("127.0.0.1:9000".parse().unwrap())
    );
    assert_eq!(
        parse("http://[::1]:7467").unwrap(),
        Target::Tcp("[::1]:7467".parse().unwrap())
    );
    assert!(parse("http://10.0.0.1:7467").is_err());
    assert!(parse("https://127.0.0.1:7467").is_err());
    assert!(parse("http://example.com:7467").is_err());
}

#[test]
fn hints_are_added_to_their_codes_only() {
    let api = |code: &str, message: &str| ClientError::Api {
        status: 401,
        code: code.to_owned(),
        message: message.to_owned(),
        field: None,
        retry_after: None,
        hint: String::new(),
    };
    let shown = |error: ClientError| error.to_string();
    assert_eq!(
        shown(api("login_required", "not signed in").with_login_hint("dev")),
        "not signed in; run `cogbroker login dev`"
    );
    assert_eq!(
        shown(api("login_required", "run cogbroker login dev").with_login_hint("dev")),
        "run cogbroker login dev"
    );
    assert_eq!(shown(api("other", "x").with_login_hint("dev")), "x");
    assert!(
        shown(api("invalid_credentials", "refused").with_credentials_hint("dev"))
            .starts_with("refused; check the password")
    );
    assert_eq!(
        shown(api("login_required", "x").with_credentials_hint("dev")),
        "x"
    );
}

fn reply(status: u16, retry_after: Option<u64>, body: &str) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        retry_after,
        body: Bytes::from(body.to_owned()),
    }
}

#[test]
fn error_answers_keep_their_code_field_and_retry_after() {
    let client = DaemonClient::new(Target::Unix("/nonexistent".into()), None);
    let error = client
        .decode::<Health>(reply(
            400,
            None,
            r#"{"error":"bad_input","message":"password: a password is required.","field":"password"}"#,
        ))
        .unwrap_err();
    assert!(error.is_missing_field("password"), "{error:?}");
    assert!(!error.is_missing_field("code"));
    assert_eq!(error.to_string(), "password: a password is required");
    // The same message without the field is not taken for a missing password.
    let error = client
        .decode::<Health>(reply(
            400,
            None,
            r#"{"error":"bad_input","message":"password: a password is required"}"#,
        ))
        .unwrap_err();
    assert!(!error.is_missing_field("password"));
    let error = client
        .decode::<Health>(reply(
            503,
            Some(7),
            r#"{"error":"upstream_unavailable","message":"down"}"#,
        ))
        .unwrap_err();
    assert_eq!(error.to_string(), "down (retry in 7 s)");
    let error = client
        .decode::<Health>(reply(502, None, "<html>bad gateway</html>"))
        .unwrap_err();
    assert_eq!(error.api_code(), Some("http_502"));
}

#[test]
fn an_unexpected_success_shape_names_no_value() {
    let client = DaemonClient::new(Target::Unix("/nonexistent".into()), None);
    let error = client
        .decode::<TokenResponse>(reply(200, None, r#"{"token":"eyJ.secret.value"}"#))
        .unwrap_err();
    let shown = error.to_string();
    assert!(
        shown.contains("not the JSON this version expects"),
        "{shown}"
    );
    assert!(!shown.contains("secret"), "{shown}");
    let health = client
        .decode::<Health>(reply(200, None, r#"{"status":"ok","version":"1.2.3"}"#))
        .unwrap();
    assert_eq!(health.version, "1.2.3");
}

#[tokio::test]
async fn missing_socket_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let client = DaemonClient::new(Target::Unix(dir.path().join("none.sock")), None);
    let error = client.health().await.unwrap_err();
    assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
    assert!(error.to_string().contains("cogbroker serve"));
}

/// Serves `GET /healthz` on every accepted connection, answering with the connection's
/// ordinal (1 for the first accepted) as the version.
async fn numbered_health_server(listener: tokio::net::UnixListener) {
    let mut accepted = 0u32;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        accepted += 1;
        let ordinal = accepted;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_request| async move {
                let body = format!(r#"{{"status":"ok","version":"{ordinal}"}}"#);
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                    body,
                ))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::test]
async fn the_probes_connection_carries_the_first_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("d.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let target = Target::Unix(socket);
    // The probe connects before the server accepts anything: it is connection 1.
    let probe = Connected::now(&target);
    assert!(probe.is_some());
    tokio::spawn(numbered_health_server(listener));
    let client = DaemonClient::new(target, None).with_connection(probe);
    assert_eq!(
        client.health().await.unwrap().version,
        "1",
        "sent on the probe's connection"
    );
    assert_eq!(
        client.health().await.unwrap().version,
        "2",
        "then a new connection"
    );
}
