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
use cloudgate_provider::ResourceGraph;
use cloudgate_translate::conditions::{kind, reason};
use cloudgate_translate::gateway::GatewayTranslation;
use cloudgate_translate::gateway_class;
use cloudgate_translate::model::{ObjKey, RouteKey};
use cloudgate_translate::status::{self, Provisioning, RouteParentStatus};
use cloudgate_translate::translate_gateway;
use gateway_api::experimental::gateways::{Gateway, GatewayStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::watch;

use crate::class_params::{self, ClassSettings, Placement, PLACEMENT_ANNOTATION};
use crate::config::ControllerArgs;
use crate::policies;
use crate::errors::{is_status, ReconcileError};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::providers::{Backends, CloudBackend};
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
    /// Cloud clients, one per provider and region, built as classes ask for them.
    pub backends: Arc<Backends>,
    /// The flags: defaults for classes without parameters, and the cluster id.
    pub args: ControllerArgs,
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
    CleanUp { gw: Arc<Gateway>, routes: Vec<RouteWrite>, why: &'static str, settings: Option<ClassSettings> },
    /// `settings` is `Err(why)` when the class's parameters cannot be used.
    Ours { gw: Arc<Gateway>, translation: Box<GatewayTranslation>, routes: Vec<RouteWrite>, settings: Result<ClassSettings, String> },
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
        // Where a Gateway's resources are: where cloudgate recorded placing them, else where its
        // class (if ours) says.
        let settings = class.as_ref().filter(|_| ours == Some(true)).map(|c| class_params::resolve(&self.args, c, ix.class_parameters.as_ref()));
        let placed = recorded_placement(&gw).and_then(|p| p.settings(&self.args.cluster_id));
        match (ours, deleting) {
            (_, true) => Snapshot::CleanUp { gw, routes: stale_routes(&ix, &[]), why: "deleted", settings: placed.or(settings.and_then(Result::ok)) },
            (None, false) => Snapshot::ClassUnknown,
            (Some(false), false) => Snapshot::CleanUp { gw, routes: stale_routes(&ix, &[]), why: "class belongs to another controller", settings: placed },
            (Some(true), false) => {
                let settings = settings.unwrap_or_else(|| Err("no class".into())).map(|mut s| {
                    let p = policies::for_gateway(&ix, key, s.backend.provider, s.render.service_network.is_some());
                    s.render.health_checks = p.health_checks;
                    s.render.backend_settings = p.backend_settings;
                    s.render.access = p.access;
                    s
                });
                // A class whose parameters are unusable still gets its routes checked, against
                // what the flags' provider can express.
                let caps = match &settings {
                    Ok(s) => s.capabilities(),
                    Err(_) => class_params::capabilities(&self.args.provider, &self.args.scheme),
                };
                let Some(t) = translate_gateway(&ix.world, key, &caps) else { return Snapshot::Gone };
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
                Snapshot::Ours { gw, translation: Box::new(t), routes, settings }
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
        Owner { cluster_id: self.args.cluster_id.clone(), gateway: key.clone() }
    }

    async fn backend(&self, s: &ClassSettings) -> Result<Arc<CloudBackend>, CloudError> {
        self.backends.get(&s.backend).await.map_err(|e| CloudError::Permanent {
            service: "config",
            operation: "client".into(),
            message: e.to_string(),
        })
    }
}

/// One Gateway's cloud, resolved: the client plus the settings it renders and observes with.
struct Cloud<'a> {
    backend: Arc<CloudBackend>,
    settings: &'a ClassSettings,
}

impl Cloud<'_> {
    fn cluster(&self) -> &str {
        &self.settings.render.cluster_id
    }

    async fn observe(&self, owner: &Owner) -> Result<Vec<ObservedResource>, CloudError> {
        self.backend.provider.observe(owner, &self.settings.render).await
    }
}

fn recorded_placement(gw: &Gateway) -> Option<Placement> {
    gw.metadata.annotations.as_ref()?.get(PLACEMENT_ANNOTATION).and_then(|s| Placement::decode(s))
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
        Snapshot::CleanUp { gw, routes, why, settings } => clean_up(ctx, key, &gw, &routes, why, settings.as_ref()).await,
        Snapshot::Ours { gw, translation, routes, settings } => provision(ctx, key, &gw, &translation, &routes, settings).await,
    }
}

