//! What one Gateway owns in Compute, read back in the vocabulary of `crate::spec` so that the
//! diff against a fresh render is empty in the steady state.
//!
//! Every cloudgate name starts with `cg-`, so each collection of the flavour's scope is listed
//! with that filter (one call per collection, NEGs of all zones in one `aggregatedList`), then
//! only what carries this cluster's and this Gateway's ownership is kept: labels on addresses and
//! forwarding rules, the ownership JSON in `description` on every other kind. Anything else, a
//! user's resource that happens to share the prefix included, is invisible.

use std::collections::BTreeMap;

use cloudgate_provider::cloud::{CloudError, Owner};
use cloudgate_provider::diff::ObservedResource;
use cloudgate_provider::resource::ResourceKey;
use cloudgate_provider::{tags, RenderContext};
use serde_json::Value;

use super::compute::Loc;
use super::convert::{self, forwarding_rule_ip_from_description, labels_of, observed_spec};
use super::GcpCloud;
use crate::labels::{label_key, label_value, observed_tags};
use crate::*;

/// Compute's regex filter form; every name cloudgate gives starts with `cg-`.
pub(crate) const NAME_FILTER: &str = r#"name eq "cg-.*""#;

pub(crate) async fn observe(cloud: &GcpCloud, owner: &Owner, ctx: &RenderContext) -> Result<Vec<ObservedResource>, CloudError> {
    let flavour = cloud.flavour(ctx)?;
    let loc = super::scope(flavour, ctx)?;
    let p = super::project(ctx)?;
    let c = &cloud.compute;
    let mut out = Vec::new();
    // Addresses before forwarding rules: a rule reads back the IP number, mapped to the
    // address's name.
    let kinds = [
        (KIND_FIREWALL, Loc::Global),
        (KIND_ADDRESS, loc.clone()),
        (KIND_SSL_CERTIFICATE, loc.clone()),
        (KIND_HEALTH_CHECK, loc.clone()),
        (KIND_BACKEND_SERVICE, loc.clone()),
        (KIND_URL_MAP, loc.clone()),
        (KIND_TARGET_HTTP_PROXY, loc.clone()),
        (KIND_TARGET_HTTPS_PROXY, loc.clone()),
        (KIND_FORWARDING_RULE, loc.clone()),
    ];
    let mut address_names: BTreeMap<String, String> = BTreeMap::new();
    for (kind, l) in &kinds {
        for raw in c.list(p, kind, l, NAME_FILTER).await? {
            let Some(mut o) = owned(kind, &raw, owner) else { continue };
            match *kind {
                KIND_ADDRESS => {
                    if let Some(ip) = raw["address"].as_str() {
                        address_names.insert(ip.to_string(), o.key.name.clone());
                    }
                }
                KIND_FORWARDING_RULE => fix_forwarding_rule(&mut o.spec, &raw, &address_names),
                KIND_SSL_CERTIFICATE => fix_certificate(&mut o.spec, &raw),
                _ => {}
            }
            out.push(o);
        }
    }
    for raw in c.list_negs(p, NAME_FILTER).await? {
        let Some(mut o) = owned(KIND_NEG, &raw, owner) else { continue };
        let zone = o.spec["zone"].as_str().unwrap_or_default().to_string();
        let mut endpoints = c.list_endpoints(p, &zone, &o.key.name).await?;
        for e in endpoints.iter_mut() {
            convert::links_to_names(e);
        }
        convert::sort_endpoints(&mut endpoints);
        o.spec["endpoints"] = Value::Array(endpoints);
        out.push(o);
    }
    Ok(out)
}

/// The resource as observed, if this owner's; `None` for anything else.
pub(crate) fn owned(kind: &str, raw: &Value, owner: &Owner) -> Option<ObservedResource> {
    let labels = labels_of(raw);
    let t = observed_tags(&labels, raw["description"].as_str(), &owner.cluster_id);
    if !tags::owned_by(&t, &owner.cluster_id) {
        return None;
    }
    let gw = owner.gateway.to_string();
    let ours = t.get(tags::GATEWAY) == Some(&gw) || labels.get(&label_key(tags::GATEWAY)) == Some(&label_value(&gw));
    if !ours {
        return None;
    }
    Some(ObservedResource {
        key: ResourceKey { kind: kind.to_string(), name: raw["name"].as_str()?.to_string() },
        id: raw["selfLink"].as_str().unwrap_or_default().to_string(),
        tags: t,
        spec: observed_spec(raw),
    })
}

