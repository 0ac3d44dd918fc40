//! One profile's table: every key checked, defaults filled in, each problem reported with
//! its line (the daemon table and the file as a whole are in `config.rs`).

use super::*;

pub(super) fn validate_profile(
    ctx: &mut Ctx<'_>,
    name: &ProfileName,
    (table, raw): (std::ops::Range<usize>, RawProfile),
    readable_by_others: bool,
    warnings: &mut Vec<String>,
    env: &dyn EnvSource,
) -> Option<ProfileConfig> {
    let errors_before = ctx.errors.len();
    let key = |field: &str| format!("profiles.{name}.{field}");

    let (grant, oauth) = ways::validate_oauth(
        ctx,
        &key,
        table.clone(),
        ways::RawOAuth {
            grant: raw.grant,
            domain: raw.domain,
            scopes: raw.scopes,
            redirect_uri: raw.redirect_uri,
            identity_provider: raw.identity_provider,
        },
        raw.client_secret.is_some(),
    );
    let user_pool = grant == Grant::UserPool;

    let user_pool_id = match &raw.user_pool_id {
        None if user_pool => {
            ctx.error_at(
                table.clone(),
                &key("user_pool_id"),
                "missing `user_pool_id`, e.g. \"eu-west-1_AbCdEf123\" (or set grant = \"client_credentials\" / \"authorization_code\" with a `domain`)",
            );
            None
        }
        None => None,
        Some(value) => match UserPoolId::parse(value.get_ref()) {
            Ok(pool) => Some(pool),
            Err(error) => {
                ctx.error_at(
                    value.span(),
                    &key("user_pool_id"),
                    format!(
                        "invalid user pool id {:?} ({error}); expected REGION_NAME like \"eu-west-1_AbCdEf123\"",
                        value.get_ref()
                    ),
                );
                None
            }
        },
    };

    let region = match (&raw.region, &user_pool_id) {
        (Some(region), Some(pool)) => {
            let valid = !region.get_ref().is_empty()
                && region
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                ctx.error_at(
                    region.span(),
                    &key("region"),
                    format!(
                        "invalid region {:?}; expected e.g. \"eu-west-1\"",
                        region.get_ref()
                    ),
                );
            } else if region.get_ref() != pool.region() {
                ctx.error_at(
                    region.span(),
                    &key("region"),
                    format!(
                        "region {:?} does not match the user pool's region {:?}; remove `region` or fix it",
                        region.get_ref(),
                        pool.region()
                    ),
                );
            }
            region.get_ref().clone()
        }
        (None, Some(pool)) => pool.region().to_owned(),
        (_, None) => String::new(),
    };

    let client_id = raw.client_id.get_ref().clone();
    if client_id.is_empty()
        || client_id.len() > 128
        || !client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        ctx.error_at(
            raw.client_id.span(),
            &key("client_id"),
            "the app client id must be 1 to 128 characters of letters, digits, - and _",
        );
    }

    let username = match (&raw.username, grant) {
        (Some(value), Grant::UserPool) => {
            if value.get_ref().trim().is_empty() {
                ctx.error_at(
                    value.span(),
                    &key("username"),
                    "the username must not be empty",
                );
            }
            value.get_ref().clone()
        }
        (None, Grant::UserPool) => {
            ctx.error_at(
                table.clone(),
                &key("username"),
                "missing `username`, the user (or email alias) to log in as",
            );
            String::new()
        }
        (Some(value), _) => {
            ctx.error_at(
                value.span(),
                &key("username"),
                format!(
                    "grant = \"{}\" has no username (the {}); remove it",
                    grant.as_str(),
                    if grant == Grant::ClientCredentials {
                        "client is the subject"
                    } else {
                        "browser asks who signs in"
                    }
                ),
            );
            String::new()
        }
        (None, Grant::ClientCredentials) => client_id.clone(),
        (None, Grant::AuthorizationCode) => String::new(),
    };
    if !user_pool {
        let stray = [
            ("auth_flow", raw.auth_flow.as_ref().map(Spanned::span)),
            ("password", raw.password.as_ref().map(Spanned::span)),
            (
                "preferred_challenge",
                raw.preferred_challenge.as_ref().map(Spanned::span),
            ),
        ];
        for (field, span) in stray {
            if let Some(span) = span {
                ctx.error_at(
                    span,
                    &key(field),
                    format!(
                        "`{field}` is for user-pool sign-ins; grant = \"{}\" does not use it",
                        grant.as_str()
                    ),
                );
            }
        }
    }

    let client_secret = raw.client_secret.and_then(|value| {
        let span = value.span();
        match secret_source(value.get_ref(), true) {
            Ok(source) => {
                if matches!(source, SecretSource::Literal(_)) && readable_by_others {
                    warnings.push(format!(
                        "{}:{}: {}: a literal client secret is in a file that group or others can read; chmod 600 it or use {{ env = .. }}, {{ command = .. }} or {{ keyring = true }}",
                        ctx.path,
                        ctx.line(span.start),
                        key("client_secret")
                    ));
                }
                Some(source)
            }
            Err(message) => {
                ctx.error_at(span, &key("client_secret"), message);
                None
            }
        }
    });

    let password = raw.password.and_then(|value| {
        let span = value.span();
        match secret_source(value.get_ref(), false) {
            Ok(source) => Some(source),
            Err(message) => {
                ctx.error_at(span, &key("password"), message);
                None
            }
        }
    });

    let (auth_flow, auth_flow_name) = match &raw.auth_flow {
        None if !user_pool => (Some(AuthFlow::UserSrp), grant.as_str()),
        None => (Some(AuthFlow::UserSrp), AuthFlow::UserSrp.as_str()),
        Some(flow) => match AuthFlow::from_str(flow.get_ref()) {
            Ok(parsed) => {
                let name = parsed.as_str();
                (Some(parsed), name)
            }
            Err(_) => {
                ctx.error_at(
                    flow.span(),
                    &key("auth_flow"),
                    format!(
                        "unknown auth flow {:?}; allowed: \"USER_SRP_AUTH\" (default), \"USER_PASSWORD_AUTH\", \"USER_AUTH\", \"CUSTOM_AUTH\"",
                        flow.get_ref()
                    ),
                );
                (None, "")
            }
        },
    };

    let endpoint = raw.endpoint.and_then(|value| {
        let span = value.span();
        match Url::parse(value.get_ref()) {
            Ok(url) if url.scheme() == "http" && url.host().is_some() && !is_loopback(&url) => {
                ctx.error_at(
                    span,
                    &key("endpoint"),
                    format!(
                        "{:?} is plain http to another host: passwords and refresh tokens would cross the network in cleartext; use https, or http only to 127.0.0.1, [::1] or localhost (an emulator)",
                        value.get_ref()
                    ),
                );
                None
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                ctx.error_at(
                    span,
                    &key("endpoint"),
                    format!(
                        "{:?} is not an http(s) URL; e.g. \"http://127.0.0.1:9229\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    });

    let endpoint_variant = match &raw.endpoint_variant {
        None => EndpointVariant::Standard,
        Some(value) => match value.get_ref().as_str() {
            "standard" => EndpointVariant::Standard,
            "fips" => EndpointVariant::Fips,
            "dualstack" => EndpointVariant::DualStack,
            "fips-dualstack" => EndpointVariant::FipsDualStack,
            other => {
                ctx.error_at(
                    value.span(),
                    &key("endpoint_variant"),
                    format!(
                        "unknown endpoint variant {other:?}; allowed: \"standard\", \"fips\", \"dualstack\", \"fips-dualstack\""
                    ),
                );
                EndpointVariant::Standard
            }
        },
    };

    let refresh_before = raw.refresh_before.and_then(|value| {
        let span = value.span();
        match parse_duration(value.get_ref()) {
            Ok(duration)
                if duration >= Duration::from_secs(1)
                    && duration <= Duration::from_secs(86_400) =>
            {
                Some(duration)
            }
            Ok(_) => {
                ctx.error_at(span, &key("refresh_before"), "must be between 1s and 24h");
                None
            }
            Err(message) => {
                ctx.error_at(span, &key("refresh_before"), message);
                None
            }
        }
    });

    let device_name = match raw.device_name {
        Some(value) if value.get_ref().trim().is_empty() || value.get_ref().len() > 256 => {
            ctx.error_at(
                value.span(),
                &key("device_name"),
                "must be 1 to 256 characters",
            );
            String::new()
        }
        Some(value) => value.into_inner(),
        None => default_device_name(),
    };

    let mut hosts = Vec::new();
    for entry in raw.hosts.unwrap_or_default() {
        match host_entry(entry.get_ref()) {
            Ok(host) if hosts.contains(&host) => ctx.error_at(
                entry.span(),
                &key("hosts"),
                format!("{:?} is listed twice", entry.get_ref()),
            ),
            Ok(host) => hosts.push(host),
            Err(message) => ctx.error_at(entry.span(), &key("hosts"), message),
        }
    }

    let token_kind = raw
        .token_kind
        .and_then(|value| match value.get_ref().as_str() {
            "access" => Some(TokenKind::Access),
            "id" => Some(TokenKind::Id),
            other => {
                ctx.error_at(
                    value.span(),
                    &key("token_kind"),
                    format!("unknown token kind {other:?}; allowed: \"access\", \"id\""),
                );
                None
            }
        });

    let auth_flow = match (auth_flow, raw.preferred_challenge) {
        (flow, None) => flow,
        (Some(AuthFlow::UserAuth { .. }), Some(value)) => {
            let choice = value.get_ref().to_ascii_uppercase();
            if matches!(
                choice.as_str(),
                "EMAIL_OTP" | "SMS_OTP" | "PASSWORD" | "PASSWORD_SRP"
            ) {
                Some(AuthFlow::UserAuth {
                    preferred: Some(choice),
                })
            } else {
                ctx.error_at(
                    value.span(),
                    &key("preferred_challenge"),
                    format!(
                        "unknown first factor {:?}; allowed: \"EMAIL_OTP\", \"SMS_OTP\", \"PASSWORD\", \"PASSWORD_SRP\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
        (flow, Some(value)) => {
            if user_pool {
                ctx.error_at(
                    value.span(),
                    &key("preferred_challenge"),
                    "`preferred_challenge` needs auth_flow = \"USER_AUTH\"",
                );
            }
            flow
        }
    };

    let uid = rustix::process::getuid().as_raw();
    let sinks = ways::validate_sinks(
        ctx,
        &key,
        raw.sinks.unwrap_or_default(),
        env,
        grant == Grant::ClientCredentials,
        uid,
    );
    if grant == Grant::ClientCredentials && token_kind == Some(TokenKind::Id) {
        ctx.error_at(
            table.clone(),
            &key("token_kind"),
            "client_credentials issues access tokens only; use token_kind = \"access\"",
        );
    }
    let aws = aws::validate(
        ctx,
        aws::RawAws {
            identity_pool_id: raw.identity_pool_id,
            identity_endpoint: raw.identity_endpoint,
            identity_flow: raw.identity_flow,
            role_arn: raw.role_arn,
            sts_endpoint: raw.sts_endpoint,
            logins_provider: raw.logins_provider,
        },
        &aws::ProfileFacts {
            name: name.as_str(),
            endpoint: endpoint.as_ref(),
            variant: endpoint_variant,
            user_pool_region: &region,
            user_pool_id: user_pool_id.as_ref(),
        },
    );
    if grant == Grant::ClientCredentials && aws.is_some() {
        ctx.error_at(
            table.clone(),
            &key("identity_pool_id"),
            "an identity pool trades an ID token for AWS credentials, and client_credentials issues none; use a user-pool or browser profile",
        );
    }

    if ctx.errors.len() != errors_before {
        return None;
    }
    Some(ProfileConfig {
        name: name.clone(),
        region,
        user_pool_id,
        client_id,
        client_secret,
        username,
        auth_flow: auth_flow?,
        auth_flow_name,
        password,
        remember_device: raw.remember_device.unwrap_or(true),
        endpoint,
        endpoint_variant,
        refresh_before,
        device_name,
        hosts,
        token_kind,
        grant,
        oauth: oauth.map(Box::new),
        sinks,
        aws: aws.map(Box::new),
    })
}

/// "cogbroker on HOST", read once per process (a config of 1,000 profiles asks 1,000 times).
pub(super) fn default_device_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        if host.is_empty() {
            "cogbroker".to_owned()
        } else {
            format!("cogbroker on {host}")
        }
    })
    .clone()
}

pub(super) fn secret_source(
    value: &toml::Value,
    literal_allowed: bool,
) -> Result<SecretSource, String> {
    const FORMS: &str = "{ env = \"VAR\" }, { command = \"...\" } or { keyring = true }";
    match value {
        toml::Value::String(literal) if literal_allowed => {
            if literal.is_empty() {
                Err(format!("must not be empty; use a string or {FORMS}"))
            } else {
                Ok(SecretSource::Literal(ClientSecret::new(literal.clone())))
            }
        }
        toml::Value::String(_) => Err(format!(
            "a literal value is not allowed here (it would sit in the file); use {FORMS}"
        )),
        toml::Value::Table(table) => {
            if table.len() != 1 {
                return Err(format!("needs exactly one of {FORMS}"));
            }
            let (form, inner) = table
                .iter()
                .next()
                .expect("the table has exactly one entry");
            match (form.as_str(), inner) {
                ("env", toml::Value::String(name)) if !name.is_empty() => {
                    Ok(SecretSource::Env(name.clone()))
                }
                ("command", toml::Value::String(command)) if !command.trim().is_empty() => {
                    Ok(SecretSource::Command(command.clone()))
                }
                ("keyring", toml::Value::Boolean(true)) => Ok(SecretSource::Keyring),
                ("env" | "command", _) => Err(format!("`{form}` needs a non-empty string")),
                ("keyring", _) => Err("`keyring` must be `true`".to_owned()),
                (other, _) => Err(format!("unknown secret source `{other}`; use {FORMS}")),
            }
        }
        _ if literal_allowed => Err(format!("expected a string or {FORMS}")),
        _ => Err(format!("expected {FORMS}")),
    }
}
