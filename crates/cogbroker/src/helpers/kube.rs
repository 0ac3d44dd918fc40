//! client-go's exec credential plugin (integrations.md B.3): `KUBERNETES_EXEC_INFO` carries an
//! `ExecCredential` whose `apiVersion` the answer must repeat; v1 when it is absent.

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Credential, ProtocolError, short};

/// The environment variable client-go sets.
pub const EXEC_INFO_VAR: &str = "KUBERNETES_EXEC_INFO";

/// The ExecCredential versions we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `client.authentication.k8s.io/v1` (Kubernetes 1.22+).
    V1,
    /// `client.authentication.k8s.io/v1beta1` (1.11+).
    V1Beta1,
}

impl ApiVersion {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "client.authentication.k8s.io/v1",
            Self::V1Beta1 => "client.authentication.k8s.io/v1beta1",
        }
    }
}

/// The version the caller asked for, from `KUBERNETES_EXEC_INFO` (v1 when unset or empty).
pub fn api_version(exec_info: Option<&str>) -> Result<ApiVersion, ProtocolError> {
    #[derive(Deserialize)]
    struct Info {
        #[serde(rename = "apiVersion")]
        api_version: Option<String>,
        kind: Option<String>,
    }
    let Some(text) = exec_info.filter(|text| !text.trim().is_empty()) else {
        return Ok(ApiVersion::V1);
    };
    let info: Info = serde_json::from_str(text).map_err(|error| {
        ProtocolError::new(format!(
            "{EXEC_INFO_VAR} is not an ExecCredential JSON object ({error})"
        ))
    })?;
    if let Some(kind) = info
        .kind
        .as_deref()
        .filter(|kind| *kind != "ExecCredential")
    {
        return Err(ProtocolError::new(format!(
            "{EXEC_INFO_VAR} has kind {:?}; expected \"ExecCredential\"",
            short(kind)
        )));
    }
    match info.api_version.as_deref() {
        None | Some("client.authentication.k8s.io/v1") => Ok(ApiVersion::V1),
        Some("client.authentication.k8s.io/v1beta1") => Ok(ApiVersion::V1Beta1),
        Some(other) => Err(ProtocolError::new(format!(
            "{EXEC_INFO_VAR} asks for apiVersion {:?}; cogbroker answers client.authentication.k8s.io/v1 and v1beta1 (set `apiVersion` in the kubeconfig's exec section to one of them)",
            short(other)
        ))),
    }
}

/// The ExecCredential: the token and its `expirationTimestamp` (RFC 3339), so client-go runs
/// the plugin again only when it expires or after a 401.
pub fn exec_credential(version: ApiVersion, credential: &Credential) -> Zeroizing<String> {
    let value = serde_json::json!({
        "apiVersion": version.as_str(),
        "kind": "ExecCredential",
        "status": {
            "token": credential.secret(),
            "expirationTimestamp": credential.expires_rfc3339,
        },
    });
    Zeroizing::new(format!("{value}\n"))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn the_version_follows_the_caller() {
        assert_eq!(api_version(None).unwrap(), ApiVersion::V1);
        assert_eq!(api_version(Some("")).unwrap(), ApiVersion::V1);
        let v1beta1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
        assert_eq!(api_version(Some(v1beta1)).unwrap(), ApiVersion::V1Beta1);
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}"#;
        assert_eq!(api_version(Some(v1)).unwrap(), ApiVersion::V1);
        let alpha =
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
        assert!(api_version(Some(alpha)).unwrap_err().0.contains("v1alpha1"));
        assert!(
            api_version(Some("{"))
                .unwrap_err()
                .0
                .contains("not an ExecCredential")
        );
        assert!(
            api_version(Some(r#"{"kind":"Pod"}"#))
                .unwrap_err()
                .0
                .contains("kind \"Pod\"")
        );
    }

    #[test]
    fn golden_exec_credentials() {
        let credential = Credential {
            token: SecretString::from("eyJ.id.token".to_owned()),
            expires_unix: 1_767_000_000,
            expires_rfc3339: "2025-12-29T09:20:00Z".to_owned(),
        };
        assert_eq!(
            &*exec_credential(ApiVersion::V1, &credential),
            "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"eyJ.id.token\",\"expirationTimestamp\":\"2025-12-29T09:20:00Z\"}}\n"
        );
        assert!(
            exec_credential(ApiVersion::V1Beta1, &credential)
                .starts_with("{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",")
        );
    }
}
