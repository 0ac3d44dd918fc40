//! Cognito's wire types (AWS JSON 1.1, PascalCase members) and operation names.
//!
//! Absent members are omitted, never sent as `null`. Every member the model marks sensitive is a
//! secret type or sits in a [`Parameters`] map, so `Debug` of any request or reply here is safe to
//! log.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::{
    AccessToken, ClientSecret, IdToken, OneTimeCode, RefreshToken, SessionToken, TotpSecret,
};

/// The `X-Amz-Target` prefix of every cognito-idp operation.
pub const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService";

/// The body's content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The operations this crate calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `InitiateAuth`.
    InitiateAuth,
    /// `RespondToAuthChallenge`.
    RespondToAuthChallenge,
    /// `GetTokensFromRefreshToken`.
    GetTokensFromRefreshToken,
    /// `ConfirmDevice`.
    ConfirmDevice,
    /// `UpdateDeviceStatus`.
    UpdateDeviceStatus,
    /// `ForgetDevice`.
    ForgetDevice,
    /// `RevokeToken`.
    RevokeToken,
    /// `GlobalSignOut`.
    GlobalSignOut,
    /// `AssociateSoftwareToken`.
    AssociateSoftwareToken,
    /// `VerifySoftwareToken`.
    VerifySoftwareToken,
    /// `GetUser`.
    GetUser,
}

impl Operation {
    /// The operation name, e.g. `InitiateAuth`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::InitiateAuth => "InitiateAuth",
            Operation::RespondToAuthChallenge => "RespondToAuthChallenge",
            Operation::GetTokensFromRefreshToken => "GetTokensFromRefreshToken",
            Operation::ConfirmDevice => "ConfirmDevice",
            Operation::UpdateDeviceStatus => "UpdateDeviceStatus",
            Operation::ForgetDevice => "ForgetDevice",
            Operation::RevokeToken => "RevokeToken",
            Operation::GlobalSignOut => "GlobalSignOut",
            Operation::AssociateSoftwareToken => "AssociateSoftwareToken",
            Operation::VerifySoftwareToken => "VerifySoftwareToken",
            Operation::GetUser => "GetUser",
        }
    }

    /// The `X-Amz-Target` header value.
    pub fn target(self) -> String {
        format!("{TARGET_PREFIX}.{}", self.name())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string map as Cognito uses for `AuthParameters`, `ChallengeResponses` and
/// `ChallengeParameters`. It may hold passwords, SRP proofs and session blocks, so `Debug` shows
/// the keys only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Parameters(BTreeMap<String, String>);

impl Parameters {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key`, if it is present and not empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|value| !value.is_empty())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, sorted by key. The values may be secret.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl fmt::Debug for Parameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|key| (key, "[REDACTED]")))
            .finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Parameters {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Parameters(
            iter.into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }
}

/// `InitiateAuth` request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateAuthRequest {
    /// `USER_SRP_AUTH`, `REFRESH_TOKEN_AUTH`, ...
    pub auth_flow: String,
    /// The app client.
    pub client_id: String,
    /// USERNAME, SRP_A, PASSWORD, SECRET_HASH, DEVICE_KEY, REFRESH_TOKEN, ...
    pub auth_parameters: Parameters,
    /// Passed to Lambda triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<BTreeMap<String, String>>,
    /// Only for USER_AUTH right after ConfirmSignUp.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub session: Option<SessionToken>,
}

/// `RespondToAuthChallenge` request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RespondToAuthChallengeRequest {
    /// The app client.
    pub client_id: String,
    /// The challenge being answered.
    pub challenge_name: String,
    /// The latest session, when one was received.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub session: Option<SessionToken>,
    /// USERNAME, SECRET_HASH, DEVICE_KEY and the challenge's own keys.
    pub challenge_responses: Parameters,
    /// Passed to Lambda triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<BTreeMap<String, String>>,
}

/// The reply of `InitiateAuth` and `RespondToAuthChallenge`.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthResponse {
    /// The next challenge, when another step is needed.
    #[serde(default)]
    pub challenge_name: Option<String>,
    /// The session to send with the next answer.
    #[serde(default, deserialize_with = "de_opt")]
    pub session: Option<SessionToken>,
    /// The challenge's parameters; every value is a string, even JSON lists.
    #[serde(default, deserialize_with = "de_null_default")]
    pub challenge_parameters: Parameters,
    /// The tokens, when sign-in is complete.
    #[serde(default)]
    pub authentication_result: Option<AuthenticationResult>,
    /// USER_AUTH's options (InitiateAuth only).
    #[serde(default)]
    pub available_challenges: Option<Vec<String>>,
}

/// Tokens issued by a sign-in or a refresh.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthenticationResult {
    /// The access token.
    #[serde(default, deserialize_with = "de_opt")]
    pub access_token: Option<AccessToken>,
    /// The ID token.
    #[serde(default, deserialize_with = "de_opt")]
    pub id_token: Option<IdToken>,
    /// The refresh token: present on sign-in and on a rotating refresh.
    #[serde(default, deserialize_with = "de_opt")]
    pub refresh_token: Option<RefreshToken>,
    /// The access token's lifetime in seconds (some emulators omit it).
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// A new device to confirm, when device tracking is on.
    #[serde(default)]
    pub new_device_metadata: Option<NewDeviceMetadata>,
}

/// A device Cognito just created for this sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewDeviceMetadata {
    /// `<region>_<uuid>`.
    pub device_key: String,
    /// A short string, possibly starting with '-'.
    pub device_group_key: String,
}

/// `GetTokensFromRefreshToken` request. Takes the raw client secret, not a SECRET_HASH.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTokensFromRefreshTokenRequest {
    /// The refresh token.
    #[serde(serialize_with = "ser")]
    pub refresh_token: RefreshToken,
    /// The app client.
    pub client_id: String,
    /// The app client secret, raw.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub client_secret: Option<ClientSecret>,
    /// The device the refresh token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_key: Option<String>,
    /// Passed to the pre-token-generation Lambda.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<BTreeMap<String, String>>,
}

/// `GetTokensFromRefreshToken` reply.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTokensFromRefreshTokenResponse {
    /// The new tokens.
    #[serde(default)]
    pub authentication_result: Option<AuthenticationResult>,
}

/// The verifier registered for a device.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceSecretVerifierConfig {
    /// Base64 of PAD(g^x mod N).
    pub password_verifier: String,
    /// Base64 of the salt bytes.
    pub salt: String,
}

impl fmt::Debug for DeviceSecretVerifierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSecretVerifierConfig")
            .field("password_verifier", &"[REDACTED]")
            .field("salt", &"[REDACTED]")
            .finish()
    }
}

/// `ConfirmDevice` request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfirmDeviceRequest {
    /// The access token of the sign-in that created the device.
    #[serde(serialize_with = "ser")]
    pub access_token: AccessToken,
    /// The new device's key.
    pub device_key: String,
    /// The device verifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_secret_verifier_config: Option<DeviceSecretVerifierConfig>,
    /// A friendly name, 1..1024 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// `ConfirmDevice` reply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfirmDeviceResponse {
    /// True when the pool remembers devices only on the user's say-so (`UpdateDeviceStatus`).
    #[serde(default)]
    pub user_confirmation_necessary: bool,
}

/// `UpdateDeviceStatus` request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateDeviceStatusRequest {
    /// The user's access token.
    #[serde(serialize_with = "ser")]
    pub access_token: AccessToken,
    /// The device.
    pub device_key: String,
    /// `remembered` or `not_remembered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_remembered_status: Option<DeviceRememberedStatus>,
}

/// A device's remembered status on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceRememberedStatus {
    /// `remembered`.
    #[serde(rename = "remembered")]
    Remembered,
    /// `not_remembered`.
    #[serde(rename = "not_remembered")]
    NotRemembered,
}

