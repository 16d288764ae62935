//! SDK configuration and the one door every call goes through.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_elasticloadbalancingv2::config::http::HttpResponse;
use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tracing::Instrument;

use super::errors::{classify, CallFailure};
use super::limiter::RateLimiter;
use super::metrics::{CallCounter, OUTCOME_ERROR, OUTCOME_OK, OUTCOME_RETRYABLE, OUTCOME_THROTTLED};

/// Knobs for the SDK half. Defaults suit one controller per account and region.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// Average cloud calls per second across all Gateways (client-side token bucket).
    pub requests_per_second: f64,
    /// Calls allowed at once after a quiet period.
    pub burst: u32,
    /// SDK standard retry mode: attempts per call (1 = no retry), exponential backoff with
    /// full jitter between `initial_backoff` and `max_backoff`.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// One HTTP attempt.
    pub attempt_timeout: Duration,
    /// A whole call including retries.
    pub operation_timeout: Duration,
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
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            // CLOUDGATE_CLOUD_ATTEMPT_TIMEOUT overrides it (cloudgate_cloud_runtime::timeouts).
            attempt_timeout: cloudgate_cloud_runtime::timeouts::attempt_timeout(Duration::from_secs(20)),
            operation_timeout: Duration::from_secs(60),
            attribute_cache_ttl: Duration::from_secs(600),
        }
    }
}

/// Loads the standard AWS configuration (env vars, profile, web identity / pod identity,
/// IMDS; `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` honoured) with cloudgate's HTTPS
/// client (rustls on ring: no aws-lc build), retry and timeouts.
pub async fn load_sdk_config(opts: &CloudOptions) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(opts.max_attempts.max(1))
                .with_initial_backoff(opts.initial_backoff)
                .with_max_backoff(opts.max_backoff),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(opts.connect_timeout)
                .operation_attempt_timeout(opts.attempt_timeout)
                .operation_timeout(opts.operation_timeout)
                .build(),
        )
        .load()
        .await
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

    /// Runs one cloud call: waits for the rate limiter, runs `fut` (an SDK `send()`, which does
    /// nothing until polled) in a span named after the service and operation, counts the
    /// outcome and classifies a failure.
    pub async fn call<T, E, Fut>(&self, service: &'static str, operation: &'static str, fut: Fut) -> Result<T, CallFailure>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let span = tracing::info_span!("cloud_call", service, operation, outcome = tracing::field::Empty);
        async {
            self.limiter.acquire().await;
            let result = fut.await;
            let span = tracing::Span::current();
            match result {
                Ok(v) => {
                    self.calls.record(service, operation, OUTCOME_OK);
                    span.record("outcome", OUTCOME_OK);
                    Ok(v)
                }
                Err(e) => {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    let f = classify(service, operation, &e, status);
                    let outcome = if f.throttled {
                        OUTCOME_THROTTLED
                    } else if f.error.is_retryable() {
                        OUTCOME_RETRYABLE
                    } else {
                        OUTCOME_ERROR
                    };
                    self.calls.record(service, operation, outcome);
                    span.record("outcome", outcome);
                    tracing::debug!(error = %f.error, "cloud call failed");
                    Err(f)
                }
            }
        }
        .instrument(span)
        .await
    }
}
