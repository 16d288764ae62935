//! The SDK half against the AWS test ground (moto, real wire protocols): observe / diff / apply
//! round trips, minimal mutations checked in the ground's call log, certificate rotation,
//! deletion, and foreign resources left alone.
//!
//! Needs `AWS_ENDPOINT_URL` (+ credentials/region): run via `tests/run`, or by hand:
//! `S=$(mktemp -d); tests/ground/aws/up.sh $S; set -a; . $S/aws.env; set +a;
//!  cargo test -p cloudgate-aws-alb --test cloud; tests/ground/aws/down.sh $S`.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use cloudgate_aws_alb::cloud::load_sdk_config;
use cloudgate_aws_alb::{capabilities, AlbCloud, CloudOptions, KIND_ORDER};
use cloudgate_provider::cloud::{ApplyOutcome, CloudError, CloudProvider, Owner};
use cloudgate_provider::diff::{diff, Change, ChangeSet, ObservedResource};
use cloudgate_provider::{tags, Provider, RenderContext, ResourceGraph};
use cloudgate_translate::manifest::{load_str, Loaded};
use cloudgate_translate::model::ObjKey;
use cloudgate_translate::{translate_gateway, LoadBalancerPlan, World};

/// The call log and moto's state are shared: one scenario at a time.
static GROUND: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .unwrap_or_else(|_| panic!("AWS_ENDPOINT_URL is not set: run via tests/run (or start tests/ground/aws/up.sh and export its aws.env)"))
}

// --- the ground's call log -------------------------------------------------------------------

fn http(method: &str, path: &str) -> String {
    let ep = endpoint();
    let hostport = ep.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).expect("connect to the AWS ground");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "{method} {path}: {head}");
    body.to_string()
}

fn reset_calls() {
    http("POST", "/_ground/calls/reset");
}

/// `service:Action` of every call since the last reset.
fn calls() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&http("GET", "/_ground/calls")).unwrap();
    v["calls"].as_array().unwrap().iter().map(|c| format!("{}:{}", c["service"].as_str().unwrap_or(""), c["action"].as_str().unwrap_or(""))).collect()
}

const MUTATING: &[&str] = &["Create", "Modify", "Delete", "Register", "Deregister", "Set", "Add", "Remove", "Authorize", "Revoke", "Import"];

fn mutating(calls: &[String]) -> Vec<String> {
    calls.iter().filter(|c| c.split_once(':').is_some_and(|(_, a)| MUTATING.iter().any(|p| a.starts_with(p)))).cloned().collect()
}

// --- fixtures --------------------------------------------------------------------------------

const CLASS_AND_SERVICES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cg}
spec: {controllerName: cloudgate.io/gateway-controller}
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: v2, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v2-a, namespace: shop, labels: {kubernetes.io/service-name: v2}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.2.0.1]}]
"#;

const HTTP_GATEWAY: &str = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop, uid: "1234"}
spec:
  gatewayClassName: cg
  listeners:
  - {name: http, protocol: HTTP, port: 80}
"#;

const HTTPS_GATEWAY: &str = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop, uid: "1234"}
spec:
  gatewayClassName: cg
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - name: https
    protocol: HTTPS
    port: 443
    tls: {mode: Terminate, certificateRefs: [{name: store-tls}]}
"#;

/// An HTTPRoute with a weighted split, a method+header+prefix match and a redirect; `extra`
/// appends an exact-path rule, which outranks the two rules before it in precedence.
fn route(w1: u32, w2: u32, extra: bool) -> String {
    let extra = if extra { "  - matches: [{path: {type: Exact, value: /new}}]\n    backendRefs: [{name: v2, port: 80}]\n" } else { "" };
    format!(
        r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: store, namespace: shop}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [store.example.com]
  rules:
  - backendRefs: [{{name: v1, port: 80, weight: {w1}}}, {{name: v2, port: 80, weight: {w2}}}]
  - matches:
    - path: {{type: PathPrefix, value: /api/}}
      method: POST
      headers: [{{name: x-canary, value: "a*b"}}]
    backendRefs: [{{name: v2, port: 80}}]
  - matches: [{{path: {{type: Exact, value: /old}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{scheme: https, statusCode: 301}}}}]
{extra}"#
    )
}

fn v1_endpoints(ips: &[&str]) -> String {
    let eps: Vec<String> = ips.iter().map(|ip| format!("{{addresses: [{ip}]}}")).collect();
    format!(
        "\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: v1-a, namespace: shop, labels: {{kubernetes.io/service-name: v1}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{}]\n",
        eps.join(", ")
    )
}

fn tls_secret(crt: &str, key: &str) -> String {
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: store-tls, namespace: shop}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

const CRT_A: &str = include_str!("fixtures/tls-a.crt");
const KEY_A: &str = include_str!("fixtures/tls-a.key");
const CRT_B: &str = include_str!("fixtures/tls-b.crt");
const KEY_B: &str = include_str!("fixtures/tls-b.key");

fn plan(yaml: &str) -> LoadBalancerPlan {
    let mut w = World::new();
    let mut l = Loaded::default();
    load_str("t", yaml, &mut w, &mut l).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    translate_gateway(&w, &ObjKey::new("shop", "web"), &capabilities()).unwrap().plan
}

fn http_plan(w1: u32, w2: u32, v1: &[&str]) -> LoadBalancerPlan {
    plan(&format!("{CLASS_AND_SERVICES}{HTTP_GATEWAY}{}{}", route(w1, w2, false), v1_endpoints(v1)))
}

// --- the ground ------------------------------------------------------------------------------

struct Ground {
    cloud: AlbCloud,
    ec2: aws_sdk_ec2::Client,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    acm: aws_sdk_acm::Client,
    ctx: RenderContext,
    owner: Owner,
}

