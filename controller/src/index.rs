//! Watch events applied to the pure [`World`], and which Gateways each event can affect.
//!
//! Every watched object arrives as a `DynamicObject` and is converted here with serde: an object
//! that does not fit its type (a CRD from another Gateway API version, a bad write that slipped
//! past validation) is reported and skipped, and the watch goes on. A typed watcher would fail
//! the whole list instead.
//!
//! Which Gateways to reconcile is decided by comparing the new object with the one the index
//! held: an object whose only change is its status (including the status this controller
//! writes) triggers nothing. That is what keeps status writes from causing reconcile storms.

use std::collections::{BTreeMap, BTreeSet};

use cloudgate_translate::model::{Filter, ObjKey, Route, RouteKey, RouteKind};
use cloudgate_translate::World;
use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use gateway_api::experimental::{grpcroutes, httproutes, tcproutes, tlsroutes};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use std::sync::Arc;

use cloudgate_crds::parameters::{CloudGatewayParameters, CloudGatewayParametersSpec};

use crate::policies::{Policy, PolicyKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What the work queue holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkKey {
    /// GatewayClass status (Accepted, SupportedVersion, supportedFeatures).
    Class(String),
    /// Everything one Gateway owns: cloud resources, its status, its routes' status entries.
    Gateway(ObjKey),
    /// A policy's status (which Gateways it reaches, accepted or why not).
    Policy(PolicyKind, ObjKey),
}

impl std::fmt::Display for WorkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkKey::Class(n) => write!(f, "GatewayClass {n}"),
            WorkKey::Gateway(k) => write!(f, "Gateway {k}"),
            WorkKey::Policy(kind, k) => write!(f, "{} {k}", kind.kind()),
        }
    }
}

/// The kinds the controller watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Watched {
    GatewayClass,
    Gateway,
    Route(RouteKind),
    ReferenceGrant,
    BackendTlsPolicy,
    Service,
    EndpointSlice,
    Secret,
    Namespace,
    /// cloudgate's `CloudGatewayParameters` (GatewayClass parametersRef targets).
    ClassParameters,
    /// cloudgate's policies (see [`crate::policies`]).
    Policy(PolicyKind),
}

impl Watched {
    pub fn kind(self) -> &'static str {
        match self {
            Watched::GatewayClass => "GatewayClass",
            Watched::Gateway => "Gateway",
            Watched::Route(k) => k.kind(),
            Watched::ReferenceGrant => "ReferenceGrant",
            Watched::BackendTlsPolicy => "BackendTLSPolicy",
            Watched::Service => "Service",
            Watched::EndpointSlice => "EndpointSlice",
            Watched::Secret => "Secret",
            Watched::Namespace => "Namespace",
            Watched::ClassParameters => "CloudGatewayParameters",
            Watched::Policy(k) => k.kind(),
        }
    }
}

/// What the route status writer needs that [`Route`] does not keep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteRaw {
    pub resource_version: Option<String>,
    /// `status.parents` exactly as read, every controller's entries.
    pub parents: Vec<Value>,
}

/// What a Gateway's last translation read, so a change to it re-queues the Gateway.
#[derive(Clone, Debug, Default, PartialEq)]
struct Deps {
    services: BTreeSet<ObjKey>,
    secrets: BTreeSet<ObjKey>,
}

#[derive(Default)]
pub struct Index {
    pub world: World,
    pub route_raw: BTreeMap<RouteKey, RouteRaw>,
    deps: BTreeMap<ObjKey, Deps>,
    service_users: BTreeMap<ObjKey, BTreeSet<ObjKey>>,
    secret_users: BTreeMap<ObjKey, BTreeSet<ObjKey>>,
    /// What each EndpointSlice last looked like, to tell real endpoint changes from
    /// metadata-only updates (the World keeps slices by Service and does not expose them by name).
    slices: BTreeMap<ObjKey, SliceSeen>,
    /// Per EndpointSlice, the node of each endpoint that names one: GCP's `GCE_VM_IP_PORT`
    /// NEG endpoints need their VM instance, which on GKE is the Pod's node.
    nodes: BTreeMap<ObjKey, Vec<EndpointNode>>,
    /// `CloudGatewayParameters` specs by name; `None` while the CRD is not installed (classes
    /// referencing one then say so).
    pub class_parameters: Option<BTreeMap<String, CloudGatewayParametersSpec>>,
    /// cloudgate's policies, every kind, by kind and `namespace/name`.
    pub policies: BTreeMap<(PolicyKind, ObjKey), Arc<Policy>>,
}

