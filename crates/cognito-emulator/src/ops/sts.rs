//! STS for identity pools' basic flow: AssumeRoleWithWebIdentity over GetOpenIdToken's tokens,
//! and GetCallerIdentity for the credentials the emulator issued. The XML is in `crate::sts`.
//!
//! SigV4 signatures are not verified: GetCallerIdentity accepts an access key id the emulator
//! issued and that has not expired, taken from the Authorization header's `Credential=`, with its
//! session token in `X-Amz-Security-Token` (docs/emulator.md says so too).

use serde_json::Value;

use super::Ctx;
use super::identity::{Issued, OPENID_ISSUER};
use super::oauth::Form;

/// An STS error: `<Error><Type>Sender</Type><Code>..</Code><Message>..</Message></Error>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StsError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) status: u16,
}

impl StsError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        let status = match code {
            "AccessDenied"
            | "InvalidClientTokenId"
            | "MissingAuthenticationToken"
            | "IDPRejectedClaim" => 403,
            _ => 400,
        };
        StsError {
            code,
            message: message.into(),
            status,
        }
    }

    fn missing(member: &str) -> Self {
        Self::new(
            "ValidationError",
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    }
}

/// What AssumeRoleWithWebIdentity answers.
pub(crate) struct AssumedRole {
    pub(crate) subject: String,
    pub(crate) audience: String,
    pub(crate) credentials: Issued,
}

/// What GetCallerIdentity answers.
pub(crate) struct CallerIdentity {
    pub(crate) arn: String,
    pub(crate) user_id: String,
    pub(crate) account: String,
}

/// `[\w+=,.@-]{2,64}`.
fn is_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

impl Ctx<'_> {
    pub(crate) fn assume_role_with_web_identity(
        &mut self,
        form: &Form,
    ) -> Result<AssumedRole, StsError> {
        let role_arn = form
            .get("RoleArn")
            .ok_or_else(|| StsError::missing("roleArn"))?;
        let session_name = form
            .get("RoleSessionName")
            .ok_or_else(|| StsError::missing("roleSessionName"))?;
        let token = form
            .get("WebIdentityToken")
            .ok_or_else(|| StsError::missing("webIdentityToken"))?;
        if !is_session_name(session_name) {
            return Err(StsError::new(
                "ValidationError",
                "RoleSessionName must be 2..=64 characters of [\\w+=,.@-]",
            ));
        }
        let duration = match form.get("DurationSeconds") {
            None => 3600,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|d| (900..=43_200).contains(d))
                .ok_or_else(|| {
                    StsError::new(
                        "ValidationError",
                        "DurationSeconds must be a number in 900..=43200",
                    )
                })?,
        };
        let invalid = |why: &str| StsError::new("InvalidIdentityToken", why.to_owned());
        let claims = self
            .keys
            .identity
            .verify(token)
            .ok_or_else(|| invalid("Couldn't verify the signature of the identity token"))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("iss") != Some(OPENID_ISSUER) {
            return Err(invalid("Issuer of the identity token is not trusted"));
        }
        let audience = text("aud").unwrap_or_default().to_owned();
        let pool = self
            .st
            .identity_pools
            .get(&audience)
            .cloned()
            .ok_or_else(|| invalid("Incorrect token audience"))?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if self.now >= exp {
            return Err(StsError::new("ExpiredTokenException", "Token expired"));
        }
        let subject = text("sub").unwrap_or_default().to_owned();
        let known = self
            .st
            .identities
            .get(&subject)
            .is_some_and(|i| i.identity_pool == pool.id);
        let authenticated = claims
            .get("amr")
            .and_then(Value::as_array)
            .is_some_and(|amr| amr.iter().any(|m| m == "authenticated"));
        if !known || !authenticated {
            return Err(invalid(
                "The identity token does not name an authenticated identity",
            ));
        }
        if !pool.allow_basic_flow || role_arn != pool.roles.authenticated {
            return Err(StsError::new(
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            ));
        }
        let credentials = self.issue_aws_credentials(role_arn, session_name, duration);
        Ok(AssumedRole {
            subject,
            audience,
            credentials,
        })
    }

    /// The identity behind an access key the emulator issued (no SigV4 check; see the module).
    pub(crate) fn get_caller_identity(
        &self,
        access_key_id: Option<&str>,
        session_token: Option<&str>,
    ) -> Result<CallerIdentity, StsError> {
        let access_key_id = access_key_id.ok_or_else(|| {
            StsError::new(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            )
        })?;
        let invalid = || {
            StsError::new(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        };
        let credentials = self
            .st
            .aws_credentials
            .get(access_key_id)
            .ok_or_else(invalid)?;
        if session_token != Some(credentials.session_token.as_str()) {
            return Err(invalid());
        }
        if self.now >= credentials.expires_at {
            return Err(StsError::new(
                "ExpiredToken",
                "The security token included in the request is expired",
            ));
        }
        Ok(CallerIdentity {
            arn: credentials.arn.clone(),
            user_id: credentials.user_id.clone(),
            account: credentials.account.clone(),
        })
    }
}
