//! Fuzzing the translation with arbitrary Gateway API objects (issue 9, "bad input").
//!
//! Objects are generated as JSON shaped like the CRDs, including what their schemas would
//! reject (empty and over-long strings, invalid hostnames, duplicate listener names, unknown
//! enum strings, out-of-range ports and weights, missing or wrongly typed fields), because an
//! apiserver with an older CRD, or none of its validation, can store them. Each generated set
//! goes through both real entry points:
//!
//! - `cloudgate plan`: manifests -> `manifest::load_str` -> `plan_command::build` (translate,
//!   render, status) for every provider and GCP flavour;
//! - the controller: each object as the apiserver would store it, as a `DynamicObject` into
//!   `Index::apply` (the watch path), then translate + render every Gateway for each provider,
//!   status for each provisioning outcome, and the route `status.parents` merge.
//!
//! Properties: nothing panics, and every status is one the Gateway API v1.5.1 CRDs accept and
//! the spec describes (condition types and reasons per kind, True/False/Unknown,
//! observedGeneration, message length, list limits, one listener status per listener name,
//! supportedKinds, our parent entries only under our controllerName, addresses).
//!
//! Time-boxed: `CLOUDGATE_FUZZ_SECS` (default 60; `tests/run` runs the default with
//! `cargo test --workspace`). A failure prints the shrunk input and how to replay it
//! (`CLOUDGATE_FUZZ_SEED`, `CLOUDGATE_FUZZ_ROUND`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cloudgate_provider::{Provider, RenderContext};
use cloudgate_translate::conditions::reason;
use cloudgate_translate::gateway_class::class_status;
use cloudgate_translate::model::{ObjKey, RouteKind, GATEWAY_GROUP};
use cloudgate_translate::status::{self, Provisioning, RouteParentStatus, StatusAddress};
use cloudgate_translate::{translate_gateway, World};
use gateway_api::experimental::gatewayclasses::GatewayClassStatus;
use gateway_api::experimental::gateways::GatewayStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::DynamicObject;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Map, Value};

use crate::index::{Index, Watched};
use crate::{Output, PlanArgs, DEFAULT_CONTROLLER_NAME as OURS};

// ------------------------------------------------------------------------------ generators

type S = BoxedStrategy<Value>;

fn pick(values: &[&'static str]) -> S {
    prop::sample::select(values.to_vec()).prop_map(Value::from).boxed()
}

/// Mostly one of `common`, rarely one of `rare`: values the generated types cannot hold at all
/// (unknown enum strings, out-of-range integers) make the whole object fail to convert, so
/// they are kept rare enough that most objects reach translation.
fn pick2(common: &[&'static str], rare: &[&'static str]) -> S {
    prop_oneof![15 => pick(common), 1 => pick(rare)].boxed()
}

fn int(values: &[i64]) -> S {
    prop::sample::select(values.to_vec()).prop_map(Value::from).boxed()
}

/// Values of the wrong type or shape, for any field.
fn junk() -> S {
    prop_oneof![Just(Value::Null), Just(json!(7)), Just(json!(-1)), Just(json!("")), Just(json!([])), Just(json!({})), Just(json!(true)), Just(json!("x".repeat(300)))]
        .boxed()
}

/// Usually the object as generated (well typed, values the schema may still reject); sometimes
/// one node at any depth replaced by a value of the wrong type, or removed (a missing required
/// field).
fn mutated(s: S) -> S {
    (s, proptest::option::weighted(0.15, (any::<usize>(), prop_oneof![Just(None), junk().prop_map(Some)])))
        .prop_map(|(mut v, m)| {
            if let Some((at, with)) = m {
                mutate(&mut v, at, with);
            }
            v
        })
        .boxed()
}

fn mutate(v: &mut Value, at: usize, with: Option<Value>) {
    fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
        let children: Vec<(String, &Value)> = match v {
            Value::Object(m) => m.iter().map(|(k, c)| (k.replace('~', "~0").replace('/', "~1"), c)).collect(),
            Value::Array(a) => a.iter().enumerate().map(|(i, c)| (i.to_string(), c)).collect(),
            _ => Vec::new(),
        };
        for (k, c) in children {
            let p = format!("{at}/{k}");
            out.push(p.clone());
            pointers(c, &p, out);
        }
    }
    let mut all = Vec::new();
    pointers(v, "", &mut all);
    let Some(p) = all.get(at % all.len().max(1)) else { return };
    match with {
        Some(w) => *v.pointer_mut(p).expect("pointer from the walk") = w,
        None => {
            let (parent, last) = p.rsplit_once('/').expect("pointers start with /");
            match v.pointer_mut(parent).expect("pointer from the walk") {
                Value::Object(m) => {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Value::Array(a) => {
                    a.remove(last.parse::<usize>().expect("array index"));
                }
                _ => {}
            }
        }
    }
}

/// A field that may be absent.
fn opt(s: S) -> BoxedStrategy<Option<Value>> {
    rarely(s, 0.6)
}

/// A field that is present with probability `p` (one that narrows matching, so that most
/// generated routes still attach somewhere).
fn rarely(s: S, p: f64) -> BoxedStrategy<Option<Value>> {
    proptest::option::weighted(p, s).boxed()
}

fn list(s: S, max: usize) -> S {
    prop::collection::vec(s, 0..=max).prop_map(Value::Array).boxed()
}

/// A list that is usually short and sometimes longer than the CRD's maxItems.
fn long_list(s: S, max: usize, over: usize) -> S {
    prop_oneof![20 => prop::collection::vec(s.clone(), 0..=max), 1 => prop::collection::vec(s, over..over + 4)].prop_map(Value::Array).boxed()
}

fn obj(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect::<Map<_, _>>())
}

/// Longer than any name or hostname field allows (253).
const LONG: &str = "a-very-long-name-that-goes-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-and-on-x";
/// Exactly as long as an object name may be (253), in 63-character labels.
const LONGEST: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

