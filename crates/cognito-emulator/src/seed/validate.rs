//! Range and shape checks after parsing, each error naming the offending key.

use std::collections::BTreeSet;

use super::{
    ALL_FIRST_FACTORS, ALL_FLOWS, ClientSeed, IdentityPoolSeed, MFA_SETUP_TYPES, OAUTH_FLOWS,
    PoolSeed, STANDARD_SCOPES, SeedError, UserMfa,
};

fn invalid(key: String, message: impl Into<String>) -> SeedError {
    SeedError::Invalid {
        key,
        message: message.into(),
    }
}

fn check_range(key: String, value: u64, min: u64, max: u64) -> Result<(), SeedError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is out of range {min}..={max}"),
        ))
    }
}

fn is_word(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
}

/// Splits `<region>_<name>`; both parts as the service allows them.
pub(crate) fn split_pool_id(id: &str) -> Option<(&str, &str)> {
    let (region, name) = id.split_once('_')?;
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.chars().any(|c| c.is_ascii_digit());
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric());
    (region_ok && name_ok).then_some((region, name))
}

pub(super) fn validate(pools: &[PoolSeed]) -> Result<(), SeedError> {
    let mut pool_ids = BTreeSet::new();
    let mut client_ids = BTreeSet::new();
    for (p, pool) in pools.iter().enumerate() {
        let at = |key: &str| format!("pools[{p}].{key}");
        if split_pool_id(&pool.id).is_none() {
            return Err(invalid(
                at("id"),
                format!("{:?} is not <region>_<name>, e.g. us-east-1_Demo1", pool.id),
            ));
        }
        if !pool_ids.insert(pool.id.as_str()) {
            return Err(invalid(
                at("id"),
                format!("duplicate pool id {:?}", pool.id),
            ));
        }
        match pool.username_attributes.as_slice() {
            [] => {}
            [only] if only == "email" => {}
            _ => {
                return Err(invalid(
                    at("username_attributes"),
                    "only [] or [\"email\"] is supported",
                ));
            }
        }
        check_range(
            at("lockout_threshold"),
            pool.lockout_threshold.into(),
            1,
            100,
        )?;
        check_range(at("lockout_seconds"), pool.lockout_seconds, 1, 86_400)?;
        check_range(
            at("password_policy.min_length"),
            pool.password_policy.min_length as u64,
            6,
            99,
        )?;
        for (i, kind) in pool.mfa_setup.iter().enumerate() {
            if !MFA_SETUP_TYPES.contains(&kind.as_str()) {
                return Err(invalid(
                    at(&format!("mfa_setup[{i}]")),
                    format!("{kind:?} is not one of {MFA_SETUP_TYPES:?}"),
                ));
            }
        }
        let custom_scopes = validate_resource_servers(p, pool)?;
        for (c, client) in pool.clients.iter().enumerate() {
            let at = |key: &str| format!("pools[{p}].clients[{c}].{key}");
            validate_oauth_client(client, &custom_scopes, &at)?;
            // The service's ids are [\w+]+; `-` is allowed too, as in design.md's example.
            if !is_word(&client.id, &['+', '-']) || client.id.len() > 128 {
                return Err(invalid(
                    at("id"),
                    format!("{:?} must match [\\w+-]{{1,128}}", client.id),
                ));
            }
            if !client_ids.insert(client.id.as_str()) {
                return Err(invalid(
                    at("id"),
                    format!("duplicate client id {:?}", client.id),
                ));
            }
            if let Some(secret) = &client.secret {
                if !is_word(secret, &['+', '/', '=', '-']) || secret.len() > 128 {
                    return Err(invalid(
                        at("secret"),
                        "must be 1..=128 characters of [\\w+/=-]",
                    ));
                }
            }
            check_range(at("access_token_ttl"), client.access_token_ttl, 1, 86_400)?;
            check_range(at("id_token_ttl"), client.id_token_ttl, 1, 86_400)?;
            check_range(
                at("refresh_token_ttl"),
                client.refresh_token_ttl,
                1,
                315_360_000,
            )?;
            check_range(at("session_ttl"), client.session_ttl, 1, 900)?;
            check_range(
                at("rotation.grace_seconds"),
                client.rotation.grace_seconds,
                0,
                60,
            )?;
            for (i, flow) in client.flows().iter().enumerate() {
                if !ALL_FLOWS.contains(&flow.as_str()) {
                    return Err(invalid(
                        at(&format!("flows[{i}]")),
                        format!("{flow:?} is not one of {ALL_FLOWS:?}"),
                    ));
                }
            }
            if client.rotation.enabled && client.refresh_token_auth_enabled == Some(true) {
                return Err(invalid(
                    at("refresh_token_auth_enabled"),
                    "a client with refresh token rotation cannot allow REFRESH_TOKEN_AUTH",
                ));
            }
            for (i, factor) in client.first_auth_factors().iter().enumerate() {
                if !ALL_FIRST_FACTORS.contains(&factor.as_str()) {
                    return Err(invalid(
                        at(&format!("first_auth_factors[{i}]")),
                        format!("{factor:?} is not one of {ALL_FIRST_FACTORS:?}"),
                    ));
                }
            }
        }
        validate_users(p, pool)?;
    }
    Ok(())
}

