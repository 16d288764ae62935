//! Executes a `ChangeSet` with as few mutating calls as Lattice allows.
//!
//! Order (the change set's, with rule work regrouped per listener):
//! 1. creates and updates of everything but rules, parents first. A new target group registers
//!    its targets right away; a changed one registers the new targets before deregistering the
//!    old (make before break). Where Lattice has a uniqueness rule besides the name (a listener
//!    port per service, one association per service/network pair, one service network per
//!    VPC), the delete of the resource being replaced runs just before the create.
//! 2. rules, per listener: deletes of rules that go away, then every update in batches from
//!    [`priorities::schedule`] (`UpdateRule` for one rule, `BatchUpdateRule` for several), then
//!    creates at the priorities that are now free. A weight change is one `UpdateRule`.
//! 3. the remaining deletes, children first. Rules of a listener or service being deleted, and
//!    listeners of a service being deleted, are not deleted one by one: Lattice deletes them with
//!    their parent. A target group is emptied (DeregisterTargets) and deleted after every rule
//!    that forwarded to it was updated or deleted; a service network after its associations.
//!    On AWS those deletes finish asynchronously, so a dependent delete may answer
//!    ConflictException: that is retryable, and the next reconcile finishes the job.
//!
//! `ready` is true when the VPC association, every service and every service association the
//! plan needs exist and are ACTIVE; addresses are the services' DNS names, in graph order.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_vpclattice::types as sdk;
use cloudgate_provider::cloud::{ApplyOutcome, CloudError};
use cloudgate_provider::diff::{contains, Change, ChangeSet, ObservedResource};
use cloudgate_provider::resource::DesiredResource;
use cloudgate_provider::{LoadBalancerPlan, Provider, RenderContext};
use cloudgate_translate::status::StatusAddress;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::convert::{action_to_sdk, health_check_to_sdk, match_to_sdk, targets_to_sdk, tg_config_to_sdk};
use super::errors::{permanent, retryable, CallFailure, CONFLICT, NOT_FOUND};
use super::priorities::{self, Move};
use super::sdk::{Clients, Tags};
use crate::spec::*;
use crate::{address_sources, kind, LatticeProvider, ADDRESS_TYPE};

/// BatchUpdateRule takes at most 10 rules.
const RULE_BATCH: usize = 10;
/// Rule priorities are 1..=100.
const MAX_PRIORITY: u32 = 100;
/// RegisterTargets / DeregisterTargets take at most 100 targets.
const TARGET_BATCH: usize = 100;
const ACTIVE: &str = "ACTIVE";

type Key = (String, String);

fn key_of(kind: &str, name: &str) -> Key {
    (kind.to_string(), name.to_string())
}

/// The plain id at the end of a Lattice ARN (`.../service/svc-x/listener/listener-y` ->
/// `listener-y`). URI labels get ids, not ARNs: an ARN's slashes would need escaping.
fn plain_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Service id and listener id from a listener or rule ARN
/// (`...:service/svc-x/listener/listener-y[/rule/rule-z]`).
fn parents(arn: &str) -> (Option<&str>, Option<&str>) {
    let parts: Vec<&str> = arn.split('/').collect();
    (parts.get(1).copied(), parts.get(3).copied())
}

fn parse<T: DeserializeOwned>(r: &DesiredResource) -> Result<T, CloudError> {
    serde_json::from_value(r.spec.clone()).map_err(|e| permanent("apply", format!("{}: unexpected spec: {e}", r.key)))
}

fn str_field<'v>(v: &'v Value, field: &str) -> &'v str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn tag_map(t: &Tags) -> HashMap<String, String> {
    t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

struct Run<'a> {
    cl: &'a Clients,
    /// ARN of every resource that exists now: observed (the copy the diff keeps), then created.
    arns: HashMap<Key, String>,
    /// Status (services, associations) as last seen.
    status: HashMap<Key, String>,
    /// DNS name per service name.
    dns: HashMap<String, String>,
    /// Observed resources already deleted (by ARN), e.g. ahead of a replacement.
    deleted: HashSet<String>,
    mutations: usize,
}

impl<'a> Run<'a> {
    fn new(cl: &'a Clients, observed: &[ObservedResource]) -> Self {
        let mut sorted: Vec<&ObservedResource> = observed.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let mut run = Run { cl, arns: HashMap::new(), status: HashMap::new(), dns: HashMap::new(), deleted: HashSet::new(), mutations: 0 };
        for o in sorted {
            let k = key_of(&o.key.kind, &o.key.name);
            if run.arns.contains_key(&k) {
                continue; // a duplicate the diff deletes; the first by id is the one kept
            }
            run.arns.insert(k.clone(), o.id.clone());
            if let Some(s) = o.spec.get("status").and_then(Value::as_str) {
                run.status.insert(k, s.to_string());
            }
            if let Some(d) = o.spec.pointer("/dnsEntry/domainName").and_then(Value::as_str).filter(|_| o.key.kind == kind::SERVICE) {
                run.dns.insert(o.key.name.clone(), d.to_string());
            }
        }
        run
    }

