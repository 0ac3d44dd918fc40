//! The identity-pool keys of a profile (design.md §13): where a profile's AWS credentials come
//! from. Validated with the rest of the file; every error names the key and what is allowed.

use cognito_auth::{EndpointVariant, UserPoolId, identity_endpoint, sts_endpoint};
use toml::Spanned;
use url::Url;

use super::{Ctx, is_loopback};

/// How the identity pool turns the ID token into AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityFlow {
    /// `GetCredentialsForIdentity` (the default; `role_arn`, if set, is its `CustomRoleArn`).
    Enhanced,
    /// `GetOpenIdToken`, then STS `AssumeRoleWithWebIdentity` with `role_arn`.
    Basic,
}

impl IdentityFlow {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enhanced => "enhanced",
            Self::Basic => "basic",
        }
    }
}

/// A profile's identity pool: present when `identity_pool_id` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// `<region>:<uuid>`.
    pub identity_pool_id: String,
    /// The identity pool's region (the id's prefix).
    pub region: String,
    /// Where GetId, GetCredentialsForIdentity and GetOpenIdToken go.
    pub identity_endpoint: Url,
    /// Enhanced (default) or basic.
    pub flow: IdentityFlow,
    /// The role: STS's `RoleArn` (basic), or `CustomRoleArn` (enhanced, optional).
    pub role_arn: Option<String>,
    /// Where AssumeRoleWithWebIdentity goes (basic flow).
    pub sts_endpoint: Url,
    /// The `Logins` key: the user pool's issuer without `https://`.
    pub logins_provider: String,
}

/// The identity-pool keys as written.
pub(super) struct RawAws {
    pub(super) identity_pool_id: Option<Spanned<String>>,
    pub(super) identity_endpoint: Option<Spanned<String>>,
    pub(super) identity_flow: Option<Spanned<String>>,
    pub(super) role_arn: Option<Spanned<String>>,
    pub(super) sts_endpoint: Option<Spanned<String>>,
    pub(super) logins_provider: Option<Spanned<String>>,
}

/// What the rest of the profile says that the defaults depend on.
pub(super) struct ProfileFacts<'a> {
    pub(super) name: &'a str,
    pub(super) endpoint: Option<&'a Url>,
    pub(super) variant: EndpointVariant,
    pub(super) user_pool_region: &'a str,
    pub(super) user_pool_id: Option<&'a UserPoolId>,
}

/// Validates the identity-pool keys. `None` without `identity_pool_id` (and an error if other
/// identity keys are set without it), or when something is wrong (reported in `ctx`).
pub(super) fn validate(
    ctx: &mut Ctx<'_>,
    raw: RawAws,
    facts: &ProfileFacts<'_>,
) -> Option<AwsConfig> {
    let key = |field: &str| format!("profiles.{}.{field}", facts.name);
    let Some(pool) = raw.identity_pool_id else {
        for (field, value) in [
            ("identity_endpoint", &raw.identity_endpoint),
            ("identity_flow", &raw.identity_flow),
            ("role_arn", &raw.role_arn),
            ("sts_endpoint", &raw.sts_endpoint),
            ("logins_provider", &raw.logins_provider),
        ] {
            if let Some(value) = value {
                ctx.error_at(
                    value.span(),
                    &key(field),
                    "only used with an identity pool: set identity_pool_id = \"<region>:<uuid>\" too",
                );
            }
        }
        return None;
    };
    let errors_before = ctx.errors.len();

    let region = match parse_pool_id(pool.get_ref()) {
        Ok(region) => region,
        Err(message) => {
            ctx.error_at(pool.span(), &key("identity_pool_id"), message);
            String::new()
        }
    };

    let flow = match &raw.identity_flow {
        None => IdentityFlow::Enhanced,
        Some(value) => match value.get_ref().as_str() {
            "enhanced" => IdentityFlow::Enhanced,
            "basic" => IdentityFlow::Basic,
            other => {
                ctx.error_at(
                    value.span(),
                    &key("identity_flow"),
                    format!("unknown identity flow {other:?}; allowed: \"enhanced\" (default), \"basic\""),
                );
                IdentityFlow::Enhanced
            }
        },
    };

    let role_arn = raw
        .role_arn
        .and_then(|value| match check_role_arn(value.get_ref()) {
            Ok(()) => Some(value.into_inner()),
            Err(message) => {
                ctx.error_at(value.span(), &key("role_arn"), message);
                None
            }
        });
    if flow == IdentityFlow::Basic && role_arn.is_none() && ctx.errors.len() == errors_before {
        let span = raw
            .identity_flow
            .as_ref()
            .map_or_else(|| pool.span(), Spanned::span);
        ctx.error_at(
            span,
            &key("role_arn"),
            "identity_flow = \"basic\" needs role_arn = \"arn:aws:iam::<account>:role/<name>\" (the role STS assumes)",
        );
    }

    let identity_endpoint = endpoint_setting(
        ctx,
        raw.identity_endpoint,
        &key("identity_endpoint"),
        facts,
        identity_endpoint,
        &region,
    );
    let sts = endpoint_setting(
        ctx,
        raw.sts_endpoint,
        &key("sts_endpoint"),
        facts,
        sts_endpoint,
        &region,
    );

    let logins_provider = match raw.logins_provider {
        Some(value) => {
            let text = value.get_ref();
            let valid = !text.is_empty()
                && !text.contains("://")
                && !text.ends_with('/')
                && !text.chars().any(char::is_whitespace);
            if !valid {
                ctx.error_at(
                    value.span(),
                    &key("logins_provider"),
                    format!(
                        "{text:?} is not a provider name; write it as the identity pool lists it, without https:// and without a trailing slash, e.g. \"cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC123\""
                    ),
                );
            }
            text.clone()
        }
        None => facts
            .user_pool_id
            .map(|pool| cognito_auth::identity::user_pool_provider(facts.user_pool_region, pool))
            .unwrap_or_default(),
    };

    if ctx.errors.len() != errors_before {
        return None;
    }
    Some(AwsConfig {
        identity_pool_id: pool.into_inner(),
        region,
        identity_endpoint: identity_endpoint?,
        flow,
        role_arn,
        sts_endpoint: sts?,
        logins_provider,
    })
}

