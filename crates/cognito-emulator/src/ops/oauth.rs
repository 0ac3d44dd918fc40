//! The OAuth 2.0 endpoints of a user-pool domain (cognito-protocol.md §7.1): the authorization
//! code grant with PKCE (`/oauth2/authorize` and its login form), `client_credentials`,
//! `refresh_token`, and `/oauth2/revoke`. HTTP and HTML live in `crate::oauth`; this is the logic,
//! one transaction each under the state lock.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::Ctx;
use crate::error::INCORRECT_CREDENTIALS;
use crate::ids;
use crate::seed::{PoolMfa, UserStatus};
use crate::state::{AuthCode, Client, Family};

/// How long an authorization code may wait to be redeemed (the service's codes last 5 minutes).
pub(crate) const CODE_TTL_SECONDS: i64 = 300;

/// An OAuth error answer: `{"error": error, "error_description": description}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    pub(crate) error: &'static str,
    pub(crate) description: String,
    pub(crate) status: u16,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" { 401 } else { 400 };
        OAuthError {
            error,
            description: description.into(),
            status,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }
}

type OAuthResult<T> = Result<T, OAuthError>;

/// Form parameters, each given at most once (RFC 6749 §3.1). They carry passwords, secrets,
/// codes and tokens, so Debug shows only the parameter names.
#[derive(Default)]
pub(crate) struct Form(BTreeMap<String, String>);

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Form {
    /// Parses `application/x-www-form-urlencoded`; a repeated parameter is an error.
    pub(crate) fn parse(text: &[u8]) -> OAuthResult<Form> {
        let mut map = BTreeMap::new();
        for (key, value) in url::form_urlencoded::parse(text) {
            if map.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {key} is given more than once"
                )));
            }
        }
        Ok(Form(map))
    }

    /// A parameter; empty counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn required(&self, key: &str) -> OAuthResult<&str> {
        self.get(key)
            .ok_or_else(|| OAuthError::invalid_request(format!("{key} is missing")))
    }
}

/// The client id and secret of an `Authorization: Basic` header.
#[derive(Clone)]
pub(crate) struct BasicAuth {
    pub(crate) client_id: String,
    pub(crate) secret: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("client_id", &self.client_id)
            .field("secret", &format_args!("[REDACTED]"))
            .finish()
    }
}

/// A validated `/oauth2/authorize` request.
#[derive(Debug, Clone)]
pub(crate) struct AuthorizeRequest {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) state: Option<String>,
    pub(crate) code_challenge: Option<String>,
    pub(crate) nonce: Option<String>,
}

/// Why `/oauth2/authorize` refused.
#[derive(Debug, Clone)]
pub(crate) enum AuthorizeError {
    /// The client or the redirect URI is not known: an error page, never a redirect.
    Page(String),
    /// Any other problem, reported to the (verified) redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl AuthorizeError {
    /// The outcome recorded in the call counters.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            AuthorizeError::Page(_) => "invalid_request",
            AuthorizeError::Redirect { error, .. } => error,
        }
    }
}

/// What a login-form submission leads to (no Debug: it holds the code).
pub(crate) enum LoginOutcome {
    /// Signed in: redirect to `redirect_uri` with the code and the state.
    Code {
        redirect_uri: String,
        code: String,
        state: Option<String>,
    },
    /// Show the form again with this message.
    Retry(AuthorizeRequest, String),
}

/// `base64url(SHA-256(verifier))` (RFC 7636 S256).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43..=128 characters of `[A-Za-z0-9-._~]`.
fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

