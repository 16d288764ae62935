//! `CloudGatewayParameters`: what a GatewayClass's `parametersRef` points at. It says which cloud
//! and where; every Gateway of that class is provisioned with these settings.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which cloud load balancer a Gateway of this class becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CloudProvider {
    #[serde(rename = "aws-alb")]
    AwsAlb,
    #[serde(rename = "aws-lattice")]
    AwsLattice,
    #[serde(rename = "gcp")]
    Gcp,
}

/// Whether cloudgate creates the Lattice service network or adopts an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceNetworkMode {
    /// cloudgate creates (and on Gateway deletion deletes) a service network per Gateway.
    Create,
    /// cloudgate associates its services with an existing service network it never deletes.
    Adopt,
}

/// The VPC Lattice service network behind a Gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'Adopt' || has(self.name)").message("serviceNetwork.mode Adopt needs serviceNetwork.name (the service network to adopt)").field_path(".name"))]
pub struct ServiceNetwork {
    pub mode: ServiceNetworkMode,
    /// Name (or id/ARN when adopting) of the service network. With `Create` it defaults to a name
    /// derived from the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 2048))]
    pub name: Option<String>,
}

/// Cloud settings for every Gateway of the GatewayClass whose `parametersRef` names this object
/// (group gateway.cloudgate.io, kind CloudGatewayParameters; cluster-scoped, so no namespace).
/// Unset fields fall back to the controller's flags (--region, --vpc-id, --subnets, --scheme).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.cloudgate.io",
    version = "v1alpha1",
    kind = "CloudGatewayParameters",
    plural = "cloudgatewayparameters",
    singular = "cloudgatewayparameters",
    derive = "PartialEq",
    shortname = "cgparams",
    category = "cloudgate",
    doc = "CloudGatewayParameters is the GatewayClass parametersRef target of cloudgate: which cloud load balancer a Gateway of the class becomes, and where.",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Network", type_ = "string", json_path = ".spec.network"),
    printcolumn(name = "Scheme", type_ = "string", json_path = ".spec.scheme"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.provider != 'aws-alb' || (has(self.subnets) && size(self.subnets) >= 2)").message("provider aws-alb needs subnets: at least two, in different Availability Zones").field_path(".subnets"))]
#[x_kube(validation = Rule::new("self.provider != 'aws-lattice' || !has(self.subnets)").message("provider aws-lattice takes no subnets (Lattice is reached through the VPC association)").field_path(".subnets"))]
#[x_kube(validation = Rule::new("self.provider == 'gcp' || !has(self.subnets) || self.subnets.all(s, s.matches('^subnet-[0-9a-f]{8,17}$'))").message("AWS subnets are subnet ids (subnet-0123abcd...)").field_path(".subnets"))]
#[x_kube(validation = Rule::new("self.provider == 'gcp' || !has(self.network) || self.network.matches('^vpc-[0-9a-f]{8,17}$')").message("for AWS providers network is a VPC id (vpc-0123abcd...)").field_path(".network"))]
#[x_kube(validation = Rule::new("!has(self.scheme) || (self.provider == 'aws-alb' && self.scheme in ['internet-facing', 'internal']) || (self.provider == 'gcp' && self.scheme in ['global-external-managed', 'regional-external-managed', 'regional-internal-managed'])").message("scheme is internet-facing or internal for aws-alb; global-external-managed, regional-external-managed or regional-internal-managed for gcp; aws-lattice takes none").field_path(".scheme"))]
#[x_kube(validation = Rule::new("!has(self.serviceNetwork) || self.provider == 'aws-lattice'").message("serviceNetwork is only for provider aws-lattice").field_path(".serviceNetwork"))]
#[x_kube(validation = Rule::new("!has(self.project) || self.provider == 'gcp'").message("project is only for provider gcp").field_path(".project"))]
#[x_kube(validation = Rule::new("self.provider != 'gcp' || !has(self.defaultTags) || self.defaultTags.all(k, k.matches('^[a-z][a-z0-9_-]{0,62}$') && self.defaultTags[k].matches('^[a-z0-9_-]{0,63}$'))").message("GCP labels: keys start with a lowercase letter; keys and values use lowercase letters, digits, _ and -, at most 63 characters").field_path(".defaultTags"))]
pub struct CloudGatewayParametersSpec {
    /// The cloud load balancer; cannot change once set (the old cloud's resources would be left
    /// behind): create another CloudGatewayParameters and GatewayClass instead.
    #[x_kube(validation = Rule::new("self == oldSelf").message("provider is immutable"))]
    pub provider: CloudProvider,
    /// AWS or GCP region (e.g. us-east-1, europe-west1). Defaults to the controller's --region.
    /// Global GCP load balancers ignore it except for NEG zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), pattern(r"^[a-z]+(-[a-z]+)*-?[0-9]+$"))]
    pub region: Option<String>,
    /// GCP project id. Defaults to the controller's project (from its credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 6, max = 30), pattern(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"))]
    pub project: Option<String>,
    /// AWS: the VPC id. GCP: the VPC network name or URL. Defaults to the controller's --vpc-id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub network: Option<String>,
    /// AWS ALB: subnet ids (at least two Availability Zones). GCP regional internal: the
    /// subnetwork of the forwarding rule (name or URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 1024)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub subnets: Option<Vec<String>>,
    /// aws-alb: internet-facing (default) or internal. gcp: global-external-managed (default),
    /// regional-external-managed or regional-internal-managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub scheme: Option<String>,
    /// aws-lattice: create a service network per Gateway (default) or adopt an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_network: Option<ServiceNetwork>,
    /// Tags (AWS) or labels (GCP) added to every cloud resource, besides cloudgate's ownership
    /// tags (`cloudgate.io/*`), which these cannot override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 128 && size(self[k]) <= 256 && !k.startsWith('cloudgate.io/') && !k.startsWith('cloudgate-') && !k.startsWith('aws:'))").message("tag keys are at most 128 characters, values at most 256; keys cannot start with cloudgate.io/ (AWS), cloudgate- (GCP) or aws:"))]
    pub default_tags: Option<BTreeMap<String, String>>,
}
