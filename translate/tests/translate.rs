//! Translation rules, each exercised on upstream-style manifests.

use cloudgate_translate::capabilities::{feature, Capabilities, Protocol};
use cloudgate_translate::gateway::{GatewayTranslation, RouteParentVerdict};
use cloudgate_translate::gateway_class::class_status;
use cloudgate_translate::manifest::{load_str, Loaded};
use cloudgate_translate::model::{ObjKey, PathMatch};
use cloudgate_translate::plan::{ListenerPlan, PlanRule, RuleAction};
use cloudgate_translate::status::{gateway_status, Provisioning, StatusAddress};
use cloudgate_translate::{translate_gateway, World};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

const CLASS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: cg, generation: 4}
spec: {controllerName: cloudgate.io/gateway-controller}
"#;

fn caps_with(features: &[&'static str]) -> Capabilities {
    Capabilities {
        provider: "test",
        protocols: [Protocol::Http, Protocol::Https, Protocol::Tls].into_iter().collect(),
        features: features.iter().copied().collect(),
        max_weight: 999,
        reserved_ports: [22].into_iter().collect(),
        max_backends_per_rule: 5,
        rule_check: None,
    }
}

fn caps() -> Capabilities {
    caps_with(&[
        feature::GATEWAY,
        feature::HTTP_ROUTE,
        feature::GRPC_ROUTE,
        feature::TLS_ROUTE,
        feature::REFERENCE_GRANT,
        feature::HTTP_ROUTE_METHOD_MATCHING,
        feature::HTTP_ROUTE_QUERY_PARAM_MATCHING,
        feature::HTTP_ROUTE_PARENT_REF_PORT,
        feature::TLS_PASSTHROUGH,
        feature::REQUEST_REDIRECT,
        feature::HTTP_ROUTE_SCHEME_REDIRECT,
    ])
}

fn world(yaml: &str) -> World {
    let mut w = World::new();
    w.bundle_version = Some("v1.5.1".into());
    let mut l = Loaded::default();
    load_str("test", &format!("{CLASS}\n---\n{yaml}"), &mut w, &mut l).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    w
}

fn tr(w: &World, ns: &str, name: &str) -> GatewayTranslation {
    translate_gateway(w, &ObjKey::new(ns, name), &caps()).expect("gateway exists")
}

fn route<'a>(t: &'a GatewayTranslation, name: &str) -> Vec<&'a RouteParentVerdict> {
    t.routes.iter().filter(|r| r.route.name == name).collect()
}

/// "Type=Status/Reason" for each condition, for compact assertions.
fn c(conds: &[cloudgate_translate::conditions::Cond]) -> Vec<String> {
    conds.iter().map(|c| format!("{}={}/{}", c.type_, if c.status { "True" } else { "False" }, c.reason)).collect()
}

fn listener_conds(t: &GatewayTranslation, name: &str) -> Vec<String> {
    c(&t.gateway.listeners.iter().find(|l| l.name == name).unwrap().conditions)
}

const SVC: &str = r#"
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: ns}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-1, namespace: ns, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: [10.0.0.2], conditions: {ready: true}, zone: a}
- {addresses: [10.0.0.1], zone: b}
- {addresses: [10.0.0.3], conditions: {ready: false}}
"#;

fn gw(listeners: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: ns, generation: 7}}\nspec:\n  gatewayClassName: cg\n  listeners:\n{listeners}"
    )
}

