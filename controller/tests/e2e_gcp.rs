//! End to end on Google Cloud: the built `cloudgate controller --provider gcp` binary against
//! the local test ground (a real kube-apiserver with kwok nodes, and the Compute fake that checks
//! every request against Google's discovery document), checked with plain Compute REST reads,
//! the fake's call log, and `gcloud` as a second client:
//!
//! - GatewayClass + Gateway (HTTP :80 and HTTPS :443 with a TLS Secret) + HTTPRoutes with path,
//!   header and query matches, redirects, host and path rewrites, weighted backends, header
//!   modification, a request mirror and a request timeout, and a GRPCRoute, become an address, a URL map per
//!   port with the route rules in spec precedence, target HTTP and HTTPS proxies, forwarding
//!   rules, an SSL certificate named by content, backend services with health checks, zonal
//!   `GCE_VM_IP_PORT` NEGs holding the pods' IPs on their nodes, and a health-check firewall
//!   rule; everything labelled or described with the cluster id and the owning Gateway, every
//!   name a valid GCE name of at most 63 characters; Gateway Programmed=True with the IP;
//! - rules the default (global external) flavour cannot express (a regex path match, a port
//!   redirect), or a URL map cannot build on their listener (a redirect to http from HTTPS, a
//!   full-path rewrite under a template-operator prefix), are reported on the route
//!   (PartiallyInvalid, UnsupportedValue), not dropped silently, and the Gateway is still
//!   Programmed;
//! - a weight change is exactly one URL map update (with its fingerprint; a 412 for a stale one
//!   means a re-read and one more update); scaling is a NEG attach, scaling down a detach,
//!   nothing else;
//! - rotating the Secret creates the new certificate, moves the proxy onto it and only then
//!   deletes the old one;
//! - `gcloud ... list` afterwards agrees with the Gateway's status and the pods;
//! - deleting the Gateway deletes everything in dependency order, each operation waited for
//!   with one `operations.wait`, and the fake saw no request or response outside compute.v1.json;
//! - a new Gateway is `Accepted` with `Programmed=False Pending` while its load balancer is still
//!   being made (an operation held by the fault proxy), then `Programmed`.
//!
//! The ground's kwok nodes sit in AWS zones, which Compute does not know: the test adds two kwok
//! nodes of its own in GCE zones (tainted, so no other test's pods land there) and pins its pods
//! to them. Needs KUBECONFIG, GCE_ENDPOINT, GCE_PROJECT and GCE_REGION from the ground
//! (`tests/run` sets them); built only with `--features e2e`.
#![forbid(unsafe_code)]
#![allow(clippy::await_holding_lock)]

mod support;
use support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

// --- environment ----------------------------------------------------------------------------

struct Ground {
    kube: Client,
    /// The Compute fake: `http://host:port`, project, region.
    gce: String,
    project: String,
    region: String,
}

async fn ground() -> Ground {
    let kubeconfig = env("KUBECONFIG");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("KUBECONFIG={kubeconfig}: {e}"));
    let kube = Client::try_from(config).expect("kube client");
    Ground { kube, gce: env("GCE_ENDPOINT"), project: env("GCE_PROJECT"), region: env("GCE_REGION") }
}

// --- tiny HTTP client for the fake -------------------------------------------------------------

/// A Compute API call on the fake; `path` is absolute or a full URL on the fake (selfLinks).
fn gce(g: &Ground, method: &str, path: &str) -> Result<Value, String> {
    gce_with(g, method, path, (method == "POST").then(|| json!({})))
}

fn gce_with(g: &Ground, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    gce_request(&g.gce, method, path, body.as_ref())
}

/// Method ids (e.g. `compute.urlMaps.update`) of every API call the fake has served, in order.
/// Tests run one at a time and only this test's controller talks to the fake, so a slice of
/// this log from a mark onwards is what the controller did since.
fn call_log(g: &Ground) -> Vec<String> {
    calls_with_status(g).into_iter().map(|(m, _)| m).collect()
}

/// The call log with each call's HTTP status.
fn calls_with_status(g: &Ground) -> Vec<(String, u64)> {
    let v = gce(g, "GET", "/_ground/calls").expect("call log");
    v["calls"].as_array().unwrap().iter().map(|c| (c["method"].as_str().unwrap_or_default().to_string(), c["status"].as_u64().unwrap_or(0))).collect()
}

fn is_mutating(method: &str) -> bool {
    let op = method.rsplit('.').next().unwrap_or_default();
    !method.contains("Operations.") && !matches!(op, "get" | "list" | "aggregatedList" | "listNetworkEndpoints" | "wait")
}

/// The mutating calls made since `mark` (a length of the call log).
fn mutations_since(g: &Ground, mark: usize) -> Vec<String> {
    call_log(g).into_iter().skip(mark).filter(|m| is_mutating(m)).collect()
}

// --- the controller under test ---------------------------------------------------------------

struct Opts<'a> {
    cluster_id: &'a str,
    controller_name: &'a str,
    lease: &'a str,
    project: &'a str,
    region: &'a str,
    resync: &'a str,
}

fn start(o: &Opts<'_>) -> Controller {
    Controller::start(
        &Common { cluster_id: o.cluster_id, controller_name: o.controller_name, lease: o.lease, resync: o.resync },
        &["--provider", "gcp", "--gcp-project", o.project, "--region", o.region],
    )
}

/// Waits until the controller has finished two more reconciles than now: at least one whole
/// reconcile then started after whatever the test just saw, so any further change it would
/// make has been made.
async fn settle(ctl: &Controller) {
    let before = ctl.metric("cloudgate_reconciles_total", &[]);
    poll("two more reconciles (resync)", Duration::from_secs(60), || async {
        let now = ctl.metric("cloudgate_reconciles_total", &[]);
        if now >= before + 2.0 { Ok(()) } else { Err(format!("{now} reconciles, started at {before}")) }
    })
    .await;
}

// --- Kubernetes objects ------------------------------------------------------------------------

/// A Deployment pinned to this test's GCE-zoned kwok nodes (label `pool`, tolerating their
/// taint; to one node when `node` is given) and a Service in front of it.
async fn app(client: &Client, ns: &str, name: &str, replicas: i32, pool: &str, node: Option<&str>) {
    let mut selector = json!({POOL_LABEL: pool});
    if let Some(n) = node {
        selector["kubernetes.io/hostname"] = json!(n);
    }
    create(
        client,
        Some(ns),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"nodeSelector": selector,
                        "tolerations": [{"key": POOL_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
                        "containers": [{"name": "app", "image": "registry.invalid/cloudgate/e2e:never-pulled",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}}),
    )
    .await;
    service(client, ns, name).await;
}

fn fixture(name: &str) -> String {
    let path = format!("{}/../providers/gcp/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `tls.crt` / `tls.key` of fixture pair `n` (both for shop.example.com).
fn tls_data(n: u32) -> Value {
    json!({"tls.crt": fixture(&format!("tls{n}.crt")), "tls.key": fixture(&format!("tls{n}.key"))})
}

fn gcp_gateway(name: &str, class: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name},
        "spec": {"gatewayClassName": class, "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com",
                "tls": {"mode": "Terminate", "certificateRefs": [{"name": "shop-tls"}]}}]}})
}

