//! The command line: argument definitions (clap derive), dispatch, and the mapping of failures
//! to exit codes (design.md §6). One submodule per command group.

mod browser;
mod doctor;
mod exec;
pub mod helper_args;
pub mod helpers;
mod login;
mod parse;
mod session;
pub mod setup;
mod terminal;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::api::{self, TokenKind};
use crate::client::{ClientError, DaemonClient, Target};
use crate::config::{self, Config, ProcessEnv};

pub use parse::parse;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: any other error.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: bad usage (also what clap uses).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon is not reachable.
pub const EXIT_DAEMON_UNREACHABLE: u8 = 3;
/// Exit code: the profile needs `cogbroker login <p>`.
pub const EXIT_LOGIN_REQUIRED: u8 = 4;
/// Exit code: Cognito is unavailable and no valid token is cached.
pub const EXIT_UPSTREAM_UNAVAILABLE: u8 = 5;

/// A local token broker for Amazon Cognito user pools.
///
/// A daemon (`cogbroker serve`) logs you in once, keeps the refresh token in the OS keyring,
/// refreshes tokens before they expire and hands them to local tools over a Unix socket and
/// loopback HTTP. Every other command talks to that daemon.
#[derive(Debug, Parser)]
#[command(
    name = "cogbroker",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 ok, 1 error, 2 usage, 3 daemon not reachable, 4 login required, \
                  5 upstream unavailable, 130 interrupted.\nStart with `cogbroker demo` to try it against a local \
                  emulator."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: $XDG_CONFIG_HOME/cogbroker/config.toml]
    #[arg(long, global = true, env = "COGBROKER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Reach the daemon on this Unix socket instead of the configured one
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "url")]
    pub socket: Option<PathBuf>,
    /// Reach the daemon over loopback TCP, e.g. http://127.0.0.1:7467
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<url::Url>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (foreground; systemd `Type=notify` aware)
    Serve,
    /// Log a profile in: prompts for the password and any challenge on the terminal
    Login(LoginArgs),
    /// Print a token valid for at least --min-ttl (stdout carries only the token)
    Token(TokenArgs),
    /// Show the state of one profile or all of them
    Status(StatusArgs),
    /// Refresh a profile's tokens now
    Refresh(ProfileArg),
    /// Revoke the session and erase the stored refresh token
    Logout(LogoutArgs),
    /// List the configured profiles
    Profiles(ProfilesArgs),
    /// Show which programs took which profile's tokens, and when (the daemon's recent memory)
    Audit(AuditArgs),
    /// Check the configuration, store, socket, daemon, clock skew and Cognito reachability
    Doctor,
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Run a local emulator and daemon, log in and show how to get tokens
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    // The credential-helper modes (design.md §12, docs/integrations.md).
    /// git credential helper: credential.helper = "!cogbroker git-credential"
    GitCredential(helpers::GitCredentialArgs),
    /// Docker credential helper: "credsStore": "cogbroker" (also as docker-credential-cogbroker)
    DockerCredential(helpers::DockerCredentialArgs),
    /// kubectl exec credential plugin: prints an ExecCredential
    KubeCredential(helpers::KubeCredentialArgs),
    /// cargo credential provider: credential-provider = ["cogbroker", "cargo-credential"]
    CargoCredential(helpers::CargoCredentialArgs),
    /// Bazel credential helper: --credential_helper=cogbroker-bazel (runs `bazel-credential get`)
    BazelCredential(helpers::BazelCredentialArgs),
    /// Go GOAUTH command: GOAUTH="cogbroker goauth"
    Goauth(helpers::GoauthArgs),
    /// Print `export COGBROKER_TOKEN=...` for eval "$(cogbroker env P)"
    Env(helpers::EnvArgs),
    /// Run a command with the token in its environment (no shell; its exit status is ours)
    Exec(helpers::ExecArgs),
    /// AWS credential_process: credential_process = cogbroker aws-credential-process P
    AwsCredentialProcess(helpers::AwsCredentialProcessArgs),
    /// Configure git, docker, kubectl, cargo or the AWS tools to ask cogbroker (shows the
    /// change, then writes it; idempotent; keeps the file's other settings)
    Setup(setup::SetupArgs),
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this profile's hand-outs
    pub profile: Option<String>,
    /// Print the daemon's JSON reply
    #[arg(long)]
    pub json: bool,
}

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The profile to log in
    pub profile: String,
    /// Read the password from the first line of standard input (for scripts)
    #[arg(long, conflicts_with_all = ["browser", "no_browser"])]
    pub password_stdin: bool,
    /// Sign in through the system browser ($BROWSER, else xdg-open/open): the default for
    /// grant = "authorization_code"
    #[arg(long, conflicts_with = "no_browser")]
    pub browser: bool,
    /// Print the sign-in URL on stderr instead of opening a browser, and accept the redirect
    /// URL pasted on standard input (headless machines over SSH)
    #[arg(long)]
    pub no_browser: bool,
}