#[test]
fn basic_route_attaches_and_resolves_endpoints() {
    let w = world(&format!(
        "{}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: ns, generation: 3}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - backendRefs: [{{name: svc, port: 80}}]\n{SVC}",
        gw("  - {name: http, protocol: HTTP, port: 80}")
    ));
    let t = tr(&w, "ns", "gw");
    assert_eq!(c(&[t.gateway.accepted.clone()]), vec!["Accepted=True/Accepted"]);
    assert_eq!(t.gateway.generation, Some(7));
    assert_eq!(listener_conds(&t, "http"), vec!["Accepted=True/Accepted", "Conflicted=False/NoConflicts", "ResolvedRefs=True/ResolvedRefs"]);
    assert_eq!(t.gateway.listeners[0].attached_routes, 1);
    let r = route(&t, "r");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].generation, Some(3));
    assert_eq!(c(&r[0].conditions), vec!["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]);
    // Plan: one listener, one rule (default "/" prefix), endpoints ready only, sorted.
    let l = &t.plan.listeners[0];
    assert_eq!(l.rules.len(), 1);
    assert_eq!(l.rules[0].matches.path, Some(PathMatch::PathPrefix("/".into())));
    let b = t.plan.backends.values().next().unwrap();
    let ips: Vec<(&str, i32)> = b.endpoints.iter().map(|e| (e.ip.as_str(), e.port)).collect();
    assert_eq!(ips, vec![("10.0.0.1", 8080), ("10.0.0.2", 8080)]);

    // Final status: observedGeneration on every condition; Programmed follows provisioning.
    let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
    let pending = gateway_status(&t.gateway, &Provisioning::Pending("soon".into()), None, &now);
    let conds = pending.conditions.unwrap();
    assert!(conds.iter().all(|c| c.observed_generation == Some(7)));
    assert_eq!(conds[1].reason, "Pending");
    let ready = gateway_status(
        &t.gateway,
        &Provisioning::Ready { addresses: vec![StatusAddress { type_: "Hostname".into(), value: "lb.example".into() }] },
        None,
        &now,
    );
    assert_eq!(ready.conditions.unwrap()[1].status, "True");
    assert_eq!(ready.addresses.unwrap()[0].value, "lb.example");
    let l = &ready.listeners.unwrap()[0];
    assert_eq!(l.supported_kinds.as_ref().unwrap().iter().map(|k| k.kind.as_str()).collect::<Vec<_>>(), vec!["HTTPRoute", "GRPCRoute"]);
    assert!(l.conditions.iter().any(|c| c.type_ == "Programmed" && c.status == "True"));

    // A load balancer without an address is not Programmed yet; on a cloud where addresses
    // belong to routes (Lattice), a Gateway without routes is Programmed with none.
    let bare = gateway_status(&t.gateway, &Provisioning::Ready { addresses: vec![] }, None, &now);
    let c = &bare.conditions.as_ref().unwrap()[1];
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "AddressNotAssigned"));
    let per_route = gateway_status(&t.gateway, &Provisioning::ReadyPerRoute { addresses: vec![] }, None, &now);
    let c = &per_route.conditions.as_ref().unwrap()[1];
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Programmed"));
    assert_eq!(per_route.addresses, None);
}

#[test]
fn listeners_conflicting_on_hostname_are_both_rejected_but_others_survive() {
    let w = world(&gw("  - {name: a, protocol: HTTP, port: 80, hostname: x.example.com}\n  - {name: b, protocol: HTTP, port: 80, hostname: x.example.com}\n  - {name: c, protocol: HTTP, port: 80, hostname: y.example.com}\n"));
    let t = tr(&w, "ns", "gw");
    for name in ["a", "b"] {
        assert_eq!(
            listener_conds(&t, name),
            vec!["Accepted=False/HostnameConflict", "Conflicted=True/HostnameConflict", "ResolvedRefs=True/ResolvedRefs"]
        );
    }
    assert_eq!(listener_conds(&t, "c")[1], "Conflicted=False/NoConflicts");
    // Partially valid Gateway: accepted, with ListenersNotValid naming the bad ones.
    assert_eq!(c(&[t.gateway.accepted.clone()]), vec!["Accepted=True/ListenersNotValid"]);
    assert!(t.gateway.accepted.message.contains("a, b"));
    assert_eq!(t.plan.listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), vec!["c"]);
}

#[test]
fn protocol_conflicts_unsupported_protocols_and_reserved_ports() {
    let w = world(&gw("  - {name: h, protocol: HTTP, port: 443}\n  - {name: t, protocol: TLS, port: 443, tls: {mode: Passthrough}}\n  - {name: u, protocol: UDP, port: 53}\n  - {name: s, protocol: HTTP, port: 22}\n"));
    let t = tr(&w, "ns", "gw");
    assert_eq!(listener_conds(&t, "h")[1], "Conflicted=True/ProtocolConflict");
    assert_eq!(listener_conds(&t, "t")[1], "Conflicted=True/ProtocolConflict");
    assert_eq!(listener_conds(&t, "u")[0], "Accepted=False/UnsupportedProtocol");
    assert_eq!(listener_conds(&t, "s")[0], "Accepted=False/PortUnavailable");
    assert_eq!(c(&[t.gateway.accepted.clone()]), vec!["Accepted=False/ListenersNotValid"]);
    assert!(t.plan.listeners.is_empty());
}

