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

mod support;
use support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cloudgate_provider::tags;
use gateway_api::experimental::gateways::Gateway;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

// --- environment ----------------------------------------------------------------------------

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

struct Opts<'a> {
    cluster_id: &'a str,
    controller_name: &'a str,
    lease: &'a str,
    vpc: &'a str,
    resync: &'a str,
}

fn start(o: &Opts<'_>) -> Controller {
    Controller::start(
        &Common { cluster_id: o.cluster_id, controller_name: o.controller_name, lease: o.lease, resync: o.resync },
        &["--provider", "aws-lattice", "--vpc-id", o.vpc],
    )
}

// --- Kubernetes objects ------------------------------------------------------------------------

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
        arns.extend(access_log_subscriptions(g, id).await?.into_iter().map(|(arn, _)| arn));
    }
    for s in all!(c.list_services()) {
        arns.push(s.arn().unwrap_or_default().to_string());
        let sid = s.id().unwrap_or_default();
        arns.extend(access_log_subscriptions(g, sid).await?.into_iter().map(|(arn, _)| arn));
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
    ensure_cloudgate_crds(&g.kube).await;
    let ctl = start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, vpc: &vpc, resync: "5s" });

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
    poll("the route's own Lattice DNS name in its Accepted message", Duration::from_secs(30), || async {
        let route = get_route(&g.kube, &ns, "web").await;
        let parents = route.data.pointer("/status/parents").and_then(Value::as_array).cloned().unwrap_or_default();
        let msg = parents
            .iter()
            .filter(|p| p["controllerName"] == controller_name.as_str())
            .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
            .find(|c| c["type"] == "Accepted")
            .and_then(|c| c["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        if msg.contains(&format!("Reachable at {dns}")) { Ok(()) } else { Err(msg) }
    })
    .await;

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
    reset_calls(&g);
    scale(&g.kube, &ns, "web-a", 3).await;
    let want = pod_ips(&g.kube, &ns, "web-a", 3).await;
    poll("3 targets in web-a's target group", Duration::from_secs(60), || async {
        let t = targets(&g, &tg_a).await?;
        if t == want { Ok(()) } else { Err(format!("{t:?} != {want:?}")) }
    })
    .await;
    assert_eq!(targets(&g, &tg_b).await.unwrap(), ips_b, "the other target group is untouched");
    let calls = mutating_lattice_calls(&g);
    assert!(!calls.is_empty() && calls.iter().all(|c| c == "RegisterTargets"), "an endpoint change only registers targets: {calls:?}");

    step("health check policies: one applied to web-a's target group, one Lattice cannot do");
    let policies: Api<DynamicObject> = Api::namespaced_with(
        g.kube.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk("gateway.cloudgate.io", "v1alpha1", "HealthCheckPolicy"), "healthcheckpolicies"),
    );
    for (name, svc, extra) in [("hc-a", "web-a", json!({"path": "/healthz", "intervalSeconds": 10, "matcher": {"httpCodes": "200-299"}})), ("hc-b", "web-b", json!({"protocol": "GRPC"}))] {
        let mut spec = json!({"targetRefs": [{"group": "", "kind": "Service", "name": svc}]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let obj: DynamicObject = serde_json::from_value(json!({"apiVersion": "gateway.cloudgate.io/v1alpha1", "kind": "HealthCheckPolicy", "metadata": {"name": name}, "spec": spec})).unwrap();
        policies.create(&Default::default(), &obj).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    let before_b = tg_health(&g, &tg_b).await.unwrap();
    poll("web-a's target group checks /healthz every 10 s", Duration::from_secs(60), || async {
        let got = tg_health(&g, &tg_a).await?;
        if got == (Some("/healthz".to_string()), Some(10)) { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    poll("hc-a Accepted on the Gateway", Duration::from_secs(30), || async {
        let v = policy_accepted(&policies, "hc-a", &controller_name).await?;
        if v == ("True".to_string(), "Accepted".to_string()) { Ok(()) } else { Err(format!("{v:?}")) }
    })
    .await;
    poll("hc-b not accepted: Lattice does not check over gRPC", Duration::from_secs(30), || async {
        let v = policy_accepted(&policies, "hc-b", &controller_name).await?;
        if v == ("False".to_string(), "Invalid".to_string()) { Ok(()) } else { Err(format!("{v:?}")) }
    })
    .await;
    assert_eq!(tg_health(&g, &tg_b).await.unwrap(), before_b, "a policy the provider cannot apply changes nothing");

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
    wait_gateway_gone(&g.kube, &ns, "gw").await;
    let left = owned_resources(&g, &cluster).await.expect("list owned");
    assert!(left.is_empty(), "Lattice resources left after deleting the Gateway: {left:?}");

    delete_namespace(&g.kube, &ns).await;
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    drop(ctl);
}

/// The Lattice service networks (ids) the Lattice service of `dns` is associated with.
async fn networks_of(g: &Ground, dns: &str) -> Result<Vec<String>, String> {
    Ok(service_by_dns(g, dns).await?.networks)
}

/// A target group's health check path and interval, as Lattice has it.
async fn tg_health(g: &Ground, tg: &str) -> Result<(Option<String>, Option<i32>), String> {
    let got = g.cloud.client().get_target_group().target_group_identifier(tg).send().await.map_err(|e| format!("{e:?}"))?;
    let hc = got.config().and_then(|c| c.health_check()).cloned().ok_or("no health check")?;
    Ok((hc.path().map(str::to_string), hc.health_check_interval_seconds()))
}

/// Status and reason of the policy's Accepted condition in our ancestor entry for Gateway `gw`.
async fn policy_accepted(policies: &Api<DynamicObject>, name: &str, controller_name: &str) -> Result<(String, String), String> {
    let p = policies.get(name).await.map_err(|e| e.to_string())?;
    let ancestors = p.data.pointer("/status/ancestors").and_then(Value::as_array).cloned().unwrap_or_default();
    let mine = ancestors
        .iter()
        .find(|a| a["controllerName"] == controller_name && a["ancestorRef"]["name"] == "gw")
        .ok_or(format!("no ancestor entry: {ancestors:?}"))?;
    let c = mine["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted")).cloned().ok_or("no Accepted")?;
    Ok((c["status"].as_str().unwrap_or_default().to_string(), c["reason"].as_str().unwrap_or_default().to_string()))
}

fn parameters_api(g: &Ground) -> Api<DynamicObject> {
    // The plural is not the kind's English plural, so it is spelled out.
    let gvk = kube::core::GroupVersionKind::gvk("gateway.cloudgate.io", "v1alpha1", "CloudGatewayParameters");
    Api::all_with(g.kube.clone(), &ApiResource::from_gvk_with_plural(&gvk, "cloudgatewayparameters"))
}

async fn create_parameters(g: &Ground, name: &str, spec: Value) {
    let obj = json!({"apiVersion": "gateway.cloudgate.io/v1alpha1", "kind": "CloudGatewayParameters", "metadata": {"name": name}, "spec": spec});
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    parameters_api(g).create(&Default::default(), &obj).await.unwrap_or_else(|e| panic!("create CloudGatewayParameters {name}: {e}"));
}

/// GatewayClass parameters choose the provider and where: a controller whose flags say
/// `--provider aws-alb` (and give no VPC) provisions a class whose CloudGatewayParameters say
/// aws-lattice, joining an existing service network it was told to adopt, and never deleting it.
/// Pointing the class at other parameters moves the Gateway: its services leave the adopted
/// network before a network of its own is built, so nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_parameters_choose_lattice_and_adopt_a_network() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    ensure_cloudgate_crds(&g.kube).await;
    let vpc = vpc_id();
    let cluster = unique("e2e-par");
    let controller_name = format!("cloudgate.io/{}", unique("par"));
    let class_name = unique("cg-par");
    let (adopt_params, own_params) = (unique("adopt"), unique("own"));
    let ns = namespace(&g.kube, "e2e-par").await;
    let ctl = Controller::start(&Common { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, resync: "5s" }, &["--provider", "aws-alb"]);

    step("a class naming parameters that do not exist yet is not accepted");
    create(&g.kube, None, class_with_parameters(&class_name, &controller_name, &adopt_params)).await;
    ctl.wait_ready().await;
    let c = wait_class(&g.kube, &class_name, "False", "InvalidParameters").await;
    let msg = c.data.pointer("/status/conditions").unwrap().to_string();
    assert!(msg.contains("not found"), "{msg}");

    step("the parameters appear: Lattice, adopting a network someone else made");
    let shared = unique("shared-net");
    let sn = g.cloud.client().create_service_network().name(&shared).send().await.expect("CreateServiceNetwork (foreign)");
    let shared_id = sn.id().unwrap().to_string();
    create_parameters(&g, &adopt_params, json!({"provider": "aws-lattice", "network": vpc, "serviceNetwork": {"mode": "Adopt", "name": shared}})).await;
    let c = wait_class(&g.kube, &class_name, "True", "Accepted").await;
    let features: Vec<String> =
        c.data.pointer("/status/supportedFeatures").and_then(Value::as_array).into_iter().flatten().filter_map(|f| f["name"].as_str().map(str::to_string)).collect();
    let want: Vec<String> = cloudgate_aws_lattice::capabilities().supported_features();
    assert_eq!(features, want, "the class lists what Lattice supports, not the flags' ALB");

    app(&g.kube, &ns, "web-a", 1).await;
    app(&g.kube, &ns, "web-b", 1).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    create(&g.kube, Some(&ns), web_route((50, 50))).await;
    let dns = wait_programmed(&g.kube, &ns, "gw").await;
    assert_eq!(networks_of(&g, &dns).await.unwrap(), vec![shared_id.clone()], "the route's service joins the adopted network");
    let owned = owned_resources(&g, &cluster).await.unwrap();
    assert!(owned.iter().all(|a| !a.contains(":servicenetwork/")), "no service network of our own when adopting: {owned:?}");

    step("the class moves to parameters with a network of its own: drained from the adopted one first");
    create_parameters(&g, &own_params, json!({"provider": "aws-lattice", "network": vpc})).await;
    let classes: Api<DynamicObject> = Api::all_with(g.kube.clone(), &gvk("GatewayClass"));
    classes
        .patch(&class_name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"parametersRef": {"name": own_params}}})))
        .await
        .expect("repoint the class");
    let moved_dns = poll("the route's service in a network of the Gateway's own", Duration::from_secs(90), || async {
        let gw = get_gateway(&g.kube, &ns, "gw").await.ok_or("gateway gone")?;
        let placement = gw.metadata.annotations.unwrap_or_default().get("cloudgate.io/placement").cloned().unwrap_or_default();
        if placement.contains(&shared) {
            return Err(format!("still placed in the adopted network: {placement}"));
        }
        let addr = gw.status.and_then(|s| s.addresses).unwrap_or_default().first().map(|a| a.value.clone()).ok_or("no address")?;
        let nets = networks_of(&g, &addr).await?;
        match nets.as_slice() {
            [n] if *n != shared_id => Ok(addr),
            _ => Err(format!("service networks {nets:?}")),
        }
    })
    .await;
    let in_shared = g.cloud.client().list_service_network_service_associations().service_network_identifier(&shared_id).send().await.expect("list");
    assert!(in_shared.items().is_empty(), "left behind in the adopted network: {:?}", in_shared.items());
    assert_ne!(moved_dns, "", "address after the move");

    step("delete the Gateway: ours gone, the adopted network stays");
    Api::<Gateway>::namespaced(g.kube.clone(), &ns).delete("gw", &DeleteParams::default()).await.expect("delete gateway");
    wait_gateway_gone(&g.kube, &ns, "gw").await;
    let left = owned_resources(&g, &cluster).await.expect("list owned");
    assert!(left.is_empty(), "Lattice resources left after deleting the Gateway: {left:?}");
    g.cloud.client().get_service_network().service_network_identifier(&shared_id).send().await.expect("the adopted network is never deleted");

    delete_namespace(&g.kube, &ns).await;
    let _ = classes.delete(&class_name, &DeleteParams::default()).await;
    for p in [&adopt_params, &own_params] {
        let _ = parameters_api(&g).delete(p, &DeleteParams::default()).await;
    }
    let _ = g.cloud.client().delete_service_network().service_network_identifier(&shared_id).send().await;
    drop(ctl);
}

