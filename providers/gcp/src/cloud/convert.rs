//! Desired specs -> Compute request bodies, and Compute resources -> observed specs (pure).
//!
//! Specs name other resources by name (see `crate::spec`); the API wants references as URLs and
//! returns them as full selfLinks. Bodies get partial URLs (`projects/p/global/urlMaps/x`, which
//! Compute accepts everywhere a reference goes); observed specs get every reference field cut
//! back to its last path segment, so both sides of the diff speak names.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::*;

/// Where references point: the project, and the region of the flavour's regional resources
/// (`None`: global resources).
#[derive(Clone, Debug)]
pub(crate) struct Links {
    pub project: String,
    pub region: Option<String>,
}

impl Links {
    pub fn global(&self, coll: &str, name: &str) -> String {
        format!("projects/{}/global/{coll}/{name}", self.project)
    }

    pub fn regional(&self, region: &str, coll: &str, name: &str) -> String {
        format!("projects/{}/regions/{region}/{coll}/{name}", self.project)
    }

    pub fn zonal(&self, zone: &str, coll: &str, name: &str) -> String {
        format!("projects/{}/zones/{zone}/{coll}/{name}", self.project)
    }

    /// In the flavour's scope: regional resources on the regional flavours, global otherwise.
    pub fn scoped(&self, coll: &str, name: &str) -> String {
        match &self.region {
            Some(r) => self.regional(r, coll, name),
            None => self.global(coll, name),
        }
    }

    /// A name, or a reference the user already wrote as a path or URL (kept as it is).
    fn or_given(name: &str, make: impl FnOnce(&str) -> String) -> String {
        if name.contains('/') { name.to_string() } else { make(name) }
    }

    pub fn network(&self, name: &str) -> String {
        Self::or_given(name, |n| self.global("networks", n))
    }

    pub fn subnetwork(&self, region: &str, name: &str) -> String {
        Self::or_given(name, |n| self.regional(region, "subnetworks", n))
    }
}

/// `us-central1-a` -> `us-central1`.
pub(crate) fn region_of_zone(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(r, _)| r)
}

pub(crate) fn last_segment(s: &str) -> &str {
    s.trim_end_matches('/').rsplit('/').next().unwrap_or(s)
}

/// Fields whose values (a string or a list of strings) are references to other resources.
const LINK_KEYS: &[&str] = &[
    "backendService",
    "service",
    "defaultService",
    "group",
    "healthChecks",
    "urlMap",
    "sslCertificates",
    "target",
    "network",
    "subnetwork",
    "region",
    "zone",
    "instance",
    "users",
    "usedBy",
];

/// Every reference, at any depth, cut back to the referenced resource's name.
pub(crate) fn links_to_names(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if LINK_KEYS.contains(&k.as_str()) {
                    match x {
                        Value::String(s) => *s = last_segment(s).to_string(),
                        Value::Array(a) => {
                            for e in a.iter_mut() {
                                match e {
                                    Value::String(s) => *s = last_segment(s).to_string(),
                                    other => links_to_names(other),
                                }
                            }
                        }
                        other => links_to_names(other),
                    }
                } else {
                    links_to_names(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(links_to_names),
        _ => {}
    }
}

/// Whole numbers the client library read into `float`/`double` fields (maxRatePerEndpoint,
/// fault percentages) back as integers, the form specs write them in.
pub(crate) fn integral_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *v = if f >= 0.0 { Value::from(f as u64) } else { Value::from(f as i64) };
            }
        }
        Value::Object(m) => m.values_mut().for_each(integral_numbers),
        Value::Array(a) => a.iter_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// What observe keeps of a resource as read: everything the API returned except identity and
/// bookkeeping (`name` is the key, `selfLink` the id, labels become tags), references as names,
/// whole numbers as integers. Fingerprints stay: apply sends them back with updates.
pub(crate) fn observed_spec(raw: &Value) -> Value {
    let mut v = raw.clone();
    if let Value::Object(m) = &mut v {
        for k in ["id", "name", "kind", "selfLink", "selfLinkWithId", "creationTimestamp", "labels"] {
            m.remove(k);
        }
    }
    links_to_names(&mut v);
    integral_numbers(&mut v);
    v
}

