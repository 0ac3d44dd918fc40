//! The broker's AWS calls (design.md §13): credentials for `GET /aws-credentials`, and the
//! grants of `exec --aws`. A read of the published snapshot when it can serve; otherwise a
//! command to the profile's task, which owns the fetch (profile/aws.rs). The types are in
//! [`super::aws`].

use std::time::Duration;

use super::aws::{AWS_MIN_TTL, IssuedAws, NewGrant};
use super::error::{AttemptFailure, BrokerError};
use super::policy::{self, RequestDecision};
use super::profile::{Command, Mode};

impl super::Broker {
    /// AWS credentials valid for at least `min_ttl` (default [`AWS_MIN_TTL`]), from the
    /// snapshot or by joining the profile's single fetch. While valid
    /// credentials exist, upstream failures never reach the caller (they come back `degraded`).
    pub async fn aws_credentials(
        &self,
        profile: &str,
        min_ttl: Option<Duration>,
    ) -> Result<IssuedAws, BrokerError> {
        let handle = self.handle(profile)?;
        if !handle.info.aws {
            return Err(not_configured(profile));
        }
        let shared = &self.inner.shared;
        let min_ttl = Some(min_ttl.unwrap_or(AWS_MIN_TTL));
        let mut refreshed = false;
        for _ in 0..3 {
            let snapshot = handle.snapshot();
            let aws = &snapshot.aws;
            let now = shared.clock.now();
            if let Some(reason) = &aws.login_required {
                return Err(BrokerError::login_required(profile, reason.clone()));
            }
            let decision = policy::on_request(
                now,
                aws.times(),
                &handle.info.tuning,
                min_ttl,
                &aws.backoff,
                snapshot.can_refresh(),
                refreshed,
            );
            let issue = |degraded: bool| {
                aws.credentials
                    .as_ref()
                    .map(|held| IssuedAws::from_held(profile, held, now, degraded))
                    .ok_or_else(|| BrokerError::login_required(profile, "not logged in"))
            };
            match decision {
                RequestDecision::Serve {
                    refresh_in_background,
                } => {
                    if refresh_in_background && !aws.refreshing() {
                        handle.nudge(Command::AwsRefresh {
                            mode: Mode::Background,
                            observed: aws.generation,
                            reply: None,
                        });
                    }
                    return issue(false);
                }
                RequestDecision::ServeDegraded => return issue(true),
                RequestDecision::Unavailable { retry_after } => {
                    return Err(BrokerError::UpstreamUnavailable {
                        retry_after,
                        reason: aws.last_error.map_or_else(
                            || "aws credentials fetch backing off".to_owned(),
                            |class| format!("the last aws credentials fetch failed: {class}"),
                        ),
                    });
                }
                RequestDecision::NoSession => {
                    return Err(BrokerError::login_required(
                        profile,
                        snapshot
                            .login_required
                            .clone()
                            .unwrap_or_else(|| "not logged in".to_owned()),
                    ));
                }
                RequestDecision::Refresh => {
                    let outcome = handle
                        .join_or_ask(aws.refresh.as_ref(), |reply| Command::AwsRefresh {
                            mode: Mode::Blocking,
                            observed: aws.generation,
                            reply: Some(reply),
                        })
                        .await;
                    refreshed = true;
                    match outcome {
                        Ok(()) | Err(AttemptFailure::NoSession) => {}
                        Err(failure) => {
                            let latest = handle.snapshot();
                            let now = shared.clock.now();
                            if let Some(held) = latest
                                .aws
                                .credentials
                                .as_ref()
                                .filter(|held| !held.times().remaining(now).is_zero())
                            {
                                return Ok(IssuedAws::from_held(profile, held, now, true));
                            }
                            return Err(failure.into_error(profile));
                        }
                    }
                }
            }
        }
        Err(BrokerError::Internal(anyhow::anyhow!(
            "aws credentials decision did not settle for profile {profile}"
        )))
    }

    /// A grant for an `exec --aws` child of `profile`: a bearer for the container-credentials
    /// route. With `pid` (the requesting `cogbroker exec`), it ends when that process ends.
    pub async fn aws_grant(
        &self,
        profile: &str,
        pid: Option<i32>,
    ) -> Result<NewGrant, BrokerError> {
        let handle = self.handle(profile)?;
        if !handle.info.aws {
            return Err(not_configured(profile));
        }
        handle.ask(|reply| Command::AwsGrant { pid, reply }).await?
    }

    /// Ends a grant; false when `profile` had no grant with that id.
    pub async fn aws_revoke(&self, profile: &str, grant_id: &str) -> Result<bool, BrokerError> {
        let handle = self.handle(profile)?;
        let grant_id = grant_id.to_owned();
        handle
            .ask(|reply| Command::AwsRevoke {
                grant_id,
                reply: Some(reply),
            })
            .await
    }

    /// Whether `presented` (the `Authorization` header, verbatim) is a live grant of
    /// `profile`. A snapshot read: no lock, no task round trip.
    pub fn aws_grant_matches(&self, profile: &str, presented: &[u8]) -> bool {
        self.handle(profile)
            .is_ok_and(|handle| handle.snapshot().aws.grant_matches(presented))
    }
}

fn not_configured(profile: &str) -> BrokerError {
    BrokerError::Unsupported(format!(
        "profile {profile} has no identity pool: set identity_pool_id (and its keys, docs/aws.md) in its [profiles.{profile}] table"
    ))
}
