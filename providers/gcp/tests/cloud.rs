//! The GCP provider's observe/apply against the test ground's Compute fake, which validates every
//! request and response against Google's discovery document and behaves like GCE where a
//! controller notices (operations PENDING -> RUNNING -> DONE, resources unusable until their
//! operation is DONE, fingerprints, references, in-use errors).
//!
//! Needs GCE_ENDPOINT, GCE_PROJECT and GCE_REGION (tests/run sets them; by hand:
//! `S=$(mktemp -d); tests/ground/gce/up.sh $S; set -a; . $S/gce.env; set +a`, then
//! `cargo test -p cloudgate-gcp --features e2e --test cloud`). Without them every test panics:
//! a check that cannot reach the ground must fail, not pass by skipping.
//!
//! Tests share the fake's call log, so they run one at a time (`serial()`); each uses its own
//! cluster id, so their resources never meet.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Arc;

use cloudgate_gcp::*;
use cloudgate_provider::cloud::{ApplyOutcome, CloudError, CloudProvider, Owner};
use cloudgate_provider::diff::{self, Change, ChangeSet, ObservedResource};
use cloudgate_provider::{Provider, RenderContext, ResourceGraph};
use cloudgate_translate::manifest::{load_str, Loaded};
use cloudgate_translate::model::ObjKey;
use cloudgate_translate::{translate_gateway, LoadBalancerPlan, World};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------- harness

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: run via tests/run (or start tests/ground/gce/up.sh and source its gce.env)"),
    }
}

/// One test at a time: they read and reset the fake's shared call log.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{:x}{:x}{:x}", std::process::id() & 0xffff, N.fetch_add(1, Ordering::Relaxed), nanos & 0xfffff)
}

/// A request to the fake over plain HTTP/1.1 (the ground's own endpoints and the odd raw API
/// call a test makes behind the provider's back).
fn http(method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    http_to(&env("GCE_ENDPOINT"), method, path, body)
}

/// The same, to another endpoint of the ground (the fault proxy's control API).
fn http_to(base: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let host = base.trim_start_matches("http://").trim_end_matches('/').to_string();
    let mut s = std::net::TcpStream::connect(&host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn calls_reset() {
    assert_eq!(http("POST", "/_ground/calls/reset", None).0, 200);
}

/// Method ids of the calls since the last reset, e.g. `compute.urlMaps.update`.
fn calls() -> Vec<String> {
    let (_, v) = http("GET", "/_ground/calls", None);
    v["calls"].as_array().unwrap().iter().map(|c| c["method"].as_str().unwrap().to_string()).collect()
}

fn is_mutating(method: &str) -> bool {
    let verb = method.rsplit('.').next().unwrap_or_default();
    !matches!(verb, "get" | "list" | "aggregatedList" | "listNetworkEndpoints" | "wait")
}

fn mutating_calls() -> Vec<String> {
    calls().into_iter().filter(|m| is_mutating(m)).collect()
}

fn assert_no_validation_failures() {
    let (_, v) = http("GET", "/_ground/validation", None);
    assert_eq!(v["failures"], json!([]), "the fake found requests or responses that break compute.v1.json");
    assert!(v["requests"].as_u64().unwrap() > 0);
}

fn api(path: &str) -> String {
    format!("/compute/v1/projects/{}/{path}", env("GCE_PROJECT"))
}

fn pem(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Ground {
    cloud: GcpCloud,
    ctx: RenderContext,
    owner: Owner,
}

impl Ground {
    async fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cfg = GcpConfig::from_env();
        assert!(cfg.endpoint.is_some(), "GCE_ENDPOINT is not set: run via tests/run");
        assert!(cfg.anonymous, "a plain-http endpoint must get anonymous credentials");
        // The fake has no VMs; any instance name in the endpoint's zone will do.
        cfg.instances = g_instances();
        // The fake is local; the production default (10 calls/s) would only make the tests slow.
        cfg.requests_per_second = 200.0;
        let cloud = GcpCloud::new(GcpProvider::default(), cfg).await.expect("clients");
        let cluster = unique("t");
        let ctx = RenderContext {
            cluster_id: cluster.clone(),
            region: env("GCE_REGION"),
            network: "default".into(),
            subnets: vec!["default".into()],
            scheme: String::new(),
            project: env("GCE_PROJECT"),
            default_tags: BTreeMap::new(),
            ..Default::default()
        };
        Ground { cloud, ctx, owner: Owner { cluster_id: cluster, gateway: ObjKey::new("apps", "web") } }
    }

    fn plan(&self, yaml: &str) -> LoadBalancerPlan {
        let mut w = World::new();
        let mut loaded = Loaded::default();
        load_str("test.yaml", yaml, &mut w, &mut loaded).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        translate_gateway(&w, &self.owner.gateway, self.cloud.capabilities()).expect("gateway").plan
    }

    fn render(&self, plan: Option<&LoadBalancerPlan>) -> ResourceGraph {
        plan.map(|p| self.cloud.render(p, &self.ctx).expect("render")).unwrap_or_default()
    }

    async fn observe(&self) -> Vec<ObservedResource> {
        self.cloud.observe(&self.owner, &self.ctx).await.expect("observe")
    }

    async fn diff(&self, plan: Option<&LoadBalancerPlan>) -> (ChangeSet, Vec<ObservedResource>) {
        let observed = self.observe().await;
        (diff::diff(&self.render(plan), &observed, &self.ctx.cluster_id, KIND_ORDER), observed)
    }

    /// One reconcile: observe, diff, apply.
    async fn reconcile(&self, plan: Option<&LoadBalancerPlan>) -> Result<(ChangeSet, ApplyOutcome), CloudError> {
        let (cs, observed) = self.diff(plan).await;
        let out = self.cloud.apply(plan, &cs, &observed, &self.ctx).await?;
        Ok((cs, out))
    }

    async fn converge(&self, plan: Option<&LoadBalancerPlan>) -> ApplyOutcome {
        let (cs, out) = self.reconcile(plan).await.expect("apply");
        assert!(out.ready, "not ready after {:?}", ops(&cs));
        let (again, _) = self.diff(plan).await;
        assert!(again.is_empty(), "not converged: {:#?}", again);
        out
    }

    fn of_kind<'o>(observed: &'o [ObservedResource], kind: &str) -> Vec<&'o ObservedResource> {
        observed.iter().filter(|o| o.key.kind == kind).collect()
    }
}