/// One controller test case on Lattice: a fresh VPC id, cluster id, controllerName, GatewayClass
/// and namespace, and the controller running with them.
struct Case {
    g: Ground,
    cluster: String,
    controller_name: String,
    class_name: String,
    ns: String,
    ctl: Controller,
}

impl Case {
    async fn start(label: &str) -> Case {
        Case::start_with_resync(label, "5s").await
    }

    /// `resync`: the controller's drift resync; a long one leaves the controller to its watch
    /// events and its own requeues.
    async fn start_with_resync(label: &str, resync: &str) -> Case {
        let g = ground().await;
        // The controller discovers cloudgate's CRDs at startup: install them first.
        ensure_cloudgate_crds(&g.kube).await;
        let vpc = vpc_id();
        let cluster = unique(&format!("e2e-{label}"));
        let controller_name = format!("cloudgate.io/{}", unique(label));
        let class_name = unique(&format!("cg-{label}"));
        let ns = namespace(&g.kube, &format!("e2e-{label}")).await;
        let ctl = start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, vpc: &vpc, resync });
        create(&g.kube, None, class(&class_name, &controller_name)).await;
        Case { g, cluster, controller_name, class_name, ns, ctl }
    }

    /// Deletes Gateway `gw` and checks that nothing tagged for the case's cluster is left in
    /// Lattice; then removes the namespaces and the class.
    async fn finish(self, more_namespaces: &[&str]) {
        let g = &self.g;
        Api::<Gateway>::namespaced(g.kube.clone(), &self.ns).delete("gw", &DeleteParams::default()).await.expect("delete gateway");
        wait_gateway_gone(&g.kube, &self.ns, "gw").await;
        let left = owned_resources(g, &self.cluster).await.expect("list owned");
        assert!(left.is_empty(), "Lattice resources left after deleting the Gateway: {left:?}");
        for n in std::iter::once(self.ns.as_str()).chain(more_namespaces.iter().copied()) {
            delete_namespace(&g.kube, n).await;
        }
        let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&self.class_name, &DeleteParams::default()).await;
    }
}