/// `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The profile
    pub profile: String,
    /// Which token
    #[arg(long, value_enum, default_value_t = TokenKindArg::Access)]
    pub kind: TokenKindArg,
    /// The token must stay valid at least this long (e.g. 90s, 5m, 1h; more than 1d asks for the
    /// freshest token)
    #[arg(long, value_name = "DURATION", value_parser = api::duration::parse_cli)]
    pub min_ttl: Option<Duration>,
    /// Output format
    #[arg(long, value_enum, default_value_t = TokenFormat::Raw)]
    pub format: TokenFormat,
}

/// Which token `token` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenKindArg {
    /// The access token (for APIs)
    Access,
    /// The id token (identity claims)
    Id,
}

impl From<TokenKindArg> for TokenKind {
    fn from(kind: TokenKindArg) -> Self {
        match kind {
            TokenKindArg::Access => Self::Access,
            TokenKindArg::Id => Self::Id,
        }
    }
}

/// How `token` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    /// The bare token and a newline
    Raw,
    /// The daemon's JSON object (token, expires_at, expires_in, ...)
    Json,
    /// `Authorization: Bearer <token>`
    Header,
    /// `Bearer <token>` (cargo:token-from-stdout, pnpm tokenHelper)
    Bearer,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One profile (default: all)
    pub profile: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// A command taking one profile.
#[derive(Debug, Args)]
pub struct ProfileArg {
    /// The profile
    pub profile: String,
}

/// `logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The profile
    pub profile: String,
    /// Also forget this device at Cognito (the next login asks for MFA again)
    #[arg(long)]
    pub forget_device: bool,
}

/// `profiles`.
#[derive(Debug, Args)]
pub struct ProfilesArgs {
    /// Print JSON instead of one name per line
    #[arg(long)]
    pub json: bool,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Wait for one background refresh, then exit (what CI runs)
    #[arg(long)]
    pub once: bool,
}

