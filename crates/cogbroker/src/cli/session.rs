//! `token`, `status`, `refresh`, `logout` and `profiles`: one daemon request each, printed for a
//! script (stdout carries only the requested output).

use std::io::Write as _;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{Daemon, LogoutArgs, ProfilesArgs, StatusArgs, TokenArgs, TokenFormat, TokenKindArg};
use crate::client::{ClientError, segment};

/// The API's largest `min_ttl` (a day: the longest a Cognito token lives).
const MAX_MIN_TTL_SECONDS: u64 = 86_400;

/// The token request for `token <p>`.
pub(crate) fn token_path(args: &TokenArgs) -> String {
    let kind = match args.kind {
        TokenKindArg::Access => "access",
        TokenKindArg::Id => "id",
    };
    let mut path = format!("/v1/profiles/{}/token?kind={kind}", segment(&args.profile));
    if let Some(min_ttl) = args.min_ttl {
        // No Cognito token lives longer than a day, and a `min_ttl` no token can satisfy gets
        // the freshest token (design.md §8): longer asks are the API's maximum, not an error.
        let seconds = min_ttl.as_secs().min(MAX_MIN_TTL_SECONDS);
        path.push_str(&format!("&min_ttl={seconds}"));
    }
    path
}

/// `token <p>`.
pub(crate) async fn token(daemon: &Daemon, args: &TokenArgs) -> anyhow::Result<()> {
    let path = token_path(args);
    let reply = daemon
        .client
        .get_json(&path)
        .await
        .map_err(|error| error.with_login_hint(&args.profile))
        .with_context(|| format!("getting a token for {} failed", args.profile))?;
    let token = reply
        .get("token")
        .and_then(Value::as_str)
        .context("the daemon's reply has no token")?;
    if reply.get("degraded").and_then(Value::as_bool) == Some(true) {
        let left = reply.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "cogbroker: warning: refreshing {} is failing; this token expires in {}",
            args.profile,
            human_duration(left)
        );
    }
    let output = match args.format {
        TokenFormat::Raw => format!("{token}\n"),
        TokenFormat::Header => format!("Authorization: Bearer {token}\n"),
        TokenFormat::Bearer => format!("Bearer {token}\n"),
        TokenFormat::Json => format!("{reply}\n"),
    };
    write_stdout(&output)
}

/// `status [<p>]`.
pub(crate) async fn status(daemon: &Daemon, args: &StatusArgs) -> anyhow::Result<()> {
    let profiles: Vec<Value> = match &args.profile {
        Some(profile) => {
            let reply = daemon
                .client
                .get_json(&format!("/v1/profiles/{}", segment(profile)))
                .await
                .with_context(|| format!("reading the status of {profile} failed"))?;
            if args.json {
                return write_stdout(&format!("{reply}\n"));
            }
            vec![reply]
        }
        None => {
            let reply = daemon
                .client
                .get_json("/v1/profiles")
                .await
                .context("reading the profiles' status failed")?;
            if args.json {
                return write_stdout(&format!("{reply}\n"));
            }
            profile_list(&reply)
        }
    };
    write_stdout(&status_table(&profiles))
}

/// `refresh <p>`.
pub(crate) async fn refresh(daemon: &Daemon, profile: &str) -> anyhow::Result<()> {
    let reply = daemon
        .client
        .post_json(
            &format!("/v1/profiles/{}/refresh", segment(profile)),
            json!({}),
        )
        .await
        .map_err(|error| error.with_login_hint(profile))
        .with_context(|| format!("refreshing {profile} failed"))?;
    let expires = reply
        .get("expires_in")
        .and_then(Value::as_u64)
        .map(|seconds| format!(", token valid for {}", human_duration(seconds)))
        .unwrap_or_default();
    write_stdout(&format!("{profile}: refreshed{expires}\n"))
}

/// `logout <p> [--forget-device]`.
pub(crate) async fn logout(daemon: &Daemon, args: &LogoutArgs) -> anyhow::Result<()> {
    daemon
        .client
        .post_json(
            &format!("/v1/profiles/{}/logout", segment(&args.profile)),
            json!({ "forget_device": args.forget_device }),
        )
        .await
        .with_context(|| format!("logging {} out failed", args.profile))?;
    let device = if args.forget_device {
        " (device forgotten)"
    } else {
        ""
    };
    write_stdout(&format!("{}: logged out{device}\n", args.profile))
}

/// `profiles`: from the daemon, or from the configuration when the daemon is not running.
pub(crate) async fn profiles(daemon: &Daemon, args: &ProfilesArgs) -> anyhow::Result<()> {
    let reply = match daemon.client.get_json("/v1/profiles").await {
        Ok(reply) => reply,
        Err(ClientError::Unreachable { .. }) if daemon.config.is_some() => {
            let config = daemon.config.as_ref().context("checked above")?;
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(
                stderr,
                "cogbroker: the daemon is not running; listing the profiles of {}",
                config.path.display()
            );
            let names: Vec<Value> = config
                .profiles
                .keys()
                .map(|name| json!({ "name": name.to_string() }))
                .collect();
            json!({ "profiles": names })
        }
        Err(error) => return Err(anyhow::Error::new(error).context("listing the profiles failed")),
    };
    if args.json {
        return write_stdout(&format!("{reply}\n"));
    }
    let mut output = String::new();
    for profile in profile_list(&reply) {
        if let Some(name) = profile.get("name").and_then(Value::as_str) {
            output.push_str(name);
            output.push('\n');
        }
    }
    write_stdout(&output)
}

pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout failed")
}

/// `90` → `1m30s`, `3600` → `1h0m`.
pub(crate) fn human_duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, (seconds % 86_400) / 3600),
    }
}

fn profile_list(reply: &Value) -> Vec<Value> {
    reply
        .get("profiles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn status_table(profiles: &[Value]) -> String {
    const HEADERS: [&str; 6] = [
        "PROFILE",
        "STATE",
        "USERNAME",
        "EXPIRES IN",
        "STORE",
        "LAST ERROR",
    ];
    let text = |profile: &Value, key: &str| match profile.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Bool(flag)) => flag.to_string(),
        Some(Value::Number(number)) => number.to_string(),
        _ => "-".to_owned(),
    };
    let rows: Vec<[String; 6]> = profiles
        .iter()
        .map(|profile| {
            let expires_in = profile
                .get("expires_in")
                .and_then(Value::as_u64)
                .map_or_else(|| "-".to_owned(), human_duration);
            [
                text(profile, "name"),
                text(profile, "state"),
                text(profile, "username"),
                expires_in,
                text(profile, "store"),
                text(profile, "last_error"),
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

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(3600), "1h00m");
        assert_eq!(human_duration(90_000), "1d01h");
    }

    #[test]
    fn table_aligns_columns() {
        let table = status_table(&[
            json!({"name": "dev", "state": "fresh", "username": "alice", "expires_in": 3500, "store": "file"}),
            json!({"name": "production", "state": "logged_out"}),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("PROFILE     STATE"), "{table}");
        assert!(
            lines[1].starts_with("dev         fresh       alice     58m20s"),
            "{table}"
        );
        assert!(lines[2].starts_with("production  logged_out  -"), "{table}");
    }
}
