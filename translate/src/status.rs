//! Final status objects: translation verdicts plus what the cloud said (provisioning), with
//! observedGeneration and carried-over lastTransitionTime. Pure, so `cloudgate plan` and the
//! controller produce identical status for identical input.

use gateway_api::experimental::gateways::{GatewayStatus, GatewayStatusAddresses, GatewayStatusListeners, GatewayStatusListenersSupportedKinds};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;

use crate::conditions::{finalize, kind, reason, same_ignoring_time, Cond};
use crate::gateway::{GatewayVerdict, RouteParentVerdict};
use crate::listeners::{valid_section_name, MAX_LISTENER_STATUSES};
use crate::model::{ParentRef, GATEWAY_GROUP};

/// What the provider reports after (or instead of) applying the plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Provisioning {
    /// Not applied yet (or `cloudgate plan`): the message says what would happen.
    Pending(String),
    /// Everything in place; the addresses clients use.
    Ready { addresses: Vec<StatusAddress> },
    /// Everything in place, on a cloud where each route gets its own address (VPC Lattice: a
    /// service, with its DNS name, per route) rather than the Gateway: Programmed even while no
    /// route is attached, so no address exists.
    ReadyPerRoute { addresses: Vec<StatusAddress> },
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

/// `status.addresses` maxItems in the Gateway CRD.
pub const MAX_STATUS_ADDRESSES: usize = 16;

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
            Provisioning::ReadyPerRoute { addresses } if addresses.is_empty() => {
                Cond::yes(kind::PROGRAMMED, reason::PROGRAMMED, "Provisioned; each attached route gets its own address, and none is attached yet")
            }
            Provisioning::ReadyPerRoute { .. } => Cond::yes(kind::PROGRAMMED, reason::PROGRAMMED, "Provisioned; the addresses are those of the attached routes"),
            Provisioning::Failed { reason, message } => Cond::no(kind::PROGRAMMED, reason, message.clone()),
        }
    };
    let prev_conds = previous.and_then(|p| p.conditions.as_deref()).unwrap_or(&[]);
    let conditions = finalize(&[v.accepted.clone(), programmed], v.generation, prev_conds, now);
    // One status per listener name the CRD accepts, at most 64: listeners with invalid or
    // repeated names are rejected by translation (see `listeners::validate`) and only show in
    // the Gateway's Accepted message, since status.listeners could not hold them.
    let mut named = std::collections::BTreeSet::new();
    let listeners = v
        .listeners
        .iter()
        .filter(|l| valid_section_name(&l.name) && named.insert(l.name.as_str()))
        .take(MAX_LISTENER_STATUSES)
        .map(|l| {
            let programmed = if !l.programmable || !v.accepted.status {
                Cond::no(kind::PROGRAMMED, reason::INVALID, "Listener is not valid")
            } else {
                match prov {
                    Provisioning::Pending(m) => Cond::no(kind::PROGRAMMED, reason::PENDING, m.clone()),
                    Provisioning::Ready { .. } | Provisioning::ReadyPerRoute { .. } => {
                        Cond::yes(kind::PROGRAMMED, reason::PROGRAMMED, "Listener is provisioned")
                    }
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
        // The CRD holds at most 16 addresses and rejects the whole status write beyond that; a
        // provider can have more (aws-lattice: one DNS name per attached route's service), so
        // the first 16 are reported. Found by the ground benchmark (1 Gateway, 100 routes).
        Provisioning::Ready { addresses } | Provisioning::ReadyPerRoute { addresses } if v.accepted.status && !addresses.is_empty() => Some(
            addresses
                .iter()
                .take(MAX_STATUS_ADDRESSES)
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

// --- what the status writer needs to decide whether (and what) to write ------------------------

/// Does `next` differ from what the object already has in anything but `lastTransitionTime`?
/// The controller writes Gateway status only when this is true, so a resync of an unchanged
/// Gateway makes no write (and so no watch event, and no reconcile storm).
pub fn gateway_status_changed(current: Option<&GatewayStatus>, next: &GatewayStatus) -> bool {
    let Some(cur) = current else { return true };
    let conds = |s: &GatewayStatus| s.conditions.clone().unwrap_or_default();
    if !same_ignoring_time(&conds(cur), &conds(next)) {
        return true;
    }
    if cur.addresses.clone().unwrap_or_default() != next.addresses.clone().unwrap_or_default() {
        return true;
    }
    let cur_l = cur.listeners.as_deref().unwrap_or(&[]);
    let next_l = next.listeners.as_deref().unwrap_or(&[]);
    cur_l.len() != next_l.len()
        || cur_l.iter().zip(next_l).any(|(a, b)| {
            a.name != b.name
                || a.attached_routes != b.attached_routes
                || a.supported_kinds.clone().unwrap_or_default() != b.supported_kinds.clone().unwrap_or_default()
                || !same_ignoring_time(&a.conditions, &b.conditions)
        })
}

/// The GatewayClass counterpart of [`gateway_status_changed`].
pub fn class_status_changed(
    current: Option<&gateway_api::experimental::gatewayclasses::GatewayClassStatus>,
    next: &gateway_api::experimental::gatewayclasses::GatewayClassStatus,
) -> bool {
    let Some(cur) = current else { return true };
    !same_ignoring_time(cur.conditions.as_deref().unwrap_or(&[]), next.conditions.as_deref().unwrap_or(&[]))
        || cur.supported_features.clone().unwrap_or_default() != next.supported_features.clone().unwrap_or_default()
}

/// Reads a `status.parents[].parentRef` (or `spec.parentRefs[]`) the way the model does:
/// group and kind defaulted as the CRD defaults them.
pub fn parent_ref_from_json(v: &serde_json::Value) -> Option<ParentRef> {
    let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
    Some(ParentRef {
        group: s("group").unwrap_or_else(|| GATEWAY_GROUP.to_string()),
        kind: s("kind").unwrap_or_else(|| "Gateway".to_string()),
        namespace: s("namespace"),
        name: s("name")?,
        section_name: s("sectionName"),
        port: v.get("port").and_then(serde_json::Value::as_i64).map(|p| p as i32),
    })
}

/// The route's `status.parents` after this controller refreshes its entries for one Gateway, or
/// `None` when nothing would change (ignoring `lastTransitionTime`), so no write is made.
///
/// `status.parents` is an atomic list in the CRDs: a write replaces all of it, so server-side
/// apply would make controllers fight over it. Instead the writer reads the list, and here:
/// - every entry whose `controllerName` is not ours is kept verbatim, in place;
/// - our entries for `gateway` are replaced by `fresh` (the new entries for the parentRefs that
///   name it; empty when the route no longer attaches to it or the Gateway is gone);
/// - our entries whose parentRef is no longer in the route's spec are dropped (nobody else
///   would ever remove them);
/// - our entries for other Gateways still in the spec are left for those Gateways' reconciles.
///
/// `current` is `status.parents` as read; `spec_parent_refs` the route's `spec.parentRefs`.
pub fn merge_route_parents(
    current: &[serde_json::Value],
    spec_parent_refs: &[ParentRef],
    route_namespace: &str,
    controller_name: &str,
    gateway: &crate::model::ObjKey,
    fresh: &[RouteParentStatus],
) -> Option<Vec<serde_json::Value>> {
    let ours = |v: &serde_json::Value| v.get("controllerName").and_then(serde_json::Value::as_str) == Some(controller_name);
    let fresh_json: Vec<serde_json::Value> =
        fresh.iter().map(|f| serde_json::to_value(f).expect("status serialises")).collect();
    let mut out = Vec::with_capacity(current.len() + fresh.len());
    let mut placed = false;
    for entry in current {
        if !ours(entry) {
            out.push(entry.clone());
            continue;
        }
        let pref = entry.get("parentRef").and_then(parent_ref_from_json);
        let for_gateway = pref.as_ref().and_then(|p| p.gateway(route_namespace)).as_ref() == Some(gateway);
        if for_gateway {
            // Replaced where the first of them stood, so a steady state keeps its order.
            if !placed {
                out.extend(fresh_json.iter().cloned());
                placed = true;
            }
            continue;
        }
        if pref.is_some_and(|p| spec_parent_refs.contains(&p)) {
            out.push(entry.clone());
        }
    }
    if !placed {
        out.extend(fresh_json);
    }
    if normalised(current) == normalised(&out) {
        None
    } else {
        Some(out)
    }
}

/// Entries without `lastTransitionTime`, as sorted strings: equal means "nothing to write".
fn normalised(entries: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(conds) = e.get_mut("conditions").and_then(serde_json::Value::as_array_mut) {
                for c in conds.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                    c.remove("lastTransitionTime");
                }
            }
            e.to_string()
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod address_tests {
    use super::*;
    use crate::conditions::Cond;
    use crate::model::ObjKey;

    #[test]
    fn at_most_16_addresses_are_reported() {
        let v = GatewayVerdict {
            key: ObjKey::new("ns", "gw"),
            generation: Some(1),
            accepted: Cond::yes(kind::ACCEPTED, reason::ACCEPTED, "ok"),
            listeners: Vec::new(),
        };
        let addresses: Vec<StatusAddress> =
            (0..100).map(|i| StatusAddress { type_: "Hostname".into(), value: format!("svc-{i}.lattice.example.com") }).collect();
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let st = gateway_status(&v, &Provisioning::Ready { addresses }, None, &now);
        let got = st.addresses.unwrap();
        assert_eq!(got.len(), 16);
        assert_eq!(got[0].value, "svc-0.lattice.example.com");
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use crate::model::ObjKey;
    use serde_json::json;

    const OURS: &str = "cloudgate.io/gateway-controller";

    fn pref(name: &str, section: Option<&str>) -> ParentRef {
        ParentRef {
            group: GATEWAY_GROUP.into(),
            kind: "Gateway".into(),
            namespace: None,
            name: name.into(),
            section_name: section.map(str::to_string),
            port: None,
        }
    }

    fn cond(status: &str, reason: &str, ltt: &str) -> Condition {
        Condition {
            type_: "Accepted".into(),
            status: status.into(),
            reason: reason.into(),
            message: "m".into(),
            observed_generation: Some(1),
            last_transition_time: Time(ltt.parse().unwrap()),
        }
    }

    fn entry(controller: &str, p: &ParentRef, c: Condition) -> RouteParentStatus {
        RouteParentStatus { parent_ref: p.into(), controller_name: controller.into(), conditions: vec![c] }
    }

    fn js(e: &RouteParentStatus) -> serde_json::Value {
        serde_json::to_value(e).unwrap()
    }

    #[test]
    fn other_controllers_entries_are_kept_and_ours_replaced() {
        let gw = ObjKey::new("ns", "gw");
        let a = pref("gw", None);
        let other = pref("theirs", None);
        let theirs = json!({"parentRef": {"name": "theirs"}, "controllerName": "example.com/other",
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "x",
            "lastTransitionTime": "2025-01-01T00:00:00Z", "futureField": 1}]});
        let current = vec![theirs.clone(), js(&entry(OURS, &a, cond("False", "NoMatchingParent", "2026-01-01T00:00:00Z")))];
        let fresh = entry(OURS, &a, cond("True", "Accepted", "2026-02-01T00:00:00Z"));
        let out = merge_route_parents(&current, &[a.clone(), other], "ns", OURS, &gw, &[fresh.clone()]).expect("changed");
        assert_eq!(out, vec![theirs, js(&fresh)]);
    }

    #[test]
    fn two_controllers_on_one_parent_ref_both_survive() {
        let gw = ObjKey::new("ns", "gw");
        let a = pref("gw", None);
        let theirs = js(&entry("example.com/other", &a, cond("False", "NotAllowedByListeners", "2025-01-01T00:00:00Z")));
        let fresh = entry(OURS, &a, cond("True", "Accepted", "2026-02-01T00:00:00Z"));
        let out = merge_route_parents(&[theirs.clone()], &[a], "ns", OURS, &gw, &[fresh.clone()]).unwrap();
        assert_eq!(out, vec![theirs, js(&fresh)]);
    }

    #[test]
    fn stale_entries_of_ours_are_removed() {
        let gw = ObjKey::new("ns", "gw");
        let a = pref("gw", Some("http"));
        let gone = pref("gw", Some("https"));
        let elsewhere = pref("gw2", None);
        let removed = pref("gw3", None);
        let current = vec![
            js(&entry(OURS, &gone, cond("True", "Accepted", "2026-01-01T00:00:00Z"))),
            js(&entry(OURS, &elsewhere, cond("True", "Accepted", "2026-01-01T00:00:00Z"))),
            js(&entry(OURS, &removed, cond("True", "Accepted", "2026-01-01T00:00:00Z"))),
        ];
        // The spec now names gw (section http) and gw2; gw3 was removed from the spec.
        let fresh = entry(OURS, &a, cond("True", "Accepted", "2026-02-01T00:00:00Z"));
        let out = merge_route_parents(&current, &[a, elsewhere.clone()], "ns", OURS, &gw, &[fresh.clone()]).unwrap();
        // gw's old entry (section https) is replaced; gw2's stays for gw2's reconcile; gw3's goes.
        assert_eq!(out, vec![js(&fresh), current[1].clone()]);
    }

    #[test]
    fn a_gateway_going_away_removes_only_its_entries() {
        let gw = ObjKey::new("ns", "gw");
        let a = pref("gw", None);
        let current = vec![js(&entry(OURS, &a, cond("True", "Accepted", "2026-01-01T00:00:00Z")))];
        assert_eq!(merge_route_parents(&current, &[a.clone()], "ns", OURS, &gw, &[]), Some(vec![]));
        assert_eq!(merge_route_parents(&[], &[a], "ns", OURS, &gw, &[]), None);
    }

    #[test]
    fn no_change_means_no_write() {
        let gw = ObjKey::new("ns", "gw");
        let a = pref("gw", None);
        let theirs = json!({"parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "x"}, "controllerName": "o", "conditions": []});
        let current = vec![theirs, js(&entry(OURS, &a, cond("True", "Accepted", "2026-01-01T00:00:00Z")))];
        // Same condition, only a newer timestamp: not a change.
        let fresh = entry(OURS, &a, cond("True", "Accepted", "2026-03-01T00:00:00Z"));
        assert_eq!(merge_route_parents(&current, &[a.clone()], "ns", OURS, &gw, &[fresh]), None);
        // A new observedGeneration is.
        let mut c = cond("True", "Accepted", "2026-01-01T00:00:00Z");
        c.observed_generation = Some(2);
        assert!(merge_route_parents(&current, &[a.clone()], "ns", OURS, &gw, &[entry(OURS, &a, c)]).is_some());
    }

    #[test]
    fn parent_refs_in_another_namespace_are_matched_by_their_namespace() {
        let gw = ObjKey::new("infra", "gw");
        let mut a = pref("gw", None);
        a.namespace = Some("infra".into());
        let same_name_local = pref("gw", None);
        let current = vec![js(&entry(OURS, &same_name_local, cond("True", "Accepted", "2026-01-01T00:00:00Z")))];
        let fresh = entry(OURS, &a, cond("True", "Accepted", "2026-01-01T00:00:00Z"));
        // The local ref (apps/gw) is not infra/gw and is still in the spec: kept.
        let out = merge_route_parents(&current, &[a, same_name_local], "apps", OURS, &gw, &[fresh.clone()]).unwrap();
        assert_eq!(out, vec![current[0].clone(), js(&fresh)]);
    }

    #[test]
    fn gateway_status_equality_ignores_transition_times() {
        use gateway_api::experimental::gateways::GatewayStatus;
        let s = |ltt: &str, reason: &str| GatewayStatus {
            conditions: Some(vec![Condition { reason: reason.into(), ..cond("True", "x", ltt) }]),
            ..Default::default()
        };
        assert!(gateway_status_changed(None, &s("2026-01-01T00:00:00Z", "A")));
        assert!(!gateway_status_changed(Some(&s("2026-01-01T00:00:00Z", "A")), &s("2026-02-01T00:00:00Z", "A")));
        assert!(gateway_status_changed(Some(&s("2026-01-01T00:00:00Z", "A")), &s("2026-01-01T00:00:00Z", "B")));
    }
}
