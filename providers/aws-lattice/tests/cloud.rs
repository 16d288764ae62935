//! The Lattice provider's SDK half against a real Lattice endpoint: the local test ground
//! (moto + cloudgate's Lattice extension, with its call log), LocalStack or AWS.
//!
//! Needs the AWS environment (`AWS_ENDPOINT_URL`, credentials, region); run via `tests/run`, or:
//!
//! ```sh
//! S=$(mktemp -d); tests/ground/aws/up.sh $S; set -a; . $S/aws.env; set +a
//! cargo test -p cloudgate-aws-lattice --test cloud
//! tests/ground/aws/down.sh $S
//! ```
//!
//! Every scenario drives the provider the way the controller does (render, observe, diff,
//! apply), checks the result with plain SDK reads, and counts mutating calls twice: with the
//! provider's own call counter, and (on the ground) with the server's call log. Tests hold one
//! lock, so call-log windows never overlap; each uses its own cluster id and VPC id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_vpclattice::Client;
use cloudgate_aws_lattice::{kind, CloudOptions, LatticeCloud, KIND_ORDER};
use cloudgate_provider::cloud::{ApplyOutcome, CloudProvider, Owner};
use cloudgate_provider::diff::{diff, Change, ChangeSet};
use cloudgate_provider::{tags, Provider, RenderContext, ResourceGraph};
use cloudgate_translate::model::{ObjKey, Route};
use cloudgate_translate::{translate_gateway, LoadBalancerPlan, World};
use gateway_api::experimental::{gateways::Gateway, grpcroutes::GrpcRoute, httproutes::HttpRoute, tlsroutes::TlsRoute};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;
use serde_json::Value;

static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: run via tests/run (or source STATE_DIR/aws.env from tests/ground/aws/up.sh)"),
    }
}

/// Our ground answers `/_ground/calls`; another endpoint (LocalStack, AWS) does not, and the
/// call-log checks are skipped there (the provider's own counter is still checked).
fn on_ground() -> bool {
    std::env::var("GROUND_AWS_MODE").as_deref() == Ok("moto")
}

async fn ground(method: reqwest::Method, path: &str) -> Value {
    let url = format!("{}{path}", env("AWS_ENDPOINT_URL").trim_end_matches('/'));
    // reqwest is built without a default crypto provider in this workspace (rustls + ring
    // everywhere, no aws-lc); install ring once before the first client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new().request(method.clone(), &url).send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{method} {url}: {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

async fn reset_call_log() {
    if on_ground() {
        ground(reqwest::Method::POST, "/_ground/calls/reset").await;
    }
}

/// Mutating Lattice calls since the last reset, by action; `None` off the ground. (By name, not
/// HTTP method: ListTargets is a POST.)
async fn mutating_calls() -> Option<Vec<String>> {
    if !on_ground() {
        eprintln!("not on the cloudgate ground (GROUND_AWS_MODE != moto): call-log checks skipped");
        return None;
    }
    let v = ground(reqwest::Method::GET, "/_ground/calls?service=vpc-lattice").await;
    Some(
        v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["action"].as_str().unwrap_or("?").to_string())
            .filter(|a| !a.starts_with("Get") && !a.starts_with("List"))
            .collect(),
    )
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}{:x}{:x}{:x}", std::process::id() & 0xfff, N.fetch_add(1, Ordering::Relaxed), nanos & 0xffffff)
}

/// A VPC id of the form Lattice validates (`vpc-` + 17 hex), unique per test.
fn vpc_id() -> String {
    let h = cloudgate_provider::names::stable_hash(&[&unique("vpc")]);
    format!("vpc-{}", &h[..17])
}

struct Env {
    cloud: LatticeCloud,
    ctx: RenderContext,
    owner: Owner,
}

impl Env {
    async fn new() -> Self {
        Self::with(CloudOptions { requests_per_second: 0.0, ..Default::default() }).await
    }

    async fn with(opts: CloudOptions) -> Self {
        env("AWS_ENDPOINT_URL");
        let cloud = LatticeCloud::from_env(opts).await;
        let cluster = unique("t");
        let ctx = RenderContext { cluster_id: cluster.clone(), region: env("AWS_REGION"), network: vpc_id(), ..Default::default() };
        let owner = Owner { cluster_id: cluster, gateway: ObjKey::new("apps", "gw") };
        Env { cloud, ctx, owner }
    }

    fn client(&self) -> &Client {
        self.cloud.client()
    }

    fn render(&self, plan: Option<&LoadBalancerPlan>) -> ResourceGraph {
        plan.map(|p| self.cloud.render(p, &self.ctx).expect("render")).unwrap_or_default()
    }

    async fn changes(&self, plan: Option<&LoadBalancerPlan>) -> (ChangeSet, Vec<cloudgate_provider::diff::ObservedResource>) {
        let observed = self.cloud.observe(&self.owner, &self.ctx).await.expect("observe");
        (diff(&self.render(plan), &observed, &self.ctx.cluster_id, KIND_ORDER), observed)
    }

