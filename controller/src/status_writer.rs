//! Writes status, only as the leader and only when something other than a timestamp changed.
//!
//! - Gateway and GatewayClass: server-side apply of `status` on the `/status` subresource with
//!   field manager `cloudgate` (their status is ours alone).
//! - Routes: `status.parents` is an atomic list shared with every other controller the route
//!   names, so server-side apply would make us take over (and drop) their entries. Instead the
//!   list is merged by [`cloudgate_translate::status::merge_route_parents`] (theirs kept, ours
//!   replaced) and written with a JSON merge patch carrying `metadata.resourceVersion`: if anyone
//!   wrote in between, the API server answers 409 and we re-read and merge again.

use cloudgate_translate::model::{ObjKey, ParentRef, RouteKey, RouteKind};
use cloudgate_translate::status::{self, RouteParentStatus};
use gateway_api::experimental::gatewayclasses::{GatewayClass, GatewayClassStatus};
use gateway_api::experimental::gateways::{Gateway, GatewayStatus};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

use crate::errors::{is_status, ReconcileError};
use crate::index::RouteRaw;
use crate::metrics::Metrics;

pub const FIELD_MANAGER: &str = "cloudgate";
/// Attempts at a route status write that keeps meeting concurrent writers.
const ROUTE_WRITE_ATTEMPTS: usize = 4;

/// One route's status update for one Gateway.
#[derive(Clone, Debug)]
pub struct RouteWrite {
    pub route: RouteKey,
    /// The route as the index last saw it (resourceVersion, every controller's entries).
    pub raw: RouteRaw,
    pub spec_parent_refs: Vec<ParentRef>,
    /// Our new entries for the parentRefs that name the Gateway (empty: remove ours for it).
    pub fresh: Vec<RouteParentStatus>,
}

#[derive(Clone)]
pub struct StatusWriter {
    client: Client,
    controller_name: String,
    route_apis: Arc<BTreeMap<RouteKind, ApiResource>>,
    leader: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

impl StatusWriter {
    pub fn new(
        client: Client,
        controller_name: String,
        route_apis: BTreeMap<RouteKind, ApiResource>,
        leader: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        StatusWriter { client, controller_name, route_apis: Arc::new(route_apis), leader, metrics }
    }

    fn ensure_leader(&self) -> Result<(), ReconcileError> {
        if *self.leader.borrow() { Ok(()) } else { Err(ReconcileError::NotLeader) }
    }

    /// Returns whether a write was made.
    pub async fn gateway(&self, key: &ObjKey, current: Option<&GatewayStatus>, next: &GatewayStatus) -> Result<bool, ReconcileError> {
        if !status::gateway_status_changed(current, next) {
            return Ok(false);
        }
        self.ensure_leader()?;
        let api: Api<Gateway> = Api::namespaced(self.client.clone(), &key.namespace);
        let body = json!({"apiVersion": Gateway::api_version(&()), "kind": Gateway::kind(&()), "status": next});
        match api.patch_status(&key.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await {
            Ok(_) => {}
            // Deleted meanwhile: nothing left to describe.
            Err(e) if is_status(&e, 404) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.metrics.status_written("Gateway");
        tracing::debug!(gateway = %key, "gateway status written");
        Ok(true)
    }

    pub async fn class(&self, class: &GatewayClass, next: &GatewayClassStatus) -> Result<bool, ReconcileError> {
        if !status::class_status_changed(class.status.as_ref(), next) {
            return Ok(false);
        }
        self.ensure_leader()?;
        let name = class.metadata.name.clone().unwrap_or_default();
        let api: Api<GatewayClass> = Api::all(self.client.clone());
        let body = json!({"apiVersion": GatewayClass::api_version(&()), "kind": GatewayClass::kind(&()), "status": next});
        match api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.metrics.status_written("GatewayClass");
        Ok(true)
    }

    /// Merges and writes one route's `status.parents` for `gateway`. Returns whether a write was
    /// made.
    pub async fn route(&self, gateway: &ObjKey, w: &RouteWrite) -> Result<bool, ReconcileError> {
        let Some(ar) = self.route_apis.get(&w.route.kind) else { return Ok(false) };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &w.route.namespace, ar);
        let mut current = w.raw.parents.clone();
        let mut spec_refs = w.spec_parent_refs.clone();
        let mut resource_version = w.raw.resource_version.clone();
        for _ in 0..ROUTE_WRITE_ATTEMPTS {
            let Some(merged) = status::merge_route_parents(&current, &spec_refs, &w.route.namespace, &self.controller_name, gateway, &w.fresh)
            else {
                return Ok(false);
            };
            self.ensure_leader()?;
            let patch = json!({"metadata": {"resourceVersion": resource_version}, "status": {"parents": merged}});
            match api.patch_status(&w.route.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.metrics.status_written(w.route.kind.kind());
                    tracing::debug!(route = %w.route, "route status written");
                    return Ok(true);
                }
                Err(e) if is_status(&e, 404) => return Ok(false),
                Err(e) if is_status(&e, 409) => {
                    // Someone wrote in between (another controller's entries, a spec change):
                    // read again and merge against what is there now.
                    let obj = match api.get_status(&w.route.name).await {
                        Ok(o) => o,
                        Err(e) if is_status(&e, 404) => return Ok(false),
                        Err(e) => return Err(e.into()),
                    };
                    resource_version = obj.metadata.resource_version.clone();
                    current = obj.data.pointer("/status/parents").and_then(Value::as_array).cloned().unwrap_or_default();
                    spec_refs = obj
                        .data
                        .pointer("/spec/parentRefs")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(status::parent_ref_from_json).collect())
                        .unwrap_or_default();
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ReconcileError::Conflict(w.route.to_string()))
    }
}
