//! The CLI's HTTP/1 client to the daemon: one short connection over the Unix socket (the
//! default) or loopback TCP, always sending `X-Cogbroker-Request: 1`. It speaks the types of
//! [`crate::api`]: one typed method per endpoint, no JSON read or built by hand.

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
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use crate::api::{
    AnswerBody, AwsCredentialsResponse, AwsGrant, AwsGrantRequest, AwsGrantRevoked, Cancelled,
    ErrorBody, Health, LoggedOut, LoginOutcome, LoginRequest, LogoutRequest, ProfileList,
    ProfileStatus, REQUEST_HEADER, RefreshRequest, TokenKind, TokenResponse, path,
};

/// How to start the daemon, appended to every "not reachable" message.
pub const START_HINT: &str =
    "start it with `cogbroker serve` or `systemctl --user start cogbroker`";

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
        /// The request field a `bad_input` answer names.
        field: Option<String>,
        retry_after: Option<u64>,
        hint: String,
    },
    /// The daemon accepted the connection but did not answer in time.
    #[error("the cogbroker daemon at {target} did not answer within {seconds} s")]
    Timeout { target: String, seconds: u64 },
    /// The HTTP exchange failed half-way.
    #[error("talking to the cogbroker daemon at {target} failed: {reason}")]
    Http { target: String, reason: String },
    /// What answers at the daemon's address does not run as us (or cannot be shown to): another
    /// user may be squatting the port or the socket path. Nothing was sent to it.
    #[error(
        "refusing to talk to {target}: {owner}, and cogbroker talks only to a daemon running as \
         you (uid {ours}). Another user may be squatting the daemon's address; nothing was sent \
         (no password, code or API key). Stop that program, or give cogbroker another [daemon] \
         socket or listen address"
    )]
    Impostor {
        target: String,
        /// "it is served by uid N" or why the owner could not be found.
        owner: String,
        ours: u32,
    },
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

    /// Whether the daemon refused the request for lacking `field` (a `bad_input` naming it).
    pub fn is_missing_field(&self, name: &str) -> bool {
        matches!(self, Self::Api { code, field: Some(field), .. } if code == "bad_input" && field == name)
    }
}

/// A reply from the daemon.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// A connection opened before the client needed it (the CLI's "is the daemon up?" probe):
/// the first request uses it, if it is still fresh, instead of connecting again.
#[derive(Debug)]
pub enum Connected {
    /// To the Unix socket.
    Unix(std::os::unix::net::UnixStream),
    /// To the TCP listener.
    Tcp(std::net::TcpStream),
}

impl Connected {
    /// Connects to `target` now (blocking, bounded), or `None` if nothing accepts there.
    pub fn now(target: &Target) -> Option<Self> {
        match target {
            Target::Unix(path) => std::os::unix::net::UnixStream::connect(path)
                .ok()
                .map(Self::Unix),
            Target::Tcp(addr) => std::net::TcpStream::connect_timeout(addr, Duration::from_secs(1))
                .ok()
                .map(Self::Tcp),
        }
    }
}

/// How long a probe's connection may wait for its first request: far below the daemon's idle
/// timeout, so it is never closed under us (a `login` prompting for a password connects anew).
const PROBE_REUSE: Duration = Duration::from_millis(500);

