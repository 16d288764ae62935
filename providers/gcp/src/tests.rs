//! Render tests: manifests -> World -> translate -> render, asserting the Compute specs.

use std::collections::BTreeMap;

use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm};
use cloudgate_provider::diff::{self, Change, ObservedResource};
use cloudgate_provider::health::{HealthCheck, HealthCheckProtocol};
use cloudgate_provider::resource::{DesiredResource, ResourceGraph, ResourceKey};
use cloudgate_provider::{tags, Provider, RenderContext, RenderError};
use cloudgate_translate::capabilities::feature;
use cloudgate_translate::manifest::{load_str, Loaded};
use cloudgate_translate::model::ObjKey;
use cloudgate_translate::{translate_gateway, GatewayTranslation, LoadBalancerPlan, World};
use serde_json::{json, Value};

use crate::labels::{is_valid_label_key, is_valid_label_value, observed_tags};
use crate::*;

fn world(yaml: &str) -> World {
    let mut w = World::new();
    let mut loaded = Loaded::default();
    load_str("test.yaml", yaml, &mut w, &mut loaded).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    w
}

fn plan(p: &GcpProvider, yaml: &str) -> LoadBalancerPlan {
    let w = world(yaml);
    let t = translate_gateway(&w, &ObjKey::new("apps", "web"), p.capabilities()).expect("gateway");
    t.plan
}

fn ctx() -> RenderContext {
    RenderContext {
        cluster_id: "prod-1".into(),
        region: "us-central1".into(),
        network: "vpc-1".into(),
        subnets: vec!["subnet-1".into()],
        scheme: String::new(),
        project: "proj".into(),
        default_tags: BTreeMap::new(),
        ..Default::default()
    }
}

fn render(yaml: &str) -> ResourceGraph {
    render_in(yaml, &ctx())
}

fn render_in(yaml: &str, ctx: &RenderContext) -> ResourceGraph {
    let p = GcpProvider::default();
    let g = p.render(&plan(&p, yaml), ctx).unwrap();
    check_graph(&g);
    g
}

fn of_kind<'g>(g: &'g ResourceGraph, kind: &str) -> Vec<&'g DesiredResource> {
    g.resources.iter().filter(|r| r.key.kind == kind).collect()
}

fn one<'g>(g: &'g ResourceGraph, kind: &str) -> &'g DesiredResource {
    let v = of_kind(g, kind);
    assert_eq!(v.len(), 1, "{kind}: {:?}", v.iter().map(|r| &r.key.name).collect::<Vec<_>>());
    v[0]
}

/// The resource of `kind` whose ownership says it is `resource`.
fn owned<'g>(g: &'g ResourceGraph, kind: &str, resource: &str) -> &'g DesiredResource {
    of_kind(g, kind)
        .into_iter()
        .find(|r| {
            let d = r.spec["description"].as_str().unwrap_or_default();
            serde_json::from_str::<Value>(d).ok().and_then(|v| v["cloudgate"]["resource"].as_str().map(|s| s == resource)) == Some(true)
        })
        .unwrap_or_else(|| panic!("no {kind} for {resource}"))
}

fn bs(g: &ResourceGraph, backend: &str) -> String {
    owned(g, KIND_BACKEND_SERVICE, &format!("backend-service/{backend}")).key.name.clone()
}

fn is_gce_name(n: &str) -> bool {
    n.len() <= 63
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && !n.ends_with('-')
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Invariants of every rendered graph: valid unique names, parents before children in kind
/// order, dependencies present and earlier, ownership on every resource (labels where the
/// kind has them, description JSON elsewhere).
fn check_graph(g: &ResourceGraph) {
    let rank = |k: &str| KIND_ORDER.iter().position(|x| *x == k).unwrap_or_else(|| panic!("{k} not in KIND_ORDER"));
    let mut seen = std::collections::BTreeSet::new();
    let mut last = 0;
    for (i, r) in g.resources.iter().enumerate() {
        assert!(is_gce_name(&r.key.name), "invalid name {}", r.key.name);
        assert!(seen.insert(r.key.clone()), "duplicate {}", r.key);
        let rk = rank(&r.key.kind);
        assert!(rk >= last, "{} out of kind order", r.key);
        last = rk;
        for d in &r.depends_on {
            let pos = g.resources.iter().position(|x| &x.key == d).unwrap_or_else(|| panic!("{} depends on missing {d}", r.key));
            assert!(pos < i, "{} depends on later {d}", r.key);
        }
        let labeled = r.key.kind == KIND_ADDRESS || r.key.kind == KIND_FORWARDING_RULE;
        let observed = if labeled {
            assert!(!r.tags.is_empty(), "{} has no labels", r.key);
            for (k, v) in &r.tags {
                assert!(is_valid_label_key(k) && is_valid_label_value(v), "{}: label {k}={v}", r.key);
            }
            observed_tags(&r.tags, None, "prod-1")
        } else {
            assert!(r.tags.is_empty(), "{} has tags but its kind has no labels", r.key);
            observed_tags(&BTreeMap::new(), r.spec["description"].as_str(), "prod-1")
        };
        assert!(tags::owned_by(&observed, "prod-1"), "{} carries no ownership", r.key);
    }
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: api-v1, namespace: apps}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: apps}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {ports: [{port: 80, targetPort: 8081}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-v1-abc, namespace: apps, labels: {kubernetes.io/service-name: api-v1}}
addressType: IPv4
ports: [{port: 8080}]
endpoints:
- {addresses: [10.0.1.2], zone: us-central1-a}
- {addresses: [10.0.1.1], zone: us-central1-a}
- {addresses: [10.0.2.1], zone: us-central1-b}
- {addresses: [10.0.3.1]}
- {addresses: [10.0.9.9], zone: us-central1-b, conditions: {ready: false}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-v2-abc, namespace: apps, labels: {kubernetes.io/service-name: api-v2}}
addressType: IPv4
ports: [{port: 8080}]
endpoints:
- {addresses: [10.0.4.1], zone: us-central1-c}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: apps, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8081}]
endpoints:
- {addresses: [10.0.5.1], zone: us-central1-a}
"#;

const HTTP_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: apps}
spec:
  gatewayClassName: gcp
  listeners:
  - {name: http, port: 80, protocol: HTTP}
"#;

const STORE_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: store, namespace: apps}
spec:
  parentRefs: [{name: web}]
  hostnames: [shop.example.com]
  rules:
  - name: split
    matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api-v1, port: 80, weight: 90}, {name: api-v2, port: 80, weight: 10}]
  - matches: [{path: {type: Exact, value: /login}, queryParams: [{name: debug, value: "1"}]}]
    backendRefs: [{name: web, port: 80}]
  - name: canary
    matches: [{path: {type: PathPrefix, value: /api/}, headers: [{name: x-canary, value: "true"}]}]
    backendRefs: [{name: api-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /svc}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: internal.example.com}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: cloudgate}], remove: [server]}
    backendRefs: [{name: web, port: 80}]
  - backendRefs: [{name: web, port: 80}]
"#;

fn store() -> String {
    format!("{HTTP_GATEWAY}---{SERVICES}---{STORE_ROUTE}")
}

fn wbs(name: &str, weight: u32) -> Value {
    json!({"backendService": name, "weight": weight})
}