async fn provision(
    ctx: &Context,
    key: &ObjKey,
    gw: &Gateway,
    t: &GatewayTranslation,
    routes: &[RouteWrite],
    settings: Result<ClassSettings, String>,
) -> Result<Outcome, ReconcileError> {
    let settings = match settings {
        Ok(s) => s,
        Err(why) => {
            // Nothing is provisioned or removed: what exists keeps serving until the class
            // is fixed, and status says why nothing changes.
            let routes_result = ctx.write_routes(key, routes).await;
            let message = format!("GatewayClass {} has invalid parameters: {why}", gw.spec.gateway_class_name);
            let next = status::gateway_status(&t.gateway, &Provisioning::Failed { reason: reason::INVALID, message }, gw.status.as_ref(), &now());
            ctx.writer.gateway(key, gw.status.as_ref(), &next).await?;
            routes_result?;
            return Ok(Outcome::Requeue(jittered(ctx.resync)));
        }
    };
    // The class now points elsewhere (another provider, region, project, flavour or network):
    // remove what the old placement holds before building anew, so nothing is left behind.
    if let Some(old) = recorded_placement(gw).filter(|p| *p != settings.placement() && managed_by(gw, &ctx.controller_name)) {
        if let Some(old_settings) = old.settings(&ctx.args.cluster_id) {
            let old_cloud = Cloud { backend: ctx.backend(&old_settings).await?, settings: &old_settings };
            tracing::info!(from = %old.encode(), to = %settings.placement().encode(), "the class moved the Gateway; draining the old placement");
            if drain(ctx, key, gw, &old_cloud).await? == Drained::Pending {
                return Ok(Outcome::Requeue(PROVISIONING_POLL));
            }
            ctx.event(gw, EventType::Normal, "Moved", format!("Cloud resources removed from {}; provisioning in {}", old.encode(), settings.placement().encode())).await;
        }
    }
    ensure_finalizer(ctx, key, gw, &settings.placement()).await?;
    let cloud = Cloud { backend: ctx.backend(&settings).await?, settings: &settings };

    let owner = ctx.owner(key);
    let desired = if t.gateway.accepted.status { Some(cloud.backend.provider.render(&t.plan, &settings.render)) } else { None };
    // Observed first: besides the diff, it tells each route's own address (Lattice), which
    // goes into the route's status. Waiting out a transient cloud error before writing route
    // status keeps those messages from flapping.
    let observed = match &desired {
        Some(Ok(_)) => match cloud.observe(&owner).await {
            Err(e) if e.is_retryable() => {
                // Route status does not wait for the cloud where it carries nothing from it.
                if !cloud.backend.provider.addresses_per_route() {
                    ctx.write_routes(key, routes).await?;
                }
                write_pending_unless_current(ctx, key, gw, t, gw.status.as_ref(), format!("Waiting for the cloud (will retry): {e}")).await?;
                return Err(e.into());
            }
            o => Some(o),
        },
        _ => None,
    };
    // Route conditions come from translation (plus those addresses); they are right whatever
    // the cloud does next.
    let route_addresses = match &observed {
        Some(Ok(o)) => cloud.backend.provider.route_addresses(o),
        _ => Vec::new(),
    };
    let routes_result = ctx.write_routes(key, &with_route_addresses(routes, &route_addresses)).await;

    let mut requeue = jittered(ctx.resync);
    let mut cloud_error = None;
    // The status written before the apply, if any: what the final write compares with.
    let mut pending: Option<GatewayStatus> = None;
    let provisioning = match (desired, observed) {
        (None, _) => Provisioning::Pending("Gateway is not accepted".into()),
        (Some(Err(e)), _) => {
            ctx.event(gw, EventType::Warning, "RenderFailed", e.to_string()).await;
            Provisioning::Failed { reason: e.programmed_reason(), message: e.to_string() }
        }
        (Some(Ok(desired)), observed) => {
            let synced = match observed {
                Some(Ok(observed)) => {
                    let changes: ChangeSet = diff(&desired, &observed, cloud.cluster(), cloud.backend.kind_order);
                    if !changes.is_empty() && never_reported(gw) {
                        // Accepted, the listeners and attached routes are known now, and the
                        // apply can take minutes (a new Google load balancer is a chain of
                        // operations): a new Gateway says so at once instead of showing the
                        // apiserver's "Waiting for controller" until the cloud is done. A
                        // Gateway already reported on keeps its status until the apply ends,
                        // so a status of the current generation is always the whole answer,
                        // addresses included (the conformance suite reads it that way).
                        let message = format!("Provisioning: applying {} cloud change(s)", changes.changes.len());
                        pending = Some(write_pending(ctx, key, t, gw.status.as_ref(), message).await?);
                    }
                    apply_changes(&cloud, t, &changes, &observed).await
                }
                Some(Err(e)) => Err(e),
                None => Err(CloudError::Permanent { service: "controller", operation: "observe".into(), message: "the cloud was not observed".into() }),
            };
            match synced {
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
                    if cloud.backend.provider.addresses_per_route() {
                        if route_status_behind(&outcome, &route_addresses) {
                            requeue = PROVISIONING_POLL;
                        }
                        Provisioning::ReadyPerRoute { addresses: outcome.addresses }
                    } else {
                        Provisioning::Ready { addresses: outcome.addresses }
                    }
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
            }
        }
    };
    let last_written = pending.as_ref().or(gw.status.as_ref());
    if let Some(e) = cloud_error {
        routes_result?;
        write_pending_unless_current(ctx, key, gw, t, last_written, format!("Waiting for the cloud (will retry): {e}")).await?;
        return Err(e.into());
    }
    let next = status::gateway_status(&t.gateway, &provisioning, last_written, &now());
    ctx.writer.gateway(key, last_written, &next).await?;
    routes_result?;
    Ok(Outcome::Requeue(requeue))
}

