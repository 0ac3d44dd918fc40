//! `make soak` (not part of `make test`): the real daemon for a bounded time with 20-second
//! tokens, refresh-token rotation on, 50 concurrent clients (40 on the Unix socket, 10 on TCP)
//! and an upstream fault injected every few seconds (500, throttling, latency, dropped
//! connections, HTML error pages). Reports refreshes, client requests and failures, and the
//! daemon's RSS and open descriptors at start and end; fails when a client saw a failure (a
//! valid token always exists: faults are transient and the daemon refreshes ahead), when the
//! descriptors grew, or when RSS grew by more than 8 MiB.
//!
//! `COGBROKER_SOAK_SECONDS` sets the length (default 600).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use cogbroker::api::TokenKind;
use cogbroker::client::{DaemonClient, Target};
use cogbroker_e2e::daemon::{EmulatorHost, ProfileSpec, Sandbox, read_text};
use cognito_emulator::Fault;
use tokio::time::Instant;

const POOL: &str = "us-east-1_Soak";
const CLIENT: &str = "soak-rotating";
const PASSWORD: &str = "Soak-Passw0rd!";
const REFRESH: &str = "GetTokensFromRefreshToken";
const CLIENTS: usize = 50;
const TCP_CLIENTS: usize = 10;

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "{POOL}"

[[pools.clients]]
id = "{CLIENT}"
access_token_ttl = 20
id_token_ttl = 20
rotation = {{ enabled = true, grace_seconds = 10 }}

[[pools.users]]
username = "alice"
password = "{PASSWORD}"
status = "CONFIRMED"
"#
    )
}

/// VmRSS in KiB and the open descriptor count of `pid`.
fn usage(pid: i32) -> anyhow::Result<(u64, usize)> {
    let status = read_text(std::path::Path::new(&format!("/proc/{pid}/status")))?;
    let rss = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok((rss, fds))
}

/// The soak's report, on stderr (`make soak` runs with `--nocapture`).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "soak: {line}");
}

#[test]
fn soak() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("COGBROKER_SOAK_SECONDS")
        .ok()
        .map(|value| {
            value
                .parse()
                .context("COGBROKER_SOAK_SECONDS is a number of seconds")
        })
        .transpose()?
        .unwrap_or(600);
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new("dev", POOL, CLIENT, "alice")],
    )?;
    let mut daemon = sandbox.serve(&[])?;
    sandbox.login_stdin("dev", PASSWORD)?;
    let tcp = daemon.tcp.context("the daemon's TCP address")?;
    let pid = daemon.pid();
    let start = usage(pid)?;
    let refreshes_before = emulator.handle.calls(REFRESH);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let first_failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    runtime
        .block_on(async {
            let mut tasks = Vec::new();
            for index in 0..CLIENTS {
                let target = if index < TCP_CLIENTS {
                    Target::Tcp(tcp)
                } else {
                    Target::Unix(sandbox.socket.clone())
                };
                let client = DaemonClient::new(target, None);
                let (requests, failures, first) = (
                    Arc::clone(&requests),
                    Arc::clone(&failures),
                    Arc::clone(&first_failures),
                );
                tasks.push(tokio::spawn(async move {
                    // A steady load generator (about 20 requests a second per client), not a wait.
                    let mut pace = tokio::time::interval(Duration::from_millis(50));
                    while Instant::now() < deadline {
                        pace.tick().await;
                        requests.fetch_add(1, Ordering::Relaxed);
                        match client.token("dev", TokenKind::Access, None).await {
                            Ok(token) if token.expires_in > 0 => {}
                            Ok(token) => {
                                failures.fetch_add(1, Ordering::Relaxed);
                                let mut first = first.lock().unwrap();
                                if first.len() < 5 {
                                    first.push(format!(
                                        "expired token handed out: {}",
                                        token.expires_in
                                    ));
                                }
                            }
                            Err(error) => {
                                failures.fetch_add(1, Ordering::Relaxed);
                                let mut first = first.lock().unwrap();
                                if first.len() < 5 {
                                    first.push(error.to_string());
                                }
                            }
                        }
                    }
                }));
            }
            // One transient upstream fault every 7 s, cycling through the kinds.
            let faults = [
                Fault::error(REFRESH, "InternalErrorException", "soak"),
                Fault::throttle(REFRESH),
                Fault::latency(REFRESH, 1500),
                Fault::drop_connection(REFRESH),
                Fault::html_error(REFRESH, 502),
            ];
            let mut injected = 0usize;
            let mut every = tokio::time::interval(Duration::from_secs(7));
            every.tick().await;
            while Instant::now() < deadline {
                every.tick().await;
                emulator
                    .handle
                    .inject(faults[injected % faults.len()].clone());
                injected += 1;
            }
            for task in tasks {
                task.await?;
            }
            anyhow::Ok(injected)
        })
        .map(|injected| report(&format!("{injected} faults injected")))?;

    let end = usage(pid)?;
    let refreshes = emulator.handle.calls(REFRESH) - refreshes_before;
    let (requests, failures) = (
        requests.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    report(&format!(
        "{seconds} s, {CLIENTS} clients, {requests} requests, {failures} failures, \
         {refreshes} refresh calls upstream; RSS {} KiB -> {} KiB; fds {} -> {}",
        start.0, end.0, start.1, end.1
    ));
    // The daemon's STOPPING=1 must find room on the notify socket (its queue holds 10).
    daemon.drain_notifications()?;
    ensure!(daemon.terminate()?.success());
    ensure!(
        failures == 0,
        "{failures} client failures; first: {:?}",
        first_failures.lock().unwrap()
    );
    ensure!(
        refreshes >= seconds / 20,
        "the daemon kept refreshing: {refreshes}"
    );
    ensure!(
        end.1 <= start.1 + 4,
        "descriptors grew: {} -> {}",
        start.1,
        end.1
    );
    ensure!(
        end.0 <= start.0 + 8 * 1024,
        "RSS grew by more than 8 MiB: {} -> {} KiB",
        start.0,
        end.0
    );
    Ok(())
}
