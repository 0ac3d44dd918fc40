//! What the helper tests share: a seeded emulator and daemon with a logged-in profile, a token
//! verifier built from the emulator's JWKS (the way a real resource server checks a Cognito
//! token), and a small threaded HTTP/1.1 server, plain or TLS with a fresh self-signed
//! certificate, that the real clients talk to.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use cogbroker_e2e::daemon::{DaemonProcess, EmulatorHost, ProfileSpec, Sandbox, expect_code};
use cogbroker_e2e::workspace_binary;
use cognito_auth::tokens::{Expectation, Jwks, TokenUse};

pub(super) const POOL: &str = "us-east-1_E2eHelp";
pub(super) const CLIENT: &str = "helper-client";
pub(super) const USER: &str = "alice";
pub(super) const PASSWORD: &str = "Helper-Passw0rd!";
/// Long enough that no background refresh happens during a test, short enough that "minted
/// seconds ago" (max(5 s, 10 %)) is 6 s.
pub(super) const TOKEN_TTL: u64 = 60;

/// An emulator, a daemon and a profile `dev` (logged in) and `idle` (never logged in).
pub(super) struct World {
    pub(super) emulator: EmulatorHost,
    pub(super) sandbox: Sandbox,
    pub(super) daemon: DaemonProcess,
    pub(super) verifier: Arc<Verifier>,
}

impl World {
    /// `dev_extra`: extra TOML lines for profile `dev` (e.g. its `hosts`).
    pub(super) fn start(dev_extra: &str, idle_extra: &str) -> anyhow::Result<Self> {
        let seed = format!(
            "[[pools]]\nid = \"{POOL}\"\n\n[[pools.clients]]\nid = \"{CLIENT}\"\naccess_token_ttl = {TOKEN_TTL}\nid_token_ttl = {TOKEN_TTL}\n\n[[pools.users]]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nstatus = \"CONFIRMED\"\n\n[[pools.users]]\nusername = \"ivy\"\npassword = \"{PASSWORD}\"\nstatus = \"CONFIRMED\"\n"
        );
        let emulator = EmulatorHost::start(&seed)?;
        let mut dev = ProfileSpec::new("dev", POOL, CLIENT, USER);
        dev.extra = dev_extra.to_owned();
        let mut idle = ProfileSpec::new("idle", POOL, CLIENT, "ivy");
        idle.extra = idle_extra.to_owned();
        let sandbox = Sandbox::new(&emulator.endpoint, &[dev, idle])?;
        let clock_file = sandbox.dir.path().join("daemon-clock");
        std::fs::write(&clock_file, "0")?;
        let daemon = sandbox.serve(&[(
            "COGBROKER_TEST_CLOCK_FILE",
            clock_file.to_str().context("a UTF-8 sandbox path")?,
        )])?;
        sandbox.login_stdin("dev", PASSWORD)?;
        let jwks = Jwks::from_json(&emulator.handle.jwks_json(POOL)).context("the pool's JWKS")?;
        let issuer = emulator.handle.issuer(POOL).context("the pool's issuer")?;
        let verifier = Arc::new(Verifier {
            jwks,
            issuer,
            revoked: Mutex::new(HashSet::new()),
        });
        Ok(Self {
            emulator,
            sandbox,
            daemon,
            verifier,
        })
    }

    /// `cogbroker <args>` against this sandbox, `stdin` fed, output collected.
    pub(super) fn cli(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
        self.sandbox.cli(args, stdin)
    }

    /// The token `cogbroker token dev --kind KIND` prints.
    pub(super) fn token(&self, kind: &str) -> anyhow::Result<String> {
        let output = self.cli(&["token", "dev", "--kind", kind], None)?;
        expect_code(&output, 0)?;
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    /// The executables the audit names among the processes that ran `profile`'s consumers
    /// (`cogbroker audit P --json`), canonical paths as the daemon read them.
    pub(super) fn audit_parents(&self, profile: &str) -> anyhow::Result<Vec<String>> {
        let output = self.cli(&["audit", profile, "--json"], None)?;
        expect_code(&output, 0)?;
        let reply: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        Ok(reply["entries"]
            .as_array()
            .context("the audit reply has no entries")?
            .iter()
            .filter_map(|entry| entry["parents"].as_array())
            .flatten()
            .filter_map(|parent| parent["exe"].as_str().map(str::to_owned))
            .collect())
    }

    /// Moves the daemon's clock `seconds` ahead of the system's (in total, not added up), through
    /// its debug-build test clock; the file is replaced by a rename so no reading sees half.
    pub(super) fn set_daemon_clock_ahead(&self, seconds: u64) -> anyhow::Result<()> {
        let dir = self.sandbox.dir.path();
        let staged = dir.join("daemon-clock.new");
        std::fs::write(&staged, seconds.to_string())?;
        std::fs::rename(&staged, dir.join("daemon-clock"))?;
        Ok(())
    }

    /// Every call the emulator answered so far (a refresh is one).
    pub(super) fn upstream_calls(&self) -> u64 {
        self.emulator.total_calls()
    }

    /// A directory `bin/` in the sandbox holding `cogbroker` (a link to the built binary) and
    /// `docker-credential-cogbroker` (another), for clients that find helpers on PATH.
    pub(super) fn bin_dir(&self) -> anyhow::Result<PathBuf> {
        let bin = self.sandbox.dir.path().join("bin");
        if !bin.exists() {
            std::fs::create_dir_all(&bin)?;
            let binary = workspace_binary("cogbroker")?;
            std::os::unix::fs::symlink(&binary, bin.join("cogbroker"))?;
            std::os::unix::fs::symlink(&binary, bin.join("docker-credential-cogbroker"))?;
        }
        Ok(bin)
    }

    /// PATH with [`World::bin_dir`] first.
    pub(super) fn path_env(&self) -> anyhow::Result<String> {
        Ok(format!(
            "{}:{}",
            self.bin_dir()?.display(),
            std::env::var("PATH").unwrap_or_default()
        ))
    }

    /// A command for a real client with a clean home: no user config can interfere, and
    /// `cogbroker` finds this sandbox through COGBROKER_CONFIG.
    pub(super) fn client(&self, program: &str, home: &Path) -> anyhow::Result<Command> {
        std::fs::create_dir_all(home)?;
        let mut command = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("COGBROKER_")
                || key.starts_with("GIT_")
                || key.starts_with("CARGO")
                || key.starts_with("KUBE")
                || key.starts_with("DOCKER")
                || key.starts_with("RUST")
            {
                command.env_remove(key);
            }
        }
        command
            .env("HOME", home)
            .env("PATH", self.path_env()?)
            .env("COGBROKER_CONFIG", &self.sandbox.config_path)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_RUNTIME_DIR", self.sandbox.dir.path().join("xdg-run"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("NO_PROXY", "*")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy");
        Ok(command)
    }
}