    /// One reconcile: observe, diff, apply. Returns the changes applied and the outcome.
    async fn reconcile(&self, plan: Option<&LoadBalancerPlan>) -> (ChangeSet, ApplyOutcome) {
        let (cs, observed) = self.changes(plan).await;
        let out = self.cloud.apply(plan, &cs, &observed, &self.ctx).await.unwrap_or_else(|e| panic!("apply: {e}\nchanges: {}", summary(&cs)));
        (cs, out)
    }

    /// After a reconcile: a fresh observe finds nothing to change.
    async fn assert_steady(&self, plan: Option<&LoadBalancerPlan>) {
        let (cs, _) = self.changes(plan).await;
        assert!(cs.is_empty(), "not steady: {}", summary(&cs));
    }

    /// Lattice mutating calls the provider made, per its own counter.
    fn mutations_so_far(&self) -> u64 {
        self.cloud.calls().total(|c| !c.operation.starts_with("Get") && !c.operation.starts_with("List"))
    }
}

fn summary(cs: &ChangeSet) -> String {
    cs.changes
        .iter()
        .map(|c| match c {
            Change::Create { desired } => format!("create {}", desired.key),
            Change::Update { desired, observed } => format!("update {}: want {} have {}", desired.key, desired.spec, observed.spec),
            Change::Delete { observed } => format!("delete {}", observed.key),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------------ manifests

fn world(docs: &str) -> World {
    let mut w = World::new();
    for doc in serde_yaml::Deserializer::from_str(docs) {
        let v = serde_yaml::Value::deserialize(doc).unwrap();
        if v.is_null() {
            continue;
        }
        match v["kind"].as_str().expect("kind") {
            "Gateway" => w.upsert_gateway(serde_yaml::from_value::<Gateway>(v).unwrap()),
            "HTTPRoute" => {
                w.upsert_route(Route::from(&serde_yaml::from_value::<HttpRoute>(v).unwrap()));
            }
            "GRPCRoute" => {
                w.upsert_route(Route::from(&serde_yaml::from_value::<GrpcRoute>(v).unwrap()));
            }
            "TLSRoute" => {
                w.upsert_route(Route::from(&serde_yaml::from_value::<TlsRoute>(v).unwrap()));
            }
            "Service" => w.upsert_service(serde_yaml::from_value::<Service>(v).unwrap()),
            "EndpointSlice" => w.upsert_slice(serde_yaml::from_value::<EndpointSlice>(v).unwrap()),
            other => panic!("unexpected kind {other}"),
        }
    }
    w
}

fn plan(docs: &str) -> LoadBalancerPlan {
    let w = world(docs);
    let t = translate_gateway(&w, &ObjKey::new("apps", "gw"), &cloudgate_aws_lattice::capabilities()).expect("gateway");
    assert!(t.gateway.accepted.status, "gateway not accepted: {:?}", t.gateway.accepted);
    t.plan
}

const HTTP_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: lattice
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: All}}
"#;

fn service(name: &str, ips: &[&str]) -> String {
    let endpoints: String = ips.iter().map(|ip| format!("- addresses: [{ip}]\n")).collect();
    format!(
        r#"---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: apps}}
spec:
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-abcde
  namespace: apps
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
{endpoints}"#
    )
}

/// HTTPRoute `web`: a catch-all rule listed first (web-v1 90 / web-v2 10), then a header canary
/// (web-v2 / web-v1 with `canary` weights), and optionally an exact-path rule listed last.
fn web_route(canary: (u32, u32), extra_exact: bool) -> String {
    let extra = if extra_exact { "  - matches: [{path: {type: Exact, value: /healthz}}]\n    backendRefs: [{name: web-v1, port: 80}]\n" } else { "" };
    format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs:
    - {{name: web-v1, port: 80, weight: 90}}
    - {{name: web-v2, port: 80, weight: 10}}
  - matches:
    - path: {{type: PathPrefix, value: /}}
      headers: [{{name: X-Canary, value: "true"}}]
    backendRefs:
    - {{name: web-v2, port: 80, weight: {}}}
    - {{name: web-v1, port: 80, weight: {}}}
{extra}"#,
        canary.0, canary.1
    )
}

fn canary_docs(canary: (u32, u32), v1_ips: &[&str], extra_exact: bool) -> String {
    format!("{HTTP_GATEWAY}{}{}{}", service("web-v1", v1_ips), service("web-v2", &["10.0.1.5"]), web_route(canary, extra_exact))
}

// ------------------------------------------------------------------------ cloud reads