/// Programmed must not flap: a Gateway whose status already describes its current generation
/// keeps it while the cloud is slow or failing transiently. Otherwise (a new or changed Gateway)
/// the status is written now with `Programmed=False Pending` and `message`, so it is never left
/// without observedGeneration. `prev` is the status last written (this reconcile's, or the
/// Gateway's own).
async fn write_pending_unless_current(
    ctx: &Context,
    key: &ObjKey,
    gw: &Gateway,
    t: &GatewayTranslation,
    prev: Option<&GatewayStatus>,
    message: String,
) -> Result<(), ReconcileError> {
    let current = gw
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind::PROGRAMMED && c.observed_generation == gw.metadata.generation));
    if !current {
        write_pending(ctx, key, t, prev, message).await?;
    }
    Ok(())
}

/// Writes the translated status with `Programmed=False Pending` and `message`; returns it.
async fn write_pending(ctx: &Context, key: &ObjKey, t: &GatewayTranslation, prev: Option<&GatewayStatus>, message: String) -> Result<GatewayStatus, ReconcileError> {
    let next = status::gateway_status(&t.gateway, &Provisioning::Pending(message), prev, &now());
    ctx.writer.gateway(key, prev, &next).await?;
    Ok(next)
}

/// No controller has reported on this Gateway yet: no conditions, or only the apiserver's
/// defaults (`Unknown`, "Waiting for controller").
fn never_reported(gw: &Gateway) -> bool {
    gw.status.as_ref().and_then(|s| s.conditions.as_ref()).is_none_or(|cs| cs.iter().all(|c| c.status == "Unknown"))
}

/// Applies the diff against what was observed. Apply runs even with no changes: it reports
/// addresses and readiness from what was observed, without mutating calls.
async fn apply_changes(
    cloud: &Cloud<'_>,
    t: &GatewayTranslation,
    changes: &ChangeSet,
    observed: &[ObservedResource],
) -> Result<cloudgate_provider::cloud::ApplyOutcome, CloudError> {
    if !changes.is_empty() {
        tracing::info!(changes = changes.changes.len(), "applying cloud changes");
    }
    let outcome = cloud.backend.provider.apply(Some(&t.plan), changes, observed, &cloud.settings.render).await?;
    if outcome.mutations > 0 {
        tracing::info!(mutations = outcome.mutations, ready = outcome.ready, "cloud changes applied");
    }
    Ok(outcome)
}

/// Whether this apply gave a route an address (Lattice: created its service) that the route
/// status written before it, from what observe saw, does not carry. Such a reconcile looks again
/// soon instead of at the resync: the ground benchmark (one Gateway, 100 routes) found only the
/// routes whose services an earlier reconcile had made named in their status, the rest not
/// until the resync. Only after mutations, so an address observe cannot tie to a route never
/// keeps the Gateway polling.
fn route_status_behind(outcome: &cloudgate_provider::cloud::ApplyOutcome, route_addresses: &[(RouteKey, String)]) -> bool {
    outcome.mutations > 0 && outcome.addresses.iter().any(|a| !route_addresses.iter().any(|(_, r)| *r == a.value))
}

