//! `cogbroker demo`: a local Cognito emulator with a demo user, a daemon on a temporary socket
//! and port (the same code as `serve`), a real SRP login through the HTTP API, and the exact
//! commands to get a token. `--once` waits for one background refresh and exits (CI runs it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};

use crate::api::{LoginOutcome, LoginRequest, TokenKind};
use crate::broker::{BrokerEvent, BrokerOptions};
use crate::client::{DaemonClient, Target};
use crate::config;
use crate::listen;
use crate::output::write_stdout;
use crate::serve::{self, Daemon, Notify};

/// The demo user's password. It only exists in the in-process emulator, so printing it is fine.
pub const DEMO_PASSWORD: &str = "Demo-Passw0rd!";
const DEMO_POOL: &str = "us-east-1_Demo1";
const DEMO_CLIENT: &str = "demo-public";
const DEMO_USER: &str = "demo";
const DEMO_PROFILE: &str = "demo";
const DEMO_IDENTITY_POOL: &str = "us-east-1:6f1f1f4e-2b1a-4c3d-9e8f-0a1b2c3d4e5f";
const PREFERRED_PORT: u16 = 7467;

/// Runs the demo (blocking until Ctrl-C, or until one refresh with `once`).
pub fn main(once: bool) -> anyhow::Result<()> {
    serve::harden_process()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime failed")?;
    runtime.block_on(run(once))
}

