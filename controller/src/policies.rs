//! cloudgate's GEP-713 direct policies, one module for all four kinds:
//!
//! | kind                     | targets                        | becomes (in `RenderContext`)   |
//! |--------------------------|--------------------------------|--------------------------------|
//! | `HealthCheckPolicy`      | Services                       | `health_checks` by Service     |
//! | `BackendPolicy`          | Services                       | `backend_settings` by Service  |
//! | `LatticeAccessLogPolicy` | Gateways, HTTPRoutes, GRPCRoutes | `access` by Gateway or route |
//! | `LatticeAuthPolicy`      | Gateways, HTTPRoutes, GRPCRoutes | `access` by Gateway or route |
//!
//! This module decides which policy of a kind applies to a target (the oldest, when several
//! target it), turns it into the provider-neutral settings renderers read, and computes the
//! policy's status: one ancestor entry per Gateway of ours the policy reaches, `Accepted=True`,
//! or `False` with reason `Conflicted` (an older policy of the same kind wins) or `Invalid` (the
//! Gateway's provider cannot apply the settings, e.g. gRPC health checks on Lattice, or an auth
//! policy on an ALB). Pure over the index; the write is in `reconcile`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cloudgate_crds::common::{Condition, ConditionStatus, LocalPolicyTargetReference, ParentReference, PolicyAncestorStatus, PolicyStatus, GATEWAY_API_GROUP};
use cloudgate_crds::{BackendPolicy, HealthCheckPolicy, HealthCheckPolicySpec, HealthCheckProtocol as CrdProtocol, LatticeAccessLogPolicy, LatticeAuthPolicy, LatticeAuthType};
use cloudgate_provider::access::{AccessSettings, AccessTarget, IamAuth};
use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm};
use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};
use cloudgate_provider::Provider;
use cloudgate_translate::model::{ObjKey, RouteKey, RouteKind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DynamicObject};
use serde::de::DeserializeOwned;

use crate::class_params;
use crate::config::ControllerArgs;
use crate::index::Index;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    HealthCheck,
    Backend,
    AccessLog,
    Auth,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 4] = [PolicyKind::HealthCheck, PolicyKind::Backend, PolicyKind::AccessLog, PolicyKind::Auth];

    /// The CRD kind.
    pub fn kind(self) -> &'static str {
        match self {
            PolicyKind::HealthCheck => "HealthCheckPolicy",
            PolicyKind::Backend => "BackendPolicy",
            PolicyKind::AccessLog => "LatticeAccessLogPolicy",
            PolicyKind::Auth => "LatticeAuthPolicy",
        }
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            PolicyKind::HealthCheck => ApiResource::erase::<HealthCheckPolicy>(&()),
            PolicyKind::Backend => ApiResource::erase::<BackendPolicy>(&()),
            PolicyKind::AccessLog => ApiResource::erase::<LatticeAccessLogPolicy>(&()),
            PolicyKind::Auth => ApiResource::erase::<LatticeAuthPolicy>(&()),
        }
    }
}

/// What a policy's `targetRefs` entry points at.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Service(ObjKey),
    Gateway(ObjKey),
    Route(RouteKey),
}

fn target(ns: &str, r: &LocalPolicyTargetReference) -> Option<Target> {
    match (r.group.as_str(), r.kind.as_str()) {
        ("", "Service") => Some(Target::Service(ObjKey::new(ns, &r.name))),
        (GATEWAY_API_GROUP, "Gateway") => Some(Target::Gateway(ObjKey::new(ns, &r.name))),
        (GATEWAY_API_GROUP, "HTTPRoute" | "GRPCRoute") => {
            let kind = RouteKind::from_kind(&r.kind)?;
            Some(Target::Route(RouteKey { kind, namespace: ns.to_string(), name: r.name.clone() }))
        }
        _ => None,
    }
}

/// A policy's settings in provider-neutral terms.
#[derive(Clone, Debug, PartialEq)]
pub enum Settings {
    HealthCheck(HealthCheck),
    Backend(BackendSettings),
    /// Access log destination ARN.
    AccessLog(String),
    /// `None`: auth type NONE.
    Auth(Option<IamAuth>),
}

