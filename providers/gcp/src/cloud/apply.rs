//! A `ChangeSet` executed in order with the fewest mutating calls Compute allows. Every call
//! that changes something returns an operation, waited for until DONE before the next change: a
//! resource being created cannot be referenced yet, and one with a change in flight cannot be
//! changed again. An operation still running when the wait budget is spent ends the apply with
//! `ready: false`; the next reconcile observes and continues.
//!
//! Per kind:
//! - URL maps, backend services, health checks, firewalls: one `update` (PUT) of the whole
//!   resource with the observed fingerprint; on 412 (stale fingerprint) the resource is read
//!   again and the update retried. A weight change is exactly one URL map update. Not `patch`:
//!   a merge patch leaves out what it does not name, and google-cloud-compute-v1 never
//!   serialises an empty list, so a patch could not empty `hostRules`, `pathMatchers` or a
//!   backend service's `backends` when the last route or endpoint zone goes.
//! - NEGs: only the endpoint difference, `attachNetworkEndpoints` first (new endpoints serve
//!   before old ones go), then `detachNetworkEndpoints`. A NEG is never recreated.
//! - Target proxies: `setUrlMap`, `setSslCertificates`; anything else with `patch`.
//! - Forwarding rules: `setTarget`, `setLabels`; the rest of a rule is immutable, so a change
//!   there recreates it (it is a leaf: nothing refers to it).
//! - Addresses: `setLabels`; certificates are immutable and named by content, so new content is
//!   a new certificate: created, then moved onto the proxy, then the old one deleted (the diff
//!   orders creates, then updates, then deletes).

use std::collections::BTreeMap;

use cloudgate_provider::cloud::{ApplyOutcome, CloudError};
use cloudgate_provider::diff::{Change, ChangeSet, ObservedResource};
use cloudgate_provider::resource::DesiredResource;
use cloudgate_provider::RenderContext;
use cloudgate_translate::plan::Certificate;
use cloudgate_translate::status::StatusAddress;
use cloudgate_translate::LoadBalancerPlan;
use serde_json::Value;

use super::compute::{Compute, Loc, Mutation, OpState};
use super::convert::{self, changed_fields, endpoint_changes, Links, Refs};
use super::errors::CallFailure;
use super::GcpCloud;
use crate::*;

/// Compute takes at most 500 endpoints per attach/detach call.
const ENDPOINTS_PER_CALL: usize = 500;
/// Attempts of an update that keeps meeting a stale fingerprint.
const FINGERPRINT_ATTEMPTS: usize = 3;

pub(crate) async fn apply(
    cloud: &GcpCloud,
    plan: Option<&LoadBalancerPlan>,
    changes: &ChangeSet,
    observed: &[ObservedResource],
    ctx: &RenderContext,
) -> Result<ApplyOutcome, CloudError> {
    let flavour = cloud.flavour(ctx)?;
    let loc = super::scope(flavour, ctx)?;
    let p = super::project(ctx)?;
    let links = Links { project: p.to_string(), region: if let Loc::Region(r) = &loc { Some(r.clone()) } else { None } };
    let known = observed.iter().map(|o| (o.key.kind.as_str(), o.key.name.as_str(), &o.spec)).chain(changes.changes.iter().filter_map(|c| {
        match c {
            Change::Create { desired } | Change::Update { desired, .. } => Some((desired.key.kind.as_str(), desired.key.name.as_str(), &desired.spec)),
            Change::Delete { .. } => None,
        }
    }));
    let mut run = Run {
        cloud,
        c: &cloud.compute,
        p,
        loc,
        refs: Refs::new(links, known),
        plan,
        mutations: 0,
        rule_ips: observed
            .iter()
            .filter(|o| o.key.kind == KIND_FORWARDING_RULE)
            .filter_map(|o| Some((o.key.name.clone(), o.spec["resolvedIP"].as_str()?.to_string())))
            .collect(),
    };
    for change in &changes.changes {
        let (what, result) = match change {
            Change::Create { desired } => ("create", run.create(desired).await),
            Change::Update { desired, observed } => ("update", run.update(desired, observed).await),
            Change::Delete { observed } => ("delete", run.delete(observed).await),
        };
        let key = change.key();
        match result {
            Ok(OpState::Done) => tracing::info!(kind = %key.kind, name = %key.name, "{what}d"),
            Ok(OpState::Running(op)) => {
                tracing::info!(kind = %key.kind, name = %key.name, operation = %op, "{what} still running");
                return Ok(ApplyOutcome { mutations: run.mutations, addresses: Vec::new(), ready: false });
            }
            Err(f) => {
                tracing::warn!(kind = %key.kind, name = %key.name, error = %f.error, "{what} failed");
                return Err(f.into());
            }
        }
    }
    let ips: std::collections::BTreeSet<&String> = run.rule_ips.values().collect();
    let addresses: Vec<StatusAddress> = ips.into_iter().map(|ip| StatusAddress { type_: "IPAddress".into(), value: ip.clone() }).collect();
    let ready = plan.is_none_or(|p| p.listeners.is_empty()) || !addresses.is_empty();
    Ok(ApplyOutcome { mutations: run.mutations, addresses, ready })
}

