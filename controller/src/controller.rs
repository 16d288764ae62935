//! `cloudgate controller`: wires the pieces together. Startup order matters:
//! 1. flags, logging, the Kubernetes client and API discovery (missing CRDs fail fast);
//! 2. the cloud provider (credentials, region);
//! 3. the ops server (so /healthz answers while caches fill) and leader election;
//! 4. watches fill the index; workers start only when every watch has listed once, because
//!    reconciling against a half-filled index would delete cloud resources for routes not seen
//!    yet;
//! 5. workers reconcile while this instance leads; on SIGTERM/SIGINT they stop, and the lease
//!    is released so a standby takes over at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use tokio::sync::watch;
use tracing::Instrument;

use crate::config::{ControllerArgs, LogFormat};
use crate::discovery;
use crate::errors::{ErrorClass, ReconcileError};
use crate::index::{Index, WorkKey};
use crate::leader::{self, Elector, LeaseConfig};
use crate::metrics::Metrics;
use crate::ops_server::{self, Readiness};
use crate::class_params;
use crate::providers::Backends;
use crate::queue::{BackoffPolicy, Outcome, WorkQueue};
use crate::reconcile::{self, Context};
use crate::status_writer::StatusWriter;
use crate::watches::{self, SyncTracker, WatchCtx};

/// How long in-flight reconciles may take to finish on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=warn,kube_runtime=warn,aws_config=warn,aws_smithy_runtime=warn,hyper=warn"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().with_current_span(true).with_span_list(false).init(),
        LogFormat::Text => b.with_ansi(false).init(),
    }
}

pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    args.validate()?;
    // kube and the AWS HTTPS client both use rustls with ring; installing it as the process
    // default keeps any library that asks for "the" provider on the same one.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let kube_config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let default_ns = kube_config.default_namespace.clone();
    let client = Client::try_from(kube_config)?;

    let found = discovery::discover(&client).await?;
    tracing::info!(
        watching = ?found.watches.keys().map(|w| w.kind()).collect::<Vec<_>>(),
        not_installed = ?found.missing,
        bundle_version = ?found.bundle_version,
        "discovered the Gateway API"
    );

    let index = Arc::new(Mutex::new(Index::new()));
    if found.watches.contains_key(&crate::index::Watched::ClassParameters) {
        index.lock().unwrap().class_parameters = Some(Default::default());
    }
    // Cloud clients are built per provider and region as GatewayClasses ask for them; the
    // flags' own placement is checked now so a misconfigured flag shows up at startup.
    let backends = Arc::new(Backends::new(index.clone()));
    match class_params::flag_settings(&args) {
        Ok(s) => {
            backends.get(&s.backend).await?;
        }
        Err(why) => tracing::info!(%why, "classes without parametersRef cannot be provisioned with these flags"),
    }
    let metrics = {
        let b = backends.clone();
        Arc::new(Metrics::new(Some(Box::new(move || b.calls()))))
    };

    let (shutdown_tx, shutdown) = watch::channel(false);
    let (leader_tx, leader) = watch::channel(false);
    let (synced_tx, synced) = watch::channel(false);

    let listener = ops_server::bind(args.metrics_addr).await.map_err(|e| anyhow::anyhow!("--metrics-addr {}: {e}", args.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics /healthz /readyz");
    let ops = tokio::spawn(ops_server::serve(listener, metrics.clone(), Readiness { synced: synced.clone(), leader: leader.clone() }, shutdown.clone()));

    let identity = leader::default_identity();
    let lease = LeaseConfig {
        namespace: args.leader_election_namespace.clone().unwrap_or_else(|| in_cluster_namespace().unwrap_or(default_ns)),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: args.lease_duration,
        renew_period: args.lease_renew_period,
    };
    tracing::info!(lease = %lease.name, namespace = %lease.namespace, %identity, "starting leader election");
    let elector = tokio::spawn(Elector::new(client.clone(), lease).run(leader_tx, shutdown.clone()));

    index.lock().unwrap().world.bundle_version = found.bundle_version.clone();
    let queue = Arc::new(WorkQueue::new(BackoffPolicy::default()));
    let watch_ctx = Arc::new(WatchCtx { index: index.clone(), queue: queue.clone(), sync: Arc::new(SyncTracker::new(found.watches.len(), synced_tx)) });
    for (kind, ar) in &found.watches {
        tokio::spawn(watches::run(client.clone(), *kind, ar.clone(), watch_ctx.clone()));
    }

    let ctx = Arc::new(Context {
        client: client.clone(),
        index: index.clone(),
        backends,
        args: args.clone(),
        controller_name: args.controller_name.clone(),
        writer: StatusWriter::new(client.clone(), args.controller_name.clone(), found.route_apis(), leader.clone(), metrics.clone()),
        recorder: Recorder::new(client.clone(), Reporter { controller: "cloudgate".into(), instance: Some(identity) }),
        metrics: metrics.clone(),
        leader: leader.clone(),
        resync: args.resync_period,
    });

    // Gauges sampled once a second; leadership changes re-queue everything, since a new leader
    // cannot know what happened while it was not leading.
    {
        let (queue, metrics, index, mut leader) = (queue.clone(), metrics.clone(), index.clone(), leader.clone());
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut was_leader = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = leader.changed() => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                let is_leader = *leader.borrow_and_update();
                metrics.leader.set(is_leader as i64);
                metrics.queue_depth.set(queue.depth() as i64);
                if is_leader && !was_leader {
                    let keys = all_keys(&index);
                    tracing::info!(keys = keys.len(), "leading: queueing every Gateway and GatewayClass");
                    for k in keys {
                        queue.add(k);
                    }
                }
                was_leader = is_leader;
            }
        });
    }

    let mut ready = synced.clone();
    tokio::select! {
        _ = ready.wait_for(|s| *s) => {}
        _ = shutdown_signal() => {
            shutdown_tx.send_replace(true);
            return Ok(());
        }
    }

    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| tokio::spawn(worker(i, ctx.clone(), queue.clone(), leader.clone(), shutdown.clone())))
        .collect();
    tracing::info!(concurrency = args.concurrency, resync = ?args.resync_period, "controller started");

    shutdown_signal().await;
    tracing::info!("shutting down");
    shutdown_tx.send_replace(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, futures::future::join_all(workers)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
    let _ = ops.await;
    Ok(())
}

