//! The Compute REST clients and the one path every call takes: rate limiter, tracing span, call
//! counter, error classification. Requests and answers cross this module as JSON in the API's
//! own field names (the library's model types (de)serialise exactly that), so observe and apply
//! work on one representation for every kind and scope.
//!
//! Operations are waited for through the three `*Operations` services (`wait`, one call per
//! operation).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use google_cloud_compute_v1::client::*;
use google_cloud_compute_v1::model;
use google_cloud_gax::options::RequestOptionsBuilder;
use google_cloud_gax::retry_policy::{RetryPolicy, RetryPolicyExt};
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::Instrument;

use super::errors::{classify, operation_failure, CallFailure, SERVICE};
use super::limiter::RateLimiter;
use super::metrics::{CallCounter, OUTCOME_ERROR, OUTCOME_OK, OUTCOME_RETRYABLE, OUTCOME_THROTTLED};
use super::GcpConfig;
use crate::*;

/// Where a resource lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    Global,
    Region(String),
    Zone(String),
}

/// A mutating call that was accepted: its method id and the operation it started.
#[derive(Debug)]
pub(crate) struct Mutation {
    pub method: &'static str,
    pub op: Value,
}

/// How waiting for an operation ended (failures are errors).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OpState {
    Done,
    /// Still running when the budget ran out; the next reconcile picks up from here.
    Running(String),
}

pub(crate) struct Compute {
    addresses: Addresses,
    global_addresses: GlobalAddresses,
    firewalls: Firewalls,
    health_checks: HealthChecks,
    region_health_checks: RegionHealthChecks,
    negs: NetworkEndpointGroups,
    backend_services: BackendServices,
    region_backend_services: RegionBackendServices,
    url_maps: UrlMaps,
    region_url_maps: RegionUrlMaps,
    http_proxies: TargetHttpProxies,
    region_http_proxies: RegionTargetHttpProxies,
    https_proxies: TargetHttpsProxies,
    region_https_proxies: RegionTargetHttpsProxies,
    certs: SslCertificates,
    region_certs: RegionSslCertificates,
    forwarding_rules: ForwardingRules,
    global_forwarding_rules: GlobalForwardingRules,
    global_operations: GlobalOperations,
    region_operations: RegionOperations,
    zone_operations: ZoneOperations,
    limiter: Arc<RateLimiter>,
    calls: Arc<CallCounter>,
    poll_initial: Duration,
    poll_max: Duration,
    operation_timeout: Duration,
}

fn build_error(e: impl std::fmt::Display) -> CallFailure {
    CallFailure::new("client.build", super::errors::FailureKind::Auth { transient: true }, format!("building the Compute client: {e}"))
}

impl Compute {
    pub async fn new(cfg: &GcpConfig, limiter: Arc<RateLimiter>, calls: Arc<CallCounter>) -> Result<Self, CallFailure> {
        let creds = if cfg.anonymous {
            google_cloud_auth::credentials::anonymous::Builder::new().build()
        } else {
            // Application Default Credentials: workload identity on GKE, the metadata server on
            // GCE, GOOGLE_APPLICATION_CREDENTIALS elsewhere.
            google_cloud_auth::credentials::Builder::default().build().map_err(build_error)?
        };
        // Throttling and server errors are retried underneath the call, with the library's
        // jittered exponential backoff, when that is safe: reads, inserts (they carry a
        // requestId), updates (PUT, guarded by the fingerprint) and deletes (a repeat finds
        // 404, which delete treats as done). Other POSTs (setUrlMap, attach...) surface at
        // once. Before, one 429 failed the whole reconcile (observe alone makes dozens of reads
        // per Gateway) and the controller's per-object backoff delayed it by seconds to
        // minutes. Repeats made here pass the client-side rate limiter by (they back off
        // instead) and count as one call.
        let retry = || RetryTransient.with_attempt_limit(4).with_time_limit(Duration::from_secs(20));
        macro_rules! client {
            ($t:ty) => {{
                let mut b = <$t>::builder().with_credentials(creds.clone()).with_retry_policy(retry());
                if let Some(e) = &cfg.endpoint {
                    b = b.with_endpoint(e.trim_end_matches('/').to_string());
                }
                b.build().await.map_err(build_error)?
            }};
        }
        Ok(Compute {
            addresses: client!(Addresses),
            global_addresses: client!(GlobalAddresses),
            firewalls: client!(Firewalls),
            health_checks: client!(HealthChecks),
            region_health_checks: client!(RegionHealthChecks),
            negs: client!(NetworkEndpointGroups),
            backend_services: client!(BackendServices),
            region_backend_services: client!(RegionBackendServices),
            url_maps: client!(UrlMaps),
            region_url_maps: client!(RegionUrlMaps),
            http_proxies: client!(TargetHttpProxies),
            region_http_proxies: client!(RegionTargetHttpProxies),
            https_proxies: client!(TargetHttpsProxies),
            region_https_proxies: client!(RegionTargetHttpsProxies),
            certs: client!(SslCertificates),
            region_certs: client!(RegionSslCertificates),
            forwarding_rules: client!(ForwardingRules),
            global_forwarding_rules: client!(GlobalForwardingRules),
            global_operations: client!(GlobalOperations),
            region_operations: client!(RegionOperations),
            zone_operations: client!(ZoneOperations),
            limiter,
            calls,
            poll_initial: cfg.poll_initial,
            poll_max: cfg.poll_max,
            operation_timeout: cfg.operation_timeout,
        })
    }