/// Exit code: stopped by Ctrl-C (the shell convention, 128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The person pressed Ctrl-C (exit code 130).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// A usage mistake found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            // They pick the daemon a client talks to; silently ignoring them here would leave
            // the daemon listening somewhere else than the user asked.
            if cli.global.socket.is_some() || cli.global.url.is_some() {
                return Err(UsageError(
                    "--socket and --url choose the daemon a client command talks to; for `serve` \
                     set [daemon] socket and listen in the configuration (or COGBROKER_SOCKET and \
                     COGBROKER_LISTEN)"
                        .to_owned(),
                )
                .into());
            }
            crate::serve::main(cli.global.config.as_deref())
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => crate::demo::main(args.once),
        Command::Completions(args) => {
            let mut stdout = std::io::stdout().lock();
            clap_complete::generate(args.shell, &mut Cli::command(), "cogbroker", &mut stdout);
            stdout.flush().context("writing to stdout failed")
        }
        Command::Doctor => block_on(doctor::run(&cli.global)),
        Command::Login(args) => block_on(async {
            let daemon = Daemon::connect(&cli.global)?;
            login::run(&daemon, &args).await
        }),
        Command::Token(args) => block_on(async {
            let daemon = Daemon::connect(&cli.global)?;
            session::token(&daemon, &args).await
        }),
        Command::Status(args) => block_on(async {
            let daemon = Daemon::connect(&cli.global)?;
            session::status(&daemon, &args).await
        }),
        Command::Refresh(args) => block_on(async {
            let daemon = Daemon::connect(&cli.global)?;
            session::refresh(&daemon, &args.profile).await
        }),
        Command::Logout(args) => block_on(async {
            let daemon = Daemon::connect(&cli.global)?;
            session::logout(&daemon, &args).await
        }),
        Command::Profiles(args) => block_on(async {
            let daemon = Daemon::connect(&cli.global)?;
            session::profiles(&daemon, &args).await
        }),
        Command::Audit(args) => block_on(async {
            let daemon = Daemon::connect(&cli.global)?;
            session::audit(&daemon, &args).await
        }),
        Command::GitCredential(args) => helpers::git(&cli.global, &args),
        Command::DockerCredential(args) => helpers::docker(&cli.global, &args),
        Command::KubeCredential(args) => helpers::kube(&cli.global, &args),
        Command::CargoCredential(args) => helpers::cargo(&cli.global, &args),
        Command::BazelCredential(args) => helpers::bazel(&cli.global, &args),
        Command::Goauth(args) => helpers::goauth(&cli.global, &args),
        Command::Env(args) => exec::env(&cli.global, &args),
        Command::Exec(args) => exec::exec(&cli.global, &args),
        Command::AwsCredentialProcess(args) => exec::aws_credential_process(&cli.global, &args),
        Command::Setup(args) => setup::run(&cli.global, &args),
    }
}

/// Maps an error to the documented exit code.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(client_error) = cause.downcast_ref::<ClientError>() {
            return match client_error {
                ClientError::Unreachable { .. } | ClientError::Impostor { .. } => {
                    EXIT_DAEMON_UNREACHABLE
                }
                ClientError::Api { code, .. } if code == "login_required" => EXIT_LOGIN_REQUIRED,
                ClientError::Api { code, .. } if code == "upstream_unavailable" => {
                    EXIT_UPSTREAM_UNAVAILABLE
                }
                _ => EXIT_ERROR,
            };
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return EXIT_USAGE;
        }
        if cause.downcast_ref::<Interrupted>().is_some() {
            return EXIT_INTERRUPTED;
        }
    }
    EXIT_ERROR
}

/// The daemon as the CLI reaches it, plus the configuration when one was loaded.
#[derive(Debug)]
pub(crate) struct Daemon {
    pub(crate) client: DaemonClient,
    pub(crate) config: Option<Config>,
}

impl Daemon {
    /// Resolves where the daemon listens: `--url`, `--socket`, else the configuration file
    /// (its socket, else its TCP listener), else the default socket path.
    pub(crate) fn connect(global: &GlobalArgs) -> anyhow::Result<Self> {
        if let Some(url) = &global.url {
            let config = load_config(global).ok();
            let api_key = config.as_ref().map(read_api_key).transpose()?.flatten();
            return Ok(Self {
                client: DaemonClient::new(Target::from_url(url)?, api_key),
                config,
            });
        }
        if let Some(socket) = &global.socket {
            return Ok(Self {
                client: DaemonClient::new(Target::Unix(socket.clone()), None),
                config: load_config(global).ok(),
            });
        }
        let config = load_config(global)?;
        let target = target_from_config(&config)?;
        // The probe's connection serves the first request: one connection per command.
        let probe = crate::client::Connected::now(&target);
        if probe.is_none() {
            crate::autostart::announce(crate::autostart::ensure_running(&config, &target)?);
        }
        let config = Some(config);
        let api_key = config.as_ref().map(read_api_key).transpose()?.flatten();
        Ok(Self {
            client: DaemonClient::new(target, api_key).with_connection(probe),
            config,
        })
    }
}

