//! The OAuth endpoints over HTTP: `/oauth2/authorize` (a minimal login form), `/oauth2/token` and
//! `/oauth2/revoke`, with OAuth's error shapes (`{"error": ...}`, 400 or 401) instead of JSON 1.1's.
//! The logic is in `ops::oauth`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::handle::Shared;
use crate::inject::{Injected, inject_faults, record};
use crate::ops::{AuthorizeError, AuthorizeRequest, BasicAuth, Form, LoginOutcome, OAuthError};

/// The names these endpoints have in the call counters and in faults.
pub(crate) const AUTHORIZE: &str = "oauth2/authorize";
pub(crate) const TOKEN: &str = "oauth2/token";
pub(crate) const REVOKE: &str = "oauth2/revoke";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/oauth2/authorize",
            get(authorize_page).post(authorize_submit),
        )
        .route("/oauth2/token", post(token))
        .route("/oauth2/revoke", post(revoke))
}

/// A fault's answer in OAuth's shape, or `None` to run the call.
async fn fault(shared: &Shared, label: &str) -> Option<Response> {
    match inject_faults(shared, label).await {
        Injected::Nothing => None,
        Injected::Respond(response) => Some(response),
        Injected::Error(error) => {
            record(shared, label, &error.code);
            let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
            Some(json_answer(
                status,
                &json!({ "error": error.code, "error_description": error.message }),
            ))
        }
        Injected::Throttle => {
            record(shared, label, "TooManyRequests");
            Some(json_answer(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({ "error": "too_many_requests", "error_description": "Rate exceeded" }),
            ))
        }
    }
}

fn json_answer(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(shared: &Shared, label: &str, error: &OAuthError) -> Response {
    record(shared, label, error.error);
    tracing::info!(endpoint = %label, error = %error.error, description = %error.description, "oauth call refused");
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json_answer(
        status,
        &json!({ "error": error.error, "error_description": error.description }),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"oauth2\""),
        );
    }
    response
}

/// The body as a form, or `invalid_request` for another content type or a repeated parameter.
fn form_body(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError {
            error: "invalid_request",
            description: "the body must be application/x-www-form-urlencoded".to_owned(),
            status: 400,
        });
    }
    Form::parse(body)
}

/// `Authorization: Basic base64(client_id:client_secret)`, if sent.
fn basic_auth(headers: &HeaderMap) -> Result<Option<BasicAuth>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError {
        error: "invalid_client",
        description: "the Authorization header is not Basic base64(client_id:client_secret)"
            .to_owned(),
        status: 401,
    };
    let text = value.to_str().map_err(|_| bad())?;
    let (scheme, credentials) = text.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(credentials.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (client_id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some(BasicAuth {
        client_id: client_id.to_owned(),
        secret: secret.to_owned(),
    }))
}

/// Runs `f` in a blocking task (password checks and RSA signatures are CPU work).
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> T + Send + 'static,
) -> Option<T> {
    let worker = Arc::clone(shared);
    match tokio::task::spawn_blocking(move || f(&worker)).await {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::error!("oauth call panicked");
            None
        }
    }
}

fn internal_error(shared: &Shared, label: &str) -> Response {
    record(shared, label, "InternalError");
    json_answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({ "error": "server_error" }),
    )
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = fault(&shared, TOKEN).await {
        return response;
    }
    let parsed = form_body(&headers, &body).and_then(|form| Ok((form, basic_auth(&headers)?)));
    let (form, basic) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return oauth_error(&shared, TOKEN, &error),
    };
    let Some(result) = blocking(&shared, move |shared| {
        shared.transact(|cx| cx.oauth_token(&form, basic.as_ref()))
    })
    .await
    else {
        return internal_error(&shared, TOKEN);
    };
    match result {
        Ok(answer) => {
            record(&shared, TOKEN, "ok");
            json_answer(StatusCode::OK, &answer)
        }
        Err(error) => oauth_error(&shared, TOKEN, &error),
    }
}

async fn revoke(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = fault(&shared, REVOKE).await {
        return response;
    }
    let parsed = form_body(&headers, &body).and_then(|form| Ok((form, basic_auth(&headers)?)));
    let (form, basic) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return oauth_error(&shared, REVOKE, &error),
    };
    let Some(result) = blocking(&shared, move |shared| {
        shared.transact(|cx| cx.oauth_revoke(&form, basic.as_ref()))
    })
    .await
    else {
        return internal_error(&shared, REVOKE);
    };
    match result {
        Ok(()) => {
            record(&shared, REVOKE, "ok");
            StatusCode::OK.into_response()
        }
        Err(error) => oauth_error(&shared, REVOKE, &error),
    }
}

