//! `setup docker`: `"credHelpers": {"HOST": "cogbroker"}` per registry host in the Docker client
//! config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`). The JSON is parsed with
//! its key order kept (serde_json's `preserve_order`) and written back as Docker itself writes
//! it (tab-indented), every other key untouched. Docker then runs `docker-credential-cogbroker`.

use std::path::PathBuf;

use serde_json::Value;

use super::{Plan, Request, env_path, home, read_existing};
use crate::config::EnvSource;

/// The helper name Docker appends to `docker-credential-`.
pub const HELPER: &str = "cogbroker";

/// The Docker client config file.
pub fn config_path(env: &dyn EnvSource) -> anyhow::Result<PathBuf> {
    let dir = match env_path(env, "DOCKER_CONFIG") {
        Some(dir) => dir,
        None => home(env)?.join(".docker"),
    };
    Ok(dir.join("config.json"))
}

/// Plans the change.
pub fn plan(request: &Request, env: &dyn EnvSource) -> anyhow::Result<Plan> {
    anyhow::ensure!(
        !request.hosts.is_empty(),
        "setup docker needs the registry hosts: add `hosts = [\"registry.example.com\"]` to \
         [profiles.{}] or pass --host",
        request.profile
    );
    let (path, old) = read_existing(&config_path(env)?)?;
    let shown = path.display();
    let mut document = match &old {
        None => Value::Object(serde_json::Map::new()),
        Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {
            Value::Object(serde_json::Map::new())
        }
        Some(bytes) => serde_json::from_slice(bytes).map_err(|error| {
            anyhow::anyhow!(
                "{shown} is not valid JSON ({error}); fix it first (nothing was changed)"
            )
        })?,
    };
    let Value::Object(root) = &mut document else {
        anyhow::bail!("{shown} is not a JSON object; fix it first (nothing was changed)");
    };
    let helpers = root
        .entry("credHelpers")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Value::Object(helpers) = helpers else {
        anyhow::bail!(
            "\"credHelpers\" in {shown} is not an object; fix it first (nothing was changed)"
        );
    };
    let mut changed = false;
    for host in &request.hosts {
        if helpers.get(host) != Some(&Value::String(HELPER.to_owned())) {
            helpers.insert(host.clone(), Value::String(HELPER.to_owned()));
            changed = true;
        }
    }
    let new = match (&old, changed) {
        (Some(bytes), false) => bytes.clone(),
        _ => {
            let mut bytes = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
            let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
            serde::Serialize::serialize(&document, &mut serializer)
                .map_err(|error| anyhow::anyhow!("cannot encode {shown}: {error}"))?;
            bytes
        }
    };
    let mut notes = Vec::new();
    let helper = format!("docker-credential-{HELPER}");
    let on_path = env
        .var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|dir| !dir.is_empty())
        .any(|dir| std::path::Path::new(dir).join(&helper).is_file());
    if !on_path {
        notes.push(format!(
            "docker runs `{helper}`, which is not on PATH: it is cogbroker under that name, e.g. \
             `ln -s \"$(command -v cogbroker)\" ~/.local/bin/{helper}`"
        ));
    }
    if root_has_creds_store(&document) {
        notes.push(
            "\"credsStore\" stays the store for every other registry; credHelpers wins for these hosts"
                .to_owned(),
        );
    }
    Ok(Plan {
        path,
        old,
        new,
        new_file_mode: 0o600,
        notes,
    })
}

fn root_has_creds_store(document: &Value) -> bool {
    document.get("credsStore").is_some()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(dir: &std::path::Path) -> BTreeMap<String, String> {
        BTreeMap::from([("DOCKER_CONFIG".to_owned(), dir.display().to_string())])
    }

    fn request(hosts: &[&str]) -> Request {
        Request {
            profile: "dev".to_owned(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            registry: None,
        }
    }

    const EXISTING: &str = "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {}\n\t},\n\t\"credsStore\": \"desktop\",\n\t\"credHelpers\": {\n\t\t\"gcr.io\": \"gcloud\"\n\t},\n\t\"aliases\": {\n\t\t\"builder\": \"buildx\"\n\t}\n}";

    #[test]
    fn adds_the_hosts_keeping_every_other_key_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), EXISTING).unwrap();
        let plan = plan(&request(&["registry.example.com:5000"]), &env(dir.path())).unwrap();
        let text = String::from_utf8(plan.new.clone()).unwrap();
        assert_eq!(
            text,
            EXISTING.replace(
                "\"gcr.io\": \"gcloud\"\n",
                "\"gcr.io\": \"gcloud\",\n\t\t\"registry.example.com:5000\": \"cogbroker\"\n"
            )
        );
        plan.apply().unwrap();
        let again =
            super::plan(&request(&["registry.example.com:5000"]), &env(dir.path())).unwrap();
        assert!(again.is_noop());
    }

    #[test]
    fn a_missing_file_is_created_0600() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&request(&["r.example.com"]), &env(&dir.path().join("d"))).unwrap();
        assert_eq!(plan.old, None);
        assert_eq!(plan.new_file_mode, 0o600);
        assert_eq!(
            String::from_utf8(plan.new).unwrap(),
            "{\n\t\"credHelpers\": {\n\t\t\"r.example.com\": \"cogbroker\"\n\t}\n}"
        );
    }

    #[test]
    fn malformed_files_are_named_and_left_alone() {
        for (text, part) in [
            ("{\"auths\": ", "not valid JSON"),
            ("[1]", "not a JSON object"),
            ("{\"credHelpers\": []}", "\"credHelpers\" in"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config.json");
            std::fs::write(&path, text).unwrap();
            let error = format!(
                "{:#}",
                plan(&request(&["r"]), &env(dir.path())).unwrap_err()
            );
            assert!(
                error.contains(part) && error.contains("config.json"),
                "{error}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
    }

    #[test]
    fn no_hosts_is_an_error_that_says_where_they_come_from() {
        let dir = tempfile::tempdir().unwrap();
        let error = format!("{:#}", plan(&request(&[]), &env(dir.path())).unwrap_err());
        assert!(
            error.contains("hosts = ") && error.contains("--host"),
            "{error}"
        );
    }
}
