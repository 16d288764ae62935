//! The controller at scale on the local test ground, figures printed (nothing asserted):
//!
//! - `rss`: controller RSS with 1,000 Gateways, 10,000 HTTPRoutes and 50,000 endpoints (5,000
//!   Services with one 10-endpoint EndpointSlice each) watched on the ground's kube-apiserver;
//!   the Gateways name a GatewayClass nobody defines, so nothing is provisioned and the figure is
//!   the watch caches and index. Read from /proc after /readyz (all caches synced).
//! - per backend (`aws-alb` on moto, `aws-lattice` on moto + our Lattice extension, `gcp` on the
//!   Compute fake): end-to-end convergence of 100 Gateways x 10 HTTPRoutes (objects created with
//!   the controller running, until every Gateway is Programmed=True at its generation and the
//!   last mutating cloud call is done, the queue empty); cloud
//!   API calls per reconcile at steady state (a forced resync of everything); calls per weight
//!   change and the weight-change-to-API-call latency p50/p99 (from patching a route's weights to
//!   the controller's mutating-call counter moving).
//!
//! Run by `tests/bench/run.sh`, which starts a throwaway ground (the cloud resources are left
//! for it to discard) and builds this in the dev profile (the controller binary is the debug
//! build: see the README). `CLOUDGATE_BENCH=rss,aws-alb,...`
//! picks sections; `BENCH_GATEWAYS`, `BENCH_ROUTES`, `BENCH_WEIGHT_CHANGES` change the sizes.
#![forbid(unsafe_code)]
#![allow(dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;
use support::*;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use gateway_api::experimental::gateways::Gateway;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

