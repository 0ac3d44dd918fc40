//! The CLI's HTTP/1 client to the daemon: one short connection over the Unix socket (the
//! default) or loopback TCP, always sending `X-Cogbroker-Request: 1`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

/// How to start the daemon, appended to every "not reachable" message.
pub const START_HINT: &str =
    "start it with `cogbroker serve` or `systemctl --user start cogbroker`";

/// The header every `/v1` request must carry (blocks SSRF and simple cross-site requests).
pub use crate::server::REQUEST_HEADER;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longer than the daemon's own 10 s caller deadline, so the daemon's answer wins the race.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
const BODY_LIMIT: usize = 1024 * 1024;

/// Where the daemon listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(addr) => write!(f, "http://{addr}"),
        }
    }
}

impl Target {
    /// Parses a `--url` value: `http://127.0.0.1:7467`, `http://localhost:7467` or `http://[::1]:7467`.
    pub fn from_url(url: &url::Url) -> anyhow::Result<Self> {
        anyhow::ensure!(
            url.scheme() == "http",
            "--url must be an http:// loopback address, not {}",
            url.scheme()
        );
        let port = url
            .port_or_known_default()
            .context("--url needs a port, e.g. http://127.0.0.1:7467")?;
        let ip: std::net::IpAddr = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.into(),
            Some(url::Host::Ipv6(ip)) => ip.into(),
            Some(url::Host::Domain("localhost")) => std::net::Ipv4Addr::LOCALHOST.into(),
            _ => anyhow::bail!("--url must name a loopback host (127.0.0.1, localhost or [::1])"),
        };
        anyhow::ensure!(
            ip.is_loopback(),
            "--url must name a loopback host (127.0.0.1, localhost or [::1]), not {ip}"
        );
        Ok(Self::Tcp(SocketAddr::new(ip, port)))
    }
}

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No connection could be made: the daemon is not running (or not at this address).
    #[error("the cogbroker daemon is not reachable at {target} ({reason}); {START_HINT}")]
    Unreachable { target: String, reason: String },
    /// The daemon answered with an error.
    #[error("{message}{hint}")]
    Api {
        status: u16,
        code: String,
        message: String,
        retry_after: Option<u64>,
        hint: String,
    },
    /// The daemon accepted the connection but did not answer in time.
    #[error("the cogbroker daemon at {target} did not answer within {seconds} s")]
    Timeout { target: String, seconds: u64 },
    /// The HTTP exchange failed half-way.
    #[error("talking to the cogbroker daemon at {target} failed: {reason}")]
    Http { target: String, reason: String },
}

impl ClientError {
    /// Adds "run `cogbroker login <profile>`" to a `login_required` answer that does not say it.
    pub fn with_login_hint(mut self, profile: &str) -> Self {
        if let Self::Api {
            code,
            message,
            hint,
            ..
        } = &mut self
        {
            if code == "login_required" && !message.contains("cogbroker login") {
                hint.push_str(&format!("; run `cogbroker login {profile}`"));
            }
        }
        self
    }

    /// Adds what to do to a refused sign-in (`invalid_credentials`).
    pub fn with_credentials_hint(mut self, profile: &str) -> Self {
        if let Self::Api { code, hint, .. } = &mut self {
            if code == "invalid_credentials" {
                hint.push_str(&format!(
                    "; check the password (and the profile's `username`), then run \
                     `cogbroker login {profile}` again (repeated failures lock the account for a while)"
                ));
            }
        }
        self
    }

    /// The daemon's error code (`login_required`, `upstream_unavailable`, ...), if it answered.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A reply from the daemon.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// The daemon's client. Cheap to build; each request opens one connection.
pub struct DaemonClient {
    target: Target,
    api_key: Option<SecretString>,
}

impl fmt::Debug for DaemonClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaemonClient")
            .field("target", &self.target)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl DaemonClient {
    /// A client for `target`, sending `api_key` as a bearer credential when given.
    pub fn new(target: Target, api_key: Option<SecretString>) -> Self {
        Self { target, api_key }
    }

    /// Where this client connects.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// `GET path`, expecting a JSON success.
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let reply = self.send(Method::GET, path, None).await?;
        self.json_or_error(reply)
    }

    /// `POST path` with a JSON body. The body may carry a password or a code: its strings and
    /// the serialized bytes are zeroized once sent.
    pub async fn post_json(&self, path: &str, mut body: Value) -> Result<Value, ClientError> {
        let bytes = Zeroizing::new(serde_json::to_vec(&body).unwrap_or_default());
        scrub(&mut body);
        let reply = self.send(Method::POST, path, Some(bytes)).await?;
        self.json_or_error(reply)
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let reply = self.send(Method::DELETE, path, None).await?;
        self.json_or_error(reply)
    }

