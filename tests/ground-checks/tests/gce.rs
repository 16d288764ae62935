//! The GCE fake answers google-cloud-compute-v1, the client the GCP provider uses, like Compute
//! Engine: a global external application load balancer chain built through long-running
//! operations, NEG endpoints, references that must exist and be ready, fingerprints, and
//! Google-shaped errors for bad requests.
#![forbid(unsafe_code)]

use std::time::Duration;

use cloudgate_ground_checks::{env, ground_get, init_crypto, poll_until, unique};
use google_cloud_auth::credentials::anonymous::Builder as Anonymous;
use google_cloud_compute_v1::client::{
    BackendServices, GlobalForwardingRules, HealthChecks, NetworkEndpointGroups, TargetHttpProxies, UrlMaps,
};
use google_cloud_compute_v1::model::{
    self, Backend, BackendService, ForwardingRule, HealthCheck, HostRule, HttpHeaderMatch, HttpRouteAction,
    HttpRouteRule, HttpRouteRuleMatch, NetworkEndpoint, NetworkEndpointGroup,
    NetworkEndpointGroupsAttachEndpointsRequest, NetworkEndpointGroupsListEndpointsRequest, Operation, PathMatcher,
    TargetHttpProxy, UrlMap, WeightedBackendService,
};
use google_cloud_gax::exponential_backoff::ExponentialBackoffBuilder;
use google_cloud_lro::Poller;

/// Builds a Compute client against the fake: endpoint override, anonymous credentials (the fake
/// checks no auth), and a short polling backoff so operation polling does not dominate the run.
macro_rules! compute {
    ($client:ty) => {{
        init_crypto();
        <$client>::builder()
            .with_endpoint(env("GCE_ENDPOINT"))
            .with_credentials(Anonymous::new().build())
            .with_polling_backoff_policy(
                ExponentialBackoffBuilder::new()
                    .with_initial_delay(Duration::from_millis(20))
                    .with_maximum_delay(Duration::from_millis(200))
                    .build()
                    .unwrap(),
            )
            .build()
            .await
            .expect(concat!("build ", stringify!($client)))
    }};
}

/// The HTTP status and the Google error status/message of a failed call.
fn failure<T: std::fmt::Debug>(what: &str, r: google_cloud_compute_v1::Result<T>) -> (u16, String) {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => {
            let http = e
                .http_status_code()
                .unwrap_or_else(|| panic!("{what}: no HTTP status in {e:?}"));
            let message = e.status().map(|s| s.message.clone()).unwrap_or_default();
            (http, message)
        }
    }
}

fn done(op: &Operation, what: &str) {
    assert_eq!(op.status, Some(model::operation::Status::Done), "{what}: {op:?}");
    assert!(op.error.is_none(), "{what}: {op:?}");
}

