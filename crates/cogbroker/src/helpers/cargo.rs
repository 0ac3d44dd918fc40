//! cargo's credential-provider protocol v1 (integrations.md B.5): the provider says hello
//! (`{"v":[1]}`), then answers one JSON line per request line until stdin closes. cargo starts
//! the first element of `credential-provider` with `--cargo-plugin` and passes the rest in each
//! request's `args`. After an `Err` reply the provider must still exit 0, or cargo drops the
//! message.

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{Credential, ProtocolError, short};

/// The first line a provider writes.
pub const HELLO: &str = "{\"v\":[1]}\n";

/// What one request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A token for `operation` (`read`, `publish`, `yank`, `unyank`, `owners`, ...).
    Get {
        /// The operation.
        operation: String,
    },
    /// `cargo login`.
    Login,
    /// `cargo logout`.
    Logout,
    /// A kind this provider does not know.
    Other(String),
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What it asks.
    pub kind: Kind,
    /// `registry.index-url`.
    pub index_url: String,
    /// `registry.name`, when the registry has one.
    pub registry_name: Option<String>,
    /// `args`: the rest of `credential-provider` after its first element.
    pub args: Vec<String>,
}

/// Parses one request line.
pub fn parse_request(line: &str) -> Result<Request, ProtocolError> {
    let value: Value = serde_json::from_str(line).map_err(|error| {
        ProtocolError::new(format!("cargo's request is not a JSON object ({error})"))
    })?;
    match value.get("v").and_then(Value::as_u64) {
        Some(1) => {}
        Some(other) => {
            return Err(ProtocolError::new(format!(
                "cargo asked for credential protocol version {other}; cogbroker speaks version 1"
            )));
        }
        None => return Err(ProtocolError::new("cargo's request has no version `v`")),
    }
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let registry = value.get("registry");
    let index_url = text(registry.and_then(|r| r.get("index-url")))
        .ok_or_else(|| ProtocolError::new("cargo's request has no `registry.index-url`"))?;
    let registry_name = text(registry.and_then(|r| r.get("name")));
    let args = match value.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ProtocolError::new("cargo's request has a non-string in `args`"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ProtocolError::new(
                "cargo's request has `args` that is not a list",
            ));
        }
    };
    let kind = match text(value.get("kind")).as_deref() {
        Some("get") => Kind::Get {
            operation: text(value.get("operation"))
                .ok_or_else(|| ProtocolError::new("cargo's `get` request has no `operation`"))?,
        },
        Some("login") => Kind::Login,
        Some("logout") => Kind::Logout,
        Some(other) => Kind::Other(short(other)),
        None => return Err(ProtocolError::new("cargo's request has no `kind`")),
    };
    Ok(Request {
        kind,
        index_url,
        registry_name,
        args,
    })
}

/// The `get` answer: `Bearer <token>` (cargo sends it verbatim as `Authorization`), cached
/// until the token expires, the same token for every operation.
pub fn get_reply(credential: &Credential) -> Zeroizing<String> {
    let value = json!({"Ok": {
        "kind": "get",
        "token": format!("Bearer {}", credential.secret()),
        "cache": "expires",
        "expiration": credential.expires_unix,
        "operation_independent": true,
    }});
    Zeroizing::new(format!("{value}\n"))
}

/// An error kind cargo understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not a registry of ours: cargo tries the next provider.
    UrlNotSupported,
    /// No credential: cargo tries the next provider.
    NotFound,
    /// Not something this provider does: cargo tries the next provider.
    OperationNotSupported,
    /// A failure to show the user.
    Other,
}

