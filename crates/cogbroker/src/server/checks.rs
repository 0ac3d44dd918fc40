//! The listener checks of design.md §7, which every request passes before a handler runs, and
//! the layers around every response (`Cache-Control: no-store`, `nosniff`, never any
//! `Access-Control-*`; sensitive headers kept out of logs; a trace span with a sanitised path).

use std::sync::Arc;

use axum::extract::Request;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::errors::{self, ApiError};
use crate::api::{REQUEST_HEADER, path};
use crate::listen::{self, Peer, PeerVerdict, Transport};

/// What the listener checks need to know.
#[derive(Clone)]
pub(super) struct Checks {
    pub(super) api_key: Option<Arc<SecretString>>,
    pub(super) tcp_port: Option<u16>,
    pub(super) our_uid: u32,
    pub(super) header_limit: usize,
}

/// Header names looked up on every request, as `HeaderName`s (a `&str` is parsed at each lookup).
pub(super) const REQUEST_HEADER_NAME: HeaderName = HeaderName::from_static(REQUEST_HEADER);
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
/// Headers a relay adds: a request carrying one is refused.
const PROXY_HEADERS: [HeaderName; 6] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-real-ip"),
    header::VIA,
];

/// The path as it may appear in logs: login ids and anything outside a plain character set
/// are not written out.
pub(super) fn logged_path(path: &str) -> &str {
    if path.starts_with(path::LOGINS_PREFIX) {
        return "/v1/logins/{login_id}";
    }
    let plain = path.len() <= 200
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
    if plain { path } else { "{unprintable path}" }
}

/// `Cache-Control: no-store`, `nosniff`, and never any `Access-Control-*` header.
pub(super) fn fixed_response_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if headers
        .keys()
        .any(|name| name.as_str().starts_with("access-control-"))
    {
        let cors: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors {
            headers.remove(name);
        }
    }
}

pub(super) fn check_request(checks: &Checks, request: &Request) -> Result<(), ApiError> {
    let Some(peer) = request.extensions().get::<Peer>() else {
        return Err(ApiError::forbidden(
            "forbidden_peer",
            "the connection's origin is unknown; requests must arrive through the daemon's listeners",
        ));
    };
    let headers = request.headers();

    // One pass over the headers: the head's size, any header a relay adds, and the values the
    // checks below read (each `HeaderMap` lookup hashes the name; a pass compares names).
    let mut head_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    let mut seen = Seen::default();
    for (name, value) in headers {
        head_bytes += name.as_str().len() + value.len() + 4;
        seen.note(name, value);
    }
    if head_bytes > checks.header_limit {
        return Err(errors::headers_too_large(checks.header_limit));
    }
    if let Some(name) = seen.relayed {
        return Err(ApiError::forbidden(
            "forbidden_proxy",
            format!("requests relayed by a proxy (a `{name}` header is present) are refused"),
        ));
    }

    if let Transport::Tcp { local, .. } = peer.transport {
        let port = checks.tcp_port.unwrap_or(local.port());
        let host = seen.host.filter(|_| seen.hosts == 1);
        if !host_value_allowed(host, request.uri(), port, local.ip()) {
            return Err(ApiError::forbidden(
                "forbidden_host",
                format!(
                    "the Host header must be 127.0.0.1:{port}, localhost:{port} or [::1]:{port} (DNS rebinding protection)"
                ),
            ));
        }
    }

    if seen.origin {
        return Err(ApiError::forbidden(
            "forbidden_origin",
            "requests carrying an Origin header (browsers) are refused",
        ));
    }

    if seen.fetch_site_refused {
        return Err(ApiError::forbidden(
            "forbidden_fetch_site",
            "browser requests with a Sec-Fetch-Site other than `none` are refused",
        ));
    }

    let target = request.uri().path();
    // The AWS SDKs' container-credentials call: its Authorization is a grant (checked by the
    // handler), not the API key, and it cannot send X-Cogbroker-Request (design.md §13).
    let sdk_call = sdk_call(request, seen.request_header.is_some());
    let verdict = listen::judge_peer(peer.uid, checks.our_uid);
    if let PeerVerdict::Foreign(uid) = verdict {
        return Err(ApiError::forbidden(
            "forbidden_peer",
            format!(
                "the caller runs as uid {uid}, not as the daemon's user (uid {})",
                checks.our_uid
            ),
        ));
    }
    let api_key_ok = match (&checks.api_key, seen.authorization) {
        // The grant stands in for the API key.
        (_, Some(_)) if sdk_call => true,
        (Some(key), Some(value)) => {
            if !bearer_matches(value, key) {
                return Err(errors::unauthorized("the API key is wrong"));
            }
            true
        }
        _ => false,
    };
    let tcp = matches!(peer.transport, Transport::Tcp { .. });
    // With a key configured every TCP request needs it (a same-uid relay such as ssh -L or
    // socat makes any caller look like us); only our own uid may ask `/healthz` without it.
    // A caller whose uid is unknown needs it for everything, `/healthz` included.
    let needs_key = match verdict {
        PeerVerdict::Unverified => true,
        _ => tcp && checks.api_key.is_some() && target != path::HEALTH,
    };
    if needs_key && !api_key_ok {
        return Err(match (checks.api_key.is_some(), verdict) {
            (true, PeerVerdict::Unverified) => errors::unauthorized(
                "the caller's uid cannot be checked: send the API key as `Authorization: Bearer <key>`",
            ),
            (true, _) => errors::unauthorized(
                "an API key is configured: every TCP request must send it as `Authorization: Bearer <key>`",
            ),
            (false, _) => ApiError::forbidden(
                "forbidden_peer",
                "the caller's uid cannot be checked and no api_key_file is configured",
            ),
        });
    }

    // `/metrics` is no more public than the API: the same request header. SDK calls of the
    // AWS credentials route carry none (design.md §13): their per-child grant is checked there.
    let needs_request_header =
        target == "/v1" || target.starts_with("/v1/") || target == path::METRICS;
    if needs_request_header && !sdk_call {
        let present = seen
            .request_header
            .is_some_and(|value| value.as_bytes() == b"1");
        if !present {
            return Err(errors::missing_request_header());
        }
    }
    Ok(())
}

