//! cloudgate's Service policies in Compute terms: a HealthCheckPolicy becomes the health check
//! of the Service's backend service, a BackendPolicy the backend service's protocol,
//! `connectionDraining` and `localityLbPolicy`.
//!
//! The `*_support` functions are what the controller asks before it hands settings to render
//! (the pure provider and the cloud provider both answer with them); what they refuse is
//! reported on the policy with their reason, and render never sees it.

use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm};
use cloudgate_provider::health::{self, HealthCheck, HealthCheckProtocol};
use cloudgate_translate::model::RouteKind;
use cloudgate_translate::plan::Backend;

use crate::spec::{ConnectionDraining, HealthCheckProbe, HealthCheckSpec};
use crate::PROVIDER;

/// Compute's health check interval and timeout when a check does not set them.
const DEFAULT_INTERVAL: u32 = 5;
const DEFAULT_TIMEOUT: u32 = 5;

/// What a Compute health check can do (compute.v1 `HealthCheck`): every protocol cloudgate
/// names, a request path on the HTTP kinds, 1-300 s interval and timeout with the timeout not
/// above the interval, thresholds 1-10. Compute counts HTTP 200 (and gRPC SERVING) as healthy
/// and takes no status code list.
pub fn health_check_support(hc: &HealthCheck) -> Result<(), String> {
    let protocol = hc.protocol.unwrap_or(HealthCheckProtocol::Tcp);
    let http = sends_requests(protocol);
    if let (Some(path), false) = (&hc.path, http) {
        return Err(format!(
            "path {path}: {PROVIDER} sends a request path on HTTP, HTTPS and HTTP2 checks only, and this check is {} \
             (TCP to the serving port unless protocol says otherwise)",
            type_name(protocol)
        ));
    }
    if let Some(codes) = &hc.http_codes {
        if codes.trim() != "200" {
            return Err(format!("matcher.httpCodes {codes}: {PROVIDER} health checks count HTTP 200 as healthy and take no other codes"));
        }
        if !http {
            return Err(format!("matcher.httpCodes applies to HTTP, HTTPS and HTTP2 checks; this check is {}", type_name(protocol)));
        }
    }
    if hc.grpc_codes.is_some() {
        return Err(format!("matcher.grpcCodes: {PROVIDER} gRPC health checks count SERVING (grpc.health.v1) as healthy and take no status codes"));
    }
    health::in_range("intervalSeconds", hc.interval_seconds, 1, 300, PROVIDER)?;
    health::in_range("timeoutSeconds", hc.timeout_seconds, 1, 300, PROVIDER)?;
    health::in_range("healthyThreshold", hc.healthy_threshold, 1, 10, PROVIDER)?;
    health::in_range("unhealthyThreshold", hc.unhealthy_threshold, 1, 10, PROVIDER)?;
    let interval = hc.interval_seconds.unwrap_or(DEFAULT_INTERVAL);
    let timeout = hc.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT);
    if timeout > interval {
        return Err(format!("timeoutSeconds {timeout} must not exceed intervalSeconds {interval} ({PROVIDER}'s default of 5 where unset)"));
    }
    Ok(())
}

/// What a Compute backend service can take from a BackendPolicy: connection draining 0-3600 s
/// and the locality policies ROUND_ROBIN, LEAST_REQUEST and RANDOM (every flavour cloudgate
/// builds is a managed load balancer, which has them). compute.v1 has no slow start.
pub fn backend_settings_support(s: &BackendSettings) -> Result<(), String> {
    health::in_range("deregistrationDelaySeconds", s.deregistration_delay_seconds, 0, 3600, PROVIDER)?;
    if let Some(v) = s.slow_start_seconds.filter(|v| *v != 0) {
        return Err(format!("slowStartSeconds {v}: {PROVIDER} backend services have no slow start (compute.v1); only 0 (off) applies"));
    }
    Ok(())
}

