//! HealthCheckPolicy: a GEP-713 direct policy on Services. This module decides which policy
//! applies to a Service (the oldest, when several target it), turns it into the provider-neutral
//! [`HealthCheck`] renderers read, and computes the policy's status: one ancestor entry per
//! Gateway of ours whose routes send to a targeted Service, `Accepted=True`, or `False` with
//! reason `Conflicted` (an older policy wins) or `Invalid` (the Gateway's provider cannot apply
//! the settings, e.g. gRPC checks on Lattice). Pure over the index; the write is in `reconcile`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cloudgate_crds::common::{Condition, ConditionStatus, ParentReference, PolicyAncestorStatus, PolicyStatus, GATEWAY_API_GROUP};
use cloudgate_crds::{HealthCheckPolicy, HealthCheckPolicySpec, HealthCheckProtocol as CrdProtocol};
use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};
use cloudgate_translate::model::ObjKey;

use crate::class_params;
use crate::config::ControllerArgs;
use crate::index::Index;

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

/// For each targeted Service, the policy that applies: the oldest (creationTimestamp, then
/// namespace/name), as GEP-713 resolves conflicts.
pub fn winners(policies: &BTreeMap<ObjKey, Arc<HealthCheckPolicy>>) -> BTreeMap<ObjKey, ObjKey> {
    let mut ordered: Vec<(&ObjKey, &Arc<HealthCheckPolicy>)> = policies.iter().collect();
    ordered.sort_by_key(|(k, p)| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), (*k).clone()));
    let mut out = BTreeMap::new();
    for (key, p) in ordered {
        for r in p.spec.target_refs.iter().filter(|r| r.group.is_empty() && r.kind == "Service") {
            out.entry(ObjKey::new(&key.namespace, &r.name)).or_insert_with(|| key.clone());
        }
    }
    out
}

/// The health checks `gateway`'s Services get from winning policies whose settings `provider`
/// supports (the others are reported on the policy and left out).
pub fn for_gateway(ix: &Index, gateway: &ObjKey, provider: &str) -> BTreeMap<ObjKey, HealthCheck> {
    if ix.health_policies.is_empty() {
        return BTreeMap::new();
    }
    let Some(p) = crate::providers::by_name(provider) else { return BTreeMap::new() };
    let won = winners(&ix.health_policies);
    ix.services_of(gateway)
        .into_iter()
        .filter_map(|svc| {
            let policy = ix.health_policies.get(won.get(&svc)?)?;
            let hc = health_check(&policy.spec);
            p.health_check_support(&hc).ok().map(|()| (svc, hc))
        })
        .collect()
}

/// What one ancestor's Accepted condition says.
/// `used`: the Services `gateway`'s routes send to.
fn verdict(
    ix: &Index,
    args: &ControllerArgs,
    key: &ObjKey,
    policy: &HealthCheckPolicy,
    gateway: &ObjKey,
    used: &BTreeSet<ObjKey>,
    won: &BTreeMap<ObjKey, ObjKey>,
) -> (bool, &'static str, String) {
    let targets: Vec<ObjKey> = policy.spec.target_refs.iter().map(|r| ObjKey::new(&key.namespace, &r.name)).filter(|s| used.contains(s)).collect();
    if let Some((svc, other)) = targets.iter().find_map(|s| won.get(s).filter(|w| *w != key).map(|w| (s, w))) {
        return (false, "Conflicted", format!("Service {svc} is also targeted by HealthCheckPolicy {other}, which is older and applies"));
    }
    let class = ix.world.gateways.get(gateway).and_then(|g| ix.world.classes.get(&g.spec.gateway_class_name));
    let settings = match class {
        Some(c) => class_params::resolve(args, c, ix.class_parameters.as_ref()),
        None => Err("the Gateway's class is not found".into()),
    };
    let provider = match settings {
        Ok(s) => s.backend.provider,
        Err(why) => return (false, "Invalid", format!("Gateway {gateway} cannot be provisioned: {why}")),
    };
    let Some(p) = crate::providers::by_name(provider) else { return (false, "Invalid", format!("unknown provider {provider}")) };
    match p.health_check_support(&health_check(&policy.spec)) {
        Ok(()) => (true, "Accepted", format!("Applied to the {provider} health checks of Gateway {gateway}")),
        Err(why) => (false, "Invalid", why),
    }
}

