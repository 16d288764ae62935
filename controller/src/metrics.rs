//! Prometheus metrics, served on /metrics. Reconcile outcomes and durations, cloud API calls
//! (read from the provider's call counter at scrape time, so the provider needs no Prometheus
//! dependency), queue depth, leadership and status writes (the last one makes "no status write
//! in steady state" observable from outside).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// One cloud API counter: service, operation, outcome, count.
pub type CallSnapshot = Vec<(String, String, String, u64)>;

pub struct Metrics {
    registry: Registry,
    reconciles: Family<Labels, Counter>,
    reconcile_errors: Family<Labels, Counter>,
    reconcile_duration: Histogram,
    status_writes: Family<Labels, Counter>,
    pub queue_depth: Gauge,
    pub leader: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// `calls` reads the provider's cloud call counter; called on every scrape.
    pub fn new(calls: Option<Box<dyn Fn() -> CallSnapshot + Send + Sync>>) -> Self {
        let mut registry = Registry::with_prefix("cloudgate");
        let reconciles = Family::<Labels, Counter>::default();
        registry.register("reconciles", "Reconciles by kind (gateway, gatewayclass) and result (success, error, requeue)", reconciles.clone());
        let reconcile_errors = Family::<Labels, Counter>::default();
        registry.register("reconcile_errors", "Reconcile errors by kind and class (retryable, permanent)", reconcile_errors.clone());
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("reconcile_duration_seconds", "Time to reconcile one object", reconcile_duration.clone());
        let status_writes = Family::<Labels, Counter>::default();
        registry.register("status_writes", "Status writes by kind (Gateway, GatewayClass, HTTPRoute...)", status_writes.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Work queue keys due and waiting for a worker", queue_depth.clone());
        let leader = Gauge::default();
        registry.register("leader", "1 while this instance holds the leader Lease", leader.clone());
        if let Some(calls) = calls {
            registry.register_collector(Box::new(CloudCalls(Arc::from(calls))));
        }
        Metrics { registry, reconciles, reconcile_errors, reconcile_duration, status_writes, queue_depth, leader }
    }

    pub fn reconciled(&self, kind: &'static str, result: &'static str, seconds: f64) {
        self.reconciles.get_or_create(&vec![("kind", kind.into()), ("result", result.into())]).inc();
        self.reconcile_duration.observe(seconds);
    }

    pub fn reconcile_error(&self, kind: &'static str, class: &'static str) {
        self.reconcile_errors.get_or_create(&vec![("kind", kind.into()), ("class", class.into())]).inc();
    }

    pub fn status_written(&self, kind: &str) {
        self.status_writes.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

struct CloudCalls(Arc<dyn Fn() -> CallSnapshot + Send + Sync>);

impl std::fmt::Debug for CloudCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CloudCalls")
    }
}

impl Collector for CloudCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = (self.0)();
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "cloud_api_calls",
            "Cloud API calls by service, operation and outcome (one logical call, whatever the SDK retried)",
            None,
            counter.metric_type(),
        )?;
        for (service, operation, outcome, count) in snapshot {
            let labels = [("service", service), ("operation", operation), ("outcome", outcome)];
            let m = family.encode_family(&labels)?;
            ConstCounter::new(count).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family() {
        let m = Metrics::new(Some(Box::new(|| vec![("elbv2".into(), "ModifyRule".into(), "ok".into(), 3)])));
        m.reconciled("gateway", "success", 0.2);
        m.reconcile_error("gateway", "retryable");
        m.status_written("Gateway");
        m.queue_depth.set(2);
        m.leader.set(1);
        let text = m.encode();
        for needle in [
            r#"cloudgate_reconciles_total{kind="gateway",result="success"} 1"#,
            r#"cloudgate_reconcile_errors_total{kind="gateway",class="retryable"} 1"#,
            "cloudgate_reconcile_duration_seconds_count 1",
            r#"cloudgate_status_writes_total{kind="Gateway"} 1"#,
            "cloudgate_queue_depth 2",
            "cloudgate_leader 1",
            r#"cloudgate_cloud_api_calls_total{service="elbv2",operation="ModifyRule",outcome="ok"} 3"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
