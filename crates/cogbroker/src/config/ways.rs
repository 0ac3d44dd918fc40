//! The profile keys of the other ways in (design.md §14): the OAuth grants (`grant`, `domain`,
//! `scopes`, `redirect_uri`, `identity_provider`) and file sinks (`[[profiles.P.sinks]]`).
//! Validated with the rest of the file; the sink paths are checked against the filesystem here,
//! at config time, so a sink that would land in someone else's directory never starts.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::{Ctx, EnvSource, TokenKind, absolute_path, is_loopback};

/// How a profile gets its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grant {
    /// A user-pool sign-in (`auth_flow`) and its refresh token: the default.
    #[default]
    UserPool,
    /// `client_credentials` at the pool domain: a machine client with a secret.
    ClientCredentials,
    /// `authorization_code` with PKCE through the managed login pages (a browser).
    AuthorizationCode,
}

impl Grant {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserPool => "user_pool",
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
        }
    }
}

/// The default `redirect_uri` of a browser login (the port is fixed: Cognito matches callback
/// URLs exactly).
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:7468/callback";

/// The OAuth settings of a `client_credentials` or `authorization_code` profile.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The user-pool domain (`https://<prefix>.auth.<region>.amazoncognito.com`, a custom
    /// domain, or an emulator's URL).
    pub domain: Url,
    /// The scopes asked for. client_credentials: empty asks for all the client's scopes.
    /// authorization_code: always includes `openid`.
    pub scopes: Vec<String>,
    /// The loopback callback of a browser login (exactly one of the app client's callback URLs).
    pub redirect_uri: Url,
    /// `identity_provider` for the authorize URL (skips the IdP picker).
    pub identity_provider: Option<String>,
}

/// What a sink file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// The bare token and a newline.
    Raw,
    /// `{"token": ..., "token_type": "Bearer", "expires_at": ..., "profile": ..., "kind": ...}`.
    Json,
    /// `Authorization: Bearer <token>` and a newline.
    Header,
    /// A `.netrc` line: `machine <host> login <login> password <token>`.
    Netrc,
    /// An `.npmrc` line: `//<host>/:_authToken=<token>`.
    Npmrc,
}

/// One `[[profiles.P.sinks]]` entry.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The file (absolute; its directory is ours).
    pub path: PathBuf,
    /// Which token.
    pub kind: TokenKind,
    /// How it is written.
    pub format: SinkFormat,
    /// The host of a `netrc` / `npmrc` line.
    pub host: Option<String>,
    /// The login of a `netrc` line (default `oauth2`).
    pub login: Option<String>,
    /// Run (by `sh -c`) after each rewrite, with `COGBROKER_SINK` and `COGBROKER_PROFILE` set.
    pub on_change: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    path: Spanned<String>,
    kind: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    login: Option<Spanned<String>>,
    on_change: Option<Spanned<RawOnChange>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOnChange {
    command: String,
}

/// The raw OAuth keys of a profile.
pub(super) struct RawOAuth {
    pub(super) grant: Option<Spanned<String>>,
    pub(super) domain: Option<Spanned<String>>,
    pub(super) scopes: Option<Vec<Spanned<String>>>,
    pub(super) redirect_uri: Option<Spanned<String>>,
    pub(super) identity_provider: Option<Spanned<String>>,
}

