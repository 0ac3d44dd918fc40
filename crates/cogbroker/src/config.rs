//! The configuration file (`config.toml`) and the `COGBROKER_*` environment overrides, parsed and
//! validated into a typed [`Config`] before anything binds (design.md §4, docs/configuration.md).
//!
//! Every error names the file, the line and the key, and says what is allowed. Secrets never
//! have to live in the file: [`SecretSource`] points at an env var, a command or the keyring and
//! is resolved lazily, at the moment the secret is needed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cognito_auth::secret::ClientSecret;
use cognito_auth::{AuthFlow, EndpointVariant, UserPoolId};
use serde::Deserialize;
use toml::Spanned;
use url::Url;

pub use crate::api::TokenKind;
pub use ways::{
    DEFAULT_REDIRECT_URI, Grant, OAuthSettings, SinkConfig, SinkFormat, check_sink_path,
};

mod ways;

mod daemon;
mod profile;
pub use aws::{AwsConfig, IdentityFlow};
pub use daemon::parse_listen;
use daemon::{absolute_path, validate_daemon};
use profile::validate_profile;

mod aws;

/// The default loopback address of the HTTP listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7467";
/// The longest Unix socket path (`sun_path` holds 108 bytes including the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `[daemon]` table after `COGBROKER_*` overrides.
    pub daemon: DaemonConfig,
    /// Every `[profiles.NAME]` table, by name.
    pub profiles: BTreeMap<ProfileName, ProfileConfig>,
    /// The file this was read from (or would have been).
    pub path: PathBuf,
    /// Non-fatal findings (e.g. a literal secret in a file others can read), for the caller to log.
    pub warnings: Vec<String>,
}

/// The `[daemon]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Loopback TCP listener, or off.
    pub listen: Listen,
    /// Unix socket path ("auto" already resolved), or off.
    pub socket: SocketSetting,
    /// Which secret store backend to use.
    pub store: StoreKind,
    /// Where the file store and other state live.
    pub state_dir: PathBuf,
    /// A 0600 file holding the optional API key for TCP clients whose uid cannot be checked.
    pub api_key_file: Option<PathBuf>,
    /// A tracing filter directive ("info", "cogbroker=debug,warn", ...).
    pub log: String,
    /// Whether a client command that finds no daemon starts one in the background
    /// (`[daemon] autostart`, default true; `COGBROKER_NO_AUTOSTART=1` turns it off).
    pub autostart: bool,
}

/// The TCP listener setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// No TCP listener.
    Off,
    /// A loopback address (never anything else).
    Tcp(SocketAddr),
}

/// The Unix socket setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSetting {
    /// No Unix socket.
    Off,
    /// The socket path (`auto` resolved to `$XDG_RUNTIME_DIR/cogbroker/cogbroker.sock`).
    Path(PathBuf),
}

/// The secret store backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The keyring if its startup probe works, else the file store (said loudly).
    Auto,
    /// The OS keyring; the daemon refuses to start if it is unusable.
    Keyring,
    /// 0600 files in a 0700 directory under `state_dir`.
    File,
    /// In memory only: sessions die with the process (tests and demos).
    Memory,
}

impl StoreKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Keyring => "keyring",
            Self::File => "file",
            Self::Memory => "memory",
        }
    }
}

impl FromStr for StoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "keyring" => Ok(Self::Keyring),
            "file" => Ok(Self::File),
            "memory" => Ok(Self::Memory),
            other => Err(format!(
                "unknown store {other:?}; allowed: \"auto\", \"keyring\", \"file\", \"memory\""
            )),
        }
    }
}

/// A profile name: `[A-Za-z0-9._-]{1,64}`, not `.` or `..` (it names files and keyring entries).
/// Clones share the text: the config, the profile's source and its task each hold one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileName(Arc<str>);

impl ProfileName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ProfileName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if s.is_empty() || s.len() > 64 {
            return Err(format!(
                "profile name {s:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
            ));
        }
        if !s.chars().all(allowed) {
            return Err(format!(
                "profile name {s:?} may only contain A-Z a-z 0-9 . _ -"
            ));
        }
        if s == "." || s == ".." {
            return Err(format!("profile name {s:?} is not allowed"));
        }
        Ok(Self(Arc::from(s)))
    }
}

