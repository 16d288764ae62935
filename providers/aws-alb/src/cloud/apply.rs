//! Executes a `ChangeSet` in its order (parents created first, children deleted first) with the
//! fewest mutating calls:
//!
//! | change                         | calls                                              |
//! |--------------------------------|----------------------------------------------------|
//! | rule weights / conditions      | ModifyRule (only the part that changed)            |
//! | rule priorities                | one SetRulePriorities per listener (two when rules |
//! |                                | must step aside first, e.g. a shift 1->2, 2->3)    |
//! | target group endpoints         | RegisterTargets / DeregisterTargets of the delta   |
//! | target group health check      | ModifyTargetGroup (the whole health check)         |
//! | target group attributes        | ModifyTargetGroupAttributes (changed keys only)    |
//! | target group immutable fields  | new group under the same key, rules re-pointed,    |
//! |                                | old group deleted at the end                       |
//! | listener port/protocol/default | ModifyListener (changed fields only); extra        |
//! | certificate/default action     | certificates via Add/RemoveListenerCertificates    |
//! | security group ingress         | Authorize/Revoke of the delta                      |
//! | load balancer subnets / SGs    | SetSubnets / SetSecurityGroups / SetIpAddressType  |
//! | certificate content            | new name (sha256) = ImportCertificate + delete old |
//! | missing tags                   | AddTags / CreateTags / AddTagsToCertificate        |
//!
//! When the change set deletes a load balancer, its listeners and rules go with it (one
//! DeleteLoadBalancer, issued at the first of their deletes, instead of one call each).
//!
//! Names are resolved to ARNs/ids through `observed` plus whatever this apply created. Deleting
//! something already gone counts as done; DependencyViolation / ResourceInUse come back as
//! retryable errors (ENIs of a deleted ALB still hold its security group for a while).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_acm::primitives::Blob;
use aws_sdk_ec2::types::{ResourceType, TagSpecification};
use aws_sdk_elasticloadbalancingv2::types as el;
use cloudgate_provider::cloud::{ApplyOutcome, CloudError};
use cloudgate_provider::diff::{contains, Change, ChangeSet, ObservedResource};
use cloudgate_provider::names::stable_hash;
use cloudgate_provider::resource::{DesiredResource, ResourceKey};
use cloudgate_provider::{Provider, RenderContext};
use cloudgate_translate::plan::LoadBalancerPlan;
use cloudgate_translate::status::StatusAddress;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::convert::{action_to_sdk, condition_to_sdk, elb_tags, ingress_to_sdk, missing_tags, split_chain};
use super::errors::CallFailure;
use super::sdk::{Clients, ACM, EC2, ELBV2};
use super::{TAG_CERTIFICATE_SHA256, TAG_SECRET};
use crate::render::{Action, AlbProvider, CertificateSpec, IngressRule, ListenerSpec, LoadBalancerSpec, RuleSpec, SecurityGroupSpec, Target, TargetGroupSpec, MANAGED_ATTRIBUTES};
use crate::{KIND_CERTIFICATE, KIND_LISTENER, KIND_LOAD_BALANCER, KIND_RULE, KIND_SECURITY_GROUP, KIND_TARGET_GROUP};

const MAX_RULE_PRIORITY: u32 = 50_000;

pub async fn apply(
    cl: &Clients,
    render: &AlbProvider,
    plan: Option<&LoadBalancerPlan>,
    changes: &ChangeSet,
    observed: &[ObservedResource],
    ctx: &RenderContext,
) -> Result<ApplyOutcome, CloudError> {
    let mut run = Run::new(cl, plan, changes, observed);
    for ch in &changes.changes {
        tracing::debug!(op = op_name(ch), key = %ch.key(), "applying");
        run.change(ch).await?;
    }
    run.finish().await?;
    let desired_lb = plan
        .and_then(|p| render.render(p, ctx).ok())
        .and_then(|g| g.resources.into_iter().find(|r| r.key.kind == KIND_LOAD_BALANCER).map(|r| r.key));
    Ok(run.outcome(desired_lb.as_ref()))
}

fn op_name(c: &Change) -> &'static str {
    match c {
        Change::Create { .. } => "create",
        Change::Update { .. } => "update",
        Change::Delete { .. } => "delete",
    }
}

fn key(kind: &str, name: &str) -> ResourceKey {
    ResourceKey { kind: kind.into(), name: name.into() }
}

fn permanent(service: &'static str, operation: &str, message: impl Into<String>) -> CloudError {
    CloudError::Permanent { service, operation: operation.into(), message: message.into() }
}

fn spec<T: DeserializeOwned>(d: &DesiredResource) -> Result<T, CloudError> {
    serde_json::from_value(d.spec.clone()).map_err(|e| permanent("cloudgate", "render", format!("{}: spec does not parse: {e}", d.key)))
}

fn observed_spec<T: DeserializeOwned>(o: &ObservedResource) -> Option<T> {
    serde_json::from_value(o.spec.clone()).ok()
}

/// Does the observed field already hold what the desired one says (same rule as `diff`)?
fn same(o: &Value, d: &Value, field: &str) -> bool {
    contains(o.get(field).unwrap_or(&Value::Null), d.get(field).unwrap_or(&Value::Null))
}

/// Deleting what is already gone is success.
fn gone(r: Result<(), CallFailure>, not_found: &[&str]) -> Result<(), CloudError> {
    match r {
        Err(f) if f.is_any(not_found) => Ok(()),
        r => r.map_err(Into::into),
    }
}