/// Validates `grant` and the OAuth keys. `table` is the profile table's span (for missing
/// keys); `has_secret` says whether `client_secret` is set.
pub(super) fn validate_oauth(
    ctx: &mut Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    table: std::ops::Range<usize>,
    raw: RawOAuth,
    has_secret: bool,
) -> (Grant, Option<OAuthSettings>) {
    let grant = match &raw.grant {
        None => Grant::UserPool,
        Some(value) => match value.get_ref().as_str() {
            "user_pool" => Grant::UserPool,
            "client_credentials" => Grant::ClientCredentials,
            "authorization_code" => Grant::AuthorizationCode,
            other => {
                ctx.error_at(
                    value.span(),
                    &key("grant"),
                    format!(
                        "unknown grant {other:?}; allowed: \"user_pool\" (default), \"client_credentials\", \"authorization_code\""
                    ),
                );
                return (Grant::UserPool, None);
            }
        },
    };
    if grant == Grant::UserPool {
        let stray = [
            ("domain", raw.domain.as_ref().map(Spanned::span)),
            (
                "scopes",
                raw.scopes
                    .as_ref()
                    .and_then(|s| s.first().map(Spanned::span)),
            ),
            ("redirect_uri", raw.redirect_uri.as_ref().map(Spanned::span)),
            (
                "identity_provider",
                raw.identity_provider.as_ref().map(Spanned::span),
            ),
        ];
        for (name, span) in stray {
            if let Some(span) = span {
                ctx.error_at(
                    span,
                    &key(name),
                    format!(
                        "`{name}` belongs to the OAuth grants; set grant = \"client_credentials\" or \"authorization_code\", or remove it"
                    ),
                );
            }
        }
        return (grant, None);
    }
    let domain = match &raw.domain {
        None => {
            ctx.error_at(
                table.clone(),
                &key("domain"),
                format!(
                    "grant = \"{}\" needs `domain`, the user pool's domain, e.g. \"https://example.auth.eu-west-1.amazoncognito.com\"",
                    grant.as_str()
                ),
            );
            None
        }
        Some(value) => match Url::parse(value.get_ref()) {
            Ok(url) if url.scheme() == "http" && url.host().is_some() && !is_loopback(&url) => {
                ctx.error_at(
                    value.span(),
                    &key("domain"),
                    format!(
                        "{:?} is plain http to another host: secrets and tokens would cross the network in cleartext; use https (http only to 127.0.0.1, [::1] or localhost)",
                        value.get_ref()
                    ),
                );
                None
            }
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none() =>
            {
                Some(url)
            }
            _ => {
                ctx.error_at(
                    value.span(),
                    &key("domain"),
                    format!(
                        "{:?} is not an http(s) URL without query; e.g. \"https://example.auth.eu-west-1.amazoncognito.com\"",
                        value.get_ref()
                    ),
                );
                None
            }
        },
    };
    let mut scopes = Vec::new();
    for scope in raw.scopes.unwrap_or_default() {
        let text = scope.get_ref();
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            ctx.error_at(
                scope.span(),
                &key("scopes"),
                format!("{text:?} is not a scope: one word, no spaces, e.g. \"api/read\""),
            );
        } else if !scopes.contains(text) {
            scopes.push(text.clone());
        }
    }
    if grant == Grant::AuthorizationCode && !scopes.iter().any(|s| s == "openid") {
        // An ID token always comes back: the broker hands out both kinds.
        scopes.insert(0, "openid".to_owned());
    }
    if grant == Grant::ClientCredentials && !has_secret {
        ctx.error_at(
            table.clone(),
            &key("client_secret"),
            "grant = \"client_credentials\" needs `client_secret` (the app client's secret), e.g. { env = \"CLIENT_SECRET\" }",
        );
    }
    let redirect_uri = match &raw.redirect_uri {
        Some(value) if grant == Grant::ClientCredentials => {
            ctx.error_at(
                value.span(),
                &key("redirect_uri"),
                "`redirect_uri` is for grant = \"authorization_code\"; client_credentials has no browser step",
            );
            None
        }
        Some(value) => check_redirect_uri(value.get_ref()).map_or_else(
            |message| {
                ctx.error_at(value.span(), &key("redirect_uri"), message);
                None
            },
            Some,
        ),
        None => Some(Url::parse(DEFAULT_REDIRECT_URI).expect("the default redirect URI parses")),
    };
    let identity_provider = match raw.identity_provider {
        Some(value) if grant == Grant::ClientCredentials => {
            ctx.error_at(
                value.span(),
                &key("identity_provider"),
                "`identity_provider` is for grant = \"authorization_code\"",
            );
            None
        }
        Some(value) if value.get_ref().trim().is_empty() || value.get_ref().len() > 128 => {
            ctx.error_at(
                value.span(),
                &key("identity_provider"),
                "must be 1 to 128 characters, e.g. \"Google\"",
            );
            None
        }
        Some(value) => Some(value.into_inner()),
        None => None,
    };
    match (domain, redirect_uri) {
        (Some(domain), Some(redirect_uri)) => (
            grant,
            Some(OAuthSettings {
                domain,
                scopes,
                redirect_uri,
                identity_provider,
            }),
        ),
        _ => (grant, None),
    }
}

