//! The paths of the v1 API: the route templates the server mounts and the concrete paths the
//! client requests, with every variable segment percent-encoded.

use std::time::Duration;

use super::{MAX_MIN_TTL, TokenKind};

/// `GET /healthz`.
pub const HEALTH: &str = "/healthz";
/// `GET /metrics`.
pub const METRICS: &str = "/metrics";
/// `GET /v1/openapi.json`.
pub const OPENAPI: &str = "/v1/openapi.json";
/// `GET /v1/profiles`.
pub const PROFILES: &str = "/v1/profiles";
/// `GET /v1/audit`.
pub const AUDIT: &str = "/v1/audit";
/// The prefix of the login paths (never logged past it: a login id is a capability).
pub const LOGINS_PREFIX: &str = "/v1/logins/";

/// The route templates, as the server mounts them.
pub mod route {
    /// `GET /v1/profiles/{p}`.
    pub const PROFILE: &str = "/v1/profiles/{profile}";
    /// `GET /v1/profiles/{p}/token`.
    pub const TOKEN: &str = "/v1/profiles/{profile}/token";
    /// `POST /v1/profiles/{p}/login`.
    pub const LOGIN: &str = "/v1/profiles/{profile}/login";
    /// `POST /v1/profiles/{p}/refresh`.
    pub const REFRESH: &str = "/v1/profiles/{profile}/refresh";
    /// `POST /v1/profiles/{p}/logout`.
    pub const LOGOUT: &str = "/v1/profiles/{profile}/logout";
    /// `GET /v1/profiles/{p}/events`.
    pub const EVENTS: &str = "/v1/profiles/{profile}/events";
    /// `POST` / `DELETE /v1/logins/{id}`.
    pub const PENDING_LOGIN: &str = "/v1/logins/{login_id}";
    /// `GET /v1/profiles/{p}/aws-credentials`.
    pub const AWS_CREDENTIALS: &str = "/v1/profiles/{profile}/aws-credentials";
    /// `POST /v1/profiles/{p}/aws-grants`.
    pub const AWS_GRANTS: &str = "/v1/profiles/{profile}/aws-grants";
    /// `DELETE /v1/profiles/{p}/aws-grants/{id}`.
    pub const AWS_GRANT: &str = "/v1/profiles/{profile}/aws-grants/{grant_id}";
}

/// The last segment of the AWS credentials route (the one route SDKs call, see
/// [`is_aws_credentials`]).
pub const AWS_CREDENTIALS_SEGMENT: &str = "aws-credentials";

/// `/v1/profiles/{p}/aws-credentials`.
pub fn aws_credentials(profile: &str) -> String {
    format!("{}/{AWS_CREDENTIALS_SEGMENT}", self::profile(profile))
}

/// `/v1/profiles/{p}/aws-grants`.
pub fn aws_grants(profile: &str) -> String {
    format!("{}/aws-grants", self::profile(profile))
}

/// `/v1/profiles/{p}/aws-grants/{id}`.
pub fn aws_grant(profile: &str, grant_id: &str) -> String {
    format!(
        "{}/aws-grants/{}",
        self::profile(profile),
        segment(grant_id)
    )
}

/// Whether `path` is `/v1/profiles/<one segment>/aws-credentials`: the route the AWS SDKs'
/// container provider calls, which cannot send `X-Cogbroker-Request`.
pub fn is_aws_credentials(path: &str) -> bool {
    path.strip_prefix(PROFILES)
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.strip_suffix(AWS_CREDENTIALS_SEGMENT))
        .and_then(|rest| rest.strip_suffix('/'))
        .is_some_and(|profile| !profile.is_empty() && !profile.contains('/'))
}

/// The profile of `/v1/profiles/<p>/token` when `<p>` is written plainly (`A-Z a-z 0-9 . _ -`,
/// nothing percent-encoded), which is every path the client builds: the server answers those
/// without its router. `None` for any other path, which the router then handles (percent
/// decoding and all).
pub fn plain_token_profile(path: &str) -> Option<&str> {
    path.strip_prefix(PROFILES)?
        .strip_prefix('/')?
        .strip_suffix("/token")
        .filter(|profile| {
            !profile.is_empty()
                && profile
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// `/v1/audit`, or `/v1/audit?profile=P`.
pub fn audit(profile: Option<&str>) -> String {
    match profile {
        Some(profile) => format!("{AUDIT}?profile={}", segment(profile)),
        None => AUDIT.to_owned(),
    }
}

/// `/v1/profiles/{p}`.
pub fn profile(profile: &str) -> String {
    format!("{PROFILES}/{}", segment(profile))
}

/// `/v1/profiles/{p}/token?kind=...[&min_ttl=...]`. A `min_ttl` over [`MAX_MIN_TTL`] asks for
/// the maximum: no token lives longer, and a `min_ttl` no token can satisfy gets the freshest
/// token (design.md §8), so longer asks are the API's maximum, not an error.
pub fn token(profile: &str, kind: TokenKind, min_ttl: Option<Duration>) -> String {
    let mut path = format!("{}/token?kind={}", self::profile(profile), kind.as_str());
    if let Some(min_ttl) = min_ttl {
        let seconds = min_ttl.as_secs().min(MAX_MIN_TTL.as_secs());
        path.push_str(&format!("&min_ttl={seconds}"));
    }
    path
}

/// `/v1/profiles/{p}/login`.
pub fn login(profile: &str) -> String {
    format!("{}/login", self::profile(profile))
}

/// `/v1/profiles/{p}/refresh`.
pub fn refresh(profile: &str) -> String {
    format!("{}/refresh", self::profile(profile))
}

/// `/v1/profiles/{p}/logout`.
pub fn logout(profile: &str) -> String {
    format!("{}/logout", self::profile(profile))
}

/// `/v1/profiles/{p}/events`.
pub fn events(profile: &str) -> String {
    format!("{}/events", self::profile(profile))
}

/// `/v1/logins/{id}`.
pub fn pending_login(login_id: &str) -> String {
    format!("{LOGINS_PREFIX}{}", segment(login_id))
}

/// Percent-encodes one path segment (profile names are `[A-Za-z0-9._-]`, login ids opaque).
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
