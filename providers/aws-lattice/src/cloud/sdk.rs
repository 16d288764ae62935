//! SDK configuration and the one door every call goes through (the same shape as the ALB
//! provider's `cloud::sdk`: rate limiter, tracing span, call counter, error classification).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_vpclattice::config::http::HttpResponse;
use aws_sdk_vpclattice::error::{ProvideErrorMetadata, SdkError};

use super::errors::{CallFailure, CLASSIFIER};
use super::limiter::RateLimiter;
use super::metrics::CallCounter;

/// The `service` label of every call (the botocore / IAM name).
pub const LATTICE: &str = "vpc-lattice";

/// Knobs for the SDK half. Defaults suit one controller per account and region. The first
/// three fields are the ALB provider's `CloudOptions`, field for field.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// Average cloud calls per second across all Gateways (client-side token bucket).
    pub requests_per_second: f64,
    /// Calls allowed at once after a quiet period.
    pub burst: u32,
    /// The SDK's retry and timeouts.
    pub sdk: cloudgate_aws_runtime::SdkSettings,
    /// How long tags read with ListTagsForResource are reused. Lattice lists carry no tags, so
    /// without this every observe would read the tags of every `cg-` resource in the region
    /// (all Gateways' resources) one call each. Tags of a resource we created are known without
    /// a read. Also the age limit of Get results reused while a resource's `lastUpdatedAt`
    /// stays the same ([`DescribeCache`]). Zero disables both caches.
    pub tag_cache_ttl: Duration,
    /// `maxResults` of every List call (1..=100); smaller only to exercise pagination in tests.
    pub page_size: i32,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            requests_per_second: 10.0,
            burst: 20,
            sdk: cloudgate_aws_runtime::SdkSettings::default(),
            tag_cache_ttl: Duration::from_secs(600),
            page_size: 100,
        }
    }
}

/// Loads the standard AWS configuration with cloudgate's HTTPS client (rustls on ring), retry
/// and timeouts (see [`cloudgate_aws_runtime::load_sdk_config`]).
pub async fn load_sdk_config(opts: &CloudOptions) -> SdkConfig {
    cloudgate_aws_runtime::load_sdk_config(&opts.sdk).await
}

pub type Tags = BTreeMap<String, String>;

/// Tags by ARN, with an age limit. ARNs are never reused, and cloudgate only writes tags when
/// it creates or updates a resource (and then refreshes the entry), so the risk of a stale
/// entry is someone else retagging a resource within the TTL.
pub type TagCache = cloudgate_cloud_runtime::TtlCache<Tags>;

/// What observe read with a Get call for a resource, as of the resource's `lastUpdatedAt`.
#[derive(Clone, Debug)]
pub enum Described {
    /// Service network or service: the auth type (lists leave it out).
    AuthType(Option<aws_sdk_vpclattice::types::AuthType>),
    /// Listener: the default action.
    Listener(Option<aws_sdk_vpclattice::types::RuleAction>),
    /// Rule: match and action.
    Rule(Option<aws_sdk_vpclattice::types::RuleMatch>, Option<aws_sdk_vpclattice::types::RuleAction>),
    /// Target group: type and config (health check included).
    TargetGroup(Option<aws_sdk_vpclattice::types::TargetGroupType>, Option<aws_sdk_vpclattice::types::TargetGroupConfig>),
}

/// Get results by ARN, valid while the resource's `lastUpdatedAt` (from the List summary) is the
/// one they were read at, and at most `ttl`. Lattice List calls return summaries only; without
/// this, every observe would Get every service, listener, rule and target group again although
/// nothing changed. Any update (ours or anyone's) moves `lastUpdatedAt` and forces a fresh Get;
/// the age limit bounds the damage if some change did not. Zero disables it.
#[derive(Debug)]
pub struct DescribeCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (aws_sdk_vpclattice::primitives::DateTime, Described, Instant)>>,
}

impl DescribeCache {
    pub fn new(ttl: Duration) -> Self {
        DescribeCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, arn: &str, updated: Option<&aws_sdk_vpclattice::primitives::DateTime>) -> Option<Described> {
        let updated = updated?;
        let m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(arn) {
            Some((at, d, when)) if at == updated && when.elapsed() < self.ttl => Some(d.clone()),
            _ => None,
        }
    }

