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
pub use aws::{AwsConfig, IdentityFlow};

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileName(String);

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
        Ok(Self(s.to_owned()))
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
    /// The config spelling of `auth_flow` ("USER_SRP_AUTH", ...), for status output.
    pub auth_flow_name: String,
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
    pub oauth: Option<OAuthSettings>,
    /// Files kept holding the current token (`[[profiles.P.sinks]]`).
    pub sinks: Vec<SinkConfig>,
    /// The identity pool that turns this profile's ID token into AWS credentials, if any
    /// (`identity_pool_id` and its keys, design.md §13).
    pub aws: Option<AwsConfig>,
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

fn validate_daemon(
    ctx: &mut Ctx<'_>,
    raw: Option<RawDaemon>,
    env: &dyn EnvSource,
) -> Option<DaemonConfig> {
    let raw = raw.unwrap_or_default();
    let errors_before = ctx.errors.len();

    let listen = match setting(env, "COGBROKER_LISTEN", raw.listen) {
        None => Listen::Tcp(
            DEFAULT_LISTEN
                .parse()
                .expect("the default listen address parses"),
        ),
        Some((value, origin)) => match parse_listen(&value) {
            Ok(listen) => listen,
            Err(message) => {
                report(ctx, &origin, "daemon.listen", message);
                Listen::Off
            }
        },
    };

    let socket_setting = setting(env, "COGBROKER_SOCKET", raw.socket);
    let socket = match &socket_setting {
        None => SocketSetting::Path(auto_socket(env)),
        Some((value, origin)) => match value.as_str() {
            "off" => SocketSetting::Off,
            "auto" => SocketSetting::Path(auto_socket(env)),
            path => match absolute_path(path, env) {
                Ok(path) => SocketSetting::Path(path),
                Err(message) => {
                    report(
                        ctx,
                        origin,
                        "daemon.socket",
                        format!("{message}; or \"auto\" or \"off\""),
                    );
                    SocketSetting::Off
                }
            },
        },
    };
    if let SocketSetting::Path(path) = &socket {
        let length = path.as_os_str().len();
        if length > MAX_SOCKET_PATH {
            let message = format!(
                "the socket path {} is {length} bytes; Unix sockets allow at most {MAX_SOCKET_PATH}: choose a shorter path or \"off\"",
                path.display()
            );
            match &socket_setting {
                Some((_, origin)) => report(ctx, origin, "daemon.socket", message),
                None => ctx.errors.push(ConfigError {
                    path: ctx.path.clone(),
                    line: None,
                    key: "daemon.socket".to_owned(),
                    message,
                }),
            }
        }
    }

    let store = match setting(env, "COGBROKER_STORE", raw.store) {
        None => StoreKind::Auto,
        Some((value, origin)) => match StoreKind::from_str(&value) {
            Ok(kind) => kind,
            Err(message) => {
                report(ctx, &origin, "daemon.store", message);
                StoreKind::Auto
            }
        },
    };

    let state_dir = match setting(env, "COGBROKER_STATE_DIR", raw.state_dir) {
        None => xdg_dir(env, "XDG_STATE_HOME", ".local/state").join("cogbroker"),
        Some((value, origin)) => match absolute_path(&value, env) {
            Ok(path) => path,
            Err(message) => {
                report(ctx, &origin, "daemon.state_dir", message);
                PathBuf::new()
            }
        },
    };

    let api_key_file = match raw.api_key_file {
        None => None,
        Some(spanned) => {
            let span = spanned.span();
            match absolute_path(spanned.get_ref(), env) {
                Ok(path) => Some(path),
                Err(message) => {
                    ctx.error_at(span, "daemon.api_key_file", message);
                    None
                }
            }
        }
    };

    let log = match setting(env, "COGBROKER_LOG", raw.log) {
        None => "info".to_owned(),
        Some((value, origin)) => {
            if let Err(error) = tracing_subscriber::EnvFilter::try_new(&value) {
                report(
                    ctx,
                    &origin,
                    "daemon.log",
                    format!(
                        "invalid log filter {value:?} ({error}); use a level (error, warn, info, debug, trace) or directives like \"cogbroker=debug,warn\""
                    ),
                );
            }
            value
        }
    };

    let autostart = match non_empty(env.var("COGBROKER_NO_AUTOSTART")).as_deref() {
        None | Some("0" | "false") => raw.autostart.unwrap_or(true),
        Some("1" | "true") => false,
        Some(other) => {
            ctx.env_error(
                "COGBROKER_NO_AUTOSTART",
                format!("{other:?} is not a boolean; use 1 (no autostart) or 0"),
            );
            true
        }
    };

    (ctx.errors.len() == errors_before).then_some(DaemonConfig {
        listen,
        socket,
        store,
        state_dir,
        api_key_file,
        log,
        autostart,
    })
}

