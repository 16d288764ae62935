//! Reconciling one Gateway (and one GatewayClass): the flow of DESIGN.md, end to end.
//!
//! ```text
//! ours?  ── no ──► (our finalizer? clean up the cloud, remove it) ──► done
//!   │ yes
//! finalizer ► translate (pure, under the index lock) ► route status
//!           ► render (pure) ► observe ► diff (pure) ► apply ► Gateway status ► events
//! deleted? ► observe ► diff(nothing desired) ► apply ► observe: empty? ► drop finalizer
//! ```
//!
//! Cloud resources are changed only for Gateways whose class is ours. The finalizer name is
//! shared by every cloudgate installation, so the controllerName that added it is recorded in the
//! [`MANAGED_BY_ANNOTATION`] annotation beside it, and an instance only ever cleans up and
//! removes the finalizer of Gateways it manages itself. A Gateway whose class
//! cannot be found is left alone (deleting a GatewayClass by mistake must not tear down every
//! load balancer); one whose class names another controller is cleaned up, since we no longer
//! manage it. A Gateway that is not Accepted, or whose plan cannot be rendered, keeps the
//! resources it has: a typo in a spec should show up in status, not take the address away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudgate_provider::cloud::{CloudError, Owner};
use cloudgate_provider::diff::{diff, ChangeSet, ObservedResource};
use cloudgate_provider::{RenderContext, ResourceGraph};
use cloudgate_translate::conditions::{kind, reason};
use cloudgate_translate::gateway::GatewayTranslation;
use cloudgate_translate::gateway_class;
use cloudgate_translate::model::{ObjKey, RouteKey};
use cloudgate_translate::status::{self, Provisioning, RouteParentStatus};
use cloudgate_translate::translate_gateway;
use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::watch;

use crate::errors::{is_status, ReconcileError};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::queue::{jittered, Outcome};
use crate::status_writer::{RouteWrite, StatusWriter};

/// Marks Gateways whose cloud resources still exist; removed once they are gone.
pub const FINALIZER: &str = "cloudgate.io/cloud-resources";
/// Which controllerName added [`FINALIZER`]: two cloudgate installations in one cluster (other
/// controllerNames) must not remove each other's finalizer.
pub const MANAGED_BY_ANNOTATION: &str = "cloudgate.io/controller-name";
/// How soon to look again while the cloud is still provisioning or deleting.
const PROVISIONING_POLL: Duration = Duration::from_secs(5);

pub struct Context {
    pub client: Client,
    pub index: Arc<Mutex<Index>>,
    pub provider: Arc<dyn cloudgate_provider::cloud::CloudProvider>,
    pub kind_order: &'static [&'static str],
    pub render_ctx: RenderContext,
    pub controller_name: String,
    pub writer: StatusWriter,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub leader: watch::Receiver<bool>,
    pub resync: Duration,
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// What the index says about one Gateway, taken under the lock and used after it.
enum Snapshot {
    /// Deleted (and finalized) or never seen.
    Gone,
    /// The class is missing: nothing is touched until it is back.
    ClassUnknown,
    /// Another controller's class, or the Gateway is being deleted: remove what we own.
    CleanUp { gw: Arc<Gateway>, routes: Vec<RouteWrite>, why: &'static str },
    Ours { gw: Arc<Gateway>, translation: Box<GatewayTranslation>, routes: Vec<RouteWrite> },
}

fn has_finalizer(gw: &Gateway) -> bool {
    gw.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER)
}

/// Our finalizer, put there by this controllerName.
fn managed_by(gw: &Gateway, controller_name: &str) -> bool {
    has_finalizer(gw) && gw.metadata.annotations.as_ref().and_then(|a| a.get(MANAGED_BY_ANNOTATION)).map(String::as_str) == Some(controller_name)
}