/// Our route parent conditions on any route kind: (type, status, observedGeneration == generation, message).
async fn route_status(g: &Ground, ns: &str, kind: &str, name: &str, controller_name: &str) -> Result<Vec<(String, String, bool, String)>, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(g.kube.clone(), ns, &gvk(kind));
    let r = api.get(name).await.map_err(|e| e.to_string())?;
    let parents = r.data.pointer("/status/parents").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok(parents
        .iter()
        .filter(|p| p["controllerName"] == controller_name)
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let current = c["observedGeneration"].as_i64() == r.metadata.generation;
            (c["type"].as_str().unwrap_or_default().into(), c["status"].as_str().unwrap_or_default().into(), current, c["message"].as_str().unwrap_or_default().into())
        })
        .collect())
}

/// A GRPCRoute and a TLSRoute (passthrough) through the controller: each becomes its own Lattice
/// service (gRPC rule on the HTTP listener, TLS_PASSTHROUGH listener forwarding to a TCP target
/// group), both DNS names are in the Gateway's addresses, and each route is Accepted with
/// resolved refs at its current generation, naming its own DNS name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_tls_passthrough_routes_through_the_controller() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let case = Case::start("l4").await;
    let Case { g, controller_name, class_name, ns, ctl, .. } = &case;
    app(&g.kube, &ns, "greeter", 1).await;
    app(&g.kube, &ns, "db", 2).await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": class_name, "listeners": [
            {"name": "grpc", "port": 8080, "protocol": "HTTP", "hostname": "grpc.example.com"},
            {"name": "tls", "port": 443, "protocol": "TLS", "tls": {"mode": "Passthrough"}}]}}))
    .await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "greeter"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": "grpc"}],
            "rules": [{"matches": [{"method": {"service": "helloworld.Greeter", "method": "SayHello"}}], "backendRefs": [{"name": "greeter", "port": 80}]}]}}))
    .await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "TLSRoute", "metadata": {"name": "db"},
        "spec": {"parentRefs": [{"name": "gw", "sectionName": "tls"}], "hostnames": ["db.example.com"], "rules": [{"backendRefs": [{"name": "db", "port": 80}]}]}}))
    .await;
    ctl.wait_ready().await;
    wait_programmed(&g.kube, &ns, "gw").await;
    // On Lattice the Gateway is Programmed once its service network is; each route's service
    // (and DNS name) comes with the route's own provisioning, possibly a reconcile later.
    poll("one DNS name per route service", Duration::from_secs(60), || async {
        let a: Vec<String> = get_gateway(&g.kube, &ns, "gw").await.and_then(|g| g.status?.addresses).unwrap_or_default().into_iter().map(|a| a.value).collect();
        if a.len() == 2 { Ok(()) } else { Err(format!("{a:?}")) }
    })
    .await;
    let addresses: Vec<String> = get_gateway(&g.kube, &ns, "gw").await.unwrap().status.unwrap().addresses.unwrap().into_iter().map(|a| a.value).collect();

    for (kind, name) in [("GRPCRoute", "greeter"), ("TLSRoute", "db")] {
        poll(&format!("{kind} {name} accepted, refs resolved, with its DNS name"), Duration::from_secs(60), || async {
            let conds = route_status(&g, &ns, kind, name, &controller_name).await?;
            let ok = |t: &str| conds.iter().any(|(ty, s, current, _)| ty == t && s == "True" && *current);
            let named = conds.iter().any(|(ty, _, _, m)| ty == "Accepted" && addresses.iter().any(|a| m.contains(&format!("Reachable at {a}"))));
            if ok("Accepted") && ok("ResolvedRefs") && named { Ok(()) } else { Err(format!("{conds:?}")) }
        })
        .await;
    }
    let mut protocols = Vec::new();
    for a in &addresses {
        let s = service_by_dns(&g, a).await.expect("route service");
        protocols.extend(s.listeners);
    }
    protocols.sort();
    assert_eq!(protocols, vec![("HTTP".to_string(), 8080), ("TLS_PASSTHROUGH".to_string(), 443)]);

    case.finish(&[]).await;
}