fn size(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Creates every object, `parallel` at a time (what `kubectl apply` of a big manifest does, a
/// little faster).
async fn create_all(client: &Client, objects: Vec<(Option<String>, Value)>, parallel: usize) {
    stream::iter(objects)
        .for_each_concurrent(parallel, |(ns, obj)| {
            let client = client.clone();
            async move {
                create(&client, ns.as_deref(), obj).await;
            }
        })
        .await;
}

fn service_obj(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

/// An EndpointSlice for a selector-less Service: `n` ready endpoints in `zone`, on `node`.
fn slice_obj(svc: &str, base: u32, n: u32, zone: &str, node: &str) -> Value {
    let endpoints: Vec<Value> = (0..n)
        .map(|i| {
            let ip = base + i;
            json!({"addresses": [format!("10.{}.{}.{}", (ip >> 16) & 255, (ip >> 8) & 255, ip & 255)],
                "conditions": {"ready": true}, "zone": zone, "nodeName": node})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-bench"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints})
}

fn route_obj(name: &str, gateway: &str, path: &str, a: &str, b: &str, weight: u32) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": gateway}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                "backendRefs": [{"name": a, "port": 80, "weight": weight}, {"name": b, "port": 80, "weight": 100 - weight}]}]}})
}

/// The controller process, with its own flags (the e2e helper fixes the concurrency).
fn controller(provider_args: &[&str], cluster_id: &str, controller_name: &str, lease: &str, resync: &str) -> Controller {
    let port = free_port();
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{lease}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let concurrency = size("BENCH_CONCURRENCY", 4).to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_cloudgate"))
        .args(["controller", "--cluster-id", cluster_id, "--controller-name", controller_name])
        .args(["--lease-name", lease, "--leader-election-namespace", "default", "--resync-period", resync])
        .args(provider_args)
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--concurrency", &concurrency])
        .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".into()))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start cloudgate controller");
    Controller { child, base: format!("http://127.0.0.1:{port}"), log }
}

/// VmRSS and VmHWM of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Cloud API calls so far, per operation, from the controller's /metrics.
fn calls(c: &Controller) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in c.metrics().lines().filter(|l| l.starts_with("cloudgate_cloud_api_calls_total{")) {
        let op = l.split("operation=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
        let n: f64 = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(op.to_string()).or_default() += n;
    }
    out
}

/// Reads are Describe*/List*/Get* (AWS) and get/list/aggregatedList/listNetworkEndpoints and
/// operation polls (Compute); everything else changes something.
fn mutating(op: &str) -> bool {
    let last = op.rsplit('.').next().unwrap_or(op);
    !["Describe", "List", "Get", "get", "list", "aggregatedList", "wait"].iter().any(|p| last.starts_with(p))
}

fn diff(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> (f64, f64, Vec<String>) {
    let (mut all, mut muts, mut ops) = (0.0, 0.0, Vec::new());
    for (op, n) in after {
        let d = n - before.get(op).copied().unwrap_or(0.0);
        if d > 0.0 {
            all += d;
            if mutating(op) {
                muts += d;
                ops.push(format!("{op} x{d}"));
            }
        }
    }
    (all, muts, ops)
}

fn reconciles(c: &Controller) -> f64 {
    c.metric("cloudgate_reconciles_total", &["kind=\"gateway\""])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn kube() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default()).await.expect("KUBECONFIG");
    Client::try_from(config).expect("kube client")
}

// ------------------------------------------------------------------------------ RSS

async fn rss(client: &Client) {
    let (gateways, routes_per, services, endpoints_per) = (size("BENCH_RSS_GATEWAYS", 1000), size("BENCH_RSS_ROUTES", 10), size("BENCH_RSS_SERVICES", 5000), 10);
    let namespaces = 50;
    step(&format!("rss: creating {gateways} Gateways, {} HTTPRoutes, {services} Services with {} endpoints", gateways * routes_per, services * endpoints_per));
    let prefix = unique("bench-rss");
    let mut nss = Vec::new();
    for i in 0..namespaces {
        let ns = format!("{prefix}-{i}");
        create(client, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})).await;
        nss.push(ns);
    }
    let t = Instant::now();
    let mut objects = Vec::new();
    for s in 0..services {
        let ns = &nss[s % namespaces];
        let name = format!("svc-{s}");
        objects.push((Some(ns.clone()), service_obj(&name)));
        objects.push((Some(ns.clone()), slice_obj(&name, (s * endpoints_per) as u32, endpoints_per as u32, "us-east-1a", "node-a")));
    }
    for g in 0..gateways {
        let ns = &nss[g % namespaces];
        objects.push((Some(ns.clone()), gateway(&format!("gw-{g}"), "bench-class-nobody-defines")));
        for r in 0..routes_per {
            let svc = |i: usize| format!("svc-{}", (g + i * namespaces) % services);
            objects.push((Some(ns.clone()), route_obj(&format!("r-{g}-{r}"), &format!("gw-{g}"), &format!("/p{r}"), &svc(r), &svc(r + 1), 90)));
        }
    }
    let n = objects.len();
    create_all(client, objects, 32).await;
    let created = t.elapsed();
    step(&format!("rss: {n} objects created in {}", secs(created)));

    let t = Instant::now();
    let mut c = controller(&["--provider", "aws-alb", "--vpc-id", "vpc-bench", "--subnets", "subnet-a,subnet-b"], "bench-rss", "cloudgate.io/bench-rss", &unique("bench-rss"), "600s");
    c.wait_ready().await;
    let synced = t.elapsed();
    let (after_sync, _) = rss_mib(c.child.id());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (settled, peak) = rss_mib(c.child.id());
    c.kill();
    println!("controller RSS, objects watched on the test apiserver (debug build of the controller)");
    println!("  watched: {gateways} Gateways, {} HTTPRoutes, {services} Services + EndpointSlices ({} endpoints), created in {}", gateways * routes_per, services * endpoints_per, secs(created));
    println!("  start to all caches synced (/readyz):   {}", secs(synced));
    println!("  RSS after sync:                         {after_sync:.1} MiB");
    println!("  RSS 10 s later / peak (VmHWM):          {settled:.1} MiB / {peak:.1} MiB");
    for ns in &nss {
        delete_namespace(client, ns).await;
    }
}

// ------------------------------------------------------------------------------ per backend

struct Backend {
    name: &'static str,
    args: Vec<String>,
    zone: String,
}

async fn backend(name: &'static str) -> Backend {
    match name {
        "aws-alb" => {
            let sdk = cloudgate_aws_alb::cloud::load_sdk_config(&cloudgate_aws_alb::CloudOptions::default()).await;
            let (vpc, subnets) = support::vpc_with_subnets(&aws_sdk_ec2::Client::new(&sdk), fastrand::u8(10..250)).await;
            Backend { name, args: vec!["--provider".into(), "aws-alb".into(), "--vpc-id".into(), vpc, "--subnets".into(), subnets.join(",")], zone: "us-east-1a".into() }
        }
        "aws-lattice" => {
            let h = cloudgate_provider::names::stable_hash(&[&unique("vpc")]);
            Backend { name, args: vec!["--provider".into(), "aws-lattice".into(), "--vpc-id".into(), format!("vpc-{}", &h[..17])], zone: "us-east-1a".into() }
        }
        "gcp" => {
            let region = env("GCE_REGION");
            Backend {
                name,
                args: vec!["--provider".into(), "gcp".into(), "--gcp-project".into(), env("GCE_PROJECT"), "--region".into(), region.clone()],
                zone: format!("{region}-a"),
            }
        }
        other => panic!("unknown backend {other}"),
    }
}

async fn all_programmed(client: &Client, ns: &str) -> (usize, usize) {
    let list = Api::<Gateway>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("list gateways");
    let ok = list
        .items
        .iter()
        .filter(|g| {
            g.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
                cs.iter().any(|c| c.type_ == "Programmed" && c.status == "True" && c.observed_generation == g.metadata.generation)
            })
        })
        .count();
    (ok, list.items.len())
}

