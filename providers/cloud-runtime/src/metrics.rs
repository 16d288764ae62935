//! Cloud calls counted by service, operation and outcome, for the controller's metrics (a
//! counter family like `cloudgate_cloud_calls_total{service,operation,outcome}`). One logical
//! call counts once, whatever the SDK retried underneath.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

pub const OUTCOME_OK: &str = "ok";
/// Failed with a throttling error (after the SDK's own retries).
pub const OUTCOME_THROTTLED: &str = "throttled";
/// Failed with another retryable error (5xx, timeout, dependency not yet gone...).
pub const OUTCOME_RETRYABLE: &str = "retryable";
/// Failed permanently (validation, not found, quota...). Not-found on delete lands here too:
/// the call site treats it as done, but the cloud did answer with an error.
pub const OUTCOME_ERROR: &str = "error";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CallCount {
    pub service: &'static str,
    pub operation: &'static str,
    pub outcome: &'static str,
    pub count: u64,
}

#[derive(Debug, Default)]
pub struct CallCounter {
    counts: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
}

impl CallCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, service: &'static str, operation: &'static str, outcome: &'static str) {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((service, operation, outcome)).or_default() += 1;
    }

    /// Every non-zero counter, sorted by service, operation, outcome. Counters only grow.
    pub fn snapshot(&self) -> Vec<CallCount> {
        let m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().map(|(&(service, operation, outcome), &count)| CallCount { service, operation, outcome, count }).collect()
    }

    /// Sum over outcomes and operations matching `pred` (tests, summaries).
    pub fn total(&self, pred: impl Fn(&CallCount) -> bool) -> u64 {
        self.snapshot().iter().filter(|c| pred(c)).map(|c| c.count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_label() {
        let c = CallCounter::new();
        c.record("elbv2", "ModifyRule", OUTCOME_OK);
        c.record("elbv2", "ModifyRule", OUTCOME_OK);
        c.record("ec2", "DeleteSecurityGroup", OUTCOME_RETRYABLE);
        let s = c.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], CallCount { service: "ec2", operation: "DeleteSecurityGroup", outcome: "retryable", count: 1 });
        assert_eq!(s[1].count, 2);
        assert_eq!(c.total(|x| x.service == "elbv2"), 2);
    }
}