/// Checks a bearer token the way a resource server does: an RS256 signature by the pool's key,
/// the issuer, the client, `token_use`, not expired, and not on the test's revoked list.
pub(super) struct Verifier {
    jwks: Jwks,
    issuer: String,
    revoked: Mutex<HashSet<String>>,
}

impl Verifier {
    /// Whether `jwt` is a valid token of `token_use` for this pool and client.
    pub(super) fn accepts(&self, jwt: &str, token_use: TokenUse) -> bool {
        if self
            .revoked
            .lock()
            .is_ok_and(|revoked| revoked.contains(jwt))
        {
            return false;
        }
        let expectation = Expectation {
            issuer: self.issuer.clone(),
            client_id: CLIENT.to_owned(),
            token_use,
        };
        self.jwks
            .verify(jwt, &expectation, SystemTime::now())
            .is_ok()
    }

    /// From now on `jwt` is refused (as a server that revoked it would).
    pub(super) fn revoke(&self, jwt: &str) {
        if let Ok(mut revoked) = self.revoked.lock() {
            revoked.insert(jwt.to_owned());
        }
    }
}

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) method: String,
    /// Path and query.
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The token of `Authorization: Bearer <t>`.
    pub(super) fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    /// The user and password of `Authorization: Basic <b64>`.
    pub(super) fn basic(&self) -> Option<(String, String)> {
        let encoded = self.header("authorization")?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

/// A response to write.
#[derive(Debug, Clone)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Response {
    pub(super) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.into(),
        }
    }

    pub(super) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    pub(super) fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A TLS identity: a self-signed certificate for 127.0.0.1 and localhost.
pub(super) struct Tls {
    pub(super) config: Arc<rustls::ServerConfig>,
    /// The certificate as PEM (what a client is told to trust).
    pub(super) pem: String,
}

impl Tls {
    pub(super) fn self_signed() -> anyhow::Result<Self> {
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .context("generate a certificate")?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .context("a TLS server config")?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk)?);
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        Ok(Self {
            config: Arc::new(config),
            pem,
        })
    }
}

/// A loopback HTTP/1.1 server: one thread per connection, one request per connection
/// (`Connection: close`). Every request is recorded.
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub(super) log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    pub(super) fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (stopping, requests) = (Arc::clone(&stop), Arc::clone(&log));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (handler, requests, tls) =
                    (Arc::clone(&handler), Arc::clone(&requests), tls.clone());
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, tls, &*handler, &requests);
                });
            }
        });
        Ok(Self { addr, stop, log })
    }

    /// Every request so far.
    pub(super) fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
) -> anyhow::Result<()> {
    match tls {
        None => exchange(stream, handler, log),
        Some(config) => {
            let connection = rustls::ServerConnection::new(config)?;
            let mut tls_stream = rustls::StreamOwned::new(connection, stream);
            exchange(&mut tls_stream, handler, log)?;
            tls_stream.conn.send_close_notify();
            let _ = tls_stream.flush();
            Ok(())
        }
    }
}

fn exchange(
    mut stream: impl Read + Write,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
) -> anyhow::Result<()> {
    let request = {
        let mut reader = BufReader::new(&mut stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (Some(method), Some(target)) = (words.next(), words.next()) else {
            bail!("not an HTTP request line: {line:?}");
        };
        let (method, target) = (method.to_owned(), target.to_owned());
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((key, value)) = trimmed.split_once(':') {
                headers.push((key.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        Request {
            method,
            target,
            headers,
            body,
        }
    };
    if let Ok(mut log) = log.lock() {
        log.push(request.clone());
    }
    let response = handler(&request);
    let mut head = format!("HTTP/1.1 {} X\r\n", response.status);
    for (key, value) in &response.headers {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()?;
    Ok(())
}

/// Runs `command`, feeding `stdin`, and collects its output.
pub(super) fn run(command: Command, stdin: Option<&str>) -> anyhow::Result<Output> {
    cogbroker_e2e::daemon::run_with_stdin(command, stdin)
}

/// stdout and stderr of a run, for assertion messages.
pub(super) fn shown(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