/// Port 80 only redirects to https.
fn to_https_route() -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "to-https"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": "http"}],
            "rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]}})
}

/// The shop on :443: a weighted split with header changes, a mirror and a timeout; an exact
/// path with a query match; a header canary; a prefix redirect; host and path rewrites; a
/// default.
fn store_spec(w1: u32, w2: u32) -> Value {
    json!({"parentRefs": [{"name": "gw", "sectionName": "https"}], "hostnames": ["shop.example.com"],
        "rules": [
            {"name": "split", "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}], "remove": ["x-debug"]}},
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "cloudgate"}]}},
                    {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web", "port": 80}, "percent": 50}}],
                "timeouts": {"request": "10s"},
                "backendRefs": [{"name": "api-v1", "port": 80, "weight": w1}, {"name": "api-v2", "port": 80, "weight": w2}]},
            {"matches": [{"path": {"type": "Exact", "value": "/login"}, "queryParams": [{"name": "debug", "value": "1"}]}],
                "backendRefs": [{"name": "web", "port": 80}]},
            {"name": "canary", "matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [{"name": "x-canary", "value": "true"}]}],
                "backendRefs": [{"name": "api-v2", "port": 80}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}, "statusCode": 301}}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/svc"}}],
                "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "internal.example.com",
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/internal"}}}],
                "backendRefs": [{"name": "web", "port": 80}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/legacy"}}],
                "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/index.html"}}}],
                "backendRefs": [{"name": "web", "port": 80}]},
            {"backendRefs": [{"name": "web", "port": 80}]}]})
}

/// Two rules the global external flavour cannot express (a regex path match; a redirect to
/// another port) next to one it can, and two a URL map cannot build on this (HTTPS) listener
/// (a redirect to http; a full-path rewrite under a prefix with a path-template operator),
/// which once failed the render of the whole Gateway.
fn odd_route() -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "odd"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": "https"}], "hostnames": ["shop.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}}], "backendRefs": [{"name": "web", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/alt"}}],
                    "filters": [{"type": "RequestRedirect", "requestRedirect": {"port": 8443}}]},
                {"matches": [{"path": {"type": "Exact", "value": "/odd"}}], "backendRefs": [{"name": "web", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/plain"}}],
                    "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "http"}}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/t*"}}],
                    "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/index.html"}}}],
                    "backendRefs": [{"name": "web", "port": 80}]}]}})
}

// --- this test's nodes ---------------------------------------------------------------------------

/// Label (and taint key) of the nodes a test adds; its value is the test's pool name.
const POOL_LABEL: &str = "cloudgate.io/e2e-pool";

/// Two kwok nodes in `<region>-a` and `<region>-b`, Ready. Returns their names.
async fn gce_nodes(g: &Ground, pool: &str) -> Vec<String> {
    let nodes: Api<Node> = Api::all(g.kube.clone());
    let mut names = Vec::new();
    for (i, z) in ["a", "b"].iter().enumerate() {
        let name = format!("{pool}-{z}");
        let zone = format!("{}-{z}", g.region);
        let node: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
                    "topology.kubernetes.io/region": g.region, "topology.kubernetes.io/zone": zone, POOL_LABEL: pool}},
            "spec": {"taints": [{"key": POOL_LABEL, "value": pool, "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": format!("10.251.0.{}", 10 + i)}, {"type": "Hostname", "address": name}],
                "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"}, "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"}}}))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap_or_else(|e| panic!("create node {name}: {e}"));
        names.push(name);
    }
    for name in &names {
        poll(&format!("node {name} Ready"), Duration::from_secs(60), || async {
            let n = nodes.get(name).await.map_err(|e| e.to_string())?;
            let ready = n.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
            if ready { Ok(()) } else { Err("not Ready".into()) }
        })
        .await;
    }
    names
}

/// Node of each pod IP of `app`.
async fn pod_nodes(client: &Client, ns: &str, app: &str) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list pods");
    list.items
        .iter()
        .filter_map(|p| Some((p.status.as_ref()?.pod_ip.clone()?, p.spec.as_ref()?.node_name.clone()?)))
        .collect()
}

/// What the NEGs of a Service must hold: (zone, ip, instance) of each ready pod, the instance
/// being the pod's node and the zone that node's (`<region>-a` / `-b` by its name).
async fn want_endpoints(g: &Ground, ns: &str, app: &str, replicas: usize) -> BTreeSet<(String, String, String)> {
    let ips = pod_ips(&g.kube, ns, app, replicas).await;
    let nodes = pod_nodes(&g.kube, ns, app).await;
    ips.iter()
        .map(|ip| {
            let node = nodes[ip].clone();
            let zone = format!("{}-{}", g.region, node.rsplit('-').next().unwrap());
            (zone, ip.clone(), node)
        })
        .collect()
}

// --- what Compute holds --------------------------------------------------------------------------

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn last_segment(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_string()
}

/// Every route rule of every path matcher of a URL map.
fn route_rules(um: &Value) -> Vec<Value> {
    um["pathMatchers"].as_array().into_iter().flatten().flat_map(|pm| pm["routeRules"].as_array().cloned().unwrap_or_default()).collect()
}

/// The one route rule `pick` selects, or why not.
fn rule_where(um: &Value, what: &str, pick: impl Fn(&Value) -> bool) -> Result<Value, String> {
    let found: Vec<Value> = route_rules(um).into_iter().filter(|r| pick(r)).collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!("{} route rules for {what} in {}", other.len(), um["name"])),
    }
}