/// The daemon's client. Cheap to build; each request opens one connection (the first may use
/// the probe's, see [`DaemonClient::with_connection`]).
pub struct DaemonClient {
    target: Target,
    api_key: Option<SecretString>,
    first: std::sync::Mutex<Option<(Connected, tokio::time::Instant)>>,
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
        Self {
            target,
            api_key,
            first: std::sync::Mutex::new(None),
        }
    }

    /// Lets the first request use `connection`, opened just now to this client's target. The
    /// daemon's identity is still verified on it before a byte is sent.
    pub fn with_connection(self, connection: Option<Connected>) -> Self {
        *self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            connection.map(|connection| (connection, tokio::time::Instant::now()));
        self
    }

    /// The probe's connection, once, if it is fresh and usable by the runtime.
    fn take_first(&self) -> Option<Connected> {
        let (connection, opened) = self
            .first
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        (opened.elapsed() < PROBE_REUSE).then_some(connection)
    }

    /// Where this client connects.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get(path::HEALTH).await
    }

    /// `GET /v1/profiles`.
    pub async fn profiles(&self) -> Result<ProfileList, ClientError> {
        self.get(path::PROFILES).await
    }

    /// `GET /v1/audit[?profile=P]`.
    pub async fn audit(&self, profile: Option<&str>) -> Result<crate::api::AuditList, ClientError> {
        self.get(&path::audit(profile)).await
    }

    /// `GET /v1/profiles/{p}`.
    pub async fn status(&self, profile: &str) -> Result<ProfileStatus, ClientError> {
        self.get(&path::profile(profile)).await
    }

    /// `GET /v1/profiles/{p}/token` (a `min_ttl` over a day asks for a day, see
    /// [`path::token`]).
    pub async fn token(
        &self,
        profile: &str,
        kind: TokenKind,
        min_ttl: Option<Duration>,
    ) -> Result<TokenResponse, ClientError> {
        self.get(&path::token(profile, kind, min_ttl)).await
    }

    /// `GET /v1/profiles/{p}/aws-credentials` (as an API call, with `X-Cogbroker-Request`).
    pub async fn aws_credentials(
        &self,
        profile: &str,
        min_ttl: Option<Duration>,
    ) -> Result<AwsCredentialsResponse, ClientError> {
        let mut path = path::aws_credentials(profile);
        if let Some(min_ttl) = min_ttl {
            let seconds = min_ttl.as_secs().min(crate::api::MAX_MIN_TTL.as_secs());
            path.push_str(&format!("?min_ttl={seconds}"));
        }
        self.get(&path).await
    }

    /// `POST /v1/profiles/{p}/aws-grants`: a bearer for one `exec --aws` child.
    pub async fn aws_grant(&self, profile: &str) -> Result<AwsGrant, ClientError> {
        self.post(&path::aws_grants(profile), &AwsGrantRequest {})
            .await
    }

    /// `DELETE /v1/profiles/{p}/aws-grants/{id}`.
    pub async fn aws_revoke(
        &self,
        profile: &str,
        grant_id: &str,
    ) -> Result<AwsGrantRevoked, ClientError> {
        let reply = self
            .send(Method::DELETE, &path::aws_grant(profile, grant_id), None)
            .await?;
        self.decode(reply)
    }

    /// `POST /v1/profiles/{p}/login`.
    pub async fn login(
        &self,
        profile: &str,
        body: &LoginRequest,
    ) -> Result<LoginOutcome, ClientError> {
        self.post(&path::login(profile), body).await
    }

    /// `POST /v1/logins/{id}`: answers the pending challenge.
    pub async fn answer(
        &self,
        login_id: &str,
        body: &AnswerBody,
    ) -> Result<LoginOutcome, ClientError> {
        self.post(&path::pending_login(login_id), body).await
    }

    /// `DELETE /v1/logins/{id}`.
    pub async fn cancel(&self, login_id: &str) -> Result<Cancelled, ClientError> {
        let reply = self
            .send(Method::DELETE, &path::pending_login(login_id), None)
            .await?;
        self.decode(reply)
    }

    /// `POST /v1/profiles/{p}/refresh`.
    pub async fn refresh(&self, profile: &str) -> Result<ProfileStatus, ClientError> {
        self.post(&path::refresh(profile), &RefreshRequest {}).await
    }

    /// `POST /v1/profiles/{p}/logout`.
    pub async fn logout(
        &self,
        profile: &str,
        body: &LogoutRequest,
    ) -> Result<LoggedOut, ClientError> {
        self.post(&path::logout(profile), body).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let reply = self.send(Method::GET, path, None).await?;
        self.decode(reply)
    }

    /// `POST` with a JSON body. The body may carry a password or a code: the serialized bytes
    /// are zeroized once sent (the body's own secrets are zeroized when it is dropped).
    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes =
            Zeroizing::new(serde_json::to_vec(body).map_err(|error| ClientError::Http {
                target: self.target.to_string(),
                reason: format!("the request body could not be written: {error}"),
            })?);
        let reply = self.send(Method::POST, path, Some(bytes)).await?;
        self.decode(reply)
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
        let first = self.take_first();
        let reply = match &self.target {
            Target::Unix(socket) => {
                let stream = match first.and_then(tokio_unix) {
                    Some(stream) => stream,
                    None => connect_with_timeout(tokio::net::UnixStream::connect(socket))
                        .await
                        .map_err(unreachable)?,
                };
                self.verify_unix(&stream)?;
                self.exchange(stream, "localhost".to_owned(), method, path, body)
                    .await?
            }
            Target::Tcp(addr) => {
                let stream = match first.and_then(tokio_tcp) {
                    Some(stream) => stream,
                    None => connect_with_timeout(tokio::net::TcpStream::connect(addr))
                        .await
                        .map_err(unreachable)?,
                };
                self.verify_tcp(&stream).await?;
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

    /// The Unix socket's other end must run as us (`SO_PEERCRED`), before a byte is sent.
    fn verify_unix(&self, stream: &tokio::net::UnixStream) -> Result<(), ClientError> {
        let ours = crate::listen::our_uid();
        let owner = match stream.peer_cred() {
            Ok(cred) if cred.uid() == ours => return Ok(()),
            Ok(cred) => format!("it is served by uid {}", cred.uid()),
            Err(error) => format!("its owner cannot be read (SO_PEERCRED: {error})"),
        };
        Err(self.impostor(owner, ours))
    }

    /// The TCP listener that accepted us must be ours, from the kernel's socket table, before a
    /// byte is sent (Linux; elsewhere the table is not readable and TCP is not checked).
    async fn verify_tcp(&self, stream: &tokio::net::TcpStream) -> Result<(), ClientError> {
        if !cfg!(target_os = "linux") {
            return Ok(());
        }
        let ours = crate::listen::our_uid();
        let (server, client) = match (stream.peer_addr(), stream.local_addr()) {
            (Ok(server), Ok(client)) => (server, client),
            (Err(error), _) | (_, Err(error)) => {
                return Err(self.impostor(
                    format!("the connection's addresses cannot be read ({error})"),
                    ours,
                ));
            }
        };
        let lookup =
            tokio::task::spawn_blocking(move || crate::listen::tcp_server_owners(server, client))
                .await;
        let owner = match lookup {
            Ok(Ok(owners)) if !owners.is_empty() && owners.iter().all(|&uid| uid == ours) => {
                return Ok(());
            }
            Ok(Ok(owners)) => match owners.iter().find(|&&uid| uid != ours) {
                Some(uid) => format!("it is served by uid {uid}"),
                None => "the kernel's socket table does not show who serves it".to_owned(),
            },
            Ok(Err(error)) => format!("the kernel's socket table cannot be read ({error})"),
            Err(error) => format!("the socket-table lookup failed ({error})"),
        };
        Err(self.impostor(owner, ours))
    }

    fn impostor(&self, owner: String, ours: u32) -> ClientError {
        ClientError::Impostor {
            target: self.target.to_string(),
            owner,
            ours,
        }
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

    /// The typed success, or the daemon's error as [`ClientError::Api`]. Decoding errors name
    /// the position only: serde's messages may quote the reply, which may hold a token.
    fn decode<T: DeserializeOwned>(&self, reply: Reply) -> Result<T, ClientError> {
        if reply.status.is_success() {
            return serde_json::from_slice(&reply.body).map_err(|error| ClientError::Http {
                target: self.target.to_string(),
                reason: format!(
                    "the reply is not the JSON this version expects (line {} column {})",
                    error.line(),
                    error.column()
                ),
            });
        }
        let parsed = serde_json::from_slice::<ErrorBody>(&reply.body).ok();
        let (code, message, field) = match parsed {
            Some(body) => (body.error, body.message, body.field),
            None => (
                format!("http_{}", reply.status.as_u16()),
                format!(
                    "the daemon answered {} {}",
                    reply.status.as_u16(),
                    reply.status.canonical_reason().unwrap_or("")
                ),
                None,
            ),
        };
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
            field,
            retry_after: reply.retry_after,
            hint,
        })
    }
}

/// A probe's Unix connection for the runtime (`None` if it is the wrong kind or cannot be
/// registered: the caller then connects anew).
fn tokio_unix(connection: Connected) -> Option<tokio::net::UnixStream> {
    let Connected::Unix(stream) = connection else {
        return None;
    };
    stream.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(stream).ok()
}

/// A probe's TCP connection for the runtime, as [`tokio_unix`].
fn tokio_tcp(connection: Connected) -> Option<tokio::net::TcpStream> {
    let Connected::Tcp(stream) = connection else {
        return None;
    };
    stream.set_nonblocking(true).ok()?;
    tokio::net::TcpStream::from_std(stream).ok()
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
mod tests;