/// Two HTTPRoutes with 60-character names, in two 60-character namespaces sharing a long prefix,
/// become two distinct Lattice services (names are readable prefix + hash, never truncated into
/// each other), both reported in the Gateway's addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_sharing_a_prefix_get_distinct_services() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let case = Case::start("long").await;
    let Case { g, class_name, ns, ctl, .. } = &case;
    let tail = unique("x").replace('-', "");
    let long = |i: u32| {
        let base = format!("team-payments-checkout-service-production-{tail}");
        format!("{base}{}-{i}", "a".repeat(58 - base.len()))
    };
    let (ns1, ns2, route) = (long(1), long(2), long(0));
    assert_eq!((ns1.len(), ns2.len(), route.len()), (60, 60, 60));
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": class_name, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}))
    .await;
    for n in [&ns1, &ns2] {
        create(&g.kube, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})).await;
        app(&g.kube, n, "web", 1).await;
        create(&g.kube, Some(n), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": route},
            "spec": {"parentRefs": [{"name": "gw", "namespace": ns}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}))
        .await;
    }
    ctl.wait_ready().await;
    let addresses = poll("two route services in the Gateway's addresses", Duration::from_secs(90), || async {
        let gw = get_gateway(&g.kube, &ns, "gw").await.ok_or("gateway missing")?;
        let a: BTreeSet<String> = gw.status.and_then(|s| s.addresses).unwrap_or_default().into_iter().map(|a| a.value).collect();
        if a.len() == 2 { Ok(a) } else { Err(format!("{a:?}")) }
    })
    .await;
    let mut ids = BTreeSet::new();
    for a in &addresses {
        ids.insert(service_by_dns(&g, a).await.expect("route service").id);
    }
    assert_eq!(ids.len(), 2, "two distinct Lattice services: {ids:?}");

    case.finish(&[&ns1, &ns2]).await;
}