fn unique(label: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{label}-{:x}", n & 0xffff_ffff_ffff)
}

/// SDK clients, and a fresh VPC with two subnets in two zones (moto's CreateLoadBalancer
/// checks them) for a cluster id no other test uses.
async fn ground(label: &str) -> Ground {
    endpoint();
    let opts = CloudOptions { requests_per_second: 200.0, burst: 50, ..CloudOptions::default() };
    let sdk = load_sdk_config(&opts).await;
    let cloud = AlbCloud::new(&sdk, &opts);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let vpc = ec2.create_vpc().cidr_block("10.77.0.0/16").send().await.unwrap().vpc().unwrap().vpc_id().unwrap().to_string();
    let zones: Vec<String> =
        ec2.describe_availability_zones().send().await.unwrap().availability_zones().iter().filter_map(|z| z.zone_name().map(str::to_string)).take(2).collect();
    assert_eq!(zones.len(), 2, "the ground must offer two availability zones");
    let mut subnets = Vec::new();
    for (i, z) in zones.iter().enumerate() {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(format!("10.77.{i}.0/24")).availability_zone(z).send().await.unwrap();
        subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    let cluster = unique(label);
    let ctx = RenderContext {
        cluster_id: cluster.clone(),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        network: vpc,
        subnets,
        ..Default::default()
    };
    Ground {
        cloud,
        ec2,
        elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
        acm: aws_sdk_acm::Client::new(&sdk),
        owner: Owner { cluster_id: cluster, gateway: ObjKey::new("shop", "web") },
        ctx,
    }
}

impl Ground {
    async fn observe(&self) -> Vec<ObservedResource> {
        self.cloud.observe(&self.owner, &self.ctx).await.expect("observe")
    }

    fn desired(&self, plan: Option<&LoadBalancerPlan>) -> ResourceGraph {
        plan.map(|p| self.cloud.render(p, &self.ctx).expect("render")).unwrap_or_default()
    }

    /// observe -> diff -> apply, with the call log reset just before apply.
    async fn reconcile(&self, plan: Option<&LoadBalancerPlan>) -> (ChangeSet, ApplyOutcome, Vec<String>) {
        let observed = self.observe().await;
        let changes = diff(&self.desired(plan), &observed, &self.ctx.cluster_id, KIND_ORDER);
        reset_calls();
        let out = self.cloud.apply(plan, &changes, &observed, &self.ctx).await.unwrap_or_else(|e| panic!("apply: {e}\n{changes:#?}"));
        (changes, out, calls())
    }

    /// A fresh observe finds nothing to change.
    async fn assert_steady(&self, plan: Option<&LoadBalancerPlan>) -> Vec<ObservedResource> {
        let observed = self.observe().await;
        let changes = diff(&self.desired(plan), &observed, &self.ctx.cluster_id, KIND_ORDER);
        assert!(changes.is_empty(), "not steady: {:#?}\nobserved: {:#?}", changes.changes, observed);
        observed
    }

    fn name_of(&self, plan: &LoadBalancerPlan, kind: &str) -> Vec<String> {
        self.desired(Some(plan)).resources.iter().filter(|r| r.key.kind == kind).map(|r| r.key.name.clone()).collect()
    }

    async fn lb_arn(&self, name: &str) -> Option<String> {
        match self.elbv2.describe_load_balancers().names(name).send().await {
            Ok(o) => o.load_balancers().first().and_then(|l| l.load_balancer_arn()).map(str::to_string),
            Err(e) if format!("{e:?}").contains("LoadBalancerNotFound") => None,
            Err(e) => panic!("{e:?}"),
        }
    }

    async fn tg(&self, name: &str) -> Option<aws_sdk_elasticloadbalancingv2::types::TargetGroup> {
        match self.elbv2.describe_target_groups().names(name).send().await {
            Ok(o) => o.target_groups().first().cloned(),
            Err(e) if format!("{e:?}").contains("TargetGroupNotFound") => None,
            Err(e) => panic!("{e:?}"),
        }
    }

    async fn targets(&self, tg_arn: &str) -> BTreeSet<String> {
        let h = self.elbv2.describe_target_health().target_group_arn(tg_arn).send().await.unwrap();
        h.target_health_descriptions()
            .iter()
            .filter(|d| d.target_health().and_then(|t| t.state()).is_none_or(|s| s.as_str() != "draining"))
            .filter_map(|d| d.target().map(|t| format!("{}:{}", t.id().unwrap_or(""), t.port().unwrap_or(0))))
            .collect()
    }

    async fn our_security_groups(&self) -> Vec<String> {
        let f = |k: &str, v: &str| aws_sdk_ec2::types::Filter::builder().name(format!("tag:{k}")).values(v).build();
        let o = self.ec2.describe_security_groups().filters(f(tags::CLUSTER, &self.ctx.cluster_id)).send().await.unwrap();
        o.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect()
    }
}

fn kinds(cs: &ChangeSet) -> Vec<String> {
    cs.changes
        .iter()
        .map(|c| match c {
            Change::Create { desired } => format!("create {}", desired.key.kind),
            Change::Update { desired, .. } => format!("update {}", desired.key.kind),
            Change::Delete { observed } => format!("delete {}", observed.key.kind),
        })
        .collect()
}

// --- scenarios -------------------------------------------------------------------------------

/// (1) Everything is created, reads back identically, and an empty change set mutates nothing
/// but still reports the address.
#[tokio::test]
async fn create_then_steady_state_and_empty_apply_mutates_nothing() {
    let _g = GROUND.lock().await;
    let g = ground("steady").await;
    let p = http_plan(90, 10, &["10.1.0.1", "10.1.0.2"]);
    assert!(g.observe().await.is_empty());

    let (cs, out, log) = g.reconcile(Some(&p)).await;
    assert!(cs.changes.iter().all(|c| matches!(c, Change::Create { .. })), "{:?}", kinds(&cs));
    assert_eq!(out.mutations, mutating(&log).len(), "every mutating call is counted: {log:?}");
    assert!(out.mutations >= cs.changes.len());

    // Everything exists on the ground.
    let lb = g.lb_arn(&g.name_of(&p, "elbv2:LoadBalancer")[0]).await.expect("load balancer");
    let listeners = g.elbv2.describe_listeners().load_balancer_arn(&lb).send().await.unwrap();
    assert_eq!(listeners.listeners().len(), 1);
    assert_eq!(listeners.listeners()[0].port(), Some(80));
    let rules = g.elbv2.describe_rules().listener_arn(listeners.listeners()[0].listener_arn().unwrap()).send().await.unwrap();
    assert_eq!(rules.rules().iter().filter(|r| r.is_default() != Some(true)).count(), 3);
    let mut all_targets = BTreeSet::new();
    for n in g.name_of(&p, "elbv2:TargetGroup") {
        let tg = g.tg(&n).await.unwrap_or_else(|| panic!("target group {n}"));
        all_targets.extend(g.targets(tg.target_group_arn().unwrap()).await);
    }
    assert_eq!(all_targets, ["10.1.0.1:8080", "10.1.0.2:8080", "10.2.0.1:8080"].iter().map(|s| s.to_string()).collect());
    assert_eq!(g.our_security_groups().await.len(), 1);

    // Observe reads it all back in the render's vocabulary: nothing to do.
    let observed = g.assert_steady(Some(&p)).await;
    assert_eq!(observed.len(), g.desired(Some(&p)).resources.len());

    reset_calls();
    let out = g.cloud.apply(Some(&p), &ChangeSet::default(), &observed, &g.ctx).await.unwrap();
    assert_eq!(out.mutations, 0);
    assert_eq!(mutating(&calls()), Vec::<String>::new());
    assert!(out.ready, "moto reports the load balancer active once described");
    assert_eq!(out.addresses.len(), 1);
    assert_eq!(out.addresses[0].type_, "Hostname");
    assert!(out.addresses[0].value.contains("elb"), "{:?}", out.addresses);

    // The controller's metrics see the calls by service / operation / outcome.
    let snap = g.cloud.calls().snapshot();
    assert!(snap.iter().any(|c| c.service == "elbv2" && c.operation == "CreateLoadBalancer" && c.outcome == "ok"), "{snap:?}");
    assert!(snap.iter().any(|c| c.service == "elbv2" && c.operation == "DescribeTags" && c.count >= 2), "{snap:?}");
}

/// (2) A weight change is exactly one ModifyRule; a new top-precedence rule is one CreateRule
/// plus priority moves, never recreated rules.
#[tokio::test]
async fn weight_change_is_one_modify_rule_and_new_rule_shifts_priorities() {
    let _g = GROUND.lock().await;
    let g = ground("weights").await;
    let eps = ["10.1.0.1", "10.1.0.2"];
    g.reconcile(Some(&http_plan(90, 10, &eps))).await;
    g.assert_steady(Some(&http_plan(90, 10, &eps))).await;

    let p = http_plan(50, 50, &eps);
    let (cs, out, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["update elbv2:Rule"]);
    assert_eq!(mutating(&log), vec!["elbv2:ModifyRule"], "{log:?}");
    assert_eq!(out.mutations, 1);
    g.assert_steady(Some(&p)).await;

    // Zero weight keeps its meaning: the backend stays in the rule with weight 0.
    let p = http_plan(1, 0, &eps);
    let (_, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(mutating(&log), vec!["elbv2:ModifyRule"]);
    g.assert_steady(Some(&p)).await;

    // A new rule that outranks two existing ones: they move down by one (a shift, so the
    // moving rules first step aside), nothing is recreated.
    let p = plan(&format!("{CLASS_AND_SERVICES}{HTTP_GATEWAY}{}{}", route(1, 0, true), v1_endpoints(&eps)));
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    let m = mutating(&log);
    assert_eq!(m.iter().filter(|c| *c == "elbv2:CreateRule").count(), 1, "{m:?}");
    assert!(m.iter().all(|c| c == "elbv2:CreateRule" || c == "elbv2:SetRulePriorities"), "only a create and priority moves: {m:?} for {:?}", kinds(&cs));
    assert_eq!(kinds(&cs).iter().filter(|k| *k == "update elbv2:Rule").count(), 2, "{:?}", kinds(&cs));
    assert!((1..=2).contains(&m.iter().filter(|c| *c == "elbv2:SetRulePriorities").count()), "{m:?}");
    g.assert_steady(Some(&p)).await;
}

/// (3) Endpoints come and go: only RegisterTargets / DeregisterTargets, of the difference.
#[tokio::test]
async fn endpoint_changes_only_register_and_deregister() {
    let _g = GROUND.lock().await;
    let g = ground("targets").await;
    g.reconcile(Some(&http_plan(90, 10, &["10.1.0.1", "10.1.0.2"]))).await;

    let p = http_plan(90, 10, &["10.1.0.2", "10.1.0.3", "10.1.0.4"]);
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["update elbv2:TargetGroup"]);
    let mut m = mutating(&log);
    m.sort();
    assert_eq!(m, vec!["elbv2:DeregisterTargets", "elbv2:RegisterTargets"], "{log:?}");
    let tg = g.tg(&g.name_of(&p, "elbv2:TargetGroup").into_iter().find(|n| n.contains("-v1-")).unwrap()).await.unwrap();
    assert_eq!(
        g.targets(tg.target_group_arn().unwrap()).await,
        ["10.1.0.2:8080", "10.1.0.3:8080", "10.1.0.4:8080"].iter().map(|s| s.to_string()).collect()
    );
    g.assert_steady(Some(&p)).await;

    // Only additions: one RegisterTargets.
    let p = http_plan(90, 10, &["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"]);
    let (_, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(mutating(&log), vec!["elbv2:RegisterTargets"]);
    g.assert_steady(Some(&p)).await;
}

async fn certificate_arns(g: &Ground) -> Vec<String> {
    g.observe().await.into_iter().filter(|o| o.key.kind == "acm:Certificate").map(|o| o.id).collect()
}

/// (4) TLS Secret -> imported ACM certificate on the HTTPS listener; a rotated Secret imports
/// a new certificate, moves the listener to it and deletes the old one.
#[tokio::test]
async fn https_certificate_is_imported_and_rotated() {
    let _g = GROUND.lock().await;
    let g = ground("tls").await;
    let eps = ["10.1.0.1"];
    let with = |crt: &str, key: &str| plan(&format!("{CLASS_AND_SERVICES}{HTTPS_GATEWAY}{}{}{}", route(90, 10, false), v1_endpoints(&eps), tls_secret(crt, key)));
    let p = with(CRT_A, KEY_A);
    let (_, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(mutating(&log).iter().filter(|c| *c == "acm:ImportCertificate").count(), 1, "{log:?}");
    g.assert_steady(Some(&p)).await;

    let certs = certificate_arns(&g).await;
    assert_eq!(certs.len(), 1);
    let old = certs[0].clone();
    let desc = g.acm.describe_certificate().certificate_arn(&old).send().await.unwrap();
    assert_eq!(desc.certificate().unwrap().domain_name(), Some("store.example.com"));
    let lb = g.lb_arn(&g.name_of(&p, "elbv2:LoadBalancer")[0]).await.unwrap();
    let https = |l: &aws_sdk_elasticloadbalancingv2::operation::describe_listeners::DescribeListenersOutput| {
        l.listeners().iter().find(|l| l.port() == Some(443)).cloned().expect("HTTPS listener")
    };
    let listener = https(&g.elbv2.describe_listeners().load_balancer_arn(&lb).send().await.unwrap());
    assert_eq!(listener.certificates()[0].certificate_arn(), Some(old.as_str()));
    assert_eq!(listener.ssl_policy(), Some("ELBSecurityPolicy-TLS13-1-2-2021-06"));
    // Both listener ports are open in the security group.
    let sg = g.ec2.describe_security_groups().group_ids(&g.our_security_groups().await[0]).send().await.unwrap();
    let mut ports: Vec<i32> = sg.security_groups()[0].ip_permissions().iter().filter_map(|p| p.from_port()).collect();
    ports.sort();
    assert_eq!(ports, vec![80, 443]);

    // Rotation.
    let p = with(CRT_B, KEY_B);
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["create acm:Certificate", "update elbv2:Listener", "delete acm:Certificate"]);
    assert_eq!(mutating(&log), vec!["acm:ImportCertificate", "elbv2:ModifyListener", "acm:DeleteCertificate"]);
    g.assert_steady(Some(&p)).await;
    let certs = certificate_arns(&g).await;
    assert_eq!(certs.len(), 1);
    assert_ne!(certs[0], old);
    let listener = https(&g.elbv2.describe_listeners().load_balancer_arn(&lb).send().await.unwrap());
    assert_eq!(listener.certificates()[0].certificate_arn(), Some(certs[0].as_str()));
    let err = g.acm.describe_certificate().certificate_arn(&old).send().await.unwrap_err();
    assert!(format!("{err:?}").contains("ResourceNotFoundException"), "{err:?}");
}

/// (5) Gateway deleted: diff against nothing deletes every tagged resource, children first.
#[tokio::test]
async fn delete_removes_everything_tagged() {
    let _g = GROUND.lock().await;
    let g = ground("delete").await;
    let p = plan(&format!("{CLASS_AND_SERVICES}{HTTPS_GATEWAY}{}{}{}", route(90, 10, false), v1_endpoints(&["10.1.0.1"]), tls_secret(CRT_A, KEY_A)));
    g.reconcile(Some(&p)).await;
    let before = g.observe().await;
    let kinds_before: BTreeSet<&str> = before.iter().map(|o| o.key.kind.as_str()).collect();
    assert_eq!(kinds_before.len(), 6, "every kind exists: {kinds_before:?}");

    let (cs, out, log) = g.reconcile(None).await;
    assert!(cs.changes.iter().all(|c| matches!(c, Change::Delete { .. })));
    assert_eq!(cs.changes.len(), before.len());
    assert!(out.ready && out.addresses.is_empty());
    // Listeners and rules go with their load balancer (no call each); then what they used.
    let m = mutating(&log);
    assert!(!m.iter().any(|c| c.ends_with("DeleteRule") || c.ends_with("DeleteListener")), "{m:?}");
    let pos = |a: &str| m.iter().position(|c| c.ends_with(a)).unwrap_or_else(|| panic!("{a} missing from {m:?}"));
    assert_eq!(pos("DeleteLoadBalancer"), 0, "{m:?}");
    assert!(pos("DeleteLoadBalancer") < pos("DeleteTargetGroup"));
    assert!(pos("DeleteLoadBalancer") < pos("DeleteCertificate"));
    assert!(pos("DeleteLoadBalancer") < pos("DeleteSecurityGroup"));
    assert_eq!(m.len(), 1 + 2 + 1 + 1, "load balancer, two target groups, certificate, security group: {m:?}");

    assert!(g.observe().await.is_empty());
    assert!(g.lb_arn(&g.name_of(&p, "elbv2:LoadBalancer")[0]).await.is_none());
    for n in g.name_of(&p, "elbv2:TargetGroup") {
        assert!(g.tg(&n).await.is_none(), "{n} still exists");
    }
    assert!(g.our_security_groups().await.is_empty());
    for o in before.iter().filter(|o| o.key.kind == "acm:Certificate") {
        assert!(g.acm.describe_certificate().certificate_arn(&o.id).send().await.is_err());
    }
    // And deleting again is a no-op.
    let (cs, out, _) = g.reconcile(None).await;
    assert!(cs.is_empty() && out.mutations == 0);
}

/// (6) Untagged resources, and resources tagged for another cluster, are never returned,
/// modified or deleted, through a whole create/update/delete lifecycle.
#[tokio::test]
async fn foreign_resources_are_never_touched() {
    let _g = GROUND.lock().await;
    let g = ground("foreign").await;
    let sfx = unique("f");
    let sfx = &sfx[sfx.len() - 8..];
    // An untagged target group with a target, one tagged as another cluster's, an untagged LB.
    let mk_tg = |name: String, tags: Vec<aws_sdk_elasticloadbalancingv2::types::Tag>| {
        g.elbv2.create_target_group().name(name).protocol("HTTP".into()).port(80).vpc_id(&g.ctx.network).target_type("ip".into()).set_tags(Some(tags)).send()
    };
    let untagged = mk_tg(format!("foreign-{sfx}"), vec![]).await.unwrap().target_groups()[0].target_group_arn().unwrap().to_string();
    let t = |k: &str, v: &str| aws_sdk_elasticloadbalancingv2::types::Tag::builder().key(k).value(v).build();
    let other_cluster = mk_tg(
        format!("other-{sfx}"),
        vec![t(tags::MANAGED_BY, tags::MANAGED_BY_VALUE), t(tags::CLUSTER, "someone-else"), t(tags::GATEWAY, "shop/web"), t(tags::NAME, "x")],
    )
    .await
    .unwrap()
    .target_groups()[0]
    .target_group_arn()
    .unwrap()
    .to_string();
    for arn in [&untagged, &other_cluster] {
        g.elbv2
            .register_targets()
            .target_group_arn(arn)
            .targets(aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id("10.77.0.99").port(80).build())
            .send()
            .await
            .unwrap();
    }
    let foreign_lb = g
        .elbv2
        .create_load_balancer()
        .name(format!("foreign-{sfx}"))
        .set_subnets(Some(g.ctx.subnets.clone()))
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();

    let foreign = [untagged.as_str(), other_cluster.as_str(), foreign_lb.as_str()];
    let check = |observed: &[ObservedResource]| {
        for o in observed {
            assert!(!foreign.contains(&o.id.as_str()), "observe returned a foreign resource {o:?}");
        }
    };
    check(&g.observe().await);
    let p = http_plan(90, 10, &["10.1.0.1"]);
    g.reconcile(Some(&p)).await;
    check(&g.observe().await);
    g.reconcile(Some(&http_plan(10, 90, &["10.1.0.7"]))).await;
    check(&g.observe().await);
    g.reconcile(None).await;
    assert!(g.observe().await.is_empty());

    for arn in [&untagged, &other_cluster] {
        assert_eq!(g.targets(arn).await, ["10.77.0.99:80".to_string()].into_iter().collect(), "{arn} was modified");
    }
    let lbs = g.elbv2.describe_load_balancers().load_balancer_arns(&foreign_lb).send().await.unwrap();
    assert_eq!(lbs.load_balancers().len(), 1, "the foreign load balancer survives");
}

/// (7) Errors from the wire arrive classified: a target group still used by a rule cannot be
/// deleted yet (ResourceInUse: retryable); a load balancer in a subnet that does not exist is
/// refused (permanent). The classification itself is unit-tested in `src/cloud/errors.rs`.
#[tokio::test]
async fn wire_errors_are_classified() {
    let _g = GROUND.lock().await;
    let g = ground("errors").await;
    let p = http_plan(90, 10, &["10.1.0.1"]);
    g.reconcile(Some(&p)).await;
    let observed = g.observe().await;

    // Delete a target group while rules still forward to it: out of order on purpose.
    let tg = observed.iter().find(|o| o.key.kind == "elbv2:TargetGroup").unwrap().clone();
    let cs = ChangeSet { changes: vec![Change::Delete { observed: tg }] };
    let err = g.cloud.apply(Some(&p), &cs, &observed, &g.ctx).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(&err, CloudError::Retryable { service: "elbv2", operation, .. } if operation == "DeleteTargetGroup"), "{err}");

    // An unknown subnet: the request is wrong, retrying cannot help.
    let mut bad = g.ctx.clone();
    bad.subnets = vec!["subnet-00000000000000000".into()];
    bad.cluster_id = unique("errors-bad");
    let owner = Owner { cluster_id: bad.cluster_id.clone(), gateway: ObjKey::new("shop", "web") };
    let observed = g.cloud.observe(&owner, &bad).await.unwrap();
    let desired = g.cloud.render(&p, &bad).unwrap();
    let cs = diff(&desired, &observed, &bad.cluster_id, KIND_ORDER);
    let err = g.cloud.apply(Some(&p), &cs, &observed, &bad).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let snap = g.cloud.calls().snapshot();
    assert!(snap.iter().any(|c| c.operation == "DeleteTargetGroup" && c.outcome == "retryable"), "{snap:?}");
    assert!(snap.iter().any(|c| c.operation == "CreateLoadBalancer" && c.outcome == "error"), "{snap:?}");

    // Clean up what the bad context created (its security group) and the good one.
    let observed = g.cloud.observe(&owner, &bad).await.unwrap();
    let cs = diff(&ResourceGraph::default(), &observed, &bad.cluster_id, KIND_ORDER);
    g.cloud.apply(None, &cs, &observed, &bad).await.unwrap();
    g.reconcile(None).await;
}

/// A target group setting that cannot change in place (protocol version, here HTTP1 -> HTTP2
/// when the Service port becomes h2c): a new group under the same key, the rules that forward
/// to it re-pointed (their spec, by name, did not change), the old group deleted.
#[tokio::test]
async fn immutable_target_group_change_replaces_and_repoints() {
    let _g = GROUND.lock().await;
    let g = ground("replace").await;
    let eps = ["10.1.0.1"];
    let p = http_plan(90, 10, &eps);
    g.reconcile(Some(&p)).await;
    let before = g.observe().await;
    let v1 = before.iter().find(|o| o.key.kind == "elbv2:TargetGroup" && o.key.name.contains("-v1-")).unwrap().clone();

    let h2c = CLASS_AND_SERVICES.replace("metadata: {name: v1, namespace: shop}\nspec: {ports: [{name: http, port: 80}]}", "metadata: {name: v1, namespace: shop}\nspec: {ports: [{name: http, port: 80, appProtocol: kubernetes.io/h2c}]}");
    assert_ne!(h2c, CLASS_AND_SERVICES);
    let p = plan(&format!("{h2c}{HTTP_GATEWAY}{}{}", route(90, 10, false), v1_endpoints(&eps)));
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["update elbv2:TargetGroup"]);
    assert_eq!(
        mutating(&log),
        vec!["elbv2:CreateTargetGroup", "elbv2:RegisterTargets", "elbv2:ModifyRule", "elbv2:DeleteTargetGroup"],
        "only the weighted rule forwards to v1"
    );
    let after = g.assert_steady(Some(&p)).await;
    let v1_new = after.iter().find(|o| o.key == v1.key).unwrap();
    assert_ne!(v1_new.id, v1.id);
    assert_eq!(v1_new.spec["protocolVersion"], "HTTP2");
    let err = g.elbv2.describe_target_groups().target_group_arns(&v1.id).send().await.unwrap_err();
    assert!(format!("{err:?}").contains("TargetGroupNotFound"));
    g.reconcile(None).await;
    assert!(g.observe().await.is_empty());
}

