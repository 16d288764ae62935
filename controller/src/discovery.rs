//! What the cluster serves: which Gateway API kinds are installed (a watch on a kind whose CRD
//! is missing would fail forever), in which version, and the bundle version the CRDs carry
//! (GatewayClass `SupportedVersion` reads it).

use std::collections::BTreeMap;

use cloudgate_translate::model::RouteKind;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource};
use kube::Client;

use crate::index::Watched;

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
pub const BUNDLE_VERSION_ANNOTATION: &str = "gateway.networking.k8s.io/bundle-version";

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("API discovery failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Gateway API CRDs are not installed (no {GATEWAY_GROUP} {0}); install them (e.g. the v1.5.1 experimental channel) and restart")]
    MissingCrd(&'static str),
}

#[derive(Debug)]
pub struct Discovered {
    /// What to watch, with the API version to use.
    pub watches: BTreeMap<Watched, ApiResource>,
    /// Kinds not installed, for the startup log.
    pub missing: Vec<&'static str>,
    pub bundle_version: Option<String>,
}

impl Discovered {
    pub fn route_apis(&self) -> BTreeMap<RouteKind, ApiResource> {
        self.watches
            .iter()
            .filter_map(|(w, ar)| match w {
                Watched::Route(k) => Some((*k, ar.clone())),
                _ => None,
            })
            .collect()
    }
}

pub async fn discover(client: &Client) -> Result<Discovered, DiscoveryError> {
    let mut watches = BTreeMap::new();
    watches.insert(Watched::Service, ApiResource::erase::<Service>(&()));
    watches.insert(Watched::EndpointSlice, ApiResource::erase::<EndpointSlice>(&()));
    watches.insert(Watched::Secret, ApiResource::erase::<Secret>(&()));
    watches.insert(Watched::Namespace, ApiResource::erase::<Namespace>(&()));

    let group = match kube::discovery::group(client, GATEWAY_GROUP).await {
        Ok(g) => Some(g),
        Err(kube::Error::Discovery(_)) => None,
        Err(e) if crate::errors::is_status(&e, 404) => None,
        Err(e) => return Err(e.into()),
    };
    let mut missing = Vec::new();
    let kinds: [(Watched, &'static str, bool); 8] = [
        (Watched::GatewayClass, "GatewayClass", true),
        (Watched::Gateway, "Gateway", true),
        (Watched::Route(RouteKind::Http), "HTTPRoute", false),
        (Watched::Route(RouteKind::Grpc), "GRPCRoute", false),
        (Watched::Route(RouteKind::Tls), "TLSRoute", false),
        (Watched::Route(RouteKind::Tcp), "TCPRoute", false),
        (Watched::ReferenceGrant, "ReferenceGrant", false),
        (Watched::BackendTlsPolicy, "BackendTLSPolicy", false),
    ];
    // Each kind at its most stable served version: the group's preferred version (v1) does not
    // serve kinds that are still alpha (TCPRoute is v1alpha2 only).
    let served = group.as_ref().map(|g| g.resources_by_stability()).unwrap_or_default();
    for (w, kind, required) in kinds {
        match served.iter().find(|(ar, _)| ar.kind == kind).cloned() {
            Some((ar, _)) => {
                watches.insert(w, ar);
            }
            None if required => return Err(DiscoveryError::MissingCrd(kind)),
            None => missing.push(kind),
        }
    }
    // cloudgate's own CRDs are optional: without them classes cannot take parameters (and say
    // so in their status), everything else works from the flags.
    let ours = match kube::discovery::group(client, cloudgate_crds::GROUP).await {
        Ok(g) => Some(g),
        Err(kube::Error::Discovery(_)) => None,
        Err(e) if crate::errors::is_status(&e, 404) => None,
        Err(e) => return Err(e.into()),
    };
    let served = ours.as_ref().map(|g| g.resources_by_stability()).unwrap_or_default();
    let policies = crate::policies::PolicyKind::ALL.map(|k| (Watched::Policy(k), k.kind()));
    for (w, kind) in std::iter::once((Watched::ClassParameters, crate::class_params::PARAMETERS_KIND)).chain(policies) {
        match served.iter().find(|(ar, _)| ar.kind == kind) {
            Some((ar, _)) => {
                watches.insert(w, ar.clone());
            }
            None => missing.push(kind),
        }
    }
    Ok(Discovered { watches, missing, bundle_version: bundle_version(client).await })
}

/// The bundle version annotation of the Gateway CRD (all CRDs of one install carry the same).
/// Reading CRDs needs `get` on customresourcedefinitions; without it the version is unknown and
/// GatewayClasses say so in `SupportedVersion`.
async fn bundle_version(client: &Client) -> Option<String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.get_opt(&format!("gateways.{GATEWAY_GROUP}")).await {
        Ok(crd) => crd?.metadata.annotations?.get(BUNDLE_VERSION_ANNOTATION).cloned(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the Gateway CRD for its bundle-version annotation");
            None
        }
    }
}