/// Filters Lattice cannot express are reported on the route as the spec says, never dropped
/// silently: a route whose only rule rewrites URLs is `Accepted=False UnsupportedValue` and gets
/// no Lattice service; one with a rewrite rule beside a plain rule is accepted with
/// `PartiallyInvalid` naming the dropped rule, and only the plain rule is provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_filters_are_reported_on_the_route() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let case = Case::start("unsup").await;
    let Case { g, controller_name, class_name, ns, ctl, .. } = &case;
    app(&g.kube, &ns, "web", 1).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    let rewrite = json!({"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}],
        "backendRefs": [{"name": "web", "port": 80}]});
    let plain = json!({"backendRefs": [{"name": "web", "port": 80}]});
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "only-rewrite"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [rewrite.clone()]}}))
    .await;
    create(&g.kube, Some(&ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "mixed"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [rewrite, plain]}}))
    .await;
    ctl.wait_ready().await;
    let dns = wait_programmed(&g.kube, &ns, "gw").await;
    let cond = |conds: &[(String, String, bool, String)], t: &str| conds.iter().find(|(ty, _, current, _)| ty == t && *current).map(|(_, s, _, m)| (s.clone(), m.clone()));
    poll("only-rewrite not accepted, mixed partially invalid", Duration::from_secs(60), || async {
        let only = route_status(&g, &ns, "HTTPRoute", "only-rewrite", &controller_name).await?;
        let mixed = route_status(&g, &ns, "HTTPRoute", "mixed", &controller_name).await?;
        let only_ok = cond(&only, "Accepted").is_some_and(|(s, m)| s == "False" && m.contains("rule 0"));
        let mixed_ok = cond(&mixed, "Accepted").is_some_and(|(s, _)| s == "True")
            && cond(&mixed, "PartiallyInvalid").is_some_and(|(s, m)| s == "True" && m.starts_with("Dropped Rule(s): rule 0"));
        if only_ok && mixed_ok { Ok(()) } else { Err(format!("only-rewrite {only:?}; mixed {mixed:?}")) }
    })
    .await;
    let reasons = {
        let api: Api<DynamicObject> = Api::namespaced_with(g.kube.clone(), &ns, &gvk("HTTPRoute"));
        let r = api.get("only-rewrite").await.unwrap();
        r.data.pointer("/status/parents/0/conditions").cloned().unwrap_or_default().to_string()
    };
    assert!(reasons.contains("UnsupportedValue"), "{reasons}");
    let gw = get_gateway(&g.kube, &ns, "gw").await.unwrap();
    assert_eq!(gw.status.unwrap().addresses.unwrap().len(), 1, "only the mixed route has a service");
    let s = service_by_dns(&g, &dns).await.expect("mixed route's service");
    assert!(s.rules.len() == 1 && !s.rules[0].matches.contains("/old"), "only the plain rule, not the rewrite: {:?}", s.rules);

    case.finish(&[]).await;
}

