//! The local kube-apiserver (tests/ground/k8s) behaves like a real one for everything the
//! controller relies on: server-side apply ownership, the status subresource, watches that resume
//! from a resourceVersion, optimistic concurrency, the Gateway API CRDs' CEL validation, and the
//! Deployment -> Pod -> EndpointSlice chain (kwok nodes).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use cloudgate_ground_checks::{env, init_crypto, poll_until, unique};
use futures::{StreamExt, TryStreamExt};
use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

async fn client() -> Client {
    // kube reads KUBECONFIG itself; checking it first turns "no ground" into the agreed message
    // instead of a silent fallback to ~/.kube/config or in-cluster config.
    let path = env("KUBECONFIG");
    init_crypto();
    let config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("KUBECONFIG={path}: {e}"));
    Client::try_from(config).expect("kube client")
}

/// Runs `body` in a fresh namespace and deletes the namespace afterwards, also when `body`
/// panics (the body runs as its own task so its panic can be caught, the namespace deleted, and
/// the panic resumed).
async fn in_namespace<F, Fut>(prefix: &str, body: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let client = client().await;
    let name = unique(prefix);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    let outcome = tokio::spawn(body(client, name.clone())).await;
    let deleted = namespaces.delete(&name, &DeleteParams::background()).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    deleted.unwrap_or_else(|e| panic!("delete namespace {name}: {e}"));
}

/// The apiserver's Status for a failed call; panics on success or on a non-API error.
fn api_error<T: std::fmt::Debug>(what: &str, r: kube::Result<T>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(status)) => status,
        other => panic!("{what}: expected an API error, got {other:?}"),
    }
}

fn gateway(name: &str, listeners: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {"gatewayClassName": "cloudgate", "listeners": listeners},
    })
}

/// (a) Server-side apply records field ownership per manager; a second manager that sets an
/// owned field to another value gets 409 Conflict naming the owner, until it forces.
#[tokio::test]
async fn server_side_apply_conflicts_between_field_managers() {
    in_namespace("gc-ssa", |client, ns| async move {
        let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
        let cm = |v: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": {"weight": v}})
        };

        let first = cms
            .patch("owned", &PatchParams::apply("team-a"), &Patch::Apply(cm("10")))
            .await
            .expect("first apply");
        assert_eq!(first.data.as_ref().unwrap()["weight"], "10");

        // Same value from another manager is not a conflict (shared ownership)...
        cms.patch("owned", &PatchParams::apply("team-b"), &Patch::Apply(cm("10")))
            .await
            .expect("agreeing apply is not a conflict");
        // ...a different value is, as long as team-a co-owns the field.
        let status = api_error(
            "conflicting apply",
            cms.patch("owned", &PatchParams::apply("team-c"), &Patch::Apply(cm("90"))).await,
        );
        assert_eq!(status.code, 409, "{status:?}");
        assert_eq!(status.reason, "Conflict", "{status:?}");
        assert!(status.message.contains("team-a") && status.message.contains(".data.weight"), "{}", status.message);
        assert_eq!(cms.get("owned").await.unwrap().data.unwrap()["weight"], "10", "a refused apply changes nothing");

        let forced = cms
            .patch("owned", &PatchParams::apply("team-c").force(), &Patch::Apply(cm("90")))
            .await
            .expect("forced apply");
        assert_eq!(forced.data.as_ref().unwrap()["weight"], "90");
        // Forcing moves ownership: team-c now owns .data.weight and the others lost it.
        let owners: BTreeSet<String> = forced
            .managed_fields()
            .iter()
            .filter(|m| m.fields_v1.as_ref().is_some_and(|f| f.0.to_string().contains("f:weight")))
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(owners, BTreeSet::from(["team-c".to_string()]));
    })
    .await;
}