#[test]
fn route_rules_follow_precedence_with_matches_weights_redirects_and_rewrites() {
    let g = render(&store());
    let um = one(&g, KIND_URL_MAP);
    let (v1, v2, web) = (bs(&g, "apps/api-v1:80"), bs(&g, "apps/api-v2:80"), bs(&g, "apps/web:80"));
    let host_rules = um.spec["hostRules"].as_array().unwrap();
    assert_eq!(host_rules.len(), 1, "only the route's hostname, no catch-all host: {host_rules:?}");
    assert_eq!(host_rules[0]["hosts"], json!(["shop.example.com"]));
    let pm = &um.spec["pathMatchers"][0];
    assert_eq!(pm["name"], host_rules[0]["pathMatcher"]);

    let x_canary = json!([{"headerName": "x-canary", "exactMatch": "true"}]);
    let expected = json!([
        {   // Exact beats every prefix.
            "priority": 1,
            "description": "HTTPRoute apps/store rule 1 match 0",
            "matchRules": [{"fullPathMatch": "/login", "queryParameterMatches": [{"name": "debug", "exactMatch": "1"}]}],
            "routeAction": {"weightedBackendServices": [wbs(&web, 1)]}
        },
        {   // Same prefix as "split" ("/api/" is "/api" per path element) but a header: first.
            "priority": 2,
            "description": "HTTPRoute apps/store rule 2 (canary) match 0",
            "matchRules": [
                {"fullPathMatch": "/api", "headerMatches": x_canary},
                {"prefixMatch": "/api/", "headerMatches": x_canary}
            ],
            "routeAction": {"weightedBackendServices": [wbs(&v2, 1)]}
        },
        {
            "priority": 3,
            "description": "HTTPRoute apps/store rule 0 (split) match 0",
            "matchRules": [{"fullPathMatch": "/api"}, {"prefixMatch": "/api/"}],
            "routeAction": {"weightedBackendServices": [wbs(&v1, 90), wbs(&v2, 10)]}
        },
        {   // ReplacePrefixMatch: "/old" itself becomes "/new" ...
            "priority": 4,
            "description": "HTTPRoute apps/store rule 3 match 0",
            "matchRules": [{"fullPathMatch": "/old"}],
            "urlRedirect": {"pathRedirect": "/new", "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}
        },
        {   // ... and "/old/x" becomes "/new/x".
            "priority": 5,
            "description": "HTTPRoute apps/store rule 3 match 0",
            "matchRules": [{"prefixMatch": "/old/"}],
            "urlRedirect": {"prefixRedirect": "/new/", "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT"}
        },
        {
            "priority": 6,
            "description": "HTTPRoute apps/store rule 4 match 0",
            "matchRules": [{"fullPathMatch": "/svc"}, {"prefixMatch": "/svc/"}],
            "routeAction": {
                "weightedBackendServices": [wbs(&web, 1)],
                "urlRewrite": {"hostRewrite": "internal.example.com"}
            },
            "headerAction": {
                "responseHeadersToAdd": [{"headerName": "x-served-by", "headerValue": "cloudgate", "replace": false}],
                "responseHeadersToRemove": ["server"]
            }
        },
        {   // No matches: PathPrefix "/", last.
            "priority": 7,
            "description": "HTTPRoute apps/store rule 5",
            "matchRules": [{"prefixMatch": "/"}],
            "routeAction": {"weightedBackendServices": [wbs(&web, 1)]}
        }
    ]);
    assert_eq!(pm["routeRules"], expected, "{}", serde_json::to_string_pretty(&pm["routeRules"]).unwrap());

    // Unmatched requests: 404 made by the load balancer, for unknown hosts and unknown paths.
    let no_backend = owned(&g, KIND_BACKEND_SERVICE, "backend-service/no-backend").key.name.clone();
    let not_found = json!({
        "weightedBackendServices": [wbs(&no_backend, 1)],
        "faultInjectionPolicy": {"abort": {"httpStatus": 404, "percentage": 100}}
    });
    assert_eq!(um.spec["defaultRouteAction"], not_found);
    assert_eq!(pm["defaultRouteAction"], not_found);
    assert!(owned(&g, KIND_BACKEND_SERVICE, "backend-service/no-backend").spec.get("backends").is_none());

    // Proxy and forwarding rule for port 80, on the Gateway's address.
    let proxy = one(&g, KIND_TARGET_HTTP_PROXY);
    assert_eq!(proxy.spec["urlMap"], json!(um.key.name));
    let fr = one(&g, KIND_FORWARDING_RULE);
    let address = one(&g, KIND_ADDRESS);
    assert_eq!(fr.spec["IPAddress"], json!(address.key.name));
    assert_eq!(fr.spec["portRange"], "80-80");
    assert_eq!(fr.spec["IPProtocol"], "TCP");
    assert_eq!(fr.spec["target"], json!(proxy.key.name));
    assert_eq!(fr.spec["loadBalancingScheme"], "EXTERNAL_MANAGED");
    assert!(fr.spec.get("network").is_none(), "global external forwarding rules take no network");
    assert_eq!(address.spec, json!({"addressType": "EXTERNAL", "description": "cloudgate Gateway apps/web"}));
    assert!(of_kind(&g, KIND_TARGET_HTTPS_PROXY).is_empty() && of_kind(&g, KIND_SSL_CERTIFICATE).is_empty());
}

#[test]
fn backend_services_get_zonal_negs_from_endpoint_slices() {
    let g = render(&store());
    let negs: Vec<&DesiredResource> =
        of_kind(&g, KIND_NEG).into_iter().filter(|r| r.spec["description"].as_str().unwrap().contains("neg/apps/api-v1:80/")).collect();
    let by_zone: BTreeMap<&str, &Value> = negs.iter().map(|r| (r.spec["zone"].as_str().unwrap(), &r.spec)).collect();
    assert_eq!(by_zone.keys().copied().collect::<Vec<_>>(), vec!["us-central1-a", "us-central1-b"]);
    // The endpoint without a zone lands in <region>-a; the not-ready one nowhere.
    assert_eq!(
        by_zone["us-central1-a"]["endpoints"],
        json!([{"ipAddress": "10.0.1.1", "port": 8080}, {"ipAddress": "10.0.1.2", "port": 8080}, {"ipAddress": "10.0.3.1", "port": 8080}])
    );
    assert_eq!(by_zone["us-central1-b"]["endpoints"], json!([{"ipAddress": "10.0.2.1", "port": 8080}]));
    assert_eq!(by_zone["us-central1-a"]["networkEndpointType"], "GCE_VM_IP_PORT");
    assert_eq!(by_zone["us-central1-a"]["network"], "vpc-1");
    assert_eq!(by_zone["us-central1-a"]["subnetwork"], "subnet-1");
    for n in &negs {
        assert!(n.key.name.starts_with("cg-apps-api-v1-80-us-central1-"), "{}", n.key.name);
    }

    let service = owned(&g, KIND_BACKEND_SERVICE, "backend-service/apps/api-v1:80");
    let hc = owned(&g, KIND_HEALTH_CHECK, "health-check/apps/api-v1:80");
    let neg_a = negs.iter().find(|r| r.spec["zone"] == "us-central1-a").unwrap();
    let neg_b = negs.iter().find(|r| r.spec["zone"] == "us-central1-b").unwrap();
    assert_eq!(service.spec["loadBalancingScheme"], "EXTERNAL_MANAGED");
    assert_eq!(service.spec["protocol"], "HTTP");
    assert_eq!(service.spec["healthChecks"], json!([hc.key.name]));
    assert_eq!(
        service.spec["backends"],
        json!([
            {"group": neg_a.key.name, "balancingMode": "RATE", "maxRatePerEndpoint": 100_000_000},
            {"group": neg_b.key.name, "balancingMode": "RATE", "maxRatePerEndpoint": 100_000_000}
        ])
    );
    assert!(service.spec.get("region").is_none());
    let deps: Vec<&ResourceKey> = service.depends_on.iter().collect();
    assert!(deps.contains(&&hc.key) && deps.contains(&&neg_a.key) && deps.contains(&&neg_b.key));
    assert_eq!(hc.spec["type"], "TCP");
    assert_eq!(hc.spec["tcpHealthCheck"], json!({"portSpecification": "USE_SERVING_PORT"}));

    // Health checkers may reach every endpoint port on the VPC.
    let fw = one(&g, KIND_FIREWALL);
    assert_eq!(fw.spec["network"], "vpc-1");
    assert_eq!(fw.spec["direction"], "INGRESS");
    assert_eq!(fw.spec["sourceRanges"], json!(["35.191.0.0/16", "130.211.0.0/22"]));
    assert_eq!(fw.spec["allowed"], json!([{"IPProtocol": "tcp", "ports": ["8080", "8081"]}]));
    assert_eq!(of_kind(&g, KIND_BACKEND_SERVICE).len(), 4, "three Services and the no-backend service");
    assert_eq!(of_kind(&g, KIND_NEG).len(), 4, "api-v1 in a and b, api-v2 in c, web in a");
}

#[test]
fn changed_spec_changes_the_description_so_the_diff_sees_emptied_lists() {
    let before = render(&store());
    // The route without its header match: the URL map must change, though the new spec is
    // "contained" in the old one field by field.
    let g = render(&store().replace(r#", headers: [{name: x-canary, value: "true"}]"#, ""));
    let um_before = one(&before, KIND_URL_MAP);
    let um_after = one(&g, KIND_URL_MAP);
    assert_eq!(um_before.key, um_after.key);
    assert_ne!(um_before.spec["description"], um_after.spec["description"]);
    let observed = ObservedResource {
        key: um_before.key.clone(),
        id: "1".into(),
        tags: observed_tags(&BTreeMap::new(), um_before.spec["description"].as_str(), "prod-1"),
        spec: um_before.spec.clone(),
    };
    let only_um = ResourceGraph { resources: vec![um_after.clone()] };
    let cs = diff::diff(&only_um, std::slice::from_ref(&observed), "prod-1", KIND_ORDER);
    assert!(matches!(cs.changes.as_slice(), [Change::Update { .. }]), "{cs:?}");
    // And an unchanged one is left alone.
    let same = ResourceGraph { resources: vec![um_before.clone()] };
    assert!(diff::diff(&same, &[observed], "prod-1", KIND_ORDER).is_empty());
}

const TLS_SECRETS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: shop-tls, namespace: apps}
type: kubernetes.io/tls
stringData:
  tls.crt: "-----BEGIN CERTIFICATE-----\nc2hvcA==\n-----END CERTIFICATE-----\n"
  tls.key: "-----BEGIN PRIVATE KEY-----\nSHOP-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"
---
apiVersion: v1
kind: Secret
metadata: {name: blog-tls, namespace: apps}
type: kubernetes.io/tls
stringData:
  tls.crt: "-----BEGIN CERTIFICATE-----\nYmxvZw==\n-----END CERTIFICATE-----\n"
  tls.key: "-----BEGIN PRIVATE KEY-----\nBLOG-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"
"#;

const HTTPS_GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: apps}
spec:
  gatewayClassName: gcp
  listeners:
  - name: shop
    port: 443
    protocol: HTTPS
    hostname: shop.example.com
    tls: {mode: Terminate, certificateRefs: [{name: shop-tls}]}
  - name: blog
    port: 443
    protocol: HTTPS
    hostname: "*.blog.example.com"
    tls: {mode: Terminate, certificateRefs: [{name: blog-tls}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: site, namespace: apps}
spec:
  parentRefs: [{name: web}]
  rules:
  - backendRefs: [{name: web, port: 80}]
"#;

fn https() -> String {
    format!("{HTTPS_GATEWAY}---{SERVICES}---{TLS_SECRETS}")
}

#[test]
fn https_listeners_share_a_proxy_with_certificates_named_by_sha256() {
    let p = GcpProvider::default();
    let pl = plan(&p, &https());
    let g = p.render(&pl, &ctx()).unwrap();
    check_graph(&g);
    let shop = pl.listeners.iter().find(|l| l.name == "shop").unwrap().tls.as_ref().unwrap().certificates[0].clone();
    let certs = of_kind(&g, KIND_SSL_CERTIFICATE);
    assert_eq!(certs.len(), 2);
    let shop_cert = owned(&g, KIND_SSL_CERTIFICATE, "certificate/apps/shop-tls");
    assert!(shop_cert.key.name.starts_with(&format!("cg-{}-shop-tls-", &shop.sha256[..16])), "{}", shop_cert.key.name);
    assert_eq!(shop_cert.spec["certificateSha256"], json!(shop.sha256));
    assert_eq!(shop_cert.spec["secret"], "apps/shop-tls");
    assert_eq!(shop_cert.spec["type"], "SELF_MANAGED");
    let desc: Value = serde_json::from_str(shop_cert.spec["description"].as_str().unwrap()).unwrap();
    assert_eq!(desc["cloudgate"]["certificateSha256"], json!(shop.sha256));

    // No PEM, and certainly no key, anywhere in what plan output prints.
    let printed = serde_json::to_string(&g).unwrap();
    assert!(!printed.contains("KEY-MATERIAL") && !printed.contains("BEGIN"), "{printed}");

    // One port: one URL map, one proxy carrying both certificates, one forwarding rule.
    let proxy = one(&g, KIND_TARGET_HTTPS_PROXY);
    let blog_cert = owned(&g, KIND_SSL_CERTIFICATE, "certificate/apps/blog-tls");
    assert_eq!(proxy.spec["sslCertificates"], json!([shop_cert.key.name, blog_cert.key.name]));
    assert!(proxy.depends_on.contains(&shop_cert.key));
    let um = one(&g, KIND_URL_MAP);
    assert_eq!(proxy.spec["urlMap"], json!(um.key.name));
    let hosts: Vec<&Value> = um.spec["hostRules"].as_array().unwrap().iter().map(|h| &h.get("hosts").unwrap()[0]).collect();
    assert_eq!(hosts, vec!["*.blog.example.com", "shop.example.com"]);
    assert_eq!(one(&g, KIND_FORWARDING_RULE).spec["portRange"], "443-443");
    assert!(of_kind(&g, KIND_TARGET_HTTP_PROXY).is_empty());

    // Rotating the Secret: a new certificate name, the proxy moves to it, the old one goes.
    let rotated = https().replace("SHOP-KEY-MATERIAL", "SHOP-KEY-MATERIAL-2");
    let g2 = p.render(&plan(&p, &rotated), &ctx()).unwrap();
    let shop_cert2 = owned(&g2, KIND_SSL_CERTIFICATE, "certificate/apps/shop-tls");
    assert_ne!(shop_cert2.key.name, shop_cert.key.name);
    assert_eq!(owned(&g2, KIND_SSL_CERTIFICATE, "certificate/apps/blog-tls").key, blog_cert.key);
    assert_eq!(one(&g2, KIND_TARGET_HTTPS_PROXY).spec["sslCertificates"][0], json!(shop_cert2.key.name));
    assert!(g2.get(&shop_cert.key).is_none());
    // In the diff: create the new certificate, update the proxy, then delete the old one.
    let observed: Vec<ObservedResource> = g
        .resources
        .iter()
        .map(|r| ObservedResource {
            key: r.key.clone(),
            id: r.key.name.clone(),
            tags: observed_tags(&r.tags, r.spec["description"].as_str(), "prod-1"),
            spec: r.spec.clone(),
        })
        .collect();
    let ops: Vec<String> = diff::diff(&g2, &observed, "prod-1", KIND_ORDER)
        .changes
        .iter()
        .map(|c| match c {
            Change::Create { desired } => format!("create {}", desired.key.kind),
            Change::Update { desired, .. } => format!("update {}", desired.key.kind),
            Change::Delete { observed } => format!("delete {}", observed.key.kind),
        })
        .collect();
    assert_eq!(ops, vec!["create compute:SslCertificate", "update compute:TargetHttpsProxy", "delete compute:SslCertificate"]);
}

#[test]
fn names_and_labels_stay_valid_for_long_identities() {
    let ns = "n".repeat(63);
    let long = format!("{}-web", "g".repeat(200));
    let gateway = HTTP_GATEWAY.replace("name: web,", &format!("name: {long},"));
    let yaml = format!("{gateway}---{SERVICES}---{STORE_ROUTE}")
        .replace("namespace: apps", &format!("namespace: {ns}"))
        .replace("parentRefs: [{name: web}]", &format!("parentRefs: [{{name: {long}}}]"));
    let p = GcpProvider::default();
    let w = world(&yaml);
    let gw = ObjKey::new(&ns, &long);
    let pl = translate_gateway(&w, &gw, p.capabilities()).unwrap().plan;
    assert_eq!(pl.listeners[0].rules.len(), 6, "the six rules of the store route");
    let mut c = ctx();
    c.default_tags.insert("app.kubernetes.io/part-of".into(), "Shop Frontend".into());
    let g = p.render(&pl, &c).unwrap();
    check_graph(&g);
    for r in &g.resources {
        assert!(r.key.name.len() <= 63, "{}", r.key.name);
    }
    let fr = one(&g, KIND_FORWARDING_RULE);
    assert_eq!(fr.tags["cloudgate-managed-by"], "cloudgate");
    assert_eq!(fr.tags["cloudgate-cluster"], "prod-1");
    assert_eq!(fr.tags["cloudgate-resource"], "forwarding-rule_80");
    assert!(fr.tags["cloudgate-gateway"].len() <= 63);
    assert!(fr.tags.values().any(|v| v.starts_with("shop-frontend-")));
    // The health-check firewall for this Gateway and one of another cluster never share a name.
    let mut other = c.clone();
    other.cluster_id = "prod-2".into();
    let g2 = p.render(&pl, &other).unwrap();
    assert_ne!(one(&g, KIND_FIREWALL).key.name, one(&g2, KIND_FIREWALL).key.name);
}

#[test]
fn kind_order_deletes_children_first() {
    let g = render(&https());
    let observed: Vec<ObservedResource> = g
        .resources
        .iter()
        .map(|r| ObservedResource {
            key: r.key.clone(),
            id: r.key.name.clone(),
            tags: observed_tags(&r.tags, r.spec["description"].as_str(), "prod-1"),
            spec: r.spec.clone(),
        })
        .collect();
    let cs = diff::diff(&ResourceGraph::default(), &observed, "prod-1", KIND_ORDER);
    let mut kinds: Vec<&str> = cs.changes.iter().map(|c| c.key().kind.as_str()).collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        vec![
            KIND_FORWARDING_RULE,
            KIND_TARGET_HTTPS_PROXY,
            KIND_URL_MAP,
            KIND_BACKEND_SERVICE,
            KIND_NEG,
            KIND_HEALTH_CHECK,
            KIND_SSL_CERTIFICATE,
            KIND_ADDRESS,
            KIND_FIREWALL
        ]
    );
}

#[test]
fn regional_internal_flavour() {
    let p = GcpProvider::new(Flavour::RegionalInternalManaged);
    let yaml = format!("{HTTP_GATEWAY}---{SERVICES}---{STORE_ROUTE}").replace(
        "matches: [{path: {type: Exact, value: /login}, queryParams: [{name: debug, value: \"1\"}]}]",
        "matches: [{path: {type: RegularExpression, value: \"/login/[0-9]+\"}, headers: [{name: x-user, type: RegularExpression, value: \"u-.*\"}]}]",
    );
    let pl = plan(&p, &yaml);
    let mut c = ctx();
    c.scheme = "regional-internal-managed".into();
    let g = p.render(&pl, &c).unwrap();
    check_graph(&g);
    let address = one(&g, KIND_ADDRESS);
    assert_eq!(
        address.spec,
        json!({
            "addressType": "INTERNAL",
            "region": "us-central1",
            "subnetwork": "subnet-1",
            "purpose": "SHARED_LOADBALANCER_VIP",
            "description": "cloudgate Gateway apps/web"
        })
    );
    let fr = one(&g, KIND_FORWARDING_RULE);
    assert_eq!(fr.spec["loadBalancingScheme"], "INTERNAL_MANAGED");
    assert_eq!(fr.spec["network"], "vpc-1");
    assert_eq!(fr.spec["subnetwork"], "subnet-1");
    assert_eq!(fr.spec["region"], "us-central1");
    for kind in [KIND_BACKEND_SERVICE, KIND_HEALTH_CHECK, KIND_URL_MAP, KIND_TARGET_HTTP_PROXY] {
        for r in of_kind(&g, kind) {
            assert_eq!(r.spec["region"], "us-central1", "{}", r.key);
        }
    }
    assert_eq!(owned(&g, KIND_BACKEND_SERVICE, "backend-service/apps/web:80").spec["loadBalancingScheme"], "INTERNAL_MANAGED");
    let rules = &one(&g, KIND_URL_MAP).spec["pathMatchers"][0]["routeRules"];
    assert_eq!(
        rules[0]["matchRules"],
        json!([{"regexMatch": "/login/[0-9]+", "headerMatches": [{"headerName": "x-user", "regexMatch": "u-.*"}]}])
    );

    // Regular expressions are regional-only: the default capabilities do not claim them, and
    // a plan that has one does not render as a global load balancer.
    assert!(!capabilities().supports(feature::PATH_REGEX_MATCHING));
    assert!(!capabilities().supports(feature::HTTP_ROUTE_METHOD_MATCHING));
    assert!(capabilities().supports(feature::HTTP_ROUTE_PATH_REWRITE));
    assert!(capabilities().supports(feature::HTTP_ROUTE_HOST_REWRITE));
    assert!(p.capabilities().supports(feature::HEADER_REGEX_MATCHING));
    let mut global = ctx();
    global.scheme = "global-external-managed".into();
    let err = p.render(&pl, &global).unwrap_err().to_string();
    assert!(err.contains("regular expressions"), "{err}");
    // Regional flavours need a region.
    c.region = String::new();
    assert!(p.render(&pl, &c).is_err());
}

#[test]
fn invalid_backends_get_a_fixed_500() {
    let yaml = format!(
        "{HTTP_GATEWAY}---{SERVICES}---{}",
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: apps}
spec:
  parentRefs: [{name: web}]
  rules:
  - backendRefs: [{name: missing, port: 80}]
"#
    );
    let g = render(&yaml);
    let um = one(&g, KIND_URL_MAP);
    assert_eq!(um.spec["hostRules"], json!([{"hosts": ["*"], "pathMatcher": um.spec["pathMatchers"][0]["name"]}]));
    let no_backend = owned(&g, KIND_BACKEND_SERVICE, "backend-service/no-backend").key.name.clone();
    assert_eq!(
        um.spec["pathMatchers"][0]["routeRules"][0]["routeAction"],
        json!({
            "weightedBackendServices": [wbs(&no_backend, 1)],
            "faultInjectionPolicy": {"abort": {"httpStatus": 500, "percentage": 100}}
        })
    );
    // No endpoints referenced at all: no firewall needed.
    assert!(of_kind(&g, KIND_FIREWALL).is_empty());
}

