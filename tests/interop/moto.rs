//! A moto server for one test: started on 127.0.0.1 with a port of its own choosing, provisioned
//! through unsigned JSON calls (moto routes them to us-east-1), and killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use cognito_auth::client::{ClientOptions, CognitoClient};
use serde_json::{Value, json};

/// The environment variable `make interop` sets to the venv's `moto_server`.
const MOTO_SERVER_VAR: &str = "COGBROKER_MOTO_SERVER";
/// moto's one TOTP secret for every user (peers.md §1.3), as AssociateSoftwareToken returns it.
const MOTO_TOTP_SECRET: &str = "asdfasdfasdf";
/// The same key in canonical base32. moto's secret is 12 characters, 60 bits for a 56-bit key,
/// and its last 4 bits are not zero; Python's `b32decode` drops them, while a strict decoder such
/// as the emulator's refuses the string. Both spellings decode to the bytes 04 86 50 48 65 04 86.
const MOTO_TOTP_SECRET_CANONICAL: &str = "ASDFASDFASDA";
/// How long moto may take to print its address: a cold Python start on a busy 2-core machine.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// How many of moto's last stderr lines a startup failure shows.
const KEPT_LINES: usize = 50;

/// A running moto server, killed on drop.
pub(crate) struct Moto {
    child: Child,
    endpoint: url::Url,
    http: reqwest::Client,
}

/// The pool every test provisions: a password policy, a public and a confidential client, and
/// one confirmed user `alice`.
pub(crate) struct Pool {
    pub(crate) id: String,
    pub(crate) public_client_id: String,
    pub(crate) secret_client_id: String,
    pub(crate) client_secret: String,
}

impl Moto {
    /// Starts `$COGBROKER_MOTO_SERVER` with TOTP checking on, and waits for its "Running on" line.
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let program = moto_server_path()?;
        let mut child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP", "true")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        let stderr = child.stderr.take().context("moto's stderr is piped")?;