    /// Every call goes through here: a token from the limiter, a span, the counter, and the
    /// error classified. The answer comes back as JSON.
    async fn call<T, F>(&self, method: &'static str, fut: F) -> Result<Value, CallFailure>
    where
        T: Serialize,
        F: Future<Output = google_cloud_compute_v1::Result<T>>,
    {
        let span = tracing::info_span!("cloud_call", service = SERVICE, operation = method, outcome = tracing::field::Empty);
        async {
            self.limiter.acquire().await;
            let result = fut.await;
            let span = tracing::Span::current();
            match result {
                Ok(v) => {
                    self.calls.record(SERVICE, method, OUTCOME_OK);
                    span.record("outcome", OUTCOME_OK);
                    serde_json::to_value(&v).map_err(|e| CallFailure::permanent(method, format!("reading the answer: {e}")))
                }
                Err(e) => {
                    let f = classify(method, &e);
                    let outcome = if f.kind.is_throttling() {
                        OUTCOME_THROTTLED
                    } else if f.error.is_retryable() {
                        OUTCOME_RETRYABLE
                    } else {
                        OUTCOME_ERROR
                    };
                    self.calls.record(SERVICE, method, outcome);
                    span.record("outcome", outcome);
                    tracing::debug!(error = %f.error, "cloud call failed");
                    Err(f)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn mutate<F>(&self, method: &'static str, fut: F) -> Result<Mutation, CallFailure>
    where
        F: Future<Output = google_cloud_compute_v1::Result<model::Operation>>,
    {
        let op = self.call(method, fut).await?;
        Ok(Mutation { method, op })
    }

    /// Every resource of `kind` in `loc` that matches `filter`, all pages.
    pub async fn list(&self, p: &str, kind: &str, loc: &Loc, filter: &str) -> Result<Vec<Value>, CallFailure> {
        macro_rules! pages {
            ($m:literal, $page:ident => $req:expr) => {{
                let mut items = Vec::new();
                let mut $page: Option<String> = None;
                loop {
                    let v = self.call($m, $req.set_filter(filter).set_max_results(500_u32).set_or_clear_page_token($page.clone()).send()).await?;
                    if let Some(a) = v.get("items").and_then(Value::as_array) {
                        items.extend(a.iter().cloned());
                    }
                    match v.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                        Some(t) => $page = Some(t.to_string()),
                        None => break,
                    }
                }
                items
            }};
        }
        Ok(match (kind, loc) {
            (KIND_FIREWALL, Loc::Global) => pages!("firewalls.list", t => self.firewalls.list().set_project(p)),
            (KIND_ADDRESS, Loc::Global) => pages!("globalAddresses.list", t => self.global_addresses.list().set_project(p)),
            (KIND_ADDRESS, Loc::Region(r)) => pages!("addresses.list", t => self.addresses.list().set_project(p).set_region(r)),
            (KIND_HEALTH_CHECK, Loc::Global) => pages!("healthChecks.list", t => self.health_checks.list().set_project(p)),
            (KIND_HEALTH_CHECK, Loc::Region(r)) => {
                pages!("regionHealthChecks.list", t => self.region_health_checks.list().set_project(p).set_region(r))
            }
            (KIND_NEG, Loc::Zone(z)) => pages!("networkEndpointGroups.list", t => self.negs.list().set_project(p).set_zone(z)),
            (KIND_BACKEND_SERVICE, Loc::Global) => pages!("backendServices.list", t => self.backend_services.list().set_project(p)),
            (KIND_BACKEND_SERVICE, Loc::Region(r)) => {
                pages!("regionBackendServices.list", t => self.region_backend_services.list().set_project(p).set_region(r))
            }
            (KIND_URL_MAP, Loc::Global) => pages!("urlMaps.list", t => self.url_maps.list().set_project(p)),
            (KIND_URL_MAP, Loc::Region(r)) => pages!("regionUrlMaps.list", t => self.region_url_maps.list().set_project(p).set_region(r)),
            (KIND_TARGET_HTTP_PROXY, Loc::Global) => pages!("targetHttpProxies.list", t => self.http_proxies.list().set_project(p)),
            (KIND_TARGET_HTTP_PROXY, Loc::Region(r)) => {
                pages!("regionTargetHttpProxies.list", t => self.region_http_proxies.list().set_project(p).set_region(r))
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Global) => pages!("targetHttpsProxies.list", t => self.https_proxies.list().set_project(p)),
            (KIND_TARGET_HTTPS_PROXY, Loc::Region(r)) => {
                pages!("regionTargetHttpsProxies.list", t => self.region_https_proxies.list().set_project(p).set_region(r))
            }
            (KIND_SSL_CERTIFICATE, Loc::Global) => pages!("sslCertificates.list", t => self.certs.list().set_project(p)),
            (KIND_SSL_CERTIFICATE, Loc::Region(r)) => {
                pages!("regionSslCertificates.list", t => self.region_certs.list().set_project(p).set_region(r))
            }
            (KIND_FORWARDING_RULE, Loc::Global) => {
                pages!("globalForwardingRules.list", t => self.global_forwarding_rules.list().set_project(p))
            }
            (KIND_FORWARDING_RULE, Loc::Region(r)) => {
                pages!("forwardingRules.list", t => self.forwarding_rules.list().set_project(p).set_region(r))
            }
            _ => return Err(unsupported("list", kind, loc)),
        })
    }

    /// NEGs of every zone in one call (`aggregatedList`): zonal NEGs can be in any zone their
    /// endpoints are in.
    pub async fn list_negs(&self, p: &str, filter: &str) -> Result<Vec<Value>, CallFailure> {
        let mut items = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let req = self.negs.aggregated_list().set_project(p).set_filter(filter).set_max_results(500_u32).set_or_clear_page_token(page.clone());
            let v = self.call("networkEndpointGroups.aggregatedList", req.send()).await?;
            if let Some(scopes) = v.get("items").and_then(Value::as_object) {
                for scoped in scopes.values() {
                    if let Some(a) = scoped.get("networkEndpointGroups").and_then(Value::as_array) {
                        items.extend(a.iter().cloned());
                    }
                }
            }
            match v.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                Some(t) => page = Some(t.to_string()),
                None => break,
            }
        }
        Ok(items)
    }

    /// The endpoints attached to a NEG (`networkEndpoint` of each item).
    pub async fn list_endpoints(&self, p: &str, zone: &str, neg: &str) -> Result<Vec<Value>, CallFailure> {
        let mut items = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let req = self
                .negs
                .list_network_endpoints()
                .set_project(p)
                .set_zone(zone)
                .set_network_endpoint_group(neg)
                .set_body(model::NetworkEndpointGroupsListEndpointsRequest::default())
                .set_max_results(500_u32)
                .set_or_clear_page_token(page.clone());
            let v = self.call("networkEndpointGroups.listNetworkEndpoints", req.send()).await?;
            if let Some(a) = v.get("items").and_then(Value::as_array) {
                items.extend(a.iter().filter_map(|i| i.get("networkEndpoint").cloned()));
            }
            match v.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                Some(t) => page = Some(t.to_string()),
                None => break,
            }
        }
        Ok(items)
    }

    pub async fn get(&self, p: &str, kind: &str, loc: &Loc, n: &str) -> Result<Value, CallFailure> {
        match (kind, loc) {
            (KIND_URL_MAP, Loc::Global) => self.call("urlMaps.get", self.url_maps.get().set_project(p).set_url_map(n).send()).await,
            (KIND_URL_MAP, Loc::Region(r)) => {
                self.call("regionUrlMaps.get", self.region_url_maps.get().set_project(p).set_region(r).set_url_map(n).send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Global) => {
                self.call("backendServices.get", self.backend_services.get().set_project(p).set_backend_service(n).send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Region(r)) => {
                let req = self.region_backend_services.get().set_project(p).set_region(r).set_backend_service(n);
                self.call("regionBackendServices.get", req.send()).await
            }
            (KIND_TARGET_HTTP_PROXY, Loc::Global) => {
                self.call("targetHttpProxies.get", self.http_proxies.get().set_project(p).set_target_http_proxy(n).send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Global) => {
                self.call("targetHttpsProxies.get", self.https_proxies.get().set_project(p).set_target_https_proxy(n).send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Region(r)) => {
                let req = self.region_https_proxies.get().set_project(p).set_region(r).set_target_https_proxy(n);
                self.call("regionTargetHttpsProxies.get", req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Global) => {
                let req = self.global_forwarding_rules.get().set_project(p).set_forwarding_rule(n);
                self.call("globalForwardingRules.get", req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Region(r)) => {
                self.call("forwardingRules.get", self.forwarding_rules.get().set_project(p).set_region(r).set_forwarding_rule(n).send()).await
            }
            (KIND_ADDRESS, Loc::Global) => self.call("globalAddresses.get", self.global_addresses.get().set_project(p).set_address(n).send()).await,
            (KIND_ADDRESS, Loc::Region(r)) => {
                self.call("addresses.get", self.addresses.get().set_project(p).set_region(r).set_address(n).send()).await
            }
            _ => Err(unsupported("get", kind, loc)),
        }
    }

    /// Creates a resource. Each insert carries a fresh requestId, which makes it safe to
    /// repeat underneath the call (Compute answers a repeat with the first request's
    /// operation instead of a second resource or `alreadyExists`).
    pub async fn insert(&self, p: &str, kind: &str, loc: &Loc, b: Value) -> Result<Mutation, CallFailure> {
        match (kind, loc) {
            (KIND_FIREWALL, Loc::Global) => {
                let m = "firewalls.insert";
                self.mutate(m, self.firewalls.insert().set_project(p).set_body(body::<model::Firewall>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_ADDRESS, Loc::Global) => {
                let m = "globalAddresses.insert";
                self.mutate(m, self.global_addresses.insert().set_project(p).set_body(body::<model::Address>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_ADDRESS, Loc::Region(r)) => {
                let m = "addresses.insert";
                self.mutate(m, self.addresses.insert().set_project(p).set_region(r).set_body(body::<model::Address>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_HEALTH_CHECK, Loc::Global) => {
                let m = "healthChecks.insert";
                self.mutate(m, self.health_checks.insert().set_project(p).set_body(body::<model::HealthCheck>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_HEALTH_CHECK, Loc::Region(r)) => {
                let m = "regionHealthChecks.insert";
                let req = self.region_health_checks.insert().set_project(p).set_region(r).set_body(body::<model::HealthCheck>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_NEG, Loc::Zone(z)) => {
                let m = "networkEndpointGroups.insert";
                let req = self.negs.insert().set_project(p).set_zone(z).set_body(body::<model::NetworkEndpointGroup>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Global) => {
                let m = "backendServices.insert";
                self.mutate(m, self.backend_services.insert().set_project(p).set_body(body::<model::BackendService>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Region(r)) => {
                let m = "regionBackendServices.insert";
                let req = self.region_backend_services.insert().set_project(p).set_region(r).set_body(body::<model::BackendService>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_URL_MAP, Loc::Global) => {
                let m = "urlMaps.insert";
                self.mutate(m, self.url_maps.insert().set_project(p).set_body(body::<model::UrlMap>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_URL_MAP, Loc::Region(r)) => {
                let m = "regionUrlMaps.insert";
                let req = self.region_url_maps.insert().set_project(p).set_region(r).set_body(body::<model::UrlMap>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_TARGET_HTTP_PROXY, Loc::Global) => {
                let m = "targetHttpProxies.insert";
                self.mutate(m, self.http_proxies.insert().set_project(p).set_body(body::<model::TargetHttpProxy>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_TARGET_HTTP_PROXY, Loc::Region(r)) => {
                let m = "regionTargetHttpProxies.insert";
                let req = self.region_http_proxies.insert().set_project(p).set_region(r).set_body(body::<model::TargetHttpProxy>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Global) => {
                let m = "targetHttpsProxies.insert";
                self.mutate(m, self.https_proxies.insert().set_project(p).set_body(body::<model::TargetHttpsProxy>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Region(r)) => {
                let m = "regionTargetHttpsProxies.insert";
                let req = self.region_https_proxies.insert().set_project(p).set_region(r).set_body(body::<model::TargetHttpsProxy>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_SSL_CERTIFICATE, Loc::Global) => {
                let m = "sslCertificates.insert";
                self.mutate(m, self.certs.insert().set_project(p).set_body(body::<model::SslCertificate>(m, b)?).set_request_id(request_id()).with_idempotency(true).send()).await
            }
            (KIND_SSL_CERTIFICATE, Loc::Region(r)) => {
                let m = "regionSslCertificates.insert";
                let req = self.region_certs.insert().set_project(p).set_region(r).set_body(body::<model::SslCertificate>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Global) => {
                let m = "globalForwardingRules.insert";
                let req = self.global_forwarding_rules.insert().set_project(p).set_body(body::<model::ForwardingRule>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Region(r)) => {
                let m = "forwardingRules.insert";
                let req = self.forwarding_rules.insert().set_project(p).set_region(r).set_body(body::<model::ForwardingRule>(m, b)?).set_request_id(request_id()).with_idempotency(true);
                self.mutate(m, req.send()).await
            }
            _ => Err(unsupported("insert", kind, loc)),
        }
    }

    /// Replaces the resource (`update`, HTTP PUT): what the body leaves out is reset, so lists
    /// that became empty are emptied. Fingerprinted kinds need the current fingerprint in `b`.
    pub async fn update(&self, p: &str, kind: &str, loc: &Loc, n: &str, b: Value) -> Result<Mutation, CallFailure> {
        match (kind, loc) {
            (KIND_FIREWALL, Loc::Global) => {
                let m = "firewalls.update";
                self.mutate(m, self.firewalls.update().set_project(p).set_firewall(n).set_body(body::<model::Firewall>(m, b)?).send()).await
            }
            (KIND_HEALTH_CHECK, Loc::Global) => {
                let m = "healthChecks.update";
                let req = self.health_checks.update().set_project(p).set_health_check(n).set_body(body::<model::HealthCheck>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_HEALTH_CHECK, Loc::Region(r)) => {
                let m = "regionHealthChecks.update";
                let req = self
                    .region_health_checks
                    .update()
                    .set_project(p)
                    .set_region(r)
                    .set_health_check(n)
                    .set_body(body::<model::HealthCheck>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Global) => {
                let m = "backendServices.update";
                let req = self.backend_services.update().set_project(p).set_backend_service(n).set_body(body::<model::BackendService>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Region(r)) => {
                let m = "regionBackendServices.update";
                let req = self
                    .region_backend_services
                    .update()
                    .set_project(p)
                    .set_region(r)
                    .set_backend_service(n)
                    .set_body(body::<model::BackendService>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_URL_MAP, Loc::Global) => {
                let m = "urlMaps.update";
                self.mutate(m, self.url_maps.update().set_project(p).set_url_map(n).set_body(body::<model::UrlMap>(m, b)?).send()).await
            }
            (KIND_URL_MAP, Loc::Region(r)) => {
                let m = "regionUrlMaps.update";
                let req = self.region_url_maps.update().set_project(p).set_region(r).set_url_map(n).set_body(body::<model::UrlMap>(m, b)?);
                self.mutate(m, req.send()).await
            }
            _ => Err(unsupported("update", kind, loc)),
        }
    }

    /// JSON merge patch of a target proxy (fields without a dedicated setter, e.g. description).
    pub async fn patch_proxy(&self, p: &str, kind: &str, loc: &Loc, n: &str, b: Value) -> Result<Mutation, CallFailure> {
        match (kind, loc) {
            (KIND_TARGET_HTTP_PROXY, Loc::Global) => {
                let m = "targetHttpProxies.patch";
                let req = self.http_proxies.patch().set_project(p).set_target_http_proxy(n).set_body(body::<model::TargetHttpProxy>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Global) => {
                let m = "targetHttpsProxies.patch";
                let req = self.https_proxies.patch().set_project(p).set_target_https_proxy(n).set_body(body::<model::TargetHttpsProxy>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Region(r)) => {
                let m = "regionTargetHttpsProxies.patch";
                let req = self
                    .region_https_proxies
                    .patch()
                    .set_project(p)
                    .set_region(r)
                    .set_target_https_proxy(n)
                    .set_body(body::<model::TargetHttpsProxy>(m, b)?);
                self.mutate(m, req.send()).await
            }
            _ => Err(unsupported("patch", kind, loc)),
        }
    }

    pub async fn delete(&self, p: &str, kind: &str, loc: &Loc, n: &str) -> Result<Mutation, CallFailure> {
        match (kind, loc) {
            (KIND_FIREWALL, Loc::Global) => self.mutate("firewalls.delete", self.firewalls.delete().set_project(p).set_firewall(n).send()).await,
            (KIND_ADDRESS, Loc::Global) => {
                self.mutate("globalAddresses.delete", self.global_addresses.delete().set_project(p).set_address(n).send()).await
            }
            (KIND_ADDRESS, Loc::Region(r)) => {
                self.mutate("addresses.delete", self.addresses.delete().set_project(p).set_region(r).set_address(n).send()).await
            }
            (KIND_HEALTH_CHECK, Loc::Global) => {
                self.mutate("healthChecks.delete", self.health_checks.delete().set_project(p).set_health_check(n).send()).await
            }
            (KIND_HEALTH_CHECK, Loc::Region(r)) => {
                let req = self.region_health_checks.delete().set_project(p).set_region(r).set_health_check(n);
                self.mutate("regionHealthChecks.delete", req.send()).await
            }
            (KIND_NEG, Loc::Zone(z)) => {
                let req = self.negs.delete().set_project(p).set_zone(z).set_network_endpoint_group(n);
                self.mutate("networkEndpointGroups.delete", req.send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Global) => {
                self.mutate("backendServices.delete", self.backend_services.delete().set_project(p).set_backend_service(n).send()).await
            }
            (KIND_BACKEND_SERVICE, Loc::Region(r)) => {
                let req = self.region_backend_services.delete().set_project(p).set_region(r).set_backend_service(n);
                self.mutate("regionBackendServices.delete", req.send()).await
            }
            (KIND_URL_MAP, Loc::Global) => self.mutate("urlMaps.delete", self.url_maps.delete().set_project(p).set_url_map(n).send()).await,
            (KIND_URL_MAP, Loc::Region(r)) => {
                self.mutate("regionUrlMaps.delete", self.region_url_maps.delete().set_project(p).set_region(r).set_url_map(n).send()).await
            }
            (KIND_TARGET_HTTP_PROXY, Loc::Global) => {
                self.mutate("targetHttpProxies.delete", self.http_proxies.delete().set_project(p).set_target_http_proxy(n).send()).await
            }
            (KIND_TARGET_HTTP_PROXY, Loc::Region(r)) => {
                let req = self.region_http_proxies.delete().set_project(p).set_region(r).set_target_http_proxy(n);
                self.mutate("regionTargetHttpProxies.delete", req.send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Global) => {
                self.mutate("targetHttpsProxies.delete", self.https_proxies.delete().set_project(p).set_target_https_proxy(n).send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Region(r)) => {
                let req = self.region_https_proxies.delete().set_project(p).set_region(r).set_target_https_proxy(n);
                self.mutate("regionTargetHttpsProxies.delete", req.send()).await
            }
            (KIND_SSL_CERTIFICATE, Loc::Global) => {
                self.mutate("sslCertificates.delete", self.certs.delete().set_project(p).set_ssl_certificate(n).send()).await
            }
            (KIND_SSL_CERTIFICATE, Loc::Region(r)) => {
                let req = self.region_certs.delete().set_project(p).set_region(r).set_ssl_certificate(n);
                self.mutate("regionSslCertificates.delete", req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Global) => {
                let req = self.global_forwarding_rules.delete().set_project(p).set_forwarding_rule(n);
                self.mutate("globalForwardingRules.delete", req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Region(r)) => {
                let req = self.forwarding_rules.delete().set_project(p).set_region(r).set_forwarding_rule(n);
                self.mutate("forwardingRules.delete", req.send()).await
            }
            _ => Err(unsupported("delete", kind, loc)),
        }
    }

    pub async fn set_url_map(&self, p: &str, kind: &str, loc: &Loc, n: &str, url_map: String) -> Result<Mutation, CallFailure> {
        let r = model::UrlMapReference::new().set_url_map(url_map);
        match (kind, loc) {
            (KIND_TARGET_HTTP_PROXY, Loc::Global) => {
                let req = self.http_proxies.set_url_map().set_project(p).set_target_http_proxy(n).set_body(r);
                self.mutate("targetHttpProxies.setUrlMap", req.send()).await
            }
            (KIND_TARGET_HTTP_PROXY, Loc::Region(rg)) => {
                let req = self.region_http_proxies.set_url_map().set_project(p).set_region(rg).set_target_http_proxy(n).set_body(r);
                self.mutate("regionTargetHttpProxies.setUrlMap", req.send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Global) => {
                let req = self.https_proxies.set_url_map().set_project(p).set_target_https_proxy(n).set_body(r);
                self.mutate("targetHttpsProxies.setUrlMap", req.send()).await
            }
            (KIND_TARGET_HTTPS_PROXY, Loc::Region(rg)) => {
                let req = self.region_https_proxies.set_url_map().set_project(p).set_region(rg).set_target_https_proxy(n).set_body(r);
                self.mutate("regionTargetHttpsProxies.setUrlMap", req.send()).await
            }
            _ => Err(unsupported("setUrlMap", kind, loc)),
        }
    }

    pub async fn set_ssl_certificates(&self, p: &str, loc: &Loc, n: &str, certs: Vec<String>) -> Result<Mutation, CallFailure> {
        match loc {
            Loc::Global => {
                let b = model::TargetHttpsProxiesSetSslCertificatesRequest::new().set_ssl_certificates(certs);
                let req = self.https_proxies.set_ssl_certificates().set_project(p).set_target_https_proxy(n).set_body(b);
                self.mutate("targetHttpsProxies.setSslCertificates", req.send()).await
            }
            Loc::Region(r) => {
                let b = model::RegionTargetHttpsProxiesSetSslCertificatesRequest::new().set_ssl_certificates(certs);
                let req = self.region_https_proxies.set_ssl_certificates().set_project(p).set_region(r).set_target_https_proxy(n).set_body(b);
                self.mutate("regionTargetHttpsProxies.setSslCertificates", req.send()).await
            }
            Loc::Zone(_) => Err(unsupported("setSslCertificates", KIND_TARGET_HTTPS_PROXY, loc)),
        }
    }

    pub async fn set_target(&self, p: &str, loc: &Loc, n: &str, target: String) -> Result<Mutation, CallFailure> {
        let b = model::TargetReference::new().set_target(target);
        match loc {
            Loc::Global => {
                let req = self.global_forwarding_rules.set_target().set_project(p).set_forwarding_rule(n).set_body(b);
                self.mutate("globalForwardingRules.setTarget", req.send()).await
            }
            Loc::Region(r) => {
                let req = self.forwarding_rules.set_target().set_project(p).set_region(r).set_forwarding_rule(n).set_body(b);
                self.mutate("forwardingRules.setTarget", req.send()).await
            }
            Loc::Zone(_) => Err(unsupported("setTarget", KIND_FORWARDING_RULE, loc)),
        }
    }

    /// Replaces the labels of an address or forwarding rule; `fingerprint` is the current
    /// `labelFingerprint`.
    pub async fn set_labels(
        &self,
        p: &str,
        kind: &str,
        loc: &Loc,
        n: &str,
        labels: &std::collections::BTreeMap<String, String>,
        fingerprint: &str,
    ) -> Result<Mutation, CallFailure> {
        let b = json!({"labels": labels, "labelFingerprint": fingerprint});
        match (kind, loc) {
            (KIND_ADDRESS, Loc::Global) => {
                let m = "globalAddresses.setLabels";
                let req = self.global_addresses.set_labels().set_project(p).set_resource(n).set_body(body::<model::GlobalSetLabelsRequest>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_ADDRESS, Loc::Region(r)) => {
                let m = "addresses.setLabels";
                let req =
                    self.addresses.set_labels().set_project(p).set_region(r).set_resource(n).set_body(body::<model::RegionSetLabelsRequest>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Global) => {
                let m = "globalForwardingRules.setLabels";
                let req =
                    self.global_forwarding_rules.set_labels().set_project(p).set_resource(n).set_body(body::<model::GlobalSetLabelsRequest>(m, b)?);
                self.mutate(m, req.send()).await
            }
            (KIND_FORWARDING_RULE, Loc::Region(r)) => {
                let m = "forwardingRules.setLabels";
                let req = self
                    .forwarding_rules
                    .set_labels()
                    .set_project(p)
                    .set_region(r)
                    .set_resource(n)
                    .set_body(body::<model::RegionSetLabelsRequest>(m, b)?);
                self.mutate(m, req.send()).await
            }
            _ => Err(unsupported("setLabels", kind, loc)),
        }
    }

    pub async fn attach(&self, p: &str, zone: &str, neg: &str, endpoints: Vec<Value>) -> Result<Mutation, CallFailure> {
        let m = "networkEndpointGroups.attachNetworkEndpoints";
        let b = body::<model::NetworkEndpointGroupsAttachEndpointsRequest>(m, json!({"networkEndpoints": endpoints}))?;
        let req = self.negs.attach_network_endpoints().set_project(p).set_zone(zone).set_network_endpoint_group(neg).set_body(b);
        self.mutate(m, req.send()).await
    }

    pub async fn detach(&self, p: &str, zone: &str, neg: &str, endpoints: Vec<Value>) -> Result<Mutation, CallFailure> {
        let m = "networkEndpointGroups.detachNetworkEndpoints";
        let b = body::<model::NetworkEndpointGroupsDetachEndpointsRequest>(m, json!({"networkEndpoints": endpoints}))?;
        let req = self.negs.detach_network_endpoints().set_project(p).set_zone(zone).set_network_endpoint_group(neg).set_body(b);
        self.mutate(m, req.send()).await
    }

    /// Waits for an operation to be DONE, for at most the configured budget. An operation that
    /// ended with an error is that error, classified.
    ///
    /// Compute's `operations.wait` holds the request until the operation is DONE or about two
    /// minutes have passed, so an operation costs one call where a `get` poll loop costs one
    /// per poll (a 30-second insert polled with a backoff capped at one second is about 30
    /// calls against the project's quota). `wait` may return early, still running, "on a best
    /// effort basis": then the next `wait` follows a short doubling pause, never a hot loop. A
    /// `wait` already sent is not cut short at the budget, so an operation can take up to one
    /// `wait` (about two minutes) longer than the budget before apply moves on.
    pub async fn wait(&self, p: &str, m: &Mutation) -> Result<OpState, CallFailure> {
        let deadline = Instant::now() + self.operation_timeout;
        let mut pause = self.poll_initial;
        let mut op = m.op.clone();
        loop {
            if op["status"] == "DONE" {
                return match operation_failure(m.method, &op) {
                    Some(f) => Err(f),
                    None => Ok(OpState::Done),
                };
            }
            let name = op["name"].as_str().unwrap_or_default().to_string();
            if name.is_empty() {
                return Err(CallFailure::permanent(m.method, "the answer is an operation without a name"));
            }
            if Instant::now() >= deadline {
                tracing::info!(method = m.method, operation = %name, "operation still running; continuing on the next reconcile");
                return Ok(OpState::Running(name));
            }
            op = self.wait_operation(p, &op, &name).await?;
            if op["status"] != "DONE" {
                tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
                pause = (pause * 2).min(self.poll_max);
            }
        }
    }

    /// `operations.wait` in the operation's own scope. It only reads, so the client may repeat
    /// it after a throttle or a server error.
    async fn wait_operation(&self, p: &str, op: &Value, name: &str) -> Result<Value, CallFailure> {
        let seg = |k: &str| op[k].as_str().filter(|s| !s.is_empty()).map(|s| super::convert::last_segment(s).to_string());
        if let Some(z) = seg("zone") {
            let req = self.zone_operations.wait().set_project(p).set_zone(z).set_operation(name).with_idempotency(true);
            self.call("zoneOperations.wait", req.send()).await
        } else if let Some(r) = seg("region") {
            let req = self.region_operations.wait().set_project(p).set_region(r).set_operation(name).with_idempotency(true);
            self.call("regionOperations.wait", req.send()).await
        } else {
            let req = self.global_operations.wait().set_project(p).set_operation(name).with_idempotency(true);
            self.call("globalOperations.wait", req.send()).await
        }
    }
}

/// The retry policy of every Compute client: retry what [`errors::transient`] says is worth
/// repeating at once, and only for requests that are safe to send twice.
///
/// [`errors::transient`]: super::errors::transient
#[derive(Clone, Debug)]
pub(crate) struct RetryTransient;

impl RetryPolicy for RetryTransient {
    fn on_error(&self, state: &RetryState, error: google_cloud_gax::error::Error) -> RetryResult {
        if error.is_transient_and_before_rpc() || (state.idempotent && super::errors::transient(&classify("retry", &error).kind)) {
            RetryResult::Continue(error)
        } else {
            RetryResult::Permanent(error)
        }
    }
}

/// A random UUID (version 4) for `requestId`. Unique, not secret: from std's randomly keyed
/// hasher, so no extra dependency.
fn request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(N.fetch_add(1, Ordering::Relaxed));
        h.write_u64(salt);
        h.finish()
    };
    let (hi, lo) = (word(1), word(2));
    let hi = (hi & !0xf000) | 0x4000; // version 4
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48, lo & 0xffff_ffff_ffff)
}

/// A request body from JSON, through the library's model type (which serialises it back
/// field for field).
fn body<T: DeserializeOwned>(method: &str, v: Value) -> Result<T, CallFailure> {
    serde_json::from_value(v).map_err(|e| CallFailure::permanent(method, format!("building the request body: {e}")))
}

fn unsupported(what: &str, kind: &str, loc: &Loc) -> CallFailure {
    CallFailure::permanent(what, format!("{what} of {kind} in {loc:?} is not something cloudgate does"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_gax::error::rpc::{Code, Status};
    use google_cloud_gax::error::Error;

    fn http_error(status: u16, code: Code) -> Error {
        Error::service_with_http_metadata(Status::default().set_code(code).set_message("from the test"), Some(status), None)
    }

    fn retried(idempotent: bool, e: Error) -> bool {
        matches!(RetryTransient.on_error(&RetryState::new(idempotent), e), RetryResult::Continue(_))
    }

    #[test]
    fn throttling_and_server_errors_are_retried_where_a_repeat_is_safe() {
        assert!(retried(true, http_error(429, Code::ResourceExhausted)), "429 on a read");
        assert!(retried(true, http_error(503, Code::Unavailable)));
        assert!(retried(true, http_error(500, Code::Internal)));
        assert!(retried(true, Error::io("connection reset")));
        // An insert (POST) sent twice could make two resources, or fail the second time.
        assert!(!retried(false, http_error(429, Code::ResourceExhausted)), "not on a non-idempotent call");
        // Waits for another resource or needs a fresh read: the next reconcile's business.
        assert!(!retried(true, http_error(400, Code::FailedPrecondition)));
        assert!(!retried(true, http_error(412, Code::FailedPrecondition)));
        assert!(!retried(true, http_error(404, Code::NotFound)));
        assert!(!retried(true, http_error(501, Code::Unimplemented)));
    }

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(20) {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12], "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{id}");
            assert!(groups[2].starts_with('4') && "89ab".contains(&groups[3][..1]), "{id}");
        }
    }

    /// The policy as the clients use it: attempts are bounded, so a lasting outage still
    /// surfaces as the (retryable) error it is.
    #[test]
    fn retries_are_bounded() {
        let p = RetryTransient.with_attempt_limit(4);
        let mut state = RetryState::new(true);
        let mut outcomes = Vec::new();
        for attempt in 1..=4_u32 {
            state = state.set_attempt_count(attempt);
            outcomes.push(matches!(p.on_error(&state, http_error(429, Code::ResourceExhausted)), RetryResult::Continue(_)));
        }
        assert_eq!(outcomes, vec![true, true, true, false]);
    }
}
