//! `cloudgate plan`: the same translate + render the controller runs, on manifests, with no
//! cluster and no cloud. What a GitOps pull request wants to see before merge.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use cloudgate_provider::{Provider, RenderContext, ResourceGraph};
use cloudgate_translate::gateway_class::{self, SUPPORTED_BUNDLE_VERSION};
use cloudgate_translate::model::RouteKey;
use cloudgate_translate::status::{self, Provisioning, RouteParentStatus};
use cloudgate_translate::{translate_gateway, LoadBalancerPlan, World};
use gateway_api::experimental::gatewayclasses::GatewayClassStatus;
use gateway_api::experimental::gateways::GatewayStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;

use crate::{manifests, providers, Output, PlanArgs};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    pub provider: String,
    pub gateway_classes: Vec<ClassReport>,
    pub gateways: Vec<GatewayReport>,
    pub routes: Vec<RouteReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct ClassReport {
    pub name: String,
    pub status: GatewayClassStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReport {
    pub gateway: String,
    pub class: String,
    pub status: GatewayStatus,
    /// Cloud resources the provider would create (empty when the Gateway is not accepted).
    pub resources: ResourceGraph,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub render_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<LoadBalancerPlan>,
}

#[derive(Serialize)]
pub struct RouteReport {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub status: RouteStatusReport,
}

#[derive(Serialize)]
pub struct RouteStatusReport {
    pub parents: Vec<RouteParentStatus>,
}

pub fn run(args: &PlanArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut world = World::new();
    // Manifests have no CRDs to read the bundle version from; plan assumes the version this
    // build implements.
    world.bundle_version = Some(SUPPORTED_BUNDLE_VERSION.to_string());
    let loaded = manifests::load(&args.files, &mut world)?;
    let report = build(args, &world, loaded.warnings)?;
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Output::Yaml => write!(out, "{}", serde_yaml::to_string(&report)?)?,
        Output::Table => write_table(&report, out)?,
    }
    Ok(())
}

pub fn build(args: &PlanArgs, world: &World, mut warnings: Vec<String>) -> anyhow::Result<PlanReport> {
    let provider: Box<dyn Provider> = providers::by_name(&args.provider).context("unknown provider")?;
    let caps = provider.capabilities();
    let now = match &args.now {
        Some(t) => Time(t.parse().with_context(|| format!("--now {t} is not an RFC 3339 timestamp"))?),
        None => Time(jiff::Timestamp::now()),
    };
    let ctx = RenderContext {
        cluster_id: args.cluster_id.clone(),
        region: args.region.clone(),
        network: args.network.clone(),
        subnets: args.subnets.clone(),
        scheme: args.scheme.clone(),
        project: args.project.clone(),
        default_tags: BTreeMap::new(),
        ..Default::default()
    };

    let ours = |class: &str| match world.classes.get(class) {
        Some(c) => c.spec.controller_name == args.controller_name,
        // A preview without the GatewayClass manifest is still useful; say what we assumed.
        None => true,
    };
    let gateway_classes = world
        .classes
        .values()
        .filter(|c| c.spec.controller_name == args.controller_name)
        .map(|c| ClassReport {
            name: c.metadata.name.clone().unwrap_or_default(),
            status: gateway_class::class_status(c, caps, world.bundle_version.as_deref(), parameters_ok(c), &now),
        })
        .collect();

    let mut gateways = Vec::new();
    let mut route_status: BTreeMap<RouteKey, Vec<RouteParentStatus>> = BTreeMap::new();
    for (key, gw) in &world.gateways {
        let class = &gw.spec.gateway_class_name;
        if !ours(class) {
            warnings.push(format!("Gateway {key}: class {class} belongs to another controller; not planned"));
            continue;
        }
        if !world.classes.contains_key(class) {
            warnings.push(format!("Gateway {key}: GatewayClass {class} is not in the input; planned as if it were handled by cloudgate"));
        }
        let Some(t) = translate_gateway(world, key, caps) else { continue };
        let (resources, render_error) = if t.gateway.accepted.status {
            match provider.render(&t.plan, &ctx) {
                Ok(g) => (g, None),
                Err(e) => (ResourceGraph::default(), Some(e)),
            }
        } else {
            (ResourceGraph::default(), None)
        };
        let prov = match &render_error {
            None => Provisioning::Pending(format!("Would be provisioned by the {} provider", provider.name())),
            Some(e) => Provisioning::Failed { reason: e.programmed_reason(), message: e.to_string() },
        };
        let render_error = render_error.map(|e| e.to_string());
        let status = status::gateway_status(&t.gateway, &prov, gw.status.as_ref(), &now);
        for v in &t.routes {
            let route = &world.routes[&v.route];
            route_status
                .entry(v.route.clone())
                .or_default()
                .push(status::route_parent_status(v, &args.controller_name, &route.status_parents, &now));
        }
        gateways.push(GatewayReport {
            gateway: key.to_string(),
            class: class.clone(),
            status,
            resources,
            render_error,
            plan: args.show_plan.then_some(t.plan),
        });
    }

    for (key, r) in &world.routes {
        for p in &r.parent_refs {
            if let Some(gw) = p.gateway(&r.namespace) {
                if !world.gateways.contains_key(&gw) {
                    warnings.push(format!("{key}: parentRef Gateway {gw} is not in the input; no status planned for it"));
                }
            }
        }
    }
    let routes = route_status
        .into_iter()
        .map(|(k, parents)| RouteReport {
            kind: k.kind.kind(),
            namespace: k.namespace,
            name: k.name,
            status: RouteStatusReport { parents },
        })
        .collect();
    Ok(PlanReport { provider: provider.name().to_string(), gateway_classes, gateways, routes, warnings })
}