/// A route moved from one Gateway to another: its service leaves the first Gateway's network and
/// a service is made in the second's; nothing of the first stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_moved_between_gateways_is_not_leaked() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let case = Case::start("move").await;
    let Case { g, class_name, controller_name, ns, ctl, .. } = &case;
    // Lattice associates a VPC with one service network: the second Gateway's class puts it in
    // another VPC.
    let (params, class2) = (unique("other-vpc"), unique("cg-move2"));
    create_parameters(g, &params, json!({"provider": "aws-lattice", "network": vpc_id()})).await;
    create(&g.kube, None, class_with_parameters(&class2, controller_name, &params)).await;
    app(&g.kube, ns, "web", 1).await;
    create(&g.kube, Some(ns), gateway("gw", class_name)).await;
    create(&g.kube, Some(ns), gateway("gw2", &class2)).await;
    create(&g.kube, Some(ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}))
    .await;
    ctl.wait_ready().await;
    let first = wait_programmed(&g.kube, ns, "gw").await;
    let first_id = service_by_dns(g, &first).await.expect("service under gw").id;

    let routes: Api<DynamicObject> = Api::namespaced_with(g.kube.clone(), ns, &gvk("HTTPRoute"));
    routes.patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"parentRefs": [{"name": "gw2"}]}}))).await.expect("move the route");
    let second = wait_programmed(&g.kube, ns, "gw2").await;
    poll("the first Gateway's service for the route gone", Duration::from_secs(60), || async {
        let svcs = all!(g.cloud.client().list_services());
        if svcs.iter().any(|s| s.id() == Some(first_id.as_str())) { Err(format!("{first_id} still there")) } else { Ok(()) }
    })
    .await;
    // The same reconcile that deleted the service writes gw's status next.
    poll("gw has no route left, so no address", Duration::from_secs(30), || async {
        let gw = get_gateway(&g.kube, ns, "gw").await.ok_or("gw gone")?;
        let a = gw.status.and_then(|s| s.addresses).unwrap_or_default();
        if a.is_empty() { Ok(()) } else { Err(format!("{a:?}")) }
    })
    .await;
    assert_ne!(service_by_dns(g, &second).await.expect("service under gw2").id, first_id);

    Api::<Gateway>::namespaced(g.kube.clone(), ns).delete("gw2", &DeleteParams::default()).await.expect("delete gw2");
    wait_gateway_gone(&g.kube, ns, "gw2").await;
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class2, &DeleteParams::default()).await;
    let _ = parameters_api(g).delete(&params, &DeleteParams::default()).await;
    case.finish(&[]).await;
}


/// The id of the service network tagged for `cluster`.
async fn our_service_network(g: &Ground, cluster: &str) -> Result<String, String> {
    for sn in all!(g.cloud.client().list_service_networks()) {
        if tags_of(g, sn.arn().unwrap_or_default()).await?.get(tags::CLUSTER).map(String::as_str) == Some(cluster) {
            return sn.id().map(str::to_string).ok_or("no id".into());
        }
    }
    Err(format!("no service network of cluster {cluster}"))
}

