//! `doctor`: checks the configuration, the store backend, the socket directory and socket
//! permissions, the daemon, and per profile the Cognito endpoint's reachability and the clock
//! skew against its `Date` header. Each check says PASS, WARN or FAIL and what to do.

use std::fmt::Write as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{GlobalArgs, load_config, read_api_key, target_from_config};
use crate::api::ProfileStatus;
use crate::client::{ClientError, DaemonClient, Target};
use crate::config::{Config, ProfileConfig, SocketSetting};
use crate::output::write_stdout;
use anyhow::Context as _;

/// Skew up to this is fine (the `Date` header has one-second resolution).
const SKEW_PASS: i64 = 5;
/// Skew beyond this makes tokens look expired early or late: fail.
const SKEW_FAIL: i64 = 60;
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(5);

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug)]
struct Finding {
    verdict: Verdict,
    check: String,
    detail: String,
}

#[derive(Debug, Default)]
struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, verdict: Verdict, check: impl Into<String>, detail: impl Into<String>) {
        self.findings.push(Finding {
            verdict,
            check: check.into(),
            detail: detail.into(),
        });
    }

    fn render(&self) -> String {
        let width = self
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(0);
        let mut output = String::new();
        for finding in &self.findings {
            let label = match finding.verdict {
                Verdict::Pass => "PASS",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            let _ = writeln!(
                output,
                "{label}  {:<width$}  {}",
                finding.check, finding.detail
            );
        }
        let count = |verdict| {
            self.findings
                .iter()
                .filter(|f| f.verdict == verdict)
                .count()
        };
        let warnings = count(Verdict::Warn);
        let _ = writeln!(
            output,
            "\n{} passed, {warnings} warning{}, {} failed",
            count(Verdict::Pass),
            if warnings == 1 { "" } else { "s" },
            count(Verdict::Fail)
        );
        output
    }

    fn worst(&self) -> Verdict {
        self.findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Pass)
    }
}

/// Runs every check, prints the report, and fails (exit 1) when any check failed.
pub(crate) async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let mut report = Report::default();
    let config = check_config(global, &mut report);
    if let Some(config) = &config {
        check_store(config, &mut report).await;
        if global.socket.is_none() && global.url.is_none() {
            check_socket(config, &mut report);
        }
    }
    if let Some(socket) = &global.socket {
        check_socket_path(socket, &mut report);
    }
    let target = match (&global.url, &global.socket, &config) {
        (Some(url), _, _) => Target::from_url(url).ok(),
        (None, Some(socket), _) => Some(Target::Unix(socket.clone())),
        (None, None, Some(config)) => target_from_config(config).ok(),
        (None, None, None) => None,
    };
    let api_key = config
        .as_ref()
        .and_then(|config| read_api_key(config).ok().flatten());
    let daemon_profiles = match target {
        Some(target) => check_daemon(DaemonClient::new(target, api_key), &mut report).await,
        None => None,
    };
    if let Some(config) = &config {
        for (name, profile) in &config.profiles {
            check_profile(
                name.as_str(),
                profile,
                daemon_profiles.as_ref(),
                &mut report,
            )
            .await;
        }
    }
    write_stdout(&report.render())?;
    if report.worst() == Verdict::Fail {
        anyhow::bail!("doctor found problems (see the FAIL lines above)");
    }
    Ok(())
}

fn check_config(global: &GlobalArgs, report: &mut Report) -> Option<Config> {
    let explicit = global.config.is_some();
    match load_config(global) {
        Ok(config) => {
            if !explicit && !config.path.exists() {
                report.add(
                    Verdict::Warn,
                    "config",
                    format!(
                        "no file at {}: the defaults apply and there are no profiles (see docs/quickstart.md)",
                        config.path.display()
                    ),
                );
            } else {
                let count = config.profiles.len();
                let verdict = if count == 0 {
                    Verdict::Warn
                } else {
                    Verdict::Pass
                };
                report.add(
                    verdict,
                    "config",
                    format!("{}: valid, {count} profile(s)", config.path.display()),
                );
            }
            for warning in &config.warnings {
                report.add(Verdict::Warn, "config", warning.clone());
            }
            Some(config)
        }
        Err(error) => {
            report.add(Verdict::Fail, "config", format!("{error:#}"));
            None
        }
    }
}

