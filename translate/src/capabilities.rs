//! What a provider can express. Translation consults this so that anything a provider cannot
//! build becomes an honest condition on the object, never a silently dropped field.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::plan::{ListenerPlan, PlanRule};

/// Gateway API feature names (conformance `SupportedFeature`s, v1.5.1) plus a few
/// finer-grained capabilities that have no feature name of their own.
pub mod feature {
    pub const GATEWAY: &str = "Gateway";
    pub const GATEWAY_PORT_8080: &str = "GatewayPort8080";
    pub const GATEWAY_STATIC_ADDRESSES: &str = "GatewayStaticAddresses";
    pub const GATEWAY_HTTP_LISTENER_ISOLATION: &str = "GatewayHTTPListenerIsolation";
    pub const GATEWAY_INFRASTRUCTURE_PROPAGATION: &str = "GatewayInfrastructurePropagation";
    pub const REFERENCE_GRANT: &str = "ReferenceGrant";
    pub const HTTP_ROUTE: &str = "HTTPRoute";
    pub const HTTP_ROUTE_QUERY_PARAM_MATCHING: &str = "HTTPRouteQueryParamMatching";
    pub const HTTP_ROUTE_METHOD_MATCHING: &str = "HTTPRouteMethodMatching";
    pub const HTTP_ROUTE_RESPONSE_HEADER_MODIFICATION: &str = "HTTPRouteResponseHeaderModification";
    pub const HTTP_ROUTE_BACKEND_REQUEST_HEADER_MODIFICATION: &str = "HTTPRouteBackendRequestHeaderModification";
    pub const HTTP_ROUTE_PORT_REDIRECT: &str = "HTTPRoutePortRedirect";
    pub const HTTP_ROUTE_SCHEME_REDIRECT: &str = "HTTPRouteSchemeRedirect";
    pub const HTTP_ROUTE_PATH_REDIRECT: &str = "HTTPRoutePathRedirect";
    pub const HTTP_ROUTE_303_REDIRECT: &str = "HTTPRoute303RedirectStatusCode";
    pub const HTTP_ROUTE_307_REDIRECT: &str = "HTTPRoute307RedirectStatusCode";
    pub const HTTP_ROUTE_308_REDIRECT: &str = "HTTPRoute308RedirectStatusCode";
    pub const HTTP_ROUTE_HOST_REWRITE: &str = "HTTPRouteHostRewrite";
    pub const HTTP_ROUTE_PATH_REWRITE: &str = "HTTPRoutePathRewrite";
    pub const HTTP_ROUTE_REQUEST_MIRROR: &str = "HTTPRouteRequestMirror";
    pub const HTTP_ROUTE_REQUEST_MULTIPLE_MIRRORS: &str = "HTTPRouteRequestMultipleMirrors";
    pub const HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR: &str = "HTTPRouteRequestPercentageMirror";
    pub const HTTP_ROUTE_REQUEST_TIMEOUT: &str = "HTTPRouteRequestTimeout";
    pub const HTTP_ROUTE_BACKEND_TIMEOUT: &str = "HTTPRouteBackendTimeout";
    pub const HTTP_ROUTE_PARENT_REF_PORT: &str = "HTTPRouteParentRefPort";
    pub const HTTP_ROUTE_NAMED_ROUTE_RULE: &str = "HTTPRouteNamedRouteRule";
    pub const HTTP_ROUTE_CORS: &str = "HTTPRouteCORS";
    pub const HTTP_ROUTE_RETRY: &str = "HTTPRouteRetry";
    pub const HTTP_ROUTE_SESSION_PERSISTENCE: &str = "HTTPRouteSessionPersistence";
    pub const GRPC_ROUTE: &str = "GRPCRoute";
    pub const TLS_ROUTE: &str = "TLSRoute";
    pub const TLS_ROUTE_MODE_TERMINATE: &str = "TLSRouteModeTerminate";
    pub const TCP_ROUTE: &str = "TCPRoute";
    pub const BACKEND_TLS_POLICY: &str = "BackendTLSPolicy";

