//! `token`, `status`, `refresh`, `logout` and `profiles`: one daemon request each, printed for a
//! script (stdout carries only the requested output).

use std::io::Write as _;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use serde::Serialize;

use super::{AuditArgs, Daemon, LogoutArgs, ProfilesArgs, StatusArgs, TokenArgs, TokenFormat};
use crate::api::{LogoutRequest, ProfileStatus};
use crate::client::ClientError;
use crate::output::{human_duration, write_stdout};

/// `token <p>`.
pub(crate) async fn token(daemon: &Daemon, args: &TokenArgs) -> anyhow::Result<()> {
    let reply = daemon
        .client
        .token(&args.profile, args.kind.into(), args.min_ttl)
        .await
        .map_err(|error| error.with_login_hint(&args.profile))
        .with_context(|| format!("getting a token for {} failed", args.profile))?;
    if reply.degraded {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "cogbroker: warning: refreshing {} is failing; this token expires in {}",
            args.profile,
            human_duration(reply.expires_in)
        );
    }
    let token = reply.token.expose_secret();
    let output = zeroize::Zeroizing::new(match args.format {
        TokenFormat::Raw => format!("{token}\n"),
        TokenFormat::Header => format!("Authorization: Bearer {token}\n"),
        TokenFormat::Bearer => format!("Bearer {token}\n"),
        TokenFormat::Json => json_line(&reply)?,
    });
    write_stdout(&output)
}

/// `status [<p>]`.
pub(crate) async fn status(daemon: &Daemon, args: &StatusArgs) -> anyhow::Result<()> {
    let profiles = match &args.profile {
        Some(profile) => {
            let reply = daemon
                .client
                .status(profile)
                .await
                .with_context(|| format!("reading the status of {profile} failed"))?;
            if args.json {
                return write_stdout(&json_line(&reply)?);
            }
            vec![reply]
        }
        None => {
            let reply = daemon
                .client
                .profiles()
                .await
                .context("reading the profiles' status failed")?;
            if args.json {
                return write_stdout(&json_line(&reply)?);
            }
            reply.profiles
        }
    };
    write_stdout(&status_table(&profiles))
}

/// `refresh <p>`.
pub(crate) async fn refresh(daemon: &Daemon, profile: &str) -> anyhow::Result<()> {
    let reply = daemon
        .client
        .refresh(profile)
        .await
        .map_err(|error| error.with_login_hint(profile))
        .with_context(|| format!("refreshing {profile} failed"))?;
    let expires = reply
        .expires_in
        .map(|seconds| format!(", token valid for {}", human_duration(seconds)))
        .unwrap_or_default();
    write_stdout(&format!("{profile}: refreshed{expires}\n"))
}

/// `logout <p> [--forget-device]`.
pub(crate) async fn logout(daemon: &Daemon, args: &LogoutArgs) -> anyhow::Result<()> {
    let body = LogoutRequest {
        forget_device: args.forget_device,
    };
    daemon
        .client
        .logout(&args.profile, &body)
        .await
        .with_context(|| format!("logging {} out failed", args.profile))?;
    let device = if args.forget_device {
        " (device forgotten)"
    } else {
        ""
    };
    write_stdout(&format!("{}: logged out{device}\n", args.profile))
}

/// What `profiles --json` prints when the daemon is not running: the configured names only.
#[derive(Serialize)]
struct ConfiguredProfiles {
    profiles: Vec<ConfiguredProfile>,
}

#[derive(Serialize)]
struct ConfiguredProfile {
    name: String,
}