#[test]
fn redirects_filters_mirrors_and_timeouts() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: misc, namespace: apps}
spec:
  parentRefs: [{name: web}]
  rules:
  - matches: [{path: {type: Exact, value: /secure}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: secure.example.com, statusCode: 308}
  - matches: [{path: {type: Exact, value: /moved}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}}
  - matches: [{path: {type: PathPrefix, value: /shadow}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-env, value: prod}]
        add: [{name: x-trace, value: "1"}]
        remove: [x-debug]
    - type: RequestMirror
      requestMirror: {backendRef: {name: api-v2, port: 80}, percent: 25}
    timeouts: {request: 10s}
    backendRefs:
    - name: api-v1
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-backend, value: v1}]}
"#;
    let g = render(&format!("{HTTP_GATEWAY}---{SERVICES}---{route}"));
    let rules = one(&g, KIND_URL_MAP).spec["pathMatchers"][0]["routeRules"].clone();
    assert_eq!(
        rules[0]["urlRedirect"],
        json!({"hostRedirect": "secure.example.com", "httpsRedirect": true, "redirectResponseCode": "PERMANENT_REDIRECT"})
    );
    // Gateway API's default status is 302, which must be written (Compute's default is 301).
    assert_eq!(rules[1]["urlRedirect"], json!({"pathRedirect": "/elsewhere", "redirectResponseCode": "FOUND"}));
    let (v1, v2) = (bs(&g, "apps/api-v1:80"), bs(&g, "apps/api-v2:80"));
    assert_eq!(
        rules[2]["routeAction"],
        json!({
            "weightedBackendServices": [{
                "backendService": v1,
                "weight": 1,
                "headerAction": {"requestHeadersToAdd": [{"headerName": "x-backend", "headerValue": "v1", "replace": true}]}
            }],
            "requestMirrorPolicy": {"backendService": v2, "mirrorPercent": 25},
            "timeout": {"seconds": "10"}
        })
    );
    assert_eq!(
        rules[2]["headerAction"],
        json!({
            "requestHeadersToAdd": [
                {"headerName": "x-env", "headerValue": "prod", "replace": true},
                {"headerName": "x-trace", "headerValue": "1", "replace": false}
            ],
            "requestHeadersToRemove": ["x-debug"]
        })
    );
    // The mirror target is a backend service the URL map depends on.
    let um = one(&g, KIND_URL_MAP);
    assert!(um.depends_on.iter().any(|k| k.name == v2));
}

