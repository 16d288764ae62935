//! cloudgate's own CustomResourceDefinitions, group `gateway.cloudgate.io`, version `v1alpha1`:
//!
//! - [`CloudGatewayParameters`] (cluster-scoped): the GatewayClass `parametersRef` target.
//! - [`HealthCheckPolicy`], [`BackendPolicy`] (namespaced, GEP-713 direct policies on Services).
//! - [`LatticeAccessLogPolicy`], [`LatticeAuthPolicy`] (namespaced, on Gateways and routes; VPC
//!   Lattice only).
//!
//! The schemas carry CEL rules (`x-kubernetes-validations`) so the API server rejects the common
//! mistakes at `kubectl apply` time instead of the controller reporting them later. The YAML
//! under `crds/` is generated from these types ([`crd_yamls`]); `tests/crds.rs` fails when the
//! two differ (`UPDATE_CRDS=1 cargo test -p cloudgate-crds` rewrites the files).
#![forbid(unsafe_code)]

pub mod backend;
pub mod common;
pub mod lattice;
pub mod parameters;

pub use backend::{
    BackendPolicy, BackendPolicySpec, BackendProtocolVersion, HealthCheckMatcher, HealthCheckPolicy, HealthCheckPolicySpec,
    HealthCheckProtocol, LoadBalancingAlgorithm,
};
pub use common::{Condition, ConditionStatus, LocalPolicyTargetReference, ParentReference, PolicyAncestorStatus, PolicyStatus};
pub use lattice::{LatticeAccessLogPolicy, LatticeAccessLogPolicySpec, LatticeAuthPolicy, LatticeAuthPolicySpec, LatticeAuthType};
pub use parameters::{CloudGatewayParameters, CloudGatewayParametersSpec, CloudProvider, ServiceNetwork, ServiceNetworkMode};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::CustomResourceExt;

/// The API group of every cloudgate CRD.
pub const GROUP: &str = "gateway.cloudgate.io";
/// The version every cloudgate CRD serves and stores.
pub const VERSION: &str = "v1alpha1";
/// Annotation on each CRD naming the cloudgate release that generated it (the same idea as
/// Gateway API's `gateway.networking.k8s.io/bundle-version`).
pub const BUNDLE_VERSION_ANNOTATION: &str = "gateway.cloudgate.io/bundle-version";

/// Every CRD, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        CloudGatewayParameters::crd(),
        HealthCheckPolicy::crd(),
        BackendPolicy::crd(),
        LatticeAccessLogPolicy::crd(),
        LatticeAuthPolicy::crd(),
    ];
    for crd in &mut crds {
        // kube lists `null` among the values of an optional enum; kubectl's client-side
        // validation rejects such a CRD ("unknown object type nil"). `nullable: true` already
        // says what the null meant, and these types never serialize a None as null.
        let mut v = serde_json::to_value(&*crd).expect("a CRD serializes to JSON");
        drop_null_enum_values(&mut v);
        *crd = serde_json::from_value(v).expect("still a CRD");
        crd.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(BUNDLE_VERSION_ANNOTATION.to_string(), env!("CARGO_PKG_VERSION").to_string());
    }
    crds
}

fn drop_null_enum_values(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Array(values)) = m.get_mut("enum") {
                values.retain(|x| !x.is_null());
            }
            m.values_mut().for_each(drop_null_enum_values);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_null_enum_values),
        _ => {}
    }
}

/// `(file name, YAML)` for each CRD, e.g. `("gateway.cloudgate.io_healthcheckpolicies.yaml", ..)`:
/// what `crds/*.yaml` holds and what `cloudgate crds` prints.
pub fn crd_yamls() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
            let body = serde_yaml::to_string(&crd).expect("a CRD serializes to YAML");
            let yaml = format!(
                "# Generated from crds/src by `UPDATE_CRDS=1 cargo test -p cloudgate-crds`; do not edit.\n---\n{body}"
            );
            (file, yaml)
        })
        .collect()
}
