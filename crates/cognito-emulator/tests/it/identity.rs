//! Identity pools (GetId, GetCredentialsForIdentity, GetOpenIdToken) and STS
//! (AssumeRoleWithWebIdentity, GetCallerIdentity) over real HTTP.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cognito_emulator::Fault;
use serde_json::{Value, json};

use crate::support::*;

const IDENTITY_POOL: &str = "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f";
const BASIC_POOL: &str = "us-east-1:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
const ROLE: &str = "arn:aws:iam::123456789012:role/CognitoAuth";
const PROVIDER: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_Test1";

const IDENTITY_SEED: &str = r#"
[[pools]]
id = "us-east-1_Test1"

[[pools.clients]]
id = "app"
id_token_ttl = 900

[[pools.clients]]
id = "other-app"

[[pools.users]]
username = "alice"
password = "Passw0rd!"

[[pools.users]]
username = "bob"
password = "Passw0rd!"

[[identity_pools]]
id = "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f"
user_pool = "us-east-1_Test1"
client_id = "app"
credentials_ttl = 1200
roles = { authenticated = "arn:aws:iam::123456789012:role/CognitoAuth" }

[[identity_pools]]
id = "us-east-1:9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
user_pool = "us-east-1_Test1"
client_id = "app"
roles = { authenticated = "arn:aws:iam::123456789012:role/CognitoAuth" }
allow_basic_flow = true
"#;

