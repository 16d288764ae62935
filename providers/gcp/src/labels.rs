//! Ownership on Google Cloud.
//!
//! The shared ownership tags (`cloudgate.io/cluster`, ...) cannot be GCE labels as they are:
//! label keys and values are lowercase `[a-z0-9_-]`, at most 63 characters, and keys start
//! with a letter. And in compute.v1 only some kinds have labels at all: of the kinds cloudgate
//! creates, `Address` and `ForwardingRule` do; health checks, NEGs, backend services, URL maps,
//! proxies, SSL certificates and firewalls do not. So:
//!
//! - labeled kinds carry [`labels_from_tags`] of the ownership tags in `DesiredResource.tags`
//!   (those tags *are* GCE labels);
//! - the other kinds carry ownership in their `description`, as JSON
//!   `{"cloudgate":{"cluster":..,"gateway":..,"resource":..}}` ([`ownership_description`]), and
//!   have empty `tags`.
//!
//! Observe turns either back into the shared tag keys with [`observed_tags`], so
//! `diff::diff`'s ownership check (`cloudgate.io/managed-by` + `cloudgate.io/cluster`) works
//! the same for every kind and a resource without our marks stays invisible.

use std::collections::BTreeMap;

use cloudgate_provider::names::stable_hash;
use cloudgate_provider::tags;

const MAX: usize = 63;
/// Label key prefix that replaces `cloudgate.io/`.
const OURS: &str = "cloudgate-";

fn label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
}

pub fn is_valid_label_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= MAX && k.starts_with(|c: char| c.is_ascii_lowercase()) && k.chars().all(label_char)
}

pub fn is_valid_label_value(v: &str) -> bool {
    v.len() <= MAX && v.chars().all(label_char)
}

/// A readable body plus a hash of the original, so two different inputs never map to the same
/// label even after invalid characters were replaced and the body cut short.
fn hashed(original: &str, must_start_with_letter: bool) -> String {
    let hash = &stable_hash(&[original])[..10];
    let mut body: String =
        original.to_ascii_lowercase().chars().map(|c| if label_char(c) { c } else { '-' }).collect();
    if must_start_with_letter && !body.starts_with(|c: char| c.is_ascii_lowercase()) {
        body.insert(0, 'x');
    }
    body.truncate(MAX - hash.len() - 1);
    let body = body.trim_end_matches(['-', '_']);
    if body.is_empty() { format!("x-{hash}") } else { format!("{body}-{hash}") }
}

/// Label value for a tag value. Valid values stay as they are. `namespace/name` becomes
/// `namespace_name`: Kubernetes names never contain `_`, so for values without one this stays
/// one-to-one and readable. Anything else gets a readable body and a hash.
pub fn label_value(v: &str) -> String {
    if is_valid_label_value(v) {
        return v.to_string();
    }
    let slashes = v.replace('/', "_");
    if !v.contains('_') && is_valid_label_value(&slashes) {
        return slashes;
    }
    hashed(v, false)
}

/// Label key for a tag key: `cloudgate.io/x` becomes `cloudgate-x`; other valid keys stay;
/// invalid ones (e.g. `app.kubernetes.io/name`) get a readable body and a hash.
pub fn label_key(k: &str) -> String {
    if let Some(rest) = k.strip_prefix("cloudgate.io/") {
        let mapped = format!("{OURS}{rest}");
        if is_valid_label_key(&mapped) {
            return mapped;
        }
    }
    if is_valid_label_key(k) {
        return k.to_string();
    }
    hashed(k, true)
}

/// GCE labels for a set of tags. Our own `cloudgate.io/*` keys are mapped last, so a user tag
/// that happens to map to the same label key can never overwrite an ownership label.
pub fn labels_from_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let (ours, theirs): (Vec<_>, Vec<_>) = tags.iter().partition(|(k, _)| k.starts_with("cloudgate.io/"));
    let mut labels = BTreeMap::new();
    for (k, v) in theirs.into_iter().chain(ours) {
        labels.insert(label_key(k), label_value(v));
    }
    labels
}

/// The description of a kind without labels: ownership as JSON, plus `extra` fields (the
/// certificate's sha256, a spec hash). Keys are sorted, so the text is stable.
pub fn ownership_description(cluster: &str, gateway: &str, resource: &str, extra: &[(&str, &str)]) -> String {
    let mut inner: BTreeMap<&str, &str> = BTreeMap::new();
    inner.insert("cluster", cluster);
    inner.insert("gateway", gateway);
    inner.insert("resource", resource);
    inner.extend(extra.iter().copied());
    let mut outer = BTreeMap::new();
    outer.insert("cloudgate", inner);
    serde_json::to_string(&outer).unwrap_or_default()
}