async fn check_store(config: &Config, report: &mut Report) {
    let kind = config.daemon.store;
    let state_dir = config.daemon.state_dir.clone();
    let opened = tokio::task::spawn_blocking(move || crate::store::open(kind, &state_dir)).await;
    match opened {
        Ok(Ok((store, why))) => {
            let verdict = match store.kind() {
                "keyring" => Verdict::Pass,
                "file" if kind.as_str() == "file" => Verdict::Pass,
                _ => Verdict::Warn,
            };
            report.add(
                verdict,
                "store",
                format!("store = \"{}\": {why}", kind.as_str()),
            );
        }
        Ok(Err(error)) => report.add(
            Verdict::Fail,
            "store",
            format!("store = \"{}\" cannot be opened: {error:#}", kind.as_str()),
        ),
        Err(_) => report.add(Verdict::Fail, "store", "probing the store panicked"),
    }
}

fn check_socket(config: &Config, report: &mut Report) {
    match &config.daemon.socket {
        SocketSetting::Off => report.add(Verdict::Pass, "socket", "off (TCP only)"),
        SocketSetting::Path(path) => check_socket_path(path, report),
    }
}

fn check_socket_path(path: &Path, report: &mut Report) {
    let our_uid = rustix::process::geteuid().as_raw();
    if let Some(dir) = path.parent() {
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.file_type().is_symlink() => report.add(
                Verdict::Fail,
                "socket dir",
                format!(
                    "{} is a symlink; the daemon refuses it: remove it",
                    dir.display()
                ),
            ),
            Ok(meta) if meta.uid() != our_uid => report.add(
                Verdict::Fail,
                "socket dir",
                format!(
                    "{} belongs to uid {}, not to you: remove it",
                    dir.display(),
                    meta.uid()
                ),
            ),
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => report.add(
                Verdict::Fail,
                "socket dir",
                format!(
                    "{} is mode {:o}: run `chmod 700 {}`",
                    dir.display(),
                    meta.permissions().mode() & 0o777,
                    dir.display()
                ),
            ),
            Ok(_) => report.add(
                Verdict::Pass,
                "socket dir",
                format!("{} is yours and 0700", dir.display()),
            ),
            Err(_) => report.add(
                Verdict::Warn,
                "socket dir",
                format!(
                    "{} does not exist yet (the daemon creates it)",
                    dir.display()
                ),
            ),
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => report.add(
            Verdict::Fail,
            "socket",
            format!("{} exists but is not a socket: remove it", path.display()),
        ),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => report.add(
            Verdict::Fail,
            "socket",
            format!(
                "{} is mode {:o}: other users could connect; restart the daemon",
                path.display(),
                meta.permissions().mode() & 0o777
            ),
        ),
        Ok(_) => report.add(
            Verdict::Pass,
            "socket",
            format!("{} is 0600", path.display()),
        ),
        Err(_) => report.add(
            Verdict::Warn,
            "socket",
            format!(
                "{} does not exist: the daemon is not running",
                path.display()
            ),
        ),
    }
}

/// Checks the daemon answers; returns its profiles' status when it does.
async fn check_daemon(client: DaemonClient, report: &mut Report) -> Option<Vec<ProfileStatus>> {
    let target = client.target().clone();
    match client.health().await {
        Ok(health) => {
            let version = health.version;
            report.add(
                Verdict::Pass,
                "daemon",
                format!("version {version} answering on {target}"),
            );
        }
        Err(error @ ClientError::Unreachable { .. }) => {
            report.add(Verdict::Fail, "daemon", error.to_string());
            return None;
        }
        Err(error) => {
            report.add(
                Verdict::Fail,
                "daemon",
                format!("{target} answered /healthz with an error: {error}"),
            );
            return None;
        }
    }
    match client.profiles().await {
        Ok(reply) => Some(reply.profiles),
        Err(error) => {
            report.add(
                Verdict::Warn,
                "daemon",
                format!("listing the profiles failed: {error}"),
            );
            None
        }
    }
}