fn weights(rule: &Value) -> Vec<(String, i64)> {
    rule["routeAction"]["weightedBackendServices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| (last_segment(w["backendService"].as_str().unwrap_or_default()), w["weight"].as_i64().unwrap_or(-1)))
        .collect()
}

/// The load balancer at `ip`, followed from its forwarding rules.
#[derive(Debug)]
struct Lb {
    /// Per port: forwarding rule, proxy, URL map.
    ports: BTreeMap<String, (Value, Value, Value)>,
    /// Per backend service name: its endpoints as (zone, ip, instance name), and its NEGs.
    endpoints: BTreeMap<String, BTreeSet<(String, String, String)>>,
    negs: BTreeMap<String, Vec<(String, String)>>,
}

impl Lb {
    fn url_map(&self, port: &str) -> &Value {
        &self.ports[port].2
    }

    fn proxy(&self, port: &str) -> &Value {
        &self.ports[port].1
    }
}

fn lb_at(g: &Ground, ip: &str) -> Result<Lb, String> {
    let frs = gce(g, "GET", &format!("/compute/v1/projects/{}/global/forwardingRules", g.project))?;
    let mut ports = BTreeMap::new();
    let mut services = BTreeSet::new();
    for fr in items(&frs).into_iter().filter(|f| f["IPAddress"] == ip) {
        if fr["loadBalancingScheme"] != "EXTERNAL_MANAGED" {
            return Err(format!("forwarding rule scheme {}", fr["loadBalancingScheme"]));
        }
        let proxy = gce(g, "GET", fr["target"].as_str().ok_or("forwarding rule without target")?)?;
        let url_map = gce(g, "GET", proxy["urlMap"].as_str().ok_or("proxy without URL map")?)?;
        for r in route_rules(&url_map) {
            for (bs, _) in weights(&r) {
                services.insert(bs);
            }
        }
        ports.insert(fr["portRange"].as_str().unwrap_or_default().to_string(), (fr, proxy, url_map));
    }
    let mut endpoints = BTreeMap::new();
    let mut negs = BTreeMap::new();
    for bs_name in services {
        let bs = gce(g, "GET", &format!("/compute/v1/projects/{}/global/backendServices/{bs_name}", g.project))?;
        let mut eps = BTreeSet::new();
        let mut groups = Vec::new();
        for b in bs["backends"].as_array().cloned().unwrap_or_default() {
            let neg_url = b["group"].as_str().unwrap_or_default();
            let neg = gce(g, "GET", neg_url)?;
            if neg["networkEndpointType"] != "GCE_VM_IP_PORT" {
                return Err(format!("NEG type {}", neg["networkEndpointType"]));
            }
            let zone = last_segment(neg["zone"].as_str().unwrap_or_default());
            groups.push((zone.clone(), neg["name"].as_str().unwrap_or_default().to_string()));
            let listed = gce(g, "POST", &format!("{neg_url}/listNetworkEndpoints"))?;
            for e in items(&listed) {
                let ne = &e["networkEndpoint"];
                eps.insert((zone.clone(), ne["ipAddress"].as_str().unwrap_or_default().to_string(), last_segment(ne["instance"].as_str().unwrap_or_default())));
            }
        }
        endpoints.insert(bs_name.clone(), eps);
        negs.insert(bs_name, groups);
    }
    Ok(Lb { ports, endpoints, negs })
}

/// Every Compute resource, global or in the ground's region, whose labels or description name
/// `cluster`, as (collection, resource).
fn owned_resources(g: &Ground, cluster: &str) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    let (p, r) = (&g.project, &g.region);
    let scoped = ["addresses", "urlMaps", "backendServices", "healthChecks", "targetHttpProxies", "targetHttpsProxies", "forwardingRules", "sslCertificates"];
    let mut lists: Vec<(String, String)> = scoped
        .iter()
        .flat_map(|k| [(k.to_string(), format!("/compute/v1/projects/{p}/global/{k}")), (k.to_string(), format!("/compute/v1/projects/{p}/regions/{r}/{k}"))])
        .collect();
    lists.push(("firewalls".into(), format!("/compute/v1/projects/{p}/global/firewalls")));
    lists.push(("networkEndpointGroups".into(), format!("/compute/v1/projects/{p}/aggregated/networkEndpointGroups")));
    for (coll, path) in lists {
        let v = gce(g, "GET", &path)?;
        let all: Vec<Value> = match &v["items"] {
            Value::Array(a) => a.clone(),
            // aggregatedList: {"zones/x": {"networkEndpointGroups": [...]}}
            Value::Object(m) => m.values().flat_map(|s| s["networkEndpointGroups"].as_array().cloned().unwrap_or_default()).collect(),
            _ => Vec::new(),
        };
        for r in all {
            let mentions = r["description"].as_str().is_some_and(|d| d.contains(cluster)) || r["labels"].to_string().contains(cluster);
            if mentions {
                out.push((coll.clone(), r));
            }
        }
    }
    Ok(out)
}

/// GCE's resource name rule: RFC 1035, 1 to 63 characters.
fn valid_gce_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && *b.last().unwrap() != b'-'
}

// --- gcloud ----------------------------------------------------------------------------------------

/// gcloud pointed at the fake the way the ground's own gcloud tests point it (endpoint override,
/// credentials disabled), through environment properties and a throwaway config directory.
struct Gcloud {
    config: std::path::PathBuf,
    endpoint: String,
    project: String,
}

impl Gcloud {
    /// `None` (with the reason printed) when gcloud is not installed on this machine.
    fn new(g: &Ground) -> Option<Gcloud> {
        if std::process::Command::new("gcloud").arg("--version").output().is_err() {
            println!("SKIPPED the gcloud comparison: gcloud is not installed on this machine (install google-cloud-cli to run it)");
            return None;
        }
        let config = std::env::temp_dir().join(unique("gcloud-e2e"));
        std::fs::create_dir_all(&config).unwrap();
        Some(Gcloud { config, endpoint: format!("{}/compute/v1/", g.gce.trim_end_matches('/')), project: g.project.clone() })
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = std::process::Command::new("gcloud")
            .args(args)
            .args(["--format=json", "--quiet"])
            .env("CLOUDSDK_CONFIG", &self.config)
            .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
            .env("CLOUDSDK_CORE_PROJECT", &self.project)
            .env("CLOUDSDK_AUTH_DISABLE_CREDENTIALS", "true")
            .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", &self.endpoint)
            .env("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true")
            .env("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true")
            .output()
            .expect("run gcloud");
        assert!(out.status.success(), "gcloud {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("gcloud {args:?}: {e}"))
    }
}

impl Drop for Gcloud {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.config);
    }
}

// --- the scenario ------------------------------------------------------------------------------

/// Deletes the Gateway, waits for its finalizer to run and the object to go, then checks that
/// nothing `cluster` owned is left in Compute.
async fn delete_gateway_leaving_nothing(g: &Ground, ns: &str, cluster: &str) {
    Api::<Gateway>::namespaced(g.kube.clone(), ns).delete("gw", &DeleteParams::default()).await.expect("delete gateway");
    poll("Gateway finalized and gone", Duration::from_secs(120), || async {
        match get_gateway(&g.kube, ns, "gw").await {
            None => Ok(()),
            Some(gw) => Err(format!("finalizers {:?}", gw.metadata.finalizers)),
        }
    })
    .await;
    let left = owned_resources(g, cluster).expect("list Compute resources");
    assert!(left.is_empty(), "Compute resources left after deleting the Gateway: {left:?}");
}