/// Health check, zonal NEG with endpoints, backend service, URL map (host rule, route rules with
/// path/header matches and weights), target HTTP proxy and global forwarding rule, each created
/// through its operation; endpoints listed back; a fingerprinted patch; in-use and stale-
/// fingerprint refusals; and deletes in dependency order.
#[tokio::test]
async fn global_external_load_balancer_chain() {
    let project = env("GCE_PROJECT");
    let zone = format!("{}-a", env("GCE_REGION"));
    let endpoint = env("GCE_ENDPOINT");
    let health_checks = compute!(HealthChecks);
    let negs = compute!(NetworkEndpointGroups);
    let backend_services = compute!(BackendServices);
    let url_maps = compute!(UrlMaps);
    let proxies = compute!(TargetHttpProxies);
    let forwarding_rules = compute!(GlobalForwardingRules);
    let u = unique("gc");
    let name = |kind: &str| format!("{u}-{kind}");

    // --- health check, with its operation polled by hand: PENDING -> RUNNING -> DONE, and the
    // health check cannot be referenced before DONE.
    let info = ground_get(&endpoint, "/_ground/info").await;
    let steps = info["opSteps"].as_u64().expect("opSteps");
    let op = health_checks
        .insert()
        .set_project(&project)
        .set_body(
            HealthCheck::new()
                .set_name(name("hc"))
                .set_type(model::health_check::Type::Http)
                .set_http_health_check(
                    model::HTTPHealthCheck::new()
                        .set_port(8080)
                        .set_request_path("/healthz"),
                ),
        )
        .send()
        .await
        .expect("insert health check");
    let hc_link = op.target_link.clone().expect("targetLink");
    assert!(
        hc_link.ends_with(&format!("/projects/{project}/global/healthChecks/{}", name("hc"))),
        "{hc_link}"
    );
    assert_eq!(op.operation_type.as_deref(), Some("insert"));
    let mut statuses = vec![op.status.clone().unwrap()];
    if steps > 0 {
        assert_eq!(statuses[0], model::operation::Status::Pending);
        let (code, message) = failure(
            "reference a health check still being created",
            backend_services
                .insert()
                .set_project(&project)
                .set_body(
                    BackendService::new()
                        .set_name(name("early"))
                        .set_health_checks([hc_link.clone()])
                        .set_load_balancing_scheme(model::backend_service::LoadBalancingScheme::ExternalManaged),
                )
                .send()
                .await,
        );
        assert_eq!(code, 400, "{message}");
        assert!(message.contains("not ready"), "{message}");
    }
    let op_name = op.name.clone().unwrap();
    while statuses.last() != Some(&model::operation::Status::Done) {
        assert!(
            statuses.len() <= steps as usize + 1,
            "operation never finished: {statuses:?}"
        );
        // globalOperations.get, through the service client (as the provider polls).
        let got = health_checks
            .get_operation()
            .set_project(&project)
            .set_operation(&op_name)
            .send()
            .await
            .unwrap();
        statuses.push(got.status.clone().unwrap());
    }
    assert_eq!(statuses.len(), steps as usize + 1, "one step per get: {statuses:?}");
    let hc = health_checks
        .get()
        .set_project(&project)
        .set_health_check(name("hc"))
        .send()
        .await
        .unwrap();
    assert_eq!(hc.self_link.as_deref(), Some(hc_link.as_str()));
    assert_eq!(
        hc.http_health_check.as_ref().and_then(|h| h.request_path.as_deref()),
        Some("/healthz")
    );
    assert_eq!(hc.check_interval_sec, Some(5), "defaults filled in like GCE");

    // --- zonal NEG and its endpoints (the zone's operations, via the client's poller)
    let op = negs
        .insert()
        .set_project(&project)
        .set_zone(&zone)
        .set_body(
            NetworkEndpointGroup::new()
                .set_name(name("neg"))
                .set_network_endpoint_type(model::network_endpoint_group::NetworkEndpointType::GceVmIpPort)
                .set_default_port(8080)
                .set_network("global/networks/default"),
        )
        .poller()
        .until_done()
        .await
        .expect("insert NEG");
    done(&op, "insert NEG");
    assert!(
        op.zone
            .as_deref()
            .is_some_and(|z| z.ends_with(&format!("/zones/{zone}"))),
        "{op:?}"
    );
    let neg_link = op.target_link.clone().unwrap();
    let endpoints = [("10.244.0.5", None), ("10.244.0.6", Some(9090))];
    let op = negs
        .attach_network_endpoints()
        .set_project(&project)
        .set_zone(&zone)
        .set_network_endpoint_group(name("neg"))
        .set_body(
            NetworkEndpointGroupsAttachEndpointsRequest::new().set_network_endpoints(endpoints.iter().map(
                |(ip, port)| {
                    NetworkEndpoint::new()
                        .set_ip_address(*ip)
                        .set_instance("gke-node-1")
                        .set_or_clear_port(*port)
                },
            )),
        )
        .poller()
        .until_done()
        .await
        .expect("attach endpoints");
    done(&op, "attach endpoints");
    assert_eq!(op.operation_type.as_deref(), Some("attachNetworkEndpoints"));
    let listed = negs
        .list_network_endpoints()
        .set_project(&project)
        .set_zone(&zone)
        .set_network_endpoint_group(name("neg"))
        .set_body(NetworkEndpointGroupsListEndpointsRequest::new())
        .send()
        .await
        .unwrap();
    let got: Vec<(String, Option<i32>)> = listed
        .items
        .iter()
        .map(|i| {
            let e = i.network_endpoint.as_ref().unwrap();
            (e.ip_address.clone().unwrap(), e.port)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("10.244.0.5".to_string(), Some(8080)),
            ("10.244.0.6".to_string(), Some(9090))
        ],
        "port falls back to defaultPort"
    );
    let neg = negs
        .get()
        .set_project(&project)
        .set_zone(&zone)
        .set_network_endpoint_group(name("neg"))
        .send()
        .await
        .unwrap();
    assert_eq!(neg.size, Some(2));
    // Attaching an endpoint that is already there fails in the operation, not the call.
    let op = negs
        .attach_network_endpoints()
        .set_project(&project)
        .set_zone(&zone)
        .set_network_endpoint_group(name("neg"))
        .set_body(
            NetworkEndpointGroupsAttachEndpointsRequest::new().set_network_endpoints([NetworkEndpoint::new()
                .set_ip_address("10.244.0.5")
                .set_instance("gke-node-1")
                .set_port(8080)]),
        )
        .send()
        .await
        .expect("the call itself is accepted");
    let op_name = op.name.clone().unwrap();
    let finished = poll_until(
        "the duplicate attach to finish",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            // zoneOperations.get
            let op = negs
                .get_operation()
                .set_project(&project)
                .set_zone(&zone)
                .set_operation(&op_name)
                .send();
            async move {
                let op = op.await.map_err(|e| e.to_string())?;
                if op.status == Some(model::operation::Status::Done) {
                    Ok(op)
                } else {
                    Err(format!("{:?}", op.status))
                }
            }
        },
    )
    .await;
    assert!(
        finished.error.is_some(),
        "duplicate endpoint must fail in the operation: {finished:?}"
    );
    assert_eq!(
        finished.http_error_status_code.map(|c| c / 100),
        Some(4),
        "{finished:?}"
    );

    // --- backend service -> URL map -> proxy -> forwarding rule
    let op = backend_services
        .insert()
        .set_project(&project)
        .set_body(
            BackendService::new()
                .set_name(name("bs"))
                .set_protocol(model::backend_service::Protocol::Http)
                .set_load_balancing_scheme(model::backend_service::LoadBalancingScheme::ExternalManaged)
                .set_health_checks([hc_link.clone()])
                .set_backends([Backend::new()
                    .set_group(neg_link.clone())
                    .set_balancing_mode(model::backend::BalancingMode::Rate)
                    .set_max_rate_per_endpoint(100.0)]),
        )
        .poller()
        .until_done()
        .await
        .expect("insert backend service");
    done(&op, "insert backend service");
    let bs_link = op.target_link.clone().unwrap();

    let route = |priority: i32, m: HttpRouteRuleMatch, weights: &[u32]| {
        HttpRouteRule::new()
            .set_priority(priority)
            .set_match_rules([m])
            .set_route_action(
                HttpRouteAction::new().set_weighted_backend_services(weights.iter().map(|w| {
                    WeightedBackendService::new()
                        .set_backend_service(bs_link.clone())
                        .set_weight(*w)
                })),
            )
    };
    let url_map = UrlMap::new()
        .set_name(name("um"))
        .set_default_service(bs_link.clone())
        .set_host_rules([HostRule::new().set_hosts(["app.example.com"]).set_path_matcher("pm")])
        .set_path_matchers([PathMatcher::new()
            .set_name("pm")
            .set_default_service(bs_link.clone())
            .set_route_rules([
                route(1, HttpRouteRuleMatch::new().set_full_path_match("/exact"), &[100]),
                route(
                    2,
                    HttpRouteRuleMatch::new()
                        .set_prefix_match("/api/")
                        .set_header_matches([HttpHeaderMatch::new()
                            .set_header_name("x-canary")
                            .set_exact_match("yes")]),
                    &[100],
                ),
                route(3, HttpRouteRuleMatch::new().set_prefix_match("/"), &[100]),
            ])]);
    let op = url_maps
        .insert()
        .set_project(&project)
        .set_body(url_map.clone())
        .poller()
        .until_done()
        .await
        .expect("insert url map");
    done(&op, "insert url map");
    let um_link = op.target_link.clone().unwrap();
    let um = url_maps
        .get()
        .set_project(&project)
        .set_url_map(name("um"))
        .send()
        .await
        .unwrap();
    assert_eq!(um.default_service.as_deref(), Some(bs_link.as_str()));
    let rules = &um.path_matchers[0].route_rules;
    assert_eq!(rules.iter().map(|r| r.priority.unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        rules[1].match_rules[0].header_matches[0].exact_match.as_deref(),
        Some("yes")
    );
    let bs = backend_services
        .get()
        .set_project(&project)
        .set_backend_service(name("bs"))
        .send()
        .await
        .unwrap();
    assert!(
        bs.used_by
            .iter()
            .any(|r| r.reference.as_deref() == Some(um_link.as_str())),
        "{:?}",
        bs.used_by
    );
    assert_eq!(bs.backends[0].group.as_deref(), Some(neg_link.as_str()));

    let op = proxies
        .insert()
        .set_project(&project)
        .set_body(
            TargetHttpProxy::new()
                .set_name(name("proxy"))
                .set_url_map(um_link.clone()),
        )
        .poller()
        .until_done()
        .await
        .expect("insert proxy");
    done(&op, "insert proxy");
    let proxy_link = op.target_link.clone().unwrap();

    let op = forwarding_rules
        .insert()
        .set_project(&project)
        .set_body(
            ForwardingRule::new()
                .set_name(name("fr"))
                .set_ip_protocol(model::forwarding_rule::IPProtocol::Tcp)
                .set_port_range("80")
                .set_target(proxy_link.clone())
                .set_load_balancing_scheme(model::forwarding_rule::LoadBalancingScheme::ExternalManaged)
                .set_labels([("cloudgate-gateway", "ns_web")]),
        )
        .poller()
        .until_done()
        .await
        .expect("insert forwarding rule");
    done(&op, "insert forwarding rule");
    let fr = forwarding_rules
        .get()
        .set_project(&project)
        .set_forwarding_rule(name("fr"))
        .send()
        .await
        .unwrap();
    assert_eq!(fr.port_range.as_deref(), Some("80-80"));
    assert_eq!(fr.target.as_deref(), Some(proxy_link.as_str()));
    assert!(
        fr.ip_address
            .as_deref()
            .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()),
        "an ephemeral IP: {fr:?}"
    );
    assert_eq!(fr.labels.get("cloudgate-gateway").map(String::as_str), Some("ns_web"));

    // --- a patch with the current fingerprint works; the now stale one gets 412
    let stale = um.fingerprint.clone().expect("url maps carry a fingerprint");
    let op = url_maps
        .patch()
        .set_project(&project)
        .set_url_map(name("um"))
        .set_body(UrlMap::new().set_fingerprint(stale.clone()).set_description("patched"))
        .poller()
        .until_done()
        .await
        .expect("patch with the current fingerprint");
    done(&op, "patch url map");
    let (code, message) = failure(
        "patch with a stale fingerprint",
        url_maps
            .patch()
            .set_project(&project)
            .set_url_map(name("um"))
            .set_body(UrlMap::new().set_fingerprint(stale).set_description("again"))
            .send()
            .await,
    );
    assert_eq!(code, 412, "{message}");

    // --- a backend service in use cannot go
    let (code, message) = failure(
        "delete a backend service in use",
        backend_services
            .delete()
            .set_project(&project)
            .set_backend_service(name("bs"))
            .send()
            .await,
    );
    assert_eq!(code, 400, "{message}");
    assert!(
        message.contains("is already being used by") && message.contains(&name("um")),
        "{message}"
    );

    // --- deletes, children first; each gone afterwards
    macro_rules! delete {
        ($what:literal, $call:expr, $get:expr) => {{
            let op = $call.poller().until_done().await.expect(concat!("delete ", $what));
            done(&op, concat!("delete ", $what));
            let (code, _) = failure(concat!("get deleted ", $what), $get.send().await);
            assert_eq!(code, 404, $what);
        }};
    }
    delete!(
        "forwarding rule",
        forwarding_rules
            .delete()
            .set_project(&project)
            .set_forwarding_rule(name("fr")),
        forwarding_rules
            .get()
            .set_project(&project)
            .set_forwarding_rule(name("fr"))
    );
    delete!(
        "proxy",
        proxies
            .delete()
            .set_project(&project)
            .set_target_http_proxy(name("proxy")),
        proxies.get().set_project(&project).set_target_http_proxy(name("proxy"))
    );
    delete!(
        "url map",
        url_maps.delete().set_project(&project).set_url_map(name("um")),
        url_maps.get().set_project(&project).set_url_map(name("um"))
    );
    delete!(
        "backend service",
        backend_services
            .delete()
            .set_project(&project)
            .set_backend_service(name("bs")),
        backend_services
            .get()
            .set_project(&project)
            .set_backend_service(name("bs"))
    );
    delete!(
        "NEG",
        negs.delete()
            .set_project(&project)
            .set_zone(&zone)
            .set_network_endpoint_group(name("neg")),
        negs.get()
            .set_project(&project)
            .set_zone(&zone)
            .set_network_endpoint_group(name("neg"))
    );
    delete!(
        "health check",
        health_checks
            .delete()
            .set_project(&project)
            .set_health_check(name("hc")),
        health_checks.get().set_project(&project).set_health_check(name("hc"))
    );
}