impl Context {
    fn snapshot(&self, key: &ObjKey) -> Snapshot {
        let mut ix = self.index.lock().unwrap_or_else(|p| p.into_inner());
        ix.record_dependencies(key);
        let Some(gw) = ix.world.gateways.get(key).cloned() else { return Snapshot::Gone };
        let class = ix.world.classes.get(&gw.spec.gateway_class_name).cloned();
        let ours = class.as_ref().map(|c| c.spec.controller_name == self.controller_name);
        let deleting = gw.metadata.deletion_timestamp.is_some();
        let stale_routes = |ix: &Index, skip: &[RouteKey]| -> Vec<RouteWrite> {
            ix.routes_with_entries_for(key, &self.controller_name)
                .into_iter()
                .filter(|rk| !skip.contains(rk))
                .filter_map(|rk| route_write(ix, &rk, Vec::new()))
                .collect()
        };
        match (ours, deleting) {
            (_, true) => Snapshot::CleanUp { gw, routes: stale_routes(&ix, &[]), why: "deleted" },
            (None, false) => Snapshot::ClassUnknown,
            (Some(false), false) => Snapshot::CleanUp { gw, routes: stale_routes(&ix, &[]), why: "class belongs to another controller" },
            (Some(true), false) => {
                let Some(t) = translate_gateway(&ix.world, key, self.provider.capabilities()) else { return Snapshot::Gone };
                let now = now();
                // Our entries per route, for every parentRef of that route naming this Gateway.
                let mut per_route: Vec<(RouteKey, Vec<RouteParentStatus>)> = Vec::new();
                for v in &t.routes {
                    let Some(route) = ix.world.routes.get(&v.route) else { continue };
                    let entry = status::route_parent_status(v, &self.controller_name, &route.status_parents, &now);
                    match per_route.iter_mut().find(|(k, _)| *k == v.route) {
                        Some((_, es)) => es.push(entry),
                        None => per_route.push((v.route.clone(), vec![entry])),
                    }
                }
                let touched: Vec<RouteKey> = per_route.iter().map(|(k, _)| k.clone()).collect();
                let mut routes: Vec<RouteWrite> = per_route.into_iter().filter_map(|(rk, fresh)| route_write(&ix, &rk, fresh)).collect();
                // Routes that stopped naming this Gateway keep a stale entry of ours: clear it.
                routes.extend(stale_routes(&ix, &touched));
                Snapshot::Ours { gw, translation: Box::new(t), routes }
            }
        }
    }

