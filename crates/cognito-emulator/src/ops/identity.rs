//! Identity pools (Cognito Identity, cognito-protocol.md §7.3): GetId, GetCredentialsForIdentity
//! and GetOpenIdToken over verified user-pool ID tokens, and the AWS credentials they hand out
//! (also those of STS AssumeRoleWithWebIdentity, `ops::sts`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Ctx, Req};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::seed::{IdentityPoolSeed, role_account};
use crate::state::{AwsCredentials, Identity};

/// The identity-pool operations (target prefix `AWSCognitoIdentityService.`).
pub(crate) const IDENTITY_OPERATIONS: [&str; 3] =
    ["GetId", "GetCredentialsForIdentity", "GetOpenIdToken"];

/// The `iss` of the OpenID tokens of GetOpenIdToken.
pub(crate) const OPENID_ISSUER: &str = "https://cognito-identity.amazonaws.com";
/// How long a GetOpenIdToken token lasts (the service's default, 10 minutes).
const OPENID_TOKEN_TTL: i64 = 600;

/// The HTTP status Cognito Identity sends with error `code`.
pub(crate) fn identity_status(code: &str) -> u16 {
    match code {
        "NotAuthorizedException" => 403,
        "ResourceNotFoundException" => 404,
        "ResourceConflictException" => 409,
        "TooManyRequestsException" => 429,
        "InternalErrorException" => 500,
        _ => 400,
    }
}

fn identity_error(code: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        code: code.to_owned(),
        message: message.into(),
        status: identity_status(code),
    }
}

fn not_authorized(message: impl Into<String>) -> ApiError {
    identity_error("NotAuthorizedException", message)
}

fn invalid_login(why: &str) -> ApiError {
    not_authorized(format!("Invalid login token. {why}"))
}

/// Newly issued temporary credentials.
pub(crate) struct Issued {
    pub(crate) access_key_id: String,
    pub(crate) secret_key: String,
    pub(crate) session_token: String,
    pub(crate) expires_at: i64,
    pub(crate) arn: String,
    pub(crate) assumed_role_id: String,
}