impl std::borrow::Borrow<str> for ProfileName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `[profiles.NAME]` table.
#[derive(Debug, Clone)]
pub struct ProfileConfig {
    /// The profile's name (the table key).
    pub name: ProfileName,
    /// The AWS region (defaults to the pool id's prefix).
    pub region: String,
    /// The user pool (`None` for the OAuth grants, which need only `domain` and `client_id`).
    pub user_pool_id: Option<UserPoolId>,
    /// The app client id.
    pub client_id: String,
    /// Where the app client's secret comes from (confidential clients only).
    pub client_secret: Option<SecretSource>,
    /// The username (or email alias) to log in with. client_credentials: the client id (the
    /// token's `sub`); authorization_code: empty (the browser asks).
    pub username: String,
    /// The authentication flow.
    pub auth_flow: AuthFlow,
    /// The wire name of `auth_flow` ("USER_SRP_AUTH", ...; the grant's name for the OAuth
    /// grants), for status output.
    pub auth_flow_name: &'static str,
    /// Where the password comes from for unattended (re-)login; never a literal.
    pub password: Option<SecretSource>,
    /// Whether to remember this machine as a device when the pool asks.
    pub remember_device: bool,
    /// An explicit endpoint (emulator, moto, LocalStack); else the regional one.
    pub endpoint: Option<Url>,
    /// Which regional endpoint variant to use when `endpoint` is not set.
    pub endpoint_variant: EndpointVariant,
    /// Override of the background refresh window (how long before expiry to refresh).
    pub refresh_before: Option<Duration>,
    /// The device name sent to ConfirmDevice.
    pub device_name: String,
    /// Hosts (`host` or `host:port`, lower case) whose credential requests this profile answers
    /// in the helper modes (git, docker, Bazel, GOAUTH, cargo), first match wins.
    pub hosts: Vec<String>,
    /// Which token the helper modes hand out unless `--kind` says otherwise (`None`: each
    /// helper's own default, the ID token for kubectl and the access token elsewhere).
    pub token_kind: Option<TokenKind>,
    /// How the profile gets tokens (`grant`).
    pub grant: Grant,
    /// The OAuth settings of the `client_credentials` and `authorization_code` grants.
    pub oauth: Option<Box<OAuthSettings>>,
    /// Files kept holding the current token (`[[profiles.P.sinks]]`).
    pub sinks: Vec<SinkConfig>,
    /// The identity pool that turns this profile's ID token into AWS credentials, if any
    /// (`identity_pool_id` and its keys, design.md §13).
    pub aws: Option<Box<AwsConfig>>,
}

impl ProfileConfig {
    /// Whether `host` (a request's `host` or `host:port`) is one of this profile's `hosts`: an
    /// entry with a port matches that port only, an entry without one matches the host on any
    /// port. Case-insensitive, a trailing dot ignored.
    pub fn claims_host(&self, host: &str) -> bool {
        let wanted = normalize_host(host);
        let (wanted_name, _) = split_port(&wanted);
        self.hosts.iter().any(|entry| {
            let (name, port) = split_port(entry);
            match port {
                Some(_) => *entry == wanted,
                None => name == wanted_name,
            }
        })
    }
}

/// Lower case, without a trailing dot on the name.
fn normalize_host(host: &str) -> String {
    let lower = host.trim().to_ascii_lowercase();
    let (name, port) = split_port(&lower);
    let name = name.strip_suffix('.').unwrap_or(name);
    match port {
        Some(port) => format!("{name}:{port}"),
        None => name.to_owned(),
    }
}

/// `host:port` → (`host`, `Some(port)`); `[::1]:5000` → (`[::1]`, `Some("5000")`); a bare IPv6
/// literal in brackets has no port.
fn split_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((_, tail)) => match tail.strip_prefix(':') {
                Some(port) => (&host[..host.len() - port.len() - 1], Some(port)),
                None => (host, None),
            },
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (host, None),
    }
}