#[derive(Clone, Debug, PartialEq)]
struct EndpointNode {
    ip: String,
    zone: Option<String>,
    node: String,
}

fn endpoint_nodes(s: &EndpointSlice) -> Vec<EndpointNode> {
    s.endpoints
        .iter()
        .flatten()
        .filter_map(|e| {
            let node = e.node_name.clone()?;
            Some(e.addresses.iter().map(move |ip| EndpointNode { ip: ip.clone(), zone: e.zone.clone(), node: node.clone() }))
        })
        .flatten()
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
struct SliceSeen {
    service: Option<ObjKey>,
    content: u64,
}

/// Hash of what translation reads from a slice (addresses, readiness, zones, ports).
fn slice_fingerprint(s: &EndpointSlice) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&(&s.address_type, &s.endpoints, &s.ports)).unwrap_or_default().hash(&mut h);
    h.finish()
}

pub type Triggers = BTreeSet<WorkKey>;

/// `namespace/name` of any object; cluster-scoped objects have an empty namespace.
pub fn obj_key(obj: &DynamicObject) -> ObjKey {
    ObjKey::new(obj.metadata.namespace.clone().unwrap_or_default(), obj.metadata.name.clone().unwrap_or_default())
}

fn convert<T: DeserializeOwned>(obj: &DynamicObject) -> Result<T, String> {
    let v = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn gateways(keys: impl IntoIterator<Item = ObjKey>) -> Triggers {
    keys.into_iter().map(WorkKey::Gateway).collect()
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// The node an endpoint `ip` in `zone` runs on, from the EndpointSlices seen. An endpoint
    /// whose slice gives no zone matches any zone (renderers put those in a default zone).
    pub fn node_of(&self, zone: &str, ip: &str) -> Option<String> {
        let mut fallback = None;
        for e in self.nodes.values().flatten().filter(|e| e.ip == ip) {
            match e.zone.as_deref() {
                Some(z) if z == zone => return Some(e.node.clone()),
                None => fallback = fallback.or_else(|| Some(e.node.clone())),
                Some(_) => {}
            }
        }
        fallback
    }

    /// Applies an added or modified object; returns the work it causes, or why it was skipped.
    pub fn apply(&mut self, kind: Watched, obj: &DynamicObject) -> Result<Triggers, String> {
        let key = obj_key(obj);
        Ok(match kind {
            Watched::GatewayClass => {
                let c: GatewayClass = convert(obj)?;
                let name = key.name.clone();
                let changed = self.world.classes.get(&name).is_none_or(|old| old.spec != c.spec || old.metadata.generation != c.metadata.generation);
                self.world.upsert_class(c);
                if changed { self.class_triggers(&name) } else { Triggers::new() }
            }
            Watched::Gateway => {
                let g: Gateway = convert(obj)?;
                let changed = self.world.gateways.get(&key).is_none_or(|old| {
                    old.spec != g.spec
                        || old.metadata.generation != g.metadata.generation
                        || old.metadata.uid != g.metadata.uid
                        || old.metadata.deletion_timestamp != g.metadata.deletion_timestamp
                });
                self.world.upsert_gateway(g);
                if changed { gateways([key]) } else { Triggers::new() }
            }
            Watched::Route(rk) => {
                let route = match rk {
                    RouteKind::Http => Route::from(&convert::<httproutes::HttpRoute>(obj)?),
                    RouteKind::Grpc => Route::from(&convert::<grpcroutes::GrpcRoute>(obj)?),
                    RouteKind::Tls => Route::from(&convert::<tlsroutes::TlsRoute>(obj)?),
                    RouteKind::Tcp => Route::from(&convert::<tcproutes::TcpRoute>(obj)?),
                };
                let rkey = route.key();
                let parents = obj
                    .data
                    .pointer("/status/parents")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                self.route_raw.insert(rkey.clone(), RouteRaw { resource_version: obj.metadata.resource_version.clone(), parents });
                let status_only = self.world.routes.get(&rkey).is_some_and(|old| without_status(old) == without_status(&route));
                let affected = self.world.upsert_route(route);
                if status_only { Triggers::new() } else { gateways(affected) }
            }
            Watched::ReferenceGrant => {
                let g: ReferenceGrant = convert(obj)?;
                let changed = self.world.grants.get(&key).is_none_or(|old| old.spec != g.spec);
                self.world.upsert_grant(g);
                // A grant can open or close references from any namespace: re-check everything.
                if changed { self.all_gateways() } else { Triggers::new() }
            }
            // Watched so its cache is warm; translation does not read it yet.
            Watched::BackendTlsPolicy => Triggers::new(),
            Watched::Service => {
                let s: Service = convert(obj)?;
                let changed = self.world.services.get(&key).is_none_or(|old| old.spec != s.spec);
                self.world.upsert_service(s);
                if changed { self.users_of(&self.service_users, &key) } else { Triggers::new() }
            }
            Watched::EndpointSlice => {
                let s: EndpointSlice = convert(obj)?;
                let svc = s.metadata.labels.as_ref().and_then(|l| l.get(cloudgate_translate::world::SERVICE_NAME_LABEL)).map(|n| ObjKey::new(&key.namespace, n));
                let seen = SliceSeen { service: svc.clone(), content: slice_fingerprint(&s) };
                let nodes = endpoint_nodes(&s);
                if nodes.is_empty() {
                    self.nodes.remove(&key);
                } else {
                    self.nodes.insert(key.clone(), nodes);
                }
                let old = self.slices.insert(key.clone(), seen.clone());
                self.world.upsert_slice(s);
                if old.as_ref() == Some(&seen) {
                    return Ok(Triggers::new());
                }
                let mut t = Triggers::new();
                for svc in svc.iter().chain(old.and_then(|o| o.service).iter()) {
                    t.extend(self.users_of(&self.service_users, svc));
                }
                t
            }
            Watched::Secret => {
                let s: Secret = convert(obj)?;
                let changed = self.world.secrets.get(&key).is_none_or(|old| old.data != s.data || old.type_ != s.type_);
                self.world.upsert_secret(s);
                if changed { self.users_of(&self.secret_users, &key) } else { Triggers::new() }
            }
            Watched::Namespace => {
                let n: Namespace = convert(obj)?;
                let changed = self.world.namespaces.get(&key.name).is_none_or(|old| old.metadata.labels != n.metadata.labels);
                self.world.upsert_namespace(n);
                if changed { self.gateways_with_routes_in(&key.name) } else { Triggers::new() }
            }
            Watched::ClassParameters => {
                let p: CloudGatewayParameters = convert(obj)?;
                let all = self.class_parameters.get_or_insert_with(BTreeMap::new);
                let changed = all.get(&key.name) != Some(&p.spec);
                all.insert(key.name.clone(), p.spec);
                if changed { self.classes_using(&key.name) } else { Triggers::new() }
            }
            Watched::Policy(kind) => {
                let p = crate::policies::from_object(kind, obj)?;
                let old = self.policies.get(&(kind, key.clone())).cloned();
                if old.as_ref().is_some_and(|o| o.same_spec(&p)) {
                    // Only its status changed (ours, most likely): remember it, nothing to do.
                    self.policies.insert((kind, key), Arc::new(p));
                    return Ok(Triggers::new());
                }
                let mut t = old.map(|o| self.policy_users(&o)).unwrap_or_default();
                let p = Arc::new(p);
                t.extend(self.policy_users(&p));
                self.policies.insert((kind, key.clone()), p);
                t.insert(WorkKey::Policy(kind, key));
                t
            }
        })
    }

    /// Applies a deletion (or an object found missing after a re-list).
    pub fn delete(&mut self, kind: Watched, key: &ObjKey) -> Triggers {
        match kind {
            Watched::GatewayClass => {
                let t = self.class_triggers(&key.name);
                self.world.remove_class(&key.name);
                t
            }
            Watched::Gateway => {
                self.world.remove_gateway(key);
                gateways([key.clone()])
            }
            Watched::Route(rk) => {
                let rkey = RouteKey { kind: rk, namespace: key.namespace.clone(), name: key.name.clone() };
                self.route_raw.remove(&rkey);
                gateways(self.world.remove_route(&rkey))
            }
            Watched::ReferenceGrant => {
                self.world.remove_grant(key);
                self.all_gateways()
            }
            Watched::BackendTlsPolicy => Triggers::new(),
            Watched::Service => {
                self.world.remove_service(key);
                self.users_of(&self.service_users, key)
            }
            Watched::EndpointSlice => {
                self.world.remove_slice(key);
                self.nodes.remove(key);
                match self.slices.remove(key).and_then(|s| s.service) {
                    Some(svc) => self.users_of(&self.service_users, &svc),
                    None => Triggers::new(),
                }
            }
            Watched::Secret => {
                self.world.remove_secret(key);
                self.users_of(&self.secret_users, key)
            }
            Watched::Namespace => {
                self.world.remove_namespace(&key.name);
                self.gateways_with_routes_in(&key.name)
            }
            Watched::ClassParameters => {
                self.class_parameters.get_or_insert_with(BTreeMap::new).remove(&key.name);
                self.classes_using(&key.name)
            }
            Watched::Policy(kind) => match self.policies.remove(&(kind, key.clone())) {
                Some(p) => self.policy_users(&p),
                None => Triggers::new(),
            },
        }
    }

    /// What `gateway`'s translation reads beyond its routes, from the World as it is now.
    fn deps_of(&self, gateway: &ObjKey) -> Deps {
        match self.world.gateways.get(gateway) {
            None => Deps::default(),
            Some(gw) => {
                let mut d = Deps::default();
                for route in self.world.routes_for_gateway(gateway) {
                    for rule in &route.rules {
                        let mirrors = rule.filters.iter().chain(rule.backends.iter().flat_map(|b| b.filters.iter())).filter_map(|f| match f {
                            Filter::RequestMirror { backend, .. } => Some(backend),
                            _ => None,
                        });
                        for b in rule.backends.iter().chain(mirrors) {
                            if b.group.is_empty() && b.kind == "Service" {
                                d.services.insert(ObjKey::new(b.namespace.as_deref().unwrap_or(&route.namespace), &b.name));
                            }
                        }
                    }
                }
                let ns = gw.metadata.namespace.clone().unwrap_or_default();
                for l in &gw.spec.listeners {
                    for c in l.tls.iter().flat_map(|t| t.certificate_refs.iter().flatten()) {
                        let core = c.group.as_deref().unwrap_or("").is_empty();
                        if core && c.kind.as_deref().unwrap_or("Secret") == "Secret" {
                            d.secrets.insert(ObjKey::new(c.namespace.as_deref().unwrap_or(&ns), &c.name));
                        }
                    }
                }
                d
            }
        }
    }

    /// The Services `gateway`'s routes send to (backendRefs and mirrors), whether or not they
    /// exist: what a policy attached to a Service reaches through.
    pub fn services_of(&self, gateway: &ObjKey) -> BTreeSet<ObjKey> {
        self.deps_of(gateway).services
    }

    /// Records what `gateway`'s translation depends on beyond its routes (which the World
    /// indexes itself): the Services its routes' backendRefs name, resolved or not (a missing
    /// Service that appears must fix `BackendNotFound`), and the Secrets its listeners name.
    /// Called under the same lock as the translation, so no event can fall between the two.
    pub fn record_dependencies(&mut self, gateway: &ObjKey) {
        let deps = self.deps_of(gateway);
        let old = self.deps.remove(gateway).unwrap_or_default();
        for s in &old.services {
            remove_user(&mut self.service_users, s, gateway);
        }
        for s in &old.secrets {
            remove_user(&mut self.secret_users, s, gateway);
        }
        for s in &deps.services {
            self.service_users.entry(s.clone()).or_default().insert(gateway.clone());
        }
        for s in &deps.secrets {
            self.secret_users.entry(s.clone()).or_default().insert(gateway.clone());
        }
        if deps != Deps::default() {
            self.deps.insert(gateway.clone(), deps);
        }
    }

    /// Routes carrying a `status.parents` entry of ours for `gateway`: the ones to clean when
    /// a route stops naming the Gateway, or the Gateway goes away.
    pub fn routes_with_entries_for(&self, gateway: &ObjKey, controller_name: &str) -> Vec<RouteKey> {
        self.route_raw
            .iter()
            .filter(|(rk, raw)| {
                raw.parents.iter().any(|p| {
                    p.get("controllerName").and_then(Value::as_str) == Some(controller_name)
                        && p.get("parentRef")
                            .and_then(cloudgate_translate::status::parent_ref_from_json)
                            .and_then(|pr| pr.gateway(&rk.namespace))
                            .as_ref()
                            == Some(gateway)
                })
            })
            .map(|(rk, _)| rk.clone())
            .collect()
    }

    pub fn all_gateways(&self) -> Triggers {
        gateways(self.world.gateways.keys().cloned())
    }

    fn class_triggers(&self, class: &str) -> Triggers {
        let mut t = gateways(self.world.gateways.iter().filter(|(_, g)| g.spec.gateway_class_name == class).map(|(k, _)| k.clone()));
        t.insert(WorkKey::Class(class.to_string()));
        t
    }

    /// The Gateways whose render `p` feeds (they re-render when it changes).
    fn policy_users(&self, p: &Policy) -> Triggers {
        gateways(crate::policies::gateways_reached(self, p, |s| self.service_users_of(s)))
    }

    /// Every policy (at startup: each computes its status once).
    pub fn all_policies(&self) -> Triggers {
        self.policies.keys().map(|(kind, k)| WorkKey::Policy(*kind, k.clone())).collect()
    }

    /// The Gateways sending to Service `svc`, as their last reconcile recorded.
    pub fn service_users_of(&self, svc: &ObjKey) -> Vec<ObjKey> {
        self.service_users.get(svc).map(|u| u.iter().cloned().collect()).unwrap_or_default()
    }

    /// The policies whose status `gateway` can change: those reaching it now, and those whose
    /// status still lists it (ours) as an ancestor.
    pub fn policies_reaching(&self, gateway: &ObjKey, controller_name: &str) -> Triggers {
        self.policies
            .iter()
            .filter(|(_, p)| {
                let listed = p.status.iter().flat_map(|s| s.ancestors.iter()).any(|a| {
                    a.controller_name == controller_name
                        && a.ancestor_ref.name == gateway.name
                        && a.ancestor_ref.namespace.as_deref().unwrap_or(&p.key.namespace) == gateway.namespace
                });
                listed || crate::policies::gateways_reached(self, p, |s| self.service_users_of(s)).contains(gateway)
            })
            .map(|((kind, k), _)| WorkKey::Policy(*kind, k.clone()))
            .collect()
    }

    /// The classes whose parametersRef names CloudGatewayParameters `name`, and their Gateways.
    fn classes_using(&self, name: &str) -> Triggers {
        let classes: Vec<String> = self
            .world
            .classes
            .iter()
            .filter(|(_, c)| c.spec.parameters_ref.as_ref().is_some_and(|r| r.kind == crate::class_params::PARAMETERS_KIND && r.name == name))
            .map(|(n, _)| n.clone())
            .collect();
        classes.iter().flat_map(|c| self.class_triggers(c)).collect()
    }

    fn users_of(&self, users: &BTreeMap<ObjKey, BTreeSet<ObjKey>>, key: &ObjKey) -> Triggers {
        gateways(users.get(key).into_iter().flatten().cloned())
    }

    /// Namespace labels only matter to routes in that namespace (allowedRoutes selectors).
    fn gateways_with_routes_in(&self, namespace: &str) -> Triggers {
        gateways(
            self.world
                .routes
                .values()
                .filter(|r| r.namespace == namespace)
                .flat_map(|r| r.parent_refs.iter().filter_map(|p| p.gateway(&r.namespace)).collect::<Vec<_>>()),
        )
    }
}

fn remove_user(users: &mut BTreeMap<ObjKey, BTreeSet<ObjKey>>, dep: &ObjKey, gateway: &ObjKey) {
    if let Some(set) = users.get_mut(dep) {
        set.remove(gateway);
        if set.is_empty() {
            users.remove(dep);
        }
    }
}

fn without_status(r: &Route) -> Route {
    Route { status_parents: Vec::new(), ..r.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(v: Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    fn class(controller: &str) -> DynamicObject {
        dynamic(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "cg", "generation": 1}, "spec": {"controllerName": controller}}))
    }

    fn gateway(rv: &str, status: Value) -> DynamicObject {
        dynamic(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "ns", "generation": 1, "resourceVersion": rv, "uid": "u1"},
            "spec": {"gatewayClassName": "cg", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                "tls": null}]},
            "status": status}))
    }

    fn route(generation: i64, backend: &str, status: Value) -> DynamicObject {
        dynamic(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns", "generation": generation, "resourceVersion": format!("{generation}")},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]},
            "status": status}))
    }

    fn slice(ips: &[&str]) -> DynamicObject {
        dynamic(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "svc-abc", "namespace": "ns", "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": ips.iter().map(|ip| json!({"addresses": [ip]})).collect::<Vec<_>>()}))
    }

    fn gw() -> WorkKey {
        WorkKey::Gateway(ObjKey::new("ns", "gw"))
    }

    fn just(k: WorkKey) -> Triggers {
        [k].into_iter().collect()
    }

    #[test]
    fn endpoint_nodes_are_looked_up_by_zone_and_ip() {
        let mut ix = Index::new();
        let s = dynamic(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "svc-abc", "namespace": "ns", "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": "IPv4", "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "node-a", "zone": "z-a"},
                          {"addresses": ["10.0.0.2"], "nodeName": "node-b"},
                          {"addresses": ["10.0.0.3"], "zone": "z-a"}]}));
        ix.apply(Watched::EndpointSlice, &s).unwrap();
        assert_eq!(ix.node_of("z-a", "10.0.0.1").as_deref(), Some("node-a"));
        assert_eq!(ix.node_of("z-b", "10.0.0.1"), None, "another zone's endpoint");
        assert_eq!(ix.node_of("z-x", "10.0.0.2").as_deref(), Some("node-b"), "no zone in the slice: any zone");
        assert_eq!(ix.node_of("z-a", "10.0.0.3"), None, "no nodeName");
        ix.delete(Watched::EndpointSlice, &ObjKey::new("ns", "svc-abc"));
        assert_eq!(ix.node_of("z-a", "10.0.0.1"), None);
    }

    #[test]
    fn gateway_status_writes_trigger_nothing() {
        let mut ix = Index::new();
        assert_eq!(ix.apply(Watched::Gateway, &gateway("1", Value::Null)).unwrap(), just(gw()));
        let status = json!({"conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        assert!(ix.apply(Watched::Gateway, &gateway("2", status)).unwrap().is_empty());
        // ...but the index holds the new status, which the next status computation starts from.
        assert!(ix.world.gateways[&ObjKey::new("ns", "gw")].status.is_some());
    }

    #[test]
    fn route_status_writes_trigger_nothing_but_spec_changes_do() {
        let mut ix = Index::new();
        ix.apply(Watched::Gateway, &gateway("1", Value::Null)).unwrap();
        let rk = Watched::Route(RouteKind::Http);
        assert_eq!(ix.apply(rk, &route(1, "svc", Value::Null)).unwrap(), just(gw()));
        let status = json!({"parents": [{"parentRef": {"name": "gw"}, "controllerName": "x", "conditions": []}]});
        assert!(ix.apply(rk, &route(1, "svc", status)).unwrap().is_empty());
        let key = RouteKey { kind: RouteKind::Http, namespace: "ns".into(), name: "r".into() };
        assert_eq!(ix.route_raw[&key].parents.len(), 1);
        assert_eq!(ix.apply(rk, &route(2, "svc2", Value::Null)).unwrap(), just(gw()));
    }

    #[test]
    fn malformed_objects_are_skipped_with_a_reason() {
        let mut ix = Index::new();
        let bad = dynamic(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "bad", "namespace": "ns"}, "spec": {"parentRefs": "not a list"}}));
        let err = ix.apply(Watched::Route(RouteKind::Http), &bad).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        assert!(ix.world.routes.is_empty());
    }

    #[test]
    fn endpoint_changes_reach_the_gateways_that_use_the_service() {
        let mut ix = Index::new();
        ix.apply(Watched::Gateway, &gateway("1", Value::Null)).unwrap();
        ix.apply(Watched::Route(RouteKind::Http), &route(1, "svc", Value::Null)).unwrap();
        // Before the Gateway's first translation nothing is known to use the Service; that
        // translation reads the current slices anyway.
        assert!(ix.apply(Watched::EndpointSlice, &slice(&["10.0.0.1"])).unwrap().is_empty());
        ix.record_dependencies(&ObjKey::new("ns", "gw"));
        assert_eq!(ix.apply(Watched::EndpointSlice, &slice(&["10.0.0.1", "10.0.0.2"])).unwrap(), just(gw()));
        assert!(ix.apply(Watched::EndpointSlice, &slice(&["10.0.0.1", "10.0.0.2"])).unwrap().is_empty(), "no change");
        assert_eq!(ix.delete(Watched::EndpointSlice, &ObjKey::new("ns", "svc-abc")), just(gw()));
        // A Service that does not exist yet is a dependency too (BackendNotFound must clear).
        let svc = dynamic(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "ns"},
            "spec": {"ports": [{"port": 80}]}}));
        assert_eq!(ix.apply(Watched::Service, &svc).unwrap(), just(gw()));
        // The route moves to another Service: the old one no longer triggers the Gateway.
        ix.apply(Watched::Route(RouteKind::Http), &route(2, "other", Value::Null)).unwrap();
        ix.record_dependencies(&ObjKey::new("ns", "gw"));
        assert!(ix.delete(Watched::Service, &ObjKey::new("ns", "svc")).is_empty());
    }

    #[test]
    fn class_changes_reach_its_gateways_and_itself() {
        let mut ix = Index::new();
        ix.apply(Watched::Gateway, &gateway("1", Value::Null)).unwrap();
        let t = ix.apply(Watched::GatewayClass, &class("cloudgate.io/gateway-controller")).unwrap();
        assert_eq!(t, [WorkKey::Class("cg".into()), gw()].into_iter().collect());
        assert!(ix.apply(Watched::GatewayClass, &class("cloudgate.io/gateway-controller")).unwrap().is_empty());
    }

    #[test]
    fn stale_route_entries_are_found() {
        let mut ix = Index::new();
        let status = json!({"parents": [
            {"parentRef": {"name": "gw"}, "controllerName": "ours", "conditions": []},
            {"parentRef": {"name": "gw", "namespace": "other"}, "controllerName": "ours", "conditions": []}]});
        ix.apply(Watched::Route(RouteKind::Http), &route(1, "svc", status)).unwrap();
        assert_eq!(ix.routes_with_entries_for(&ObjKey::new("ns", "gw"), "ours").len(), 1);
        assert_eq!(ix.routes_with_entries_for(&ObjKey::new("other", "gw"), "ours").len(), 1);
        assert!(ix.routes_with_entries_for(&ObjKey::new("ns", "gw"), "theirs").is_empty());
    }
}