/// The policy's status as cloudgate sees it; entries of other controllers are kept as they are.
pub fn status(ix: &Index, args: &ControllerArgs, key: &ObjKey, now: &str) -> Option<PolicyStatus> {
    let policy = ix.health_policies.get(key)?;
    let won = winners(&ix.health_policies);
    let previous = policy.status.clone().unwrap_or_default();
    let mut ancestors: Vec<PolicyAncestorStatus> = previous.ancestors.iter().filter(|a| a.controller_name != args.controller_name).cloned().collect();
    for (gw_key, gw) in &ix.world.gateways {
        let ours = ix.world.classes.get(&gw.spec.gateway_class_name).is_some_and(|c| c.spec.controller_name == args.controller_name);
        if !ours || gw.metadata.deletion_timestamp.is_some() {
            continue;
        }
        // What the Gateway's routes send to, computed once per Gateway: this runs for every
        // policy whenever a Gateway, route or class changes.
        let used = ix.services_of(gw_key);
        if !policy.spec.target_refs.iter().any(|r| used.contains(&ObjKey::new(&key.namespace, &r.name))) {
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
        let (ok, reason, message) = verdict(ix, args, key, policy, gw_key, &used, &won);
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
                observed_generation: policy.metadata.generation,
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::DynamicObject;
    use serde_json::json;

    use crate::index::Watched;

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

    fn policy(name: &str, created: &str, spec: serde_json::Value) -> DynamicObject {
        obj(json!({"apiVersion": "gateway.cloudgate.io/v1alpha1", "kind": "HealthCheckPolicy",
            "metadata": {"name": name, "namespace": "apps", "generation": 2, "creationTimestamp": created}, "spec": spec}))
    }

    fn index() -> Index {
        let mut ix = Index::new();
        ix.apply(Watched::GatewayClass, &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "cg"}, "spec": {"controllerName": "cloudgate.io/gateway-controller"}}))).unwrap();
        ix.apply(Watched::Gateway, &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "apps"},
            "spec": {"gatewayClassName": "cg", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}))).unwrap();
        ix.apply(Watched::Route(cloudgate_translate::model::RouteKind::Http), &obj(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}))).unwrap();
        ix
    }

    #[test]
    fn the_oldest_policy_applies_and_the_newer_one_says_it_conflicts() {
        let mut ix = index();
        ix.apply(Watched::HealthCheckPolicy, &policy("new", "2026-02-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "path": "/new"}))).unwrap();
        ix.apply(Watched::HealthCheckPolicy, &policy("old", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "path": "/old", "intervalSeconds": 10}))).unwrap();
        let a = args("aws-lattice");
        let hcs = for_gateway(&ix, &ObjKey::new("apps", "gw"), "aws-lattice");
        assert_eq!(hcs[&ObjKey::new("apps", "web")].path.as_deref(), Some("/old"));
        assert_eq!(hcs[&ObjKey::new("apps", "web")].interval_seconds, Some(10));

        let old = status(&ix, &a, &ObjKey::new("apps", "old"), "2026-03-01T00:00:00Z").unwrap();
        let [entry] = old.ancestors.as_slice() else { panic!("{old:?}") };
        assert_eq!(entry.ancestor_ref.name, "gw");
        assert_eq!((entry.conditions[0].status, entry.conditions[0].reason.as_str()), (ConditionStatus::True, "Accepted"));
        assert_eq!(entry.conditions[0].observed_generation, Some(2));
        let new = status(&ix, &a, &ObjKey::new("apps", "new"), "2026-03-01T00:00:00Z").unwrap();
        assert_eq!((new.ancestors[0].conditions[0].status, new.ancestors[0].conditions[0].reason.as_str()), (ConditionStatus::False, "Conflicted"));
    }

    #[test]
    fn settings_the_provider_cannot_apply_are_invalid_and_left_out() {
        let mut ix = index();
        ix.apply(Watched::HealthCheckPolicy, &policy("grpc", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "web"}], "protocol": "GRPC"}))).unwrap();
        let s = status(&ix, &args("aws-lattice"), &ObjKey::new("apps", "grpc"), "2026-03-01T00:00:00Z").unwrap();
        let c = &s.ancestors[0].conditions[0];
        assert_eq!((c.status, c.reason.as_str()), (ConditionStatus::False, "Invalid"));
        assert!(c.message.contains("not gRPC"), "{}", c.message);
        assert!(for_gateway(&ix, &ObjKey::new("apps", "gw"), "aws-lattice").is_empty());
        // Providers that do not apply health check policies say so rather than ignore them.
        let s = status(&ix, &args("gcp"), &ObjKey::new("apps", "grpc"), "2026-03-01T00:00:00Z").unwrap();
        assert!(s.ancestors[0].conditions[0].message.contains("does not apply"), "{:?}", s.ancestors[0]);
    }

    #[test]
    fn a_policy_on_a_service_no_gateway_uses_has_no_ancestors() {
        let mut ix = index();
        ix.apply(Watched::HealthCheckPolicy, &policy("idle", "2026-01-01T00:00:00Z", json!({"targetRefs": [{"group": "", "kind": "Service", "name": "unused"}]}))).unwrap();
        assert!(status(&ix, &args("aws-lattice"), &ObjKey::new("apps", "idle"), "t").unwrap().ancestors.is_empty());
    }
}