/// Checks one `hosts` entry; returns it normalized.
fn host_entry(value: &str) -> Result<String, String> {
    let normalized = normalize_host(value);
    let (name, port) = split_port(&normalized);
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port != 0));
    if name_ok && port_ok {
        Ok(normalized)
    } else {
        Err(format!(
            "{value:?} is not a host; write a host name or address with an optional port, e.g. \"git.example.com\" or \"registry.example.com:5000\" (no scheme, no path)"
        ))
    }
}

/// Where a secret comes from. `Debug` shows [`describe`](Self::describe): never a literal value
/// nor a command line.
#[derive(Clone)]
pub enum SecretSource {
    /// An environment variable of the daemon.
    Env(String),
    /// A command run with `sh -c`; its trimmed stdout is the secret.
    Command(String),
    /// The OS keyring: service "cogbroker", user "NAME/client_secret" or "NAME/password".
    Keyring,
    /// The value itself, in the file (client secrets only).
    Literal(ClientSecret),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SecretSource {
    /// A description that never includes the secret nor the command line (which may embed one).
    pub fn describe(&self) -> String {
        match self {
            Self::Env(name) => format!("env var {name}"),
            Self::Command(_) => "command".to_owned(),
            Self::Keyring => "keyring".to_owned(),
            Self::Literal(_) => "literal value in the config file".to_owned(),
        }
    }
}

/// The environment, behind a trait so tests pass a map.
pub trait EnvSource: Send + Sync {
    /// The variable's value, if set (and valid UTF-8).
    fn var(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl EnvSource for std::collections::HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// One thing wrong with the configuration: where (file, line), which key, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, or "environment" for a `COGBROKER_*` variable.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, e.g. `profiles.dev.user_pool_id` or `COGBROKER_LISTEN`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}: {}", self.path, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.path, self.key, self.message),
        }
    }
}

/// Everything wrong with a configuration (validation does not stop at the first problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for error in &self.0 {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "invalid configuration: {error}")?;
        }
        Ok(())
    }
}

/// The config file path: `$COGBROKER_CONFIG`, else `$XDG_CONFIG_HOME/cogbroker/config.toml`, else
/// `~/.config/cogbroker/config.toml`. (`--config` is applied by the CLI before calling [`load`].)
pub fn default_path(env: &dyn EnvSource) -> PathBuf {
    if let Some(path) = non_empty(env.var("COGBROKER_CONFIG")) {
        return PathBuf::from(path);
    }
    xdg_dir(env, "XDG_CONFIG_HOME", ".config")
        .join("cogbroker")
        .join("config.toml")
}

/// Reads and validates the file at `path`, then applies `COGBROKER_*` overrides from `env`.
/// The error is a [`ConfigErrors`] (downcast it to inspect) or an IO error naming the file.
pub fn load(path: &Path, env: &dyn EnvSource) -> anyhow::Result<Config> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let cannot_read = |error: std::io::Error| {
        anyhow::anyhow!(
            "cannot read the config file {}: {error} (see docs/configuration.md)",
            path.display()
        )
    };
    let mut file = std::fs::File::open(path).map_err(cannot_read)?;
    // The checks look at the file that was opened, so it cannot be swapped between check and read.
    let meta = file.metadata().map_err(cannot_read)?;
    check_ownership(path, &meta, rustix::process::geteuid().as_raw())?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot_read)?;
    let readable_by_others = meta.mode() & 0o077 != 0;
    Ok(parse_with(&text, path, env, readable_by_others)?)
}

