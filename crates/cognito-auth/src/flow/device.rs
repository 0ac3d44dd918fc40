//! A new device's password and verifier, and the ConfirmDevice call registering it.

use super::DeviceCredentials;
use crate::env::Entropy;
use crate::secret::AccessToken;
use crate::srp;
use crate::wire::{ConfirmDeviceRequest, DeviceSecretVerifierConfig, NewDeviceMetadata};

/// Credentials for a device Cognito just created, and the ConfirmDevice call registering it
/// (after a sign-in, and after a refresh).
pub(crate) fn confirm_device_request(
    access_token: &AccessToken,
    metadata: &NewDeviceMetadata,
    device_name: Option<String>,
    entropy: &dyn Entropy,
) -> (DeviceCredentials, ConfirmDeviceRequest) {
    let (device, config) = new_device(&metadata.device_key, &metadata.device_group_key, entropy);
    let request = ConfirmDeviceRequest {
        access_token: access_token.clone(),
        device_key: device.device_key.clone(),
        device_secret_verifier_config: Some(config),
        device_name,
    };
    (device, request)
}

/// A device password and its verifier for a device Cognito just created.
pub fn new_device(
    device_key: &str,
    device_group_key: &str,
    entropy: &dyn Entropy,
) -> (DeviceCredentials, DeviceSecretVerifierConfig) {
    let device_password = srp::generate_device_password(entropy);
    let mut salt = [0_u8; 16];
    entropy.fill(&mut salt);
    let verifier = srp::device_verifier(device_group_key, device_key, &device_password, salt);
    let device = DeviceCredentials {
        device_key: device_key.to_owned(),
        device_group_key: device_group_key.to_owned(),
        device_password,
    };
    let config = DeviceSecretVerifierConfig {
        password_verifier: verifier.password_verifier_b64,
        salt: verifier.salt_b64,
    };
    (device, config)
}
