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

fn render_with(yaml: &str, ctx: &RenderContext) -> ResourceGraph {
    let mut w = World::new();
    let mut l = Loaded::default();
    load_str("t", yaml, &mut w, &mut l).unwrap();
    let t = translate_gateway(&w, &ObjKey::new("shop", "web"), &capabilities()).unwrap();
    AlbProvider::default().render(&t.plan, ctx).unwrap()
}

/// The target group of Service `svc` (both Services listen on port 80).
fn tg_of<'a>(g: &'a ResourceGraph, svc: &str) -> &'a Value {
    let role = format!("target-group/shop/{svc}:80");
    &g.resources
        .iter()
        .find(|r| r.key.kind == KIND_TARGET_GROUP && r.tags[tags::RESOURCE] == role)
        .unwrap_or_else(|| panic!("no target group for {svc}"))
        .spec
}

#[test]
fn backend_settings_become_target_group_attributes_and_unset_ones_alb_defaults() {
    use cloudgate_provider::backend::{
        BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm,
    };
    let yaml = format!("{BASE}{ROUTE}");
    let plain = render_with(&yaml, &ctx());
    let defaults = json!({"deregistration_delay.timeout_seconds": "300", "slow_start.duration_seconds": "0", "load_balancing.algorithm.type": "round_robin"});
    assert_eq!(tg_of(&plain, "v1")["attributes"], defaults);
    assert_eq!(tg_of(&plain, "v1")["protocolVersion"], "HTTP1");

    let mut c = ctx();
    c.backend_settings.insert(
        ObjKey::new("shop", "v1"),
        BackendSettings {
            deregistration_delay_seconds: Some(30),
            slow_start_seconds: Some(60),
            ..Default::default()
        },
    );
    c.backend_settings.insert(
        ObjKey::new("shop", "v2"),
        BackendSettings {
            protocol_version: Some(BackendProtocolVersion::Http2),
            algorithm: Some(LoadBalancingAlgorithm::LeastRequest),
            ..Default::default()
        },
    );
    let g = render_with(&yaml, &c);
    assert_eq!(
        tg_of(&g, "v1")["attributes"],
        json!({"deregistration_delay.timeout_seconds": "30", "slow_start.duration_seconds": "60", "load_balancing.algorithm.type": "round_robin"})
    );
    assert_eq!(tg_of(&g, "v1")["protocolVersion"], "HTTP1");
    assert_eq!(
        tg_of(&g, "v2")["attributes"],
        json!({"deregistration_delay.timeout_seconds": "300", "slow_start.duration_seconds": "0", "load_balancing.algorithm.type": "least_outstanding_requests"})
    );
    assert_eq!(tg_of(&g, "v2")["protocolVersion"], "HTTP2");
    // Same keys: attributes change in place; the protocol version change is an update apply
    // turns into a replacement group.
    let observed: Vec<ObservedResource> = plain
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| ObservedResource {
            key: r.key.clone(),
            id: format!("arn:{i}"),
            tags: r.tags.clone(),
            spec: r.spec.clone(),
        })
        .collect();
    let cs = diff(&g, &observed, "prod-1", KIND_ORDER);
    assert_eq!(cs.changes.len(), 2, "{:#?}", cs.changes);
    assert!(cs.changes.iter().all(|c| c.key().kind == KIND_TARGET_GROUP
        && matches!(c, cloudgate_provider::diff::Change::Update { .. })));
}

#[test]
fn grpc_route_backends_stay_grpc_whatever_the_policy_says() {
    use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings};
    let grpc = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: shop}
spec:
  parentRefs: [{name: web}]
  rules:
  - backendRefs: [{name: v1, port: 80}]
