//! Render tests: manifests -> translate (with Lattice capabilities) -> render, asserting the
//! resulting Lattice specs field by field.

use std::collections::BTreeMap;

use cloudgate_provider::{tags, DesiredResource, Provider, RenderContext, RenderError, ResourceGraph};
use cloudgate_translate::conditions::{kind as ckind, reason};
use cloudgate_translate::model::{ObjKey, Route};
use cloudgate_translate::{translate_gateway, GatewayTranslation, World};
use gateway_api::experimental::{gateways::Gateway, grpcroutes::GrpcRoute, httproutes::HttpRoute, tlsroutes::TlsRoute};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{address_sources, capabilities, kind, LatticeProvider, KIND_ORDER};

fn world(docs: &str) -> World {
    let mut w = World::new();
    for doc in serde_yaml::Deserializer::from_str(docs) {
        let v = serde_yaml::Value::deserialize(doc).unwrap();
        let k = v["kind"].as_str().expect("kind").to_string();
        match k.as_str() {
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

fn ctx() -> RenderContext {
    let mut default_tags = BTreeMap::new();
    default_tags.insert("team".to_string(), "platform".to_string());
    RenderContext { cluster_id: "c1".into(), region: "us-west-2".into(), network: "vpc-0abc".into(), default_tags, ..Default::default() }
}

fn translate(w: &World, ns: &str, name: &str) -> GatewayTranslation {
    translate_gateway(w, &ObjKey::new(ns, name), &capabilities()).expect("gateway exists")
}

fn render(w: &World, ns: &str, name: &str) -> Result<ResourceGraph, RenderError> {
    let t = translate(w, ns, name);
    assert!(t.gateway.accepted.status, "gateway not accepted: {:?}", t.gateway.accepted);
    LatticeProvider::default().render(&t.plan, &ctx())
}

fn of_kind<'g>(g: &'g ResourceGraph, k: &str) -> Vec<&'g DesiredResource> {
    g.resources.iter().filter(|r| r.key.kind == k).collect()
}

fn one<'g>(g: &'g ResourceGraph, k: &str) -> &'g DesiredResource {
    let v = of_kind(g, k);
    assert_eq!(v.len(), 1, "expected one {k}, got {}", v.len());
    v[0]
}

/// The target group for Service `svc` port 80 (the graph must have exactly one).
fn tg_named_for<'g>(g: &'g ResourceGraph, svc: &str) -> &'g DesiredResource {
    let role = format!("target-group/apps/{svc}:80");
    let v: Vec<_> = of_kind(g, kind::TARGET_GROUP).into_iter().filter(|r| r.tags[tags::RESOURCE] == role).collect();
    assert_eq!(v.len(), 1, "target groups for {svc}: {v:?}");
    v[0]
}

/// Every dependency exists and comes earlier in the graph; every resource carries ownership.
fn assert_well_formed(g: &ResourceGraph) {
    for (i, r) in g.resources.iter().enumerate() {
        for d in &r.depends_on {
            let pos = g.resources.iter().position(|x| &x.key == d).unwrap_or_else(|| panic!("{} depends on missing {d}", r.key));
            assert!(pos < i, "{} comes before its dependency {d}", r.key);
        }
        assert!(tags::owned_by(&r.tags, "c1"), "{} lacks ownership tags", r.key);
        assert_eq!(r.tags[tags::NAME], r.key.name, "observe reads the key back from the name tag");
        assert_eq!(r.tags[tags::GATEWAY], "apps/gw");
        assert_eq!(r.tags["team"], "platform");
        assert!(KIND_ORDER.contains(&r.key.kind.as_str()));
        assert!(r.key.name.len() <= 40 || r.key.kind == kind::TARGET_GROUP, "{} too long", r.key.name);
    }
    let mut keys: Vec<_> = g.resources.iter().map(|r| &r.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), g.resources.len(), "duplicate resource keys");
}

const HTTP_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: lattice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
"#;

const WEB_BACKENDS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: apps}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: apps}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v1-abcde
  namespace: apps
  labels: {kubernetes.io/service-name: web-v1}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.0.0.12]
  conditions: {ready: true}
- addresses: [10.0.0.11]
  conditions: {ready: true}
- addresses: [10.0.0.13]
  conditions: {ready: false}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v2-fghij
  namespace: apps
  labels: {kubernetes.io/service-name: web-v2}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.0.1.5]
"#;

/// The catch-all rule is listed first and the header canary second; `canary_weights` are the
/// raw weights of the canary rule's two backendRefs (web-v2, web-v1).
fn canary_world(canary_weights: (u32, u32)) -> World {
    let route = format!(
        r#"
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
"#,
        canary_weights.0, canary_weights.1
    );
    world(&format!("{HTTP_GATEWAY}---{WEB_BACKENDS}---{route}"))
}

