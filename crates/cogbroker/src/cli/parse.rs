//! Parsing the command line without building all of it.
//!
//! clap builds every subcommand's arguments before it looks at one (~380,000 instructions, a
//! third of what a credential helper's whole run costs). The commands tools run on every git,
//! docker, kubectl or cargo call are parsed by a command holding only the one subcommand named
//! on the line. Whatever that small command does not accept (help, version, a mistake) is
//! parsed again by the whole definition, so every message and exit code is the full CLI's; a
//! test holds both parses equal.

use std::ffi::OsString;

use clap::{ArgMatches, Args, FromArgMatches as _, Parser as _};

use super::helper_args::{
    AwsCredentialProcessArgs, BazelCredentialArgs, CargoCredentialArgs, DEFAULT_VAR,
    DockerCredentialArgs, EnvArgs, ExecArgs, GitCredentialArgs, GoauthArgs, KubeCredentialArgs,
    ShellArg,
};
use super::{Cli, Command, GlobalArgs, TokenArgs, TokenFormat, TokenKindArg};

/// Parses a command line (already through `helper_args::normalize_args`).
pub fn parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    if let Some(cli) = plain(&args, std::env::var_os(CONFIG_ENV)) {
        return Ok(cli);
    }
    match quick(&args) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse_from(args),
    }
}

/// Where `--config` comes from when it is not on the line (`GlobalArgs::config`).
const CONFIG_ENV: &str = "COGBROKER_CONFIG";

/// The lines the credential helpers are run with, read without clap: a hot command with exactly
/// its positional arguments, at most one `--profile P` where the command has that option, and
/// cargo's `--cargo-plugin`. Even the small command costs a helper process ~110,000
/// instructions and ~28 page faults of clap's code (of ~900,000 and ~235). Anything else (a
/// global option, any other flag, a value that starts with `-`, help, an empty
/// `COGBROKER_CONFIG`) is None and goes to clap; a test holds these parses equal to clap's.
fn plain(args: &[OsString], config_env: Option<OsString>) -> Option<Cli> {
    let config = match config_env {
        Some(value) if value.is_empty() => return None,
        value => value.map(Into::into),
    };
    let mut words = args.iter().skip(1);
    let name = words.next()?.to_str()?;
    let (mut profile, mut cargo_plugin, mut positional) = (None, false, Vec::new());
    while let Some(word) = words.next() {
        let word = word.to_str()?;
        let value = match word.strip_prefix("--profile") {
            Some("") => Some(words.next()?.to_str()?),
            Some(rest) => Some(rest.strip_prefix('=')?),
            None => None,
        };
        if let Some(value) = value {
            if profile.is_some() || value.is_empty() || value.starts_with('-') {
                return None;
            }
            profile = Some(value.to_owned());
        } else if word == "--cargo-plugin" && name == "cargo-credential" && !cargo_plugin {
            cargo_plugin = true;
        } else if word.starts_with('-') || word == "help" {
            return None;
        } else {
            positional.push(word.to_owned());
        }
    }
    let kind = None;
    let command = match (name, positional.as_slice(), profile) {
        ("token", [name], None) => Command::Token(TokenArgs {
            profile: name.clone(),
            kind: TokenKindArg::Access,
            min_ttl: None,
            format: TokenFormat::Raw,
        }),
        ("git-credential", [operation], profile) => Command::GitCredential(GitCredentialArgs {
            profile,
            kind,
            operation: operation.clone(),
        }),
        ("docker-credential", [action], profile) => {
            Command::DockerCredential(DockerCredentialArgs {
                profile,
                kind,
                action: action.clone(),
            })
        }
        ("kube-credential", [name], None) => Command::KubeCredential(KubeCredentialArgs {
            profile: name.clone(),
            kind,
        }),
        ("cargo-credential", [], profile) => Command::CargoCredential(CargoCredentialArgs {
            profile,
            kind,
            cargo_plugin,
        }),
        ("env", [name], None) => Command::Env(EnvArgs {
            profile: name.clone(),
            kind,
            shell: ShellArg::Sh,
            var: DEFAULT_VAR.to_owned(),
        }),
        _ => return None,
    };
    let global = GlobalArgs {
        config,
        socket: None,
        url: None,
    };
    Some(Cli { global, command })
}

/// Builds the variant of [`Command`] from its subcommand's matches.
type Finish = fn(&ArgMatches) -> Result<Command, clap::Error>;