/// The health check of a Service's backend service: cloudgate's default (TCP to the serving
/// port: Kubernetes readiness already decides which endpoints are in the NEG, so this only has
/// to prove the proxies can reach them, without assuming a path that answers 200, the classic
/// cause of "unhealthy" GCE backends) with a HealthCheckPolicy's settings over it. The
/// description is the caller's.
pub(crate) fn health_check_spec(hc: Option<&HealthCheck>, region: Option<String>) -> HealthCheckSpec {
    let hc = hc.cloned().unwrap_or_default();
    let protocol = hc.protocol.unwrap_or(HealthCheckProtocol::Tcp);
    let http = sends_requests(protocol);
    let probe = HealthCheckProbe {
        port_specification: if hc.port.is_some() { "USE_FIXED_PORT" } else { "USE_SERVING_PORT" },
        port: hc.port,
        request_path: http.then(|| hc.path.clone().unwrap_or_else(|| "/".into())),
    };
    let mut spec = HealthCheckSpec {
        type_: type_name(protocol),
        check_interval_sec: hc.interval_seconds,
        timeout_sec: hc.timeout_seconds,
        healthy_threshold: hc.healthy_threshold,
        unhealthy_threshold: hc.unhealthy_threshold,
        tcp_health_check: None,
        http_health_check: None,
        https_health_check: None,
        http2_health_check: None,
        grpc_health_check: None,
        region,
        description: String::new(),
    };
    let block = match protocol {
        HealthCheckProtocol::Tcp => &mut spec.tcp_health_check,
        HealthCheckProtocol::Http => &mut spec.http_health_check,
        HealthCheckProtocol::Https => &mut spec.https_health_check,
        HealthCheckProtocol::Http2 => &mut spec.http2_health_check,
        HealthCheckProtocol::Grpc => &mut spec.grpc_health_check,
    };
    *block = Some(probe);
    spec
}

/// The HTTP kinds of check, the ones with a request path.
fn sends_requests(p: HealthCheckProtocol) -> bool {
    matches!(p, HealthCheckProtocol::Http | HealthCheckProtocol::Https | HealthCheckProtocol::Http2)
}

fn type_name(p: HealthCheckProtocol) -> &'static str {
    match p {
        HealthCheckProtocol::Tcp => "TCP",
        HealthCheckProtocol::Http => "HTTP",
        HealthCheckProtocol::Https => "HTTPS",
        HealthCheckProtocol::Http2 => "HTTP2",
        HealthCheckProtocol::Grpc => "GRPC",
    }
}

/// What the load balancer speaks to the endpoints. A GRPCRoute's backends speak gRPC, which a
/// managed load balancer carries as `H2C` (Compute's `GRPC` protocol is for Traffic Director's
/// target gRPC proxies, and its `HTTP2` is HTTP/2 over TLS, which these backends do not serve;
/// TLS to backends would need BackendTLSPolicy). An HTTPRoute's speak what a BackendPolicy
/// says (HTTP2 and GRPC both `H2C`), else `H2C` for Service ports with appProtocol
/// `kubernetes.io/h2c`, else HTTP/1.1.
pub(crate) fn backend_protocol(b: &Backend, s: Option<&BackendSettings>) -> &'static str {
    if b.used_by == RouteKind::Grpc {
        return "H2C";
    }
    match s.and_then(|s| s.protocol_version) {
        Some(BackendProtocolVersion::Http1) => "HTTP",
        Some(BackendProtocolVersion::Http2 | BackendProtocolVersion::Grpc) => "H2C",
        None if b.app_protocol.as_deref() == Some("kubernetes.io/h2c") => "H2C",
        None => "HTTP",
    }
}

/// Connection draining a policy sets; absent at Compute's default (0, off).
pub(crate) fn connection_draining(s: Option<&BackendSettings>) -> Option<ConnectionDraining> {
    let v = s?.deregistration_delay_seconds.filter(|v| *v != 0)?;
    Some(ConnectionDraining { draining_timeout_sec: v })
}

/// The locality policy a policy sets; absent at Compute's default (ROUND_ROBIN, as cloudgate
/// sets no session affinity).
pub(crate) fn locality_lb_policy(s: Option<&BackendSettings>) -> Option<&'static str> {
    match s?.algorithm? {
        LoadBalancingAlgorithm::RoundRobin => None,
        LoadBalancingAlgorithm::LeastRequest => Some("LEAST_REQUEST"),
        LoadBalancingAlgorithm::Random => Some("RANDOM"),
    }
}
