//! Finds every Lattice resource one Gateway owns (by its ownership tags) and reads it back in the
//! render's vocabulary: names instead of ids and ARNs, so that in steady state `diff` finds
//! nothing. Anything without our tags, or tagged for another cluster or Gateway, is never
//! returned.
//!
//! Lattice lists carry no tags and only summaries, so the reads are:
//! - ListServiceNetworks, ListServices, ListTargetGroups (whole region, paged); only names with
//!   cloudgate's `cg-` prefix are looked at further, and their tags come from
//!   ListTagsForResource (cached by ARN, see `CloudOptions::tag_cache_ttl`);
//! - per owned service network: ListServiceNetworkVpcAssociations,
//!   ListServiceNetworkServiceAssociations;
//! - per owned service: ListListeners, and ListRules of every non-passthrough listener;
//! - per owned target group: ListTargets;
//! - GetServiceNetwork / GetService (auth type), GetListener (default action), GetRule (match
//!   and action), GetTargetGroup (config, health check) only when the summary's `lastUpdatedAt`
//!   differs from the last read (`sdk::DescribeCache`): in steady state, observe is List calls
//!   only.
//!
//! Associations, listeners and rules carry our tags on the ground and on AWS (Create* takes
//! tags for all of them), so they are judged by their own tags like everything else; an
//! association's key is its [`tags::NAME`] tag, since Lattice gives it no name.

use std::collections::HashMap;

use cloudgate_provider::cloud::{CloudError, Owner};
use cloudgate_provider::diff::ObservedResource;
use cloudgate_provider::resource::ResourceKey;
use cloudgate_provider::tags;
use serde_json::{json, Map, Value};

use super::convert::{action_to_json, dns_to_json, match_to_json, tg_config_to_json};
use super::errors::NOT_FOUND;
use super::sdk::{Clients, Described, Tags};
use crate::kind;

/// Every name cloudgate gives a Lattice resource starts with this (render's `NAME_PREFIX`).
const OUR_PREFIX: &str = "cg-";

fn observed(kind: &str, name: String, arn: &str, tags: Tags, spec: Value) -> ObservedResource {
    ObservedResource { key: ResourceKey { kind: kind.into(), name }, id: arn.to_string(), tags, spec }
}

/// A service association, read back with `network` as the service network's identifier.
fn service_association(
    a: &aws_sdk_vpclattice::types::ServiceNetworkServiceAssociationSummary,
    network: &str,
    arn: &str,
    t: Tags,
    key_name: &dyn Fn(&Tags, &str) -> String,
) -> ObservedResource {
    let spec = json!({
        "serviceIdentifier": a.service_name(),
        "serviceNetworkIdentifier": network,
        "status": a.status().map(|s| s.as_str()),
        "dnsEntry": dns_to_json(a.dns_entry()),
    });
    observed(kind::SERVICE_NETWORK_SERVICE_ASSOCIATION, key_name(&t, a.id().unwrap_or(arn)), arn, t, spec)
}