async fn check_profile(
    name: &str,
    profile: &ProfileConfig,
    daemon_profiles: Option<&Vec<ProfileStatus>>,
    report: &mut Report,
) {
    if let Some(status) =
        daemon_profiles.and_then(|profiles| profiles.iter().find(|p| p.name == name))
    {
        let state = status.state.as_str();
        let (verdict, advice) = match state {
            "fresh" | "stale" | "refreshing" => (Verdict::Pass, String::new()),
            "logged_out" | "login_required" => {
                (Verdict::Warn, format!(": run `cogbroker login {name}`"))
            }
            "degraded" => (
                Verdict::Warn,
                ": Cognito is failing; the cached token is still served".to_owned(),
            ),
            _ => (Verdict::Pass, String::new()),
        };
        report.add(
            verdict,
            format!("{name} session"),
            format!("{state}{advice}"),
        );
    }

    // The OAuth grants talk to the pool's domain, not the regional endpoint.
    let endpoint = match (&profile.oauth, &profile.endpoint) {
        (Some(oauth), _) => oauth.domain.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => {
            match cognito_auth::pool::regional_endpoint(&profile.region, profile.endpoint_variant) {
                Ok(url) => url,
                Err(error) => {
                    report.add(
                        Verdict::Fail,
                        format!("{name} endpoint"),
                        format!("no endpoint for region {}: {error}", profile.region),
                    );
                    return;
                }
            }
        }
    };
    match probe_endpoint(&endpoint).await {
        Ok(probe) => {
            report.add(
                Verdict::Pass,
                format!("{name} endpoint"),
                format!("{endpoint} answered HTTP {} in {} ms", probe.status, probe.elapsed.as_millis()),
            );
            match probe.skew_seconds {
                Some(skew) if skew.abs() <= SKEW_PASS => {
                    report.add(Verdict::Pass, format!("{name} clock"), format!("skew {skew:+} s against the server's Date header"));
                }
                Some(skew) => {
                    let verdict = if skew.abs() > SKEW_FAIL { Verdict::Fail } else { Verdict::Warn };
                    let direction = if skew > 0 { "behind" } else { "ahead of" };
                    report.add(
                        verdict,
                        format!("{name} clock"),
                        format!(
                            "this machine is {} s {direction} the server: enable time sync (`timedatectl set-ntp true`)",
                            skew.abs()
                        ),
                    );
                }
                None => report.add(Verdict::Warn, format!("{name} clock"), "the server sent no usable Date header"),
            }
        }
        Err(error) => report.add(
            Verdict::Fail,
            format!("{name} endpoint"),
            format!("{endpoint} is not reachable: {error:#} (check the network, a proxy, or `endpoint` in the config)"),
        ),
    }
}

#[derive(Debug)]
struct Probe {
    status: u16,
    elapsed: Duration,
    /// Server time minus local time, measured at the middle of the exchange.
    skew_seconds: Option<i64>,
}

async fn probe_endpoint(endpoint: &url::Url) -> anyhow::Result<Probe> {
    let client = reqwest::Client::builder()
        .timeout(ENDPOINT_TIMEOUT)
        .connect_timeout(ENDPOINT_TIMEOUT)
        .user_agent(concat!("cogbroker-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client failed")?;
    let sent_at = SystemTime::now();
    let started = tokio::time::Instant::now();
    let response = client.get(endpoint.clone()).send().await?;
    let elapsed = started.elapsed();
    let middle = sent_at + elapsed / 2;
    let skew_seconds = response
        .headers()
        .get(http::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| httpdate::parse_http_date(text).ok())
        .map(|server| skew(server, middle));
    Ok(Probe {
        status: response.status().as_u16(),
        elapsed,
        skew_seconds,
    })
}

/// `server - local` in whole seconds (positive: the local clock is behind).
fn skew(server: SystemTime, local: SystemTime) -> i64 {
    match server.duration_since(local) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_sign() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(skew(now + Duration::from_secs(90), now), 90);
        assert_eq!(skew(now - Duration::from_secs(90), now), -90);
    }

    #[test]
    fn report_counts_and_worst() {
        let mut report = Report::default();
        report.add(Verdict::Pass, "config", "ok");
        report.add(Verdict::Warn, "socket", "missing");
        assert_eq!(report.worst(), Verdict::Warn);
        report.add(Verdict::Fail, "daemon", "down");
        let text = report.render();
        assert!(text.contains("FAIL  daemon  down"), "{text}");
        assert!(text.ends_with("1 passed, 1 warning, 1 failed\n"), "{text}");
    }
}