    async fn write_routes(&self, key: &ObjKey, routes: &[RouteWrite]) -> Result<(), ReconcileError> {
        let mut first_err = None;
        for w in routes {
            if let Err(e) = self.writer.route(key, w).await {
                tracing::warn!(route = %w.route, error = %e, "route status write failed");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn event(&self, gw: &Gateway, type_: EventType, reason: &str, note: String) {
        let ev = Event { type_, reason: reason.into(), note: Some(truncate(note, 1000)), action: "Reconcile".into(), secondary: None };
        if let Err(e) = self.recorder.publish(&ev, &gw.object_ref(&())).await {
            tracing::warn!(reason, error = %e, "could not publish event");
        }
    }

    fn owner(&self, key: &ObjKey) -> Owner {
        Owner { cluster_id: self.render_ctx.cluster_id.clone(), gateway: key.clone() }
    }

    async fn observe(&self, key: &ObjKey) -> Result<Vec<ObservedResource>, CloudError> {
        self.provider.observe(&self.owner(key), &self.render_ctx).await
    }
}

fn route_write(ix: &Index, rk: &RouteKey, fresh: Vec<RouteParentStatus>) -> Option<RouteWrite> {
    let raw = ix.route_raw.get(rk)?.clone();
    let spec_parent_refs = ix.world.routes.get(rk).map(|r| r.parent_refs.clone()).unwrap_or_default();
    Some(RouteWrite { route: rk.clone(), raw, spec_parent_refs, fresh })
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

pub async fn reconcile_gateway(ctx: &Context, key: &ObjKey) -> Result<Outcome, ReconcileError> {
    match ctx.snapshot(key) {
        Snapshot::Gone => Ok(Outcome::Forget),
        Snapshot::ClassUnknown => {
            tracing::debug!("GatewayClass not found; leaving the Gateway alone");
            Ok(Outcome::Forget)
        }
        Snapshot::CleanUp { gw, routes, why } => clean_up(ctx, key, &gw, &routes, why).await,
        Snapshot::Ours { gw, translation, routes } => provision(ctx, key, &gw, &translation, &routes).await,
    }
}

async fn provision(ctx: &Context, key: &ObjKey, gw: &Gateway, t: &GatewayTranslation, routes: &[RouteWrite]) -> Result<Outcome, ReconcileError> {
    ensure_finalizer(ctx, key, gw).await?;

    // Route conditions come from translation alone; they are right whatever the cloud does.
    let routes_result = ctx.write_routes(key, routes).await;

    let mut requeue = jittered(ctx.resync);
    let mut cloud_error = None;
    let provisioning = if !t.gateway.accepted.status {
        Provisioning::Pending("Gateway is not accepted".into())
    } else {
        match ctx.provider.render(&t.plan, &ctx.render_ctx) {
            Err(e) => {
                ctx.event(gw, EventType::Warning, "RenderFailed", e.to_string()).await;
                Provisioning::Failed { reason: e.programmed_reason(), message: e.to_string() }
            }
            Ok(desired) => match sync_cloud(ctx, key, Some(t), &desired).await {
                Ok(outcome) if outcome.ready => {
                    let was_programmed = programmed(gw);
                    if outcome.mutations > 0 || !was_programmed {
                        let (reason, note) = if was_programmed {
                            ("Updated", format!("{} cloud change(s) applied", outcome.mutations))
                        } else {
                            ("Provisioned", format!("Load balancer ready at {}", addresses(&outcome.addresses)))
                        };
                        ctx.event(gw, EventType::Normal, reason, note).await;
                    }
                    Provisioning::Ready { addresses: outcome.addresses }
                }
                Ok(outcome) => {
                    requeue = PROVISIONING_POLL;
                    Provisioning::Pending(format!("Provisioning in progress ({} change(s) applied so far)", outcome.mutations))
                }
                Err(e) if e.is_retryable() => {
                    // Not written to status: a transient error should not flap Programmed.
                    cloud_error = Some(e);
                    Provisioning::Pending(String::new())
                }
                Err(e) => {
                    ctx.event(gw, EventType::Warning, "CloudError", e.to_string()).await;
                    Provisioning::Failed { reason: reason::INVALID, message: e.to_string() }
                }
            },
        }
    };
    if let Some(e) = cloud_error {
        routes_result?;
        return Err(e.into());
    }
    let next = status::gateway_status(&t.gateway, &provisioning, gw.status.as_ref(), &now());
    ctx.writer.gateway(key, gw.status.as_ref(), &next).await?;
    routes_result?;
    Ok(Outcome::Requeue(requeue))
}

/// observe → diff → apply. Apply runs even with no changes: it reports addresses and readiness
/// from what was observed, without mutating calls.
async fn sync_cloud(
    ctx: &Context,
    key: &ObjKey,
    t: Option<&GatewayTranslation>,
    desired: &ResourceGraph,
) -> Result<cloudgate_provider::cloud::ApplyOutcome, CloudError> {
    let observed = ctx.observe(key).await?;
    let changes: ChangeSet = diff(desired, &observed, &ctx.render_ctx.cluster_id, ctx.kind_order);
    if !changes.is_empty() {
        tracing::info!(changes = changes.changes.len(), "applying cloud changes");
    }
    let outcome = ctx.provider.apply(t.map(|t| &t.plan), &changes, &observed, &ctx.render_ctx).await?;
    if outcome.mutations > 0 {
        tracing::info!(mutations = outcome.mutations, ready = outcome.ready, "cloud changes applied");
    }
    Ok(outcome)
}

async fn clean_up(ctx: &Context, key: &ObjKey, gw: &Gateway, routes: &[RouteWrite], why: &str) -> Result<Outcome, ReconcileError> {
    if !managed_by(gw, &ctx.controller_name) {
        // Never ours (or already cleaned up; or another installation's): only our route
        // entries for it may linger.
        ctx.write_routes(key, routes).await?;
        return Ok(Outcome::Forget);
    }
    tracing::info!(why, "removing the Gateway's cloud resources");
    let observed = ctx.observe(key).await?;
    let owned = observed.iter().filter(|o| cloudgate_provider::tags::owned_by(&o.tags, &ctx.render_ctx.cluster_id)).count();
    if owned > 0 {
        let changes = diff(&ResourceGraph::default(), &observed, &ctx.render_ctx.cluster_id, ctx.kind_order);
        match ctx.provider.apply(None, &changes, &observed, &ctx.render_ctx).await {
            Ok(_) => {}
            Err(e) => {
                if !e.is_retryable() {
                    ctx.event(gw, EventType::Warning, "CleanupFailed", e.to_string()).await;
                }
                return Err(e.into());
            }
        }
        let left = ctx.observe(key).await?;
        let left = left.iter().filter(|o| cloudgate_provider::tags::owned_by(&o.tags, &ctx.render_ctx.cluster_id)).count();
        if left > 0 {
            tracing::info!(left, "cloud resources still being deleted");
            return Ok(Outcome::Requeue(PROVISIONING_POLL));
        }
    }
    ctx.write_routes(key, routes).await?;
    remove_finalizer(ctx, key).await?;
    ctx.event(gw, EventType::Normal, "Deleted", format!("Cloud resources removed ({why})")).await;
    tracing::info!(why, "cloud resources removed; finalizer released");
    Ok(Outcome::Forget)
}

/// Was the Gateway already Programmed (any generation)? Decides between the `Provisioned` and
/// `Updated` events.
fn programmed(gw: &Gateway) -> bool {
    gw.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind::PROGRAMMED && c.status == "True"))
}

fn addresses(a: &[status::StatusAddress]) -> String {
    if a.is_empty() {
        return "(no address yet)".into();
    }
    a.iter().map(|a| a.value.as_str()).collect::<Vec<_>>().join(", ")
}

/// Adds our finalizer with a merge patch guarded by resourceVersion: the finalizer list is a
/// plain list, and a blind write could drop someone else's finalizer added meanwhile.
async fn ensure_finalizer(ctx: &Context, key: &ObjKey, gw: &Gateway) -> Result<(), ReconcileError> {
    if managed_by(gw, &ctx.controller_name) {
        return Ok(());
    }
    if !*ctx.leader.borrow() {
        return Err(ReconcileError::NotLeader);
    }
    let api: Api<Gateway> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let mut finalizers = gw.metadata.finalizers.clone().unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        finalizers.push(FINALIZER.into());
    }
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "annotations": {MANAGED_BY_ANNOTATION: ctx.controller_name},
        "resourceVersion": gw.metadata.resource_version,
    }});
    match api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => Err(ReconcileError::Conflict(format!("Gateway {key} finalizers"))),
        Err(e) => Err(e.into()),
    }
}