/// `IPAddress` reads back as the IP number. Report what the rule was created with (kept in its
/// description: an owned address's name, a user's address name, or a literal), else the owned
/// address with that IP, else the number. `resolvedIP` keeps the number for status addresses.
fn fix_forwarding_rule(spec: &mut Value, raw: &Value, address_names: &BTreeMap<String, String>) {
    let ip = raw["IPAddress"].as_str().unwrap_or_default().to_string();
    let given = forwarding_rule_ip_from_description(raw["description"].as_str())
        .or_else(|| address_names.get(&ip).cloned())
        .unwrap_or_else(|| ip.clone());
    spec["IPAddress"] = Value::from(given);
    spec["resolvedIP"] = Value::from(ip);
}

/// Certificates: which Secret content they hold comes from the ownership description; the PEM
/// itself is left out of the spec (it is large and never compared).
fn fix_certificate(spec: &mut Value, raw: &Value) {
    let owner: Value = raw["description"].as_str().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    for k in ["secret", "certificateSha256"] {
        if let Some(v) = owner["cloudgate"][k].as_str() {
            spec[k] = Value::from(v);
        }
    }
    if let Value::Object(m) = spec {
        m.remove("certificate");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{labels_from_tags, ownership_description};
    use cloudgate_translate::model::ObjKey;
    use serde_json::json;

    fn owner() -> Owner {
        Owner { cluster_id: "c1".into(), gateway: ObjKey::new("apps", "web") }
    }

    #[test]
    fn only_this_gateways_resources_are_kept() {
        let mine = json!({"name": "cg-a", "selfLink": "x/cg-a", "description": ownership_description("c1", "apps/web", "url-map/80", &[])});
        let other_gw = json!({"name": "cg-b", "description": ownership_description("c1", "apps/other", "url-map/80", &[])});
        let other_cluster = json!({"name": "cg-c", "description": ownership_description("c2", "apps/web", "url-map/80", &[])});
        let foreign = json!({"name": "cg-d", "description": "made by hand"});
        let bare = json!({"name": "cg-e"});
        let o = owned(KIND_URL_MAP, &mine, &owner()).expect("mine");
        assert_eq!(o.key.name, "cg-a");
        assert_eq!(o.id, "x/cg-a");
        for r in [other_gw, other_cluster, foreign, bare] {
            assert!(owned(KIND_URL_MAP, &r, &owner()).is_none(), "{r}");
        }
        let labels = labels_from_tags(&tags::ownership("c1", &ObjKey::new("apps", "web"), "address", &Default::default()));
        let addr = json!({"name": "cg-f", "labels": labels, "description": "cloudgate Gateway apps/web", "address": "34.1.1.1"});
        let o = owned(KIND_ADDRESS, &addr, &owner()).expect("labelled");
        assert!(tags::owned_by(&o.tags, "c1"));
        assert!(o.spec.get("labels").is_none());
        let labels = labels_from_tags(&tags::ownership("c1", &ObjKey::new("apps", "other"), "address", &Default::default()));
        assert!(owned(KIND_ADDRESS, &json!({"name": "cg-g", "labels": labels}), &owner()).is_none());
    }

    #[test]
    fn forwarding_rules_report_the_address_they_were_given() {
        let mut names = BTreeMap::new();
        names.insert("34.1.1.1".to_string(), "cg-addr".to_string());
        let raw = json!({"IPAddress": "34.1.1.1", "description": convert::forwarding_rule_description("cg-addr")});
        let mut spec = observed_spec(&raw);
        fix_forwarding_rule(&mut spec, &raw, &BTreeMap::new());
        assert_eq!(spec["IPAddress"], "cg-addr");
        assert_eq!(spec["resolvedIP"], "34.1.1.1");
        let raw = json!({"IPAddress": "34.1.1.1"});
        let mut spec = observed_spec(&raw);
        fix_forwarding_rule(&mut spec, &raw, &names);
        assert_eq!(spec["IPAddress"], "cg-addr");
        let raw = json!({"IPAddress": "35.2.2.2"});
        let mut spec = observed_spec(&raw);
        fix_forwarding_rule(&mut spec, &raw, &names);
        assert_eq!(spec["IPAddress"], "35.2.2.2");
    }

    #[test]
    fn certificates_report_their_secret_and_content_hash() {
        let raw = json!({"type": "SELF_MANAGED", "certificate": "-----BEGIN CERTIFICATE-----",
            "description": ownership_description("c1", "apps/web", "certificate/apps/tls", &[("certificateSha256", "abc"), ("secret", "apps/tls")])});
        let mut spec = observed_spec(&raw);
        fix_certificate(&mut spec, &raw);
        assert_eq!(spec["secret"], "apps/tls");
        assert_eq!(spec["certificateSha256"], "abc");
        assert!(spec.get("certificate").is_none());
    }
}