/// Collects every page of a Lattice List call.
macro_rules! list_all {
    ($cl:expr, $op:literal, $req:expr) => {{
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = $cl.call($op, $req.max_results($cl.page_size).set_next_token(token.take()).send()).await?;
            all.extend(out.items().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        all
    }};
}

/// Names by id and by ARN, for turning identifiers in actions back into names.
#[derive(Default)]
struct Names(HashMap<String, String>);

impl Names {
    fn add(&mut self, id: Option<&str>, arn: Option<&str>, name: &str) {
        for k in [id, arn].into_iter().flatten() {
            self.0.insert(k.to_string(), name.to_string());
        }
    }

    /// Unknown identifiers (a target group deleted under a rule) stay as they are: they differ
    /// from every name render uses, so the diff updates the rule.
    fn of(&self, ident: &str) -> String {
        self.0.get(ident).cloned().unwrap_or_else(|| ident.to_string())
    }
}

/// `adopted`: the service network the class adopts (name, id or ARN), if any. It is returned as
/// seen (with its own tags, so `diff` never touches it) under the identifier render uses, so
/// that apply can find its id; only our associations in it are read.
pub async fn observe(cl: &Clients, owner: &Owner, adopted: Option<&str>) -> Result<Vec<ObservedResource>, CloudError> {
    let gateway = owner.gateway.to_string();
    let ours = |t: &Tags| tags::owned_by(t, &owner.cluster_id) && t.get(tags::GATEWAY) == Some(&gateway);
    let key_name = |t: &Tags, fallback: &str| t.get(tags::NAME).cloned().unwrap_or_else(|| format!("unnamed-{fallback}"));
    let mut out = Vec::new();

    // --- service networks and their associations ---
    for sn in list_all!(cl, "ListServiceNetworks", cl.lattice.list_service_networks()) {
        let (Some(id), Some(arn), Some(name)) = (sn.id(), sn.arn(), sn.name()) else { continue };
        if let Some(ident) = adopted.filter(|a| [id, arn, name].contains(a)) {
            let t = cl.tags_of(arn).await?;
            out.push(observed(kind::SERVICE_NETWORK, ident.to_string(), arn, t, json!({"name": name})));
            access_logs(cl, id, ident, &ours, &key_name, &mut out).await?;
            for a in list_all!(cl, "ListServiceNetworkServiceAssociations", cl.lattice.list_service_network_service_associations().service_network_identifier(id)) {
                let Some(aarn) = a.arn() else { continue };
                let t = cl.tags_of(aarn).await?;
                if ours(&t) {
                    out.push(service_association(&a, ident, aarn, t, &key_name));
                }
            }
            continue;
        }
        if !name.starts_with(OUR_PREFIX) {
            continue;
        }
        let t = cl.tags_of(arn).await?;
        if !ours(&t) {
            continue;
        }
        let auth = match cl.described.get(arn, sn.last_updated_at()) {
            Some(Described::AuthType(a)) => a,
            _ => {
                let got = cl.call("GetServiceNetwork", cl.lattice.get_service_network().service_network_identifier(id).send()).await?;
                let a = got.auth_type().cloned();
                cl.described.put(arn, sn.last_updated_at(), Described::AuthType(a.clone()));
                a
            }
        };
        let mut spec = json!({"name": name, "authType": auth.as_ref().map(|a| a.as_str())});
        if let Some(p) = auth_policy(cl, id, auth.as_ref()).await? {
            spec["authPolicy"] = json!(p);
        }
        out.push(observed(kind::SERVICE_NETWORK, name.to_string(), arn, t, spec));
        access_logs(cl, id, name, &ours, &key_name, &mut out).await?;

        let vpcs = list_all!(cl, "ListServiceNetworkVpcAssociations", cl.lattice.list_service_network_vpc_associations().service_network_identifier(id));
        for a in vpcs {
            let Some(aarn) = a.arn() else { continue };
            let t = cl.tags_of(aarn).await?;
            if !ours(&t) {
                continue;
            }
            let spec = json!({
                "serviceNetworkIdentifier": name,
                "vpcIdentifier": a.vpc_id(),
                "status": a.status().map(|s| s.as_str()),
            });
            out.push(observed(kind::SERVICE_NETWORK_VPC_ASSOCIATION, key_name(&t, a.id().unwrap_or(aarn)), aarn, t, spec));
        }

        let svcs = list_all!(cl, "ListServiceNetworkServiceAssociations", cl.lattice.list_service_network_service_associations().service_network_identifier(id));
        for a in svcs {
            let Some(aarn) = a.arn() else { continue };
            let t = cl.tags_of(aarn).await?;
            if ours(&t) {
                out.push(service_association(&a, name, aarn, t, &key_name));
            }
        }
    }

    // --- target groups (all names known, for the actions that point at them) ---
    let mut tg_names = Names::default();
    let tgs = list_all!(cl, "ListTargetGroups", cl.lattice.list_target_groups());
    for tg in &tgs {
        if let Some(name) = tg.name() {
            tg_names.add(tg.id(), tg.arn(), name);
        }
    }
    for tg in &tgs {
        let (Some(id), Some(arn), Some(name)) = (tg.id(), tg.arn(), tg.name()) else { continue };
        if !name.starts_with(OUR_PREFIX) {
            continue;
        }
        let t = cl.tags_of(arn).await?;
        if !ours(&t) {
            continue;
        }
        let (tg_type, config) = match cl.described.get(arn, tg.last_updated_at()) {
            Some(Described::TargetGroup(t, c)) => (t, c),
            _ => {
                let got = cl.call("GetTargetGroup", cl.lattice.get_target_group().target_group_identifier(id).send()).await?;
                let d = (got.r#type().cloned(), got.config().cloned());
                cl.described.put(arn, tg.last_updated_at(), Described::TargetGroup(d.0.clone(), d.1.clone()));
                d
            }
        };
        let mut targets: Vec<(String, i32)> = Vec::new();
        let listed = list_all!(cl, "ListTargets", cl.lattice.list_targets().target_group_identifier(id));
        for x in listed {
            // Draining targets are on their way out: a deregistration already happened.
            if x.status().is_some_and(|s| s.as_str() == "DRAINING") {
                continue;
            }
            if let Some(tid) = x.id() {
                targets.push((tid.to_string(), x.port().unwrap_or_default()));
            }
        }
        targets.sort();
        targets.dedup();
        let spec = json!({
            "name": name,
            "type": tg_type.as_ref().map(|t| t.as_str()),
            "config": config.as_ref().map(tg_config_to_json),
            "targets": targets.iter().map(|(id, port)| json!({"id": id, "port": port})).collect::<Vec<_>>(),
            "status": tg.status().map(|s| s.as_str()),
        });
        out.push(observed(kind::TARGET_GROUP, name.to_string(), arn, t, spec));
    }

    // --- services, their listeners and rules ---
    for svc in list_all!(cl, "ListServices", cl.lattice.list_services()) {
        let (Some(id), Some(arn), Some(name)) = (svc.id(), svc.arn(), svc.name()) else { continue };
        if !name.starts_with(OUR_PREFIX) {
            continue;
        }
        let t = cl.tags_of(arn).await?;
        if !ours(&t) {
            continue;
        }
        let auth = match cl.described.get(arn, svc.last_updated_at()) {
            Some(Described::AuthType(a)) => a,
            _ => {
                let got = cl.call("GetService", cl.lattice.get_service().service_identifier(id).send()).await?;
                let a = got.auth_type().cloned();
                cl.described.put(arn, svc.last_updated_at(), Described::AuthType(a.clone()));
                a
            }
        };
        let mut spec = Map::new();
        spec.insert("name".into(), json!(name));
        spec.insert("authType".into(), json!(auth.as_ref().map(|a| a.as_str())));
        if let Some(p) = auth_policy(cl, id, auth.as_ref()).await? {
            spec.insert("authPolicy".into(), json!(p));
        }
        if let Some(d) = svc.custom_domain_name() {
            spec.insert("customDomainName".into(), json!(d));
        }
        // Status and DNS name from the list: a status change need not move lastUpdatedAt.
        spec.insert("status".into(), json!(svc.status().map(|s| s.as_str())));
        spec.insert("dnsEntry".into(), dns_to_json(svc.dns_entry()));
        out.push(observed(kind::SERVICE, name.to_string(), arn, t, Value::Object(spec)));
        access_logs(cl, id, name, &ours, &key_name, &mut out).await?;

        for l in list_all!(cl, "ListListeners", cl.lattice.list_listeners().service_identifier(id)) {
            let (Some(lid), Some(larn), Some(lname)) = (l.id(), l.arn(), l.name()) else { continue };
            let t = cl.tags_of(larn).await?;
            if !ours(&t) {
                continue;
            }
            let default_action = match cl.described.get(larn, l.last_updated_at()) {
                Some(Described::Listener(a)) => a,
                _ => {
                    let got = cl.call("GetListener", cl.lattice.get_listener().service_identifier(id).listener_identifier(lid).send()).await?;
                    let a = got.default_action().cloned();
                    cl.described.put(larn, l.last_updated_at(), Described::Listener(a.clone()));
                    a
                }
            };
            let protocol = l.protocol().map(|p| p.as_str().to_string());
            let spec = json!({
                "name": lname,
                "serviceIdentifier": name,
                "protocol": protocol,
                "port": l.port(),
                "defaultAction": default_action.as_ref().map(|a| action_to_json(a, &|i| tg_names.of(i))),
            });
            out.push(observed(kind::LISTENER, lname.to_string(), larn, t, spec));
            if protocol.as_deref() == Some("TLS_PASSTHROUGH") {
                continue; // no rules besides the default one
            }

            for r in list_all!(cl, "ListRules", cl.lattice.list_rules().service_identifier(id).listener_identifier(lid)) {
                let (Some(rid), Some(rarn), Some(rname)) = (r.id(), r.arn(), r.name()) else { continue };
                if r.is_default().unwrap_or(false) {
                    continue; // mirrors the listener's default action; not a resource of ours
                }
                let t = cl.tags_of(rarn).await?;
                if !ours(&t) {
                    continue;
                }
                let (rmatch, action) = match cl.described.get(rarn, r.last_updated_at()) {
                    Some(Described::Rule(m, a)) => (m, a),
                    _ => {
                        let got = cl
                            .call("GetRule", cl.lattice.get_rule().service_identifier(id).listener_identifier(lid).rule_identifier(rid).send())
                            .await?;
                        let d = (got.r#match().cloned(), got.action().cloned());
                        cl.described.put(rarn, r.last_updated_at(), Described::Rule(d.0.clone(), d.1.clone()));
                        d
                    }
                };
                let spec = json!({
                    "name": rname,
                    "serviceIdentifier": name,
                    "listenerIdentifier": lname,
                    "priority": r.priority(),
                    "match": rmatch.as_ref().map(match_to_json),
                    "action": action.as_ref().map(|a| action_to_json(a, &|i| tg_names.of(i))),
                });
                out.push(observed(kind::RULE, rname.to_string(), rarn, t, spec));
            }
        }
    }
    Ok(out)
}

/// The IAM auth policy of a service network or service whose auth type is AWS_IAM, in the
/// render's canonical form, `""` for none. Not read for auth type NONE (Lattice ignores a policy
/// then). Read on every observe: putting a policy does not move the owner's `lastUpdatedAt`, so
/// the describe cache cannot tell a changed policy.
async fn auth_policy(cl: &Clients, id: &str, auth: Option<&aws_sdk_vpclattice::types::AuthType>) -> Result<Option<String>, CloudError> {
    if auth.map(|a| a.as_str()) != Some(crate::spec::AUTH_TYPE_AWS_IAM) {
        return Ok(None);
    }
    match cl.call("GetAuthPolicy", cl.lattice.get_auth_policy().resource_identifier(id).send()).await {
        Ok(out) => Ok(Some(out.policy().map(crate::spec::compact_json).unwrap_or_default())),
        Err(f) if f.is(NOT_FOUND) => Ok(Some(String::new())),
        Err(f) => Err(f.into()),
    }
}

/// Our access log subscriptions of service network or service `id` (named `owner_name` in the
/// render), keyed by their name tag. Not listed again while an earlier list found none
/// (`Clients::no_access_logs`).
async fn access_logs(
    cl: &Clients,
    id: &str,
    owner_name: &str,
    ours: &(dyn Fn(&Tags) -> bool + Sync),
    key_name: &(dyn Fn(&Tags, &str) -> String + Sync),
    out: &mut Vec<ObservedResource>,
) -> Result<(), CloudError> {
    if cl.no_access_logs.get(id).is_some() {
        return Ok(());
    }
    let subscriptions = list_all!(cl, "ListAccessLogSubscriptions", cl.lattice.list_access_log_subscriptions().resource_identifier(id));
    if subscriptions.is_empty() {
        cl.no_access_logs.put(id, ());
    }
    for s in subscriptions {
        let t = cl.tags_of(s.arn()).await?;
        if !ours(&t) {
            continue;
        }
        let spec = json!({"resourceIdentifier": owner_name, "destinationArn": s.destination_arn()});
        out.push(observed(kind::ACCESS_LOG_SUBSCRIPTION, key_name(&t, s.id()), s.arn(), t, spec));
    }
    Ok(())
}