fn weights_of(rule: &DesiredResource, g: &ResourceGraph) -> Vec<(String, u64)> {
    let v1 = tg_named_for(g, "web-v1").key.name.clone();
    let v2 = tg_named_for(g, "web-v2").key.name.clone();
    rule.spec["action"]["forward"]["targetGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let id = t["targetGroupIdentifier"].as_str().unwrap();
            let svc = if id == v1 { "web-v1" } else if id == v2 { "web-v2" } else { panic!("unknown target group {id}") };
            (svc.to_string(), t["weight"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn header_canary_listed_after_catch_all_gets_the_first_priority() {
    let g = render(&canary_world((90, 10)), "apps", "gw").unwrap();
    assert_well_formed(&g);
    assert_eq!(
        g.counts(),
        BTreeMap::from([
            (kind::SERVICE_NETWORK, 1),
            (kind::SERVICE_NETWORK_VPC_ASSOCIATION, 1),
            (kind::TARGET_GROUP, 2),
            (kind::SERVICE, 1),
            (kind::SERVICE_NETWORK_SERVICE_ASSOCIATION, 1),
            (kind::LISTENER, 1),
            (kind::RULE, 2),
        ])
    );

    let mut rules = of_kind(&g, kind::RULE);
    rules.sort_by_key(|r| r.spec["priority"].as_u64());
    let (canary, catch_all) = (rules[0], rules[1]);
    assert_eq!(canary.spec["priority"], 1);
    assert_eq!(
        canary.spec["match"],
        json!({"httpMatch": {
            "pathMatch": {"match": {"prefix": "/"}, "caseSensitive": true},
            "headerMatches": [{"name": "x-canary", "match": {"exact": "true"}, "caseSensitive": true}],
        }})
    );
    assert_eq!(weights_of(canary, &g), vec![("web-v2".into(), 90), ("web-v1".into(), 10)]);

    assert_eq!(catch_all.spec["priority"], 2);
    assert_eq!(catch_all.spec["match"], json!({"httpMatch": {"pathMatch": {"match": {"prefix": "/"}, "caseSensitive": true}, "headerMatches": []}}));
    assert_eq!(weights_of(catch_all, &g), vec![("web-v1".into(), 90), ("web-v2".into(), 10)]);

    // Rules hang off the one listener of the route's service and depend on both target groups.
    let listener = one(&g, kind::LISTENER);
    let svc = one(&g, kind::SERVICE);
    assert_eq!(
        listener.spec,
        json!({
            "name": listener.key.name,
            "serviceIdentifier": svc.key.name,
            "protocol": "HTTP",
            "port": 80,
            "defaultAction": {"fixedResponse": {"statusCode": 404}},
        })
    );
    for r in &rules {
        assert_eq!(r.spec["listenerIdentifier"], listener.key.name.as_str());
        assert_eq!(r.spec["serviceIdentifier"], svc.key.name.as_str());
        assert!(r.depends_on.contains(&listener.key));
        assert!(r.depends_on.contains(&tg_named_for(&g, "web-v1").key));
        assert!(r.depends_on.contains(&tg_named_for(&g, "web-v2").key));
        assert_eq!(r.tags[tags::ROUTE], "HTTPRoute/apps/web");
    }

    // Target groups carry the ready EndpointSlice IPs with their target port, sorted.
    let v1 = tg_named_for(&g, "web-v1");
    assert_eq!(v1.spec["targets"], json!([{"id": "10.0.0.11", "port": 8080}, {"id": "10.0.0.12", "port": 8080}]));
    assert_eq!(v1.spec["type"], "IP");
    assert_eq!(v1.spec["config"]["port"], 80);
    assert_eq!(v1.spec["config"]["protocol"], "HTTP");
    assert_eq!(v1.spec["config"]["protocolVersion"], "HTTP1");
    assert_eq!(v1.spec["config"]["vpcIdentifier"], "vpc-0abc");
    assert_eq!(v1.spec["config"]["healthCheck"]["enabled"], true);
    assert_eq!(v1.tags[tags::RESOURCE], "target-group/apps/web-v1:80");
    assert_eq!(v1.tags[tags::ROUTE], "HTTPRoute/apps/web", "a target group belongs to one route's service");
    assert!(v1.key.name.starts_with("cg-web-apps-web-v1-80-http-http1-"), "{}", v1.key.name);
    assert_eq!(tg_named_for(&g, "web-v2").spec["targets"], json!([{"id": "10.0.1.5", "port": 8080}]));

    // Network: service network, VPC association, service association.
    let sn = one(&g, kind::SERVICE_NETWORK);
    assert_eq!(sn.spec, json!({"name": sn.key.name, "authType": "NONE"}));
    assert!(sn.key.name.starts_with("cg-apps-gw-"));
    let vpc = one(&g, kind::SERVICE_NETWORK_VPC_ASSOCIATION);
    assert_eq!(vpc.spec, json!({"serviceNetworkIdentifier": sn.key.name, "vpcIdentifier": "vpc-0abc"}));
    assert_eq!(vpc.depends_on, vec![sn.key.clone()]);
    let assoc = one(&g, kind::SERVICE_NETWORK_SERVICE_ASSOCIATION);
    assert_eq!(assoc.spec, json!({"serviceIdentifier": svc.key.name, "serviceNetworkIdentifier": sn.key.name}));
    assert_eq!(svc.spec, json!({"name": svc.key.name, "authType": "NONE"}), "no hostname, no custom domain");
    assert_eq!(address_sources(&g), vec![&svc.key]);
}

#[test]
fn spec_range_weights_are_scaled_and_zero_stays_zero() {
    let g = render(&canary_world((1_000_000, 0)), "apps", "gw").unwrap();
    let canary = of_kind(&g, kind::RULE).into_iter().find(|r| r.spec["priority"] == 1).unwrap();
    assert_eq!(weights_of(canary, &g), vec![("web-v2".into(), 999), ("web-v1".into(), 0)]);
    // A weight change is an update of the same rule, never a new rule or target group.
    let before = render(&canary_world((90, 10)), "apps", "gw").unwrap();
    let names = |g: &ResourceGraph| g.resources.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    assert_eq!(names(&g), names(&before));
}

#[test]
fn path_prefix_matches_whole_segments_and_exact_paths_stay_exact() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: apps}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/}}]
    backendRefs: [{name: web-v1, port: 80}]
  - matches: [{path: {type: Exact, value: /api/health}, method: GET}]
    backendRefs: [{name: web-v2, port: 80}]
