//! Desired vs observed: the ordered, minimal change set. Creates and updates follow the desired
//! graph's order (parents first); deletes run children first. Resources without our ownership
//! tags are invisible here, so they can never be changed or deleted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::resource::{DesiredResource, ResourceGraph, ResourceKey};
use crate::tags;

/// A resource as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservedResource {
    pub key: ResourceKey,
    /// ARN, id or selfLink: how the provider addresses it.
    pub id: String,
    pub tags: BTreeMap<String, String>,
    /// The same fields `DesiredResource::spec` uses, as read back.
    pub spec: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "op")]
pub enum Change {
    Create { desired: DesiredResource },
    Update { desired: DesiredResource, observed: ObservedResource },
    Delete { observed: ObservedResource },
}

impl Change {
    pub fn key(&self) -> &ResourceKey {
        match self {
            Change::Create { desired } | Change::Update { desired, .. } => &desired.key,
            Change::Delete { observed } => &observed.key,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// `kind_order` lists resource kinds parents-first; deletes are sorted by its reverse so a
/// listener goes before its load balancer. Kinds missing from it are deleted first.
pub fn diff(desired: &ResourceGraph, observed: &[ObservedResource], cluster: &str, kind_order: &[&str]) -> ChangeSet {
    let mut by_key: BTreeMap<&ResourceKey, Vec<&ObservedResource>> = BTreeMap::new();
    for o in observed.iter().filter(|o| tags::owned_by(&o.tags, cluster)) {
        by_key.entry(&o.key).or_default().push(o);
    }
    let mut changes = Vec::new();
    let mut deletes: Vec<&ObservedResource> = Vec::new();
    let wanted: BTreeSet<&ResourceKey> = desired.resources.iter().map(|d| &d.key).collect();
    for d in &desired.resources {
        match by_key.get(&d.key).map(|v| v.as_slice()) {
            None | Some([]) => changes.push(Change::Create { desired: d.clone() }),
            Some([first, extra @ ..]) => {
                // Duplicates (e.g. a create retried after a crash) are removed, keeping the
                // first by id so the choice is stable across reconciles.
                let mut all: Vec<&ObservedResource> = std::iter::once(*first).chain(extra.iter().copied()).collect();
                all.sort_by(|a, b| a.id.cmp(&b.id));
                let keep = all[0];
                deletes.extend(&all[1..]);
                if !contains(&keep.spec, &d.spec) || !d.tags.iter().all(|(k, v)| keep.tags.get(k) == Some(v)) {
                    changes.push(Change::Update { desired: d.clone(), observed: keep.clone() });
                }
            }
        }
    }
    for (k, os) in &by_key {
        if !wanted.contains(k) {
            deletes.extend(os.iter().copied());
        }
    }
    let rank = |kind: &str| kind_order.iter().position(|k| *k == kind).map_or(usize::MAX, |p| p);
    deletes.sort_by(|a, b| rank(&b.key.kind).cmp(&rank(&a.key.kind)).then_with(|| a.id.cmp(&b.id)));
    changes.extend(deletes.into_iter().map(|o| Change::Delete { observed: o.clone() }));
    ChangeSet { changes }
}

/// Does `actual` hold everything `want` says? Objects compare as subsets (the cloud adds fields
/// of its own); arrays and scalars compare exactly; `null` in `want` means "don't care".
pub fn contains(actual: &Value, want: &Value) -> bool {
    match (actual, want) {
        (_, Value::Null) => true,
        (Value::Object(a), Value::Object(w)) => w.iter().all(|(k, wv)| match a.get(k) {
            Some(av) => contains(av, wv),
            None => wv.is_null(),
        }),
        (Value::Array(a), Value::Array(w)) => a.len() == w.len() && a.iter().zip(w).all(|(x, y)| contains(x, y)),
        (a, w) => a == w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kind: &str, name: &str) -> ResourceKey {
        ResourceKey { kind: kind.into(), name: name.into() }
    }

    fn ours(kind: &str, name: &str, id: &str, spec: Value) -> ObservedResource {
        let mut t = BTreeMap::new();
        t.insert(tags::MANAGED_BY.to_string(), tags::MANAGED_BY_VALUE.to_string());
        t.insert(tags::CLUSTER.to_string(), "c".to_string());
        ObservedResource { key: key(kind, name), id: id.into(), tags: t, spec }
    }

    fn want(kind: &str, name: &str, spec: Value) -> DesiredResource {
        let mut t = BTreeMap::new();
        t.insert(tags::MANAGED_BY.to_string(), tags::MANAGED_BY_VALUE.to_string());
        t.insert(tags::CLUSTER.to_string(), "c".to_string());
        DesiredResource { key: key(kind, name), tags: t, spec, depends_on: vec![] }
    }

    const ORDER: &[&str] = &["lb", "listener", "rule"];

    #[test]
    fn steady_state_is_empty() {
        let g = ResourceGraph { resources: vec![want("lb", "a", json!({"scheme": "internal"}))] };
        let o = vec![ours("lb", "a", "arn:1", json!({"scheme": "internal", "dns": "x"}))];
        assert!(diff(&g, &o, "c", ORDER).is_empty());
    }

    #[test]
    fn creates_in_order_and_deletes_children_first() {
        let g = ResourceGraph { resources: vec![want("lb", "a", json!({})), want("listener", "l", json!({}))] };
        let o = vec![ours("lb", "old", "arn:2", json!({})), ours("rule", "r", "arn:3", json!({})), ours("listener", "x", "arn:4", json!({}))];
        let cs = diff(&g, &o, "c", ORDER);
        let ops: Vec<String> = cs
            .changes
            .iter()
            .map(|c| match c {
                Change::Create { desired } => format!("create {}", desired.key.name),
                Change::Update { desired, .. } => format!("update {}", desired.key.name),
                Change::Delete { observed } => format!("delete {}", observed.key.name),
            })
            .collect();
        assert_eq!(ops, vec!["create a", "create l", "delete r", "delete x", "delete old"]);
    }

    #[test]
    fn foreign_resources_are_invisible() {
        let mut foreign = ours("lb", "a", "arn:9", json!({}));
        foreign.tags.insert(tags::CLUSTER.into(), "other".into());
        let cs = diff(&ResourceGraph::default(), &[foreign], "c", ORDER);
        assert!(cs.is_empty());
    }

    #[test]
    fn duplicates_are_collapsed_and_changes_detected() {
        let g = ResourceGraph { resources: vec![want("rule", "r", json!({"weights": [90, 10]}))] };
        let o = vec![ours("rule", "r", "b", json!({"weights": [50, 50]})), ours("rule", "r", "a", json!({"weights": [50, 50]}))];
        let cs = diff(&g, &o, "c", ORDER);
        assert_eq!(cs.changes.len(), 2);
        assert!(matches!(&cs.changes[0], Change::Update { observed, .. } if observed.id == "a"));
        assert!(matches!(&cs.changes[1], Change::Delete { observed } if observed.id == "b"));
    }
}
