//! Chaos: random create/update/delete of Gateways, HTTPRoutes, Services, EndpointSlices and
//! Secrets across providers (one `cloudgate controller` process per provider, each with its own
//! GatewayClass, controllerName and cluster id), while the fault proxy (tests/ground/faults)
//! answers the controllers' cloud calls with throttling, 5xx, timeouts and dropped connections
//! and every controller is SIGKILLed and restarted several times. Then faults off, quiesce, and
//! audit through the cloud APIs directly (not through the proxy):
//!
//! - leaked: an owned cloud resource (our cluster tag) whose Gateway, or route, is gone or no
//!   longer attached;
//! - duplicated: two cloud resources of one kind with the same ownership tags (one desired
//!   resource, two in the cloud);
//! - foreign touched: resources created up front without our tags (and one carrying another
//!   cluster's tags) whose fingerprint changed;
//! - stale status: a live Gateway or an attached route whose conditions are not at the current
//!   generation;
//! - not quiet: a mutating cloud call within a whole resync window after the audit is clean.
//!
//! Lattice associates a VPC with one service network, so the test keeps at most one Lattice
//! Gateway at a time. GCP endpoints name their node (the NEG instance) and zone in the
//! EndpointSlices the test writes. The GCE fake must finish operations unpolled
//! (GCE_FAKE_OP_AUTOCOMPLETE_SECONDS, set by tests/run), as Compute does: a controller killed
//! between an insert and its poll would otherwise leave the resource "not ready" for ever.
//!
//! Figures (ops, kills, faults by kind, calls by operation, the counts above, time to quiesce,
//! mutating calls in a quiet resync window afterwards) are printed.
//!
//! Bounded by default (tests/run); longer by hand:
//!
//! ```sh
//! CHAOS_OPS=2000 CHAOS_KILLS=25 CHAOS_SEED=7 cargo test --workspace --features "$E2E_FEATURES" \
//!   --test chaos -- --nocapture
//! ```
//!
//! CHAOS_OPS (default 150), CHAOS_KILLS per controller (default 5), CHAOS_SEED (default: from
//! the clock, printed), CHAOS_PROVIDERS (default `aws-alb,aws-lattice,gcp`). Needs KUBECONFIG,
//! AWS_ENDPOINT_URL, GCE_* and FAULTS_* from the ground (tests/run sets them). CHAOS_RATES
//! (throttle,5xx,timeout,drop) overrides the fault mix; CHAOS_QUIESCE_SECS the quiesce limit.
#![forbid(unsafe_code)]
#![allow(clippy::await_holding_lock)]

mod support;
use support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudgate_provider::tags;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::{json, Value};

const RESYNC: &str = "15s";
/// Fault mix of the acceptance criteria (plus a few dropped connections).
const RATES: (f64, f64, f64, f64) = (0.10, 0.05, 0.02, 0.01);
/// Longer than the controllers' per-attempt timeout (CLOUDGATE_CLOUD_ATTEMPT_TIMEOUT below).
const HOLD_SECONDS: u64 = 6;
const ATTEMPT_TIMEOUT: &str = "4s";

// --- environment -----------------------------------------------------------------------------

struct Ground {
    kube: Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ec2: aws_sdk_ec2::Client,
    acm: aws_sdk_acm::Client,
    lattice: aws_sdk_vpclattice::Client,
    faults: String,
    faults_aws: String,
    /// The GCE fake, direct and through the proxy (empty when gcp is not under test).
    gce: String,
    faults_gce: String,
    project: String,
    region: String,
}

async fn ground() -> Ground {
    let kube = kube_client().await;
    env("AWS_ENDPOINT_URL");
    // Direct to the backend: the audit must not see faults.
    let sdk = cloudgate_aws_alb::cloud::load_sdk_config(&cloudgate_aws_alb::CloudOptions::default()).await;
    Ground {
        kube,
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
        ec2: aws_sdk_ec2::Client::new(&sdk),
        acm: aws_sdk_acm::Client::new(&sdk),
        lattice: aws_sdk_vpclattice::Client::new(&sdk),
        faults: env("FAULTS_CONTROL_URL"),
        faults_aws: env("FAULTS_AWS_ENDPOINT_URL"),
        gce: std::env::var("GCE_ENDPOINT").unwrap_or_default(),
        faults_gce: std::env::var("FAULTS_GCE_ENDPOINT").unwrap_or_default(),
        project: std::env::var("GCE_PROJECT").unwrap_or_default(),
        region: std::env::var("GCE_REGION").unwrap_or_default(),
    }
}

fn faults_post(g: &Ground, path: &str, body: Value) -> Value {
    let hostport = g.faults.trim_start_matches("http://").trim_end_matches('/').to_string();
    let body = body.to_string();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&hostport).expect("fault proxy");
    write!(s, "POST {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{path}: {out}");
    serde_json::from_str(body).unwrap()
}

fn faults_stats(g: &Ground) -> Value {
    let (code, body) = http("GET", &g.faults, "/_faults/stats").expect("fault proxy stats");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// CHAOS_RATES="throttle,5xx,timeout,drop" overrides the acceptance mix (for harsher runs).
fn rates() -> (f64, f64, f64, f64) {
    let Ok(v) = std::env::var("CHAOS_RATES") else { return RATES };
    let r: Vec<f64> = v.split(',').map(|x| x.trim().parse().unwrap_or_else(|_| panic!("CHAOS_RATES={v}: want four numbers"))).collect();
    assert_eq!(r.len(), 4, "CHAOS_RATES={v}: want throttle,5xx,timeout,drop");
    (r[0], r[1], r[2], r[3])
}

fn set_faults(g: &Ground, on: bool, seed: u64) {
    let (t, e, o, d) = if on { rates() } else { (0.0, 0.0, 0.0, 0.0) };
    faults_post(
        g,
        "/_faults/config",
        json!({"rates": {"throttle": t, "error5xx": e, "timeout": o, "drop": d}, "hold_seconds": HOLD_SECONDS, "seed": seed}),
    );
}

// --- providers under test ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prov {
    Alb,
    Lattice,
    Gcp,
}

impl Prov {
    fn name(self) -> &'static str {
        match self {
            Prov::Alb => "aws-alb",
            Prov::Lattice => "aws-lattice",
            Prov::Gcp => "gcp",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Prov::Alb => "alb",
            Prov::Lattice => "lattice",
            Prov::Gcp => "gcp",
        }
    }
    /// Lattice associates one VPC with one service network, so one Gateway at a time there.
    fn max_gateways(self) -> usize {
        match self {
            Prov::Alb | Prov::Gcp => 3,
            Prov::Lattice => 1,
        }
    }
}

struct Slot {
    prov: Prov,
    class: String,
    controller_name: String,
    cluster: String,
    lease: String,
    args: Vec<String>,
    ctl: Option<Controller>,
    kills: u32,
}