fn namespace() -> S {
    pick2(&["default", "default", "default", "ns1"], &["ns2", "Bad_NS"])
}
fn gateway_name() -> S {
    pick2(&["gw", "gw", "gw2"], &["", LONGEST])
}
fn class_name() -> S {
    pick(&["cg", "cg", "other"])
}
fn listener_name() -> S {
    pick2(&["http", "https", "tls", "tcp", "l"], &["", "Bad_Name", LONG])
}
fn service_name() -> S {
    pick(&["svc", "svc", "svc2", "missing", ""])
}
fn hostname() -> S {
    pick(&[
        "example.com", "*.example.com", "foo.example.com", "a.foo.example.com", "*", "", "UPPER.example.com", "a..b", "*.*.example.com",
        "bücher.de", "-bad-.com", "1.2.3.4", "x", LONG,
    ])
}
fn path() -> S {
    pick(&["/", "/a", "/a/", "/api/v1", "", "noslash", "/a//b", "/%zz", "/.*", "/a?b=c", "/a#b", "/$1", LONG])
}
fn port() -> S {
    prop_oneof![60 => int(&[80, 443, 8080, 9000, 1, 65535, 0, -1, 65536, i32::MAX as i64]), 1 => Just(json!(i64::MAX))].boxed()
}
fn weight() -> S {
    int(&[0, 1, 2, 50, 100, 999, 1000, 1_000_000, i32::MAX as i64, -5])
}
fn generation() -> S {
    int(&[1, 2, 7])
}
fn timestamp() -> S {
    prop_oneof![40 => pick(&["2026-01-01T00:00:00Z", "2025-06-01T12:00:00Z"]), 1 => Just(json!("bogus"))].boxed()
}
fn header_name() -> S {
    pick(&["x-a", "X-A", "x-b", "", "bad name", "host", ":authority", LONG])
}
fn header_value() -> S {
    pick(&["v", "", "a,b", "\u{1}ctl", LONG])
}
fn group() -> S {
    pick(&["", "core", GATEWAY_GROUP, "example.com", "multicluster.x-k8s.io"])
}

fn metadata(names: S, namespaced: bool) -> S {
    // An object's own namespace is always valid: the apiserver checks it whatever the CRD says.
    (names, opt(pick(&["default", "default", "ns1", "ns2"])), opt(generation()), opt(timestamp()), opt(pick(&["u1", "u2", ""])), opt(labels()))
        .prop_map(move |(name, ns, generation, created, uid, labels)| {
            obj(vec![
                ("name", Some(name)),
                ("namespace", if namespaced { ns } else { None }),
                ("generation", generation),
                ("creationTimestamp", created),
                ("uid", uid),
                ("labels", labels),
            ])
        })
        .boxed()
}

fn labels() -> S {
    prop::collection::btree_map(pick(&["team", "env", "kubernetes.io/metadata.name", ""]).prop_map(|v| v.as_str().unwrap().to_string()), pick(&["a", "b", "ns1", ""]), 0..3)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

fn parent_ref() -> S {
    let group = pick2(&[GATEWAY_GROUP], &["", "example.com"]);
    let kind = pick2(&["Gateway"], &["Service", "ListenerSet", ""]);
    (rarely(group, 0.3), rarely(kind, 0.3), rarely(namespace(), 0.3), gateway_name(), rarely(listener_name(), 0.3), rarely(port(), 0.15))
        .prop_map(|(g, k, ns, name, section, port)| {
            obj(vec![("group", g), ("kind", k), ("namespace", ns), ("name", Some(name)), ("sectionName", section), ("port", port)])
        })
        .boxed()
}

fn condition() -> S {
    (pick(&["Accepted", "ResolvedRefs", "Programmed", "Weird"]), pick(&["True", "False", "Unknown", "Maybe"]), timestamp(), opt(int(&[1, 2, 9])))
        .prop_map(|(t, s, ltt, observed)| {
            obj(vec![
                ("type", Some(t)),
                ("status", Some(s)),
                ("reason", Some(json!("Something"))),
                ("message", Some(json!("m"))),
                ("lastTransitionTime", Some(ltt)),
                ("observedGeneration", observed),
            ])
        })
        .boxed()
}

/// What another controller (or an earlier run of ours) left in `status.parents`.
fn route_status() -> S {
    let entry = (parent_ref(), pick(&[OURS, "example.com/other"]), list(condition(), 3))
        .prop_map(|(p, c, conds)| json!({"parentRef": p, "controllerName": c, "conditions": conds}));
    long_list(entry.boxed(), 3, 32).prop_map(|parents| json!({ "parents": parents })).boxed()
}

fn certificate_ref() -> S {
    (opt(group()), opt(pick(&["Secret", "Secret", "ConfigMap"])), pick(&["cert", "cert", "cert2", "missing"]), opt(namespace()))
        .prop_map(|(g, k, name, ns)| obj(vec![("group", g), ("kind", k), ("name", Some(name)), ("namespace", ns)]))
        .boxed()
}

fn listener() -> S {
    let tls = (opt(pick2(&["Terminate", "Passthrough"], &["Bogus"])), opt(list(certificate_ref(), 3)))
        .prop_map(|(mode, refs)| obj(vec![("mode", mode), ("certificateRefs", refs)]));
    let expr = (pick(&["team", "env", "kubernetes.io/metadata.name"]), pick2(&["In", "NotIn", "Exists", "DoesNotExist"], &["Bogus"]), opt(list(pick(&["a", "b", "ns1"]), 2)))
        .prop_map(|(k, op, vs)| obj(vec![("key", Some(k)), ("operator", Some(op)), ("values", vs)]));
    let selector = (opt(labels()), opt(list(expr.boxed(), 2))).prop_map(|(ml, me)| obj(vec![("matchLabels", ml), ("matchExpressions", me)]));
    let namespaces = (opt(pick2(&["Same", "All", "Selector"], &["None", "Bogus"])), opt(selector.boxed()))
        .prop_map(|(from, sel)| obj(vec![("from", from), ("selector", sel)]));
    let route_kind = (opt(group()), pick(&["HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute", "", "httproute"]))
        .prop_map(|(g, k)| obj(vec![("group", g), ("kind", Some(k))]));
    let allowed = (opt(namespaces.boxed()), opt(long_list(route_kind.boxed(), 3, 8))).prop_map(|(ns, kinds)| obj(vec![("namespaces", ns), ("kinds", kinds)]));
    let protocol = pick2(&["HTTP", "HTTP", "HTTP", "HTTPS", "HTTPS", "TLS", "TCP"], &["UDP", "", "http", "example.com/proto", "GRPC"]);
    (listener_name(), rarely(hostname(), 0.4), port(), protocol, opt(tls.boxed()), rarely(allowed.boxed(), 0.4))
        .prop_map(|(name, host, port, proto, tls, allowed)| {
            obj(vec![("name", Some(name)), ("hostname", host), ("port", Some(port)), ("protocol", Some(proto)), ("tls", tls), ("allowedRoutes", allowed)])
        })
        .boxed()
}

fn gateway_class() -> S {
    let params = (group(), pick(&["ConfigMap", "ClassParameters"]), pick(&["p", ""])).prop_map(|(g, k, n)| json!({"group": g, "kind": k, "name": n}));
    (metadata(class_name(), false), pick(&[OURS, OURS, "example.com/other", ""]), opt(params.boxed()))
        .prop_map(|(m, ctl, params)| {
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": m,
                   "spec": obj(vec![("controllerName", Some(ctl)), ("parametersRef", params)])})
        })
        .boxed()
}