"#;
    let g = render(&world(&format!("{HTTP_GATEWAY}---{WEB_BACKENDS}---{route}")), "apps", "gw").unwrap();
    let mut rules = of_kind(&g, kind::RULE);
    rules.sort_by_key(|r| r.spec["priority"].as_u64());
    let got: Vec<(u64, Value)> = rules.iter().map(|r| (r.spec["priority"].as_u64().unwrap(), r.spec["match"]["httpMatch"].clone())).collect();
    assert_eq!(
        got,
        vec![
            (1, json!({"pathMatch": {"match": {"exact": "/api/health"}, "caseSensitive": true}, "method": "GET", "headerMatches": []})),
            (2, json!({"pathMatch": {"match": {"exact": "/api"}, "caseSensitive": true}, "headerMatches": []})),
            (3, json!({"pathMatch": {"match": {"prefix": "/api/"}, "caseSensitive": true}, "headerMatches": []})),
        ]
    );
    // The two halves of one prefix are distinct rules with stable names.
    assert_ne!(rules[1].key.name, rules[2].key.name);
    assert_eq!(g.resources, render(&world(&format!("{HTTP_GATEWAY}---{WEB_BACKENDS}---{route}")), "apps", "gw").unwrap().resources);
}

#[test]
fn long_route_names_sharing_a_prefix_get_distinct_short_service_names() {
    let ns1 = format!("{}-1", "n".repeat(58));
    let ns2 = format!("{}-2", "n".repeat(58));
    let r1 = format!("{}-one", "r".repeat(56));
    let r2 = format!("{}-two", "r".repeat(56));
    assert_eq!((ns1.len(), r1.len()), (60, 60));
    let mut docs = r#"
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
"#
    .to_string();
    for (ns, name) in [(&ns1, &r1), (&ns2, &r2), (&ns1, &r2)] {
        docs.push_str(&format!(
            r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
  parentRefs: [{{name: gw, namespace: apps}}]
  rules: [{{matches: [{{path: {{type: Exact, value: /x}}}}]}}]
"#
        ));
    }
    let g = render(&world(&docs), "apps", "gw").unwrap();
    assert_well_formed(&g);
    let services = of_kind(&g, kind::SERVICE);
    assert_eq!(services.len(), 3);
    let mut names: Vec<&str> = services.iter().map(|s| s.key.name.as_str()).collect();
    for n in &names {
        assert!(n.len() <= 40, "{n} is {} chars", n.len());
        assert!(n.starts_with("cg-nnnn"), "{n}");
        assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{n}");
        assert!(!n.ends_with('-') && !n.contains("--"), "{n}");
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "names collide: {names:?}");
    // Listeners and rules of different routes are distinct too.
    assert_eq!(of_kind(&g, kind::LISTENER).iter().map(|l| &l.key.name).collect::<std::collections::BTreeSet<_>>().len(), 3);
    // No backends resolved: each rule answers 500, as the spec requires.
    for r in of_kind(&g, kind::RULE) {
        assert_eq!(r.spec["action"], json!({"fixedResponse": {"statusCode": 500}}));
    }
    assert!(of_kind(&g, kind::TARGET_GROUP).is_empty());
}

#[test]
fn a_route_on_two_gateways_becomes_two_services() {
    let docs = format!(
        r#"{HTTP_GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw2, namespace: apps}}
spec:
  gatewayClassName: lattice
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
---{WEB_BACKENDS}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}, {{name: gw2}}]
  rules: [{{backendRefs: [{{name: web-v1, port: 80}}]}}]
"#
    );
    let w = world(&docs);
    let a = render(&w, "apps", "gw").unwrap();
    let b = render(&w, "apps", "gw2").unwrap();
    let (sa, sb) = (one(&a, kind::SERVICE), one(&b, kind::SERVICE));
    assert_ne!(sa.key.name, sb.key.name);
    assert_ne!(one(&a, kind::SERVICE_NETWORK).key.name, one(&b, kind::SERVICE_NETWORK).key.name);
    assert_ne!(one(&a, kind::TARGET_GROUP).key.name, one(&b, kind::TARGET_GROUP).key.name, "one target group per route service and backend");
    assert_eq!(sb.tags[tags::GATEWAY], "apps/gw2");
}

/// Gateway `apps/gw` with one HTTPRoute sending everything to `web-v1`.
fn one_route_world() -> World {
    world(&format!(
        r#"{HTTP_GATEWAY}---{WEB_BACKENDS}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: web-v1, port: 80}}]}}]
"#
    ))
}