#[test]
fn invalid_route_kinds_narrow_supported_kinds() {
    let w = world(&gw("  - name: http\n    protocol: HTTP\n    port: 80\n    allowedRoutes:\n      kinds: [{kind: HTTPRoute}, {kind: TCPRoute}]\n  - name: none\n    protocol: HTTP\n    port: 8080\n    allowedRoutes:\n      kinds: [{kind: UDPRoute}]\n"));
    let t = tr(&w, "ns", "gw");
    let l = &t.gateway.listeners[0];
    assert_eq!(l.supported_kinds.iter().map(|k| k.kind()).collect::<Vec<_>>(), vec!["HTTPRoute"]);
    assert_eq!(listener_conds(&t, "http")[2], "ResolvedRefs=False/InvalidRouteKinds");
    assert!(t.gateway.listeners[1].supported_kinds.is_empty());
    assert_eq!(listener_conds(&t, "none")[2], "ResolvedRefs=False/InvalidRouteKinds");
}

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

fn secret(ns: &str, name: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {:?}\n  tls.key: {:?}\n",
        CERT, KEY
    )
}

#[test]
fn certificate_refs_missing_cross_namespace_and_granted() {
    let listeners = "  - {name: missing, protocol: HTTPS, port: 443, hostname: a.com, tls: {certificateRefs: [{name: nope}]}}\n  - {name: cross, protocol: HTTPS, port: 443, hostname: b.com, tls: {certificateRefs: [{name: cert, namespace: certs}]}}\n  - {name: local, protocol: HTTPS, port: 443, hostname: c.com, tls: {certificateRefs: [{name: cert}]}}\n";
    let base = format!("{}{}{}", gw(listeners), secret("certs", "cert"), secret("ns", "cert"));
    let t = tr(&world(&base), "ns", "gw");
    assert_eq!(listener_conds(&t, "missing")[2], "ResolvedRefs=False/InvalidCertificateRef");
    assert_eq!(listener_conds(&t, "cross")[2], "ResolvedRefs=False/RefNotPermitted");
    assert_eq!(listener_conds(&t, "local")[2], "ResolvedRefs=True/ResolvedRefs");
    // Only the listener with a usable certificate is provisioned.
    assert_eq!(t.plan.listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), vec!["local"]);
    let cert = &t.plan.listeners[0].tls.as_ref().unwrap().certificates[0];
    assert_eq!(cert.sha256.len(), 64);
    // The private key never reaches serialised output.
    assert!(!serde_json::to_string(&t.plan).unwrap().contains("PRIVATE KEY"));

    let grant = "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: certs}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: ns}]\n  to: [{group: '', kind: Secret}]\n";
    let t = tr(&world(&format!("{base}{grant}")), "ns", "gw");
    assert_eq!(listener_conds(&t, "cross")[2], "ResolvedRefs=True/ResolvedRefs");
}

fn http_route(ns: &str, name: &str, parent: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  parentRefs: [{parent}]\n{extra}"
    )
}

