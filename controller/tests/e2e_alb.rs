//! End to end: the built `cloudgate controller` binary against the local test ground (a real
//! kube-apiserver with kwok nodes, and moto for ELBv2/EC2/ACM), through the same clients a user
//! would use. The acceptance scenarios:
//!
//! - (a) GatewayClass + Gateway + HTTPRoute with two weighted backends become an ALB, a listener,
//!   rules and IP target groups holding the pods' IPs; Gateway Programmed=True with the ALB's DNS
//!   name; route Accepted/ResolvedRefs at the current observedGeneration;
//! - (b) a weight change is exactly one mutating ELBv2 call (moto's call log);
//! - (c) scaling a Deployment registers/deregisters targets;
//! - (d) invalid references reach route status (BackendNotFound, RefNotPermitted,
//!   NoMatchingParent) and clear when fixed;
//! - (e) a second instance with the same Lease stays passive until the leader dies;
//! - (f) deleting the Gateway removes every ELBv2/EC2/ACM resource and the finalizer;
//! - (g) a forced resync of an unchanged Gateway makes no mutating call and no status write;
//! - (h) BackendPolicy / HealthCheckPolicy reach the target groups and report on the policies.
//!
//! Needs KUBECONFIG and AWS_ENDPOINT_URL from the ground (`tests/run` sets them); without them
//! every test fails with "run via tests/run" rather than passing by skipping. Built only with
//! `--features e2e` (see controller/Cargo.toml). The tests share moto's global call log, so they
//! run one at a time (a lock below, whatever --test-threads says).
#![forbid(unsafe_code)]
// The SERIAL guard is held for a whole test on purpose: each #[tokio::test] has its own runtime
// and thread, so holding a std Mutex across awaits only makes the tests take turns.
#![allow(clippy::await_holding_lock)]

mod support;
use support::*;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use gateway_api::experimental::gateways::Gateway;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

// --- environment ----------------------------------------------------------------------------

struct Ground {
    kube: Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    ec2: aws_sdk_ec2::Client,
    acm: aws_sdk_acm::Client,
    aws_endpoint: String,
}

async fn ground() -> Ground {
    let kube = kube_client().await;
    let aws_endpoint = env("AWS_ENDPOINT_URL");
    let sdk = cloudgate_aws_alb::cloud::load_sdk_config(&cloudgate_aws_alb::CloudOptions::default()).await;
    Ground {
        kube,
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
        ec2: aws_sdk_ec2::Client::new(&sdk),
        acm: aws_sdk_acm::Client::new(&sdk),
        aws_endpoint,
    }
}

async fn network(g: &Ground) -> (String, Vec<String>) {
    vpc_with_subnets(&g.ec2, fastrand::u8(10..250)).await
}

// --- tiny HTTP client (ops endpoint, moto's /_ground API) --------------------------------------

fn reset_calls(g: &Ground) {
    let (code, body) = http("POST", &g.aws_endpoint, "/_ground/calls/reset").expect("reset call log");
    assert_eq!(code, 200, "{body}");
}

/// Mutating ELBv2 calls (anything but Describe*/List*/Get*) since the last reset.
fn mutating_elb_calls(g: &Ground) -> Vec<String> {
    let (code, body) = http("GET", &g.aws_endpoint, "/_ground/calls?service=elbv2").expect("call log");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("call log json");
    v["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["action"].as_str())
        .filter(|a| !(a.starts_with("Describe") || a.starts_with("List") || a.starts_with("Get")))
        .map(str::to_string)
        .collect()
}

// --- the controller under test ---------------------------------------------------------------

struct Opts<'a> {
    cluster_id: &'a str,
    controller_name: &'a str,
    lease: &'a str,
    vpc: &'a str,
    subnets: &'a [String],
    resync: &'a str,
}

fn start(o: &Opts<'_>) -> Controller {
    let subnets = o.subnets.join(",");
    Controller::start(
        &Common { cluster_id: o.cluster_id, controller_name: o.controller_name, lease: o.lease, resync: o.resync },
        &["--vpc-id", o.vpc, "--subnets", &subnets],
    )
}

// --- Kubernetes objects ------------------------------------------------------------------------

fn route(name: &str, gateway: &str, hostname: &str, backends: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": gateway}], "hostnames": [hostname],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backends}]}})
}

// --- what moto holds ---------------------------------------------------------------------------

