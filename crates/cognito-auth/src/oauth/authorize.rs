//! The browser half of the authorization-code grant: the `/oauth2/authorize` URL, and reading
//! the redirect that comes back (pure).

use url::Url;

use super::Pkce;
use super::endpoint;
use crate::error::{Error, OAuthError};
use crate::secret::AuthorizationCode;

/// What the authorize URL asks for.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    /// Where the browser is sent back: exactly one of the app client's callback URLs.
    pub redirect_uri: &'a str,
    /// The scopes, e.g. `["openid", "email"]`; sent space-separated. Nothing is added.
    pub scopes: &'a [String],
    /// The `state` (see [`new_state`](super::new_state)), checked on the redirect.
    pub state: &'a str,
    /// The PKCE pair; its S256 challenge goes on the URL.
    pub pkce: &'a Pkce,
    /// `identity_provider`: skips the managed login's provider picker.
    pub identity_provider: Option<&'a str>,
}

/// `{domain}/oauth2/authorize?response_type=code&client_id=…&redirect_uri=…&scope=…&state=…`
/// `&code_challenge=…&code_challenge_method=S256[&identity_provider=…]`.
pub fn authorize_url(
    domain: &Url,
    client_id: &str,
    request: &AuthorizeRequest<'_>,
) -> Result<Url, Error> {
    check_redirect_uri(request.redirect_uri)?;
    if client_id.trim().is_empty() {
        return Err(Error::InvalidInput("the client id is empty".into()));
    }
    if request.state.len() < 22 {
        return Err(Error::InvalidInput(
            "the state must carry at least 128 random bits".into(),
        ));
    }
    if let Some(scope) = request
        .scopes
        .iter()
        .find(|scope| scope.is_empty() || scope.contains(char::is_whitespace))
    {
        return Err(Error::InvalidInput(format!(
            "scope {scope:?} is empty or contains whitespace"
        )));
    }
    let mut url = endpoint(domain, "oauth2/authorize")?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", request.redirect_uri);
        if !request.scopes.is_empty() {
            query.append_pair("scope", &request.scopes.join(" "));
        }
        query
            .append_pair("state", request.state)
            .append_pair("code_challenge", request.pkce.challenge())
            .append_pair("code_challenge_method", Pkce::METHOD);
        if let Some(provider) = request.identity_provider.filter(|p| !p.trim().is_empty()) {
            query.append_pair("identity_provider", provider.trim());
        }
    }
    Ok(url)
}

/// Reads the redirect URL the browser was sent to (pasted or received by a listener): the
/// `code`, once `state` is the one this login sent. A missing or different `state` is
/// [`Error::StateMismatch`]; an `error` (and `error_description`) on the redirect is
/// [`Error::OAuth`] naming it.
pub fn parse_redirect(redirect: &str, expected_state: &str) -> Result<AuthorizationCode, Error> {
    let url = Url::parse(redirect.trim())
        .map_err(|error| Error::InvalidInput(format!("the redirect is not a url: {error}")))?;
    let mut code = Vec::new();
    let mut state = Vec::new();
    let mut error = None;
    let mut description = None;
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "code" => code.push(value.into_owned()),
            "state" => state.push(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            "error_description" => description = Some(value.into_owned()),
            _ => {}
        }
    }
    let state_matches = matches!(state.as_slice(), [only] if only == expected_state);
    if let Some(error) = error {
        // An error with a foreign state is not this login's answer either.
        if !state.is_empty() && !state_matches {
            return Err(Error::StateMismatch);
        }
        return Err(OAuthError::from_redirect(&error, description.as_deref()).into());
    }
    if !state_matches || expected_state.is_empty() {
        return Err(Error::StateMismatch);
    }
    match code.as_slice() {
        [only] if !only.trim().is_empty() => Ok(AuthorizationCode::new(only.trim())),
        [] => Err(Error::InvalidInput(
            "the redirect carries no code and no error".into(),
        )),
        _ => Err(Error::InvalidInput(
            "the redirect carries an empty or repeated code".into(),
        )),
    }
}

