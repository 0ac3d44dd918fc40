//! The token endpoint's forms and replies (pure).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::error::Error;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::tokens::{Claims, TokenSet, after_seconds, decode_claims, local_expiry};
use crate::wire::AuthenticationResult;

/// A `/oauth2/token` reply: `access_token` always; `id_token` with the `openid` scope;
/// `refresh_token` from the authorization-code grant and from a rotating refresh. The
/// client_credentials grant has neither, and nothing here pretends otherwise.
#[derive(Clone)]
pub struct OAuthTokens {
    access_token: AccessToken,
    access_claims: Claims,
    id: Option<(IdToken, Claims)>,
    refresh_token: Option<RefreshToken>,
    token_type: String,
    expires_in: Option<i64>,
    received_at: SystemTime,
    expires_at: SystemTime,
}

/// The reply's JSON.
#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    id_token: Option<String>,
    refresh_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

impl OAuthTokens {
    /// Decodes a 2xx reply received at `received_at` (local clock). `expires_at` is the earliest
    /// of `received_at + expires_in` and each token's `exp` shifted by the measured skew, as
    /// for [`TokenSet`]. The error never quotes the body.
    pub fn from_reply(body: &[u8], received_at: SystemTime) -> Result<OAuthTokens, Error> {
        let reply: TokenReply = serde_json::from_slice(body).map_err(|error| {
            Error::Protocol(format!(
                "the token reply is not a json object of the expected shape (line {}, column {})",
                error.line(),
                error.column()
            ))
        })?;
        let access_token = reply
            .access_token
            .filter(|token| !token.is_empty())
            .map(AccessToken::new)
            .ok_or_else(|| Error::Protocol("the token reply has no access_token".into()))?;
        let token_type = reply.token_type.unwrap_or_else(|| "Bearer".into());
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::Protocol(format!(
                "the token reply's token_type is {token_type:?}, not Bearer"
            )));
        }
        let expires_in = match reply.expires_in {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => Some(seconds(&value).ok_or_else(|| {
                Error::Protocol("the token reply's expires_in is not a number of seconds".into())
            })?),
        };
        let access_claims = decode_claims(access_token.expose_secret())?;
        let id = match reply.id_token.filter(|token| !token.is_empty()) {
            Some(token) => {
                let claims = decode_claims(&token)?;
                Some((IdToken::new(token), claims))
            }
            None => None,
        };
        let mut expires_at = local_expiry(&access_claims, received_at);
        if let Some((_, claims)) = &id {
            expires_at = expires_at.min(local_expiry(claims, received_at));
        }
        if let Some(expires_in) = expires_in {
            expires_at = expires_at.min(after_seconds(received_at, expires_in));
        }
        Ok(OAuthTokens {
            access_token,
            access_claims,
            id,
            refresh_token: reply
                .refresh_token
                .filter(|token| !token.is_empty())
                .map(RefreshToken::new),
            token_type,
            expires_in,
            received_at,
            expires_at,
        })
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The access token's claims (unverified).
    pub fn access_claims(&self) -> &Claims {
        &self.access_claims
    }

    /// The ID token: present when the `openid` scope was granted; never from client_credentials.
    pub fn id_token(&self) -> Option<&IdToken> {
        self.id.as_ref().map(|(token, _)| token)
    }

    /// The ID token's claims (unverified).
    pub fn id_claims(&self) -> Option<&Claims> {
        self.id.as_ref().map(|(_, claims)| claims)
    }

    /// The refresh token: from the authorization-code grant, and from a rotating refresh.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// `token_type` (always Bearer; checked).
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// When the earliest token expires, in the local clock.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// When the tokens arrived, in the local clock.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// How long the tokens are valid from their arrival.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.received_at)
            .unwrap_or(Duration::ZERO)
    }

    /// The same tokens as a [`TokenSet`]: access and ID token for the authorization-code and
    /// refresh grants; the access token alone when no ID token came (client_credentials, or no
    /// `openid` scope).
    pub fn to_token_set(&self) -> Result<TokenSet, Error> {
        let Some((id_token, _)) = self.id.as_ref() else {
            return TokenSet::access_only(
                self.access_token.clone(),
                self.expires_in,
                self.received_at,
            );
        };
        let result = AuthenticationResult {
            access_token: Some(self.access_token.clone()),
            id_token: Some(id_token.clone()),
            refresh_token: self.refresh_token.clone(),
            expires_in: self.expires_in,
            token_type: Some(self.token_type.clone()),
            new_device_metadata: None,
        };
        TokenSet::from_result(&result, self.received_at)
    }
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("access_token", &self.access_token)
            .field("id_token", &self.id_token())
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.access_claims.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `expires_in`: an integer, a float (floored) or a numeric string.
fn seconds(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(number) => number.as_i64().or_else(|| {
            let float = number.as_f64()?;
            // Saturating `as` is the intent: absurd values clamp rather than wrap.
            float.is_finite().then(|| float.floor() as i64)
        }),
        serde_json::Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn jwt(payload: serde_json::Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    fn access(lifetime: u64) -> String {
        jwt(
            json!({"sub": "client", "client_id": "client", "token_use": "access",
            "scope": "api/read", "iat": NOW, "exp": NOW + lifetime}),
        )
    }

    #[test]
    fn client_credentials_has_no_id_or_refresh_token() {
        let body =
            json!({"access_token": access(3600), "expires_in": 3600, "token_type": "Bearer"});
        let tokens = OAuthTokens::from_reply(body.to_string().as_bytes(), at(NOW)).unwrap();
        assert!(tokens.id_token().is_none());
        assert!(tokens.refresh_token().is_none());
        assert_eq!(tokens.access_claims().scope.as_deref(), Some("api/read"));
        assert_eq!(tokens.expires_at(), at(NOW + 3600));
        assert_eq!(tokens.lifetime(), Duration::from_secs(3600));
        let set = tokens.to_token_set().unwrap();
        assert!(set.id_token().is_none() && set.id_claims().is_none());
        assert_eq!(set.expires_at(), at(NOW + 3600));
        assert_eq!(set.access_claims().scope.as_deref(), Some("api/read"));
        let printed = format!("{tokens:?}");
        assert!(
            !printed.contains(tokens.access_token().expose_secret()),
            "{printed}"
        );
    }

    #[test]
    fn code_grant_tokens_become_a_token_set() {
        let id = jwt(
            json!({"sub": "s", "cognito:username": "alice", "token_use": "id",
            "iat": NOW, "exp": NOW + 1800}),
        );
        let body = json!({"access_token": access(3600), "id_token": id,
            "refresh_token": "opaque-refresh", "expires_in": 3600.0, "token_type": "Bearer"});
        // Received 10 s later by the local clock: the skew shifts every expiry alike.
        let tokens = OAuthTokens::from_reply(body.to_string().as_bytes(), at(NOW + 10)).unwrap();
        assert_eq!(tokens.expires_at(), at(NOW + 10 + 1800));
        assert_eq!(
            tokens.refresh_token().unwrap().expose_secret(),
            "opaque-refresh"
        );
        let set = tokens.to_token_set().unwrap();
        assert_eq!(set.username(), Some("alice"));
        assert_eq!(set.expires_at(), tokens.expires_at());
    }

    #[test]
    fn malformed_replies_are_protocol_errors_that_quote_nothing() {
        for body in [
            "<html>oops</html>".to_owned(),
            json!({"expires_in": 3600}).to_string(),
            json!({"access_token": "not-a-jwt-secret"}).to_string(),
            json!({"access_token": access(60), "token_type": "mac"}).to_string(),
            json!({"access_token": access(60), "expires_in": "soon"}).to_string(),
            json!({"access_token": 12345678}).to_string(),
        ] {
            let error = OAuthTokens::from_reply(body.as_bytes(), at(NOW)).unwrap_err();
            assert!(matches!(error, Error::Protocol(_)), "{body}: {error}");
            let shown = error.to_string();
            assert!(
                !shown.contains("secret") && !shown.contains("12345678"),
                "{shown}"
            );
        }
    }
}