fn gateway() -> S {
    let address = (opt(pick(&["IPAddress", "Hostname", "NamedAddress", "example.com/custom", ""])), opt(pick(&["10.0.0.1", "::1", "not-an-ip", "", "lb.example.com"])))
        .prop_map(|(t, v)| obj(vec![("type", t), ("value", v)]));
    let status = (opt(list(condition(), 3)), opt(list((listener_name(), list(condition(), 2)).prop_map(|(n, c)| json!({"name": n, "attachedRoutes": 0, "conditions": c, "supportedKinds": []})).boxed(), 3)))
        .prop_map(|(c, l)| obj(vec![("conditions", c), ("listeners", l)]));
    (
        metadata(gateway_name(), true),
        class_name(),
        // Usually distinct names (repeated ones make every listener that shares one invalid).
        (prop_oneof![20 => prop::collection::vec(listener(), 1..=4), 1 => prop::collection::vec(listener(), 64..68)], proptest::bool::weighted(0.7)).prop_map(
            |(mut ls, distinct)| {
                if distinct {
                    for (i, l) in ls.iter_mut().enumerate() {
                        l["name"] = json!(["http", "https", "tls", "tcp", "l"].get(i).map_or(format!("l{i}"), |n| n.to_string()));
                    }
                }
                Value::Array(ls)
            },
        ),
        rarely(prop_oneof![10 => list(address.clone().boxed(), 2), 1 => list(address.boxed(), 20)].boxed(), 0.15),
        opt(labels()),
        opt(status.boxed()),
    )
        .prop_map(|(m, class, listeners, addresses, infra, status)| {
            let spec = obj(vec![
                ("gatewayClassName", Some(class)),
                ("listeners", Some(listeners)),
                ("addresses", addresses),
                ("infrastructure", infra.map(|l| json!({ "labels": l }))),
            ]);
            obj(vec![
                ("apiVersion", Some(json!("gateway.networking.k8s.io/v1"))),
                ("kind", Some(json!("Gateway"))),
                ("metadata", Some(m)),
                ("spec", Some(spec)),
                ("status", status),
            ])
        })
        .boxed()
}

fn backend_ref(filters_of: Option<RouteKind>) -> S {
    let filters = match filters_of {
        Some(kind) => rarely(list(filter(kind, false), 2), 0.15),
        None => Just(None).boxed(),
    };
    (
        opt(group()),
        opt(pick(&["Service", "Service", "ServiceImport", "Bogus", ""])),
        service_name(),
        opt(namespace()),
        opt(port()),
        opt(weight()),
        filters,
    )
        .prop_map(|(g, k, name, ns, port, weight, filters)| {
            obj(vec![("group", g), ("kind", k), ("name", Some(name)), ("namespace", ns), ("port", port), ("weight", weight), ("filters", filters)])
        })
        .boxed()
}

fn header_modifier() -> S {
    let pair = (header_name(), header_value()).prop_map(|(n, v)| json!({"name": n, "value": v}));
    (opt(list(pair.clone().boxed(), 2)), opt(list(pair.boxed(), 2)), opt(list(header_name(), 2)))
        .prop_map(|(set, add, remove)| obj(vec![("set", set), ("add", add), ("remove", remove)]))
        .boxed()
}

fn path_modifier() -> S {
    (pick2(&["ReplaceFullPath", "ReplacePrefixMatch"], &["Bogus"]), opt(path()), opt(path()))
        .prop_map(|(t, full, prefix)| obj(vec![("type", Some(t)), ("replaceFullPath", full), ("replacePrefixMatch", prefix)]))
        .boxed()
}

