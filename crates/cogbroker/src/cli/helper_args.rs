//! The helper modes' arguments (design.md §12) and how `main` turns the command lines docker
//! and cargo run into ours. Apart from the helpers' logic so that the command-line parse
//! (`parse.rs`) and the helpers (`helpers.rs`, which parses cargo's in-request arguments) do
//! not import each other.

use std::ffi::OsString;

use clap::{Args, ValueEnum};

use super::TokenKindArg;

/// The variable `env` and `exec` set unless `--var` names another.
pub const DEFAULT_VAR: &str = "COGBROKER_TOKEN";

/// `git-credential`.
#[derive(Debug, Args)]
pub struct GitCredentialArgs {
    /// Answer for this profile whatever the host [default: the profile whose `hosts` has it]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Which token [default: the profile's `token_kind`, else access]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
    /// git's operation: get, store, erase or capability (others are ignored, as git requires)
    pub operation: String,
}

/// `docker-credential` (also run as `docker-credential-cogbroker <action>`).
#[derive(Debug, Args)]
pub struct DockerCredentialArgs {
    /// Answer for this profile whatever the registry [default: the profile whose `hosts` has it]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Which token [default: the profile's `token_kind`, else access]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
    /// get, store, erase, list or version
    pub action: String,
}

/// `kube-credential`.
#[derive(Debug, Args)]
pub struct KubeCredentialArgs {
    /// The profile
    pub profile: String,
    /// Which token [default: the profile's `token_kind`, else id]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
}

/// `cargo-credential` (cargo runs `cogbroker --cargo-plugin` and sends these in `args`).
#[derive(Debug, Args)]
pub struct CargoCredentialArgs {
    /// Answer for this profile whatever the registry [default: the profile whose `hosts` has
    /// the index URL's host]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Which token [default: the profile's `token_kind`, else access]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
    /// Speak the provider protocol on stdin/stdout (cargo passes it)
    #[arg(long, hide = true)]
    pub cargo_plugin: bool,
}

/// `bazel-credential`.
#[derive(Debug, Args)]
pub struct BazelCredentialArgs {
    /// Answer for this profile whatever the host [default: the profile whose `hosts` has it]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Which token [default: the profile's `token_kind`, else access]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
    /// Bazel's command (`get`)
    pub command: String,
}

/// `goauth`.
#[derive(Debug, Args)]
pub struct GoauthArgs {
    /// Answer for this profile [default: the profile whose `hosts` has the URL's host]
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Which token [default: the profile's `token_kind`, else access]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
    /// The URL Go is fetching (without it: every profile's `hosts`)
    #[arg(value_name = "URL")]
    pub request_url: Option<String>,
}

/// `env`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The profile
    pub profile: String,
    /// Which token [default: the profile's `token_kind`, else access]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
    /// The shell to write for
    #[arg(long, value_enum, default_value_t = ShellArg::Sh)]
    pub shell: ShellArg,
    /// The variable to set
    #[arg(long, value_name = "NAME", default_value = DEFAULT_VAR)]
    pub var: String,
}

/// How `exec --token-file` writes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFileFormat {
    /// The bare token and a newline
    Raw,
    /// A JSON object: token, token_type, expires_at, profile, kind
    Json,
    /// `Authorization: Bearer <token>`
    Header,
}

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The profile
    pub profile: String,
    /// Which token [default: the profile's `token_kind`, else access]
    #[arg(long, value_enum)]
    pub kind: Option<TokenKindArg>,
    /// The variable the command gets the token in
    #[arg(long, value_name = "NAME", default_value = DEFAULT_VAR)]
    pub var: String,
    /// Also keep this file holding a valid token while the command runs (0600, replaced
    /// atomically, removed when it exits); the command gets its path in COGBROKER_TOKEN_FILE
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// How the token file is written
    #[arg(long, value_enum, default_value = "raw", requires = "token_file")]
    pub token_format: TokenFileFormat,
    /// Also serve the profile's AWS credentials to the command (AWS_CONTAINER_CREDENTIALS_FULL_URI
    /// and a grant that ends with it; other AWS credential variables removed)
    #[arg(long, conflicts_with = "token_file")]
    pub aws: bool,
    /// The command and its arguments, after `--` (run directly, no shell)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `aws-credential-process`.
#[derive(Debug, Args)]
pub struct AwsCredentialProcessArgs {
    /// The profile (one with an identity_pool_id)
    pub profile: String,
}

/// `env --shell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShellArg {
    /// POSIX sh, bash, zsh
    Sh,
    /// fish
    Fish,
    /// PowerShell
    Powershell,
}

/// The command line as `main` should parse it: `docker-credential-cogbroker <action>` (a link to
/// this binary, as docker runs it) becomes `cogbroker docker-credential <action>`, and cargo's
/// `cogbroker --cargo-plugin` becomes `cogbroker cargo-credential --cargo-plugin`.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let invoked_as = args
        .first()
        .and_then(|first| std::path::Path::new(first).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if invoked_as == "docker-credential-cogbroker" {
        args[0] = OsString::from("cogbroker");
        args.insert(1, OsString::from("docker-credential"));
    } else if !args.iter().any(|arg| arg == "cargo-credential") {
        // cargo runs `<first element> --cargo-plugin`; global options may precede it.
        if let Some(at) = args.iter().position(|arg| arg == "--cargo-plugin") {
            args.insert(at, OsString::from("cargo-credential"));
        }
    }
    args
}