fn all_keys(index: &Mutex<Index>) -> Vec<WorkKey> {
    let ix = index.lock().unwrap_or_else(|p| p.into_inner());
    ix.world
        .classes
        .keys()
        .map(|c| WorkKey::Class(c.clone()))
        .chain(ix.world.gateways.keys().map(|g| WorkKey::Gateway(g.clone())))
        .chain(ix.all_policies())
        .collect()
}

async fn worker(
    id: u16,
    ctx: Arc<Context>,
    queue: Arc<WorkQueue<WorkKey>>,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Followers take no work; their queue keeps filling (deduplicated) for when they lead.
        tokio::select! {
            r = leader.wait_for(|l| *l) => if r.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let key = tokio::select! {
            k = queue.next() => k,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        if !*leader.borrow() {
            queue.done(key, Outcome::Requeue(Duration::ZERO));
            continue;
        }
        let span = match &key {
            WorkKey::Gateway(k) => tracing::info_span!("reconcile", gateway = %k, worker = id),
            WorkKey::Class(n) => tracing::info_span!("reconcile", gatewayclass = %n, worker = id),
            WorkKey::Policy(kind, k) => tracing::info_span!("reconcile", policy = %k, kind = kind.kind(), worker = id),
        };
        let started = Instant::now();
        let mut lost = leader.clone();
        let result = async {
            tokio::select! {
                r = run_one(&ctx, &key) => r,
                // Stop mid-way rather than finish as a non-leader: the new leader redoes it.
                _ = lost.wait_for(|l| !*l) => Err(ReconcileError::NotLeader),
            }
        }
        .instrument(span.clone())
        .await;
        // The policies reaching this Gateway (now, or in their status) re-check their status:
        // the Gateway's reconcile just recorded which Services its routes send to, and every
        // change that can move a policy's verdict (class, parameters, routes, the Gateway
        // itself) reconciles the Gateway first.
        if let WorkKey::Gateway(gw) = &key {
            let policies = ctx.index.lock().unwrap_or_else(|p| p.into_inner()).policies_reaching(gw, &ctx.args.controller_name);
            for t in policies {
                queue.add(t);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let kind = match key {
            WorkKey::Gateway(_) => "gateway",
            WorkKey::Class(_) => "gatewayclass",
            WorkKey::Policy(..) => "policy",
        };
        let outcome = match result {
            Ok(o) => {
                let label = match o {
                    Outcome::Requeue(d) if d < ctx.resync / 2 => "requeue",
                    _ => "success",
                };
                ctx.metrics.reconciled(kind, label, secs);
                span.in_scope(|| tracing::debug!(seconds = secs, "reconciled"));
                o
            }
            Err(ReconcileError::NotLeader) => {
                span.in_scope(|| tracing::info!("leadership lost; leaving the work to the new leader"));
                Outcome::Requeue(Duration::ZERO)
            }
            Err(e) => {
                let class = e.class();
                ctx.metrics.reconciled(kind, "error", secs);
                ctx.metrics.reconcile_error(kind, class.label());
                span.in_scope(|| tracing::warn!(error = %e, class = class.label(), failures = queue.failures(&key) + 1, "reconcile failed"));
                match class {
                    ErrorClass::Retryable => Outcome::Backoff,
                    // Already reported (status, Event); retried on the next change or resync,
                    // and with backoff for Kubernetes-side rejections (RBAC, webhooks).
                    ErrorClass::Permanent => match e {
                        ReconcileError::Cloud(_) => Outcome::Requeue(crate::queue::jittered(ctx.resync)),
                        _ => Outcome::Backoff,
                    },
                }
            }
        };
        queue.done(key, outcome);
    }
}

async fn run_one(ctx: &Context, key: &WorkKey) -> Result<Outcome, ReconcileError> {
    match key {
        WorkKey::Gateway(k) => reconcile::reconcile_gateway(ctx, k).await,
        WorkKey::Class(n) => reconcile::reconcile_class(ctx, n).await,
        WorkKey::Policy(kind, k) => reconcile::reconcile_policy(ctx, *kind, k).await,
    }
}

/// The namespace a pod runs in, from its service account mount.
fn in_cluster_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
