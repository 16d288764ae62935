//! AWS VPC Lattice provider: what Lattice can express ([`capabilities`]), the plan rendered into
//! Lattice resources ([`LatticeProvider`]'s `render`, pure), and [`LatticeCloud`], the
//! `CloudProvider` that observes and applies them with aws-sdk-vpclattice.
//!
//! Module layout (the pure half never touches the SDK, so it is testable without a cloud):
//!
//! - [`render`], [`spec`] (pure): the mapping, and the spec structs named after the Lattice API
//!   fields that are the one vocabulary of desired and observed specs.
//! - [`cloud`] (I/O), laid out like the ALB provider's: `sdk` (configuration, the call wrapper
//!   with rate limiter, tracing span, call counter and error classification, the tag cache),
//!   `limiter`, `metrics`, `errors`, `convert` (spec <-> SDK types, pure), `priorities` (rule
//!   priority moves in few batches, pure), `observe`, `apply`.
//!
//! A Gateway becomes a service network associated with the VPC; each route on it becomes a
//! Lattice service in that network, with one listener per Gateway listener port and one rule
//! per plan rule; each Service port becomes an IP target group holding the ready endpoints.
//! See [`render`](crate::render) for the mapping and where it departs from
//! aws-application-networking-k8s.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use cloudgate_provider::{Provider, RenderContext, RenderError, ResourceGraph, ResourceKey};
use cloudgate_translate::capabilities::{feature, Protocol};
use cloudgate_translate::{Capabilities, LoadBalancerPlan};

pub mod cloud;
pub mod render;
pub mod spec;

pub use cloud::limiter::RateLimiter;
pub use cloud::metrics::{CallCount, CallCounter};
pub use cloud::{CloudOptions, LatticeCloud};

#[cfg(test)]
mod tests;

pub const PROVIDER: &str = "aws-lattice";
/// Lattice target group weights are 0..=999.
pub const MAX_WEIGHT: u32 = 999;
/// Target groups in one Lattice forward action.
pub const MAX_BACKENDS_PER_RULE: usize = 10;

/// Resource kinds (`ResourceKey::kind`).
pub mod kind {
    pub const SERVICE_NETWORK: &str = "vpc-lattice:ServiceNetwork";
    pub const SERVICE_NETWORK_VPC_ASSOCIATION: &str = "vpc-lattice:ServiceNetworkVpcAssociation";
    pub const TARGET_GROUP: &str = "vpc-lattice:TargetGroup";
    pub const SERVICE: &str = "vpc-lattice:Service";
    pub const SERVICE_NETWORK_SERVICE_ASSOCIATION: &str = "vpc-lattice:ServiceNetworkServiceAssociation";
    pub const LISTENER: &str = "vpc-lattice:Listener";
    pub const RULE: &str = "vpc-lattice:Rule";
    pub const ACCESS_LOG_SUBSCRIPTION: &str = "vpc-lattice:AccessLogSubscription";
}

/// Parents first. Deletes run in reverse: rules, listeners and service associations go before
/// the services, and everything that forwards to a target group goes before the target group.
pub const KIND_ORDER: &[&str] = &[
    kind::SERVICE_NETWORK,
    kind::SERVICE_NETWORK_VPC_ASSOCIATION,
    kind::TARGET_GROUP,
    kind::SERVICE,
    kind::SERVICE_NETWORK_SERVICE_ASSOCIATION,
    kind::LISTENER,
    kind::RULE,
    kind::ACCESS_LOG_SUBSCRIPTION,
];

/// What Lattice can express, and nothing more. Lattice listeners speak HTTP, HTTPS and TLS
/// passthrough; rules match exact/prefix paths, up to 5 exact headers and the method, and
/// forward to up to 10 weighted target groups or answer 404/500. There are no redirects,
/// rewrites, header modifiers, mirrors, timeouts, CORS, query or regex matches, TCP/UDP
/// listeners or TLS termination towards a TLS listener, so none of those are claimed.
pub fn capabilities() -> Capabilities {
    let features: BTreeSet<&'static str> = [
        feature::GATEWAY,
        feature::GATEWAY_PORT_8080,
        feature::HTTP_ROUTE,
        feature::GRPC_ROUTE,
        feature::TLS_ROUTE,
        feature::REFERENCE_GRANT,
        feature::HTTP_ROUTE_METHOD_MATCHING,
        feature::HTTP_ROUTE_PARENT_REF_PORT,
        feature::HTTP_ROUTE_NAMED_ROUTE_RULE,
        feature::TLS_PASSTHROUGH,
    ]
    .into_iter()
    .collect();
    Capabilities {
        provider: PROVIDER,
        protocols: [Protocol::Http, Protocol::Https, Protocol::Tls].into_iter().collect(),
        features,
        max_weight: MAX_WEIGHT,
        reserved_ports: BTreeSet::new(),
        max_backends_per_rule: MAX_BACKENDS_PER_RULE,
        rule_check: None,
    }
}

#[derive(Clone, Debug)]
pub struct LatticeProvider {
    caps: Capabilities,
}

impl Default for LatticeProvider {
    fn default() -> Self {
        LatticeProvider { caps: capabilities() }
    }
}

impl Provider for LatticeProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn render(&self, plan: &LoadBalancerPlan, ctx: &RenderContext) -> Result<ResourceGraph, RenderError> {
        render::render(plan, ctx)
    }

    fn health_check_support(&self, hc: &cloudgate_provider::health::HealthCheck) -> Result<(), String> {
        render::health_check_support(hc)
    }

    fn access_policy_support(&self, s: &cloudgate_provider::access::AccessSettings) -> Result<(), String> {
        render::access_policy_support(s)
    }

    fn backend_settings_support(&self, s: &cloudgate_provider::backend::BackendSettings) -> Result<(), String> {
        render::backend_settings_support(s)
    }
}

/// Where the Gateway's addresses come from: the DNS name Lattice assigns each service
/// (`dnsEntry.domainName` of GetService, status address type `Hostname`). Only apply learns
/// them; this says which resources to read, in graph order (the order routes first appear on
/// the Gateway's listeners). Custom domain names are not addresses: they need DNS records
/// pointing at these names, which cloudgate does not manage.
pub const ADDRESS_FIELD: &str = "dnsEntry.domainName";
pub const ADDRESS_TYPE: &str = "Hostname";

pub fn address_sources(graph: &ResourceGraph) -> Vec<&ResourceKey> {
    graph.resources.iter().filter(|r| r.key.kind == kind::SERVICE).map(|r| &r.key).collect()
}
