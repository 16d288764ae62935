//! Desired specs, one struct per Compute resource, with the field names of the compute.v1 REST
//! API (camelCase, `IPAddress`/`IPProtocol` spelled as the API spells them).
//!
//! Conventions that keep `diff::contains` (a subset comparison against what observe reads
//! back) from reporting changes that are not there:
//! - a field at its API default is left out rather than written (GCE may not echo it);
//! - empty lists are left out too. A list that *becomes* empty is still noticed: every kind
//!   whose lists can shrink (URL maps, backend services, health checks, firewalls) carries a
//!   hash of its whole spec in `description`, and the apply layer writes those kinds with a full
//!   `update` (PUT), so an absent list means an empty one;
//! - references to other resources are resource names; apply resolves them to selfLinks and
//!   observe maps selfLinks (and the forwarding rule's IP number) back to names;
//! - numbers the API types as `double` (percentages, rates) are written as integers so they
//!   compare equal to what the API returns.

use serde::Serialize;

/// `addresses` / `globalAddresses`. Ownership is in labels (Address supports them).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpec {
    /// `EXTERNAL` or `INTERNAL`.
    pub address_type: &'static str,
    /// A specific IP (Gateway `spec.addresses` of type IPAddress on the internal flavour);
    /// absent: Google picks one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Absent for global resources; apply picks the collection from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnetwork: Option<String>,
    /// `SHARED_LOADBALANCER_VIP` for internal addresses: the HTTP and HTTPS forwarding rules
    /// of one Gateway share the IP, which internal addresses only allow with this purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<&'static str>,
    pub description: String,
}

/// `healthChecks` / `regionHealthChecks`. Exactly one probe block is set, the one `type`
/// names (`TCP` -> `tcpHealthCheck`, `HTTP` -> `httpHealthCheck`, ...). Interval, timeout and
/// thresholds are left out at Compute's defaults (5 s, 5 s, 2, 2); the full `update` that
/// writes a changed check puts them back there when a HealthCheckPolicy goes.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    #[serde(rename = "type")]
    pub type_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_interval_sec: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_sec: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_health_check: Option<HealthCheckProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_health_check: Option<HealthCheckProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_health_check: Option<HealthCheckProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_health_check: Option<HealthCheckProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_health_check: Option<HealthCheckProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub description: String,
}

/// The protocol-specific block of a health check (`TCPHealthCheck`, `HTTPHealthCheck`, ...).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckProbe {
    /// `USE_SERVING_PORT` (each NEG endpoint's own port) or `USE_FIXED_PORT` with `port`.
    pub port_specification: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP, HTTPS and HTTP2 checks only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_path: Option<String>,
}

/// `networkEndpointGroups` (zonal). `endpoints` is not a field of the NEG resource: it is the
/// attached endpoint set (`listNetworkEndpoints`), which apply reconciles with
/// `attachNetworkEndpoints` / `detachNetworkEndpoints`. Observe must report it sorted the same
/// way (by ipAddress, then port).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkEndpointGroupSpec {
    pub zone: String,
    pub network_endpoint_type: &'static str,
    pub network: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnetwork: Option<String>,
    pub description: String,
    pub endpoints: Vec<NetworkEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkEndpoint {
    pub ip_address: String,
    pub port: i32,
}

/// `backendServices` / `regionBackendServices`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendServiceSpec {
    pub load_balancing_scheme: &'static str,
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<String>,
    /// BackendPolicy `deregistrationDelaySeconds`; absent at Compute's default, 0 (off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_draining: Option<ConnectionDraining>,
    /// BackendPolicy `algorithm`; absent at Compute's default, `ROUND_ROBIN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_lb_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub description: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDraining {
    pub draining_timeout_sec: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// NEG name (zonal; apply finds the zone on the NEG's own spec).
    pub group: String,
    pub balancing_mode: &'static str,
    pub max_rate_per_endpoint: u64,
}