async fn tags_of(c: &Client, arn: &str) -> BTreeMap<String, String> {
    let out = c.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
    out.tags().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

/// Collects every item of a paginated List call.
macro_rules! all {
    ($req:expr) => {
        $req.into_paginator().items().send().collect::<Result<Vec<_>, _>>().await.unwrap()
    };
}

/// Every Lattice resource (by ARN) tagged for `cluster`, on the whole endpoint.
async fn tagged_for(c: &Client, cluster: &str) -> Vec<String> {
    let mut arns = Vec::new();
    for s in all!(c.list_service_networks()) {
        arns.push(s.arn().unwrap().to_string());
        let id = s.id().unwrap();
        for a in all!(c.list_service_network_vpc_associations().service_network_identifier(id)) {
            arns.push(a.arn().unwrap().to_string());
        }
        for a in all!(c.list_service_network_service_associations().service_network_identifier(id)) {
            arns.push(a.arn().unwrap().to_string());
        }
    }
    for s in all!(c.list_services()) {
        arns.push(s.arn().unwrap().to_string());
        for l in all!(c.list_listeners().service_identifier(s.id().unwrap())) {
            arns.push(l.arn().unwrap().to_string());
            let rules = all!(c.list_rules().service_identifier(s.id().unwrap()).listener_identifier(l.id().unwrap()));
            arns.extend(rules.iter().filter(|r| r.is_default() != Some(true)).map(|r| r.arn().unwrap().to_string()));
        }
    }
    for t in all!(c.list_target_groups()) {
        arns.push(t.arn().unwrap().to_string());
    }
    let mut ours = Vec::new();
    for a in arns {
        if tags_of(c, &a).await.get(tags::CLUSTER).map(String::as_str) == Some(cluster) {
            ours.push(a);
        }
    }
    ours
}

/// (priority, match JSON-ish debug, forward weights by target group id) of the non-default rules.
async fn rules_of(c: &Client, svc_id: &str, listener_id: &str) -> Vec<(i32, String, Vec<(String, i32)>)> {
    let mut out = Vec::new();
    for r in all!(c.list_rules().service_identifier(svc_id).listener_identifier(listener_id)) {
        if r.is_default() == Some(true) {
            continue;
        }
        let got = c.get_rule().service_identifier(svc_id).listener_identifier(listener_id).rule_identifier(r.id().unwrap()).send().await.unwrap();
        let weights = match got.action() {
            Some(aws_sdk_vpclattice::types::RuleAction::Forward(f)) => {
                f.target_groups().iter().map(|t| (t.target_group_identifier().to_string(), t.weight().unwrap_or(0))).collect()
            }
            _ => Vec::new(),
        };
        out.push((got.priority().unwrap(), format!("{:?}", got.r#match()), weights));
    }
    out.sort();
    out
}

async fn targets_of(c: &Client, tg: &str) -> BTreeSet<(String, i32)> {
    all!(c.list_targets().target_group_identifier(tg)).iter().map(|t| (t.id().unwrap().to_string(), t.port().unwrap_or(0))).collect()
}

async fn service_by_name(c: &Client, name: &str) -> Option<aws_sdk_vpclattice::types::ServiceSummary> {
    all!(c.list_services()).into_iter().find(|s| s.name() == Some(name))
}

async fn target_group_id(c: &Client, name: &str) -> String {
    let tgs = all!(c.list_target_groups());
    tgs.iter().find(|t| t.name() == Some(name)).and_then(|t| t.id()).unwrap_or_else(|| panic!("target group {name}")).to_string()
}

fn names_of(g: &ResourceGraph, k: &str) -> Vec<String> {
    g.resources.iter().filter(|r| r.key.kind == k).map(|r| r.key.name.clone()).collect()
}

/// Deletes the Gateway (empty desired state) and checks nothing tagged for the test's cluster
/// is left.
async fn delete_gateway(e: &Env) {
    let (cs, out) = e.reconcile(None).await;
    assert!(cs.changes.iter().all(|c| matches!(c, Change::Delete { .. })), "{}", summary(&cs));
    assert!(out.ready && out.addresses.is_empty());
    e.assert_steady(None).await;
    let left = tagged_for(e.client(), &e.ctx.cluster_id).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ------------------------------------------------------------------------ scenarios

/// (1) A header canary listed after a catch-all, two weighted backends: everything is created,
/// rules in precedence order, targets from the EndpointSlices; then steady state, and an empty
/// change set makes no mutating call.
#[tokio::test]
async fn http_route_with_a_header_canary_is_provisioned_in_precedence_order() {
    let _lock = LOCK.lock().await;
    let e = Env::new().await;
    let c = e.client();
    let p = plan(&canary_docs((90, 10), &["10.0.0.12", "10.0.0.11"], false));
    let graph = e.render(Some(&p));

    let (cs, out) = e.reconcile(Some(&p)).await;
    assert_eq!(cs.changes.len(), graph.resources.len(), "everything is new: {}", summary(&cs));
    assert!(out.ready, "associations are ACTIVE on the ground");
    assert_eq!(out.mutations, graph.resources.len() + 2, "one create per resource plus RegisterTargets per target group");

    // Service network + VPC association.
    let sn_name = &names_of(&graph, kind::SERVICE_NETWORK)[0];
    let sns = all!(c.list_service_networks());
    let sn = sns.iter().find(|s| s.name() == Some(sn_name.as_str())).expect("service network");
    let vpcs = c.list_service_network_vpc_associations().service_network_identifier(sn.id().unwrap()).send().await.unwrap();
    assert_eq!(vpcs.items().len(), 1);
    assert_eq!(vpcs.items()[0].vpc_id(), Some(e.ctx.network.as_str()));
    assert_eq!(vpcs.items()[0].status().map(|s| s.as_str()), Some("ACTIVE"));

    // The route's service, associated with the network; the address is its DNS name.
    let svc_name = &names_of(&graph, kind::SERVICE)[0];
    let svc = service_by_name(c, svc_name).await.expect("service");
    let svc_id = svc.id().unwrap();
    let assoc = c.list_service_network_service_associations().service_identifier(svc_id).send().await.unwrap();
    assert_eq!(assoc.items().len(), 1);
    assert_eq!(assoc.items()[0].service_network_id(), sn.id());
    let dns = svc.dns_entry().and_then(|d| d.domain_name()).unwrap().to_string();
    assert_eq!(out.addresses.len(), 1);
    assert_eq!((out.addresses[0].type_.as_str(), out.addresses[0].value.as_str()), ("Hostname", dns.as_str()));

    // One HTTP listener; the header rule comes first although it is listed second.
    let listeners = c.list_listeners().service_identifier(svc_id).send().await.unwrap();
    assert_eq!(listeners.items().len(), 1);
    let l = &listeners.items()[0];
    assert_eq!((l.protocol().map(|p| p.as_str()), l.port()), (Some("HTTP"), Some(80)));
    let rules = rules_of(c, svc_id, l.id().unwrap()).await;
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!((rules[0].0, rules[1].0), (1, 2));
    assert!(rules[0].1.contains("x-canary"), "priority 1 is the header rule: {rules:?}");
    assert!(!rules[1].1.contains("x-canary"), "{rules:?}");

    // Target groups hold the ready endpoints; the rules' weights point at them.
    let tg_of = |svc: &str| graph.resources.iter().find(|r| r.key.kind == kind::TARGET_GROUP && r.tags[tags::RESOURCE] == format!("target-group/apps/{svc}:80")).unwrap();
    let v1 = target_group_id(c, &tg_of("web-v1").key.name).await;
    let v2 = target_group_id(c, &tg_of("web-v2").key.name).await;
    assert_eq!(targets_of(c, &v1).await, BTreeSet::from([("10.0.0.11".into(), 8080), ("10.0.0.12".into(), 8080)]));
    assert_eq!(targets_of(c, &v2).await, BTreeSet::from([("10.0.1.5".into(), 8080)]));
    assert_eq!(rules[0].2, vec![(v2.clone(), 90), (v1.clone(), 10)]);
    assert_eq!(rules[1].2, vec![(v1.clone(), 90), (v2.clone(), 10)]);

    // Steady state: nothing to change, and applying nothing calls nothing mutating. Tags of
    // what the provider created or already read come from its cache.
    let tag_reads = e.cloud.calls().total(|c| c.operation == "ListTagsForResource");
    e.assert_steady(Some(&p)).await;
    assert_eq!(e.cloud.calls().total(|c| c.operation == "ListTagsForResource"), tag_reads, "tags of what we created are known");
    // Gets only for what changed since the last observe: none now.
    let gets = e.cloud.calls().total(|c| c.operation.starts_with("Get"));
    let reads = e.cloud.calls().total(|_| true);
    e.assert_steady(Some(&p)).await;
    assert_eq!(e.cloud.calls().total(|c| c.operation.starts_with("Get")), gets, "unchanged resources are not read again");
    eprintln!("steady-state observe: {} read calls", e.cloud.calls().total(|_| true) - reads);
    reset_call_log().await;
    let before = e.mutations_so_far();
    let (cs, out) = e.reconcile(Some(&p)).await;
    assert!(cs.is_empty(), "{}", summary(&cs));
    assert_eq!(out.mutations, 0);
    assert!(out.ready);
    assert_eq!(out.addresses[0].value, dns);
    assert_eq!(e.mutations_so_far(), before);
    if let Some(calls) = mutating_calls().await {
        assert!(calls.is_empty(), "mutating calls in steady state: {calls:?}");
    }

    delete_gateway(&e).await;
}

/// (2) A GRPCRoute and a TLSRoute (passthrough) on one Gateway.
#[tokio::test]
async fn grpc_route_and_tls_passthrough_route_are_provisioned() {
    let _lock = LOCK.lock().await;
    let e = Env::new().await;
    let c = e.client();
    let docs = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: lattice
  listeners:
  - {name: grpc, port: 8080, protocol: HTTP, hostname: grpc.example.com}
  - {name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: apps}
spec:
  parentRefs: [{name: gw, sectionName: grpc}]
  rules:
  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    backendRefs: [{name: greeter, port: 50051}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: db, namespace: apps}
spec:
  parentRefs: [{name: gw, sectionName: tls}]
  hostnames: [db.example.com]
  rules:
  - backendRefs: [{name: db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: apps}
spec:
  ports: [{name: grpc, port: 50051, targetPort: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: greeter-1, namespace: apps, labels: {kubernetes.io/service-name: greeter}}
addressType: IPv4
ports: [{name: grpc, port: 9000, protocol: TCP}]
endpoints: [{addresses: [10.1.0.7]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: apps}
spec:
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: apps, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints: [{addresses: [10.2.0.9]}, {addresses: [10.2.0.3]}]
"#;
    let p = plan(docs);
    let graph = e.render(Some(&p));
    let (_, out) = e.reconcile(Some(&p)).await;
    assert!(out.ready);
    assert_eq!(out.addresses.len(), 2);
    e.assert_steady(Some(&p)).await;

    let svc_of = |route: &str| graph.resources.iter().find(|r| r.key.kind == kind::SERVICE && r.tags[tags::ROUTE] == route).unwrap().key.name.clone();
    let tg_of = |route: &str| graph.resources.iter().find(|r| r.key.kind == kind::TARGET_GROUP && r.tags[tags::ROUTE] == route).unwrap().key.name.clone();

    // gRPC: HTTP listener on 8080, an exact-path rule, a GRPC target group.
    let grpc = service_by_name(c, &svc_of("GRPCRoute/apps/greeter")).await.expect("grpc service");
    assert_eq!(grpc.custom_domain_name(), Some("grpc.example.com"));
    let ls = c.list_listeners().service_identifier(grpc.id().unwrap()).send().await.unwrap();
    assert_eq!(ls.items().len(), 1);
    assert_eq!((ls.items()[0].protocol().map(|p| p.as_str()), ls.items()[0].port()), (Some("HTTP"), Some(8080)));
    let rules = rules_of(c, grpc.id().unwrap(), ls.items()[0].id().unwrap()).await;
    assert_eq!(rules.len(), 1);
    assert!(rules[0].1.contains("/helloworld.Greeter/SayHello"), "{rules:?}");
    let grpc_tg = target_group_id(c, &tg_of("GRPCRoute/apps/greeter")).await;
    let got = c.get_target_group().target_group_identifier(&grpc_tg).send().await.unwrap();
    assert_eq!(got.config().and_then(|c| c.protocol_version()).map(|v| v.as_str()), Some("GRPC"));
    assert_eq!(targets_of(c, &grpc_tg).await, BTreeSet::from([("10.1.0.7".into(), 9000)]));

    // TLS passthrough: the listener forwards by its default action to a TCP target group.
    let tls = service_by_name(c, &svc_of("TLSRoute/apps/db")).await.expect("tls service");
    assert_eq!(tls.custom_domain_name(), Some("db.example.com"));
    let ls = c.list_listeners().service_identifier(tls.id().unwrap()).send().await.unwrap();
    assert_eq!(ls.items().len(), 1);
    let l = c.get_listener().service_identifier(tls.id().unwrap()).listener_identifier(ls.items()[0].id().unwrap()).send().await.unwrap();
    assert_eq!((l.protocol().map(|p| p.as_str()), l.port()), (Some("TLS_PASSTHROUGH"), Some(443)));
    let db_tg = target_group_id(c, &tg_of("TLSRoute/apps/db")).await;
    let fwd = l.default_action().and_then(|a| a.as_forward().ok()).expect("forward default action");
    assert_eq!(fwd.target_groups().len(), 1);
    assert!([db_tg.as_str()].contains(&fwd.target_groups()[0].target_group_identifier()), "{fwd:?}");
    let got = c.get_target_group().target_group_identifier(&db_tg).send().await.unwrap();
    assert_eq!(got.config().and_then(|c| c.protocol()).map(|p| p.as_str()), Some("TCP"));
    assert_eq!(targets_of(c, &db_tg).await, BTreeSet::from([("10.2.0.3".into(), 5432), ("10.2.0.9".into(), 5432)]));

    delete_gateway(&e).await;
}

/// (3) Two routes with 60-character names in 60-character namespaces, sharing long prefixes:
/// two distinct Lattice services with valid names.
#[tokio::test]
async fn long_names_sharing_a_prefix_become_distinct_services() {
    let _lock = LOCK.lock().await;
    let e = Env::new().await;
    let ns1 = format!("{}-1", "n".repeat(58));
    let ns2 = format!("{}-2", "n".repeat(58));
    let r1 = format!("{}-one", "r".repeat(56));
    let r2 = format!("{}-two", "r".repeat(56));
    let mut docs = HTTP_GATEWAY.to_string();
    for (ns, name) in [(&ns1, &r1), (&ns2, &r2)] {
        docs.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{{name: gw, namespace: apps}}]\n  rules: [{{matches: [{{path: {{type: Exact, value: /x}}}}]}}]\n"
        ));
    }
    let p = plan(&docs);
    let graph = e.render(Some(&p));
    let names = names_of(&graph, kind::SERVICE);
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
    let (_, out) = e.reconcile(Some(&p)).await;
    assert!(out.ready);
    assert_eq!(out.addresses.len(), 2);
    assert_ne!(out.addresses[0].value, out.addresses[1].value);
    for n in &names {
        assert!(n.len() <= 40, "{n}");
        assert!(service_by_name(e.client(), n).await.is_some(), "{n} exists");
    }
    e.assert_steady(Some(&p)).await;
    delete_gateway(&e).await;
}

/// (4) A weight change is exactly one mutating call; an endpoint change only registers and
/// deregisters the difference; a rule inserted above the others moves them in one batch.
#[tokio::test]
async fn weight_and_endpoint_changes_make_minimal_calls() {
    let _lock = LOCK.lock().await;
    let e = Env::new().await;
    let c = e.client();
    let p = plan(&canary_docs((90, 10), &["10.0.0.11", "10.0.0.12"], false));
    e.reconcile(Some(&p)).await;
    e.assert_steady(Some(&p)).await;

    // Weights 90/10 -> 50/50 on the canary rule.
    let p2 = plan(&canary_docs((50, 50), &["10.0.0.11", "10.0.0.12"], false));
    reset_call_log().await;
    let before = e.mutations_so_far();
    let (cs, out) = e.reconcile(Some(&p2)).await;
    assert_eq!(cs.changes.len(), 1, "{}", summary(&cs));
    assert!(matches!(&cs.changes[0], Change::Update { desired, .. } if desired.key.kind == kind::RULE));
    assert_eq!(out.mutations, 1);
    assert_eq!(e.mutations_so_far() - before, 1);
    if let Some(calls) = mutating_calls().await {
        assert_eq!(calls, vec!["UpdateRule"]);
    }
    let svc = service_by_name(c, &names_of(&e.render(Some(&p2)), kind::SERVICE)[0]).await.unwrap();
    let l = c.list_listeners().service_identifier(svc.id().unwrap()).send().await.unwrap().items()[0].id().unwrap().to_string();
    let rules = rules_of(c, svc.id().unwrap(), &l).await;
    assert_eq!(rules[0].2.iter().map(|(_, w)| *w).collect::<Vec<_>>(), vec![50, 50], "{rules:?}");
    e.assert_steady(Some(&p2)).await;

    // Endpoints of web-v1: 10.0.0.12 leaves, 10.0.0.14 arrives.
    let p3 = plan(&canary_docs((50, 50), &["10.0.0.11", "10.0.0.14"], false));
    reset_call_log().await;
    let (cs, out) = e.reconcile(Some(&p3)).await;
    assert_eq!(cs.changes.len(), 1, "{}", summary(&cs));
    assert_eq!(out.mutations, 2);
    if let Some(mut calls) = mutating_calls().await {
        calls.sort();
        assert_eq!(calls, vec!["DeregisterTargets", "RegisterTargets"]);
    }
    let g3 = e.render(Some(&p3));
    let v1 = g3.resources.iter().find(|r| r.key.kind == kind::TARGET_GROUP && r.tags[tags::RESOURCE] == "target-group/apps/web-v1:80").unwrap();
    let v1 = target_group_id(c, &v1.key.name).await;
    assert_eq!(targets_of(c, &v1).await, BTreeSet::from([("10.0.0.11".into(), 8080), ("10.0.0.14".into(), 8080)]));
    e.assert_steady(Some(&p3)).await;

    // An exact-path rule listed last ranks first: the two existing rules move down in one
    // BatchUpdateRule, then the new rule is created at priority 1.
    let p4 = plan(&canary_docs((50, 50), &["10.0.0.11", "10.0.0.14"], true));
    reset_call_log().await;
    let (cs, out) = e.reconcile(Some(&p4)).await;
    assert_eq!(cs.changes.len(), 3, "{}", summary(&cs));
    assert_eq!(out.mutations, 2);
    if let Some(calls) = mutating_calls().await {
        assert_eq!(calls, vec!["BatchUpdateRule", "CreateRule"]);
    }
    let rules = rules_of(c, svc.id().unwrap(), &l).await;
    assert_eq!(rules.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(rules[0].1.contains("/healthz") && rules[1].1.contains("x-canary"), "{rules:?}");
    e.assert_steady(Some(&p4)).await;

    delete_gateway(&e).await;
}

/// (5) Deleting a route removes its service, listener, rules, target groups and association;
/// deleting the Gateway removes everything. The two routes share a backend Service: each gets
/// its own target group (a Lattice target group serves one service). Lists are read two items
/// a page here, so every List call of observe goes through pagination.
#[tokio::test]
async fn deleting_a_route_then_the_gateway_leaves_nothing() {
    let _lock = LOCK.lock().await;
    let e = Env::with(CloudOptions { requests_per_second: 0.0, page_size: 2, ..Default::default() }).await;
    let c = e.client();
    let cart = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cart, namespace: apps}
spec:
  parentRefs: [{name: gw}]
  rules: [{matches: [{path: {type: PathPrefix, value: /cart}}], backendRefs: [{name: web-v1, port: 80}]}]
"#;
    let base = canary_docs((90, 10), &["10.0.0.11"], false);
    let p = plan(&format!("{base}{cart}"));
    let graph = e.render(Some(&p));
    assert_eq!(names_of(&graph, kind::SERVICE).len(), 2);
    let v1_tgs: Vec<&str> = graph
        .resources
        .iter()
        .filter(|r| r.key.kind == kind::TARGET_GROUP && r.tags[tags::RESOURCE] == "target-group/apps/web-v1:80")
        .map(|r| r.key.name.as_str())
        .collect();
    assert_eq!(v1_tgs.len(), 2, "one web-v1 target group per route service");
    let (_, out) = e.reconcile(Some(&p)).await;
    assert!(out.ready);
    e.assert_steady(Some(&p)).await;

    let cart_svc = graph.resources.iter().find(|r| r.key.kind == kind::SERVICE && r.tags[tags::ROUTE] == "HTTPRoute/apps/cart").unwrap();
    let cart_keys: Vec<_> = graph.resources.iter().filter(|r| r.tags.get(tags::ROUTE).map(String::as_str) == Some("HTTPRoute/apps/cart")).map(|r| r.key.clone()).collect();
    assert_eq!(cart_keys.len(), 6, "service, association, listener, two rules (/cart, /cart/), target group: {cart_keys:?}");
    let cart_id = service_by_name(c, &cart_svc.key.name).await.unwrap().id().unwrap().to_string();

    // The route goes: its resources go, the web route's stay.
    let p2 = plan(&base);
    let (cs, _) = e.reconcile(Some(&p2)).await;
    let deleted: BTreeSet<_> = cs.changes.iter().filter_map(|c| if let Change::Delete { observed } = c { Some(observed.key.clone()) } else { None }).collect();
    assert_eq!(deleted, cart_keys.iter().cloned().collect(), "{}", summary(&cs));
    assert!(cs.changes.iter().all(|c| matches!(c, Change::Delete { .. })), "{}", summary(&cs));
    assert!(service_by_name(c, &cart_svc.key.name).await.is_none());
    let gone = c.list_service_network_service_associations().service_identifier(&cart_id).send().await.unwrap();
    assert!(gone.items().is_empty());
    let tgs = all!(c.list_target_groups());
    for name in cart_keys.iter().filter(|k| k.kind == kind::TARGET_GROUP) {
        assert!(tgs.iter().all(|t| t.name() != Some(name.name.as_str())), "{name} left");
    }
    e.assert_steady(Some(&p2)).await;

    delete_gateway(&e).await;
}

/// (6) Resources without our tags, even with names like ours, are never touched.
#[tokio::test]
async fn foreign_resources_are_untouched() {
    let _lock = LOCK.lock().await;
    let e = Env::new().await;
    let c = e.client();
    let suffix = unique("");
    let foreign_sn = c.create_service_network().name(format!("cg-foreign-{suffix}")).send().await.unwrap();
    let plain_sn = c.create_service_network().name(format!("foreign-{suffix}")).send().await.unwrap();
    let foreign_svc = c.create_service().name(format!("cg-foreign-{suffix}")).send().await.unwrap();
    // Tagged as ours but for another cluster: just as foreign.
    let other_cluster = c
        .create_service()
        .name(format!("cg-other-{suffix}"))
        .tags(tags::MANAGED_BY, tags::MANAGED_BY_VALUE)
        .tags(tags::CLUSTER, "someone-else")
        .tags(tags::GATEWAY, "apps/gw")
        .send()
        .await
        .unwrap();

    let p = plan(&canary_docs((90, 10), &["10.0.0.11"], false));
    let observed = e.cloud.observe(&e.owner, &e.ctx).await.unwrap();
    assert!(observed.is_empty(), "foreign resources observed: {observed:?}");
    e.reconcile(Some(&p)).await;
    e.assert_steady(Some(&p)).await;
    delete_gateway(&e).await;

    for sn in [foreign_sn.id().unwrap(), plain_sn.id().unwrap()] {
        c.get_service_network().service_network_identifier(sn).send().await.expect("foreign service network survives");
    }
    for svc in [foreign_svc.id().unwrap(), other_cluster.id().unwrap()] {
        c.get_service().service_identifier(svc).send().await.expect("foreign service survives");
    }
    for sn in [foreign_sn.id().unwrap(), plain_sn.id().unwrap()] {
        c.delete_service_network().service_network_identifier(sn).send().await.unwrap();
    }
    for svc in [foreign_svc.id().unwrap(), other_cluster.id().unwrap()] {
        c.delete_service().service_identifier(svc).send().await.unwrap();
    }
}

/// What Lattice cannot update in place is replaced in one reconcile: a route's new hostname
/// (the service's custom domain) gives a new service with its listener, rules and target
/// groups; the old ones go, children first. Addresses follow the new service.
#[tokio::test]
async fn a_new_hostname_replaces_the_service_in_one_reconcile() {
    let _lock = LOCK.lock().await;
    let e = Env::new().await;
    let c = e.client();
    let docs = |host: &str| canary_docs((90, 10), &["10.0.0.11"], false).replace("  parentRefs: [{name: gw}]\n", &format!("  parentRefs: [{{name: gw}}]\n  hostnames: [{host}]\n"));
    let p1 = plan(&docs("a.example.com"));
    let (_, out1) = e.reconcile(Some(&p1)).await;
    assert!(out1.ready);
    let old_svc = names_of(&e.render(Some(&p1)), kind::SERVICE)[0].clone();
    assert_eq!(service_by_name(c, &old_svc).await.unwrap().custom_domain_name(), Some("a.example.com"));

    let p2 = plan(&docs("b.example.com"));
    let (cs, out2) = e.reconcile(Some(&p2)).await;
    assert!(out2.ready, "{}", summary(&cs));
    let new_svc = names_of(&e.render(Some(&p2)), kind::SERVICE)[0].clone();
    assert_ne!(old_svc, new_svc);
    assert!(service_by_name(c, &old_svc).await.is_none());
    let svc = service_by_name(c, &new_svc).await.unwrap();
    assert_eq!(svc.custom_domain_name(), Some("b.example.com"));
    assert_eq!(out2.addresses.len(), 1);
    assert_eq!(Some(out2.addresses[0].value.as_str()), svc.dns_entry().and_then(|d| d.domain_name()));
    assert_ne!(out1.addresses, out2.addresses);
    e.assert_steady(Some(&p2)).await;
    delete_gateway(&e).await;
}

/// Moving the Gateway to another VPC: a new VPC association and new target groups (their VPC is
/// fixed); the rules switch to the new target groups in one batch before the old ones are
/// emptied and deleted.
#[tokio::test]
async fn a_new_vpc_moves_the_target_groups_before_deleting_the_old_ones() {
    let _lock = LOCK.lock().await;
    let mut e = Env::new().await;
    let c = e.client().clone();
    let p = plan(&canary_docs((90, 10), &["10.0.0.11"], false));
    e.reconcile(Some(&p)).await;
    let old_tgs = names_of(&e.render(Some(&p)), kind::TARGET_GROUP);

    e.ctx.network = vpc_id();
    reset_call_log().await;
    let (cs, out) = e.reconcile(Some(&p)).await;
    assert!(out.ready, "{}", summary(&cs));
    let new_tgs = names_of(&e.render(Some(&p)), kind::TARGET_GROUP);
    assert!(new_tgs.iter().all(|n| !old_tgs.contains(n)));
    if let Some(calls) = mutating_calls().await {
        let pos = |a: &str| calls.iter().position(|c| c == a).unwrap_or_else(|| panic!("{a} missing from {calls:?}"));
        assert_eq!(calls.iter().filter(|c| *c == "BatchUpdateRule").count(), 1, "{calls:?}");
        assert!(pos("CreateTargetGroup") < pos("BatchUpdateRule") && pos("BatchUpdateRule") < pos("DeleteTargetGroup"), "{calls:?}");
        assert!(!calls.iter().any(|c| c == "CreateRule" || c == "DeleteRule"), "rules are updated, not replaced: {calls:?}");
    }
    let tgs = all!(c.list_target_groups());
    for n in &old_tgs {
        assert!(tgs.iter().all(|t| t.name() != Some(n.as_str())), "{n} left");
    }
    let sn = &names_of(&e.render(Some(&p)), kind::SERVICE_NETWORK)[0];
    let sn_id = all!(c.list_service_networks()).into_iter().find(|s| s.name() == Some(sn.as_str())).unwrap().id().unwrap().to_string();
    let vpcs = all!(c.list_service_network_vpc_associations().service_network_identifier(&sn_id));
    assert_eq!(vpcs.iter().map(|a| a.vpc_id().unwrap()).collect::<Vec<_>>(), vec![e.ctx.network.as_str()]);
    e.assert_steady(Some(&p)).await;
    delete_gateway(&e).await;
}

/// Lattice associates a VPC with one service network. When a Gateway replaces another of this
/// cluster in the same VPC (one deleted, the next created), the new association conflicts
/// until the old one is gone: a retryable wait, not a permanent error that would park the new
/// Gateway until the next resync. A VPC held by something that is not ours stays permanent.
#[tokio::test]
async fn a_vpc_held_by_another_of_our_gateways_is_a_wait_and_a_foreign_one_an_error() {
    let _lock = LOCK.lock().await;
    let bare = |name: &str| {
        let mut p = plan(HTTP_GATEWAY);
        p.gateway = ObjKey::new("apps", name);
        p
    };
    let first = Env::new().await;
    let p1 = bare("gw");
    assert!(first.reconcile(Some(&p1)).await.1.ready);

    // A second Gateway of the same cluster, same VPC.
    let mut second = Env::new().await;
    second.ctx = first.ctx.clone();
    second.owner = Owner { cluster_id: first.ctx.cluster_id.clone(), gateway: ObjKey::new("apps", "gw2") };
    let p2 = bare("gw2");
    let (cs, observed) = second.changes(Some(&p2)).await;
    let err = second.cloud.apply(Some(&p2), &cs, &observed, &second.ctx).await.expect_err("the VPC is taken");
    assert!(err.is_retryable(), "held by our own Gateway: {err}");
    assert!(err.to_string().contains("another Gateway of this cluster"), "{err}");

    // The first Gateway goes; the second then gets the VPC.
    let (_, out) = first.reconcile(None).await;
    assert!(out.ready);
    first.assert_steady(None).await;
    assert!(second.reconcile(Some(&p2)).await.1.ready);
    second.assert_steady(Some(&p2)).await;

    // Another cluster in the same VPC: permanent.
    let mut third = Env::new().await;
    third.ctx.network = first.ctx.network.clone();
    third.owner.gateway = ObjKey::new("apps", "gw3");
    let p3 = bare("gw3");
    let (cs, observed) = third.changes(Some(&p3)).await;
    let err = third.cloud.apply(Some(&p3), &cs, &observed, &third.ctx).await.expect_err("the VPC is taken");
    assert!(!err.is_retryable(), "held by another cluster: {err}");
    delete_gateway(&third).await;
    delete_gateway(&second).await;
}