/// `profiles`: from the daemon, or from the configuration when the daemon is not running.
pub(crate) async fn profiles(daemon: &Daemon, args: &ProfilesArgs) -> anyhow::Result<()> {
    let names: Vec<String> = match daemon.client.profiles().await {
        Ok(reply) => {
            if args.json {
                return write_stdout(&json_line(&reply)?);
            }
            reply.profiles.into_iter().map(|p| p.name).collect()
        }
        Err(ClientError::Unreachable { .. }) if daemon.config.is_some() => {
            let config = daemon.config.as_ref().context("checked above")?;
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "cogbroker: the daemon is not running; listing the profiles of {}",
                config.path.display()
            );
            let names: Vec<String> = config.profiles.keys().map(ToString::to_string).collect();
            if args.json {
                let listed = ConfiguredProfiles {
                    profiles: names
                        .into_iter()
                        .map(|name| ConfiguredProfile { name })
                        .collect(),
                };
                return write_stdout(&json_line(&listed)?);
            }
            names
        }
        Err(error) => return Err(anyhow::Error::new(error).context("listing the profiles failed")),
    };
    let mut output = String::new();
    for name in names {
        output.push_str(&name);
        output.push('\n');
    }
    write_stdout(&output)
}

/// `audit [P]`: one line per hand-out, oldest first: time, profile, kind, transport, uid,
/// pid, executable, and the processes that ran it.
pub(crate) async fn audit(daemon: &Daemon, args: &AuditArgs) -> anyhow::Result<()> {
    let reply = daemon
        .client
        .audit(args.profile.as_deref())
        .await
        .context("reading the audit ring failed")?;
    if args.json {
        return write_stdout(&json_line(&reply)?);
    }
    let mut output = String::new();
    for entry in &reply.entries {
        let show = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
        let parent: String = entry
            .parents
            .iter()
            .enumerate()
            .map(|(generation, process)| {
                format!(
                    "{}{} (pid {})",
                    if generation == 0 {
                        "  run by "
                    } else {
                        " ← "
                    },
                    process.exe.as_deref().unwrap_or("(executable unknown)"),
                    process.pid
                )
            })
            .collect();
        output.push_str(&format!(
            "{}  {}  {}  {}  uid={}  pid={}  {}{parent}\n",
            entry.at,
            entry.profile,
            entry.kind.as_str(),
            entry.transport,
            show(entry.uid.map(|uid| uid.to_string())),
            show(entry.pid.map(|pid| pid.to_string())),
            entry.exe.as_deref().unwrap_or("(executable unknown)"),
        ));
    }
    write_stdout(&output)
}

/// One compact JSON line (the token reply holds the token: the caller zeroizes it).
fn json_line(value: &impl Serialize) -> anyhow::Result<String> {
    let mut line = serde_json::to_string(value).context("writing the reply as JSON failed")?;
    line.push('\n');
    Ok(line)
}

fn status_table(profiles: &[ProfileStatus]) -> String {
    const HEADERS: [&str; 6] = [
        "PROFILE",
        "STATE",
        "USERNAME",
        "EXPIRES IN",
        "STORE",
        "LAST ERROR",
    ];
    let or_dash = |text: &Option<String>| text.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 6]> = profiles
        .iter()
        .map(|profile| {
            [
                profile.name.clone(),
                profile.state.clone(),
                or_dash(&profile.username),
                profile
                    .expires_in
                    .map_or_else(|| "-".to_owned(), human_duration),
                profile.store.clone(),
                or_dash(&profile.last_error),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut output = String::new();
    let mut push_row = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        output.push_str(line.join("  ").trim_end());
        output.push('\n');
    };
    push_row(&HEADERS);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        push_row(&cells);
    }
    if rows.is_empty() {
        output.push_str("(no profiles configured)\n");
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, state: &str) -> ProfileStatus {
        ProfileStatus {
            name: name.to_owned(),
            state: state.to_owned(),
            username: None,
            expires_at: None,
            expires_in: None,
            last_refresh: None,
            last_error: None,
            login_required_reason: None,
            store: "file".to_owned(),
            device_remembered: false,
            auth_flow: "USER_SRP_AUTH".to_owned(),
            persistence_degraded: false,
            clock_skew_seconds: None,
        }
    }

    #[test]
    fn table_aligns_columns() {
        let dev = ProfileStatus {
            username: Some("alice".to_owned()),
            expires_in: Some(3500),
            ..status("dev", "fresh")
        };
        let table = status_table(&[dev, status("production", "logged_out")]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("PROFILE     STATE"), "{table}");
        assert!(
            lines[1].starts_with("dev         fresh       alice     58m20s"),
            "{table}"
        );
        assert!(lines[2].starts_with("production  logged_out  -"), "{table}");
    }
}