/// An HTTPRoute in `apps` on the `web` Gateway; `rules` is the YAML below `rules:`.
fn route_yaml(name: &str, rules: &str) -> String {
    format!(
        "\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  parentRefs: [{{name: web}}]\n  rules:{rules}"
    )
}

fn translation(p: &GcpProvider, yaml: &str) -> GatewayTranslation {
    translate_gateway(&world(yaml), &ObjKey::new("apps", "web"), p.capabilities()).expect("gateway")
}

/// The conditions of a route's (only) parentRef, as "Type=Status/Reason: message".
fn route_conditions(t: &GatewayTranslation, route: &str) -> Vec<String> {
    let v: Vec<_> = t.routes.iter().filter(|v| v.route.name == route).collect();
    assert_eq!(v.len(), 1, "{route}");
    v[0].conditions.iter().map(|c| format!("{}={}/{}: {}", c.type_, if c.status { "True" } else { "False" }, c.reason, c.message)).collect()
}

/// A rule only GCP's render could find unbuildable (it depends on the listener, or on the
/// rule's values) costs that rule, on the route's status; the Gateway still renders, exactly
/// as it would without the rule, so every other route keeps working.
/// `accepted`: the route's Accepted condition.
fn refused_on_the_route(p: &GcpProvider, without: &str, extra: &str, route: &str, accepted: &str) {
    let t = translation(p, &format!("{without}---{extra}"));
    assert!(t.gateway.accepted.status);
    assert_eq!(route_conditions(&t, route), [accepted, "ResolvedRefs=True/ResolvedRefs: All references resolved"]);
    let g = p.render(&t.plan, &ctx()).expect("the rest of the Gateway renders");
    check_graph(&g);
    assert_eq!(g, p.render(&plan(p, without), &ctx()).unwrap(), "the refused rule changes nothing else");
    // Render keeps refusing such a plan (one made without the provider's check) as a whole,
    // rather than building something else than the rule says.
    let mut unchecked = p.capabilities().clone();
    unchecked.rule_check = None;
    let unchecked_plan = translate_gateway(&world(&format!("{without}---{extra}")), &ObjKey::new("apps", "web"), &unchecked).unwrap().plan;
    assert!(p.render(&unchecked_plan, &ctx()).is_err());
}

