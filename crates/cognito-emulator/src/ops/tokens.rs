//! Tokens: issuing, refresh (with rotation and device binding), revocation, sign-out, GetUser.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Ctx, Req, param};
use crate::error::{
    ACCESS_EXPIRED, ACCESS_INVALID, ACCESS_REVOKED, ApiError, ApiResult, INVALID_REFRESH,
    REFRESH_EXPIRED, REFRESH_REVOKED, USER_DISABLED,
};
use crate::ids;
use crate::seed::DeviceTracking;
use crate::state::{Client, Device, Family, Login, RefreshRecord};

/// The scope of the JSON API's access tokens, which GetUser and the other user calls need.
pub(crate) const ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";

/// Whether an access token's `scope` claim lets it call the user-pool API (GetUser and so on).
pub(crate) fn has_admin_scope(claims: &serde_json::Map<String, Value>) -> bool {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .is_some_and(|scope| scope.split(' ').any(|s| s == ADMIN_SCOPE))
}

impl Ctx<'_> {
    /// Mints the three tokens of a new sign-in (and a new device when the pool tracks devices).
    pub(super) fn issue_tokens(&mut self, login: &Login) -> ApiResult<Value> {
        let cfg = self.pool_cfg(&login.pool_id);
        let client = self.client(&login.client_id)?;
        let now = self.now;
        let mut new_device = None;
        let device_key = match &login.device_key {
            Some(key) => Some(key.clone()),
            None if cfg.device_tracking != DeviceTracking::Off => {
                let key = ids::device_key(&cfg.region, &mut self.rng);
                let user = self.user_mut(&login.pool_id, &login.username)?;
                user.devices.insert(
                    key.clone(),
                    Device {
                        key: key.clone(),
                        name: None,
                        confirmed: false,
                        remembered: false,
                        verifier: None,
                        created: now,
                        last_modified: now,
                        last_authenticated: now,
                    },
                );
                new_device =
                    Some(json!({ "DeviceKey": key, "DeviceGroupKey": user.device_group_key }));
                Some(key)
            }
            None => None,
        };
        let user = self.user_mut(&login.pool_id, &login.username)?;
        user.failed_attempts = 0;
        if let Some(device) = device_key.as_ref().and_then(|k| user.devices.get_mut(k)) {
            device.last_authenticated = now;
        }
        let family_id = ids::uuid(&mut self.rng);
        let event_id = ids::uuid(&mut self.rng);
        self.st.families.insert(
            family_id.clone(),
            Family {
                pool_id: login.pool_id.clone(),
                client_id: client.id.clone(),
                username: login.username.clone(),
                device_key,
                auth_time: now,
                expires_at: now + client.refresh_ttl,
                revoked: false,
                event_id,
                scope: None,
            },
        );
        let refresh_token = self.new_refresh_token(&family_id, &client.id);
        let mut result = self.token_result(&family_id, &client)?;
        result["RefreshToken"] = json!(refresh_token);
        if let Some(metadata) = new_device {
            result["NewDeviceMetadata"] = metadata;
        }
        tracing::info!(pool = %login.pool_id, user = %login.username, client = %client.id, "signed in");
        Ok(result)
    }

    /// A new refresh token of `family_id`, issued to `client_id`.
    pub(super) fn new_refresh_token(&mut self, family_id: &str, client_id: &str) -> String {
        let token = ids::refresh_token(&mut self.rng);
        self.st.refresh_tokens.insert(
            token.clone(),
            RefreshRecord {
                family: family_id.to_owned(),
                client_id: client_id.to_owned(),
                replaced: None,
            },
        );
        token
    }

    /// `{AccessToken, ExpiresIn, IdToken, TokenType}` freshly minted for a sign-in family.
    fn token_result(&mut self, family_id: &str, client: &Client) -> ApiResult<Value> {
        let (access, id) = self.mint(family_id)?;
        Ok(json!({
            "AccessToken": access, "ExpiresIn": client.access_ttl, "IdToken": id, "TokenType": "Bearer",
        }))
    }

    /// Access and ID tokens for a sign-in family, stamped now.
    fn mint(&mut self, family_id: &str) -> ApiResult<(String, String)> {
        self.mint_with_nonce(family_id, None)
    }

    /// The same; OAuth sign-ins' ID tokens also carry `at_hash` and the request's `nonce`.
    pub(super) fn mint_with_nonce(
        &mut self,
        family_id: &str,
        nonce: Option<&str>,
    ) -> ApiResult<(String, String)> {
        let family = &self.st.families[family_id];
        let client = self.client(&family.client_id)?;
        let user = self.user(&family.pool_id, &family.username)?;
        let issuer = self.issuer(&family.pool_id);
        let now = self.now;
        let mut access = json!({
            "sub": user.sub,
            "iss": issuer,
            "client_id": client.id,
            "origin_jti": family_id,
            "event_id": family.event_id,
            "token_use": "access",
            "scope": family.scope.as_deref().unwrap_or(ADMIN_SCOPE),
            "auth_time": family.auth_time,
            "exp": now + client.access_ttl,
            "iat": now,
            "jti": ids::uuid(&mut rand::thread_rng()),
            "username": user.username,
            "version": 2,
        });
        if let Some(key) = &family.device_key {
            access["device_key"] = json!(key);
        }
        let mut id = Map::new();
        id.insert("sub".into(), json!(user.sub));
        for (name, value) in user.attribute_map() {
            let value = match name.as_str() {
                "email_verified" | "phone_number_verified" => json!(value == "true"),
                _ => json!(value),
            };
            id.insert(name, value);
        }
        if !user.groups.is_empty() {
            access["cognito:groups"] = json!(user.groups);
            id.insert("cognito:groups".into(), json!(user.groups));
        }
        for (key, value) in [
            ("iss", json!(issuer)),
            ("cognito:username", json!(user.username)),
            ("origin_jti", json!(family_id)),
            ("aud", json!(client.id)),
            ("event_id", json!(family.event_id)),
            ("token_use", json!("id")),
            ("auth_time", json!(family.auth_time)),
            ("exp", json!(now + client.id_ttl)),
            ("iat", json!(now)),
            ("jti", json!(ids::uuid(&mut rand::thread_rng()))),
        ] {
            id.insert(key.into(), value);
        }
        let access = self.keys.access.sign(&access);
        if family.scope.is_some() {
            // OIDC Core §3.1.3.6: base64url of the left half of SHA-256(access token).
            let digest = Sha256::digest(access.as_bytes());
            id.insert(
                "at_hash".into(),
                json!(URL_SAFE_NO_PAD.encode(&digest[..16])),
            );
        }
        if let Some(nonce) = nonce {
            id.insert("nonce".into(), json!(nonce));
        }
        Ok((access, self.keys.id.sign(&Value::Object(id))))
    }

    /// Validates a refresh token for `client` and returns its family and, under rotation, the
    /// refresh token to hand out next.
    pub(super) fn use_refresh_token(
        &mut self,
        client: &Client,
        token: &str,
        device_key: Option<&str>,
        rotate: bool,
    ) -> ApiResult<(String, Option<String>)> {
        let now = self.now;
        let record = self
            .st
            .refresh_tokens
            .get(token)
            .filter(|r| r.client_id == client.id)
            .ok_or_else(|| ApiError::not_authorized(INVALID_REFRESH))?;
        let family_id = record.family.clone();
        let replaced = record.replaced.clone();
        let family = &self.st.families[&family_id];
        if family.revoked {
            return Err(ApiError::not_authorized(REFRESH_REVOKED));
        }
        if now >= family.expires_at {
            return Err(ApiError::not_authorized(REFRESH_EXPIRED));
        }
        let successor = match replaced {
            Some((at, successor)) if now < at + client.grace_seconds => Some(successor),
            Some(_) => {
                tracing::warn!(client = %client.id, "rotated-out refresh token presented after the grace period");
                return Err(ApiError::new(
                    "RefreshTokenReuseException",
                    "Refresh Token has already been used",
                ));
            }
            None => None,
        };
        let cfg = self.pool_cfg(&family.pool_id);
        if let (Some(bound), true) = (
            &family.device_key,
            cfg.device_tracking != DeviceTracking::Off,
        ) {
            let confirmed = self
                .user(&family.pool_id, &family.username)
                .ok()
                .and_then(|u| u.devices.get(bound))
                .is_some_and(|d| d.confirmed);
            if device_key != Some(bound.as_str()) || !confirmed {
                return Err(ApiError::not_authorized(INVALID_REFRESH));
            }
        }
        if !self.user(&family.pool_id, &family.username)?.enabled {
            return Err(ApiError::not_authorized(USER_DISABLED));
        }
        if successor.is_some() || !rotate {
            return Ok((family_id, successor));
        }
        let next = self.new_refresh_token(&family_id, &client.id);
        if let Some(record) = self.st.refresh_tokens.get_mut(token) {
            record.replaced = Some((now, next.clone()));
        }
        Ok((family_id, Some(next)))
    }

    pub(super) fn refresh_token_auth(
        &mut self,
        client: &Client,
        params: &BTreeMap<String, String>,
    ) -> ApiResult<Value> {
        if !client.refresh_token_auth {
            return Err(ApiError::invalid_parameter(
                "REFRESH_TOKEN_AUTH flow not enabled for this client",
            ));
        }
        let token = param(params, "REFRESH_TOKEN")?;
        if client.secret.is_some() {
            // There is no USERNAME: the hash is over the internal username the token belongs to.
            let username = self
                .st
                .refresh_tokens
                .get(token)
                .and_then(|r| self.st.families.get(&r.family))
                .map(|f| f.username.clone())
                .ok_or_else(|| ApiError::not_authorized(INVALID_REFRESH))?;
            self.check_secret_hash(client, &username, params.get("SECRET_HASH"))?;
        }
        let device_key = params.get("DEVICE_KEY").map(String::as_str);
        let (family, _) = self.use_refresh_token(client, token, device_key, false)?;
        let result = self.token_result(&family, client)?;
        Ok(json!({ "AuthenticationResult": result, "ChallengeParameters": {} }))
    }

    pub(crate) fn get_tokens_from_refresh_token(&mut self, req: &Req) -> ApiResult<Value> {
        let token = req.required("RefreshToken")?;
        let client = self.client(req.required("ClientId")?)?;
        self.check_client_secret(&client, req.opt("ClientSecret")?)?;
        let device_key = req.opt("DeviceKey")?;
        let (family, rotated) =
            self.use_refresh_token(&client, token, device_key, client.rotation)?;
        let mut result = self.token_result(&family, &client)?;
        if let Some(rotated) = rotated {
            result["RefreshToken"] = json!(rotated);
        }
        Ok(json!({ "AuthenticationResult": result }))
    }

    /// The raw ClientSecret of GetTokensFromRefreshToken and RevokeToken.
    fn check_client_secret(&self, client: &Client, provided: Option<&str>) -> ApiResult<()> {
        match (&client.secret, provided) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(ApiError::not_authorized(format!(
                "Client {} is configured with secret but ClientSecret was not received",
                client.id
            ))),
            (Some(secret), Some(given)) if secret == given => Ok(()),
            (Some(_), Some(_)) => Err(ApiError::not_authorized(format!(
                "Unable to verify secret hash for client {}",
                client.id
            ))),
        }
    }

    pub(crate) fn revoke_token(&mut self, req: &Req) -> ApiResult<Value> {
        let token = req.required("Token")?;
        let client = self.client(req.required("ClientId")?)?;
        if !client.token_revocation {
            return Err(ApiError::new(
                "UnsupportedOperationException",
                "Token revocation is not enabled for this client",
            ));
        }
        self.check_client_secret(&client, req.opt("ClientSecret")?)
            .map_err(|e| ApiError::new("UnauthorizedException", e.message))?;
        if self.keys.access.verify(token).is_some() || self.keys.id.verify(token).is_some() {
            return Err(ApiError::new(
                "UnsupportedTokenTypeException",
                "Only refresh tokens can be revoked",
            ));
        }
        let Some(record) = self.st.refresh_tokens.get(token) else {
            // RFC 7009: revoking an unknown token succeeds.
            return Ok(json!({}));
        };
        if record.client_id != client.id {
            return Err(ApiError::new(
                "UnauthorizedException",
                "The token was not issued to this client",
            ));
        }
        let family = record.family.clone();
        if let Some(family) = self.st.families.get_mut(&family) {
            family.revoked = true;
        }
        Ok(json!({}))
    }

    /// Checks an access token: our signature, `token_use`, expiry and revocation.
    /// Returns (pool id, internal username, claims).
    pub(super) fn authorize(&self, token: &str) -> ApiResult<(String, String, Map<String, Value>)> {
        let claims = self
            .keys
            .access
            .verify(token)
            .ok_or_else(|| ApiError::not_authorized(ACCESS_INVALID))?;
        if claims.get("token_use").and_then(Value::as_str) != Some("access") {
            return Err(ApiError::not_authorized(ACCESS_INVALID));
        }
        if !has_admin_scope(&claims) {
            return Err(ApiError::not_authorized(
                "Access Token does not have required scopes",
            ));
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if self.now >= exp {
            return Err(ApiError::not_authorized(ACCESS_EXPIRED));
        }
        let family = claims
            .get("origin_jti")
            .and_then(Value::as_str)
            .and_then(|jti| self.st.families.get(jti))
            .ok_or_else(|| ApiError::not_authorized(ACCESS_INVALID))?;
        if family.revoked {
            return Err(ApiError::not_authorized(ACCESS_REVOKED));
        }
        let user = self.user(&family.pool_id, &family.username)?;
        if !user.enabled {
            return Err(ApiError::not_authorized(USER_DISABLED));
        }
        Ok((family.pool_id.clone(), family.username.clone(), claims))
    }

    pub(crate) fn global_sign_out(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        revoke_user(&mut self.st.families, &pool_id, &username);
        Ok(json!({}))
    }

    pub(crate) fn get_user(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        let user = self.user(&pool_id, &username)?;
        let mut attributes = vec![json!({ "Name": "sub", "Value": user.sub })];
        attributes.extend(
            user.attribute_map()
                .into_iter()
                .map(|(name, value)| json!({ "Name": name, "Value": value })),
        );
        let mut answer = json!({
            "Username": user.username,
            "UserAttributes": attributes,
            "UserMFASettingList": user.mfa_enabled.iter().map(|k| k.challenge()).collect::<Vec<_>>(),
        });
        if let Some(preferred) = user.mfa_preferred {
            answer["PreferredMfaSetting"] = json!(preferred.challenge());
        }
        Ok(answer)
    }
}

/// Revokes every sign-in of a user (GlobalSignOut, AdminUserGlobalSignOut).
pub(crate) fn revoke_user(
    families: &mut std::collections::HashMap<String, Family>,
    pool_id: &str,
    username: &str,
) {
    for family in families.values_mut() {
        if family.pool_id == pool_id && family.username == username {
            family.revoked = true;
        }
    }
}