impl Slot {
    fn start(&mut self, g: &Ground) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.ctl = Some(Controller::start_with_env(
            &Common { cluster_id: &self.cluster, controller_name: &self.controller_name, lease: &self.lease, resync: RESYNC },
            &args,
            &[("AWS_ENDPOINT_URL", &g.faults_aws), ("GCE_ENDPOINT", &g.faults_gce), ("CLOUDGATE_CLOUD_ATTEMPT_TIMEOUT", ATTEMPT_TIMEOUT)],
        ));
    }

    /// SIGKILL (std's `Child::kill`), then a fresh process: it waits out the dead one's Lease.
    fn kill_and_restart(&mut self, g: &Ground) {
        if let Some(mut c) = self.ctl.take() {
            c.kill();
        }
        self.kills += 1;
        self.start(g);
    }
}

// --- the test's model of what it asked for -----------------------------------------------------

#[derive(Clone, Debug)]
struct Gw {
    prov: Prov,
    https: bool,
    port: u16,
}

#[derive(Clone, Debug)]
struct Route {
    gw: String,
    rules: Vec<(String, Vec<(String, u16)>)>,
}

#[derive(Default)]
struct Model {
    gateways: BTreeMap<String, Gw>,
    deleted_gateways: BTreeSet<String>,
    routes: BTreeMap<String, Route>,
    services: BTreeSet<String>,
    slices: BTreeMap<String, Vec<String>>,
    secrets: BTreeSet<String>,
    next: u32,
}

impl Model {
    fn name(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }
}

fn pick<'a, T>(rng: &mut fastrand::Rng, it: impl IntoIterator<Item = &'a T>) -> Option<&'a T> {
    let v: Vec<&T> = it.into_iter().collect();
    if v.is_empty() { None } else { Some(v[rng.usize(..v.len())]) }
}

struct Kube {
    client: Client,
    ns: String,
}

impl Kube {
    fn api(&self, api_version: &str, kind: &str) -> Api<DynamicObject> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Api::namespaced_with(self.client.clone(), &self.ns, &ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)))
    }

    /// Server-side apply: create or update, whatever exists.
    async fn apply(&self, obj: Value) {
        let api = self.api(obj["apiVersion"].as_str().unwrap(), obj["kind"].as_str().unwrap());
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        api.patch(&name, &PatchParams::apply("chaos").force(), &Patch::Apply(&obj)).await.unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }

    async fn delete(&self, api_version: &str, kind: &str, name: &str) {
        match self.api(api_version, kind).delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete {kind} {name}: {e}"),
        }
    }
}

fn gateway_obj(name: &str, class: &str, gw: &Gw) -> Value {
    let mut listeners = vec![json!({"name": "http", "port": gw.port, "protocol": "HTTP"})];
    if gw.https {
        listeners.push(json!({"name": "https", "port": 443, "protocol": "HTTPS",
            "tls": {"mode": "Terminate", "certificateRefs": [{"name": format!("tls-{name}")}]}}));
    }
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name},
        "spec": {"gatewayClassName": class, "listeners": listeners}})
}

fn route_obj(name: &str, r: &Route) -> Value {
    let rules: Vec<Value> = r
        .rules
        .iter()
        .map(|(path, backends)| {
            let refs: Vec<Value> = backends.iter().map(|(svc, w)| json!({"name": svc, "port": 80, "weight": w})).collect();
            json!({"matches": [{"path": {"type": "PathPrefix", "value": path}}], "backendRefs": refs})
        })
        .collect();
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": r.gw}], "hostnames": [format!("{name}.chaos.test")], "rules": rules}})
}

fn service_obj(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
}

/// Endpoints carry a node and a zone (GCE NEGs need both: the node is the VM instance).
fn slice_obj(svc: &str, ips: &[String], region: &str) -> Value {
    let eps: Vec<Value> = ips
        .iter()
        .map(|ip| {
            let z = if ip.ends_with(['0', '2', '4', '6', '8']) { "a" } else { "b" };
            json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": format!("chaos-gce-{z}"), "zone": format!("{region}-{z}")})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-chaos"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": eps})
}

fn secret_obj(name: &str, cert: &(String, String)) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert.0, "tls.key": cert.1}})
}

// --- random operations -------------------------------------------------------------------------

struct Ops<'a> {
    k: &'a Kube,
    slots: &'a [(Prov, String)],
    certs: Vec<(String, String)>,
    octet: u8,
    region: String,
    rng: fastrand::Rng,
    m: Model,
    done: BTreeMap<&'static str, u32>,
}