impl Settings {
    /// Whether `p` applies these settings, and why not. Access policies are checked for the
    /// part of a target's access settings they set.
    fn support(&self, p: &dyn Provider) -> Result<(), String> {
        match self {
            Settings::HealthCheck(hc) => p.health_check_support(hc),
            Settings::Backend(b) => p.backend_settings_support(b),
            Settings::AccessLog(d) => p.access_policy_support(&AccessSettings { access_log_destination: Some(d.clone()), auth: None }),
            Settings::Auth(a) => p.access_policy_support(&AccessSettings { access_log_destination: None, auth: a.clone() }),
        }
    }
}

/// One policy as the index keeps it: what the status and the renderers need, whatever its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub key: ObjKey,
    pub created: Option<Time>,
    pub generation: Option<i64>,
    pub targets: Vec<Target>,
    pub settings: Settings,
    pub status: Option<PolicyStatus>,
}

impl Policy {
    /// Whether `other` differs in anything but its status.
    pub fn same_spec(&self, other: &Policy) -> bool {
        self.targets == other.targets && self.settings == other.settings && self.generation == other.generation
    }
}

fn convert<T: DeserializeOwned>(obj: &DynamicObject) -> Result<T, String> {
    serde_json::to_value(obj).and_then(serde_json::from_value).map_err(|e| e.to_string())
}