impl Ctx<'_> {
    fn oauth_client_by_id(&self, client_id: &str) -> Option<Client> {
        self.client(client_id).ok()
    }

    /// Client authentication: HTTP Basic (client_secret_basic) or `client_secret` in the body
    /// (client_secret_post); public clients send only `client_id`.
    fn authenticate_client(&self, form: &Form, basic: Option<&BasicAuth>) -> OAuthResult<Client> {
        let body_id = form.get("client_id");
        let body_secret = form.get("client_secret");
        if basic.is_some() && body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not Basic and client_secret together",
            ));
        }
        let client_id = match (basic, body_id) {
            (Some(basic), Some(id)) if basic.client_id != id => {
                return Err(OAuthError::invalid_client(
                    "client_id differs from the Basic credentials",
                ));
            }
            (Some(basic), _) => basic.client_id.as_str(),
            (None, Some(id)) => id,
            (None, None) => return Err(OAuthError::invalid_client("no client authentication")),
        };
        let client = self
            .oauth_client_by_id(client_id)
            .ok_or_else(|| OAuthError::invalid_client(format!("unknown client {client_id}")))?;
        let given = basic.map(|b| b.secret.as_str()).or(body_secret);
        match (&client.secret, given) {
            (Some(secret), Some(given)) if same_secret(given, secret) => Ok(client),
            (Some(_), Some(_)) => Err(OAuthError::invalid_client(format!(
                "wrong secret for client {client_id}"
            ))),
            (Some(_), None) => Err(OAuthError::invalid_client(format!(
                "client {client_id} has a secret: authenticate with it"
            ))),
            (None, Some(given)) if !given.is_empty() => Err(OAuthError::invalid_client(format!(
                "client {client_id} has no secret"
            ))),
            (None, _) => Ok(client),
        }
    }

    /// `POST /oauth2/token`.
    pub(crate) fn oauth_token(
        &mut self,
        form: &Form,
        basic: Option<&BasicAuth>,
    ) -> OAuthResult<Value> {
        let grant = form.required("grant_type")?;
        if !matches!(
            grant,
            "authorization_code" | "refresh_token" | "client_credentials"
        ) {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type {grant} is not supported"),
            ));
        }
        let client = self.authenticate_client(form, basic)?;
        match grant {
            "client_credentials" => self.client_credentials(&client, form),
            "authorization_code" => self.redeem_code(&client, form),
            _ => self.oauth_refresh(&client, form),
        }
    }

    fn client_credentials(&mut self, client: &Client, form: &Form) -> OAuthResult<Value> {
        if !client.oauth_flows.contains("client_credentials") {
            return Err(OAuthError::new(
                "unauthorized_client",
                format!("client {} may not use client_credentials", client.id),
            ));
        }
        let cfg = self.pool_cfg(&client.pool_id);
        let allowed =
            |s: &str| client.allowed_scopes.iter().any(|a| a == s) && cfg.custom_scopes.contains(s);
        let scopes: Vec<String> = match form.get("scope") {
            Some(requested) => {
                let scopes: Vec<String> = requested
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = scopes.iter().find(|s| !allowed(s)) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("scope {bad} is not allowed for this client"),
                    ));
                }
                scopes
            }
            None => client
                .allowed_scopes
                .iter()
                .filter(|s| allowed(s))
                .cloned()
                .collect(),
        };
        if scopes.is_empty() {
            return Err(OAuthError::new(
                "invalid_scope",
                "the client has no custom scopes to grant",
            ));
        }
        let now = self.now;
        let claims = json!({
            "sub": client.id,
            "token_use": "access",
            "scope": scopes.join(" "),
            "auth_time": now,
            "iss": cfg.issuer(),
            "exp": now + client.access_ttl,
            "iat": now,
            "version": 2,
            "jti": ids::uuid(&mut self.rng),
            "client_id": client.id,
        });
        tracing::info!(client = %client.id, "client_credentials token issued");
        Ok(json!({
            "access_token": self.keys.access.sign(&claims),
            "expires_in": client.access_ttl,
            "token_type": "Bearer",
        }))
    }

    fn redeem_code(&mut self, client: &Client, form: &Form) -> OAuthResult<Value> {
        let code = form.required("code")?;
        let redirect_uri = form.required("redirect_uri")?;
        let verifier = form.get("code_verifier");
        let now = self.now;
        let record = self
            .st
            .auth_codes
            .get_mut(code)
            .filter(|c| c.client_id == client.id)
            .ok_or_else(|| OAuthError::invalid_grant("unknown authorization code"))?;
        if let Some(family) = record.redeemed.clone() {
            // RFC 6749 §4.1.2: a code presented twice revokes what it was exchanged for.
            if let Some(family) = self.st.families.get_mut(&family) {
                family.revoked = true;
            }
            tracing::warn!(client = %client.id, "authorization code presented again: its tokens are revoked");
            return Err(OAuthError::invalid_grant(
                "authorization code has already been used",
            ));
        }
        if record.burnt {
            return Err(OAuthError::invalid_grant(
                "authorization code has already been used",
            ));
        }
        // From here the code is spent, whatever the outcome: a wrong verifier cannot be retried.
        record.burnt = true;
        if now > record.expires_at {
            return Err(OAuthError::invalid_grant("authorization code has expired"));
        }
        if record.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the one of the authorization request",
            ));
        }
        match (&record.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) => {
                if !is_pkce_string(verifier) {
                    return Err(OAuthError::invalid_request(
                        "code_verifier must be 43..=128 characters of [A-Za-z0-9-._~]",
                    ));
                }
                if !bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier does not match the code_challenge",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(OAuthError::invalid_request("code_verifier is missing"));
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier given but the authorization request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        let (pool_id, username, scopes, nonce) = (
            record.pool_id.clone(),
            record.username.clone(),
            record.scopes.clone(),
            record.nonce.clone(),
        );
        let user = self
            .user(&pool_id, &username)
            .map_err(|e| OAuthError::invalid_grant(e.message))?;
        if !user.enabled {
            return Err(OAuthError::invalid_grant("User is disabled."));
        }
        let family_id = ids::uuid(&mut self.rng);
        let event_id = ids::uuid(&mut self.rng);
        self.st.families.insert(
            family_id.clone(),
            Family {
                pool_id,
                client_id: client.id.clone(),
                username: username.clone(),
                device_key: None,
                auth_time: now,
                expires_at: now + client.refresh_ttl,
                revoked: false,
                event_id,
                scope: Some(scopes.join(" ")),
            },
        );
        if let Some(record) = self.st.auth_codes.get_mut(code) {
            record.redeemed = Some(family_id.clone());
        }
        let refresh_token = self.new_refresh_token(&family_id, &client.id);
        let mut answer = self.oauth_tokens(&family_id, client, nonce.as_deref())?;
        answer["refresh_token"] = json!(refresh_token);
        tracing::info!(client = %client.id, user = %username, "authorization code redeemed");
        Ok(answer)
    }

    /// `{access_token, id_token (with openid), expires_in, token_type}` for a family.
    fn oauth_tokens(
        &mut self,
        family_id: &str,
        client: &Client,
        nonce: Option<&str>,
    ) -> OAuthResult<Value> {
        let (access, id) = self
            .mint_with_nonce(family_id, nonce)
            .map_err(|e| OAuthError::invalid_grant(e.message))?;
        let with_id = self.st.families[family_id]
            .scope
            .as_deref()
            .is_none_or(|scope| scope.split(' ').any(|s| s == "openid"));
        let mut answer = json!({
            "access_token": access,
            "expires_in": client.access_ttl,
            "token_type": "Bearer",
        });
        if with_id {
            answer["id_token"] = json!(id);
        }
        Ok(answer)
    }

    fn oauth_refresh(&mut self, client: &Client, form: &Form) -> OAuthResult<Value> {
        let token = form.required("refresh_token")?;
        let (family, rotated) = self
            .use_refresh_token(client, token, None, client.rotation)
            .map_err(|e| OAuthError::invalid_grant(e.message))?;
        let mut answer = self.oauth_tokens(&family, client, None)?;
        if let Some(rotated) = rotated {
            answer["refresh_token"] = json!(rotated);
        }
        Ok(answer)
    }

    /// `POST /oauth2/revoke`: revokes a refresh token and the sign-in it belongs to.
    pub(crate) fn oauth_revoke(
        &mut self,
        form: &Form,
        basic: Option<&BasicAuth>,
    ) -> OAuthResult<()> {
        let token = form.required("token")?.to_owned();
        let client = self.authenticate_client(form, basic)?;
        if !client.token_revocation {
            return Err(OAuthError::new(
                "unauthorized_client",
                "token revocation is not enabled for this client",
            ));
        }
        if self.keys.access.verify(&token).is_some() || self.keys.id.verify(&token).is_some() {
            return Err(OAuthError::new(
                "unsupported_token_type",
                "only refresh tokens can be revoked",
            ));
        }
        let Some(record) = self.st.refresh_tokens.get(&token) else {
            // RFC 7009 §2.2: an unknown token is not an error.
            return Ok(());
        };
        if record.client_id != client.id {
            return Err(OAuthError::invalid_request(
                "the token was not issued to this client",
            ));
        }
        let family = record.family.clone();
        if let Some(family) = self.st.families.get_mut(&family) {
            family.revoked = true;
        }
        Ok(())
    }

    /// Validates an authorization request (the GET, and again the login form's POST).
    pub(crate) fn check_authorize(&self, form: &Form) -> Result<AuthorizeRequest, AuthorizeError> {
        let client_id = form
            .get("client_id")
            .ok_or_else(|| AuthorizeError::Page("client_id is missing".to_owned()))?;
        let client = self
            .oauth_client_by_id(client_id)
            .ok_or_else(|| AuthorizeError::Page(format!("unknown client {client_id}")))?;
        let redirect_uri = form
            .get("redirect_uri")
            .ok_or_else(|| AuthorizeError::Page("redirect_uri is missing".to_owned()))?;
        if !client.callback_urls.iter().any(|u| u == redirect_uri) {
            return Err(AuthorizeError::Page(format!(
                "redirect_uri is not a callback URL of client {client_id}"
            )));
        }
        let state = form.get("state").map(str::to_owned);
        let refuse = |error: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            error,
            description,
        };
        match form.get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(refuse(
                    "unsupported_response_type",
                    format!("response_type {other} is not supported"),
                ));
            }
            None => return Err(refuse("invalid_request", "response_type is missing".into())),
        }
        if !client.oauth_flows.contains("code") {
            return Err(refuse(
                "unauthorized_client",
                format!("client {client_id} may not use the code flow"),
            ));
        }
        let code_challenge = match (
            form.get("code_challenge"),
            form.get("code_challenge_method"),
        ) {
            (Some(challenge), Some("S256"))
                if challenge.len() == 43 && is_pkce_string(challenge) =>
            {
                Some(challenge.to_owned())
            }
            (Some(_), Some("S256")) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge must be base64url(SHA-256(verifier)), 43 characters".into(),
                ));
            }
            (Some(_), _) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method must be S256".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(refuse(
                    "invalid_request",
                    "code_challenge_method without code_challenge".into(),
                ));
            }
            (None, None) => None,
        };
        let scopes: Vec<String> = match form.get("scope") {
            Some(scope) => scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            None => client.allowed_scopes.clone(),
        };
        if let Some(bad) = scopes.iter().find(|s| !client.allowed_scopes.contains(s)) {
            return Err(refuse(
                "invalid_scope",
                format!("scope {bad} is not allowed for this client"),
            ));
        }
        if scopes.is_empty() {
            return Err(refuse("invalid_scope", "no scope to grant".into()));
        }
        Ok(AuthorizeRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state,
            code_challenge,
            nonce: form.get("nonce").map(str::to_owned),
        })
    }

    /// The login form's POST: checks the password and issues a code.
    pub(crate) fn authorize_login(&mut self, form: &Form) -> Result<LoginOutcome, AuthorizeError> {
        let request = self.check_authorize(form)?;
        let retry = |message: &str| Ok(LoginOutcome::Retry(request.clone(), message.to_owned()));
        let client = self
            .oauth_client_by_id(&request.client_id)
            .ok_or_else(|| AuthorizeError::Page("unknown client".to_owned()))?;
        let (Some(name), Some(password)) = (form.get("username"), form.get("password")) else {
            return retry("Enter a username and a password.");
        };
        let Some(username) = self.st.resolve_user(&client.pool_id, name) else {
            return retry(INCORRECT_CREDENTIALS);
        };
        if let Err(error) = self.verify_password(&client.pool_id, &username, password) {
            return retry(&error.message);
        }
        let user = self
            .user(&client.pool_id, &username)
            .map_err(|e| AuthorizeError::Page(e.message))?;
        match user.status {
            UserStatus::Confirmed => {}
            UserStatus::Unconfirmed => return retry("User is not confirmed."),
            UserStatus::ResetRequired => return retry("Password reset required for the user"),
            UserStatus::ForceChangePassword => {
                return retry(
                    "This user must set a new password, which this login page does not offer: sign in through the API first.",
                );
            }
        }
        let pool_mfa = self.pool_cfg(&client.pool_id).mfa;
        if pool_mfa == PoolMfa::On
            || (pool_mfa == PoolMfa::Optional && !user.mfa_enabled.is_empty())
        {
            return retry("This user needs MFA, which this login page does not offer.");
        }
        let code = ids::uuid(&mut self.rng);
        self.st.auth_codes.insert(
            code.clone(),
            AuthCode {
                pool_id: client.pool_id.clone(),
                client_id: client.id.clone(),
                username: username.clone(),
                redirect_uri: request.redirect_uri.clone(),
                scopes: request.scopes.clone(),
                code_challenge: request.code_challenge.clone(),
                nonce: request.nonce.clone(),
                expires_at: self.now + CODE_TTL_SECONDS,
                redeemed: None,
                burnt: false,
            },
        );
        tracing::info!(client = %client.id, user = %username, "authorization code issued");
        Ok(LoginOutcome::Code {
            redirect_uri: request.redirect_uri,
            code,
            state: request.state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_reject_repeats_and_never_print_values() {
        let form = Form::parse(b"grant_type=password&password=hunter2&client_secret=s3cr3t")
            .expect("parses");
        assert_eq!(form.get("password"), Some("hunter2"));
        let printed = format!("{form:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("s3cr3t"),
            "{printed}"
        );
        let error = Form::parse(b"code=a&code=b").expect_err("a repeated parameter");
        assert_eq!(error.error, "invalid_request");
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_pkce_string(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!is_pkce_string("short"));
        assert!(!is_pkce_string(&"a+".repeat(30)));
    }
}