#[test]
fn allowed_routes_namespaces_same_all_selector() {
    let listeners = "  - {name: same, protocol: HTTP, port: 80}\n  - {name: all, protocol: HTTP, port: 81, allowedRoutes: {namespaces: {from: All}}}\n  - {name: sel, protocol: HTTP, port: 82, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: a}}}}}\n";
    let ns = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {team: a}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n";
    let w = world(&format!(
        "{}{ns}{}{}{}{}{}",
        gw(listeners),
        http_route("team-a", "to-same", "{name: gw, namespace: ns, sectionName: same}", ""),
        http_route("team-a", "to-all", "{name: gw, namespace: ns, sectionName: all}", ""),
        http_route("team-a", "to-sel", "{name: gw, namespace: ns, sectionName: sel}", ""),
        http_route("team-b", "b-to-sel", "{name: gw, namespace: ns, sectionName: sel}", ""),
        http_route("ns", "local", "{name: gw}", ""),
    ));
    let t = tr(&w, "ns", "gw");
    assert_eq!(c(&route(&t, "to-same")[0].conditions)[0], "Accepted=False/NotAllowedByListeners");
    assert_eq!(c(&route(&t, "to-all")[0].conditions)[0], "Accepted=True/Accepted");
    assert_eq!(c(&route(&t, "to-sel")[0].conditions)[0], "Accepted=True/Accepted");
    assert_eq!(c(&route(&t, "b-to-sel")[0].conditions)[0], "Accepted=False/NotAllowedByListeners");
    // A same-namespace route without sectionName attaches to every listener that allows it.
    assert_eq!(c(&route(&t, "local")[0].conditions)[0], "Accepted=True/Accepted");
    let attached: Vec<i32> = t.gateway.listeners.iter().map(|l| l.attached_routes).collect();
    // "local" lives in ns, which lacks the team=a label the selector listener wants.
    assert_eq!(attached, vec![1, 2, 1]);
}

#[test]
fn section_name_and_port_must_match_a_listener() {
    let w = world(&format!(
        "{}{}{}{}{}",
        gw("  - {name: http, protocol: HTTP, port: 80}\n  - {name: alt, protocol: HTTP, port: 8080}\n"),
        http_route("ns", "bad-section", "{name: gw, sectionName: https}", ""),
        http_route("ns", "bad-port", "{name: gw, port: 9999}", ""),
        http_route("ns", "good-port", "{name: gw, port: 8080}", ""),
        http_route("ns", "mismatch", "{name: gw, sectionName: http, port: 8080}", ""),
    ));
    let t = tr(&w, "ns", "gw");
    assert_eq!(c(&route(&t, "bad-section")[0].conditions)[0], "Accepted=False/NoMatchingParent");
    assert_eq!(c(&route(&t, "bad-port")[0].conditions)[0], "Accepted=False/NoMatchingParent");
    assert_eq!(c(&route(&t, "good-port")[0].conditions)[0], "Accepted=True/Accepted");
    assert_eq!(c(&route(&t, "mismatch")[0].conditions)[0], "Accepted=False/NoMatchingParent");
    assert_eq!(t.gateway.listeners[0].attached_routes, 0);
    assert_eq!(t.gateway.listeners[1].attached_routes, 1);
}

#[test]
fn hostnames_must_intersect_and_narrow_the_rules() {
    let w = world(&format!(
        "{}{}{}",
        gw("  - {name: http, protocol: HTTP, port: 80, hostname: '*.example.com'}\n"),
        http_route("ns", "miss", "{name: gw}", "  hostnames: [foo.example.org]\n"),
        http_route("ns", "hit", "{name: gw}", "  hostnames: [a.example.com, b.example.org, '*.x.example.com']\n"),
    ));
    let t = tr(&w, "ns", "gw");
    assert_eq!(c(&route(&t, "miss")[0].conditions)[0], "Accepted=False/NoMatchingListenerHostname");
    assert_eq!(c(&route(&t, "hit")[0].conditions)[0], "Accepted=True/Accepted");
    assert_eq!(t.gateway.listeners[0].attached_routes, 1);
    let hosts: Vec<Option<&str>> = t.plan.listeners[0].rules.iter().map(|r| r.hostname.as_deref()).collect();
    // Exact host first, then the wildcard; the non-intersecting one is gone.
    assert_eq!(hosts, vec![Some("a.example.com"), Some("*.x.example.com")]);
}

