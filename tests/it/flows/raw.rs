//! Raw JSON 1.1 requests to the emulator, for what the typed client must never send: tampered
//! signatures, malformed timestamps, replayed sessions.

use serde_json::{Value, json};

use super::Harness;

/// A decoded reply: the HTTP status and the JSON body (`Value::Null` when it is not JSON).
#[derive(Debug)]
pub(super) struct RawReply {
    pub(super) status: u16,
    pub(super) body: Value,
}

impl RawReply {
    /// The `__type` of an error reply.
    pub(super) fn error_type(&self) -> &str {
        self.body["__type"].as_str().unwrap_or_default()
    }

    pub(super) fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// A challenge parameter of a successful reply.
    pub(super) fn parameter(&self, name: &str) -> String {
        self.body["ChallengeParameters"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no challenge parameter {name} in {}", self.body))
            .to_owned()
    }

    pub(super) fn session(&self) -> Option<String> {
        self.body["Session"].as_str().map(str::to_owned)
    }

    pub(super) fn has_tokens(&self) -> bool {
        self.body["AuthenticationResult"]["AccessToken"].is_string()
    }
}

impl Harness {
    /// POSTs `body` as the Cognito operation `operation`.
    pub(super) async fn raw(&self, operation: &str, body: Value) -> RawReply {
        let response = reqwest::Client::new()
            .post(self.endpoint.clone())
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "X-Amz-Target",
                format!("AWSCognitoIdentityProviderService.{operation}"),
            )
            .body(body.to_string())
            .send()
            .await
            .expect("the emulator answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a readable body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        RawReply { status, body }
    }

    /// InitiateAuth with USER_PASSWORD_AUTH for a public client.
    pub(super) async fn raw_password_auth(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> RawReply {
        self.raw(
            "InitiateAuth",
            json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": { "USERNAME": username, "PASSWORD": password },
            }),
        )
        .await
    }
}
