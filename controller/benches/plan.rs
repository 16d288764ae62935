//! `cargo bench -p cloudgate --bench plan`: translate (and render for ALB) 10,000 HTTPRoutes
//! over 1,000 Gateways and 50,000 endpoints; then re-plan one Gateway after a one-route change.
//! Prints figures; asserts nothing (figures go in the README).

use std::time::{Duration, Instant};

use cloudgate_aws_alb::AlbProvider;
use cloudgate_provider::{Provider, RenderContext};
use cloudgate_translate::model::{ObjKey, Route};
use cloudgate_translate::{translate_gateway, World};
use serde_json::json;

const GATEWAYS: usize = 1_000;
const ROUTES_PER_GATEWAY: usize = 10;
const SERVICES_PER_GATEWAY: usize = 5;
const ENDPOINTS_PER_SERVICE: usize = 10;

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn route(ns: &str, gw: usize, r: usize, weight: u32) -> Route {
    let svc = |i: usize| format!("svc-{gw}-{}", i % SERVICES_PER_GATEWAY);
    let hr: gateway_api::experimental::httproutes::HttpRoute = from(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": format!("route-{gw}-{r}"), "namespace": ns, "generation": 1,
                     "creationTimestamp": format!("2026-01-01T00:{:02}:{:02}Z", r % 60, gw % 60)},
        "spec": {
            "parentRefs": [{"name": format!("gw-{gw}")}],
            "hostnames": [format!("app{r}.gw{gw}.example.com")],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": format!("/api/{r}")},
                              "headers": [{"name": "x-canary", "value": "yes"}]}],
                 "backendRefs": [{"name": svc(r + 1), "port": 80}]},
                {"matches": [{"path": {"type": "Exact", "value": format!("/health/{r}")}}],
                 "backendRefs": [{"name": svc(r), "port": 80}]},
                {"backendRefs": [{"name": svc(r), "port": 80, "weight": weight},
                                 {"name": svc(r + 1), "port": 80, "weight": 100 - weight}]}
            ]
        }
    }));
    Route::from(&hr)
}

fn build() -> World {
    let mut w = World::new();
    w.bundle_version = Some("v1.5.1".into());
    w.upsert_class(from(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "cg"}, "spec": {"controllerName": "cloudgate.io/gateway-controller"}})));
    for g in 0..GATEWAYS {
        let ns = format!("ns-{}", g % 100);
        w.upsert_gateway(from(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": format!("gw-{g}"), "namespace": ns, "generation": 1},
            "spec": {"gatewayClassName": "cg", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}})));
        for s in 0..SERVICES_PER_GATEWAY {
            let name = format!("svc-{g}-{s}");
            w.upsert_service(from(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})));
            let endpoints: Vec<_> = (0..ENDPOINTS_PER_SERVICE)
                .map(|e| json!({"addresses": [format!("10.{}.{}.{}", g / 250, (g % 250), s * 20 + e)],
                                "conditions": {"ready": true}, "zone": if e % 2 == 0 { "a" } else { "b" }}))
                .collect();
            w.upsert_slice(from(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-x"), "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints})));
        }
        for r in 0..ROUTES_PER_GATEWAY {
            w.upsert_route(route(&ns, g, r, 90));
        }
    }
    w
}

/// Peak resident set size of this process so far (Linux VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rss_start = peak_rss_mib();
    let t = Instant::now();
    let mut world = build();
    let build_time = t.elapsed();
    let caps = cloudgate_aws_alb::capabilities();
    let keys: Vec<ObjKey> = world.gateways.keys().cloned().collect();

    let t = Instant::now();
    let mut rules = 0;
    for k in &keys {
        let tr = translate_gateway(&world, k, &caps).expect("gateway");
        rules += tr.plan.listeners.iter().map(|l| l.rules.len()).sum::<usize>();
    }
    let translate_all = t.elapsed();

    let alb = AlbProvider::default();
    let ctx = RenderContext { cluster_id: "bench".into(), network: "vpc-1".into(), ..Default::default() };
    let t = Instant::now();
    let mut resources = 0;
    for k in &keys {
        let tr = translate_gateway(&world, k, &caps).expect("gateway");
        resources += alb.render(&tr.plan, &ctx).expect("render").resources.len();
    }
    let translate_render_all = t.elapsed();
    let peak = peak_rss_mib();

    // Incremental: change one route's weights, then re-plan only the Gateways it affects.
    let mut samples = Vec::new();
    for i in 0..200 {
        let g = (i * 37) % GATEWAYS;
        let ns = format!("ns-{}", g % 100);
        let t = Instant::now();
        let affected = world.upsert_route(route(&ns, g, 3, 50 + (i % 40) as u32));
        for k in &affected {
            let tr = translate_gateway(&world, k, &caps).expect("gateway");
            std::hint::black_box(alb.render(&tr.plan, &ctx).expect("render"));
        }
        samples.push(t.elapsed());
    }
    let replan = median(samples.clone());
    let worst = samples.iter().max().copied().unwrap_or_default();

    println!("cloudgate plan benchmark");
    println!("  input: {GATEWAYS} Gateways, {} HTTPRoutes ({} plan rules), {} endpoints", GATEWAYS * ROUTES_PER_GATEWAY, rules, GATEWAYS * SERVICES_PER_GATEWAY * ENDPOINTS_PER_SERVICE);
    println!("  index build (objects -> World):     {:>9.1} ms", build_time.as_secs_f64() * 1e3);
    println!("  translate all Gateways:             {:>9.1} ms", translate_all.as_secs_f64() * 1e3);
    println!("  translate + render (aws-alb) all:   {:>9.1} ms  ({resources} cloud resources)", translate_render_all.as_secs_f64() * 1e3);
    println!("  peak RSS:                           {:>9.1} MiB (process start {:.1} MiB)", peak, rss_start);
    println!("  re-plan one Gateway after one route change: median {:.3} ms, max {:.3} ms (200 samples)", replan.as_secs_f64() * 1e3, worst.as_secs_f64() * 1e3);
}