    pub fn put(&self, arn: &str, updated: Option<&aws_sdk_vpclattice::primitives::DateTime>, d: Described) {
        let Some(updated) = updated else { return };
        if self.ttl.is_zero() {
            return;
        }
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 100_000 {
            let ttl = self.ttl;
            m.retain(|_, (_, _, when)| when.elapsed() < ttl);
        }
        m.insert(arn.to_string(), (*updated, d, Instant::now()));
    }
}

/// The SDK client plus what sits in front of it.
#[derive(Clone, Debug)]
pub struct Clients {
    pub lattice: aws_sdk_vpclattice::Client,
    pub limiter: Arc<RateLimiter>,
    pub calls: Arc<CallCounter>,
    pub tags: Arc<TagCache>,
    pub described: Arc<DescribeCache>,
    /// Service networks and services (by id) whose last ListAccessLogSubscriptions found none,
    /// for `tag_cache_ttl`: most have none, and listing every one on every observe would add a
    /// call per route service to each steady-state reconcile. Apply forgets an entry before it
    /// creates a subscription there; a process starts empty, so whatever exists is found once.
    pub no_access_logs: Arc<cloudgate_cloud_runtime::TtlCache<()>>,
    pub page_size: i32,
}

impl Clients {
    pub fn new(sdk: &SdkConfig, opts: &CloudOptions, limiter: Arc<RateLimiter>, calls: Arc<CallCounter>) -> Self {
        Clients {
            lattice: aws_sdk_vpclattice::Client::new(sdk),
            limiter,
            calls,
            tags: Arc::new(TagCache::new(opts.tag_cache_ttl)),
            described: Arc::new(DescribeCache::new(opts.tag_cache_ttl)),
            no_access_logs: Arc::new(cloudgate_cloud_runtime::TtlCache::new(opts.tag_cache_ttl)),
            page_size: opts.page_size.clamp(1, 100),
        }
    }

    /// Runs one cloud call through the shared door (rate limiter, span, call counter, error
    /// classification with Lattice's codes).
    pub fn call<T, E, Fut>(&self, operation: &'static str, fut: Fut) -> impl Future<Output = Result<T, CallFailure>>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        cloudgate_aws_runtime::call(&self.limiter, &self.calls, &CLASSIFIER, LATTICE, operation, Box::pin(fut))
    }

    /// Tags of one resource, from the cache or ListTagsForResource.
    pub async fn tags_of(&self, arn: &str) -> Result<Tags, CallFailure> {
        if let Some(t) = self.tags.get(arn) {
            return Ok(t);
        }
        let out = self.call("ListTagsForResource", self.lattice.list_tags_for_resource().resource_arn(arn).send()).await?;
        let t: Tags = out.tags().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        self.tags.put(arn, t.clone());
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_cache_expires_and_can_be_off() {
        let c = TagCache::new(Duration::from_millis(50));
        let t: Tags = [("a".to_string(), "b".to_string())].into();
        c.put("arn:1", t.clone());
        assert_eq!(c.get("arn:1"), Some(t.clone()));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("arn:1"), None);
        c.put("arn:2", t.clone());
        c.remove("arn:2");
        assert_eq!(c.get("arn:2"), None);
        let off = TagCache::new(Duration::ZERO);
        off.put("arn:1", t);
        assert_eq!(off.get("arn:1"), None);
    }

    #[test]
    fn described_is_reused_only_at_the_same_last_update() {
        let c = DescribeCache::new(Duration::from_secs(60));
        let t1 = aws_sdk_vpclattice::primitives::DateTime::from_secs(1);
        let t2 = aws_sdk_vpclattice::primitives::DateTime::from_secs(2);
        c.put("arn:1", Some(&t1), Described::AuthType(None));
        assert!(c.get("arn:1", Some(&t1)).is_some());
        assert!(c.get("arn:1", Some(&t2)).is_none(), "updated since");
        assert!(c.get("arn:1", None).is_none(), "no timestamp, no reuse");
        c.put("arn:2", None, Described::AuthType(None));
        assert!(c.get("arn:2", Some(&t1)).is_none());
        let off = DescribeCache::new(Duration::ZERO);
        off.put("arn:1", Some(&t1), Described::AuthType(None));
        assert!(off.get("arn:1", Some(&t1)).is_none());
    }
}
