//! The helper modes' command lines (design.md §12): read what the consumer sent, pick the
//! profile (`--profile`, else the first profile whose `hosts` names the request's host), ask the
//! daemon, print the protocol's answer. The protocols themselves are pure functions in
//! `crate::helpers`; the daemon is reached only through [`Broker`], the one adapter here.
//!
//! stdout carries only protocol output. Exit codes are the CLI's (3 daemon not reachable, 4 login
//! required) except where a protocol says otherwise: cargo's provider exits 0 after an `Err`
//! reply (cargo drops the message otherwise) and docker's errors are printed on stdout.

use std::ffi::OsString;
use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::{Cli, Command, Daemon, GlobalArgs, TokenKindArg, UsageError, block_on};
use crate::api::TokenResponse;
use crate::config::{ProfileConfig, TokenKind};
use crate::helpers::{self, Credential, MAX_INPUT, bazel, cargo, docker, git, goauth, kube};

/// The largest `min_ttl` the API takes: asking for it gets one refresh unless the token was
/// minted in the last few seconds (design.md §8), which is what rate-limits a consumer's
/// "this token was rejected".
const REFRESH_MIN_TTL: u64 = 86_400;

pub use super::helper_args::*;

// ---------------------------------------------------------------------------------------------
// The one adapter to the daemon.

/// What a helper needs from the daemon: a token, and "this one was rejected" (a rate-limited
/// refresh). The configuration (for `hosts`, `token_kind` and `username`) comes with it.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(super) daemon: Daemon,
}

/// What became of a rejected token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The daemon already hands out another token: nothing to do.
    AlreadyReplaced,
    /// A new token was minted.
    Refreshed,
    /// The token is only seconds old: not refreshed again (no refresh storms).
    TooRecent,
}

impl Broker {
    pub(crate) fn connect(global: &GlobalArgs) -> anyhow::Result<Self> {
        Ok(Self {
            daemon: Daemon::connect(global)?,
        })
    }

    fn profile(&self, name: &str) -> Option<&ProfileConfig> {
        let config = self.daemon.config.as_ref()?;
        config
            .profiles
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, profile)| profile)
    }

    /// The profile that answers for `host`: `explicit` if given, else the first profile (in
    /// name order) whose `hosts` claims it.
    fn choose(&self, explicit: Option<&str>, host: Option<&str>) -> Option<String> {
        if let Some(name) = explicit {
            return Some(name.to_owned());
        }
        let host = host?;
        let config = self.daemon.config.as_ref()?;
        config
            .profiles
            .values()
            .find(|profile| profile.claims_host(host))
            .map(|profile| profile.name.as_str().to_owned())
    }

    /// Every profile with `hosts` (or just `explicit`), with its hosts.
    fn profiles_with_hosts(&self, explicit: Option<&str>) -> Vec<(String, Vec<String>)> {
        let Some(config) = self.daemon.config.as_ref() else {
            return Vec::new();
        };
        config
            .profiles
            .values()
            .filter(|profile| explicit.is_none_or(|name| profile.name.as_str() == name))
            .filter(|profile| !profile.hosts.is_empty())
            .map(|profile| (profile.name.as_str().to_owned(), profile.hosts.clone()))
            .collect()
    }

    /// The username a consumer shows beside the token: the profile's, else `cogbroker`.
    fn username(&self, profile: &str) -> String {
        self.profile(profile)
            .map(|profile| profile.username.clone())
            .unwrap_or_else(|| "cogbroker".to_owned())
    }

    /// `--kind`, else the profile's `token_kind`, else the helper's default.
    pub(super) fn kind(
        &self,
        profile: &str,
        arg: Option<TokenKindArg>,
        default: TokenKind,
    ) -> TokenKind {
        match arg {
            Some(TokenKindArg::Access) => TokenKind::Access,
            Some(TokenKindArg::Id) => TokenKind::Id,
            None => match self.profile(profile) {
                Some(config) => config.token_kind.unwrap_or(
                    // A machine client has no ID token: its helpers hand out the access token.
                    if config.grant == crate::config::Grant::ClientCredentials {
                        TokenKind::Access
                    } else {
                        default
                    },
                ),
                None => default,
            },
        }
    }

    /// Where the daemon is reached.
    pub(crate) fn target(&self) -> &crate::client::Target {
        self.daemon.client.target()
    }

    /// A token of `kind`, valid for the daemon's hand-out floor (or `min_ttl` seconds).
    pub(crate) async fn token(
        &self,
        profile: &str,
        kind: TokenKind,
        min_ttl: Option<u64>,
    ) -> anyhow::Result<Credential> {
        let reply = self
            .daemon
            .client
            .token(profile, kind, min_ttl.map(Duration::from_secs))
            .await
            .map_err(|error| error.with_login_hint(profile))
            .with_context(|| format!("getting a token for {profile} failed"))?;
        Ok(credential_from(reply))
    }

    /// A consumer says the server rejected `rejected`. If the daemon still hands it out, ask for
    /// the freshest token: the daemon refreshes once, unless the token was minted seconds ago.
    pub(crate) async fn reject(
        &self,
        profile: &str,
        kind: TokenKind,
        rejected: &SecretString,
    ) -> anyhow::Result<Rejection> {
        let same = |credential: &Credential| -> bool {
            credential
                .secret()
                .as_bytes()
                .ct_eq(rejected.expose_secret().as_bytes())
                .into()
        };
        let current = self.token(profile, kind, None).await?;
        if !same(&current) {
            return Ok(Rejection::AlreadyReplaced);
        }
        let fresh = self.token(profile, kind, Some(REFRESH_MIN_TTL)).await?;
        Ok(if same(&fresh) {
            Rejection::TooRecent
        } else {
            Rejection::Refreshed
        })
    }
}