/// GatewayClass parameters are not read by this build: a class that names parameters is
/// reported rather than silently planned with defaults.
pub(crate) fn parameters_ok(c: &gateway_api::experimental::gatewayclasses::GatewayClass) -> Result<(), String> {
    match &c.spec.parameters_ref {
        None => Ok(()),
        // The controller resolves parameters (class_params); a plan is made from the flags given
        // to `plan`, so a class that relies on parameters is not planned as if it had them.
        Some(p) => Err(format!("parametersRef {}/{} {}: `cloudgate plan` does not read class parameters (the controller does); pass --provider, --region, --network, --subnets, --scheme instead", p.group, p.kind, p.name)),
    }
}

fn conds(cs: &[Condition]) -> String {
    cs.iter().map(|c| format!("{}={} ({})", c.type_, c.status, c.reason)).collect::<Vec<_>>().join("  ")
}

fn write_table(r: &PlanReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "provider: {}", r.provider)?;
    for c in &r.gateway_classes {
        writeln!(out, "\nGatewayClass {}", c.name)?;
        writeln!(out, "  {}", conds(c.status.conditions.as_deref().unwrap_or(&[])))?;
        let f: Vec<&str> = c.status.supported_features.iter().flatten().map(|f| f.name.as_str()).collect();
        writeln!(out, "  supportedFeatures: {}", f.join(", "))?;
    }
    for g in &r.gateways {
        writeln!(out, "\nGateway {} (class {})", g.gateway, g.class)?;
        writeln!(out, "  {}", conds(g.status.conditions.as_deref().unwrap_or(&[])))?;
        for l in g.status.listeners.iter().flatten() {
            writeln!(out, "  listener {}: attachedRoutes={}  {}", l.name, l.attached_routes, conds(&l.conditions))?;
        }
        if let Some(e) = &g.render_error {
            writeln!(out, "  render error: {e}")?;
        }
        if !g.resources.resources.is_empty() {
            writeln!(out, "  would create {} resources:", g.resources.resources.len())?;
            for res in &g.resources.resources {
                writeln!(out, "    + {:<42} {}", res.key.kind, res.key.name)?;
            }
        }
    }
    for rt in &r.routes {
        writeln!(out, "\n{} {}/{}", rt.kind, rt.namespace, rt.name)?;
        for p in &rt.status.parents {
            let section = p.parent_ref.section_name.as_deref().map(|s| format!(" section {s}")).unwrap_or_default();
            writeln!(out, "  parent {} {}{section}: {}", p.parent_ref.kind, p.parent_ref.name, conds(&p.conditions))?;
            for c in p.conditions.iter().filter(|c| c.status != "True" || c.type_ == "PartiallyInvalid") {
                writeln!(out, "    {}: {}", c.type_, c.message)?;
            }
        }
    }
    if !r.warnings.is_empty() {
        writeln!(out, "\nwarnings:")?;
        for w in &r.warnings {
            writeln!(out, "  - {w}")?;
        }
    }
    Ok(())
}
