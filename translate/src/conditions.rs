//! Condition types and reasons exactly as Gateway API v1.5.1 spells them, and the one place
//! where desired conditions become `metav1.Condition`s (observedGeneration, lastTransitionTime).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;

/// Condition types.
pub mod kind {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const CONFLICTED: &str = "Conflicted";
    pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
}

/// Condition reasons.
pub mod reason {
    // shared
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const PENDING: &str = "Pending";
    pub const INVALID: &str = "Invalid";
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    // GatewayClass
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
    pub const UNSUPPORTED_VERSION: &str = "UnsupportedVersion";
    // Gateway
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const UNSUPPORTED_ADDRESS: &str = "UnsupportedAddress";
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
    pub const ADDRESS_NOT_USABLE: &str = "AddressNotUsable";
    pub const NO_RESOURCES: &str = "NoResources";
    // Listener
    pub const NO_CONFLICTS: &str = "NoConflicts";
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    // Route
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const INCOMPATIBLE_FILTERS: &str = "IncompatibleFilters";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
}

/// A condition as translate decides it; timestamps and generations are added by [`finalize`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cond {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    pub fn new(type_: &'static str, status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Cond { type_, status, reason, message: message.into() }
    }
    pub fn yes(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(type_, true, reason, message)
    }
    pub fn no(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(type_, false, reason, message)
    }
}

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Turns desired conditions into `metav1.Condition`s. `lastTransitionTime` is carried over
/// from `previous` when the condition's status did not change, so that an unchanged object
/// produces an identical status (and the status writer can skip the write).
pub fn finalize(conds: &[Cond], generation: Option<i64>, previous: &[Condition], now: &Time) -> Vec<Condition> {
    conds
        .iter()
        .map(|c| {
            let status = status_str(c.status);
            let ltt = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason.to_string(),
                message: truncate_message(&c.message),
                observed_generation: generation,
                last_transition_time: ltt,
            }
        })
        .collect()
}

/// metav1.Condition.message is limited to 32768 bytes by the API server.
fn truncate_message(m: &str) -> String {
    const MAX: usize = 32 * 1024;
    if m.len() <= MAX {
        return m.to_string();
    }
    let mut end = MAX - 3;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &m[..end])
}

/// Two condition lists are the same for writing purposes when they differ at most in
/// `lastTransitionTime`.
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_kept_when_status_unchanged() {
        let prev = finalize(&[Cond::yes(kind::ACCEPTED, reason::ACCEPTED, "ok")], Some(1), &[], &t("2026-01-01T00:00:00Z"));
        let next = finalize(
            &[Cond::yes(kind::ACCEPTED, reason::ACCEPTED, "still ok")],
            Some(2),
            &prev,
            &t("2026-02-01T00:00:00Z"),
        );
        assert_eq!(next[0].last_transition_time, t("2026-01-01T00:00:00Z"));
        assert_eq!(next[0].observed_generation, Some(2));
        let flipped = finalize(&[Cond::no(kind::ACCEPTED, reason::INVALID, "bad")], Some(3), &next, &t("2026-03-01T00:00:00Z"));
        assert_eq!(flipped[0].last_transition_time, t("2026-03-01T00:00:00Z"));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let m = "é".repeat(40_000);
        let out = truncate_message(&m);
        assert!(out.len() <= 32 * 1024);
        assert!(out.ends_with("..."));
    }
}
