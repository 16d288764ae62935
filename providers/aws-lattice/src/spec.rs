//! Desired specs of the Lattice resources, field for field as the VPC Lattice API names them
//! (camelCase), so the apply layer can pass them to the SDK and `observe` can read them back in
//! the same shape for the diff.
//!
//! Convention: every `*Identifier` field holds the cloud *name* of another resource in the
//! same graph (service network, service, listener, target group). Render cannot know ids or
//! ARNs; apply resolves names to ids before calling the API, and observe maps ids back to names.
//! Optional fields are omitted when unset, which the diff reads as "don't care".

use serde::{Deserialize, Serialize};

/// Lattice IAM auth off (the default, and without a LatticeAuthPolicy).
pub const AUTH_TYPE_NONE: &str = "NONE";
/// Lattice IAM auth on: requests are signed and checked against the auth policy.
pub const AUTH_TYPE_AWS_IAM: &str = "AWS_IAM";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkSpec {
    pub name: String,
    pub auth_type: String,
    /// The IAM auth policy (compact JSON), `""` for none. Only with auth type AWS_IAM; with
    /// NONE it is omitted ("don't care"): Lattice ignores a policy then, and observe does not
    /// read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_policy: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkVpcAssociationSpec {
    pub service_network_identifier: String,
    pub vpc_identifier: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_domain_name: Option<String>,
    pub auth_type: String,
    /// As [`ServiceNetworkSpec::auth_policy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_policy: Option<String>,
}

/// An access log subscription of a service network or service. Lattice takes one per
/// destination type (S3, CloudWatch Logs, Firehose) per resource, so the type is part of the
/// subscription's identity and the destination within a type is updated in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSubscriptionSpec {
    /// Name of the service network or service (see the module convention).
    pub resource_identifier: String,
    pub destination_arn: String,
}

/// The auth type and policy fields of a service network or service for `auth`.
pub fn auth_fields(auth: Option<&cloudgate_provider::access::IamAuth>) -> (String, Option<String>) {
    match auth {
        None => (AUTH_TYPE_NONE.into(), None),
        Some(a) => (AUTH_TYPE_AWS_IAM.into(), Some(a.policy.as_deref().map(compact_json).unwrap_or_default())),
    }
}

/// A JSON document in one canonical form (compact, keys sorted), so the policy written and the
/// policy read back compare equal whatever whitespace either side used. Not JSON: kept as is.
pub fn compact_json(doc: &str) -> String {
    serde_json::from_str::<serde_json::Value>(doc).map(|v| v.to_string()).unwrap_or_else(|_| doc.to_string())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkServiceAssociationSpec {
    pub service_identifier: String,
    pub service_network_identifier: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ListenerProtocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    #[serde(rename = "TLS_PASSTHROUGH")]
    TlsPassthrough,
}

impl ListenerProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Http => "HTTP",
            ListenerProtocol::Https => "HTTPS",
            ListenerProtocol::TlsPassthrough => "TLS_PASSTHROUGH",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    pub name: String,
    pub service_identifier: String,
    pub protocol: ListenerProtocol,
    pub port: i32,
    pub default_action: RuleAction,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    pub name: String,
    pub service_identifier: String,
    pub listener_identifier: String,
    /// 1..=100, lower is evaluated first.
    pub priority: u32,
    #[serde(rename = "match")]
    pub match_: RuleMatch,
    pub action: RuleAction,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatch {
    pub http_match: HttpMatch,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_match: Option<PathMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Always written, also when empty: the diff compares arrays exactly, so a removed header
    /// match shows as a change (an omitted field would read as "don't care").
    #[serde(default)]
    pub header_matches: Vec<HeaderMatch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    #[serde(rename = "match")]
    pub match_: PathMatchType,
    pub case_sensitive: bool,
}

/// A Lattice union: exactly one member is set (`{"exact": "/a"}` or `{"prefix": "/a/"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatchType {
    Exact(String),
    Prefix(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    pub name: String,
    #[serde(rename = "match")]
    pub match_: HeaderMatchType,
    pub case_sensitive: bool,
}

/// Lattice also has `prefix` and `contains`; Gateway API header matches are `Exact` or
/// `RegularExpression` only, and regex is not claimed, so `exact` is all render ever emits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderMatchType {
    Exact(String),
}

/// A Lattice union: `{"forward": {...}}` or `{"fixedResponse": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleAction {
    Forward(ForwardAction),
    FixedResponse(FixedResponseAction),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardAction {
    pub target_groups: Vec<WeightedTargetGroup>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTargetGroup {
    pub target_group_identifier: String,
    /// 0..=999.
    pub weight: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixedResponseAction {
    pub status_code: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TargetGroupProtocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    /// What TLS_PASSTHROUGH listeners must forward to.
    #[serde(rename = "TCP")]
    Tcp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProtocolVersion {
    #[serde(rename = "HTTP1")]
    Http1,
    #[serde(rename = "HTTP2")]
    Http2,
    #[serde(rename = "GRPC")]
    Grpc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IpAddressType {
    #[serde(rename = "IPV4")]
    Ipv4,
    #[serde(rename = "IPV6")]
    Ipv6,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupSpec {
    pub name: String,
    /// Always `IP`: targets are pod IPs from EndpointSlices.
    #[serde(rename = "type")]
    pub type_: String,
    pub config: TargetGroupConfig,
    /// Registered targets, sorted. Not a CreateTargetGroup field: apply registers and
    /// deregisters the difference with RegisterTargets/DeregisterTargets.
    pub targets: Vec<Target>,
}

/// Everything here except `healthCheck` is immutable in Lattice; render keeps it stable (the
/// Service port, not endpoint ports) and puts the rest in the target group's name, so a change
/// yields a new target group rather than an impossible update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupConfig {
    pub port: i32,
    pub protocol: TargetGroupProtocol,
    /// Only for HTTP/HTTPS target groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<ProtocolVersion>,
    pub ip_address_type: IpAddressType,
    pub vpc_identifier: String,
    pub health_check: HealthCheckConfig,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckConfig {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TargetGroupProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<ProtocolVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_interval_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_timeout_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<Matcher>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub http_code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub port: i32,
}