/// `ForgetDevice` request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ForgetDeviceRequest {
    /// The user's access token.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub access_token: Option<AccessToken>,
    /// The device to forget.
    pub device_key: String,
}

/// `RevokeToken` request. Takes the raw client secret, not a SECRET_HASH.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RevokeTokenRequest {
    /// The refresh token to revoke.
    #[serde(serialize_with = "ser")]
    pub token: RefreshToken,
    /// The app client.
    pub client_id: String,
    /// The app client secret, raw.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub client_secret: Option<ClientSecret>,
}

/// `GlobalSignOut` request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GlobalSignOutRequest {
    /// The user's access token.
    #[serde(serialize_with = "ser")]
    pub access_token: AccessToken,
}

/// `AssociateSoftwareToken` request: exactly one of the two members.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssociateSoftwareTokenRequest {
    /// For a signed-in user.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub access_token: Option<AccessToken>,
    /// During MFA_SETUP.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub session: Option<SessionToken>,
}

/// `AssociateSoftwareToken` reply.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssociateSoftwareTokenResponse {
    /// The base32 TOTP secret.
    #[serde(default, deserialize_with = "de_opt")]
    pub secret_code: Option<TotpSecret>,
    /// The session for VerifySoftwareToken.
    #[serde(default, deserialize_with = "de_opt")]
    pub session: Option<SessionToken>,
}

