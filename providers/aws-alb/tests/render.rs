//! ALB render: what a Gateway + routes become on ELBv2, EC2 and ACM.

use cloudgate_aws_alb::{capabilities, AlbProvider, KIND_LISTENER, KIND_LOAD_BALANCER, KIND_ORDER, KIND_RULE, KIND_TARGET_GROUP};
use cloudgate_provider::diff::{diff, ObservedResource};
use cloudgate_provider::{tags, Provider, RenderContext, ResourceGraph};
use cloudgate_translate::manifest::{load_str, Loaded};
use cloudgate_translate::model::ObjKey;
use cloudgate_translate::{translate_gateway, World};
use serde_json::{json, Value};

const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cg}
spec: {controllerName: cloudgate.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: shop, uid: "1234"}
spec:
  gatewayClassName: cg
  listeners:
  - {name: http, protocol: HTTP, port: 80}
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
metadata: {name: v1-a, namespace: shop, labels: {kubernetes.io/service-name: v1}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.1.0.2]}, {addresses: [10.1.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v2-a, namespace: shop, labels: {kubernetes.io/service-name: v2}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.2.0.1]}]
"#;

const ROUTE: &str = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: store, namespace: shop}
spec:
  parentRefs: [{name: web}]
  hostnames: [store.example.com]
  rules:
  - backendRefs: [{name: v1, port: 80, weight: 90}, {name: v2, port: 80, weight: 10}]
  - matches:
    - path: {type: PathPrefix, value: /api/}
      method: POST
      headers: [{name: x-canary, value: "a*b"}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
"#;

fn ctx() -> RenderContext {
    RenderContext {
        cluster_id: "prod-1".into(),
        region: "us-east-1".into(),
        network: "vpc-123".into(),
        subnets: vec!["subnet-a".into(), "subnet-b".into()],
        ..Default::default()
    }
}

fn render(yaml: &str) -> ResourceGraph {
    let mut w = World::new();
    let mut l = Loaded::default();
    load_str("t", yaml, &mut w, &mut l).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let t = translate_gateway(&w, &ObjKey::new("shop", "web"), &capabilities()).unwrap();
    AlbProvider::default().render(&t.plan, &ctx()).unwrap()
}

fn of_kind<'a>(g: &'a ResourceGraph, kind: &str) -> Vec<&'a Value> {
    g.resources.iter().filter(|r| r.key.kind == kind).map(|r| &r.spec).collect()
}

#[test]
fn gateway_becomes_alb_listener_rules_and_target_groups() {
    let g = render(&format!("{BASE}{ROUTE}"));
    let lb = of_kind(&g, KIND_LOAD_BALANCER);
    assert_eq!(lb.len(), 1);
    assert_eq!(lb[0]["scheme"], "internet-facing");
    assert_eq!(lb[0]["subnets"], json!(["subnet-a", "subnet-b"]));

    let listeners = of_kind(&g, KIND_LISTENER);
    assert_eq!(listeners[0]["port"], 80);
    assert_eq!(listeners[0]["defaultAction"]["statusCode"], "404");

    let mut tgs = of_kind(&g, KIND_TARGET_GROUP);
    tgs.sort_by_key(|t| t["targets"][0]["id"].as_str().unwrap().to_string());
    assert_eq!(tgs[0]["targets"], json!([{"id": "10.1.0.1", "port": 8080}, {"id": "10.1.0.2", "port": 8080}]));
    assert_eq!(tgs[0]["targetType"], "ip");
    assert_eq!(tgs[1]["targets"], json!([{"id": "10.2.0.1", "port": 8080}]));

    let mut rules = of_kind(&g, KIND_RULE);
    rules.sort_by_key(|r| r["priority"].as_u64());
    // Exact /old first, then the POST+header prefix rule, then the catch-all split.
    assert_eq!(rules[0]["priority"], 1);
    assert_eq!(rules[0]["actions"][0]["type"], "redirect");
    assert_eq!(rules[0]["actions"][0]["protocol"], "HTTPS");
    assert_eq!(rules[0]["actions"][0]["port"], "443");
    assert_eq!(rules[0]["actions"][0]["statusCode"], "HTTP_301");
    assert_eq!(rules[1]["priority"], 2);
    let conds = &rules[1]["conditions"];
    assert_eq!(conds[0], json!({"field": "host-header", "values": ["store.example.com"]}));
    // A prefix is a path element match: "/api" and "/api/*", never "/apiary".
    assert_eq!(conds[1], json!({"field": "path-pattern", "values": ["/api", "/api/*"]}));
    assert_eq!(conds[2], json!({"field": "http-request-method", "values": ["POST"]}));
    // ALB wildcards in a literal header value are escaped.
    assert_eq!(conds[3], json!({"field": "http-header", "httpHeaderName": "x-canary", "values": ["a\\*b"]}));
    assert_eq!(rules[2]["priority"], 3);
    let tgw = &rules[2]["actions"][0]["targetGroups"];
    assert_eq!(tgw[0]["weight"], 90);
    assert_eq!(tgw[1]["weight"], 10);
}