/// Adds each route's own address (if the provider gives routes one) to the message of its
/// `Accepted` condition for this Gateway, where `kubectl describe` shows it.
fn with_route_addresses(routes: &[RouteWrite], addresses: &[(RouteKey, String)]) -> Vec<RouteWrite> {
    routes
        .iter()
        .map(|w| {
            let mut w = w.clone();
            let mine: Vec<&str> = addresses.iter().filter(|(r, _)| *r == w.route).map(|(_, a)| a.as_str()).collect();
            if !mine.is_empty() {
                for entry in &mut w.fresh {
                    for c in entry.conditions.iter_mut().filter(|c| c.type_ == kind::ACCEPTED && c.status == "True") {
                        let m = c.message.trim_end().trim_end_matches('.');
                        c.message = format!("{m}. Reachable at {}.", mine.join(", "));
                    }
                }
            }
            w
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
enum Drained {
    Empty,
    /// Deletions were made or are in progress; look again soon.
    Pending,
}

/// Deletes everything the Gateway owns in `cloud` (children first, as `diff` orders them).
async fn drain(ctx: &Context, key: &ObjKey, gw: &Gateway, cloud: &Cloud<'_>) -> Result<Drained, ReconcileError> {
    let owner = ctx.owner(key);
    let owned = |o: &[ObservedResource]| o.iter().filter(|o| cloudgate_provider::tags::owned_by(&o.tags, cloud.cluster())).count();
    let observed = cloud.observe(&owner).await?;
    if owned(&observed) == 0 {
        return Ok(Drained::Empty);
    }
    let changes = diff(&ResourceGraph::default(), &observed, cloud.cluster(), cloud.backend.kind_order);
    if let Err(e) = cloud.backend.provider.apply(None, &changes, &observed, &cloud.settings.render).await {
        if !e.is_retryable() {
            ctx.event(gw, EventType::Warning, "CleanupFailed", e.to_string()).await;
        }
        return Err(e.into());
    }
    let left = owned(&cloud.observe(&owner).await?);
    if left > 0 {
        tracing::info!(left, "cloud resources still being deleted");
        return Ok(Drained::Pending);
    }
    Ok(Drained::Empty)
}

async fn clean_up(
    ctx: &Context,
    key: &ObjKey,
    gw: &Gateway,
    routes: &[RouteWrite],
    why: &str,
    settings: Option<&ClassSettings>,
) -> Result<Outcome, ReconcileError> {
    if !managed_by(gw, &ctx.controller_name) {
        // Never ours (or already cleaned up; or another installation's): only our route
        // entries for it may linger.
        ctx.write_routes(key, routes).await?;
        return Ok(Outcome::Forget);
    }
    tracing::info!(why, "removing the Gateway's cloud resources");
    // Gateways finalized by a cloudgate that did not record placements: the flags say where.
    let fallback;
    let settings = match settings {
        Some(s) => s,
        None => {
            fallback = class_params::flag_settings(&ctx.args).map_err(|why| {
                ReconcileError::Cloud(CloudError::Permanent { service: "config", operation: "client".into(), message: format!("cannot tell where the Gateway's resources are: {why}") })
            })?;
            &fallback
        }
    };
    let cloud = Cloud { backend: ctx.backend(settings).await?, settings };
    if drain(ctx, key, gw, &cloud).await? == Drained::Pending {
        return Ok(Outcome::Requeue(PROVISIONING_POLL));
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
async fn ensure_finalizer(ctx: &Context, key: &ObjKey, gw: &Gateway, placement: &Placement) -> Result<(), ReconcileError> {
    if managed_by(gw, &ctx.controller_name) && recorded_placement(gw).as_ref() == Some(placement) {
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
        "annotations": {MANAGED_BY_ANNOTATION: ctx.controller_name, PLACEMENT_ANNOTATION: placement.encode()},
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
            "annotations": {MANAGED_BY_ANNOTATION: null, PLACEMENT_ANNOTATION: null},
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
    let (class, bundle, settings) = {
        let ix = ctx.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some(class) = ix.world.classes.get(name).cloned() else { return Ok(Outcome::Forget) };
        let settings = class_params::resolve(&ctx.args, &class, ix.class_parameters.as_ref());
        (class, ix.world.bundle_version.clone(), settings)
    };
    if class.spec.controller_name != ctx.controller_name {
        return Ok(Outcome::Forget);
    }
    let (caps, parameters) = match settings {
        Ok(s) => (s.capabilities(), Ok(())),
        Err(why) => (class_params::capabilities(&ctx.args.provider, &ctx.args.scheme), Err(why)),
    };
    let next = gateway_class::class_status(&class, &caps, bundle.as_deref(), parameters, &now());
    ctx.writer.class(&class, &next).await?;
    Ok(Outcome::Forget)
}

/// A policy's status: one ancestor entry per Gateway of ours it reaches. Written (server-side
/// apply of the status) only when it changed.
pub async fn reconcile_policy(ctx: &Context, kind: policies::PolicyKind, key: &ObjKey) -> Result<Outcome, ReconcileError> {
    let now = jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()).to_string();
    let (next, current) = {
        let ix = ctx.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some(next) = policies::status(&ix, &ctx.args, kind, key, &now) else { return Ok(Outcome::Forget) };
        (next, ix.policies.get(&(kind, key.clone())).and_then(|p| p.status.clone()).unwrap_or_default())
    };
    if next == current {
        return Ok(Outcome::Forget);
    }
    if !*ctx.leader.borrow() {
        return Err(ReconcileError::NotLeader);
    }
    let ar = kind.api_resource();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(ctx.client.clone(), &key.namespace, &ar);
    let body = json!({"apiVersion": ar.api_version, "kind": ar.kind, "status": next});
    match api.patch_status(&key.name, &PatchParams::apply(crate::status_writer::FIELD_MANAGER).force(), &Patch::Apply(&body)).await {
        Ok(_) => {
            ctx.metrics.status_written(kind.kind());
            Ok(Outcome::Forget)
        }
        Err(e) if is_status(&e, 404) => Ok(Outcome::Forget),
        Err(e) => Err(e.into()),
    }
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
    fn a_routes_own_address_goes_into_its_accepted_message() {
        use cloudgate_translate::model::RouteKind;
        let rk = |n: &str| RouteKey { kind: RouteKind::Http, namespace: "ns".into(), name: n.into() };
        let cond = |t: &str, s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: t.into(),
            status: s.into(),
            reason: t.into(),
            message: "Route is accepted".into(),
            observed_generation: Some(1),
            last_transition_time: now(),
        };
        let entry = RouteParentStatus {
            parent_ref: status::ParentRefStatus {
                group: "gateway.networking.k8s.io".into(),
                kind: "Gateway".into(),
                namespace: None,
                name: "gw".into(),
                section_name: None,
                port: None,
            },
            controller_name: "c".into(),
            conditions: vec![cond("Accepted", "True"), cond("ResolvedRefs", "True")],
        };
        let write = |n: &str| RouteWrite { route: rk(n), raw: Default::default(), spec_parent_refs: vec![], fresh: vec![entry.clone()] };
        let out = with_route_addresses(&[write("a"), write("b")], &[(rk("a"), "a-123.vpc-lattice-svcs.us-east-1.on.aws".into())]);
        assert_eq!(out[0].fresh[0].conditions[0].message, "Route is accepted. Reachable at a-123.vpc-lattice-svcs.us-east-1.on.aws.");
        assert_eq!(out[0].fresh[0].conditions[1].message, "Route is accepted", "only Accepted carries it");
        assert_eq!(out[1].fresh, write("b").fresh, "routes without an address of their own are unchanged");
    }

    #[test]
    fn a_route_address_made_by_this_apply_brings_the_gateway_back_soon() {
        use cloudgate_provider::cloud::ApplyOutcome;
        use cloudgate_translate::model::RouteKind;
        let rk = |n: &str| RouteKey { kind: RouteKind::Http, namespace: "ns".into(), name: n.into() };
        let addr = |v: &str| status::StatusAddress { type_: "Hostname".into(), value: v.into() };
        let outcome = |mutations, names: &[&str]| ApplyOutcome { mutations, addresses: names.iter().map(|n| addr(n)).collect(), ready: true };
        let observed = vec![(rk("a"), "a.lattice".to_string())];
        // Route b's service was created by this apply: its status does not name it yet.
        assert!(route_status_behind(&outcome(3, &["a.lattice", "b.lattice"]), &observed));
        // Every address already written to its route.
        assert!(!route_status_behind(&outcome(3, &["a.lattice"]), &observed));
        // Nothing changed: an address observe cannot tie to a route does not keep it polling.
        assert!(!route_status_behind(&outcome(0, &["a.lattice", "b.lattice"]), &observed));
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

    /// Only a Gateway with no status, or the apiserver's defaulted `Unknown` conditions, gets the
    /// early "provisioning" status; one a controller reported on (even False) waits for the apply.
    #[test]
    fn never_reported_means_only_defaults() {
        let with = |statuses: &[&str]| {
            let conditions = statuses
                .iter()
                .map(|s| k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: "Accepted".into(),
                    status: (*s).into(),
                    reason: "Pending".into(),
                    message: "Waiting for controller".into(),
                    observed_generation: None,
                    last_transition_time: now(),
                })
                .collect();
            let mut gw = Gateway::default();
            gw.status = Some(GatewayStatus { conditions: Some(conditions), ..Default::default() });
            gw
        };
        assert!(never_reported(&Gateway::default()));
        assert!(never_reported(&with(&[])));
        assert!(never_reported(&with(&["Unknown", "Unknown"])));
        assert!(!never_reported(&with(&["Unknown", "False"])));
        assert!(!never_reported(&with(&["True"])));
    }
}