/// Every request the controller made (and every answer) conformed to compute.v1.json; then the
/// test's Kubernetes objects go.
async fn schema_clean_and_cleanup(g: &Ground, ns: &str, class_name: &str, node_names: &[String]) {
    let v = gce(g, "GET", "/_ground/validation").expect("validation report");
    assert_eq!(v["failures"], json!([]), "the fake found requests or responses that break compute.v1.json");
    delete_namespace(&g.kube, ns).await;
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(class_name, &DeleteParams::default()).await;
    for n in node_names {
        let _ = Api::<Node>::all(g.kube.clone()).delete(n, &DeleteParams::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_lifecycle_on_gcp() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let cluster = unique("e2e-gcp");
    let controller_name = format!("cloudgate.io/{}", unique("gcp"));
    let class_name = unique("cg-gcp");
    let pool = unique("gce-node");
    let ns = namespace(&g.kube, "e2e-gcp").await;
    step("nodes in GCE zones");
    let node_names = gce_nodes(&g, &pool).await;
    let ctl = start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, project: &g.project, region: &g.region, resync: "5s" });

    step("provision: class, gateway (HTTP + HTTPS), routes");
    // api-v1 lives on the zone-a node only, so scaling it changes that zone's NEG and nothing else.
    app(&g.kube, &ns, "api-v1", 2, &pool, Some(&node_names[0])).await;
    app(&g.kube, &ns, "api-v2", 1, &pool, None).await;
    app(&g.kube, &ns, "web", 1, &pool, None).await;
    app(&g.kube, &ns, "rpc", 1, &pool, None).await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-tls"},
        "type": "kubernetes.io/tls", "stringData": tls_data(1)}))
    .await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gcp_gateway("gw", &class_name)).await;
    create(&g.kube, Some(&ns), to_https_route()).await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "store"}, "spec": store_spec(80, 20)}))
    .await;
    create(&g.kube, Some(&ns), odd_route()).await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "rpc"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": "https"}], "hostnames": ["shop.example.com"],
            "rules": [{"matches": [{"method": {"service": "shop.Cart", "method": "Get"}}], "backendRefs": [{"name": "rpc", "port": 80}]}]}}))
    .await;
    ctl.wait_ready().await;
    let ip = wait_programmed(&g.kube, &ns, "gw").await;
    let gw = get_gateway(&g.kube, &ns, "gw").await.unwrap();
    assert!(gw.metadata.finalizers.iter().flatten().any(|f| f == "cloudgate.io/cloud-resources"), "finalizer: {:?}", gw.metadata.finalizers);
    let status = gw.status.unwrap();
    assert_eq!(cond(status.conditions.as_deref().unwrap(), "Accepted").unwrap().status, "True");
    assert_eq!(status.addresses.as_ref().unwrap()[0].r#type.as_deref(), Some("IPAddress"));
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "address {ip}");
    let listeners: BTreeMap<String, i32> = status.listeners.as_ref().unwrap().iter().map(|l| (l.name.clone(), l.attached_routes)).collect();
    assert_eq!(listeners, BTreeMap::from([("http".to_string(), 1), ("https".to_string(), 3)]));
    for l in status.listeners.as_ref().unwrap() {
        assert_eq!(cond(&l.conditions, "Programmed").unwrap().status, "True", "listener {}", l.name);
    }
    for r in ["to-https", "store"] {
        wait_route_condition(&g.kube, &ns, r, &controller_name, "Accepted", "True", "Accepted").await;
        wait_route_condition(&g.kube, &ns, r, &controller_name, "ResolvedRefs", "True", "ResolvedRefs").await;
    }

    step("what the flavour cannot express is on the route, not dropped silently");
    wait_route_condition(&g.kube, &ns, "odd", &controller_name, "Accepted", "True", "Accepted").await;
    wait_route_condition(&g.kube, &ns, "odd", &controller_name, "PartiallyInvalid", "True", "UnsupportedValue").await;
    let odd = get_route(&g.kube, &ns, "odd").await;
    let message = odd.data.pointer("/status/parents").and_then(Value::as_array).unwrap().iter()
        .filter(|p| p["controllerName"] == controller_name.as_str())
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .find(|c| c["type"] == "PartiallyInvalid")
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .unwrap();
    for needle in [
        "rule 0",
        "PathRegexMatching",
        "rule 1",
        "HTTPRoutePortRedirect",
        "gcp",
        "rule 3 on listener https: a redirect to scheme http from an HTTPS listener cannot be expressed",
        "rule 4 on listener https: ReplaceFullPath \"/index.html\" under PathPrefix \"/t*\"",
    ] {
        assert!(message.contains(needle), "{needle} missing from {message:?}");
    }
    assert!(!message.contains("rule 2"), "{message}");

    step("URL maps, proxies, certificate, backend services, NEGs");
    let want_v1 = want_endpoints(&g, &ns, "api-v1", 2).await;
    let want_v2 = want_endpoints(&g, &ns, "api-v2", 1).await;
    let want_web = want_endpoints(&g, &ns, "web", 1).await;
    let want_rpc = want_endpoints(&g, &ns, "rpc", 1).await;
    let (lb, bs_v1, bs_v2, bs_web) = poll("the load balancer with the routes and the pods", Duration::from_secs(90), || async {
        let lb = lb_at(&g, &ip)?;
        if lb.ports.keys().collect::<Vec<_>>() != ["443-443", "80-80"] {
            return Err(format!("ports {:?}", lb.ports.keys()));
        }
        let split = rule_where(lb.url_map("443-443"), "the split", |r| weights(r).len() == 2)?;
        let w = weights(&split);
        if w.iter().map(|(_, w)| *w).collect::<Vec<_>>() != [80, 20] {
            return Err(format!("weights {w:?}"));
        }
        let web = last_segment(split["routeAction"]["requestMirrorPolicy"]["backendService"].as_str().unwrap_or_default());
        let by_bs = |bs: &str| lb.endpoints.get(bs).cloned().unwrap_or_default();
        let rpc = rule_where(lb.url_map("443-443"), "the gRPC method", |r| r["matchRules"][0]["fullPathMatch"] == "/shop.Cart/Get")?;
        let rpc = weights(&rpc).first().map(|(bs, _)| bs.clone()).unwrap_or_default();
        if by_bs(&w[0].0) != want_v1 || by_bs(&w[1].0) != want_v2 || by_bs(&web) != want_web || by_bs(&rpc) != want_rpc {
            return Err(format!("{:?}; want api-v1 {want_v1:?}, api-v2 {want_v2:?}, web {want_web:?}, rpc {want_rpc:?}", lb.endpoints));
        }
        let (v1, v2) = (w[0].0.clone(), w[1].0.clone());
        Ok((lb, v1, v2, web))
    })
    .await;
    assert!(bs_v1 != bs_v2 && bs_v2 != bs_web && bs_v1 != bs_web);

    // :80 redirects everything to https.
    let um80 = lb.url_map("80-80");
    assert_eq!(lb.proxy("80-80")["kind"], "compute#targetHttpProxy");
    let redirect = rule_where(um80, "the https redirect", |r| r.get("urlRedirect").is_some()).unwrap();
    assert_eq!(redirect["urlRedirect"]["httpsRedirect"], true);
    assert_eq!(redirect["urlRedirect"]["redirectResponseCode"], "MOVED_PERMANENTLY_DEFAULT");
    assert_eq!(redirect["matchRules"], json!([{"prefixMatch": "/"}]));

    // :443: every rule in spec precedence, with what it does.
    let um = lb.url_map("443-443");
    assert_eq!(um["hostRules"][0]["hosts"], json!(["shop.example.com"]));
    let split = rule_where(um, "the split", |r| weights(r).len() == 2).unwrap();
    assert_eq!(split["matchRules"], json!([{"fullPathMatch": "/api"}, {"prefixMatch": "/api/"}]), "PathPrefix /api is /api or /api/...");
    let ha = &split["headerAction"];
    assert_eq!(ha["requestHeadersToAdd"], json!([{"headerName": "x-env", "headerValue": "prod", "replace": true}]));
    assert_eq!(ha["requestHeadersToRemove"], json!(["x-debug"]));
    assert_eq!(ha["responseHeadersToAdd"], json!([{"headerName": "x-served-by", "headerValue": "cloudgate", "replace": false}]));
    assert_eq!(split["routeAction"]["requestMirrorPolicy"]["mirrorPercent"].as_f64(), Some(50.0));
    assert_eq!(split["routeAction"]["timeout"]["seconds"].to_string().trim_matches('"'), "10", "{}", split["routeAction"]);
    let login = rule_where(um, "/login", |r| r["matchRules"][0]["fullPathMatch"] == "/login").unwrap();
    assert_eq!(login["matchRules"][0]["queryParameterMatches"], json!([{"name": "debug", "exactMatch": "1"}]));
    assert_eq!(weights(&login), vec![(bs_web.clone(), 1)]);
    let canary = rule_where(um, "the canary", |r| r["matchRules"][0].get("headerMatches").is_some()).unwrap();
    assert_eq!(canary["matchRules"][0]["headerMatches"], json!([{"headerName": "x-canary", "exactMatch": "true"}]));
    assert_eq!(weights(&canary), vec![(bs_v2.clone(), 1)]);
    let old_exact = rule_where(um, "/old", |r| r["matchRules"][0]["fullPathMatch"] == "/old").unwrap();
    let old_prefix = rule_where(um, "/old/", |r| r["matchRules"][0]["prefixMatch"] == "/old/").unwrap();
    assert_eq!(old_exact["urlRedirect"], json!({"pathRedirect": "/new", "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}));
    assert_eq!(old_prefix["urlRedirect"], json!({"prefixRedirect": "/new/", "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}));
    // Rewrites: a prefix replaced element-wise (two rules), a full path under a prefix (the
    // exact path and a path template below it).
    let svc = rule_where(um, "/svc", |r| r["matchRules"][0]["fullPathMatch"] == "/svc").unwrap();
    assert_eq!(svc["routeAction"]["urlRewrite"], json!({"hostRewrite": "internal.example.com", "pathPrefixRewrite": "/internal"}));
    let svc_below = rule_where(um, "/svc/", |r| r["matchRules"][0]["prefixMatch"] == "/svc/").unwrap();
    assert_eq!(svc_below["routeAction"]["urlRewrite"], json!({"hostRewrite": "internal.example.com", "pathPrefixRewrite": "/internal/"}));
    let legacy = rule_where(um, "/legacy", |r| r["matchRules"][0]["fullPathMatch"] == "/legacy").unwrap();
    assert_eq!(legacy["routeAction"]["urlRewrite"], json!({"pathPrefixRewrite": "/index.html"}));
    let legacy_below = rule_where(um, "/legacy/...", |r| r["matchRules"][0]["pathTemplateMatch"] == "/legacy/{path=**}").unwrap();
    assert_eq!(legacy_below["routeAction"]["urlRewrite"], json!({"pathTemplateRewrite": "/index.html"}));
    assert_eq!(weights(&legacy_below), vec![(bs_web.clone(), 1)]);
    let odd_ok = rule_where(um, "/odd", |r| r["matchRules"][0]["fullPathMatch"] == "/odd").unwrap();
    assert!(route_rules(um).iter().all(|r| !r["matchRules"].to_string().contains("regexMatch")), "the dropped regex rule is not in the URL map");
    for refused in ["/plain", "/t*"] {
        assert!(route_rules(um).iter().all(|r| !r["matchRules"].to_string().contains(refused)), "the refused {refused} rule is not in the URL map");
    }
    // gRPC: the method is a path; its backend service speaks HTTP/2 without TLS.
    let rpc = rule_where(um, "the gRPC method", |r| r["matchRules"][0]["fullPathMatch"] == "/shop.Cart/Get").unwrap();
    let (rpc_bs, _) = weights(&rpc).into_iter().next().unwrap();
    let rpc_bs = gce(&g, "GET", &format!("/compute/v1/projects/{}/global/backendServices/{rpc_bs}", g.project)).unwrap();
    assert_eq!(rpc_bs["protocol"], "H2C");
    let grpc_route = Api::<DynamicObject>::namespaced_with(g.kube.clone(), &ns, &gvk("GRPCRoute")).get("rpc").await.unwrap();
    let conds = route_conditions(&grpc_route, &controller_name);
    assert!(conds.iter().any(|(t, st, _, _)| t == "Accepted" && st == "True"), "GRPCRoute: {conds:?}");
    let catch_all = rule_where(um, "the default", |r| r["matchRules"] == json!([{"prefixMatch": "/"}])).unwrap();
    let prio = |r: &Value| r["priority"].as_i64().unwrap();
    // Exact before prefix; the longer prefix's header match before the bare prefix; the catch-all last.
    assert!(prio(&login) < prio(&canary) && prio(&odd_ok) < prio(&canary), "exact paths first");
    assert!(prio(&canary) < prio(&split), "more header matches first on an equal prefix");
    assert!(route_rules(um).iter().all(|r| prio(r) <= prio(&catch_all)), "the catch-all last");
    // Requests no rule matches get the spec's 404 from the Gateway's backend-less service.
    assert_eq!(um["defaultRouteAction"]["faultInjectionPolicy"]["abort"]["httpStatus"], 404);

    // HTTPS: the certificate from the Secret, named by its content.
    let proxy443 = lb.proxy("443-443");
    assert_eq!(proxy443["kind"], "compute#targetHttpsProxy");
    let certs: Vec<String> = proxy443["sslCertificates"].as_array().unwrap().iter().map(|c| last_segment(c.as_str().unwrap())).collect();
    assert_eq!(certs.len(), 1, "{certs:?}");
    let cert1 = certs[0].clone();
    let cert = gce(&g, "GET", proxy443["sslCertificates"][0].as_str().unwrap()).unwrap();
    assert_eq!(cert["type"], "SELF_MANAGED");
    assert!(cert["subjectAlternativeNames"].to_string().contains("shop.example.com"), "{cert}");
    let sha = serde_json::from_str::<Value>(cert["description"].as_str().unwrap()).unwrap()["cloudgate"]["certificateSha256"].as_str().unwrap().to_string();
    assert!(cert1.contains(&sha[..16]), "certificate {cert1} is named by its content ({sha})");

    // Every resource: owned (labels or description name the cluster and the Gateway), a valid
    // GCE name; the firewall opens the endpoint port to Google's health checkers.
    let owned = owned_resources(&g, &cluster).expect("list Compute resources");
    let gateway_label = format!("{ns}_gw");
    for (coll, r) in &owned {
        let name = r["name"].as_str().unwrap();
        assert!(valid_gce_name(name), "{coll} {name:?} is not a valid GCE name");
        match r.get("labels") {
            Some(l) if coll == "addresses" || coll == "forwardingRules" => {
                assert_eq!(l["cloudgate-cluster"], cluster.as_str(), "{coll} {name} labels {l}");
                assert_eq!(l["cloudgate-gateway"], gateway_label.as_str(), "{coll} {name} labels {l}");
                assert_eq!(l["cloudgate-managed-by"], "cloudgate", "{coll} {name} labels {l}");
            }
            _ => {
                let d: Value = serde_json::from_str(r["description"].as_str().unwrap_or("{}")).unwrap_or_default();
                assert_eq!(d["cloudgate"]["cluster"], cluster.as_str(), "{coll} {name}: {}", r["description"]);
                assert_eq!(d["cloudgate"]["gateway"], format!("{ns}/gw"), "{coll} {name}");
            }
        }
    }
    let count = |c: &str| owned.iter().filter(|(coll, _)| coll == c).count();
    assert_eq!(count("forwardingRules"), 2);
    assert_eq!(count("addresses"), 1);
    assert_eq!(count("urlMaps"), 2);
    assert_eq!((count("targetHttpProxies"), count("targetHttpsProxies")), (1, 1));
    assert_eq!(count("sslCertificates"), 1);
    assert_eq!(count("backendServices"), 5, "api-v1, api-v2, web, rpc and the backend-less one");
    assert_eq!(count("healthChecks"), 4);
    let negs: usize = lb.negs.values().map(Vec::len).sum();
    assert_eq!(count("networkEndpointGroups"), negs);
    let fw: Vec<&Value> = owned.iter().filter(|(c, _)| c == "firewalls").map(|(_, r)| r).collect();
    assert_eq!(fw.len(), 1);
    let mut ranges: Vec<&str> = fw[0]["sourceRanges"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    ranges.sort();
    assert_eq!(ranges, ["130.211.0.0/22", "35.191.0.0/16"]);
    assert_eq!(fw[0]["allowed"], json!([{"IPProtocol": "tcp", "ports": ["8080"]}]));
    assert_eq!(fw[0]["direction"], "INGRESS");
    // The provider's call counter reaches /metrics.
    let inserts = ctl.metric("cloudgate_cloud_api_calls_total", &["insert", "outcome=\"ok\""]);
    assert!(inserts >= owned.len() as f64, "Compute insert calls on /metrics: {inserts}\n{}", ctl.metrics());
    settle(&ctl).await;

    step("weight change 80/20 -> 50/50: one URL map update");
    let mark = call_log(&g).len();
    Api::<DynamicObject>::namespaced_with(g.kube.clone(), &ns, &gvk("HTTPRoute"))
        .patch("store", &PatchParams::default(), &Patch::Merge(json!({"spec": store_spec(50, 50)})))
        .await
        .expect("patch route");
    poll("the split at 50/50", Duration::from_secs(60), || async {
        let lb = lb_at(&g, &ip)?;
        let split = rule_where(lb.url_map("443-443"), "the split", |r| weights(r).len() == 2)?;
        let w = weights(&split);
        if w == [(bs_v1.clone(), 50), (bs_v2.clone(), 50)] { Ok(()) } else { Err(format!("{w:?}")) }
    })
    .await;
    settle(&ctl).await;
    assert_eq!(mutations_since(&g, mark), ["compute.urlMaps.update"]);

    step("weight change 50/50 -> 70/30 meeting a stale fingerprint: 412, re-read, updated once more");
    // What GCE answers when the URL map changed between our read and our write.
    gce_with(&g, "POST", "/_ground/faults", Some(json!({"method": "compute.urlMaps.update", "httpStatus": 412, "reason": "conditionNotMet",
        "message": "Invalid fingerprint.", "count": 1})))
    .expect("inject a 412");
    let mark = call_log(&g).len();
    Api::<DynamicObject>::namespaced_with(g.kube.clone(), &ns, &gvk("HTTPRoute"))
        .patch("store", &PatchParams::default(), &Patch::Merge(json!({"spec": store_spec(70, 30)})))
        .await
        .expect("patch route");
    // Only the call log is read until the update went through, so every URL map call in it
    // is the controller's.
    let url_map_calls = poll("a successful URL map update", Duration::from_secs(60), || async {
        let calls: Vec<(String, u64)> =
            calls_with_status(&g).into_iter().skip(mark).filter(|(m, _)| m.starts_with("compute.urlMaps.") && !m.ends_with(".list")).collect();
        if calls.contains(&("compute.urlMaps.update".to_string(), 200)) { Ok(calls) } else { Err(format!("{calls:?}")) }
    })
    .await;
    assert_eq!(
        url_map_calls,
        [("compute.urlMaps.update".to_string(), 412), ("compute.urlMaps.get".to_string(), 200), ("compute.urlMaps.update".to_string(), 200)]
    );
    let lb = lb_at(&g, &ip).unwrap();
    let split = rule_where(lb.url_map("443-443"), "the split", |r| weights(r).len() == 2).unwrap();
    assert_eq!(weights(&split), [(bs_v1.clone(), 70), (bs_v2.clone(), 30)]);
    settle(&ctl).await;
    assert_eq!(mutations_since(&g, mark), ["compute.urlMaps.update", "compute.urlMaps.update"]);

    step("scaling api-v1 2 -> 3: one attach; 3 -> 2: one detach");
    for (replicas, call) in [(3, "compute.networkEndpointGroups.attachNetworkEndpoints"), (2, "compute.networkEndpointGroups.detachNetworkEndpoints")] {
        let mark = call_log(&g).len();
        scale(&g.kube, &ns, "api-v1", replicas).await;
        let want = want_endpoints(&g, &ns, "api-v1", replicas as usize).await;
        poll(&format!("{replicas} endpoints in api-v1's NEG"), Duration::from_secs(60), || async {
            let got = lb_at(&g, &ip)?.endpoints.get(&bs_v1).cloned().unwrap_or_default();
            if got == want { Ok(()) } else { Err(format!("{got:?} != {want:?}")) }
        })
        .await;
        settle(&ctl).await;
        assert_eq!(mutations_since(&g, mark), [call]);
    }

    step("rotating the Secret: new certificate, proxy moved, old one deleted after");
    let mark = call_log(&g).len();
    Api::<Secret>::namespaced(g.kube.clone(), &ns)
        .patch("shop-tls", &PatchParams::default(), &Patch::Merge(json!({"stringData": tls_data(2)})))
        .await
        .expect("rotate secret");
    let cert2 = poll("the proxy on a new certificate, the old one gone", Duration::from_secs(60), || async {
        let lb = lb_at(&g, &ip)?;
        let certs: Vec<String> = lb.proxy("443-443")["sslCertificates"].as_array().unwrap().iter().map(|c| last_segment(c.as_str().unwrap())).collect();
        let owned_certs: Vec<String> =
            owned_resources(&g, &cluster)?.into_iter().filter(|(c, _)| c == "sslCertificates").map(|(_, r)| r["name"].as_str().unwrap().to_string()).collect();
        match (certs.as_slice(), owned_certs.as_slice()) {
            ([new], [only]) if *new != cert1 && new == only => Ok(new.clone()),
            _ => Err(format!("proxy {certs:?}, certificates {owned_certs:?}")),
        }
    })
    .await;
    settle(&ctl).await;
    assert_eq!(
        mutations_since(&g, mark),
        ["compute.sslCertificates.insert", "compute.targetHttpsProxies.setSslCertificates", "compute.sslCertificates.delete"],
        "create, move the proxy, then delete (each operation DONE before the next call)"
    );

    step("gcloud lists what the controller reports");
    if let Some(gc) = Gcloud::new(&g) {
        let gw = get_gateway(&g.kube, &ns, "gw").await.unwrap();
        let reported: BTreeSet<String> = gw.status.unwrap().addresses.unwrap().into_iter().map(|a| a.value).collect();
        let rules: Vec<Value> = gc.json(&["compute", "forwarding-rules", "list", "--global"]).as_array().unwrap().iter()
            .filter(|r| r["labels"]["cloudgate-cluster"] == cluster.as_str())
            .cloned()
            .collect();
        let ips: BTreeSet<String> = rules.iter().map(|r| r["IPAddress"].as_str().unwrap().to_string()).collect();
        assert_eq!(ips, reported, "forwarding rule IPs vs Gateway status.addresses");
        let ports: BTreeSet<&str> = rules.iter().map(|r| r["portRange"].as_str().unwrap()).collect();
        assert_eq!(ports, BTreeSet::from(["443-443", "80-80"]));
        let certs: Vec<String> = gc.json(&["compute", "ssl-certificates", "list", "--global"]).as_array().unwrap().iter()
            .filter(|c| c["description"].as_str().unwrap_or_default().contains(&cluster))
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(certs, [cert2.clone()]);
        let um_name = last_segment(lb.proxy("443-443")["urlMap"].as_str().unwrap());
        let um = gc.json(&["compute", "url-maps", "describe", &um_name, "--global"]);
        let split = rule_where(&um, "the split", |r| weights(r).len() == 2).unwrap();
        assert_eq!(weights(&split), [(bs_v1.clone(), 70), (bs_v2.clone(), 30)], "the route's weights");
        // Each Service's NEGs hold exactly its ready pods (what the EndpointSlices say).
        for (bs, app, replicas) in [(&bs_v1, "api-v1", 2), (&bs_v2, "api-v2", 1), (&bs_web, "web", 1)] {
            let want: BTreeSet<String> = pod_ips(&g.kube, &ns, app, replicas).await;
            let mut got = BTreeSet::new();
            for (zone, neg) in &lb.negs[bs] {
                for e in gc.json(&["compute", "network-endpoint-groups", "list-network-endpoints", neg, "--zone", zone]).as_array().unwrap() {
                    got.insert(e["networkEndpoint"]["ipAddress"].as_str().unwrap().to_string());
                }
            }
            assert_eq!(got, want, "{app}: gcloud's NEG endpoints vs the pods");
        }
    }

    step("delete the Gateway: nothing left, in dependency order, finalizer removed");
    let owned = owned_resources(&g, &cluster).expect("list Compute resources");
    let mark = call_log(&g).len();
    delete_gateway_leaving_nothing(&g, &ns, &cluster).await;
    let log: Vec<String> = call_log(&g).into_iter().skip(mark).collect();
    let deletes: Vec<&String> = log.iter().filter(|m| is_mutating(m)).collect();
    assert!(deletes.iter().all(|m| m.ends_with(".delete")), "{deletes:?}");
    assert_eq!(deletes.len(), owned.len(), "one delete per resource: {deletes:?}");
    let order = [
        "forwardingRules",
        "targetHttpsProxies|targetHttpProxies",
        "urlMaps",
        "backendServices",
        "networkEndpointGroups",
        "healthChecks",
        "sslCertificates",
        "addresses",
        "firewalls",
    ];
    let rank = |m: &str| {
        let coll = m.trim_start_matches("compute.").trim_end_matches(".delete");
        let coll = coll.strip_prefix("global").map(|c| c[..1].to_ascii_lowercase() + &c[1..]).unwrap_or(coll.to_string());
        order.iter().position(|o| o.split('|').any(|c| c == coll)).unwrap_or_else(|| panic!("unexpected call {m}"))
    };
    let ranks: Vec<usize> = deletes.iter().map(|m| rank(m)).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "deletes out of dependency order: {deletes:?}");
    // Each operation costs one `operations.wait` (answered when it is DONE), not a poll loop.
    let waits: Vec<&String> = log.iter().filter(|m| m.contains("Operations.")).collect();
    assert!(waits.iter().all(|m| m.ends_with("Operations.wait")), "operations read otherwise than by wait: {waits:?}");
    assert!(waits.len() <= deletes.len(), "{} operation calls for {} deletes", waits.len(), deletes.len());
    schema_clean_and_cleanup(&g, &ns, &class_name, &node_names).await;
    drop(ctl);
}

/// The regional internal flavour through the controller (`--scheme regional-internal-managed`):
/// regional collections, an internal address in the subnetwork, and the regular expressions
/// this flavour can express (which the global flavour reports as unsupported) accepted and
/// written as `regexMatch`; deletion leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regional_internal_flavour_on_gcp() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let cluster = unique("e2e-gcp-ilb");
    let controller_name = format!("cloudgate.io/{}", unique("gcp-ilb"));
    let class_name = unique("cg-gcp-ilb");
    let pool = unique("gce-ilb");
    let ns = namespace(&g.kube, "e2e-gcp-ilb").await;
    let node_names = gce_nodes(&g, &pool).await;
    let ctl = Controller::start(
        &Common { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, resync: "5s" },
        &["--provider", "gcp", "--gcp-project", &g.project, "--region", &g.region, "--scheme", "regional-internal-managed", "--vpc-id", "default", "--subnets", "default"],
    );

    step("(ilb) provision with regex matches");
    app(&g.kube, &ns, "web", 2, &pool, None).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "re"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [
            {"matches": [{"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}, "headers": [{"type": "RegularExpression", "name": "x-user", "value": "u-.*"}]}],
                "backendRefs": [{"name": "web", "port": 80}]},
            {"backendRefs": [{"name": "web", "port": 80}]}]}}))
    .await;
    ctl.wait_ready().await;
    let ip = wait_programmed(&g.kube, &ns, "gw").await;
    wait_route_condition(&g.kube, &ns, "re", &controller_name, "Accepted", "True", "Accepted").await;
    let conds = route_conditions(&get_route(&g.kube, &ns, "re").await, &controller_name);
    assert!(!conds.iter().any(|(t, s, _, _)| t == "PartiallyInvalid" && s == "True"), "this flavour expresses regexes: {conds:?}");

    let regional = |coll: &str| format!("/compute/v1/projects/{}/regions/{}/{coll}", g.project, g.region);
    let want = want_endpoints(&g, &ns, "web", 2).await;
    poll("(ilb) regional forwarding rule, URL map with regexMatch, NEGs with the pods", Duration::from_secs(90), || async {
        let frs = items(&gce(&g, "GET", &regional("forwardingRules"))?);
        let fr = frs.iter().find(|f| f["IPAddress"] == ip.as_str()).ok_or("no regional forwarding rule at the Gateway's IP")?;
        if fr["loadBalancingScheme"] != "INTERNAL_MANAGED" || last_segment(fr["subnetwork"].as_str().unwrap_or_default()) != "default" {
            return Err(format!("{fr}"));
        }
        let addr = items(&gce(&g, "GET", &regional("addresses"))?).into_iter().find(|a| a["address"] == ip.as_str()).ok_or("no address")?;
        if addr["addressType"] != "INTERNAL" || addr["purpose"] != "SHARED_LOADBALANCER_VIP" {
            return Err(format!("{addr}"));
        }
        let proxy = gce(&g, "GET", fr["target"].as_str().unwrap_or_default())?;
        let um = gce(&g, "GET", proxy["urlMap"].as_str().unwrap_or_default())?;
        let re = rule_where(&um, "the regex rule", |r| r["matchRules"][0].get("regexMatch").is_some())?;
        if re["matchRules"] != json!([{"regexMatch": "/v[0-9]+/.*", "headerMatches": [{"headerName": "x-user", "regexMatch": "u-.*"}]}]) {
            return Err(format!("{}", re["matchRules"]));
        }
        let (bs, _) = weights(&re).into_iter().next().ok_or("no backend")?;
        let bs = gce(&g, "GET", &format!("{}/{bs}", regional("backendServices")))?;
        if bs["loadBalancingScheme"] != "INTERNAL_MANAGED" {
            return Err(format!("backend service scheme {}", bs["loadBalancingScheme"]));
        }
        let mut got = BTreeSet::new();
        for b in bs["backends"].as_array().cloned().unwrap_or_default() {
            let neg = b["group"].as_str().unwrap_or_default();
            let zone = last_segment(gce(&g, "GET", neg)?["zone"].as_str().unwrap_or_default());
            for e in items(&gce(&g, "POST", &format!("{neg}/listNetworkEndpoints"))?) {
                let ne = &e["networkEndpoint"];
                got.insert((zone.clone(), ne["ipAddress"].as_str().unwrap_or_default().to_string(), last_segment(ne["instance"].as_str().unwrap_or_default())));
            }
        }
        if got == want { Ok(()) } else { Err(format!("{got:?} != {want:?}")) }
    })
    .await;
    let owned = owned_resources(&g, &cluster).expect("list Compute resources");
    assert!(owned.iter().all(|(_, r)| valid_gce_name(r["name"].as_str().unwrap())), "{owned:?}");

    step("(ilb) delete the Gateway: nothing left");
    delete_gateway_leaving_nothing(&g, &ns, &cluster).await;
    schema_clean_and_cleanup(&g, &ns, &class_name, &node_names).await;
    drop(ctl);
}

/// A new Gateway's status does not wait for the cloud: while its first operation is still held
/// (the fault proxy keeps the first global `operations.wait` for 6 s, then drops the connection
/// and the wait is sent again), the Gateway is already `Accepted=True` with
/// `Programmed=False Pending` for its generation, saying it is provisioning; then `Programmed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_gateway_is_accepted_while_its_load_balancer_is_made() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let control = env("FAULTS_CONTROL_URL");
    let cluster = unique("e2e-gcp-early");
    let controller_name = format!("cloudgate.io/{}", unique("gcp-early"));
    let class_name = unique("cg-gcp-early");
    let ns = namespace(&g.kube, "e2e-gcp-early").await;
    let wait_op = "gce:POST /compute/v1/projects/{project}/global/operations/{operation}/wait";
    gce_request(&control, "POST", "/_faults/reset", None).expect("reset the fault proxy");
    gce_request(&control, "POST", "/_faults/config", Some(&json!({
        "rates": {"throttle": 0.0, "error5xx": 0.0, "timeout": 1.0, "drop": 0.0},
        "operations": [wait_op], "budget": 1, "hold_seconds": 6})))
    .expect("configure the fault proxy");
    let ctl = Controller::start_with_env(
        &Common { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, resync: "1h" },
        &["--provider", "gcp", "--gcp-project", &g.project, "--region", &g.region],
        &[("GCE_ENDPOINT", &env("FAULTS_GCE_ENDPOINT"))],
    );
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    ctl.wait_ready().await;

    step("(early) Accepted, Programmed=False Pending while the first operation is held");
    let message = poll("Accepted and provisioning", Duration::from_secs(30), || async {
        let gw = get_gateway(&g.kube, &ns, "gw").await.ok_or("no Gateway")?;
        let conds = gw.status.and_then(|s| s.conditions).unwrap_or_default();
        match (cond(&conds, "Accepted"), cond(&conds, "Programmed")) {
            (Some(a), Some(p)) if a.status == "True" && p.status == "False" && p.reason == "Pending" && p.observed_generation == Some(1) => Ok(p.message.clone()),
            _ => Err(format!("{conds:?}")),
        }
    })
    .await;
    assert!(message.starts_with("Provisioning: applying"), "{message}");
    let ip = wait_programmed(&g.kube, &ns, "gw").await;
    assert!(!ip.is_empty());
    // The hold did happen (and cost only time: the wait was sent again).
    let stats = gce_request(&control, "GET", "/_faults/stats", None).expect("fault stats");
    gce_request(&control, "POST", "/_faults/reset", None).expect("reset the fault proxy");
    assert_eq!(stats["faults"]["timeout"], json!(1), "{stats}");

    delete_gateway_leaving_nothing(&g, &ns, &cluster).await;
    delete_namespace(&g.kube, &ns).await;
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    drop(ctl);
}
