//! SDK errors -> `CloudError`, for VPC Lattice's error codes.
//!
//! Retryable: throttling (`ThrottlingException`, 429), `InternalServerException` and other 5xx,
//! timeouts, dropped connections, and the "not yet" answers of Lattice's dependency checks:
//! `ConflictException` from a delete (a service network still has associations, a service is
//! still associated, a target group is still used by a rule: the change set deletes children
//! first, and on AWS those deletes finish asynchronously) and from the calls that take part in
//! a rule/listener reshuffle (`CreateRule`, `UpdateRule`, `BatchUpdateRule`, `CreateListener`,
//! `UpdateListener`: priority, port or target-group use that a later step of the same change
//! set frees) and from `CreateServiceNetworkServiceAssociation` (the service may still be
//! provisioning; a duplicate pair would be ours and observed). `ResourceNotFoundException`
//! outside a delete means what we observed is stale; a fresh observe fixes it, so it is
//! retryable too (deletes treat it as done).
//!
//! Permanent: `ValidationException`, `AccessDeniedException`, `ServiceQuotaExceededException`,
//! and `ConflictException` from creating a named resource or a VPC association: a name that
//! something without our tags already holds, or a VPC already associated with another service
//! network (Lattice allows one per VPC). Sending the same request again cannot succeed.

use aws_sdk_vpclattice::error::{ProvideErrorMetadata, SdkError};
use cloudgate_aws_runtime::errors::{server_side, Classifier};
use cloudgate_provider::cloud::CloudError;

pub use cloudgate_aws_runtime::errors::{CallFailure, FailureKind};

pub const CONFLICT: &str = "ConflictException";
pub const NOT_FOUND: &str = "ResourceNotFoundException";

const THROTTLING_CODES: &[&str] = &["ThrottlingException", "Throttling", "TooManyRequestsException", "TooManyRequests", "RequestLimitExceeded"];

const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "TooManyRequests",
    "RequestLimitExceeded",
    "InternalServerException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Operations whose `ConflictException` says "not yet" rather than "never".
fn conflict_is_transient(operation: &str) -> bool {
    operation.starts_with("Delete")
        || operation.starts_with("Update")
        || matches!(
            operation,
            "BatchUpdateRule" | "CreateRule" | "CreateListener" | "CreateServiceNetworkServiceAssociation" | "RegisterTargets" | "DeregisterTargets"
        )
}

fn retryable_code(operation: &str, code: Option<&str>, http_status: Option<u16>) -> bool {
    match code {
        Some(CONFLICT) => conflict_is_transient(operation),
        Some(NOT_FOUND) => true,
        Some(c) if RETRYABLE_CODES.contains(&c) => true,
        _ => server_side(http_status),
    }
}

/// VPC Lattice's answers, for the shared classification.
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

/// An error of ours (an observed resource we cannot address, a spec we cannot send).
pub fn permanent(operation: &str, message: impl Into<String>) -> CloudError {
    CloudError::Permanent { service: super::sdk::LATTICE, operation: operation.to_string(), message: message.into() }
}