async fn run(once: bool) -> anyhow::Result<()> {
    // Short tokens so refreshes show up quickly: 60 s, or 20 s when only one refresh is awaited.
    let token_seconds: u64 = if once { 20 } else { 60 };
    let workdir = tempfile::Builder::new()
        .prefix("cogbroker-demo-")
        .tempdir()
        .context("creating a temporary directory failed")?;

    let seed = cognito_emulator::Seed::from_toml(&seed_toml(token_seconds))
        .context("the demo seed is invalid")?;
    let emulator =
        cognito_emulator::Emulator::start(seed, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("starting the Cognito emulator failed")?;
    let endpoint = emulator.endpoint();

    let port = if port_is_free(PREFERRED_PORT) {
        PREFERRED_PORT
    } else {
        0
    };
    let runtime_dir = workdir.path().join("run");
    let state_dir = workdir.path().join("state");
    let socket = runtime_dir.join("cogbroker.sock");
    let config_path = workdir.path().join("config.toml");
    std::fs::write(
        &config_path,
        config_toml(port, &socket, &state_dir, &endpoint),
    )
    .with_context(|| format!("writing {} failed", config_path.display()))?;

    // The demo's own settings win over COGBROKER_* variables the user may have exported.
    let env: BTreeMap<String, String> = BTreeMap::new();
    let config = config::load(&config_path, &env)?;
    serve::init_tracing(&config.daemon.log);
    let listeners = listen::bind(&config.daemon, &env)?;
    // A short tick so the demo's short tokens are refreshed promptly; otherwise production values.
    let options = BrokerOptions {
        tick_interval: Duration::from_secs(2),
        ..BrokerOptions::new()
    };
    let daemon = Daemon::start(config, listeners, options, Notify::Silent).await?;
    let outcome = demonstrate(&daemon, once, token_seconds, &endpoint, &config_path).await;
    let stopped = daemon.stop().await;
    emulator.shutdown().await;
    outcome.and(stopped)
}

async fn demonstrate(
    daemon: &Daemon,
    once: bool,
    token_seconds: u64,
    endpoint: &str,
    config_path: &Path,
) -> anyhow::Result<()> {
    let socket = daemon
        .unix_path()
        .context("the demo daemon has no Unix socket")?
        .to_path_buf();
    let tcp = daemon
        .tcp_addr()
        .context("the demo daemon has no TCP listener")?;
    let mut events = daemon.broker().subscribe();
    let unix_client = DaemonClient::new(Target::Unix(socket.clone()), None);

    let login = LoginRequest {
        password: Some(SecretString::from(DEMO_PASSWORD)),
    };
    let login = unix_client
        .login(DEMO_PROFILE, &login)
        .await
        .context("the demo login failed")?;
    if let LoginOutcome::Challenge(step) = login {
        anyhow::bail!(
            "the demo login did not complete: the emulator asked for {}",
            step.challenge
        );
    }
    let first = unix_client
        .token(DEMO_PROFILE, TokenKind::Access, None)
        .await
        .context("getting the demo token failed")?;
    let token = first.token.expose_secret();
    let aws = unix_client
        .aws_credentials(DEMO_PROFILE, None)
        .await
        .context("getting the demo AWS credentials failed")?;
    // The login itself published tokens too: only a later expiry is a refresh.
    let first_expiry = std::time::SystemTime::now() + Duration::from_secs(first.expires_in);

    let socket_text = socket.display().to_string();
    let cli = cli_command();
    let mut banner = String::new();
    let _ = writeln!(
        banner,
        "cogbroker demo: a local Cognito emulator and a daemon, all in this process\n"
    );
    let _ = writeln!(
        banner,
        "  emulator   {endpoint}  (pool {DEMO_POOL}, client {DEMO_CLIENT})"
    );
    let _ = writeln!(
        banner,
        "  user       {DEMO_USER} / {DEMO_PASSWORD}  (a fake account in the emulator)"
    );
    let _ = writeln!(banner, "  daemon     unix:{socket_text}  and  http://{tcp}");
    let _ = writeln!(banner, "  config     {}", config_path.display());
    let _ = writeln!(
        banner,
        "  login      SRP as {DEMO_USER}: access token {}… valid {token_seconds} s, refreshed in the background\n",
        token.chars().take(16).collect::<String>()
    );
    let _ = writeln!(
        banner,
        "  aws        identity pool {DEMO_IDENTITY_POOL}: key {}… until {}\n",
        aws.access_key_id
            .expose_secret()
            .chars()
            .take(8)
            .collect::<String>(),
        aws.expiration
    );
    let _ = writeln!(banner, "Get a token from another terminal:\n");
    let _ = writeln!(banner, "  {cli} --socket {socket_text} token demo");
    let _ = writeln!(
        banner,
        "  {cli} --url http://{tcp} token demo --format header"
    );
    let _ = writeln!(
        banner,
        "  curl -s --unix-socket {socket_text} -H 'X-Cogbroker-Request: 1' http://localhost/v1/profiles/demo/token"
    );
    let _ = writeln!(
        banner,
        "  curl -s -H 'X-Cogbroker-Request: 1' http://{tcp}/v1/profiles/demo/token"
    );
    let _ = writeln!(
        banner,
        "  curl -s -H 'X-Cogbroker-Request: 1' http://{tcp}/v1/profiles/demo"
    );
    let _ = writeln!(
        banner,
        "  {cli} --socket {socket_text} aws-credential-process demo     (AWS credentials, docs/aws.md)"
    );
    let _ = writeln!(
        banner,
        "  {cli} --socket {socket_text} exec demo --aws -- env\n"
    );
    let _ = writeln!(
        banner,
        "$ {cli} --socket {socket_text} token demo\n{token}\n"
    );
    write_stdout(&banner)?;

    if once {
        let wait = Duration::from_secs(token_seconds * 3 + 30);
        let expires_in = wait_for_refresh(&mut events, first_expiry, wait).await?;
        let tcp_client = DaemonClient::new(Target::Tcp(tcp), None);
        let second = tcp_client
            .token(DEMO_PROFILE, TokenKind::Access, None)
            .await
            .context("getting the refreshed token over TCP failed")?;
        let refreshed = second.token.expose_secret();
        anyhow::ensure!(
            refreshed != token,
            "the daemon still hands out the token from before the refresh"
        );
        write_stdout(&format!(
            "refreshed in the background: a new token valid {expires_in} s was served over TCP; demo done\n"
        ))?;
        return Ok(());
    }

    write_stdout("Serving until Ctrl-C; background refreshes are logged below.\n")?;
    loop {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                result.context("waiting for Ctrl-C failed")?;
                write_stdout("\nstopping\n")?;
                return Ok(());
            }
            event = events.recv() => match event {
                // The login published the first tokens too: only a later expiry is a refresh.
                Ok(BrokerEvent::TokenRefreshed { profile, expires_at })
                    if expires_at > first_expiry + Duration::from_secs(2) =>
                {
                    let left = expires_at
                        .duration_since(std::time::SystemTime::now())
                        .map_or(0, |left| left.as_secs());
                    write_stdout(&format!(
                        "{profile}: tokens refreshed in the background, new access token valid {left} s\n"
                    ))?;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    anyhow::bail!("the broker stopped publishing events");
                }
            }
        }
    }
}