/// An HTTPRoute or GRPCRoute filter; `nested`: a rule filter, whose RequestMirror backendRef is
/// generated in full (a backendRef filter's mirror is a plain one).
fn filter(kind: RouteKind, nested: bool) -> S {
    let redirect = (opt(pick2(&["http", "https"], &["ftp", ""])), opt(hostname()), opt(path_modifier()), opt(port()), opt(int(&[301, 302, 303, 307, 308, 200, 999])))
        .prop_map(|(scheme, host, path, port, code)| obj(vec![("scheme", scheme), ("hostname", host), ("path", path), ("port", port), ("statusCode", code)]));
    let rewrite = (opt(hostname()), opt(path_modifier())).prop_map(|(h, p)| obj(vec![("hostname", h), ("path", p)]));
    let mirror_backend = if nested { backend_ref(None) } else { Just(json!({"name": "svc", "port": 80})).boxed() };
    let mirror = (mirror_backend, opt(int(&[0, 50, 100, 101, -1]))).prop_map(|(b, pct)| obj(vec![("backendRef", Some(b)), ("percent", pct)]));
    let ext = (group(), pick(&["Thing", ""]), pick(&["x", ""])).prop_map(|(g, k, n)| json!({"group": g, "kind": k, "name": n}));
    (
        if kind == RouteKind::Grpc {
            pick2(&["RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"], &["RequestRedirect", "Bogus"])
        } else {
            pick2(&["RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "RequestMirror", "ExtensionRef"], &["CORS", "ExternalAuth", "Bogus"])
        },
        opt(header_modifier()),
        opt(header_modifier()),
        opt(redirect.boxed()),
        opt(rewrite.boxed()),
        opt(mirror.boxed()),
        opt(ext.boxed()),
    )
        .prop_map(|(t, req, resp, redirect, rewrite, mirror, ext)| {
            // Usually the member the type names, sometimes missing or another one.
            obj(vec![
                ("type", Some(t)),
                ("requestHeaderModifier", req),
                ("responseHeaderModifier", resp),
                ("requestRedirect", redirect),
                ("urlRewrite", rewrite),
                ("requestMirror", mirror),
                ("extensionRef", ext),
            ])
        })
        .boxed()
}

fn value_match() -> S {
    let match_type = prop_oneof![12 => pick(&["Exact"]), 2 => pick(&["RegularExpression"]), 1 => pick(&["Bogus"])].boxed();
    (opt(match_type), header_name(), header_value())
        .prop_map(|(t, n, v)| obj(vec![("type", t), ("name", Some(n)), ("value", Some(v))]))
        .boxed()
}

fn http_match() -> S {
    let path = (opt(prop_oneof![12 => pick(&["Exact", "PathPrefix", "PathPrefix"]), 2 => pick(&["RegularExpression"]), 1 => pick(&["Bogus"])].boxed()), opt(path())).prop_map(|(t, v)| obj(vec![("type", t), ("value", v)]));
    (opt(path.boxed()), rarely(list(value_match(), 2), 0.3), rarely(list(value_match(), 2), 0.3), rarely(pick2(&["GET", "POST", "PATCH"], &["", "BOGUS"]), 0.3))
        .prop_map(|(p, h, q, m)| obj(vec![("path", p), ("headers", h), ("queryParams", q), ("method", m)]))
        .boxed()
}

fn grpc_match() -> S {
    let method = (opt(pick2(&["Exact", "RegularExpression"], &["Bogus"])), opt(pick(&["pkg.Svc", "Svc", "", "bad/svc"])), opt(pick(&["Get", "", "a/b"])))
        .prop_map(|(t, s, m)| obj(vec![("type", t), ("service", s), ("method", m)]));
    (opt(method.boxed()), opt(list(value_match(), 2))).prop_map(|(m, h)| obj(vec![("method", m), ("headers", h)])).boxed()
}

fn timeouts() -> S {
    (opt(pick(&["10s", "0s", "1h", "bogus", "-1s", "500ms"])), opt(pick(&["5s", "20s", "bogus"])))
        .prop_map(|(r, b)| obj(vec![("request", r), ("backendRequest", b)]))
        .boxed()
}

fn rule(kind: RouteKind) -> S {
    let matches = match kind {
        RouteKind::Http => opt(list(http_match(), 3)),
        RouteKind::Grpc => opt(list(grpc_match(), 2)),
        RouteKind::Tls | RouteKind::Tcp => Just(None).boxed(),
    };
    let filters = match kind {
        RouteKind::Http | RouteKind::Grpc => rarely(list(filter(kind, true), 2), 0.3),
        RouteKind::Tls | RouteKind::Tcp => Just(None).boxed(),
    };
    let backends = prop_oneof![10 => list(backend_ref(matches!(kind, RouteKind::Http | RouteKind::Grpc).then_some(kind)), 3), 1 => list(backend_ref(None), 20)];
    let backends = match kind {
        RouteKind::Http | RouteKind::Grpc => opt(backends.boxed()),
        RouteKind::Tls | RouteKind::Tcp => backends.prop_map(Some).boxed(),
    };
    (opt(pick(&["rule-a", "rule-b", "", "Bad_Rule"])), matches, filters, backends, rarely(timeouts(), 0.2), rarely(Just(json!({"attempts": 2})).boxed(), 0.1))
        .prop_map(move |(name, matches, filters, backends, timeouts, retry)| {
            let http = kind == RouteKind::Http;
            obj(vec![
                ("name", name),
                ("matches", matches),
                ("filters", filters),
                ("backendRefs", backends),
                ("timeouts", if http { timeouts } else { None }),
                ("retry", if http { retry } else { None }),
            ])
        })
        .boxed()
}

fn route(kind: RouteKind) -> S {
    let api = match kind {
        RouteKind::Http | RouteKind::Grpc => "gateway.networking.k8s.io/v1",
        RouteKind::Tls => "gateway.networking.k8s.io/v1alpha2",
        RouteKind::Tcp => "gateway.networking.k8s.io/v1alpha2",
    };
    // The generated types require TLSRoute hostnames and TLS/TCP rules (the CRDs do too).
    let hostnames = match kind {
        RouteKind::Tcp => Just(None).boxed(),
        RouteKind::Tls => list(hostname(), 3).prop_map(Some).boxed(),
        _ => rarely(list(hostname(), 3), 0.4),
    };
    let rules = match kind {
        RouteKind::Http | RouteKind::Grpc => opt(long_list(rule(kind), 3, 16)),
        RouteKind::Tls | RouteKind::Tcp => long_list(rule(kind), 3, 16).prop_map(Some).boxed(),
    };
    (
        metadata(pick(&["r1", "r2", "r3"]), true),
        opt(prop_oneof![20 => prop::collection::vec(parent_ref(), 1..=3), 1 => prop::collection::vec(parent_ref(), 32..36)].prop_map(Value::Array).boxed()),
        hostnames,
        rules,
        opt(route_status()),
    )
        .prop_map(move |(m, parents, hostnames, rules, status)| {
            obj(vec![
                ("apiVersion", Some(json!(api))),
                ("kind", Some(json!(kind.kind()))),
                ("metadata", Some(m)),
                ("spec", Some(obj(vec![("parentRefs", parents), ("hostnames", hostnames), ("rules", rules)]))),
                ("status", status),
            ])
        })
        .boxed()
}

fn any_route() -> S {
    prop_oneof![4 => route(RouteKind::Http), 2 => route(RouteKind::Grpc), 1 => route(RouteKind::Tls), 1 => route(RouteKind::Tcp)].boxed()
}

fn reference_grant() -> S {
    let from = (group(), pick(&["HTTPRoute", "GRPCRoute", "TLSRoute", "Gateway", ""]), namespace()).prop_map(|(g, k, ns)| json!({"group": g, "kind": k, "namespace": ns}));
    let to = (group(), pick(&["Service", "Secret", ""]), opt(service_name())).prop_map(|(g, k, n)| obj(vec![("group", Some(g)), ("kind", Some(k)), ("name", n)]));
    (metadata(pick(&["grant", "grant2"]), true), list(from.boxed(), 2), list(to.boxed(), 2))
        .prop_map(|(m, from, to)| json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant", "metadata": m, "spec": {"from": from, "to": to}}))
        .boxed()
}

fn service() -> S {
    let p = (opt(pick(&["http", "grpc", ""])), port(), opt(prop_oneof![int(&[8080, 0, 70000]), pick(&["http", "named"])].boxed()), opt(pick(&["TCP", "UDP", "SCTP"])), opt(pick(&["http", "kubernetes.io/h2c", "kubernetes.io/ws"])))
        .prop_map(|(name, port, target, proto, app)| obj(vec![("name", name), ("port", Some(port)), ("targetPort", target), ("protocol", proto), ("appProtocol", app)]));
    (metadata(service_name(), true), list(p.boxed(), 3), opt(pick(&["ClusterIP", "NodePort", "ExternalName"])))
        .prop_map(|(m, ports, t)| json!({"apiVersion": "v1", "kind": "Service", "metadata": m, "spec": obj(vec![("ports", Some(ports)), ("type", t)])}))
        .boxed()
}

fn endpoint_slice() -> S {
    let conditions = (opt(any::<bool>().prop_map(Value::from).boxed()), opt(any::<bool>().prop_map(Value::from).boxed()), opt(any::<bool>().prop_map(Value::from).boxed()))
        .prop_map(|(r, s, t)| obj(vec![("ready", r), ("serving", s), ("terminating", t)]));
    let endpoint = (list(pick(&["10.0.0.1", "10.0.0.2", "::1", "not-an-ip", ""]), 2), opt(conditions.boxed()), opt(pick(&["a", "b", ""])), opt(pick(&["node-1", ""])))
        .prop_map(|(a, c, z, n)| obj(vec![("addresses", Some(a)), ("conditions", c), ("zone", z), ("nodeName", n)]));
    let p = (opt(pick(&["http", "grpc", ""])), opt(port()), opt(pick(&["TCP", "UDP"]))).prop_map(|(n, p, pr)| obj(vec![("name", n), ("port", p), ("protocol", pr)]));
    (metadata(pick(&["slice-a", "slice-b"]), true), service_name(), pick(&["IPv4", "IPv6", "FQDN", "bogus"]), list(endpoint.boxed(), 3), opt(list(p.boxed(), 2)))
        .prop_map(|(mut m, svc, at, eps, ports)| {
            if let Some(meta) = m.as_object_mut() {
                meta.insert("labels".into(), json!({ "kubernetes.io/service-name": svc }));
            }
            obj(vec![
                ("apiVersion", Some(json!("discovery.k8s.io/v1"))),
                ("kind", Some(json!("EndpointSlice"))),
                ("metadata", Some(m)),
                ("addressType", Some(at)),
                ("endpoints", Some(eps)),
                ("ports", ports),
            ])
        })
        .boxed()
}

fn secret() -> S {
    // Base64 of a PEM-looking certificate and key (content is not parsed by render), of junk,
    // and a string that is not base64 at all.
    const PEM_CRT: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
    const PEM_KEY: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUUKLS0tLS1FTkQgUFJJVkFURSBLRVktLS0tLQo=";
    (metadata(pick(&["cert", "cert2"]), true), opt(pick2(&[PEM_CRT, PEM_CRT, "anVuaw==", ""], &["%%%"])), opt(pick(&[PEM_KEY, "anVuaw==", ""])), opt(pick(&["kubernetes.io/tls", "Opaque"])))
        .prop_map(|(m, crt, key, t)| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": m, "type": t, "data": obj(vec![("tls.crt", crt), ("tls.key", key)])})
        })
        .boxed()
}

fn namespace_obj() -> S {
    (pick(&["default", "ns1", "ns2"]), opt(labels()))
        .prop_map(|(name, labels)| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": obj(vec![("name", Some(name)), ("labels", labels)])}))
        .boxed()
}

/// One cluster's worth of objects.
fn objects() -> BoxedStrategy<Vec<Value>> {
    (
        prop::collection::vec(mutated(gateway_class()), 1..=2),
        prop::collection::vec(mutated(gateway()), 1..=3),
        prop::collection::vec(mutated(any_route()), 0..=5),
        prop::collection::vec(mutated(reference_grant()), 0..=2),
        prop::collection::vec(mutated(service()), 0..=3),
        prop::collection::vec(mutated(endpoint_slice()), 0..=2),
        prop::collection::vec(mutated(secret()), 0..=2),
        prop::collection::vec(mutated(namespace_obj()), 0..=2),
    )
        .prop_map(|(c, g, r, rg, s, e, sec, ns)| [c, g, r, rg, s, e, sec, ns].concat())
        .boxed()
}

// ------------------------------------------------------------------------------ the spec

/// (condition type, reasons for True, reasons for False) per object kind, as Gateway API v1.5.1
/// lists them (apis/v1 `*ConditionReason` docs). `Pending` is allowed for Unknown everywhere.
type Table = &'static [(&'static str, &'static [&'static str], &'static [&'static str])];

