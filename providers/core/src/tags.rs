//! Ownership tags. Every resource cloudgate creates carries them; `observe` finds resources
//! by them, and nothing without them is ever modified or deleted.

use std::collections::BTreeMap;

use cloudgate_translate::model::ObjKey;

pub const MANAGED_BY: &str = "cloudgate.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "cloudgate";
pub const CLUSTER: &str = "cloudgate.io/cluster";
pub const GATEWAY: &str = "cloudgate.io/gateway";
/// Route (kind/namespace/name) for resources that belong to one route (Lattice services).
pub const ROUTE: &str = "cloudgate.io/route";
/// Logical role of the resource inside the Gateway's graph, e.g. `listener/http`.
pub const RESOURCE: &str = "cloudgate.io/resource";
/// The resource's key name, for clouds where some resources have no name of their own (ALB
/// listeners and rules, ACM certificates): observe reads the key back from this tag.
pub const NAME: &str = "cloudgate.io/name";

/// Tags for a resource owned by `gateway` in `cluster`.
pub fn ownership(cluster: &str, gateway: &ObjKey, resource: &str, defaults: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut t = defaults.clone();
    t.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    t.insert(CLUSTER.into(), cluster.into());
    t.insert(GATEWAY.into(), gateway.to_string());
    t.insert(RESOURCE.into(), resource.into());
    t
}

/// Is this resource ours (this controller, this cluster)? Anything else is never touched.
pub fn owned_by(tags: &BTreeMap<String, String>, cluster: &str) -> bool {
    tags.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE) && tags.get(CLUSTER).map(String::as_str) == Some(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_requires_both_marker_and_cluster() {
        let t = ownership("c1", &ObjKey::new("ns", "gw"), "alb", &BTreeMap::new());
        assert!(owned_by(&t, "c1"));
        assert!(!owned_by(&t, "c2"));
        let mut foreign = t.clone();
        foreign.remove(MANAGED_BY);
        assert!(!owned_by(&foreign, "c1"));
    }

    #[test]
    fn defaults_cannot_override_ownership() {
        let mut d = BTreeMap::new();
        d.insert(CLUSTER.to_string(), "evil".to_string());
        d.insert("team".to_string(), "a".to_string());
        let t = ownership("c1", &ObjKey::new("ns", "gw"), "alb", &d);
        assert_eq!(t[CLUSTER], "c1");
        assert_eq!(t["team"], "a");
    }
}