impl Ops<'_> {
    fn ip(&mut self) -> String {
        format!("10.{}.{}.{}", self.octet, self.rng.u8(0..2), self.rng.u8(10..250))
    }

    fn class_of(&self, p: Prov) -> &str {
        &self.slots.iter().find(|(q, _)| *q == p).unwrap().1
    }

    fn backends(&mut self) -> Vec<(String, u16)> {
        let n = self.rng.usize(1..=2);
        (0..n)
            .map(|_| {
                // Now and then a Service that does not exist (yet): BackendNotFound, then fixed.
                let svc = match pick(&mut self.rng, &self.m.services) {
                    Some(s) if self.rng.u8(..10) > 0 => s.clone(),
                    _ => format!("svc{}", self.rng.u32(1..=self.m.next.max(1))),
                };
                (svc, self.rng.u16(0..=10))
            })
            .collect()
    }

    /// Runs one random operation (drawing again while the drawn one has nothing to act on).
    async fn one(&mut self) -> &'static str {
        loop {
            let op = self.rng.u8(..100);
            let what = match op {
                0..=9 => self.create_gateway().await,
                10..=14 => self.delete_gateway().await,
                15..=22 => self.update_gateway().await,
                23..=35 => self.create_route().await,
                36..=50 => self.update_route().await,
                51..=57 => self.delete_route().await,
                58..=65 => Some(self.create_service().await),
                66..=69 => self.delete_service().await,
                70..=84 => self.update_slice().await,
                85..=88 => self.delete_slice().await,
                89..=96 => self.write_secret().await,
                _ => self.delete_secret().await,
            };
            if let Some(what) = what {
                *self.done.entry(what).or_default() += 1;
                return what;
            }
        }
    }

    async fn create_gateway(&mut self) -> Option<&'static str> {
        let provs: Vec<Prov> = self.slots.iter().map(|(p, _)| *p).collect();
        let p = provs[self.rng.usize(..provs.len())];
        if self.m.gateways.values().filter(|g| g.prov == p).count() >= p.max_gateways() {
            return None;
        }
        let name = self.m.name("gw");
        let gw = Gw { prov: p, https: p != Prov::Lattice && self.rng.bool(), port: 80 };
        self.k.apply(gateway_obj(&name, self.class_of(p), &gw)).await;
        self.m.gateways.insert(name, gw);
        Some("create Gateway")
    }

    async fn delete_gateway(&mut self) -> Option<&'static str> {
        let Some(name) = pick(&mut self.rng, self.m.gateways.keys()).cloned() else { return None };
        self.k.delete("gateway.networking.k8s.io/v1", "Gateway", &name).await;
        self.m.gateways.remove(&name);
        self.m.deleted_gateways.insert(name);
        Some("delete Gateway")
    }

    async fn update_gateway(&mut self) -> Option<&'static str> {
        let Some(name) = pick(&mut self.rng, self.m.gateways.keys()).cloned() else { return None };
        let mut gw = self.m.gateways[&name].clone();
        if gw.prov != Prov::Lattice && self.rng.bool() {
            gw.https = !gw.https;
        } else {
            gw.port = if gw.port == 80 { 8080 } else { 80 };
        }
        let class = self.class_of(gw.prov).to_string();
        self.k.apply(gateway_obj(&name, &class, &gw)).await;
        self.m.gateways.insert(name, gw);
        Some("update Gateway")
    }

    async fn create_route(&mut self) -> Option<&'static str> {
        let Some(gw) = pick(&mut self.rng, self.m.gateways.keys()).cloned() else { return None };
        let name = self.m.name("route");
        let rules = vec![("/".to_string(), self.backends())];
        let r = Route { gw, rules };
        self.k.apply(route_obj(&name, &r)).await;
        self.m.routes.insert(name, r);
        Some("create HTTPRoute")
    }

    async fn update_route(&mut self) -> Option<&'static str> {
        let Some(name) = pick(&mut self.rng, self.m.routes.keys()).cloned() else { return None };
        let mut r = self.m.routes[&name].clone();
        match self.rng.u8(..4) {
            0 if r.rules.len() < 3 => {
                let path = format!("/p{}", self.rng.u16(..100));
                let b = self.backends();
                r.rules.push((path, b));
            }
            1 if r.rules.len() > 1 => {
                r.rules.pop();
            }
            2 => {
                if let Some(gw) = pick(&mut self.rng, self.m.gateways.keys()).cloned() {
                    r.gw = gw;
                }
            }
            _ => {
                let i = self.rng.usize(..r.rules.len());
                for b in &mut r.rules[i].1 {
                    b.1 = self.rng.u16(0..=10);
                }
            }
        }
        self.k.apply(route_obj(&name, &r)).await;
        self.m.routes.insert(name, r);
        Some("update HTTPRoute")
    }

    async fn delete_route(&mut self) -> Option<&'static str> {
        let Some(name) = pick(&mut self.rng, self.m.routes.keys()).cloned() else { return None };
        self.k.delete("gateway.networking.k8s.io/v1", "HTTPRoute", &name).await;
        self.m.routes.remove(&name);
        Some("delete HTTPRoute")
    }

    async fn create_service(&mut self) -> &'static str {
        let name = self.m.name("svc");
        self.k.apply(service_obj(&name)).await;
        self.m.services.insert(name.clone());
        let ips: Vec<String> = (0..self.rng.usize(1..=3)).map(|_| self.ip()).collect();
        self.k.apply(slice_obj(&name, &ips, &self.region)).await;
        self.m.slices.insert(name, ips);
        "create Service"
    }

    async fn delete_service(&mut self) -> Option<&'static str> {
        let Some(name) = pick(&mut self.rng, &self.m.services).cloned() else { return None };
        self.k.delete("v1", "Service", &name).await;
        self.m.services.remove(&name);
        Some("delete Service")
    }

    async fn update_slice(&mut self) -> Option<&'static str> {
        let Some(svc) = pick(&mut self.rng, &self.m.services).cloned() else { return None };
        let mut ips = self.m.slices.get(&svc).cloned().unwrap_or_default();
        if !ips.is_empty() && self.rng.bool() {
            ips.remove(self.rng.usize(..ips.len()));
        }
        if ips.len() < 4 {
            let ip = self.ip();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        self.k.apply(slice_obj(&svc, &ips, &self.region)).await;
        self.m.slices.insert(svc, ips);
        Some("update EndpointSlice")
    }

    async fn delete_slice(&mut self) -> Option<&'static str> {
        let Some(svc) = pick(&mut self.rng, self.m.slices.keys()).cloned() else { return None };
        self.k.delete("discovery.k8s.io/v1", "EndpointSlice", &format!("{svc}-chaos")).await;
        self.m.slices.remove(&svc);
        Some("delete EndpointSlice")
    }

    /// Creates or rotates the certificate Secret of a Gateway's HTTPS listener.
    async fn write_secret(&mut self) -> Option<&'static str> {
        let Some(gw) = pick(&mut self.rng, self.m.gateways.iter().filter(|(_, g)| g.https).map(|(n, _)| n)).cloned() else {
            return None;
        };
        let cert = self.certs[self.rng.usize(..self.certs.len())].clone();
        let name = format!("tls-{gw}");
        self.k.apply(secret_obj(&name, &cert)).await;
        self.m.secrets.insert(name);
        Some("write Secret")
    }

    async fn delete_secret(&mut self) -> Option<&'static str> {
        let Some(name) = pick(&mut self.rng, &self.m.secrets).cloned() else { return None };
        self.k.delete("v1", "Secret", &name).await;
        self.m.secrets.remove(&name);
        Some("delete Secret")
    }
}

// --- what the cloud holds ------------------------------------------------------------------------

/// One cloud resource: kind, id, tags.
#[derive(Debug, Clone)]
struct CloudRes {
    kind: &'static str,
    id: String,
    tags: BTreeMap<String, String>,
}

macro_rules! all {
    ($req:expr) => {
        $req.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.map_err(|e| format!("{e:?}"))?
    };
}

async fn elb_tags(g: &Ground, arns: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let d = g.elb.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.map_err(|e| format!("{e:?}"))?;
        for td in d.tag_descriptions() {
            let t = td.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect();
            out.insert(td.resource_arn().unwrap_or_default().to_string(), t);
        }
    }
    Ok(out)
}