"#;
    let mut c = ctx();
    c.backend_settings.insert(
        ObjKey::new("shop", "v1"),
        BackendSettings {
            protocol_version: Some(BackendProtocolVersion::Http1),
            ..Default::default()
        },
    );
    let g = render_with(&format!("{BASE}{grpc}"), &c);
    assert_eq!(tg_of(&g, "v1")["protocolVersion"], "GRPC");
    assert_eq!(tg_of(&g, "v1")["matcher"], "0-99");
    // An HTTPRoute backend the policy makes gRPC gets the gRPC health check defaults.
    let mut c = ctx();
    c.backend_settings.insert(
        ObjKey::new("shop", "v2"),
        BackendSettings {
            protocol_version: Some(BackendProtocolVersion::Grpc),
            ..Default::default()
        },
    );
    let g = render_with(&format!("{BASE}{ROUTE}"), &c);
    assert_eq!(tg_of(&g, "v2")["protocolVersion"], "GRPC");
    assert_eq!(tg_of(&g, "v2")["healthCheckPath"], "/AWS.ALB/healthcheck");
    assert_eq!(tg_of(&g, "v2")["matcher"], "0-99");
}

#[test]
fn backend_settings_support_names_what_alb_cannot_do() {
    use cloudgate_provider::backend::{
        BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm,
    };
    let p = AlbProvider::default();
    let all = BackendSettings {
        protocol_version: Some(BackendProtocolVersion::Grpc),
        deregistration_delay_seconds: Some(3600),
        slow_start_seconds: Some(900),
        algorithm: Some(LoadBalancingAlgorithm::Random),
    };
    assert_eq!(p.backend_settings_support(&all), Ok(()));
    assert_eq!(
        p.backend_settings_support(&BackendSettings {
            slow_start_seconds: Some(0),
            algorithm: Some(LoadBalancingAlgorithm::LeastRequest),
            ..Default::default()
        }),
        Ok(())
    );
    let lor = BackendSettings {
        slow_start_seconds: Some(30),
        algorithm: Some(LoadBalancingAlgorithm::LeastRequest),
        ..Default::default()
    };
    assert!(
        p.backend_settings_support(&lor)
            .unwrap_err()
            .contains("slow start with the LeastRequest")
    );
    let short = BackendSettings {
        slow_start_seconds: Some(10),
        ..Default::default()
    };
    assert_eq!(
        p.backend_settings_support(&short).unwrap_err(),
        "slowStartSeconds 10: aws-alb takes 0 (off) or 30 to 900"
    );
    let long = BackendSettings {
        deregistration_delay_seconds: Some(3601),
        ..Default::default()
    };
    assert_eq!(
        p.backend_settings_support(&long).unwrap_err(),
        "deregistrationDelaySeconds 3601: aws-alb takes 0 to 3600"
    );
}

#[test]
fn health_check_policy_sets_every_field_and_unset_ones_keep_the_defaults() {
    use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};
    let yaml = format!("{BASE}{ROUTE}");
    let plain = render_with(&yaml, &ctx());
    let hc_fields = |v: &Value| {
        json!([
            v["healthCheckProtocol"],
            v["healthCheckPort"],
            v["healthCheckPath"],
            v["healthCheckIntervalSeconds"],
            v["healthCheckTimeoutSeconds"],
            v["healthyThresholdCount"],
            v["unhealthyThresholdCount"],
            v["matcher"]
        ])
    };
    assert_eq!(
        hc_fields(tg_of(&plain, "v1")),
        json!(["HTTP", "traffic-port", "/", 30, 5, 5, 2, "200-499"])
    );

    let mut c = ctx();
    let hc = HealthCheck {
        protocol: Some(HealthCheckProtocol::Https),
        path: Some("/healthz".into()),
        port: Some(8443),
        interval_seconds: Some(10),
        healthy_threshold: Some(3),
        http_codes: Some("200,204".into()),
        ..Default::default()
    };
    c.health_checks.insert(ObjKey::new("shop", "v1"), hc);
    let g = render_with(&yaml, &c);
    assert_eq!(
        hc_fields(tg_of(&g, "v1")),
        json!(["HTTPS", "8443", "/healthz", 10, 5, 3, 2, "200,204"])
    );
    assert_eq!(
        hc_fields(tg_of(&g, "v2")),
        hc_fields(tg_of(&plain, "v2")),
        "only the targeted Service"
    );
}