    // Finer-grained, cloudgate-only capability names (never reported in supportedFeatures).
    pub const REQUEST_HEADER_MODIFICATION: &str = "cloudgate/RequestHeaderModification";
    pub const HEADER_REGEX_MATCHING: &str = "cloudgate/HeaderRegexMatching";
    pub const PATH_REGEX_MATCHING: &str = "cloudgate/PathRegexMatching";
    pub const QUERY_REGEX_MATCHING: &str = "cloudgate/QueryRegexMatching";
    pub const TLS_PASSTHROUGH: &str = "cloudgate/TLSPassthrough";
    pub const REQUEST_REDIRECT: &str = "cloudgate/RequestRedirect";
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    #[serde(rename = "TLS")]
    Tls,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            "TLS" => Protocol::Tls,
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            _ => return None,
        })
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tls => "TLS",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// A provider's verdict on one plan rule as it would be built on one listener: `Err(why)` when
/// the pair cannot be expressed. Feature names cannot say this, because the answer depends on
/// the listener (GCP: a redirect to `http` is expressible on an HTTP listener, not on an HTTPS
/// one) or on values of the rule (GCP: a full-path rewrite under a prefix that contains
/// path-template operators). Without it such a rule could only fail the provider's render, and
/// so the whole Gateway; with it, translation drops just that rule on just that listener and
/// reports it on the route (see `gateway::translate_gateway`).
///
/// A plain function of its arguments (a provider must not need I/O or state to answer), so
/// `Capabilities` stays plain data that any crate can build and copy.
pub type RuleCheck = fn(&ListenerPlan, &PlanRule) -> Result<(), String>;

#[derive(Clone, Debug, Serialize)]
pub struct Capabilities {
    /// Provider name as used on the command line (`aws-alb`, `aws-lattice`, `gcp`).
    pub provider: &'static str,
    pub protocols: BTreeSet<Protocol>,
    /// Gateway API and cloudgate feature names this provider implements.
    pub features: BTreeSet<&'static str>,
    /// Largest backend weight the provider accepts; plan weights are scaled into 0..=max.
    pub max_weight: u32,
    /// Listener ports the provider cannot bind (e.g. reserved by the platform).
    pub reserved_ports: BTreeSet<i32>,
    /// Most backends in one weighted forward action.
    pub max_backends_per_rule: usize,
    /// Per (listener, rule) checks beyond feature names; `None` when the features say it all.
    /// Not serialised: a function is not a capability anyone reads from output.
    #[serde(skip)]
    pub rule_check: Option<RuleCheck>,
}

impl Capabilities {
    pub fn supports(&self, feature: &str) -> bool {
        self.features.contains(feature)
    }

    pub fn supports_protocol(&self, p: &Protocol) -> bool {
        self.protocols.contains(p)
    }

    /// The sorted list for `GatewayClass.status.supportedFeatures`: only real Gateway API
    /// feature names, never cloudgate's internal ones.
    pub fn supported_features(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.features.iter().filter(|f| !f.starts_with("cloudgate/")).map(|f| f.to_string()).collect();
        v.sort();
        v
    }

    /// Route kinds this provider can attach, in the order `supportedKinds` lists them.
    pub fn route_kinds_for(&self, protocol: &Protocol) -> Vec<crate::model::RouteKind> {
        use crate::model::RouteKind;
        let mut kinds = Vec::new();
        match protocol {
            Protocol::Http | Protocol::Https => {
                if self.supports(feature::HTTP_ROUTE) {
                    kinds.push(RouteKind::Http);
                }
                if self.supports(feature::GRPC_ROUTE) {
                    kinds.push(RouteKind::Grpc);
                }
            }
            Protocol::Tls => {
                if self.supports(feature::TLS_ROUTE) {
                    kinds.push(RouteKind::Tls);
                }
            }
            Protocol::Tcp => {
                if self.supports(feature::TCP_ROUTE) {
                    kinds.push(RouteKind::Tcp);
                }
            }
            Protocol::Udp => {}
        }
        kinds
    }
}
