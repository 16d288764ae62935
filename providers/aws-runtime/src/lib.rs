//! What the AWS providers (aws-alb, aws-lattice) share, so that a change to how cloudgate talks
//! to AWS is made once:
//!
//! - [`sdk`]: the SDK configuration (standard credential chain, rustls on ring, retry and
//!   timeouts) and [`sdk::call`], the one door every cloud call goes through (rate limiter,
//!   tracing span, call counter, error classification);
//! - [`errors`]: SDK errors -> [`CloudError`](cloudgate_provider::cloud::CloudError), retryable
//!   or permanent. Which error codes mean "not yet" differs per service, so each provider passes
//!   its own [`errors::Classifier`].
#![forbid(unsafe_code)]

pub mod errors;
pub mod sdk;

pub use errors::{CallFailure, Classifier, FailureKind};
pub use sdk::{call, load_sdk_config, SdkSettings};