/// Every ELBv2/EC2/ACM resource on the endpoint (any owner).
async fn aws_alb_resources(g: &Ground) -> Result<Vec<CloudRes>, String> {
    let mut arns: Vec<(&'static str, String)> = Vec::new();
    let lbs = g.elb.describe_load_balancers().send().await.map_err(|e| format!("{e:?}"))?;
    for lb in lbs.load_balancers() {
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        let ls = g.elb.describe_listeners().load_balancer_arn(&arn).send().await.map_err(|e| format!("{e:?}"))?;
        for l in ls.listeners() {
            let larn = l.listener_arn().unwrap_or_default().to_string();
            let rules = g.elb.describe_rules().listener_arn(&larn).send().await.map_err(|e| format!("{e:?}"))?;
            arns.extend(rules.rules().iter().filter(|r| r.is_default() != Some(true)).map(|r| ("alb-rule", r.rule_arn().unwrap_or_default().to_string())));
            arns.push(("alb-listener", larn));
        }
        arns.push(("alb", arn));
    }
    let tgs = g.elb.describe_target_groups().send().await.map_err(|e| format!("{e:?}"))?;
    arns.extend(tgs.target_groups().iter().map(|t| ("alb-target-group", t.target_group_arn().unwrap_or_default().to_string())));
    let all_arns: Vec<String> = arns.iter().map(|(_, a)| a.clone()).collect();
    let tags = elb_tags(g, &all_arns).await?;
    let mut out: Vec<CloudRes> = arns.into_iter().map(|(kind, id)| CloudRes { kind, tags: tags.get(&id).cloned().unwrap_or_default(), id }).collect();
    let sgs = g.ec2.describe_security_groups().send().await.map_err(|e| format!("{e:?}"))?;
    for sg in sgs.security_groups() {
        let t = sg.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect();
        out.push(CloudRes { kind: "security-group", id: sg.group_id().unwrap_or_default().to_string(), tags: t });
    }
    let certs = g.acm.list_certificates().send().await.map_err(|e| format!("{e:?}"))?;
    for c in certs.certificate_summary_list() {
        let arn = c.certificate_arn().unwrap_or_default().to_string();
        let t = g.acm.list_tags_for_certificate().certificate_arn(&arn).send().await.map_err(|e| format!("{e:?}"))?;
        let t = t.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect();
        out.push(CloudRes { kind: "acm-certificate", id: arn, tags: t });
    }
    Ok(out)
}

/// Every VPC Lattice resource on the endpoint (any owner).
async fn aws_lattice_resources(g: &Ground) -> Result<Vec<CloudRes>, String> {
    let c = &g.lattice;
    let mut arns: Vec<(&'static str, String)> = Vec::new();
    for s in all!(c.list_service_networks()) {
        arns.push(("service-network", s.arn().unwrap_or_default().to_string()));
        let id = s.id().unwrap_or_default();
        for a in all!(c.list_service_network_vpc_associations().service_network_identifier(id)) {
            arns.push(("vpc-association", a.arn().unwrap_or_default().to_string()));
        }
        for a in all!(c.list_service_network_service_associations().service_network_identifier(id)) {
            arns.push(("service-association", a.arn().unwrap_or_default().to_string()));
        }
    }
    for s in all!(c.list_services()) {
        arns.push(("lattice-service", s.arn().unwrap_or_default().to_string()));
        let sid = s.id().unwrap_or_default();
        for l in all!(c.list_listeners().service_identifier(sid)) {
            arns.push(("lattice-listener", l.arn().unwrap_or_default().to_string()));
            let rules = all!(c.list_rules().service_identifier(sid).listener_identifier(l.id().unwrap_or_default()));
            arns.extend(rules.iter().filter(|r| r.is_default() != Some(true)).map(|r| ("lattice-rule", r.arn().unwrap_or_default().to_string())));
        }
    }
    for t in all!(c.list_target_groups()) {
        arns.push(("lattice-target-group", t.arn().unwrap_or_default().to_string()));
    }
    let mut out = Vec::new();
    for (kind, arn) in arns {
        let t = c.list_tags_for_resource().resource_arn(&arn).send().await.map_err(|e| format!("{e:?}"))?;
        let tags = t.tags().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        out.push(CloudRes { kind, id: arn, tags });
    }
    Ok(out)
}

const GCE_GLOBAL: &[&str] =
    &["addresses", "urlMaps", "backendServices", "healthChecks", "targetHttpProxies", "targetHttpsProxies", "forwardingRules", "sslCertificates", "firewalls"];

/// Every Compute resource of the global scope and every NEG (any owner). Tags as the GCP
/// provider reads them back: ownership from labels or the description JSON, plus the labels.
fn gcp_resources(g: &Ground, cluster: &str) -> Result<Vec<CloudRes>, String> {
    let p = &g.project;
    let mut lists: Vec<(&'static str, String)> = GCE_GLOBAL.iter().map(|k| (*k, format!("/compute/v1/projects/{p}/global/{k}"))).collect();
    lists.push(("networkEndpointGroups", format!("/compute/v1/projects/{p}/aggregated/networkEndpointGroups")));
    let mut out = Vec::new();
    for (kind, path) in lists {
        let v = gce_request(&g.gce, "GET", &path, None)?;
        let all: Vec<Value> = match &v["items"] {
            Value::Array(a) => a.clone(),
            Value::Object(m) => m.values().flat_map(|s| s["networkEndpointGroups"].as_array().cloned().unwrap_or_default()).collect(),
            _ => Vec::new(),
        };
        for r in all {
            let labels: BTreeMap<String, String> =
                r["labels"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default();
            let tags = cloudgate_gcp::labels::observed_tags(&labels, r["description"].as_str(), cluster);
            out.push(CloudRes { kind, id: r["selfLink"].as_str().unwrap_or_default().to_string(), tags });
        }
    }
    Ok(out)
}

async fn cloud_resources(g: &Ground, p: Prov, cluster: &str) -> Result<Vec<CloudRes>, String> {
    match p {
        Prov::Alb => aws_alb_resources(g).await,
        Prov::Lattice => aws_lattice_resources(g).await,
        Prov::Gcp => gcp_resources(g, cluster),
    }
}

/// The Gateway (`ns/name`) a resource belongs to: its ownership tag, or for GCE resources that
/// only carry labels, the live Gateway whose label value matches.
fn gateway_of(r: &CloudRes, ns: &str, live: &[&String]) -> Option<String> {
    if let Some(g) = r.tags.get(tags::GATEWAY) {
        return Some(g.clone());
    }
    let label = r.tags.get(&cloudgate_gcp::labels::label_key(tags::GATEWAY))?;
    live.iter().map(|n| format!("{ns}/{n}")).find(|k| &cloudgate_gcp::labels::label_value(k) == label)
}

// --- the audit -------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Audit {
    owned: usize,
    leaked: Vec<String>,
    duplicated: Vec<String>,
    /// Live Gateways without their main cloud resource yet (not converged).
    missing: Vec<String>,
    stale_status: Vec<String>,
}

impl Audit {
    fn clean(&self) -> bool {
        self.leaked.is_empty() && self.duplicated.is_empty() && self.missing.is_empty() && self.stale_status.is_empty()
    }
}

fn main_kind(p: Prov) -> &'static str {
    match p {
        Prov::Alb => "alb",
        Prov::Lattice => "service-network",
        Prov::Gcp => "urlMaps",
    }
}

async fn audit_cloud(g: &Ground, ns: &str, m: &Model, slots: &[(Prov, String)], out: &mut Audit) -> Result<(), String> {
    for (p, cluster) in slots {
        let res = cloud_resources(g, *p, cluster).await?;
        let live: Vec<&String> = m.gateways.iter().filter(|(_, x)| x.prov == *p).map(|(n, _)| n).collect();
        let ours: Vec<&CloudRes> = res.iter().filter(|r| tags::owned_by(&r.tags, cluster)).collect();
        out.owned += ours.len();
        let mut by_identity: BTreeMap<(&str, Vec<(&String, &String)>), Vec<&str>> = BTreeMap::new();
        for r in &ours {
            let gw = gateway_of(r, ns, &live).unwrap_or_default();
            let live_gw = gw.split_once('/').is_some_and(|(n, name)| n == ns && m.gateways.get(name).is_some_and(|x| x.prov == *p));
            let route_ok = match r.tags.get(tags::ROUTE) {
                None => true,
                Some(rt) => {
                    let mut parts = rt.rsplitn(3, '/');
                    let (name, rns) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                    rns == ns && m.routes.get(name).is_some_and(|route| format!("{ns}/{}", route.gw) == gw)
                }
            };
            if !live_gw || !route_ok {
                out.leaked.push(format!("{} {} {:?}", r.kind, r.id, r.tags));
            }
            let identity: Vec<(&String, &String)> = r.tags.iter().filter(|(k, _)| k.starts_with("cloudgate.io/") || k.starts_with("cloudgate-")).collect();
            by_identity.entry((r.kind, identity)).or_default().push(&r.id);
        }
        for ((kind, identity), ids) in by_identity {
            if ids.len() > 1 {
                out.duplicated.push(format!("{kind} x{}: {ids:?} {identity:?}", ids.len()));
            }
        }
        for (name, gw) in m.gateways.iter().filter(|(_, x)| x.prov == *p) {
            let key = format!("{ns}/{name}");
            if !ours.iter().any(|r| r.kind == main_kind(*p) && gateway_of(r, ns, &live).as_ref() == Some(&key)) {
                out.missing.push(format!("{} for Gateway {key} ({gw:?})", main_kind(*p)));
            }
        }
    }
    Ok(())
}

fn conditions_current(obj: &Value, generation: Option<i64>) -> Result<(), String> {
    let conds = obj["conditions"].as_array().cloned().unwrap_or_default();
    if conds.is_empty() {
        return Err("no conditions".into());
    }
    match conds.iter().find(|c| c["observedGeneration"].as_i64() != generation) {
        Some(c) => Err(format!("{} at observedGeneration {} (generation {generation:?})", c["type"], c["observedGeneration"])),
        None => Ok(()),
    }
}

async fn audit_status(k: &Kube, m: &Model, controllers: &BTreeMap<Prov, String>, out: &mut Audit) {
    let gws = k.api("gateway.networking.k8s.io/v1", "Gateway");
    for name in &m.deleted_gateways {
        if gws.get_opt(name).await.expect("get gateway").is_some() {
            out.stale_status.push(format!("deleted Gateway {name} still exists (finalizer)"));
        }
    }
    for name in m.gateways.keys() {
        match gws.get_opt(name).await.expect("get gateway") {
            None => out.stale_status.push(format!("Gateway {name} missing")),
            Some(gw) => {
                let status = gw.data.get("status").cloned().unwrap_or(Value::Null);
                if let Err(e) = conditions_current(&status, gw.metadata.generation) {
                    out.stale_status.push(format!("Gateway {name}: {e}"));
                }
            }
        }
    }
    let routes = k.api("gateway.networking.k8s.io/v1", "HTTPRoute");
    for (name, r) in &m.routes {
        let Some(gw) = m.gateways.get(&r.gw) else { continue };
        let route = routes.get(name).await.expect("get route");
        let controller = &controllers[&gw.prov];
        let parents = route.data.pointer("/status/parents").and_then(Value::as_array).cloned().unwrap_or_default();
        let entry = parents.iter().find(|p| p["controllerName"] == controller.as_str() && p["parentRef"]["name"] == r.gw.as_str());
        match entry {
            None => out.stale_status.push(format!("HTTPRoute {name}: no parents entry of {controller} for {}", r.gw)),
            Some(e) => {
                if let Err(err) = conditions_current(e, route.metadata.generation) {
                    out.stale_status.push(format!("HTTPRoute {name}: {err}"));
                }
            }
        }
    }
}

/// The audit itself must see what it is looking for: two security groups carrying identical
/// ownership tags of a made-up cluster, for a Gateway that does not exist, are one leak each
/// and one duplicate pair.
async fn audit_catches_planted_leak_and_duplicate(g: &Ground, ns: &str, vpc: &str) {
    let cluster = unique("planted");
    let t = [(tags::MANAGED_BY, tags::MANAGED_BY_VALUE), (tags::CLUSTER, cluster.as_str()), (tags::GATEWAY, &format!("{ns}/ghost")), (tags::NAME, "sg")];
    let mut ids = Vec::new();
    for i in 0..2 {
        let sg = g.ec2.create_security_group().group_name(format!("{cluster}-{i}")).description("planted").vpc_id(vpc).send().await.expect("planted SG");
        let id = sg.group_id().unwrap().to_string();
        let ec2_tags: Vec<aws_sdk_ec2::types::Tag> = t.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build()).collect();
        g.ec2.create_tags().resources(&id).set_tags(Some(ec2_tags)).send().await.expect("tag planted SG");
        ids.push(id);
    }
    let mut a = Audit::default();
    audit_cloud(g, ns, &Model::default(), &[(Prov::Alb, cluster.clone())], &mut a).await.expect("audit");
    for id in &ids {
        g.ec2.delete_security_group().group_id(id).send().await.expect("delete planted SG");
    }
    assert_eq!((a.owned, a.leaked.len(), a.duplicated.len()), (2, 2, 1), "the audit missed planted resources: {a:#?}");
}

// --- foreign resources -----------------------------------------------------------------------------

/// Resources that are not ours (no tags, another team's tags, another cluster's cloudgate tags),
/// as (description, fingerprint) pairs.
struct Foreign {
    alb_arns: Vec<String>,
    tg_arns: Vec<String>,
    sg_ids: Vec<String>,
    lattice: Vec<String>,
    /// selfLinks of Compute resources.
    gce: Vec<String>,
}

async fn make_foreign(g: &Ground, vpc: &str, subnets: &[String], lattice_vpc: &str, id: &str) -> Foreign {
    use aws_sdk_elasticloadbalancingv2::types as el;
    let mut f = Foreign { alb_arns: vec![], tg_arns: vec![], sg_ids: vec![], lattice: vec![], gce: vec![] };
    let variants: [(&str, Vec<(&str, &str)>); 3] = [
        ("untagged", vec![]),
        ("team", vec![("team", "someone-else")]),
        ("othercluster", vec![(tags::MANAGED_BY, tags::MANAGED_BY_VALUE), (tags::CLUSTER, "another-cluster"), (tags::GATEWAY, "default/gw1")]),
    ];
    for (v, t) in &variants {
        let elb_tags: Vec<el::Tag> = t.iter().map(|(k, v)| el::Tag::builder().key(*k).value(*v).build()).collect();
        let sg = g
            .ec2
            .create_security_group()
            .group_name(format!("foreign-{v}-{id}"))
            .description("foreign")
            .vpc_id(vpc)
            .send()
            .await
            .expect("foreign SG");
        let sg_id = sg.group_id().unwrap().to_string();
        if !t.is_empty() {
            let ec2_tags: Vec<aws_sdk_ec2::types::Tag> = t.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build()).collect();
            g.ec2.create_tags().resources(&sg_id).set_tags(Some(ec2_tags)).send().await.expect("tag SG");
        }
        let lb = g
            .elb
            .create_load_balancer()
            .name(format!("f{v}-{id}").chars().take(32).collect::<String>())
            .set_subnets(Some(subnets.to_vec()))
            .security_groups(&sg_id)
            .set_tags(if elb_tags.is_empty() { None } else { Some(elb_tags.clone()) })
            .send()
            .await
            .expect("foreign ALB");
        let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
        let tg = g
            .elb
            .create_target_group()
            .name(format!("ft{v}-{id}").chars().take(32).collect::<String>())
            .protocol(el::ProtocolEnum::Http)
            .port(80)
            .vpc_id(vpc)
            .target_type(el::TargetTypeEnum::Ip)
            .set_tags(if elb_tags.is_empty() { None } else { Some(elb_tags.clone()) })
            .send()
            .await
            .expect("foreign TG");
        let tg_arn = tg.target_groups()[0].target_group_arn().unwrap().to_string();
        g.elb
            .register_targets()
            .target_group_arn(&tg_arn)
            .targets(el::TargetDescription::builder().id("10.9.0.9").port(8080).build())
            .send()
            .await
            .expect("foreign targets");
        let fwd = el::Action::builder().r#type(el::ActionTypeEnum::Forward).target_group_arn(&tg_arn).build();
        g.elb
            .create_listener()
            .load_balancer_arn(&lb_arn)
            .port(80)
            .protocol(el::ProtocolEnum::Http)
            .default_actions(fwd)
            .send()
            .await
            .expect("foreign listener");
        f.alb_arns.push(lb_arn);
        f.tg_arns.push(tg_arn);
        f.sg_ids.push(sg_id);

        let lt: std::collections::HashMap<String, String> = t.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lt = if lt.is_empty() { None } else { Some(lt) };
        let c = &g.lattice;
        let sn = c.create_service_network().name(format!("fsn-{v}-{id}")).set_tags(lt.clone()).send().await.expect("foreign service network");
        let svc = c.create_service().name(format!("fsvc-{v}-{id}")).set_tags(lt.clone()).send().await.expect("foreign service");
        use aws_sdk_vpclattice::types as lty;
        let tgc = lty::TargetGroupConfig::builder().port(8080).protocol(lty::TargetGroupProtocol::Http).vpc_identifier(lattice_vpc).build();
        let ltg = c
            .create_target_group()
            .name(format!("ftg-{v}-{id}"))
            .r#type(lty::TargetGroupType::Ip)
            .config(tgc)
            .set_tags(lt.clone())
            .send()
            .await
            .expect("foreign lattice TG");
        c.register_targets()
            .target_group_identifier(ltg.id().unwrap())
            .targets(lty::Target::builder().id("10.9.0.9").port(8080).build().unwrap())
            .send()
            .await
            .expect("foreign lattice targets");
        let def = lty::RuleAction::FixedResponse(lty::FixedResponseAction::builder().status_code(404).build().unwrap());
        c.create_listener()
            .service_identifier(svc.id().unwrap())
            .name("http")
            .protocol(lty::ListenerProtocol::Http)
            .port(80)
            .default_action(def)
            .send()
            .await
            .expect("foreign lattice listener");
        c.create_service_network_service_association()
            .service_network_identifier(sn.id().unwrap())
            .service_identifier(svc.id().unwrap())
            .send()
            .await
            .expect("foreign association");
        f.lattice.extend([sn.id().unwrap().to_string(), svc.id().unwrap().to_string(), ltg.id().unwrap().to_string()]);
    }
    f
}