/// What the listener checks read from the request's headers, gathered in one pass.
#[derive(Default)]
struct Seen<'a> {
    /// The first header a relay adds.
    relayed: Option<&'a HeaderName>,
    /// The first `Host` value, and how many there are.
    host: Option<&'a HeaderValue>,
    hosts: usize,
    /// The first `Authorization` and `X-Cogbroker-Request` values (what `HeaderMap::get` gives).
    authorization: Option<&'a HeaderValue>,
    request_header: Option<&'a HeaderValue>,
    origin: bool,
    /// A `Sec-Fetch-Site` other than `none` (a user typed the URL): `same-origin` is what a
    /// DNS-rebound page sends.
    fetch_site_refused: bool,
}

impl<'a> Seen<'a> {
    fn note(&mut self, name: &'a HeaderName, value: &'a HeaderValue) {
        if name == header::HOST {
            self.hosts += 1;
            self.host.get_or_insert(value);
        } else if name == header::AUTHORIZATION {
            self.authorization.get_or_insert(value);
        } else if *name == REQUEST_HEADER_NAME {
            self.request_header.get_or_insert(value);
        } else if name == header::ORIGIN {
            self.origin = true;
        } else if *name == SEC_FETCH_SITE {
            let none = value
                .to_str()
                .is_ok_and(|site| site.trim().eq_ignore_ascii_case("none"));
            self.fetch_site_refused |= !none;
        } else if self.relayed.is_none() && PROXY_HEADERS.contains(name) {
            self.relayed = Some(name);
        }
    }
}

/// Exactly one Host naming `127.0.0.1`, `localhost`, `[::1]` or the very address the
/// connection arrived on (another 127.x.y.z listener; an IP literal cannot be rebound), always
/// with our port; an absolute-form request target must name the same.
pub(crate) fn host_allowed(
    headers: &HeaderMap,
    uri: &Uri,
    port: u16,
    local_ip: std::net::IpAddr,
) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => Some(host),
        _ => None,
    };
    host_value_allowed(host, uri, port, local_ip)
}

/// [`host_allowed`] on the request's one `Host` value (`None`: there was none, or several).
fn host_value_allowed(
    host: Option<&HeaderValue>,
    uri: &Uri,
    port: u16,
    local_ip: std::net::IpAddr,
) -> bool {
    let Some(Ok(host)) = host.map(HeaderValue::to_str) else {
        return false;
    };
    authority_allowed(host, port, local_ip)
        && uri
            .authority()
            .is_none_or(|authority| authority_allowed(authority.as_str(), port, local_ip))
}

/// `authority` (`host:port`) names an allowed host with our port.
fn authority_allowed(authority: &str, port: u16, local_ip: std::net::IpAddr) -> bool {
    let Some((host, host_port)) = authority.rsplit_once(':') else {
        return false;
    };
    let literal = match host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
    {
        Some(v6) => v6
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(std::net::IpAddr::V6),
        None => host
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(std::net::IpAddr::V4),
    };
    host_port.parse::<u16>().ok() == Some(port)
        && (host.eq_ignore_ascii_case("localhost")
            || host == "127.0.0.1"
            || host == "[::1]"
            || literal == Some(local_ip))
}

/// `Authorization: Bearer <key>`, compared in constant time.
pub(super) fn bearer_matches(value: &HeaderValue, key: &SecretString) -> bool {
    let bytes = value.as_bytes();
    let Some(presented) = bytes
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .and(bytes.get(7..))
    else {
        return false;
    };
    presented
        .trim_ascii()
        .ct_eq(key.expose_secret().as_bytes())
        .into()
}

pub(super) async fn not_found() -> ApiError {
    errors::not_found()
}

pub(super) async fn method_not_allowed(method: Method) -> ApiError {
    errors::method_not_allowed(&method)
}

/// Whether a request to `target` is the SDKs' container-credentials call: the AWS route,
/// `GET`, without `X-Cogbroker-Request`. Its grant is checked by the handler.
pub(super) fn is_sdk_call(request: &Request) -> bool {
    sdk_call(
        request,
        request.headers().contains_key(&REQUEST_HEADER_NAME),
    )
}

/// [`is_sdk_call`] when whether the request carries `X-Cogbroker-Request` is already known.
fn sdk_call(request: &Request, has_request_header: bool) -> bool {
    request.method() == http::Method::GET
        && path::is_aws_credentials(request.uri().path())
        && !has_request_header
}
