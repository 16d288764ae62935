//! The I/O half: [`LatticeCloud`] implements `CloudProvider` over aws-sdk-vpclattice.
//!
//! ```text
//! let cloud = LatticeCloud::from_env(CloudOptions::default()).await;   // AWS_* env, IRSA, IMDS...
//! let calls = cloud.calls();                                            // Arc<CallCounter> for metrics
//! let observed = cloud.observe(&owner, &ctx).await?;
//! let changes = diff(&cloud.render(&plan, &ctx)?, &observed, &ctx.cluster_id, KIND_ORDER);
//! let outcome = cloud.apply(Some(&plan), &changes, &observed, &ctx).await?;
//! // Gateway deleted: apply(None, &diff(&ResourceGraph::default(), &observed, ..), &observed, &ctx)
//! ```
//!
//! `RenderContext` fields used: `cluster_id` (ownership), `network` (the VPC id: association and
//! target groups), `default_tags`. `region` is not read here: the SDK's region comes from the
//! standard AWS configuration, like the endpoint.

use std::sync::Arc;

use aws_config::SdkConfig;
use cloudgate_provider::cloud::{ApplyOutcome, BoxFuture, CloudError, CloudProvider, Owner};
use cloudgate_provider::diff::{ChangeSet, ObservedResource};
use cloudgate_provider::{Capabilities, LoadBalancerPlan, Provider, RenderContext, RenderError, ResourceGraph};

use crate::LatticeProvider;

mod apply;
pub mod convert;
pub mod errors;
pub use cloudgate_cloud_runtime::limiter;
pub use cloudgate_cloud_runtime::metrics;
mod observe;
pub mod priorities;
pub mod sdk;

pub use sdk::{load_sdk_config, CloudOptions};

use limiter::RateLimiter;
use metrics::CallCounter;

/// The Lattice provider with its SDK client. Cheap to clone (client, limiter, counters and tag
/// cache are shared).
#[derive(Clone, Debug)]
pub struct LatticeCloud {
    render: Arc<LatticeProvider>,
    clients: sdk::Clients,
}

impl LatticeCloud {
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

    /// Shares a rate limiter and call counter with other providers of the same account (the
    /// ALB provider's `with_shared` takes the same two).
    pub fn with_shared(sdk: &SdkConfig, opts: &CloudOptions, limiter: Arc<RateLimiter>, calls: Arc<CallCounter>) -> Self {
        // Every call through these clients says it is cloudgate's (User-Agent `app/cloudgate`):
        // CloudTrail shows who called, and the IAM coverage check tells them from test fixtures'.
        let app = aws_config::AppName::new(cloudgate_provider::cloud::APP_NAME).expect("APP_NAME is a valid app name");
        let sdk = sdk.to_builder().app_name(app).build();
        LatticeCloud { render: Arc::new(LatticeProvider::default()), clients: sdk::Clients::new(&sdk, opts, limiter, calls) }
    }

    /// Calls made so far, by service / operation / outcome.
    pub fn calls(&self) -> Arc<CallCounter> {
        self.clients.calls.clone()
    }

    pub fn limiter(&self) -> Arc<RateLimiter> {
        self.clients.limiter.clone()
    }

    /// The SDK client this provider calls through (for tests and tooling; calls made with it
    /// bypass the rate limiter and counters).
    pub fn client(&self) -> &aws_sdk_vpclattice::Client {
        &self.clients.lattice
    }
}

impl Provider for LatticeCloud {
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

    fn access_policy_support(&self, s: &cloudgate_provider::access::AccessSettings) -> Result<(), String> {
        self.render.access_policy_support(s)
    }

    fn backend_settings_support(&self, s: &cloudgate_provider::backend::BackendSettings) -> Result<(), String> {
        self.render.backend_settings_support(s)
    }
}

impl CloudProvider for LatticeCloud {
    fn addresses_per_route(&self) -> bool {
        true
    }

    /// Each route's Lattice service DNS name (a service's route tag says whose it is).
    fn route_addresses(&self, observed: &[ObservedResource]) -> Vec<(cloudgate_translate::model::RouteKey, String)> {
        observed
            .iter()
            .filter(|o| o.key.kind == crate::kind::SERVICE)
            .filter_map(|o| {
                let route = crate::render::parse_route_tag(o.tags.get(cloudgate_provider::tags::ROUTE)?)?;
                let dns = o.spec.pointer("/dnsEntry/domainName")?.as_str()?.to_string();
                Some((route, dns))
            })
            .collect()
    }

    fn observe<'a>(&'a self, owner: &'a Owner, ctx: &'a RenderContext) -> BoxFuture<'a, Result<Vec<ObservedResource>, CloudError>> {
        let span = tracing::info_span!("lattice_observe", gateway = %owner.gateway, cluster = %owner.cluster_id);
        Box::pin(tracing::Instrument::instrument(observe::observe(&self.clients, owner, ctx.service_network.as_deref()), span))
    }

    fn apply<'a>(
        &'a self,
        plan: Option<&'a LoadBalancerPlan>,
        changes: &'a ChangeSet,
        observed: &'a [ObservedResource],
        ctx: &'a RenderContext,
    ) -> BoxFuture<'a, Result<ApplyOutcome, CloudError>> {
        let span = tracing::info_span!("lattice_apply", changes = changes.changes.len());
        Box::pin(tracing::Instrument::instrument(apply::apply(&self.clients, &self.render, plan, changes, observed, ctx), span))
    }
}