struct Alb {
    arn: String,
    /// Per non-default rule: (target group ARN, weight) of its forward action.
    rules: Vec<Vec<(String, i32)>>,
    listener_ports: Vec<i32>,
}

async fn alb_by_dns(g: &Ground, dns: &str) -> Result<Alb, String> {
    let lbs = g.elb.describe_load_balancers().send().await.map_err(|e| format!("{e:?}"))?;
    let lb = lbs.load_balancers().iter().find(|l| l.dns_name() == Some(dns)).ok_or_else(|| format!("no ALB with DNS {dns}"))?;
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    let listeners = g.elb.describe_listeners().load_balancer_arn(&arn).send().await.map_err(|e| format!("{e:?}"))?;
    let mut rules = Vec::new();
    let mut listener_ports = Vec::new();
    for l in listeners.listeners() {
        listener_ports.push(l.port().unwrap_or_default());
        let rs = g.elb.describe_rules().listener_arn(l.listener_arn().unwrap_or_default()).send().await.map_err(|e| format!("{e:?}"))?;
        for r in rs.rules().iter().filter(|r| r.is_default() != Some(true)) {
            let mut tgs = Vec::new();
            for a in r.actions() {
                if let Some(fc) = a.forward_config() {
                    for t in fc.target_groups() {
                        tgs.push((t.target_group_arn().unwrap_or_default().to_string(), t.weight().unwrap_or(1)));
                    }
                } else if let Some(tg) = a.target_group_arn() {
                    tgs.push((tg.to_string(), 1));
                }
            }
            rules.push(tgs);
        }
    }
    Ok(Alb { arn, rules, listener_ports })
}

async fn targets(g: &Ground, tg_arn: &str) -> Result<BTreeSet<String>, String> {
    let h = g.elb.describe_target_health().target_group_arn(tg_arn).send().await.map_err(|e| format!("{e:?}"))?;
    Ok(h.target_health_descriptions().iter().filter_map(|d| d.target()?.id().map(str::to_string)).collect())
}

/// Every ELBv2 / EC2 / ACM resource tagged with `cluster`.
async fn owned_resources(g: &Ground, cluster: &str) -> Vec<String> {
    let mut out = Vec::new();
    let ours = |tags: Vec<(String, String)>| tags.iter().any(|(k, v)| k == "cloudgate.io/cluster" && v == cluster);
    let lbs = g.elb.describe_load_balancers().send().await.expect("DescribeLoadBalancers");
    let tgs = g.elb.describe_target_groups().send().await.expect("DescribeTargetGroups");
    let arns: Vec<String> = lbs
        .load_balancers()
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .chain(tgs.target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)))
        .collect();
    for chunk in arns.chunks(20) {
        let tags = g.elb.describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.expect("DescribeTags");
        for d in tags.tag_descriptions() {
            let kv = d.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect();
            if ours(kv) {
                out.push(d.resource_arn().unwrap_or_default().to_string());
            }
        }
    }
    let sgs = g
        .ec2
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:cloudgate.io/cluster").values(cluster).build())
        .send()
        .await
        .expect("DescribeSecurityGroups");
    out.extend(sgs.security_groups().iter().filter_map(|s| s.group_id().map(str::to_string)));
    let certs = g.acm.list_certificates().send().await.expect("ListCertificates");
    for c in certs.certificate_summary_list() {
        let arn = c.certificate_arn().unwrap_or_default();
        let tags = g.acm.list_tags_for_certificate().certificate_arn(arn).send().await.expect("ListTagsForCertificate");
        let kv = tags.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect();
        if ours(kv) {
            out.push(arn.to_string());
        }
    }
    out
}

/// Deletes the Gateway and waits until the controller has removed its cloud resources and its
/// finalizer (the object is gone).
async fn delete_gateway_and_wait(g: &Ground, ns: &str, name: &str, cluster: &str) {
    Api::<Gateway>::namespaced(g.kube.clone(), ns).delete(name, &DeleteParams::default()).await.expect("delete gateway");
    poll(&format!("Gateway {ns}/{name} finalized and gone"), Duration::from_secs(90), || async {
        match get_gateway(&g.kube, ns, name).await {
            None => Ok(()),
            Some(gw) => Err(format!("finalizers {:?}", gw.metadata.finalizers)),
        }
    })
    .await;
    let left = owned_resources(g, cluster).await;
    assert!(left.is_empty(), "cloud resources left after deleting the Gateway: {left:?}");
}

// --- scenarios ---------------------------------------------------------------------------------