impl Ctx<'_> {
    fn identity_pool(&self, req: &Req) -> ApiResult<IdentityPoolSeed> {
        let id = req.required("IdentityPoolId")?;
        self.st.identity_pools.get(id).cloned().ok_or_else(|| {
            identity_error(
                "ResourceNotFoundException",
                format!("IdentityPool '{id}' not found."),
            )
        })
    }

    fn provider(&self, pool: &IdentityPoolSeed) -> String {
        let region = pool.user_pool.split('_').next().unwrap_or_default();
        format!("cognito-idp.{region}.amazonaws.com/{}", pool.user_pool)
    }

    /// Verifies the Logins map: exactly the pool's user-pool provider, with an ID token of our
    /// signature, the pool's issuer, the configured client as audience, and not expired.
    /// Returns the token's `sub`.
    fn verify_logins(
        &self,
        pool: &IdentityPoolSeed,
        logins: &BTreeMap<String, String>,
    ) -> ApiResult<String> {
        if logins.is_empty() {
            return Err(not_authorized(
                "Unauthenticated access is not supported for this identity pool.",
            ));
        }
        let provider = self.provider(pool);
        if let Some(other) = logins.keys().find(|k| **k != provider) {
            return Err(not_authorized(format!(
                "Token is not from a supported provider of this identity pool: {other}"
            )));
        }
        let token = &logins[&provider];
        let claims = self
            .keys
            .id
            .verify(token)
            .ok_or_else(|| invalid_login("Not a valid OpenId Connect identity token."))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("token_use") != Some("id") {
            return Err(invalid_login("Not a valid OpenId Connect identity token."));
        }
        let issuer = self
            .st
            .pools
            .get(&pool.user_pool)
            .map(|p| p.cfg.issuer())
            .unwrap_or_default();
        if text("iss") != Some(issuer.as_str()) {
            return Err(invalid_login("Issuer doesn't match providerName"));
        }
        if text("aud") != Some(pool.client_id.as_str()) {
            return Err(invalid_login("Incorrect token audience."));
        }
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if self.now >= exp {
            return Err(invalid_login(&format!(
                "Token expired: {exp} >= {}",
                self.now
            )));
        }
        text("sub")
            .map(str::to_owned)
            .ok_or_else(|| invalid_login("Not a valid OpenId Connect identity token."))
    }

    /// The identity named by `IdentityId`, after checking that `Logins` proves it.
    fn proven_identity(&self, req: &Req) -> ApiResult<(String, IdentityPoolSeed)> {
        let identity_id = req.required("IdentityId")?;
        let identity = self.st.identities.get(identity_id).ok_or_else(|| {
            identity_error(
                "ResourceNotFoundException",
                format!("Identity '{identity_id}' not found."),
            )
        })?;
        let pool = self.st.identity_pools[&identity.identity_pool].clone();
        let sub = self.verify_logins(&pool, &req.map("Logins")?)?;
        if sub != identity.sub || self.provider(&pool) != identity.provider {
            return Err(invalid_login("Logins don't match the identity."));
        }
        Ok((identity_id.to_owned(), pool))
    }

    pub(crate) fn get_id(&mut self, req: &Req) -> ApiResult<Value> {
        let pool = self.identity_pool(req)?;
        let sub = self.verify_logins(&pool, &req.map("Logins")?)?;
        let provider = self.provider(&pool);
        let existing =
            self.st.identities.iter().find(|(_, i)| {
                i.identity_pool == pool.id && i.provider == provider && i.sub == sub
            });
        let identity_id = match existing {
            Some((id, _)) => id.clone(),
            None => {
                let region = pool.id.split(':').next().unwrap_or_default();
                let id = format!("{region}:{}", ids::uuid(&mut self.rng));
                self.st.identities.insert(
                    id.clone(),
                    Identity {
                        identity_pool: pool.id.clone(),
                        provider,
                        sub,
                    },
                );
                tracing::info!(identity_pool = %pool.id, "new identity");
                id
            }
        };
        Ok(json!({ "IdentityId": identity_id }))
    }

    pub(crate) fn get_credentials_for_identity(&mut self, req: &Req) -> ApiResult<Value> {
        let (identity_id, pool) = self.proven_identity(req)?;
        if let Some(custom) = req.opt("CustomRoleArn")? {
            if custom != pool.roles.authenticated {
                return Err(identity_error(
                    "InvalidParameterException",
                    "CustomRoleArn is not a role of this identity pool",
                ));
            }
        }
        let issued = self.issue_aws_credentials(
            &pool.roles.authenticated,
            "CognitoIdentityCredentials",
            pool.credentials_ttl as i64,
        );
        Ok(json!({
            "IdentityId": identity_id,
            "Credentials": {
                "AccessKeyId": issued.access_key_id,
                "SecretKey": issued.secret_key,
                "SessionToken": issued.session_token,
                "Expiration": issued.expires_at,
            },
        }))
    }

    pub(crate) fn get_open_id_token(&mut self, req: &Req) -> ApiResult<Value> {
        let (identity_id, pool) = self.proven_identity(req)?;
        if !pool.allow_basic_flow {
            return Err(identity_error(
                "InvalidParameterException",
                "Basic (classic) flow is not enabled, please use enhanced flow.",
            ));
        }
        let provider = self.provider(&pool);
        let sub = self.st.identities[&identity_id].sub.clone();
        let now = self.now;
        let mut claims = Map::new();
        for (key, value) in [
            ("sub", json!(identity_id)),
            ("aud", json!(pool.id)),
            ("iss", json!(OPENID_ISSUER)),
            (
                "amr",
                json!([
                    "authenticated",
                    provider,
                    format!("{provider}:CognitoSignIn:{sub}")
                ]),
            ),
            (
                "https://cognito-identity.amazonaws.com/identity-pool-arn",
                json!(pool.id),
            ),
            ("iat", json!(now)),
            ("exp", json!(now + OPENID_TOKEN_TTL)),
        ] {
            claims.insert(key.to_owned(), value);
        }
        Ok(json!({
            "IdentityId": identity_id,
            "Token": self.keys.identity.sign(&Value::Object(claims)),
        }))
    }

    /// Mints credentials for `role_arn` (validated at seeding) as session `session_name`.
    pub(crate) fn issue_aws_credentials(
        &mut self,
        role_arn: &str,
        session_name: &str,
        ttl: i64,
    ) -> Issued {
        let (account, role) = role_account(role_arn).unwrap_or(("000000000000", "unknown"));
        let role_id = format!("AROA{}", &ids::access_key_id(&mut self.rng)[4..]);
        let issued = Issued {
            access_key_id: ids::access_key_id(&mut self.rng),
            secret_key: ids::secret_access_key(&mut self.rng),
            session_token: ids::session_token(&mut self.rng),
            expires_at: self.now + ttl,
            arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session_name}"),
            assumed_role_id: format!("{role_id}:{session_name}"),
        };
        self.st.aws_credentials.insert(
            issued.access_key_id.clone(),
            AwsCredentials {
                session_token: issued.session_token.clone(),
                expires_at: issued.expires_at,
                arn: issued.arn.clone(),
                user_id: issued.assumed_role_id.clone(),
                account: account.to_owned(),
            },
        );
        tracing::info!(role = %role_arn, "aws credentials issued");
        issued
    }
}
