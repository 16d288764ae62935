//! Compute errors -> `CloudError`, on the same terms as the ALB provider: retryable when sending
//! the same request later can succeed (throttling, 5xx, timeouts, dropped connections, a
//! resource that is not ready yet or still in use by one being taken apart), permanent when the
//! request itself is wrong (validation, permission, quota, a reference to something missing).
//!
//! Compute reports failures in two places: the HTTP answer to the call (`{"error":{"code":400,
//! "errors":[{"reason":"resourceNotReady",...}]}}`), and the `error` of an operation that ended
//! DONE (`error.errors[].code` such as `RESOURCE_IN_USE_BY_ANOTHER_RESOURCE`, plus
//! `httpErrorStatusCode`). Both are classified here, on plain values so the decision is
//! unit-testable without a server.

use cloudgate_provider::cloud::CloudError;
use serde_json::Value;

pub const SERVICE: &str = "compute";

/// `errors[].reason` values of an HTTP error answer that mean "not now" rather than "never".
const RETRYABLE_REASONS: &[&str] = &[
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "backendError",
    "internalError",
    // A referenced resource's own operation has not finished yet.
    "resourceNotReady",
    // Deleting something another resource still points at: the referrer is on its way out
    // (deletes run children first), so the next attempt succeeds.
    "resourceInUseByAnotherResource",
    // 412 on update/patch: the fingerprint went stale; apply re-reads and retries, and if even
    // that loses a race the next reconcile starts from a fresh read.
    "conditionNotMet",
];

const THROTTLING_REASONS: &[&str] = &["rateLimitExceeded", "userRateLimitExceeded"];

/// `error.errors[].code` values of a failed operation that are worth another try.
const RETRYABLE_OPERATION_CODES: &[&str] = &[
    "RATE_LIMIT_EXCEEDED",
    "RESOURCE_NOT_READY",
    "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
    "OPERATION_CANCELED",
];

/// 429 and 5xx, except 501: a method the service does not implement will not grow one.
fn retryable_status(s: u16) -> bool {
    s == 429 || (s >= 500 && s != 501)
}

/// How a call failed, without the client library's types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection refused/reset, DNS, a timeout, an answer that could not be read.
    Transport,
    /// Credentials could not be obtained; `transient` as the auth library judged it (a metadata
    /// server hiccup is, a malformed key file is not).
    Auth { transient: bool },
    /// The request could not be built or a body not (de)serialised: a bug, never retried.
    Client,
    /// Compute answered with an HTTP error.
    Http { status: Option<u16>, reason: Option<String> },
    /// An operation ended DONE with an error.
    Operation { http_status: Option<u16>, code: Option<String> },
}

impl FailureKind {
    pub fn is_retryable(&self) -> bool {
        match self {
            FailureKind::Transport => true,
            FailureKind::Auth { transient } => *transient,
            FailureKind::Client => false,
            FailureKind::Http { status, reason } => {
                status.is_some_and(retryable_status) || reason.as_deref().is_some_and(|r| RETRYABLE_REASONS.contains(&r))
            }
            FailureKind::Operation { http_status, code } => {
                http_status.is_some_and(retryable_status)
                    || code.as_deref().is_some_and(|c| RETRYABLE_OPERATION_CODES.contains(&c))
            }
        }
    }

    pub fn is_throttling(&self) -> bool {
        match self {
            FailureKind::Http { status, reason } => {
                *status == Some(429) || reason.as_deref().is_some_and(|r| THROTTLING_REASONS.contains(&r))
            }
            FailureKind::Operation { http_status, code } => *http_status == Some(429) || code.as_deref() == Some("RATE_LIMIT_EXCEEDED"),
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        match self {
            FailureKind::Http { status, reason } => *status == Some(404) || reason.as_deref() == Some("notFound"),
            FailureKind::Operation { http_status, code } => *http_status == Some(404) || code.as_deref() == Some("RESOURCE_NOT_FOUND"),
            _ => false,
        }
    }

    /// 412: the fingerprint sent with an update is stale.
    pub fn is_stale_fingerprint(&self) -> bool {
        matches!(self, FailureKind::Http { status: Some(412), .. })
            || matches!(self, FailureKind::Http { reason: Some(r), .. } if r == "conditionNotMet")
    }
}

/// Worth repeating at once, underneath a single call (where the request is safe to repeat):
/// throttling (429, or 403 `rateLimitExceeded` / `userRateLimitExceeded`), 5xx but 501, and
/// transport failures. Not the other retryable failures (`resourceNotReady`, in use, a stale
/// fingerprint): those wait for another resource or need a fresh read, which the next
/// reconcile does.
pub fn transient(kind: &FailureKind) -> bool {
    match kind {
        FailureKind::Transport => true,
        FailureKind::Http { status, .. } => kind.is_throttling() || status.is_some_and(|s| s >= 500 && s != 501),
        _ => false,
    }
}

/// A failed call, classified, with what call sites need to treat some failures as success
/// (404 on delete) or as a reason to re-read (412 on update).
#[derive(Debug)]
pub struct CallFailure {
    pub kind: FailureKind,
    pub error: CloudError,
}

impl CallFailure {
    pub fn new(operation: &str, kind: FailureKind, message: String) -> Self {
        let operation = operation.to_string();
        let error = if kind.is_retryable() {
            CloudError::Retryable { service: SERVICE, operation, message }
        } else {
            CloudError::Permanent { service: SERVICE, operation, message }
        };
        CallFailure { kind, error }
    }