#[test]
fn every_resource_is_owned_and_named_within_limits() {
    let g = render(&format!("{BASE}{ROUTE}"));
    for r in &g.resources {
        assert!(tags::owned_by(&r.tags, "prod-1"), "{} lacks ownership tags", r.key);
        assert_eq!(r.tags[tags::GATEWAY], "shop/web");
        if matches!(r.key.kind.as_str(), "elbv2:LoadBalancer" | "elbv2:TargetGroup") {
            assert!(r.key.name.len() <= 32, "{} too long", r.key.name);
        }
        for d in &r.depends_on {
            let pos = |k| g.resources.iter().position(|x| &x.key == k).unwrap();
            assert!(pos(d) < pos(&r.key), "{} must come after {}", r.key, d);
        }
    }
}

/// ELBv2 and ACM refuse tag values outside `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$` (moto does not
/// check): a rule without hostname, or with a wildcard one, must not put `*` in a tag.
#[test]
fn tag_values_fit_the_aws_tag_pattern() {
    let wildcard = ROUTE.replace("hostnames: [store.example.com]", "hostnames: [\"*.example.com\"]");
    for yaml in [format!("{BASE}{ROUTE}"), format!("{BASE}{}", ROUTE.replace("  hostnames: [store.example.com]\n", "")), format!("{BASE}{wildcard}")] {
        for r in &render(&yaml).resources {
            for (k, v) in &r.tags {
                let ok = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
                assert!(ok(k) && k.len() <= 128, "{}: tag key {k:?}", r.key);
                assert!(ok(v) && v.chars().count() <= 256, "{}: tag {k}={v:?}", r.key);
            }
        }
    }
}

#[test]
fn weight_change_is_one_rule_update_and_steady_state_is_nothing() {
    let before = render(&format!("{BASE}{ROUTE}"));
    let observed: Vec<ObservedResource> = before
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| ObservedResource { key: r.key.clone(), id: format!("arn:{i}"), tags: r.tags.clone(), spec: r.spec.clone() })
        .collect();
    assert!(diff(&before, &observed, "prod-1", KIND_ORDER).is_empty());

    let after = render(&format!("{BASE}{}", ROUTE.replace("weight: 90", "weight: 50").replace("weight: 10}", "weight: 50}")));
    let cs = diff(&after, &observed, "prod-1", KIND_ORDER);
    assert_eq!(cs.changes.len(), 1, "{:#?}", cs.changes);
    assert_eq!(cs.changes[0].key().kind, KIND_RULE);
}

#[test]
fn large_weights_scale_into_alb_range() {
    let g = render(&format!("{BASE}{}", ROUTE.replace("weight: 10}", "weight: 0}").replace("weight: 90", "weight: 1000000")));
    let rules = of_kind(&g, KIND_RULE);
    let split = rules.iter().find(|r| r["actions"][0]["type"] == "forward" && r["actions"][0]["targetGroups"].as_array().unwrap().len() == 2).unwrap();
    assert_eq!(split["actions"][0]["targetGroups"][0]["weight"], 999);
    assert_eq!(split["actions"][0]["targetGroups"][1]["weight"], 0);
}