/// (b) The Gateway status subresource takes a forced server-side apply from the controller's
/// field manager; spec and generation are untouched, and the CRD's status defaults were real.
#[tokio::test]
async fn gateway_status_apply_keeps_generation() {
    in_namespace("gc-status", |client, ns| async move {
        let gws: Api<Gateway> = Api::namespaced(client, &ns);
        let listeners = json!([{"name": "http", "protocol": "HTTP", "port": 80}]);
        let created = gws
            .patch("web", &PatchParams::apply("platform-team"), &Patch::Apply(gateway("web", listeners)))
            .await
            .expect("apply gateway");
        let generation = created.metadata.generation.expect("generation");
        assert_eq!(generation, 1);
        // The CRD defaults status to Accepted/Programmed Unknown "Pending": the schema is applied.
        let defaults = created.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        let pending: Vec<_> = defaults.iter().map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str())).collect();
        assert_eq!(pending, [("Accepted", "Unknown", "Pending"), ("Programmed", "Unknown", "Pending")]);

        let now = "2026-01-02T03:04:05Z";
        let status = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "status": {
                "addresses": [{"type": "Hostname", "value": "web-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-east-1.on.aws"}],
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
                     "observedGeneration": generation, "lastTransitionTime": now},
                    {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "ok",
                     "observedGeneration": generation, "lastTransitionTime": now},
                ],
                "listeners": [{
                    "name": "http", "attachedRoutes": 3,
                    "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                    "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "message": "ok",
                                    "observedGeneration": generation, "lastTransitionTime": now}],
                }],
            },
        });
        let patched = gws
            .patch_status("web", &PatchParams::apply("cloudgate").force(), &Patch::Apply(&status))
            .await
            .expect("status apply");
        assert_eq!(patched.metadata.generation, Some(generation), "status writes must not bump generation");

        let read = gws.get("web").await.unwrap();
        assert_eq!(read.metadata.generation, Some(generation));
        assert_eq!(read.spec.listeners.len(), 1, "spec untouched");
        let st = read.status.expect("status");
        let conds: Vec<_> = st
            .conditions
            .unwrap()
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone(), c.observed_generation))
            .collect();
        assert_eq!(
            conds,
            [
                ("Accepted".into(), "True".into(), "Accepted".into(), Some(generation)),
                ("Programmed".into(), "True".into(), "Programmed".into(), Some(generation)),
            ]
        );
        let listener = &st.listeners.unwrap()[0];
        assert_eq!((listener.name.as_str(), listener.attached_routes), ("http", 3));
        assert_eq!(st.addresses.unwrap()[0].value, "web-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-east-1.on.aws");
        // Ownership of status is recorded against the status subresource for our manager.
        assert!(
            read.metadata.managed_fields.unwrap().iter().any(|m| m.manager.as_deref() == Some("cloudgate")
                && m.subresource.as_deref() == Some("status")
                && m.operation.as_deref() == Some("Apply")),
            "cloudgate owns status via the status subresource"
        );

        // A spec change does bump generation (the counterpart that makes the check above meaningful).
        let listeners = json!([{"name": "http", "protocol": "HTTP", "port": 8080}]);
        let changed = gws
            .patch("web", &PatchParams::apply("platform-team"), &Patch::Apply(gateway("web", listeners)))
            .await
            .unwrap();
        assert_eq!(changed.metadata.generation, Some(generation + 1));
    })
    .await;
}

/// (c) A watch started from a resourceVersion taken before two changes replays exactly those
/// two changes, in order, with the resourceVersions the writes returned.
#[tokio::test]
async fn watch_resumes_from_resource_version() {
    in_namespace("gc-watch", |client, ns| async move {
        let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched"}, "data": {"v": "1"}});
        let created = cms
            .create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
            .await
            .unwrap();
        let rv0 = created.resource_version().unwrap();

        // Both changes happen before the watch opens: the server must replay them from rv0.
        let modified = cms
            .patch(
                "watched",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"v": "2"}})),
            )
            .await
            .unwrap();
        let rv1 = modified.resource_version().unwrap();
        assert_ne!(rv0, rv1);
        let modified = cms
            .patch(
                "watched",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"v": "3"}})),
            )
            .await
            .unwrap();
        let rv2 = modified.resource_version().unwrap();

        // The server closes the watch after its timeout, so the stream ends by itself and
        // "exactly" can be checked without guessing how long to wait.
        let wp = WatchParams::default()
            .fields("metadata.name=watched")
            .timeout(3)
            .disable_bookmarks();
        let events: Vec<WatchEvent<ConfigMap>> = cms.watch(&wp, &rv0).await.unwrap().try_collect().await.unwrap();
        let seen: Vec<(String, String, Option<String>)> = events
            .iter()
            .map(|e| match e {
                WatchEvent::Added(o) => (
                    "Added".into(),
                    o.resource_version().unwrap(),
                    o.data.as_ref().map(|d| d["v"].clone()),
                ),
                WatchEvent::Modified(o) => (
                    "Modified".into(),
                    o.resource_version().unwrap(),
                    o.data.as_ref().map(|d| d["v"].clone()),
                ),
                WatchEvent::Deleted(o) => (
                    "Deleted".into(),
                    o.resource_version().unwrap(),
                    o.data.as_ref().map(|d| d["v"].clone()),
                ),
                other => panic!("unexpected watch event {other:?}"),
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("Modified".into(), rv1, Some("2".into())),
                ("Modified".into(), rv2, Some("3".into()))
            ]
        );
    })
    .await;
}

