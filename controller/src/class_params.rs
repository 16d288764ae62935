//! Where a GatewayClass's Gateways go: the class's `parametersRef` (a `CloudGatewayParameters`)
//! over the controller's flags. Pure: the controller resolves a class on every reconcile from
//! what its index holds, so editing the parameters re-provisions that class's Gateways.
//!
//! A class whose parameters cannot be used (wrong kind, not found, settings missing for its
//! provider) is `Accepted=False` with reason `InvalidParameters` and the message returned here,
//! and its Gateways are not provisioned.

use std::collections::BTreeMap;

use cloudgate_crds::parameters::{CloudGatewayParametersSpec, CloudProvider, ServiceNetworkMode};
use cloudgate_provider::{Capabilities, RenderContext};
use gateway_api::experimental::gatewayclasses::GatewayClass;

use crate::config::ControllerArgs;

pub const PARAMETERS_GROUP: &str = "gateway.cloudgate.io";
pub const PARAMETERS_KIND: &str = "CloudGatewayParameters";

/// Which cloud client a class needs. Classes sharing one share the client (rate limiter, call
/// counter, caches). AWS clients are per region; the GCP client serves every project and
/// region (they are in each request's path).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub provider: &'static str,
    /// AWS region; empty for GCP, and for AWS when the SDK's default chain decides.
    pub region: String,
}

/// Where a Gateway's cloud resources live: what observe needs to find them again. Recorded on
/// the Gateway (annotation [`PLACEMENT_ANNOTATION`]) when cloudgate takes it over, so that if
/// the class or its parameters later point elsewhere, the old resources are removed through the
/// client and scope that created them instead of being leaked, and a Gateway whose class is
/// gone can still be cleaned up.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    pub provider: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_network: Option<String>,
}

pub const PLACEMENT_ANNOTATION: &str = "cloudgate.io/placement";

impl Placement {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(s: &str) -> Option<Placement> {
        serde_json::from_str::<Placement>(s).ok().filter(|p| provider_name(&p.provider).is_some())
    }

    /// Settings good enough to find and delete what was placed here (subnets and default tags
    /// play no part in that).
    pub fn settings(&self, cluster_id: &str) -> Option<ClassSettings> {
        let provider = provider_name(&self.provider)?;
        Some(ClassSettings {
            backend: BackendKey { provider, region: if provider == "gcp" { String::new() } else { self.region.clone() } },
            render: RenderContext {
                cluster_id: cluster_id.to_string(),
                region: self.region.clone(),
                network: self.network.clone(),
                scheme: self.scheme.clone(),
                project: self.project.clone(),
                service_network: self.service_network.clone(),
                ..Default::default()
            },
        })
    }
}

fn provider_name(p: &str) -> Option<&'static str> {
    crate::providers::NAMES.iter().copied().find(|n| *n == p)
}

/// Everything a Gateway of one class is provisioned with.
#[derive(Clone, Debug)]
pub struct ClassSettings {
    pub backend: BackendKey,
    pub render: RenderContext,
}

impl ClassSettings {
    /// What the class's provider (and GCP flavour) can express: translation checks routes
    /// against it, and the class's `supportedFeatures` lists it.
    pub fn capabilities(&self) -> Capabilities {
        capabilities(self.backend.provider, &self.render.scheme)
    }

    pub fn placement(&self) -> Placement {
        let r = &self.render;
        Placement {
            provider: self.backend.provider.to_string(),
            region: r.region.clone(),
            project: r.project.clone(),
            scheme: r.scheme.clone(),
            network: r.network.clone(),
            service_network: r.service_network.clone(),
        }
    }
}

pub fn capabilities(provider: &str, scheme: &str) -> Capabilities {
    match provider {
        "aws-lattice" => cloudgate_aws_lattice::capabilities(),
        "gcp" => cloudgate_gcp::capabilities_for(cloudgate_gcp::Flavour::parse(scheme).unwrap_or_default()),
        _ => cloudgate_aws_alb::capabilities(),
    }
}