const CLASS: Table = &[
    ("Accepted", &["Accepted"], &["InvalidParameters", "Unsupported", "UnsupportedVersion"]),
    ("SupportedVersion", &["SupportedVersion"], &["UnsupportedVersion"]),
];
const GATEWAY: Table = &[
    ("Accepted", &["Accepted", "ListenersNotValid"], &["Invalid", "InvalidParameters", "NotReconciled", "UnsupportedAddress", "ListenersNotValid"]),
    ("Programmed", &["Programmed"], &["Invalid", "Pending", "NoResources", "AddressNotAssigned", "AddressNotUsable"]),
    ("ResolvedRefs", &["ResolvedRefs"], &["RefNotPermitted", "InvalidClientCertificateRef", "ListenersNotResolved"]),
];
/// Listener `Accepted=False` also allows the Conflicted reasons: a conflicted listener is not
/// accepted, and the spec lets controllers name another reason ("Controllers may raise this
/// condition with other reasons") — the conflict is the most precise one.
const LISTENER: Table = &[
    ("Accepted", &["Accepted"], &["PortUnavailable", "UnsupportedProtocol", "NoValidCACertificate", "UnsupportedValue", "HostnameConflict", "ProtocolConflict"]),
    ("Conflicted", &["HostnameConflict", "ProtocolConflict"], &["NoConflicts"]),
    ("ResolvedRefs", &["ResolvedRefs"], &["InvalidCertificateRef", "InvalidRouteKinds", "RefNotPermitted", "InvalidCACertificateRef", "InvalidCACertificateKind"]),
    ("Programmed", &["Programmed"], &["Invalid", "Pending"]),
];
const ROUTE: Table = &[
    ("Accepted", &["Accepted"], &["NotAllowedByListeners", "NoMatchingListenerHostname", "NoMatchingParent", "UnsupportedValue", "IncompatibleFilters"]),
    ("ResolvedRefs", &["ResolvedRefs"], &["RefNotPermitted", "InvalidKind", "BackendNotFound", "UnsupportedProtocol"]),
    ("PartiallyInvalid", &["UnsupportedValue"], &[]),
];