/// `GET /oauth2/authorize`: the login form, or an error (a page, or a redirect with `error`).
async fn authorize_page(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    if let Some(response) = fault(&shared, AUTHORIZE).await {
        return response;
    }
    let form = match Form::parse(query.unwrap_or_default().as_bytes()) {
        Ok(form) => form,
        Err(error) => {
            record(&shared, AUTHORIZE, error.error);
            return error_page(&error.description);
        }
    };
    match shared.transact(|cx| cx.check_authorize(&form)) {
        Ok(request) => {
            record(&shared, AUTHORIZE, "ok");
            login_page(&request, None)
        }
        Err(error) => authorize_refused(&shared, &error),
    }
}

/// `POST /oauth2/authorize`: the login form's answer; a 302 to the redirect URI with the code.
async fn authorize_submit(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = fault(&shared, AUTHORIZE).await {
        return response;
    }
    let form = match form_body(&headers, &body) {
        Ok(form) => form,
        Err(error) => {
            record(&shared, AUTHORIZE, error.error);
            return error_page(&error.description);
        }
    };
    let Some(result) = blocking(&shared, move |shared| {
        shared.transact(|cx| cx.authorize_login(&form))
    })
    .await
    else {
        return internal_error(&shared, AUTHORIZE);
    };
    match result {
        Ok(LoginOutcome::Code {
            redirect_uri,
            code,
            state,
        }) => {
            record(&shared, AUTHORIZE, "ok");
            let mut pairs = vec![("code", code.as_str())];
            pairs.extend(state.as_deref().map(|s| ("state", s)));
            redirect(&redirect_uri, &pairs)
        }
        Ok(LoginOutcome::Retry(request, message)) => {
            record(&shared, AUTHORIZE, "login_failed");
            login_page(&request, Some(&message))
        }
        Err(error) => authorize_refused(&shared, &error),
    }
}

fn authorize_refused(shared: &Shared, error: &AuthorizeError) -> Response {
    record(shared, AUTHORIZE, error.outcome());
    match error {
        AuthorizeError::Page(message) => error_page(message),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let mut pairs = vec![
                ("error", *error),
                ("error_description", description.as_str()),
            ];
            pairs.extend(state.as_deref().map(|s| ("state", s)));
            redirect(redirect_uri, &pairs)
        }
    }
}

/// A 302 to `uri` with `pairs` appended to its query.
fn redirect(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return error_page("the callback URL is not a URL");
    };
    url.query_pairs_mut().extend_pairs(pairs);
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => error_page("the callback URL cannot be sent as a header"),
    }
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}\n</body></html>\n",
        escape(title)
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The error page for a request that cannot be redirected (unknown client or redirect URI).
fn error_page(message: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        "Sign-in error",
        &format!(
            "<h1>An error was encountered with the requested page.</h1>\n<p id=\"error\">{}</p>",
            escape(message)
        ),
    )
}

/// The login form; it posts back to `/oauth2/authorize` with the request's parameters.
fn login_page(request: &AuthorizeRequest, message: Option<&str>) -> Response {
    let scope = request.scopes.join(" ");
    let mut hidden = vec![
        ("response_type", "code"),
        ("client_id", request.client_id.as_str()),
        ("redirect_uri", request.redirect_uri.as_str()),
        ("scope", scope.as_str()),
    ];
    hidden.extend(request.state.as_deref().map(|s| ("state", s)));
    if let Some(challenge) = request.code_challenge.as_deref() {
        hidden.push(("code_challenge", challenge));
        hidden.push(("code_challenge_method", "S256"));
    }
    hidden.extend(request.nonce.as_deref().map(|n| ("nonce", n)));
    let fields: String = hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                escape(value)
            )
        })
        .collect();
    let message = message
        .map(|m| format!("<p id=\"error\" role=\"alert\">{}</p>\n", escape(m)))
        .unwrap_or_default();
    let status = if message.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        status,
        "Sign in",
        &format!(
            "<h1>Sign in</h1>\n{message}<form method=\"post\" action=\"/oauth2/authorize\">\n{fields}\
             <label>Username <input name=\"username\" autocomplete=\"username\" required></label>\n\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n\
             <button type=\"submit\">Sign in</button>\n</form>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn basic_auth_is_parsed_strictly() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("id:se:cret")))
                .expect("ascii"),
        );
        let basic = basic_auth(&headers).expect("valid").expect("present");
        assert_eq!(
            (basic.client_id.as_str(), basic.secret.as_str()),
            ("id", "se:cret")
        );
        assert!(!format!("{basic:?}").contains("se:cret"));
        for bad in ["Bearer abc", "Basic !!!", "Basic aWQ="] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert_eq!(basic_auth(&headers).expect_err(bad).error, "invalid_client");
        }
    }
}
