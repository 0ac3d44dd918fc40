//! User pools and app clients: the pool ID's parts and the regional endpoint for each partition.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::secret::ClientSecret;

/// A user pool ID, `<region>_<id>` (e.g. `us-east-1_AbC123xyz`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserPoolId {
    value: String,
    /// Index of the first '_'.
    split: usize,
}

impl UserPoolId {
    /// Parses `<region>_<id>`: the region is the text before the first '_' (letters, digits and
    /// '-'), the name after it is letters and digits (the model's `[\w-]+_[0-9a-zA-Z]+`).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::InvalidInput(format!("user pool id {s:?} is not <region>_<id>: {why}"))
        };
        if s.len() > 55 {
            return Err(invalid("too long"));
        }
        let Some(split) = s.find('_') else {
            return Err(invalid("no '_'"));
        };
        let (region, name) = (&s[..split], &s[split + 1..]);
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "the region must be lowercase letters, digits and '-'",
            ));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("the part after '_' must be letters and digits"));
        }
        Ok(UserPoolId {
            value: s.to_owned(),
            split,
        })
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The region prefix (before the first '_'). A replica may live elsewhere: the API region is
    /// configured separately when it differs.
    pub fn region(&self) -> &str {
        &self.value[..self.split]
    }

    /// The pool name (after the first '_'): what SRP mixes into x, never the whole ID.
    pub fn pool_name(&self) -> &str {
        &self.value[self.split + 1..]
    }
}

impl fmt::Debug for UserPoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserPoolId").field(&self.value).finish()
    }
}

impl fmt::Display for UserPoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl FromStr for UserPoolId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserPoolId::parse(s)
    }
}

impl TryFrom<String> for UserPoolId {
    type Error = Error;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        UserPoolId::parse(&value)
    }
}

impl From<UserPoolId> for String {
    fn from(value: UserPoolId) -> Self {
        value.value
    }
}

/// Which flavour of the regional endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointVariant {
    /// `cognito-idp.<region>.<suffix>`.
    #[default]
    Standard,
    /// The FIPS 140 endpoint.
    Fips,
    /// The IPv4 + IPv6 endpoint.
    DualStack,
    /// FIPS and dual-stack.
    FipsDualStack,
}

/// The endpoint of Cognito user pools in `region`, following the service's endpoint rules for
/// the aws, aws-cn, aws-us-gov and ISO partitions.
pub fn regional_endpoint(region: &str, variant: EndpointVariant) -> Result<url::Url, Error> {
    service_endpoint("cognito-idp", region, variant)
}

/// The endpoint of Cognito identity pools in `region` (`cognito-identity[-fips].<region>.…`),
/// with the same partition and variant rules as [`regional_endpoint`].
pub fn identity_endpoint(region: &str, variant: EndpointVariant) -> Result<url::Url, Error> {
    service_endpoint("cognito-identity", region, variant)
}

/// The regional endpoint of AWS STS in `region` (`sts[-fips].<region>.…`), with the same
/// partition and variant rules.
pub fn sts_endpoint(region: &str, variant: EndpointVariant) -> Result<url::Url, Error> {
    service_endpoint("sts", region, variant)
}