/// The hot commands: the subcommand's own arguments and how to finish its variant.
fn hot(name: &str) -> Option<(clap::Command, Finish)> {
    macro_rules! hot {
        ($($name:literal => $variant:ident($args:ty),)*) => {
            match name {
                $($name => Some((
                    <$args>::augment_args(clap::Command::new($name)),
                    |matches| <$args>::from_arg_matches(matches).map(Command::$variant),
                )),)*
                _ => None,
            }
        };
    }
    hot! {
        "token" => Token(TokenArgs),
        "git-credential" => GitCredential(GitCredentialArgs),
        "docker-credential" => DockerCredential(DockerCredentialArgs),
        "kube-credential" => KubeCredential(KubeCredentialArgs),
        "cargo-credential" => CargoCredential(CargoCredentialArgs),
        "bazel-credential" => BazelCredential(BazelCredentialArgs),
        "goauth" => Goauth(GoauthArgs),
        "env" => Env(EnvArgs),
        "exec" => Exec(ExecArgs),
        "aws-credential-process" => AwsCredentialProcess(AwsCredentialProcessArgs),
    }
}

/// The parse through the small command, or None to leave it to the whole definition.
fn quick(args: &[OsString]) -> Option<Cli> {
    let (sub, finish) = hot(subcommand_name(args)?)?;
    let matches = GlobalArgs::augment_args(clap::Command::new("cogbroker"))
        .subcommand(sub)
        .try_get_matches_from(args)
        .ok()?;
    let global = GlobalArgs::from_arg_matches(&matches).ok()?;
    let (_, sub_matches) = matches.subcommand()?;
    let command = finish(sub_matches).ok()?;
    Some(Cli { global, command })
}