/// metav1.Condition and Gateway API status field checks; collects every violation.
#[derive(Default)]
struct Check(Vec<String>);

fn valid_reason_syntax(r: &str) -> bool {
    let b = r.as_bytes();
    !b.is_empty()
        && r.len() <= 1024
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_,:".contains(c))
        && (b.len() == 1 || b[b.len() - 1].is_ascii_alphanumeric() || b[b.len() - 1] == b'_')
}

/// RFC 1123 subdomain as the CRDs' SectionName/ObjectName-like patterns spell it.
fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') && !l.starts_with('-') && !l.ends_with('-')
        })
}

impl Check {
    fn fail(&mut self, what: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{what}: {msg}"));
    }

    fn conditions(&mut self, what: &str, table: Table, conds: &[Condition], generation: Option<i64>, required: &[&str]) {
        if conds.len() > 8 {
            self.fail(what, format!("{} conditions (max 8)", conds.len()));
        }
        let mut seen = BTreeSet::new();
        for c in conds {
            if !seen.insert(c.type_.as_str()) {
                self.fail(what, format!("condition {} appears twice", c.type_));
            }
            let allowed = match (c.status.as_str(), table.iter().find(|(t, _, _)| *t == c.type_)) {
                (_, None) => {
                    self.fail(what, format!("condition type {} is not one the spec defines here", c.type_));
                    continue;
                }
                ("True", Some((_, yes, _))) => yes.contains(&c.reason.as_str()),
                ("False", Some((_, _, no))) => no.contains(&c.reason.as_str()),
                ("Unknown", Some(_)) => c.reason == reason::PENDING,
                (s, _) => {
                    self.fail(what, format!("condition {} has status {s:?}", c.type_));
                    continue;
                }
            };
            if !allowed {
                self.fail(what, format!("condition {}={} has reason {} the spec does not list for it", c.type_, c.status, c.reason));
            }
            if !valid_reason_syntax(&c.reason) {
                self.fail(what, format!("reason {:?} does not match the CRD pattern", c.reason));
            }
            if c.message.len() > 32768 {
                self.fail(what, format!("condition {} message is {} bytes (max 32768)", c.type_, c.message.len()));
            }
            match c.observed_generation {
                None => self.fail(what, format!("condition {} has no observedGeneration", c.type_)),
                Some(g) if g < 0 => self.fail(what, format!("condition {} observedGeneration {g} < 0", c.type_)),
                Some(g) if Some(g) != generation => self.fail(what, format!("condition {} observedGeneration {g}, object generation {generation:?}", c.type_)),
                _ => {}
            }
        }
        for r in required {
            if !seen.contains(r) {
                self.fail(what, format!("no {r} condition"));
            }
        }
    }

    fn class(&mut self, name: &str, generation: Option<i64>, s: &GatewayClassStatus) {
        let what = format!("GatewayClass {name}");
        self.conditions(&what, CLASS, s.conditions.as_deref().unwrap_or(&[]), generation, &["Accepted"]);
        let f: Vec<&str> = s.supported_features.iter().flatten().map(|f| f.name.as_str()).collect();
        if f.len() > 64 {
            self.fail(&what, format!("{} supportedFeatures (max 64)", f.len()));
        }
        if f.windows(2).any(|w| w[0] >= w[1]) {
            self.fail(&what, "supportedFeatures not sorted and unique");
        }
    }

    fn gateway(&mut self, key: &ObjKey, generation: Option<i64>, spec_listeners: &[String], s: &GatewayStatus) {
        let what = format!("Gateway {key}");
        self.conditions(&what, GATEWAY, s.conditions.as_deref().unwrap_or(&[]), generation, &["Accepted", "Programmed"]);
        let listeners = s.listeners.as_deref().unwrap_or(&[]);
        if listeners.len() > 64 {
            self.fail(&what, format!("{} listener statuses (max 64)", listeners.len()));
        }
        let mut names = BTreeSet::new();
        for l in listeners {
            let lw = format!("{what} listener {:?}", l.name);
            if !names.insert(l.name.as_str()) {
                self.fail(&lw, "listener status appears twice (status.listeners is a map keyed by name)");
            }
            if !spec_listeners.contains(&l.name) {
                self.fail(&lw, "status for a listener the spec does not have");
            }
            if !dns_subdomain(&l.name) {
                self.fail(&lw, "listener status name is not a valid SectionName");
            }
            if l.attached_routes < 0 {
                self.fail(&lw, format!("attachedRoutes {}", l.attached_routes));
            }
            let kinds = l.supported_kinds.as_deref().unwrap_or(&[]);
            if kinds.len() > 8 {
                self.fail(&lw, format!("{} supportedKinds (max 8)", kinds.len()));
            }
            let mut seen = BTreeSet::new();
            for k in kinds {
                if k.group.as_deref() != Some(GATEWAY_GROUP) || RouteKind::from_kind(&k.kind).is_none() || !seen.insert(&k.kind) {
                    self.fail(&lw, format!("supportedKinds entry {:?}/{} is not a route kind of ours, or repeated", k.group, k.kind));
                }
            }
            self.conditions(&lw, LISTENER, &l.conditions, generation, &["Accepted", "Programmed"]);
        }
        for name in spec_listeners.iter().filter(|n| dns_subdomain(n)) {
            if !names.contains(name.as_str()) && listeners.len() < 64 {
                self.fail(&what, format!("no status for listener {name}"));
            }
        }
        let addresses = s.addresses.as_deref().unwrap_or(&[]);
        if addresses.len() > 16 {
            self.fail(&what, format!("{} addresses (max 16)", addresses.len()));
        }
        for a in addresses {
            let t = a.r#type.as_deref().unwrap_or("IPAddress");
            let ok = match t {
                "IPAddress" => a.value.parse::<std::net::IpAddr>().is_ok(),
                "Hostname" => dns_subdomain(&a.value),
                _ => !a.value.is_empty() && a.value.len() <= 253,
            };
            if !ok {
                self.fail(&what, format!("address {t} {:?} is not valid", a.value));
            }
        }
    }