/// Reads a watched policy object of `kind`. Objects the CRD schema would refuse but an older
/// apiserver kept fail here with the reason, and are skipped by the watch.
pub fn from_object(kind: PolicyKind, obj: &DynamicObject) -> Result<Policy, String> {
    let (meta, refs, settings, status) = match kind {
        PolicyKind::HealthCheck => {
            let p: HealthCheckPolicy = convert(obj)?;
            let s = Settings::HealthCheck(health_check(&p.spec));
            (p.metadata, p.spec.target_refs, s, p.status)
        }
        PolicyKind::Backend => {
            let p: BackendPolicy = convert(obj)?;
            let positive = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
            let s = Settings::Backend(BackendSettings {
                protocol_version: p.spec.protocol_version.map(|v| match v {
                    cloudgate_crds::BackendProtocolVersion::HTTP1 => BackendProtocolVersion::Http1,
                    cloudgate_crds::BackendProtocolVersion::HTTP2 => BackendProtocolVersion::Http2,
                    cloudgate_crds::BackendProtocolVersion::GRPC => BackendProtocolVersion::Grpc,
                }),
                deregistration_delay_seconds: positive(p.spec.deregistration_delay_seconds),
                slow_start_seconds: positive(p.spec.slow_start_seconds),
                algorithm: p.spec.algorithm.map(|a| match a {
                    cloudgate_crds::LoadBalancingAlgorithm::RoundRobin => LoadBalancingAlgorithm::RoundRobin,
                    cloudgate_crds::LoadBalancingAlgorithm::LeastRequest => LoadBalancingAlgorithm::LeastRequest,
                    cloudgate_crds::LoadBalancingAlgorithm::Random => LoadBalancingAlgorithm::Random,
                }),
            });
            (p.metadata, p.spec.target_refs, s, p.status)
        }
        PolicyKind::AccessLog => {
            let p: LatticeAccessLogPolicy = convert(obj)?;
            (p.metadata, p.spec.target_refs, Settings::AccessLog(p.spec.destination_arn), p.status)
        }
        PolicyKind::Auth => {
            let p: LatticeAuthPolicy = convert(obj)?;
            let auth = match p.spec.auth_type {
                LatticeAuthType::AwsIam => Some(IamAuth { policy: p.spec.policy }),
                LatticeAuthType::None => None,
            };
            (p.metadata, p.spec.target_refs, Settings::Auth(auth), p.status)
        }
    };
    let key = ObjKey::new(meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
    // Only the target kinds the policy's kind takes (its CRD refuses the others; an older
    // apiserver may have stored them anyway).
    let on_services = matches!(kind, PolicyKind::HealthCheck | PolicyKind::Backend);
    let targets = refs.iter().filter_map(|r| target(&key.namespace, r)).filter(|t| matches!(t, Target::Service(_)) == on_services).collect();
    Ok(Policy { kind, key, created: meta.creation_timestamp, generation: meta.generation, targets, settings, status })
}

pub fn health_check(spec: &HealthCheckPolicySpec) -> HealthCheck {
    let positive = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
    HealthCheck {
        protocol: spec.protocol.map(|p| match p {
            CrdProtocol::HTTP => HealthCheckProtocol::Http,
            CrdProtocol::HTTPS => HealthCheckProtocol::Https,
            CrdProtocol::HTTP2 => HealthCheckProtocol::Http2,
            CrdProtocol::GRPC => HealthCheckProtocol::Grpc,
            CrdProtocol::TCP => HealthCheckProtocol::Tcp,
        }),
        path: spec.path.clone(),
        port: spec.port.and_then(|p| u16::try_from(p).ok()),
        interval_seconds: positive(spec.interval_seconds),
        timeout_seconds: positive(spec.timeout_seconds),
        healthy_threshold: positive(spec.healthy_threshold),
        unhealthy_threshold: positive(spec.unhealthy_threshold),
        http_codes: spec.matcher.as_ref().and_then(|m| m.http_codes.clone()),
        grpc_codes: spec.matcher.as_ref().and_then(|m| m.grpc_codes.clone()),
    }
}

/// For each target, the policy of `kind` that applies: the oldest (creationTimestamp, then
/// namespace/name), as GEP-713 resolves conflicts.
pub fn winners(policies: &BTreeMap<(PolicyKind, ObjKey), Arc<Policy>>, kind: PolicyKind) -> BTreeMap<Target, ObjKey> {
    let mut ordered: Vec<&Arc<Policy>> = policies.range((kind, ObjKey::new("", ""))..).take_while(|((k, _), _)| *k == kind).map(|(_, p)| p).collect();
    ordered.sort_by_key(|p| (p.created.as_ref().map(|t| t.0), p.key.clone()));
    let mut out = BTreeMap::new();
    for p in ordered {
        for t in &p.targets {
            out.entry(t.clone()).or_insert_with(|| p.key.clone());
        }
    }
    out
}

/// What the policies give one Gateway's render, limited to what its provider applies (the rest
/// is reported on the policies and left out).
#[derive(Debug, Default, PartialEq)]
pub struct ForGateway {
    pub health_checks: BTreeMap<ObjKey, HealthCheck>,
    pub backend_settings: BTreeMap<ObjKey, BackendSettings>,
    pub access: BTreeMap<AccessTarget, AccessSettings>,
}

/// The routes of ours attached to `gateway` that a policy can target, by the key they have as
/// an access target.
fn attached_routes(ix: &Index, gateway: &ObjKey) -> Vec<RouteKey> {
    ix.world
        .routes
        .iter()
        .filter(|(rk, r)| matches!(rk.kind, RouteKind::Http | RouteKind::Grpc) && r.parent_refs.iter().any(|p| p.gateway(&rk.namespace).as_ref() == Some(gateway)))
        .map(|(rk, _)| rk.clone())
        .collect()
}

/// `adopted_network`: the Gateway joins a service network its class adopts, whose auth belongs
/// to its owner (a Gateway auth policy is then reported, not applied).
pub fn for_gateway(ix: &Index, gateway: &ObjKey, provider: &str, adopted_network: bool) -> ForGateway {
    let mut out = ForGateway::default();
    if ix.policies.is_empty() {
        return out;
    }
    let Some(p) = crate::providers::by_name(provider) else { return out };
    let won: BTreeMap<PolicyKind, BTreeMap<Target, ObjKey>> = PolicyKind::ALL.iter().map(|k| (*k, winners(&ix.policies, *k))).collect();
    let applied = |kind: PolicyKind, t: &Target| -> Option<&Policy> {
        let policy = ix.policies.get(&(kind, won.get(&kind)?.get(t)?.clone()))?;
        policy.settings.support(&*p).ok().map(|()| policy.as_ref())
    };
    for svc in ix.services_of(gateway) {
        let t = Target::Service(svc.clone());
        if let Some(Settings::HealthCheck(hc)) = applied(PolicyKind::HealthCheck, &t).map(|p| &p.settings) {
            out.health_checks.insert(svc.clone(), hc.clone());
        }
        if let Some(Settings::Backend(b)) = applied(PolicyKind::Backend, &t).map(|p| &p.settings) {
            out.backend_settings.insert(svc, b.clone());
        }
    }
    let access_targets = std::iter::once((Target::Gateway(gateway.clone()), AccessTarget::Gateway))
        .chain(attached_routes(ix, gateway).into_iter().map(|rk| (Target::Route(rk.clone()), AccessTarget::Route(rk))));
    for (t, at) in access_targets {
        let mut s = AccessSettings::default();
        if let Some(Settings::AccessLog(d)) = applied(PolicyKind::AccessLog, &t).map(|p| &p.settings) {
            s.access_log_destination = Some(d.clone());
        }
        if let Some(Settings::Auth(a)) = applied(PolicyKind::Auth, &t).map(|p| &p.settings) {
            if !(adopted_network && at == AccessTarget::Gateway) {
                s.auth = a.clone();
            }
        }
        if s != AccessSettings::default() {
            out.access.insert(at, s);
        }
    }
    out
}

/// The targets of `policy` that `gateway` carries.
fn reached(ix: &Index, policy: &Policy, gateway: &ObjKey) -> Vec<Target> {
    policy
        .targets
        .iter()
        .filter(|t| match t {
            Target::Service(s) => ix.service_users_of(s).contains(gateway),
            Target::Gateway(g) => g == gateway,
            Target::Route(rk) => ix.world.routes.get(rk).is_some_and(|r| r.parent_refs.iter().any(|p| p.gateway(&rk.namespace).as_ref() == Some(gateway))),
        })
        .cloned()
        .collect()
}

/// What one ancestor's Accepted condition says, for a policy reaching `targets` on `gateway`.
fn verdict(ix: &Index, args: &ControllerArgs, policy: &Policy, gateway: &ObjKey, targets: &[Target], won: &BTreeMap<Target, ObjKey>) -> (bool, &'static str, String) {
    let kind = policy.kind.kind();
    if let Some((t, other)) = targets.iter().find_map(|t| won.get(t).filter(|w| **w != policy.key).map(|w| (t, w))) {
        let what = match t {
            Target::Service(s) => format!("Service {s}"),
            Target::Gateway(g) => format!("Gateway {g}"),
            Target::Route(r) => r.to_string(),
        };
        return (false, "Conflicted", format!("{what} is also targeted by {kind} {other}, which is older and applies"));
    }
    let class = ix.world.gateways.get(gateway).and_then(|g| ix.world.classes.get(&g.spec.gateway_class_name));
    let settings = match class {
        Some(c) => class_params::resolve(args, c, ix.class_parameters.as_ref()),
        None => Err("the Gateway's class is not found".into()),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(why) => return (false, "Invalid", format!("Gateway {gateway} cannot be provisioned: {why}")),
    };
    // A targeted route the Gateway does not carry (no listener accepts it) gets nothing: say
    // so rather than "Applied". The translation is pure and only run for policies on routes.
    let routes: Vec<&RouteKey> = targets.iter().filter_map(|t| if let Target::Route(rk) = t { Some(rk) } else { None }).collect();
    if !routes.is_empty() {
        let carried = cloudgate_translate::translate_gateway(&ix.world, gateway, &settings.capabilities())
            .map(|t| t.plan.listeners.iter().flat_map(|l| l.routes.iter().cloned()).collect::<BTreeSet<RouteKey>>())
            .unwrap_or_default();
        if let Some(rk) = routes.iter().find(|rk| !carried.contains(rk)) {
            return (false, "Invalid", format!("{rk} is not accepted by any listener of Gateway {gateway} (its status says why): nothing is applied to it"));
        }
    }
    let (provider, adopted) = (settings.backend.provider, settings.render.service_network);
    if let (PolicyKind::Auth, Some(sn), true) = (policy.kind, &adopted, targets.contains(&Target::Gateway(gateway.clone()))) {
        let why = format!("Gateway {gateway} joins service network {sn}, which its class adopts: its auth type and policy belong to its owner; target the routes instead");
        return (false, "Invalid", why);
    }
    let Some(p) = crate::providers::by_name(provider) else { return (false, "Invalid", format!("unknown provider {provider}")) };
    match policy.settings.support(&*p) {
        Ok(()) => (true, "Accepted", format!("Applied by the {provider} provider on Gateway {gateway}")),
        Err(why) => (false, "Invalid", why),
    }
}

/// The policy's status as cloudgate sees it; entries of other controllers are kept as they are.
pub fn status(ix: &Index, args: &ControllerArgs, kind: PolicyKind, key: &ObjKey, now: &str) -> Option<PolicyStatus> {
    let policy = ix.policies.get(&(kind, key.clone()))?;
    let won = winners(&ix.policies, kind);
    let previous = policy.status.clone().unwrap_or_default();
    let mut ancestors: Vec<PolicyAncestorStatus> = previous.ancestors.iter().filter(|a| a.controller_name != args.controller_name).cloned().collect();
    // Only the Gateways the policy's targets lead to (for Services: the Gateways whose last
    // reconcile sent to them), not every Gateway: this runs whenever one of those reconciles.
    let users = |s: &ObjKey| ix.service_users_of(s);
    for gw_key in gateways_reached(ix, policy, users) {
        let Some(gw) = ix.world.gateways.get(&gw_key) else { continue };
        let ours = ix.world.classes.get(&gw.spec.gateway_class_name).is_some_and(|c| c.spec.controller_name == args.controller_name);
        if !ours || gw.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let gw_key = &gw_key;
        let targets = reached(ix, policy, gw_key);
        if targets.is_empty() {
            continue;
        }
        let ancestor_ref = ParentReference {
            group: Some(GATEWAY_API_GROUP.into()),
            kind: Some("Gateway".into()),
            namespace: Some(gw_key.namespace.clone()),
            name: gw_key.name.clone(),
            section_name: None,
            port: None,
        };
        let (ok, reason, message) = verdict(ix, args, policy, gw_key, &targets, &won);
        let status = if ok { ConditionStatus::True } else { ConditionStatus::False };
        // The transition time moves only when the status does.
        let since = previous
            .ancestors
            .iter()
            .filter(|a| a.ancestor_ref == ancestor_ref && a.controller_name == args.controller_name)
            .flat_map(|a| a.conditions.iter())
            .find(|c| c.r#type == "Accepted" && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        ancestors.push(PolicyAncestorStatus {
            ancestor_ref,
            controller_name: args.controller_name.clone(),
            conditions: vec![Condition {
                r#type: "Accepted".into(),
                status,
                observed_generation: policy.generation,
                last_transition_time: since,
                reason: reason.into(),
                message,
            }],
        });
    }
    // GEP-713 caps ancestors at 16 per policy.
    ancestors.truncate(16);
    Some(PolicyStatus { ancestors })
}

