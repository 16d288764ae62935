//! Final status objects: translation verdicts plus what the cloud said (provisioning), with
//! observedGeneration and carried-over lastTransitionTime. Pure, so `cloudgate plan` and the
//! controller produce identical status for identical input.

use gateway_api::experimental::gateways::{GatewayStatus, GatewayStatusAddresses, GatewayStatusListeners, GatewayStatusListenersSupportedKinds};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;

use crate::conditions::{finalize, kind, reason, Cond};
use crate::gateway::{GatewayVerdict, RouteParentVerdict};
use crate::model::{ParentRef, GATEWAY_GROUP};

/// What the provider reports after (or instead of) applying the plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Provisioning {
    /// Not applied yet (or `cloudgate plan`): the message says what would happen.
    Pending(String),
    /// Everything in place; the addresses clients use.
    Ready { addresses: Vec<StatusAddress> },
    /// The cloud refused or failed; `reason` is a Programmed reason (Invalid, NoResources,
    /// AddressNotUsable ...).
    Failed { reason: &'static str, message: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusAddress {
    /// `IPAddress` or `Hostname`.
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

pub fn gateway_status(v: &GatewayVerdict, prov: &Provisioning, previous: Option<&GatewayStatus>, now: &Time) -> GatewayStatus {
    let programmed = if !v.accepted.status {
        Cond::no(kind::PROGRAMMED, reason::INVALID, "Gateway is not accepted")
    } else {
        match prov {
            Provisioning::Pending(m) => Cond::no(kind::PROGRAMMED, reason::PENDING, m.clone()),
            Provisioning::Ready { addresses } if addresses.is_empty() => {
                Cond::no(kind::PROGRAMMED, reason::ADDRESS_NOT_ASSIGNED, "The load balancer has no address yet")
            }
            Provisioning::Ready { .. } => Cond::yes(kind::PROGRAMMED, reason::PROGRAMMED, "Load balancer is provisioned"),
            Provisioning::Failed { reason, message } => Cond::no(kind::PROGRAMMED, reason, message.clone()),
        }
    };
    let prev_conds = previous.and_then(|p| p.conditions.as_deref()).unwrap_or(&[]);
    let conditions = finalize(&[v.accepted.clone(), programmed], v.generation, prev_conds, now);
    let listeners = v
        .listeners
        .iter()
        .map(|l| {
            let programmed = if !l.programmable || !v.accepted.status {
                Cond::no(kind::PROGRAMMED, reason::INVALID, "Listener is not valid")
            } else {
                match prov {
                    Provisioning::Pending(m) => Cond::no(kind::PROGRAMMED, reason::PENDING, m.clone()),
                    Provisioning::Ready { .. } => Cond::yes(kind::PROGRAMMED, reason::PROGRAMMED, "Listener is provisioned"),
                    Provisioning::Failed { message, .. } => Cond::no(kind::PROGRAMMED, reason::PENDING, message.clone()),
                }
            };
            let mut conds = l.conditions.clone();
            conds.push(programmed);
            let prev = previous
                .and_then(|p| p.listeners.as_ref())
                .and_then(|ls| ls.iter().find(|pl| pl.name == l.name))
                .map(|pl| pl.conditions.as_slice())
                .unwrap_or(&[]);
            GatewayStatusListeners {
                name: l.name.clone(),
                attached_routes: l.attached_routes,
                conditions: finalize(&conds, v.generation, prev, now),
                supported_kinds: Some(
                    l.supported_kinds
                        .iter()
                        .map(|k| GatewayStatusListenersSupportedKinds { group: Some(GATEWAY_GROUP.into()), kind: k.kind().into() })
                        .collect(),
                ),
            }
        })
        .collect();
    let addresses = match prov {
        Provisioning::Ready { addresses } if v.accepted.status && !addresses.is_empty() => Some(
            addresses
                .iter()
                .map(|a| GatewayStatusAddresses { r#type: Some(a.type_.clone()), value: a.value.clone() })
                .collect(),
        ),
        _ => None,
    };
    GatewayStatus { addresses, attached_listener_sets: None, conditions: Some(conditions), listeners: Some(listeners) }
}

/// One `status.parents[]` entry, in the JSON shape every route kind shares.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRefStatus,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRefStatus {
    pub group: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl From<&ParentRef> for ParentRefStatus {
    fn from(p: &ParentRef) -> Self {
        ParentRefStatus {
            group: p.group.clone(),
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            section_name: p.section_name.clone(),
            port: p.port,
        }
    }
}

/// `previous` is the route's current `status.parents` (any controller's).
pub fn route_parent_status(
    v: &RouteParentVerdict,
    controller_name: &str,
    previous: &[crate::model::ParentStatusEq],
    now: &Time,
) -> RouteParentStatus {
    let prev = previous
        .iter()
        .find(|p| p.0.controller_name == controller_name && p.0.parent_ref == v.parent_ref)
        .map(|p| p.0.conditions.as_slice())
        .unwrap_or(&[]);
    RouteParentStatus {
        parent_ref: (&v.parent_ref).into(),
        controller_name: controller_name.to_string(),
        conditions: finalize(&v.conditions, v.generation, prev, now),
    }
}