fn credential_from(reply: TokenResponse) -> Credential {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    Credential {
        token: reply.token,
        expires_unix: now.saturating_add(reply.expires_in),
        expires_rfc3339: reply.expires_at,
    }
}

// ---------------------------------------------------------------------------------------------
// The helpers.

/// `git-credential get|store|erase|capability`.
pub(crate) fn git(global: &GlobalArgs, args: &GitCredentialArgs) -> anyhow::Result<()> {
    let operation = git::Operation::parse(&args.operation);
    match operation {
        git::Operation::Other => return Ok(()),
        git::Operation::Capability => return write_stdout(git::CAPABILITIES),
        // We are the store of record: nothing to keep.
        git::Operation::Store => return read_stdin("git's request").map(drop),
        git::Operation::Get | git::Operation::Erase => {}
    }
    let input = read_stdin("git's credential request")?;
    let request = git::parse(&input)?;
    let broker = Broker::connect(global)?;
    let Some(profile) = broker.choose(args.profile.as_deref(), request.host.as_deref()) else {
        // Not ours: no output, so git asks its next helper.
        return Ok(());
    };
    let kind = broker.kind(&profile, args.kind, TokenKind::Access);
    block_on(async {
        if operation == git::Operation::Erase {
            let Some(rejected) = request.presented() else {
                return Ok(());
            };
            let outcome = broker.reject(&profile, kind, rejected).await?;
            report_rejection(&profile, "the git server", outcome);
            return Ok(());
        }
        match broker.token(&profile, kind, None).await {
            Ok(credential) => {
                let username = broker.username(&profile);
                write_stdout(&git::get_reply(
                    &request,
                    git::safe_username(&username),
                    &credential,
                ))
            }
            Err(error) => {
                // A password prompt cannot help with a token host: stop git here.
                let _ = write_stdout(git::QUIT);
                Err(error)
            }
        }
    })
}

