//! AWS Application Load Balancer provider: a Gateway becomes an ALB with its security group,
//! listeners, listener rules, IP target groups and imported ACM certificates.
//!
//! Module layout (the pure half never touches the SDK, so it is testable without a cloud):
//!
//! - [`render`] (pure): capabilities, `AlbProvider::render`, and the spec structs (named after
//!   the ELBv2 / EC2 / ACM API fields) that are the one vocabulary of desired and observed specs.
//! - [`cloud`] (I/O): [`AlbCloud`], the `CloudProvider` implementation over aws-sdk-elasticloadbalancingv2,
//!   aws-sdk-ec2 and aws-sdk-acm.
//!   - `cloud::sdk`: SDK configuration (rustls + ring HTTPS client, standard retry mode with
//!     jittered backoff, timeouts; endpoint, region and credentials from the standard AWS
//!     environment, so `AWS_ENDPOINT_URL` points it at moto or LocalStack) and the one wrapper
//!     every call goes through: rate limiter, tracing span, call counter, error classification.
//!   - `cloud::limiter`: [`RateLimiter`], the client-side token bucket shared by all calls.
//!   - `cloud::metrics`: [`CallCounter`], calls by service / operation / outcome.
//!   - `cloud::errors`: SDK errors -> `CloudError::Retryable` / `Permanent`.
//!   - `cloud::convert`: spec structs <-> SDK types, both directions (pure).
//!   - `cloud::observe`: find what this Gateway owns by tags, read it back as specs.
//!   - `cloud::apply`: execute a `ChangeSet` with minimal mutating calls.
#![forbid(unsafe_code)]

pub mod cloud;
pub mod render;

pub use cloud::limiter::RateLimiter;
pub use cloud::metrics::{CallCount, CallCounter};
pub use cloud::{AlbCloud, CloudOptions};
pub use render::*;