#[test]
fn a_redirect_to_http_from_https_is_refused_on_the_route_not_the_gateway() {
    let route = &route_yaml(
        "down",
        r#"
  - filters:
    - type: RequestRedirect
      requestRedirect: {scheme: http}
"#,
    );
    let p = GcpProvider::default();
    let why = "a redirect to scheme http from an HTTPS listener cannot be expressed (a URL map redirect keeps the scheme or switches http to https)";
    // Both HTTPS listeners refuse it; one entry names both.
    refused_on_the_route(&p, &https(), route, "down", &format!("Accepted=False/UnsupportedValue: rule 0 on listeners shop, blog: {why}"));
    // The site route on the same Gateway is accepted and rendered.
    let t = translation(&p, &format!("{}---{route}", https()));
    assert_eq!(route_conditions(&t, "site")[0], "Accepted=True/Accepted: Route is accepted");

    // On an HTTP listener the same rule keeps the scheme: accepted and built.
    let t = translation(&p, &format!("{}---{route}", store()));
    assert_eq!(route_conditions(&t, "down")[0], "Accepted=True/Accepted: Route is accepted");
    let g = p.render(&t.plan, &ctx()).unwrap();
    let rules = one(&g, KIND_URL_MAP).spec["pathMatchers"][0]["routeRules"].clone();
    assert_eq!(rules[0]["description"], "HTTPRoute apps/down rule 0");
    assert_eq!(rules[0]["urlRedirect"], json!({"redirectResponseCode": "FOUND"}));

    // A status code urlRedirect has no value for (the CRD forbids it; an apiserver without
    // that validation may store it) is refused the same way, on any listener.
    let odd = route.replace("{scheme: http}", "{statusCode: 305}");
    refused_on_the_route(&p, &store(), &odd, "down", "Accepted=False/UnsupportedValue: rule 0 on listener http: redirect status 305 cannot be expressed");
}

#[test]
fn a_full_path_rewrite_under_a_template_prefix_is_refused_on_the_route_not_the_gateway() {
    let route = &route_yaml(
        "rw",
        r#"
  - name: legacy
    matches: [{path: {type: PathPrefix, value: "/leg*acy"}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /index.html}}
    backendRefs: [{name: web, port: 80}]
"#,
    );
    let p = GcpProvider::default();
    refused_on_the_route(
        &p,
        &store(),
        route,
        "rw",
        "Accepted=False/UnsupportedValue: rule 0 (legacy) on listener http: ReplaceFullPath \"/index.html\" under PathPrefix \"/leg*acy\": a path with any of ['*', '{', '}', '='] cannot be written as a path template",
    );
    // An operator in the new path is refused too.
    let to = route.replace("value: \"/leg*acy\"", "value: /legacy").replace("/index.html", "\"/x={y}\"");
    let t = translation(&p, &format!("{}---{to}", store()));
    assert!(route_conditions(&t, "rw")[0].starts_with("Accepted=False/UnsupportedValue: rule 0 (legacy) on listener http: ReplaceFullPath \"/x={y}\""));

    // Next to a rule that works, the route is partially invalid: only that rule is missing.
    let partial = format!(
        "{route}  - matches: [{{path: {{type: PathPrefix, value: /legacy}}}}]\n    filters:\n    - type: URLRewrite\n      urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /index.html}}}}\n    backendRefs: [{{name: web, port: 80}}]\n"
    );
    let t = translation(&p, &format!("{}---{partial}", store()));
    let conds = route_conditions(&t, "rw");
    assert_eq!(conds[0], "Accepted=True/Accepted: Route is accepted");
    assert!(conds[1].starts_with("PartiallyInvalid=True/UnsupportedValue: Dropped Rule(s): rule 0 (legacy) on listener http: "), "{conds:?}");
    let g = p.render(&t.plan, &ctx()).unwrap();
    let um = one(&g, KIND_URL_MAP);
    assert_eq!(um.spec["hostRules"][0]["hosts"], json!(["*"]));
    let rules = um.spec["pathMatchers"][0]["routeRules"].as_array().unwrap();
    let ours: Vec<(&Value, &Value)> =
        rules.iter().filter(|r| r["description"].as_str().unwrap().starts_with("HTTPRoute apps/rw")).map(|r| (&r["description"], &r["matchRules"])).collect();
    // Only rule 1 (the template-free prefix), as its two halves, on the "*" host.
    assert_eq!(
        ours,
        vec![
            (&json!("HTTPRoute apps/rw rule 1 match 0"), &json!([{"fullPathMatch": "/legacy"}])),
            (&json!("HTTPRoute apps/rw rule 1 match 0"), &json!([{"pathTemplateMatch": "/legacy/{path=**}"}])),
        ]
    );
}

