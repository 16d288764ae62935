//! ReferenceGrant: may an object in one namespace refer to an object in another?

use crate::world::World;

/// The referring side.
pub struct From<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The referent.
pub struct To<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Same-namespace references are always allowed; cross-namespace ones need a ReferenceGrant
/// in the referent's namespace whose `from` names the referrer's group/kind/namespace and whose
/// `to` names the referent's group/kind (and name, when the grant gives one).
pub fn permitted(world: &World, from: &From<'_>, to: &To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    world.grants_in(to.namespace).any(|g| {
        g.spec.from.iter().any(|f| f.group == from.group && f.kind == from.kind && f.namespace == from.namespace)
            && g.spec.to.iter().any(|t| {
                t.group == to.group && t.kind == to.kind && t.name.as_deref().is_none_or(|n| n == to.name)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_api::experimental::referencegrants::ReferenceGrant;

    fn grant(yaml: &str) -> ReferenceGrant {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn cross_namespace_needs_a_matching_grant() {
        let mut w = World::new();
        let from = From { group: "gateway.networking.k8s.io", kind: "HTTPRoute", namespace: "apps" };
        let to = To { group: "", kind: "Service", namespace: "backends", name: "db" };
        assert!(!permitted(&w, &from, &to));
        assert!(permitted(&w, &From { namespace: "backends", ..from }, &to));

        // A grant for another name does not help.
        w.upsert_grant(grant(
            "metadata: {name: g1, namespace: backends}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]\n  to: [{group: '', kind: Service, name: other}]",
        ));
        let from = From { group: "gateway.networking.k8s.io", kind: "HTTPRoute", namespace: "apps" };
        assert!(!permitted(&w, &from, &to));
        // A grant in the wrong namespace does not help either.
        w.upsert_grant(grant(
            "metadata: {name: g2, namespace: apps}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]\n  to: [{group: '', kind: Service}]",
        ));
        assert!(!permitted(&w, &from, &to));
        w.upsert_grant(grant(
            "metadata: {name: g3, namespace: backends}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]\n  to: [{group: '', kind: Service}]",
        ));
        assert!(permitted(&w, &from, &to));
        // ...but only for the kind it names.
        let grpc = From { group: "gateway.networking.k8s.io", kind: "GRPCRoute", namespace: "apps" };
        assert!(!permitted(&w, &grpc, &to));
    }
}