fn service_endpoint(name: &str, region: &str, variant: EndpointVariant) -> Result<url::Url, Error> {
    let valid = !region.is_empty()
        && region.len() <= 63
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(Error::InvalidInput(format!(
            "{region:?} is not a region name"
        )));
    }
    let partition = Partition::of(region);
    let fips = matches!(
        variant,
        EndpointVariant::Fips | EndpointVariant::FipsDualStack
    );
    let dual_stack = matches!(
        variant,
        EndpointVariant::DualStack | EndpointVariant::FipsDualStack
    );
    let service = if fips {
        format!("{name}-fips")
    } else {
        name.to_owned()
    };
    let suffix = match (partition, dual_stack) {
        // In the commercial partition the standard host already serves IPv6.
        (Partition::Aws, _) => "amazonaws.com",
        (Partition::China, false) => "amazonaws.com.cn",
        (Partition::China, true) => "api.amazonwebservices.com.cn",
        (Partition::UsGov, false) => "amazonaws.com",
        (Partition::UsGov, true) => "api.aws",
        (Partition::Iso, false) => "c2s.ic.gov",
        (Partition::IsoB, false) => "sc2s.sgov.gov",
        (Partition::Iso | Partition::IsoB, true) => {
            return Err(Error::InvalidInput(format!(
                "region {region} has no dual-stack {name} endpoint"
            )));
        }
    };
    let url = format!("https://{service}.{region}.{suffix}/");
    url::Url::parse(&url)
        .map_err(|error| Error::InvalidInput(format!("bad endpoint {url}: {error}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partition {
    Aws,
    China,
    UsGov,
    Iso,
    IsoB,
}

impl Partition {
    fn of(region: &str) -> Partition {
        if region.starts_with("cn-") {
            Partition::China
        } else if region.starts_with("us-gov-") {
            Partition::UsGov
        } else if region.starts_with("us-isob-") {
            Partition::IsoB
        } else if region.starts_with("us-iso-") {
            Partition::Iso
        } else {
            Partition::Aws
        }
    }
}

/// An app client of a user pool: what every call names, and its secret if it has one.
#[derive(Clone)]
pub struct AppClient {
    /// The pool.
    pub user_pool_id: UserPoolId,
    /// The app client ID.
    pub client_id: String,
    /// The app client secret, for confidential clients.
    pub client_secret: Option<ClientSecret>,
}

impl fmt::Debug for AppClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppClient")
            .field("user_pool_id", &self.user_pool_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_id_parts() {
        let pool = UserPoolId::parse("us-east-1_AbC123xyz").unwrap();
        assert_eq!(pool.region(), "us-east-1");
        assert_eq!(pool.pool_name(), "AbC123xyz");
        assert_eq!(pool.as_str(), "us-east-1_AbC123xyz");
        assert_eq!(pool.to_string(), "us-east-1_AbC123xyz");
        let local = UserPoolId::parse("local_5dDfa3b7").unwrap();
        assert_eq!(local.region(), "local");
        for bad in [
            "",
            "us-east-1",
            "_abc",
            "us-east-1_",
            "US-EAST-1_abc",
            "us-east-1_a-b",
            "us east_1",
        ] {
            assert!(UserPoolId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pool_id_serde_round_trip() {
        let pool: UserPoolId = serde_json::from_str(r#""eu-west-1_Xy9""#).unwrap();
        assert_eq!(pool.pool_name(), "Xy9");
        assert_eq!(serde_json::to_string(&pool).unwrap(), r#""eu-west-1_Xy9""#);
        assert!(serde_json::from_str::<UserPoolId>(r#""nope""#).is_err());
    }

    #[test]
    fn endpoint_table() {
        use EndpointVariant::*;
        let cases = [
            (
                "us-east-1",
                Standard,
                "https://cognito-idp.us-east-1.amazonaws.com/",
            ),
            (
                "us-east-1",
                Fips,
                "https://cognito-idp-fips.us-east-1.amazonaws.com/",
            ),
            (
                "us-east-1",
                DualStack,
                "https://cognito-idp.us-east-1.amazonaws.com/",
            ),
            (
                "us-west-2",
                FipsDualStack,
                "https://cognito-idp-fips.us-west-2.amazonaws.com/",
            ),
            (
                "eu-central-1",
                Standard,
                "https://cognito-idp.eu-central-1.amazonaws.com/",
            ),
            (
                "cn-north-1",
                Standard,
                "https://cognito-idp.cn-north-1.amazonaws.com.cn/",
            ),
            (
                "cn-north-1",
                Fips,
                "https://cognito-idp-fips.cn-north-1.amazonaws.com.cn/",
            ),
            (
                "cn-northwest-1",
                DualStack,
                "https://cognito-idp.cn-northwest-1.api.amazonwebservices.com.cn/",
            ),
            (
                "cn-north-1",
                FipsDualStack,
                "https://cognito-idp-fips.cn-north-1.api.amazonwebservices.com.cn/",
            ),
            (
                "us-gov-west-1",
                Standard,
                "https://cognito-idp.us-gov-west-1.amazonaws.com/",
            ),
            (
                "us-gov-west-1",
                Fips,
                "https://cognito-idp-fips.us-gov-west-1.amazonaws.com/",
            ),
            (
                "us-gov-east-1",
                DualStack,
                "https://cognito-idp.us-gov-east-1.api.aws/",
            ),
            (
                "us-gov-east-1",
                FipsDualStack,
                "https://cognito-idp-fips.us-gov-east-1.api.aws/",
            ),
            (
                "us-iso-east-1",
                Standard,
                "https://cognito-idp.us-iso-east-1.c2s.ic.gov/",
            ),
            (
                "us-iso-east-1",
                Fips,
                "https://cognito-idp-fips.us-iso-east-1.c2s.ic.gov/",
            ),
            (
                "us-isob-east-1",
                Standard,
                "https://cognito-idp.us-isob-east-1.sc2s.sgov.gov/",
            ),
            (
                "us-isob-east-1",
                Fips,
                "https://cognito-idp-fips.us-isob-east-1.sc2s.sgov.gov/",
            ),
        ];
        for (region, variant, expected) in cases {
            let url = regional_endpoint(region, variant).unwrap();
            assert_eq!(url.as_str(), expected, "{region} {variant:?}");
        }
        assert!(regional_endpoint("us-iso-east-1", DualStack).is_err());
        assert!(regional_endpoint("us-isob-east-1", FipsDualStack).is_err());
        for bad in ["", "US-EAST-1", "us-east-1.evil.com", "-x", "a/b"] {
            assert!(regional_endpoint(bad, Standard).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn app_client_debug_redacts_the_secret() {
        let app = AppClient {
            user_pool_id: UserPoolId::parse("us-east-1_abc").unwrap(),
            client_id: "client".into(),
            client_secret: Some(ClientSecret::new("hunter2-client-secret")),
        };
        let printed = format!("{app:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("client"), "{printed}");
    }
}
