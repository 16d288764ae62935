//! The desired-state model every provider renders into: typed per provider, carried here as a
//! kind, a cloud name, ownership tags, a JSON spec and the keys it depends on.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceKey {
    /// `service:Type`, e.g. `elbv2:LoadBalancer`, `vpc-lattice:Service`, `compute:UrlMap`.
    pub kind: String,
    /// The cloud-side name (unique per kind within the owner's scope).
    pub name: String,
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DesiredResource {
    pub key: ResourceKey,
    pub tags: BTreeMap<String, String>,
    /// The fields cloudgate manages, in the provider's own vocabulary.
    pub spec: serde_json::Value,
    /// Resources that must exist before this one (and be deleted after it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceKey>,
}

impl DesiredResource {
    pub fn new(kind: &str, name: impl Into<String>, tags: BTreeMap<String, String>, spec: impl Serialize) -> Self {
        DesiredResource {
            key: ResourceKey { kind: kind.to_string(), name: name.into() },
            tags,
            spec: serde_json::to_value(spec).unwrap_or(serde_json::Value::Null),
            depends_on: Vec::new(),
        }
    }

    pub fn depends_on(mut self, keys: impl IntoIterator<Item = ResourceKey>) -> Self {
        self.depends_on.extend(keys);
        self.depends_on.sort();
        self.depends_on.dedup();
        self
    }
}

/// Everything one Gateway needs in one cloud, parents before children.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResourceGraph {
    pub resources: Vec<DesiredResource>,
}

impl ResourceGraph {
    pub fn push(&mut self, r: DesiredResource) -> ResourceKey {
        let k = r.key.clone();
        self.resources.push(r);
        k
    }

    pub fn get(&self, key: &ResourceKey) -> Option<&DesiredResource> {
        self.resources.iter().find(|r| &r.key == key)
    }

    /// Count of resources per kind, for summaries.
    pub fn counts(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for r in &self.resources {
            *m.entry(r.key.kind.as_str()).or_default() += 1;
        }
        m
    }
}