    fn route_parents(&mut self, what: &str, parents: &[RouteParentStatus], generation: Option<i64>) {
        if parents.len() > 32 {
            self.fail(what, format!("{} status.parents entries (max 32)", parents.len()));
        }
        for p in parents {
            let pw = format!("{what} parent {:?}", p.parent_ref);
            if p.controller_name != OURS {
                self.fail(&pw, format!("entry under controllerName {}", p.controller_name));
            }
            let r = &p.parent_ref;
            if r.name.is_empty() || r.name.len() > 253 || r.kind.is_empty() || r.kind.len() > 63 || r.group.len() > 253 {
                self.fail(&pw, "parentRef group/kind/name outside the CRD's limits");
            }
            if r.section_name.as_deref().is_some_and(|s| !dns_subdomain(s)) {
                self.fail(&pw, "parentRef sectionName is not a valid SectionName");
            }
            if r.port.is_some_and(|p| !(1..=65535).contains(&p)) {
                self.fail(&pw, "parentRef port outside 1..65535");
            }
            if r.namespace.as_deref().is_some_and(|n| !dns_subdomain(n) || n.contains('.') || n.len() > 63) {
                self.fail(&pw, "parentRef namespace is not a valid namespace name");
            }
            self.conditions(&pw, ROUTE, &p.conditions, generation, &["Accepted", "ResolvedRefs"]);
        }
    }
}

// ------------------------------------------------------------------------------ the paths

fn now() -> Time {
    Time("2026-06-01T00:00:00Z".parse().unwrap())
}

/// (provider name, scheme): every provider, and GCP in each flavour.
const TARGETS: &[(&str, &str)] = &[
    ("aws-alb", ""),
    ("aws-lattice", ""),
    ("gcp", "global-external-managed"),
    ("gcp", "regional-external-managed"),
    ("gcp", "regional-internal-managed"),
];

fn plan_args(provider: &str, scheme: &str) -> PlanArgs {
    PlanArgs {
        files: Vec::new(),
        provider: provider.into(),
        output: Output::Json,
        controller_name: OURS.into(),
        cluster_id: "fuzz".into(),
        region: "us-east-1".into(),
        network: "vpc-1".into(),
        subnets: vec!["subnet-a".into(), "subnet-b".into()],
        scheme: scheme.into(),
        project: "p".into(),
        show_plan: false,
        now: Some("2026-06-01T00:00:00Z".into()),
    }
}

fn listener_names(v: &Value) -> Vec<String> {
    v.pointer("/spec/listeners").and_then(Value::as_array).into_iter().flatten().filter_map(|l| l.get("name")?.as_str().map(str::to_string)).collect()
}

/// `cloudgate plan` on the objects as a manifest.
fn plan_path(objects: &[Value], check: &mut Check) {
    let text = serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": objects})).unwrap();
    let mut world = World::new();
    world.bundle_version = Some(cloudgate_translate::gateway_class::SUPPORTED_BUNDLE_VERSION.into());
    let mut loaded = cloudgate_translate::manifest::Loaded::default();
    cloudgate_translate::manifest::load_str("fuzz", &text, &mut world, &mut loaded).expect("JSON is valid YAML");
    for (provider, scheme) in TARGETS {
        let report = crate::plan_command::build(&plan_args(provider, scheme), &world, Vec::new()).expect("known provider");
        for c in &report.gateway_classes {
            let generation = world.classes.get(&c.name).and_then(|k| k.metadata.generation);
            check.class(&c.name, generation, &c.status);
        }
        for g in &report.gateways {
            let (ns, name) = g.gateway.split_once('/').unwrap();
            let key = ObjKey::new(ns, name);
            let gw = &world.gateways[&key];
            let names: Vec<String> = gw.spec.listeners.iter().map(|l| l.name.clone()).collect();
            check.gateway(&key, gw.metadata.generation, &names, &g.status);
        }
        for r in &report.routes {
            let rk = cloudgate_translate::model::RouteKey { kind: RouteKind::from_kind(r.kind).unwrap(), namespace: r.namespace.clone(), name: r.name.clone() };
            check.route_parents(&format!("plan {provider} {rk}"), &r.status.parents, world.routes[&rk].generation);
        }
    }
}

fn watched(v: &Value) -> Option<Watched> {
    Some(match v.get("kind")?.as_str()? {
        "GatewayClass" => Watched::GatewayClass,
        "Gateway" => Watched::Gateway,
        "ReferenceGrant" => Watched::ReferenceGrant,
        "Service" => Watched::Service,
        "EndpointSlice" => Watched::EndpointSlice,
        "Secret" => Watched::Secret,
        "Namespace" => Watched::Namespace,
        k => Watched::Route(RouteKind::from_kind(k)?),
    })
}

/// The object as an apiserver stores it: what it always sets in metadata is set, and an
/// object without a name cannot be stored at all.
fn as_stored(mut v: Value, n: usize) -> Option<Value> {
    let namespaced = !matches!(v.get("kind").and_then(Value::as_str), Some("GatewayClass" | "Namespace"));
    let m = v.get_mut("metadata")?.as_object_mut()?;
    m.get("name")?.as_str().filter(|n| !n.is_empty())?;
    if namespaced && !m.get("namespace").is_some_and(Value::is_string) {
        m.insert("namespace".into(), json!("default"));
    }
    if !m.get("generation").and_then(Value::as_i64).is_some_and(|g| g > 0) {
        m.insert("generation".into(), json!(1));
    }
    m.insert("resourceVersion".into(), json!(n.to_string()));
    m.entry("uid").or_insert(json!(format!("uid-{n}")));
    Some(v)
}