    /// A failure of our own making (a spec that does not fit the API, a missing PEM).
    pub fn permanent(operation: &str, message: impl Into<String>) -> Self {
        Self::new(operation, FailureKind::Client, message.into())
    }

    pub fn is_not_found(&self) -> bool {
        self.kind.is_not_found()
    }

    pub fn is_stale_fingerprint(&self) -> bool {
        self.kind.is_stale_fingerprint()
    }
}

impl From<CallFailure> for CloudError {
    fn from(f: CallFailure) -> Self {
        f.error
    }
}

/// The `reason` and message of a Google REST error body
/// (`{"error":{"code":..,"message":..,"errors":[{"reason":..,"message":..}]}}`).
pub fn rest_error_details(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return (None, None) };
    let e = &v["error"];
    let first = &e["errors"][0];
    let reason = first["reason"].as_str().map(str::to_string);
    let message = e["message"].as_str().or_else(|| first["message"].as_str()).map(str::to_string);
    (reason, message)
}

/// Classifies an error of the client library.
pub fn classify(operation: &str, err: &google_cloud_gax::error::Error) -> CallFailure {
    let status = err.http_status_code();
    if status.is_some() || err.status().is_some() {
        // A body the library could parse is in `status()`, with `errors[].reason` carried as an
        // ErrorInfo detail; one it could not is in `http_payload()`.
        let (payload_reason, body_message) = err.http_payload().map(|p| rest_error_details(p)).unwrap_or_default();
        let reason = err
            .status()
            .and_then(|s| {
                s.details.iter().find_map(|d| match d {
                    google_cloud_gax::error::rpc::StatusDetails::ErrorInfo(i) if !i.reason.is_empty() => Some(i.reason.clone()),
                    _ => None,
                })
            })
            .or(payload_reason);
        let message = body_message
            .or_else(|| err.status().map(|s| s.message.clone()).filter(|m| !m.is_empty()))
            .unwrap_or_else(|| err.to_string());
        let message = match (&status, &reason) {
            (Some(s), Some(r)) => format!("{s} {r}: {message}"),
            (Some(s), None) => format!("{s}: {message}"),
            _ => message,
        };
        return CallFailure::new(operation, FailureKind::Http { status, reason }, message);
    }
    use std::error::Error as _;
    let kind = if let Some(c) = err.source().and_then(|s| s.downcast_ref::<google_cloud_gax::error::CredentialsError>()) {
        FailureKind::Auth { transient: c.is_transient() }
    } else if err.is_authentication() {
        FailureKind::Auth { transient: true }
    } else if err.is_timeout() || err.is_io() || err.is_connect() || err.is_transport() || err.is_exhausted() || err.is_deserialization() {
        // A body that does not parse is usually a proxy's error page or a truncated answer.
        FailureKind::Transport
    } else {
        FailureKind::Client
    };
    CallFailure::new(operation, kind, err.to_string())
}

