//! End to end on AWS VPC Lattice: the built `cloudgate controller --provider aws-lattice` binary
//! against the local test ground (a real kube-apiserver with kwok nodes, and moto with
//! cloudgate's Lattice extension), checked with the Lattice SDK client and the ground's call log:
//!
//! - GatewayClass + Gateway (HTTP listener) + HTTPRoute with a header rule listed after a
//!   catch-all, both with two weighted backends, become a service network, its VPC association,
//!   a Lattice service (associated with the network), an HTTP listener, rules in precedence order
//!   (the header rule has the smaller priority) and IP target groups holding the pods' IPs;
//!   Gateway Programmed=True with the service's Lattice DNS name; route Accepted/ResolvedRefs at
//!   the current observedGeneration;
//! - a weight change is exactly one mutating Lattice call; scaling a Deployment moves targets;
//! - deleting the route removes its Lattice service, listener, rules and target groups; deleting
//!   the Gateway then removes the service network and its VPC association, and the finalizer.
//!
//! Needs KUBECONFIG and AWS_ENDPOINT_URL from the ground (`tests/run` sets them); without them
//! the test fails with "run via tests/run". Built only with `--features e2e`.
#![forbid(unsafe_code)]
#![allow(clippy::await_holding_lock)]


use std::collections::{BTreeMap, BTreeSet};

use cloudgate_provider::tags;
use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::{json, Value};

static SERIAL: Mutex<()> = Mutex::new(());

// --- environment ----------------------------------------------------------------------------

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: run via tests/run (or source the ground's STATE_DIR/*.env)"),
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{:x}{:x}{:x}", std::process::id() & 0xfff, N.fetch_add(1, Ordering::Relaxed), nanos & 0xffff)
}

/// Progress on stderr (shown with --nocapture, and on failure), with the time since start.
fn step(what: &str) {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed();
    eprintln!("[e2e {:>6.1}s] {what}", t.as_secs_f64());
}

async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("timed out after {timeout:?} waiting for {what}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

struct Ground {
    kube: Client,
    /// The provider's SDK client (`cloud.client()`), for plain reads only (they bypass its
    /// counters).
    cloud: cloudgate_aws_lattice::LatticeCloud,
    aws_endpoint: String,
}

async fn ground() -> Ground {
    let kubeconfig = env("KUBECONFIG");
    let aws_endpoint = env("AWS_ENDPOINT_URL");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("KUBECONFIG={kubeconfig}: {e}"));
    let kube = Client::try_from(config).expect("kube client");
    let cloud = cloudgate_aws_lattice::LatticeCloud::from_env(cloudgate_aws_lattice::CloudOptions::default()).await;
    Ground { kube, cloud, aws_endpoint }
}

/// A VPC id of the form Lattice validates (`vpc-` + 17 hex), unique per test: the ground's
/// Lattice extension accepts any well-formed id.
fn vpc_id() -> String {
    let h = cloudgate_provider::names::stable_hash(&[&unique("vpc")]);
    format!("vpc-{}", &h[..17])
}

// --- tiny HTTP client (ops endpoint, moto's /_ground API) --------------------------------------

/// HTTP/1.0 so the answer is never chunked; `base` is `http://host:port`.
fn http(method: &str, base: &str, path: &str) -> Result<(u16, String), String> {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| format!("{base}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Length: 0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let code = out.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad response: {out:.200}"))?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

fn reset_calls(g: &Ground) {
    let (code, body) = http("POST", &g.aws_endpoint, "/_ground/calls/reset").expect("reset call log");
    assert_eq!(code, 200, "{body}");
}