fn ops(cs: &ChangeSet) -> Vec<String> {
    cs.changes
        .iter()
        .map(|c| match c {
            Change::Create { desired } => format!("create {}", desired.key),
            Change::Update { desired, .. } => format!("update {}", desired.key),
            Change::Delete { observed } => format!("delete {}", observed.key),
        })
        .collect()
}

// ---------------------------------------------------------------------------------- manifests

fn services(endpoints_v1: &[(&str, &str)]) -> String {
    let eps: String = endpoints_v1.iter().map(|(ip, zone)| format!("- {{addresses: [{ip}], zone: {zone}}}\n")).collect();
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: api-v1, namespace: apps}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: api-v2, namespace: apps}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: apps}}
spec: {{ports: [{{port: 80, targetPort: 8081}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: api-v1-abc, namespace: apps, labels: {{kubernetes.io/service-name: api-v1}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints:
{eps}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: api-v2-abc, namespace: apps, labels: {{kubernetes.io/service-name: api-v2}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints:
- {{addresses: [10.0.4.1], zone: us-central1-c}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-abc, namespace: apps, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: 8081}}]
endpoints:
- {{addresses: [10.0.5.1], zone: us-central1-a}}
"#
    )
}

const V1_ENDPOINTS: &[(&str, &str)] = &[("10.0.1.1", "us-central1-a"), ("10.0.1.2", "us-central1-a"), ("10.0.2.1", "us-central1-b")];

const HTTP_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: apps}
spec:
  gatewayClassName: gcp
  listeners:
  - {name: http, port: 80, protocol: HTTP}
"#;

fn store_route(w1: u32, w2: u32) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: store, namespace: apps}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [shop.example.com]
  rules:
  - name: split
    matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    backendRefs: [{{name: api-v1, port: 80, weight: {w1}}}, {{name: api-v2, port: 80, weight: {w2}}}]
  - matches: [{{path: {{type: Exact, value: /login}}, queryParams: [{{name: debug, value: "1"}}]}}]
    backendRefs: [{{name: web, port: 80}}]
  - name: canary
    matches: [{{path: {{type: PathPrefix, value: /api/}}, headers: [{{name: x-canary, value: "true"}}]}}]
    backendRefs: [{{name: api-v2, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /new}}, statusCode: 301}}
  - matches: [{{path: {{type: PathPrefix, value: /svc}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{hostname: internal.example.com}}
    backendRefs: [{{name: web, port: 80}}]
  - backendRefs: [{{name: web, port: 80}}]
"#
    )
}

fn http_world(w1: u32, w2: u32, endpoints: &[(&str, &str)]) -> String {
    format!("{HTTP_GATEWAY}---{}---{}", services(endpoints), store_route(w1, w2))
}

fn tls_secret(n: u32) -> String {
    let indent = |s: String| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-tls, namespace: apps}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(pem(&format!("tls{n}.crt"))),
        indent(pem(&format!("tls{n}.key")))
    )
}

fn https_world(cert: u32) -> String {
    let gw = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: apps}
spec:
  gatewayClassName: gcp
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: shop.example.com
    tls: {mode: Terminate, certificateRefs: [{name: shop-tls}]}
"#;
    format!("{gw}---\n{}---\n{}---\n{}", tls_secret(cert), services(V1_ENDPOINTS), store_route(90, 10))
}

// ---------------------------------------------------------------------------------- scenarios