/// A browser login's callback must be one the CLI can listen on: plain http on loopback
/// (Cognito allows http only for localhost) with an explicit port and no query or fragment.
fn check_redirect_uri(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| {
        format!("{text:?} is not a URL ({error}); e.g. \"{DEFAULT_REDIRECT_URI}\"")
    })?;
    if url.scheme() != "http" || !is_loopback(&url) {
        return Err(format!(
            "{text:?} must be http on localhost, 127.0.0.1 or [::1] (the CLI listens on it during a login), e.g. \"{DEFAULT_REDIRECT_URI}\""
        ));
    }
    if url.port().is_none() {
        return Err(format!(
            "{text:?} needs an explicit port, e.g. \"{DEFAULT_REDIRECT_URI}\""
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must have no query and no fragment"));
    }
    Ok(url)
}

/// Validates the sinks of a profile. `is_user_pool_less` profiles (client_credentials) have no
/// ID token: a `kind = "id"` sink is refused.
pub(super) fn validate_sinks(
    ctx: &mut Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: Vec<Spanned<RawSink>>,
    env: &dyn EnvSource,
    access_only: bool,
    uid: u32,
) -> Vec<SinkConfig> {
    let mut sinks: Vec<SinkConfig> = Vec::new();
    for sink in raw {
        let sink = sink.into_inner();
        let path_span = sink.path.span();
        let path = match absolute_path(sink.path.get_ref(), env)
            .and_then(|path| check_sink_path(&path, uid).map(|()| path))
        {
            Ok(path) => path,
            Err(message) => {
                ctx.error_at(path_span, &key("sinks.path"), message);
                continue;
            }
        };
        if sinks.iter().any(|other| other.path == path) {
            ctx.error_at(
                path_span,
                &key("sinks.path"),
                format!("{} is listed twice", path.display()),
            );
            continue;
        }
        let kind = match &sink.kind {
            None => TokenKind::Access,
            Some(value) => match value.get_ref().as_str() {
                "access" => TokenKind::Access,
                "id" if access_only => {
                    ctx.error_at(
                        value.span(),
                        &key("sinks.kind"),
                        "client_credentials issues access tokens only; use kind = \"access\"",
                    );
                    continue;
                }
                "id" => TokenKind::Id,
                other => {
                    ctx.error_at(
                        value.span(),
                        &key("sinks.kind"),
                        format!("unknown token kind {other:?}; allowed: \"access\", \"id\""),
                    );
                    continue;
                }
            },
        };
        let format = match &sink.format {
            None => SinkFormat::Raw,
            Some(value) => match value.get_ref().as_str() {
                "raw" => SinkFormat::Raw,
                "json" => SinkFormat::Json,
                "header" => SinkFormat::Header,
                "netrc" => SinkFormat::Netrc,
                "npmrc" => SinkFormat::Npmrc,
                other => {
                    ctx.error_at(
                        value.span(),
                        &key("sinks.format"),
                        format!(
                            "unknown sink format {other:?}; allowed: \"raw\" (default), \"json\", \"header\", \"netrc\", \"npmrc\""
                        ),
                    );
                    continue;
                }
            },
        };
        let word = |value: &Option<Spanned<String>>, name: &str, ctx: &mut Ctx<'_>| match value {
            Some(value)
                if value.get_ref().is_empty()
                    || value
                        .get_ref()
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '#') =>
            {
                ctx.error_at(
                    value.span(),
                    &key(name),
                    "must be one word without spaces or #",
                );
                Err(())
            }
            Some(value) => Ok(Some(value.get_ref().clone())),
            None => Ok(None),
        };
        let Ok(host) = word(&sink.host, "sinks.host", ctx) else {
            continue;
        };
        let Ok(login) = word(&sink.login, "sinks.login", ctx) else {
            continue;
        };
        if matches!(format, SinkFormat::Netrc | SinkFormat::Npmrc) && host.is_none() {
            ctx.error_at(
                path_span,
                &key("sinks.host"),
                "a netrc or npmrc sink needs `host`, e.g. host = \"registry.example.com\"",
            );
            continue;
        }
        let on_change = match sink.on_change {
            Some(value) if value.get_ref().command.trim().is_empty() => {
                ctx.error_at(
                    value.span(),
                    &key("sinks.on_change"),
                    "`command` must not be empty",
                );
                continue;
            }
            Some(value) => Some(value.into_inner().command),
            None => None,
        };
        sinks.push(SinkConfig {
            path,
            kind,
            format,
            host,
            login,
            on_change,
        });
    }
    sinks
}

/// A sink is written only into a directory that is ours: no `..`, the file itself (if there)
/// a regular file and no symlink, and the nearest directory that exists owned by `uid`, not a
/// symlink and writable by nobody else (so nobody else can swap the file or the directories
/// we create under it).
pub fn check_sink_path(path: &Path, uid: u32) -> Result<(), String> {
    let shown = path.display();
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || path.file_name().is_none()
    {
        return Err(format!(
            "{shown} must be a plain absolute file path (no `.` or `..`)"
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(format!(
                "{shown} is a symlink; a sink is never written through one (point `path` at the real place)"
            ));
        }
        Ok(meta) if !meta.is_file() => {
            return Err(format!("{shown} exists and is not a regular file"));
        }
        Ok(meta) if meta.uid() != uid => {
            return Err(format!(
                "{shown} belongs to uid {}, not to you (uid {uid})",
                meta.uid()
            ));
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("cannot inspect {shown}: {error}")),
    }
    let mut dir = path.parent();
    while let Some(candidate) = dir {
        match std::fs::symlink_metadata(candidate) {
            Ok(meta) => {
                let at = candidate.display();
                if meta.file_type().is_symlink() {
                    return Err(format!(
                        "{shown}: {at} is a symlink; write the real directory in `path`"
                    ));
                }
                if !meta.is_dir() {
                    return Err(format!("{shown}: {at} is not a directory"));
                }
                if meta.uid() != uid || meta.mode() & 0o022 != 0 {
                    return Err(format!(
                        "{shown} is outside your own directories: {at} belongs to uid {} with mode {:04o}; a sink goes in a directory that is yours and writable only by you (e.g. under ~/.cache or $XDG_RUNTIME_DIR)",
                        meta.uid(),
                        meta.mode() & 0o7777
                    ));
                }
                return Ok(());
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                dir = candidate.parent();
            }
            Err(error) => {
                return Err(format!("cannot inspect {}: {error}", candidate.display()));
            }
        }
    }
    Err(format!("{shown}: no existing directory above it"))
}
