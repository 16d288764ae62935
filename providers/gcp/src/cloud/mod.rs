//! The I/O half: [`GcpCloud`] implements `CloudProvider` over the Compute Engine REST API
//! (google-cloud-compute-v1).
//!
//! - `compute`: the service clients and the one wrapper every call goes through (rate
//!   limiter, tracing span, call counter, error classification), waiting for operations.
//! - `errors`: Compute errors -> `CloudError::Retryable` / `Permanent`.
//! - `convert`: specs -> request bodies, resources as read -> observed specs (pure).
//! - `observe`: what this Gateway owns (labels on addresses and forwarding rules, the ownership
//!   JSON in `description` elsewhere), read back in the vocabulary of `crate::spec`.
//! - `apply`: a `ChangeSet` executed in order, each change's operation waited for until DONE.
//! - `limiter`, `metrics`: the same token bucket and call counter as the ALB provider.

pub(crate) mod apply;
pub(crate) mod compute;
pub(crate) mod convert;
pub mod errors;
pub use cloudgate_cloud_runtime::limiter;
pub use cloudgate_cloud_runtime::metrics;
pub(crate) mod observe;

use std::sync::Arc;
use std::time::Duration;

use cloudgate_provider::cloud::{ApplyOutcome, BoxFuture, CloudError, CloudProvider, Owner};
use cloudgate_provider::diff::{ChangeSet, ObservedResource};
use cloudgate_provider::{Provider, RenderContext, RenderError, ResourceGraph};
use cloudgate_translate::capabilities::Capabilities;
use cloudgate_translate::LoadBalancerPlan;

use crate::{Flavour, GcpProvider};
use compute::Compute;
use limiter::RateLimiter;
use metrics::CallCounter;

/// The VM instance a `GCE_VM_IP_PORT` endpoint lives on, by `(zone, ip)`. Compute requires it
/// for every endpoint of such a NEG; on GKE it is the Pod's node (EndpointSlice
/// `endpoints[].nodeName`), which the plan does not carry yet, so the controller supplies it.
pub type InstanceLookup = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// How to reach Compute. [`GcpConfig::from_env`] is what the controller and the tests use.
#[derive(Clone)]
pub struct GcpConfig {
    /// Root URL of the API (the clients append `/compute/v1/...`); `None`: Google's.
    pub endpoint: Option<String>,
    /// Send no credentials at all (the test ground's fake). Otherwise Application Default
    /// Credentials.
    pub anonymous: bool,
    /// Average calls per second across all Gateways (client-side token bucket; `<= 0`: none),
    /// operation waits included.
    pub requests_per_second: f64,
    /// Calls allowed at once after a quiet period.
    pub burst: u32,
    /// How long apply waits for one operation before leaving it to the next reconcile.
    pub operation_timeout: Duration,
    /// The pause before repeating an `operations.wait` that returned early (still running):
    /// first delay, doubled up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    pub instances: Option<InstanceLookup>,
}

