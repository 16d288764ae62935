//! GatewayClass status: Accepted, SupportedVersion and supportedFeatures.

use gateway_api::experimental::gatewayclasses::{GatewayClass, GatewayClassStatus, GatewayClassStatusSupportedFeatures};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::capabilities::Capabilities;
use crate::conditions::{finalize, kind, reason, Cond};

/// The Gateway API bundle this build implements. Installed CRDs of the same minor version are
/// supported.
pub const SUPPORTED_BUNDLE_VERSION: &str = "v1.5.1";

pub fn version_supported(bundle_version: &str) -> bool {
    let minor = |v: &str| v.trim_start_matches('v').splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    minor(bundle_version) == minor(SUPPORTED_BUNDLE_VERSION)
}

/// `parameters`: `Ok(())` when the class's parametersRef (if any) resolved, `Err(why)` if not.
pub fn class_status(
    class: &GatewayClass,
    caps: &Capabilities,
    bundle_version: Option<&str>,
    parameters: Result<(), String>,
    now: &Time,
) -> GatewayClassStatus {
    let accepted = match parameters {
        Ok(()) => Cond::yes(kind::ACCEPTED, reason::ACCEPTED, format!("Handled by cloudgate ({} provider)", caps.provider)),
        Err(why) => Cond::no(kind::ACCEPTED, reason::INVALID_PARAMETERS, why),
    };
    let version = match bundle_version {
        Some(v) if version_supported(v) => {
            Cond::yes(kind::SUPPORTED_VERSION, reason::SUPPORTED_VERSION, format!("Gateway API {v} is supported"))
        }
        Some(v) => Cond::no(
            kind::SUPPORTED_VERSION,
            reason::UNSUPPORTED_VERSION,
            format!("Gateway API {v} is installed; cloudgate supports {SUPPORTED_BUNDLE_VERSION}"),
        ),
        None => Cond::no(
            kind::SUPPORTED_VERSION,
            reason::UNSUPPORTED_VERSION,
            "The Gateway API CRDs carry no gateway.networking.k8s.io/bundle-version annotation",
        ),
    };
    let prev = class.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    GatewayClassStatus {
        conditions: Some(finalize(&[accepted, version], class.metadata.generation, prev, now)),
        supported_features: Some(
            caps.supported_features().into_iter().map(|name| GatewayClassStatusSupportedFeatures { name }).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_minor_is_supported() {
        assert!(version_supported("v1.5.1"));
        assert!(version_supported("v1.5.0"));
        assert!(!version_supported("v1.4.0"));
        assert!(!version_supported("v2.5.1"));
    }
}
