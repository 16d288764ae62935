//! Google Cloud load balancing provider, for the Envoy-based Application Load Balancers
//! (global external managed, regional external managed, regional internal managed).
//!
//! A Gateway becomes: an address; per listener *port* a URL map, a target HTTP(S) proxy and a
//! forwarding rule; per Service port a backend service, a health check and one zonal
//! `GCE_VM_IP_PORT` NEG per zone its endpoints are in; per certificate Secret content an SSL
//! certificate; one firewall rule letting Google's health checkers reach the endpoints.
//!
//! Why per port and not per listener: one IP:port is one forwarding rule, one proxy and one
//! URL map. Gateway API allows several listeners on one port that differ by hostname (the
//! usual "one HTTPS listener per host on 443"), so their rules share the port's URL map (host
//! rules keep them apart) and their certificates share its proxy (picked by SNI).
//!
//! Two halves: capabilities and render are pure ([`GcpProvider`]); observe and apply against
//! the Compute REST API are [`cloud::GcpCloud`], which wraps the pure half.
#![forbid(unsafe_code)]

pub mod cloud;
pub mod labels;
pub mod policy;
mod render;
pub mod spec;
mod urlmap;

use cloudgate_provider::{Provider, RenderContext, RenderError};
use cloudgate_translate::capabilities::{feature, Capabilities, Protocol};
use cloudgate_translate::plan::LoadBalancerPlan;

pub use cloud::limiter::RateLimiter;
pub use cloud::metrics::{CallCount, CallCounter};
pub use cloud::{GcpCloud, GcpConfig, InstanceLookup};
pub use labels::labels_from_tags;

pub const PROVIDER: &str = "gcp";

pub const KIND_ADDRESS: &str = "compute:Address";
pub const KIND_HEALTH_CHECK: &str = "compute:HealthCheck";
pub const KIND_NEG: &str = "compute:NetworkEndpointGroup";
pub const KIND_BACKEND_SERVICE: &str = "compute:BackendService";
pub const KIND_URL_MAP: &str = "compute:UrlMap";
pub const KIND_SSL_CERTIFICATE: &str = "compute:SslCertificate";
pub const KIND_TARGET_HTTP_PROXY: &str = "compute:TargetHttpProxy";
pub const KIND_TARGET_HTTPS_PROXY: &str = "compute:TargetHttpsProxy";
pub const KIND_FORWARDING_RULE: &str = "compute:ForwardingRule";
pub const KIND_FIREWALL: &str = "compute:Firewall";

/// Parents first. Deletes run in reverse: forwarding rule, proxies, URL map, backend
/// services, NEGs, health checks, certificates, address — each only once nothing refers to it
/// any more. The firewall is first so it is deleted last: health checks keep passing while the
/// load balancer in front of the endpoints is being taken apart.
pub const KIND_ORDER: &[&str] = &[
    KIND_FIREWALL,
    KIND_ADDRESS,
    KIND_SSL_CERTIFICATE,
    KIND_HEALTH_CHECK,
    KIND_NEG,
    KIND_BACKEND_SERVICE,
    KIND_URL_MAP,
    KIND_TARGET_HTTP_PROXY,
    KIND_TARGET_HTTPS_PROXY,
    KIND_FORWARDING_RULE,
];

/// `weightedBackendServices[].weight` is 0..=1000.
pub const MAX_WEIGHT: u32 = 1000;

/// Which Application Load Balancer a Gateway becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavour {
    /// Global resources, `EXTERNAL_MANAGED`.
    #[default]
    GlobalExternalManaged,
    /// Regional resources, `EXTERNAL_MANAGED`; needs a proxy-only subnet in the region.
    RegionalExternalManaged,
    /// Regional resources, `INTERNAL_MANAGED`, an internal IP from the subnetwork; needs a
    /// proxy-only subnet in the region.
    RegionalInternalManaged,
}

impl Flavour {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "global-external-managed" => Flavour::GlobalExternalManaged,
            "regional-external-managed" => Flavour::RegionalExternalManaged,
            "regional-internal-managed" => Flavour::RegionalInternalManaged,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::GlobalExternalManaged => "global-external-managed",
            Flavour::RegionalExternalManaged => "regional-external-managed",
            Flavour::RegionalInternalManaged => "regional-internal-managed",
        }
    }

    pub fn regional(self) -> bool {
        self != Flavour::GlobalExternalManaged
    }

    pub fn load_balancing_scheme(self) -> &'static str {
        match self {
            Flavour::RegionalInternalManaged => "INTERNAL_MANAGED",
            _ => "EXTERNAL_MANAGED",
        }
    }

    /// compute.v1 on `regexMatch` (path, header and query parameter alike): "Regular
    /// expressions can only be used when the loadBalancingScheme is set to
    /// INTERNAL_SELF_MANAGED, EXTERNAL_MANAGED (regional scope) or INTERNAL_MANAGED."
    pub fn supports_regex(self) -> bool {
        self.regional()
    }
}

/// What the default flavour (global external managed) can express. It is also the most
/// restricted flavour, so nothing claimed here is missing from another one.
pub fn capabilities() -> Capabilities {
    capabilities_for(Flavour::GlobalExternalManaged)
}