/// `VerifySoftwareToken` request: `UserCode` plus exactly one of access token or session.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifySoftwareTokenRequest {
    /// For a signed-in user.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub access_token: Option<AccessToken>,
    /// During MFA_SETUP.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt")]
    pub session: Option<SessionToken>,
    /// The 6-digit code from the authenticator.
    #[serde(serialize_with = "ser")]
    pub user_code: OneTimeCode,
    /// A name for the authenticator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub friendly_device_name: Option<String>,
}

/// `VerifySoftwareToken` reply.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifySoftwareTokenResponse {
    /// `SUCCESS` or `ERROR`.
    #[serde(default)]
    pub status: Option<String>,
    /// The session for the MFA_SETUP answer.
    #[serde(default, deserialize_with = "de_opt")]
    pub session: Option<SessionToken>,
}

/// `GetUser` request.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetUserRequest {
    /// The user's access token.
    #[serde(serialize_with = "ser")]
    pub access_token: AccessToken,
}

/// `GetUser` reply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetUserResponse {
    /// The internal username.
    #[serde(default)]
    pub username: String,
    /// The user's attributes.
    #[serde(default)]
    pub user_attributes: Vec<AttributeType>,
    /// The preferred MFA method.
    #[serde(default)]
    pub preferred_mfa_setting: Option<String>,
    /// The enabled MFA methods.
    #[serde(default, rename = "UserMFASettingList")]
    pub user_mfa_setting_list: Option<Vec<String>>,
}

/// A name/value attribute.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeType {
    /// The attribute name.
    pub name: String,
    /// The attribute value.
    #[serde(default)]
    pub value: Option<String>,
}

/// An empty reply (`{}`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Empty {}

/// Implements `Debug` for a wire type by destructuring it, so a field added later cannot be
/// forgotten here. Every secret field is a secret type or [`Parameters`], whose own `Debug`
/// redacts.
macro_rules! redacted_debug {
    ($($name:ident { $($field:ident),* $(,)? })*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $name { $($field),* } = self;
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), $field))*
                    .finish()
            }
        }
    )*};
}

redacted_debug! {
    InitiateAuthRequest { auth_flow, client_id, auth_parameters, client_metadata, session }
    RespondToAuthChallengeRequest { client_id, challenge_name, session, challenge_responses, client_metadata }
    AuthResponse { challenge_name, session, challenge_parameters, authentication_result, available_challenges }
    AuthenticationResult { access_token, id_token, refresh_token, expires_in, token_type, new_device_metadata }
    GetTokensFromRefreshTokenRequest { refresh_token, client_id, client_secret, device_key, client_metadata }
    GetTokensFromRefreshTokenResponse { authentication_result }
    ConfirmDeviceRequest { access_token, device_key, device_secret_verifier_config, device_name }
    UpdateDeviceStatusRequest { access_token, device_key, device_remembered_status }
    ForgetDeviceRequest { access_token, device_key }
    RevokeTokenRequest { token, client_id, client_secret }
    GlobalSignOutRequest { access_token }
    AssociateSoftwareTokenRequest { access_token, session }
    AssociateSoftwareTokenResponse { secret_code, session }
    VerifySoftwareTokenRequest { access_token, session, user_code, friendly_device_name }
    VerifySoftwareTokenResponse { status, session }
    GetUserRequest { access_token }
}

/// The secret types as they cross the wire: the only place their bytes are serialized.
trait WireSecret: Sized {
    fn wrap(value: String) -> Self;
    fn reveal(&self) -> &str;
}

macro_rules! wire_secret {
    ($($name:ident),*) => {$(
        impl WireSecret for $name {
            fn wrap(value: String) -> Self {
                $name::new(value)
            }
            fn reveal(&self) -> &str {
                self.expose_secret()
            }
        }
    )*};
}

wire_secret!(
    AccessToken,
    IdToken,
    RefreshToken,
    ClientSecret,
    OneTimeCode,
    SessionToken,
    TotpSecret
);

fn ser<T: WireSecret, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.reveal())
}

// serde's `serialize_with` hands over `&Option<T>`; the signature is dictated by it.
fn ser_opt<T: WireSecret, S: Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.serialize_str(value.reveal()),
        None => serializer.serialize_none(),
    }
}

fn de_opt<'de, T: WireSecret, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    let value: Option<String> = Option::deserialize(deserializer)?;
    Ok(value.filter(|value| !value.is_empty()).map(T::wrap))
}