/// Mutating Lattice calls (anything but Get*/List*; by name, ListTargets is a POST) since the
/// last reset.
fn mutating_lattice_calls(g: &Ground) -> Vec<String> {
    let (code, body) = http("GET", &g.aws_endpoint, "/_ground/calls?service=vpc-lattice").expect("call log");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("call log json");
    v["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["action"].as_str())
        .filter(|a| !(a.starts_with("List") || a.starts_with("Get")))
        .map(str::to_string)
        .collect()
}

// --- the controller under test ---------------------------------------------------------------

struct Controller {
    child: Child,
    base: String,
    log: PathBuf,
}

struct Opts<'a> {
    cluster_id: &'a str,
    controller_name: &'a str,
    lease: &'a str,
    vpc: &'a str,
    resync: &'a str,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Controller {
    fn start(o: &Opts<'_>) -> Controller {
        let port = free_port();
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{port}.log", o.lease));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cloudgate"))
            .args(["controller", "--cluster-id", o.cluster_id, "--controller-name", o.controller_name])
            .args(["--lease-name", o.lease, "--leader-election-namespace", "default"])
            .args(["--provider", "aws-lattice", "--vpc-id", o.vpc, "--resync-period", o.resync])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--concurrency", "2"])
            .env("RUST_LOG", "info,cloudgate=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start cloudgate controller");
        Controller { child, base: format!("http://127.0.0.1:{port}"), log }
    }

    fn readyz(&self) -> Option<u16> {
        http("GET", &self.base, "/readyz").ok().map(|(c, _)| c)
    }

    fn metrics(&self) -> String {
        http("GET", &self.base, "/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    /// Sum of a metric's samples whose line contains every `filter`.
    fn metric(&self, name: &str, filters: &[&str]) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn wait_ready(&self) {
        poll("controller /readyz", Duration::from_secs(60), || async {
            match self.readyz() {
                Some(200) => Ok(()),
                other => Err(format!("{other:?}; log {}", self.log.display())),
            }
        })
        .await
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- controller log {} (tail) ---\n{}", self.log.display(), self.log_tail());
        }
        self.kill();
    }
}

// --- Kubernetes objects ------------------------------------------------------------------------

fn gvk(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind))
}

async fn create(client: &Client, ns: Option<&str>, obj: Value) -> DynamicObject {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let api_version = obj["apiVersion"].as_str().unwrap().to_string();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create {kind}: {e}"))
}

async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    create(client, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await;
    name
}

async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone()).delete(name, &DeleteParams::background()).await;
}

/// A Deployment (kwok runs its pods: Ready with an IP) and a Service in front of it.
async fn app(client: &Client, ns: &str, name: &str, replicas: i32) {
    create(
        client,
        Some(ns),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "registry.invalid/cloudgate/e2e:never-pulled",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}}),
    )
    .await;
    service(client, ns, name).await;
}

async fn service(client: &Client, ns: &str, name: &str) {
    create(
        client,
        Some(ns),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    )
    .await;
}

async fn scale(client: &Client, ns: &str, name: &str, replicas: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await
        .expect("scale");
}

/// IPs of the Ready pods of `app` (exactly `want` of them).
async fn pod_ips(client: &Client, ns: &str, app: &str, want: usize) -> BTreeSet<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    poll(&format!("{want} ready pods of {app}"), Duration::from_secs(90), || async {
        let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.map_err(|e| e.to_string())?;
        let live: Vec<&Pod> = list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let ips: BTreeSet<String> = live
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")))
            .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
            .collect();
        let total = live.len();
        if ips.len() == want && total == want { Ok(ips) } else { Err(format!("{} ready of {total}: {ips:?}", ips.len())) }
    })
    .await
}

fn class(name: &str, controller: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": name},
        "spec": {"controllerName": controller}})
}

fn gateway(name: &str, class: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name},
        "spec": {"gatewayClassName": class, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
}

async fn get_gateway(client: &Client, ns: &str, name: &str) -> Option<Gateway> {
    Api::<Gateway>::namespaced(client.clone(), ns).get_opt(name).await.expect("get gateway")
}

async fn get_route(client: &Client, ns: &str, name: &str) -> DynamicObject {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &gvk("HTTPRoute")).get(name).await.expect("get route")
}