/// Loads the configuration: an explicit `--config` / `COGBROKER_CONFIG` file must exist; a
/// missing default file means the defaults (no profiles).
pub(crate) fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let env = ProcessEnv;
    match &global.config {
        Some(path) => config::load(path, &env),
        None => config::load_or_default(&config::default_path(&env), &env),
    }
}

/// The daemon address a configuration describes.
pub(crate) fn target_from_config(config: &Config) -> anyhow::Result<Target> {
    if let config::SocketSetting::Path(path) = &config.daemon.socket {
        return Ok(Target::Unix(path.clone()));
    }
    if let config::Listen::Tcp(addr) = &config.daemon.listen {
        return Ok(Target::Tcp(*addr));
    }
    Err(UsageError(format!(
        "{} turns both the socket and TCP off: the daemon cannot be reached",
        config.path.display()
    ))
    .into())
}

/// The API key the configuration names, read with the daemon's own strict reader.
pub(crate) fn read_api_key(config: &Config) -> anyhow::Result<Option<SecretString>> {
    config
        .daemon
        .api_key_file
        .as_deref()
        .map(crate::apikey::read)
        .transpose()
}

fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime failed")?
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let check = |text: &str, seconds: u64| {
            assert_eq!(
                api::duration::parse_cli(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        };
        check("90", 90);
        check("90s", 90);
        check("5m", 300);
        check("1h30m", 5400);
        check("2d", 172_800);
        for bad in ["", "m", "5x", "5m3", "-1s"] {
            assert!(api::duration::parse_cli(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_min_ttl_longer_than_a_day_asks_for_a_day() {
        let path = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.command {
                Command::Token(args) => {
                    api::path::token(&args.profile, args.kind.into(), args.min_ttl)
                }
                _ => unreachable!("a token command"),
            }
        };
        assert_eq!(
            path(&["cogbroker", "token", "dev", "--min-ttl", "2d"]),
            "/v1/profiles/dev/token?kind=access&min_ttl=86400"
        );
        assert_eq!(
            path(&[
                "cogbroker",
                "token",
                "dev",
                "--kind",
                "id",
                "--min-ttl",
                "5m"
            ]),
            "/v1/profiles/dev/token?kind=id&min_ttl=300"
        );
        assert_eq!(
            path(&["cogbroker", "token", "dev"]),
            "/v1/profiles/dev/token?kind=access"
        );
    }

    #[test]
    fn serve_refuses_client_options() {
        for args in [
            ["cogbroker", "--socket", "/tmp/x.sock", "serve"],
            ["cogbroker", "--url", "http://127.0.0.1:1", "serve"],
        ] {
            let error = run(Cli::try_parse_from(args).unwrap()).unwrap_err();
            assert_eq!(exit_code(&error), EXIT_USAGE, "{error:#}");
            assert!(
                format!("{error:#}").contains("[daemon] socket"),
                "{error:#}"
            );
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes_follow_the_daemon_error() {
        let api = |code: &str| {
            anyhow::Error::new(ClientError::Api {
                status: 400,
                code: code.to_owned(),
                message: "m".to_owned(),
                field: None,
                retry_after: None,
                hint: String::new(),
            })
        };
        assert_eq!(exit_code(&api("login_required")), EXIT_LOGIN_REQUIRED);
        assert_eq!(
            exit_code(&api("upstream_unavailable")),
            EXIT_UPSTREAM_UNAVAILABLE
        );
        assert_eq!(exit_code(&api("unknown_profile")), EXIT_ERROR);
        let unreachable = anyhow::Error::new(ClientError::Unreachable {
            target: "unix:/x".to_owned(),
            reason: "connection refused".to_owned(),
        })
        .context("getting a token failed");
        assert_eq!(exit_code(&unreachable), EXIT_DAEMON_UNREACHABLE);
        assert_eq!(exit_code(&UsageError("x".to_owned()).into()), EXIT_USAGE);
        assert_eq!(
            exit_code(&anyhow::Error::new(Interrupted).context("login failed")),
            EXIT_INTERRUPTED
        );
        assert_eq!(exit_code(&anyhow::anyhow!("other")), EXIT_ERROR);
    }
}