/// The config file can run commands and names the endpoints that receive passwords and refresh
/// tokens, so like ssh's own config it must be ours (or root's) and writable by nobody else,
/// and so must the directory holding it (else another user could replace it).
fn check_ownership(path: &Path, meta: &std::fs::Metadata, uid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let shown = path.display();
    if !meta.is_file() {
        anyhow::bail!("the config file {shown} is not a regular file");
    }
    if meta.uid() != uid && meta.uid() != 0 {
        anyhow::bail!(
            "refusing the config file {shown}: it belongs to uid {}, not to you (uid {uid}); it can run commands and names the endpoints that receive your secrets, so it must be yours",
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "refusing the config file {shown}: group or others may write it (mode {:04o}); it can run commands and names the endpoints that receive your secrets: chmod go-w {shown}",
            meta.mode() & 0o7777
        );
    }
    let real = std::fs::canonicalize(path)
        .map_err(|error| anyhow::anyhow!("cannot resolve the config file {shown}: {error}"))?;
    if let Some(dir) = real.parent() {
        let dir_meta = std::fs::metadata(dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot inspect {}, the config file's directory: {error}",
                dir.display()
            )
        })?;
        let sticky = dir_meta.mode() & 0o1000 != 0;
        if (dir_meta.uid() != uid && dir_meta.uid() != 0)
            || (dir_meta.mode() & 0o022 != 0 && !sticky)
        {
            anyhow::bail!(
                "refusing the config file {shown}: its directory {} may be written by another user (owner uid {}, mode {:04o}), who could replace the file: chmod go-w {}",
                dir.display(),
                dir_meta.uid(),
                dir_meta.mode() & 0o7777,
                dir.display()
            );
        }
    }
    Ok(())
}

/// The URL names this machine's loopback interface.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Like [`load`], but a missing file gives the defaults with no profiles.
pub fn load_or_default(path: &Path, env: &dyn EnvSource) -> anyhow::Result<Config> {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(parse_with("", path, env, false)?)
        }
        _ => load(path, env),
    }
}

/// Parses and validates `text` as if read from `path` (used by [`load`] and by tests).
pub fn parse(text: &str, path: &Path, env: &dyn EnvSource) -> Result<Config, ConfigErrors> {
    parse_with(text, path, env, false)
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) structures.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: Option<Spanned<RawDaemon>>,
    #[serde(default)]
    profiles: BTreeMap<Spanned<String>, Spanned<RawProfile>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    listen: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    store: Option<Spanned<String>>,
    api_key_file: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    log: Option<Spanned<String>>,
    autostart: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    region: Option<Spanned<String>>,
    user_pool_id: Option<Spanned<String>>,
    client_id: Spanned<String>,
    client_secret: Option<Spanned<toml::Value>>,
    username: Option<Spanned<String>>,
    auth_flow: Option<Spanned<String>>,
    password: Option<Spanned<toml::Value>>,
    remember_device: Option<bool>,
    endpoint: Option<Spanned<String>>,
    endpoint_variant: Option<Spanned<String>>,
    refresh_before: Option<Spanned<String>>,
    device_name: Option<Spanned<String>>,
    hosts: Option<Vec<Spanned<String>>>,
    token_kind: Option<Spanned<String>>,
    preferred_challenge: Option<Spanned<String>>,
    grant: Option<Spanned<String>>,
    domain: Option<Spanned<String>>,
    scopes: Option<Vec<Spanned<String>>>,
    redirect_uri: Option<Spanned<String>>,
    identity_provider: Option<Spanned<String>>,
    sinks: Option<Vec<Spanned<ways::RawSink>>>,
    identity_pool_id: Option<Spanned<String>>,
    identity_endpoint: Option<Spanned<String>>,
    identity_flow: Option<Spanned<String>>,
    role_arn: Option<Spanned<String>>,
    sts_endpoint: Option<Spanned<String>>,
    logins_provider: Option<Spanned<String>>,
}