#[test]
fn an_adopted_service_network_is_joined_never_created() {
    let w = one_route_world();
    let t = translate(&w, "apps", "gw");
    let ctx = RenderContext { service_network: Some("shared-mesh".into()), ..ctx() };
    let g = LatticeProvider::default().render(&t.plan, &ctx).unwrap();
    assert!(of_kind(&g, kind::SERVICE_NETWORK).is_empty(), "an adopted network is not ours to create");
    assert!(of_kind(&g, kind::SERVICE_NETWORK_VPC_ASSOCIATION).is_empty(), "its VPC associations belong to its owner");
    let assoc = one(&g, kind::SERVICE_NETWORK_SERVICE_ASSOCIATION);
    assert_eq!(assoc.spec["serviceNetworkIdentifier"], "shared-mesh");
    assert_eq!(assoc.depends_on, vec![one(&g, kind::SERVICE).key.clone()]);
    // The service itself is the same as with a network of our own.
    let own = render(&w, "apps", "gw").unwrap();
    assert_eq!(one(&own, kind::SERVICE).key, one(&g, kind::SERVICE).key);
}

#[test]
fn health_check_policies_set_the_target_group_health_check() {
    use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};
    let w = one_route_world();
    let t = translate(&w, "apps", "gw");
    let hc = HealthCheck {
        path: Some("/healthz".into()),
        interval_seconds: Some(10),
        http_codes: Some("200-299".into()),
        ..Default::default()
    };
    let mut ctx = ctx();
    ctx.health_checks.insert(ObjKey::new("apps", "web-v1"), hc.clone());
    let g = LatticeProvider::default().render(&t.plan, &ctx).unwrap();
    let check = &one(&g, kind::TARGET_GROUP).spec["config"]["healthCheck"];
    assert_eq!(check["enabled"], true);
    assert_eq!(check["path"], "/healthz");
    assert_eq!(check["healthCheckIntervalSeconds"], 10);
    assert_eq!(check["matcher"]["httpCode"], "200-299");
    assert_eq!(check["unhealthyThresholdCount"], 2, "unset fields keep the defaults");

    let p = LatticeProvider::default();
    assert!(p.health_check_support(&hc).is_ok());
    let grpc = HealthCheck { protocol: Some(HealthCheckProtocol::Grpc), ..Default::default() };
    assert!(p.health_check_support(&grpc).unwrap_err().contains("not gRPC"));
    let fast = HealthCheck { interval_seconds: Some(1), ..Default::default() };
    assert!(p.health_check_support(&fast).unwrap_err().contains("intervalSeconds 1"));
}

#[test]
fn backend_policy_protocol_version_renders_a_new_target_group() {
    use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm};
    let w = one_route_world();
    let t = translate(&w, "apps", "gw");
    let plain = LatticeProvider::default().render(&t.plan, &ctx()).unwrap();
    let before = one(&plain, kind::TARGET_GROUP);
    assert_eq!(before.spec["config"]["protocolVersion"], "HTTP1");

    let mut c = ctx();
    let s = BackendSettings { protocol_version: Some(BackendProtocolVersion::Http2), algorithm: Some(LoadBalancingAlgorithm::RoundRobin), ..Default::default() };
    c.backend_settings.insert(ObjKey::new("apps", "web-v1"), s.clone());
    let g = LatticeProvider::default().render(&t.plan, &c).unwrap();
    let after = one(&g, kind::TARGET_GROUP);
    assert_eq!(after.spec["config"]["protocolVersion"], "HTTP2");
    // Immutable in Lattice: another name, so diff creates the new group and deletes the old.
    assert_ne!(after.key, before.key);
    assert!(after.key.name.contains("http2"), "{}", after.key.name);
    // What forwards to the group forwards to the new one.
    let refers = |g: &ResourceGraph, n: &str| g.resources.iter().filter(|r| r.key.kind != kind::TARGET_GROUP).any(|r| r.spec.to_string().contains(n));
    assert!(refers(&g, &after.key.name) && !refers(&g, &before.key.name));

    let p = LatticeProvider::default();
    assert_eq!(p.backend_settings_support(&s), Ok(()));
    let err = |s: BackendSettings| p.backend_settings_support(&s).unwrap_err();
    assert!(err(BackendSettings { algorithm: Some(LoadBalancingAlgorithm::LeastRequest), ..Default::default() }).contains("round robin only"));
    assert!(err(BackendSettings { algorithm: Some(LoadBalancingAlgorithm::Random), ..Default::default() }).contains("round robin only"));
    assert!(err(BackendSettings { deregistration_delay_seconds: Some(30), ..Default::default() }).contains("no deregistration delay"));
    assert!(err(BackendSettings { slow_start_seconds: Some(0), ..Default::default() }).contains("no slow start"));
}

