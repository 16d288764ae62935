//! SDK configuration and the one door every call goes through.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_elasticloadbalancingv2::config::http::HttpResponse;
use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};

use super::errors::{CallFailure, CLASSIFIER};
use super::limiter::RateLimiter;
use super::metrics::CallCounter;

/// Knobs for the SDK half. Defaults suit one controller per account and region.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// Average cloud calls per second across all Gateways (client-side token bucket).
    pub requests_per_second: f64,
    /// Calls allowed at once after a quiet period.
    pub burst: u32,
    /// The SDK's retry and timeouts.
    pub sdk: cloudgate_aws_runtime::SdkSettings,
    /// How long target group attributes read with DescribeTargetGroupAttributes are reused
    /// ([`AttributeCache`]): DescribeTargetGroups does not report them, and without the cache
    /// every observe would make one more call per target group. Apply refreshes the entry of a
    /// group whose attributes it writes; a change made by someone else shows within the TTL.
    /// Zero disables the cache.
    pub attribute_cache_ttl: Duration,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            requests_per_second: 10.0,
            burst: 20,
            sdk: cloudgate_aws_runtime::SdkSettings::default(),
            attribute_cache_ttl: Duration::from_secs(600),
        }
    }
}

/// Loads the standard AWS configuration with cloudgate's HTTPS client (rustls on ring), retry
/// and timeouts (see [`cloudgate_aws_runtime::load_sdk_config`]).
pub async fn load_sdk_config(opts: &CloudOptions) -> SdkConfig {
    cloudgate_aws_runtime::load_sdk_config(&opts.sdk).await
}

/// The SDK clients plus what sits in front of them.
#[derive(Clone, Debug)]
pub struct Clients {
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub acm: aws_sdk_acm::Client,
    pub limiter: Arc<RateLimiter>,
    pub calls: Arc<CallCounter>,
    pub attributes: Arc<AttributeCache>,
}

pub const ELBV2: &str = "elbv2";
pub const EC2: &str = "ec2";
pub const ACM: &str = "acm";

pub type Attributes = BTreeMap<String, String>;

/// The managed attributes of target groups by ARN ([`CloudOptions::attribute_cache_ttl`]).
pub type AttributeCache = cloudgate_cloud_runtime::TtlCache<Attributes>;

impl Clients {
    pub fn new(sdk: &SdkConfig, limiter: Arc<RateLimiter>, calls: Arc<CallCounter>, attribute_cache_ttl: Duration) -> Self {
        Clients {
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            acm: aws_sdk_acm::Client::new(sdk),
            limiter,
            calls,
            attributes: Arc::new(AttributeCache::new(attribute_cache_ttl)),
        }
    }

    /// Runs one cloud call through the shared door (rate limiter, span, call counter, error
    /// classification with ELBv2/EC2/ACM's codes).
    pub fn call<T, E, Fut>(&self, service: &'static str, operation: &'static str, fut: Fut) -> impl Future<Output = Result<T, CallFailure>>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        cloudgate_aws_runtime::call(&self.limiter, &self.calls, &CLASSIFIER, service, operation, Box::pin(fut))
    }
}