/// (a) provision, (b) one call per weight change, (c) endpoints follow the pods, (g) steady
/// state, (f) deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_lifecycle_on_alb() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let (vpc, subnets) = network(&g).await;
    let cluster = unique("e2e-life");
    let controller_name = format!("cloudgate.io/{}", unique("life"));
    let class_name = unique("cg-life");
    let ns = namespace(&g.kube, "e2e-life").await;
    let ctl = start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, vpc: &vpc, subnets: &subnets, resync: "5s" });

    // (a)
    step("(a) provision: class, gateway, route with weighted backends");
    app(&g.kube, &ns, "web-a", 2).await;
    app(&g.kube, &ns, "web-b", 1).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    let r = create(
        &g.kube,
        Some(&ns),
        route("web", "gw", "web.example.com", json!([{"name": "web-a", "port": 80, "weight": 80}, {"name": "web-b", "port": 80, "weight": 20}])),
    )
    .await;
    ctl.wait_ready().await;
    let dns = wait_programmed(&g.kube, &ns, "gw").await;
    let gw = get_gateway(&g.kube, &ns, "gw").await.unwrap();
    assert!(gw.metadata.finalizers.iter().flatten().any(|f| f == "cloudgate.io/cloud-resources"), "finalizer: {:?}", gw.metadata.finalizers);
    let status = gw.status.unwrap();
    assert_eq!(cond(status.conditions.as_deref().unwrap(), "Accepted").unwrap().status, "True");
    assert_eq!(status.addresses.as_ref().unwrap()[0].r#type.as_deref(), Some("Hostname"));
    let listener = &status.listeners.as_ref().unwrap()[0];
    assert_eq!(listener.attached_routes, 1);
    assert_eq!(cond(&listener.conditions, "Programmed").unwrap().status, "True");
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "Accepted", "True", "Accepted").await;
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "ResolvedRefs", "True", "ResolvedRefs").await;
    assert_eq!(get_route(&g.kube, &ns, "web").await.metadata.generation, r.metadata.generation);

    let ips_a = pod_ips(&g.kube, &ns, "web-a", 2).await;
    let ips_b = pod_ips(&g.kube, &ns, "web-b", 1).await;
    let (tg_a, tg_b) = poll("ALB with a weighted rule and both target groups' targets", Duration::from_secs(60), || async {
        let alb = alb_by_dns(&g, &dns).await?;
        if alb.listener_ports != vec![80] {
            return Err(format!("listeners {:?}", alb.listener_ports));
        }
        let [rule] = alb.rules.as_slice() else { return Err(format!("rules {:?}", alb.rules)) };
        let mut seen = Vec::new();
        for (tg, w) in rule {
            seen.push((tg.clone(), *w, targets(&g, tg).await?));
        }
        let a = seen.iter().find(|(_, w, t)| *w == 80 && *t == ips_a);
        let b = seen.iter().find(|(_, w, t)| *w == 20 && *t == ips_b);
        match (a, b, seen.len()) {
            (Some(a), Some(b), 2) => Ok((a.0.clone(), b.0.clone())),
            _ => Err(format!("forward {seen:?}, want web-a {ips_a:?} at 80 and web-b {ips_b:?} at 20 ({})", alb.arn)),
        }
    })
    .await;
    let class_status = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).get(&class_name).await.unwrap();
    let accepted = class_status.data.pointer("/status/conditions").and_then(Value::as_array).unwrap().iter().find(|c| c["type"] == "Accepted").cloned();
    assert_eq!(accepted.as_ref().map(|c| c["status"].clone()), Some(json!("True")), "{class_status:?}");

    // (b) weights 80/20 -> 50/50: one ModifyRule, route status at the new generation.
    step("(b) weight change");
    reset_calls(&g);
    let routes: Api<DynamicObject> = Api::namespaced_with(g.kube.clone(), &ns, &gvk("HTTPRoute"));
    let patched = routes
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": "web-a", "port": 80, "weight": 50}, {"name": "web-b", "port": 80, "weight": 50}]}]}})),
        )
        .await
        .expect("patch weights");
    assert!(patched.metadata.generation > r.metadata.generation);
    poll("weights 50/50 on the ALB rule", Duration::from_secs(60), || async {
        let alb = alb_by_dns(&g, &dns).await?;
        let w: Vec<i32> = alb.rules.iter().flatten().map(|(_, w)| *w).collect();
        if w == vec![50, 50] { Ok(()) } else { Err(format!("{w:?}")) }
    })
    .await;
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "Accepted", "True", "Accepted").await;
    // A settle window: nothing else may follow the one call.
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let calls = mutating_elb_calls(&g);
        assert!(calls.len() <= 1, "a weight change made {} mutating ELBv2 calls: {calls:?}", calls.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let calls = mutating_elb_calls(&g);
    assert_eq!(calls.len(), 1, "a weight change must be exactly one mutating ELBv2 call: {calls:?}");

    // (c) scale web-a 2 -> 3 -> 1: targets follow the EndpointSlice.
    step("(c) scaling");
    for replicas in [3usize, 1] {
        scale(&g.kube, &ns, "web-a", replicas as i32).await;
        let want = pod_ips(&g.kube, &ns, "web-a", replicas).await;
        poll(&format!("{replicas} targets in web-a's target group"), Duration::from_secs(60), || async {
            let t = targets(&g, &tg_a).await?;
            if t == want { Ok(()) } else { Err(format!("{t:?} != {want:?}")) }
        })
        .await;
    }
    assert_eq!(targets(&g, &tg_b).await.unwrap(), ips_b, "the other target group is untouched");

    // (g) steady state: resyncs every 5s find nothing to do, and write nothing.
    step("(g) steady state");
    wait_programmed(&g.kube, &ns, "gw").await;
    let settle = Instant::now() + Duration::from_secs(30);
    // Let anything still in flight from (c) finish: wait for a window with no mutating call.
    loop {
        reset_calls(&g);
        tokio::time::sleep(Duration::from_secs(3)).await;
        if mutating_elb_calls(&g).is_empty() {
            break;
        }
        assert!(Instant::now() < settle, "the controller never settled: {:?}", mutating_elb_calls(&g));
    }
    reset_calls(&g);
    let rv_gw = get_gateway(&g.kube, &ns, "gw").await.unwrap().metadata.resource_version;
    let rv_route = get_route(&g.kube, &ns, "web").await.metadata.resource_version;
    let writes = ctl.metric("cloudgate_status_writes_total", &[]);
    let reconciles = ctl.metric("cloudgate_reconciles_total", &["kind=\"gateway\""]);
    poll("two resyncs of the unchanged Gateway", Duration::from_secs(30), || async {
        let n = ctl.metric("cloudgate_reconciles_total", &["kind=\"gateway\""]);
        if n >= reconciles + 2.0 { Ok(()) } else { Err(format!("{n} reconciles (was {reconciles})")) }
    })
    .await;
    assert_eq!(mutating_elb_calls(&g), Vec::<String>::new(), "resync of an unchanged Gateway mutated the cloud");
    assert_eq!(get_gateway(&g.kube, &ns, "gw").await.unwrap().metadata.resource_version, rv_gw, "Gateway was written");
    assert_eq!(get_route(&g.kube, &ns, "web").await.metadata.resource_version, rv_route, "HTTPRoute was written");
    assert_eq!(ctl.metric("cloudgate_status_writes_total", &[]), writes, "status writes in steady state");
    assert!(ctl.metric("cloudgate_cloud_api_calls_total", &["operation=\"DescribeLoadBalancers\""]) > 0.0, "call counter exported");

    // (f) delete: everything the controller created goes, then the finalizer.
    step("(f) delete");
    delete_gateway_and_wait(&g, &ns, "gw", &cluster).await;
    let route_after = get_route(&g.kube, &ns, "web").await;
    assert!(route_conditions(&route_after, &controller_name).is_empty(), "our route status entry is removed with the Gateway");

    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    delete_namespace(&g.kube, &ns).await;
}