fn report_rejection(profile: &str, who: &str, outcome: Rejection) {
    let message = match outcome {
        Rejection::AlreadyReplaced => return,
        Rejection::Refreshed => {
            format!("{who} rejected the token of {profile}; the next attempt uses a new one")
        }
        Rejection::TooRecent => format!(
            "{who} rejected the token of {profile}, which is only seconds old; not refreshing it \
             again (check that the server accepts tokens of this pool and client)"
        ),
    };
    let _ = writeln!(std::io::stderr().lock(), "cogbroker: {message}");
}

/// `docker-credential get|store|erase|list|version`. Errors go to stdout (docker shows only
/// that), and also to stderr through the normal path.
pub(crate) fn docker(global: &GlobalArgs, args: &DockerCredentialArgs) -> anyhow::Result<()> {
    let fail = |error: anyhow::Error| -> anyhow::Error {
        let _ = write_stdout(&format!("{error:#}\n"));
        error
    };
    let action =
        docker::Action::parse(&args.action).map_err(|error| fail(UsageError(error.0).into()))?;
    match action {
        docker::Action::Version => write_stdout(&docker::version_reply()),
        docker::Action::List => {
            let broker = Broker::connect(global).map_err(fail)?;
            let mut entries = std::collections::BTreeMap::new();
            for (profile, hosts) in broker.profiles_with_hosts(args.profile.as_deref()) {
                for host in hosts {
                    entries
                        .entry(host)
                        .or_insert_with(|| broker.username(&profile));
                }
            }
            write_stdout(&docker::list_reply(&entries))
        }
        docker::Action::Get => {
            let input = read_stdin("docker's server URL").map_err(fail)?;
            let (server_url, host) = docker::server_url(&input).map_err(|e| fail(e.into()))?;
            let broker = Broker::connect(global).map_err(fail)?;
            let Some(profile) = broker.choose(args.profile.as_deref(), Some(&host)) else {
                return Err(fail(anyhow::anyhow!(docker::NOT_FOUND)));
            };
            let kind = broker.kind(&profile, args.kind, TokenKind::Access);
            let credential = block_on(broker.token(&profile, kind, None)).map_err(fail)?;
            let username = broker.username(&profile);
            write_stdout(&docker::get_reply(&server_url, &username, &credential))
        }
        docker::Action::Store => {
            let input = read_stdin("docker's credentials").map_err(fail)?;
            let request = docker::parse_store(&input).map_err(|e| fail(e.into()))?;
            let (_, host) =
                docker::server_url(request.server_url.as_bytes()).map_err(|e| fail(e.into()))?;
            let broker = Broker::connect(global).map_err(fail)?;
            match broker.choose(args.profile.as_deref(), Some(&host)) {
                // The broker owns these credentials; the password docker offers is not kept.
                Some(_) => Ok(()),
                None => Err(fail(anyhow::anyhow!(
                    "cogbroker stores no credentials: {host} is not in any profile's `hosts` \
                     (use credHelpers for the registries cogbroker serves, not credsStore)"
                ))),
            }
        }
        docker::Action::Erase => {
            let input = read_stdin("docker's server URL").map_err(fail)?;
            let (_, host) = docker::server_url(&input).map_err(|e| fail(e.into()))?;
            let broker = Broker::connect(global).map_err(fail)?;
            match broker.choose(args.profile.as_deref(), Some(&host)) {
                // `docker logout` ends nothing here: `cogbroker logout <p>` ends the session.
                Some(_) => Ok(()),
                None => Err(fail(anyhow::anyhow!(docker::NOT_FOUND))),
            }
        }
    }
}

/// `kube-credential P`.
pub(crate) fn kube(global: &GlobalArgs, args: &KubeCredentialArgs) -> anyhow::Result<()> {
    let exec_info = std::env::var(kube::EXEC_INFO_VAR).ok();
    let version = kube::api_version(exec_info.as_deref())?;
    let broker = Broker::connect(global)?;
    let kind = broker.kind(&args.profile, args.kind, TokenKind::Id);
    let credential = block_on(broker.token(&args.profile, kind, None))?;
    write_stdout(&kube::exec_credential(version, &credential))
}

