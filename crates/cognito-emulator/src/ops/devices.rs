//! Remembered devices: ConfirmDevice, UpdateDeviceStatus, ForgetDevice, ListDevices, GetDevice.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use num_bigint::{BigInt, Sign};
use num_traits::Zero;
use serde_json::{Value, json};

use super::{Ctx, Req};
use crate::error::{ApiError, ApiResult, DEVICE_NOT_FOUND};
use crate::seed::DeviceTracking;
use crate::srp::{self, Verifier};
use crate::state::Device;

impl Ctx<'_> {
    pub(crate) fn confirm_device(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        let device_key = req.required("DeviceKey")?;
        let config = req.object("DeviceSecretVerifierConfig")?;
        let field = |name: &str| {
            config
                .and_then(|c| c.get(name))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid_parameter(format!(
                        "DeviceSecretVerifierConfig.{name} is required"
                    ))
                })
        };
        let verifier_bytes = STANDARD
            .decode(field("PasswordVerifier")?)
            .map_err(|_| ApiError::invalid_parameter("PasswordVerifier is not base64"))?;
        let salt = STANDARD
            .decode(field("Salt")?)
            .map_err(|_| ApiError::invalid_parameter("Salt is not base64"))?;
        // The service reads the verifier as Java `new BigInteger(bytes)`: an un-PADded value with its
        // top bit set would be negative. Reject it instead of failing every later device login.
        let (sign, v) = BigInt::from_signed_bytes_be(&verifier_bytes).into_parts();
        if sign == Sign::Minus || v.is_zero() || v >= srp::group().n {
            return Err(ApiError::invalid_parameter(
                "PasswordVerifier must be PAD-encoded g^x mod N (positive, below N)",
            ));
        }
        if salt.is_empty() || salt.len() > 64 {
            return Err(ApiError::invalid_parameter("Salt must be 1..=64 bytes"));
        }
        let device_name = req.opt("DeviceName")?.map(str::to_owned);
        let tracking = self.pool_cfg(&pool_id).device_tracking;
        let now = self.now;
        let device = self.device_mut(&pool_id, &username, device_key)?;
        if device.confirmed {
            return Err(ApiError::new(
                "DeviceKeyExistsException",
                "Device key already exists.",
            ));
        }
        device.verifier = Some(Verifier::from_parts(salt, v));
        device.confirmed = true;
        device.name = device_name;
        device.remembered = tracking == DeviceTracking::Always;
        device.last_modified = now;
        Ok(json!({ "UserConfirmationNecessary": tracking == DeviceTracking::UserOptIn }))
    }

    pub(crate) fn update_device_status(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        let device_key = req.required("DeviceKey")?;
        let remembered = match req.opt("DeviceRememberedStatus")? {
            Some("remembered") => true,
            Some("not_remembered") | None => false,
            Some(other) => {
                return Err(ApiError::invalid_parameter(format!(
                    "1 validation error detected: Value '{other}' at 'deviceRememberedStatus' failed to satisfy \
                     constraint: Member must satisfy enum value set: [remembered, not_remembered]"
                )));
            }
        };
        let now = self.now;
        let device = self.device_mut(&pool_id, &username, device_key)?;
        device.remembered = remembered;
        device.last_modified = now;
        Ok(json!({}))
    }

    pub(crate) fn forget_device(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        let device_key = req.required("DeviceKey")?;
        self.user_mut(&pool_id, &username)?
            .devices
            .remove(device_key)
            .ok_or_else(|| ApiError::resource_not_found(DEVICE_NOT_FOUND))?;
        Ok(json!({}))
    }

    pub(crate) fn list_devices(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        let user = self.user(&pool_id, &username)?;
        let devices: Vec<Value> = user
            .devices
            .values()
            .filter(|d| d.confirmed)
            .map(device_json)
            .collect();
        Ok(json!({ "Devices": devices }))
    }

    pub(crate) fn get_device(&mut self, req: &Req) -> ApiResult<Value> {
        let (pool_id, username, _) = self.authorize(req.required("AccessToken")?)?;
        let device_key = req.required("DeviceKey")?;
        let device = self
            .user(&pool_id, &username)?
            .devices
            .get(device_key)
            .ok_or_else(|| ApiError::resource_not_found(DEVICE_NOT_FOUND))?;
        Ok(json!({ "Device": device_json(device) }))
    }

    fn device_mut(
        &mut self,
        pool_id: &str,
        username: &str,
        device_key: &str,
    ) -> ApiResult<&mut Device> {
        self.user_mut(pool_id, username)?
            .devices
            .get_mut(device_key)
            .ok_or_else(|| ApiError::resource_not_found(DEVICE_NOT_FOUND))
    }
}

fn device_json(device: &Device) -> Value {
    let mut attributes = vec![
        json!({ "Name": "device_status", "Value": if device.remembered { "valid" } else { "not_remembered" } }),
    ];
    if let Some(name) = &device.name {
        attributes.push(json!({ "Name": "device_name", "Value": name }));
    }
    json!({
        "DeviceKey": device.key,
        "DeviceAttributes": attributes,
        "DeviceCreateDate": device.created,
        "DeviceLastModifiedDate": device.last_modified,
        "DeviceLastAuthenticatedDate": device.last_authenticated,
    })
}