/// The controller: watch events into the index, then translate, render and status for every
/// Gateway, for every provider.
fn controller_path(objects: &[Value], check: &mut Check) {
    let mut ix = Index::new();
    ix.world.bundle_version = Some(cloudgate_translate::gateway_class::SUPPORTED_BUNDLE_VERSION.into());
    let mut spec_listeners: BTreeMap<ObjKey, Vec<String>> = BTreeMap::new();
    for (n, v) in objects.iter().enumerate() {
        let Some(kind) = watched(v) else { continue };
        let Some(stored) = as_stored(v.clone(), n) else { continue };
        // What kube's watcher would do first; an object that is not even a DynamicObject is a
        // watch-stream error the watcher retries past, never reaching the index.
        let Ok(dynamic) = serde_json::from_value::<DynamicObject>(stored.clone()) else { continue };
        if ix.apply(kind, &dynamic).is_ok() && kind == Watched::Gateway {
            spec_listeners.insert(crate::index::obj_key(&dynamic), listener_names(&stored));
        }
    }
    let world = &ix.world;
    for (provider, scheme) in TARGETS {
        let p: Box<dyn Provider> = match (*provider, *scheme) {
            ("gcp", s) => Box::new(cloudgate_gcp::GcpProvider::new(cloudgate_gcp::Flavour::parse(s).unwrap())),
            (name, _) => crate::providers::by_name(name).unwrap(),
        };
        let caps = p.capabilities();
        for class in world.classes.values().filter(|c| c.spec.controller_name == OURS) {
            let name = class.metadata.name.clone().unwrap_or_default();
            let st = class_status(class, caps, world.bundle_version.as_deref(), crate::plan_command::parameters_ok(class), &now());
            check.class(&name, class.metadata.generation, &st);
        }
        let ctx = RenderContext {
            cluster_id: "fuzz".into(),
            region: "us-east-1".into(),
            network: "vpc-1".into(),
            subnets: vec!["subnet-a".into()],
            project: "p".into(),
            ..Default::default()
        };
        for (key, gw) in &world.gateways {
            let Some(t) = translate_gateway(world, key, caps) else { continue };
            let rendered = t.gateway.accepted.status.then(|| p.render(&t.plan, &ctx));
            let outcomes = [
                Provisioning::Pending("pending".into()),
                Provisioning::Ready { addresses: vec![StatusAddress { type_: "Hostname".into(), value: "lb-1.example.com".into() }] },
                Provisioning::Ready { addresses: Vec::new() },
                Provisioning::ReadyPerRoute { addresses: Vec::new() },
                Provisioning::Ready {
                    addresses: (0..20).map(|i| StatusAddress { type_: "Hostname".into(), value: format!("svc-{i}.example.com") }).collect(),
                },
                Provisioning::Failed { reason: reason::INVALID, message: match &rendered {
                    Some(Err(e)) => e.to_string(),
                    _ => "x".repeat(40_000),
                } },
            ];
            let names = spec_listeners.get(key).cloned().unwrap_or_default();
            for prov in &outcomes {
                let st = status::gateway_status(&t.gateway, prov, gw.status.as_ref(), &now());
                check.gateway(key, gw.metadata.generation, &names, &st);
            }
            // Route status.parents: our fresh entries per route, merged with what is there.
            let mut per_route: BTreeMap<_, Vec<RouteParentStatus>> = BTreeMap::new();
            for v in &t.routes {
                let route = &world.routes[&v.route];
                per_route.entry(v.route.clone()).or_default().push(status::route_parent_status(v, OURS, &route.status_parents, &now()));
            }
            for (rk, fresh) in &per_route {
                let route = &world.routes[rk];
                check.route_parents(&format!("{provider} {rk}"), fresh, route.generation);
                let current = ix.route_raw.get(rk).map(|r| r.parents.clone()).unwrap_or_default();
                if let Some(merged) = status::merge_route_parents(&current, &route.parent_refs, &rk.namespace, OURS, key, fresh) {
                    let theirs = |l: &[Value]| l.iter().filter(|e| e.get("controllerName").and_then(Value::as_str) != Some(OURS)).cloned().collect::<Vec<_>>();
                    if theirs(&merged) != theirs(&current) {
                        check.fail(&format!("{rk}"), "the merge changed another controller's status.parents entries");
                    }
                    let ours = merged.len() - theirs(&merged).len();
                    if ours > 32 {
                        check.fail(&format!("{rk}"), format!("{ours} of our status.parents entries after the merge (max 32)"));
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------ the runner

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn rng(seed: u64, round: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&round.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

fn one_case(objects: &[Value]) -> Result<(), TestCaseError> {
    let mut check = Check::default();
    plan_path(objects, &mut check);
    controller_path(objects, &mut check);
    if check.0.is_empty() {
        Ok(())
    } else {
        check.0.sort();
        check.0.dedup();
        Err(TestCaseError::fail(check.0.join("\n")))
    }
}

#[test]
fn arbitrary_objects_never_panic_and_always_give_valid_status() {
    let budget = Duration::from_secs(env_u64("CLOUDGATE_FUZZ_SECS").unwrap_or(60));
    let seed = env_u64("CLOUDGATE_FUZZ_SEED").unwrap_or_else(|| fastrand::u64(..));
    let strategy = objects();
    let start = Instant::now();
    let mut cases = 0u64;
    // Rounds of 32 cases until the time budget is spent, each round's runner seeded from the
    // seed and the round number, so a failure is reproducible and is shrunk before it is
    // reported. A panic anywhere in the two paths is caught by the runner like a failed property.
    let mut round = env_u64("CLOUDGATE_FUZZ_ROUND").unwrap_or(0);
    while start.elapsed() < budget {
        let config = Config { cases: 32, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, rng(seed, round));
        if let Err(e) = runner.run(&strategy, |objects| one_case(&objects)) {
            panic!("fuzz failure after {cases} cases (replay: CLOUDGATE_FUZZ_SEED={seed} CLOUDGATE_FUZZ_ROUND={round}):\n{e}");
        }
        cases += 32;
        round += 1;
    }
    // Sanity: the generator reaches translation and rendering, not only the skip paths.
    let mut sampler = TestRunner::new_with_rng(Config::default(), rng(seed, u64::MAX));
    let (mut attached, mut rendered) = (0, 0);
    let alb = cloudgate_aws_alb::AlbProvider::default();
    let ctx = RenderContext { cluster_id: "fuzz".into(), network: "vpc-1".into(), subnets: vec!["subnet-a".into()], ..Default::default() };
    for _ in 0..100 {
        let objects = strategy.new_tree(&mut sampler).expect("strategy").current();
        let mut ix = Index::new();
        for (n, v) in objects.iter().enumerate() {
            if let (Some(kind), Some(Ok(d))) = (watched(v), as_stored(v.clone(), n).map(serde_json::from_value::<DynamicObject>)) {
                let _ = ix.apply(kind, &d);
            }
        }
        let ts: Vec<_> = ix.world.gateways.keys().filter_map(|k| translate_gateway(&ix.world, k, alb.capabilities())).collect();
        attached += usize::from(ts.iter().any(|t| t.gateway.listeners.iter().any(|l| l.attached_routes > 0)));
        rendered += usize::from(ts.iter().any(|t| t.plan.listeners.iter().any(|l| !l.rules.is_empty()) && alb.render(&t.plan, &ctx).is_ok()));
    }
    eprintln!(
        "fuzz: {cases} cases in {:.0?} (seed {seed}); of 100 sample inputs, {attached} attach a route to a listener and {rendered} render ALB rules",
        start.elapsed()
    );
    assert!(attached > 0 && rendered > 0, "the generator is not exercising translation and rendering");
}