/// Gateway + HTTPRoute with path, header and query matches, a redirect, a host rewrite and
/// weighted backends: every resource is created, every request passes the fake's validation,
/// the next observe matches the render exactly, and a steady-state reconcile changes nothing.
#[tokio::test]
async fn http_route_becomes_a_load_balancer_and_converges() {
    let _serial = serial().await;
    let g = Ground::new().await;
    let plan = g.plan(&http_world(90, 10, V1_ENDPOINTS));
    let out = g.converge(Some(&plan)).await;
    assert!(out.mutations > 0);
    assert_eq!(out.addresses.len(), 1, "{:?}", out.addresses);
    assert_eq!(out.addresses[0].type_, "IPAddress");

    let observed = g.observe().await;
    let count = |k| Ground::of_kind(&observed, k).len();
    assert_eq!(count(KIND_ADDRESS), 1);
    assert_eq!(count(KIND_FIREWALL), 1);
    assert_eq!(count(KIND_HEALTH_CHECK), 3);
    // api-v1: zones a and b; api-v2: c; web: a.
    assert_eq!(count(KIND_NEG), 4);
    assert_eq!(count(KIND_BACKEND_SERVICE), 4, "three Services plus the no-backend service");
    assert_eq!(count(KIND_URL_MAP), 1);
    assert_eq!(count(KIND_TARGET_HTTP_PROXY), 1);
    assert_eq!(count(KIND_FORWARDING_RULE), 1);
    let fr = Ground::of_kind(&observed, KIND_FORWARDING_RULE)[0];
    assert_eq!(fr.spec["portRange"], "80-80");
    assert_eq!(fr.spec["resolvedIP"], json!(out.addresses[0].value));
    assert_eq!(fr.spec["IPAddress"], json!(Ground::of_kind(&observed, KIND_ADDRESS)[0].key.name));

    // The NEGs hold exactly the ready endpoints of their zone.
    let mut endpoints: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for n in Ground::of_kind(&observed, KIND_NEG) {
        let eps = n.spec["endpoints"].as_array().unwrap().iter().map(|e| (e["ipAddress"].as_str().unwrap().to_string(), e["port"].as_i64().unwrap()));
        endpoints.entry(n.spec["zone"].as_str().unwrap().to_string()).or_default().extend(eps);
    }
    assert_eq!(endpoints["us-central1-a"], vec![("10.0.1.1".into(), 8080), ("10.0.1.2".into(), 8080), ("10.0.5.1".into(), 8081)]);
    assert_eq!(endpoints["us-central1-b"], vec![("10.0.2.1".into(), 8080)]);
    assert_eq!(endpoints["us-central1-c"], vec![("10.0.4.1".into(), 8080)]);

    // The URL map as Compute holds it: precedence-ordered route rules with the weighted split,
    // the header canary, the query match, the split redirect and the host rewrite.
    let um = Ground::of_kind(&observed, KIND_URL_MAP)[0];
    let rules = um.spec["pathMatchers"][0]["routeRules"].as_array().unwrap();
    let text = serde_json::to_string(rules).unwrap();
    for needle in ["x-canary", "\"queryParameterMatches\"", "prefixRedirect", "hostRewrite", "MOVED_PERMANENTLY_DEFAULT"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    let weights: Vec<i64> = rules
        .iter()
        .filter_map(|r| r["routeAction"]["weightedBackendServices"].as_array())
        .find(|w| w.len() == 2)
        .unwrap()
        .iter()
        .map(|w| w["weight"].as_i64().unwrap())
        .collect();
    assert_eq!(weights, vec![90, 10]);

    // Steady state: apply of an empty change set makes no call at all; a whole reconcile only
    // reads.
    calls_reset();
    let out = g.cloud.apply(Some(&plan), &ChangeSet::default(), &observed, &g.ctx).await.unwrap();
    assert_eq!(out.mutations, 0);
    assert!(out.ready && out.addresses.len() == 1);
    assert_eq!(calls(), Vec::<String>::new());
    let (cs, out) = g.reconcile(Some(&plan)).await.unwrap();
    assert!(cs.is_empty(), "{:?}", ops(&cs));
    assert_eq!(out.mutations, 0);
    assert_eq!(mutating_calls(), Vec::<String>::new());
    let reads = calls();
    assert!(reads.iter().all(|m| m.ends_with(".list") || m.ends_with(".aggregatedList") || m.ends_with(".listNetworkEndpoints")), "{reads:?}");
    assert_no_validation_failures();

    g.converge(None).await;
}

/// HTTPS listener with a TLS Secret: an SSL certificate named by content. Rotating the Secret
/// creates the new certificate, moves the proxy onto it, and only then deletes the old one.
#[tokio::test]
async fn certificate_rotation_creates_attaches_then_deletes() {
    let _serial = serial().await;
    let g = Ground::new().await;
    let plan1 = g.plan(&https_world(1));
    g.converge(Some(&plan1)).await;
    let observed = g.observe().await;
    let certs = Ground::of_kind(&observed, KIND_SSL_CERTIFICATE);
    assert_eq!(certs.len(), 1);
    let old = certs[0].key.name.clone();
    let sha1 = &plan1.listeners.iter().find_map(|l| l.tls.as_ref()).unwrap().certificates[0].sha256;
    assert_eq!(certs[0].spec["certificateSha256"], json!(sha1));
    assert!(certs[0].spec.get("certificate").is_none() && certs[0].spec.get("privateKey").is_none());
    let proxy = Ground::of_kind(&observed, KIND_TARGET_HTTPS_PROXY)[0];
    assert_eq!(proxy.spec["sslCertificates"], json!([old]));
    assert_eq!(Ground::of_kind(&observed, KIND_FORWARDING_RULE).len(), 2, "one per port");

    let plan2 = g.plan(&https_world(2));
    calls_reset();
    let (cs, out) = g.reconcile(Some(&plan2)).await.unwrap();
    assert_eq!(
        ops(&cs).iter().map(|o| o.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>(),
        vec!["create compute:SslCertificate", "update compute:TargetHttpsProxy", "delete compute:SslCertificate"]
    );
    assert!(out.ready);
    assert_eq!(
        mutating_calls(),
        vec!["compute.sslCertificates.insert", "compute.targetHttpsProxies.setSslCertificates", "compute.sslCertificates.delete"]
    );
    let observed = g.observe().await;
    let certs = Ground::of_kind(&observed, KIND_SSL_CERTIFICATE);
    assert_eq!(certs.len(), 1);
    assert_ne!(certs[0].key.name, old);
    assert_eq!(Ground::of_kind(&observed, KIND_TARGET_HTTPS_PROXY)[0].spec["sslCertificates"], json!([certs[0].key.name]));
    let (again, _) = g.diff(Some(&plan2)).await;
    assert!(again.is_empty(), "{:?}", ops(&again));
    assert_no_validation_failures();
    g.converge(None).await;
}

/// A weight change is exactly one URL map update; an endpoint change is attach/detach of the
/// difference only, the NEG kept. A URL map changed behind our back (stale fingerprint) is read
/// again and updated once more.
#[tokio::test]
async fn weight_and_endpoint_changes_are_minimal() {
    let _serial = serial().await;
    let g = Ground::new().await;
    g.converge(Some(&g.plan(&http_world(90, 10, V1_ENDPOINTS)))).await;

    calls_reset();
    let plan = g.plan(&http_world(50, 50, V1_ENDPOINTS));
    let (cs, out) = g.reconcile(Some(&plan)).await.unwrap();
    assert_eq!(ops(&cs).len(), 1, "{:?}", ops(&cs));
    assert_eq!(out.mutations, 1);
    assert_eq!(mutating_calls(), vec!["compute.urlMaps.update"]);
    let (again, _) = g.diff(Some(&plan)).await;
    assert!(again.is_empty(), "{:?}", ops(&again));

    // 10.0.1.2 leaves zone a, 10.0.1.3 joins it; zone b unchanged.
    let moved: &[(&str, &str)] = &[("10.0.1.1", "us-central1-a"), ("10.0.1.3", "us-central1-a"), ("10.0.2.1", "us-central1-b")];
    let plan = g.plan(&http_world(50, 50, moved));
    calls_reset();
    let (cs, out) = g.reconcile(Some(&plan)).await.unwrap();
    assert_eq!(ops(&cs).len(), 1, "{:?}", ops(&cs));
    assert_eq!(out.mutations, 2);
    assert_eq!(
        mutating_calls(),
        vec!["compute.networkEndpointGroups.attachNetworkEndpoints", "compute.networkEndpointGroups.detachNetworkEndpoints"]
    );
    let observed = g.observe().await;
    let zone_a: Vec<&str> = Ground::of_kind(&observed, KIND_NEG)
        .iter()
        .filter(|n| n.spec["zone"] == "us-central1-a" && n.spec["endpoints"][0]["port"] == 8080)
        .flat_map(|n| n.spec["endpoints"].as_array().unwrap().iter().map(|e| e["ipAddress"].as_str().unwrap()))
        .collect();
    assert_eq!(zone_a, vec!["10.0.1.1", "10.0.1.3"]);

    // A new default tag reaches the labelled kinds with setLabels, nothing else.
    let mut g = g;
    g.ctx.default_tags.insert("team".into(), "payments".into());
    calls_reset();
    let (cs, out) = g.reconcile(Some(&plan)).await.unwrap();
    assert_eq!(ops(&cs).len(), 2, "{:?}", ops(&cs));
    assert_eq!(out.mutations, 2);
    assert_eq!(mutating_calls(), vec!["compute.globalAddresses.setLabels", "compute.globalForwardingRules.setLabels"]);
    let (again, observed) = g.diff(Some(&plan)).await;
    assert!(again.is_empty(), "{:?}", ops(&again));
    assert_eq!(Ground::of_kind(&observed, KIND_FORWARDING_RULE)[0].tags["team"], "payments");

    // Someone else changes the URL map between our observe and our update: 412, re-read, retry.
    let plan = g.plan(&http_world(70, 30, moved));
    let (cs, observed) = g.diff(Some(&plan)).await;
    let um = Ground::of_kind(&observed, KIND_URL_MAP)[0].key.name.clone();
    let (_, current) = http("GET", &api(&format!("global/urlMaps/{um}")), None);
    let (status, op) = http(
        "PATCH",
        &api(&format!("global/urlMaps/{um}")),
        Some(&json!({"fingerprint": current["fingerprint"], "defaultRouteAction": current["defaultRouteAction"]})),
    );
    assert_eq!(status, 200, "{op}");
    // Let the out-of-band change finish (operations step on every poll).
    for _ in 0..5 {
        http("GET", &api(&format!("global/operations/{}", op["name"].as_str().unwrap())), None);
    }
    calls_reset();
    let out = g.cloud.apply(Some(&plan), &cs, &observed, &g.ctx).await.unwrap();
    assert_eq!(out.mutations, 1);
    let log: Vec<String> = calls().into_iter().filter(|m| m.starts_with("compute.urlMaps.")).collect();
    assert_eq!(log, vec!["compute.urlMaps.update", "compute.urlMaps.get", "compute.urlMaps.update"]);
    let (again, _) = g.diff(Some(&plan)).await;
    assert!(again.is_empty(), "{:?}", ops(&again));
    assert_no_validation_failures();
    g.converge(None).await;
}

/// Deleting the Gateway deletes everything, children first: forwarding rules, proxies, URL
/// map, backend services, NEGs, health checks, certificates, address, firewall.
#[tokio::test]
async fn deletion_leaves_nothing_in_dependency_order() {
    let _serial = serial().await;
    let g = Ground::new().await;
    g.converge(Some(&g.plan(&https_world(1)))).await;
    let before = g.observe().await;
    assert!(before.len() >= 15, "{}", before.len());

    calls_reset();
    let out = g.converge(None).await;
    assert!(out.addresses.is_empty());
    assert_eq!(out.mutations, before.len());
    assert!(g.observe().await.is_empty());

    let order = [
        "forwardingRules",
        "targetHttpsProxies",
        "targetHttpProxies",
        "urlMaps",
        "backendServices",
        "networkEndpointGroups",
        "healthChecks",
        "sslCertificates",
        "addresses",
        "firewalls",
    ];
    let deletes: Vec<String> = mutating_calls();
    assert_eq!(deletes.len(), before.len(), "{deletes:?}");
    let rank = |m: &str| {
        let coll = m.trim_start_matches("compute.").trim_end_matches(".delete");
        let coll = coll.strip_prefix("global").or_else(|| coll.strip_prefix("region")).map(lower_first).unwrap_or(coll.to_string());
        order.iter().position(|c| *c == coll).unwrap_or_else(|| panic!("unexpected call {m}"))
    };
    let ranks: Vec<usize> = deletes.iter().map(|m| rank(m)).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "deletes out of dependency order: {deletes:?}");
    assert_no_validation_failures();
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
}

/// gcloud, a second client of the same API, lists the same resources with the same fields.
#[tokio::test]
async fn gcloud_sees_what_observe_reports() {
    let _serial = serial().await;
    let g = Ground::new().await;
    let plan = g.plan(&https_world(1));
    g.converge(Some(&plan)).await;
    let observed = g.observe().await;

    if std::process::Command::new("gcloud").arg("--version").output().is_err() {
        println!("SKIPPED gcloud comparison: gcloud is not installed");
        g.converge(None).await;
        return;
    }
    let config = std::env::temp_dir().join(unique("gcloud"));
    std::fs::create_dir_all(&config).unwrap();
    let gcloud = |args: &[&str]| -> Value {
        let out = std::process::Command::new("gcloud")
            .args(args)
            .env("CLOUDSDK_CONFIG", &config)
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .output()
            .expect("gcloud");
        assert!(out.status.success(), "gcloud {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let endpoint = format!("{}/compute/v1/", env("GCE_ENDPOINT"));
    for (k, v) in [
        ("auth/disable_credentials", "true"),
        ("api_endpoint_overrides/compute", endpoint.as_str()),
        ("core/project", &env("GCE_PROJECT")),
    ] {
        gcloud(&["config", "set", k, v, "--format=json"]);
    }
    let listings = [
        (KIND_ADDRESS, vec!["compute", "addresses", "list", "--global"]),
        (KIND_FIREWALL, vec!["compute", "firewall-rules", "list"]),
        (KIND_HEALTH_CHECK, vec!["compute", "health-checks", "list", "--global"]),
        (KIND_NEG, vec!["compute", "network-endpoint-groups", "list"]),
        (KIND_BACKEND_SERVICE, vec!["compute", "backend-services", "list", "--global"]),
        (KIND_URL_MAP, vec!["compute", "url-maps", "list", "--global"]),
        (KIND_SSL_CERTIFICATE, vec!["compute", "ssl-certificates", "list", "--global"]),
        (KIND_TARGET_HTTP_PROXY, vec!["compute", "target-http-proxies", "list", "--global"]),
        (KIND_TARGET_HTTPS_PROXY, vec!["compute", "target-https-proxies", "list", "--global"]),
        (KIND_FORWARDING_RULE, vec!["compute", "forwarding-rules", "list", "--global"]),
    ];
    // Fields compared where both sides have them (observe's names vs gcloud's selfLinks cut to
    // names), per kind.
    let fields: &[&str] = &[
        "description",
        "loadBalancingScheme",
        "protocol",
        "portRange",
        "IPProtocol",
        "urlMap",
        "sslCertificates",
        "target",
        "hostRules",
        "pathMatchers",
        "defaultRouteAction",
        "backends",
        "healthChecks",
        "networkEndpointType",
        "zone",
        "sourceRanges",
        "allowed",
        "addressType",
        "address",
    ];
    let last = |v: &Value| -> Value {
        let mut v = v.clone();
        normalise(&mut v);
        v
    };
    for (kind, args) in listings {
        let mut args: Vec<&str> = args;
        args.push("--format=json");
        let listed = gcloud(&args);
        let by_name: BTreeMap<&str, &Value> = listed.as_array().unwrap().iter().map(|r| (r["name"].as_str().unwrap(), r)).collect();
        let ours = Ground::of_kind(&observed, kind);
        assert!(!ours.is_empty(), "{kind}");
        for o in ours {
            let theirs = by_name.get(o.key.name.as_str()).unwrap_or_else(|| panic!("gcloud does not list {}", o.key));
            for f in fields {
                if let (Some(a), Some(b)) = (o.spec.get(*f), theirs.get(*f)) {
                    assert_eq!(last(a), last(b), "{} {f}", o.key);
                }
            }
            if kind == KIND_FORWARDING_RULE {
                assert_eq!(o.spec["resolvedIP"], theirs["IPAddress"], "{}", o.key);
            }
            if kind == KIND_NEG {
                let zone = o.spec["zone"].as_str().unwrap();
                let eps = gcloud(&[
                    "compute",
                    "network-endpoint-groups",
                    "list-network-endpoints",
                    &o.key.name,
                    "--zone",
                    zone,
                    "--format=json",
                ]);
                let mut theirs: Vec<(String, i64)> = eps
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e["networkEndpoint"]["ipAddress"].as_str().unwrap().to_string(), e["networkEndpoint"]["port"].as_i64().unwrap()))
                    .collect();
                theirs.sort();
                let mine: Vec<(String, i64)> =
                    o.spec["endpoints"].as_array().unwrap().iter().map(|e| (e["ipAddress"].as_str().unwrap().to_string(), e["port"].as_i64().unwrap())).collect();
                assert_eq!(mine, theirs, "{}", o.key);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&config);
    g.converge(None).await;
}

/// References as names and whole floats as integers, on both sides.
fn normalise(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with("http") && s.contains("/projects/") => *s = s.rsplit('/').next().unwrap().to_string(),
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => *v = json!(n.as_f64().unwrap() as i64),
        Value::Array(a) => a.iter_mut().for_each(normalise),
        Value::Object(m) => m.values_mut().for_each(normalise),
        _ => {}
    }
}

/// Resources without our ownership (no cloudgate description, labels of another cluster), even
/// with our `cg-` prefix, are invisible: never observed, changed or deleted.
#[tokio::test]
async fn foreign_resources_are_untouched() {
    let _serial = serial().await;
    let g = Ground::new().await;
    let hc = unique("cg-foreign-hc");
    let fw = unique("cg-foreign-fw");
    let addr = unique("cg-foreign-addr");
    let other_cluster = cloudgate_provider::tags::ownership("someone-else", &g.owner.gateway, "address", &BTreeMap::new());
    let created = [
        (format!("global/healthChecks/{hc}"), json!({"name": hc, "type": "TCP", "tcpHealthCheck": {"port": 80}, "description": "made by hand"})),
        (
            format!("global/firewalls/{fw}"),
            json!({"name": fw, "network": "global/networks/default", "sourceRanges": ["10.0.0.0/8"], "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}]}),
        ),
        (format!("global/addresses/{addr}"), json!({"name": addr, "labels": labels_from_tags(&other_cluster)})),
    ];
    for (path, body) in &created {
        let coll = path.rsplit_once('/').unwrap().0;
        let (status, op) = http("POST", &api(coll), Some(body));
        assert_eq!(status, 200, "{op}");
    }
    let snapshot = || -> Vec<Value> { created.iter().map(|(p, _)| http("GET", &api(p), None).1).collect() };
    // Let their operations finish.
    for _ in 0..3 {
        for (status, _) in created.iter().map(|(p, _)| http("GET", &api(p), None)) {
            assert_eq!(status, 200);
        }
    }
    let before = snapshot();

    assert!(g.observe().await.is_empty(), "foreign resources must be invisible");
    g.converge(Some(&g.plan(&http_world(90, 10, V1_ENDPOINTS)))).await;
    let names: BTreeSet<String> = g.observe().await.into_iter().map(|o| o.key.name).collect();
    for n in [&hc, &fw, &addr] {
        assert!(!names.contains(n.as_str()), "{n} observed as ours");
    }
    g.converge(None).await;
    assert_eq!(snapshot(), before, "foreign resources changed");
    assert_no_validation_failures();
    for (p, _) in &created {
        http("DELETE", &api(p), None);
    }
}

/// Failures are classified: throttling and 5xx retryable, an operation that fails on quota
/// permanent; after a retryable failure the next reconcile finishes the job. A 429 or 503 is
/// retried underneath the call (inserts carry a requestId, so a repeat is safe): only one that
/// lasts through every attempt (4) fails the reconcile.
#[tokio::test]
async fn failures_are_classified_and_retries_converge() {
    let _serial = serial().await;
    let g = Ground::new().await;
    let plan = g.plan(&http_world(90, 10, V1_ENDPOINTS));
    let fault = |f: Value| assert_eq!(http("POST", "/_ground/faults", Some(&f)).0, 200);

    fault(json!({"method": "compute.urlMaps.insert", "httpStatus": 503, "reason": "backendError", "count": 4}));
    let err = g.reconcile(Some(&plan)).await.expect_err("503");
    assert!(err.is_retryable(), "{err}");

    fault(json!({"method": "compute.urlMaps.insert", "httpStatus": 429, "reason": "rateLimitExceeded", "count": 4}));
    let err = g.reconcile(Some(&plan)).await.expect_err("429");
    assert!(err.is_retryable(), "{err}");
    assert!(g.cloud.calls().total(|c| c.operation == "urlMaps.insert" && c.outcome == "throttled") >= 1);

    fault(json!({"method": "compute.urlMaps.insert", "operationError": {"code": "QUOTA_EXCEEDED", "message": "Quota 'URL_MAPS' exceeded."}, "httpStatus": 403}));
    let err = g.reconcile(Some(&plan)).await.expect_err("quota");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("QUOTA_EXCEEDED"), "{err}");

    // One 429 on the insert of the URL map (which does not exist yet): absorbed.
    fault(json!({"method": "compute.urlMaps.insert", "httpStatus": 429, "reason": "rateLimitExceeded", "count": 1}));
    g.converge(Some(&plan)).await;
    let left = http("GET", "/_ground/faults", None).1;
    assert!(left["faults"].as_array().is_some_and(|fs| fs.iter().all(|f| f["count"] == 0)), "every injected failure was met: {left}");
    assert_eq!(http("DELETE", "/_ground/faults", None).0, 200);
    assert_no_validation_failures();
    g.converge(None).await;
}

/// A HealthCheckPolicy and a BackendPolicy on one Service land as one full update of its health
/// check and one of its backend service (plus the firewall, for the check's fixed port); the
/// next reconcile changes nothing; removing both policies is the same three updates back to
/// cloudgate's defaults (a TCP check to the serving port at Compute's 5 s / 5 s / 2 / 2, HTTP/1.1,
/// no connection draining, round robin). Global and regional collections alike.
#[tokio::test]
async fn service_policies_update_the_health_check_and_backend_service_and_go_back_to_defaults() {
    use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm};
    use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};

    let _serial = serial().await;
    for (scheme, prefix) in [("", ""), ("regional-internal-managed", "region")] {
        let mut g = Ground::new().await;
        g.ctx.scheme = scheme.to_string();
        let plan = g.plan(&http_world(90, 10, V1_ENDPOINTS));
        g.converge(Some(&plan)).await;
        let service = ObjKey::new("apps", "api-v1");
        let of = |observed: &[ObservedResource], kind: &str| -> Value {
            let resource = format!("{}/apps/api-v1:80", if kind == KIND_HEALTH_CHECK { "health-check" } else { "backend-service" });
            let found: Vec<&ObservedResource> =
                Ground::of_kind(observed, kind).into_iter().filter(|o| o.spec["description"].as_str().unwrap_or_default().contains(&resource)).collect();
            assert_eq!(found.len(), 1, "{scheme}: {kind} of {resource}");
            found[0].spec.clone()
        };
        let before = g.observe().await;
        assert_eq!(of(&before, KIND_HEALTH_CHECK)["type"], "TCP", "{scheme}");

        let hc = HealthCheck {
            protocol: Some(HealthCheckProtocol::Http),
            path: Some("/healthz".into()),
            port: Some(9000),
            interval_seconds: Some(10),
            timeout_seconds: Some(3),
            healthy_threshold: Some(3),
            unhealthy_threshold: Some(4),
            http_codes: Some("200".into()),
            grpc_codes: None,
        };
        let settings = BackendSettings {
            protocol_version: Some(BackendProtocolVersion::Http2),
            deregistration_delay_seconds: Some(30),
            slow_start_seconds: None,
            algorithm: Some(LoadBalancingAlgorithm::LeastRequest),
        };
        // What the controller asks before it passes settings on: the cloud provider answers
        // like the pure one.
        assert_eq!(g.cloud.health_check_support(&hc), Ok(()));
        assert_eq!(g.cloud.backend_settings_support(&settings), Ok(()));
        assert!(g.cloud.backend_settings_support(&BackendSettings { slow_start_seconds: Some(30), ..Default::default() }).is_err());
        g.ctx.health_checks.insert(service.clone(), hc);
        g.ctx.backend_settings.insert(service.clone(), settings);

        let updates = vec![
            "compute.firewalls.update".to_string(),
            format!("compute.{}.update", if prefix.is_empty() { "healthChecks".into() } else { format!("{prefix}HealthChecks") }),
            format!("compute.{}.update", if prefix.is_empty() { "backendServices".into() } else { format!("{prefix}BackendServices") }),
        ];
        calls_reset();
        let (cs, out) = g.reconcile(Some(&plan)).await.unwrap();
        assert_eq!(ops(&cs).len(), 3, "{scheme}: {:?}", ops(&cs));
        assert_eq!((out.mutations, mutating_calls()), (3, updates.clone()), "{scheme}");
        let (again, observed) = g.diff(Some(&plan)).await;
        assert!(again.is_empty(), "{scheme}: {:?}", ops(&again));
        let hc = of(&observed, KIND_HEALTH_CHECK);
        assert_eq!(hc["type"], "HTTP");
        assert_eq!(
            (&hc["checkIntervalSec"], &hc["timeoutSec"], &hc["healthyThreshold"], &hc["unhealthyThreshold"]),
            (&json!(10), &json!(3), &json!(3), &json!(4))
        );
        assert_eq!(hc["httpHealthCheck"]["requestPath"], "/healthz");
        assert_eq!((&hc["httpHealthCheck"]["portSpecification"], &hc["httpHealthCheck"]["port"]), (&json!("USE_FIXED_PORT"), &json!(9000)));
        assert!(hc.get("tcpHealthCheck").is_none(), "{scheme}: {hc}");
        let bs = of(&observed, KIND_BACKEND_SERVICE);
        assert_eq!(
            (&bs["protocol"], &bs["connectionDraining"]["drainingTimeoutSec"], &bs["localityLbPolicy"]),
            (&json!("H2C"), &json!(30), &json!("LEAST_REQUEST")),
            "{scheme}"
        );
        let fw = &Ground::of_kind(&observed, KIND_FIREWALL)[0].spec;
        assert!(fw["allowed"][0]["ports"].as_array().unwrap().contains(&json!("9000")), "{fw}");
        // Other Services keep the default check.
        let others: Vec<&ObservedResource> = Ground::of_kind(&observed, KIND_HEALTH_CHECK).into_iter().filter(|o| o.spec["type"] == "TCP").collect();
        assert_eq!(others.len(), 2, "{scheme}");

        // Steady state: a reconcile only reads.
        calls_reset();
        let (cs, out) = g.reconcile(Some(&plan)).await.unwrap();
        assert!(cs.is_empty(), "{scheme}: {:?}", ops(&cs));
        assert_eq!((out.mutations, mutating_calls()), (0, Vec::<String>::new()), "{scheme}");

        // Both policies deleted: the same three updates, back to the defaults.
        g.ctx.health_checks.clear();
        g.ctx.backend_settings.clear();
        calls_reset();
        let (cs, out) = g.reconcile(Some(&plan)).await.unwrap();
        assert_eq!(ops(&cs).len(), 3, "{scheme}: {:?}", ops(&cs));
        assert_eq!((out.mutations, mutating_calls()), (3, updates), "{scheme}");
        let (again, observed) = g.diff(Some(&plan)).await;
        assert!(again.is_empty(), "{scheme}: {:?}", ops(&again));
        let hc = of(&observed, KIND_HEALTH_CHECK);
        assert_eq!((&hc["type"], &hc["tcpHealthCheck"]["portSpecification"]), (&json!("TCP"), &json!("USE_SERVING_PORT")));
        assert_eq!(
            (&hc["checkIntervalSec"], &hc["timeoutSec"], &hc["healthyThreshold"], &hc["unhealthyThreshold"]),
            (&json!(5), &json!(5), &json!(2), &json!(2))
        );
        assert!(hc.get("httpHealthCheck").is_none(), "{scheme}: {hc}");
        assert_eq!(hc, of(&before, KIND_HEALTH_CHECK), "{scheme}: the check is as it was before the policy");
        let bs = of(&observed, KIND_BACKEND_SERVICE);
        assert_eq!(bs["protocol"], "HTTP");
        assert!(bs.get("connectionDraining").is_none() && bs.get("localityLbPolicy").is_none(), "{scheme}: {bs}");
        let fw = &Ground::of_kind(&observed, KIND_FIREWALL)[0].spec;
        assert_eq!(fw["allowed"][0]["ports"], json!(["8080", "8081"]), "{scheme}");
        g.converge(None).await;
    }
    assert_no_validation_failures();
}

/// The regional flavours use the regional collections (and, internal, an address reserved in
/// the subnetwork shared by the Gateway's forwarding rules): created, converged, deleted, every
/// request valid.
#[tokio::test]
async fn regional_flavours_converge_and_clean_up() {
    let _serial = serial().await;
    for flavour in ["regional-external-managed", "regional-internal-managed"] {
        let mut g = Ground::new().await;
        g.ctx.scheme = flavour.to_string();
        let plan = g.plan(&https_world(1));
        calls_reset();
        let out = g.converge(Some(&plan)).await;
        assert_eq!(out.addresses.len(), 1, "{flavour}: {:?}", out.addresses);
        let log = mutating_calls();
        for m in ["compute.regionUrlMaps.insert", "compute.regionBackendServices.insert", "compute.regionTargetHttpsProxies.insert", "compute.forwardingRules.insert", "compute.addresses.insert"] {
            assert!(log.iter().any(|c| c == m), "{flavour}: {m} not in {log:?}");
        }
        let observed = g.observe().await;
        let fr = Ground::of_kind(&observed, KIND_FORWARDING_RULE);
        assert_eq!(fr.len(), 2, "{flavour}");
        assert!(fr.iter().all(|r| r.spec["region"] == json!(env("GCE_REGION"))), "{flavour}");
        let plan2 = g.plan(&https_world(2));
        g.converge(Some(&plan2)).await;
        g.converge(None).await;
        assert!(g.observe().await.is_empty(), "{flavour}");
    }
    assert_no_validation_failures();
}

/// An operation still running when the poll budget is spent is not an error: apply stops there
/// with `ready: false`, and the next reconcile carries on. Endpoints without a known VM
/// instance are a permanent error (Compute requires the instance for GCE_VM_IP_PORT).
#[tokio::test]
async fn unfinished_operations_mean_not_ready_and_endpoints_need_instances() {
    let _serial = serial().await;
    let g = Ground::new().await;
    let plan = g.plan(&http_world(90, 10, V1_ENDPOINTS));

    let mut cfg = GcpConfig::from_env();
    cfg.operation_timeout = std::time::Duration::ZERO;
    cfg.instances = g_instances();
    let impatient = GcpCloud::new(GcpProvider::default(), cfg).await.unwrap();
    let (cs, observed) = g.diff(Some(&plan)).await;
    let out = impatient.apply(Some(&plan), &cs, &observed, &g.ctx).await.expect("not an error");
    assert_eq!(out, ApplyOutcome { mutations: 1, addresses: vec![], ready: false });
    // The firewall's insert is still in flight: changing it again is "not ready", retryable.
    let err = g.reconcile(None).await.expect_err("firewall busy");
    assert!(err.is_retryable() && err.to_string().contains("resourceNotReady"), "{err}");
    // Compute finishes operations on its own; the fake finishes them as they are polled.
    let (_, ops) = http("GET", &api("global/operations?filter=status%20!%3D%20DONE"), None);
    for op in ops["items"].as_array().unwrap().iter().filter(|o| o["status"] != "DONE") {
        for _ in 0..3 {
            http("GET", &api(&format!("global/operations/{}", op["name"].as_str().unwrap())), None);
        }
    }

    let no_instances = GcpCloud::new(GcpProvider::default(), GcpConfig::from_env()).await.unwrap();
    let (cs, observed) = g.diff(Some(&plan)).await;
    let err = no_instances.apply(Some(&plan), &cs, &observed, &g.ctx).await.expect_err("no instance");
    assert!(!err.is_retryable() && err.to_string().contains("VM instance"), "{err}");

    g.converge(Some(&plan)).await;
    g.converge(None).await;
    assert_no_validation_failures();
}

fn g_instances() -> Option<InstanceLookup> {
    Some(Arc::new(|zone: &str, _ip: &str| Some(format!("gke-node-{zone}"))))
}

/// A 429 `rateLimitExceeded` is retried underneath the call instead of failing the reconcile:
/// with the fault proxy (tests/ground/faults) answering the next call, whatever it is, with
/// that 429, observe through the proxy still succeeds, and the proxy counted the fault.
#[tokio::test]
async fn a_throttled_call_is_retried_underneath() {
    let _s = serial().await;
    let control = env("FAULTS_CONTROL_URL");
    let mut g = Ground::new().await;
    let cfg = GcpConfig {
        endpoint: Some(env("FAULTS_GCE_ENDPOINT")),
        instances: g_instances(),
        requests_per_second: 200.0,
        ..GcpConfig::from_env()
    };
    g.cloud = GcpCloud::new(GcpProvider::default(), cfg).await.expect("clients");
    let faults = |rates: Value, budget: Value| {
        let (code, v) = http_to(&control, "POST", "/_faults/config", Some(&json!({"rates": rates, "budget": budget, "operations": null})));
        assert_eq!(code, 200, "{v}");
    };
    let (code, _) = http_to(&control, "POST", "/_faults/reset", None);
    assert_eq!(code, 200);
    faults(json!({"throttle": 1.0, "error5xx": 0.0, "timeout": 0.0, "drop": 0.0}), json!(1));
    let observed = g.cloud.observe(&g.owner, &g.ctx).await;
    let (_, stats) = http_to(&control, "GET", "/_faults/stats", None);
    faults(json!({"throttle": 0.0, "error5xx": 0.0, "timeout": 0.0, "drop": 0.0}), Value::Null);
    assert_eq!(stats["faults"]["throttle"], 1, "the proxy throttled one call: {stats}");
    let observed = observed.expect("observe succeeds despite the 429");
    assert!(observed.is_empty(), "a fresh cluster owns nothing: {observed:?}");
}