/// (d) invalid references reach route status, and clear when fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_references_reach_route_status() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let (vpc, subnets) = network(&g).await;
    let cluster = unique("e2e-inv");
    let controller_name = format!("cloudgate.io/{}", unique("inv"));
    let class_name = unique("cg-inv");
    let ns = namespace(&g.kube, "e2e-inv").await;
    let other = namespace(&g.kube, "e2e-inv-other").await;
    let ctl = start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, vpc: &vpc, subnets: &subnets, resync: "10m" });

    app(&g.kube, &ns, "good", 1).await;
    app(&g.kube, &other, "elsewhere", 1).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    create(&g.kube, Some(&ns), route("good", "gw", "good.example.com", json!([{"name": "good", "port": 80}]))).await;
    create(&g.kube, Some(&ns), route("missing", "gw", "missing.example.com", json!([{"name": "not-there", "port": 80}]))).await;
    create(&g.kube, Some(&ns), route("cross", "gw", "cross.example.com", json!([{"name": "elsewhere", "namespace": other, "port": 80}]))).await;
    let mut wrong_section = route("section", "gw", "section.example.com", json!([{"name": "good", "port": 80}]));
    wrong_section["spec"]["parentRefs"][0]["sectionName"] = json!("no-such-listener");
    create(&g.kube, Some(&ns), wrong_section).await;
    ctl.wait_ready().await;
    step("(d) invalid references");

    wait_programmed(&g.kube, &ns, "gw").await;
    wait_route_condition(&g.kube, &ns, "good", &controller_name, "ResolvedRefs", "True", "ResolvedRefs").await;
    wait_route_condition(&g.kube, &ns, "missing", &controller_name, "ResolvedRefs", "False", "BackendNotFound").await;
    wait_route_condition(&g.kube, &ns, "cross", &controller_name, "ResolvedRefs", "False", "RefNotPermitted").await;
    wait_route_condition(&g.kube, &ns, "section", &controller_name, "Accepted", "False", "NoMatchingParent").await;

    step("(d) fixing the references");
    // Fixes reach status without touching the routes: the missing Service appears, a
    // ReferenceGrant opens the other namespace.
    service(&g.kube, &ns, "not-there").await;
    wait_route_condition(&g.kube, &ns, "missing", &controller_name, "ResolvedRefs", "True", "ResolvedRefs").await;
    create(
        &g.kube,
        Some(&other),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "ReferenceGrant", "metadata": {"name": "allow"},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": ns}],
                "to": [{"group": "", "kind": "Service"}]}}),
    )
    .await;
    wait_route_condition(&g.kube, &ns, "cross", &controller_name, "ResolvedRefs", "True", "ResolvedRefs").await;

    delete_gateway_and_wait(&g, &ns, "gw", &cluster).await;
    drop(ctl);
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    delete_namespace(&g.kube, &ns).await;
    delete_namespace(&g.kube, &other).await;
}