fn de_null_default<'de, T: Default + Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_members_are_omitted() {
        let request = InitiateAuthRequest {
            auth_flow: "USER_SRP_AUTH".into(),
            client_id: "client".into(),
            auth_parameters: [("USERNAME", "alice")].into_iter().collect(),
            client_metadata: None,
            session: None,
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"AuthFlow":"USER_SRP_AUTH","ClientId":"client","AuthParameters":{"USERNAME":"alice"}}"#
        );
        let refresh = GetTokensFromRefreshTokenRequest {
            refresh_token: RefreshToken::new("rt"),
            client_id: "client".into(),
            client_secret: Some(ClientSecret::new("cs")),
            device_key: None,
            client_metadata: None,
        };
        assert_eq!(
            serde_json::to_string(&refresh).unwrap(),
            r#"{"RefreshToken":"rt","ClientId":"client","ClientSecret":"cs"}"#
        );
        let status = UpdateDeviceStatusRequest {
            access_token: AccessToken::new("at"),
            device_key: "dk".into(),
            device_remembered_status: Some(DeviceRememberedStatus::NotRemembered),
        };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"AccessToken":"at","DeviceKey":"dk","DeviceRememberedStatus":"not_remembered"}"#
        );
    }

    #[test]
    fn replies_tolerate_missing_and_null_members() {
        let reply: AuthResponse = serde_json::from_str(
            r#"{"ChallengeName":"PASSWORD_VERIFIER","ChallengeParameters":null,"Session":null}"#,
        )
        .unwrap();
        assert_eq!(reply.challenge_name.as_deref(), Some("PASSWORD_VERIFIER"));
        assert!(reply.challenge_parameters.is_empty());
        assert!(reply.session.is_none());
        let reply: AuthResponse = serde_json::from_str(
            r#"{"AuthenticationResult":{"AccessToken":"a","IdToken":"i","RefreshToken":"r","NewDeviceMetadata":{"DeviceKey":"us-east-1_1","DeviceGroupKey":"-g"}},"ChallengeParameters":{}}"#,
        )
        .unwrap();
        let result = reply.authentication_result.unwrap();
        assert_eq!(result.access_token.unwrap().expose_secret(), "a");
        assert!(result.expires_in.is_none());
        assert_eq!(result.new_device_metadata.unwrap().device_group_key, "-g");
    }

    #[test]
    fn debug_of_wire_types_redacts_secrets() {
        let mut parameters = Parameters::new();
        parameters.insert("PASSWORD", "hunter2-password");
        parameters.insert("USERNAME", "alice");
        let initiate = InitiateAuthRequest {
            auth_flow: "USER_PASSWORD_AUTH".into(),
            client_id: "client".into(),
            auth_parameters: parameters.clone(),
            client_metadata: None,
            session: Some(SessionToken::new("hunter2-session")),
        };
        let respond = RespondToAuthChallengeRequest {
            client_id: "client".into(),
            challenge_name: "NEW_PASSWORD_REQUIRED".into(),
            session: Some(SessionToken::new("hunter2-session")),
            challenge_responses: parameters,
            client_metadata: None,
        };
        let reply: AuthResponse = serde_json::from_str(
            r#"{"Session":"hunter2-s","AuthenticationResult":{"AccessToken":"hunter2-a","IdToken":"hunter2-i","RefreshToken":"hunter2-r"}}"#,
        )
        .unwrap();
        let refresh = GetTokensFromRefreshTokenRequest {
            refresh_token: RefreshToken::new("hunter2-rt"),
            client_id: "c".into(),
            client_secret: Some(ClientSecret::new("hunter2-cs")),
            device_key: Some("dk".into()),
            client_metadata: None,
        };
        let confirm = ConfirmDeviceRequest {
            access_token: AccessToken::new("hunter2-at"),
            device_key: "dk".into(),
            device_secret_verifier_config: Some(DeviceSecretVerifierConfig {
                password_verifier: "hunter2-v".into(),
                salt: "hunter2-salt".into(),
            }),
            device_name: None,
        };
        let verify = VerifySoftwareTokenRequest {
            access_token: None,
            session: Some(SessionToken::new("hunter2-s")),
            user_code: OneTimeCode::new("hunter2-code"),
            friendly_device_name: None,
        };
        let associate: AssociateSoftwareTokenResponse =
            serde_json::from_str(r#"{"SecretCode":"hunter2-totp","Session":"hunter2-s"}"#).unwrap();
        let revoke = RevokeTokenRequest {
            token: RefreshToken::new("hunter2-rt"),
            client_id: "c".into(),
            client_secret: Some(ClientSecret::new("hunter2-cs")),
        };
        let printed = [
            format!("{initiate:?}"),
            format!("{respond:?}"),
            format!("{reply:?}"),
            format!("{refresh:?}"),
            format!("{confirm:?}"),
            format!("{verify:?}"),
            format!("{associate:?}"),
            format!("{revoke:?}"),
        ];
        for text in printed {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(format!("{respond:?}").contains("PASSWORD"));
    }

    #[test]
    fn targets() {
        assert_eq!(
            Operation::GetTokensFromRefreshToken.target(),
            "AWSCognitoIdentityProviderService.GetTokensFromRefreshToken"
        );
    }
}