        // Werkzeug announces the port it bound on stderr and then logs every request there: one
        // thread reads it to the end so the pipe never fills, and hands over the address once.
        let (address_sender, address_receiver) = tokio::sync::oneshot::channel::<String>();
        let recent = Arc::new(Mutex::new(Vec::<String>::new()));
        let recent_for_reader = Arc::clone(&recent);
        std::thread::spawn(move || {
            let mut address_sender = Some(address_sender);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.split("Running on ").nth(1) {
                    let address = address
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(sender) = address_sender.take() {
                        // The receiver is gone only if the test already gave up waiting.
                        let _ = sender.send(address);
                    }
                }
                let mut recent = recent_for_reader
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if recent.len() == KEPT_LINES {
                    recent.remove(0);
                }
                recent.push(line);
            }
        });

        let address = match tokio::time::timeout(STARTUP_LIMIT, address_receiver).await {
            Ok(Ok(address)) => address,
            outcome => {
                let _ = child.kill();
                let status = child.wait().ok();
                let why = if outcome.is_err() {
                    "did not announce its port in time"
                } else {
                    "exited"
                };
                let lines = recent
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .join("\n");
                bail!("moto_server {why} (status {status:?}); its stderr:\n{lines}");
            }
        };
        let endpoint = url::Url::parse(&address)
            .with_context(|| format!("moto announced an unparsable address {address:?}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("build the provisioning HTTP client")?;
        Ok(Self {
            child,
            endpoint,
            http,
        })
    }

    /// Where this moto listens, e.g. `http://127.0.0.1:PORT/`.
    pub(crate) fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// An identity pool whose provider is `pool`'s `client_id` (CreateIdentityPool, unsigned:
    /// moto routes it to us-east-1). Returns its id.
    pub(crate) async fn create_identity_pool(
        &self,
        pool_id: &str,
        client_id: &str,
    ) -> anyhow::Result<String> {
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(
                "X-Amz-Target",
                "AWSCognitoIdentityService.CreateIdentityPool",
            )
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(
                json!({
                    "IdentityPoolName": "cogbroker_interop",
                    "AllowUnauthenticatedIdentities": false,
                    "CognitoIdentityProviders": [{
                        "ProviderName": format!("cognito-idp.us-east-1.amazonaws.com/{pool_id}"),
                        "ClientId": client_id,
                    }],
                })
                .to_string(),
            )
            .send()
            .await
            .context("send CreateIdentityPool to moto")?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("read CreateIdentityPool's reply")?;
        ensure!(
            status.is_success(),
            "moto answered CreateIdentityPool with {status}: {text}"
        );
        let reply: Value = serde_json::from_str(&text)
            .with_context(|| format!("CreateIdentityPool's reply is not JSON: {text}"))?;
        string_at(&reply, &["IdentityPoolId"])
    }

    /// A `cognito_auth` client pointed at this moto.
    pub(crate) fn cognito_client(&self) -> anyhow::Result<CognitoClient> {
        CognitoClient::new(self.endpoint.clone(), ClientOptions::default())
            .context("a CognitoClient for moto")
    }

    /// One unsigned `AWSCognitoIdentityProviderService` call; a non-200 reply is an error naming
    /// the operation, the status and the body.
    pub(crate) async fn call(&self, operation: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(
                "X-Amz-Target",
                format!("AWSCognitoIdentityProviderService.{operation}"),
            )
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("send {operation} to moto"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("read moto's reply to {operation}"))?;
        ensure!(
            status.is_success(),
            "moto answered {operation} with {status}: {text}"
        );
        serde_json::from_str(&text)
            .with_context(|| format!("moto's reply to {operation} is not JSON: {text}"))
    }

    /// Creates the standard pool (see [`Pool`]) with `alice` holding `password`.
    pub(crate) async fn provision_pool(&self, password: &str) -> anyhow::Result<Pool> {
        let pool = self
            .call(
                "CreateUserPool",
                json!({
                    "PoolName": "cogbroker-interop",
                    "Policies": { "PasswordPolicy": {
                        "MinimumLength": 10,
                        "RequireUppercase": true,
                        "RequireLowercase": true,
                        "RequireNumbers": true,
                        "RequireSymbols": false,
                    }},
                }),
            )
            .await?;
        let id = string_at(&pool, &["UserPool", "Id"])?;
        let flows = [
            "ALLOW_USER_SRP_AUTH",
            "ALLOW_USER_PASSWORD_AUTH",
            "ALLOW_REFRESH_TOKEN_AUTH",
        ];
        let public = self
            .call(
                "CreateUserPoolClient",
                json!({ "UserPoolId": id, "ClientName": "public", "GenerateSecret": false, "ExplicitAuthFlows": flows }),
            )
            .await?;
        let confidential = self
            .call(
                "CreateUserPoolClient",
                json!({ "UserPoolId": id, "ClientName": "confidential", "GenerateSecret": true, "ExplicitAuthFlows": flows }),
            )
            .await?;
        let pool = Pool {
            public_client_id: string_at(&public, &["UserPoolClient", "ClientId"])?,
            secret_client_id: string_at(&confidential, &["UserPoolClient", "ClientId"])?,
            client_secret: string_at(&confidential, &["UserPoolClient", "ClientSecret"])?,
            id,
        };
        self.create_user(&pool.id, "alice", password).await?;
        Ok(pool)
    }

    /// A CONFIRMED user with a permanent password.
    pub(crate) async fn create_user(
        &self,
        pool_id: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        self.create_temporary_user(pool_id, username, &format!("{password}-temporary"))
            .await?;
        self.call(
            "AdminSetUserPassword",
            json!({ "UserPoolId": pool_id, "Username": username, "Password": password, "Permanent": true }),
        )
        .await?;
        Ok(())
    }

    /// A FORCE_CHANGE_PASSWORD user, as an administrator creates one.
    pub(crate) async fn create_temporary_user(
        &self,
        pool_id: &str,
        username: &str,
        temporary_password: &str,
    ) -> anyhow::Result<()> {
        self.call(
            "AdminCreateUser",
            json!({
                "UserPoolId": pool_id,
                "Username": username,
                "TemporaryPassword": temporary_password,
                "MessageAction": "SUPPRESS",
            }),
        )
        .await?;
        Ok(())
    }

    /// A CONFIRMED user with a verified software token, preferred for MFA: signs in with
    /// USER_PASSWORD_AUTH (raw), then AssociateSoftwareToken, VerifySoftwareToken and
    /// SetUserMFAPreference with the access token, as an app's MFA setup page would.
    pub(crate) async fn enable_totp(
        &self,
        pool: &Pool,
        username: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        self.create_user(&pool.id, username, password).await?;
        let login = self
            .call(
                "InitiateAuth",
                json!({
                    "AuthFlow": "USER_PASSWORD_AUTH",
                    "ClientId": pool.public_client_id,
                    "AuthParameters": { "USERNAME": username, "PASSWORD": password },
                }),
            )
            .await?;
        let access_token = string_at(&login, &["AuthenticationResult", "AccessToken"])?;
        let associated = self
            .call(
                "AssociateSoftwareToken",
                json!({ "AccessToken": access_token }),
            )
            .await?;
        let secret = string_at(&associated, &["SecretCode"])?;
        ensure!(
            secret == MOTO_TOTP_SECRET,
            "moto's TOTP secret is {secret}, not {MOTO_TOTP_SECRET}: peers.md is out of date"
        );
        // moto accepts the current 30 s step only: a code computed just before a step boundary
        // is sent once more with the next step's code.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (code, step) = totp_now()?;
            let verify = self
                .call(
                    "VerifySoftwareToken",
                    json!({ "AccessToken": access_token, "UserCode": code, "FriendlyDeviceName": "interop" }),
                )
                .await;
            match verify {
                Ok(reply) => {
                    ensure!(
                        reply["Status"] == "SUCCESS",
                        "VerifySoftwareToken answered {reply}"
                    );
                    break;
                }
                Err(_) if attempts == 1 && totp_now()?.1 != step => {}
                Err(error) => {
                    return Err(error).context(
                        "VerifySoftwareToken refused the code cognito_emulator::totp computed from moto's secret",
                    );
                }
            }
        }
        self.call(
            "SetUserMFAPreference",
            json!({
                "AccessToken": access_token,
                "SoftwareTokenMfaSettings": { "Enabled": true, "PreferredMfa": true },
            }),
        )
        .await?;
        Ok(())
    }

    /// The user's status, from AdminGetUser.
    pub(crate) async fn user_status(
        &self,
        pool_id: &str,
        username: &str,
    ) -> anyhow::Result<String> {
        let user = self
            .call(
                "AdminGetUser",
                json!({ "UserPoolId": pool_id, "Username": username }),
            )
            .await?;
        string_at(&user, &["UserStatus"])
    }

    /// The `issuer` of the pool's OpenID discovery document.
    pub(crate) async fn openid_issuer(&self, pool_id: &str) -> anyhow::Result<String> {
        let url = self
            .endpoint
            .join(&format!("/{pool_id}/.well-known/openid-configuration"))
            .context("the discovery URL")?;
        let document: Value = self
            .http
            .get(url)
            .send()
            .await
            .context("GET the openid-configuration")?
            .error_for_status()
            .context("the openid-configuration")?
            .json()
            .await
            .context("the openid-configuration is not JSON")?;
        string_at(&document, &["issuer"])
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Killing an already-exited child fails harmlessly; waiting reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$COGBROKER_MOTO_SERVER`, resolved against the workspace root when relative.
fn moto_server_path() -> anyhow::Result<PathBuf> {
    let Some(configured) = std::env::var_os(MOTO_SERVER_VAR) else {
        bail!(
            "{MOTO_SERVER_VAR} is not set: the interop tests need moto; run `make interop`, which \
             installs a pinned moto in target/interop-venv and sets it"
        );
    };
    let path = PathBuf::from(configured);
    let path = if path.is_relative() {
        cogbroker_e2e::workspace_root().join(path)
    } else {
        path
    };
    ensure!(
        path.is_file(),
        "{MOTO_SERVER_VAR}={} does not exist: run `make interop`",
        path.display()
    );
    Ok(path)
}

/// moto's current TOTP code and its 30-second step.
pub(crate) fn totp_now() -> anyhow::Result<(String, u64)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let code = cognito_emulator::totp(MOTO_TOTP_SECRET_CANONICAL, now).with_context(|| {
        format!("cognito_emulator::totp refuses moto's key as {MOTO_TOTP_SECRET_CANONICAL}")
    })?;
    Ok((code, now / 30))
}

/// The string at `path` inside a JSON reply.
fn string_at(value: &Value, path: &[&str]) -> anyhow::Result<String> {
    let mut cursor = value;
    for key in path {
        cursor = &cursor[*key];
    }
    cursor
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no string at {} in {value}", path.join(".")))
}
