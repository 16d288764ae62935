//! Finds every resource one Gateway owns (by its ownership tags) and reads it back in the
//! render's vocabulary: names, not ARNs, and lists in canonical order, so that in steady state
//! `diff` finds nothing. Anything without our tags, or tagged for another cluster or Gateway,
//! is never returned.
//!
//! Reads: DescribeSecurityGroups (tag filters, server side); ListCertificates +
//! ListTagsForCertificate; DescribeLoadBalancers and DescribeTargetGroups + DescribeTags in
//! batches of 20; DescribeTargetHealth per owned target group, DescribeTargetGroupAttributes
//! per owned target group whose attributes are not cached (`sdk::AttributeCache`: in steady
//! state, once per group per `CloudOptions::attribute_cache_ttl`); DescribeListeners,
//! DescribeListenerCertificates (HTTPS only) and DescribeRules per owned load balancer /
//! listener, + DescribeTags.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_acm::types::{Filters, KeyAlgorithm};
use aws_sdk_ec2::types::Filter;
use cloudgate_provider::cloud::{CloudError, Owner};
use cloudgate_provider::diff::ObservedResource;
use cloudgate_provider::resource::ResourceKey;
use cloudgate_provider::tags;
use serde_json::{json, Value};

use super::convert::{actions_from_sdk, conditions_from_sdk, elb_tag_map, forwarded_arns, ingress_from_sdk};
use super::sdk::{Attributes, Clients, ACM, EC2, ELBV2};
use super::{TAG_CERTIFICATE_SHA256, TAG_SECRET};
use crate::render::{CertificateSpec, SecurityGroupSpec, Target, TargetGroupSpec, MANAGED_ATTRIBUTES};
use crate::{KIND_CERTIFICATE, KIND_LISTENER, KIND_LOAD_BALANCER, KIND_RULE, KIND_SECURITY_GROUP, KIND_TARGET_GROUP};

/// ELBv2 DescribeTags takes at most 20 ARNs.
const TAG_BATCH: usize = 20;

type Tags = BTreeMap<String, String>;

fn observed(kind: &str, name: String, id: String, tags: Tags, spec: Value) -> ObservedResource {
    ObservedResource { key: ResourceKey { kind: kind.into(), name }, id, tags, spec }
}

/// The key name: the NAME tag, else the resource's own name (or id).
fn key_name(tags: &Tags, fallback: &str) -> String {
    tags.get(tags::NAME).cloned().unwrap_or_else(|| fallback.to_string())
}

