//! The I/O half: [`AlbCloud`] implements `CloudProvider` over ELBv2, EC2 and ACM.
//!
//! ```text
//! let cloud = AlbCloud::from_env(CloudOptions::default()).await;   // AWS_* env, IRSA, IMDS...
//! let calls = cloud.calls();                                        // Arc<CallCounter> for metrics
//! let observed = cloud.observe(&owner, &ctx).await?;
//! let changes = diff(&cloud.render(&plan, &ctx)?, &observed, &ctx.cluster_id, KIND_ORDER);
//! let outcome = cloud.apply(Some(&plan), &changes, &observed, &ctx).await?;
//! ```

use std::sync::Arc;

use aws_config::SdkConfig;
use cloudgate_provider::cloud::{ApplyOutcome, BoxFuture, CloudError, CloudProvider, Owner};
use cloudgate_provider::diff::{ChangeSet, ObservedResource};
use cloudgate_provider::{Capabilities, LoadBalancerPlan, Provider, RenderContext, RenderError, ResourceGraph};

use crate::render::AlbProvider;

mod apply;
pub mod convert;
pub mod errors;
pub use cloudgate_cloud_runtime::limiter;
pub use cloudgate_cloud_runtime::metrics;
mod observe;
pub mod sdk;

pub use sdk::{load_sdk_config, CloudOptions};

use limiter::RateLimiter;
use metrics::CallCounter;

/// Tags the SDK half adds to imported certificates on top of the render's: what ACM cannot
/// report about them (observe reads the certificate spec back from these).
pub const TAG_SECRET: &str = "cloudgate.io/secret";
pub const TAG_CERTIFICATE_SHA256: &str = "cloudgate.io/certificate-sha256";

/// The ALB provider with its SDK clients. Cheap to clone (clients and counters are shared).
#[derive(Clone, Debug)]
pub struct AlbCloud {
    render: Arc<AlbProvider>,
    clients: sdk::Clients,
}

impl AlbCloud {
    /// Standard AWS configuration from the environment plus `opts` (rate limit, retry, timeouts).
    pub async fn from_env(opts: CloudOptions) -> Self {
        let sdk = load_sdk_config(&opts).await;
        Self::new(&sdk, &opts)
    }

    /// From an existing SDK configuration (build it with [`load_sdk_config`] to keep
    /// cloudgate's retry/timeout settings and TLS stack). A fresh rate limiter and call counter.
    pub fn new(sdk: &SdkConfig, opts: &CloudOptions) -> Self {
        Self::with_shared(sdk, opts, Arc::new(RateLimiter::new(opts.requests_per_second, opts.burst)), Arc::new(CallCounter::new()))
    }

    /// Shares a rate limiter and call counter with other providers of the same account.
    pub fn with_shared(sdk: &SdkConfig, opts: &CloudOptions, limiter: Arc<RateLimiter>, calls: Arc<CallCounter>) -> Self {
        // Every call through these clients says it is cloudgate's (User-Agent `app/cloudgate`):
        // CloudTrail shows who called, and the IAM coverage check tells them from test fixtures'.
        let app = aws_config::AppName::new(cloudgate_provider::cloud::APP_NAME).expect("APP_NAME is a valid app name");
        let sdk = sdk.to_builder().app_name(app).build();
        AlbCloud { render: Arc::new(AlbProvider::default()), clients: sdk::Clients::new(&sdk, limiter, calls, opts.attribute_cache_ttl) }
    }

    /// Calls made so far, by service / operation / outcome.
    pub fn calls(&self) -> Arc<CallCounter> {
        self.clients.calls.clone()
    }

    pub fn limiter(&self) -> Arc<RateLimiter> {
        self.clients.limiter.clone()
    }
}

impl Provider for AlbCloud {
    fn name(&self) -> &'static str {
        self.render.name()
    }

    fn capabilities(&self) -> &Capabilities {
        self.render.capabilities()
    }

    fn render(&self, plan: &LoadBalancerPlan, ctx: &RenderContext) -> Result<ResourceGraph, RenderError> {
        self.render.render(plan, ctx)
    }

    fn health_check_support(&self, hc: &cloudgate_provider::health::HealthCheck) -> Result<(), String> {
        self.render.health_check_support(hc)
    }

    fn backend_settings_support(&self, s: &cloudgate_provider::backend::BackendSettings) -> Result<(), String> {
        self.render.backend_settings_support(s)
    }
}

impl CloudProvider for AlbCloud {
    fn observe<'a>(&'a self, owner: &'a Owner, _ctx: &'a RenderContext) -> BoxFuture<'a, Result<Vec<ObservedResource>, CloudError>> {
        let span = tracing::info_span!("alb_observe", gateway = %owner.gateway, cluster = %owner.cluster_id);
        Box::pin(tracing::Instrument::instrument(observe::observe(&self.clients, owner), span))
    }

    fn apply<'a>(
        &'a self,
        plan: Option<&'a LoadBalancerPlan>,
        changes: &'a ChangeSet,
        observed: &'a [ObservedResource],
        ctx: &'a RenderContext,
    ) -> BoxFuture<'a, Result<ApplyOutcome, CloudError>> {
        let span = tracing::info_span!("alb_apply", changes = changes.changes.len());
        Box::pin(tracing::Instrument::instrument(apply::apply(&self.clients, &self.render, plan, changes, observed, ctx), span))
    }
}