fn cond<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// The route's `status.parents` entry of `controller`, as (type, status, reason, observedGeneration).
fn route_conditions(route: &DynamicObject, controller: &str) -> Vec<(String, String, String, Option<i64>)> {
    route
        .data
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p["controllerName"] == controller)
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["type"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["observedGeneration"].as_i64(),
            )
        })
        .collect()
}

/// Waits until the route's entry of `controller` has `type_` = `status` with `reason`, at the
/// route's current generation.
async fn wait_route_condition(client: &Client, ns: &str, name: &str, controller: &str, type_: &str, status: &str, reason: &str) {
    poll(&format!("HTTPRoute {ns}/{name} {type_}={status} ({reason})"), Duration::from_secs(60), || async {
        let r = get_route(client, ns, name).await;
        let generation = r.metadata.generation;
        let conds = route_conditions(&r, controller);
        if conds.iter().any(|(t, s, re, g)| t == type_ && s == status && re == reason && *g == generation) {
            Ok(())
        } else {
            Err(format!("generation {generation:?}: {conds:?}"))
        }
    })
    .await
}

/// Waits for Programmed=True at the current generation and returns the address.
async fn wait_programmed(client: &Client, ns: &str, name: &str) -> String {
    poll(&format!("Gateway {ns}/{name} Programmed=True"), Duration::from_secs(90), || async {
        let gw = get_gateway(client, ns, name).await.ok_or("gateway missing")?;
        let status = gw.status.clone().unwrap_or_default();
        let conds = status.conditions.clone().unwrap_or_default();
        let programmed = cond(&conds, "Programmed").ok_or_else(|| format!("no Programmed yet: {conds:?}"))?;
        if programmed.status != "True" || programmed.observed_generation != gw.metadata.generation {
            return Err(format!("{programmed:?}"));
        }
        let addr = status.addresses.unwrap_or_default().first().map(|a| a.value.clone()).ok_or("no address")?;
        Ok(addr)
    })
    .await
}

// --- what the Lattice endpoint holds -------------------------------------------------------------

/// Collects every item of a paginated List call.
macro_rules! all {
    ($req:expr) => {
        $req.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.map_err(|e| format!("{e:?}"))?
    };
}

async fn tags_of(g: &Ground, arn: &str) -> Result<BTreeMap<String, String>, String> {
    let out = g.cloud.client().list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| format!("{e:?}"))?;
    Ok(out.tags().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default())
}

/// Every Lattice resource (by ARN) tagged for `cluster`, on the whole endpoint.
async fn owned_resources(g: &Ground, cluster: &str) -> Result<Vec<String>, String> {
    let c = g.cloud.client();
    let mut arns = Vec::new();
    for s in all!(c.list_service_networks()) {
        arns.push(s.arn().unwrap_or_default().to_string());
        let id = s.id().unwrap_or_default();
        for a in all!(c.list_service_network_vpc_associations().service_network_identifier(id)) {
            arns.push(a.arn().unwrap_or_default().to_string());
        }
        for a in all!(c.list_service_network_service_associations().service_network_identifier(id)) {
            arns.push(a.arn().unwrap_or_default().to_string());
        }
    }
    for s in all!(c.list_services()) {
        arns.push(s.arn().unwrap_or_default().to_string());
        let sid = s.id().unwrap_or_default();
        for l in all!(c.list_listeners().service_identifier(sid)) {
            arns.push(l.arn().unwrap_or_default().to_string());
            let rules = all!(c.list_rules().service_identifier(sid).listener_identifier(l.id().unwrap_or_default()));
            arns.extend(rules.iter().filter(|r| r.is_default() != Some(true)).map(|r| r.arn().unwrap_or_default().to_string()));
        }
    }
    for t in all!(c.list_target_groups()) {
        arns.push(t.arn().unwrap_or_default().to_string());
    }
    let mut ours = Vec::new();
    for a in arns {
        if tags_of(g, &a).await?.get(tags::CLUSTER).map(String::as_str) == Some(cluster) {
            ours.push(a);
        }
    }
    Ok(ours)
}

