//! The I/O half of the provider contract: find what we own, apply the difference. Defined here
//! (with std futures only) so the controller drives every cloud the same way; implemented by the
//! SDK-backed parts of each provider crate.

use std::future::Future;
use std::pin::Pin;

use cloudgate_translate::model::ObjKey;
use cloudgate_translate::status::StatusAddress;
use cloudgate_translate::LoadBalancerPlan;

use crate::diff::{ChangeSet, ObservedResource};
use crate::{Provider, RenderContext};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whose resources: this cluster's, for this Gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub cluster_id: String,
    pub gateway: ObjKey,
}

/// Cloud clients identify cloudgate with this (AWS: `app/cloudgate` in the User-Agent).
pub const APP_NAME: &str = "cloudgate";

/// Errors from a cloud, classified so the controller knows whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Throttling, 5xx, timeouts, dropped connections, "still in progress": try again later.
    #[error("{service}.{operation}: {message} (will retry)")]
    Retryable { service: &'static str, operation: String, message: String },
    /// The request itself is wrong (validation, quota, permission): retrying the same request
    /// cannot succeed; surfaced in status.
    #[error("{service}.{operation}: {message}")]
    Permanent { service: &'static str, operation: String, message: String },
}

impl CloudError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CloudError::Retryable { .. })
    }
}

/// What apply achieved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplyOutcome {
    /// Mutating calls made.
    pub mutations: usize,
    /// Addresses clients use (load balancer DNS names or IPs), once known.
    pub addresses: Vec<StatusAddress>,
    /// Everything the plan needs exists and is active (load balancer provisioned, listeners
    /// and rules in place). `false` with no error means "still provisioning": reconcile again.
    pub ready: bool,
}

pub trait CloudProvider: Provider {
    /// Every resource tagged as owned by `owner` (only those: anything else is invisible).
    fn observe<'a>(&'a self, owner: &'a Owner, ctx: &'a RenderContext) -> BoxFuture<'a, Result<Vec<ObservedResource>, CloudError>>;

    /// Applies `changes` in order. `plan` gives what specs cannot carry (certificate PEM);
    /// `observed` is what `observe` returned, for resolving names to cloud ids.
    fn apply<'a>(
        &'a self,
        plan: Option<&'a LoadBalancerPlan>,
        changes: &'a ChangeSet,
        observed: &'a [ObservedResource],
        ctx: &'a RenderContext,
    ) -> BoxFuture<'a, Result<ApplyOutcome, CloudError>>;

    /// Addresses a route is reachable at by itself, read from what `observe` returned: VPC
    /// Lattice gives every route its own service and DNS name. Load balancers that serve every
    /// route at the Gateway's address have none.
    fn route_addresses(&self, _observed: &[ObservedResource]) -> Vec<(cloudgate_translate::model::RouteKey, String)> {
        Vec::new()
    }

    /// Whether addresses belong to routes rather than the Gateway (then a Gateway without routes
    /// is Programmed with no address, instead of waiting for one).
    fn addresses_per_route(&self) -> bool {
        false
    }
}
