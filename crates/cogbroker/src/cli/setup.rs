//! `cogbroker setup git|docker|kubectl|cargo|aws`: shows the change to the consumer's own config,
//! then writes it (see `crate::setup`).

use std::io::Write as _;
use std::str::FromStr as _;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::{GlobalArgs, UsageError};
use crate::config::{ProcessEnv, ProfileName};
use crate::setup::{self, Request, Tool};

/// `setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The consumer to configure
    #[arg(value_enum)]
    pub tool: SetupTool,
    /// The cogbroker profile it asks for [default: the only configured profile]
    #[arg(long)]
    pub profile: Option<String>,
    /// git and docker: a host (or host:port) to set up, instead of the profile's `hosts`
    /// (repeatable)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// cargo: the registry (`[registries.NAME]`); without it, a global credential provider
    #[arg(long, value_name = "NAME")]
    pub registry: Option<String>,
    /// Show the change and write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SetupTool {
    /// git's global config: a credential helper per host
    Git,
    /// ~/.docker/config.json: credHelpers per registry host
    Docker,
    /// the kubeconfig: a user with an exec credential plugin
    Kubectl,
    /// ~/.cargo/config.toml: a credential provider
    Cargo,
    /// ~/.aws/config: a profile with credential_process
    Aws,
}

impl SetupTool {
    fn tool(self) -> Tool {
        match self {
            Self::Git => Tool::Git,
            Self::Docker => Tool::Docker,
            Self::Kubectl => Tool::Kubectl,
            Self::Cargo => Tool::Cargo,
            Self::Aws => Tool::Aws,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Git => "git",
            Self::Docker => "docker",
            Self::Kubectl => "kubectl",
            Self::Cargo => "cargo",
            Self::Aws => "aws",
        }
    }
}

/// Runs `setup`.
pub fn run(global: &GlobalArgs, args: &SetupArgs) -> anyhow::Result<()> {
    let settings = profile_settings(global, args.profile.as_deref())?;
    let hosts = if args.hosts.is_empty() {
        settings.hosts
    } else {
        args.hosts.clone()
    };
    for host in &hosts {
        setup::check_host(host).map_err(|error| UsageError(format!("{error:#}")))?;
    }
    if let Some(registry) = &args.registry {
        let valid = !registry.is_empty()
            && registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(UsageError(format!(
                "--registry {registry:?}: a cargo registry name is letters, digits, - and _"
            ))
            .into());
        }
        if args.tool != SetupTool::Cargo {
            return Err(UsageError("--registry is for `setup cargo`".to_owned()).into());
        }
    }
    let request = Request {
        profile: settings.profile,
        hosts,
        registry: args.registry.clone(),
    };
    let name = args.tool.name();
    let plan = setup::plan(args.tool.tool(), &request, &ProcessEnv)
        .with_context(|| format!("setup {name} failed"))?;
    let mut stdout = std::io::stdout().lock();
    let path = plan.path.display();
    if plan.is_noop() {
        writeln!(
            stdout,
            "{path}: already set up for profile {} (nothing written)",
            request.profile
        )?;
        return stdout.flush().context("writing to stdout failed");
    }
    let verb = if plan.old.is_none() {
        "create"
    } else {
        "change"
    };
    writeln!(stdout, "setup {name}: {verb} {path}:")?;
    write!(stdout, "{}", plan.diff())?;
    for note in &plan.notes {
        writeln!(stdout, "note: {note}")?;
    }
    if args.dry_run {
        writeln!(stdout, "dry run: nothing written")?;
    } else {
        plan.apply()
            .with_context(|| format!("setup {name}: writing {path} failed"))?;
        writeln!(stdout, "wrote {path}")?;
    }
    stdout.flush().context("writing to stdout failed")
}

/// What `setup` needs from the cogbroker configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProfileSettings {
    profile: String,
    hosts: Vec<String>,
}

/// The one place `setup` reads the cogbroker configuration (validated like the daemon does):
/// which profile (`--profile`, else the only one configured) and its `hosts` list.
fn profile_settings(
    global: &GlobalArgs,
    requested: Option<&str>,
) -> anyhow::Result<ProfileSettings> {
    let config = super::load_config(global)?;
    let shown = config.path.display();
    let profile = match requested {
        Some(name) => name.to_owned(),
        None if config.profiles.len() == 1 => config
            .profiles
            .keys()
            .next()
            .map(ToString::to_string)
            .unwrap_or_default(),
        None if config.profiles.is_empty() => {
            anyhow::bail!("{shown} has no [profiles.NAME]: add one first")
        }
        None => {
            let names: Vec<String> = config.profiles.keys().map(ToString::to_string).collect();
            return Err(UsageError(format!(
                "{shown} has several profiles ({}): choose one with --profile",
                names.join(", ")
            ))
            .into());
        }
    };
    // Profile names are shell-safe by construction; they end up in helper command lines.
    let name = ProfileName::from_str(&profile).map_err(UsageError)?;
    let Some(entry) = config.profiles.get(&name) else {
        return Err(UsageError(format!("{shown} has no profile {profile:?}")).into());
    };
    Ok(ProfileSettings {
        profile,
        hosts: entry.hosts.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(path: &std::path::Path) -> GlobalArgs {
        GlobalArgs {
            config: Some(path.to_path_buf()),
            socket: None,
            url: None,
        }
    }

    #[test]
    fn the_profile_and_its_hosts_come_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let profile = |name: &str, extra: &str| {
            format!(
                "[profiles.{name}]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\n{extra}"
            )
        };
        std::fs::write(
            &path,
            profile(
                "dev",
                "hosts = [\"git.example.com\", \"r.example.com:5000\"]\n",
            ),
        )
        .unwrap();
        let settings = profile_settings(&global(&path), None).unwrap();
        assert_eq!(settings.profile, "dev");
        assert_eq!(settings.hosts, ["git.example.com", "r.example.com:5000"]);

        std::fs::write(&path, profile("dev", "") + &profile("prod", "")).unwrap();
        let error = profile_settings(&global(&path), None).unwrap_err();
        assert!(format!("{error}").contains("dev, prod"), "{error}");
        let settings = profile_settings(&global(&path), Some("prod")).unwrap();
        assert!(settings.hosts.is_empty());
        let error = profile_settings(&global(&path), Some("stage")).unwrap_err();
        assert!(
            format!("{error}").contains("no profile \"stage\""),
            "{error}"
        );

        // The configuration is validated as the daemon validates it.
        std::fs::write(&path, profile("dev", "hosts = \"x\"\n")).unwrap();
        let error = format!("{:#}", profile_settings(&global(&path), None).unwrap_err());
        assert!(error.contains("profiles.dev.hosts"), "{error}");
    }
}