pub(crate) fn labels_of(raw: &Value) -> BTreeMap<String, String> {
    raw["labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// Collection segment of a kind in URLs.
pub(crate) fn collection(kind: &str) -> &'static str {
    match kind {
        KIND_ADDRESS => "addresses",
        KIND_HEALTH_CHECK => "healthChecks",
        KIND_NEG => "networkEndpointGroups",
        KIND_BACKEND_SERVICE => "backendServices",
        KIND_URL_MAP => "urlMaps",
        KIND_SSL_CERTIFICATE => "sslCertificates",
        KIND_TARGET_HTTP_PROXY => "targetHttpProxies",
        KIND_TARGET_HTTPS_PROXY => "targetHttpsProxies",
        KIND_FORWARDING_RULE => "forwardingRules",
        KIND_FIREWALL => "firewalls",
        _ => "unknown",
    }
}

/// What references in one apply resolve against: the resources that exist (observed) or are
/// being created (the change set), by name.
#[derive(Clone, Debug)]
pub(crate) struct Refs {
    pub links: Links,
    /// NEG name -> zone.
    pub neg_zones: BTreeMap<String, String>,
    /// Target proxy name -> its kind (HTTP or HTTPS).
    pub proxy_kinds: BTreeMap<String, &'static str>,
}

impl Refs {
    pub fn new<'a>(links: Links, known: impl IntoIterator<Item = (&'a str, &'a str, &'a Value)>) -> Self {
        let mut neg_zones = BTreeMap::new();
        let mut proxy_kinds = BTreeMap::new();
        for (kind, name, spec) in known {
            match kind {
                KIND_NEG => {
                    if let Some(z) = spec["zone"].as_str() {
                        neg_zones.insert(name.to_string(), z.to_string());
                    }
                }
                KIND_TARGET_HTTP_PROXY => {
                    proxy_kinds.insert(name.to_string(), KIND_TARGET_HTTP_PROXY);
                }
                KIND_TARGET_HTTPS_PROXY => {
                    proxy_kinds.insert(name.to_string(), KIND_TARGET_HTTPS_PROXY);
                }
                _ => {}
            }
        }
        Refs { links, neg_zones, proxy_kinds }
    }

    fn neg(&self, name: &str) -> Result<String, String> {
        if name.contains('/') {
            return Ok(name.to_string());
        }
        let zone = self.neg_zones.get(name).ok_or_else(|| format!("network endpoint group {name} neither exists nor is being created"))?;
        Ok(self.links.zonal(zone, "networkEndpointGroups", name))
    }

    fn proxy(&self, name: &str) -> Result<String, String> {
        if name.contains('/') {
            return Ok(name.to_string());
        }
        let kind = self.proxy_kinds.get(name).ok_or_else(|| format!("target proxy {name} neither exists nor is being created"))?;
        Ok(self.links.scoped(collection(kind), name))
    }

    /// A forwarding rule's `IPAddress`: an IP literal stays; a name is an address in the
    /// flavour's scope (ours, or the user's reserved one for NamedAddress).
    fn ip_address(&self, v: &str) -> String {
        if v.parse::<std::net::IpAddr>().is_ok() || v.contains('/') { v.to_string() } else { self.links.scoped("addresses", v) }
    }
}