/// The pool's custom scopes, `<identifier>/<scope>`.
fn validate_resource_servers(p: usize, pool: &PoolSeed) -> Result<BTreeSet<String>, SeedError> {
    let mut identifiers = BTreeSet::new();
    let mut scopes = BTreeSet::new();
    for (r, server) in pool.resource_servers.iter().enumerate() {
        let at = |key: &str| format!("pools[{p}].resource_servers[{r}].{key}");
        let id = &server.identifier;
        if id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(invalid(
                at("identifier"),
                "must be 1..=256 characters without whitespace or quotes",
            ));
        }
        if !identifiers.insert(id.as_str()) {
            return Err(invalid(
                at("identifier"),
                format!("duplicate resource server {id:?}"),
            ));
        }
        for (i, scope) in server.scopes.iter().enumerate() {
            if !is_word(scope, &['-', '.', '+', ':', '/']) || scope.len() > 256 {
                return Err(invalid(
                    at(&format!("scopes[{i}]")),
                    format!("{scope:?} must be 1..=256 characters of [\\w.+:/-]"),
                ));
            }
            if !scopes.insert(format!("{id}/{scope}")) {
                return Err(invalid(
                    at(&format!("scopes[{i}]")),
                    format!("duplicate scope {scope:?}"),
                ));
            }
        }
    }
    Ok(scopes)
}

/// `callback_urls`, `allowed_oauth_flows` and `allowed_scopes`, with the service's rules.
fn validate_oauth_client(
    client: &ClientSeed,
    custom_scopes: &BTreeSet<String>,
    at: &dyn Fn(&str) -> String,
) -> Result<(), SeedError> {
    for (i, url) in client.callback_urls.iter().enumerate() {
        if let Err(why) = check_callback_url(url) {
            return Err(invalid(at(&format!("callback_urls[{i}]")), why));
        }
    }
    for (i, flow) in client.allowed_oauth_flows.iter().enumerate() {
        if !OAUTH_FLOWS.contains(&flow.as_str()) {
            return Err(invalid(
                at(&format!("allowed_oauth_flows[{i}]")),
                format!("{flow:?} is not one of {OAUTH_FLOWS:?}"),
            ));
        }
    }
    let flows = &client.allowed_oauth_flows;
    if flows.iter().any(|f| f == "client_credentials") {
        if flows.len() > 1 {
            return Err(invalid(
                at("allowed_oauth_flows"),
                "client_credentials cannot be combined with another flow",
            ));
        }
        if client.secret.is_none() {
            return Err(invalid(
                at("allowed_oauth_flows"),
                "client_credentials needs a client secret",
            ));
        }
    }
    if flows.iter().any(|f| f == "code") && client.callback_urls.is_empty() {
        return Err(invalid(
            at("callback_urls"),
            "the code flow needs at least one callback URL",
        ));
    }
    for (i, scope) in client.allowed_scopes.iter().enumerate() {
        let standard = STANDARD_SCOPES.contains(&scope.as_str());
        if !standard && !custom_scopes.contains(scope) {
            return Err(invalid(
                at(&format!("allowed_scopes[{i}]")),
                format!(
                    "{scope:?} is neither a standard scope ({STANDARD_SCOPES:?}) nor <identifier>/<scope> of a resource server of this pool"
                ),
            ));
        }
        if standard && flows.iter().any(|f| f == "client_credentials") {
            return Err(invalid(
                at(&format!("allowed_scopes[{i}]")),
                "a client_credentials client can only have custom scopes",
            ));
        }
    }
    Ok(())
}

