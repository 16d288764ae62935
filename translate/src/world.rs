//! The pure index of every object translation reads. The controller applies watch events to
//! it (upsert/remove); `cloudgate plan` fills it from manifests. Lookups are by key, and routes
//! are indexed by the Gateways their parentRefs name, so translating one Gateway touches only
//! what that Gateway depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gateway_api::experimental::{gatewayclasses::GatewayClass, gateways::Gateway, referencegrants::ReferenceGrant};
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::{ObjKey, Route, RouteKey};

/// Label EndpointSlices carry to name their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

fn key_of(meta: &ObjectMeta) -> ObjKey {
    ObjKey::new(meta.namespace.clone().unwrap_or_else(|| "default".into()), meta.name.clone().unwrap_or_default())
}

#[derive(Clone, Default)]
pub struct World {
    /// Value of the `gateway.networking.k8s.io/bundle-version` annotation on the installed CRDs.
    pub bundle_version: Option<String>,
    pub classes: BTreeMap<String, Arc<GatewayClass>>,
    pub gateways: BTreeMap<ObjKey, Arc<Gateway>>,
    pub routes: BTreeMap<RouteKey, Arc<Route>>,
    routes_by_gateway: BTreeMap<ObjKey, BTreeSet<RouteKey>>,
    pub grants: BTreeMap<ObjKey, Arc<ReferenceGrant>>,
    pub services: BTreeMap<ObjKey, Arc<Service>>,
    /// EndpointSlices grouped by the Service they belong to, then by slice name.
    slices: BTreeMap<ObjKey, BTreeMap<String, Arc<EndpointSlice>>>,
    slice_owner: BTreeMap<ObjKey, ObjKey>,
    pub secrets: BTreeMap<ObjKey, Arc<Secret>>,
    pub namespaces: BTreeMap<String, Arc<Namespace>>,
}

impl World {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn upsert_class(&mut self, c: GatewayClass) {
        self.classes.insert(c.metadata.name.clone().unwrap_or_default(), Arc::new(c));
    }
    pub fn remove_class(&mut self, name: &str) {
        self.classes.remove(name);
    }

    pub fn upsert_gateway(&mut self, g: Gateway) {
        self.gateways.insert(key_of(&g.metadata), Arc::new(g));
    }
    pub fn remove_gateway(&mut self, k: &ObjKey) {
        self.gateways.remove(k);
    }

    /// Inserts or replaces a route; returns the Gateways it referenced before and after, which
    /// are the Gateways whose translation this change can affect.
    pub fn upsert_route(&mut self, r: Route) -> BTreeSet<ObjKey> {
        let key = r.key();
        let mut affected = self.remove_route(&key);
        for gw in r.parent_refs.iter().filter_map(|p| p.gateway(&r.namespace)) {
            self.routes_by_gateway.entry(gw.clone()).or_default().insert(key.clone());
            affected.insert(gw);
        }
        self.routes.insert(key, Arc::new(r));
        affected
    }

    pub fn remove_route(&mut self, key: &RouteKey) -> BTreeSet<ObjKey> {
        let mut affected = BTreeSet::new();
        if let Some(old) = self.routes.remove(key) {
            for gw in old.parent_refs.iter().filter_map(|p| p.gateway(&old.namespace)) {
                if let Some(set) = self.routes_by_gateway.get_mut(&gw) {
                    set.remove(key);
                    if set.is_empty() {
                        self.routes_by_gateway.remove(&gw);
                    }
                }
                affected.insert(gw);
            }
        }
        affected
    }

    /// Routes with a parentRef naming this Gateway, in key order.
    pub fn routes_for_gateway(&self, gw: &ObjKey) -> impl Iterator<Item = &Arc<Route>> {
        self.routes_by_gateway.get(gw).into_iter().flatten().filter_map(|k| self.routes.get(k))
    }

    pub fn upsert_grant(&mut self, g: ReferenceGrant) {
        self.grants.insert(key_of(&g.metadata), Arc::new(g));
    }
    pub fn remove_grant(&mut self, k: &ObjKey) {
        self.grants.remove(k);
    }
    /// ReferenceGrants live in the namespace of the referent.
    pub fn grants_in(&self, namespace: &str) -> impl Iterator<Item = &Arc<ReferenceGrant>> {
        let start = ObjKey::new(namespace, "");
        self.grants.range(start..).take_while(move |(k, _)| k.namespace == namespace).map(|(_, v)| v)
    }

    pub fn upsert_service(&mut self, s: Service) {
        self.services.insert(key_of(&s.metadata), Arc::new(s));
    }
    pub fn remove_service(&mut self, k: &ObjKey) {
        self.services.remove(k);
    }

    pub fn upsert_slice(&mut self, s: EndpointSlice) {
        let key = key_of(&s.metadata);
        self.remove_slice(&key);
        let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else { return };
        let owner = ObjKey::new(&key.namespace, svc);
        self.slices.entry(owner.clone()).or_default().insert(key.name.clone(), Arc::new(s));
        self.slice_owner.insert(key, owner);
    }
    /// Returns the Service the slice belonged to.
    pub fn remove_slice(&mut self, k: &ObjKey) -> Option<ObjKey> {
        let owner = self.slice_owner.remove(k)?;
        if let Some(m) = self.slices.get_mut(&owner) {
            m.remove(&k.name);
            if m.is_empty() {
                self.slices.remove(&owner);
            }
        }
        Some(owner)
    }
    pub fn slices_for(&self, svc: &ObjKey) -> impl Iterator<Item = &Arc<EndpointSlice>> {
        self.slices.get(svc).into_iter().flat_map(|m| m.values())
    }

    pub fn upsert_secret(&mut self, s: Secret) {
        self.secrets.insert(key_of(&s.metadata), Arc::new(s));
    }
    pub fn remove_secret(&mut self, k: &ObjKey) {
        self.secrets.remove(k);
    }

    pub fn upsert_namespace(&mut self, n: Namespace) {
        self.namespaces.insert(n.metadata.name.clone().unwrap_or_default(), Arc::new(n));
    }
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Labels of a namespace; a namespace the index has not seen has only the
    /// `kubernetes.io/metadata.name` label the API server always sets.
    pub fn namespace_labels(&self, name: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespaces
            .get(name)
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        labels.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| name.to_string());
        labels
    }
}