/// (d) Optimistic concurrency: a PUT carrying a stale resourceVersion is refused with 409 and
/// changes nothing; the same PUT with the current resourceVersion succeeds.
#[tokio::test]
async fn replace_with_stale_resource_version_conflicts() {
    in_namespace("gc-occ", |client, ns| async move {
        let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "occ"}, "data": {"v": "1"}});
        let stale = cms
            .create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
            .await
            .unwrap();
        let current = cms
            .patch(
                "occ",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"v": "2"}})),
            )
            .await
            .unwrap();

        let mut put = stale.clone();
        put.data = Some([("v".to_string(), "3".to_string())].into());
        let status = api_error("stale replace", cms.replace("occ", &PostParams::default(), &put).await);
        assert_eq!(status.code, 409, "{status:?}");
        assert_eq!(status.reason, "Conflict");
        assert!(
            status.message.contains("the object has been modified"),
            "{}",
            status.message
        );
        assert_eq!(cms.get("occ").await.unwrap().data.unwrap()["v"], "2");

        put.metadata.resource_version = current.metadata.resource_version.clone();
        let replaced = cms
            .replace("occ", &PostParams::default(), &put)
            .await
            .expect("fresh replace");
        assert_eq!(replaced.data.unwrap()["v"], "3");
        assert_ne!(replaced.metadata.resource_version, current.metadata.resource_version);
    })
    .await;
}