fn map_str(m: &mut Map<String, Value>, key: &str, f: impl Fn(&str) -> Result<String, String>) -> Result<(), String> {
    match m.get_mut(key) {
        Some(Value::String(s)) => *s = f(s)?,
        Some(Value::Array(a)) => {
            for e in a.iter_mut() {
                if let Value::String(s) = e {
                    *s = f(s)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Every `key` at any depth.
fn map_deep(v: &mut Value, key: &str, f: &dyn Fn(&str) -> String) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k == key => *s = f(s),
                    other => map_deep(other, key, f),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| map_deep(x, key, f)),
        _ => {}
    }
}

/// Description of a forwarding rule: remembers the `IPAddress` it was created with (a name or
/// a literal), because the API only ever reads back the IP number and the rule's `IPAddress`
/// cannot change afterwards. Observe reports this value, so the diff compares like with like.
pub(crate) fn forwarding_rule_description(ip_address: &str) -> String {
    serde_json::json!({"cloudgate": {"ipAddress": ip_address}}).to_string()
}

pub(crate) fn forwarding_rule_ip_from_description(description: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(description?).ok()?;
    v["cloudgate"]["ipAddress"].as_str().map(str::to_string)
}

/// The request body that creates (or, with a fingerprint added, replaces) the resource `name`
/// of `kind` as `spec` describes it. Certificates get their PEM from the caller.
pub(crate) fn body(kind: &str, name: &str, labels: &BTreeMap<String, String>, spec: &Value, refs: &Refs) -> Result<Value, String> {
    let mut b = spec.as_object().cloned().ok_or_else(|| format!("{kind} {name}: spec is not an object"))?;
    let links = &refs.links;
    // Region and zone say which collection the resource lives in; in a body they are output only.
    let region = b.remove("region").and_then(|r| r.as_str().map(str::to_string)).or_else(|| links.region.clone());
    b.insert("name".into(), Value::from(name));
    match kind {
        KIND_FIREWALL => map_str(&mut b, "network", |n| Ok(links.network(n)))?,
        KIND_ADDRESS => {
            let region = region.clone().unwrap_or_default();
            map_str(&mut b, "subnetwork", |n| Ok(links.subnetwork(&region, n)))?;
        }
        KIND_HEALTH_CHECK => {}
        KIND_NEG => {
            let zone = b.remove("zone").and_then(|z| z.as_str().map(str::to_string)).ok_or_else(|| format!("NEG {name} has no zone"))?;
            // Not a field of the resource: the attached endpoints are reconciled separately.
            b.remove("endpoints");
            map_str(&mut b, "network", |n| Ok(links.network(n)))?;
            map_str(&mut b, "subnetwork", |n| Ok(links.subnetwork(region_of_zone(&zone), n)))?;
        }
        KIND_BACKEND_SERVICE => {
            if let Some(Value::Array(backends)) = b.get_mut("backends") {
                for be in backends.iter_mut().filter_map(Value::as_object_mut) {
                    map_str(be, "group", |n| refs.neg(n))?;
                }
            }
            map_str(&mut b, "healthChecks", |n| Ok(Links::or_given(n, |n| links.scoped("healthChecks", n))))?;
        }
        KIND_URL_MAP => {
            let mut v = Value::Object(b);
            map_deep(&mut v, "backendService", &|n| Links::or_given(n, |n| links.scoped("backendServices", n)));
            let Value::Object(m) = v else { unreachable!() };
            b = m;
        }
        KIND_TARGET_HTTP_PROXY | KIND_TARGET_HTTPS_PROXY => {
            map_str(&mut b, "urlMap", |n| Ok(Links::or_given(n, |n| links.scoped("urlMaps", n))))?;
            map_str(&mut b, "sslCertificates", |n| Ok(Links::or_given(n, |n| links.scoped("sslCertificates", n))))?;
        }
        KIND_SSL_CERTIFICATE => {
            // Identify the plan's certificate; the API has no such fields.
            b.remove("secret");
            b.remove("certificateSha256");
        }
        KIND_FORWARDING_RULE => {
            let given = b.get("IPAddress").and_then(Value::as_str).unwrap_or_default().to_string();
            b.insert("IPAddress".into(), Value::from(refs.ip_address(&given)));
            b.insert("description".into(), Value::from(forwarding_rule_description(&given)));
            map_str(&mut b, "target", |n| refs.proxy(n))?;
            map_str(&mut b, "network", |n| Ok(links.network(n)))?;
            let region = region.clone().unwrap_or_default();
            map_str(&mut b, "subnetwork", |n| Ok(links.subnetwork(&region, n)))?;
        }
        other => return Err(format!("unknown kind {other}")),
    }
    if matches!(kind, KIND_ADDRESS | KIND_FORWARDING_RULE) && !labels.is_empty() {
        b.insert("labels".into(), serde_json::to_value(labels).unwrap_or_default());
    }
    Ok(Value::Object(b))
}

/// `(ipAddress, port)`: how endpoints are matched between the plan and the NEG.
fn endpoint_key(e: &Value) -> (String, i64) {
    (e["ipAddress"].as_str().unwrap_or_default().to_string(), e["port"].as_i64().unwrap_or_default())
}

/// Endpoints to attach (as desired) and to detach (as observed, so the identity Compute matches
/// on, instance included, is exactly what it reported).
pub(crate) fn endpoint_changes(desired: &[Value], observed: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let want: BTreeSet<(String, i64)> = desired.iter().map(endpoint_key).collect();
    let have: BTreeSet<(String, i64)> = observed.iter().map(endpoint_key).collect();
    let attach = desired.iter().filter(|e| !have.contains(&endpoint_key(e))).cloned().collect();
    let detach = observed.iter().filter(|e| !want.contains(&endpoint_key(e))).cloned().collect();
    (attach, detach)
}

/// Sorts endpoints the way render does (by ipAddress, then port).
pub(crate) fn sort_endpoints(v: &mut [Value]) {
    v.sort_by_key(endpoint_key);
}

/// Top-level fields of `desired` that `observed` does not hold.
pub(crate) fn changed_fields(desired: &Value, observed: &Value) -> BTreeSet<String> {
    desired
        .as_object()
        .map(|d| {
            d.iter()
                .filter(|(k, v)| !cloudgate_provider::diff::contains(observed.get(k.as_str()).unwrap_or(&Value::Null), v))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn links(region: Option<&str>) -> Links {
        Links { project: "p".into(), region: region.map(str::to_string) }
    }

    #[test]
    fn observed_specs_speak_names_and_integers() {
        let raw = json!({
            "kind": "compute#backendService", "id": "123", "name": "cg-bs", "creationTimestamp": "t",
            "selfLink": "http://127.0.0.1:1/compute/v1/projects/p/global/backendServices/cg-bs",
            "fingerprint": "abc=",
            "healthChecks": ["https://www.googleapis.com/compute/v1/projects/p/global/healthChecks/cg-hc"],
            "backends": [{"group": "http://h/compute/v1/projects/p/zones/us-central1-a/networkEndpointGroups/cg-neg",
                          "balancingMode": "RATE", "maxRatePerEndpoint": 100000000.0}],
            "defaultRouteAction": {"faultInjectionPolicy": {"abort": {"httpStatus": 404, "percentage": 100.0}}},
            "mirror": {"mirrorPercent": 12.5},
        });
        let s = observed_spec(&raw);
        assert_eq!(s["healthChecks"], json!(["cg-hc"]));
        assert_eq!(s["backends"][0]["group"], "cg-neg");
        assert_eq!(s["backends"][0]["maxRatePerEndpoint"], json!(100000000));
        assert_eq!(s["defaultRouteAction"]["faultInjectionPolicy"]["abort"]["percentage"], json!(100));
        assert_eq!(s["mirror"]["mirrorPercent"], json!(12.5));
        assert_eq!(s["fingerprint"], "abc=");
        for k in ["kind", "id", "name", "selfLink", "creationTimestamp"] {
            assert!(s.get(k).is_none(), "{k}");
        }
    }

    #[test]
    fn bodies_reference_by_partial_url() {
        let refs = Refs::new(
            links(None),
            [
                (KIND_NEG, "cg-neg", &json!({"zone": "us-central1-b"})),
                (KIND_TARGET_HTTPS_PROXY, "cg-px", &json!({})),
            ]
            .iter()
            .map(|(k, n, s)| (*k, *n, *s)),
        );
        let bs = json!({"loadBalancingScheme": "EXTERNAL_MANAGED", "protocol": "HTTP", "description": "d",
            "backends": [{"group": "cg-neg", "balancingMode": "RATE", "maxRatePerEndpoint": 5}], "healthChecks": ["cg-hc"]});
        let b = body(KIND_BACKEND_SERVICE, "cg-bs", &BTreeMap::new(), &bs, &refs).unwrap();
        assert_eq!(b["name"], "cg-bs");
        assert_eq!(b["backends"][0]["group"], "projects/p/zones/us-central1-b/networkEndpointGroups/cg-neg");
        assert_eq!(b["healthChecks"][0], "projects/p/global/healthChecks/cg-hc");
        let missing = json!({"backends": [{"group": "cg-nope"}]});
        assert!(body(KIND_BACKEND_SERVICE, "x", &BTreeMap::new(), &missing, &refs).is_err());

        let um = json!({"defaultRouteAction": {"weightedBackendServices": [{"backendService": "cg-a", "weight": 1}]},
            "pathMatchers": [{"name": "pm", "routeRules": [{"routeAction": {"requestMirrorPolicy": {"backendService": "cg-m"}}}]}]});
        let b = body(KIND_URL_MAP, "cg-um", &BTreeMap::new(), &um, &refs).unwrap();
        assert_eq!(b["defaultRouteAction"]["weightedBackendServices"][0]["backendService"], "projects/p/global/backendServices/cg-a");
        assert_eq!(b["pathMatchers"][0]["routeRules"][0]["routeAction"]["requestMirrorPolicy"]["backendService"], "projects/p/global/backendServices/cg-m");
        assert_eq!(b["pathMatchers"][0]["name"], "pm");

        let mut labels = BTreeMap::new();
        labels.insert("cloudgate-cluster".to_string(), "c".to_string());
        let fr = json!({"IPAddress": "cg-addr", "IPProtocol": "TCP", "portRange": "443-443", "target": "cg-px", "loadBalancingScheme": "EXTERNAL_MANAGED"});
        let b = body(KIND_FORWARDING_RULE, "cg-fr", &labels, &fr, &refs).unwrap();
        assert_eq!(b["IPAddress"], "projects/p/global/addresses/cg-addr");
        assert_eq!(b["target"], "projects/p/global/targetHttpsProxies/cg-px");
        assert_eq!(b["labels"]["cloudgate-cluster"], "c");
        assert_eq!(forwarding_rule_ip_from_description(b["description"].as_str()).as_deref(), Some("cg-addr"));
        let literal = json!({"IPAddress": "34.1.2.3", "target": "cg-px"});
        assert_eq!(body(KIND_FORWARDING_RULE, "cg-fr", &labels, &literal, &refs).unwrap()["IPAddress"], "34.1.2.3");
    }

    #[test]
    fn regional_and_zonal_bodies_drop_output_only_scope_fields() {
        let refs = Refs::new(links(Some("us-east1")), std::iter::empty());
        let neg = json!({"zone": "us-east1-b", "networkEndpointType": "GCE_VM_IP_PORT", "network": "vpc", "subnetwork": "sub",
            "description": "d", "endpoints": [{"ipAddress": "10.0.0.1", "port": 80}]});
        let b = body(KIND_NEG, "cg-neg", &BTreeMap::new(), &neg, &refs).unwrap();
        assert!(b.get("zone").is_none() && b.get("endpoints").is_none());
        assert_eq!(b["network"], "projects/p/global/networks/vpc");
        assert_eq!(b["subnetwork"], "projects/p/regions/us-east1/subnetworks/sub");
        let um = json!({"region": "us-east1", "defaultRouteAction": {"weightedBackendServices": [{"backendService": "cg-a", "weight": 1}]}});
        let b = body(KIND_URL_MAP, "cg-um", &BTreeMap::new(), &um, &refs).unwrap();
        assert!(b.get("region").is_none());
        assert_eq!(b["defaultRouteAction"]["weightedBackendServices"][0]["backendService"], "projects/p/regions/us-east1/backendServices/cg-a");
        let cert = json!({"type": "SELF_MANAGED", "secret": "ns/s", "certificateSha256": "ab", "description": "d", "region": "us-east1"});
        let b = body(KIND_SSL_CERTIFICATE, "cg-c", &BTreeMap::new(), &cert, &refs).unwrap();
        assert_eq!(b, json!({"name": "cg-c", "type": "SELF_MANAGED", "description": "d"}));
    }

    #[test]
    fn endpoint_differences() {
        let d = vec![json!({"ipAddress": "10.0.0.1", "port": 80}), json!({"ipAddress": "10.0.0.3", "port": 80})];
        let o = vec![
            json!({"ipAddress": "10.0.0.1", "port": 80, "instance": "n1"}),
            json!({"ipAddress": "10.0.0.2", "port": 80, "instance": "n2"}),
        ];
        let (attach, detach) = endpoint_changes(&d, &o);
        assert_eq!(attach, vec![json!({"ipAddress": "10.0.0.3", "port": 80})]);
        assert_eq!(detach, vec![json!({"ipAddress": "10.0.0.2", "port": 80, "instance": "n2"})]);
        let (a, d2) = endpoint_changes(&d, &d);
        assert!(a.is_empty() && d2.is_empty());
    }

    #[test]
    fn changed_top_level_fields() {
        let d = json!({"target": "a", "portRange": "80-80", "IPAddress": "x"});
        let o = json!({"target": "b", "portRange": "80-80", "IPAddress": "x", "fingerprint": "f"});
        assert_eq!(changed_fields(&d, &o), ["target".to_string()].into_iter().collect());
    }
}