/// Compute resources that are not ours: a health check and an address with no cloudgate marks,
/// and a `cg-`-named health check whose description claims another cluster.
fn make_foreign_gce(g: &Ground, f: &mut Foreign, id: &str) {
    let p = &g.project;
    let hc = |name: String, description: Option<Value>| {
        let mut body = json!({"name": name, "type": "HTTP", "httpHealthCheck": {"port": 8080, "requestPath": "/healthz"}});
        if let Some(d) = description {
            body["description"] = Value::from(d.to_string());
        }
        body
    };
    let other = json!({"cloudgate": {"cluster": "another-cluster", "gateway": "default/gw1", "resource": "health-check"}});
    for (collection, body) in [
        ("healthChecks", hc(format!("foreign-hc-{id}"), None)),
        ("healthChecks", hc(format!("cg-foreign-hc-{id}"), Some(other))),
        ("addresses", json!({"name": format!("foreign-addr-{id}"), "labels": {"team": "someone-else"}})),
    ] {
        let name = body["name"].as_str().unwrap().to_string();
        gce_request(&g.gce, "POST", &format!("/compute/v1/projects/{p}/global/{collection}"), Some(&body)).unwrap_or_else(|e| panic!("foreign {collection}: {e}"));
        f.gce.push(format!("/compute/v1/projects/{p}/global/{collection}/{name}"));
    }
}