async fn run_backend(client: &Client, name: &'static str) {
    // VPC Lattice associates a VPC with one service network (ConflictException otherwise; the
    // ground models it), and each Gateway is a service network: one Gateway per VPC, so Lattice
    // gets its routes on one Gateway.
    let (gateways, routes_per) = match name {
        "aws-lattice" => (1, size("BENCH_LATTICE_ROUTES", 100)),
        _ => (size("BENCH_GATEWAYS", 100), size("BENCH_ROUTES", 10)),
    };
    let (services, changes) = (10, size("BENCH_WEIGHT_CHANGES", 30));
    let b = backend(name).await;
    let ns = namespace(client, &format!("bench-{name}")).await;
    let controller_name = format!("cloudgate.io/{}", unique("bench"));
    let class_name = unique("bench-class");
    create(client, None, class(&class_name, &controller_name)).await;
    let cluster = unique("bench");
    let resync = "3600s";
    let args: Vec<&str> = b.args.iter().map(String::as_str).collect();
    let c = controller(&args, &cluster, &controller_name, &unique("bench-lease"), resync);
    c.wait_ready().await;
    step(&format!("{name}: controller ready; creating {gateways} Gateways x {routes_per} HTTPRoutes over {services} Services"));

    let mut objects = Vec::new();
    for s in 0..services {
        let svc = format!("svc-{s}");
        objects.push((Some(ns.clone()), service_obj(&svc)));
        objects.push((Some(ns.clone()), slice_obj(&svc, 0x0a_00_00 + (s as u32) * 16, 3, &b.zone, "bench-node-a")));
    }
    let t0 = Instant::now();
    for g in 0..gateways {
        objects.push((Some(ns.clone()), gateway(&format!("gw-{g}"), &class_name)));
        for r in 0..routes_per {
            objects.push((Some(ns.clone()), route_obj(&format!("r-{g}-{r}"), &format!("gw-{g}"), &format!("/p{r}"), &format!("svc-{}", r % services), &format!("svc-{}", (r + 1) % services), 90)));
        }
    }
    create_all(client, objects, 16).await;
    let created = t0.elapsed();
    // Converged: every Gateway Programmed (which a Gateway is as soon as its load balancer
    // answers, before all its routes are applied), the work queue empty and no mutating call for
    // 10 s; the figure is the time of the last mutating call.
    let mut last = 0;
    let mut last_change = (0.0, Instant::now());
    let mut all_programmed_at = None;
    let converged = loop {
        let (ok, total) = all_programmed(client, &ns).await;
        if ok != last {
            step(&format!("{name}: {ok}/{total} Gateways Programmed"));
            last = ok;
        }
        if ok == gateways {
            all_programmed_at.get_or_insert_with(|| t0.elapsed());
        }
        let muts = diff(&calls(&c), &BTreeMap::new()).1;
        if muts != last_change.0 {
            last_change = (muts, Instant::now());
        }
        let queued = c.metric("cloudgate_queue_depth", &[]);
        if ok == gateways && queued == 0.0 && last_change.1.elapsed() > Duration::from_secs(10) {
            break last_change.1 - t0;
        }
        if t0.elapsed() > Duration::from_secs(size("BENCH_TIMEOUT_SECS", 1800) as u64) {
            println!("{name}: gave up after {} with {ok}/{gateways} Programmed; controller log {}", secs(t0.elapsed()), c.log.display());
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let calls_to_converge = diff(&calls(&c), &BTreeMap::new());
    let (rss_converged, _) = rss_mib(c.child.id());

    // Steady state: the controller restarted with a 20 s drift resync. Nothing changed, so each
    // reconcile (startup, then resync) is observe + diff with nothing to do.
    drop(c);
    let c = controller(&args, &cluster, &controller_name, &unique("bench-lease"), "20s");
    c.wait_ready().await;
    let base = (BTreeMap::new(), 0.0);
    let t = Instant::now();
    while reconciles(&c) < (2 * gateways) as f64 && t.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (all, muts, mut_ops) = diff(&calls(&c), &base.0);
    let recs = reconciles(&c) - base.1;

    // Weight changes with the default-like long resync, so they do not queue behind resyncs.
    drop(c);
    let c = controller(&args, &cluster, &controller_name, &unique("bench-lease"), resync);
    c.wait_ready().await;
    let t = Instant::now();
    while reconciles(&c) < gateways as f64 && t.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Weight changes: one route at a time, its weights moved; latency to the first mutating call.
    let routes: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), &ns, &gvk("HTTPRoute"));
    let mut latencies = Vec::new();
    let mut per_change = Vec::new();
    for i in 0..changes {
        let g = (i * 37) % gateways;
        let r = i % routes_per;
        let w = 10 + (i as u32 * 7) % 80;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let before = calls(&c);
        let patch = json!({"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": format!("/p{r}")}}],
            "backendRefs": [{"name": format!("svc-{}", r % services), "port": 80, "weight": w}, {"name": format!("svc-{}", (r + 1) % services), "port": 80, "weight": 100 - w}]}]}});
        let t = Instant::now();
        routes.patch(&format!("r-{g}-{r}"), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch weights");
        let latency = loop {
            if diff(&calls(&c), &before).1 > 0.0 {
                break Some(t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(60) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // Let the reconcile finish before counting what it did.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, m, ops) = diff(&calls(&c), &before);
        per_change.push((m, ops));
        if let Some(l) = latency {
            latencies.push(l);
        }
    }
    latencies.sort();
    let mean_muts = per_change.iter().map(|(m, _)| m).sum::<f64>() / per_change.len().max(1) as f64;
    let mut shapes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, ops) in &per_change {
        *shapes.entry(ops.join(", ")).or_default() += 1;
    }

    println!("{name} on the local ground ({gateways} Gateways x {routes_per} HTTPRoutes, {services} Services; debug build of the controller, concurrency {})", size("BENCH_CONCURRENCY", 4));
    println!("  objects created in:                         {}", secs(created));
    println!("  create to all Gateways Programmed:          {}", secs(all_programmed_at.unwrap_or_default()));
    println!("  create to last cloud change:                {}", secs(converged));
    println!("  cloud API calls to converge:                {:.0} ({:.0} mutating)", calls_to_converge.0, calls_to_converge.1);
    println!("  controller RSS when converged:              {rss_converged:.1} MiB");
    println!(
        "  steady state: {recs:.0} reconciles, {all:.0} calls ({:.1} per reconcile), {muts:.0} mutating{}",
        all / recs.max(1.0),
        if mut_ops.is_empty() { String::new() } else { format!(" ({})", mut_ops.join(", ")) }
    );
    println!("  weight change: {mean_muts:.2} mutating calls per change over {} changes: {shapes:?}", per_change.len());
    if !latencies.is_empty() {
        println!(
            "  weight change to API call: p50 {}, p99 {}, max {} ({} samples)",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap()),
            latencies.len()
        );
    }
    // The cloud resources stay: tests/bench/run.sh throws the whole ground away afterwards
    // (deleting them would take as long again, at the controller's 10 calls/s).
}

#[tokio::main]
async fn main() {
    let sections = std::env::var("CLOUDGATE_BENCH").unwrap_or_else(|_| "rss,aws-alb,aws-lattice,gcp".into());
    let client = kube().await;
    for s in sections.split(',') {
        match s {
            "rss" => rss(&client).await,
            "aws-alb" => run_backend(&client, "aws-alb").await,
            "aws-lattice" => run_backend(&client, "aws-lattice").await,
            "gcp" => run_backend(&client, "gcp").await,
            other => panic!("unknown section {other}"),
        }
    }
}
