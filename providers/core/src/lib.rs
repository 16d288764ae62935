//! The provider contract. A provider turns a [`LoadBalancerPlan`] into desired cloud resources
//! (`render`, pure), finds the resources it owns (`observe`, I/O), and applies the difference
//! (`apply`, I/O). This crate holds the pure half shared by every provider: the resource model,
//! ownership tags, collision-free names and the diff. No cloud SDK, no async runtime.
#![forbid(unsafe_code)]

pub mod access;
pub mod backend;
pub mod cloud;
pub mod diff;
pub mod health;
pub mod names;
pub mod resource;
pub mod tags;

pub use cloudgate_translate::{Capabilities, LoadBalancerPlan};
pub use resource::{DesiredResource, ResourceGraph, ResourceKey};

/// Settings a provider renders with: who owns the resources and where they go. Values come
/// from flags and GatewayClass parameters.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RenderContext {
    /// Identifies this cluster in ownership tags, so two clusters sharing an account never
    /// touch each other's resources.
    pub cluster_id: String,
    /// Cloud region (AWS) or region for regional GCP flavours.
    pub region: String,
    /// AWS VPC id, or GCP network name.
    pub network: String,
    /// AWS subnet ids, or the GCP subnetwork (first entry).
    pub subnets: Vec<String>,
    /// `internet-facing` / `internal` (ALB), or the GCP flavour name.
    pub scheme: String,
    /// GCP project.
    pub project: String,
    /// Extra tags/labels from the class parameters, applied to every resource.
    pub default_tags: std::collections::BTreeMap<String, String>,
    /// aws-lattice: join this existing service network (name, id or ARN) instead of creating
    /// one per Gateway (class parameters `serviceNetwork.mode: Adopt`).
    pub service_network: Option<String>,
    /// Health check settings by Service (`namespace/name`), from HealthCheckPolicies the
    /// provider accepted (see [`Provider::health_check_support`]).
    pub health_checks: std::collections::BTreeMap<cloudgate_translate::model::ObjKey, health::HealthCheck>,
    /// Backend settings by Service, from BackendPolicies the provider accepted (see
    /// [`Provider::backend_settings_support`]).
    pub backend_settings: std::collections::BTreeMap<cloudgate_translate::model::ObjKey, backend::BackendSettings>,
    /// Access logging and auth by target (the Gateway or one of its routes), from
    /// LatticeAccessLogPolicy / LatticeAuthPolicy; empty unless the provider applies them (see
    /// [`Provider::access_policy_support`]).
    pub access: std::collections::BTreeMap<access::AccessTarget, access::AccessSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the plan cannot be rendered for {provider}: {message}")]
    Unrenderable { provider: &'static str, message: String },
    /// The Gateway's `spec.addresses` are valid but this provider cannot bind them all (e.g. a
    /// load balancer with one address and two requested).
    #[error("the requested addresses cannot be used by {provider}: {message}")]
    AddressNotUsable { provider: &'static str, message: String },
}

impl RenderError {
    /// The Gateway's `Programmed=False` reason for this error.
    pub fn programmed_reason(&self) -> &'static str {
        use cloudgate_translate::conditions::reason;
        match self {
            RenderError::Unrenderable { .. } => reason::INVALID,
            RenderError::AddressNotUsable { .. } => reason::ADDRESS_NOT_USABLE,
        }
    }
}

/// What every provider implements. `render` is pure; the I/O half (observe/apply) is defined by
/// the provider crates that talk to a cloud.
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> &Capabilities;
    fn render(&self, plan: &LoadBalancerPlan, ctx: &RenderContext) -> Result<ResourceGraph, RenderError>;

    /// Whether `render` applies these health check settings; `Err(why)` is reported on the
    /// policy (`Accepted=False`), and the settings are then not passed to `render`.
    fn health_check_support(&self, _hc: &health::HealthCheck) -> Result<(), String> {
        Err(format!("the {} provider does not apply HealthCheckPolicy settings yet", self.name()))
    }

    /// Whether `render` applies these backend settings; `Err(why)` is reported on the
    /// BackendPolicy (`Accepted=False`), and the settings are then not passed to `render`.
    fn backend_settings_support(&self, _s: &backend::BackendSettings) -> Result<(), String> {
        Err(format!("the {} provider does not apply BackendPolicy settings yet", self.name()))
    }

    /// Whether `render` applies access log and auth settings (`RenderContext::access`);
    /// `Err(why)` is reported on the policy.
    fn access_policy_support(&self, _s: &access::AccessSettings) -> Result<(), String> {
        Err(format!("access log and auth policies are VPC Lattice features; the {} provider does not apply them", self.name()))
    }
}