/// `cargo-credential --cargo-plugin`: hello, then one answer per request line until EOF; always
/// exit 0 once the hello is out (cargo drops an `Err` message from a provider that exits
/// non-zero).
pub(crate) fn cargo(global: &GlobalArgs, args: &CargoCredentialArgs) -> anyhow::Result<()> {
    if !args.cargo_plugin {
        return Err(UsageError(
            "`cargo-credential` is run by cargo: set `credential-provider = [\"cogbroker\", \
             \"cargo-credential\", \"--profile\", \"P\"]` in the registry's cargo config"
                .to_owned(),
        )
        .into());
    }
    write_stdout(cargo::HELLO)?;
    let mut stdin = std::io::stdin().lock();
    loop {
        let mut line = zeroize::Zeroizing::new(String::new());
        let limit = u64::try_from(MAX_INPUT).unwrap_or(u64::MAX);
        let read = (&mut stdin)
            .take(limit)
            .read_line(&mut line)
            .context("reading cargo's request failed")?;
        if read == 0 {
            return Ok(());
        }
        let reply = if !line.ends_with('\n') && read as u64 == limit {
            cargo::error_reply(
                cargo::ErrorKind::Other,
                Some(&format!("cargo's request is longer than {MAX_INPUT} bytes")),
            )
        } else if line.trim().is_empty() {
            continue;
        } else {
            cargo_answer(global, args, line.trim())
        };
        write_stdout(&reply)?;
        if !line.ends_with('\n') {
            return Ok(());
        }
    }
}

fn cargo_answer(global: &GlobalArgs, args: &CargoCredentialArgs, line: &str) -> String {
    let request = match cargo::parse_request(line) {
        Ok(request) => request,
        Err(error) => return cargo::error_reply(cargo::ErrorKind::Other, Some(&error.0)),
    };
    if request.args.is_empty() {
        return cargo_for(global, args, &request);
    }
    // The rest of `credential-provider`, as if typed after `cogbroker`.
    let line = std::iter::once("cogbroker".to_owned()).chain(request.args.iter().cloned());
    match super::parse(line.map(OsString::from).collect()) {
        Ok(Cli {
            global: own,
            command: Command::CargoCredential(args),
        }) => {
            // Where the daemon is: the request's options if it names any, else our own.
            let names_daemon = own.config.is_some() || own.socket.is_some() || own.url.is_some();
            cargo_for(if names_daemon { &own } else { global }, &args, &request)
        }
        Ok(_) => cargo::error_reply(
            cargo::ErrorKind::Other,
            Some("credential-provider must be [\"cogbroker\", \"cargo-credential\", ...]"),
        ),
        Err(error) => cargo::error_reply(
            cargo::ErrorKind::Other,
            Some(&format!(
                "credential-provider arguments: {}",
                error.kind().as_str().unwrap_or("invalid")
            )),
        ),
    }
}

fn cargo_for(global: &GlobalArgs, args: &CargoCredentialArgs, request: &cargo::Request) -> String {
    let other = |message: String| cargo::error_reply(cargo::ErrorKind::Other, Some(&message));
    let broker = match Broker::connect(global) {
        Ok(broker) => broker,
        Err(error) => return other(format!("{error:#}")),
    };
    let index_url = request
        .index_url
        .strip_prefix("sparse+")
        .unwrap_or(&request.index_url);
    let host = helpers::url_host(index_url).ok();
    let Some(profile) = broker.choose(args.profile.as_deref(), host.as_deref()) else {
        return cargo::error_reply(cargo::ErrorKind::UrlNotSupported, None);
    };
    match &request.kind {
        cargo::Kind::Get { .. } => {
            let kind = broker.kind(&profile, args.kind, TokenKind::Access);
            match block_on(broker.token(&profile, kind, None)) {
                Ok(credential) => (*cargo::get_reply(&credential)).clone(),
                Err(error) => other(format!("{error:#}")),
            }
        }
        cargo::Kind::Login => other(format!(
            "cogbroker keeps no registry token: it hands cargo the Cognito session of profile \
             {profile}; sign in with `cogbroker login {profile}`"
        )),
        cargo::Kind::Logout => other(format!(
            "cogbroker keeps no registry token; to end the Cognito session of profile {profile} \
             run `cogbroker logout {profile}`"
        )),
        cargo::Kind::Other(_) => cargo::error_reply(cargo::ErrorKind::OperationNotSupported, None),
    }
}