/// What one flavour's URL maps can express (compute.v1 `UrlMap` route rules).
///
/// Not claimed, and why:
/// - method matching: `matchRules` has no method field;
/// - port redirect: `urlRedirect` has no port;
/// - several mirrors per rule: `requestMirrorPolicy` is one backend service;
/// - backend timeout, retry, CORS, session persistence: not built yet;
/// - listener isolation: a request for a host falls through to rules of less specific hosts
///   on the same port (see the URL map notes in `render`).
pub fn capabilities_for(flavour: Flavour) -> Capabilities {
    let mut features: std::collections::BTreeSet<&'static str> = [
        feature::GATEWAY,
        feature::GATEWAY_PORT_8080,
        feature::GATEWAY_STATIC_ADDRESSES,
        feature::REFERENCE_GRANT,
        feature::HTTP_ROUTE,
        feature::GRPC_ROUTE,
        feature::HTTP_ROUTE_PARENT_REF_PORT,
        feature::HTTP_ROUTE_NAMED_ROUTE_RULE,
        feature::HTTP_ROUTE_QUERY_PARAM_MATCHING,
        // headerAction on the route rule / on weightedBackendServices[].
        feature::REQUEST_HEADER_MODIFICATION,
        feature::HTTP_ROUTE_RESPONSE_HEADER_MODIFICATION,
        feature::HTTP_ROUTE_BACKEND_REQUEST_HEADER_MODIFICATION,
        // urlRedirect: hostRedirect, httpsRedirect, pathRedirect / prefixRedirect,
        // redirectResponseCode 301/302/303/307/308.
        feature::REQUEST_REDIRECT,
        feature::HTTP_ROUTE_SCHEME_REDIRECT,
        feature::HTTP_ROUTE_PATH_REDIRECT,
        feature::HTTP_ROUTE_303_REDIRECT,
        feature::HTTP_ROUTE_307_REDIRECT,
        feature::HTTP_ROUTE_308_REDIRECT,
        // urlRewrite.hostRewrite; pathPrefixRewrite, and for ReplaceFullPath under a prefix
        // pathTemplateMatch + pathTemplateRewrite (see `urlmap`).
        feature::HTTP_ROUTE_HOST_REWRITE,
        feature::HTTP_ROUTE_PATH_REWRITE,
        // requestMirrorPolicy, with mirrorPercent (present in compute.v1).
        feature::HTTP_ROUTE_REQUEST_MIRROR,
        feature::HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR,
        // routeAction.timeout.
        feature::HTTP_ROUTE_REQUEST_TIMEOUT,
    ]
    .into_iter()
    .collect();
    if flavour.supports_regex() {
        features.extend([feature::PATH_REGEX_MATCHING, feature::HEADER_REGEX_MATCHING, feature::QUERY_REGEX_MATCHING]);
    }
    Capabilities {
        provider: PROVIDER,
        protocols: [Protocol::Http, Protocol::Https].into_iter().collect(),
        features,
        max_weight: MAX_WEIGHT,
        reserved_ports: Default::default(),
        // No small per-action limit in v1; this only keeps a URL map within its size limits.
        max_backends_per_rule: 100,
        // What depends on the listener or on a rule's values (see `urlmap::rule_support`):
        // translation refuses such a rule on the route instead of render failing the Gateway.
        rule_check: Some(urlmap::rule_support),
    }
}

/// The GCP provider. Its flavour decides the capabilities it reports; `RenderContext::scheme`
/// (a flavour name, e.g. from GatewayClass parameters) picks the flavour at render time and
/// defaults to the provider's own.
pub struct GcpProvider {
    flavour: Flavour,
    caps: Capabilities,
}

impl GcpProvider {
    pub fn new(flavour: Flavour) -> Self {
        GcpProvider { flavour, caps: capabilities_for(flavour) }
    }

    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The flavour a context asks for (`RenderContext::scheme`), or the provider's own.
    pub fn flavour_for(&self, ctx: &RenderContext) -> Result<Flavour, RenderError> {
        if ctx.scheme.is_empty() {
            return Ok(self.flavour);
        }
        Flavour::parse(&ctx.scheme).ok_or_else(|| {
            unrenderable(format!(
                "unknown scheme {:?}; expected global-external-managed, regional-external-managed or regional-internal-managed",
                ctx.scheme
            ))
        })
    }
}

impl Default for GcpProvider {
    fn default() -> Self {
        GcpProvider::new(Flavour::default())
    }
}

impl Provider for GcpProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn render(&self, plan: &LoadBalancerPlan, ctx: &RenderContext) -> Result<cloudgate_provider::ResourceGraph, RenderError> {
        render::render(plan, ctx, self.flavour_for(ctx)?)
    }

    fn health_check_support(&self, hc: &cloudgate_provider::health::HealthCheck) -> Result<(), String> {
        policy::health_check_support(hc)
    }

    fn backend_settings_support(&self, s: &cloudgate_provider::backend::BackendSettings) -> Result<(), String> {
        policy::backend_settings_support(s)
    }
}

pub(crate) fn unrenderable(message: impl Into<String>) -> RenderError {
    RenderError::Unrenderable { provider: PROVIDER, message: message.into() }
}

#[cfg(test)]
mod tests;