/// Values the CRDs forbid, which an apiserver without their validation may still store, cost
/// their rule like any other rule render cannot build.
#[test]
fn rule_values_the_crd_forbids_are_refused_on_the_route() {
    let route = &route_yaml(
        "odd",
        r#"
  - matches: [{path: {type: Exact, value: /slow}}]
    timeouts: {request: 1d}
    backendRefs: [{name: web, port: 80}]
"#,
    );
    let p = GcpProvider::default();
    refused_on_the_route(&p, &store(), route, "odd", "Accepted=False/UnsupportedValue: rule 0 on listener http: invalid timeout \"1d\"");
    // ReplacePrefixMatch needs a PathPrefix match (regex matches are regional-only).
    let regex = route
        .replace("{type: Exact, value: /slow}", "{type: RegularExpression, value: \"/slow/.*\"}")
        .replace("timeouts: {request: 1d}", "filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /fast}}}]");
    refused_on_the_route(
        &GcpProvider::new(Flavour::RegionalExternalManaged),
        &store(),
        &regex,
        "odd",
        "Accepted=False/UnsupportedValue: rule 0 on listener http: ReplacePrefixMatch needs a PathPrefix match",
    );
}

#[test]
fn grpc_backends_speak_h2c() {
    let yaml = format!(
        "{HTTP_GATEWAY}---{SERVICES}---{}",
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: apps}
spec:
  parentRefs: [{name: web}]
  hostnames: [rpc.example.com]
  rules:
  - matches: [{method: {service: pkg.Svc, method: Get}}]
    backendRefs: [{name: api-v2, port: 80}]
"#
    );
    let g = render(&yaml);
    assert_eq!(owned(&g, KIND_BACKEND_SERVICE, "backend-service/apps/api-v2:80").spec["protocol"], "H2C");
    let rr = &one(&g, KIND_URL_MAP).spec["pathMatchers"][0]["routeRules"][0];
    assert_eq!(rr["matchRules"], json!([{"fullPathMatch": "/pkg.Svc/Get"}]));
    assert_eq!(rr["description"], "GRPCRoute apps/rpc rule 0 match 0");

    // Whatever a BackendPolicy's protocol version says; its other settings still apply.
    let mut c = ctx();
    c.backend_settings.insert(
        ObjKey::new("apps", "api-v2"),
        BackendSettings { protocol_version: Some(BackendProtocolVersion::Http1), deregistration_delay_seconds: Some(60), ..Default::default() },
    );
    let g = render_in(&yaml, &c);
    let bs = &owned(&g, KIND_BACKEND_SERVICE, "backend-service/apps/api-v2:80").spec;
    assert_eq!((&bs["protocol"], &bs["connectionDraining"]), (&json!("H2C"), &json!({"drainingTimeoutSec": 60})));
}

#[test]
fn static_addresses_are_used_not_reserved() {
    let named = HTTP_GATEWAY.replace("  listeners:", "  addresses: [{type: NamedAddress, value: my-reserved-ip}]\n  listeners:");
    let g = render(&format!("{named}---{SERVICES}---{STORE_ROUTE}"));
    assert!(of_kind(&g, KIND_ADDRESS).is_empty());
    let fr = one(&g, KIND_FORWARDING_RULE);
    assert_eq!(fr.spec["IPAddress"], "my-reserved-ip");
    assert!(fr.depends_on.iter().all(|k| k.kind != KIND_ADDRESS));

    let ip = HTTP_GATEWAY.replace("  listeners:", "  addresses: [{type: IPAddress, value: 203.0.113.7}]\n  listeners:");
    let g = render(&format!("{ip}---{SERVICES}---{STORE_ROUTE}"));
    assert!(of_kind(&g, KIND_ADDRESS).is_empty());
    assert_eq!(one(&g, KIND_FORWARDING_RULE).spec["IPAddress"], "203.0.113.7");

    // Internal: the IP is reserved in the subnetwork so both ports can share it.
    let p = GcpProvider::new(Flavour::RegionalInternalManaged);
    let ip = ip.replace("203.0.113.7", "10.10.0.5");
    let g = p.render(&plan(&p, &format!("{ip}---{SERVICES}---{STORE_ROUTE}")), &ctx()).unwrap();
    check_graph(&g);
    assert_eq!(one(&g, KIND_ADDRESS).spec["address"], "10.10.0.5");
    assert_eq!(one(&g, KIND_FORWARDING_RULE).spec["IPAddress"], json!(one(&g, KIND_ADDRESS).key.name));
}

/// GatewayStaticAddresses (conformance): a load balancer here binds one address, so two are
/// AddressNotUsable (Programmed=False with that reason), not an invalid plan.
#[test]
fn two_static_addresses_are_not_usable() {
    let two = HTTP_GATEWAY
        .replace("  listeners:", "  addresses: [{type: IPAddress, value: 192.0.2.10}, {type: IPAddress, value: 34.117.0.14}]\n  listeners:");
    let p = GcpProvider::default();
    let err = p.render(&plan(&p, &format!("{two}---{SERVICES}---{STORE_ROUTE}")), &ctx()).unwrap_err();
    assert!(matches!(err, RenderError::AddressNotUsable { provider: "gcp", .. }), "{err:?}");
    assert_eq!(err.programmed_reason(), "AddressNotUsable");
    assert!(err.to_string().contains("2 addresses requested"), "{err}");
}

#[test]
fn rules_without_hostname_fall_through_from_specific_hosts() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: any, namespace: apps}
spec:
  parentRefs: [{name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs: [{name: api-v1, port: 80}]
"#;
    let g = render(&format!("{}---{route}", store()));
    let um = one(&g, KIND_URL_MAP);
    let hosts: Vec<&Value> = um.spec["hostRules"].as_array().unwrap().iter().map(|h| &h["hosts"][0]).collect();
    assert_eq!(hosts, vec!["*", "shop.example.com"]);
    let pms = um.spec["pathMatchers"].as_array().unwrap();
    // "*": only the host-less rule.
    assert_eq!(pms[0]["routeRules"].as_array().unwrap().len(), 1);
    // shop.example.com: its 7 rules first (all of them, even the catch-all "/"), then the
    // host-less /static rule, which the spec ranks after every hostname-specific rule.
    let shop = pms[1]["routeRules"].as_array().unwrap();
    assert_eq!(shop.len(), 8);
    assert_eq!(shop[7]["description"], "HTTPRoute apps/any rule 0 match 0");
    assert_eq!(shop[7]["priority"], 8);
}

#[test]
fn unknown_scheme_is_an_error() {
    let p = GcpProvider::default();
    let mut c = ctx();
    c.scheme = "internet-facing".into();
    let err = p.render(&plan(&p, &store()), &c).unwrap_err().to_string();
    assert!(err.contains("unknown scheme"), "{err}");
    assert_eq!(p.name(), "gcp");
    assert_eq!(p.capabilities().max_weight, 1000);
}

#[test]
fn path_rewrites_replace_prefixes_element_wise_and_full_paths_whole() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rw, namespace: apps}
spec:
  parentRefs: [{name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    backendRefs: [{name: api-v1, port: 80}]
  - matches: [{path: {type: Exact, value: /old}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /new}}
    backendRefs: [{name: api-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /legacy}, headers: [{name: x-old, value: "1"}]}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: legacy.internal, path: {type: ReplaceFullPath, replaceFullPath: /index.html}}
    backendRefs: [{name: api-v1, port: 80}]
  - filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: web, port: 80}]
