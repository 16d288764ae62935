//! Shared by the cloud I/O halves of every provider (ALB, Lattice, GCP): one rate limiter, one
//! call counter implementation, and how timeouts are overridden. Kept out of
//! `cloudgate-provider` because it needs tokio, and that crate stays runtime-free.
#![forbid(unsafe_code)]

pub mod limiter;
pub mod metrics;
pub mod timeouts;

pub use limiter::RateLimiter;
pub use metrics::{CallCount, CallCounter};