/// Debug text without the per-answer request id.
fn scrub(s: String) -> String {
    const MARK: &str = "_request_id: Some(\"";
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find(MARK) {
        out.push_str(&rest[..i]);
        rest = &rest[i + MARK.len()..];
        rest = rest.find('"').map_or("", |j| &rest[j + 1..]);
    }
    out.push_str(rest);
    out
}

/// Everything the APIs say about the foreign resources, as text (any change shows).
async fn fingerprint(g: &Ground, f: &Foreign) -> Vec<String> {
    fingerprint_raw(g, f).await.into_iter().map(scrub).collect()
}

async fn fingerprint_raw(g: &Ground, f: &Foreign) -> Vec<String> {
    let mut out = Vec::new();
    let lbs = g.elb.describe_load_balancers().set_load_balancer_arns(Some(f.alb_arns.clone())).send().await.expect("describe foreign");
    out.extend(lbs.load_balancers().iter().map(|l| format!("{l:?}")));
    for arn in &f.alb_arns {
        let ls = g.elb.describe_listeners().load_balancer_arn(arn).send().await.expect("foreign listeners");
        out.push(format!("{:?}", ls.listeners()));
        for l in ls.listeners() {
            let rules = g.elb.describe_rules().listener_arn(l.listener_arn().unwrap()).send().await.expect("foreign rules");
            out.push(format!("{:?}", rules.rules()));
        }
    }
    let tgs = g.elb.describe_target_groups().set_target_group_arns(Some(f.tg_arns.clone())).send().await.expect("foreign TGs");
    out.extend(tgs.target_groups().iter().map(|t| format!("{t:?}")));
    for arn in &f.tg_arns {
        let h = g.elb.describe_target_health().target_group_arn(arn).send().await.expect("foreign targets");
        out.push(format!("{:?}", h.target_health_descriptions()));
    }
    let all: Vec<String> = f.alb_arns.iter().chain(&f.tg_arns).cloned().collect();
    out.push(format!("{:?}", elb_tags(g, &all).await.expect("foreign tags")));
    let sgs = g.ec2.describe_security_groups().set_group_ids(Some(f.sg_ids.clone())).send().await.expect("foreign SGs");
    out.extend(sgs.security_groups().iter().map(|s| format!("{s:?}")));
    for link in &f.gce {
        out.push(gce_request(&g.gce, "GET", link, None).map_or_else(|e| format!("{link}: {e}"), |v| v.to_string()));
    }
    let c = &g.lattice;
    for ids in f.lattice.chunks(3) {
        let (sn, svc, tg) = (&ids[0], &ids[1], &ids[2]);
        let sn = c.get_service_network().service_network_identifier(sn).send().await.expect("foreign SN");
        out.push(format!("{sn:?}"));
        let s = c.get_service().service_identifier(svc).send().await.expect("foreign service");
        out.push(format!("{s:?}"));
        let ls = c.list_listeners().service_identifier(svc).send().await.expect("foreign listeners");
        out.push(format!("{:?}", ls.items()));
        let t = c.get_target_group().target_group_identifier(tg).send().await.expect("foreign lattice TG");
        out.push(format!("{t:?}"));
        let targets = c.list_targets().target_group_identifier(tg).send().await.expect("foreign lattice targets");
        out.push(format!("{:?}", targets.items()));
        for arn in [sn.arn().unwrap_or_default(), s.arn().unwrap_or_default(), t.arn().unwrap_or_default()] {
            let tags = c.list_tags_for_resource().resource_arn(arn).send().await.expect("foreign lattice tags");
            let sorted: BTreeMap<String, String> = tags.tags().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
            out.push(format!("{sorted:?}"));
        }
    }
    out
}

