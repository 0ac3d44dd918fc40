//! Fault injection (errors, throttling, latency, dropped connections, HTML errors) and call counters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fault for the next `times` calls of `operation` (`None`: any operation).
///
/// JSON (for `POST /_control/faults`):
/// `{"operation": "InitiateAuth", "times": 2, "kind": {"type": "error", "code": "InternalErrorException",
/// "message": "boom", "status": 500}}`; other kinds: `{"type": "throttle"}`,
/// `{"type": "latency", "millis": 250}`, `{"type": "drop_connection"}`, `{"type": "html_error", "status": 502}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The operation name, e.g. `"GetTokensFromRefreshToken"`; absent for any operation.
    #[serde(default)]
    pub operation: Option<String>,
    /// How many calls it affects (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// What happens.
    pub kind: FaultKind,
}

fn one() -> u32 {
    1
}

fn status_400() -> u16 {
    400
}

fn status_500() -> u16 {
    500
}

/// What an injected fault does to a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this Cognito error instead of running the call.
    Error {
        /// The `__type`, e.g. `"InternalErrorException"`.
        code: String,
        /// The message.
        message: String,
        /// The HTTP status (default 400).
        #[serde(default = "status_400")]
        status: u16,
    },
    /// `TooManyRequestsException` "Rate exceeded" (HTTP 400, as the service often sends it).
    Throttle,
    /// Delay the call, then run it normally.
    Latency {
        /// The delay.
        millis: u64,
    },
    /// Close the TCP connection without any response.
    DropConnection,
    /// An HTML error page (as a proxy or an unimplemented operation gives), default status 500.
    HtmlError {
        /// The HTTP status.
        #[serde(default = "status_500")]
        status: u16,
    },
}

impl Fault {
    /// A fault affecting the next call of `operation` (`None`: any operation).
    pub fn new(operation: Option<&str>, kind: FaultKind) -> Self {
        Fault {
            operation: operation.map(str::to_owned),
            times: 1,
            kind,
        }
    }

    /// The next call of `operation` fails with `code` and `message` (HTTP 400, or 500 for InternalErrorException).
    pub fn error(operation: &str, code: &str, message: &str) -> Self {
        Fault::new(
            Some(operation),
            FaultKind::Error {
                code: code.to_owned(),
                message: message.to_owned(),
                status: crate::error::status_for(code),
            },
        )
    }

    /// The next call of `operation` is throttled.
    pub fn throttle(operation: &str) -> Self {
        Fault::new(Some(operation), FaultKind::Throttle)
    }

    /// The next call of `operation` is delayed by `millis`.
    pub fn latency(operation: &str, millis: u64) -> Self {
        Fault::new(Some(operation), FaultKind::Latency { millis })
    }

    /// The next call of `operation` gets its connection closed without a response.
    pub fn drop_connection(operation: &str) -> Self {
        Fault::new(Some(operation), FaultKind::DropConnection)
    }

    /// The next call of `operation` gets an HTML error page with `status`.
    pub fn html_error(operation: &str, status: u16) -> Self {
        Fault::new(Some(operation), FaultKind::HtmlError { status })
    }

    /// Affect the next `times` calls instead of one.
    #[must_use]
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
}

/// What the fault queue decided for one call.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    pub(crate) delay: Duration,
    pub(crate) action: Option<FaultKind>,
}

/// Pending faults in injection order.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    faults: Vec<Fault>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, fault: Fault) {
        if fault.times > 0 {
            self.faults.push(fault);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
    }

    pub(crate) fn pending(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Consumes the faults that apply to one call of `operation`: every matching latency (added up)
    /// and the first matching fault of any other kind.
    pub(crate) fn take(&mut self, operation: &str) -> Planned {
        let mut planned = Planned::default();
        for fault in &mut self.faults {
            if fault.operation.as_deref().is_some_and(|op| op != operation) {
                continue;
            }
            match &fault.kind {
                FaultKind::Latency { millis } => {
                    planned.delay += Duration::from_millis(*millis);
                    fault.times -= 1;
                }
                kind if planned.action.is_none() => {
                    planned.action = Some(kind.clone());
                    fault.times -= 1;
                }
                _ => {}
            }
        }
        self.faults.retain(|f| f.times > 0);
        planned
    }
}

/// Calls per operation and outcome: `{ "<Operation>": { "<outcome>": n } }`, where the outcome is
/// `"ok"`, an error `__type`, `"DropConnection"` or `"HtmlError"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Stats(BTreeMap<String, BTreeMap<String, u64>>);

impl Stats {
    /// All calls of `operation`, whatever their outcome.
    pub fn calls(&self, operation: &str) -> u64 {
        self.0
            .get(operation)
            .map_or(0, |outcomes| outcomes.values().sum())
    }

    /// Calls of `operation` that ended with `outcome` (`"ok"` or an error type).
    pub fn count(&self, operation: &str, outcome: &str) -> u64 {
        self.0
            .get(operation)
            .and_then(|o| o.get(outcome))
            .copied()
            .unwrap_or(0)
    }

    /// The outcomes of `operation`.
    pub fn outcomes(&self, operation: &str) -> BTreeMap<String, u64> {
        self.0.get(operation).cloned().unwrap_or_default()
    }

    pub(crate) fn record(&mut self, operation: &str, outcome: &str) {
        *self
            .0
            .entry(operation.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_counts_down_and_matches_operations() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::throttle("InitiateAuth").times(2));
        queue.push(Fault::latency("InitiateAuth", 5));
        queue.push(Fault::new(None, FaultKind::DropConnection));
        let first = queue.take("InitiateAuth");
        assert_eq!(first.delay, Duration::from_millis(5));
        assert_eq!(first.action, Some(FaultKind::Throttle));
        assert_eq!(
            queue.take("GetUser").action,
            Some(FaultKind::DropConnection)
        );
        assert_eq!(queue.take("InitiateAuth").action, Some(FaultKind::Throttle));
        let last = queue.take("InitiateAuth");
        assert_eq!((last.delay, last.action), (Duration::ZERO, None));
        assert!(queue.pending().is_empty());
    }

    #[test]
    fn fault_json_shape() {
        let fault: Fault = serde_json::from_str(
            r#"{"operation":"RevokeToken","times":3,"kind":{"type":"error","code":"InternalErrorException","message":"boom","status":500}}"#,
        )
        .expect("valid fault");
        assert_eq!(
            fault,
            Fault::error("RevokeToken", "InternalErrorException", "boom").times(3)
        );
        let any: Fault = serde_json::from_str(r#"{"kind":{"type":"html_error"}}"#).expect("valid");
        assert_eq!(any, Fault::new(None, FaultKind::HtmlError { status: 500 }));
        assert!(
            serde_json::from_str::<Fault>(r#"{"kind":{"type":"throttle"},"bogus":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Fault>(r#"{"kind":{"type":"explode"}}"#).is_err());
    }
}
