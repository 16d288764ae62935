//! Two controllers, one route: an HTTPRoute attached both to a cloudgate Gateway and to a
//! Gateway of another controller. The other controller is simulated by a loop in this test that
//! behaves like a real one: it reads the route, builds its own `status.parents` entry (its
//! controllerName, its parentRef) and, when that entry is missing or stale, writes the whole
//! status back through the status subresource with the read resourceVersion (a 409 means read
//! again), keeping every other entry as it found it.
//!
//! Checked on a watch of the route: after convergence both entries are present in every version
//! of the object (neither controller drops the other's), and over a quiet window with both
//! controllers running (cloudgate resyncing every few seconds, the other loop every second) the
//! route is not written at all (no ping-pong). A spec change then costs a bounded number of
//! writes and settles again. The write counts are printed.
//!
//! Uses the aws-lattice provider (any well-formed VPC id will do on the ground). Needs
//! KUBECONFIG and AWS_ENDPOINT_URL from the ground; built only with `--features e2e`.
#![forbid(unsafe_code)]
#![allow(clippy::await_holding_lock)]

mod support;
use support::*;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::{json, Value};

const OTHER: &str = "example.com/other-gateway-controller";

async fn kube() -> Client {
    env("AWS_ENDPOINT_URL");
    kube_client().await
}

fn entries(route: &Value) -> Vec<Value> {
    route.pointer("/status/parents").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn entry_of<'a>(parents: &'a [Value], controller: &str, gateway: &str) -> Option<&'a Value> {
    parents.iter().find(|p| p["controllerName"] == controller && p["parentRef"]["name"] == gateway)
}

/// What the other controller wants its entry to say at `generation`.
fn other_entry(gateway: &str, generation: i64, since: &str) -> Value {
    let cond = |t: &str| json!({"type": t, "status": "True", "reason": t, "message": "", "observedGeneration": generation, "lastTransitionTime": since});
    json!({"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway}, "controllerName": OTHER,
        "conditions": [cond("Accepted"), cond("ResolvedRefs")]})
}

/// One pass of the simulated controller. Returns whether it wrote.
async fn other_controller_pass(api: &Api<DynamicObject>, route: &str, gateway: &str) -> Result<bool, kube::Error> {
    let obj = api.get(route).await?;
    let generation = obj.metadata.generation.unwrap_or(0);
    let mut data = serde_json::to_value(&obj).unwrap();
    let mut parents = entries(&data);
    let since = entry_of(&parents, OTHER, gateway)
        .and_then(|e| e["conditions"][0]["lastTransitionTime"].as_str().map(str::to_string))
        .unwrap_or_else(|| jiff::Timestamp::now().round(jiff::Unit::Second).unwrap().to_string());
    let want = other_entry(gateway, generation, &since);
    if entry_of(&parents, OTHER, gateway) == Some(&want) {
        return Ok(false);
    }
    parents.retain(|p| !(p["controllerName"] == OTHER && p["parentRef"]["name"] == gateway));
    parents.push(want);
    data["status"] = json!({"parents": parents});
    let obj: DynamicObject = serde_json::from_value(data).expect("route object");
    api.replace_status(route, &PostParams::default(), &obj).await?;
    Ok(true)
}