    /// Sends one request and reads the whole reply.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Reply, ClientError> {
        let target = self.target.to_string();
        let unreachable = |error: std::io::Error| ClientError::Unreachable {
            target: target.clone(),
            reason: io_reason(&error),
        };
        let reply = match &self.target {
            Target::Unix(socket) => {
                let stream = connect_with_timeout(tokio::net::UnixStream::connect(socket))
                    .await
                    .map_err(unreachable)?;
                self.exchange(stream, "localhost".to_owned(), method, path, body)
                    .await?
            }
            Target::Tcp(addr) => {
                let stream = connect_with_timeout(tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(unreachable)?;
                // Nagle would only delay our single small request.
                let _ = stream.set_nodelay(true);
                self.exchange(stream, addr.to_string(), method, path, body)
                    .await?
            }
        };
        reply.ok_or_else(|| ClientError::Timeout {
            target: self.target.to_string(),
            seconds: RESPONSE_TIMEOUT.as_secs(),
        })
    }

    async fn exchange<S>(
        &self,
        stream: S,
        host: String,
        method: Method,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Option<Reply>, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let http_error = |error: hyper::Error| ClientError::Http {
            target: self.target.to_string(),
            reason: error.to_string(),
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(http_error)?;
        let driver = tokio::spawn(connection);

        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host)
            .header(REQUEST_HEADER, "1")
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("cogbroker/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(key) = &self.api_key {
            let bearer = Zeroizing::new(format!("Bearer {}", key.expose_secret()));
            let mut value = HeaderValue::from_str(&bearer).map_err(|_| ClientError::Http {
                target: self.target.to_string(),
                reason: "the API key contains characters not allowed in a header".to_owned(),
            })?;
            value.set_sensitive(true);
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let payload = match body {
            Some(bytes) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                // The body may hold a password: hyper needs owned bytes, ours are zeroized on drop.
                Bytes::copy_from_slice(&bytes)
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|error| ClientError::Http {
                target: self.target.to_string(),
                reason: error.to_string(),
            })?;

        let exchange = async {
            let response = sender.send_request(request).await.map_err(http_error)?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            let body = Limited::new(response.into_body(), BODY_LIMIT)
                .collect()
                .await
                .map_err(|error| ClientError::Http {
                    target: self.target.to_string(),
                    reason: format!("reading the reply failed: {error}"),
                })?
                .to_bytes();
            Ok(Reply {
                status,
                retry_after,
                body,
            })
        };
        let outcome = tokio::time::timeout(RESPONSE_TIMEOUT, exchange).await;
        driver.abort();
        match outcome {
            Ok(reply) => reply.map(Some),
            Err(_elapsed) => Ok(None),
        }
    }

    fn json_or_error(&self, reply: Reply) -> Result<Value, ClientError> {
        let parsed: Option<Value> = serde_json::from_slice(&reply.body).ok();
        if reply.status.is_success() {
            return parsed.ok_or_else(|| ClientError::Http {
                target: self.target.to_string(),
                reason: "the reply is not JSON".to_owned(),
            });
        }
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|value| value.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let code = field("error").unwrap_or_else(|| format!("http_{}", reply.status.as_u16()));
        let message = field("message").unwrap_or_else(|| {
            format!(
                "the daemon answered {} {}",
                reply.status.as_u16(),
                reply.status.canonical_reason().unwrap_or("")
            )
        });
        let mut hint = String::new();
        // Our daemon's message already says when; a `Retry-After` it does not mention is added.
        if code == "upstream_unavailable" && !message.contains("retry in") {
            if let Some(seconds) = reply.retry_after {
                hint.push_str(&format!(" (retry in {seconds} s)"));
            }
        }
        Err(ClientError::Api {
            status: reply.status.as_u16(),
            code,
            message: message.trim_end_matches('.').to_owned(),
            retry_after: reply.retry_after,
            hint,
        })
    }
}

/// Overwrites every string in `value` (best effort: the secrets it held are gone from this copy).
pub fn scrub(value: &mut Value) {
    use zeroize::Zeroize as _;
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Percent-encodes one path segment (profile names are `[A-Za-z0-9._-]`, login ids opaque).
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

async fn connect_with_timeout<S>(
    connect: impl Future<Output = std::io::Result<S>>,
) -> std::io::Result<S> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(result) => result,
        Err(_elapsed) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}

fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no socket there".to_owned(),
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
    fn scrub_clears_nested_strings() {
        let mut value =
            serde_json::json!({"password": "hunter2", "nested": ["code", {"a": "b"}], "n": 1});
        scrub(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"password": "", "nested": ["", {"a": ""}], "n": 1})
        );
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("dev.eu-1_x"), "dev.eu-1_x");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn hints_are_added_to_their_codes_only() {
        let api = |code: &str, message: &str| ClientError::Api {
            status: 401,
            code: code.to_owned(),
            message: message.to_owned(),
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

    #[tokio::test]
    async fn missing_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let client = DaemonClient::new(Target::Unix(dir.path().join("none.sock")), None);
        let error = client.get_json("/healthz").await.unwrap_err();
        assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains("cogbroker serve"));
    }
}
