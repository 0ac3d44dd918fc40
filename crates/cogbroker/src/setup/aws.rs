//! `setup aws`: `[profile P] credential_process = cogbroker aws-credential-process P` in the AWS
//! shared config file (`$AWS_CONFIG_FILE`, else `~/.aws/config`), edited in place by [`Ini`].
//! The AWS profile has the cogbroker profile's name; `default` is the `[default]` section.

use std::path::PathBuf;

use super::ini::Ini;
use super::{Plan, Request, env_path, home, read_existing};
use crate::config::EnvSource;

/// The AWS shared config file.
pub fn config_path(env: &dyn EnvSource) -> anyhow::Result<PathBuf> {
    match env_path(env, "AWS_CONFIG_FILE") {
        Some(path) => Ok(path),
        None => Ok(home(env)?.join(".aws").join("config")),
    }
}

/// The command line the AWS SDKs and CLI run.
pub fn credential_process(profile: &str) -> String {
    format!("cogbroker aws-credential-process {profile}")
}

/// Plans the change.
pub fn plan(request: &Request, env: &dyn EnvSource) -> anyhow::Result<Plan> {
    let (path, old) = read_existing(&config_path(env)?)?;
    let text = match &old {
        Some(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?,
        None => "",
    };
    let mut ini = Ini::parse(text).map_err(|error| {
        anyhow::anyhow!(
            "{}: {error}; fix it first (nothing was changed)",
            path.display()
        )
    })?;
    let section = if request.profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {}", request.profile)
    };
    // Credentials these keys give win over credential_process in the SDKs' provider chain.
    let shadowing: Vec<&str> = [
        "aws_access_key_id",
        "sso_session",
        "sso_start_url",
        "web_identity_token_file",
    ]
    .into_iter()
    .filter(|key| ini.get(&section, key).is_some())
    .collect();
    ini.set(
        &section,
        "credential_process",
        &credential_process(&request.profile),
    );
    let mut notes = vec![format!(
        "AWS tools use it with `--profile {p}` or AWS_PROFILE={p}",
        p = request.profile
    )];
    if !shadowing.is_empty() {
        notes.push(format!(
            "[{section}] also sets {}, which the AWS SDKs prefer to credential_process: remove it",
            shadowing.join(", ")
        ));
    }
    Ok(Plan {
        path,
        old,
        new: ini.to_string().into_bytes(),
        new_file_mode: 0o600,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(dir: &std::path::Path) -> BTreeMap<String, String> {
        BTreeMap::from([("HOME".to_owned(), dir.display().to_string())])
    }

    fn request(profile: &str) -> Request {
        Request {
            profile: profile.to_owned(),
            hosts: Vec::new(),
            registry: None,
        }
    }

    #[test]
    fn adds_the_profile_keeping_the_file_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".aws/config");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "# mine\n[default]\nregion = eu-west-1\n").unwrap();
        let plan = plan(&request("dev"), &env(dir.path())).unwrap();
        assert_eq!(
            String::from_utf8(plan.new.clone()).unwrap(),
            "# mine\n[default]\nregion = eu-west-1\n\n[profile dev]\ncredential_process = cogbroker aws-credential-process dev\n"
        );
        plan.apply().unwrap();
        let again = super::plan(&request("dev"), &env(dir.path())).unwrap();
        assert!(again.is_noop());
    }

    #[test]
    fn default_is_its_own_section_and_aws_config_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("aws.ini");
        let mut env = env(dir.path());
        env.insert(
            "AWS_CONFIG_FILE".to_owned(),
            elsewhere.display().to_string(),
        );
        let plan = plan(&request("default"), &env).unwrap();
        assert_eq!(plan.path, elsewhere);
        assert_eq!(plan.old, None);
        assert_eq!(
            String::from_utf8(plan.new).unwrap(),
            "[default]\ncredential_process = cogbroker aws-credential-process default\n"
        );
    }

    #[test]
    fn a_malformed_file_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".aws/config");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "region = x\n").unwrap();
        let error = plan(&request("dev"), &env(dir.path())).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains(".aws/config: line 1"), "{text}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "region = x\n");
    }
}