pub fn retryable(operation: &str, message: impl Into<String>) -> CloudError {
    CloudError::Retryable { service: super::sdk::LATTICE, operation: operation.to_string(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_vpclattice::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_vpclattice::operation::delete_target_group::DeleteTargetGroupError;

    #[test]
    fn plain_classification() {
        let s = FailureKind::Service;
        for code in ["ThrottlingException", "TooManyRequestsException", "InternalServerException"] {
            assert!(is_retryable(s, "CreateService", Some(code), Some(400)), "{code}");
        }
        for code in ["ValidationException", "AccessDeniedException", "ServiceQuotaExceededException", "UnknownThing"] {
            assert!(!is_retryable(s, "CreateService", Some(code), Some(400)), "{code}");
            assert!(!is_retryable(s, "DeleteService", Some(code), Some(400)), "{code}");
        }
        // Conflict: "not yet" on deletes and rule/listener reshuffles, "never" on named creates.
        for op in [
            "DeleteServiceNetwork",
            "DeleteService",
            "DeleteTargetGroup",
            "UpdateRule",
            "BatchUpdateRule",
            "CreateRule",
            "CreateListener",
            "CreateServiceNetworkServiceAssociation",
        ] {
            assert!(is_retryable(s, op, Some(CONFLICT), Some(409)), "{op}");
        }
        for op in ["CreateService", "CreateServiceNetwork", "CreateTargetGroup", "CreateServiceNetworkVpcAssociation"] {
            assert!(!is_retryable(s, op, Some(CONFLICT), Some(409)), "{op}");
        }
        assert!(is_retryable(s, "UpdateRule", Some(NOT_FOUND), Some(404)));
        // 5xx and 429 are retryable whatever the code says; other 4xx are not.
        assert!(is_retryable(s, "GetRule", Some("Whatever"), Some(503)));
        assert!(is_retryable(s, "GetRule", None, Some(500)));
        assert!(is_retryable(s, "GetRule", None, Some(429)));
        assert!(!is_retryable(s, "GetRule", None, Some(403)));
        assert!(is_retryable(FailureKind::Timeout, "GetRule", None, None));
        assert!(is_retryable(FailureKind::Dispatch { user: false }, "GetRule", None, None));
        assert!(!is_retryable(FailureKind::Dispatch { user: true }, "GetRule", None, None));
        assert!(is_retryable(FailureKind::Response, "GetRule", None, Some(200)));
        assert!(!is_retryable(FailureKind::Construction, "GetRule", None, None));
        assert!(is_throttling(Some("ThrottlingException"), Some(429)));
        assert!(is_throttling(None, Some(429)));
        assert!(!is_throttling(Some(CONFLICT), Some(409)));
    }

    fn service(code: &str) -> SdkError<DeleteTargetGroupError, ()> {
        SdkError::service_error(DeleteTargetGroupError::generic(ErrorMetadata::builder().code(code).message("m").build()), ())
    }

    #[test]
    fn sdk_errors_map_to_cloud_errors() {
        let f = classify("vpc-lattice", "DeleteTargetGroup", &service("ThrottlingException"), Some(429));
        assert!(f.error.is_retryable() && f.throttled && f.is("ThrottlingException"));
        assert_eq!(f.error.to_string(), "vpc-lattice.DeleteTargetGroup: ThrottlingException: m (will retry)");

        let f = classify("vpc-lattice", "DeleteTargetGroup", &service(CONFLICT), Some(409));
        assert!(f.error.is_retryable() && !f.throttled, "a target group still used by a rule: later");
        let f = classify("vpc-lattice", "CreateTargetGroup", &service(CONFLICT), Some(409));
        assert!(!f.error.is_retryable(), "a name held by someone else: never");
        let f = classify("vpc-lattice", "CreateService", &service("ValidationException"), Some(400));
        assert!(!f.error.is_retryable());
        assert_eq!(f.error.to_string(), "vpc-lattice.CreateService: ValidationException: m");
        let f = classify("vpc-lattice", "CreateService", &service("AccessDeniedException"), Some(403));
        assert!(!f.error.is_retryable());
        let f = classify("vpc-lattice", "CreateService", &service("ServiceQuotaExceededException"), Some(402));
        assert!(!f.error.is_retryable());
        let f = classify("vpc-lattice", "GetService", &service("InternalServerException"), Some(500));
        assert!(f.error.is_retryable() && !f.throttled);
        let f = classify("vpc-lattice", "DeleteTargetGroup", &service(NOT_FOUND), Some(404));
        assert!(f.is(NOT_FOUND));

        let timeout: SdkError<DeleteTargetGroupError, ()> = SdkError::timeout_error("slow");
        assert!(classify("vpc-lattice", "X", &timeout, None).error.is_retryable());
        let io: SdkError<DeleteTargetGroupError, ()> = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        assert!(classify("vpc-lattice", "X", &io, None).error.is_retryable());
        let user: SdkError<DeleteTargetGroupError, ()> = SdkError::dispatch_failure(ConnectorError::user("bad uri".into()));
        assert!(!classify("vpc-lattice", "X", &user, None).error.is_retryable());
        let build: SdkError<DeleteTargetGroupError, ()> = SdkError::construction_failure("missing field");
        assert!(!classify("vpc-lattice", "X", &build, None).error.is_retryable());
    }
}