/// (e) The Gateway API CRDs' CEL rules run in this apiserver: listeners the spec forbids are
/// refused with 422 Invalid and the rule's message, and nothing is stored.
#[tokio::test]
async fn gateway_cel_validation_rejects_invalid_listeners() {
    in_namespace("gc-cel", |client, ns| async move {
        let gws: Api<Gateway> = Api::namespaced(client, &ns);
        let cases = [
            (
                "http-with-tls",
                json!([{"name": "web", "protocol": "HTTP", "port": 80,
                        "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}}]),
                "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
            ),
            (
                "https-passthrough",
                json!([{"name": "web", "protocol": "HTTPS", "port": 443, "tls": {"mode": "Passthrough"}}]),
                "tls mode must be Terminate for protocol HTTPS",
            ),
        ];
        for (name, listeners, rule_message) in cases {
            let gw: Gateway = serde_json::from_value(gateway(name, listeners)).unwrap();
            let status = api_error(name, gws.create(&PostParams::default(), &gw).await);
            assert_eq!(status.code, 422, "{name}: {status:?}");
            assert_eq!(status.reason, "Invalid", "{name}: {status:?}");
            assert!(status.message.contains(rule_message), "{name}: {}", status.message);
            assert!(gws.get_opt(name).await.unwrap().is_none(), "{name} must not be stored");
        }
        // The valid twin of the first case is accepted, so the refusals above are the rule's.
        let ok: Gateway = serde_json::from_value(gateway(
            "https-terminate",
            json!([{"name": "web", "protocol": "HTTPS", "port": 443,
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}}]),
        ))
        .unwrap();
        gws.create(&PostParams::default(), &ok)
            .await
            .expect("valid HTTPS listener");
    })
    .await;
}

/// (f) Deployment (2 replicas) + Service: kwok runs the Pods (Ready, with IPs) and the
/// EndpointSlice controller publishes exactly those IPs as ready endpoints, with zones.
#[tokio::test]
async fn deployment_pods_become_ready_endpoints() {
    in_namespace("gc-eps", |client, ns| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        let pp = PatchParams::apply("ground-checks");
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "app"}},
                "template": {
                    "metadata": {"labels": {"app": "app"}},
                    "spec": {"containers": [{"name": "app", "image": "registry.invalid/never-pulled:1",
                                             "ports": [{"name": "http", "containerPort": 8080}]}]},
                },
            },
        });
        deployments
            .patch("app", &pp, &Patch::Apply(deployment))
            .await
            .expect("deployment");
        let service = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
            "spec": {"selector": {"app": "app"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        });
        services
            .patch("app", &pp, &Patch::Apply(service))
            .await
            .expect("service");

        let (pod_ips, slice) = poll_until(
            "2 ready pods listed as ready endpoints",
            Duration::from_secs(120),
            Duration::from_millis(250),
            || {
                let pods = pods.clone();
                let slices = slices.clone();
                async move {
                    let ready_ips: BTreeSet<String> = pods
                        .list(&ListParams::default().labels("app=app"))
                        .await
                        .map_err(|e| e.to_string())?
                        .items
                        .into_iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .filter_map(|p| {
                            let st = p.status?;
                            let ready = st.conditions?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
                            ready.then_some(st.pod_ip).flatten()
                        })
                        .collect();
                    let list = slices
                        .list(&ListParams::default().labels("kubernetes.io/service-name=app"))
                        .await
                        .map_err(|e| e.to_string())?;
                    let ready_endpoints: BTreeSet<String> = list
                        .items
                        .iter()
                        .flat_map(|s| s.endpoints.iter().flatten())
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                        .flat_map(|e| e.addresses.clone())
                        .collect();
                    if ready_ips.len() == 2 && ready_ips == ready_endpoints && list.items.len() == 1 {
                        Ok((ready_ips, list.items.into_iter().next().unwrap()))
                    } else {
                        Err(format!(
                            "ready pod IPs {ready_ips:?}, ready endpoint addresses {ready_endpoints:?}"
                        ))
                    }
                }
            },
        )
        .await;

        for ip in &pod_ips {
            let addr: std::net::Ipv4Addr = ip.parse().unwrap_or_else(|_| panic!("pod IP {ip}"));
            assert!(addr.octets()[..2] == [10, 244], "kwok pool 10.244.0.0/16, got {ip}");
        }
        assert_eq!(slice.address_type, "IPv4");
        let ports: Vec<_> = slice
            .ports
            .unwrap_or_default()
            .iter()
            .map(|p| (p.name.clone(), p.port))
            .collect();
        assert_eq!(
            ports,
            [(Some("http".to_string()), Some(8080))],
            "targetPort resolved by name"
        );
        for e in slice.endpoints.iter().flatten() {
            assert!(
                e.zone.as_deref().is_some_and(|z| z.starts_with("us-east-1")),
                "zone from the node: {e:?}"
            );
            assert!(
                e.node_name.as_deref().is_some_and(|n| n.starts_with("kwok-node-")),
                "{e:?}"
            );
            assert_eq!(e.target_ref.as_ref().and_then(|t| t.kind.as_deref()), Some("Pod"));
        }
        assert_eq!(
            deployments
                .get("app")
                .await
                .unwrap()
                .status
                .and_then(|s| s.ready_replicas),
            Some(2),
            "the Deployment controller agrees"
        );
        // Watch streams work too: scaling to 1 shows up as an endpoint removal.
        let rv = slice.metadata.resource_version.clone().unwrap();
        deployments
            .patch(
                "app",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 1}})),
            )
            .await
            .unwrap();
        let wp = WatchParams::default()
            .labels("kubernetes.io/service-name=app")
            .timeout(60);
        let mut stream = slices.watch(&wp, &rv).await.unwrap().boxed();
        let mut remaining = pod_ips.clone();
        while remaining.len() != 1 {
            match stream.try_next().await.unwrap() {
                Some(WatchEvent::Modified(s)) => {
                    remaining = s
                        .endpoints
                        .iter()
                        .flatten()
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                        .flat_map(|e| e.addresses.clone())
                        .collect();
                }
                Some(WatchEvent::Bookmark(_)) | Some(WatchEvent::Added(_)) => {}
                Some(other) => panic!("unexpected {other:?}"),
                None => panic!("watch ended before the EndpointSlice dropped to one ready endpoint"),
            }
        }
        assert!(remaining.is_subset(&pod_ips), "{remaining:?} within {pod_ips:?}");
    })
    .await;
}