struct Run<'a> {
    cl: &'a Clients,
    plan: Option<&'a LoadBalancerPlan>,
    changes: &'a ChangeSet,
    observed: &'a [ObservedResource],
    /// Key -> cloud id of the copy in use: the observed one `diff` keeps (lowest id), then
    /// whatever this run created or switched to.
    ids: BTreeMap<ResourceKey, String>,
    created: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// Target groups this run switched a key to (a replacement left by an earlier run).
    switched: BTreeSet<String>,
    /// Rules whose actions this run wrote (created, modified, re-pointed).
    touched_rules: BTreeSet<String>,
    /// Listeners whose rule priorities are settled.
    prepared: BTreeSet<String>,
    /// Replaced target groups, deleted once nothing points at them.
    deferred: Vec<String>,
    /// Load balancer ARN -> (DNS name, state).
    lbs: BTreeMap<String, (String, String)>,
    mutations: usize,
}

impl<'a> Run<'a> {
    fn new(cl: &'a Clients, plan: Option<&'a LoadBalancerPlan>, changes: &'a ChangeSet, observed: &'a [ObservedResource]) -> Self {
        let mut sorted: Vec<&ObservedResource> = observed.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let mut ids = BTreeMap::new();
        let mut lbs = BTreeMap::new();
        for o in sorted {
            ids.entry(o.key.clone()).or_insert_with(|| o.id.clone());
            if o.key.kind == KIND_LOAD_BALANCER {
                let s = |f: &str| o.spec.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
                lbs.insert(o.id.clone(), (s("dnsName"), s("state")));
            }
        }
        Run {
            cl,
            plan,
            changes,
            observed,
            ids,
            created: BTreeSet::new(),
            deleted: BTreeSet::new(),
            switched: BTreeSet::new(),
            touched_rules: BTreeSet::new(),
            prepared: BTreeSet::new(),
            deferred: Vec::new(),
            lbs,
            mutations: 0,
        }
    }

