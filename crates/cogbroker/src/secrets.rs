//! Resolving secret sources (`{ env = .. }`, `{ command = .. }`, `{ keyring = true }`, a literal)
//! at the moment a secret is needed. The environment and the keyring are injected, so `config`
//! stays plain validated data and tests pass a map and a fake keyring.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{EnvSource, ProfileName, SecretSource};

/// The longest a secret command may run before it is killed.
pub const SECRET_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `{ keyring = true }` secrets are read: service "cogbroker", user `account`.
pub trait KeyringLookup: Send + Sync {
    /// The entry's value; `Ok(None)` when there is no such entry.
    fn lookup(
        &self,
        account: String,
    ) -> futures_util::future::BoxFuture<'static, anyhow::Result<Option<String>>>;
}

/// The OS keyring, through [`crate::store::keyring_secret`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OsKeyring;

impl KeyringLookup for OsKeyring {
    fn lookup(
        &self,
        account: String,
    ) -> futures_util::future::BoxFuture<'static, anyhow::Result<Option<String>>> {
        Box::pin(async move { crate::store::keyring_secret(&account).await })
    }
}

/// Resolves [`SecretSource`]s with an injected environment and keyring.
#[derive(Clone)]
pub struct SecretResolver {
    env: Arc<dyn EnvSource>,
    keyring: Arc<dyn KeyringLookup>,
}

impl std::fmt::Debug for SecretResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretResolver").finish_non_exhaustive()
    }
}

impl SecretResolver {
    /// A resolver reading `env` and `keyring`.
    pub fn new(env: Arc<dyn EnvSource>, keyring: Arc<dyn KeyringLookup>) -> Self {
        Self { env, keyring }
    }

    /// Resolves the secret now. `what` is the key ("client_secret", "password"); errors name the
    /// profile and the source, never the value.
    pub async fn resolve(
        &self,
        source: &SecretSource,
        profile: &ProfileName,
        what: &str,
    ) -> Result<SecretString, SecretSourceError> {
        let failed = |reason: String| SecretSourceError {
            profile: profile.to_string(),
            key: what.to_owned(),
            source_description: source.describe(),
            reason,
        };
        let value = zeroize::Zeroizing::new(match source {
            SecretSource::Literal(secret) => secret.expose_secret().to_owned(),
            SecretSource::Env(name) => self
                .env
                .var(name)
                .ok_or_else(|| failed(format!("{name} is not set")))?,
            SecretSource::Command(command) => run_secret_command(command).await.map_err(failed)?,
            SecretSource::Keyring => {
                let account = format!("{profile}/{what}");
                match self.keyring.lookup(account.clone()).await {
                    Ok(Some(value)) => value,
                    Ok(None) => {
                        return Err(failed(format!(
                            "no keyring entry for service \"cogbroker\", user {account:?}"
                        )));
                    }
                    Err(error) => return Err(failed(format!("{error:#}"))),
                }
            }
        });
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(failed("the secret is empty".to_owned()));
        }
        Ok(SecretString::from(trimmed.to_owned()))
    }
}

/// A secret source that could not produce its secret. Never contains the secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("profile {profile}: {key} from {source_description}: {reason}")]
pub struct SecretSourceError {
    /// The profile.
    pub profile: String,
    /// The key ("client_secret" or "password").
    pub key: String,
    /// [`SecretSource::describe`].
    pub source_description: String,
    /// What went wrong.
    pub reason: String,
}

async fn run_secret_command(command: &str) -> Result<String, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot run sh: {error}"))?;
    let output = tokio::time::timeout(SECRET_COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("timed out after {}s", SECRET_COMMAND_TIMEOUT.as_secs()))?
        .map_err(|error| format!("failed: {error}"))?;
    let stdout = zeroize::Zeroizing::new(output.stdout);
    if !output.status.success() {
        return Err(format!("exited with {}", output.status));
    }
    String::from_utf8(stdout.to_vec()).map_err(|_| "printed something that is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::ExposeSecret;

    use super::*;

    struct FakeKeyring(BTreeMap<String, String>);

    impl KeyringLookup for FakeKeyring {
        fn lookup(
            &self,
            account: String,
        ) -> futures_util::future::BoxFuture<'static, anyhow::Result<Option<String>>> {
            let found = self.0.get(&account).cloned();
            Box::pin(async move { Ok(found) })
        }
    }

    fn resolver(vars: &[(&str, &str)], keyring: &[(&str, &str)]) -> SecretResolver {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let keyring = keyring
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SecretResolver::new(Arc::new(env), Arc::new(FakeKeyring(keyring)))
    }

    #[tokio::test]
    async fn secret_sources_resolve_lazily_and_never_show_the_value() {
        let profile: ProfileName = "p".parse().unwrap();
        let secrets = resolver(&[("MY_SECRET", "  from-env\n")], &[]);
        let from_env = secrets
            .resolve(
                &SecretSource::Env("MY_SECRET".into()),
                &profile,
                "client_secret",
            )
            .await
            .unwrap();
        assert_eq!(from_env.expose_secret(), "from-env");

        let missing = secrets
            .resolve(&SecretSource::Env("NOPE".into()), &profile, "client_secret")
            .await
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "profile p: client_secret from env var NOPE: NOPE is not set"
        );

        let from_command = secrets
            .resolve(
                &SecretSource::Command("printf 'cmd-secret\\n'".into()),
                &profile,
                "password",
            )
            .await
            .unwrap();
        assert_eq!(from_command.expose_secret(), "cmd-secret");

        let failing = secrets
            .resolve(
                &SecretSource::Command("echo leaked-value; exit 3".into()),
                &profile,
                "password",
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            failing.starts_with("profile p: password from command: exited with"),
            "{failing}"
        );
        assert!(!failing.contains("leaked-value"), "{failing}");

        let empty = secrets
            .resolve(&SecretSource::Command("true".into()), &profile, "password")
            .await
            .unwrap_err()
            .to_string();
        assert!(empty.contains("empty"), "{empty}");
    }

    #[tokio::test]
    async fn keyring_sources_read_the_injected_keyring() {
        let profile: ProfileName = "dev".parse().unwrap();
        let secrets = resolver(&[], &[("dev/password", "from-keyring")]);
        let found = secrets
            .resolve(&SecretSource::Keyring, &profile, "password")
            .await
            .unwrap();
        assert_eq!(found.expose_secret(), "from-keyring");
        let missing = secrets
            .resolve(&SecretSource::Keyring, &profile, "client_secret")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            missing,
            "profile dev: client_secret from keyring: no keyring entry for service \"cogbroker\", user \"dev/client_secret\""
        );
    }
}