struct Ctx<'a> {
    text: &'a str,
    path: String,
    errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn error_at(&mut self, span: std::ops::Range<usize>, key: &str, message: impl Into<String>) {
        let line = Some(self.line(span.start));
        self.errors.push(ConfigError {
            path: self.path.clone(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn env_error(&mut self, var: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: "environment".to_owned(),
            line: None,
            key: var.to_owned(),
            message: message.into(),
        });
    }
}

/// A setting as written, either in the file (with a span) or in an env var.
enum Origin {
    File(std::ops::Range<usize>),
    Env(&'static str),
}

fn parse_with(
    text: &str,
    path: &Path,
    env: &dyn EnvSource,
    readable_by_others: bool,
) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx {
        text,
        path: path.display().to_string(),
        errors: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            let line = error.span().map(|span| ctx.line(span.start));
            let message = error.message().to_owned();
            let key = key_from_toml_message(&message, text, error.span());
            return Err(ConfigErrors(vec![ConfigError {
                path: ctx.path,
                line,
                key,
                message,
            }]));
        }
    };
    let mut warnings = Vec::new();
    let daemon = validate_daemon(&mut ctx, raw.daemon.map(Spanned::into_inner), env);
    let mut profiles = BTreeMap::new();
    for (name, profile) in raw.profiles {
        let table_span = profile.span();
        let name_span = name.span();
        let name_text = name.into_inner();
        let name = match ProfileName::from_str(&name_text) {
            Ok(name) => name,
            Err(message) => {
                ctx.error_at(name_span, &format!("profiles.{name_text}"), message);
                continue;
            }
        };
        if let Some(profile) = validate_profile(
            &mut ctx,
            &name,
            (table_span, profile.into_inner()),
            readable_by_others,
            &mut warnings,
            env,
        ) {
            profiles.insert(name, profile);
        }
    }
    match daemon {
        Some(daemon) if ctx.errors.is_empty() => Ok(Config {
            daemon,
            profiles,
            path: path.to_path_buf(),
            warnings,
        }),
        _ => Err(ConfigErrors(ctx.errors)),
    }
}

/// The best key name for a toml/serde error, as a dotted path like the validation errors'
/// (`profiles.dev.usrname`): the field named in the message, else the key on the span's line,
/// prefixed with the table that line is in.
fn key_from_toml_message(
    message: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
) -> String {
    let named = ["unknown field `", "missing field `", "duplicate key `"]
        .iter()
        .find_map(|marker| {
            let rest = &message[message.find(marker)? + marker.len()..];
            Some(rest[..rest.find('`')?].to_owned())
        });
    let Some(span) = span else {
        return named.unwrap_or_else(|| "(file)".to_owned());
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let line_key = line
        .split_once('=')
        .map(|(key, _)| key.trim().to_owned())
        .filter(|key| !key.is_empty() && !key.starts_with('['));
    // The table the line is in: the last header at or above it (`[profiles.dev]`).
    let table = text[..line_start + line.len().min(text.len() - line_start)]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.contains('='))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        });
    let key = match (named, line_key) {
        // A field inside an inline table on this line: `client_secret = { envv = "X" }`.
        (Some(field), Some(outer)) if field != outer && line.contains('{') => {
            format!("{outer}.{field}")
        }
        (Some(field), _) => field,
        (None, Some(key)) => key,
        (None, None) => return table.unwrap_or_else(|| "(file)".to_owned()),
    };
    match table {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key,
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn xdg_dir(env: &dyn EnvSource, var: &str, home_relative: &str) -> PathBuf {
    if let Some(dir) = non_empty(env.var(var)).filter(|d| Path::new(d).is_absolute()) {
        return PathBuf::from(dir);
    }
    home(env).join(home_relative)
}

fn home(env: &dyn EnvSource) -> PathBuf {
    non_empty(env.var("HOME")).map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// Picks the env override if set, else the file value.
fn setting(
    env: &dyn EnvSource,
    var: &'static str,
    file: Option<Spanned<String>>,
) -> Option<(String, Origin)> {
    if let Some(value) = non_empty(env.var(var)) {
        return Some((value, Origin::Env(var)));
    }
    file.map(|spanned| {
        let span = spanned.span();
        (spanned.into_inner(), Origin::File(span))
    })
}

fn report(ctx: &mut Ctx<'_>, origin: &Origin, key: &str, message: String) {
    match origin {
        Origin::File(span) => ctx.error_at(span.clone(), key, message),
        Origin::Env(var) => ctx.env_error(var, message),
    }
}

/// Parses a short duration: "90s", "5m", "1h30m", "500ms", "2d". A bare number is refused
/// (the unit must be explicit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::duration::parse(text, crate::api::duration::BareNumber::Refused)
}

#[cfg(test)]
mod tests;