/// `<region>:<uuid>` → the region.
fn parse_pool_id(id: &str) -> Result<String, String> {
    let wrong = || {
        format!(
            "{id:?} is not an identity pool id; expected REGION:UUID like \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\""
        )
    };
    let (region, uuid) = id.split_once(':').ok_or_else(wrong)?;
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let groups: Vec<&str> = uuid.split('-').collect();
    let uuid_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()));
    if region_ok && uuid_ok {
        Ok(region.to_owned())
    } else {
        Err(wrong())
    }
}

fn check_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|name| !name.is_empty());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an IAM role ARN; expected \"arn:aws:iam::<12-digit account>:role/<name>\""
        ))
    }
}

/// An explicit endpoint (https, or http to loopback), else the profile's `endpoint`, else the
/// identity pool region's endpoint of the service.
fn endpoint_setting(
    ctx: &mut Ctx<'_>,
    value: Option<Spanned<String>>,
    key: &str,
    facts: &ProfileFacts<'_>,
    regional: impl Fn(&str, EndpointVariant) -> Result<Url, cognito_auth::Error>,
    region: &str,
) -> Option<Url> {
    if let Some(value) = value {
        return match Url::parse(value.get_ref()) {
            Ok(url) if url.scheme() == "http" && url.host().is_some() && !is_loopback(&url) => {
                ctx.error_at(
                    value.span(),
                    key,
                    format!(
                        "{:?} is plain http to another host: ID tokens and AWS keys would cross the network in cleartext; use https, or http only to 127.0.0.1, [::1] or localhost",
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
                    value.span(),
                    key,
                    format!(
                        "{:?} is not an http(s) URL; e.g. \"http://127.0.0.1:9229\"",
                        value.get_ref()
                    ),
                );
                None
            }
        };
    }
    if let Some(endpoint) = facts.endpoint {
        return Some(endpoint.clone());
    }
    if region.is_empty() {
        // The pool id was refused already.
        return None;
    }
    regional(region, facts.variant)
        .map_err(|error| {
            ctx.errors.push(super::ConfigError {
                path: ctx.path.clone(),
                line: None,
                key: key.to_owned(),
                message: format!("no default endpoint for region {region:?}: {error}"),
            });
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    const PROFILE: &str =
        "[profiles.a]\nuser_pool_id = \"us-east-1_Demo1\"\nclient_id = \"c\"\nusername = \"u\"\n";

    fn aws_of(extra: &str) -> Result<Option<AwsConfig>, crate::config::ConfigErrors> {
        let env: BTreeMap<String, String> = [("HOME".to_owned(), "/home/u".to_owned())].into();
        let config = parse(
            &format!("{PROFILE}{extra}"),
            Path::new("/etc/cb.toml"),
            &env,
        )?;
        Ok(config
            .profiles
            .values()
            .next()
            .and_then(|p| p.aws.as_deref().cloned()))
    }

    #[test]
    fn defaults_follow_the_pool_ids() {
        assert_eq!(aws_of("").unwrap(), None);
        let aws = aws_of("identity_pool_id = \"eu-west-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(aws.region, "eu-west-1");
        assert_eq!(aws.flow, IdentityFlow::Enhanced);
        assert_eq!(
            aws.identity_endpoint.as_str(),
            "https://cognito-identity.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            aws.sts_endpoint.as_str(),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            aws.logins_provider,
            "cognito-idp.us-east-1.amazonaws.com/us-east-1_Demo1"
        );
        assert_eq!(aws.role_arn, None);

        let aws = aws_of(
            "endpoint = \"http://127.0.0.1:9229\"\nidentity_pool_id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nidentity_flow = \"basic\"\nrole_arn = \"arn:aws:iam::123456789012:role/r\"\nsts_endpoint = \"https://sts.example.com\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(aws.flow, IdentityFlow::Basic);
        assert_eq!(aws.identity_endpoint.as_str(), "http://127.0.0.1:9229/");
        assert_eq!(aws.sts_endpoint.as_str(), "https://sts.example.com/");
    }

    /// (what, extra lines after the 4-line profile, line, key, part of the message)
    #[rustfmt::skip]
    const ERRORS: &[(&str, &str, usize, &str, &str)] = &[
        ("bad pool id", "identity_pool_id = \"us-east-1\"\n", 5, "profiles.a.identity_pool_id", "REGION:UUID"),
        ("key without a pool", "role_arn = \"arn:aws:iam::123456789012:role/r\"\n", 5, "profiles.a.role_arn", "set identity_pool_id"),
        ("unknown flow", "identity_pool_id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nidentity_flow = \"classic\"\n", 6, "profiles.a.identity_flow", "\"enhanced\" (default), \"basic\""),
        ("basic without a role", "identity_pool_id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nidentity_flow = \"basic\"\n", 6, "profiles.a.role_arn", "needs role_arn"),
        ("bad role", "identity_pool_id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nrole_arn = \"r\"\n", 6, "profiles.a.role_arn", "not an IAM role ARN"),
        ("cleartext identity endpoint", "identity_pool_id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nidentity_endpoint = \"http://10.0.0.1\"\n", 6, "profiles.a.identity_endpoint", "plain http to another host"),
        ("bad sts endpoint", "identity_pool_id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nsts_endpoint = \"sts\"\n", 6, "profiles.a.sts_endpoint", "not an http(s) URL"),
        ("provider with a scheme", "identity_pool_id = \"us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f\"\nlogins_provider = \"https://cognito-idp.us-east-1.amazonaws.com/x\"\n", 6, "profiles.a.logins_provider", "without https://"),
    ];

    #[test]
    fn error_table() {
        for (what, extra, line, key, message) in ERRORS {
            let errors = aws_of(extra).map(|_| ()).expect_err(what);
            let error = &errors.0[0];
            assert_eq!(error.line, Some(*line), "{what}: {error}");
            assert_eq!(error.key, *key, "{what}: {error}");
            assert!(error.message.contains(message), "{what}: {error}");
        }
    }

    #[test]
    fn pool_ids_and_role_arns() {
        assert_eq!(
            parse_pool_id("us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f").unwrap(),
            "us-east-1"
        );
        for bad in [
            "us-east-1",
            "us-east-1:",
            ":0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f",
            "US:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7f",
            "us-east-1:0b7f3c2e5d1a4e8b9c3f2a6d8e4b1c7f",
            "us-east-1:0b7f3c2e-5d1a-4e8b-9c3f-2a6d8e4b1c7g",
        ] {
            assert!(
                parse_pool_id(bad).unwrap_err().contains("REGION:UUID"),
                "{bad}"
            );
        }
        check_role_arn("arn:aws:iam::123456789012:role/Cognito_Auth").unwrap();
        check_role_arn("arn:aws-cn:iam::123456789012:role/path/r").unwrap();
        for bad in [
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:s3:::bucket",
            "role/r",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }
}