    /// A mutating call: counted, then made.
    async fn m<T, E, Fut>(&mut self, service: &'static str, operation: &'static str, fut: Fut) -> Result<T, CallFailure>
    where
        Fut: std::future::Future<Output = Result<T, aws_sdk_elasticloadbalancingv2::error::SdkError<E, aws_sdk_elasticloadbalancingv2::config::http::HttpResponse>>>,
        E: aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.mutations += 1;
        self.cl.call(service, operation, fut).await
    }

    fn id(&self, kind: &str, name: &str) -> Result<String, CloudError> {
        self.ids.get(&key(kind, name)).filter(|id| !self.deleted.contains(*id)).cloned().ok_or_else(|| CloudError::Retryable {
            service: "cloudgate",
            operation: "resolve".into(),
            message: format!("{kind} {name} does not exist (yet)"),
        })
    }

    fn record_created(&mut self, k: &ResourceKey, id: &str) {
        self.ids.insert(k.clone(), id.to_string());
        self.created.insert(id.to_string());
    }

    fn action(&self, a: &Action) -> Result<el::Action, CloudError> {
        let tg = |n: &str| self.id(KIND_TARGET_GROUP, n).ok();
        action_to_sdk(a, &tg).map_err(|m| CloudError::Retryable { service: "cloudgate", operation: "resolve".into(), message: m })
    }

    async fn change(&mut self, ch: &'a Change) -> Result<(), CloudError> {
        match ch {
            Change::Create { desired: d } => match d.key.kind.as_str() {
                KIND_SECURITY_GROUP => self.create_sg(d).await,
                KIND_CERTIFICATE => self.create_cert(d).await,
                KIND_LOAD_BALANCER => self.create_lb(d).await,
                KIND_TARGET_GROUP => {
                    let s: TargetGroupSpec = spec(d)?;
                    let arn = self.create_tg_named(&d.key.name, d, &s).await?;
                    self.record_created(&d.key, &arn);
                    Ok(())
                }
                KIND_LISTENER => self.create_listener(d).await,
                KIND_RULE => {
                    let s: RuleSpec = spec(d)?;
                    self.prepare(&s.listener).await?;
                    self.create_rule(d, &s).await
                }
                k => Err(permanent("cloudgate", "apply", format!("unknown kind {k}"))),
            },
            Change::Update { desired: d, observed: o } => match d.key.kind.as_str() {
                KIND_SECURITY_GROUP => self.update_sg(d, o).await,
                KIND_CERTIFICATE => self.sync_acm_tags(&o.id, &cert_tags(d, &spec(d)?), &o.tags).await,
                KIND_LOAD_BALANCER => self.update_lb(d, o).await,
                KIND_TARGET_GROUP => self.update_tg(d, o).await,
                KIND_LISTENER => self.update_listener(d, o).await,
                KIND_RULE => self.update_rule(d, o).await,
                k => Err(permanent("cloudgate", "apply", format!("unknown kind {k}"))),
            },
            Change::Delete { observed: o } => {
                if self.deleted.contains(&o.id) {
                    return Ok(());
                }
                // Deleting a load balancer deletes its listeners and their rules: when the whole
                // load balancer goes, delete it first and save a call per listener and rule.
                if let Some(lb) = self.lb_going_away(o) {
                    self.delete_lb(lb).await?;
                    self.deleted.insert(o.id.clone());
                    return Ok(());
                }
                let cl = self.cl;
                match o.key.kind.as_str() {
                    KIND_RULE => self.delete_rule(&o.id).await?,
                    KIND_LISTENER => {
                        let r = self.m(ELBV2, "DeleteListener", cl.elbv2.delete_listener().listener_arn(&o.id).send()).await;
                        gone(r.map(|_| ()), &["ListenerNotFound"])?;
                    }
                    KIND_TARGET_GROUP => {
                        if self.switched.contains(&o.id) {
                            return Ok(());
                        }
                        // A duplicate of a group still in use: move its rules over first.
                        if self.ids.get(&o.key).is_some_and(|kept| kept != &o.id) {
                            self.repoint(&o.id).await?;
                        }
                        let r = self.m(ELBV2, "DeleteTargetGroup", cl.elbv2.delete_target_group().target_group_arn(&o.id).send()).await;
                        gone(r.map(|_| ()), &["TargetGroupNotFound"])?;
                        cl.attributes.remove(&o.id);
                    }
                    KIND_LOAD_BALANCER => self.delete_lb(o).await?,
                    KIND_CERTIFICATE => {
                        let r = self.m(ACM, "DeleteCertificate", cl.acm.delete_certificate().certificate_arn(&o.id).send()).await;
                        gone(r.map(|_| ()), &["ResourceNotFoundException"])?;
                    }
                    KIND_SECURITY_GROUP => {
                        let r = self.m(EC2, "DeleteSecurityGroup", cl.ec2.delete_security_group().group_id(&o.id).send()).await;
                        gone(r.map(|_| ()), &["InvalidGroup.NotFound"])?;
                    }
                    k => return Err(permanent("cloudgate", "apply", format!("unknown kind {k}"))),
                }
                self.deleted.insert(o.id.clone());
                Ok(())
            }
        }
    }

    /// The load balancer this listener or rule lives on, if this change set deletes it.
    fn lb_going_away(&self, o: &ObservedResource) -> Option<&'a ObservedResource> {
        let observed = self.observed;
        let arn_of = |r: &ObservedResource, f: &str| r.spec.get(f).and_then(Value::as_str).map(str::to_string);
        let lb_arn = match o.key.kind.as_str() {
            KIND_LISTENER => arn_of(o, "loadBalancerArn")?,
            KIND_RULE => {
                let listener = arn_of(o, "listenerArn")?;
                observed.iter().find(|l| l.key.kind == KIND_LISTENER && l.id == listener).and_then(|l| arn_of(l, "loadBalancerArn"))?
            }
            _ => return None,
        };
        self.changes.changes.iter().find_map(|c| match c {
            Change::Delete { observed } if observed.key.kind == KIND_LOAD_BALANCER && observed.id == lb_arn => Some(observed),
            _ => None,
        })
    }

    async fn delete_lb(&mut self, o: &ObservedResource) -> Result<(), CloudError> {
        if self.deleted.contains(&o.id) {
            return Ok(());
        }
        let cl = self.cl;
        let r = self.m(ELBV2, "DeleteLoadBalancer", cl.elbv2.delete_load_balancer().load_balancer_arn(&o.id).send()).await;
        gone(r.map(|_| ()), &["LoadBalancerNotFound"])?;
        self.lbs.remove(&o.id);
        self.deleted.insert(o.id.clone());
        Ok(())
    }

    /// Work that had to wait for the whole change set: replaced target groups go once every
    /// rule has moved off them.
    async fn finish(&mut self) -> Result<(), CloudError> {
        let cl = self.cl;
        for old in std::mem::take(&mut self.deferred) {
            self.repoint(&old).await?;
            let r = self.m(ELBV2, "DeleteTargetGroup", cl.elbv2.delete_target_group().target_group_arn(&old).send()).await;
            gone(r.map(|_| ()), &["TargetGroupNotFound"])?;
            cl.attributes.remove(&old);
            self.deleted.insert(old);
        }
        Ok(())
    }

    fn outcome(&self, desired_lb: Option<&ResourceKey>) -> ApplyOutcome {
        let lb = desired_lb.and_then(|k| self.ids.get(k)).filter(|arn| !self.deleted.contains(*arn)).and_then(|arn| self.lbs.get(arn));
        let addresses = lb
            .filter(|(dns, _)| !dns.is_empty())
            .map(|(dns, _)| vec![StatusAddress { type_: "Hostname".into(), value: dns.clone() }])
            .unwrap_or_default();
        let ready = match desired_lb {
            Some(_) => lb.is_some_and(|(_, state)| state == "active"),
            // Nothing wanted (Gateway deleted): ready once everything is gone, which it is if
            // we got here without an error.
            None => true,
        };
        ApplyOutcome { mutations: self.mutations, addresses, ready }
    }

    // --- security groups ---------------------------------------------------------------------

    async fn create_sg(&mut self, d: &DesiredResource) -> Result<(), CloudError> {
        let s: SecurityGroupSpec = spec(d)?;
        let cl = self.cl;
        let tags = TagSpecification::builder().resource_type(ResourceType::SecurityGroup).set_tags(Some(ec2_tags(&d.tags))).build();
        let req = cl.ec2.create_security_group().group_name(&d.key.name).description(&s.description).vpc_id(&s.vpc_id).tag_specifications(tags);
        let out = self.m(EC2, "CreateSecurityGroup", req.send()).await?;
        let id = out.group_id().ok_or_else(|| permanent(EC2, "CreateSecurityGroup", "no group id in the answer"))?.to_string();
        self.record_created(&d.key, &id);
        if !s.ingress.is_empty() {
            // Duplicate: a retried attempt whose first answer was lost; the rules are there.
            let req = cl.ec2.authorize_security_group_ingress().group_id(&id).set_ip_permissions(Some(ingress_to_sdk(&s.ingress)));
            gone(self.m(EC2, "AuthorizeSecurityGroupIngress", req.send()).await.map(|_| ()), &["InvalidPermission.Duplicate"])?;
        }
        Ok(())
    }

    async fn update_sg(&mut self, d: &DesiredResource, o: &ObservedResource) -> Result<(), CloudError> {
        let s: SecurityGroupSpec = spec(d)?;
        let have: SecurityGroupSpec = observed_spec(o).unwrap_or(SecurityGroupSpec { vpc_id: String::new(), description: String::new(), ingress: vec![] });
        if have.vpc_id != s.vpc_id || have.description != s.description {
            return Err(permanent(
                EC2,
                "UpdateSecurityGroup",
                format!("security group {}: VPC and description cannot change in place (have {} {:?}, want {} {:?})", d.key.name, have.vpc_id, have.description, s.vpc_id, s.description),
            ));
        }
        let cl = self.cl;
        let remove: Vec<IngressRule> = have.ingress.iter().filter(|r| !s.ingress.contains(r)).cloned().collect();
        let add: Vec<IngressRule> = s.ingress.iter().filter(|r| !have.ingress.contains(r)).cloned().collect();
        if !remove.is_empty() {
            let req = cl.ec2.revoke_security_group_ingress().group_id(&o.id).set_ip_permissions(Some(ingress_to_sdk(&remove)));
            gone(self.m(EC2, "RevokeSecurityGroupIngress", req.send()).await.map(|_| ()), &["InvalidPermission.NotFound"])?;
        }
        if !add.is_empty() {
            let req = cl.ec2.authorize_security_group_ingress().group_id(&o.id).set_ip_permissions(Some(ingress_to_sdk(&add)));
            gone(self.m(EC2, "AuthorizeSecurityGroupIngress", req.send()).await.map(|_| ()), &["InvalidPermission.Duplicate"])?;
        }
        let miss = missing_tags(&d.tags, &o.tags);
        if !miss.is_empty() {
            self.m(EC2, "CreateTags", cl.ec2.create_tags().resources(&o.id).set_tags(Some(ec2_tags(&miss))).send()).await?;
        }
        Ok(())
    }

    // --- certificates ------------------------------------------------------------------------

    async fn create_cert(&mut self, d: &DesiredResource) -> Result<(), CloudError> {
        let s: CertificateSpec = spec(d)?;
        let pem = self
            .plan
            .into_iter()
            .flat_map(|p| &p.listeners)
            .filter_map(|l| l.tls.as_ref())
            .flat_map(|t| &t.certificates)
            .find(|c| c.sha256 == s.certificate_sha256)
            .ok_or_else(|| permanent(ACM, "ImportCertificate", format!("the plan carries no certificate of Secret {} with sha256 {}", s.secret, s.certificate_sha256)))?;
        let (leaf, chain) = split_chain(&pem.cert_pem);
        let tags = acm_tags(&cert_tags(d, &s))?;
        let cl = self.cl;
        let req = cl
            .acm
            .import_certificate()
            .certificate(Blob::new(leaf.into_bytes()))
            .private_key(Blob::new(pem.key_pem.clone().into_bytes()))
            .set_certificate_chain(chain.map(|c| Blob::new(c.into_bytes())))
            .set_tags(Some(tags));
        let out = self.m(ACM, "ImportCertificate", req.send()).await?;
        let arn = out.certificate_arn().ok_or_else(|| permanent(ACM, "ImportCertificate", "no ARN in the answer"))?.to_string();
        self.record_created(&d.key, &arn);
        Ok(())
    }

    async fn sync_acm_tags(&mut self, arn: &str, want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> Result<(), CloudError> {
        let miss = missing_tags(want, have);
        if miss.is_empty() {
            return Ok(());
        }
        let cl = self.cl;
        let req = cl.acm.add_tags_to_certificate().certificate_arn(arn).set_tags(Some(acm_tags(&miss)?));
        self.m(ACM, "AddTagsToCertificate", req.send()).await?;
        Ok(())
    }

    // --- load balancers ----------------------------------------------------------------------

    fn sg_ids(&self, names: &[String]) -> Result<Vec<String>, CloudError> {
        names.iter().map(|n| self.id(KIND_SECURITY_GROUP, n)).collect()
    }

    async fn create_lb(&mut self, d: &DesiredResource) -> Result<(), CloudError> {
        let s: LoadBalancerSpec = spec(d)?;
        let cl = self.cl;
        let req = cl
            .elbv2
            .create_load_balancer()
            .name(&d.key.name)
            .r#type(el::LoadBalancerTypeEnum::from(s.r#type.as_str()))
            .scheme(el::LoadBalancerSchemeEnum::from(s.scheme.as_str()))
            .ip_address_type(el::IpAddressType::from(s.ip_address_type.as_str()))
            .set_subnets(Some(s.subnets.clone()))
            .set_security_groups(Some(self.sg_ids(&s.security_groups)?))
            .set_tags(Some(elb_tags(&d.tags)));
        let out = self.m(ELBV2, "CreateLoadBalancer", req.send()).await?;
        let lb = out.load_balancers().first().ok_or_else(|| permanent(ELBV2, "CreateLoadBalancer", "no load balancer in the answer"))?;
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        let state = lb.state().and_then(|s| s.code()).map(|c| c.as_str().to_string()).unwrap_or_default();
        self.lbs.insert(arn.clone(), (lb.dns_name().unwrap_or_default().to_string(), state));
        self.record_created(&d.key, &arn);
        Ok(())
    }

    async fn update_lb(&mut self, d: &DesiredResource, o: &ObservedResource) -> Result<(), CloudError> {
        let s: LoadBalancerSpec = spec(d)?;
        if !same(&o.spec, &d.spec, "type") || !same(&o.spec, &d.spec, "scheme") {
            return Err(permanent(
                ELBV2,
                "UpdateLoadBalancer",
                format!("load balancer {}: type and scheme cannot change in place (have {} {}); delete and recreate the Gateway", d.key.name, o.spec["type"], o.spec["scheme"]),
            ));
        }
        let cl = self.cl;
        let arn = o.id.as_str();
        if !same(&o.spec, &d.spec, "subnets") {
            self.m(ELBV2, "SetSubnets", cl.elbv2.set_subnets().load_balancer_arn(arn).set_subnets(Some(s.subnets.clone())).send()).await?;
        }
        if !same(&o.spec, &d.spec, "securityGroups") {
            let req = cl.elbv2.set_security_groups().load_balancer_arn(arn).set_security_groups(Some(self.sg_ids(&s.security_groups)?));
            self.m(ELBV2, "SetSecurityGroups", req.send()).await?;
        }
        if !same(&o.spec, &d.spec, "ipAddressType") {
            let req = cl.elbv2.set_ip_address_type().load_balancer_arn(arn).ip_address_type(el::IpAddressType::from(s.ip_address_type.as_str()));
            self.m(ELBV2, "SetIpAddressType", req.send()).await?;
        }
        self.sync_elb_tags(arn, &d.tags, &o.tags).await
    }

    async fn sync_elb_tags(&mut self, arn: &str, want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> Result<(), CloudError> {
        let miss = missing_tags(want, have);
        if miss.is_empty() {
            return Ok(());
        }
        let cl = self.cl;
        self.m(ELBV2, "AddTags", cl.elbv2.add_tags().resource_arns(arn).set_tags(Some(elb_tags(&miss))).send()).await?;
        Ok(())
    }

    // --- target groups -----------------------------------------------------------------------

    async fn create_tg_named(&mut self, cloud_name: &str, d: &DesiredResource, s: &TargetGroupSpec) -> Result<String, CloudError> {
        let cl = self.cl;
        let req = cl
            .elbv2
            .create_target_group()
            .name(cloud_name)
            .target_type(el::TargetTypeEnum::from(s.target_type.as_str()))
            .protocol(el::ProtocolEnum::from(s.protocol.as_str()))
            .protocol_version(&s.protocol_version)
            .port(s.port)
            .vpc_id(&s.vpc_id)
            .set_tags(Some(elb_tags(&d.tags)));
        let out = self.m(ELBV2, "CreateTargetGroup", with_health_check!(req, s).send()).await?;
        let arn = out
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .ok_or_else(|| permanent(ELBV2, "CreateTargetGroup", "no target group in the answer"))?
            .to_string();
        // A new group has ALB's default attributes.
        let defaults: BTreeMap<String, String> = MANAGED_ATTRIBUTES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.sync_attributes(&arn, &defaults, &s.attributes).await?;
        self.sync_targets(&arn, &[], &s.targets).await?;
        Ok(arn)
    }

    /// ModifyTargetGroupAttributes with the attributes that differ, in one call (ALB checks the
    /// combination: slow start and least_outstanding_requests must not meet even in passing).
    async fn sync_attributes(&mut self, arn: &str, have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> Result<(), CloudError> {
        let changed: Vec<el::TargetGroupAttribute> =
            want.iter().filter(|(k, v)| have.get(*k) != Some(*v)).map(|(k, v)| el::TargetGroupAttribute::builder().key(k).value(v).build()).collect();
        if changed.is_empty() {
            return Ok(());
        }
        let cl = self.cl;
        let req = cl.elbv2.modify_target_group_attributes().target_group_arn(arn).set_attributes(Some(changed));
        self.m(ELBV2, "ModifyTargetGroupAttributes", req.send()).await?;
        let mut now = have.clone();
        now.extend(want.iter().map(|(k, v)| (k.clone(), v.clone())));
        cl.attributes.put(arn, now);
        Ok(())
    }

    async fn sync_targets(&mut self, arn: &str, have: &[Target], want: &[Target]) -> Result<(), CloudError> {
        let desc = |t: &Target| el::TargetDescription::builder().id(&t.id).port(t.port).build();
        let remove: Vec<el::TargetDescription> = have.iter().filter(|t| !want.contains(t)).map(desc).collect();
        let add: Vec<el::TargetDescription> = want.iter().filter(|t| !have.contains(t)).map(desc).collect();
        let cl = self.cl;
        if !remove.is_empty() {
            let req = cl.elbv2.deregister_targets().target_group_arn(arn).set_targets(Some(remove));
            self.m(ELBV2, "DeregisterTargets", req.send()).await?;
        }
        if !add.is_empty() {
            let req = cl.elbv2.register_targets().target_group_arn(arn).set_targets(Some(add));
            self.m(ELBV2, "RegisterTargets", req.send()).await?;
        }
        Ok(())
    }

    /// Health check, attributes, targets and tags: what can change on a target group in place.
    async fn update_tg_in_place(&mut self, arn: &str, d: &DesiredResource, s: &TargetGroupSpec, o: &ObservedResource, have: &TargetGroupSpec) -> Result<(), CloudError> {
        let cl = self.cl;
        if health_check(have) != health_check(s) {
            // The whole health check in one call: ALB checks the timeout against the interval
            // of the same request, so a partial update could fail between two valid states.
            let req = cl.elbv2.modify_target_group().target_group_arn(arn);
            self.m(ELBV2, "ModifyTargetGroup", with_health_check!(req, s).send()).await?;
        }
        self.sync_attributes(arn, &have.attributes, &s.attributes).await?;
        self.sync_targets(arn, &have.targets, &s.targets).await?;
        self.sync_elb_tags(arn, &d.tags, &o.tags).await
    }

    async fn update_tg(&mut self, d: &DesiredResource, o: &ObservedResource) -> Result<(), CloudError> {
        let s: TargetGroupSpec = spec(d)?;
        let Some(have) = observed_spec::<TargetGroupSpec>(o) else {
            return Err(permanent(ELBV2, "DescribeTargetGroups", format!("target group {}: unreadable observed spec", d.key.name)));
        };
        if immutable(&have) == immutable(&s) {
            return self.update_tg_in_place(&o.id, d, &s, o, &have).await;
        }
        // Protocol, port, VPC and target type are fixed at creation: build a new group under
        // the same key (its NAME tag), move the rules, delete the old one at the end. A copy
        // left by an interrupted replacement is reused rather than duplicated again.
        let observed = self.observed;
        let reuse = observed.iter().find(|x| {
            x.key == d.key && x.id != o.id && !self.deleted.contains(&x.id) && observed_spec::<TargetGroupSpec>(x).is_some_and(|h| immutable(&h) == immutable(&s))
        });
        let new_arn = match reuse {
            Some(x) => {
                let h: TargetGroupSpec = observed_spec(x).unwrap_or_else(|| s.clone());
                self.update_tg_in_place(&x.id, d, &s, x, &h).await?;
                self.switched.insert(x.id.clone());
                x.id.clone()
            }
            None => {
                let name = replacement_name(&d.key.name, &s);
                self.create_tg_named(&name, d, &s).await?
            }
        };
        tracing::info!(target_group = %d.key.name, old = %o.id, new = %new_arn, "target group replaced (immutable settings changed)");
        self.ids.insert(d.key.clone(), new_arn);
        self.deferred.push(o.id.clone());
        Ok(())
    }

    /// Points every rule of ours that forwards to `old_arn` (and that this run has not written
    /// already) at the current ARNs of its target groups.
    async fn repoint(&mut self, old_arn: &str) -> Result<(), CloudError> {
        let observed = self.observed;
        for r in observed.iter().filter(|r| r.key.kind == KIND_RULE) {
            if self.deleted.contains(&r.id) || self.touched_rules.contains(&r.id) {
                continue;
            }
            let uses = r.spec.get("targetGroupArns").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v.as_str() == Some(old_arn)));
            if !uses {
                continue;
            }
            let Some(actions) = r.spec.get("actions").and_then(|a| serde_json::from_value::<Vec<Action>>(a.clone()).ok()) else { continue };
            let actions = actions.iter().map(|a| self.action(a)).collect::<Result<Vec<_>, _>>()?;
            let cl = self.cl;
            self.m(ELBV2, "ModifyRule", cl.elbv2.modify_rule().rule_arn(&r.id).set_actions(Some(actions)).send()).await?;
            self.touched_rules.insert(r.id.clone());
        }
        Ok(())
    }

    // --- listeners ---------------------------------------------------------------------------

    async fn create_listener(&mut self, d: &DesiredResource) -> Result<(), CloudError> {
        let s: ListenerSpec = spec(d)?;
        let lb = self.id(KIND_LOAD_BALANCER, &s.load_balancer)?;
        let certs = s.certificates.iter().map(|c| self.id(KIND_CERTIFICATE, c)).collect::<Result<Vec<_>, _>>()?;
        let cl = self.cl;
        let mut req = cl
            .elbv2
            .create_listener()
            .load_balancer_arn(lb)
            .port(s.port)
            .protocol(el::ProtocolEnum::from(s.protocol.as_str()))
            .set_ssl_policy(s.ssl_policy.clone())
            .default_actions(self.action(&s.default_action)?)
            .set_tags(Some(elb_tags(&d.tags)));
        if let Some(first) = certs.first() {
            req = req.certificates(el::Certificate::builder().certificate_arn(first).build());
        }
        let out = self.m(ELBV2, "CreateListener", req.send()).await?;
        let arn = out.listeners().first().and_then(|l| l.listener_arn()).ok_or_else(|| permanent(ELBV2, "CreateListener", "no listener in the answer"))?.to_string();
        self.record_created(&d.key, &arn);
        if certs.len() > 1 {
            let req = cl.elbv2.add_listener_certificates().listener_arn(&arn).set_certificates(Some(cert_list(&certs[1..])));
            self.m(ELBV2, "AddListenerCertificates", req.send()).await?;
        }
        Ok(())
    }

    async fn update_listener(&mut self, d: &DesiredResource, o: &ObservedResource) -> Result<(), CloudError> {
        let s: ListenerSpec = spec(d)?;
        if !same(&o.spec, &d.spec, "loadBalancer") {
            return Err(permanent(ELBV2, "ModifyListener", format!("listener {} cannot move to another load balancer", d.key.name)));
        }
        let certs = s.certificates.iter().map(|c| self.id(KIND_CERTIFICATE, c)).collect::<Result<Vec<_>, _>>()?;
        let have_certs: Vec<String> =
            o.spec.get("certificateArns").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default();
        let cl = self.cl;
        let arn = o.id.as_str();
        let mut req = cl.elbv2.modify_listener().listener_arn(arn);
        let mut modify = false;
        if !same(&o.spec, &d.spec, "port") {
            req = req.port(s.port);
            modify = true;
        }
        if !same(&o.spec, &d.spec, "protocol") {
            req = req.protocol(el::ProtocolEnum::from(s.protocol.as_str()));
            modify = true;
        }
        if s.ssl_policy.is_some() && !same(&o.spec, &d.spec, "sslPolicy") {
            req = req.set_ssl_policy(s.ssl_policy.clone());
            modify = true;
        }
        if let Some(first) = certs.first().filter(|c| have_certs.first() != Some(*c)) {
            req = req.certificates(el::Certificate::builder().certificate_arn(first).build());
            modify = true;
        }
        if !same(&o.spec, &d.spec, "defaultAction") {
            req = req.default_actions(self.action(&s.default_action)?);
            modify = true;
        }
        if modify {
            self.m(ELBV2, "ModifyListener", req.send()).await?;
        }
        // Additional certificates: a set beside the default one.
        let want_extra: Vec<String> = certs.iter().skip(1).cloned().collect();
        let have_extra: Vec<String> = have_certs.iter().skip(1).cloned().collect();
        let add: Vec<String> = want_extra.iter().filter(|c| !have_extra.contains(c)).cloned().collect();
        let remove: Vec<String> = have_extra.iter().filter(|c| !want_extra.contains(c) && certs.first() != Some(*c)).cloned().collect();
        if !add.is_empty() {
            let req = cl.elbv2.add_listener_certificates().listener_arn(arn).set_certificates(Some(cert_list(&add)));
            self.m(ELBV2, "AddListenerCertificates", req.send()).await?;
        }
        if !remove.is_empty() {
            let req = cl.elbv2.remove_listener_certificates().listener_arn(arn).set_certificates(Some(cert_list(&remove)));
            self.m(ELBV2, "RemoveListenerCertificates", req.send()).await?;
        }
        self.sync_elb_tags(arn, &d.tags, &o.tags).await
    }

    // --- rules -------------------------------------------------------------------------------

    async fn create_rule(&mut self, d: &DesiredResource, s: &RuleSpec) -> Result<(), CloudError> {
        let listener = self.id(KIND_LISTENER, &s.listener)?;
        let actions = s.actions.iter().map(|a| self.action(a)).collect::<Result<Vec<_>, _>>()?;
        let cl = self.cl;
        let req = cl
            .elbv2
            .create_rule()
            .listener_arn(listener)
            .priority(s.priority as i32)
            .set_conditions(Some(s.conditions.iter().map(condition_to_sdk).collect()))
            .set_actions(Some(actions))
            .set_tags(Some(elb_tags(&d.tags)));
        let out = self.m(ELBV2, "CreateRule", req.send()).await?;
        let arn = out.rules().first().and_then(|r| r.rule_arn()).ok_or_else(|| permanent(ELBV2, "CreateRule", "no rule in the answer"))?.to_string();
        self.record_created(&d.key, &arn);
        self.touched_rules.insert(arn);
        Ok(())
    }

    async fn update_rule(&mut self, d: &DesiredResource, o: &ObservedResource) -> Result<(), CloudError> {
        let s: RuleSpec = spec(d)?;
        if o.spec.get("listener").and_then(Value::as_str) != Some(s.listener.as_str()) {
            // Rules cannot move between listeners (the listener's port changed): recreate.
            self.delete_rule(&o.id).await?;
            self.prepare(&s.listener).await?;
            return self.create_rule(d, &s).await;
        }
        self.prepare(&s.listener).await?;
        let conditions = !same(&o.spec, &d.spec, "conditions");
        let actions = !same(&o.spec, &d.spec, "actions");
        if conditions || actions {
            let cl = self.cl;
            let mut req = cl.elbv2.modify_rule().rule_arn(&o.id);
            if conditions {
                req = req.set_conditions(Some(s.conditions.iter().map(condition_to_sdk).collect()));
            }
            if actions {
                req = req.set_actions(Some(s.actions.iter().map(|a| self.action(a)).collect::<Result<Vec<_>, _>>()?));
            }
            self.m(ELBV2, "ModifyRule", req.send()).await?;
            self.touched_rules.insert(o.id.clone());
        }
        self.sync_elb_tags(&o.id, &d.tags, &o.tags).await
    }

    async fn delete_rule(&mut self, arn: &str) -> Result<(), CloudError> {
        if self.deleted.contains(arn) {
            return Ok(());
        }
        let cl = self.cl;
        let r = self.m(ELBV2, "DeleteRule", cl.elbv2.delete_rule().rule_arn(arn).send()).await;
        gone(r.map(|_| ()), &["RuleNotFound"])?;
        self.deleted.insert(arn.to_string());
        Ok(())
    }

    /// Settles the priorities of a listener's rules before the first rule change on it, so that
    /// every create and move lands on a free priority: rules being removed that sit where
    /// another must go are deleted first, moves go in one SetRulePriorities call, and when a
    /// moving rule holds another's target priority (a shift), the blocking rules first step
    /// aside to free priorities at the end of the range (ALB checks each new priority against
    /// the listener's current rules).
    async fn prepare(&mut self, listener: &str) -> Result<(), CloudError> {
        if !self.prepared.insert(listener.to_string()) {
            return Ok(());
        }
        let Some(larn) = self.ids.get(&key(KIND_LISTENER, listener)).cloned() else { return Ok(()) };
        if self.created.contains(&larn) {
            return Ok(());
        }
        let on = |v: &Value| v.get("listener").and_then(Value::as_str) == Some(listener);
        let prio = |v: &Value| v.get("priority").and_then(Value::as_u64).map(|p| p as u32);
        // Rules on the listener now.
        let mut current: BTreeMap<String, u32> = self
            .observed
            .iter()
            .filter(|r| r.key.kind == KIND_RULE && on(&r.spec) && !self.deleted.contains(&r.id))
            .filter_map(|r| Some((r.id.clone(), prio(&r.spec)?)))
            .collect();
        let mut targets = BTreeSet::new();
        let mut moves: Vec<(String, u32, u32)> = Vec::new();
        let mut doomed = BTreeSet::new();
        for ch in &self.changes.changes {
            if ch.key().kind != KIND_RULE {
                continue;
            }
            match ch {
                Change::Create { desired } if on(&desired.spec) => targets.extend(prio(&desired.spec)),
                Change::Update { desired, observed } => match (on(&desired.spec), on(&observed.spec)) {
                    (true, true) => {
                        if let (Some(from), Some(to)) = (prio(&observed.spec), prio(&desired.spec))
                            && from != to
                        {
                            moves.push((observed.id.clone(), from, to));
                            targets.insert(to);
                        }
                    }
                    (true, false) => targets.extend(prio(&desired.spec)),
                    (false, true) => {
                        doomed.insert(observed.id.clone());
                    }
                    (false, false) => {}
                },
                Change::Delete { observed } if on(&observed.spec) => {
                    doomed.insert(observed.id.clone());
                }
                _ => {}
            }
        }
        let in_the_way: Vec<String> = current.iter().filter(|(id, p)| doomed.contains(*id) && targets.contains(*p)).map(|(id, _)| id.clone()).collect();
        for id in in_the_way {
            self.delete_rule(&id).await?;
            current.remove(&id);
        }
        if moves.is_empty() {
            return Ok(());
        }
        let cl = self.cl;
        let blockers: Vec<&(String, u32, u32)> = moves.iter().filter(|(_, from, _)| targets.contains(from)).collect();
        if !blockers.is_empty() {
            let taken: BTreeSet<u32> = current.values().copied().chain(targets.iter().copied()).collect();
            let mut free = (1..=MAX_RULE_PRIORITY).rev().filter(|p| !taken.contains(p));
            let mut pairs = Vec::new();
            for (id, _, _) in &blockers {
                let p = free.next().ok_or_else(|| permanent(ELBV2, "SetRulePriorities", format!("listener {listener} has no free priority left")))?;
                pairs.push(el::RulePriorityPair::builder().rule_arn(id).priority(p as i32).build());
            }
            self.m(ELBV2, "SetRulePriorities", cl.elbv2.set_rule_priorities().set_rule_priorities(Some(pairs)).send()).await?;
        }
        let pairs = moves.iter().map(|(id, _, to)| el::RulePriorityPair::builder().rule_arn(id).priority(*to as i32).build()).collect();
        self.m(ELBV2, "SetRulePriorities", cl.elbv2.set_rule_priorities().set_rule_priorities(Some(pairs)).send()).await?;
        Ok(())
    }
}