/// One identity-pool call: HTTP status and body.
async fn identity(env: &Env, operation: &str, body: Value) -> (u16, Value) {
    let response = env
        .http
        .post(env.url("/"))
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            format!("AWSCognitoIdentityService.{operation}"),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// One STS call: HTTP status and XML body.
async fn sts(env: &Env, params: &[(&str, &str)], headers: &[(&str, String)]) -> (u16, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut request = env
        .http
        .post(env.url("/"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The text of the first `<name>` element.
fn tag(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].to_owned())
}

async fn id_token(env: &Env, client: &str, user: &str) -> String {
    let answer = env
        .password_login(client, user, PASSWORD)
        .await
        .expect("signed in");
    tokens(&answer)["IdToken"]
        .as_str()
        .expect("IdToken")
        .to_owned()
}

fn logins(token: &str) -> Value {
    json!({ PROVIDER: token })
}

fn sigv4(akid: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={akid}/20261202/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000"
    )
}

async fn caller(env: &Env, akid: &str, token: &str) -> (u16, String) {
    sts(
        env,
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        &[
            ("authorization", sigv4(akid)),
            ("x-amz-security-token", token.to_owned()),
        ],
    )
    .await
}

#[tokio::test]
async fn enhanced_flow_gives_stable_identities_and_expiring_credentials() {
    let env = start(IDENTITY_SEED).await;
    let token = id_token(&env, "app", "alice").await;
    let (status, first) = identity(
        &env,
        "GetId",
        json!({ "IdentityPoolId": IDENTITY_POOL, "Logins": logins(&token) }),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let identity_id = first["IdentityId"].as_str().expect("IdentityId").to_owned();
    assert!(
        identity_id.starts_with("us-east-1:") && identity_id.len() == 46,
        "{identity_id}"
    );
    let again = id_token(&env, "app", "alice").await;
    let (_, second) = identity(
        &env,
        "GetId",
        json!({ "IdentityPoolId": IDENTITY_POOL, "Logins": logins(&again) }),
    )
    .await;
    assert_eq!(
        second["IdentityId"],
        identity_id.as_str(),
        "one identity per sub"
    );
    assert_eq!(
        env.handle.identity_id(IDENTITY_POOL, "alice").as_deref(),
        Some(identity_id.as_str())
    );
    assert_eq!(env.handle.identity_id(IDENTITY_POOL, "bob"), None);
    assert_eq!(env.handle.identity_id(BASIC_POOL, "alice"), None);
    let bob = id_token(&env, "app", "bob").await;
    let (_, other) = identity(
        &env,
        "GetId",
        json!({ "IdentityPoolId": IDENTITY_POOL, "Logins": logins(&bob) }),
    )
    .await;
    assert_ne!(other["IdentityId"], identity_id.as_str());

    let before = env.now();
    let (status, answer) = identity(
        &env,
        "GetCredentialsForIdentity",
        json!({ "IdentityId": identity_id, "Logins": logins(&token) }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["IdentityId"], identity_id.as_str());
    let credentials = &answer["Credentials"];
    let akid = credentials["AccessKeyId"].as_str().expect("AccessKeyId");
    assert!(akid.starts_with("ASIA") && akid.len() == 20);
    assert_eq!(
        credentials["SecretKey"].as_str().expect("SecretKey").len(),
        40
    );
    let session = credentials["SessionToken"].as_str().expect("SessionToken");
    let expiration = credentials["Expiration"].as_i64().expect("epoch seconds");
    assert!(
        (before + 1200..=env.now() + 1200).contains(&expiration),
        "{expiration}"
    );

    let (status, xml) = caller(&env, akid, session).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        tag(&xml, "Arn").as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/CognitoAuth/CognitoIdentityCredentials")
    );
    assert_eq!(tag(&xml, "Account").as_deref(), Some("123456789012"));

    let (status, xml) = caller(&env, "ASIAAAAAAAAAAAAAAAAA", session).await;
    assert_eq!(
        (status, tag(&xml, "Code").as_deref()),
        (403, Some("InvalidClientTokenId"))
    );
    let (status, xml) = caller(&env, akid, "not-the-session-token").await;
    assert_eq!(
        (status, tag(&xml, "Code").as_deref()),
        (403, Some("InvalidClientTokenId"))
    );
    let (status, xml) = sts(&env, &[("Action", "GetCallerIdentity")], &[]).await;
    assert_eq!(
        (status, tag(&xml, "Code").as_deref()),
        (403, Some("MissingAuthenticationToken"))
    );
    env.handle.advance_clock(1200);
    let (status, xml) = caller(&env, akid, session).await;
    assert_eq!(
        (status, tag(&xml, "Code").as_deref()),
        (400, Some("ExpiredToken"))
    );
}

#[tokio::test]
async fn get_id_verifies_the_id_token() {
    let env = start(IDENTITY_SEED).await;
    let token = id_token(&env, "app", "alice").await;
    let get_id = |logins: Value| json!({ "IdentityPoolId": IDENTITY_POOL, "Logins": logins });

    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged_claims = claims(&token);
    forged_claims["sub"] = json!("someone-else");
    parts[1] = URL_SAFE_NO_PAD.encode(forged_claims.to_string());
    let forged = parts.join(".");
    let access = env
        .password_login("app", "alice", PASSWORD)
        .await
        .expect("signed in");
    let access = tokens(&access)["AccessToken"]
        .as_str()
        .expect("access")
        .to_owned();
    let foreign_audience = id_token(&env, "other-app", "alice").await;

    for (logins, why) in [
        (
            logins(&forged),
            "Not a valid OpenId Connect identity token.",
        ),
        (
            logins(&access),
            "Not a valid OpenId Connect identity token.",
        ),
        (logins(&foreign_audience), "Incorrect token audience."),
        (
            json!({ "accounts.google.com": token }),
            "Token is not from a supported provider",
        ),
        (json!({}), "Unauthenticated access is not supported"),
    ] {
        let (status, body) = identity(&env, "GetId", get_id(logins)).await;
        assert_eq!(
            (status, body["__type"].as_str()),
            (403, Some("NotAuthorizedException")),
            "{why}: {body}"
        );
        assert!(
            body["message"].as_str().expect("message").contains(why),
            "{body}"
        );
    }
    let (status, body) = identity(&env, "GetId", json!({ "IdentityPoolId": "us-east-1:00000000-0000-4000-8000-000000000000", "Logins": logins(&token) })).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );

    let (_, ok) = identity(&env, "GetId", get_id(logins(&token))).await;
    let identity_id = ok["IdentityId"].as_str().expect("IdentityId");
    let bob = id_token(&env, "app", "bob").await;
    let (status, body) = identity(
        &env,
        "GetCredentialsForIdentity",
        json!({ "IdentityId": identity_id, "Logins": logins(&bob) }),
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("NotAuthorizedException")),
        "another user's token: {body}"
    );
    let (status, body) = identity(&env, "GetCredentialsForIdentity", json!({ "IdentityId": "us-east-1:00000000-0000-4000-8000-000000000000", "Logins": logins(&token) })).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );

    env.handle.advance_clock(900);
    let (status, body) = identity(&env, "GetId", get_id(logins(&token))).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("NotAuthorizedException"))
    );
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("Token expired"),
        "{body}"
    );
}

