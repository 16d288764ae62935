//! Health check settings for the endpoints of a Service, in provider-neutral terms. They come
//! from cloudgate's `HealthCheckPolicy` (resolved by the controller, which also reports on the
//! policy whether a provider can apply them); renderers read them from
//! [`RenderContext::health_checks`](crate::RenderContext) by Service.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HealthCheckProtocol {
    Http,
    Https,
    Http2,
    Grpc,
    Tcp,
}

/// Unset fields keep the provider's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub protocol: Option<HealthCheckProtocol>,
    pub path: Option<String>,
    pub port: Option<u16>,
    pub interval_seconds: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub healthy_threshold: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    /// HTTP status codes counted healthy (`200`, `200,204`, `200-399`).
    pub http_codes: Option<String>,
    /// gRPC status codes counted healthy.
    pub grpc_codes: Option<String>,
}

/// Checks that an optional value lies in `lo..=hi`, naming the field in the error.
pub fn in_range(field: &str, v: Option<u32>, lo: u32, hi: u32, provider: &str) -> Result<(), String> {
    match v {
        Some(v) if !(lo..=hi).contains(&v) => Err(format!("{field} {v}: {provider} takes {lo} to {hi}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_field() {
        assert!(in_range("intervalSeconds", None, 5, 300, "x").is_ok());
        assert!(in_range("intervalSeconds", Some(5), 5, 300, "x").is_ok());
        assert_eq!(in_range("intervalSeconds", Some(1), 5, 300, "aws-lattice").unwrap_err(), "intervalSeconds 1: aws-lattice takes 5 to 300");
    }
}