/// A redirect URI must be an absolute http(s) URL without a fragment (Cognito compares it
/// exactly with the registered callback URLs).
pub(super) fn check_redirect_uri(redirect_uri: &str) -> Result<(), Error> {
    let url = Url::parse(redirect_uri).map_err(|error| {
        Error::InvalidInput(format!(
            "redirect_uri {redirect_uri:?} is not a url: {error}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() || url.fragment().is_some() {
        return Err(Error::InvalidInput(format!(
            "redirect_uri {redirect_uri:?} must be an http(s) url without a fragment"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OAuthErrorCode;
    use crate::secret::CodeVerifier;

    const STATE: &str = "c3RhdGUtd2l0aC0xMjgtYml0cy1vci1tb3Jl";

    fn pkce() -> Pkce {
        Pkce::from_verifier(CodeVerifier::new(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ))
        .unwrap()
    }

    #[test]
    fn builds_the_authorize_url() {
        let domain = Url::parse("https://example.auth.us-east-1.amazoncognito.com").unwrap();
        let pkce = pkce();
        let scopes = ["openid".to_owned(), "email".to_owned()];
        let url = authorize_url(
            &domain,
            "1example23456789",
            &AuthorizeRequest {
                redirect_uri: "http://localhost:7468/callback",
                scopes: &scopes,
                state: STATE,
                pkce: &pkce,
                identity_provider: Some("Google"),
            },
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://example.auth.us-east-1.amazoncognito.com/oauth2/authorize?response_type=code\
             &client_id=1example23456789&redirect_uri=http%3A%2F%2Flocalhost%3A7468%2Fcallback\
             &scope=openid+email&state=c3RhdGUtd2l0aC0xMjgtYml0cy1vci1tb3Jl\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256&identity_provider=Google"
        );
        // An emulator URL with a path keeps it.
        let emulator = Url::parse("http://127.0.0.1:9000/pool").unwrap();
        let url = authorize_url(
            &emulator,
            "client",
            &AuthorizeRequest {
                redirect_uri: "http://localhost:7468/callback",
                scopes: &[],
                state: STATE,
                pkce: &pkce,
                identity_provider: None,
            },
        )
        .unwrap();
        assert!(
            url.as_str()
                .starts_with("http://127.0.0.1:9000/pool/oauth2/authorize?response_type=code&"),
            "{url}"
        );
        assert!(!url.as_str().contains("scope="), "{url}");
    }

    #[test]
    fn refuses_bad_authorize_inputs() {
        let domain = Url::parse("https://example.auth.us-east-1.amazoncognito.com").unwrap();
        let pkce = pkce();
        let scopes = ["openid".to_owned()];
        let request = |redirect_uri, state, scopes| AuthorizeRequest {
            redirect_uri,
            scopes,
            state,
            pkce: &pkce,
            identity_provider: None,
        };
        let bad_scope = ["open id".to_owned()];
        for (request, needle) in [
            (
                request("localhost:7468", STATE, &scopes[..]),
                "redirect_uri",
            ),
            (request("ftp://host/cb", STATE, &scopes[..]), "redirect_uri"),
            (
                request("http://localhost/cb#x", STATE, &scopes[..]),
                "fragment",
            ),
            (request("http://localhost/cb", "short", &scopes[..]), "128"),
            (
                request("http://localhost/cb", STATE, &bad_scope[..]),
                "open id",
            ),
        ] {
            let error = authorize_url(&domain, "client", &request).unwrap_err();
            assert!(
                matches!(&error, Error::InvalidInput(message) if message.contains(needle)),
                "{error}"
            );
        }
    }

    #[test]
    fn reads_the_code_once_the_state_matches() {
        let code = parse_redirect(
            &format!(" http://localhost:7468/callback?code=abc-123&state={STATE}\n"),
            STATE,
        )
        .unwrap();
        assert_eq!(code.expose_secret(), "abc-123");
    }

    #[test]
    fn a_wrong_or_missing_state_is_refused() {
        for redirect in [
            "http://localhost/cb?code=abc&state=other".to_owned(),
            "http://localhost/cb?code=abc".to_owned(),
            format!("http://localhost/cb?code=abc&state={STATE}&state=other"),
            "http://localhost/cb?error=access_denied&state=other".to_owned(),
        ] {
            let error = parse_redirect(&redirect, STATE).unwrap_err();
            assert!(matches!(error, Error::StateMismatch), "{redirect}: {error}");
            assert!(error.to_string().contains("state"));
        }
    }

    #[test]
    fn an_error_redirect_names_the_error() {
        let error = parse_redirect(
            &format!(
                "http://localhost/cb?error=invalid_scope&error_description=bad+scope&state={STATE}"
            ),
            STATE,
        )
        .unwrap_err();
        let oauth = error.oauth().expect("an oauth error");
        assert_eq!(oauth.code, OAuthErrorCode::InvalidScope);
        assert_eq!(oauth.description, "bad scope");
        assert!(error.to_string().contains("invalid_scope"), "{error}");
        // Without a state too: it acts on nothing.
        let error = parse_redirect("http://localhost/cb?error=access_denied", STATE).unwrap_err();
        assert_eq!(error.oauth().unwrap().code, OAuthErrorCode::AccessDenied);
    }

    #[test]
    fn malformed_redirects_are_named() {
        let error = parse_redirect("not a url", STATE).unwrap_err();
        assert!(error.to_string().contains("not a url"), "{error}");
        let error =
            parse_redirect(&format!("http://localhost/cb?state={STATE}"), STATE).unwrap_err();
        assert!(error.to_string().contains("no code"), "{error}");
        let error =
            parse_redirect(&format!("http://localhost/cb?code=&state={STATE}"), STATE).unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
    }
}