fn route_obj(name: &str, ours: &str, other: &str, path: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": ours}, {"name": other}], "hostnames": ["shared.example.test"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}], "backendRefs": [{"name": "app", "port": 80}]}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_share_a_route_without_overwriting_or_ping_pong() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let client = kube().await;
    let id = unique("two");
    let ours = format!("cloudgate.io/{id}");
    let ns = namespace(&client, "two").await;
    create(&client, None, class(&format!("{id}-ours"), &ours)).await;
    create(&client, None, class(&format!("{id}-other"), OTHER)).await;
    create(&client, Some(&ns), gateway("gw-ours", &format!("{id}-ours"))).await;
    create(&client, Some(&ns), gateway("gw-other", &format!("{id}-other"))).await;
    service(&client, &ns, "app").await;
    let vpc = format!("vpc-{}", &cloudgate_provider::names::stable_hash(&[&id])[..17]);
    let ctl = Controller::start(
        &Common { cluster_id: &id, controller_name: &ours, lease: &id, resync: "5s" },
        &["--provider", "aws-lattice", "--vpc-id", &vpc],
    );
    ctl.wait_ready().await;

    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &gvk("HTTPRoute"));
    let pp = PatchParams::apply("two-controllers-test").force();
    api.patch("shared", &pp, &Patch::Apply(route_obj("shared", "gw-ours", "gw-other", "/"))).await.expect("create route");

    // The other controller: a pass every second until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let other_writes = Arc::new(AtomicU32::new(0));
    let other = {
        let (api, stop, writes) = (api.clone(), stop.clone(), other_writes.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match other_controller_pass(&api, "shared", "gw-other").await {
                    Ok(true) => {
                        writes.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(false) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {} // read again next pass
                    Err(e) => panic!("other controller: {e}"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let converged = |route: &DynamicObject| -> Result<(), String> {
        let data = serde_json::to_value(route).unwrap();
        let parents = entries(&data);
        let generation = route.metadata.generation;
        for (controller, gw) in [(ours.as_str(), "gw-ours"), (OTHER, "gw-other")] {
            let e = entry_of(&parents, controller, gw).ok_or_else(|| format!("no entry of {controller}: {parents:?}"))?;
            let conds = e["conditions"].as_array().cloned().unwrap_or_default();
            if conds.is_empty() || conds.iter().any(|c| c["observedGeneration"].as_i64() != generation) {
                return Err(format!("{controller} not at generation {generation:?}: {conds:?}"));
            }
        }
        if parents.len() != 2 {
            return Err(format!("want exactly two entries: {parents:?}"));
        }
        Ok(())
    };
    let wait_converged = || async {
        poll("both controllers' entries at the route's generation", Duration::from_secs(60), || async {
            let r = api.get("shared").await.map_err(|e| e.to_string())?;
            converged(&r)
        })
        .await
    };
    wait_converged().await;
    // On Lattice our entry's Accepted message also names the route's own DNS name, written once
    // the service exists: the status has settled only then.
    poll("our entry names the route's Lattice DNS name", Duration::from_secs(60), || async {
        let r = api.get("shared").await.map_err(|e| e.to_string())?;
        let parents = entries(&serde_json::to_value(&r).unwrap());
        let entry = entry_of(&parents, &ours, "gw-ours").ok_or("no entry of ours")?;
        if entry.to_string().contains("Reachable at ") { Ok(()) } else { Err(entry.to_string()) }
    })
    .await;
    step("both entries present and current");

    // Watch every write to the route from here on.
    let rv = api.get("shared").await.unwrap().metadata.resource_version.unwrap();
    let writes = Arc::new(AtomicU32::new(0));
    let dropped: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let watcher = {
        let (api, writes, dropped, ours) = (api.clone(), writes.clone(), dropped.clone(), ours.clone());
        tokio::spawn(async move {
            let wp = WatchParams::default().fields("metadata.name=shared").timeout(290);
            let mut stream = api.watch(&wp, &rv).await.expect("watch route").boxed();
            while let Some(ev) = stream.try_next().await.expect("watch stream") {
                if let WatchEvent::Modified(obj) = ev {
                    writes.fetch_add(1, Ordering::SeqCst);
                    let parents = entries(&serde_json::to_value(&obj).unwrap());
                    for (controller, gw) in [(ours.as_str(), "gw-ours"), (OTHER, "gw-other")] {
                        if entry_of(&parents, controller, gw).is_none() {
                            dropped.lock().unwrap().push(format!("rv {:?}: {controller}'s entry missing: {parents:?}", obj.metadata.resource_version));
                        }
                    }
                }
            }
        })
    };

    // Quiet window: both controllers keep running; nothing may be written.
    let window = Duration::from_secs(std::env::var("TWO_CONTROLLERS_WINDOW_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60));
    let resyncs_before = ctl.metric("cloudgate_reconciles_total", &["kind=\"gateway\""]);
    tokio::time::sleep(window).await;
    let quiet_writes = writes.load(Ordering::SeqCst);
    let resyncs = ctl.metric("cloudgate_reconciles_total", &["kind=\"gateway\""]) - resyncs_before;
    step(&format!("quiet window {window:?}: {quiet_writes} route writes, {resyncs} cloudgate reconciles"));

    // A spec change: each controller writes its entry for the new generation, then quiet again.
    let started = Instant::now();
    api.patch("shared", &pp, &Patch::Apply(route_obj("shared", "gw-ours", "gw-other", "/v2"))).await.expect("update route");
    wait_converged().await;
    let settle = started.elapsed();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let change_writes = writes.load(Ordering::SeqCst) - quiet_writes;

    stop.store(true, Ordering::SeqCst);
    other.await.unwrap();
    watcher.abort();
    let mut out = String::new();
    figure!(out, "\n=== two controllers, one route ===");
    figure!(out, "quiet window           {:.0}s, cloudgate reconciles {resyncs}, route writes {quiet_writes}", window.as_secs_f64());
    figure!(out, "after one spec change  {change_writes} writes (spec + both entries), settled in {:.1}s", settle.as_secs_f64());
    figure!(out, "other controller wrote {} times in all", other_writes.load(Ordering::SeqCst));
    print_figures(&out);
    let dropped = dropped.lock().unwrap().clone();
    assert!(dropped.is_empty(), "an entry was dropped: {dropped:#?}");
    assert!(resyncs >= 2.0, "cloudgate did not reconcile during the window ({resyncs}): the window proves nothing");
    assert_eq!(quiet_writes, 0, "route status written while nothing changed (ping-pong)");
    // The spec write itself, then at most one status write per controller and one retry each
    // after a conflict.
    assert!(change_writes <= 5, "{change_writes} writes for one spec change");
    let api_gw: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &gvk("Gateway"));
    for gw in ["gw-ours", "gw-other"] {
        let _ = api_gw.delete(gw, &DeleteParams::default()).await;
    }
    poll("gw-ours gone (finalizer)", Duration::from_secs(60), || async {
        match api_gw.get_opt("gw-ours").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(_) => Err("still there".to_string()),
        }
    })
    .await;
    drop(ctl);
    let classes: Api<DynamicObject> = Api::all_with(client.clone(), &gvk("GatewayClass"));
    for c in [format!("{id}-ours"), format!("{id}-other")] {
        let _ = classes.delete(&c, &DeleteParams::default()).await;
    }
    delete_namespace(&client, &ns).await;
}