/// gRPC backends: GRPC target groups with a gRPC health check matcher read back unchanged.
#[tokio::test]
async fn grpc_route_reads_back_steady() {
    let _g = GROUND.lock().await;
    let g = ground("grpc").await;
    let grpc = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: shop}
spec:
  parentRefs: [{name: web}]
  hostnames: [rpc.example.com]
  rules:
  - matches: [{method: {service: shop.Cart, method: Add}}]
    backendRefs: [{name: v2, port: 80}]
"#;
    let p = plan(&format!("{CLASS_AND_SERVICES}{HTTP_GATEWAY}{grpc}"));
    g.reconcile(Some(&p)).await;
    let observed = g.assert_steady(Some(&p)).await;
    let tg = observed.iter().find(|o| o.key.kind == "elbv2:TargetGroup").unwrap();
    assert_eq!(tg.spec["protocolVersion"], "GRPC");
    assert_eq!(tg.spec["matcher"], "0-99");
    g.reconcile(None).await;
}

/// The managed attributes of a target group, as ALB reports them.
async fn attributes(g: &Ground, arn: &str) -> std::collections::BTreeMap<String, String> {
    let out = g
        .elbv2
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .unwrap();
    out.attributes()
        .iter()
        .filter(|a| {
            [
                "deregistration_delay.timeout_seconds",
                "slow_start.duration_seconds",
                "load_balancing.algorithm.type",
            ]
            .contains(&a.key().unwrap_or(""))
        })
        .map(|a| {
            (
                a.key().unwrap().to_string(),
                a.value().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn attrs(dereg: &str, slow: &str, alg: &str) -> std::collections::BTreeMap<String, String> {
    [
        (
            "deregistration_delay.timeout_seconds".to_string(),
            dereg.to_string(),
        ),
        ("slow_start.duration_seconds".to_string(), slow.to_string()),
        ("load_balancing.algorithm.type".to_string(), alg.to_string()),
    ]
    .into()
}

/// BackendPolicy settings land as target group attributes (one ModifyTargetGroupAttributes per
/// group, changed keys only), a second reconcile makes no mutating call, a changed algorithm is
/// one more call, and removing the policy restores ALB's defaults. A protocol version change
/// replaces the group.
#[tokio::test]
async fn backend_settings_land_as_attributes_and_removal_restores_defaults() {
    use cloudgate_provider::backend::{
        BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm,
    };
    let _g = GROUND.lock().await;
    let mut g = ground("bepolicy").await;
    let p = http_plan(90, 10, &["10.1.0.1"]);
    g.reconcile(Some(&p)).await;
    let tg_arn = |o: &[ObservedResource], svc: &str| {
        o.iter()
            .find(|r| {
                r.key.kind == "elbv2:TargetGroup"
                    && r.tags[tags::RESOURCE] == format!("target-group/shop/{svc}:80")
            })
            .unwrap()
            .id
            .clone()
    };
    let before = g.observe().await;
    let (v1, v2) = (tg_arn(&before, "v1"), tg_arn(&before, "v2"));
    assert_eq!(attributes(&g, &v1).await, attrs("300", "0", "round_robin"));

    g.ctx.backend_settings.insert(
        ObjKey::new("shop", "v1"),
        BackendSettings {
            deregistration_delay_seconds: Some(20),
            slow_start_seconds: Some(45),
            ..Default::default()
        },
    );
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["update elbv2:TargetGroup"]);
    assert_eq!(mutating(&log), vec!["elbv2:ModifyTargetGroupAttributes"]);
    assert_eq!(attributes(&g, &v1).await, attrs("20", "45", "round_robin"));
    assert_eq!(
        attributes(&g, &v2).await,
        attrs("300", "0", "round_robin"),
        "only the targeted Service"
    );

    // Steady: nothing to change, and applying the empty change set calls nothing mutating.
    g.assert_steady(Some(&p)).await;
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert!(cs.is_empty(), "{:#?}", cs.changes);
    assert_eq!(mutating(&log), Vec::<String>::new());
    // The attributes apply wrote are cached: observe reads none while the TTL runs.
    reset_calls();
    g.observe().await;
    assert!(
        !calls()
            .iter()
            .any(|c| c == "elbv2:DescribeTargetGroupAttributes"),
        "{:?}",
        calls()
    );

    // Slow start off and least outstanding requests in one call (ALB refuses the two together).
    g.ctx.backend_settings.insert(
        ObjKey::new("shop", "v1"),
        BackendSettings {
            deregistration_delay_seconds: Some(20),
            slow_start_seconds: Some(0),
            algorithm: Some(LoadBalancingAlgorithm::LeastRequest),
            ..Default::default()
        },
    );
    let (_, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(mutating(&log), vec!["elbv2:ModifyTargetGroupAttributes"]);
    assert_eq!(
        attributes(&g, &v1).await,
        attrs("20", "0", "least_outstanding_requests")
    );
    g.assert_steady(Some(&p)).await;

    // The policy goes: ALB's defaults come back.
    g.ctx.backend_settings.clear();
    let (_, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(mutating(&log), vec!["elbv2:ModifyTargetGroupAttributes"]);
    assert_eq!(attributes(&g, &v1).await, attrs("300", "0", "round_robin"));
    g.assert_steady(Some(&p)).await;

    // A protocol version is fixed at creation: a new group (with the policy's attributes),
    // rules re-pointed, the old group deleted.
    g.ctx.backend_settings.insert(
        ObjKey::new("shop", "v1"),
        BackendSettings {
            protocol_version: Some(BackendProtocolVersion::Http2),
            algorithm: Some(LoadBalancingAlgorithm::Random),
            ..Default::default()
        },
    );
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["update elbv2:TargetGroup"]);
    assert_eq!(
        mutating(&log),
        vec![
            "elbv2:CreateTargetGroup",
            "elbv2:ModifyTargetGroupAttributes",
            "elbv2:RegisterTargets",
            "elbv2:ModifyRule",
            "elbv2:DeleteTargetGroup"
        ]
    );
    let after = g.assert_steady(Some(&p)).await;
    let v1_new = tg_arn(&after, "v1");
    assert_ne!(v1_new, v1);
    assert_eq!(
        g.elbv2
            .describe_target_groups()
            .target_group_arns(&v1_new)
            .send()
            .await
            .unwrap()
            .target_groups()[0]
            .protocol_version(),
        Some("HTTP2")
    );
    assert_eq!(
        attributes(&g, &v1_new).await,
        attrs("300", "0", "weighted_random")
    );
    assert!(
        format!(
            "{:?}",
            g.elbv2
                .describe_target_groups()
                .target_group_arns(&v1)
                .send()
                .await
                .unwrap_err()
        )
        .contains("TargetGroupNotFound")
    );

    g.reconcile(None).await;
    assert!(g.observe().await.is_empty());
}

/// An attribute changed behind cloudgate's back is put back once the attribute cache entry has
/// expired (a zero TTL here: every observe reads the attributes).
#[tokio::test]
async fn attribute_drift_is_corrected_after_the_cache_ttl() {
    let _g = GROUND.lock().await;
    let mut g = ground("attrdrift").await;
    let opts = CloudOptions {
        requests_per_second: 200.0,
        burst: 50,
        attribute_cache_ttl: std::time::Duration::ZERO,
        ..CloudOptions::default()
    };
    g.cloud = AlbCloud::new(&load_sdk_config(&opts).await, &opts);
    let p = http_plan(90, 10, &["10.1.0.1"]);
    g.reconcile(Some(&p)).await;
    let o = g.observe().await;
    let tg = o
        .iter()
        .find(|r| r.key.kind == "elbv2:TargetGroup")
        .unwrap()
        .id
        .clone();
    let a = aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
        .key("slow_start.duration_seconds")
        .value("120")
        .build();
    g.elbv2
        .modify_target_group_attributes()
        .target_group_arn(&tg)
        .attributes(a)
        .send()
        .await
        .unwrap();
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["update elbv2:TargetGroup"]);
    assert_eq!(mutating(&log), vec!["elbv2:ModifyTargetGroupAttributes"]);
    assert_eq!(attributes(&g, &tg).await, attrs("300", "0", "round_robin"));
    g.reconcile(None).await;
}

/// HealthCheckPolicy settings land on the target group (one ModifyTargetGroup with the whole
/// health check), read back steady, and removing the policy restores cloudgate's defaults.
#[tokio::test]
async fn health_check_policy_lands_and_removal_restores_defaults() {
    use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};
    let _g = GROUND.lock().await;
    let mut g = ground("hcpolicy").await;
    let p = http_plan(90, 10, &["10.1.0.1"]);
    g.reconcile(Some(&p)).await;
    let names = g.name_of(&p, "elbv2:TargetGroup");
    let v1_name = names.iter().find(|n| n.contains("-v1-")).unwrap().clone();
    let read = |t: &aws_sdk_elasticloadbalancingv2::types::TargetGroup| {
        (
            t.health_check_protocol().map(|p| p.as_str().to_string()),
            t.health_check_port().map(str::to_string),
            t.health_check_path().map(str::to_string),
            t.health_check_interval_seconds(),
            t.health_check_timeout_seconds(),
            t.healthy_threshold_count(),
            t.unhealthy_threshold_count(),
            t.matcher().and_then(|m| m.http_code()).map(str::to_string),
        )
    };
    let s = |v: &str| Some(v.to_string());
    let defaults = (
        s("HTTP"),
        s("traffic-port"),
        s("/"),
        Some(30),
        Some(5),
        Some(5),
        Some(2),
        s("200-499"),
    );
    assert_eq!(read(&g.tg(&v1_name).await.unwrap()), defaults);

    g.ctx.health_checks.insert(
        ObjKey::new("shop", "v1"),
        HealthCheck {
            protocol: Some(HealthCheckProtocol::Http),
            path: Some("/healthz".into()),
            port: Some(9000),
            interval_seconds: Some(10),
            timeout_seconds: Some(3),
            healthy_threshold: Some(2),
            unhealthy_threshold: Some(4),
            http_codes: Some("200,204".into()),
            grpc_codes: None,
        },
    );
    let (cs, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(kinds(&cs), vec!["update elbv2:TargetGroup"]);
    assert_eq!(mutating(&log), vec!["elbv2:ModifyTargetGroup"]);
    assert_eq!(
        read(&g.tg(&v1_name).await.unwrap()),
        (
            s("HTTP"),
            s("9000"),
            s("/healthz"),
            Some(10),
            Some(3),
            Some(2),
            Some(4),
            s("200,204")
        )
    );
    g.assert_steady(Some(&p)).await;
    let (_, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(mutating(&log), Vec::<String>::new());

    g.ctx.health_checks.clear();
    let (_, _, log) = g.reconcile(Some(&p)).await;
    assert_eq!(mutating(&log), vec!["elbv2:ModifyTargetGroup"]);
    assert_eq!(read(&g.tg(&v1_name).await.unwrap()), defaults);
    g.assert_steady(Some(&p)).await;
    g.reconcile(None).await;
}

// --- lost answers (the fault proxy) ----------------------------------------------------------

/// Configures the ground's fault proxy (tests/ground/faults): `POST /_faults/config`.
fn faults_config(body: serde_json::Value) {
    let control = std::env::var("FAULTS_CONTROL_URL").unwrap_or_else(|_| panic!("FAULTS_CONTROL_URL is not set: run via tests/run (tests/ground/faults/up.sh)"));
    let hostport = control.trim_start_matches("http://").trim_end_matches('/').to_string();
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(&hostport).expect("connect to the fault proxy");
    write!(s, "POST /_faults/config HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert!(buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200"), "{buf}");
}

/// A provider whose SDK clients talk to `via`. The clients read AWS_ENDPOINT_URL from the
/// environment when they are built, ahead of the SdkConfig's own endpoint, so it is swapped for
/// that moment; every test holds the GROUND lock before it builds clients, so no other test
/// reads it meanwhile.
async fn through(via: &str, opts: &CloudOptions) -> AlbCloud {
    let direct = endpoint();
    // SAFETY: no other thread reads or writes the environment while GROUND is held (above).
    unsafe { std::env::set_var("AWS_ENDPOINT_URL", via) };
    let cloud = AlbCloud::new(&load_sdk_config(opts).await, opts);
    unsafe { std::env::set_var("AWS_ENDPOINT_URL", direct) };
    cloud
}


/// (9) Every create whose answer is lost (the call happened, the client timed out and the SDK
/// retried) ends in exactly the desired resources: the retry's "already exists" is a wait, the
/// next observe finds the resource by its tags, and nothing is duplicated. One operation at a
/// time, each with a single held answer, through the fault proxy.
#[tokio::test]
async fn a_create_whose_answer_is_lost_is_found_not_duplicated() {
    let _g = GROUND.lock().await;
    let proxy = std::env::var("FAULTS_AWS_ENDPOINT_URL").unwrap_or_else(|_| panic!("FAULTS_AWS_ENDPOINT_URL is not set: run via tests/run"));
    for op in [
        "ec2:CreateSecurityGroup",
        "ec2:AuthorizeSecurityGroupIngress",
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:CreateRule",
    ] {
        let mut g = ground("lost").await;
        // The provider talks through the proxy; the test's own reads go direct.
        let opts = CloudOptions { requests_per_second: 200.0, burst: 50, sdk: cloudgate_aws_runtime::SdkSettings { attempt_timeout: std::time::Duration::from_secs(1), ..Default::default() }, ..CloudOptions::default() };
        g.cloud = through(&proxy, &opts).await;
        faults_config(serde_json::json!({"rates": {"throttle": 0, "error5xx": 0, "timeout": 1.0, "drop": 0}, "hold_seconds": 2, "operations": [op], "budget": 1}));
        let p = http_plan(90, 10, &["10.1.0.1"]);
        let mut errors = Vec::new();
        for _ in 0..5 {
            let observed = g.observe().await;
            let changes = diff(&g.desired(Some(&p)), &observed, &g.ctx.cluster_id, KIND_ORDER);
            if changes.is_empty() {
                break;
            }
            match g.cloud.apply(Some(&p), &changes, &observed, &g.ctx).await {
                Ok(_) => {}
                Err(e) => {
                    assert!(e.is_retryable(), "{op}: a lost answer must not be a permanent error: {e}");
                    errors.push(e.to_string());
                }
            }
        }
        faults_config(serde_json::json!({"rates": {"timeout": 0}, "operations": null, "budget": null}));
        let observed = g.assert_steady(Some(&p)).await;
        assert_eq!(observed.len(), g.desired(Some(&p)).resources.len(), "{op}: duplicates: {observed:#?}");
        assert_eq!(g.our_security_groups().await.len(), 1, "{op}");
        eprintln!("{op}: converged; errors on the way: {errors:?}");
        let (_, out, _) = g.reconcile(None).await;
        assert!(out.ready);
        assert!(g.observe().await.is_empty(), "{op}: left behind");
    }
}
