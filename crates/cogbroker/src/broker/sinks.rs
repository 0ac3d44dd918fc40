//! File sinks (design.md §14): for tools that only read a token from a file. Each of a
//! profile's `[[profiles.P.sinks]]` is rewritten whenever the profile's tokens change and
//! removed on logout, by the profile task itself (so a caller's token request returns only
//! once the files hold the new token).
//!
//! Writes are atomic: a temporary file (mode 0600, created exclusively) in the same directory,
//! written, fsynced, renamed over the sink, then the directory fsynced. A reader sees the old
//! token or the new one, never a mix. The directory is checked again before each write (ours,
//! not a symlink: [`check_sink_path`]); missing directories are created 0700.

use std::fs;

use std::time::Duration;

use anyhow::Context as _;
use cognito_auth::TokenSet;
use serde::Serialize;
use zeroize::Zeroizing;

use super::state::rfc3339;
use crate::api::TokenKind;
use crate::config::{SinkConfig, SinkFormat, check_sink_path};

/// How long an `on_change` command may run before it is killed.
const ON_CHANGE_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Serialize)]
struct JsonSink<'a> {
    profile: &'a str,
    kind: &'static str,
    token: &'a str,
    token_type: &'static str,
    expires_at: String,
}

/// The bytes of `sink` for `tokens`. `None` when the tokens lack the sink's kind (an ID token
/// from a grant that has none; config validation refuses such sinks).
pub(crate) fn render(
    sink: &SinkConfig,
    profile: &str,
    tokens: &TokenSet,
) -> Option<Zeroizing<Vec<u8>>> {
    let token = match sink.kind {
        TokenKind::Access => tokens.access_token().expose_secret(),
        TokenKind::Id => tokens.id_token()?.expose_secret(),
    };
    render_token(sink, profile, token, &rfc3339(tokens.expires_at()))
}

/// The bytes of `sink` holding `token`, which expires at `expires_at` (RFC 3339).
pub fn render_token(
    sink: &SinkConfig,
    profile: &str,
    token: &str,
    expires_at: &str,
) -> Option<Zeroizing<Vec<u8>>> {
    let host = sink.host.as_deref().unwrap_or_default();
    let text = match sink.format {
        SinkFormat::Raw => format!("{token}\n"),
        SinkFormat::Header => format!("Authorization: Bearer {token}\n"),
        SinkFormat::Netrc => format!(
            "machine {host} login {} password {token}\n",
            sink.login.as_deref().unwrap_or("oauth2")
        ),
        SinkFormat::Npmrc => format!("//{host}/:_authToken={token}\n"),
        SinkFormat::Json => {
            let body = JsonSink {
                profile,
                kind: match sink.kind {
                    TokenKind::Access => "access",
                    TokenKind::Id => "id",
                },
                token,
                token_type: "Bearer",
                expires_at: expires_at.to_owned(),
            };
            let mut text = serde_json::to_string(&body).ok()?;
            text.push('\n');
            text
        }
    };
    Some(Zeroizing::new(text.into_bytes()))
}

/// Writes `bytes` to the sink atomically, mode 0600.
pub fn write(sink: &SinkConfig, bytes: &[u8]) -> anyhow::Result<()> {
    let uid = rustix::process::getuid().as_raw();
    check_sink_path(&sink.path, uid)
        .map_err(|message| anyhow::anyhow!("refusing the sink: {message}"))?;
    crate::atomic::write_with_mode(&sink.path, bytes, 0o600)
}

/// Removes the sink file (no error if it is already gone).
pub fn remove(sink: &SinkConfig) -> anyhow::Result<()> {
    match fs::remove_file(&sink.path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot remove {}", sink.path.display())),
    }
}

/// Writes every sink of `profile` for `tokens` (`None`: removes them). Failures are logged,
/// naming the file, never the token; the others are still written.
pub(crate) async fn update(profile: &str, sinks: &[SinkConfig], tokens: Option<&TokenSet>) {
    if sinks.is_empty() {
        return;
    }
    let rendered: Vec<(SinkConfig, Option<Zeroizing<Vec<u8>>>)> = sinks
        .iter()
        .map(|sink| {
            (
                sink.clone(),
                tokens.and_then(|tokens| render(sink, profile, tokens)),
            )
        })
        .collect();
    let removing = tokens.is_none();
    let written = tokio::task::spawn_blocking(move || {
        rendered
            .into_iter()
            .map(|(sink, bytes)| {
                let result = match &bytes {
                    Some(bytes) => write(&sink, bytes),
                    None => remove(&sink),
                };
                (sink, result)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(written) = written else {
        tracing::warn!(profile, "the sink writer task failed");
        return;
    };
    for (sink, result) in written {
        match result {
            Ok(()) if removing => {
                tracing::info!(profile, sink = %sink.path.display(), "sink removed");
            }
            Ok(()) => {
                tracing::debug!(profile, sink = %sink.path.display(), "sink written");
                if let Some(command) = &sink.on_change {
                    on_change(profile, &sink, command);
                }
            }
            Err(error) => {
                tracing::warn!(profile, sink = %sink.path.display(), error = %format!("{error:#}"), "sink not updated");
            }
        }
    }
}

/// Runs a sink's `on_change` command (`sh -c`, stdin closed, `COGBROKER_SINK` and
/// `COGBROKER_PROFILE` set) without waiting for it; it is killed after
/// [`ON_CHANGE_DEADLINE`].
fn on_change(profile: &str, sink: &SinkConfig, command: &str) {
    let spawned = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("COGBROKER_SINK", &sink.path)
        .env("COGBROKER_PROFILE", profile)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let path = sink.path.display().to_string();
    let profile = profile.to_owned();
    match spawned {
        Ok(mut child) => {
            tokio::spawn(async move {
                match tokio::time::timeout(ON_CHANGE_DEADLINE, child.wait()).await {
                    Ok(Ok(status)) if status.success() => {}
                    Ok(Ok(status)) => {
                        tracing::warn!(profile, sink = %path, %status, "the sink's on_change command failed");
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(profile, sink = %path, %error, "cannot wait for the sink's on_change command");
                    }
                    Err(_) => {
                        tracing::warn!(profile, sink = %path, "the sink's on_change command took too long; killed");
                        let _ = child.kill().await;
                    }
                }
            });
        }
        Err(error) => {
            tracing::warn!(profile, sink = %path, %error, "cannot run the sink's on_change command");
        }
    }
}

/// Whether `path` is a sink's temporary file (tests look for leftovers).
#[cfg(test)]
fn is_temporary(path: &std::path::Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') && name.contains(".cogbroker-"))
}

#[cfg(test)]
pub(crate) mod tests;