/// (ARN, destination) of every access log subscription of a service network or service.
async fn access_log_subscriptions(g: &Ground, resource: &str) -> Result<Vec<(String, String)>, String> {
    let out = g.cloud.client().list_access_log_subscriptions().resource_identifier(resource).send().await.map_err(|e| format!("{e:?}"))?;
    Ok(out.items().iter().map(|s| (s.arn().to_string(), s.destination_arn().to_string())).collect())
}

/// A service's auth type and IAM auth policy (None when it has none), as Lattice has them.
async fn service_auth(g: &Ground, id: &str) -> Result<(String, Option<Value>), String> {
    let c = g.cloud.client();
    let svc = c.get_service().service_identifier(id).send().await.map_err(|e| format!("{e:?}"))?;
    let auth = svc.auth_type().map(|a| a.as_str().to_string()).unwrap_or_default();
    let policy = match c.get_auth_policy().resource_identifier(id).send().await {
        Ok(p) => p.policy().map(|d| serde_json::from_str(d).map_err(|e| e.to_string())).transpose()?,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => None,
        Err(e) => return Err(format!("{e:?}")),
    };
    Ok((auth, policy))
}

fn lattice_policy_api(g: &Ground, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(g.kube.clone(), ns, &ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk("gateway.cloudgate.io", "v1alpha1", kind), plural))
}