    fn arn(&self, kind: &str, name: &str) -> Result<&str, CloudError> {
        self.arns
            .get(&key_of(kind, name))
            .map(String::as_str)
            .ok_or_else(|| retryable("apply", format!("{kind} {name} does not exist (yet)")))
    }

    fn id(&self, kind: &str, name: &str) -> Result<String, CloudError> {
        self.arn(kind, name).map(|a| plain_id(a).to_string())
    }

    /// The id of the service network or service named `name` (an access log subscription's
    /// parent).
    fn parent_id(&self, name: &str) -> Result<String, CloudError> {
        self.id(kind::SERVICE, name).or_else(|_| self.id(kind::SERVICE_NETWORK, name))
    }

    /// Brings the IAM auth policy of service network or service `id` from `have` (as observed;
    /// `None` when not read: a new resource, or auth type NONE) to `want` (`""`: none). Callers
    /// change the auth type first: going to AWS_IAM there is a moment where the target denies
    /// everything, never one where it allows what the policy would deny; going to NONE the
    /// policy is deleted too, so it cannot come back to life with a later AWS_IAM.
    async fn set_auth_policy(&mut self, id: &str, want: &str, have: Option<&str>) -> Result<(), CloudError> {
        if want == have.unwrap_or_default() {
            return Ok(());
        }
        if want.is_empty() {
            let req = self.cl.lattice.delete_auth_policy().resource_identifier(id);
            return match self.mutate("DeleteAuthPolicy", req.send()).await {
                Ok(_) => Ok(()),
                Err(f) if f.is(NOT_FOUND) => Ok(()),
                Err(f) => Err(f.into()),
            };
        }
        let req = self.cl.lattice.put_auth_policy().resource_identifier(id).policy(want);
        self.mutate("PutAuthPolicy", req.send()).await?;
        Ok(())
    }

    /// The association holding `vpc`, when it is ours (this cluster's tags): Lattice allows one
    /// service network per VPC, and when one Gateway replaces another (deleted, then created)
    /// the new one's association conflicts until the old one's delete finishes, a wait rather
    /// than an error. A holder that is not ours, or any failed read, gives None: the conflict
    /// stays permanent.
    async fn vpc_holder_is_ours(&self, vpc: &str, cluster: &str) -> Option<String> {
        let req = self.cl.lattice.list_service_network_vpc_associations().vpc_identifier(vpc);
        let out = self.cl.call("ListServiceNetworkVpcAssociations", req.send()).await.ok()?;
        for a in out.items() {
            let arn = a.arn()?;
            if cloudgate_provider::tags::owned_by(&self.cl.tags_of(arn).await.ok()?, cluster) {
                return Some(arn.to_string());
            }
        }
        None
    }

    /// Runs a mutating call and counts it.
    async fn mutate<T, E, Fut>(&mut self, operation: &'static str, fut: Fut) -> Result<T, CallFailure>
    where
        Fut: std::future::Future<Output = Result<T, aws_sdk_vpclattice::error::SdkError<E, aws_sdk_vpclattice::config::http::HttpResponse>>>,
        E: aws_sdk_vpclattice::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.mutations += 1;
        self.cl.call(operation, fut).await
    }

    /// A delete that finds nothing has nothing left to do.
    async fn delete<T, E, Fut>(&mut self, operation: &'static str, arn: &str, fut: Fut) -> Result<(), CloudError>
    where
        Fut: std::future::Future<Output = Result<T, aws_sdk_vpclattice::error::SdkError<E, aws_sdk_vpclattice::config::http::HttpResponse>>>,
        E: aws_sdk_vpclattice::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match self.mutate(operation, fut).await {
            Ok(_) => {}
            Err(f) if f.is(NOT_FOUND) => {}
            Err(f) => return Err(f.into()),
        }
        self.deleted.insert(arn.to_string());
        self.cl.tags.remove(arn);
        Ok(())
    }

    fn created(&mut self, d: &DesiredResource, arn: Option<&str>, status: Option<&str>) -> Result<(), CloudError> {
        let arn = arn.ok_or_else(|| permanent("apply", format!("the create answer for {} carries no ARN", d.key)))?;
        self.cl.tags.put(arn, d.tags.clone());
        let k = key_of(&d.key.kind, &d.key.name);
        if let Some(s) = status {
            self.status.insert(k.clone(), s.to_string());
        }
        self.arns.insert(k, arn.to_string());
        Ok(())
    }