// --- the scenario ----------------------------------------------------------------------------------

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().filter(|v| !v.is_empty()).map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number"))).unwrap_or(default)
}

/// Mutating calls (anything but Describe/List/Get) in proxy stats.
fn mutating(stats: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for calls in stats["calls"].as_object().into_iter().flat_map(|m| m.values()) {
        for (op, n) in calls.as_object().into_iter().flatten() {
            let action = op.split_once(':').map_or(op.as_str(), |(_, a)| a);
            // Lattice's ListTargets and Compute's listNetworkEndpoints are POSTs.
            let last = action.rsplit('/').next().unwrap_or_default();
            let read = ["Describe", "List", "Get", "GET "].iter().any(|p| action.starts_with(p)) || last.to_ascii_lowercase().starts_with("list");
            if !read {
                out.insert(op.clone(), n.as_u64().unwrap_or(0));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_leaves_no_leak_no_duplicate_and_touches_nothing_foreign() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let ops_total = env_num("CHAOS_OPS", 150);
    let kills_each = env_num("CHAOS_KILLS", 5) as u32;
    let seed = env_num("CHAOS_SEED", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 100_000);
    let provs: Vec<Prov> = std::env::var("CHAOS_PROVIDERS")
        .unwrap_or_else(|_| "aws-alb,aws-lattice,gcp".into())
        .split(',')
        .map(|p| match p.trim() {
            "aws-alb" => Prov::Alb,
            "aws-lattice" => Prov::Lattice,
            "gcp" => Prov::Gcp,
            other => panic!("CHAOS_PROVIDERS: {other} is not supported here (aws-alb, aws-lattice, gcp)"),
        })
        .collect();
    step(&format!("chaos: seed {seed}, {ops_total} ops, {kills_each} kills per controller, providers {provs:?}, fault rates {:?}", rates()));
    let mut rng = fastrand::Rng::with_seed(seed);
    let id = unique("chaos");
    let octet = rng.u8(10..250);
    let (vpc, subnets) = vpc_with_subnets(&g.ec2, octet).await;
    let lattice_vpc = format!("vpc-{}", &cloudgate_provider::names::stable_hash(&[&id])[..17]);

    // Foreign resources first, fingerprinted before any controller runs.
    set_faults(&g, false, seed);
    let mut foreign = make_foreign(&g, &vpc, &subnets, &lattice_vpc, &cloudgate_provider::names::stable_hash(&[&id])[..8]).await;
    if provs.contains(&Prov::Gcp) {
        make_foreign_gce(&g, &mut foreign, &cloudgate_provider::names::stable_hash(&[&id])[..8]);
    }
    let before = fingerprint(&g, &foreign).await;

    let ns = namespace(&g.kube, "chaos").await;
    let k = Kube { client: g.kube.clone(), ns: ns.clone() };
    let mut slots: Vec<Slot> = provs
        .iter()
        .map(|p| {
            let mut args: Vec<String> = vec!["--provider".into(), p.name().into(), "--lease-duration".into(), "3s".into(), "--lease-renew-period".into(), "1s".into()];
            match p {
                Prov::Alb => args.extend(["--vpc-id".into(), vpc.clone(), "--subnets".into(), subnets.join(",")]),
                Prov::Lattice => args.extend(["--vpc-id".into(), lattice_vpc.clone()]),
                Prov::Gcp => args.extend(["--gcp-project".into(), env("GCE_PROJECT"), "--region".into(), env("GCE_REGION")]),
            }
            Slot {
                prov: *p,
                class: format!("{id}-{}", p.short()),
                controller_name: format!("cloudgate.io/{id}-{}", p.short()),
                cluster: format!("{id}-{}", p.short()),
                lease: format!("{id}-{}", p.short()),
                args,
                ctl: None,
                kills: 0,
            }
        })
        .collect();
    for s in &slots {
        create(&g.kube, None, class(&s.class, &s.controller_name)).await;
    }
    for s in &mut slots {
        s.start(&g);
    }
    for s in &slots {
        s.ctl.as_ref().unwrap().wait_ready().await;
    }
    let class_of: Vec<(Prov, String)> = slots.iter().map(|s| (s.prov, s.class.clone())).collect();
    let clusters: Vec<(Prov, String)> = slots.iter().map(|s| (s.prov, s.cluster.clone())).collect();
    let controllers: BTreeMap<Prov, String> = slots.iter().map(|s| (s.prov, s.controller_name.clone())).collect();

    // --- chaos: ops on one task, kills on another, faults on -----------------------------------
    faults_post(&g, "/_faults/reset", json!({}));
    set_faults(&g, true, seed);
    let started = Instant::now();
    let slots = Arc::new(Mutex::new(slots));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let slots = slots.clone();
        let stop = stop.clone();
        let mut krng = fastrand::Rng::with_seed(seed ^ 0x5eed);
        let g2 = ground().await;
        tokio::spawn(async move {
            let n = slots.lock().unwrap().len();
            let mut next = 0usize;
            loop {
                let done = slots.lock().unwrap().iter().all(|s| s.kills >= kills_each);
                if done {
                    break;
                }
                // Kill while reconciles are in flight: a few seconds after the last restart
                // (the new process first waits out the dead one's 3 s Lease).
                tokio::time::sleep(Duration::from_millis(krng.u64(6000..12000) / n as u64)).await;
                let mut s = slots.lock().unwrap();
                let slot = &mut s[next % n];
                next += 1;
                if slot.kills < kills_each {
                    slot.kill_and_restart(&g2);
                    step(&format!("killed and restarted the {} controller ({} kills)", slot.prov.name(), slot.kills));
                }
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };

    let certs: Vec<(String, String)> = (0..3).map(|i| self_signed(&format!("c{i}.chaos.test"))).collect();
    let region = if g.region.is_empty() { "us-central1".to_string() } else { g.region.clone() };
    let mut ops = Ops { k: &k, slots: &class_of, certs, octet, region, rng, m: Model::default(), done: BTreeMap::new() };
    let mut n = 0u64;
    // At least CHAOS_OPS operations, and keep going until every kill happened.
    while n < ops_total || !stop.load(std::sync::atomic::Ordering::SeqCst) {
        ops.one().await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(ops.rng.u64(50..500))).await;
    }
    killer.await.unwrap();
    let chaos_secs = started.elapsed().as_secs_f64();
    step(&format!("chaos done: {n} ops in {chaos_secs:.0}s"));

    // --- quiesce -------------------------------------------------------------------------------
    set_faults(&g, false, seed);
    let stats = faults_stats(&g);
    let quiesce = Instant::now();
    // Longer than the controller's backoff cap (5 min): the gcp provider does not retry a
    // throttled call itself, so under faults a Gateway's reconcile can fail often enough to
    // reach that cap, and it is only retried once it has passed.
    let quiesce_limit = Duration::from_secs(env_num("CHAOS_QUIESCE_SECS", 420));
    // Quiet means: the audit is clean, and then a whole resync period (and a bit) passes without
    // one mutating cloud call, so nothing is still on its way (a backoff, a requeue).
    let quiet_window = Duration::from_secs(20);
    let mut quiet: BTreeMap<String, u64>;
    let mut windows = 0;
    let (audit, converged_secs) = loop {
        let mut a = Audit::default();
        match audit_cloud(&g, &ns, &ops.m, &clusters, &mut a).await {
            Ok(()) => {}
            Err(e) => a.missing.push(format!("cloud listing failed: {e}")),
        }
        audit_status(&k, &ops.m, &controllers, &mut a).await;
        let timed_out = quiesce.elapsed() > quiesce_limit;
        if a.clean() || timed_out {
            let converged = quiesce.elapsed().as_secs_f64();
            faults_post(&g, "/_faults/reset", json!({}));
            tokio::time::sleep(quiet_window).await;
            quiet = mutating(&faults_stats(&g));
            windows += 1;
            if quiet.is_empty() || timed_out {
                break (a, converged);
            }
            step(&format!("not quiet yet: {quiet:?}"));
        } else {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    let after = fingerprint(&g, &foreign).await;
    let touched: Vec<(&String, &String)> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();

    // --- figures -------------------------------------------------------------------------------
    let slots_now = slots.lock().unwrap();
    let mut out = String::new();
    figure!(out, "\n=== chaos figures (seed {seed}) ===");
    figure!(out, "providers          {}", provs.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "));
    figure!(out, "operations         {n} in {chaos_secs:.0}s");
    for (what, c) in &ops.done {
        figure!(out, "  {what:<22} {c}");
    }
    figure!(out, "controller kills   {}", slots_now.iter().map(|s| format!("{} {}", s.prov.name(), s.kills)).collect::<Vec<_>>().join(", "));
    figure!(out, "cloud calls        {} through the proxy during chaos", stats["total"]);
    figure!(out, "fault rates        throttle {:.2}, 5xx {:.2}, timeout {:.2}, drop {:.2}", rates().0, rates().1, rates().2, rates().3);
    figure!(out, "faults injected    {}", stats["faults"]);
    figure!(out, "calls by operation");
    for (_, calls) in stats["calls"].as_object().into_iter().flatten() {
        for (op, c) in calls.as_object().into_iter().flatten() {
            let f = &stats["faults_by_operation"][op];
            figure!(out, "  {op:<70} {c:>5}  {}", if f.is_null() { String::new() } else { f.to_string() });
        }
    }
    figure!(out, "owned resources    {} at the end", audit.owned);
    figure!(out, "leaked             {}", audit.leaked.len());
    figure!(out, "duplicated         {}", audit.duplicated.len());
    figure!(out, "foreign touched    {}", touched.len());
    figure!(out, "stale status       {}", audit.stale_status.len());
    figure!(out, "not converged      {}", audit.missing.len());
    figure!(out, "time to quiesce    {converged_secs:.1}s after faults off (then {windows} x {}s windows; the last without a mutating call: {quiet:?})", quiet_window.as_secs());
    for l in audit.leaked.iter().chain(&audit.duplicated).chain(&audit.stale_status).chain(&audit.missing) {
        figure!(out, "  ! {l}");
    }
    for (a, b) in &touched {
        figure!(out, "  ! foreign changed:\n    before {a}\n    after  {b}");
    }
    drop(slots_now);

    let failed = !audit.clean() || !touched.is_empty() || !quiet.is_empty();
    if failed {
        for s in slots.lock().unwrap().iter() {
            if let Some(c) = &s.ctl {
                figure!(out, "--- {} controller log {} (tail) ---\n{}", s.prov.name(), c.log.display(), c.log_tail());
            }
        }
    }
    print_figures(&out);
    assert!(audit.leaked.is_empty(), "leaked cloud resources: {:#?}", audit.leaked);
    assert!(audit.duplicated.is_empty(), "duplicated cloud resources: {:#?}", audit.duplicated);
    assert!(touched.is_empty(), "foreign resources touched: {touched:#?}");
    assert!(audit.stale_status.is_empty(), "status not current: {:#?}", audit.stale_status);
    assert!(audit.missing.is_empty(), "not converged: {:#?}", audit.missing);
    assert!(quiet.is_empty(), "still changing the cloud {}s after faults off: {quiet:?}", quiesce_limit.as_secs());
    assert!(slots.lock().unwrap().iter().all(|s| s.kills >= kills_each));

    audit_catches_planted_leak_and_duplicate(&g, &ns, &vpc).await;

    // --- clean up: every Gateway deleted, so the controllers remove what they made ---------------
    for name in ops.m.gateways.keys() {
        k.delete("gateway.networking.k8s.io/v1", "Gateway", name).await;
    }
    let gws = k.api("gateway.networking.k8s.io/v1", "Gateway");
    poll("every chaos Gateway gone", Duration::from_secs(120), || async {
        let left = gws.list(&Default::default()).await.map_err(|e| e.to_string())?;
        if left.items.is_empty() { Ok(()) } else { Err(format!("{} left", left.items.len())) }
    })
    .await;
    drop(slots);
    for (_, c) in &class_of {
        let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(c, &DeleteParams::default()).await;
    }
    delete_namespace(&g.kube, &ns).await;
}