/// (e) a standby with the same Lease stays passive (not ready, no cloud calls, no writes)
/// until the leader dies, then takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_only_when_the_leader_dies() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let (vpc, subnets) = network(&g).await;
    let cluster = unique("e2e-ha");
    let controller_name = format!("cloudgate.io/{}", unique("ha"));
    let class_name = unique("cg-ha");
    let lease = unique("e2e-ha-lease");
    let ns = namespace(&g.kube, "e2e-ha").await;
    let opts = Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &lease, vpc: &vpc, subnets: &subnets, resync: "10m" };
    let mut first = start(&opts);
    first.wait_ready().await;
    let second = start(&opts);
    // The standby serves /readyz (synced) but stays not-ready.
    poll("standby answering 503 on /readyz", Duration::from_secs(30), || async {
        match second.readyz() {
            Some(503) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    app(&g.kube, &ns, "web", 1).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    create(&g.kube, Some(&ns), route("web", "gw", "ha.example.com", json!([{"name": "web", "port": 80}]))).await;
    let dns = wait_programmed(&g.kube, &ns, "gw").await;
    step("(e) programmed by the leader; checking the standby");
    assert_eq!(second.readyz(), Some(503), "standby must not be ready while the leader lives");
    assert_eq!(second.metric("cloudgate_cloud_api_calls_total", &[]), 0.0, "standby made cloud calls:\n{}", second.metrics());
    assert_eq!(second.metric("cloudgate_status_writes_total", &[]), 0.0, "standby wrote status");
    assert_eq!(second.metric("cloudgate_reconciles_total", &[]), 0.0, "standby reconciled");
    assert_eq!(second.metric("cloudgate_leader", &[]), 0.0);
    assert_eq!(first.metric("cloudgate_leader", &[]), 1.0);

    step("(e) killing the leader");
    // The leader dies without releasing the Lease; the standby takes over after it expires.
    first.kill();
    poll("standby becoming ready", Duration::from_secs(60), || async {
        match second.readyz() {
            Some(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    step("(e) standby is the leader now");
    // And reconciles: a spec change is picked up by the new leader.
    let routes: Api<DynamicObject> = Api::namespaced_with(g.kube.clone(), &ns, &gvk("HTTPRoute"));
    routes
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"hostnames": ["ha2.example.com"]}})))
        .await
        .expect("patch route");
    wait_route_condition(&g.kube, &ns, "web", &controller_name, "Accepted", "True", "Accepted").await;
    poll("the new leader programming the new hostname", Duration::from_secs(60), || async {
        let lb = alb_by_dns(&g, &dns).await?;
        let rules = g.elb.describe_listeners().load_balancer_arn(&lb.arn).send().await.map_err(|e| format!("{e:?}"))?;
        let l = rules.listeners().first().ok_or("no listener")?.listener_arn().unwrap_or_default().to_string();
        let rs = g.elb.describe_rules().listener_arn(l).send().await.map_err(|e| format!("{e:?}"))?;
        let hosts: Vec<String> = rs
            .rules()
            .iter()
            .flat_map(|r| r.conditions())
            .flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default())
            .collect();
        if hosts == vec!["ha2.example.com".to_string()] { Ok(()) } else { Err(format!("{hosts:?}")) }
    })
    .await;
    assert!(second.metric("cloudgate_status_writes_total", &[]) > 0.0);

    delete_gateway_and_wait(&g, &ns, "gw", &cluster).await;
    drop(second);
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    delete_namespace(&g.kube, &ns).await;
}