#[test]
fn grpc_route_gets_a_grpc_target_group_and_an_exact_path_rule() {
    let docs = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: lattice
  listeners:
  - {name: grpc, port: 8080, protocol: HTTP, hostname: grpc.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: apps}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    backendRefs: [{name: greeter, port: 50051}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter, namespace: apps}
spec:
  ports: [{name: grpc, port: 50051, targetPort: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: greeter-1
  namespace: apps
  labels: {kubernetes.io/service-name: greeter}
addressType: IPv4
ports: [{name: grpc, port: 9000, protocol: TCP}]
endpoints:
- addresses: [10.1.0.7]
"#;
    let g = render(&world(docs), "apps", "gw").unwrap();
    assert_well_formed(&g);
    let tg = one(&g, kind::TARGET_GROUP);
    assert_eq!(tg.spec["config"]["protocol"], "HTTP");
    assert_eq!(tg.spec["config"]["protocolVersion"], "GRPC");
    assert_eq!(tg.spec["config"]["port"], 50051);
    // Lattice cannot health check gRPC; an HTTP check would fail every target.
    assert_eq!(tg.spec["config"]["healthCheck"], json!({"enabled": false}));
    assert_eq!(tg.spec["targets"], json!([{"id": "10.1.0.7", "port": 9000}]));

    let rule = one(&g, kind::RULE);
    assert_eq!(rule.spec["priority"], 1);
    assert_eq!(
        rule.spec["match"],
        json!({"httpMatch": {"pathMatch": {"match": {"exact": "/helloworld.Greeter/SayHello"}, "caseSensitive": true}, "headerMatches": []}})
    );
    assert_eq!(rule.spec["action"], json!({"forward": {"targetGroups": [{"targetGroupIdentifier": tg.key.name, "weight": 1}]}}));
    assert_eq!(rule.tags[tags::ROUTE], "GRPCRoute/apps/greeter");
    assert_eq!(one(&g, kind::LISTENER).spec["port"], 8080);
    // The listener hostname is exact, so it becomes the service's custom domain.
    assert_eq!(one(&g, kind::SERVICE).spec["customDomainName"], "grpc.example.com");
}

const TLS_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: apps}
spec:
  gatewayClassName: lattice
  listeners:
  - name: tls
    port: 443
    protocol: TLS
    tls: {mode: Passthrough}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: apps}
spec:
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: apps
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- addresses: [10.2.0.9]
- addresses: [10.2.0.3]
"#;

fn tls_route(hostname: &str) -> String {
    format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: db, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: ["{hostname}"]
  rules:
  - backendRefs: [{{name: db, port: 5432}}]
"#
    )
}

#[test]
fn tls_route_becomes_a_passthrough_listener_forwarding_by_default() {
    let g = render(&world(&format!("{TLS_GATEWAY}{}", tls_route("db.example.com"))), "apps", "gw").unwrap();
    assert_well_formed(&g);
    assert!(of_kind(&g, kind::RULE).is_empty(), "TLS passthrough listeners take no rules");
    let tg = one(&g, kind::TARGET_GROUP);
    assert_eq!(tg.spec["config"]["protocol"], "TCP");
    assert!(tg.spec["config"].get("protocolVersion").is_none());
    assert_eq!(tg.spec["config"]["healthCheck"], json!({"enabled": false}));
    assert_eq!(tg.spec["targets"], json!([{"id": "10.2.0.3", "port": 5432}, {"id": "10.2.0.9", "port": 5432}]));

    let svc = one(&g, kind::SERVICE);
    assert_eq!(svc.spec["customDomainName"], "db.example.com");
    let listener = one(&g, kind::LISTENER);
    assert_eq!(
        listener.spec,
        json!({
            "name": listener.key.name,
            "serviceIdentifier": svc.key.name,
            "protocol": "TLS_PASSTHROUGH",
            "port": 443,
            "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": tg.key.name, "weight": 1}]}},
        })
    );
    assert!(listener.depends_on.contains(&tg.key) && listener.depends_on.contains(&svc.key));
    assert_eq!(listener.tags[tags::ROUTE], "TLSRoute/apps/db");
}

#[test]
fn tls_passthrough_without_an_exact_hostname_is_refused_loudly() {
    let err = render(&world(&format!("{TLS_GATEWAY}{}", tls_route("*.example.com"))), "apps", "gw").unwrap_err();
    let RenderError::Unrenderable { provider, message } = err else { panic!("{err:?}") };
    assert_eq!(provider, "aws-lattice");
    assert!(message.contains("TLSRoute apps/db") && message.contains("custom domain"), "{message}");
}

#[test]
fn capabilities_are_honest() {
    let caps = capabilities();
    assert_eq!(caps.provider, "aws-lattice");
    assert_eq!(
        caps.supported_features(),
        vec![
            "GRPCRoute",
            "Gateway",
            "GatewayPort8080",
            "HTTPRoute",
            "HTTPRouteMethodMatching",
            "HTTPRouteNamedRouteRule",
            "HTTPRouteParentRefPort",
            "ReferenceGrant",
            "TLSRoute",
        ]
    );
    assert!(caps.supports("cloudgate/TLSPassthrough"));
    for not in ["HTTPRouteQueryParamMatching", "cloudgate/RequestRedirect", "HTTPRoutePathRewrite", "TLSRouteModeTerminate", "TCPRoute"] {
        assert!(!caps.supports(not), "{not}");
    }
    assert_eq!((caps.max_weight, caps.max_backends_per_rule), (999, 10));
    assert_eq!(caps.protocols.iter().map(|p| p.as_str()).collect::<Vec<_>>(), vec!["HTTP", "HTTPS", "TLS"]);
}