#[test]
fn health_check_support_names_what_alb_cannot_do() {
    use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};
    let p = AlbProvider::default();
    let ok = HealthCheck {
        protocol: Some(HealthCheckProtocol::Grpc),
        grpc_codes: Some("0-12".into()),
        interval_seconds: Some(5),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    assert_eq!(p.health_check_support(&ok), Ok(()));
    let err = |hc: HealthCheck| p.health_check_support(&hc).unwrap_err();
    assert!(
        err(HealthCheck {
            protocol: Some(HealthCheckProtocol::Http2),
            ..Default::default()
        })
        .contains("HTTP2 is not an ALB health check protocol")
    );
    assert!(
        err(HealthCheck {
            protocol: Some(HealthCheckProtocol::Tcp),
            ..Default::default()
        })
        .contains("not TCP")
    );
    assert_eq!(
        err(HealthCheck {
            timeout_seconds: Some(1),
            ..Default::default()
        }),
        "timeoutSeconds 1: aws-alb takes 2 to 120"
    );
    assert_eq!(
        err(HealthCheck {
            interval_seconds: Some(301),
            ..Default::default()
        }),
        "intervalSeconds 301: aws-alb takes 5 to 300"
    );
    assert_eq!(
        err(HealthCheck {
            unhealthy_threshold: Some(11),
            ..Default::default()
        }),
        "unhealthyThreshold 11: aws-alb takes 2 to 10"
    );
    // Against the default interval (30 s) when only the timeout is set.
    assert!(
        err(HealthCheck {
            timeout_seconds: Some(60),
            ..Default::default()
        })
        .contains("timeoutSeconds 60 must be less than intervalSeconds 30")
    );
    assert!(
        err(HealthCheck {
            http_codes: Some("200-599".into()),
            ..Default::default()
        })
        .contains("from 200 to 499")
    );
    assert!(
        err(HealthCheck {
            http_codes: Some("100".into()),
            ..Default::default()
        })
        .contains("from 200 to 499")
    );
}

/// An HTTPRoute document `name` in `shop` with `parent` as its parentRef and `rules` (YAML
/// below `rules:`).
fn route_doc(name: &str, parent: &str, rules: &str) -> String {
    format!("\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  parentRefs: [{parent}]\n  rules:\n{rules}")
}

/// The listener rules of `g` as (listener port, rule spec).
fn rules_by_port(g: &ResourceGraph) -> Vec<(i64, Value)> {
    let port_of = |listener: &str| g.resources.iter().find(|r| r.key.kind == KIND_LISTENER && r.key.name == listener).map(|l| l.spec["port"].as_i64().unwrap());
    of_kind(g, KIND_RULE).into_iter().map(|r| (port_of(r["listener"].as_str().unwrap()).expect("the rule's listener"), r.clone())).collect()
}

/// HTTPRouteQueryParamMatching: a query parameter match is an ALB `query-string` condition,
/// ANDed with the path.
#[test]
fn query_param_match_becomes_a_query_string_condition() {
    let route = route_doc(
        "store",
        "{name: web}",
        "  - matches: [{path: {type: Exact, value: /search}, queryParams: [{name: debug, value: \"1\"}]}]\n    backendRefs: [{name: v1, port: 80}]\n",
    );
    let g = render(&format!("{BASE}{route}"));
    let rules = of_kind(&g, KIND_RULE);
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["conditions"],
        json!([{"field": "path-pattern", "values": ["/search"]}, {"field": "query-string", "values": [{"key": "debug", "value": "1"}]}])
    );
}

/// HTTPRoutePortRedirect: a redirect to another port keeps the request's scheme, host, path and
/// query and sets the port; a scheme redirect with a port keeps that port.
#[test]
fn port_redirect_sets_the_port_and_keeps_the_rest() {
    let rules = r#"
  - matches: [{path: {type: PathPrefix, value: /alt}}]
    filters: [{type: RequestRedirect, requestRedirect: {port: 8443}}]
  - matches: [{path: {type: PathPrefix, value: /secure}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, port: 8443, statusCode: 301}}]