/// The settings of a class without parameters: the flags alone.
pub fn flag_settings(args: &ControllerArgs) -> Result<ClassSettings, String> {
    let class = GatewayClass::new("", gateway_api::experimental::gatewayclasses::GatewayClassSpec {
        controller_name: args.controller_name.clone(),
        parameters_ref: None,
        description: None,
    });
    resolve(args, &class, None)
}

/// Resolves `class` against `parameters` (every CloudGatewayParameters the controller sees,
/// by name; `None` when the CRD is not installed) and the flags in `args`.
pub fn resolve(
    args: &ControllerArgs,
    class: &GatewayClass,
    parameters: Option<&BTreeMap<String, CloudGatewayParametersSpec>>,
) -> Result<ClassSettings, String> {
    let spec = match &class.spec.parameters_ref {
        None => None,
        Some(r) => {
            if r.group != PARAMETERS_GROUP || r.kind != PARAMETERS_KIND {
                return Err(format!(
                    "parametersRef {}/{} {}: cloudgate takes parameters of kind {PARAMETERS_KIND} (group {PARAMETERS_GROUP}) only",
                    r.group, r.kind, r.name
                ));
            }
            if r.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
                return Err(format!("parametersRef {}: {PARAMETERS_KIND} is cluster-scoped; remove parametersRef.namespace", r.name));
            }
            let Some(all) = parameters else {
                return Err(format!("parametersRef {}: the {PARAMETERS_KIND} CRD is not installed (install crds/)", r.name));
            };
            match all.get(&r.name) {
                Some(s) => Some((r.name.as_str(), s)),
                None => return Err(format!("parametersRef {}: {PARAMETERS_KIND} {} not found", r.name, r.name)),
            }
        }
    };
    let from_params = spec.is_some();
    let spec = spec.map(|(_, s)| s);
    let provider: &'static str = match spec.map(|s| s.provider) {
        Some(CloudProvider::AwsAlb) => "aws-alb",
        Some(CloudProvider::AwsLattice) => "aws-lattice",
        Some(CloudProvider::Gcp) => "gcp",
        None => provider_name(&args.provider).ok_or_else(|| format!("--provider {} is unknown", args.provider))?,
    };
    let pick = |p: Option<&String>, flag: &str| p.filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| flag.to_string());
    let region = pick(spec.and_then(|s| s.region.as_ref()), args.region.as_deref().unwrap_or(""));
    let network = pick(spec.and_then(|s| s.network.as_ref()), &args.vpc_id);
    let subnets = spec.and_then(|s| s.subnets.clone()).filter(|s| !s.is_empty()).unwrap_or_else(|| args.subnets.clone());
    let project = pick(spec.and_then(|s| s.project.as_ref()), &args.gcp_project);
    // Flags carry one --scheme for whichever provider runs by default; it only applies to a
    // class of that provider.
    let flag_scheme = if provider == args.provider { args.scheme.as_str() } else { "" };
    let scheme = pick(spec.and_then(|s| s.scheme.as_ref()), flag_scheme);
    let default_tags = spec.and_then(|s| s.default_tags.clone()).unwrap_or_default();
    let whence = |what: &str, flag: &str| {
        if from_params { format!("set spec.{what} in the class's {PARAMETERS_KIND} or the controller's {flag}") } else { format!("set the controller's {flag} or give the class a {PARAMETERS_KIND} parametersRef") }
    };

    let mut adopt = None;
    let scheme = match provider {
        "aws-alb" => {
            if network.is_empty() {
                return Err(format!("aws-alb needs a VPC: {}", whence("network", "--vpc-id")));
            }
            if subnets.len() < 2 {
                return Err(format!("aws-alb needs at least two subnets in different Availability Zones: {}", whence("subnets", "--subnets")));
            }
            match scheme.as_str() {
                "" => "internet-facing".to_string(),
                "internet-facing" | "internal" => scheme,
                other => return Err(format!("scheme {other:?}: aws-alb takes internet-facing or internal")),
            }
        }
        "aws-lattice" => {
            if network.is_empty() {
                return Err(format!("aws-lattice needs the VPC to associate the service network with: {}", whence("network", "--vpc-id")));
            }
            if let Some(sn) = spec.and_then(|s| s.service_network.as_ref()) {
                if sn.mode == ServiceNetworkMode::Adopt {
                    adopt = Some(sn.name.clone().filter(|n| !n.is_empty()).ok_or("serviceNetwork.mode Adopt needs serviceNetwork.name")?);
                }
            }
            String::new()
        }
        _ => {
            if project.is_empty() {
                return Err(format!("gcp needs a project: {}", whence("project", "--gcp-project")));
            }
            let flavour = match scheme.as_str() {
                "" | "internet-facing" => cloudgate_gcp::Flavour::default(),
                s => cloudgate_gcp::Flavour::parse(s).ok_or_else(|| {
                    format!("scheme {s:?}: gcp takes global-external-managed, regional-external-managed or regional-internal-managed")
                })?,
            };
            if flavour.regional() && region.is_empty() {
                return Err(format!("the {} flavour needs a region: {}", flavour.as_str(), whence("region", "--region")));
            }
            flavour.as_str().to_string()
        }
    };
    let backend = BackendKey { provider, region: if provider == "gcp" { String::new() } else { region.clone() } };
    Ok(ClassSettings {
        backend,
        render: RenderContext { cluster_id: args.cluster_id.clone(), region, network, subnets, scheme, project, default_tags, service_network: adopt, ..Default::default() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use cloudgate_crds::parameters::ServiceNetwork;
    use gateway_api::experimental::gatewayclasses::{GatewayClassParametersRef, GatewayClassSpec};

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ControllerArgs,
    }

    fn args(extra: &[&str]) -> ControllerArgs {
        T::try_parse_from(["x", "--cluster-id", "c1"].into_iter().chain(extra.iter().copied())).unwrap().a
    }

    fn class(pref: Option<(&str, &str, &str)>) -> GatewayClass {
        GatewayClass::new(
            "cg",
            GatewayClassSpec {
                controller_name: "cloudgate.io/gateway-controller".into(),
                parameters_ref: pref.map(|(group, kind, name)| GatewayClassParametersRef {
                    group: group.into(),
                    kind: kind.into(),
                    name: name.into(),
                    namespace: None,
                }),
                description: None,
            },
        )
    }

    fn spec(provider: CloudProvider) -> CloudGatewayParametersSpec {
        CloudGatewayParametersSpec {
            provider,
            region: None,
            project: None,
            network: None,
            subnets: None,
            scheme: None,
            service_network: None,
            default_tags: None,
        }
    }

    fn params(entries: &[(&str, CloudGatewayParametersSpec)]) -> BTreeMap<String, CloudGatewayParametersSpec> {
        entries.iter().map(|(n, s)| (n.to_string(), s.clone())).collect()
    }

    #[test]
    fn without_parameters_the_flags_decide() {
        let a = args(&["--vpc-id", "vpc-1", "--subnets", "subnet-a,subnet-b", "--region", "eu-west-1"]);
        let s = resolve(&a, &class(None), None).unwrap();
        assert_eq!(s.backend, BackendKey { provider: "aws-alb", region: "eu-west-1".into() });
        assert_eq!(s.render.network, "vpc-1");
        assert_eq!(s.render.scheme, "internet-facing");
        let e = resolve(&args(&[]), &class(None), None).unwrap_err();
        assert!(e.contains("--vpc-id"), "{e}");
    }

    #[test]
    fn parameters_override_the_flags_and_pick_the_provider() {
        let a = args(&["--vpc-id", "vpc-flag", "--subnets", "subnet-a,subnet-b", "--region", "us-east-1", "--scheme", "internal"]);
        let mut p = spec(CloudProvider::AwsLattice);
        p.network = Some("vpc-0123456789abcdef0".into());
        p.default_tags = Some([("team".to_string(), "payments".to_string())].into());
        let all = params(&[("lattice", p)]);
        let s = resolve(&a, &class(Some((PARAMETERS_GROUP, PARAMETERS_KIND, "lattice"))), Some(&all)).unwrap();
        assert_eq!(s.backend, BackendKey { provider: "aws-lattice", region: "us-east-1".into() });
        assert_eq!(s.render.network, "vpc-0123456789abcdef0");
        // The ALB's --scheme does not leak into another provider's class.
        assert_eq!(s.render.scheme, "");
        assert_eq!(s.render.default_tags["team"], "payments");
        assert_eq!(s.render.service_network, None);
        assert!(s.capabilities().provider.contains("lattice"), "{}", s.capabilities().provider);
    }

    #[test]
    fn lattice_adopts_only_when_the_class_says_so() {
        let mut p = spec(CloudProvider::AwsLattice);
        p.service_network = Some(ServiceNetwork { mode: ServiceNetworkMode::Adopt, name: Some("shared-net".into()) });
        let all = params(&[("adopt", p)]);
        let s = resolve(&args(&["--vpc-id", "vpc-1"]), &class(Some((PARAMETERS_GROUP, PARAMETERS_KIND, "adopt"))), Some(&all)).unwrap();
        assert_eq!(s.render.service_network.as_deref(), Some("shared-net"));
    }

    #[test]
    fn gcp_flavour_project_and_region() {
        let mut p = spec(CloudProvider::Gcp);
        p.project = Some("my-project".into());
        p.scheme = Some("regional-internal-managed".into());
        let all = params(&[("g", p.clone())]);
        let c = class(Some((PARAMETERS_GROUP, PARAMETERS_KIND, "g")));
        let e = resolve(&args(&[]), &c, Some(&all)).unwrap_err();
        assert!(e.contains("needs a region") && e.contains("spec.region"), "{e}");
        let s = resolve(&args(&["--region", "europe-west1"]), &c, Some(&all)).unwrap();
        assert_eq!(s.backend, BackendKey { provider: "gcp", region: String::new() });
        assert_eq!((s.render.project.as_str(), s.render.scheme.as_str(), s.render.region.as_str()), ("my-project", "regional-internal-managed", "europe-west1"));
        let e = resolve(&args(&[]), &c, Some(&params(&[("g", spec(CloudProvider::Gcp))]))).unwrap_err();
        assert!(e.contains("needs a project"), "{e}");
    }

    #[test]
    fn unusable_references_say_why() {
        let a = args(&["--vpc-id", "vpc-1", "--subnets", "a,b"]);
        let e = resolve(&a, &class(Some(("example.com", "Config", "x"))), Some(&BTreeMap::new())).unwrap_err();
        assert!(e.contains("CloudGatewayParameters"), "{e}");
        let e = resolve(&a, &class(Some((PARAMETERS_GROUP, PARAMETERS_KIND, "missing"))), Some(&BTreeMap::new())).unwrap_err();
        assert!(e.contains("not found"), "{e}");
        let e = resolve(&a, &class(Some((PARAMETERS_GROUP, PARAMETERS_KIND, "x"))), None).unwrap_err();
        assert!(e.contains("not installed"), "{e}");
        let mut c = class(Some((PARAMETERS_GROUP, PARAMETERS_KIND, "x")));
        c.spec.parameters_ref.as_mut().unwrap().namespace = Some("ns".into());
        assert!(resolve(&a, &c, Some(&BTreeMap::new())).unwrap_err().contains("cluster-scoped"));
    }

    #[test]
    fn placements_round_trip_and_find_the_same_backend() {
        let a = args(&["--vpc-id", "vpc-1", "--subnets", "subnet-a,subnet-b", "--region", "eu-west-1"]);
        let s = resolve(&a, &class(None), None).unwrap();
        let p = Placement::decode(&s.placement().encode()).unwrap();
        assert_eq!(p, s.placement());
        let back = p.settings("c1").unwrap();
        assert_eq!(back.backend, s.backend);
        assert_eq!((back.render.network.as_str(), back.render.region.as_str()), ("vpc-1", "eu-west-1"));
        assert_eq!(Placement::decode(r#"{"provider":"nope"}"#), None);
        assert_eq!(Placement::decode("garbage"), None);
    }
}