/// Waits for the background refresh of the demo profile (an event, not a sleep): tokens
/// published with an expiry clearly after `first_expiry`. Returns the new token's lifetime.
async fn wait_for_refresh(
    events: &mut tokio::sync::broadcast::Receiver<BrokerEvent>,
    first_expiry: std::time::SystemTime,
    limit: Duration,
) -> anyhow::Result<u64> {
    // `expires_in` is whole seconds, so the login's own event may be up to a second later.
    let threshold = first_expiry + Duration::from_secs(2);
    let wait = async {
        loop {
            match events.recv().await {
                Ok(BrokerEvent::TokenRefreshed {
                    profile,
                    expires_at,
                }) if profile == "demo" && expires_at > threshold => {
                    let seconds = expires_at
                        .duration_since(std::time::SystemTime::now())
                        .map_or(0, |left| left.as_secs());
                    return Ok(seconds);
                }
                Ok(BrokerEvent::RefreshFailed { profile, class }) if profile == "demo" => {
                    tracing::warn!(class = ?class, "a demo refresh attempt failed; waiting for the next");
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    anyhow::bail!("the broker stopped publishing events before a refresh");
                }
            }
        }
    };
    tokio::time::timeout(limit, wait)
        .await
        .with_context(|| format!("no background refresh within {} s", limit.as_secs()))?
}

/// How to run this binary from another shell: `cogbroker` when that name on `PATH` is this very
/// binary, else its absolute path (after `make demo` it is not installed), so the printed
/// commands work verbatim from any directory.
fn cli_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "cogbroker".to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::canonicalize(dir.join("cogbroker")).is_ok_and(|found| found == exe))
    });
    if on_path {
        return "cogbroker".to_owned();
    }
    let text = exe.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn seed_toml(token_seconds: u64) -> String {
    format!(
        r#"[[pools]]
id = "{DEMO_POOL}"
device_tracking = "off"
mfa = "off"

[[pools.clients]]
id = "{DEMO_CLIENT}"
access_token_ttl = {token_seconds}
id_token_ttl = {token_seconds}
rotation = {{ enabled = true, grace_seconds = 60 }}

[[pools.users]]
username = "{DEMO_USER}"
password = "{DEMO_PASSWORD}"
status = "CONFIRMED"
email = "demo@example.com"

[[identity_pools]]
id = "{DEMO_IDENTITY_POOL}"
user_pool = "{DEMO_POOL}"
client_id = "{DEMO_CLIENT}"
credentials_ttl = 3600
roles = {{ authenticated = "arn:aws:iam::123456789012:role/DemoAuthenticated" }}
"#
    )
}

fn config_toml(port: u16, socket: &Path, state_dir: &Path, endpoint: &str) -> String {
    format!(
        r#"[daemon]
listen = "127.0.0.1:{port}"
socket = {socket}
store = "memory"
state_dir = {state_dir}
log = "info"

[profiles.demo]
region = "us-east-1"
user_pool_id = "{DEMO_POOL}"
client_id = "{DEMO_CLIENT}"
username = "{DEMO_USER}"
endpoint = "{endpoint}"
identity_pool_id = "{DEMO_IDENTITY_POOL}"
"#,
        socket = toml_string(&socket.display().to_string()),
        state_dir = toml_string(&state_dir.display().to_string()),
    )
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_files_parse() {
        cognito_emulator::Seed::from_toml(&seed_toml(20)).unwrap();
        let env: BTreeMap<String, String> = BTreeMap::new();
        let config = config::parse(
            &config_toml(
                0,
                Path::new("/tmp/x/run/cogbroker.sock"),
                Path::new("/tmp/x/state"),
                "http://127.0.0.1:9229",
            ),
            Path::new("/tmp/x/config.toml"),
            &env,
        )
        .unwrap();
        assert_eq!(config.profiles.len(), 1);
    }
}
