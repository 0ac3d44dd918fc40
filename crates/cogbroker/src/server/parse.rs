//! Request parsing: the path's profile name and login id, the token query, `Accept`, and JSON
//! bodies into the [`crate::api`] request types. Every error names its field and none repeats
//! a submitted value; a body that may hold a password is zeroized once parsed.
//!
//! Bodies are read field by field ([`JsonFields`]) rather than with serde's derive: serde's
//! messages quote the input, and the input may be a password.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use http::header::{self, HeaderMap};
use http::request::Parts;
use http_body_util::BodyExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use zeroize::Zeroize as _;

use super::errors::{self, ApiError};
use crate::api::{
    AnswerBody, LoginRequest, LogoutRequest, MAX_MIN_TTL, RefreshRequest, TokenKind, TokenQuery,
};
use crate::broker::AnswerInput;
use crate::config::ProfileName;
use cognito_auth::secret::{OneTimeCode, Password};

/// Refuses any query string: no endpoint but the token one takes parameters, and tokens are
/// never accepted in URLs.
pub(super) struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match parts.uri.query() {
            None | Some("") => Ok(Self),
            Some(_) => Err(ApiError::bad_input(
                "query",
                "this endpoint takes no query parameters",
            )),
        }
    }
}

/// A validated profile name from the path; the raw value is never echoed or logged.
pub(super) fn profile_name(
    path: Result<Path<String>, PathRejection>,
) -> Result<ProfileName, ApiError> {
    match path {
        Ok(Path(raw)) => plain_profile_name(&raw),
        Err(_) => Err(invalid_profile_name()),
    }
}

/// A profile name taken from the path as it is (already percent-decoded, or plain).
pub(super) fn plain_profile_name(raw: &str) -> Result<ProfileName, ApiError> {
    raw.parse::<ProfileName>()
        .map_err(|_| invalid_profile_name())
}

fn invalid_profile_name() -> ApiError {
    tracing::debug!("refused a malformed profile name");
    ApiError::bad_input(
        "profile",
        "a profile name is 1 to 64 characters of A-Z a-z 0-9 . _ - and not \".\" or \"..\"",
    )
}

/// A login id from the path: 1 to 128 characters of A-Z a-z 0-9 _ -.
pub(super) fn login_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let valid = |id: &str| {
        (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match path {
        Ok(Path(id)) if valid(&id) => Ok(id),
        _ => Err(ApiError::bad_input(
            "login_id",
            "a login id is 1 to 128 characters of A-Z a-z 0-9 _ -",
        )),
    }
}

/// The token endpoint's query: `kind` (default access) and `min_ttl`, each at most once;
/// anything else is refused (tokens are never accepted in URLs).
pub(crate) fn token_query(query: Option<&str>) -> Result<TokenQuery, ApiError> {
    let mut kind = None;
    let mut min_ttl = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "kind" if kind.is_none() => {
                kind = Some(match &*value {
                    "access" => TokenKind::Access,
                    "id" => TokenKind::Id,
                    _ => {
                        return Err(ApiError::bad_input("kind", "must be \"access\" or \"id\""));
                    }
                });
            }
            "min_ttl" if min_ttl.is_none() => {
                let max = MAX_MIN_TTL.as_secs();
                let seconds = value
                    .parse::<u64>()
                    .ok()
                    .filter(|seconds| *seconds <= max)
                    .ok_or_else(|| {
                        ApiError::bad_input(
                            "min_ttl",
                            format_args!("must be a whole number of seconds up to {max}"),
                        )
                    })?;
                min_ttl = Some(Duration::from_secs(seconds));
            }
            "kind" => return Err(ApiError::bad_input("kind", "given more than once")),
            "min_ttl" => return Err(ApiError::bad_input("min_ttl", "given more than once")),
            _ => {
                return Err(ApiError::bad_input(
                    "query",
                    "only `kind` and `min_ttl` are accepted (tokens are never accepted in URLs)",
                ));
            }
        }
    }
    Ok(TokenQuery {
        kind: kind.unwrap_or(TokenKind::Access),
        min_ttl,
    })
}

/// The audit endpoint's query: an optional `profile`, at most once.
pub(super) fn audit_query(query: Option<&str>) -> Result<Option<ProfileName>, ApiError> {
    let mut profile = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "profile" if profile.is_none() => {
                profile = Some(value.parse::<ProfileName>().map_err(|_| {
                    ApiError::bad_input(
                        "profile",
                        "a profile name is 1 to 64 characters of A-Z a-z 0-9 . _ - and not \".\" or \"..\"",
                    )
                })?);
            }
            "profile" => return Err(ApiError::bad_input("profile", "given more than once")),
            _ => return Err(ApiError::bad_input("query", "only `profile` is accepted")),
        }
    }
    Ok(profile)
}

/// `Accept: text/plain` (before any `application/json`) asks for the bare token.
pub(super) fn wants_plain_text(headers: &HeaderMap) -> bool {
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let media = range.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case("text/plain") {
                return true;
            }
            if media.eq_ignore_ascii_case("application/json") {
                return false;
            }
        }
    }
    false
}

/// A request body type, read from its fields.
pub(crate) trait FromFields: Sized {
    /// Takes this type's fields; [`json_body`] refuses any left over.
    fn from_fields(fields: &mut JsonFields) -> Result<Self, ApiError>;
}

