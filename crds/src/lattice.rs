//! VPC Lattice only policies, attached to a Gateway (the service network) or a route (a Lattice
//! service).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalPolicyTargetReference, PolicyStatus};

/// Sends the access logs of the targeted service network (Gateway) or Lattice service (route)
/// to S3, CloudWatch Logs or Kinesis Data Firehose (a Lattice access log subscription).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.cloudgate.io",
    version = "v1alpha1",
    kind = "LatticeAccessLogPolicy",
    plural = "latticeaccesslogpolicies",
    singular = "latticeaccesslogpolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    shortname = "lalpolicy",
    category = "cloudgate",
    label("gateway.networking.k8s.io/policy", "Direct"),
    doc = "LatticeAccessLogPolicy subscribes the targeted Gateway's service network or route's Lattice service to an access log destination (GEP-713 direct policy; aws-lattice provider only).",
    printcolumn(name = "Destination", type_ = "string", json_path = ".spec.destinationArn"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LatticeAccessLogPolicySpec {
    /// Gateways, HTTPRoutes or GRPCRoutes in this namespace.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        validation = Rule::new("self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'])").message("targetRefs must be Gateways, HTTPRoutes or GRPCRoutes (group gateway.networking.k8s.io)"),
        merge_strategy = ListMerge::Map(vec!["group".into(), "kind".into(), "name".into()])
    )]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    /// ARN of an S3 bucket, CloudWatch Logs log group or Kinesis Data Firehose delivery stream.
    #[schemars(length(min = 20, max = 2048), pattern(r"^arn:aws[a-z-]*:(s3|logs|firehose):[a-z0-9-]*:[0-9]{0,12}:.+$"))]
    pub destination_arn: String,
}

/// Lattice auth type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LatticeAuthType {
    #[serde(rename = "AWS_IAM")]
    AwsIam,
    #[serde(rename = "NONE")]
    None,
}

/// Sets the auth type (and IAM auth policy) of the targeted service network (Gateway) or Lattice
/// service (route).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.cloudgate.io",
    version = "v1alpha1",
    kind = "LatticeAuthPolicy",
    plural = "latticeauthpolicies",
    singular = "latticeauthpolicy",
    namespaced,
    status = "PolicyStatus",
    derive = "PartialEq",
    shortname = "lapolicy",
    category = "cloudgate",
    label("gateway.networking.k8s.io/policy", "Direct"),
    doc = "LatticeAuthPolicy sets the auth type and IAM auth policy of the targeted Gateway's service network or route's Lattice service (GEP-713 direct policy; aws-lattice provider only).",
    printcolumn(name = "Auth", type_ = "string", json_path = ".spec.authType"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.authType == 'AWS_IAM' || !has(self.policy)").message("policy needs authType AWS_IAM").field_path(".policy"))]
pub struct LatticeAuthPolicySpec {
    /// Gateways, HTTPRoutes or GRPCRoutes in this namespace.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(
        validation = Rule::new("self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'])").message("targetRefs must be Gateways, HTTPRoutes or GRPCRoutes (group gateway.networking.k8s.io)"),
        merge_strategy = ListMerge::Map(vec!["group".into(), "kind".into(), "name".into()])
    )]
    pub target_refs: Vec<LocalPolicyTargetReference>,
    pub auth_type: LatticeAuthType,
    /// IAM auth policy document (JSON, at most 10 KiB as Lattice allows). Only with AWS_IAM;
    /// without it an AWS_IAM target denies every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 10240))]
    #[x_kube(validation = Rule::new(r"self.matches('^\\s*\\{[\\s\\S]*\\}\\s*$')").message("policy must be a JSON object (an IAM policy document)"))]
    pub policy: Option<String>,
}
