//! backendRef resolution: kind, ReferenceGrant, Service and port existence, then endpoints
//! from the Service's EndpointSlices.

use crate::conditions::reason;
use crate::grants;
use crate::model::{BackendRef, ObjKey, RouteKind, GATEWAY_GROUP};
use crate::plan::{Backend, BackendId, Endpoint};
use crate::world::World;

/// Why a backendRef is invalid, with the route condition reason the spec assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    pub reason: &'static str,
    pub message: String,
}

pub fn resolve(world: &World, route_kind: RouteKind, route_ns: &str, b: &BackendRef) -> Result<Backend, BackendError> {
    if !(b.group.is_empty() || b.group == "core") || b.kind != "Service" {
        return Err(BackendError {
            reason: reason::INVALID_KIND,
            message: format!("backendRef {}: kind {}.{} is not supported; only core Service", b.name, b.kind, b.group),
        });
    }
    let ns = b.namespace.as_deref().unwrap_or(route_ns);
    let permitted = grants::permitted(
        world,
        &grants::From { group: GATEWAY_GROUP, kind: route_kind.kind(), namespace: route_ns },
        &grants::To { group: "", kind: "Service", namespace: ns, name: &b.name },
    );
    if !permitted {
        return Err(BackendError {
            reason: reason::REF_NOT_PERMITTED,
            message: format!("backendRef {ns}/{} is in another namespace and no ReferenceGrant there allows it", b.name),
        });
    }
    let key = ObjKey::new(ns, &b.name);
    let Some(svc) = world.services.get(&key) else {
        return Err(BackendError { reason: reason::BACKEND_NOT_FOUND, message: format!("Service {key} not found") });
    };
    let Some(port) = b.port else {
        return Err(BackendError {
            reason: reason::BACKEND_NOT_FOUND,
            message: format!("backendRef {key} has no port; a Service backend needs one"),
        });
    };
    let spec = svc.spec.as_ref();
    let Some(svc_port) = spec.and_then(|s| s.ports.as_ref()).and_then(|ps| ps.iter().find(|p| p.port == port)) else {
        return Err(BackendError { reason: reason::BACKEND_NOT_FOUND, message: format!("Service {key} has no port {port}") });
    };
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Err(BackendError {
            reason: reason::UNSUPPORTED_PROTOCOL,
            message: format!("Service {key} is of type ExternalName, which has no endpoints to register"),
        });
    }
    let port_name = svc_port.name.clone().unwrap_or_default();
    let mut endpoints: Vec<Endpoint> = world
        .slices_for(&key)
        .flat_map(|slice| {
            let target = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.clone().unwrap_or_default() == port_name)
                .and_then(|p| p.port);
            slice.endpoints.iter().flatten().filter_map(move |ep| {
                let target = target?;
                // Absent "ready" means ready (EndpointSlice API semantics).
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                let terminating = ep.conditions.as_ref().and_then(|c| c.terminating).unwrap_or(false);
                (ready && !terminating).then_some((ep, target))
            })
        })
        .flat_map(|(ep, target)| {
            ep.addresses.iter().map(move |ip| Endpoint { ip: ip.clone(), port: target, zone: ep.zone.clone() })
        })
        .collect();
    endpoints.sort();
    endpoints.dedup();
    Ok(Backend {
        service: key,
        port,
        used_by: route_kind,
        app_protocol: svc_port.app_protocol.clone(),
        endpoints,
    })
}

pub fn id_of(route_ns: &str, b: &BackendRef) -> BackendId {
    BackendId::new(&ObjKey::new(b.namespace.as_deref().unwrap_or(route_ns), &b.name), b.port.unwrap_or(0))
}