/// Reads and parses a JSON body into `T` (see [`JsonFields::read`] for the limits), refusing
/// unknown fields.
pub(crate) async fn json_body<T: FromFields>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let mut fields = JsonFields::read(headers, body, limit).await?;
    let parsed = T::from_fields(&mut fields)?;
    fields.finish()?;
    Ok(parsed)
}

impl FromFields for LoginRequest {
    fn from_fields(fields: &mut JsonFields) -> Result<Self, ApiError> {
        Ok(Self {
            password: fields.take_secret("password")?.map(SecretString::from),
        })
    }
}

impl FromFields for AnswerBody {
    fn from_fields(fields: &mut JsonFields) -> Result<Self, ApiError> {
        Ok(Self {
            new_password: fields.take_secret("new_password")?.map(SecretString::from),
            attributes: fields.take_string_map("attributes")?,
            code: fields.take_secret("code")?.map(SecretString::from),
            mfa_type: fields.take_string("mfa_type")?,
            challenge: fields.take_string("challenge")?,
            password: fields.take_secret("password")?.map(SecretString::from),
            answer: fields.take_secret("answer")?.map(SecretString::from),
            redirect_url: fields.take_secret("redirect_url")?.map(SecretString::from),
        })
    }
}

impl FromFields for LogoutRequest {
    fn from_fields(fields: &mut JsonFields) -> Result<Self, ApiError> {
        Ok(Self {
            forget_device: fields.take_bool("forget_device")?.unwrap_or(false),
        })
    }
}

impl FromFields for RefreshRequest {
    fn from_fields(_: &mut JsonFields) -> Result<Self, ApiError> {
        Ok(Self {})
    }
}

/// The broker's answer input from the wire's answer body.
pub(super) fn answer_input(body: AnswerBody) -> AnswerInput {
    let password = |secret: SecretString| Password::new(secret.expose_secret());
    AnswerInput {
        new_password: body.new_password.map(password),
        attributes: body.attributes,
        code: body.code.map(|code| OneTimeCode::new(code.expose_secret())),
        mfa_type: body.mfa_type,
        challenge: body.challenge,
        password: body.password.map(password),
        answer: body.answer.map(password),
        redirect_url: body.redirect_url,
    }
}

/// The fields of an optional JSON object body, taken one by one so that every error names its
/// field and none repeats a submitted value (serde's messages quote the input, so they are not
/// used).
pub(super) struct JsonFields(Map<String, Value>);

impl JsonFields {
    /// Reads the body: a non-JSON `Content-Type` is 415 (blocking cross-site "simple" POSTs),
    /// more than `limit` bytes 413, malformed JSON or a non-object 400. An empty body is an
    /// empty object.
    pub(super) async fn read(
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<Self, ApiError> {
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            let media = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim();
            if !media.eq_ignore_ascii_case("application/json") {
                return Err(errors::unsupported_media_type());
            }
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(errors::too_large(limit));
        }
        let bytes = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(errors::too_large(limit));
            }
            Err(_) => {
                return Err(ApiError::bad_input(
                    "body",
                    "the request body could not be read",
                ));
            }
        };
        if bytes.is_empty() {
            return Ok(Self(Map::new()));
        }
        if !headers.contains_key(header::CONTENT_TYPE) {
            return Err(errors::unsupported_media_type());
        }
        let parsed = serde_json::from_slice::<Value>(&bytes);
        wipe(bytes);
        match parsed {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_input("body", "must be a JSON object")),
            Err(error) => Err(ApiError::bad_input(
                "body",
                format_args!(
                    "malformed JSON at line {} column {}",
                    error.line(),
                    error.column()
                ),
            )),
        }
    }

    /// A string field holding a secret, moved out without copying.
    pub(super) fn take_secret(&mut self, field: &'static str) -> Result<Option<String>, ApiError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(ApiError::bad_input(field, "must be a string")),
        }
    }

    /// A string field of at most 256 bytes.
    pub(super) fn take_string(&mut self, field: &'static str) -> Result<Option<String>, ApiError> {
        match self.take_secret(field)? {
            Some(value) if value.len() > 256 => {
                Err(ApiError::bad_input(field, "is longer than 256 characters"))
            }
            value => Ok(value),
        }
    }

    pub(super) fn take_bool(&mut self, field: &'static str) -> Result<Option<bool>, ApiError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(value)),
            Some(_) => Err(ApiError::bad_input(field, "must be true or false")),
        }
    }

    pub(super) fn take_string_map(
        &mut self,
        field: &'static str,
    ) -> Result<BTreeMap<String, String>, ApiError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(key, value)| match value {
                    Value::String(value) => Ok((key, value)),
                    _ => Err(ApiError::bad_input(
                        field,
                        "every attribute value must be a string",
                    )),
                })
                .collect(),
            Some(_) => Err(ApiError::bad_input(field, "must be an object of strings")),
        }
    }

    /// Refuses fields nobody took, naming the first one when its name is plain.
    pub(super) fn finish(self) -> Result<(), ApiError> {
        let Some(name) = self.0.keys().next() else {
            return Ok(());
        };
        Err(ApiError::bad_input_named(
            errors::shown_name(name),
            "unknown field",
        ))
    }
}

/// Overwrites a request body (it may hold a password) when we hold the only reference to it.
fn wipe(bytes: Bytes) {
    if let Ok(mut owned) = bytes.try_into_mut() {
        owned.as_mut().zeroize();
    }
}