/// Sets every health check field of a CreateTargetGroup or ModifyTargetGroup request (two
/// builder types with the same setters) from a spec.
macro_rules! with_health_check {
    ($req:expr, $s:expr) => {
        $req.health_check_protocol(el::ProtocolEnum::from($s.health_check_protocol.as_str()))
            .health_check_port(&$s.health_check_port)
            .health_check_path(&$s.health_check_path)
            .health_check_interval_seconds($s.health_check_interval_seconds)
            .health_check_timeout_seconds($s.health_check_timeout_seconds)
            .healthy_threshold_count($s.healthy_threshold_count)
            .unhealthy_threshold_count($s.unhealthy_threshold_count)
            .matcher(matcher($s))
    };
}
use with_health_check;

/// A GRPC target group's matcher holds gRPC codes, any other's HTTP codes.
fn matcher(s: &TargetGroupSpec) -> el::Matcher {
    if s.protocol_version == "GRPC" { el::Matcher::builder().grpc_code(&s.matcher) } else { el::Matcher::builder().http_code(&s.matcher) }.build()
}

fn health_check(s: &TargetGroupSpec) -> (&str, &str, &str, i32, i32, i32, i32, &str) {
    (
        &s.health_check_protocol,
        &s.health_check_port,
        &s.health_check_path,
        s.health_check_interval_seconds,
        s.health_check_timeout_seconds,
        s.healthy_threshold_count,
        s.unhealthy_threshold_count,
        &s.matcher,
    )
}