/// ACM certificates tagged with `cluster`.
async fn our_certificates(g: &Ground, cluster: &str) -> Result<BTreeSet<String>, String> {
    let certs = g.acm.list_certificates().send().await.map_err(|e| format!("{e:?}"))?;
    let mut out = BTreeSet::new();
    for c in certs.certificate_summary_list() {
        let arn = c.certificate_arn().unwrap_or_default();
        let tags = g.acm.list_tags_for_certificate().certificate_arn(arn).send().await.map_err(|e| format!("{e:?}"))?;
        if tags.tags().iter().any(|t| t.key() == "cloudgate.io/cluster" && t.value() == Some(cluster)) {
            out.insert(arn.to_string());
        }
    }
    Ok(out)
}

/// The HTTPS listener's default certificate.
async fn listener_certificate(g: &Ground, dns: &str) -> Result<String, String> {
    let alb = alb_by_dns(g, dns).await?;
    let ls = g.elb.describe_listeners().load_balancer_arn(&alb.arn).send().await.map_err(|e| format!("{e:?}"))?;
    let https = ls.listeners().iter().find(|l| l.port() == Some(443)).ok_or_else(|| format!("no :443 listener; ports {:?}", alb.listener_ports))?;
    https.certificates().first().and_then(|c| c.certificate_arn()).map(str::to_string).ok_or_else(|| "no certificate on :443".into())
}

/// HTTPS: the listener's Secret becomes an ACM certificate on a :443 listener; rotating the
/// Secret (no Gateway change) imports the new certificate, switches the listener and deletes the
/// old one; deleting the Gateway removes the certificate too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_certificates_follow_the_secret() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    let (vpc, subnets) = network(&g).await;
    let cluster = unique("e2e-tls");
    let controller_name = format!("cloudgate.io/{}", unique("tls"));
    let class_name = unique("cg-tls");
    let ns = namespace(&g.kube, "e2e-tls").await;
    let ctl = start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, vpc: &vpc, subnets: &subnets, resync: "10m" });

    step("(tls) gateway with an HTTPS listener");
    let (crt, key) = self_signed("secure.example.com");
    create(
        &g.kube,
        Some(&ns),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": crt, "tls.key": key}}),
    )
    .await;
    app(&g.kube, &ns, "web", 1).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    let mut gw = gateway("gw", &class_name);
    gw["spec"]["listeners"] = json!([
        {"name": "http", "port": 80, "protocol": "HTTP"},
        {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.example.com",
            "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}},
    ]);
    create(&g.kube, Some(&ns), gw).await;
    create(&g.kube, Some(&ns), route("web", "gw", "secure.example.com", json!([{"name": "web", "port": 80}]))).await;
    ctl.wait_ready().await;
    let dns = wait_programmed(&g.kube, &ns, "gw").await;
    let first = poll("one ACM certificate on the :443 listener", Duration::from_secs(60), || async {
        let certs = our_certificates(&g, &cluster).await?;
        let on_listener = listener_certificate(&g, &dns).await?;
        if certs.len() == 1 && certs.contains(&on_listener) { Ok(on_listener) } else { Err(format!("{certs:?} / {on_listener}")) }
    })
    .await;

    step("(tls) rotating the Secret");
    let (crt2, key2) = self_signed("secure.example.com");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(g.kube.clone(), &ns)
        .patch("cert", &PatchParams::default(), &Patch::Merge(json!({"stringData": {"tls.crt": crt2, "tls.key": key2}})))
        .await
        .expect("rotate secret");
    poll("the new certificate on the listener and the old one deleted", Duration::from_secs(60), || async {
        let certs = our_certificates(&g, &cluster).await?;
        let on_listener = listener_certificate(&g, &dns).await?;
        if on_listener != first && certs.len() == 1 && certs.contains(&on_listener) {
            Ok(())
        } else {
            Err(format!("listener {on_listener}, ours {certs:?}, first {first}"))
        }
    })
    .await;
    wait_programmed(&g.kube, &ns, "gw").await;

    step("(tls) delete");
    delete_gateway_and_wait(&g, &ns, "gw", &cluster).await;
    drop(ctl);
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    delete_namespace(&g.kube, &ns).await;
}

