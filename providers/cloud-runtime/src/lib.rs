//! Shared by the cloud I/O halves of every provider (ALB, Lattice, GCP): one rate limiter, one
//! call counter implementation, how timeouts are overridden, and a cache of values read. Kept out of
//! `cloudgate-provider` because it needs tokio, and that crate stays runtime-free.
#![forbid(unsafe_code)]

pub mod limiter;
pub mod metrics;
pub mod timeouts;
pub mod ttl_cache;

pub use limiter::RateLimiter;
pub use metrics::{CallCount, CallCounter};
pub use ttl_cache::TtlCache;
