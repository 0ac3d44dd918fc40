//! Upstream failures injected into the emulator and how the client classifies them.

use std::time::Duration;

use cognito_auth::client::ClientOptions;
use cognito_auth::error::{Error, ErrorClass, ErrorCode, TransportKind};
use cognito_emulator::{Fault, FaultKind};

use super::{Harness, PUBLIC_CLIENT, authenticated, seed, srp_login, user};

fn on_initiate_auth(kind: FaultKind) -> Fault {
    // More than any client would retry, so the failure surfaces whatever the retry policy.
    Fault {
        operation: Some("InitiateAuth".to_owned()),
        times: 10,
        kind,
    }
}

#[tokio::test]
async fn throttling_is_classified_throttled() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;
    let auth = harness.public();

    harness.handle.inject(on_initiate_auth(FaultKind::Throttle));
    let error = auth
        .start_login(srp_login("alice"))
        .await
        .expect_err("throttled");
    assert_eq!(error.code(), Some(&ErrorCode::TooManyRequests), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Throttled);
    // cognito-auth sends each call once; backoff and retries belong to the broker.
    assert_eq!(harness.handle.calls("InitiateAuth"), 1);

    harness.handle.clear_faults();
    authenticated(
        auth.start_login(srp_login("alice"))
            .await
            .expect("login once the throttling stops"),
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn an_html_500_is_a_transient_service_failure() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    harness
        .handle
        .inject(on_initiate_auth(FaultKind::HtmlError { status: 500 }));
    let error = harness
        .public()
        .start_login(srp_login("alice"))
        .await
        .expect_err("a 500");
    assert_eq!(error.class(), ErrorClass::Transient, "{error:?}");
    if let Error::Service(service) = &error {
        assert_eq!(service.status, 500);
    }
    harness.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;

    harness
        .handle
        .inject(on_initiate_auth(FaultKind::DropConnection));
    let error = harness
        .public()
        .start_login(srp_login("alice"))
        .await
        .expect_err("no reply");
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Transient);
    harness.shutdown().await;
}

#[tokio::test]
async fn a_reply_slower_than_the_request_timeout_is_a_transport_timeout() {
    let harness = Harness::start(&seed("", &user("alice", ""))).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let auth = harness.authenticator_with(PUBLIC_CLIENT, None, options);

    harness
        .handle
        .inject(on_initiate_auth(FaultKind::Latency { millis: 3_000 }));
    let error = auth
        .start_login(srp_login("alice"))
        .await
        .expect_err("too slow");
    match &error {
        Error::Transport { kind, .. } => assert_eq!(*kind, TransportKind::Timeout),
        other => panic!("expected a transport timeout, got {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::Transient);
    harness.shutdown().await;
}