/// A Service's target group: the one of `cluster` tagged as its (namespace/name:80) backend.
async fn tg_of(g: &Ground, ns: &str, cluster: &str, svc: &str) -> Result<aws_sdk_elasticloadbalancingv2::types::TargetGroup, String> {
    let tgs = g.elb.describe_target_groups().send().await.map_err(|e| format!("{e:?}"))?;
    let want = format!("target-group/{ns}/{svc}:80");
    for t in tgs.target_groups() {
        let arn = t.target_group_arn().unwrap_or_default();
        let tags = g.elb.describe_tags().resource_arns(arn).send().await.map_err(|e| format!("{e:?}"))?;
        let has = |k: &str, v: &str| tags.tag_descriptions().iter().flat_map(|d| d.tags()).any(|tag| tag.key() == Some(k) && tag.value() == Some(v));
        if has("cloudgate.io/resource", &want) && has("cloudgate.io/cluster", cluster) {
            return Ok(t.clone());
        }
    }
    Err(format!("no target group tagged {want} yet"))
}

async fn tg_attributes(g: &Ground, arn: &str) -> Result<BTreeMap<String, String>, String> {
    let out = g.elb.describe_target_group_attributes().target_group_arn(arn).send().await.map_err(|e| format!("{e:?}"))?;
    Ok(out.attributes().iter().filter_map(|a| Some((a.key()?.to_string(), a.value()?.to_string()))).collect())
}