/// Classifies the `error` of an operation that ended DONE (JSON of `compute.v1.Operation`);
/// `None` when it succeeded.
pub fn operation_failure(operation: &str, op: &Value) -> Option<CallFailure> {
    let errors = op["error"]["errors"].as_array().filter(|e| !e.is_empty());
    let http_status = op["httpErrorStatusCode"].as_u64().and_then(|s| u16::try_from(s).ok());
    if errors.is_none() && http_status.is_none_or(|s| s < 400) {
        return None;
    }
    let first = errors.and_then(|e| e.first());
    let code = first.and_then(|e| e["code"].as_str()).map(str::to_string);
    let message = first
        .and_then(|e| e["message"].as_str())
        .or_else(|| op["httpErrorMessage"].as_str())
        .unwrap_or("operation failed")
        .to_string();
    let target = op["targetLink"].as_str().unwrap_or_default();
    let message = match &code {
        Some(c) => format!("operation {} on {target}: {c}: {message}", op["name"].as_str().unwrap_or_default()),
        None => format!("operation {} on {target}: {message}", op["name"].as_str().unwrap_or_default()),
    };
    Some(CallFailure::new(operation, FailureKind::Operation { http_status, code }, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(status: u16, reason: &str) -> FailureKind {
        FailureKind::Http { status: Some(status), reason: Some(reason.to_string()) }
    }

    #[test]
    fn http_errors() {
        // Retryable: throttling, 5xx, not-ready / in-use, stale fingerprint.
        for k in [
            http(429, "rateLimitExceeded"),
            http(403, "rateLimitExceeded"),
            http(403, "userRateLimitExceeded"),
            http(500, "backendError"),
            http(503, "whatever"),
            http(400, "resourceNotReady"),
            http(400, "resourceInUseByAnotherResource"),
            http(412, "conditionNotMet"),
            FailureKind::Http { status: Some(502), reason: None },
        ] {
            assert!(k.is_retryable(), "{k:?}");
        }
        // Permanent: invalid requests, permissions, quota, references to missing resources.
        for k in [
            http(400, "invalid"),
            http(400, "badRequest"),
            http(403, "forbidden"),
            http(403, "quotaExceeded"),
            http(404, "notFound"),
            http(409, "alreadyExists"),
            http(501, "notImplemented"),
        ] {
            assert!(!k.is_retryable(), "{k:?}");
        }
        assert!(http(429, "rateLimitExceeded").is_throttling());
        assert!(http(403, "rateLimitExceeded").is_throttling());
        assert!(!http(400, "resourceNotReady").is_throttling());
        assert!(http(404, "notFound").is_not_found());
        assert!(http(412, "conditionNotMet").is_stale_fingerprint());
        assert!(!http(400, "invalid").is_stale_fingerprint());
    }

    #[test]
    fn only_throttling_server_and_transport_errors_are_repeated_at_once() {
        for k in [
            http(429, "rateLimitExceeded"),
            http(403, "rateLimitExceeded"),
            http(403, "userRateLimitExceeded"),
            http(503, "backendError"),
            http(500, "internalError"),
            FailureKind::Transport,
        ] {
            assert!(transient(&k), "{k:?}");
        }
        for k in [
            http(400, "resourceNotReady"),
            http(400, "resourceInUseByAnotherResource"),
            http(412, "conditionNotMet"),
            http(403, "forbidden"),
            http(403, "quotaExceeded"),
            http(404, "notFound"),
            http(501, "notImplemented"),
            FailureKind::Client,
        ] {
            assert!(!transient(&k), "{k:?}");
        }
    }

    #[test]
    fn other_failures() {
        assert!(FailureKind::Transport.is_retryable());
        assert!(FailureKind::Auth { transient: true }.is_retryable());
        assert!(!FailureKind::Auth { transient: false }.is_retryable());
        assert!(!FailureKind::Client.is_retryable());
    }

    #[test]
    fn rest_error_bodies() {
        let body = br#"{"error":{"code":400,"message":"The resource 'x' is not ready","status":"INVALID_ARGUMENT","errors":[{"message":"m","domain":"global","reason":"resourceNotReady"}]}}"#;
        let (reason, message) = rest_error_details(body);
        assert_eq!(reason.as_deref(), Some("resourceNotReady"));
        assert_eq!(message.as_deref(), Some("The resource 'x' is not ready"));
        assert_eq!(rest_error_details(b"<html>bad gateway</html>"), (None, None));
    }

    #[test]
    fn operation_errors() {
        let done = json!({"name": "op-1", "status": "DONE"});
        assert!(operation_failure("urlMaps.insert", &done).is_none());

        let quota = json!({"name": "op-2", "status": "DONE", "httpErrorStatusCode": 403, "httpErrorMessage": "FORBIDDEN",
            "targetLink": "https://x/compute/v1/projects/p/global/urlMaps/m",
            "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": "Quota 'URL_MAPS' exceeded."}]}});
        let f = operation_failure("urlMaps.insert", &quota).expect("failure");
        assert!(!f.error.is_retryable());
        assert!(f.error.to_string().contains("QUOTA_EXCEEDED"), "{}", f.error);

        let in_use = json!({"name": "op-3", "status": "DONE", "httpErrorStatusCode": 400,
            "error": {"errors": [{"code": "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", "message": "in use"}]}});
        assert!(operation_failure("backendServices.delete", &in_use).expect("failure").error.is_retryable());

        let exists = json!({"name": "op-4", "status": "DONE", "httpErrorStatusCode": 400,
            "error": {"errors": [{"code": "RESOURCE_ALREADY_EXISTS", "message": "exists"}]}});
        assert!(!operation_failure("networkEndpointGroups.attachNetworkEndpoints", &exists).expect("failure").error.is_retryable());

        let internal = json!({"name": "op-5", "status": "DONE", "httpErrorStatusCode": 503, "error": {"errors": [{"code": "X"}]}});
        assert!(operation_failure("urlMaps.update", &internal).expect("failure").error.is_retryable());
        let throttled = json!({"name": "op-6", "status": "DONE", "error": {"errors": [{"code": "RATE_LIMIT_EXCEEDED"}]}});
        let f = operation_failure("urlMaps.update", &throttled).expect("failure");
        assert!(f.error.is_retryable() && f.kind.is_throttling());
    }
}