pub async fn observe(cl: &Clients, owner: &Owner) -> Result<Vec<ObservedResource>, CloudError> {
    let gateway = owner.gateway.to_string();
    let ours = |t: &Tags| tags::owned_by(t, &owner.cluster_id) && t.get(tags::GATEWAY) == Some(&gateway);
    let mut out = Vec::new();

    // --- security groups (filtered by tag on the server) ---
    let mut sg_names: HashMap<String, String> = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let req = cl
            .ec2
            .describe_security_groups()
            .filters(Filter::builder().name(format!("tag:{}", tags::MANAGED_BY)).values(tags::MANAGED_BY_VALUE).build())
            .filters(Filter::builder().name(format!("tag:{}", tags::CLUSTER)).values(&owner.cluster_id).build())
            .filters(Filter::builder().name(format!("tag:{}", tags::GATEWAY)).values(&gateway).build())
            .max_results(1000)
            .set_next_token(token.take());
        let page = cl.call(EC2, "DescribeSecurityGroups", req.send()).await?;
        for sg in page.security_groups() {
            let t: Tags = sg.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect();
            let (Some(id), true) = (sg.group_id(), ours(&t)) else { continue };
            let name = key_name(&t, sg.group_name().unwrap_or(id));
            sg_names.insert(id.to_string(), name.clone());
            let spec = SecurityGroupSpec {
                vpc_id: sg.vpc_id().unwrap_or_default().to_string(),
                description: sg.description().unwrap_or_default().to_string(),
                ingress: ingress_from_sdk(sg.ip_permissions()),
            };
            out.push(observed(KIND_SECURITY_GROUP, name, id.to_string(), t, to_value(&spec)));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }

    // --- ACM certificates (imported ones; tags one certificate at a time) ---
    let mut cert_names: HashMap<String, String> = HashMap::new();
    let mut token: Option<String> = None;
    let key_types = [
        KeyAlgorithm::Rsa1024,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcPrime256v1,
        KeyAlgorithm::EcSecp384r1,
        KeyAlgorithm::EcSecp521r1,
    ];
    loop {
        // Without `Includes` ListCertificates reports RSA-2048 keys only.
        let req = cl
            .acm
            .list_certificates()
            .includes(Filters::builder().set_key_types(Some(key_types.to_vec())).build())
            .max_items(1000)
            .set_next_token(token.take());
        let page = cl.call(ACM, "ListCertificates", req.send()).await?;
        for c in page.certificate_summary_list() {
            let Some(arn) = c.certificate_arn() else { continue };
            // Only imported certificates can be ours; skip the tag read for the rest.
            if c.r#type().is_some_and(|t| t.as_str() != "IMPORTED") {
                continue;
            }
            let tr = cl.call(ACM, "ListTagsForCertificate", cl.acm.list_tags_for_certificate().certificate_arn(arn).send()).await;
            let tr = match tr {
                Ok(tr) => tr,
                // Deleted between the list and the tag read: not ours to report.
                Err(f) if f.is("ResourceNotFoundException") => continue,
                Err(f) => return Err(f.into()),
            };
            let t: Tags = tr.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect();
            if !ours(&t) {
                continue;
            }
            let name = key_name(&t, arn);
            cert_names.insert(arn.to_string(), name.clone());
            let spec = CertificateSpec {
                secret: t.get(TAG_SECRET).cloned().unwrap_or_default(),
                certificate_sha256: t.get(TAG_CERTIFICATE_SHA256).cloned().unwrap_or_default(),
            };
            out.push(observed(KIND_CERTIFICATE, name, arn.to_string(), t, to_value(&spec)));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }

    // --- target groups ---
    let mut tgs = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let req = cl.elbv2.describe_target_groups().page_size(400).set_marker(marker.take());
        let page = cl.call(ELBV2, "DescribeTargetGroups", req.send()).await?;
        tgs.extend(page.target_groups().iter().cloned());
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    let tg_tags = describe_tags(cl, tgs.iter().filter_map(|t| t.target_group_arn()).map(str::to_string).collect()).await?;
    let mut tg_names: HashMap<String, String> = HashMap::new();
    for tg in &tgs {
        let Some(arn) = tg.target_group_arn() else { continue };
        let Some(t) = tg_tags.get(arn).filter(|t| ours(t)) else { continue };
        tg_names.insert(arn.to_string(), key_name(t, tg.target_group_name().unwrap_or(arn)));
    }
    for tg in &tgs {
        let Some(arn) = tg.target_group_arn() else { continue };
        let Some(name) = tg_names.get(arn).cloned() else { continue };
        let t = tg_tags[arn].clone();
        let health = cl.call(ELBV2, "DescribeTargetHealth", cl.elbv2.describe_target_health().target_group_arn(arn).send()).await?;
        let mut targets: Vec<Target> = health
            .target_health_descriptions()
            .iter()
            // Draining targets are on their way out already.
            .filter(|h| h.target_health().and_then(|th| th.state()).is_none_or(|s| s.as_str() != "draining"))
            .filter_map(|h| h.target())
            .filter_map(|d| Some(Target { id: d.id()?.to_string(), port: d.port()? }))
            .collect();
        targets.sort();
        targets.dedup();
        let matcher = tg.matcher().and_then(|m| m.grpc_code().or(m.http_code())).unwrap_or_default();
        let attributes = match cl.attributes.get(arn) {
            Some(a) => a,
            None => {
                let out = cl.call(ELBV2, "DescribeTargetGroupAttributes", cl.elbv2.describe_target_group_attributes().target_group_arn(arn).send()).await?;
                let a: Attributes = out
                    .attributes()
                    .iter()
                    .filter_map(|a| Some((a.key()?.to_string(), a.value().unwrap_or_default().to_string())))
                    .filter(|(k, _)| MANAGED_ATTRIBUTES.iter().any(|(m, _)| m == k))
                    .collect();
                cl.attributes.put(arn, a.clone());
                a
            }
        };
        let spec = TargetGroupSpec {
            target_type: tg.target_type().map(|x| x.as_str()).unwrap_or_default().to_string(),
            protocol: tg.protocol().map(|x| x.as_str()).unwrap_or_default().to_string(),
            // HTTP1 is the API's default when a response leaves it out.
            protocol_version: tg.protocol_version().unwrap_or("HTTP1").to_string(),
            port: tg.port().unwrap_or_default(),
            vpc_id: tg.vpc_id().unwrap_or_default().to_string(),
            health_check_protocol: tg.health_check_protocol().map(|x| x.as_str()).unwrap_or_default().to_string(),
            health_check_port: tg.health_check_port().unwrap_or_default().to_string(),
            health_check_path: tg.health_check_path().unwrap_or_default().to_string(),
            health_check_interval_seconds: tg.health_check_interval_seconds().unwrap_or_default(),
            health_check_timeout_seconds: tg.health_check_timeout_seconds().unwrap_or_default(),
            healthy_threshold_count: tg.healthy_threshold_count().unwrap_or_default(),
            unhealthy_threshold_count: tg.unhealthy_threshold_count().unwrap_or_default(),
            matcher: matcher.to_string(),
            attributes,
            targets,
        };
        out.push(observed(KIND_TARGET_GROUP, name, arn.to_string(), t, to_value(&spec)));
    }
    let tg_name = |arn: &str| tg_names.get(arn).cloned().unwrap_or_else(|| arn.to_string());

    // --- load balancers ---
    let mut lbs = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let req = cl.elbv2.describe_load_balancers().page_size(400).set_marker(marker.take());
        let page = cl.call(ELBV2, "DescribeLoadBalancers", req.send()).await?;
        lbs.extend(page.load_balancers().iter().cloned());
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    let lb_tags = describe_tags(cl, lbs.iter().filter_map(|l| l.load_balancer_arn()).map(str::to_string).collect()).await?;
    let mut our_lbs = Vec::new();
    for lb in &lbs {
        let Some(arn) = lb.load_balancer_arn() else { continue };
        let Some(t) = lb_tags.get(arn).filter(|t| ours(t)) else { continue };
        let name = key_name(t, lb.load_balancer_name().unwrap_or(arn));
        let mut subnets: Vec<String> = lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
        subnets.sort();
        subnets.dedup();
        let mut sgs: Vec<String> = lb.security_groups().iter().map(|id| sg_names.get(id).cloned().unwrap_or_else(|| id.clone())).collect();
        sgs.sort();
        let spec = json!({
            "type": lb.r#type().map(|x| x.as_str()).unwrap_or_default(),
            "scheme": lb.scheme().map(|x| x.as_str()).unwrap_or_default(),
            "ipAddressType": lb.ip_address_type().map(|x| x.as_str()).unwrap_or_default(),
            "subnets": subnets,
            "securityGroups": sgs,
            // Not in the desired spec: what apply reports (address, readiness).
            "dnsName": lb.dns_name().unwrap_or_default(),
            "state": lb.state().and_then(|s| s.code()).map(|c| c.as_str()).unwrap_or_default(),
        });
        our_lbs.push((arn.to_string(), name.clone()));
        out.push(observed(KIND_LOAD_BALANCER, name, arn.to_string(), t.clone(), spec));
    }

    // --- listeners and rules of our load balancers ---
    for (lb_arn, lb_name) in &our_lbs {
        let mut listeners = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let req = cl.elbv2.describe_listeners().load_balancer_arn(lb_arn).page_size(400).set_marker(marker.take());
            let page = cl.call(ELBV2, "DescribeListeners", req.send()).await?;
            listeners.extend(page.listeners().iter().cloned());
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        let l_tags = describe_tags(cl, listeners.iter().filter_map(|l| l.listener_arn()).map(str::to_string).collect()).await?;
        for l in &listeners {
            let Some(arn) = l.listener_arn() else { continue };
            let Some(t) = l_tags.get(arn).filter(|t| ours(t)) else { continue };
            let name = key_name(t, arn);
            let protocol = l.protocol().map(|x| x.as_str()).unwrap_or_default();
            // DescribeListeners reports the default certificate only.
            let default_cert = l.certificates().iter().find(|c| c.is_default() != Some(false)).and_then(|c| c.certificate_arn()).map(str::to_string);
            let mut extra = Vec::new();
            if protocol == "HTTPS" {
                let mut marker: Option<String> = None;
                loop {
                    let req = cl.elbv2.describe_listener_certificates().listener_arn(arn).page_size(400).set_marker(marker.take());
                    let page = cl.call(ELBV2, "DescribeListenerCertificates", req.send()).await?;
                    for c in page.certificates() {
                        let Some(a) = c.certificate_arn() else { continue };
                        if c.is_default() != Some(true) && Some(a) != default_cert.as_deref() && !extra.iter().any(|x| x == a) {
                            extra.push(a.to_string());
                        }
                    }
                    match page.next_marker() {
                        Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                        _ => break,
                    }
                }
            }
            let cert_name = |a: &String| cert_names.get(a).cloned().unwrap_or_else(|| a.clone());
            let mut extra_names: Vec<(String, String)> = extra.iter().map(|a| (cert_name(a), a.clone())).collect();
            extra_names.sort();
            let mut certificates: Vec<String> = default_cert.iter().map(cert_name).collect();
            let mut certificate_arns: Vec<String> = default_cert.iter().cloned().collect();
            certificates.extend(extra_names.iter().map(|(n, _)| n.clone()));
            certificate_arns.extend(extra_names.into_iter().map(|(_, a)| a));
            let mut spec = json!({
                "loadBalancer": lb_name,
                "port": l.port().unwrap_or_default(),
                "protocol": protocol,
                "defaultAction": actions_from_sdk(l.default_actions(), &tg_name).get(0).cloned().unwrap_or(Value::Null),
                // Not in the desired spec: for apply (certificate sets, cascading deletes).
                "certificateArns": certificate_arns,
                "loadBalancerArn": lb_arn,
            });
            if !certificates.is_empty() {
                spec["certificates"] = json!(certificates);
            }
            if let Some(p) = l.ssl_policy() {
                spec["sslPolicy"] = json!(p);
            }
            out.push(observed(KIND_LISTENER, name.clone(), arn.to_string(), t.clone(), spec));

            let mut rules = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let req = cl.elbv2.describe_rules().listener_arn(arn).page_size(400).set_marker(marker.take());
                let page = cl.call(ELBV2, "DescribeRules", req.send()).await?;
                rules.extend(page.rules().iter().filter(|r| r.is_default() != Some(true) && r.priority() != Some("default")).cloned());
                match page.next_marker() {
                    Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            let r_tags = describe_tags(cl, rules.iter().filter_map(|r| r.rule_arn()).map(str::to_string).collect()).await?;
            for r in &rules {
                let Some(rarn) = r.rule_arn() else { continue };
                let Some(rt) = r_tags.get(rarn).filter(|t| ours(t)) else { continue };
                let spec = json!({
                    "listener": name,
                    "priority": r.priority().and_then(|p| p.parse::<u64>().ok()),
                    "conditions": conditions_from_sdk(r.conditions()),
                    "actions": actions_from_sdk(r.actions(), &tg_name),
                    // Not in the desired spec: lets apply re-point rules when a target group is
                    // replaced.
                    "targetGroupArns": forwarded_arns(r.actions()),
                    "listenerArn": arn,
                });
                out.push(observed(KIND_RULE, key_name(rt, rarn), rarn.to_string(), rt.clone(), spec));
            }
        }
    }
    Ok(out)
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// ELBv2 tags of `arns`, 20 per call.
async fn describe_tags(cl: &Clients, arns: Vec<String>) -> Result<HashMap<String, Tags>, CloudError> {
    let mut out = HashMap::new();
    for chunk in arns.chunks(TAG_BATCH) {
        let r = cl.call(ELBV2, "DescribeTags", cl.elbv2.describe_tags().set_resource_arns(Some(chunk.to_vec())).send()).await;
        match r {
            Ok(page) => {
                for d in page.tag_descriptions() {
                    if let Some(arn) = d.resource_arn() {
                        out.insert(arn.to_string(), elb_tag_map(d.tags()));
                    }
                }
            }
            // A resource deleted between the listing and the tag read fails the whole batch;
            // the next observe sees a consistent picture.
            Err(f) if f.is_any(&["LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound", "RuleNotFound"]) => {
                return Err(CloudError::Retryable { service: ELBV2, operation: "DescribeTags".into(), message: f.error.to_string() });
            }
            Err(f) => return Err(f.into()),
        }
    }
    Ok(out)
}