/// Requests GCE refuses are refused with GCE's status codes and messages: a URL map pointing at
/// a backend service that does not exist (404), a malformed reference (400), a name that breaks
/// the discovery document's pattern (400), a duplicate name (409), an unknown resource (404).
#[tokio::test]
async fn invalid_requests_get_google_errors() {
    let project = env("GCE_PROJECT");
    let url_maps = compute!(UrlMaps);
    let health_checks = compute!(HealthChecks);
    let u = unique("gc-bad");

    let missing = format!("projects/{project}/global/backendServices/{u}-nope");
    let (code, message) = failure(
        "url map with a missing default service",
        url_maps
            .insert()
            .set_project(&project)
            .set_body(UrlMap::new().set_name(format!("{u}-um")).set_default_service(missing))
            .send()
            .await,
    );
    assert_eq!(code, 404, "{message}");
    assert!(
        message.contains(&format!("{u}-nope")) && message.contains("was not found"),
        "{message}"
    );

    let (code, message) = failure(
        "url map with a malformed reference",
        url_maps
            .insert()
            .set_project(&project)
            .set_body(
                UrlMap::new()
                    .set_name(format!("{u}-um"))
                    .set_default_service("not a reference"),
            )
            .send()
            .await,
    );
    assert_eq!(code, 400, "{message}");

    let (code, message) = failure(
        "health check with an invalid name",
        health_checks
            .insert()
            .set_project(&project)
            .set_body(
                HealthCheck::new()
                    .set_name("Not_A_Valid_Name")
                    .set_type(model::health_check::Type::Http)
                    .set_http_health_check(model::HTTPHealthCheck::new().set_port(8080)),
            )
            .send()
            .await,
    );
    assert_eq!(code, 400, "{message}");
    assert!(message.contains("Not_A_Valid_Name"), "{message}");

    let (code, message) = failure(
        "health check whose timeout exceeds its interval",
        health_checks
            .insert()
            .set_project(&project)
            .set_body(
                HealthCheck::new()
                    .set_name(format!("{u}-slow"))
                    .set_type(model::health_check::Type::Http)
                    .set_check_interval_sec(5)
                    .set_timeout_sec(10)
                    .set_http_health_check(model::HTTPHealthCheck::new().set_port(8080)),
            )
            .send()
            .await,
    );
    assert_eq!(code, 400, "{message}");

    let hc = || {
        HealthCheck::new()
            .set_name(format!("{u}-hc"))
            .set_type(model::health_check::Type::Http)
            .set_http_health_check(model::HTTPHealthCheck::new().set_port(8080))
    };
    let op = health_checks
        .insert()
        .set_project(&project)
        .set_body(hc())
        .poller()
        .until_done()
        .await
        .unwrap();
    done(&op, "insert health check");
    let (code, message) = failure(
        "duplicate health check",
        health_checks.insert().set_project(&project).set_body(hc()).send().await,
    );
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("already exists"), "{message}");
    let (code, _) = failure(
        "unknown url map",
        url_maps
            .get()
            .set_project(&project)
            .set_url_map(format!("{u}-um"))
            .send()
            .await,
    );
    assert_eq!(code, 404);
    let op = health_checks
        .delete()
        .set_project(&project)
        .set_health_check(format!("{u}-hc"))
        .poller()
        .until_done()
        .await
        .unwrap();
    done(&op, "delete health check");
}