    /// Adds the desired tags a resource lacks (ours are never removed: another cloudgate
    /// version may have added tags this one does not know).
    async fn retag(&mut self, d: &DesiredResource, o: &ObservedResource) -> Result<(), CloudError> {
        let missing: Tags = d.tags.iter().filter(|(k, v)| o.tags.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let cl = self.cl;
        self.mutate("TagResource", cl.lattice.tag_resource().resource_arn(&o.id).set_tags(Some(tag_map(&missing))).send()).await?;
        let mut all = o.tags.clone();
        all.extend(missing);
        cl.tags.put(&o.id, all);
        Ok(())
    }

    fn tg_resolver(&self) -> impl Fn(&str) -> Result<String, CloudError> + '_ {
        move |name: &str| self.id(kind::TARGET_GROUP, name)
    }

    // ------------------------------------------------------------------ creates

    async fn create(&mut self, d: &DesiredResource, changes: &ChangeSet) -> Result<(), CloudError> {
        let cl = self.cl;
        let tags = Some(tag_map(&d.tags));
        match d.key.kind.as_str() {
            kind::SERVICE_NETWORK => {
                let s: ServiceNetworkSpec = parse(d)?;
                let req = cl.lattice.create_service_network().name(&s.name).auth_type(sdk::AuthType::from(s.auth_type.as_str())).set_tags(tags);
                let out = self.mutate("CreateServiceNetwork", req.send()).await?;
                self.created(d, out.arn(), None)?;
                let id = self.id(kind::SERVICE_NETWORK, &d.key.name)?;
                self.set_auth_policy(&id, s.auth_policy.as_deref().unwrap_or_default(), None).await
            }
            kind::SERVICE_NETWORK_VPC_ASSOCIATION => {
                let s: ServiceNetworkVpcAssociationSpec = parse(d)?;
                // One service network per VPC: a replaced association goes first.
                let replaced = self
                    .delete_first(changes, kind::SERVICE_NETWORK_VPC_ASSOCIATION, |o| str_field(&o.spec, "vpcIdentifier") == s.vpc_identifier)
                    .await?;
                let sn = self.id(kind::SERVICE_NETWORK, &s.service_network_identifier)?;
                let req = cl.lattice.create_service_network_vpc_association().service_network_identifier(sn).vpc_identifier(&s.vpc_identifier).set_tags(tags);
                let out = match self.mutate("CreateServiceNetworkVpcAssociation", req.send()).await {
                    Ok(out) => out,
                    Err(f) if f.is(CONFLICT) && !replaced => {
                        let cluster = d.tags.get(cloudgate_provider::tags::CLUSTER).map(String::as_str).unwrap_or_default();
                        return Err(match self.vpc_holder_is_ours(&s.vpc_identifier, cluster).await {
                            Some(arn) => retryable(
                                "CreateServiceNetworkVpcAssociation",
                                format!("VPC {} is still associated by another Gateway of this cluster ({arn}); waiting for it to be released", s.vpc_identifier),
                            ),
                            None => f.error,
                        });
                    }
                    Err(f) => return Err(after_replace(f, replaced)),
                };
                self.created(d, out.arn(), out.status().map(|s| s.as_str()))
            }
            kind::TARGET_GROUP => {
                let s: TargetGroupSpec = parse(d)?;
                let req = cl
                    .lattice
                    .create_target_group()
                    .name(&s.name)
                    .r#type(sdk::TargetGroupType::from(s.type_.as_str()))
                    .config(tg_config_to_sdk(&s.config))
                    .set_tags(tags);
                let out = self.mutate("CreateTargetGroup", req.send()).await?;
                self.created(d, out.arn(), out.status().map(|s| s.as_str()))?;
                let id = self.id(kind::TARGET_GROUP, &d.key.name)?;
                self.register(&id, &s.targets).await
            }
            kind::SERVICE => {
                let s: ServiceSpec = parse(d)?;
                let req = cl
                    .lattice
                    .create_service()
                    .name(&s.name)
                    .auth_type(sdk::AuthType::from(s.auth_type.as_str()))
                    .set_custom_domain_name(s.custom_domain_name.clone())
                    .set_tags(tags);
                let out = self.mutate("CreateService", req.send()).await?;
                if let Some(dns) = out.dns_entry().and_then(|d| d.domain_name()) {
                    self.dns.insert(s.name.clone(), dns.to_string());
                }
                self.created(d, out.arn(), out.status().map(|s| s.as_str()))?;
                let id = self.id(kind::SERVICE, &d.key.name)?;
                self.set_auth_policy(&id, s.auth_policy.as_deref().unwrap_or_default(), None).await
            }
            kind::ACCESS_LOG_SUBSCRIPTION => {
                let s: AccessLogSubscriptionSpec = parse(d)?;
                let parent = self.parent_id(&s.resource_identifier)?;
                // Before the call: if its answer is lost, the next observe must list again.
                cl.no_access_logs.remove(&parent);
                let req = cl.lattice.create_access_log_subscription().resource_identifier(parent).destination_arn(&s.destination_arn).set_tags(tags);
                let out = self.mutate("CreateAccessLogSubscription", req.send()).await?;
                self.created(d, Some(out.arn()), None)
            }
            kind::SERVICE_NETWORK_SERVICE_ASSOCIATION => {
                let s: ServiceNetworkServiceAssociationSpec = parse(d)?;
                let replaced = self
                    .delete_first(changes, kind::SERVICE_NETWORK_SERVICE_ASSOCIATION, |o| {
                        str_field(&o.spec, "serviceIdentifier") == s.service_identifier
                            && str_field(&o.spec, "serviceNetworkIdentifier") == s.service_network_identifier
                    })
                    .await?;
                let sn = self.id(kind::SERVICE_NETWORK, &s.service_network_identifier)?;
                let svc = self.id(kind::SERVICE, &s.service_identifier)?;
                let req = cl.lattice.create_service_network_service_association().service_network_identifier(sn).service_identifier(svc).set_tags(tags);
                let out = self.mutate("CreateServiceNetworkServiceAssociation", req.send()).await.map_err(|f| after_replace(f, replaced))?;
                self.created(d, out.arn(), out.status().map(|s| s.as_str()))
            }
            kind::LISTENER => {
                let s: ListenerSpec = parse(d)?;
                // One listener per port on a service: a replaced listener (new protocol) goes first.
                let replaced = self
                    .delete_first(changes, kind::LISTENER, |o| {
                        str_field(&o.spec, "serviceIdentifier") == s.service_identifier && o.spec.get("port").and_then(Value::as_i64) == Some(i64::from(s.port))
                    })
                    .await?;
                let svc = self.id(kind::SERVICE, &s.service_identifier)?;
                let action = action_to_sdk(&s.default_action, &self.tg_resolver())?;
                let req = cl
                    .lattice
                    .create_listener()
                    .service_identifier(svc)
                    .name(&s.name)
                    .protocol(sdk::ListenerProtocol::from(s.protocol.as_str()))
                    .port(s.port)
                    .default_action(action)
                    .set_tags(tags);
                let out = self.mutate("CreateListener", req.send()).await.map_err(|f| after_replace(f, replaced))?;
                self.created(d, out.arn(), None)
            }
            kind::RULE => {
                let s: RuleSpec = parse(d)?;
                let svc = self.id(kind::SERVICE, &s.service_identifier)?;
                let listener = self.id(kind::LISTENER, &s.listener_identifier)?;
                let action = action_to_sdk(&s.action, &self.tg_resolver())?;
                let req = cl
                    .lattice
                    .create_rule()
                    .service_identifier(svc)
                    .listener_identifier(listener)
                    .name(&s.name)
                    .priority(s.priority as i32)
                    .r#match(match_to_sdk(&s.match_)?)
                    .action(action)
                    .set_tags(tags);
                let out = self.mutate("CreateRule", req.send()).await?;
                self.created(d, out.arn(), None)
            }
            other => Err(permanent("apply", format!("unknown resource kind {other}"))),
        }
    }