/// One non-default rule: priority, its match (debug text), forward (target group id, weight).
#[derive(Debug, Clone)]
struct Rule {
    priority: i32,
    matches: String,
    forward: Vec<(String, i32)>,
}

/// The Lattice service whose DNS name is `dns`, with its network association, listeners and rules.
#[derive(Debug)]
struct LatticeService {
    id: String,
    /// Service networks it is associated with.
    networks: Vec<String>,
    /// (protocol, port) per listener.
    listeners: Vec<(String, i32)>,
    rules: Vec<Rule>,
}

async fn service_by_dns(g: &Ground, dns: &str) -> Result<LatticeService, String> {
    let c = g.cloud.client();
    let svcs = all!(c.list_services());
    let svc = svcs
        .iter()
        .find(|s| s.dns_entry().and_then(|d| d.domain_name()) == Some(dns))
        .ok_or_else(|| format!("no Lattice service with DNS {dns}"))?;
    let id = svc.id().unwrap_or_default().to_string();
    let networks = all!(c.list_service_network_service_associations().service_identifier(&id))
        .iter()
        .filter_map(|a| a.service_network_id().map(str::to_string))
        .collect();
    let mut listeners = Vec::new();
    let mut rules = Vec::new();
    for l in all!(c.list_listeners().service_identifier(&id)) {
        listeners.push((l.protocol().map(|p| p.as_str().to_string()).unwrap_or_default(), l.port().unwrap_or_default()));
        let lid = l.id().unwrap_or_default();
        for r in all!(c.list_rules().service_identifier(&id).listener_identifier(lid)) {
            if r.is_default() == Some(true) {
                continue;
            }
            let got = c
                .get_rule()
                .service_identifier(&id)
                .listener_identifier(lid)
                .rule_identifier(r.id().unwrap_or_default())
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let forward = got
                .action()
                .and_then(|a| a.as_forward().ok())
                .map(|f| f.target_groups().iter().map(|t| (t.target_group_identifier().to_string(), t.weight().unwrap_or(0))).collect())
                .unwrap_or_default();
            rules.push(Rule { priority: got.priority().unwrap_or_default(), matches: format!("{:?}", got.r#match()), forward });
        }
    }
    rules.sort_by_key(|r| r.priority);
    Ok(LatticeService { id, networks, listeners, rules })
}

/// Target IPs registered in a target group.
async fn targets(g: &Ground, tg: &str) -> Result<BTreeSet<String>, String> {
    Ok(all!(g.cloud.client().list_targets().target_group_identifier(tg)).iter().filter_map(|t| t.id().map(str::to_string)).collect())
}

// --- the scenario ------------------------------------------------------------------------------

fn web_route(catch_all: (u32, u32)) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": web_rules(catch_all)}})
}

/// A catch-all (web-a / web-b at `catch_all`) listed before a header canary (web-b 90 / web-a 10).
fn web_rules(catch_all: (u32, u32)) -> Value {
    json!([
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
         "backendRefs": [{"name": "web-a", "port": 80, "weight": catch_all.0}, {"name": "web-b", "port": 80, "weight": catch_all.1}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "X-Canary", "value": "true"}]}],
         "backendRefs": [{"name": "web-b", "port": 80, "weight": 90}, {"name": "web-a", "port": 80, "weight": 10}]}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_lifecycle_on_lattice() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let vpc = vpc_id();
    let cluster = unique("e2e-lat");
    let controller_name = format!("cloudgate.io/{}", unique("lat"));
    let class_name = unique("cg-lat");
    let ns = namespace(&g.kube, "e2e-lat").await;
    let ctl = Controller::start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, vpc: &vpc, resync: "5s" });

    step("provision: class, gateway, route with a header rule after a catch-all");
    app(&g.kube, &ns, "web-a", 2).await;
    app(&g.kube, &ns, "web-b", 1).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    let r = create(&g.kube, Some(&ns), web_route((80, 20))).await;
    ctl.wait_ready().await;
    let dns = wait_programmed(&g.kube, &ns, "gw").await;
    let gw = get_gateway(&g.kube, &ns, "gw").await.unwrap();
    assert!(gw.metadata.finalizers.iter().flatten().any(|f| f == "cloudgate.io/cloud-resources"), "finalizer: {:?}", gw.metadata.finalizers);
    let status = gw.status.unwrap();
    assert_eq!(cond(status.conditions.as_deref().unwrap(), "Accepted").unwrap().status, "True");
    let addresses = status.addresses.clone().unwrap();
    assert_eq!(addresses.len(), 1, "one route, one Lattice service DNS name: {addresses:?}");
    assert_eq!(addresses[0].r#type.as_deref(), Some("Hostname"));
    let listener = &status.listeners.as_ref().unwrap()[0];
    assert_eq!(listener.attached_routes, 1);
    assert_eq!(cond(&listener.conditions, "Programmed").unwrap().status, "True");
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "Accepted", "True", "Accepted").await;
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "ResolvedRefs", "True", "ResolvedRefs").await;
    assert_eq!(get_route(&g.kube, &ns, "web").await.metadata.generation, r.metadata.generation);

    // Service network + its VPC association, both ours.
    let c = g.cloud.client();
    let sns = c.list_service_networks().send().await.expect("ListServiceNetworks");
    let mut ours_sn = Vec::new();
    for sn in sns.items() {
        if tags_of(&g, sn.arn().unwrap_or_default()).await.unwrap().get(tags::CLUSTER) == Some(&cluster) {
            ours_sn.push(sn.id().unwrap_or_default().to_string());
        }
    }
    let [sn_id] = ours_sn.as_slice() else { panic!("one service network for the Gateway: {ours_sn:?}") };
    let vpcs = c.list_service_network_vpc_associations().service_network_identifier(sn_id).send().await.expect("ListServiceNetworkVpcAssociations");
    assert_eq!(vpcs.items().len(), 1);
    assert_eq!(vpcs.items()[0].vpc_id(), Some(vpc.as_str()));

    // The route's service at the Gateway's address: associated, one HTTP listener, the header
    // rule first, weighted forwards to target groups holding the pods' IPs.
    let ips_a = pod_ips(&g.kube, &ns, "web-a", 2).await;
    let ips_b = pod_ips(&g.kube, &ns, "web-b", 1).await;
    let (tg_a, tg_b) = poll("Lattice service, rules and both target groups' targets", Duration::from_secs(60), || async {
        let s = service_by_dns(&g, &dns).await?;
        if s.networks != vec![sn_id.clone()] {
            return Err(format!("service {} associated with {:?}, want {sn_id}", s.id, s.networks));
        }
        if s.listeners != vec![("HTTP".to_string(), 80)] {
            return Err(format!("listeners {:?}", s.listeners));
        }
        let [canary, catch_all] = s.rules.as_slice() else { return Err(format!("rules {:?}", s.rules)) };
        if !(canary.priority < catch_all.priority && canary.matches.contains("x-canary") && !catch_all.matches.to_lowercase().contains("x-canary")) {
            return Err(format!("the header rule must come first: {:?}", s.rules));
        }
        let mut seen = Vec::new();
        for (tg, w) in &catch_all.forward {
            seen.push((tg.clone(), *w, targets(&g, tg).await?));
        }
        let a = seen.iter().find(|(_, w, t)| *w == 80 && *t == ips_a);
        let b = seen.iter().find(|(_, w, t)| *w == 20 && *t == ips_b);
        let (Some(a), Some(b), 2) = (a, b, seen.len()) else {
            return Err(format!("catch-all forward {seen:?}, want web-a {ips_a:?} at 80 and web-b {ips_b:?} at 20"));
        };
        let want_canary = vec![(b.0.clone(), 90), (a.0.clone(), 10)];
        if canary.forward != want_canary {
            return Err(format!("header rule forward {:?}, want {want_canary:?}", canary.forward));
        }
        Ok((a.0.clone(), b.0.clone()))
    })
    .await;

    step("weight change");
    reset_calls(&g);
    let routes: Api<DynamicObject> = Api::namespaced_with(g.kube.clone(), &ns, &gvk("HTTPRoute"));
    let patched = routes
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"rules": web_rules((50, 50))}})))
        .await
        .expect("patch weights");
    assert!(patched.metadata.generation > r.metadata.generation);
    poll("weights 50/50 on the catch-all rule", Duration::from_secs(60), || async {
        let s = service_by_dns(&g, &dns).await?;
        let w: Vec<i32> = s.rules.last().map(|r| r.forward.iter().map(|(_, w)| *w).collect()).unwrap_or_default();
        if w == vec![50, 50] { Ok(()) } else { Err(format!("{w:?}")) }
    })
    .await;
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "Accepted", "True", "Accepted").await;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let calls = mutating_lattice_calls(&g);
        assert!(calls.len() <= 1, "a weight change made {} mutating Lattice calls: {calls:?}", calls.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let calls = mutating_lattice_calls(&g);
    assert_eq!(calls, vec!["UpdateRule".to_string()], "a weight change must be exactly one mutating Lattice call");
    // The provider's call counter reaches /metrics.
    let updates = ctl.metric("cloudgate_cloud_api_calls_total", &["operation=\"UpdateRule\"", "outcome=\"ok\""]);
    assert!(updates >= 1.0, "UpdateRule calls on /metrics: {updates}");

    step("scaling web-a 2 -> 3");
    scale(&g.kube, &ns, "web-a", 3).await;
    let want = pod_ips(&g.kube, &ns, "web-a", 3).await;
    poll("3 targets in web-a's target group", Duration::from_secs(60), || async {
        let t = targets(&g, &tg_a).await?;
        if t == want { Ok(()) } else { Err(format!("{t:?} != {want:?}")) }
    })
    .await;
    assert_eq!(targets(&g, &tg_b).await.unwrap(), ips_b, "the other target group is untouched");

    step("delete the route: its service, listener, rules and target groups go");
    let svc_id = service_by_dns(&g, &dns).await.expect("service").id;
    routes.delete("web", &DeleteParams::default()).await.expect("delete route");
    poll("the route's Lattice resources gone", Duration::from_secs(60), || async {
        let svcs = all!(g.cloud.client().list_services());
        if svcs.iter().any(|s| s.id() == Some(svc_id.as_str())) {
            return Err(format!("service {svc_id} still there"));
        }
        let tgs = all!(g.cloud.client().list_target_groups());
        let left: Vec<_> = tgs.iter().filter_map(|t| t.id()).filter(|id| *id == tg_a || *id == tg_b).collect();
        if !left.is_empty() {
            return Err(format!("target groups left: {left:?}"));
        }
        let owned = owned_resources(&g, &cluster).await?;
        if owned.len() == 2 { Ok(()) } else { Err(format!("want the service network and its VPC association only: {owned:?}")) }
    })
    .await;

    step("delete the Gateway: nothing left, finalizer removed");
    Api::<Gateway>::namespaced(g.kube.clone(), &ns).delete("gw", &DeleteParams::default()).await.expect("delete gateway");
    poll("Gateway finalized and gone", Duration::from_secs(90), || async {
        match get_gateway(&g.kube, &ns, "gw").await {
            None => Ok(()),
            Some(gw) => Err(format!("finalizers {:?}", gw.metadata.finalizers)),
        }
    })
    .await;
    let left = owned_resources(&g, &cluster).await.expect("list owned");
    assert!(left.is_empty(), "Lattice resources left after deleting the Gateway: {left:?}");

    delete_namespace(&g.kube, &ns).await;
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    drop(ctl);
}