/// The subcommand's name: the first word after the global options. None when the line asks for
/// help or the version anywhere (before a `--`), or holds an option the small command's parent
/// would not know.
fn subcommand_name(args: &[OsString]) -> Option<&str> {
    const HELP: [&str; 4] = ["-h", "--help", "-V", "--version"];
    let mut words = args.iter().skip(1).map(|arg| arg.to_str());
    let mut name = None;
    while let Some(word) = words.next() {
        let word = word?;
        if word == "--" {
            break;
        }
        if HELP.contains(&word) {
            return None;
        }
        if name.is_some() {
            continue;
        }
        match word {
            "--config" | "--socket" | "--url" => {
                words.next()??;
            }
            _ if word.starts_with('-') => {
                let (option, _) = word.split_once('=')?;
                if !["--config", "--socket", "--url"].contains(&option) {
                    return None;
                }
            }
            _ => name = Some(word),
        }
    }
    name.filter(|name| *name != "help")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::helper_args::normalize_args;

    fn line(args: &[&str]) -> Vec<OsString> {
        normalize_args(args.iter().map(OsString::from))
    }

    /// Every line the small command takes, it parses exactly as the whole definition does.
    #[test]
    fn the_quick_parse_equals_the_full_one() {
        for args in [
            &["cogbroker", "token", "dev"][..],
            &[
                "cogbroker",
                "token",
                "dev",
                "--kind",
                "id",
                "--min-ttl",
                "5m",
            ],
            &[
                "cogbroker",
                "--config",
                "/c.toml",
                "token",
                "dev",
                "--format=json",
            ],
            &["cogbroker", "token", "dev", "--socket", "/run/s.sock"],
            &["cogbroker", "--url=http://127.0.0.1:7467", "token", "dev"],
            &["cogbroker", "git-credential", "get"],
            &[
                "cogbroker",
                "git-credential",
                "--profile",
                "dev",
                "--kind",
                "id",
                "erase",
            ],
            &["docker-credential-cogbroker", "list"],
            &["cogbroker", "docker-credential", "--profile", "dev", "get"],
            &["cogbroker", "kube-credential", "dev"],
            &["cogbroker", "--cargo-plugin"],
            &["cogbroker", "cargo-credential", "--profile", "dev"],
            &["cogbroker", "bazel-credential", "get"],
            &["cogbroker", "goauth", "https://go.example.com/mod"],
            &["cogbroker", "env", "dev", "--shell", "fish", "--var", "T"],
            &["cogbroker", "token", "dev", "--format", "bearer"],
            &[
                "cogbroker",
                "exec",
                "dev",
                "--var",
                "T",
                "--",
                "printenv",
                "--help",
            ],
            &["cogbroker", "exec", "dev", "--aws", "--", "aws", "s3", "ls"],
            &["cogbroker", "aws-credential-process", "dev"],
        ] {
            let quick = quick(&line(args)).unwrap_or_else(|| panic!("{args:?}: not quick"));
            let full = Cli::try_parse_from(line(args)).unwrap();
            assert_eq!(format!("{quick:?}"), format!("{full:?}"), "{args:?}");
        }
    }

    /// A command line written as one string, words split at spaces.
    fn words(text: &str) -> Vec<OsString> {
        normalize_args(text.split(' ').map(OsString::from))
    }

    /// Every line the credential helpers' consumers run, read without clap exactly as clap
    /// reads it: with `COGBROKER_CONFIG` as this process has it, and with one set (the same as
    /// `--config` on the line).
    #[test]
    fn the_plain_parse_equals_the_full_one() {
        for args in [
            "cogbroker token dev",
            "cogbroker git-credential get",
            "cogbroker git-credential --profile dev get",
            "cogbroker git-credential store --profile=dev",
            "cogbroker docker-credential --profile dev get",
            "docker-credential-cogbroker get",
            "cogbroker kube-credential dev",
            "cogbroker --cargo-plugin",
            "cogbroker cargo-credential --profile dev --cargo-plugin",
            "cogbroker cargo-credential",
            "cogbroker env dev",
        ] {
            let env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty());
            let plain_parse =
                plain(&words(args), env).unwrap_or_else(|| panic!("{args:?}: not plain"));
            let full = Cli::try_parse_from(words(args)).unwrap();
            assert_eq!(format!("{plain_parse:?}"), format!("{full:?}"), "{args:?}");

            let configured = plain(&words(args), Some("/c.toml".into())).unwrap();
            let mut with_option = words(args);
            with_option.splice(1..1, ["--config".into(), "/c.toml".into()]);
            let full = Cli::try_parse_from(with_option).unwrap();
            assert_eq!(format!("{configured:?}"), format!("{full:?}"), "{args:?}");
        }
    }

    /// Whatever is not one of those plain lines is left to clap.
    #[test]
    fn the_plain_parse_leaves_everything_else_to_clap() {
        for args in [
            "cogbroker token dev --kind id",
            "cogbroker token --help",
            "cogbroker token help",
            "cogbroker token",
            "cogbroker token dev extra",
            "cogbroker token -",
            "cogbroker token --profile dev",
            "cogbroker --config /c.toml token dev",
            "cogbroker --socket /s token dev",
            "cogbroker git-credential --profile a --profile b get",
            "cogbroker git-credential --profile -x get",
            "cogbroker git-credential --profile= get",
            "cogbroker git-credential --profiles dev get",
            "cogbroker git-credential --profile",
            "cogbroker git-credential --cargo-plugin get",
            "cogbroker kube-credential --profile dev",
            "cogbroker env dev --shell fish",
            "cogbroker env dev -- x",
            "cogbroker status",
            "cogbroker",
        ] {
            assert!(plain(&words(args), None).is_none(), "{args:?}");
        }
        // An empty `COGBROKER_CONFIG` is clap's to judge.
        assert!(plain(&words("cogbroker token dev"), Some("".into())).is_none());
    }

    /// Help, the version, other commands and mistakes go to the whole definition, whose
    /// messages name every command.
    #[test]
    fn everything_else_is_left_to_the_full_parse() {
        for args in [
            &["cogbroker", "token", "--help"][..],
            &["cogbroker", "--version", "token", "dev"],
            &["cogbroker", "help", "token"],
            &["cogbroker", "status"],
            &["cogbroker", "serve"],
            &["cogbroker", "token"],
            &["cogbroker", "token", "dev", "--kind", "refresh"],
            &["cogbroker", "--verbose", "token", "dev"],
            &[
                "cogbroker",
                "--socket",
                "/s",
                "--url",
                "http://127.0.0.1:1",
                "token",
                "dev",
            ],
            &["cogbroker", "tokne", "dev"],
            &["cogbroker", "exec", "dev"],
            &["cogbroker"],
        ] {
            assert!(quick(&line(args)).is_none(), "{args:?}");
        }
        let error = parse(line(&["cogbroker", "token", "dev", "--kind", "refresh"])).unwrap_err();
        assert!(error.to_string().contains("'refresh'"), "{error}");
        // `exec` needs the command to run.
        assert!(parse(line(&["cogbroker", "exec", "dev"])).is_err());
        let help = parse(line(&["cogbroker", "token", "--help"])).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(help.to_string().contains("Print a token valid"), "{help}");
    }
}