/// Cognito's rule for callback URLs: absolute, no fragment, and https unless the host is localhost.
fn check_callback_url(url: &str) -> Result<(), String> {
    let parsed =
        url::Url::parse(url).map_err(|e| format!("{url:?} is not an absolute URL: {e}"))?;
    if parsed.fragment().is_some() {
        return Err(format!("{url:?} must not have a fragment"));
    }
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!("{url:?}: plain http is allowed only for localhost")),
        // Custom schemes (myapp://callback) are allowed for native apps.
        _ if parsed.cannot_be_a_base() => Err(format!("{url:?} is not a usable redirect URI")),
        _ => Ok(()),
    }
}

pub(super) fn validate_identity_pools(
    pools: &[PoolSeed],
    identity_pools: &[IdentityPoolSeed],
) -> Result<(), SeedError> {
    let mut ids = BTreeSet::new();
    for (i, pool) in identity_pools.iter().enumerate() {
        let at = |key: &str| format!("identity_pools[{i}].{key}");
        let uuid_ok = |u: &str| {
            u.len() == 36
                && u.char_indices().all(|(n, c)| {
                    if matches!(n, 8 | 13 | 18 | 23) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                })
        };
        let shape = pool.id.split_once(':').is_some_and(|(region, uuid)| {
            split_pool_id(&format!("{region}_x")).is_some() && uuid_ok(uuid)
        });
        if !shape {
            return Err(invalid(
                at("id"),
                format!("{:?} is not <region>:<uuid>", pool.id),
            ));
        }
        if !ids.insert(pool.id.as_str()) {
            return Err(invalid(
                at("id"),
                format!("duplicate identity pool {:?}", pool.id),
            ));
        }
        let Some(user_pool) = pools.iter().find(|p| p.id == pool.user_pool) else {
            return Err(invalid(
                at("user_pool"),
                format!("{:?} is not a pool of this seed", pool.user_pool),
            ));
        };
        if !user_pool.clients.iter().any(|c| c.id == pool.client_id) {
            return Err(invalid(
                at("client_id"),
                format!("{:?} is not a client of {}", pool.client_id, pool.user_pool),
            ));
        }
        check_range(at("credentials_ttl"), pool.credentials_ttl, 1, 43_200)?;
        if role_account(&pool.roles.authenticated).is_none() {
            return Err(invalid(
                at("roles.authenticated"),
                format!(
                    "{:?} is not arn:aws:iam::<12 digits>:role/<name>",
                    pool.roles.authenticated
                ),
            ));
        }
    }
    Ok(())
}

/// The account and role name of `arn:aws:iam::<account>:role/<path/name>`.
pub(crate) fn role_account(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, role) = rest.split_once(":role/")?;
    let name = role.rsplit('/').next()?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = is_word(name, &['+', '=', ',', '.', '@', '-']) && name.len() <= 64;
    (account_ok && name_ok).then_some((account, name))
}