/// `urlMaps` / `regionUrlMaps`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlMapSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub default_route_action: RouteAction,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_rules: Vec<HostRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path_matchers: Vec<PathMatcher>,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostRule {
    pub hosts: Vec<String>,
    pub path_matcher: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatcher {
    pub name: String,
    pub default_route_action: RouteAction,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route_rules: Vec<RouteRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    pub priority: u32,
    /// Which route rule this came from, for people reading the URL map in the console.
    pub description: String,
    pub match_rules: Vec<MatchRule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_action: Option<RouteAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_redirect: Option<UrlRedirect>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_action: Option<HeaderAction>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_path_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_template_match: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub header_matches: Vec<HeaderMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_parameter_matches: Vec<QueryParameterMatch>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    pub header_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex_match: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryParameterMatch {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex_match: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteAction {
    pub weighted_backend_services: Vec<WeightedBackendService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_mirror_policy: Option<RequestMirrorPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_injection_policy: Option<FaultInjectionPolicy>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedBackendService {
    pub backend_service: String,
    pub weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_action: Option<HeaderAction>,
}

/// At most one of the path rewrites is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<String>,
    /// Replaces the matched part of the path: the prefix of a `prefixMatch`, the whole path of
    /// a `fullPathMatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix_rewrite: Option<String>,
    /// The new path for a `pathTemplateMatch` (here always a literal: the whole path replaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_template_rewrite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex_rewrite: Option<RegexRewrite>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegexRewrite {
    pub path_pattern: String,
    pub path_substitution: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirrorPolicy {
    pub backend_service: String,
    /// Absent: every request is mirrored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
}

/// google.protobuf.Duration as the REST API carries it (`seconds` is an int64 string).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Duration {
    pub seconds: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub nanos: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultInjectionPolicy {
    pub abort: FaultAbort,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    pub http_status: u16,
    pub percentage: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRedirect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_redirect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_redirect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_redirect: Option<String>,
    /// Only ever `Some(true)`: false is the API default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    pub redirect_response_code: &'static str,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderAction {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderOption>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_add: Vec<HeaderOption>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers_to_remove: Vec<String>,
}

impl HeaderAction {
    pub fn is_empty(&self) -> bool {
        self.request_headers_to_add.is_empty()
            && self.request_headers_to_remove.is_empty()
            && self.response_headers_to_add.is_empty()
            && self.response_headers_to_remove.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOption {
    pub header_name: String,
    pub header_value: String,
    /// true: `set` (replace existing values); false: `add` (append).
    pub replace: bool,
}

/// `sslCertificates` / `regionSslCertificates`. The PEM is deliberately not here: specs are
/// printed by `cloudgate plan` and logged, and the private key must never be. Apply reads the
/// PEM from the plan's [`cloudgate_translate::plan::Certificate`] (found by `secret` and
/// `certificateSha256`). Certificates are immutable in Compute; the name carries the sha256,
/// so new content means a new certificate, created before the proxy moves to it and deleted
/// after. Observe takes `secret` and `certificateSha256` from the ownership description.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SslCertificateSpec {
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `namespace/name` of the Secret.
    pub secret: String,
    pub certificate_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub description: String,
}

/// `targetHttpProxies` / `regionTargetHttpProxies`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHttpProxySpec {
    pub url_map: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub description: String,
}

/// `targetHttpsProxies` / `regionTargetHttpsProxies`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHttpsProxySpec {
    pub url_map: String,
    /// The first is served to clients without SNI; GCE picks by SNI among the rest.
    pub ssl_certificates: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub description: String,
}

/// `globalForwardingRules` / `forwardingRules`. Ownership is in labels (supported here).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingRuleSpec {
    /// Name of the owned Address, a user's reserved address name (NamedAddress), or an IP
    /// literal (IPAddress on the external flavours). The API reads back the IP number; observe
    /// maps it back to the name it was given.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPProtocol")]
    pub ip_protocol: &'static str,
    /// `80-80`: the form the API reports a single port in.
    pub port_range: String,
    /// Target proxy name.
    pub target: String,
    pub load_balancing_scheme: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnetwork: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `firewalls`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallSpec {
    pub network: String,
    pub direction: &'static str,
    pub priority: u32,
    pub source_ranges: Vec<&'static str>,
    pub allowed: Vec<FirewallAllowed>,
    pub description: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct FirewallAllowed {
    #[serde(rename = "IPProtocol")]
    pub ip_protocol: &'static str,
    pub ports: Vec<String>,
}
