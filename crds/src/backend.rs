//! Policies attached to core Services: how the load balancer checks and talks to the backends
//! behind a Service port (ALB/Lattice target group settings, GCP backend service + health check).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalPolicyTargetReference, PolicyStatus};

/// Health check protocol. Not every cloud supports every one (ALB: HTTP, HTTPS, GRPC via the
/// matcher; Lattice: HTTP, HTTPS; GCP: all); what a cloud cannot do is reported on the policy's
/// `Accepted` condition, never silently changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HealthCheckProtocol {
    HTTP,
    HTTPS,
    HTTP2,
    GRPC,
    TCP,
}

/// Which responses count as healthy. Exactly one of `httpCodes` and `grpcCodes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.httpCodes) != has(self.grpcCodes)").message("set exactly one of httpCodes and grpcCodes"))]
pub struct HealthCheckMatcher {
    /// HTTP status codes, e.g. `200`, `200,204` or `200-399`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 64), pattern(r"^[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*$"))]
    pub http_codes: Option<String>,
    /// gRPC status codes, e.g. `0` or `0-99`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[0-9]{1,2}(-[0-9]{1,2})?(,[0-9]{1,2}(-[0-9]{1,2})?)*$"))]
    pub grpc_codes: Option<String>,
}

/// How the cloud load balancer checks the endpoints of the targeted Services. Unset fields keep
/// the cloud's default (documented per provider in docs/).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.cloudgate.io",
    version = "v1alpha1",
    kind = "HealthCheckPolicy",
    plural = "healthcheckpolicies",
    singular = "healthcheckpolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    shortname = "hcpolicy",
    category = "cloudgate",
    label("gateway.networking.k8s.io/policy", "Direct"),
    doc = "HealthCheckPolicy sets the cloud load balancer health check for the endpoints of the Services it targets (GEP-713 direct policy).",
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol"),
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.path"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.intervalSeconds) || !has(self.timeoutSeconds) || self.timeoutSeconds < self.intervalSeconds").message("timeoutSeconds must be less than intervalSeconds").field_path(".timeoutSeconds"))]
#[x_kube(validation = Rule::new("!has(self.path) || !has(self.protocol) || self.protocol != 'TCP'").message("path cannot be set for a TCP health check").field_path(".path"))]
#[x_kube(validation = Rule::new("!has(self.matcher) || !has(self.matcher.grpcCodes) || (has(self.protocol) && self.protocol == 'GRPC')").message("matcher.grpcCodes needs protocol GRPC").field_path(".matcher"))]
#[x_kube(validation = Rule::new("!has(self.matcher) || !has(self.protocol) || self.protocol != 'TCP'").message("a TCP health check has no matcher").field_path(".matcher"))]
pub struct HealthCheckPolicySpec {
    /// The Services (in this namespace) whose backends this health check applies to.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        validation = Rule::new("self.all(r, r.group == '' && r.kind == 'Service')").message("targetRefs must be core Services: group \"\" and kind Service"),
        merge_strategy = ListMerge::Map(vec!["group".into(), "kind".into(), "name".into()])
    )]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<HealthCheckProtocol>,
    /// Request path for HTTP, HTTPS, HTTP2 and GRPC checks; must start with `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), pattern(r"^/[A-Za-z0-9/\-._~%!$&'()*+,;=:@?]*$"))]
    pub path: Option<String>,
    /// Port to check; defaults to the port traffic goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Seconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 300))]
    pub interval_seconds: Option<i32>,
    /// Seconds to wait for an answer; must be less than intervalSeconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 120))]
    pub timeout_seconds: Option<i32>,
    /// Consecutive successes before an endpoint is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 10))]
    pub healthy_threshold: Option<i32>,
    /// Consecutive failures before an endpoint is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 10))]
    pub unhealthy_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matcher: Option<HealthCheckMatcher>,
}

/// Protocol the load balancer speaks to the backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BackendProtocolVersion {
    HTTP1,
    HTTP2,
    GRPC,
}

/// How requests are spread over endpoints. ALB: `round_robin`, `least_outstanding_requests`,
/// `weighted_random`; GCP `localityLbPolicy`: `ROUND_ROBIN`, `LEAST_REQUEST`, `RANDOM`; Lattice
/// has round robin only (anything else is reported as not accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LoadBalancingAlgorithm {
    RoundRobin,
    LeastRequest,
    Random,
}

/// Connection and balancing settings for the backends of the targeted Services.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.cloudgate.io",
    version = "v1alpha1",
    kind = "BackendPolicy",
    plural = "backendpolicies",
    singular = "backendpolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    shortname = "bepolicy",
    category = "cloudgate",
    label("gateway.networking.k8s.io/policy", "Direct"),
    doc = "BackendPolicy sets how the cloud load balancer talks to the endpoints of the Services it targets (GEP-713 direct policy).",
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocolVersion"),
    printcolumn(name = "Algorithm", type_ = "string", json_path = ".spec.algorithm"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.slowStartSeconds) || self.slowStartSeconds == 0 || !has(self.algorithm) || self.algorithm != 'LeastRequest'").message("slowStartSeconds cannot be combined with algorithm LeastRequest").field_path(".slowStartSeconds"))]
pub struct BackendPolicySpec {
    /// The Services (in this namespace) this policy applies to.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        validation = Rule::new("self.all(r, r.group == '' && r.kind == 'Service')").message("targetRefs must be core Services: group \"\" and kind Service"),
        merge_strategy = ListMerge::Map(vec!["group".into(), "kind".into(), "name".into()])
    )]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<BackendProtocolVersion>,
    /// Seconds a removed endpoint keeps serving in-flight requests (0..3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub deregistration_delay_seconds: Option<i32>,
    /// Seconds a new endpoint ramps up its share of traffic: 0 (off) or 30..900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 900))]
    #[x_kube(validation = Rule::new("self == 0 || self >= 30").message("slowStartSeconds must be 0 (off) or between 30 and 900"))]
    pub slow_start_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<LoadBalancingAlgorithm>,
}
