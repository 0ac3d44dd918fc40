//! `setup cargo`: a credential provider in cargo's config (`$CARGO_HOME/config.toml`, else
//! `~/.cargo/config.toml`; the legacy extension-less `config` when only that exists), edited
//! with `toml_edit` so comments, order and formatting stay. With a registry name:
//! `[registries.NAME] credential-provider = ["cogbroker", "cargo-credential", "--profile", "P"]`;
//! without: our provider joins `[registry] global-credential-providers` (cargo's default
//! `cargo:token` is kept first, so crates.io still works; later entries are tried first).

use std::path::PathBuf;

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::{Plan, Request, env_path, home, read_existing};
use crate::config::EnvSource;

/// The cargo config file to edit.
pub fn config_path(env: &dyn EnvSource) -> anyhow::Result<PathBuf> {
    let dir = match env_path(env, "CARGO_HOME") {
        Some(dir) => dir,
        None => home(env)?.join(".cargo"),
    };
    let legacy = dir.join("config");
    let current = dir.join("config.toml");
    Ok(if !current.exists() && legacy.is_file() {
        legacy
    } else {
        current
    })
}

/// The provider as a per-registry array.
pub fn provider_args(profile: &str) -> [String; 4] {
    [
        "cogbroker".to_owned(),
        "cargo-credential".to_owned(),
        "--profile".to_owned(),
        profile.to_owned(),
    ]
}

/// Plans the change.
pub fn plan(request: &Request, env: &dyn EnvSource) -> anyhow::Result<Plan> {
    let (path, old) = read_existing(&config_path(env)?)?;
    let shown = path.display().to_string();
    let text = match &old {
        Some(bytes) => {
            std::str::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown} is not UTF-8 text"))?
        }
        None => "",
    };
    let mut document: DocumentMut = text.parse().map_err(|error: toml_edit::TomlError| {
        anyhow::anyhow!("{shown} is not valid TOML: {error}fix it first (nothing was changed)")
    })?;
    let mut notes = Vec::new();
    let changed = match &request.registry {
        Some(name) => set_registry(&mut document, name, &request.profile, &shown, &mut notes)?,
        None => add_global(&mut document, &request.profile, &shown)?,
    };
    let new = if changed || old.is_none() {
        document.to_string().into_bytes()
    } else {
        old.clone().unwrap_or_default()
    };
    Ok(Plan {
        path,
        old,
        new,
        new_file_mode: 0o644,
        notes,
    })
}

fn table<'a>(
    parent: &'a mut Table,
    key: &str,
    shown: &str,
    what: &str,
) -> anyhow::Result<&'a mut Table> {
    let item = parent.entry(key).or_insert_with(|| {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    });
    item.as_table_mut().ok_or_else(|| {
        anyhow::anyhow!("`{what}` in {shown} is not a table; fix it first (nothing was changed)")
    })
}

fn set_registry(
    document: &mut DocumentMut,
    name: &str,
    profile: &str,
    shown: &str,
    notes: &mut Vec<String>,
) -> anyhow::Result<bool> {
    let registries = table(document.as_table_mut(), "registries", shown, "registries")?;
    let registry = table(registries, name, shown, &format!("registries.{name}"))?;
    registry.set_implicit(false);
    if registry.get("index").is_none() {
        notes.push(format!(
            "[registries.{name}] has no `index` yet: add the registry's index URL (e.g. \
             index = \"sparse+https://cargo.example.com/index/\")"
        ));
    }
    let wanted = provider_args(profile);
    let current = registry.get("credential-provider").and_then(Item::as_array);
    if let Some(current) = current {
        let same = current.len() == wanted.len()
            && current
                .iter()
                .zip(&wanted)
                .all(|(value, want)| value.as_str() == Some(want.as_str()));
        if same {
            return Ok(false);
        }
    }
    let array: Array = wanted.iter().map(String::as_str).collect();
    registry.insert("credential-provider", Item::Value(Value::Array(array)));
    Ok(true)
}