/// The Gateways whose render a policy's targets feed, given who sends to which Service.
pub fn gateways_reached(ix: &Index, p: &Policy, service_users: impl Fn(&ObjKey) -> Vec<ObjKey>) -> BTreeSet<ObjKey> {
    let mut out = BTreeSet::new();
    for t in &p.targets {
        match t {
            Target::Service(s) => out.extend(service_users(s)),
            Target::Gateway(g) => {
                out.insert(g.clone());
            }
            Target::Route(rk) => {
                if let Some(r) = ix.world.routes.get(rk) {
                    out.extend(r.parent_refs.iter().filter_map(|p| p.gateway(&rk.namespace)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::DynamicObject;
    use serde_json::json;

    use crate::index::{Watched, WorkKey};

    fn obj(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn args(provider: &str) -> ControllerArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: ControllerArgs,
        }
        T::try_parse_from(["x", "--cluster-id", "c1", "--provider", provider, "--vpc-id", "vpc-1", "--subnets", "s-a,s-b", "--gcp-project", "proj-1"]).unwrap().a
    }

    fn policy(kind: PolicyKind, name: &str, created: &str, spec: serde_json::Value) -> DynamicObject {
        obj(json!({"apiVersion": "gateway.cloudgate.io/v1alpha1", "kind": kind.kind(),
            "metadata": {"name": name, "namespace": "apps", "generation": 2, "creationTimestamp": created}, "spec": spec}))
    }

    fn hc(name: &str, created: &str, spec: serde_json::Value) -> DynamicObject {
        policy(PolicyKind::HealthCheck, name, created, spec)
    }

    fn index() -> Index {
        let mut ix = Index::new();
        ix.apply(Watched::GatewayClass, &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "cg"}, "spec": {"controllerName": "cloudgate.io/gateway-controller"}}))).unwrap();
        ix.apply(Watched::Gateway, &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "apps"},
            "spec": {"gatewayClassName": "cg", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}))).unwrap();
        ix.apply(Watched::Route(RouteKind::Http), &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}))).unwrap();
        // As the Gateway's reconcile does: which Services it sends to.
        ix.record_dependencies(&ObjKey::new("apps", "gw"));
        ix
    }

    fn key(name: &str) -> ObjKey {
        ObjKey::new("apps", name)
    }

    fn accepted(s: &PolicyStatus) -> (ConditionStatus, &str, &str) {
        let c = &s.ancestors[0].conditions[0];
        (c.status, c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn the_oldest_policy_applies_and_the_newer_one_says_it_conflicts() {
        let mut ix = index();
        ix.apply(Watched::Policy(PolicyKind::HealthCheck), &hc("new", "2026-02-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "path": "/new"}))).unwrap();
        ix.apply(Watched::Policy(PolicyKind::HealthCheck), &hc("old", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "path": "/old", "intervalSeconds": 10}))).unwrap();
        let a = args("aws-lattice");
        let hcs = for_gateway(&ix, &key("gw"), "aws-lattice", false).health_checks;
        assert_eq!(hcs[&key("web")].path.as_deref(), Some("/old"));
        assert_eq!(hcs[&key("web")].interval_seconds, Some(10));

        let old = status(&ix, &a, PolicyKind::HealthCheck, &key("old"), "2026-03-01T00:00:00Z").unwrap();
        let [entry] = old.ancestors.as_slice() else { panic!("{old:?}") };
        assert_eq!(entry.ancestor_ref.name, "gw");
        assert_eq!((entry.conditions[0].status, entry.conditions[0].reason.as_str()), (ConditionStatus::True, "Accepted"));
        assert_eq!(entry.conditions[0].observed_generation, Some(2));
        let new = status(&ix, &a, PolicyKind::HealthCheck, &key("new"), "2026-03-01T00:00:00Z").unwrap();
        assert_eq!(accepted(&new).0, ConditionStatus::False);
        assert_eq!(accepted(&new).1, "Conflicted");
    }

    #[test]
    fn settings_the_provider_cannot_apply_are_invalid_and_left_out() {
        let mut ix = index();
        ix.apply(Watched::Policy(PolicyKind::HealthCheck), &hc("grpc", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "protocol": "GRPC"}))).unwrap();
        let s = status(&ix, &args("aws-lattice"), PolicyKind::HealthCheck, &key("grpc"), "2026-03-01T00:00:00Z").unwrap();
        let (st, reason, message) = accepted(&s);
        assert_eq!((st, reason), (ConditionStatus::False, "Invalid"));
        assert!(message.contains("not gRPC"), "{message}");
        assert!(for_gateway(&ix, &key("gw"), "aws-lattice", false).health_checks.is_empty());
    }

    #[test]
    fn a_policy_on_a_service_no_gateway_uses_has_no_ancestors() {
        let mut ix = index();
        ix.apply(Watched::Policy(PolicyKind::HealthCheck), &hc("idle", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "unused"}]}))).unwrap();
        assert!(status(&ix, &args("aws-lattice"), PolicyKind::HealthCheck, &key("idle"), "t").unwrap().ancestors.is_empty());
    }

    #[test]
    fn lattice_policies_reach_the_gateway_and_its_routes_and_merge_per_target() {
        let mut ix = index();
        let gw_ref = json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]);
        let route_ref = json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}]);
        ix.apply(Watched::Policy(PolicyKind::AccessLog), &policy(PolicyKind::AccessLog, "logs", "2026-01-01T00:00:00Z",
            json!({"targetRefs": gw_ref, "destinationArn": "arn:aws:logs:us-west-2:123456789012:log-group:gw"}))).unwrap();
        ix.apply(Watched::Policy(PolicyKind::Auth), &policy(PolicyKind::Auth, "iam", "2026-01-01T00:00:00Z",
            json!({"targetRefs": route_ref, "authType": "AWS_IAM", "policy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}))).unwrap();
        ix.apply(Watched::Policy(PolicyKind::Auth), &policy(PolicyKind::Auth, "later", "2026-02-01T00:00:00Z",
            json!({"targetRefs": route_ref, "authType": "NONE"}))).unwrap();

        let got = for_gateway(&ix, &key("gw"), "aws-lattice", false).access;
        assert_eq!(got[&AccessTarget::Gateway], AccessSettings { access_log_destination: Some("arn:aws:logs:us-west-2:123456789012:log-group:gw".into()), auth: None });
        let route = AccessTarget::Route(RouteKey { kind: RouteKind::Http, namespace: "apps".into(), name: "web".into() });
        assert_eq!(got[&route].auth.as_ref().and_then(|a| a.policy.as_deref()), Some("{\"Version\":\"2012-10-17\",\"Statement\":[]}"));
        assert_eq!(got.len(), 2);

        let a = args("aws-lattice");
        assert_eq!(accepted(&status(&ix, &a, PolicyKind::AccessLog, &key("logs"), "t").unwrap()).0, ConditionStatus::True);
        assert_eq!(accepted(&status(&ix, &a, PolicyKind::Auth, &key("iam"), "t").unwrap()).0, ConditionStatus::True);
        let later = status(&ix, &a, PolicyKind::Auth, &key("later"), "t").unwrap();
        assert_eq!((accepted(&later).0, accepted(&later).1), (ConditionStatus::False, "Conflicted"));
        assert!(accepted(&later).2.contains("LatticeAuthPolicy apps/iam"), "{later:?}");

        // On an ALB the same policies are reported, not applied.
        assert!(for_gateway(&ix, &key("gw"), "aws-alb", false).access.is_empty());
        let alb = status(&ix, &args("aws-alb"), PolicyKind::AccessLog, &key("logs"), "t").unwrap();
        assert_eq!((accepted(&alb).0, accepted(&alb).1), (ConditionStatus::False, "Invalid"));
        assert!(accepted(&alb).2.contains("VPC Lattice"), "{alb:?}");
    }

    #[test]
    fn backend_policies_are_reported_per_provider() {
        let mut ix = index();
        ix.apply(Watched::Policy(PolicyKind::Backend), &policy(PolicyKind::Backend, "be", "2026-01-01T00:00:00Z",
            json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "deregistrationDelaySeconds": 30}))).unwrap();
        let s = status(&ix, &args("gcp"), PolicyKind::Backend, &key("be"), "t").unwrap();
        assert_eq!(s.ancestors.len(), 1);
        assert_eq!(s.ancestors[0].ancestor_ref.name, "gw");
        let p = crate::providers::by_name("gcp").unwrap();
        let support = p.backend_settings_support(&BackendSettings { deregistration_delay_seconds: Some(30), ..Default::default() });
        assert_eq!(accepted(&s).0 == ConditionStatus::True, support.is_ok(), "the status follows the provider's answer: {s:?}");
        assert_eq!(for_gateway(&ix, &key("gw"), "gcp", false).backend_settings.contains_key(&key("web")), support.is_ok());
    }

    #[test]
    fn targets_of_other_kinds_are_ignored() {
        let mut ix = index();
        // A Service target on an access log policy (the CRD refuses it; an old apiserver may not).
        ix.apply(Watched::Policy(PolicyKind::AccessLog), &policy(PolicyKind::AccessLog, "odd", "2026-01-01T00:00:00Z",
            json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "destinationArn": "arn:aws:s3:::bucket-name-x"}))).unwrap();
        assert!(for_gateway(&ix, &key("gw"), "aws-lattice", false).access.is_empty());
        assert!(status(&ix, &args("aws-lattice"), PolicyKind::AccessLog, &key("odd"), "t").unwrap().ancestors.is_empty());
    }

    #[test]
    fn a_gateway_auth_policy_on_an_adopted_network_is_reported_not_applied() {
        let mut ix = index();
        ix.apply(Watched::ClassParameters, &obj(json!({"apiVersion": "gateway.cloudgate.io/v1alpha1", "kind": "CloudGatewayParameters",
            "metadata": {"name": "mesh"}, "spec": {"provider": "aws-lattice", "serviceNetwork": {"mode": "Adopt", "name": "shared"}}}))).unwrap();
        ix.apply(Watched::GatewayClass, &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "cg"},
            "spec": {"controllerName": "cloudgate.io/gateway-controller",
                "parametersRef": {"group": "gateway.cloudgate.io", "kind": "CloudGatewayParameters", "name": "mesh"}}}))).unwrap();
        ix.apply(Watched::Policy(PolicyKind::Auth), &policy(PolicyKind::Auth, "gw-auth", "2026-01-01T00:00:00Z",
            json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}], "authType": "AWS_IAM"}))).unwrap();
        let s = status(&ix, &args("aws-alb"), PolicyKind::Auth, &key("gw-auth"), "t").unwrap();
        let (st, reason, message) = accepted(&s);
        assert_eq!((st, reason), (ConditionStatus::False, "Invalid"), "{message}");
        assert!(message.contains("adopts"), "{message}");
        assert!(for_gateway(&ix, &key("gw"), "aws-lattice", true).access.is_empty());
        assert!(!for_gateway(&ix, &key("gw"), "aws-lattice", false).access.is_empty(), "a network of its own takes it");
    }

    #[test]
    fn a_gateway_reconcile_re_checks_the_policies_reaching_it_and_those_listing_it() {
        let mut ix = index();
        let svc_policy = json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}]});
        ix.apply(Watched::Policy(PolicyKind::HealthCheck), &hc("on-web", "2026-01-01T00:00:00Z", svc_policy)).unwrap();
        ix.apply(Watched::Policy(PolicyKind::HealthCheck), &hc("elsewhere", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "other"}]}))).unwrap();
        let gw = key("gw");
        let got = ix.policies_reaching(&gw, "cloudgate.io/gateway-controller");
        assert_eq!(got.into_iter().collect::<Vec<_>>(), vec![WorkKey::Policy(PolicyKind::HealthCheck, key("on-web"))]);

        // "elsewhere" once listed gw (say, the route sent to "other" before): it is re-checked
        // too, so the stale ancestor goes.
        let mut listed = policy(PolicyKind::HealthCheck, "elsewhere", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "other"}]}));
        listed.data["status"] = json!({"ancestors": [{"ancestorRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "apps", "name": "gw"},
            "controllerName": "cloudgate.io/gateway-controller",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]});
        ix.apply(Watched::Policy(PolicyKind::HealthCheck), &listed).unwrap();
        assert_eq!(ix.policies_reaching(&gw, "cloudgate.io/gateway-controller").len(), 2);
        assert!(status(&ix, &args("aws-lattice"), PolicyKind::HealthCheck, &key("elsewhere"), "t").unwrap().ancestors.is_empty());
    }

    #[test]
    fn a_policy_on_a_route_no_listener_accepts_is_invalid_not_applied() {
        let mut ix = index();
        // The route names a listener the Gateway does not have.
        ix.apply(Watched::Route(RouteKind::Http), &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "stray", "namespace": "apps"},
            "spec": {"parentRefs": [{"name": "gw", "sectionName": "no-such-listener"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}))).unwrap();
        ix.apply(Watched::Policy(PolicyKind::AccessLog), &policy(PolicyKind::AccessLog, "stray-logs", "2026-01-01T00:00:00Z",
            json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "stray"}], "destinationArn": "arn:aws:s3:::bucket-name-x"}))).unwrap();
        let s = status(&ix, &args("aws-lattice"), PolicyKind::AccessLog, &key("stray-logs"), "t").unwrap();
        let (st, reason, message) = accepted(&s);
        assert_eq!((st, reason), (ConditionStatus::False, "Invalid"), "{message}");
        assert!(message.contains("not accepted by any listener"), "{message}");
        // The carried route "web" is still Applied.
        ix.apply(Watched::Policy(PolicyKind::AccessLog), &policy(PolicyKind::AccessLog, "web-logs", "2026-01-01T00:00:00Z",
            json!({"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}], "destinationArn": "arn:aws:s3:::bucket-name-x"}))).unwrap();
        assert_eq!(accepted(&status(&ix, &args("aws-lattice"), PolicyKind::AccessLog, &key("web-logs"), "t").unwrap()).0, ConditionStatus::True);
    }
}