fn validate_users(p: usize, pool: &PoolSeed) -> Result<(), SeedError> {
    let email_pool = !pool.username_attributes.is_empty();
    let mut names = BTreeSet::new();
    let mut subs = BTreeSet::new();
    for (u, user) in pool.users.iter().enumerate() {
        let at = |key: &str| format!("pools[{p}].users[{u}].{key}");
        let name = match (&user.username, &user.email) {
            (Some(name), Some(email)) if email_pool && !name.eq_ignore_ascii_case(email) => {
                return Err(invalid(
                    at("username"),
                    "in a pool with username_attributes = [\"email\"] it must equal email or be omitted",
                ));
            }
            (_, None) if email_pool => {
                return Err(invalid(
                    at("email"),
                    "required in a pool with username_attributes = [\"email\"]",
                ));
            }
            (Some(name), _) => name.clone(),
            (None, Some(email)) if email_pool => email.clone(),
            (None, _) => return Err(invalid(at("username"), "missing")),
        };
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_whitespace) {
            return Err(invalid(
                at("username"),
                "must be 1..=128 characters without whitespace",
            ));
        }
        if !names.insert(name.to_lowercase()) {
            return Err(invalid(
                at("username"),
                format!("duplicate username {name:?}"),
            ));
        }
        if let Some(sub) = &user.sub {
            if !is_word(sub, &['-']) || sub.len() > 64 {
                return Err(invalid(at("sub"), "must be 1..=64 characters of [\\w-]"));
            }
            if !subs.insert(sub.clone()) {
                return Err(invalid(at("sub"), format!("duplicate sub {sub:?}")));
            }
        }
        if user.password.is_empty() {
            return Err(invalid(at("password"), "must not be empty"));
        }
        if let Some(email) = &user.email {
            if !email.contains('@') || email.chars().any(char::is_whitespace) {
                return Err(invalid(
                    at("email"),
                    format!("{email:?} is not an email address"),
                ));
            }
        }
        if let Some(phone) = &user.phone_number {
            let digits = phone.strip_prefix('+').unwrap_or("");
            if !(4..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    at("phone_number"),
                    format!("{phone:?} is not E.164 (+ and 4..=15 digits)"),
                ));
            }
        }
        if let Some(secret) = &user.totp_secret {
            if crate::totp::decode_secret(secret).is_none_or(|key| key.len() < 10) {
                return Err(invalid(
                    at("totp_secret"),
                    "must be base32 of at least 10 bytes (16 characters)",
                ));
            }
        }
        let totp = user.totp_mfa || user.mfa == UserMfa::Totp;
        let sms = user.sms_mfa || user.mfa == UserMfa::Sms;
        let email_mfa = user.email_mfa || user.mfa == UserMfa::Email;
        if totp && user.totp_secret.is_none() {
            return Err(invalid(
                at("totp_secret"),
                "required when TOTP MFA is enabled",
            ));
        }
        if sms && user.phone_number.is_none() {
            return Err(invalid(
                at("phone_number"),
                "required when SMS MFA is enabled",
            ));
        }
        if email_mfa && user.email.is_none() {
            return Err(invalid(at("email"), "required when email MFA is enabled"));
        }
        for key in user.attributes.keys() {
            if matches!(
                key.as_str(),
                "sub" | "email" | "phone_number" | "email_verified" | "phone_number_verified"
            ) {
                return Err(invalid(
                    at(&format!("attributes.{key}")),
                    "set it with the user's own key, not in attributes",
                ));
            }
            if key.is_empty() || key.len() > 32 + 7 {
                return Err(invalid(
                    at(&format!("attributes.{key}")),
                    "bad attribute name",
                ));
            }
        }
        for (i, attr) in user.required_attributes.iter().enumerate() {
            if attr == "sub" || attr.is_empty() || attr.starts_with("userAttributes.") {
                return Err(invalid(
                    at(&format!("required_attributes[{i}]")),
                    "give plain attribute names other than sub",
                ));
            }
        }
    }
    Ok(())
}
