//! SDK errors -> `CloudError`. The shape of a failure (timeout, dropped connection, an error
//! code from the service...) is the same for every AWS service; which codes are worth another
//! try is not (a `ConflictException` from a Lattice delete is "not yet", a `DuplicateListener`
//! from an ELBv2 create is "already done"), so the decision comes from the provider's
//! [`Classifier`].

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use cloudgate_provider::cloud::CloudError;

/// How a call failed, without the SDK's types (what the classification looks at).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The request could not be built (missing field, bad endpoint): a bug or bad config.
    Construction,
    Timeout,
    /// Connection refused/reset, DNS failure... `user` = the request itself was unsendable.
    Dispatch { user: bool },
    /// An answer that could not be parsed (a proxy's HTML page, truncated body).
    Response,
    /// The service answered with an error code.
    Service,
}

/// A provider's answers to "is this worth another try?" and "is this throttling?".
#[derive(Clone, Copy, Debug)]
pub struct Classifier {
    /// Whether a service error (`code` as the service spelled it, the HTTP status) from
    /// `operation` may succeed when sent again. Not asked for the other [`FailureKind`]s.
    pub retryable_code: fn(operation: &str, code: Option<&str>, http_status: Option<u16>) -> bool,
    /// Error codes that mean "slow down" (counted apart in metrics).
    pub throttling_codes: &'static [&'static str],
}

impl Classifier {
    /// The decision, on plain values so it is unit-testable. Timeouts, dropped connections and
    /// unreadable answers are always worth another try; a request that cannot be built never is.
    pub fn is_retryable(&self, kind: FailureKind, operation: &str, code: Option<&str>, http_status: Option<u16>) -> bool {
        match kind {
            FailureKind::Construction => false,
            FailureKind::Timeout => true,
            FailureKind::Dispatch { user } => !user,
            FailureKind::Response => true,
            FailureKind::Service => (self.retryable_code)(operation, code, http_status),
        }
    }

    pub fn is_throttling(&self, code: Option<&str>, http_status: Option<u16>) -> bool {
        code.is_some_and(|c| self.throttling_codes.contains(&c)) || http_status == Some(429)
    }
}

/// 5xx and 429 are worth another try whatever the code says.
pub fn server_side(http_status: Option<u16>) -> bool {
    http_status.is_some_and(|s| s >= 500 || s == 429)
}

/// A failed call, classified, with the service's error code kept for call sites that treat
/// some codes as success (not found on delete, duplicate on authorize).
#[derive(Debug)]
pub struct CallFailure {
    pub code: Option<String>,
    pub throttled: bool,
    pub error: CloudError,
}

impl CallFailure {
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    pub fn is_any(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
}

impl From<CallFailure> for CloudError {
    fn from(f: CallFailure) -> Self {
        f.error
    }
}

pub fn kind_of<E, R>(err: &SdkError<E, R>) -> FailureKind {
    match err {
        SdkError::ConstructionFailure(_) => FailureKind::Construction,
        SdkError::TimeoutError(_) => FailureKind::Timeout,
        SdkError::DispatchFailure(d) => FailureKind::Dispatch { user: d.is_user() },
        SdkError::ResponseError(_) => FailureKind::Response,
        _ => FailureKind::Service,
    }
}

/// Classifies an SDK error; `http_status` is read by the caller from the raw response.
pub fn classify<E, R>(c: &Classifier, service: &'static str, operation: &str, err: &SdkError<E, R>, http_status: Option<u16>) -> CallFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let kind = kind_of(err);
    let code = err.code().map(str::to_string);
    let message = match (err.code(), err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => DisplayErrorContext(err).to_string(),
    };
    let throttled = c.is_throttling(code.as_deref(), http_status);
    let retry = c.is_retryable(kind, operation, code.as_deref(), http_status);
    let operation = operation.to_string();
    let error = if retry { CloudError::Retryable { service, operation, message } } else { CloudError::Permanent { service, operation, message } };
    CallFailure { code, throttled, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &str, _: Option<&str>, _: Option<u16>) -> bool {
        false
    }

    #[test]
    fn transport_failures_are_decided_here_service_errors_by_the_provider() {
        let c = Classifier { retryable_code: never, throttling_codes: &["SlowDown"] };
        assert!(c.is_retryable(FailureKind::Timeout, "X", None, None));
        assert!(c.is_retryable(FailureKind::Dispatch { user: false }, "X", None, None));
        assert!(!c.is_retryable(FailureKind::Dispatch { user: true }, "X", None, None));
        assert!(c.is_retryable(FailureKind::Response, "X", None, Some(200)));
        assert!(!c.is_retryable(FailureKind::Construction, "X", None, None));
        assert!(!c.is_retryable(FailureKind::Service, "X", Some("InternalError"), Some(500)), "the provider's answer, even for a 500");
        assert!(c.is_throttling(Some("SlowDown"), Some(503)) && c.is_throttling(None, Some(429)) && !c.is_throttling(Some("Other"), Some(400)));
        assert!(server_side(Some(503)) && server_side(Some(429)) && !server_side(Some(404)) && !server_side(None));
    }
}