struct Run<'a> {
    cloud: &'a GcpCloud,
    c: &'a Compute,
    p: &'a str,
    /// The flavour's scope.
    loc: Loc,
    refs: Refs,
    plan: Option<&'a LoadBalancerPlan>,
    mutations: usize,
    /// Forwarding rule name -> IP number, for status addresses.
    rule_ips: BTreeMap<String, String>,
}

/// Returns early from a step whose operation is still running.
macro_rules! done {
    ($e:expr) => {
        if let OpState::Running(op) = $e {
            return Ok(OpState::Running(op));
        }
    };
}

impl Run<'_> {
    fn loc_for(&self, kind: &str, spec: &Value) -> Result<Loc, CallFailure> {
        match kind {
            KIND_FIREWALL => Ok(Loc::Global),
            KIND_NEG => spec["zone"].as_str().map(|z| Loc::Zone(z.to_string())).ok_or_else(|| CallFailure::permanent("networkEndpointGroups", "NEG spec without a zone")),
            _ => Ok(self.loc.clone()),
        }
    }

    async fn wait(&mut self, m: Mutation) -> Result<OpState, CallFailure> {
        self.mutations += 1;
        self.c.wait(self.p, &m).await
    }

    fn body(&self, d: &DesiredResource) -> Result<Value, CallFailure> {
        let mut b = convert::body(&d.key.kind, &d.key.name, &d.tags, &d.spec, &self.refs).map_err(|e| CallFailure::permanent(&d.key.kind, e))?;
        if d.key.kind == KIND_SSL_CERTIFICATE {
            let c = self.certificate(&d.spec)?;
            b["certificate"] = Value::from(c.cert_pem.clone());
            b["privateKey"] = Value::from(c.key_pem.clone());
        }
        Ok(b)
    }

    /// The PEM of a certificate comes from the plan (matched by Secret and content hash), never
    /// from the spec, which is printed and logged.
    fn certificate(&self, spec: &Value) -> Result<&Certificate, CallFailure> {
        let secret = spec["secret"].as_str().unwrap_or_default();
        let sha = spec["certificateSha256"].as_str().unwrap_or_default();
        self.plan
            .into_iter()
            .flat_map(|p| p.listeners.iter())
            .filter_map(|l| l.tls.as_ref())
            .flat_map(|t| t.certificates.iter())
            .find(|c| c.secret.to_string() == secret && c.sha256 == sha)
            .ok_or_else(|| CallFailure::permanent("sslCertificates.insert", format!("the plan has no certificate of Secret {secret} with sha256 {sha}")))
    }

    async fn create(&mut self, d: &DesiredResource) -> Result<OpState, CallFailure> {
        let kind = d.key.kind.as_str();
        let name = d.key.name.as_str();
        let loc = self.loc_for(kind, &d.spec)?;
        let b = self.body(d)?;
        let m = self.c.insert(self.p, kind, &loc, b).await?;
        done!(self.wait(m).await?);
        match kind {
            KIND_NEG => {
                let zone = d.spec["zone"].as_str().unwrap_or_default().to_string();
                let endpoints = d.spec["endpoints"].as_array().cloned().unwrap_or_default();
                done!(self.attach(&zone, name, endpoints).await?);
            }
            KIND_FORWARDING_RULE => {
                let rule = self.c.get(self.p, kind, &loc, name).await?;
                if let Some(ip) = rule["IPAddress"].as_str() {
                    self.rule_ips.insert(name.to_string(), ip.to_string());
                }
            }
            _ => {}
        }
        Ok(OpState::Done)
    }

    async fn update(&mut self, d: &DesiredResource, o: &ObservedResource) -> Result<OpState, CallFailure> {
        let kind = d.key.kind.as_str();
        let name = d.key.name.as_str();
        let loc = self.loc_for(kind, &o.spec)?;
        let changed = changed_fields(&d.spec, &o.spec);
        let labels_changed = !d.tags.iter().all(|(k, v)| o.tags.get(k) == Some(v));
        let immutable = |what: &str, fields: Vec<&String>| {
            CallFailure::permanent(
                &format!("{}.update", convert::collection(kind)),
                format!("{what} {name}: {fields:?} cannot change in place; delete the Gateway's resource to have it recreated"),
            )
        };
        match kind {
            KIND_FIREWALL | KIND_HEALTH_CHECK | KIND_BACKEND_SERVICE | KIND_URL_MAP => self.replace(d, o, &loc).await,
            KIND_NEG => {
                let other: Vec<&String> = changed.iter().filter(|k| *k != "endpoints").collect();
                if !other.is_empty() {
                    return Err(immutable("network endpoint group", other));
                }
                let zone = o.spec["zone"].as_str().unwrap_or_default().to_string();
                let want = d.spec["endpoints"].as_array().cloned().unwrap_or_default();
                let have = o.spec["endpoints"].as_array().cloned().unwrap_or_default();
                let (attach, detach) = endpoint_changes(&want, &have);
                done!(self.attach(&zone, name, attach).await?);
                self.detach(&zone, name, detach).await
            }
            KIND_ADDRESS => {
                if !changed.is_empty() {
                    return Err(immutable("address", changed.iter().collect()));
                }
                if labels_changed {
                    return self.set_labels(d, o, &loc).await;
                }
                Ok(OpState::Done)
            }
            KIND_SSL_CERTIFICATE => {
                if !changed.is_empty() {
                    return Err(immutable("SSL certificate", changed.iter().collect()));
                }
                Ok(OpState::Done)
            }
            KIND_TARGET_HTTP_PROXY | KIND_TARGET_HTTPS_PROXY => {
                if changed.contains("urlMap") {
                    let um = self.refs.links.scoped("urlMaps", d.spec["urlMap"].as_str().unwrap_or_default());
                    let m = self.c.set_url_map(self.p, kind, &loc, name, um).await?;
                    done!(self.wait(m).await?);
                }
                if changed.contains("sslCertificates") {
                    let certs: Vec<String> = d.spec["sslCertificates"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|n| self.refs.links.scoped("sslCertificates", n))
                        .collect();
                    let m = self.c.set_ssl_certificates(self.p, &loc, name, certs).await?;
                    done!(self.wait(m).await?);
                }
                let rest: Vec<&String> = changed.iter().filter(|k| !matches!(k.as_str(), "urlMap" | "sslCertificates")).collect();
                if rest.is_empty() {
                    return Ok(OpState::Done);
                }
                // Patch the remaining fields (description) with a fresh fingerprint: the
                // setters above changed it.
                let current = self.c.get(self.p, kind, &loc, name).await?;
                let mut b = serde_json::Map::new();
                for k in rest {
                    b.insert(k.clone(), d.spec[k.as_str()].clone());
                }
                b.insert("fingerprint".into(), current["fingerprint"].clone());
                let m = self.c.patch_proxy(self.p, kind, &loc, name, Value::Object(b)).await?;
                self.wait(m).await
            }
            KIND_FORWARDING_RULE => {
                let fixed: Vec<&String> = changed.iter().filter(|k| *k != "target").collect();
                if !fixed.is_empty() {
                    // IP, ports, scheme, network: immutable. The rule is a leaf; recreate it.
                    tracing::info!(name, fields = ?fixed, "recreating forwarding rule");
                    done!(self.delete(o).await?);
                    return self.create(d).await;
                }
                if changed.contains("target") {
                    let target = self.refs.links.scoped(
                        convert::collection(self.refs.proxy_kinds.get(d.spec["target"].as_str().unwrap_or_default()).copied().unwrap_or(KIND_TARGET_HTTP_PROXY)),
                        d.spec["target"].as_str().unwrap_or_default(),
                    );
                    let m = self.c.set_target(self.p, &loc, name, target).await?;
                    done!(self.wait(m).await?);
                }
                if labels_changed {
                    return self.set_labels(d, o, &loc).await;
                }
                Ok(OpState::Done)
            }
            other => Err(CallFailure::permanent("update", format!("unknown kind {other}"))),
        }
    }

    /// One `update` (PUT) of the whole resource. A stale fingerprint (412: someone changed it
    /// since observe) means: read it again and retry with the fresh one.
    async fn replace(&mut self, d: &DesiredResource, o: &ObservedResource, loc: &Loc) -> Result<OpState, CallFailure> {
        let kind = d.key.kind.as_str();
        let name = d.key.name.as_str();
        let mut fingerprint = o.spec.get("fingerprint").cloned();
        let mut attempt = 1;
        loop {
            let mut b = self.body(d)?;
            if let Some(f) = &fingerprint {
                b["fingerprint"] = f.clone();
            }
            match self.c.update(self.p, kind, loc, name, b).await {
                Ok(m) => return self.wait(m).await,
                Err(f) if f.is_stale_fingerprint() && attempt < FINGERPRINT_ATTEMPTS => {
                    tracing::info!(kind, name, attempt, "stale fingerprint; reading the resource again");
                    let fresh = self.c.get(self.p, kind, loc, name).await?;
                    fingerprint = fresh.get("fingerprint").cloned();
                    attempt += 1;
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// `setLabels` with our labels over whatever labels others added.
    async fn set_labels(&mut self, d: &DesiredResource, o: &ObservedResource, loc: &Loc) -> Result<OpState, CallFailure> {
        // Observed tags are the labels as read plus the shared ownership keys recovered from
        // them; only the former are labels.
        let mut labels: BTreeMap<String, String> =
            o.tags.iter().filter(|(k, _)| crate::labels::is_valid_label_key(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.extend(d.tags.clone());
        let fp = o.spec["labelFingerprint"].as_str().unwrap_or_default().to_string();
        let m = self.c.set_labels(self.p, &d.key.kind, loc, &d.key.name, &labels, &fp).await?;
        self.wait(m).await
    }

    fn with_instances(&self, zone: &str, endpoints: Vec<Value>) -> Result<Vec<Value>, CallFailure> {
        endpoints
            .into_iter()
            .map(|mut e| {
                if e.get("instance").is_none() {
                    let ip = e["ipAddress"].as_str().unwrap_or_default().to_string();
                    let instance = self.cloud.instances.as_ref().and_then(|f| f(zone, &ip)).ok_or_else(|| {
                        CallFailure::permanent(
                            "networkEndpointGroups.attachNetworkEndpoints",
                            format!("endpoint {ip} in {zone}: GCE_VM_IP_PORT endpoints need their VM instance, and none is known for it"),
                        )
                    })?;
                    e["instance"] = Value::from(instance);
                }
                Ok(e)
            })
            .collect()
    }

    async fn attach(&mut self, zone: &str, neg: &str, endpoints: Vec<Value>) -> Result<OpState, CallFailure> {
        let endpoints = self.with_instances(zone, endpoints)?;
        for chunk in endpoints.chunks(ENDPOINTS_PER_CALL) {
            let m = self.c.attach(self.p, zone, neg, chunk.to_vec()).await?;
            done!(self.wait(m).await?);
        }
        Ok(OpState::Done)
    }

    async fn detach(&mut self, zone: &str, neg: &str, endpoints: Vec<Value>) -> Result<OpState, CallFailure> {
        for chunk in endpoints.chunks(ENDPOINTS_PER_CALL) {
            let m = self.c.detach(self.p, zone, neg, chunk.to_vec()).await?;
            done!(self.wait(m).await?);
        }
        Ok(OpState::Done)
    }

    /// Deletes; something already gone counts as deleted.
    async fn delete(&mut self, o: &ObservedResource) -> Result<OpState, CallFailure> {
        let kind = o.key.kind.as_str();
        let loc = self.loc_for(kind, &o.spec)?;
        let state = match self.c.delete(self.p, kind, &loc, &o.key.name).await {
            Ok(m) => match self.wait(m).await {
                Err(f) if f.is_not_found() => OpState::Done,
                other => other?,
            },
            Err(f) if f.is_not_found() => OpState::Done,
            Err(f) => return Err(f),
        };
        if kind == KIND_FORWARDING_RULE {
            self.rule_ips.remove(&o.key.name);
        }
        Ok(state)
    }
}