    /// Deletes (now) an observed resource of `kind` that the change set deletes anyway and that
    /// would make the coming create conflict. Returns whether one was deleted.
    async fn delete_first(&mut self, changes: &ChangeSet, kind: &str, clashes: impl Fn(&ObservedResource) -> bool) -> Result<bool, CloudError> {
        let victim = changes.changes.iter().find_map(|c| match c {
            Change::Delete { observed } if observed.key.kind == kind && !self.deleted.contains(&observed.id) && clashes(observed) => Some(observed.clone()),
            _ => None,
        });
        match victim {
            Some(o) => {
                self.delete_one(&o).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn register(&mut self, tg_id: &str, targets: &[Target]) -> Result<(), CloudError> {
        let cl = self.cl;
        for chunk in targets.chunks(TARGET_BATCH) {
            let req = cl.lattice.register_targets().target_group_identifier(tg_id).set_targets(Some(targets_to_sdk(chunk)?));
            let out = self.mutate("RegisterTargets", req.send()).await?;
            if let Some(f) = out.unsuccessful().first() {
                return Err(permanent(
                    "RegisterTargets",
                    format!("{} of {} targets refused, e.g. {}: {}", out.unsuccessful().len(), chunk.len(), f.id().unwrap_or("?"), f.failure_message().unwrap_or("?")),
                ));
            }
        }
        Ok(())
    }

    async fn deregister(&mut self, tg_id: &str, targets: &[Target]) -> Result<(), CloudError> {
        let cl = self.cl;
        for chunk in targets.chunks(TARGET_BATCH) {
            let req = cl.lattice.deregister_targets().target_group_identifier(tg_id).set_targets(Some(targets_to_sdk(chunk)?));
            match self.mutate("DeregisterTargets", req.send()).await {
                Ok(_) => {}
                Err(f) if f.is(NOT_FOUND) => return Ok(()),
                Err(f) => return Err(f.into()),
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------ updates (not rules)

    async fn update(&mut self, d: &DesiredResource, o: &ObservedResource, changes: &ChangeSet) -> Result<(), CloudError> {
        let cl = self.cl;
        self.retag(d, o).await?;
        if contains(&o.spec, &d.spec) {
            return Ok(()); // tags only
        }
        let immutable = |what: &str| {
            permanent(
                "apply",
                format!("{} differs from the cloud in {what}, which Lattice cannot change; delete {} to let cloudgate recreate it", d.key, o.id),
            )
        };
        match d.key.kind.as_str() {
            kind::SERVICE_NETWORK => {
                let s: ServiceNetworkSpec = parse(d)?;
                if str_field(&o.spec, "authType") != s.auth_type {
                    let req = cl.lattice.update_service_network().service_network_identifier(plain_id(&o.id)).auth_type(sdk::AuthType::from(s.auth_type.as_str()));
                    self.mutate("UpdateServiceNetwork", req.send()).await?;
                }
                self.set_auth_policy(plain_id(&o.id), s.auth_policy.as_deref().unwrap_or_default(), o.spec.get("authPolicy").and_then(Value::as_str)).await
            }
            kind::ACCESS_LOG_SUBSCRIPTION => {
                let s: AccessLogSubscriptionSpec = parse(d)?;
                if str_field(&o.spec, "resourceIdentifier") != s.resource_identifier {
                    // Moved to another service network or service: a new subscription there.
                    self.delete_one(o).await?;
                    self.arns.remove(&key_of(&d.key.kind, &d.key.name));
                    return self.create(d, changes).await;
                }
                let req = cl.lattice.update_access_log_subscription().access_log_subscription_identifier(plain_id(&o.id)).destination_arn(&s.destination_arn);
                self.mutate("UpdateAccessLogSubscription", req.send()).await?;
                Ok(())
            }
            kind::SERVICE => {
                let s: ServiceSpec = parse(d)?;
                if s.custom_domain_name.is_some() && o.spec.get("customDomainName") != d.spec.get("customDomainName") {
                    return Err(immutable("its custom domain name"));
                }
                if str_field(&o.spec, "authType") != s.auth_type {
                    let req = cl.lattice.update_service().service_identifier(plain_id(&o.id)).auth_type(sdk::AuthType::from(s.auth_type.as_str()));
                    self.mutate("UpdateService", req.send()).await?;
                }
                self.set_auth_policy(plain_id(&o.id), s.auth_policy.as_deref().unwrap_or_default(), o.spec.get("authPolicy").and_then(Value::as_str)).await
            }
            kind::SERVICE_NETWORK_VPC_ASSOCIATION | kind::SERVICE_NETWORK_SERVICE_ASSOCIATION => {
                // Associations have nothing to update: replace.
                self.delete_one(o).await?;
                self.arns.remove(&key_of(&d.key.kind, &d.key.name));
                self.create(d, changes).await
            }
            kind::TARGET_GROUP => {
                let s: TargetGroupSpec = parse(d)?;
                let tg = plain_id(&o.id).to_string();
                let mut fixed = d.spec["config"].clone();
                if let Some(m) = fixed.as_object_mut() {
                    m.remove("healthCheck");
                }
                if !contains(&o.spec["config"], &fixed) || !contains(&o.spec["type"], &d.spec["type"]) {
                    return Err(immutable("its type, port, protocol, IP address type or VPC"));
                }
                if !contains(&o.spec["config"]["healthCheck"], &d.spec["config"]["healthCheck"]) {
                    let req = cl.lattice.update_target_group().target_group_identifier(&tg).health_check(health_check_to_sdk(&s.config.health_check));
                    self.mutate("UpdateTargetGroup", req.send()).await?;
                }
                let have: Vec<Target> = serde_json::from_value(o.spec["targets"].clone()).unwrap_or_default();
                let add: Vec<Target> = s.targets.iter().filter(|t| !have.contains(t)).cloned().collect();
                let remove: Vec<Target> = have.iter().filter(|t| !s.targets.contains(t)).cloned().collect();
                self.register(&tg, &add).await?;
                self.deregister(&tg, &remove).await
            }
            kind::LISTENER => {
                let s: ListenerSpec = parse(d)?;
                for field in ["serviceIdentifier", "protocol", "port"] {
                    if o.spec.get(field) != d.spec.get(field) {
                        return Err(immutable(&format!("its {field}")));
                    }
                }
                let (svc, listener) = parents(&o.id);
                let action = action_to_sdk(&s.default_action, &self.tg_resolver())?;
                let req = cl
                    .lattice
                    .update_listener()
                    .service_identifier(svc.unwrap_or_default())
                    .listener_identifier(listener.unwrap_or_default())
                    .default_action(action);
                self.mutate("UpdateListener", req.send()).await?;
                Ok(())
            }
            other => Err(permanent("apply", format!("unexpected update of {other}"))),
        }
    }

    // ------------------------------------------------------------------ rules

    async fn rules_of_listener(&mut self, w: &ListenerWork<'_>, observed: &[ObservedResource]) -> Result<(), CloudError> {
        let cl = self.cl;
        for o in &w.deletes {
            let (svc, listener) = parents(&o.id);
            let req = cl.lattice.delete_rule().service_identifier(svc.unwrap_or_default()).listener_identifier(listener.unwrap_or_default()).rule_identifier(plain_id(&o.id));
            self.delete("DeleteRule", &o.id, req.send()).await?;
        }

        let mut updates: BTreeMap<String, (RuleSpec, &DesiredResource)> = BTreeMap::new();
        for (d, o) in &w.updates {
            self.retag(d, o).await?;
            if contains(&o.spec, &d.spec) {
                continue;
            }
            if str_field(&o.spec, "listenerIdentifier") != w.listener || str_field(&o.spec, "serviceIdentifier") != w.service {
                return Err(permanent("apply", format!("{} hangs off another listener in the cloud ({}); delete it to let cloudgate recreate it", d.key, o.id)));
            }
            updates.insert(o.id.clone(), (parse(d)?, d));
        }
        if !updates.is_empty() {
            let svc = self.id(kind::SERVICE, w.service)?;
            let listener = self.id(kind::LISTENER, w.listener)?;
            // Every rule of ours on the listener, where it is now.
            let current: BTreeMap<String, u32> = observed
                .iter()
                .filter(|o| o.key.kind == kind::RULE && !self.deleted.contains(&o.id))
                .filter(|o| str_field(&o.spec, "listenerIdentifier") == w.listener && str_field(&o.spec, "serviceIdentifier") == w.service)
                .filter_map(|o| Some((o.id.clone(), o.spec.get("priority")?.as_u64()? as u32)))
                .collect();
            let wanted: BTreeMap<String, u32> = updates.iter().map(|(arn, (s, _))| (arn.clone(), s.priority)).collect();
            let batches = priorities::schedule(&current, &wanted, RULE_BATCH, MAX_PRIORITY)
                .map_err(|e| retryable("BatchUpdateRule", format!("listener {}: {e}", w.listener)))?;
            for batch in batches {
                let mut items = Vec::with_capacity(batch.len());
                for Move { rule, priority, is_final } in &batch {
                    let mut u = sdk::RuleUpdate::builder().rule_identifier(plain_id(rule)).priority(*priority as i32);
                    if *is_final {
                        let (s, _) = &updates[rule];
                        u = u.r#match(match_to_sdk(&s.match_)?).action(action_to_sdk(&s.action, &self.tg_resolver())?);
                    }
                    items.push(u.build().map_err(|e| permanent("BatchUpdateRule", e.to_string()))?);
                }
                if let [only] = items.as_slice() {
                    let req = cl
                        .lattice
                        .update_rule()
                        .service_identifier(&svc)
                        .listener_identifier(&listener)
                        .rule_identifier(only.rule_identifier())
                        .set_priority(only.priority())
                        .set_match(only.r#match().cloned())
                        .set_action(only.action().cloned());
                    self.mutate("UpdateRule", req.send()).await?;
                } else {
                    let req = cl.lattice.batch_update_rule().service_identifier(&svc).listener_identifier(&listener).set_rules(Some(items));
                    let out = self.mutate("BatchUpdateRule", req.send()).await?;
                    if let Some(f) = out.unsuccessful().first() {
                        return Err(retryable(
                            "BatchUpdateRule",
                            format!("{} of {} rules not updated, e.g. {}: {}", out.unsuccessful().len(), batch.len(), f.rule_identifier().unwrap_or("?"), f.failure_message().unwrap_or("?")),
                        ));
                    }
                }
            }
        }

        let mut creates = w.creates.clone();
        creates.sort_by_key(|d| d.spec.get("priority").and_then(Value::as_u64));
        for d in creates {
            self.create(d, &ChangeSet::default()).await?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ deletes

    async fn delete_one(&mut self, o: &ObservedResource) -> Result<(), CloudError> {
        let cl = self.cl;
        let id = plain_id(&o.id).to_string();
        let (svc, listener) = parents(&o.id);
        let (svc, listener) = (svc.unwrap_or_default().to_string(), listener.unwrap_or_default().to_string());
        match o.key.kind.as_str() {
            kind::RULE => {
                let req = cl.lattice.delete_rule().service_identifier(&svc).listener_identifier(&listener).rule_identifier(&id);
                self.delete("DeleteRule", &o.id, req.send()).await
            }
            kind::LISTENER => {
                let req = cl.lattice.delete_listener().service_identifier(&svc).listener_identifier(&id);
                self.delete("DeleteListener", &o.id, req.send()).await
            }
            kind::SERVICE_NETWORK_SERVICE_ASSOCIATION => {
                let req = cl.lattice.delete_service_network_service_association().service_network_service_association_identifier(&id);
                self.delete("DeleteServiceNetworkServiceAssociation", &o.id, req.send()).await
            }
            kind::SERVICE => {
                let req = cl.lattice.delete_service().service_identifier(&id);
                self.delete("DeleteService", &o.id, req.send()).await
            }
            kind::TARGET_GROUP => {
                let targets: Vec<Target> = serde_json::from_value(o.spec["targets"].clone()).unwrap_or_default();
                self.deregister(&id, &targets).await?;
                let req = cl.lattice.delete_target_group().target_group_identifier(&id);
                self.delete("DeleteTargetGroup", &o.id, req.send()).await
            }
            kind::SERVICE_NETWORK_VPC_ASSOCIATION => {
                let req = cl.lattice.delete_service_network_vpc_association().service_network_vpc_association_identifier(&id);
                self.delete("DeleteServiceNetworkVpcAssociation", &o.id, req.send()).await
            }
            kind::SERVICE_NETWORK => {
                let req = cl.lattice.delete_service_network().service_network_identifier(&id);
                self.delete("DeleteServiceNetwork", &o.id, req.send()).await
            }
            kind::ACCESS_LOG_SUBSCRIPTION => {
                let req = cl.lattice.delete_access_log_subscription().access_log_subscription_identifier(&id);
                self.delete("DeleteAccessLogSubscription", &o.id, req.send()).await
            }
            other => Err(permanent("apply", format!("unknown resource kind {other}"))),
        }
    }
}

/// A create right after deleting the resource it replaces may still conflict while the delete
/// finishes (asynchronous on AWS): that is "not yet", not "never".
fn after_replace(f: CallFailure, replaced: bool) -> CloudError {
    match f.error {
        CloudError::Permanent { service, operation, message } if replaced && f.code.as_deref() == Some(CONFLICT) => {
            CloudError::Retryable { service, operation, message }
        }
        e => e,
    }
}

/// Rule changes of one listener.
struct ListenerWork<'c> {
    service: &'c str,
    listener: &'c str,
    creates: Vec<&'c DesiredResource>,
    updates: Vec<(&'c DesiredResource, &'c ObservedResource)>,
    deletes: Vec<&'c ObservedResource>,
}

pub async fn apply(
    cl: &Clients,
    render: &LatticeProvider,
    plan: Option<&LoadBalancerPlan>,
    changes: &ChangeSet,
    observed: &[ObservedResource],
    ctx: &RenderContext,
) -> Result<ApplyOutcome, CloudError> {
    let mut run = Run::new(cl, observed);

    // Deleted parents take their children with them.
    let mut doomed_services: HashSet<&str> = HashSet::new();
    let mut doomed_listeners: HashSet<(&str, &str)> = HashSet::new();
    for c in &changes.changes {
        if let Change::Delete { observed: o } = c {
            match o.key.kind.as_str() {
                kind::SERVICE => {
                    doomed_services.insert(o.key.name.as_str());
                }
                kind::LISTENER => {
                    doomed_listeners.insert((str_field(&o.spec, "serviceIdentifier"), o.key.name.as_str()));
                }
                _ => {}
            }
        }
    }
    let cascaded = |spec: &Value, with_listener: bool| {
        let svc = str_field(spec, "serviceIdentifier");
        doomed_services.contains(svc) || (with_listener && doomed_listeners.contains(&(svc, str_field(spec, "listenerIdentifier"))))
    };

    // 1. creates and updates, parents first; rules are collected per listener.
    let mut work: Vec<ListenerWork<'_>> = Vec::new();
    fn slot<'c>(work: &mut Vec<ListenerWork<'c>>, service: &'c str, listener: &'c str) -> usize {
        match work.iter().position(|w| w.service == service && w.listener == listener) {
            Some(i) => i,
            None => {
                work.push(ListenerWork { service, listener, creates: Vec::new(), updates: Vec::new(), deletes: Vec::new() });
                work.len() - 1
            }
        }
    }
    for c in &changes.changes {
        match c {
            Change::Create { desired } if desired.key.kind == kind::RULE => {
                let i = slot(&mut work, str_field(&desired.spec, "serviceIdentifier"), str_field(&desired.spec, "listenerIdentifier"));
                work[i].creates.push(desired);
            }
            Change::Update { desired, observed: o } if desired.key.kind == kind::RULE => {
                let i = slot(&mut work, str_field(&desired.spec, "serviceIdentifier"), str_field(&desired.spec, "listenerIdentifier"));
                work[i].updates.push((desired, o));
            }
            Change::Delete { observed: o } if o.key.kind == kind::RULE && !cascaded(&o.spec, true) => {
                let i = slot(&mut work, str_field(&o.spec, "serviceIdentifier"), str_field(&o.spec, "listenerIdentifier"));
                work[i].deletes.push(o);
            }
            Change::Create { desired } => {
                tracing::debug!(resource = %desired.key, "create");
                run.create(desired, changes).await?;
            }
            Change::Update { desired, observed: o } => {
                tracing::debug!(resource = %desired.key, "update");
                run.update(desired, o, changes).await?;
            }
            Change::Delete { .. } => {}
        }
    }

    // 2. rules, one listener at a time.
    for w in &work {
        run.rules_of_listener(w, observed).await?;
    }

    // 3. deletes, children first; what goes with its parent is skipped.
    for c in &changes.changes {
        let Change::Delete { observed: o } = c else { continue };
        if run.deleted.contains(&o.id) {
            continue;
        }
        let skip = match o.key.kind.as_str() {
            kind::RULE => true, // done in step 2, or goes with its listener/service
            kind::LISTENER => cascaded(&o.spec, false),
            _ => false,
        };
        if skip {
            run.deleted.insert(o.id.clone());
            cl.tags.remove(&o.id);
            continue;
        }
        tracing::debug!(resource = %o.key, "delete");
        run.delete_one(o).await?;
    }

    // Outcome: addresses and readiness against what the plan needs.
    let mut outcome = ApplyOutcome { mutations: run.mutations, addresses: Vec::new(), ready: true };
    if let Some(plan) = plan {
        let graph = render.render(plan, ctx).map_err(|e| permanent("render", e.to_string()))?;
        for key in address_sources(&graph) {
            match run.dns.get(&key.name) {
                Some(dns) => outcome.addresses.push(StatusAddress { type_: ADDRESS_TYPE.to_string(), value: dns.clone() }),
                None => outcome.ready = false,
            }
        }
        for r in &graph.resources {
            let needs_active =
                matches!(r.key.kind.as_str(), kind::SERVICE | kind::SERVICE_NETWORK_VPC_ASSOCIATION | kind::SERVICE_NETWORK_SERVICE_ASSOCIATION);
            if needs_active && run.status.get(&key_of(&r.key.kind, &r.key.name)).map(String::as_str) != Some(ACTIVE) {
                tracing::debug!(resource = %r.key, status = ?run.status.get(&key_of(&r.key.kind, &r.key.name)), "not active yet");
                outcome.ready = false;
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_out_of_arns() {
        let rule = "arn:aws:vpc-lattice:us-east-1:123456789012:service/svc-0123456789abcdef0/listener/listener-0123456789abcdef0/rule/rule-0123456789abcdef0";
        assert_eq!(plain_id(rule), "rule-0123456789abcdef0");
        assert_eq!(parents(rule), (Some("svc-0123456789abcdef0"), Some("listener-0123456789abcdef0")));
        let tg = "arn:aws:vpc-lattice:us-east-1:123456789012:targetgroup/tg-0123456789abcdef0";
        assert_eq!(plain_id(tg), "tg-0123456789abcdef0");
        assert_eq!(plain_id("sn-0123456789abcdef0"), "sn-0123456789abcdef0");
    }

    #[test]
    fn a_conflict_right_after_a_replacement_is_retryable() {
        let f = || CallFailure { code: Some(CONFLICT.into()), throttled: false, error: permanent("CreateServiceNetworkVpcAssociation", "VPC in use") };
        assert!(after_replace(f(), true).is_retryable());
        assert!(!after_replace(f(), false).is_retryable());
    }
}