/// LatticeAccessLogPolicy on the Gateway and LatticeAuthPolicy on a route, through the
/// controller: the service network gets an access log subscription to the destination, the
/// route's service gets auth type AWS_IAM with the policy document; both policies are Accepted
/// on the Gateway; in steady state nothing is written; switching the auth policy to NONE turns
/// IAM auth off and removes the document; deleting the access log policy removes the
/// subscription; nothing is left after the Gateway goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_and_auth_policies_on_lattice() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let case = Case::start("access").await;
    let Case { g, cluster, controller_name, class_name, ns, ctl, .. } = &case;
    app(&g.kube, ns, "web", 1).await;
    create(&g.kube, Some(ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": class_name, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}))
    .await;
    create(&g.kube, Some(ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}))
    .await;
    ctl.wait_ready().await;
    wait_programmed(&g.kube, ns, "gw").await;
    let dns = get_gateway(&g.kube, ns, "gw").await.unwrap().status.unwrap().addresses.unwrap()[0].value.clone();
    let svc_id = service_by_dns(g, &dns).await.expect("route service").id;
    let sn_id = our_service_network(g, cluster).await.expect("the Gateway's service network");
    assert!(access_log_subscriptions(g, &sn_id).await.unwrap().is_empty());
    assert_eq!(service_auth(g, &svc_id).await.unwrap(), ("NONE".to_string(), None));

    step("an access log policy on the Gateway and an auth policy on the route");
    let logs = lattice_policy_api(g, ns, "LatticeAccessLogPolicy", "latticeaccesslogpolicies");
    let auth = lattice_policy_api(g, ns, "LatticeAuthPolicy", "latticeauthpolicies");
    let destination = "arn:aws:logs:us-west-2:123456789012:log-group:/cloudgate/gw";
    let document = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    let obj = |kind: &str, name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "gateway.cloudgate.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})).unwrap()
    };
    logs.create(&Default::default(), &obj("LatticeAccessLogPolicy", "gw-logs", json!({
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}], "destinationArn": destination})))
        .await
        .expect("create access log policy");
    auth.create(&Default::default(), &obj("LatticeAuthPolicy", "web-auth", json!({
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"}], "authType": "AWS_IAM",
        "policy": serde_json::to_string_pretty(&document).unwrap()})))
        .await
        .expect("create auth policy");
    poll("the service network logs to the destination", Duration::from_secs(60), || async {
        let subs = access_log_subscriptions(g, &sn_id).await?;
        if subs.len() == 1 && subs[0].1 == destination { Ok(()) } else { Err(format!("{subs:?}")) }
    })
    .await;
    poll("the route's service takes IAM auth with the policy", Duration::from_secs(60), || async {
        let got = service_auth(g, &svc_id).await?;
        if got == ("AWS_IAM".to_string(), Some(document.clone())) { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    for (api, name) in [(&logs, "gw-logs"), (&auth, "web-auth")] {
        poll(&format!("{name} Accepted on the Gateway"), Duration::from_secs(30), || async {
            let v = policy_accepted(api, name, controller_name).await?;
            if v == ("True".to_string(), "Accepted".to_string()) { Ok(()) } else { Err(format!("{v:?}")) }
        })
        .await;
    }

    step("steady state: resyncs write nothing");
    reset_calls(g);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let calls = mutating_lattice_calls(g);
    assert!(calls.is_empty(), "steady state with access policies makes no mutating call: {calls:?}");

    step("the auth policy switches to NONE: IAM auth off, the document removed");
    auth.patch("web-auth", &PatchParams::default(), &Patch::Merge(json!({"spec": {"authType": "NONE", "policy": null}}))).await.expect("patch auth policy");
    poll("the route's service is back to NONE without a policy", Duration::from_secs(60), || async {
        let got = service_auth(g, &svc_id).await?;
        if got == ("NONE".to_string(), None) { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;

    step("the access log policy goes: so does the subscription");
    logs.delete("gw-logs", &DeleteParams::default()).await.expect("delete access log policy");
    poll("no access log subscription left", Duration::from_secs(60), || async {
        let subs = access_log_subscriptions(g, &sn_id).await?;
        if subs.is_empty() { Ok(()) } else { Err(format!("{subs:?}")) }
    })
    .await;

    case.finish(&[]).await;
}

/// Many HTTPRoutes on one Gateway: Lattice gives each route its own service, so one Gateway
/// holds far more DNS names than the 16 its `status.addresses` can list. Every route gets its
/// service in the Gateway's network and its own DNS name in its status (the Gateway lists 16 of
/// them) without waiting for a resync. The ground benchmark (1 Gateway, 100 routes, 1 h resync)
/// saw only the routes whose services an earlier reconcile had made get their name (the first
/// 16, created together), the rest never: the reconcile that creates a service observed before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_routes_on_one_gateway_all_converge() {
    const ROUTES: usize = 40;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let case = Case::start_with_resync("many", "3600s").await;
    let Case { g, controller_name, class_name, ns, ctl, .. } = &case;
    app(&g.kube, ns, "web", 1).await;
    create(&g.kube, Some(ns), gateway("gw", class_name)).await;
    ctl.wait_ready().await;
    for i in 0..ROUTES {
        create(&g.kube, Some(ns), json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": format!("r{i}")},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": format!("/p{i}")}}],
                "backendRefs": [{"name": "web", "port": 80}]}]}}))
        .await;
    }
    let names: BTreeSet<String> = poll(&format!("all {ROUTES} routes accepted with their own DNS name"), Duration::from_secs(180), || async {
        let mut names = BTreeSet::new();
        let mut missing = Vec::new();
        for i in 0..ROUTES {
            let conds = route_status(g, ns, "HTTPRoute", &format!("r{i}"), controller_name).await?;
            let dns = conds
                .iter()
                .find(|(t, s, current, _)| t == "Accepted" && s == "True" && *current)
                .and_then(|(_, _, _, m)| m.split("Reachable at ").nth(1))
                .map(|d| d.trim_end_matches('.').to_string());
            match dns {
                Some(d) => {
                    names.insert(d);
                }
                None => missing.push(i),
            }
        }
        if missing.is_empty() { Ok(names) } else { Err(format!("{} of {ROUTES} without their DNS name, e.g. r{}", missing.len(), missing[0])) }
    })
    .await;
    assert_eq!(names.len(), ROUTES, "one distinct DNS name per route");
    // Each DNS name is a Lattice service of its own, in the Gateway's one service network.
    let mut networks = BTreeSet::new();
    for d in &names {
        let nets = networks_of(g, d).await.unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(nets.len(), 1, "{d} in exactly one network: {nets:?}");
        networks.extend(nets);
    }
    assert_eq!(networks.len(), 1, "every route's service in the Gateway's network: {networks:?}");
    let addresses: BTreeSet<String> =
        get_gateway(&g.kube, ns, "gw").await.unwrap().status.unwrap().addresses.unwrap_or_default().into_iter().map(|a| a.value).collect();
    assert_eq!(addresses.len(), 16, "the Gateway lists as many route DNS names as its status holds");
    assert!(addresses.is_subset(&names), "{addresses:?}");

    case.finish(&[]).await;
}