fn add_global(document: &mut DocumentMut, profile: &str, shown: &str) -> anyhow::Result<bool> {
    let registry = table(document.as_table_mut(), "registry", shown, "registry")?;
    registry.set_implicit(false);
    let entry = provider_args(profile).join(" ");
    match registry.get_mut("global-credential-providers") {
        None => {
            let array: Array = ["cargo:token", entry.as_str()].into_iter().collect();
            registry.insert(
                "global-credential-providers",
                Item::Value(Value::Array(array)),
            );
            Ok(true)
        }
        Some(item) => {
            let array = item.as_array_mut().ok_or_else(|| {
                anyhow::anyhow!(
                    "`registry.global-credential-providers` in {shown} is not an array; fix it \
                     first (nothing was changed)"
                )
            })?;
            if array
                .iter()
                .any(|value| value.as_str() == Some(entry.as_str()))
            {
                return Ok(false);
            }
            array.push(entry.as_str());
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env(dir: &std::path::Path) -> BTreeMap<String, String> {
        BTreeMap::from([("CARGO_HOME".to_owned(), dir.display().to_string())])
    }

    fn request(registry: Option<&str>) -> Request {
        Request {
            profile: "dev".to_owned(),
            hosts: Vec::new(),
            registry: registry.map(str::to_owned),
        }
    }

    const EXISTING: &str = "\
# build settings
[build]
jobs = 2 # two cores

[registries.corp]
index = \"sparse+https://cargo.example.com/index/\"   # our registry
";

    #[test]
    fn a_registry_gets_its_provider_and_comments_stay() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), EXISTING).unwrap();
        let plan = plan(&request(Some("corp")), &env(dir.path())).unwrap();
        let text = String::from_utf8(plan.new.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "{EXISTING}credential-provider = [\"cogbroker\", \"cargo-credential\", \"--profile\", \"dev\"]\n"
            )
        );
        assert!(plan.notes.is_empty(), "{:?}", plan.notes);
        plan.apply().unwrap();
        assert!(
            super::plan(&request(Some("corp")), &env(dir.path()))
                .unwrap()
                .is_noop()
        );
        // What cargo reads back.
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            parsed["registries"]["corp"]["credential-provider"],
            toml::Value::Array(
                provider_args("dev")
                    .iter()
                    .map(|a| toml::Value::String(a.clone()))
                    .collect()
            )
        );
    }

    #[test]
    fn the_global_providers_keep_cargo_token_and_gain_ours_once() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&request(None), &env(dir.path())).unwrap();
        assert_eq!(plan.old, None);
        assert_eq!(
            String::from_utf8(plan.new.clone()).unwrap(),
            "[registry]\nglobal-credential-providers = [\"cargo:token\", \"cogbroker cargo-credential --profile dev\"]\n"
        );
        plan.apply().unwrap();
        assert!(
            super::plan(&request(None), &env(dir.path()))
                .unwrap()
                .is_noop()
        );

        std::fs::write(
            dir.path().join("config.toml"),
            "[registry]\n# mine first\nglobal-credential-providers = [\"cargo:libsecret\"]\n",
        )
        .unwrap();
        let plan = super::plan(&request(None), &env(dir.path())).unwrap();
        assert_eq!(
            String::from_utf8(plan.new).unwrap(),
            "[registry]\n# mine first\nglobal-credential-providers = [\"cargo:libsecret\", \"cogbroker cargo-credential --profile dev\"]\n"
        );
    }

    #[test]
    fn a_registry_without_an_index_gets_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&request(Some("corp")), &env(dir.path())).unwrap();
        assert!(plan.notes[0].contains("no `index`"), "{:?}", plan.notes);
        assert_eq!(
            String::from_utf8(plan.new).unwrap(),
            "[registries.corp]\ncredential-provider = [\"cogbroker\", \"cargo-credential\", \"--profile\", \"dev\"]\n"
        );
    }

    #[test]
    fn the_legacy_config_file_is_used_when_it_is_the_only_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), "[build]\n").unwrap();
        assert_eq!(
            config_path(&env(dir.path())).unwrap(),
            dir.path().join("config")
        );
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        assert_eq!(
            config_path(&env(dir.path())).unwrap(),
            dir.path().join("config.toml")
        );
    }

    #[test]
    fn malformed_files_are_named_and_left_alone() {
        for (text, part) in [
            ("[build\n", "not valid TOML"),
            ("registries = 1\n", "`registries` in"),
            (
                "[registry]\nglobal-credential-providers = \"x\"\n",
                "not an array",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("config.toml");
            std::fs::write(&path, text).unwrap();
            let registry = if text.contains("global") {
                None
            } else {
                Some("corp")
            };
            let error = format!(
                "{:#}",
                plan(&request(registry), &env(dir.path())).unwrap_err()
            );
            assert!(
                error.contains(part) && error.contains("config.toml"),
                "{error}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
    }
}
