//! One AWS credentials fetch's result, as the fetch job hands it to the profile task
//! (profile/aws.rs applies it): its own room, so the jobs' `Done` can carry it without the
//! jobs knowing the AWS room.

use std::time::{Duration, SystemTime};

use cognito_auth::AwsCredentials;

use crate::broker::error::BrokerError;
use crate::store::StoredIdentity;

/// A finished fetch.
pub(crate) struct AwsDone {
    pub(super) result: Result<Fetched, FetchError>,
    pub(super) elapsed: Duration,
}

pub(super) struct Fetched {
    pub(super) credentials: AwsCredentials,
    pub(super) identity: StoredIdentity,
    pub(super) received_at: SystemTime,
}

pub(super) enum FetchError {
    /// No ID token could be had (login required, Cognito unavailable, ...).
    Token(BrokerError),
    Upstream(cognito_auth::Error),
    Deadline,
    ShuttingDown,
}