#[test]
fn cross_namespace_backends_need_a_grant_and_missing_ones_get_500() {
    let grant = "---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: other}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ns}]\n  to: [{group: '', kind: Service}]\n";
    let other_svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: other}\nspec: {ports: [{port: 80}]}\n";
    let routes = format!(
        "{}{}{}",
        http_route("ns", "cross", "{name: gw}", "  rules:\n  - backendRefs: [{name: db, namespace: other, port: 80}]\n"),
        http_route("ns", "missing", "{name: gw}", "  rules:\n  - matches: [{path: {type: Exact, value: /m}}]\n    backendRefs: [{name: nope, port: 80}]\n"),
        http_route("ns", "kind", "{name: gw}", "  rules:\n  - matches: [{path: {type: Exact, value: /k}}]\n    backendRefs: [{group: example.com, kind: Bucket, name: b}]\n"),
    );
    let base = format!("{}{other_svc}{routes}", gw("  - {name: http, protocol: HTTP, port: 80}\n"));
    let t = tr(&world(&base), "ns", "gw");
    assert_eq!(c(&route(&t, "cross")[0].conditions), vec!["Accepted=True/Accepted", "ResolvedRefs=False/RefNotPermitted"]);
    assert_eq!(c(&route(&t, "missing")[0].conditions)[1], "ResolvedRefs=False/BackendNotFound");
    assert_eq!(c(&route(&t, "kind")[0].conditions)[1], "ResolvedRefs=False/InvalidKind");
    // Every rule without a valid backend answers 500.
    assert!(t.plan.listeners[0].rules.iter().all(|r| matches!(&r.action, RuleAction::FixedResponse { status: 500, .. })));

    let t = tr(&world(&format!("{base}{grant}")), "ns", "gw");
    assert_eq!(c(&route(&t, "cross")[0].conditions)[1], "ResolvedRefs=True/ResolvedRefs");
    assert!(t.plan.backends.keys().any(|k| k.0 == "other/db:80"));
}

#[test]
fn precedence_across_two_routes_later_listed_rule_wins() {
    // Route "a" is older and listed first and has a catch-all; route "b" (newer, listed
    // later) has a header match on the same path. More header matches win regardless of age
    // or order; among equals, the older route wins.
    let w = world(&format!(
        "{}{}{}{SVC}",
        gw("  - {name: http, protocol: HTTP, port: 80}\n"),
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a, namespace: ns, creationTimestamp: '2026-01-01T00:00:00Z'}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-canary, value: 'yes'}]}]\n    backendRefs: [{name: svc, port: 80}]\n",
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: b, namespace: ns, creationTimestamp: '2026-02-01T00:00:00Z'}\nspec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-a, value: '1'}, {name: x-b, value: '2'}]}]\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: Exact, value: /api/v1}}]\n    backendRefs: [{name: svc, port: 80}]\n",
    ));
    let t = tr(&w, "ns", "gw");
    let order: Vec<(String, usize, u32)> =
        t.plan.listeners[0].rules.iter().map(|r| (r.route.name.clone(), r.rule_index, r.priority)).collect();
    assert_eq!(
        order,
        vec![
            ("b".into(), 2, 1), // exact path
            ("b".into(), 1, 2), // two headers
            ("a".into(), 1, 3), // one header
            ("a".into(), 0, 4), // same prefix: older route first
            ("b".into(), 0, 5),
        ]
    );
}