/// Parses a `listen` value: "off", or a loopback `ADDRESS:PORT` (`localhost:PORT` means
/// 127.0.0.1). Anything else is refused: a token broker must never listen beyond this machine.
pub fn parse_listen(value: &str) -> Result<Listen, String> {
    if value == "off" {
        return Ok(Listen::Off);
    }
    let address = if let Some(port) = value.strip_prefix("localhost:") {
        port.parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| format!("invalid port in {value:?}"))?
    } else {
        value.parse::<SocketAddr>().map_err(|_| {
            format!(
                "{value:?} is not an address:port; allowed: \"127.0.0.1:7467\", \"[::1]:7467\", \"localhost:7467\" or \"off\""
            )
        })?
    };
    if !address.ip().is_loopback() {
        return Err(format!(
            "{value:?} is not a loopback address; cogbroker only listens on 127.0.0.0/8 or [::1] (or \"off\")"
        ));
    }
    Ok(Listen::Tcp(address))
}

fn auto_socket(env: &dyn EnvSource) -> PathBuf {
    let runtime = non_empty(env.var("XDG_RUNTIME_DIR"))
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let tmp = non_empty(env.var("TMPDIR")).unwrap_or_else(|| "/tmp".to_owned());
            PathBuf::from(tmp).join(format!("cogbroker-{}", rustix::process::getuid().as_raw()))
        });
    runtime.join("cogbroker").join("cogbroker.sock")
}

fn absolute_path(value: &str, env: &dyn EnvSource) -> Result<PathBuf, String> {
    if let Some(rest) = value.strip_prefix("~/") {
        return Ok(home(env).join(rest));
    }
    let path = PathBuf::from(value);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!(
            "{value:?} is not an absolute path; write a path starting with / or ~/"
        ))
    }
}