"#;
    let route = route_doc("store", "{name: web}", rules);
    let g = render(&format!("{BASE}{route}"));
    let mut rules = of_kind(&g, KIND_RULE);
    rules.sort_by_key(|r| r["conditions"][0]["values"][0].as_str().map(str::to_string));
    assert_eq!(rules[0]["conditions"][0]["values"], json!(["/alt", "/alt/*"]));
    assert_eq!(
        rules[0]["actions"][0],
        json!({"type": "redirect", "protocol": "#{protocol}", "host": "#{host}", "port": "8443", "path": "/#{path}", "query": "#{query}", "statusCode": "HTTP_302"})
    );
    assert_eq!(rules[1]["actions"][0]["protocol"], "HTTPS");
    assert_eq!(rules[1]["actions"][0]["port"], "8443");
    assert_eq!(rules[1]["actions"][0]["statusCode"], "HTTP_301");
}

/// GatewayPort8080 and HTTPRouteParentRefPort: a Gateway with listeners on 80 and 8080 is one
/// ALB with a listener per port, and a route whose parentRef names port 8080 gets its rule on
/// the 8080 listener only; one without a port gets a rule on each.
#[test]
fn parent_ref_port_puts_the_rule_on_the_8080_listener_only() {
    let base =
        BASE.replace("  - {name: http, protocol: HTTP, port: 80}", "  - {name: http, protocol: HTTP, port: 80}\n  - {name: alt, protocol: HTTP, port: 8080}");
    let route = |name: &str, parent: &str, path: &str| {
        route_doc(name, parent, &format!("  - matches: [{{path: {{type: Exact, value: {path}}}}}]\n    backendRefs: [{{name: v1, port: 80}}]\n"))
    };
    let g = render(&format!("{base}{}{}", route("alt", "{name: web, port: 8080}", "/alt"), route("both", "{name: web}", "/both")));
    let mut ports: Vec<i64> = of_kind(&g, KIND_LISTENER).iter().map(|l| l["port"].as_i64().unwrap()).collect();
    ports.sort();
    assert_eq!(ports, [80, 8080]);
    assert_eq!(of_kind(&g, KIND_LOAD_BALANCER).len(), 1);
    let mut paths: Vec<(i64, String)> =
        rules_by_port(&g).into_iter().map(|(p, r)| (p, r["conditions"][0]["values"][0].as_str().unwrap().to_string())).collect();
    paths.sort();
    assert_eq!(paths, [(80, "/both".to_string()), (8080, "/alt".to_string()), (8080, "/both".to_string())]);
}

/// HTTPRouteNamedRouteRule: rules with names are accepted and become exactly the listener rules
/// the same rules without names would (ALB rules have no name of their own; a rule's identity
/// is its index, so naming a rule later changes nothing in the cloud).
#[test]
fn named_rules_are_accepted_and_become_the_same_listener_rules() {
    let named = ROUTE
        .replace("  - backendRefs: [{name: v1", "  - name: split\n    backendRefs: [{name: v1")
        .replace("  - matches: [{path: {type: Exact", "  - name: old\n    matches: [{path: {type: Exact");
    assert_eq!(named.matches("name: split").count() + named.matches("name: old").count(), 2, "{named}");
    let mut w = World::new();
    let mut l = Loaded::default();
    load_str("t", &format!("{BASE}{named}"), &mut w, &mut l).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let t = translate_gateway(&w, &ObjKey::new("shop", "web"), &capabilities()).unwrap();
    let store: Vec<_> = t.routes.iter().filter(|v| v.route.name == "store").collect();
    assert_eq!(store.len(), 1);
    let accepted = store[0].conditions.iter().find(|c| c.type_ == "Accepted").unwrap();
    assert!(accepted.status, "{accepted:?}");
    let names: Vec<&str> = t.plan.listeners.iter().flat_map(|l| &l.rules).filter_map(|r| r.rule_name.as_deref()).collect();
    assert_eq!(names, ["old", "split"]);
    let g = AlbProvider::default().render(&t.plan, &ctx()).unwrap();
    assert_eq!(of_kind(&g, KIND_RULE).len(), 3);
    assert_eq!(g, render(&format!("{BASE}{ROUTE}")));
}
