//! Reconcile errors, classified: a retryable error goes back on the queue with backoff; a
//! permanent one is reported (status, Event, log) and waits for the object to change or for the
//! next resync, because retrying the same request cannot succeed.

use cloudgate_provider::cloud::CloudError;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// Optimistic concurrency lost (HTTP 409) after the retries the writer makes itself.
    #[error("{0} changed while it was being written; retrying")]
    Conflict(String),
    /// Leadership was lost mid-reconcile; the new leader redoes the work.
    #[error("no longer the leader")]
    NotLeader,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    Retryable,
    Permanent,
}

impl ErrorClass {
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl ReconcileError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ReconcileError::Kube(e) => kube_class(e),
            ReconcileError::Cloud(e) if e.is_retryable() => ErrorClass::Retryable,
            ReconcileError::Cloud(_) => ErrorClass::Permanent,
            ReconcileError::Conflict(_) | ReconcileError::NotLeader => ErrorClass::Retryable,
        }
    }
}

/// Kubernetes API errors: throttling, conflicts, server errors and transport failures pass;
/// a request the API server rejects (400, 403, 404 on a write, 422) does not. Permanent kube
/// errors are still retried with the longest backoff, since RBAC and webhooks get fixed
/// without the object changing.
pub fn kube_class(e: &kube::Error) -> ErrorClass {
    match e {
        kube::Error::Api(s) => match s.code {
            409 | 429 => ErrorClass::Retryable,
            c if c >= 500 => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        },
        _ => ErrorClass::Retryable,
    }
}

pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("x", "y").with_code(code)))
    }

    #[test]
    fn classification() {
        assert_eq!(ReconcileError::from(api(409)).class(), ErrorClass::Retryable);
        assert_eq!(ReconcileError::from(api(503)).class(), ErrorClass::Retryable);
        assert_eq!(ReconcileError::from(api(422)).class(), ErrorClass::Permanent);
        let throttled = CloudError::Retryable { service: "elbv2", operation: "X".into(), message: "Throttling".into() };
        assert_eq!(ReconcileError::from(throttled).class(), ErrorClass::Retryable);
        let bad = CloudError::Permanent { service: "elbv2", operation: "X".into(), message: "ValidationError".into() };
        assert_eq!(ReconcileError::from(bad).class(), ErrorClass::Permanent);
        assert!(is_status(&api(404), 404));
    }
}