fn immutable(s: &TargetGroupSpec) -> (&str, &str, &str, i32, &str) {
    (&s.target_type, &s.protocol, &s.protocol_version, s.port, &s.vpc_id)
}

/// A second cloud name for a key: the last 4 characters of the hash part come from the new
/// settings, so the replacement never collides with the group it replaces.
fn replacement_name(name: &str, s: &TargetGroupSpec) -> String {
    let h = stable_hash(&[name, &s.target_type, &s.protocol, &s.protocol_version, &s.port.to_string(), &s.vpc_id]);
    let cut = name.len().saturating_sub(4);
    let (base, tail) = name.split_at(cut);
    let suffix = if &h[..4] == tail { &h[4..8] } else { &h[..4] };
    format!("{base}{suffix}")
}

fn cert_list(arns: &[String]) -> Vec<el::Certificate> {
    arns.iter().map(|a| el::Certificate::builder().certificate_arn(a).build()).collect()
}

/// A certificate's tags: the render's plus what ACM cannot report (Secret, content hash).
fn cert_tags(d: &DesiredResource, s: &CertificateSpec) -> BTreeMap<String, String> {
    let mut t = d.tags.clone();
    t.insert(TAG_SECRET.into(), s.secret.clone());
    t.insert(TAG_CERTIFICATE_SHA256.into(), s.certificate_sha256.clone());
    t
}