async fn remove_finalizer(ctx: &Context, key: &ObjKey) -> Result<(), ReconcileError> {
    if !*ctx.leader.borrow() {
        return Err(ReconcileError::NotLeader);
    }
    let api: Api<Gateway> = Api::namespaced(ctx.client.clone(), &key.namespace);
    // Read fresh: the copy in the index may be behind, and this write must not drop a
    // finalizer someone else added.
    for _ in 0..3 {
        let Some(gw) = api.get_opt(&key.name).await? else { return Ok(()) };
        if !managed_by(&gw, &ctx.controller_name) {
            return Ok(());
        }
        let finalizers: Vec<String> = gw.metadata.finalizers.iter().flatten().filter(|f| *f != FINALIZER).cloned().collect();
        // Merge patch: a null annotation value deletes the key.
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "annotations": {MANAGED_BY_ANNOTATION: null},
            "resourceVersion": gw.metadata.resource_version,
        }});
        match api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) if is_status(&e, 409) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReconcileError::Conflict(format!("Gateway {key} finalizers")))
}

/// GatewayClass status for classes naming our controller.
pub async fn reconcile_class(ctx: &Context, name: &str) -> Result<Outcome, ReconcileError> {
    let (class, bundle): (Option<Arc<GatewayClass>>, Option<String>) = {
        let ix = ctx.index.lock().unwrap_or_else(|p| p.into_inner());
        (ix.world.classes.get(name).cloned(), ix.world.bundle_version.clone())
    };
    let Some(class) = class else { return Ok(Outcome::Forget) };
    if class.spec.controller_name != ctx.controller_name {
        return Ok(Outcome::Forget);
    }
    let next = gateway_class::class_status(&class, ctx.provider.capabilities(), bundle.as_deref(), crate::plan_command::parameters_ok(&class), &now());
    ctx.writer.class(&class, &next).await?;
    Ok(Outcome::Forget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_event_notes_are_cut() {
        let s = truncate("é".repeat(800), 1000);
        assert!(s.len() <= 1000 && s.ends_with("..."));
        assert_eq!(truncate("short".into(), 1000), "short");
    }

    #[test]
    fn only_our_own_finalizer_counts() {
        let mut gw = Gateway::default();
        assert!(!managed_by(&gw, "a/b"));
        gw.metadata.finalizers = Some(vec![FINALIZER.into()]);
        // Another cloudgate installation's finalizer (or one without the annotation) is not ours.
        assert!(!managed_by(&gw, "a/b"));
        gw.metadata.annotations = Some([(MANAGED_BY_ANNOTATION.to_string(), "other/x".to_string())].into_iter().collect());
        assert!(!managed_by(&gw, "a/b"));
        gw.metadata.annotations = Some([(MANAGED_BY_ANNOTATION.to_string(), "a/b".to_string())].into_iter().collect());
        assert!(managed_by(&gw, "a/b"));
    }

    #[test]
    fn programmed_reads_the_condition() {
        let mut gw = Gateway::default();
        assert!(!programmed(&gw));
        let cond = |status: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Programmed".into(),
            status: status.into(),
            reason: "Programmed".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: now(),
        };
        gw.status = Some(gateway_api::experimental::gateways::GatewayStatus { conditions: Some(vec![cond("False")]), ..Default::default() });
        assert!(!programmed(&gw));
        gw.status = Some(gateway_api::experimental::gateways::GatewayStatus { conditions: Some(vec![cond("True")]), ..Default::default() });
        assert!(programmed(&gw));
    }
}