/// What observe reports as `ObservedResource.tags`: the labels as read (so desired labels
/// compare as a subset), plus the shared ownership keys recovered from the labels (when their
/// values are what [`labels_from_tags`] makes of `cluster`) or from a cloudgate description.
pub fn observed_tags(labels: &BTreeMap<String, String>, description: Option<&str>, cluster: &str) -> BTreeMap<String, String> {
    let mut t = labels.clone();
    let label = |k: &str| labels.get(&label_key(k)).map(String::as_str);
    if label(tags::MANAGED_BY) == Some(tags::MANAGED_BY_VALUE) && label(tags::CLUSTER) == Some(label_value(cluster).as_str()) {
        t.insert(tags::MANAGED_BY.into(), tags::MANAGED_BY_VALUE.into());
        t.insert(tags::CLUSTER.into(), cluster.into());
    }
    let owner = description
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| v.get("cloudgate").cloned());
    if let Some(o) = owner {
        let s = |k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
        if let Some(c) = s("cluster") {
            t.insert(tags::MANAGED_BY.into(), tags::MANAGED_BY_VALUE.into());
            t.insert(tags::CLUSTER.into(), c);
        }
        if let Some(g) = s("gateway") {
            t.insert(tags::GATEWAY.into(), g);
        }
        if let Some(r) = s("resource") {
            t.insert(tags::RESOURCE.into(), r);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudgate_translate::model::ObjKey;

    #[test]
    fn ownership_tags_become_valid_labels() {
        let mut defaults = BTreeMap::new();
        defaults.insert("team".to_string(), "Payments Team".to_string());
        defaults.insert("app.kubernetes.io/name".to_string(), "shop".to_string());
        // A user tag that maps onto our key must not win.
        defaults.insert("cloudgate-cluster".to_string(), "evil".to_string());
        let t = tags::ownership("prod-1", &ObjKey::new("apps", "web"), "forwarding-rule/443", &defaults);
        let l = labels_from_tags(&t);
        assert_eq!(l["cloudgate-managed-by"], "cloudgate");
        assert_eq!(l["cloudgate-cluster"], "prod-1");
        assert_eq!(l["cloudgate-gateway"], "apps_web");
        assert_eq!(l["cloudgate-resource"], "forwarding-rule_443");
        assert!(l["team"].starts_with("payments-team-"), "{}", l["team"]);
        let k = l.keys().find(|k| k.starts_with("app-kubernetes-io-name-")).expect("mapped key");
        assert_eq!(l[k], "shop");
        for (k, v) in &l {
            assert!(is_valid_label_key(k), "key {k}");
            assert!(is_valid_label_value(v), "value {v}");
        }
    }

    #[test]
    fn long_or_odd_values_hash_without_colliding() {
        let a = label_value(&format!("{}/one", "n".repeat(70)));
        let b = label_value(&format!("{}/two", "n".repeat(70)));
        assert_ne!(a, b);
        assert!(is_valid_label_value(&a) && is_valid_label_value(&b), "{a} {b}");
        // '.' is not allowed in label values; dotted names hash instead of colliding with '-'.
        assert_ne!(label_value("ns/my.gw"), label_value("ns/my-gw"));
        assert_eq!(label_value("ns/my-gw"), "ns_my-gw");
        assert!(is_valid_label_value(&label_value("ns/my.gw")));
        assert!(is_valid_label_key(&label_key("9-lives")));
    }

    #[test]
    fn observe_recovers_ownership_from_labels_and_descriptions() {
        let t = tags::ownership("prod-1", &ObjKey::new("apps", "web"), "address", &BTreeMap::new());
        let labels = labels_from_tags(&t);
        let o = observed_tags(&labels, None, "prod-1");
        assert!(tags::owned_by(&o, "prod-1"));
        assert!(labels.iter().all(|(k, v)| o.get(k) == Some(v)));
        assert!(!tags::owned_by(&observed_tags(&labels, None, "prod-2"), "prod-2"));

        let d = ownership_description("prod-1", "apps/web", "url-map/80", &[("specHash", "abc")]);
        assert_eq!(d, r#"{"cloudgate":{"cluster":"prod-1","gateway":"apps/web","resource":"url-map/80","specHash":"abc"}}"#);
        let o = observed_tags(&BTreeMap::new(), Some(&d), "prod-1");
        assert!(tags::owned_by(&o, "prod-1"));
        assert_eq!(o[tags::GATEWAY], "apps/web");
        assert!(observed_tags(&BTreeMap::new(), Some("made by hand"), "prod-1").is_empty());
    }
}