#[test]
fn url_rewrite_is_dropped_by_translation_with_an_honest_condition() {
    let docs = format!(
        r#"{HTTP_GATEWAY}---{WEB_BACKENDS}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: rewrite-only, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}}
    backendRefs: [{{name: web-v1, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: mixed, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /old}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{hostname: new.example.com}}
    backendRefs: [{{name: web-v1, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /new}}}}]
    backendRefs: [{{name: web-v2, port: 80}}]
"#
    );
    let w = world(&docs);
    let t = translate(&w, "apps", "gw");
    let conds = |name: &str| {
        t.routes.iter().find(|v| v.route.name == name).unwrap().conditions.iter().map(|c| (c.type_, c.status, c.reason, c.message.clone())).collect::<Vec<_>>()
    };

    let only = conds("rewrite-only");
    let accepted = only.iter().find(|c| c.0 == ckind::ACCEPTED).unwrap();
    assert_eq!((accepted.1, accepted.2), (false, reason::UNSUPPORTED_VALUE));
    assert!(accepted.3.contains("HTTPRoutePathRewrite") && accepted.3.contains("aws-lattice"), "{}", accepted.3);

    let mixed = conds("mixed");
    assert!(mixed.iter().any(|c| c.0 == ckind::ACCEPTED && c.1));
    let partial = mixed.iter().find(|c| c.0 == ckind::PARTIALLY_INVALID).expect("PartiallyInvalid");
    assert_eq!((partial.1, partial.2), (true, reason::UNSUPPORTED_VALUE));
    assert!(partial.3.contains("HTTPRouteHostRewrite"), "{}", partial.3);

    // What survives renders: only /new of "mixed" (two Lattice rules for the prefix).
    let g = LatticeProvider::default().render(&t.plan, &ctx()).unwrap();
    let paths: Vec<Value> = of_kind(&g, kind::RULE).iter().map(|r| r.spec["match"]["httpMatch"]["pathMatch"]["match"].clone()).collect();
    assert_eq!(paths, vec![json!({"exact": "/new"}), json!({"prefix": "/new/"})]);
}

#[test]
fn too_many_rules_for_one_listener_is_an_error_not_a_truncation() {
    let rules: String = (0..101).map(|i| format!("  - matches: [{{path: {{type: Exact, value: /p{i}}}}}]\n    backendRefs: [{{name: web-v1, port: 80}}]\n")).collect();
    let docs = format!(
        "{HTTP_GATEWAY}---{WEB_BACKENDS}---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: big, namespace: apps}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules:\n{rules}"
    );
    let RenderError::Unrenderable { message, .. } = render(&world(&docs), "apps", "gw").unwrap_err() else { panic!() };
    assert!(message.contains("HTTPRoute apps/big") && message.contains("100"), "{message}");
}

#[test]
fn a_vpc_is_required() {
    let t = translate(&canary_world((1, 1)), "apps", "gw");
    let mut c = ctx();
    c.network.clear();
    assert!(LatticeProvider::default().render(&t.plan, &c).is_err());
}

#[test]
fn two_refs_to_one_service_port_share_one_target_group_with_summed_weight() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: apps}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: web-v1, port: 80, weight: 3}, {name: web-v2, port: 80, weight: 5}, {name: web-v1, port: 80, weight: 2}]
"#;
    let g = render(&world(&format!("{HTTP_GATEWAY}---{WEB_BACKENDS}---{route}")), "apps", "gw").unwrap();
    assert_eq!(of_kind(&g, kind::TARGET_GROUP).len(), 2);
    assert_eq!(weights_of(one(&g, kind::RULE), &g), vec![("web-v1".into(), 5), ("web-v2".into(), 5)]);
}

#[test]
fn two_routes_claiming_one_custom_domain_is_an_error() {
    let docs = format!(
        r#"{HTTP_GATEWAY}---{WEB_BACKENDS}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: a, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [shop.example.com]
  rules: [{{backendRefs: [{{name: web-v1, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: b, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [Shop.example.com]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /cart}}}}], backendRefs: [{{name: web-v2, port: 80}}]}}]
"#
    );
    let RenderError::Unrenderable { message, .. } = render(&world(&docs), "apps", "gw").unwrap_err() else { panic!() };
    assert!(message.contains("HTTPRoute apps/a") && message.contains("HTTPRoute apps/b") && message.contains("shop.example.com"), "{message}");
}

/// Lattice lets a target group serve one service only, so two routes (two services) forwarding
/// to the same Service port get a target group each, with the same targets.
#[test]
fn two_routes_sharing_a_service_get_a_target_group_each() {
    let docs = format!(
        r#"{HTTP_GATEWAY}---{WEB_BACKENDS}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: web-v1, port: 80}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: cart, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /cart}}}}], backendRefs: [{{name: web-v1, port: 80}}]}}]
"#
    );
    let g = render(&world(&docs), "apps", "gw").unwrap();
    assert_well_formed(&g);
    let services = of_kind(&g, kind::SERVICE);
    assert_eq!(services.len(), 2);
    let tgs = of_kind(&g, kind::TARGET_GROUP);
    assert_eq!(tgs.len(), 2, "one per route service: {:?}", tgs.iter().map(|t| &t.key.name).collect::<Vec<_>>());
    assert_ne!(tgs[0].key.name, tgs[1].key.name);
    for tg in &tgs {
        assert_eq!(tg.tags[tags::RESOURCE], "target-group/apps/web-v1:80");
        assert_eq!(tg.spec["targets"], json!([{"id": "10.0.0.11", "port": 8080}, {"id": "10.0.0.12", "port": 8080}]));
    }
    // Each service's rules forward only to that service's own target group.
    for svc in &services {
        let route = &svc.tags[tags::ROUTE];
        let own: Vec<&str> = tgs.iter().filter(|t| &t.tags[tags::ROUTE] == route).map(|t| t.key.name.as_str()).collect();
        assert_eq!(own.len(), 1, "{route}");
        let rules: Vec<_> = of_kind(&g, kind::RULE).into_iter().filter(|r| r.spec["serviceIdentifier"] == svc.key.name.as_str()).collect();
        assert!(!rules.is_empty());
        for r in rules {
            for t in r.spec["action"]["forward"]["targetGroups"].as_array().unwrap() {
                assert_eq!(t["targetGroupIdentifier"], own[0], "{route} forwards to another service's target group");
            }
        }
    }
}

