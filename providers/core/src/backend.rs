//! How the load balancer talks to the endpoints of a Service, in provider-neutral terms. They
//! come from cloudgate's `BackendPolicy` (resolved by the controller, which also reports on the
//! policy whether a provider can apply them); renderers read them from
//! [`RenderContext::backend_settings`](crate::RenderContext) by Service.

use serde::Serialize;

/// The protocol spoken to the endpoints of an HTTPRoute's backends. A GRPCRoute's backends
/// always speak gRPC, whatever the policy says (the route kind decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BackendProtocolVersion {
    Http1,
    Http2,
    Grpc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum LoadBalancingAlgorithm {
    RoundRobin,
    LeastRequest,
    Random,
}

/// Unset fields keep the provider's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BackendSettings {
    pub protocol_version: Option<BackendProtocolVersion>,
    /// Seconds a removed endpoint keeps serving in-flight requests.
    pub deregistration_delay_seconds: Option<u32>,
    /// Seconds a new endpoint ramps up its share of traffic; 0 turns slow start off.
    pub slow_start_seconds: Option<u32>,
    pub algorithm: Option<LoadBalancingAlgorithm>,
}