#[test]
fn weights_stay_raw_in_the_plan_and_zero_weight_rules_get_500() {
    let w = world(&format!(
        "{}{}{SVC}",
        gw("  - {name: http, protocol: HTTP, port: 80}\n"),
        http_route(
            "ns",
            "r",
            "{name: gw}",
            "  rules:\n  - backendRefs: [{name: svc, port: 80, weight: 1000000}, {name: svc2, port: 80, weight: 0}]\n  - matches: [{path: {type: Exact, value: /z}}]\n    backendRefs: [{name: svc, port: 80, weight: 0}]\n"
        ),
    ));
    let t = tr(&w, "ns", "gw");
    let rules = &t.plan.listeners[0].rules;
    assert!(matches!(&rules[0].action, RuleAction::FixedResponse { status: 500, reason } if reason.contains("weights are 0")));
    match &rules[1].action {
        RuleAction::Forward { backends } => {
            assert_eq!(backends.len(), 1, "the missing svc2 is not forwarded to");
            assert_eq!(backends[0].weight, 1_000_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_features_are_reported_not_dropped_silently() {
    let rules = "  rules:\n  - matches: [{path: {type: Exact, value: /ok}}]\n    backendRefs: [{name: svc, port: 80}]\n  - matches: [{path: {type: PathPrefix, value: /rw}}]\n    filters: [{type: URLRewrite, urlRewrite: {hostname: x.com}}]\n    backendRefs: [{name: svc, port: 80}]\n";
    let only_bad = "  rules:\n  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: a, value: b}]}}]\n    backendRefs: [{name: svc, port: 80}]\n";
    let both = "  rules:\n  - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}, {type: URLRewrite, urlRewrite: {hostname: x.com}}]\n";
    let w = world(&format!(
        "{}{}{}{}{SVC}",
        gw("  - {name: http, protocol: HTTP, port: 80}\n"),
        http_route("ns", "partial", "{name: gw}", rules),
        http_route("ns", "bad", "{name: gw}", only_bad),
        http_route("ns", "incompatible", "{name: gw}", both),
    ));
    let t = tr(&w, "ns", "gw");
    let partial = route(&t, "partial")[0];
    assert_eq!(c(&partial.conditions), vec!["Accepted=True/Accepted", "PartiallyInvalid=True/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"]);
    assert!(partial.conditions[1].message.starts_with("Dropped Rule"));
    assert!(partial.conditions[1].message.contains("HTTPRouteHostRewrite"));
    assert_eq!(c(&route(&t, "bad")[0].conditions)[0], "Accepted=False/UnsupportedValue");
    assert_eq!(c(&route(&t, "incompatible")[0].conditions)[0], "Accepted=False/IncompatibleFilters");
    // Only the supported rule is planned.
    assert_eq!(t.plan.listeners[0].rules.len(), 1);
}

#[test]
fn tls_passthrough_routes_attach_to_tls_listeners_only() {
    let w = world(&format!(
        "{}{}{SVC}",
        gw("  - {name: tls, protocol: TLS, port: 443, hostname: '*.example.com', tls: {mode: Passthrough}}\n  - {name: http, protocol: HTTP, port: 80}\n"),
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: t, namespace: ns}\nspec:\n  parentRefs: [{name: gw}]\n  hostnames: [db.example.com]\n  rules:\n  - backendRefs: [{name: svc, port: 80}]\n",
    ));
    let t = tr(&w, "ns", "gw");
    assert_eq!(c(&route(&t, "t")[0].conditions)[0], "Accepted=True/Accepted");
    let attached: Vec<i32> = t.gateway.listeners.iter().map(|l| l.attached_routes).collect();
    assert_eq!(attached, vec![1, 0]);
    let tls = t.plan.listeners.iter().find(|l| l.name == "tls").unwrap();
    assert_eq!(tls.rules[0].hostname.as_deref(), Some("db.example.com"));
}

#[test]
fn gateway_class_status_and_supported_features() {
    let w = world("");
    let class = w.classes.get("cg").unwrap();
    let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
    let st = class_status(class, &caps(), Some("v1.5.1"), Ok(()), &now);
    let conds = st.conditions.unwrap();
    assert_eq!(conds.iter().map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str())).collect::<Vec<_>>(), vec![
        ("Accepted", "True", "Accepted"),
        ("SupportedVersion", "True", "SupportedVersion")
    ]);
    assert!(conds.iter().all(|c| c.observed_generation == Some(4)));
    let features: Vec<String> = st.supported_features.unwrap().into_iter().map(|f| f.name).collect();
    let mut sorted = features.clone();
    sorted.sort();
    assert_eq!(features, sorted);
    assert!(features.contains(&"HTTPRoute".to_string()));
    assert!(!features.iter().any(|f| f.starts_with("cloudgate/")));
    let old = class_status(class, &caps(), Some("v1.3.0"), Err("bad params".into()), &now);
    let conds = old.conditions.unwrap();
    assert_eq!((conds[0].status.as_str(), conds[0].reason.as_str()), ("False", "InvalidParameters"));
    assert_eq!((conds[1].status.as_str(), conds[1].reason.as_str()), ("False", "UnsupportedVersion"));
}

#[test]
fn routes_to_other_gateways_are_not_ours_to_judge() {
    let w = world(&format!(
        "{}{}",
        gw("  - {name: http, protocol: HTTP, port: 80}\n"),
        http_route("ns", "r", "{name: gw}, {name: elsewhere}", ""),
    ));
    let t = tr(&w, "ns", "gw");
    let r = route(&t, "r");
    assert_eq!(r.len(), 1, "only the parentRef naming this Gateway gets a verdict");
    assert_eq!(r[0].parent_ref.name, "gw");
}

/// The conformance test GatewayStaticAddresses at the translation level: an address type no
/// provider knows makes the Gateway Accepted=False UnsupportedAddress; valid addresses are
/// accepted and planned, and when the provider cannot bind them (its render reports
/// AddressNotUsable, e.g. two addresses for a one-address load balancer) the Gateway stays
/// Accepted with Programmed=False AddressNotUsable and no status address, not Invalid.
#[test]
fn static_addresses_unknown_type_is_unsupported_and_unbindable_ones_are_not_usable() {
    let caps = caps_with(&[feature::GATEWAY, feature::HTTP_ROUTE, feature::GATEWAY_STATIC_ADDRESSES]);
    let with = |addresses: &str| {
        let w = world(&gw("  - {name: http, protocol: HTTP, port: 8080}").replace("  listeners:", &format!("  addresses: {addresses}\n  listeners:")));
        translate_gateway(&w, &ObjKey::new("ns", "gw"), &caps).expect("gateway exists")
    };
    let t = with("[{type: test/fake-invalid-type, value: x}, {type: IPAddress, value: 192.0.2.10}, {type: IPAddress, value: 34.117.0.14}]");
    assert_eq!(c(&[t.gateway.accepted.clone()]), vec!["Accepted=False/UnsupportedAddress"]);

    let t = with("[{type: IPAddress, value: 192.0.2.10}, {type: IPAddress, value: 34.117.0.14}]");
    assert_eq!(c(&[t.gateway.accepted.clone()]), vec!["Accepted=True/Accepted"]);
    assert_eq!(t.plan.addresses.len(), 2);
    let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
    let failed = Provisioning::Failed {
        reason: cloudgate_translate::conditions::reason::ADDRESS_NOT_USABLE,
        message: "2 addresses requested; the load balancer has one".into(),
    };
    let st = gateway_status(&t.gateway, &failed, None, &now);
    let conds: Vec<(String, String, String)> =
        st.conditions.unwrap().into_iter().map(|c| (c.type_, c.status, c.reason)).collect();
    assert_eq!(
        conds,
        vec![
            ("Accepted".into(), "True".into(), "Accepted".into()),
            ("Programmed".into(), "False".into(), "AddressNotUsable".into())
        ]
    );
    assert_eq!(st.addresses, None);
}

#[test]
fn a_tls_listener_in_a_mode_the_provider_lacks_supports_no_route_kind() {
    let w = world(&gw("  - {name: term, protocol: TLS, port: 443, tls: {mode: Terminate, certificateRefs: [{name: c}]}}\n"));
    let t = tr(&w, "ns", "gw");
    let l = t.gateway.listeners.iter().find(|l| l.name == "term").unwrap();
    assert_eq!(listener_conds(&t, "term")[0], "Accepted=False/UnsupportedValue");
    assert!(l.supported_kinds.is_empty(), "no kind attaches to an unsupported mode: {:?}", l.supported_kinds);
}

/// A provider check in the shape of GCP's: a redirect to `http` cannot be built on an HTTPS
/// listener, and a path prefix with `*` cannot be built anywhere.
fn listener_aware_check(l: &ListenerPlan, r: &PlanRule) -> Result<(), String> {
    if let RuleAction::Redirect(rd) = &r.action {
        if rd.scheme.as_deref() == Some("http") && l.protocol == Protocol::Https {
            return Err("no redirect to http from HTTPS".into());
        }
    }
    if matches!(&r.matches.path, Some(PathMatch::PathPrefix(p)) if p.contains('*')) {
        return Err("no * in a prefix".into());
    }
    Ok(())
}

/// Rules the provider refuses per listener are reported on the route (only for the parentRefs
/// reaching that listener), left out of that listener's plan, and nothing else changes: the
/// Gateway stays accepted, other routes and other listeners keep their rules.
#[test]
fn rules_a_provider_refuses_on_a_listener_are_reported_on_the_route_not_the_gateway() {
    let listeners = "  - {name: http, protocol: HTTP, port: 80}\n  - {name: https, protocol: HTTPS, port: 443, tls: {certificateRefs: [{name: cert}]}}\n";
    let redirect = "  rules:\n  - name: downgrade\n    filters: [{type: RequestRedirect, requestRedirect: {scheme: http}}]\n";
    let mixed = "  rules:\n  - matches: [{path: {type: PathPrefix, value: '/a*'}}, {path: {type: Exact, value: /b}}]\n    backendRefs: [{name: svc2, port: 80}]\n  - backendRefs: [{name: svc, port: 80}]\n";
    let ok = "  rules:\n  - matches: [{path: {type: Exact, value: /ok}}]\n    backendRefs: [{name: svc, port: 80}]\n";
    let svc2 = "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc2, namespace: ns}\nspec: {ports: [{port: 80}]}\n";
    let w = world(&format!(
        "{}{}{}{}{}{}{}{SVC}{svc2}",
        gw(listeners),
        secret("ns", "cert"),
        http_route("ns", "down-tls", "{name: gw, sectionName: https}", redirect),
        http_route("ns", "down-http", "{name: gw, sectionName: http}", redirect),
        http_route("ns", "down-both", "{name: gw}", redirect),
        http_route("ns", "mixed", "{name: gw, sectionName: https}", mixed),
        http_route("ns", "ok", "{name: gw}", ok),
    ));
    let mut caps = caps();
    caps.rule_check = Some(listener_aware_check);
    let t = translate_gateway(&w, &ObjKey::new("ns", "gw"), &caps).unwrap();
    assert_eq!(c(&[t.gateway.accepted.clone()]), vec!["Accepted=True/Accepted"]);

    // Its only rule refused on its only listener: not accepted, the rule and listener named.
    let tls = route(&t, "down-tls")[0];
    assert_eq!(c(&tls.conditions), vec!["Accepted=False/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"]);
    assert_eq!(tls.conditions[0].message, "rule 0 (downgrade) on listener https: no redirect to http from HTTPS");
    // The same rule on an HTTP listener is fine.
    assert_eq!(c(&route(&t, "down-http")[0].conditions), vec!["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]);
    // Through both listeners: works on http, refused on https, and says so.
    let both = route(&t, "down-both")[0];
    assert_eq!(c(&both.conditions), vec!["Accepted=True/Accepted", "PartiallyInvalid=True/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"]);
    assert_eq!(both.conditions[1].message, "Dropped Rule(s): rule 0 (downgrade) on listener https: no redirect to http from HTTPS");
    // One rule refused (for one of its matches: a rule goes whole), the other kept.
    let mixed = route(&t, "mixed")[0];
    assert_eq!(c(&mixed.conditions), vec!["Accepted=True/Accepted", "PartiallyInvalid=True/UnsupportedValue", "ResolvedRefs=True/ResolvedRefs"]);
    assert_eq!(mixed.conditions[1].message, "Dropped Rule(s): rule 0 on listener https: no * in a prefix");
    assert_eq!(c(&route(&t, "ok")[0].conditions), vec!["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]);

    let planned = |name: &str| -> Vec<(String, usize, u32)> {
        let l = t.plan.listeners.iter().find(|l| l.name == name).unwrap();
        l.rules.iter().map(|r| (r.route.name.clone(), r.rule_index, r.priority)).collect()
    };
    assert_eq!(planned("http"), vec![("ok".into(), 0, 1), ("down-both".into(), 0, 2), ("down-http".into(), 0, 3)]);
    // Refused rules are gone from https; the rest keep precedence order, renumbered densely.
    assert_eq!(planned("https"), vec![("ok".into(), 0, 1), ("mixed".into(), 1, 2)]);
    // Attachment is unchanged: a route with refused rules is still attached.
    assert_eq!(t.gateway.listeners.iter().map(|l| l.attached_routes).collect::<Vec<_>>(), vec![3, 4]);
    // svc2 was only the refused rule's backend: nothing is provisioned for it.
    assert_eq!(t.plan.backends.keys().map(|b| b.0.as_str()).collect::<Vec<_>>(), vec!["ns/svc:80"]);
}