fn validate_profile(
    ctx: &mut Ctx<'_>,
    name: &ProfileName,
    (table, raw): (std::ops::Range<usize>, RawProfile),
    readable_by_others: bool,
    warnings: &mut Vec<String>,
    env: &dyn EnvSource,
) -> Option<ProfileConfig> {
    let errors_before = ctx.errors.len();
    let key = |field: &str| format!("profiles.{name}.{field}");

    let (grant, oauth) = ways::validate_oauth(
        ctx,
        &key,
        table.clone(),
        ways::RawOAuth {
            grant: raw.grant,
            domain: raw.domain,
            scopes: raw.scopes,
            redirect_uri: raw.redirect_uri,
            identity_provider: raw.identity_provider,
        },
        raw.client_secret.is_some(),
    );
    let user_pool = grant == Grant::UserPool;

    let user_pool_id = match &raw.user_pool_id {
        None if user_pool => {
            ctx.error_at(
                table.clone(),
                &key("user_pool_id"),
                "missing `user_pool_id`, e.g. \"eu-west-1_AbCdEf123\" (or set grant = \"client_credentials\" / \"authorization_code\" with a `domain`)",
            );
            None
        }
        None => None,
        Some(value) => match UserPoolId::parse(value.get_ref()) {
            Ok(pool) => Some(pool),
            Err(error) => {
                ctx.error_at(
                    value.span(),
                    &key("user_pool_id"),
                    format!(
                        "invalid user pool id {:?} ({error}); expected REGION_NAME like \"eu-west-1_AbCdEf123\"",
                        value.get_ref()
                    ),
                );
                None
            }
        },
    };

    let region = match (&raw.region, &user_pool_id) {
        (Some(region), Some(pool)) => {
            let valid = !region.get_ref().is_empty()
                && region
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                ctx.error_at(
                    region.span(),
                    &key("region"),
                    format!(
                        "invalid region {:?}; expected e.g. \"eu-west-1\"",
                        region.get_ref()
                    ),
                );
            } else if region.get_ref() != pool.region() {
                ctx.error_at(
                    region.span(),
                    &key("region"),
                    format!(
                        "region {:?} does not match the user pool's region {:?}; remove `region` or fix it",
                        region.get_ref(),
                        pool.region()
                    ),
                );
            }
            region.get_ref().clone()
        }
        (None, Some(pool)) => pool.region().to_owned(),
        (_, None) => String::new(),
    };

    let client_id = raw.client_id.get_ref().clone();
    if client_id.is_empty()
        || client_id.len() > 128
        || !client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        ctx.error_at(
            raw.client_id.span(),
            &key("client_id"),
            "the app client id must be 1 to 128 characters of letters, digits, - and _",
        );
    }

    let username = match (&raw.username, grant) {
        (Some(value), Grant::UserPool) => {
            if value.get_ref().trim().is_empty() {
                ctx.error_at(
                    value.span(),
                    &key("username"),
                    "the username must not be empty",
                );
            }
            value.get_ref().clone()
        }
        (None, Grant::UserPool) => {
            ctx.error_at(
                table.clone(),
                &key("username"),
                "missing `username`, the user (or email alias) to log in as",
            );
            String::new()
        }
        (Some(value), _) => {
            ctx.error_at(
                value.span(),
                &key("username"),
                format!(
                    "grant = \"{}\" has no username (the {}); remove it",
                    grant.as_str(),
                    if grant == Grant::ClientCredentials {
                        "client is the subject"
                    } else {
                        "browser asks who signs in"
                    }
                ),
            );
            String::new()
        }
        (None, Grant::ClientCredentials) => client_id.clone(),
        (None, Grant::AuthorizationCode) => String::new(),
    };
    if !user_pool {
        let stray = [
            ("auth_flow", raw.auth_flow.as_ref().map(Spanned::span)),
            ("password", raw.password.as_ref().map(Spanned::span)),
            (
                "preferred_challenge",
                raw.preferred_challenge.as_ref().map(Spanned::span),
            ),
        ];
        for (field, span) in stray {
            if let Some(span) = span {
                ctx.error_at(
                    span,
                    &key(field),
                    format!(
                        "`{field}` is for user-pool sign-ins; grant = \"{}\" does not use it",
                        grant.as_str()
                    ),
                );
            }
        }
    }

    let client_secret = raw.client_secret.and_then(|value| {
        let span = value.span();
        match secret_source(value.get_ref(), true) {
            Ok(source) => {
                if matches!(source, SecretSource::Literal(_)) && readable_by_others {
                    warnings.push(format!(
                        "{}:{}: {}: a literal client secret is in a file that group or others can read; chmod 600 it or use {{ env = .. }}, {{ command = .. }} or {{ keyring = true }}",
                        ctx.path,
                        ctx.line(span.start),
                        key("client_secret")
                    ));
                }
                Some(source)
            }
            Err(message) => {
                ctx.error_at(span, &key("client_secret"), message);
                None
            }
        }
    });

    let password = raw.password.and_then(|value| {
        let span = value.span();
        match secret_source(value.get_ref(), false) {
            Ok(source) => Some(source),
            Err(message) => {
                ctx.error_at(span, &key("password"), message);
                None
            }
        }
    });

    let (auth_flow, auth_flow_name) = match &raw.auth_flow {
        None if !user_pool => (Some(AuthFlow::UserSrp), grant.as_str().to_owned()),
        None => (Some(AuthFlow::UserSrp), "USER_SRP_AUTH".to_owned()),
        Some(flow) => match AuthFlow::from_str(flow.get_ref()) {
            Ok(parsed) => (Some(parsed), flow.get_ref().clone()),
            Err(_) => {
                ctx.error_at(
                    flow.span(),
                    &key("auth_flow"),
                    format!(
                        "unknown auth flow {:?}; allowed: \"USER_SRP_AUTH\" (default), \"USER_PASSWORD_AUTH\", \"USER_AUTH\", \"CUSTOM_AUTH\"",
                        flow.get_ref()
                    ),
                );
                (None, String::new())
            }
        },
    };

    let endpoint = raw.endpoint.and_then(|value| {
        let span = value.span();
        match Url::parse(value.get_ref()) {
            Ok(url) if url.scheme() == "http" && url.host().is_some() && !is_loopback(&url) => {
                ctx.error_at(
                    span,
                    &key("endpoint"),
                    format!(
                        "{:?} is plain http to another host: passwords and refresh tokens would cross the network in cleartext; use https, or http only to 127.0.0.1, [::1] or localhost (an emulator)",
                        value.get_ref()
                    ),
                );
                None
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                ctx.error_at(
                    span,
                    &key("endpoint"),
                    format!(
                        "{:?} is not an http(s) URL; e.g. \"http://127.0.0.1:9229\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    });

    let endpoint_variant = match &raw.endpoint_variant {
        None => EndpointVariant::Standard,
        Some(value) => match value.get_ref().as_str() {
            "standard" => EndpointVariant::Standard,
            "fips" => EndpointVariant::Fips,
            "dualstack" => EndpointVariant::DualStack,
            "fips-dualstack" => EndpointVariant::FipsDualStack,
            other => {
                ctx.error_at(
                    value.span(),
                    &key("endpoint_variant"),
                    format!(
                        "unknown endpoint variant {other:?}; allowed: \"standard\", \"fips\", \"dualstack\", \"fips-dualstack\""
                    ),
                );
                EndpointVariant::Standard
            }
        },
    };

    let refresh_before = raw.refresh_before.and_then(|value| {
        let span = value.span();
        match parse_duration(value.get_ref()) {
            Ok(duration)
                if duration >= Duration::from_secs(1)
                    && duration <= Duration::from_secs(86_400) =>
            {
                Some(duration)
            }
            Ok(_) => {
                ctx.error_at(span, &key("refresh_before"), "must be between 1s and 24h");
                None
            }
            Err(message) => {
                ctx.error_at(span, &key("refresh_before"), message);
                None
            }
        }
    });

    let device_name = match raw.device_name {
        Some(value) if value.get_ref().trim().is_empty() || value.get_ref().len() > 256 => {
            ctx.error_at(
                value.span(),
                &key("device_name"),
                "must be 1 to 256 characters",
            );
            String::new()
        }
        Some(value) => value.into_inner(),
        None => default_device_name(),
    };

    let mut hosts = Vec::new();
    for entry in raw.hosts.unwrap_or_default() {
        match host_entry(entry.get_ref()) {
            Ok(host) if hosts.contains(&host) => ctx.error_at(
                entry.span(),
                &key("hosts"),
                format!("{:?} is listed twice", entry.get_ref()),
            ),
            Ok(host) => hosts.push(host),
            Err(message) => ctx.error_at(entry.span(), &key("hosts"), message),
        }
    }

    let token_kind = raw
        .token_kind
        .and_then(|value| match value.get_ref().as_str() {
            "access" => Some(TokenKind::Access),
            "id" => Some(TokenKind::Id),
            other => {
                ctx.error_at(
                    value.span(),
                    &key("token_kind"),
                    format!("unknown token kind {other:?}; allowed: \"access\", \"id\""),
                );
                None
            }
        });

    let auth_flow = match (auth_flow, raw.preferred_challenge) {
        (flow, None) => flow,
        (Some(AuthFlow::UserAuth { .. }), Some(value)) => {
            let choice = value.get_ref().to_ascii_uppercase();
            if matches!(
                choice.as_str(),
                "EMAIL_OTP" | "SMS_OTP" | "PASSWORD" | "PASSWORD_SRP"
            ) {
                Some(AuthFlow::UserAuth {
                    preferred: Some(choice),
                })
            } else {
                ctx.error_at(
                    value.span(),
                    &key("preferred_challenge"),
                    format!(
                        "unknown first factor {:?}; allowed: \"EMAIL_OTP\", \"SMS_OTP\", \"PASSWORD\", \"PASSWORD_SRP\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
        (flow, Some(value)) => {
            if user_pool {
                ctx.error_at(
                    value.span(),
                    &key("preferred_challenge"),
                    "`preferred_challenge` needs auth_flow = \"USER_AUTH\"",
                );
            }
            flow
        }
    };

    let uid = rustix::process::getuid().as_raw();
    let sinks = ways::validate_sinks(
        ctx,
        &key,
        raw.sinks.unwrap_or_default(),
        env,
        grant == Grant::ClientCredentials,
        uid,
    );
    if grant == Grant::ClientCredentials && token_kind == Some(TokenKind::Id) {
        ctx.error_at(
            table.clone(),
            &key("token_kind"),
            "client_credentials issues access tokens only; use token_kind = \"access\"",
        );
    }
    let aws = aws::validate(
        ctx,
        aws::RawAws {
            identity_pool_id: raw.identity_pool_id,
            identity_endpoint: raw.identity_endpoint,
            identity_flow: raw.identity_flow,
            role_arn: raw.role_arn,
            sts_endpoint: raw.sts_endpoint,
            logins_provider: raw.logins_provider,
        },
        &aws::ProfileFacts {
            name: name.as_str(),
            endpoint: endpoint.as_ref(),
            variant: endpoint_variant,
            user_pool_region: &region,
            user_pool_id: user_pool_id.as_ref(),
        },
    );
    if grant == Grant::ClientCredentials && aws.is_some() {
        ctx.error_at(
            table.clone(),
            &key("identity_pool_id"),
            "an identity pool trades an ID token for AWS credentials, and client_credentials issues none; use a user-pool or browser profile",
        );
    }

    if ctx.errors.len() != errors_before {
        return None;
    }
    Some(ProfileConfig {
        name: name.clone(),
        region,
        user_pool_id,
        client_id,
        client_secret,
        username,
        auth_flow: auth_flow?,
        auth_flow_name,
        password,
        remember_device: raw.remember_device.unwrap_or(true),
        endpoint,
        endpoint_variant,
        refresh_before,
        device_name,
        hosts,
        token_kind,
        grant,
        oauth,
        sinks,
        aws,
    })
}

fn default_device_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        "cogbroker".to_owned()
    } else {
        format!("cogbroker on {host}")
    }
}

fn secret_source(value: &toml::Value, literal_allowed: bool) -> Result<SecretSource, String> {
    const FORMS: &str = "{ env = \"VAR\" }, { command = \"...\" } or { keyring = true }";
    match value {
        toml::Value::String(literal) if literal_allowed => {
            if literal.is_empty() {
                Err(format!("must not be empty; use a string or {FORMS}"))
            } else {
                Ok(SecretSource::Literal(ClientSecret::new(literal.clone())))
            }
        }
        toml::Value::String(_) => Err(format!(
            "a literal value is not allowed here (it would sit in the file); use {FORMS}"
        )),
        toml::Value::Table(table) => {
            if table.len() != 1 {
                return Err(format!("needs exactly one of {FORMS}"));
            }
            let (form, inner) = table
                .iter()
                .next()
                .expect("the table has exactly one entry");
            match (form.as_str(), inner) {
                ("env", toml::Value::String(name)) if !name.is_empty() => {
                    Ok(SecretSource::Env(name.clone()))
                }
                ("command", toml::Value::String(command)) if !command.trim().is_empty() => {
                    Ok(SecretSource::Command(command.clone()))
                }
                ("keyring", toml::Value::Boolean(true)) => Ok(SecretSource::Keyring),
                ("env" | "command", _) => Err(format!("`{form}` needs a non-empty string")),
                ("keyring", _) => Err("`keyring` must be `true`".to_owned()),
                (other, _) => Err(format!("unknown secret source `{other}`; use {FORMS}")),
            }
        }
        _ if literal_allowed => Err(format!("expected a string or {FORMS}")),
        _ => Err(format!("expected {FORMS}")),
    }
}

/// Parses a short duration: "90s", "5m", "1h30m", "500ms", "2d". A bare number is refused
/// (the unit must be explicit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::duration::parse(text, crate::api::duration::BareNumber::Refused)
}

#[cfg(test)]
mod tests;