/// What Lattice cannot update in place is identity: changing it renders new names (the diff
/// then creates the replacement and deletes the old resource) instead of an impossible update.
#[test]
fn immutable_fields_are_part_of_the_names() {
    let with_host = |host: &str, port: u16, method: Option<&str>| {
        let gw = HTTP_GATEWAY.replace("port: 80", &format!("port: {port}"));
        let m = method.map(|m| format!(", method: {m}")).unwrap_or_default();
        let route = format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: apps}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [{host}]
  rules: [{{matches: [{{path: {{type: Exact, value: /a}}{m}}}], backendRefs: [{{name: web-v1, port: 80}}]}}]
"#
        );
        render(&world(&format!("{gw}---{WEB_BACKENDS}---{route}")), "apps", "gw").unwrap()
    };
    let name = |g: &ResourceGraph, k: &str| one(g, k).key.name.clone();
    let base = with_host("a.example.com", 80, None);
    assert_eq!(one(&base, kind::SERVICE).spec["customDomainName"], "a.example.com");

    // A new custom domain: a new service and everything under it; the network stays.
    let other = with_host("b.example.com", 80, None);
    for k in [kind::SERVICE, kind::SERVICE_NETWORK_SERVICE_ASSOCIATION, kind::LISTENER, kind::RULE, kind::TARGET_GROUP] {
        assert_ne!(name(&base, k), name(&other, k), "{k}");
    }
    assert_eq!(name(&base, kind::SERVICE_NETWORK), name(&other, kind::SERVICE_NETWORK));

    // A new listener port: same service, new listener and rules.
    let moved = with_host("a.example.com", 8080, None);
    assert_eq!(name(&base, kind::SERVICE), name(&moved, kind::SERVICE));
    assert_ne!(name(&base, kind::LISTENER), name(&moved, kind::LISTENER));
    assert_ne!(name(&base, kind::RULE), name(&moved, kind::RULE));

    // Matching a method: a new rule. Changing which method: the same rule, updated.
    let get = with_host("a.example.com", 80, Some("GET"));
    let post = with_host("a.example.com", 80, Some("POST"));
    assert_ne!(name(&base, kind::RULE), name(&get, kind::RULE));
    assert_eq!(name(&get, kind::RULE), name(&post, kind::RULE));
    assert_eq!(name(&base, kind::LISTENER), name(&get, kind::LISTENER));
}

#[test]
fn a_route_with_every_rule_dropped_gets_no_service() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: apps}
spec:
  parentRefs: [{name: gw}]
  rules:
  - filters: [{type: URLRewrite, urlRewrite: {hostname: other.example.com}}]
    backendRefs: [{name: web-v1, port: 80}]
"#;
    let t = translate(&world(&format!("{HTTP_GATEWAY}---{WEB_BACKENDS}---{route}")), "apps", "gw");
    assert!(t.routes[0].conditions.iter().any(|c| c.type_ == "Accepted" && !c.status), "the route is not accepted: {:?}", t.routes[0]);
    let g = LatticeProvider::default().render(&t.plan, &ctx()).unwrap();
    assert!(of_kind(&g, kind::SERVICE).is_empty(), "no service for a route that is not accepted");
}