"#;
    let g = render(&format!("{HTTP_GATEWAY}---{SERVICES}---{route}"));
    let rules = one(&g, KIND_URL_MAP).spec["pathMatchers"][0]["routeRules"].clone();
    let summary: Vec<(Value, Value)> =
        rules.as_array().unwrap().iter().map(|r| (r["matchRules"].clone(), r["routeAction"]["urlRewrite"].clone())).collect();
    assert_eq!(
        summary,
        vec![
            // Exact paths first: the matched part of a full-path match is the whole path.
            (json!([{"fullPathMatch": "/old"}]), json!({"pathPrefixRewrite": "/new"})),
            // /legacy (with its header match) itself, then everything below it, both to one path.
            (
                json!([{"fullPathMatch": "/legacy", "headerMatches": [{"headerName": "x-old", "exactMatch": "1"}]}]),
                json!({"hostRewrite": "legacy.internal", "pathPrefixRewrite": "/index.html"})
            ),
            (
                json!([{"pathTemplateMatch": "/legacy/{path=**}", "headerMatches": [{"headerName": "x-old", "exactMatch": "1"}]}]),
                json!({"hostRewrite": "legacy.internal", "pathTemplateRewrite": "/index.html"})
            ),
            // /api -> /v2, /api/x -> /v2/x.
            (json!([{"fullPathMatch": "/api"}]), json!({"pathPrefixRewrite": "/v2"})),
            (json!([{"prefixMatch": "/api/"}]), json!({"pathPrefixRewrite": "/v2/"})),
            // Prefix "/" replaced by "/": unchanged paths, written out all the same.
            (json!([{"fullPathMatch": "/"}]), json!({"pathPrefixRewrite": "/"})),
            (json!([{"prefixMatch": "/"}]), json!({"pathPrefixRewrite": "/"})),
        ]
    );
    let prios: Vec<i64> = rules.as_array().unwrap().iter().map(|r| r["priority"].as_i64().unwrap()).collect();
    assert_eq!(prios, (1..=7).collect::<Vec<i64>>());

    // A prefix that cannot be a path template: see
    // a_full_path_rewrite_under_a_template_prefix_is_refused_on_the_route_not_the_gateway.

    // Regional flavours: a full-path rewrite under a regex match replaces whatever matched.
    let regional = GcpProvider::new(Flavour::RegionalExternalManaged);
    let re = route.replace("type: PathPrefix, value: /legacy}", "type: RegularExpression, value: \"/legacy/.*\"}");
    let g = regional.render(&plan(&regional, &format!("{HTTP_GATEWAY}---{SERVICES}---{re}")), &ctx()).unwrap();
    check_graph(&g);
    let rules = one(&g, KIND_URL_MAP).spec["pathMatchers"][0]["routeRules"].clone();
    let legacy = rules.as_array().unwrap().iter().find(|r| r["matchRules"][0]["regexMatch"] == "/legacy/.*").unwrap();
    assert_eq!(
        legacy["routeAction"]["urlRewrite"],
        json!({"hostRewrite": "legacy.internal", "regexRewrite": {"pathPattern": ".*", "pathSubstitution": "/index.html"}})
    );
}

/// A HealthCheckPolicy replaces the TCP check of its Service's backend service with the check
/// it describes; other Services keep the default, and rendering without the policy gives back
/// exactly the default spec (so the full update that follows restores it).
#[test]
fn health_check_policies_shape_the_services_health_check() {
    let default = render(&store());
    let mut c = ctx();
    c.health_checks.insert(
        ObjKey::new("apps", "api-v1"),
        HealthCheck {
            protocol: Some(HealthCheckProtocol::Http),
            path: Some("/healthz".into()),
            port: Some(9000),
            interval_seconds: Some(10),
            timeout_seconds: Some(3),
            healthy_threshold: Some(3),
            unhealthy_threshold: Some(4),
            http_codes: Some("200".into()),
            grpc_codes: None,
        },
    );
    c.health_checks.insert(ObjKey::new("apps", "api-v2"), HealthCheck { protocol: Some(HealthCheckProtocol::Grpc), ..Default::default() });
    c.health_checks.insert(ObjKey::new("apps", "web"), HealthCheck { protocol: Some(HealthCheckProtocol::Https), ..Default::default() });
    let g = render_in(&store(), &c);

    let hc = owned(&g, KIND_HEALTH_CHECK, "health-check/apps/api-v1:80");
    let mut spec = hc.spec.clone();
    spec.as_object_mut().unwrap().remove("description");
    assert_eq!(
        spec,
        json!({"type": "HTTP", "checkIntervalSec": 10, "timeoutSec": 3, "healthyThreshold": 3, "unhealthyThreshold": 4,
            "httpHealthCheck": {"portSpecification": "USE_FIXED_PORT", "port": 9000, "requestPath": "/healthz"}})
    );
    let before = owned(&default, KIND_HEALTH_CHECK, "health-check/apps/api-v1:80");
    assert_eq!(hc.key, before.key, "the same health check, updated in place");
    assert_ne!(hc.spec["description"], before.spec["description"], "the spec hash sees the change");

    // gRPC checks have no path; an HTTPS check without a path asks for /.
    let grpc = &owned(&g, KIND_HEALTH_CHECK, "health-check/apps/api-v2:80").spec;
    assert_eq!((&grpc["type"], &grpc["grpcHealthCheck"]), (&json!("GRPC"), &json!({"portSpecification": "USE_SERVING_PORT"})));
    assert!(grpc.get("tcpHealthCheck").is_none() && grpc.get("checkIntervalSec").is_none());
    let https = &owned(&g, KIND_HEALTH_CHECK, "health-check/apps/web:80").spec;
    assert_eq!(https["httpsHealthCheck"], json!({"portSpecification": "USE_SERVING_PORT", "requestPath": "/"}));

    // Google's health checkers are let through to the fixed port too.
    assert_eq!(one(&g, KIND_FIREWALL).spec["allowed"], json!([{"IPProtocol": "tcp", "ports": ["8080", "8081", "9000"]}]));

    // No policy: cloudgate's default, byte for byte what it was.
    let again = render(&store());
    for r in of_kind(&default, KIND_HEALTH_CHECK) {
        let now = again.resources.iter().find(|x| x.key == r.key).unwrap();
        assert_eq!(now.spec, r.spec);
        assert_eq!(r.spec["type"], "TCP");
        assert_eq!(r.spec["tcpHealthCheck"], json!({"portSpecification": "USE_SERVING_PORT"}));
    }
}

#[test]
fn health_check_support_names_what_compute_cannot_do() {
    let p = GcpProvider::default();
    let http = |f: fn(&mut HealthCheck)| {
        let mut hc = HealthCheck { protocol: Some(HealthCheckProtocol::Http), ..Default::default() };
        f(&mut hc);
        p.health_check_support(&hc)
    };
    for protocol in [HealthCheckProtocol::Http, HealthCheckProtocol::Https, HealthCheckProtocol::Http2, HealthCheckProtocol::Grpc, HealthCheckProtocol::Tcp] {
        assert_eq!(p.health_check_support(&HealthCheck { protocol: Some(protocol), ..Default::default() }), Ok(()), "{protocol:?}");
    }
    assert_eq!(http(|h| h.http_codes = Some("200".into())), Ok(()));
    assert_eq!(
        http(|h| {
            h.interval_seconds = Some(300);
            h.timeout_seconds = Some(300);
            h.healthy_threshold = Some(1);
            h.unhealthy_threshold = Some(10);
        }),
        Ok(())
    );

    let err = |r: Result<(), String>, needle: &str| {
        let e = r.expect_err(needle);
        assert!(e.contains(needle), "{e:?} does not say {needle:?}");
    };
    err(http(|h| h.http_codes = Some("200-399".into())), "count HTTP 200 as healthy");
    err(http(|h| h.grpc_codes = Some("0".into())), "matcher.grpcCodes");
    err(http(|h| h.interval_seconds = Some(301)), "intervalSeconds 301: gcp takes 1 to 300");
    err(http(|h| h.timeout_seconds = Some(0)), "timeoutSeconds 0: gcp takes 1 to 300");
    err(http(|h| h.healthy_threshold = Some(11)), "healthyThreshold 11: gcp takes 1 to 10");
    err(http(|h| h.unhealthy_threshold = Some(0)), "unhealthyThreshold 0: gcp takes 1 to 10");
    // The timeout is checked against the default interval where the policy sets none.
    err(http(|h| h.timeout_seconds = Some(6)), "timeoutSeconds 6 must not exceed intervalSeconds 5");
    err(
        http(|h| {
            h.interval_seconds = Some(10);
            h.timeout_seconds = Some(11);
        }),
        "timeoutSeconds 11 must not exceed intervalSeconds 10",
    );
    // A path needs an HTTP kind of check; the default is TCP.
    err(p.health_check_support(&HealthCheck { path: Some("/healthz".into()), ..Default::default() }), "this check is TCP");
    let grpc_path = HealthCheck { protocol: Some(HealthCheckProtocol::Grpc), path: Some("/healthz".into()), ..Default::default() };
    err(p.health_check_support(&grpc_path), "this check is GRPC");
    let tcp_codes = HealthCheck { protocol: Some(HealthCheckProtocol::Tcp), http_codes: Some("200".into()), ..Default::default() };
    err(p.health_check_support(&tcp_codes), "matcher.httpCodes applies to HTTP");
}