/// `bazel-credential get`.
pub(crate) fn bazel(global: &GlobalArgs, args: &BazelCredentialArgs) -> anyhow::Result<()> {
    bazel::check_command(&args.command).map_err(|error| UsageError(error.0))?;
    let input = read_stdin("Bazel's request")?;
    let (_, host) = bazel::parse_request(&input)?;
    let broker = Broker::connect(global)?;
    let Some(profile) = broker.choose(args.profile.as_deref(), Some(&host)) else {
        return write_stdout(bazel::NO_HEADERS);
    };
    let kind = broker.kind(&profile, args.kind, TokenKind::Access);
    let credential = block_on(broker.token(&profile, kind, None))?;
    write_stdout(&bazel::reply(&credential))
}

/// `goauth [URL]`.
pub(crate) fn goauth(global: &GlobalArgs, args: &GoauthArgs) -> anyhow::Result<()> {
    // After a 4xx Go writes the response on stdin; a terminal means a person ran us.
    let rejected = if std::io::stdin().is_terminal() {
        None
    } else {
        goauth::rejected_status(&read_stdin("the response on stdin")?)?
    };
    let broker = Broker::connect(global)?;
    let sets: Vec<(String, Vec<String>)> = match &args.request_url {
        Some(url) => {
            let host = helpers::url_host(url)?;
            match broker.choose(args.profile.as_deref(), Some(&host)) {
                Some(profile) => vec![(profile, vec![host])],
                None => Vec::new(),
            }
        }
        None => broker.profiles_with_hosts(args.profile.as_deref()),
    };
    block_on(async {
        let mut out = zeroize::Zeroizing::new(String::new());
        for (profile, hosts) in &sets {
            let kind = broker.kind(profile, args.kind, TokenKind::Access);
            let mut credential = broker.token(profile, kind, None).await?;
            if matches!(rejected, Some(401 | 403)) {
                let outcome = broker.reject(profile, kind, &credential.token).await?;
                report_rejection(profile, "the Go module server", outcome);
                if outcome == Rejection::Refreshed {
                    credential = broker.token(profile, kind, None).await?;
                }
            }
            out.push_str(&goauth::credential_set(hosts, &credential));
        }
        write_stdout(&out)
    })
}

fn read_stdin(what: &str) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    Ok(helpers::read_bounded(
        std::io::stdin().lock(),
        MAX_INPUT,
        what,
    )?)
}

pub(super) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(OsString::from))
            .into_iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn docker_and_cargo_invocations_become_subcommands() {
        assert_eq!(
            normalized(&["/usr/local/bin/docker-credential-cogbroker", "get"]),
            ["cogbroker", "docker-credential", "get"]
        );
        assert_eq!(
            normalized(&["cogbroker", "--cargo-plugin"]),
            ["cogbroker", "cargo-credential", "--cargo-plugin"]
        );
        assert_eq!(
            normalized(&["cogbroker", "token", "dev"]),
            ["cogbroker", "token", "dev"]
        );
        assert_eq!(
            normalized(&["/opt/docker-credential-other", "get"]),
            ["/opt/docker-credential-other", "get"]
        );
    }
}