impl std::fmt::Debug for GcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpConfig")
            .field("endpoint", &self.endpoint)
            .field("anonymous", &self.anonymous)
            .field("requests_per_second", &self.requests_per_second)
            .field("burst", &self.burst)
            .field("operation_timeout", &self.operation_timeout)
            .field("poll_initial", &self.poll_initial)
            .field("poll_max", &self.poll_max)
            .field("instances", &self.instances.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl Default for GcpConfig {
    fn default() -> Self {
        GcpConfig {
            endpoint: None,
            anonymous: false,
            // Compute's default per-project read and write quotas are in the tens per second
            // and shared with every other client of the project.
            requests_per_second: 10.0,
            burst: 20,
            operation_timeout: Duration::from_secs(120),
            poll_initial: Duration::from_millis(50),
            poll_max: Duration::from_secs(1),
            instances: None,
        }
    }
}

impl GcpConfig {
    /// `GCE_ENDPOINT` (when set and not empty) overrides the endpoint. Credentials are anonymous
    /// when `GCE_ANONYMOUS` says so (`1`/`true`), and by default whenever the endpoint is plain
    /// `http://`: Google access tokens never go over an unencrypted connection, and the only
    /// such endpoint is a local fake.
    pub fn from_env() -> Self {
        Self::from_vars(std::env::var("GCE_ENDPOINT").ok(), std::env::var("GCE_ANONYMOUS").ok())
    }

    fn from_vars(endpoint: Option<String>, anonymous: Option<String>) -> Self {
        let endpoint = endpoint.filter(|e| !e.trim().is_empty());
        let anonymous = match anonymous.as_deref().map(str::trim) {
            Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            _ => endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
        };
        GcpConfig { endpoint, anonymous, ..GcpConfig::default() }
    }
}

/// The GCP provider with its cloud half: render (pure, [`GcpProvider`]) plus observe and apply.
///
/// ```text
/// let cloud = GcpCloud::new(GcpProvider::default(), GcpConfig { instances, ..GcpConfig::from_env() }).await?;
/// let calls = cloud.calls();                                        // Arc<CallCounter> for metrics
/// let observed = cloud.observe(&owner, &ctx).await?;               // ctx.project, ctx.region, ctx.scheme
/// let changes = diff(&cloud.render(&plan, &ctx)?, &observed, &ctx.cluster_id, KIND_ORDER);
/// let outcome = cloud.apply(Some(&plan), &changes, &observed, &ctx).await?;
/// ```
pub struct GcpCloud {
    provider: GcpProvider,
    compute: Compute,
    calls: Arc<CallCounter>,
    instances: Option<InstanceLookup>,
}

impl GcpCloud {
    /// Builds the Compute clients with a fresh rate limiter and call counter. No request is
    /// made; Application Default Credentials are resolved by the auth library when first used.
    /// The clients are built without a default TLS crypto provider (the workspace uses ring
    /// everywhere): the program installs one first, e.g.
    /// `rustls::crypto::ring::default_provider().install_default()`.
    pub async fn new(provider: GcpProvider, config: GcpConfig) -> Result<Self, CloudError> {
        let limiter = Arc::new(RateLimiter::new(config.requests_per_second, config.burst));
        Self::with_shared(provider, config, limiter, Arc::new(CallCounter::new())).await
    }

    /// Shares a rate limiter and call counter with other providers of the same project.
    pub async fn with_shared(provider: GcpProvider, config: GcpConfig, limiter: Arc<RateLimiter>, calls: Arc<CallCounter>) -> Result<Self, CloudError> {
        let compute = Compute::new(&config, limiter, calls.clone()).await?;
        Ok(GcpCloud { provider, compute, calls, instances: config.instances })
    }

    /// Calls made so far, by service / operation / outcome.
    pub fn calls(&self) -> Arc<CallCounter> {
        self.calls.clone()
    }

    pub fn provider(&self) -> &GcpProvider {
        &self.provider
    }

    pub(crate) fn flavour(&self, ctx: &RenderContext) -> Result<Flavour, CloudError> {
        self.provider.flavour_for(ctx).map_err(|e| CloudError::Permanent { service: errors::SERVICE, operation: "config".into(), message: e.to_string() })
    }
}

/// The project every call is about; an empty one is a configuration error.
pub(crate) fn project(ctx: &RenderContext) -> Result<&str, CloudError> {
    if ctx.project.is_empty() {
        return Err(CloudError::Permanent {
            service: errors::SERVICE,
            operation: "config".into(),
            message: "no GCP project configured (RenderContext.project)".into(),
        });
    }
    Ok(&ctx.project)
}

/// Where the flavour's resources live.
pub(crate) fn scope(flavour: Flavour, ctx: &RenderContext) -> Result<compute::Loc, CloudError> {
    if !flavour.regional() {
        return Ok(compute::Loc::Global);
    }
    if ctx.region.is_empty() {
        return Err(CloudError::Permanent {
            service: errors::SERVICE,
            operation: "config".into(),
            message: format!("the {} flavour needs a region", flavour.as_str()),
        });
    }
    Ok(compute::Loc::Region(ctx.region.clone()))
}

impl Provider for GcpCloud {
    fn name(&self) -> &'static str {
        self.provider.name()
    }

    fn capabilities(&self) -> &Capabilities {
        self.provider.capabilities()
    }

    fn render(&self, plan: &LoadBalancerPlan, ctx: &RenderContext) -> Result<ResourceGraph, RenderError> {
        self.provider.render(plan, ctx)
    }

    fn health_check_support(&self, hc: &cloudgate_provider::health::HealthCheck) -> Result<(), String> {
        self.provider.health_check_support(hc)
    }

    fn backend_settings_support(&self, s: &cloudgate_provider::backend::BackendSettings) -> Result<(), String> {
        self.provider.backend_settings_support(s)
    }
}

impl CloudProvider for GcpCloud {
    fn observe<'a>(&'a self, owner: &'a Owner, ctx: &'a RenderContext) -> BoxFuture<'a, Result<Vec<ObservedResource>, CloudError>> {
        Box::pin(observe::observe(self, owner, ctx))
    }

    fn apply<'a>(
        &'a self,
        plan: Option<&'a LoadBalancerPlan>,
        changes: &'a ChangeSet,
        observed: &'a [ObservedResource],
        ctx: &'a RenderContext,
    ) -> BoxFuture<'a, Result<ApplyOutcome, CloudError>> {
        Box::pin(apply::apply(self, plan, changes, observed, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_the_environment() {
        let c = GcpConfig::from_vars(None, None);
        assert!(c.endpoint.is_none() && !c.anonymous, "production: Google's endpoint, ADC");
        let c = GcpConfig::from_vars(Some("http://127.0.0.1:4000".into()), None);
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4000"));
        assert!(c.anonymous, "never send tokens over plain http");
        let c = GcpConfig::from_vars(Some("https://compute.example.internal".into()), None);
        assert!(!c.anonymous);
        assert!(GcpConfig::from_vars(Some("https://x".into()), Some("true".into())).anonymous);
        assert!(!GcpConfig::from_vars(Some("http://x".into()), Some("0".into())).anonymous);
        assert!(GcpConfig::from_vars(Some(" ".into()), None).endpoint.is_none());
    }
}