/// (h) Policies on Services, through the controller: a BackendPolicy and a HealthCheckPolicy on
/// one Service become its target group's attributes and health check, both Accepted on the
/// Gateway; a HealthCheckPolicy ALB cannot apply (TCP) is Invalid and changes nothing; steady
/// state writes nothing; deleting the BackendPolicy puts ALB's defaults back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_policies_reach_the_target_groups() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let g = ground().await;
    // The controller discovers cloudgate's CRDs at startup: install them first.
    ensure_cloudgate_crds(&g.kube).await;
    let (vpc, subnets) = network(&g).await;
    let cluster = unique("e2e-pol");
    let controller_name = format!("cloudgate.io/{}", unique("pol"));
    let class_name = unique("cg-pol");
    let ns = namespace(&g.kube, "e2e-pol").await;
    let ctl = start(&Opts { cluster_id: &cluster, controller_name: &controller_name, lease: &cluster, vpc: &vpc, subnets: &subnets, resync: "5s" });
    app(&g.kube, &ns, "web", 1).await;
    app(&g.kube, &ns, "db", 1).await;
    create(&g.kube, None, class(&class_name, &controller_name)).await;
    create(&g.kube, Some(&ns), gateway("gw", &class_name)).await;
    create(&g.kube, Some(&ns), route("web", "gw", "web.example.com", json!([{"name": "web", "port": 80}]))).await;
    create(&g.kube, Some(&ns), route("db", "gw", "db.example.com", json!([{"name": "db", "port": 80}]))).await;
    ctl.wait_ready().await;
    wait_programmed(&g.kube, &ns, "gw").await;
    let web_tg = poll("web's target group", Duration::from_secs(60), || tg_of(&g, &ns, &cluster, "web")).await;
    let db_before = poll("db's target group", Duration::from_secs(60), || tg_of(&g, &ns, &cluster, "db")).await;
    let web_arn = web_tg.target_group_arn().unwrap_or_default().to_string();

    step("(h) a BackendPolicy and a HealthCheckPolicy on web, a TCP health check on db");
    let api = |kind: &str, plural: &str| -> Api<DynamicObject> {
        Api::namespaced_with(g.kube.clone(), &ns, &ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk("gateway.cloudgate.io", "v1alpha1", kind), plural))
    };
    let backend = api("BackendPolicy", "backendpolicies");
    let health = api("HealthCheckPolicy", "healthcheckpolicies");
    let obj = |kind: &str, name: &str, svc: &str, extra: Value| -> DynamicObject {
        let mut spec = json!({"targetRefs": [{"group": "", "kind": "Service", "name": svc}]});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"apiVersion": "gateway.cloudgate.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})).unwrap()
    };
    backend.create(&Default::default(), &obj("BackendPolicy", "web-backend", "web", json!({"deregistrationDelaySeconds": 30, "algorithm": "LeastRequest"}))).await.expect("create BackendPolicy");
    health.create(&Default::default(), &obj("HealthCheckPolicy", "web-health", "web", json!({"path": "/healthz", "intervalSeconds": 10}))).await.expect("create HealthCheckPolicy");
    health.create(&Default::default(), &obj("HealthCheckPolicy", "db-health", "db", json!({"protocol": "TCP"}))).await.expect("create TCP HealthCheckPolicy");
    poll("web's target group drains 30 s and balances by least outstanding requests", Duration::from_secs(60), || async {
        let a = tg_attributes(&g, &web_arn).await?;
        let got = (a.get("deregistration_delay.timeout_seconds").cloned(), a.get("load_balancing.algorithm.type").cloned());
        if got == (Some("30".into()), Some("least_outstanding_requests".into())) { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    poll("web's target group checks /healthz every 10 s", Duration::from_secs(60), || async {
        let t = tg_of(&g, &ns, &cluster, "web").await?;
        let got = (t.health_check_path().map(str::to_string), t.health_check_interval_seconds());
        if got == (Some("/healthz".into()), Some(10)) { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;
    for (api, name, want) in [(&backend, "web-backend", ("True", "Accepted")), (&health, "web-health", ("True", "Accepted")), (&health, "db-health", ("False", "Invalid"))] {
        poll(&format!("{name}: Accepted={} {} on the Gateway", want.0, want.1), Duration::from_secs(30), || async {
            let p = api.get(name).await.map_err(|e| e.to_string())?;
            let ancestors = p.data.pointer("/status/ancestors").and_then(Value::as_array).cloned().unwrap_or_default();
            let mine = ancestors.iter().find(|a| a["controllerName"] == controller_name.as_str() && a["ancestorRef"]["name"] == "gw").ok_or(format!("{ancestors:?}"))?;
            let c = mine["conditions"].as_array().and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted")).cloned().ok_or("no Accepted")?;
            let ok = c["status"] == want.0 && c["reason"] == want.1 && c["observedGeneration"] == p.metadata.generation.unwrap_or_default();
            if ok { Ok(()) } else { Err(format!("{c}")) }
        })
        .await;
    }
    let db_after = tg_of(&g, &ns, &cluster, "db").await.unwrap();
    assert_eq!(
        (db_after.health_check_protocol(), db_after.health_check_path()),
        (db_before.health_check_protocol(), db_before.health_check_path()),
        "a policy ALB cannot apply changes nothing"
    );

    step("(h) steady state: resyncs write nothing");
    reset_calls(&g);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let calls = mutating_elb_calls(&g);
    assert!(calls.is_empty(), "steady state with policies makes no mutating call: {calls:?}");

    step("(h) the BackendPolicy goes: ALB's defaults come back");
    backend.delete("web-backend", &DeleteParams::default()).await.expect("delete BackendPolicy");
    poll("web's target group back to 300 s and round robin", Duration::from_secs(60), || async {
        let a = tg_attributes(&g, &web_arn).await?;
        let got = (a.get("deregistration_delay.timeout_seconds").cloned(), a.get("load_balancing.algorithm.type").cloned());
        if got == (Some("300".into()), Some("round_robin".into())) { Ok(()) } else { Err(format!("{got:?}")) }
    })
    .await;

    delete_gateway_and_wait(&g, &ns, "gw", &cluster).await;
    drop(ctl);
    let _ = Api::<DynamicObject>::all_with(g.kube.clone(), &gvk("GatewayClass")).delete(&class_name, &DeleteParams::default()).await;
    delete_namespace(&g.kube, &ns).await;
}