fn ec2_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect()
}

fn acm_tags(tags: &BTreeMap<String, String>) -> Result<Vec<aws_sdk_acm::types::Tag>, CloudError> {
    tags.iter()
        .map(|(k, v)| aws_sdk_acm::types::Tag::builder().key(k).value(v).build().map_err(|e| permanent(ACM, "Tag", e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_names_differ_and_fit() {
        let s = TargetGroupSpec {
            target_type: "ip".into(),
            protocol: "HTTP".into(),
            protocol_version: "GRPC".into(),
            port: 80,
            vpc_id: "vpc-1".into(),
            health_check_protocol: "HTTP".into(),
            health_check_port: "traffic-port".into(),
            health_check_path: "/".into(),
            health_check_interval_seconds: 30,
            health_check_timeout_seconds: 5,
            healthy_threshold_count: 5,
            unhealthy_threshold_count: 2,
            matcher: "0-99".into(),
            attributes: BTreeMap::new(),
            targets: vec![],
        };
        let name = "cg-shop-v1-80-0123456789";
        let r = replacement_name(name, &s);
        assert_eq!(r.len(), name.len());
        assert_ne!(r, name);
        assert!(r.starts_with("cg-shop-v1-80-012345"));
        assert_eq!(r, replacement_name(name, &s));
    }
}
