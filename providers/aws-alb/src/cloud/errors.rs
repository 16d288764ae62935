//! SDK errors -> `CloudError`. Retryable: throttling, 5xx, timeouts, dropped connections, and the
//! "not yet" answers of dependent resources (DependencyViolation while ALB ENIs detach,
//! ResourceInUse while a listener still holds a certificate or a rule a target group), and
//! "already exists" answers to a create (see [`EXISTS_ON_CREATE`]).
//! Everything else — validation, quotas, permissions, not found — is permanent: sending the same
//! request again cannot succeed.

use aws_sdk_elasticloadbalancingv2::error::{ProvideErrorMetadata, SdkError};
use cloudgate_aws_runtime::errors::{server_side, Classifier};

pub use cloudgate_aws_runtime::errors::{CallFailure, FailureKind};

/// Error codes that mean "slow down" or "not now", across ELBv2, EC2 and ACM.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequests",
    "TooManyRequestsException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestExpired",
    "IDPCommunicationError",
    // A dependent object still exists (ENIs of a deleted ALB hold its security group).
    "DependencyViolation",
    // ELBv2: target group still used by a rule; ACM: certificate still on a listener.
    "ResourceInUse",
    "ResourceInUseException",
    // ELBv2 while a load balancer is still provisioning or changing.
    "IncorrectState",
    "IncorrectStateException",
];

/// "Already exists" answers to a create. These creates carry no client token, so when an
/// attempt's answer is lost (a timeout, a dropped connection) the SDK's retry meets the resource
/// the first attempt made. It carries our tags (they go in the create call), so the next
/// observe finds it and the reconcile carries on from there: a wait, not a failure. (Found by
/// the chaos test; as permanent errors these parked the Gateway until the next resync.) A name
/// held by something that is not ours keeps failing, with backoff, reported in status all along.
const EXISTS_ON_CREATE: &[&str] = &["DuplicateLoadBalancerName", "DuplicateTargetGroupName", "DuplicateListener", "InvalidGroup.Duplicate", "PriorityInUse"];

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequests",
    "TooManyRequestsException",
    "SlowDown",
    "EC2ThrottledException",
];

fn retryable_code(operation: &str, code: Option<&str>, http_status: Option<u16>) -> bool {
    code.is_some_and(|c| RETRYABLE_CODES.contains(&c) || (operation.starts_with("Create") && EXISTS_ON_CREATE.contains(&c))) || server_side(http_status)
}

/// ELBv2's, EC2's and ACM's answers, for the shared classification.
pub const CLASSIFIER: Classifier = Classifier { retryable_code, throttling_codes: THROTTLING_CODES };

/// The decision, on plain values so it is unit-testable.
pub fn is_retryable(kind: FailureKind, operation: &str, code: Option<&str>, http_status: Option<u16>) -> bool {
    CLASSIFIER.is_retryable(kind, operation, code, http_status)
}

pub fn is_throttling(code: Option<&str>, http_status: Option<u16>) -> bool {
    CLASSIFIER.is_throttling(code, http_status)
}

/// Classifies an SDK error; `http_status` is read by the caller from the raw response.
pub fn classify<E, R>(service: &'static str, operation: &str, err: &SdkError<E, R>, http_status: Option<u16>) -> CallFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    cloudgate_aws_runtime::errors::classify(&CLASSIFIER, service, operation, err, http_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_elasticloadbalancingv2::operation::delete_load_balancer::DeleteLoadBalancerError;

    #[test]
    fn plain_classification() {
        let s = FailureKind::Service;
        for code in ["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "DependencyViolation", "ResourceInUse"] {
            assert!(is_retryable(s, "X", Some(code), Some(400)), "{code}");
        }
        for code in ["ValidationError", "InvalidParameterValue", "LoadBalancerNotFound", "TooManyLoadBalancers", "AccessDenied", "UnauthorizedOperation", "DuplicateLoadBalancerName", "PriorityInUse"] {
            assert!(!is_retryable(s, "X", Some(code), Some(400)), "{code}");
        }
        // 5xx and 429 are retryable whatever the code says.
        assert!(is_retryable(s, "X", Some("Whatever"), Some(503)));
        assert!(is_retryable(s, "X", None, Some(500)));
        assert!(is_retryable(s, "X", None, Some(429)));
        assert!(!is_retryable(s, "X", None, Some(404)));
        assert!(is_retryable(FailureKind::Timeout, "X", None, None));
        assert!(is_retryable(FailureKind::Dispatch { user: false }, "X", None, None));
        assert!(!is_retryable(FailureKind::Dispatch { user: true }, "X", None, None));
        assert!(is_retryable(FailureKind::Response, "X", None, Some(200)));
        assert!(!is_retryable(FailureKind::Construction, "X", None, None));
        // "Already exists" from a create whose first attempt's answer was lost: a wait.
        for (op, code) in [("CreateLoadBalancer", "DuplicateLoadBalancerName"), ("CreateSecurityGroup", "InvalidGroup.Duplicate"), ("CreateRule", "PriorityInUse"), ("CreateListener", "DuplicateListener")] {
            assert!(is_retryable(s, op, Some(code), Some(400)), "{op} {code}");
        }
        assert!(!is_retryable(s, "SetRulePriorities", Some("PriorityInUse"), Some(400)));
        assert!(is_throttling(Some("RequestLimitExceeded"), Some(503)));
        assert!(!is_throttling(Some("DependencyViolation"), Some(400)));
    }

    fn service(code: &str) -> SdkError<DeleteLoadBalancerError, ()> {
        SdkError::service_error(DeleteLoadBalancerError::generic(ErrorMetadata::builder().code(code).message("m").build()), ())
    }

    #[test]
    fn sdk_errors_map_to_cloud_errors() {
        let f = classify("elbv2", "DeleteLoadBalancer", &service("Throttling"), Some(400));
        assert!(f.error.is_retryable() && f.throttled && f.is("Throttling"));
        assert_eq!(f.error.to_string(), "elbv2.DeleteLoadBalancer: Throttling: m (will retry)");

        let f = classify("elbv2", "DeleteLoadBalancer", &service("ValidationError"), Some(400));
        assert!(!f.error.is_retryable() && !f.throttled);
        let f = classify("ec2", "DeleteSecurityGroup", &service("DependencyViolation"), Some(400));
        assert!(f.error.is_retryable() && !f.throttled);
        let f = classify("elbv2", "DeleteLoadBalancer", &service("LoadBalancerNotFound"), Some(400));
        assert!(!f.error.is_retryable() && f.is("LoadBalancerNotFound"));

        let timeout: SdkError<DeleteLoadBalancerError, ()> = SdkError::timeout_error("slow");
        assert!(classify("elbv2", "X", &timeout, None).error.is_retryable());
        let io: SdkError<DeleteLoadBalancerError, ()> = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        assert!(classify("elbv2", "X", &io, None).error.is_retryable());
        let user: SdkError<DeleteLoadBalancerError, ()> = SdkError::dispatch_failure(ConnectorError::user("bad uri".into()));
        assert!(!classify("elbv2", "X", &user, None).error.is_retryable());
        let build: SdkError<DeleteLoadBalancerError, ()> = SdkError::construction_failure("missing field");
        assert!(!classify("elbv2", "X", &build, None).error.is_retryable());
    }
}