/// A BackendPolicy sets the backend service's protocol, connection draining and locality
/// policy; Compute's defaults (0, ROUND_ROBIN) are left out like every other API default.
#[test]
fn backend_policies_set_protocol_draining_and_locality_policy() {
    let default = render(&store());
    let mut c = ctx();
    let settings = |v, d, a| BackendSettings { protocol_version: v, deregistration_delay_seconds: d, slow_start_seconds: None, algorithm: a };
    c.backend_settings.insert(ObjKey::new("apps", "api-v1"), settings(Some(BackendProtocolVersion::Http2), Some(30), Some(LoadBalancingAlgorithm::LeastRequest)));
    c.backend_settings.insert(ObjKey::new("apps", "api-v2"), settings(Some(BackendProtocolVersion::Grpc), Some(3600), Some(LoadBalancingAlgorithm::Random)));
    c.backend_settings.insert(ObjKey::new("apps", "web"), settings(Some(BackendProtocolVersion::Http1), Some(0), Some(LoadBalancingAlgorithm::RoundRobin)));
    let g = render_in(&store(), &c);

    let v1 = &owned(&g, KIND_BACKEND_SERVICE, "backend-service/apps/api-v1:80").spec;
    assert_eq!((&v1["protocol"], &v1["connectionDraining"], &v1["localityLbPolicy"]), (&json!("H2C"), &json!({"drainingTimeoutSec": 30}), &json!("LEAST_REQUEST")));
    let v2 = &owned(&g, KIND_BACKEND_SERVICE, "backend-service/apps/api-v2:80").spec;
    assert_eq!((&v2["protocol"], &v2["connectionDraining"], &v2["localityLbPolicy"]), (&json!("H2C"), &json!({"drainingTimeoutSec": 3600}), &json!("RANDOM")));
    let before = owned(&default, KIND_BACKEND_SERVICE, "backend-service/apps/api-v1:80");
    assert_ne!(v1["description"], before.spec["description"], "the spec hash sees the change");

    // Explicit defaults render the default spec exactly: nothing to update.
    let web = owned(&g, KIND_BACKEND_SERVICE, "backend-service/apps/web:80");
    assert_eq!(web.spec, owned(&default, KIND_BACKEND_SERVICE, "backend-service/apps/web:80").spec);
    assert_eq!(web.spec["protocol"], "HTTP");
    assert!(web.spec.get("connectionDraining").is_none() && web.spec.get("localityLbPolicy").is_none());
}

#[test]
fn backend_settings_support_refuses_slow_start_and_out_of_range_draining() {
    let p = GcpProvider::default();
    for algorithm in [LoadBalancingAlgorithm::RoundRobin, LoadBalancingAlgorithm::LeastRequest, LoadBalancingAlgorithm::Random] {
        for v in [BackendProtocolVersion::Http1, BackendProtocolVersion::Http2, BackendProtocolVersion::Grpc] {
            let s = BackendSettings { protocol_version: Some(v), deregistration_delay_seconds: Some(3600), slow_start_seconds: Some(0), algorithm: Some(algorithm) };
            assert_eq!(p.backend_settings_support(&s), Ok(()), "{s:?}");
        }
    }
    let e = p.backend_settings_support(&BackendSettings { slow_start_seconds: Some(30), ..Default::default() }).unwrap_err();
    assert!(e.contains("slowStartSeconds 30") && e.contains("no slow start"), "{e}");
    let e = p.backend_settings_support(&BackendSettings { deregistration_delay_seconds: Some(3601), ..Default::default() }).unwrap_err();
    assert_eq!(e, "deregistrationDelaySeconds 3601: gcp takes 0 to 3600");
}

/// HTTPRoute303RedirectStatusCode, HTTPRoute307RedirectStatusCode and
/// HTTPRoute308RedirectStatusCode: each status is the URL map redirect's response code.
#[test]
fn redirect_status_codes_become_url_map_response_codes() {
    let rules: String = [(301, "/a"), (302, "/b"), (303, "/c"), (307, "/d"), (308, "/e")]
        .iter()
        .map(|(code, path)| {
            format!("\n  - matches: [{{path: {{type: Exact, value: {path}}}}}]\n    filters:\n    - type: RequestRedirect\n      requestRedirect: {{hostname: moved.example.com, statusCode: {code}}}")
        })
        .collect();
    let g = render(&format!("{HTTP_GATEWAY}---{SERVICES}---{}", route_yaml("moved", &format!("{rules}\n"))));
    let got: Vec<(Value, Value)> = one(&g, KIND_URL_MAP).spec["pathMatchers"][0]["routeRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["matchRules"][0]["fullPathMatch"].clone(), r["urlRedirect"].clone()))
        .collect();
    let want = |code: &str| json!({"hostRedirect": "moved.example.com", "redirectResponseCode": code});
    assert_eq!(
        got,
        [
            (json!("/a"), want("MOVED_PERMANENTLY_DEFAULT")),
            (json!("/b"), want("FOUND")),
            (json!("/c"), want("SEE_OTHER")),
            (json!("/d"), want("TEMPORARY_REDIRECT")),
            (json!("/e"), want("PERMANENT_REDIRECT")),
        ]
    );
}

/// GatewayPort8080 and HTTPRouteParentRefPort: listeners on 80 and 8080 are a forwarding rule
/// each ("80-80", "8080-8080") on the Gateway's one address, and a route whose parentRef names
/// port 8080 is in the 8080 URL map only.
#[test]
fn parent_ref_port_puts_the_route_in_the_8080_url_map_only() {
    let gw = HTTP_GATEWAY
        .replace("  - {name: http, port: 80, protocol: HTTP}", "  - {name: http, port: 80, protocol: HTTP}\n  - {name: alt, port: 8080, protocol: HTTP}");
    let route = |name: &str, parent: &str, path: &str| {
        format!(
            "\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  parentRefs: [{parent}]\n  rules:\n  - matches: [{{path: {{type: Exact, value: {path}}}}}]\n    backendRefs: [{{name: web, port: 80}}]\n"
        )
    };
    let g = render(&format!("{gw}---{SERVICES}---{}---{}", route("alt", "{name: web, port: 8080}", "/alt"), route("both", "{name: web}", "/both")));
    let address = one(&g, KIND_ADDRESS).key.name.clone();
    let mut paths_by_port = BTreeMap::new();
    for fr in of_kind(&g, KIND_FORWARDING_RULE) {
        assert_eq!(fr.spec["IPAddress"], json!(address));
        let proxy = g.resources.iter().find(|r| json!(r.key.name) == fr.spec["target"]).expect("the forwarding rule's proxy");
        let um = g.resources.iter().find(|r| json!(r.key.name) == proxy.spec["urlMap"]).expect("the proxy's URL map");
        let mut paths: Vec<String> = um.spec["pathMatchers"][0]["routeRules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["matchRules"][0]["fullPathMatch"].as_str().unwrap().to_string())
            .collect();
        paths.sort();
        paths_by_port.insert(fr.spec["portRange"].as_str().unwrap().to_string(), paths);
    }
    assert_eq!(
        paths_by_port,
        BTreeMap::from([("80-80".to_string(), vec!["/both".to_string()]), ("8080-8080".to_string(), vec!["/alt".to_string(), "/both".to_string()])])
    );
}
