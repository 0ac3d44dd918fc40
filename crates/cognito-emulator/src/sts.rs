//! STS's query protocol on `POST /` (a form body with `Action=`, no `X-Amz-Target`), answered in
//! STS's XML. The logic is in `ops::sts`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::handle::Shared;
use crate::inject::{Injected, inject_faults, record};
use crate::ops::{AssumedRole, CallerIdentity, Form, StsError};
use crate::{ids, timefmt};

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Whether a `POST /` is an STS query request (form-encoded, no JSON target).
pub(crate) fn is_query_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Escapes text for XML content.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(&ids::uuid(&mut rand::thread_rng())) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn error_response(error: &StsError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    error_xml(status, error.code, &error.message)
}

/// `<ErrorResponse>` as STS sends it.
fn error_xml(status: StatusCode, code: &str, message: &str) -> Response {
    let kind = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            escape(code),
            escape(message),
            ids::uuid(&mut rand::thread_rng())
        ),
    )
}

/// The access key id of `Authorization: AWS4-HMAC-SHA256 Credential=AKID/date/region/sts/aws4_request, ...`.
fn access_key_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = value
        .split([',', ' '])
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let akid = credential.split('/').next()?;
    (!akid.is_empty()).then(|| akid.to_owned())
}

pub(crate) async fn handle(shared: Arc<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match Form::parse(&body) {
        Ok(form) => form,
        Err(error) => {
            record(&shared, "<sts>", "ValidationError");
            return error_response(&StsError::new("ValidationError", error.description));
        }
    };
    let action = form.get("Action").unwrap_or("").to_owned();
    let label = if action.is_empty() {
        "<sts>"
    } else {
        action.as_str()
    };
    match inject_faults(&shared, label).await {
        Injected::Nothing => {}
        Injected::Respond(response) => return response,
        Injected::Error(error) => {
            record(&shared, label, &error.code);
            let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
            return error_xml(status, &error.code, &error.message);
        }
        Injected::Throttle => {
            record(&shared, label, "Throttling");
            return error_response(&StsError::new("Throttling", "Rate exceeded"));
        }
    }
    let outcome = match action.as_str() {
        "AssumeRoleWithWebIdentity" => {
            let worker = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || {
                worker.transact(|cx| cx.assume_role_with_web_identity(&form))
            })
            .await
            .map_err(|_| StsError::new("InternalFailure", "internal error"))
            .and_then(|r| r)
            .map(|assumed| assumed_xml(&assumed))
        }
        "GetCallerIdentity" => {
            let akid = access_key_id(&headers);
            let token = headers
                .get("x-amz-security-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            shared
                .transact(|cx| cx.get_caller_identity(akid.as_deref(), token.as_deref()))
                .map(|caller| caller_xml(&caller))
        }
        "" => Err(StsError::new("MissingAction", "Missing Action")),
        other => Err(StsError::new(
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    };
    match outcome {
        Ok(body) => {
            record(&shared, label, "ok");
            xml(StatusCode::OK, body)
        }
        Err(error) => {
            record(&shared, label, error.code);
            tracing::info!(action = %label, error = %error.code, "sts call refused");
            error_response(&error)
        }
    }
}

fn metadata() -> String {
    format!(
        "  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n",
        ids::uuid(&mut rand::thread_rng())
    )
}

fn assumed_xml(assumed: &AssumedRole) -> String {
    let c = &assumed.credentials;
    format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{XMLNS}\">\n  <AssumeRoleWithWebIdentityResult>\n    \
         <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    <Audience>{}</Audience>\n    \
         <AssumedRoleUser>\n      <Arn>{}</Arn>\n      <AssumedRoleId>{}</AssumedRoleId>\n    </AssumedRoleUser>\n    \
         <Credentials>\n      <SessionToken>{}</SessionToken>\n      <SecretAccessKey>{}</SecretAccessKey>\n      \
         <Expiration>{}</Expiration>\n      <AccessKeyId>{}</AccessKeyId>\n    </Credentials>\n    \
         <Provider>cognito-identity.amazonaws.com</Provider>\n  </AssumeRoleWithWebIdentityResult>\n{}\
         </AssumeRoleWithWebIdentityResponse>\n",
        escape(&assumed.subject),
        escape(&assumed.audience),
        escape(&c.arn),
        escape(&c.assumed_role_id),
        escape(&c.session_token),
        escape(&c.secret_key),
        timefmt::rfc3339(c.expires_at),
        escape(&c.access_key_id),
        metadata()
    )
}

fn caller_xml(caller: &CallerIdentity) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"{XMLNS}\">\n  <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    \
         <UserId>{}</UserId>\n    <Account>{}</Account>\n  </GetCallerIdentityResult>\n{}</GetCallerIdentityResponse>\n",
        escape(&caller.arn),
        escape(&caller.user_id),
        escape(&caller.account),
        metadata()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_access_key_from_a_sigv4_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=ASIAABCDEFGHIJKLMNOP/20261202/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        );
        assert_eq!(
            access_key_id(&headers).as_deref(),
            Some("ASIAABCDEFGHIJKLMNOP")
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(access_key_id(&headers), None);
    }
}
