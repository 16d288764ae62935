//! End to end on Google Cloud: the built `cloudgate controller --provider gcp` binary against
//! the local test ground (a real kube-apiserver with kwok nodes, and the Compute fake that checks
//! every request against Google's discovery document), checked with plain Compute REST reads:
//!
//! - GatewayClass + Gateway (HTTP listener) + HTTPRoute with two weighted backends become an
//!   address, a URL map with the weighted route, a target HTTP proxy, a forwarding rule, backend
//!   services and zonal `GCE_VM_IP_PORT` NEGs holding the pods' IPs, each endpoint on its
//!   pod's node as the VM instance (from the EndpointSlices' `nodeName`); Gateway Programmed=True
//!   with the forwarding rule's IP; route Accepted/ResolvedRefs at the current observedGeneration;
//! - scaling a Deployment attaches the new pod to its zone's NEG;
//! - deleting the Gateway removes every Compute resource and the finalizer.
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
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
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

// --- tiny HTTP client (ops endpoint, moto's /_ground API) --------------------------------------

/// A Compute API call on the fake; `path` is absolute or a full URL on the fake (selfLinks).
fn gce(g: &Ground, method: &str, path: &str) -> Result<Value, String> {
    gce_request(&g.gce, method, path, None)
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

// --- Kubernetes objects ------------------------------------------------------------------------

/// A Deployment pinned to this test's GCE-zoned kwok nodes (label `pool`, tolerating their
/// taint) and a Service in front of it.
async fn app(client: &Client, ns: &str, name: &str, replicas: i32, pool: &str) {
    create(
        client,
        Some(ns),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"nodeSelector": {POOL_LABEL: pool},
                        "tolerations": [{"key": POOL_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
                        "containers": [{"name": "app", "image": "registry.invalid/cloudgate/e2e:never-pulled",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}}),
    )
    .await;
    service(client, ns, name).await;
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

// --- what Compute holds --------------------------------------------------------------------------

/// Every `(backend service URL, weight)` under `weightedBackendServices` anywhere in `v`.
fn weighted(v: &Value, out: &mut Vec<(String, i64)>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(ws)) = m.get("weightedBackendServices") {
                for w in ws {
                    out.push((w["backendService"].as_str().unwrap_or_default().to_string(), w["weight"].as_i64().unwrap_or(-1)));
                }
            }
            m.values().for_each(|x| weighted(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| weighted(x, out)),
        _ => {}
    }
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// What the load balancer at `ip` is made of, followed from its forwarding rule.
#[derive(Debug)]
struct Lb {
    port_range: String,
    /// (backend service name, weight) of the URL map's weighted route.
    weights: Vec<(String, i64)>,
    /// Per backend service name: its endpoints as (zone, ip, instance name).
    endpoints: BTreeMap<String, BTreeSet<(String, String, String)>>,
}

fn last_segment(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_string()
}

fn lb_at(g: &Ground, ip: &str) -> Result<Lb, String> {
    let frs = gce(g, "GET", &format!("/compute/v1/projects/{}/global/forwardingRules", g.project))?;
    let fr = items(&frs).into_iter().find(|f| f["IPAddress"] == ip).ok_or_else(|| format!("no forwarding rule at {ip}"))?;
    if fr["loadBalancingScheme"] != "EXTERNAL_MANAGED" {
        return Err(format!("forwarding rule scheme {}", fr["loadBalancingScheme"]));
    }
    let proxy = gce(g, "GET", fr["target"].as_str().ok_or("forwarding rule without target")?)?;
    if proxy["kind"] != "compute#targetHttpProxy" {
        return Err(format!("target {}", proxy["kind"]));
    }
    let url_map = gce(g, "GET", proxy["urlMap"].as_str().ok_or("proxy without URL map")?)?;
    let mut ws = Vec::new();
    weighted(&url_map, &mut ws);
    let mut endpoints = BTreeMap::new();
    for (bs_url, _) in &ws {
        let bs = gce(g, "GET", bs_url)?;
        let mut eps = BTreeSet::new();
        for b in bs["backends"].as_array().cloned().unwrap_or_default() {
            let neg_url = b["group"].as_str().unwrap_or_default();
            let neg = gce(g, "GET", neg_url)?;
            if neg["networkEndpointType"] != "GCE_VM_IP_PORT" {
                return Err(format!("NEG type {}", neg["networkEndpointType"]));
            }
            let zone = last_segment(neg["zone"].as_str().unwrap_or_default());
            let listed = gce(g, "POST", &format!("{neg_url}/listNetworkEndpoints"))?;
            for e in items(&listed) {
                let ne = &e["networkEndpoint"];
                eps.insert((zone.clone(), ne["ipAddress"].as_str().unwrap_or_default().to_string(), last_segment(ne["instance"].as_str().unwrap_or_default())));
            }
        }
        endpoints.insert(last_segment(bs_url), eps);
    }
    Ok(Lb {
        port_range: fr["portRange"].as_str().unwrap_or_default().to_string(),
        weights: ws.into_iter().map(|(u, w)| (last_segment(&u), w)).collect(),
        endpoints,
    })
}

/// Names of every Compute resource whose labels or description name `cluster`.
fn owned_resources(g: &Ground, cluster: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let p = &g.project;
    let mut lists: Vec<String> = ["addresses", "urlMaps", "backendServices", "healthChecks", "targetHttpProxies", "targetHttpsProxies", "forwardingRules", "sslCertificates", "firewalls"]
        .iter()
        .map(|k| format!("/compute/v1/projects/{p}/global/{k}"))
        .collect();
    lists.push(format!("/compute/v1/projects/{p}/aggregated/networkEndpointGroups"));
    for path in lists {
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
                out.push(format!("{path}: {}", r["name"]));
            }
        }
    }
    Ok(out)
}

// --- the scenario ------------------------------------------------------------------------------

fn route(backends: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["web.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backends}]}})
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

    step("provision: class, gateway, route with weighted backends");
    app(&g.kube, &ns, "web-a", 2, &pool).await;
    app(&g.kube, &ns, "web-b", 1, &pool).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    let r = create(&g.kube, Some(&ns), route(json!([{"name": "web-a", "port": 80, "weight": 80}, {"name": "web-b", "port": 80, "weight": 20}]))).await;
    ctl.wait_ready().await;
    let ip = wait_programmed(&g.kube, &ns, "gw").await;
    let gw = get_gateway(&g.kube, &ns, "gw").await.unwrap();
    assert!(gw.metadata.finalizers.iter().flatten().any(|f| f == "cloudgate.io/cloud-resources"), "finalizer: {:?}", gw.metadata.finalizers);
    let status = gw.status.unwrap();
    assert_eq!(cond(status.conditions.as_deref().unwrap(), "Accepted").unwrap().status, "True");
    assert_eq!(status.addresses.as_ref().unwrap()[0].r#type.as_deref(), Some("IPAddress"));
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "address {ip}");
    let listener = &status.listeners.as_ref().unwrap()[0];
    assert_eq!(listener.attached_routes, 1);
    assert_eq!(cond(&listener.conditions, "Programmed").unwrap().status, "True");
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "Accepted", "True", "Accepted").await;
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "ResolvedRefs", "True", "ResolvedRefs").await;
    assert_eq!(get_route(&g.kube, &ns, "web").await.metadata.generation, r.metadata.generation);

    // Endpoints: (zone, ip, instance) from the pods and their nodes.
    let want = |ips: &BTreeSet<String>, nodes: &BTreeMap<String, String>| -> BTreeSet<(String, String, String)> {
        ips.iter()
            .map(|ip| {
                let node = nodes[ip].clone();
                let zone = format!("{}-{}", g.region, node.rsplit('-').next().unwrap());
                (zone, ip.clone(), node)
            })
            .collect()
    };
    let ips_a = pod_ips(&g.kube, &ns, "web-a", 2).await;
    let ips_b = pod_ips(&g.kube, &ns, "web-b", 1).await;
    let want_a = want(&ips_a, &pod_nodes(&g.kube, &ns, "web-a").await);
    let want_b = want(&ips_b, &pod_nodes(&g.kube, &ns, "web-b").await);
    let (bs_a, bs_b) = poll("URL map with the weighted route; NEGs with the pods on their nodes", Duration::from_secs(90), || async {
        let lb = lb_at(&g, &ip)?;
        if lb.port_range != "80-80" {
            return Err(format!("port range {}", lb.port_range));
        }
        let a = lb.weights.iter().find(|(bs, w)| *w == 80 && lb.endpoints.get(bs) == Some(&want_a));
        let b = lb.weights.iter().find(|(bs, w)| *w == 20 && lb.endpoints.get(bs) == Some(&want_b));
        // The URL map's default (requests no rule matches) is the Gateway's no-backend service.
        let routed: BTreeSet<&(String, i64)> = lb.weights.iter().filter(|(bs, _)| !bs.contains("-no-backend-")).collect();
        match (a, b, routed.len()) {
            (Some(a), Some(b), 2) => Ok((a.0.clone(), b.0.clone())),
            _ => Err(format!("{lb:?}; want web-a {want_a:?} at 80 and web-b {want_b:?} at 20")),
        }
    })
    .await;
    assert_ne!(bs_a, bs_b);
    // The provider's call counter reaches /metrics.
    let inserts = ctl.metric("cloudgate_cloud_api_calls_total", &["insert", "outcome=\"ok\""]);
    assert!(inserts >= 5.0, "Compute insert calls on /metrics: {inserts}\n{}", ctl.metrics());

    step("scaling web-a 2 -> 3");
    scale(&g.kube, &ns, "web-a", 3).await;
    let ips_a = pod_ips(&g.kube, &ns, "web-a", 3).await;
    let want_a = want(&ips_a, &pod_nodes(&g.kube, &ns, "web-a").await);
    poll("3 endpoints in web-a's NEGs", Duration::from_secs(60), || async {
        let lb = lb_at(&g, &ip)?;
        let got = lb.endpoints.get(&bs_a).cloned().unwrap_or_default();
        if got == want_a { Ok(()) } else { Err(format!("{got:?} != {want_a:?}")) }
    })
    .await;

    step("delete the Gateway: nothing left, finalizer removed");
    let owned = owned_resources(&g, &cluster).expect("list Compute resources");
    assert!(owned.len() >= 13, "the ownership check sees what the Gateway has: {owned:?}");
    Api::<Gateway>::namespaced(g.kube.clone(), &ns).delete("gw", &DeleteParams::default()).await.expect("delete gateway");
    poll("Gateway finalized and gone", Duration::from_secs(120), || async {
        match get_gateway(&g.kube, &ns, "gw").await {
            None => Ok(()),
            Some(gw) => Err(format!("finalizers {:?}", gw.metadata.finalizers)),
        }
    })
    .await;
    let left = owned_resources(&g, &cluster).expect("list Compute resources");
    assert!(left.is_empty(), "Compute resources left after deleting the Gateway: {left:?}");
    // Every request the controller made (and every answer) conformed to compute.v1.json.
    let v = gce(&g, "GET", "/_ground/validation").expect("validation report");
    assert_eq!(v["failures"], json!([]), "the fake found requests or responses that break compute.v1.json");

    delete_namespace(&g.kube, &ns).await;
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    for n in &node_names {
        let _ = Api::<Node>::all(g.kube.clone()).delete(n, &DeleteParams::default()).await;
    }
    drop(ctl);
}
