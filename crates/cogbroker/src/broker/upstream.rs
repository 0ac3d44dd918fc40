//! The HTTP clients to Cognito: one per endpoint, shared by every profile that uses it, so a
//! thousand profiles on one pool hold one connection pool and one TLS configuration, not a
//! thousand.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use cognito_auth::{ClientOptions, CognitoClient, IdentityClient, StsClient};
use url::Url;

use super::BrokerError;

/// The shared clients, built on first use.
#[derive(Debug)]
pub(crate) struct Upstreams {
    connect_timeout: Duration,
    request_timeout: Duration,
    clients: Mutex<HashMap<Url, CognitoClient>>,
    identity: Mutex<HashMap<Url, IdentityClient>>,
    sts: Mutex<HashMap<Url, StsClient>>,
}

impl Upstreams {
    pub(crate) fn new(connect_timeout: Duration, request_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            request_timeout,
            clients: Mutex::new(HashMap::new()),
            identity: Mutex::new(HashMap::new()),
            sts: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP setup of every upstream client (the OAuth clients build theirs with it).
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            user_agent: format!("cogbroker/{}", env!("CARGO_PKG_VERSION")),
            proxy: None,
        }
    }

    /// The cognito-identity client for `endpoint` (a clone sharing the pool).
    pub(crate) fn identity(&self, endpoint: &Url) -> Result<IdentityClient, BrokerError> {
        let mut clients = self.identity.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(endpoint) {
            return Ok(client.clone());
        }
        let client =
            IdentityClient::new(endpoint.clone(), self.client_options()).map_err(|error| {
                BrokerError::Misconfigured(format!(
                    "cannot use the identity endpoint {endpoint}: {error}"
                ))
            })?;
        clients.insert(endpoint.clone(), client.clone());
        Ok(client)
    }

    /// The STS client for `endpoint` (a clone sharing the pool).
    pub(crate) fn sts(&self, endpoint: &Url) -> Result<StsClient, BrokerError> {
        let mut clients = self.sts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(endpoint) {
            return Ok(client.clone());
        }
        let client = StsClient::new(endpoint.clone(), self.client_options()).map_err(|error| {
            BrokerError::Misconfigured(format!("cannot use the STS endpoint {endpoint}: {error}"))
        })?;
        clients.insert(endpoint.clone(), client.clone());
        Ok(client)
    }

    /// The client for `endpoint` (a clone sharing the pool). Only called when a profile builds
    /// its authenticator, never on the token path.
    pub(crate) fn client(&self, endpoint: &Url) -> Result<CognitoClient, BrokerError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(endpoint) {
            return Ok(client.clone());
        }
        let client =
            CognitoClient::new(endpoint.clone(), self.client_options()).map_err(|error| {
                BrokerError::Internal(anyhow::anyhow!("cannot build the http client: {error}"))
            })?;
        clients.insert(endpoint.clone(), client.clone());
        Ok(client)
    }

    /// How many distinct endpoints have a client.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_on_one_endpoint_share_one_client() {
        let upstreams = Upstreams::new(Duration::from_secs(1), Duration::from_secs(1));
        let pool: Url = "https://cognito-idp.eu-west-1.amazonaws.com/"
            .parse()
            .unwrap();
        let other: Url = "http://127.0.0.1:9229/".parse().unwrap();
        for _ in 0..100 {
            upstreams.client(&pool).unwrap();
        }
        assert_eq!(upstreams.len(), 1);
        upstreams.client(&other).unwrap();
        assert_eq!(upstreams.len(), 2);
    }
}
