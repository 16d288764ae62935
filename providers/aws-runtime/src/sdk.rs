//! SDK configuration and the one door every AWS call goes through.

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use cloudgate_cloud_runtime::limiter::RateLimiter;
use cloudgate_cloud_runtime::metrics::{CallCounter, OUTCOME_ERROR, OUTCOME_OK, OUTCOME_RETRYABLE, OUTCOME_THROTTLED};
use tracing::Instrument;

use crate::errors::{classify, CallFailure, Classifier};

/// The SDK's retry and timeout settings (each provider's `CloudOptions` carries them).
/// Defaults suit one controller per account and region.
#[derive(Clone, Copy, Debug)]
pub struct SdkSettings {
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
}

impl Default for SdkSettings {
    fn default() -> Self {
        SdkSettings {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            // CLOUDGATE_CLOUD_ATTEMPT_TIMEOUT overrides it (cloudgate_cloud_runtime::timeouts).
            attempt_timeout: cloudgate_cloud_runtime::timeouts::attempt_timeout(Duration::from_secs(20)),
            operation_timeout: Duration::from_secs(60),
        }
    }
}

/// Loads the standard AWS configuration (env vars, profile, web identity / pod identity,
/// IMDS; `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` honoured) with cloudgate's HTTPS
/// client (rustls on ring: no aws-lc build), retry and timeouts.
pub async fn load_sdk_config(s: &SdkSettings) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(s.max_attempts.max(1)).with_initial_backoff(s.initial_backoff).with_max_backoff(s.max_backoff))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(s.connect_timeout)
                .operation_attempt_timeout(s.attempt_timeout)
                .operation_timeout(s.operation_timeout)
                .build(),
        )
        .load()
        .await
}

/// Runs one cloud call: waits for the rate limiter, runs `fut` (an SDK `send()`, which does
/// nothing until polled) in a span named after the service and operation, counts the outcome
/// and classifies a failure with the provider's `classifier`.
///
/// `fut` comes boxed: an SDK request future is tens of kilobytes, and in debug builds every
/// async layer that holds it by value adds a copy to the stack (the controller's e2e tests
/// overflowed a 2 MiB test thread with one layer more than this).
pub async fn call<T, E, Fut>(
    limiter: &RateLimiter,
    calls: &CallCounter,
    classifier: &Classifier,
    service: &'static str,
    operation: &'static str,
    fut: std::pin::Pin<Box<Fut>>,
) -> Result<T, CallFailure>
where
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let span = tracing::info_span!("cloud_call", service, operation, outcome = tracing::field::Empty);
    async {
        limiter.acquire().await;
        let result = fut.await;
        let span = tracing::Span::current();
        match result {
            Ok(v) => {
                calls.record(service, operation, OUTCOME_OK);
                span.record("outcome", OUTCOME_OK);
                Ok(v)
            }
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let f = classify(classifier, service, operation, &e, status);
                let outcome = if f.throttled {
                    OUTCOME_THROTTLED
                } else if f.error.is_retryable() {
                    OUTCOME_RETRYABLE
                } else {
                    OUTCOME_ERROR
                };
                calls.record(service, operation, outcome);
                span.record("outcome", outcome);
                tracing::debug!(error = %f.error, "cloud call failed");
                Err(f)
            }
        }
    }
    .instrument(span)
    .await
}