#[tokio::test]
async fn basic_flow_through_sts() {
    let env = start(IDENTITY_SEED).await;
    let token = id_token(&env, "app", "alice").await;
    let (_, enhanced_id) = identity(
        &env,
        "GetId",
        json!({ "IdentityPoolId": IDENTITY_POOL, "Logins": logins(&token) }),
    )
    .await;
    let (status, body) = identity(
        &env,
        "GetOpenIdToken",
        json!({ "IdentityId": enhanced_id["IdentityId"], "Logins": logins(&token) }),
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("InvalidParameterException")),
        "basic flow is off: {body}"
    );

    let (_, answer) = identity(
        &env,
        "GetId",
        json!({ "IdentityPoolId": BASIC_POOL, "Logins": logins(&token) }),
    )
    .await;
    let identity_id = answer["IdentityId"]
        .as_str()
        .expect("IdentityId")
        .to_owned();
    let (status, answer) = identity(
        &env,
        "GetOpenIdToken",
        json!({ "IdentityId": identity_id, "Logins": logins(&token) }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let open_id = answer["Token"].as_str().expect("Token").to_owned();
    let c = claims(&open_id);
    assert_eq!(
        (c["sub"].as_str(), c["aud"].as_str()),
        (Some(identity_id.as_str()), Some(BASIC_POOL))
    );
    assert_eq!(c["iss"], "https://cognito-identity.amazonaws.com");

    let assume = |role: &str, token: &str| {
        vec![
            ("Action".to_owned(), "AssumeRoleWithWebIdentity".to_owned()),
            ("Version".to_owned(), "2011-06-15".to_owned()),
            ("RoleArn".to_owned(), role.to_owned()),
            ("RoleSessionName".to_owned(), "cli-session".to_owned()),
            ("WebIdentityToken".to_owned(), token.to_owned()),
            ("DurationSeconds".to_owned(), "900".to_owned()),
        ]
    };
    let call = |params: Vec<(String, String)>| {
        let env = &env;
        async move {
            let borrowed: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            sts(env, &borrowed, &[]).await
        }
    };
    let (status, xml) = call(assume(ROLE, &open_id)).await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(
        tag(&xml, "SubjectFromWebIdentityToken").as_deref(),
        Some(identity_id.as_str())
    );
    assert_eq!(tag(&xml, "Audience").as_deref(), Some(BASIC_POOL));
    assert_eq!(
        tag(&xml, "Arn").as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/CognitoAuth/cli-session")
    );
    let expiration = tag(&xml, "Expiration").expect("Expiration");
    assert!(
        expiration.ends_with('Z') && expiration.len() == 20,
        "{expiration}"
    );
    let akid = tag(&xml, "AccessKeyId").expect("AccessKeyId");
    let session = tag(&xml, "SessionToken").expect("SessionToken");
    let (status, who) = caller(&env, &akid, &session).await;
    assert_eq!(status, 200, "{who}");
    assert!(
        tag(&who, "UserId")
            .expect("UserId")
            .ends_with(":cli-session")
    );

    let mut forged: Vec<String> = open_id.split('.').map(str::to_owned).collect();
    forged[2] = URL_SAFE_NO_PAD.encode([0u8; 256]);
    for (params, status, code) in [
        (
            assume("arn:aws:iam::123456789012:role/Other", &open_id),
            403,
            "AccessDenied",
        ),
        (assume(ROLE, &forged.join(".")), 400, "InvalidIdentityToken"),
        (assume(ROLE, &token), 400, "InvalidIdentityToken"),
        (
            vec![("Action".to_owned(), "AssumeRoleWithWebIdentity".to_owned())],
            400,
            "ValidationError",
        ),
        (
            vec![("Action".to_owned(), "AssumeRole".to_owned())],
            400,
            "InvalidAction",
        ),
    ] {
        let (got, xml) = call(params).await;
        assert_eq!(
            (got, tag(&xml, "Code").as_deref()),
            (status, Some(code)),
            "{xml}"
        );
        assert!(xml.starts_with("<ErrorResponse"), "{xml}");
    }
    env.handle.advance_clock(600);
    let (status, xml) = call(assume(ROLE, &open_id)).await;
    assert_eq!(
        (status, tag(&xml, "Code").as_deref()),
        (400, Some("ExpiredTokenException"))
    );
}

#[tokio::test]
async fn faults_and_counters_cover_identity_and_sts() {
    let env = start(IDENTITY_SEED).await;
    let token = id_token(&env, "app", "alice").await;
    env.handle.inject(Fault::throttle("GetId"));
    let request = json!({ "IdentityPoolId": IDENTITY_POOL, "Logins": logins(&token) });
    let (status, body) = identity(&env, "GetId", request.clone()).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (429, Some("TooManyRequestsException"))
    );
    assert_eq!(identity(&env, "GetId", request).await.0, 200);
    env.handle.inject(Fault::throttle("GetCallerIdentity"));
    let (status, xml) = caller(&env, "ASIAAAAAAAAAAAAAAAAA", "x").await;
    assert_eq!(
        (status, tag(&xml, "Code").as_deref()),
        (400, Some("Throttling"))
    );
    let stats = env.handle.stats();
    assert_eq!(stats.count("GetId", "TooManyRequestsException"), 1);
    assert_eq!(stats.count("GetId", "ok"), 1);
    assert_eq!(stats.count("GetCallerIdentity", "Throttling"), 1);
}