/// An `Err` answer (`message` only for [`ErrorKind::Other`]).
pub fn error_reply(kind: ErrorKind, message: Option<&str>) -> String {
    let value = match kind {
        ErrorKind::UrlNotSupported => json!({"Err": {"kind": "url-not-supported"}}),
        ErrorKind::NotFound => json!({"Err": {"kind": "not-found"}}),
        ErrorKind::OperationNotSupported => json!({"Err": {"kind": "operation-not-supported"}}),
        ErrorKind::Other => {
            json!({"Err": {"kind": "other", "message": message.unwrap_or("failed")}})
        }
    };
    format!("{value}\n")
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn requests_as_cargo_sends_them() {
        let read = parse_request(r#"{"v":1,"registry":{"index-url":"sparse+http://127.0.0.1:1/","name":"corp","headers":["WWW-Authenticate: Cargo login_url=x"]},"kind":"get","operation":"read","args":["cargo-credential","--profile","dev"]}"#).unwrap();
        assert_eq!(
            read,
            Request {
                kind: Kind::Get {
                    operation: "read".to_owned()
                },
                index_url: "sparse+http://127.0.0.1:1/".to_owned(),
                registry_name: Some("corp".to_owned()),
                args: vec![
                    "cargo-credential".to_owned(),
                    "--profile".to_owned(),
                    "dev".to_owned()
                ],
            }
        );
        let publish = parse_request(r#"{"v":1,"registry":{"index-url":"https://r/"},"kind":"get","operation":"publish","name":"c","vers":"1.0.0","cksum":"ab","args":[]}"#).unwrap();
        assert_eq!(
            publish.kind,
            Kind::Get {
                operation: "publish".to_owned()
            }
        );
        assert_eq!(publish.registry_name, None);
        let login = parse_request(
            r#"{"v":1,"registry":{"index-url":"https://r/"},"kind":"login","token":"t","args":[]}"#,
        )
        .unwrap();
        assert_eq!(login.kind, Kind::Login);
        let logout =
            parse_request(r#"{"v":1,"registry":{"index-url":"https://r/"},"kind":"logout"}"#)
                .unwrap();
        assert_eq!(logout.kind, Kind::Logout);
        let future =
            parse_request(r#"{"v":1,"registry":{"index-url":"https://r/"},"kind":"rotate"}"#)
                .unwrap();
        assert_eq!(future.kind, Kind::Other("rotate".to_owned()));
    }

    #[test]
    fn malformed_requests_are_named() {
        let error = |line: &str| parse_request(line).unwrap_err().0;
        assert!(error("hello").contains("not a JSON object"));
        assert!(error(r#"{"registry":{}}"#).contains("no version"));
        assert!(error(r#"{"v":2}"#).contains("version 2"));
        assert!(error(r#"{"v":1,"kind":"get"}"#).contains("registry.index-url"));
        assert!(
            error(r#"{"v":1,"registry":{"index-url":"x"},"kind":"get"}"#)
                .contains("no `operation`")
        );
        assert!(
            error(
                r#"{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"read","args":"x"}"#
            )
            .contains("not a list")
        );
        assert!(error(r#"{"v":1,"registry":{"index-url":"x"}}"#).contains("no `kind`"));
    }

    #[test]
    fn golden_replies() {
        let credential = Credential {
            token: SecretString::from("eyJ.a.b".to_owned()),
            expires_unix: 1_767_000_000,
            expires_rfc3339: String::new(),
        };
        assert_eq!(
            &*get_reply(&credential),
            "{\"Ok\":{\"kind\":\"get\",\"token\":\"Bearer eyJ.a.b\",\"cache\":\"expires\",\"expiration\":1767000000,\"operation_independent\":true}}\n"
        );
        assert_eq!(
            error_reply(ErrorKind::UrlNotSupported, None),
            "{\"Err\":{\"kind\":\"url-not-supported\"}}\n"
        );
        assert_eq!(
            error_reply(ErrorKind::NotFound, None),
            "{\"Err\":{\"kind\":\"not-found\"}}\n"
        );
        assert_eq!(
            error_reply(ErrorKind::OperationNotSupported, None),
            "{\"Err\":{\"kind\":\"operation-not-supported\"}}\n"
        );
        assert_eq!(
            error_reply(ErrorKind::Other, Some("run `cogbroker login dev`")),
            "{\"Err\":{\"kind\":\"other\",\"message\":\"run `cogbroker login dev`\"}}\n"
        );
        assert_eq!(HELLO, "{\"v\":[1]}\n");
    }
}