#[test]
fn access_policies_set_auth_and_subscribe_access_logs() {
    use cloudgate_provider::access::{AccessSettings, AccessTarget, IamAuth};
    use cloudgate_translate::model::{RouteKey, RouteKind};
    let w = one_route_world();
    let t = translate(&w, "apps", "gw");
    let route = AccessTarget::Route(RouteKey { kind: RouteKind::Http, namespace: "apps".into(), name: "web".into() });
    let mut ctx = ctx();
    ctx.access.insert(AccessTarget::Gateway, AccessSettings { access_log_destination: Some("arn:aws:s3:::gw-logs".into()), auth: None });
    ctx.access.insert(
        route.clone(),
        AccessSettings {
            access_log_destination: Some("arn:aws:logs:us-west-2:123456789012:log-group:web".into()),
            auth: Some(IamAuth { policy: Some("{ \"Version\": \"2012-10-17\",\n \"Statement\": [] }".into()) }),
        },
    );
    let g = LatticeProvider::default().render(&t.plan, &ctx).unwrap();
    let sn = one(&g, kind::SERVICE_NETWORK);
    assert_eq!(sn.spec["authType"], "NONE");
    assert!(sn.spec.get("authPolicy").is_none(), "no auth policy with auth type NONE");
    let svc = one(&g, kind::SERVICE);
    assert_eq!(svc.spec["authType"], "AWS_IAM");
    assert_eq!(svc.spec["authPolicy"], r#"{"Statement":[],"Version":"2012-10-17"}"#, "the document in canonical form");
    let subs = of_kind(&g, kind::ACCESS_LOG_SUBSCRIPTION);
    let mut got: Vec<(String, String)> = subs.iter().map(|s| (s.spec["resourceIdentifier"].as_str().unwrap().into(), s.spec["destinationArn"].as_str().unwrap().into())).collect();
    got.sort();
    let mut want = vec![(sn.key.name.clone(), "arn:aws:s3:::gw-logs".to_string()), (svc.key.name.clone(), "arn:aws:logs:us-west-2:123456789012:log-group:web".to_string())];
    want.sort();
    assert_eq!(got, want);
    assert!(subs.iter().all(|s| s.depends_on.len() == 1 && s.tags.contains_key(tags::CLUSTER)), "{subs:?}");

    // IAM auth without a document: AWS_IAM with an empty policy (denies every request).
    ctx.access.insert(route, AccessSettings { access_log_destination: None, auth: Some(IamAuth { policy: None }) });
    let g = LatticeProvider::default().render(&t.plan, &ctx).unwrap();
    assert_eq!(one(&g, kind::SERVICE).spec["authPolicy"], "");

    let p = LatticeProvider::default();
    assert!(p.access_policy_support(&AccessSettings { access_log_destination: Some("arn:aws:sqs:us-west-2:1:q".into()), auth: None }).is_err());
    assert!(p.access_policy_support(&AccessSettings { access_log_destination: None, auth: Some(IamAuth { policy: Some("[1]".into()) }) }).is_err());
}

/// An HTTPRoute `web` in `apps` on Gateway `gw` through `parent` (a parentRef), routing `rules`
/// (YAML below `rules:`) to web-v1.
fn web_route(parent: &str, rules: &str) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: web, namespace: apps}}\nspec:\n  parentRefs: [{parent}]\n  rules:\n{rules}")
}

/// HTTPRouteNamedRouteRule: a named rule is a Lattice rule named after it, and its identity is
/// its name, so a rule inserted before it leaves it in place (same cloud name) while an unnamed
/// rule is known by its index.
#[test]
fn named_rules_name_their_lattice_rules_and_keep_them_across_inserts() {
    let health = "  - name: health\n    matches: [{path: {type: Exact, value: /health}}]\n    backendRefs: [{name: web-v1, port: 80}]\n";
    let other = "  - matches: [{path: {type: Exact, value: /other}}]\n    backendRefs: [{name: web-v1, port: 80}]\n";
    let names = |rules: &str| -> BTreeMap<String, String> {
        let docs = format!("{HTTP_GATEWAY}---\n{WEB_BACKENDS}---\n{}", web_route("{name: gw}", rules));
        let t = translate(&world(&docs), "apps", "gw");
        let accepted = t.routes.iter().find(|v| v.route.name == "web").unwrap().conditions.iter().find(|c| c.type_ == "Accepted").unwrap().clone();
        assert!(accepted.status, "{accepted:?}");
        let g = render(&world(&docs), "apps", "gw").unwrap();
        assert_well_formed(&g);
        of_kind(&g, kind::RULE)
            .iter()
            .map(|r| (r.spec["match"]["httpMatch"]["pathMatch"]["match"]["exact"].as_str().unwrap().to_string(), r.key.name.clone()))
            .collect()
    };
    let before = names(health);
    assert!(before["/health"].contains("-web-health-"), "{before:?}");
    let after = names(&format!("{other}{health}"));
    assert_eq!(after["/health"], before["/health"], "the named rule keeps its identity when a rule is inserted before it");
    assert!(after["/other"].contains("-web-rule0-"), "{after:?}");
}

/// GatewayPort8080 and HTTPRouteParentRefPort: a route whose parentRef names port 8080 gets a
/// Lattice service with a listener on 8080 only; without a port, one listener per Gateway
/// listener.
#[test]
fn parent_ref_port_gives_the_service_the_8080_listener_only() {
    let gw = HTTP_GATEWAY
        .replace("  - {name: http, port: 80, protocol: HTTP}", "  - {name: http, port: 80, protocol: HTTP}\n  - {name: alt, port: 8080, protocol: HTTP}");
    let rule = "  - backendRefs: [{name: web-v1, port: 80}]\n";
    let ports = |parent: &str| -> Vec<u64> {
        let g = render(&world(&format!("{gw}---\n{WEB_BACKENDS}---\n{}", web_route(parent, rule))), "apps", "gw").unwrap();
        assert_well_formed(&g);
        assert_eq!(of_kind(&g, kind::SERVICE).len(), 1);
        let mut p: Vec<u64> = of_kind(&g, kind::LISTENER).iter().map(|l| l.spec["port"].as_u64().unwrap()).collect();
        p.sort();
        p
    };
    assert_eq!(ports("{name: gw, port: 8080}"), [8080]);
    assert_eq!(ports("{name: gw, port: 80}"), [80]);
    assert_eq!(ports("{name: gw}"), [80, 8080]);
}
