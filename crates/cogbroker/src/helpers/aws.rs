//! The AWS SDKs' two ways in (integrations.md B.4): `credential_process` output, and the
//! environment of an `exec --aws` child (the container credentials provider). Pure: what the
//! daemon answered in, what the consumer reads out.

use secrecy::ExposeSecret as _;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::api::{AwsCredentialsResponse, AwsGrant};

/// Where the container provider fetches credentials (a loopback `http://` URL).
pub const FULL_URI_VAR: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
/// The `Authorization` value the container provider sends, verbatim.
pub const AUTHORIZATION_TOKEN_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";

/// Variables removed from an `exec --aws` child: each would make the SDKs use other
/// credentials (keys, a profile, another container or web-identity provider) or another token.
pub const CONFLICTING_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
];

/// The `credential_process` document: one JSON object on one line, `Version` the integer 1,
/// `SessionToken` (not `Token`), `Expiration` RFC 3339 with its zone (botocore crashes on a
/// float or a naive time). Zeroized when dropped.
pub fn credential_process_output(credentials: &AwsCredentialsResponse) -> Zeroizing<String> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output<'a> {
        version: u8,
        access_key_id: &'a str,
        secret_access_key: &'a str,
        session_token: &'a str,
        expiration: &'a str,
    }
    let output = Output {
        version: 1,
        access_key_id: credentials.access_key_id.expose_secret(),
        secret_access_key: credentials.secret_access_key.expose_secret(),
        session_token: credentials.token.expose_secret(),
        expiration: &credentials.expiration,
    };
    let mut text = serde_json::to_string(&output).unwrap_or_default();
    text.push('\n');
    Zeroizing::new(text)
}

/// What an `exec --aws` child's environment gets: the URL and the grant's token.
pub fn container_env(grant: &AwsGrant) -> [(&'static str, &str); 2] {
    [
        (FULL_URI_VAR, grant.credentials_url.as_str()),
        (AUTHORIZATION_TOKEN_VAR, grant.token.expose_secret()),
    ]
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn secret(value: &str) -> SecretString {
        SecretString::from(value.to_owned())
    }

    #[test]
    fn credential_process_output_is_what_botocore_reads() {
        let credentials = AwsCredentialsResponse {
            access_key_id: secret("ASIAEXAMPLE"),
            secret_access_key: secret("secret\"key/+="),
            token: secret("session-token"),
            expiration: "2026-12-02T15:00:00Z".to_owned(),
        };
        let text = credential_process_output(&credentials);
        assert_eq!(
            text.as_str(),
            "{\"Version\":1,\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"secret\\\"key/+=\",\"SessionToken\":\"session-token\",\"Expiration\":\"2026-12-02T15:00:00Z\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(parsed["Version"].is_u64());
    }

    #[test]
    fn the_child_gets_the_url_and_the_grant() {
        let grant = AwsGrant {
            grant_id: "g".to_owned(),
            token: secret("grant-token"),
            credentials_url: "http://127.0.0.1:7467/v1/profiles/dev/aws-credentials".to_owned(),
        };
        assert_eq!(
            container_env(&grant),
            [
                (
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "http://127.0.0.1:7467/v1/profiles/dev/aws-credentials"
                ),
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "grant-token"),
            ]
        );
        assert!(!CONFLICTING_VARS.contains(&FULL_URI_VAR));
        let credentials = AwsCredentialsResponse {
            access_key_id: secret("ASIAEXAMPLE"),
            secret_access_key: secret("secret-access-key"),
            token: secret("session-token"),
            expiration: "2026-12-02T15:00:00Z".to_owned(),
        };
        let shown = format!("{grant:?} {credentials:?}");
        for value in [
            "grant-token",
            "ASIAEXAMPLE",
            "secret-access-key",
            "session-token",
        ] {
            assert!(!shown.contains(value), "{value} in {shown}");
        }
        assert!(CONFLICTING_VARS.contains(&"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
    }
}
