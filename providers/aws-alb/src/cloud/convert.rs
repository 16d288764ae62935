//! Spec structs <-> SDK types, both directions. Pure: no calls, so the vocabulary can be checked
//! without a cloud. Names <-> ARNs are resolved by the caller through closures.

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2::types as el;
use serde_json::{json, Value};

use crate::render::{canonical_conditions, Action, Condition, IngressRule, KeyValue, WeightedTargetGroup};

pub fn elb_tags(tags: &BTreeMap<String, String>) -> Vec<el::Tag> {
    tags.iter().map(|(k, v)| el::Tag::builder().key(k).value(v).build()).collect()
}

pub fn elb_tag_map(tags: &[el::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// Tags in `want` that `have` lacks or holds with another value.
pub fn missing_tags(want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    want.iter().filter(|(k, v)| have.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

// --- rules -----------------------------------------------------------------------------------

pub fn condition_to_sdk(c: &Condition) -> el::RuleCondition {
    let b = el::RuleCondition::builder();
    match c {
        Condition::HostHeader { values } => b
            .field("host-header")
            .host_header_config(el::HostHeaderConditionConfig::builder().set_values(Some(values.clone())).build()),
        Condition::PathPattern { values } => b
            .field("path-pattern")
            .path_pattern_config(el::PathPatternConditionConfig::builder().set_values(Some(values.clone())).build()),
        Condition::HttpHeader { name, values } => b.field("http-header").http_header_config(
            el::HttpHeaderConditionConfig::builder().http_header_name(name).set_values(Some(values.clone())).build(),
        ),
        Condition::QueryString { values } => b.field("query-string").query_string_config(
            el::QueryStringConditionConfig::builder()
                .set_values(Some(values.iter().map(|kv| el::QueryStringKeyValuePair::builder().key(&kv.key).value(&kv.value).build()).collect()))
                .build(),
        ),
        Condition::HttpRequestMethod { values } => b.field("http-request-method").http_request_method_config(
            el::HttpRequestMethodConditionConfig::builder().set_values(Some(values.clone())).build(),
        ),
    }
    .build()
}

/// Conditions as ALB reports them, in the canonical order render uses. A condition kind
/// cloudgate never writes (source-ip...) is kept as `{"field": ...}` so it shows up as a
/// difference instead of vanishing.
pub fn conditions_from_sdk(cs: &[el::RuleCondition]) -> Value {
    let mut known = Vec::new();
    let mut other = Vec::new();
    for c in cs {
        let field = c.field().unwrap_or_default();
        // The `*Config` form is authoritative; the legacy `Values` list is the fallback.
        let legacy = || c.values().to_vec();
        match field {
            "host-header" => known.push(Condition::HostHeader {
                values: c.host_header_config().map(|h| h.values().to_vec()).filter(|v| !v.is_empty()).unwrap_or_else(legacy),
            }),
            "path-pattern" => known.push(Condition::PathPattern {
                values: c.path_pattern_config().map(|h| h.values().to_vec()).filter(|v| !v.is_empty()).unwrap_or_else(legacy),
            }),
            "http-request-method" => known.push(Condition::HttpRequestMethod {
                values: c.http_request_method_config().map(|h| h.values().to_vec()).unwrap_or_default(),
            }),
            "http-header" => known.push(Condition::HttpHeader {
                name: c.http_header_config().and_then(|h| h.http_header_name()).unwrap_or_default().to_string(),
                values: c.http_header_config().map(|h| h.values().to_vec()).unwrap_or_default(),
            }),
            "query-string" => known.push(Condition::QueryString {
                values: c
                    .query_string_config()
                    .map(|q| {
                        q.values()
                            .iter()
                            .map(|kv| KeyValue { key: kv.key().unwrap_or_default().to_string(), value: kv.value().unwrap_or_default().to_string() })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            f => other.push(json!({ "field": f })),
        }
    }
    canonical_conditions(&mut known);
    let mut v: Vec<Value> = known.iter().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)).collect();
    v.extend(other);
    Value::Array(v)
}

/// `tg_arn` resolves a target group name to its ARN.
pub fn action_to_sdk(a: &Action, tg_arn: &dyn Fn(&str) -> Option<String>) -> Result<el::Action, String> {
    Ok(match a {
        Action::Forward { target_groups } => {
            let mut tuples = Vec::new();
            for t in target_groups {
                let arn = tg_arn(&t.target_group).ok_or_else(|| format!("target group {} does not exist", t.target_group))?;
                tuples.push(el::TargetGroupTuple::builder().target_group_arn(arn).weight(t.weight as i32).build());
            }
            el::Action::builder()
                .r#type(el::ActionTypeEnum::Forward)
                .forward_config(el::ForwardActionConfig::builder().set_target_groups(Some(tuples)).build())
                .build()
        }
        Action::Redirect { protocol, host, port, path, query, status_code } => el::Action::builder()
            .r#type(el::ActionTypeEnum::Redirect)
            .redirect_config(
                el::RedirectActionConfig::builder()
                    .protocol(protocol)
                    .host(host)
                    .port(port)
                    .path(path)
                    .query(query)
                    .status_code(el::RedirectActionStatusCodeEnum::from(status_code.as_str()))
                    .build(),
            )
            .build(),
        Action::FixedResponse { status_code, content_type, message_body } => el::Action::builder()
            .r#type(el::ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                el::FixedResponseActionConfig::builder()
                    .status_code(status_code)
                    .content_type(content_type)
                    .message_body(message_body)
                    .build(),
            )
            .build(),
    })
}

/// An action as render would have written it; `tg_name` maps a target group ARN to our name
/// (foreign ARNs map to themselves, so they differ from anything desired).
pub fn action_from_sdk(a: &el::Action, tg_name: &dyn Fn(&str) -> String) -> Value {
    let ty = a.r#type().map(|t| t.as_str()).unwrap_or_default();
    match ty {
        "forward" => {
            let mut target_groups: Vec<WeightedTargetGroup> = match a.forward_config() {
                Some(f) if !f.target_groups().is_empty() => f
                    .target_groups()
                    .iter()
                    .map(|t| WeightedTargetGroup {
                        target_group: tg_name(t.target_group_arn().unwrap_or_default()),
                        weight: t.weight().unwrap_or(1).max(0) as u32,
                    })
                    .collect(),
                _ => a.target_group_arn().map(|arn| vec![WeightedTargetGroup { target_group: tg_name(arn), weight: 1 }]).unwrap_or_default(),
            };
            target_groups.sort_by(|x, y| x.target_group.cmp(&y.target_group));
            serde_json::to_value(Action::Forward { target_groups }).unwrap_or(Value::Null)
        }
        "redirect" => {
            let r = a.redirect_config();
            let s = |f: fn(&el::RedirectActionConfig) -> Option<&str>, default: &str| r.and_then(f).unwrap_or(default).to_string();
            serde_json::to_value(Action::Redirect {
                protocol: s(|r| r.protocol(), "#{protocol}"),
                host: s(|r| r.host(), "#{host}"),
                port: s(|r| r.port(), "#{port}"),
                path: s(|r| r.path(), "/#{path}"),
                query: s(|r| r.query(), "#{query}"),
                status_code: r.and_then(|r| r.status_code()).map(|c| c.as_str().to_string()).unwrap_or_default(),
            })
            .unwrap_or(Value::Null)
        }
        "fixed-response" => {
            let f = a.fixed_response_config();
            serde_json::to_value(Action::FixedResponse {
                status_code: f.and_then(|f| f.status_code()).unwrap_or_default().to_string(),
                content_type: f.and_then(|f| f.content_type()).unwrap_or_default().to_string(),
                message_body: f.and_then(|f| f.message_body()).unwrap_or_default().to_string(),
            })
            .unwrap_or(Value::Null)
        }
        other => json!({ "type": other }),
    }
}

/// Actions in evaluation order.
pub fn actions_from_sdk(actions: &[el::Action], tg_name: &dyn Fn(&str) -> String) -> Value {
    let mut v: Vec<&el::Action> = actions.iter().collect();
    v.sort_by_key(|a| a.order().unwrap_or(0));
    Value::Array(v.into_iter().map(|a| action_from_sdk(a, tg_name)).collect())
}

/// ARNs of the target groups the actions forward to (for re-pointing rules).
pub fn forwarded_arns(actions: &[el::Action]) -> Vec<String> {
    let mut v: Vec<String> = actions
        .iter()
        .flat_map(|a| {
            let mut arns: Vec<String> = a.forward_config().map(|f| f.target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)).collect()).unwrap_or_default();
            arns.extend(a.target_group_arn().map(str::to_string));
            arns
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

// --- security groups -------------------------------------------------------------------------

pub fn ingress_to_sdk(rules: &[IngressRule]) -> Vec<aws_sdk_ec2::types::IpPermission> {
    use aws_sdk_ec2::types::{IpPermission, IpRange};
    rules
        .iter()
        .map(|r| {
            IpPermission::builder()
                .ip_protocol(&r.ip_protocol)
                .from_port(r.from_port)
                .to_port(r.to_port)
                .ip_ranges(IpRange::builder().cidr_ip(&r.cidr_ip).build())
                .build()
        })
        .collect()
}

/// One rule per (protocol, port range, IPv4 CIDR), as render writes them.
pub fn ingress_from_sdk(perms: &[aws_sdk_ec2::types::IpPermission]) -> Vec<IngressRule> {
    let mut v = Vec::new();
    for p in perms {
        for r in p.ip_ranges() {
            v.push(IngressRule {
                ip_protocol: p.ip_protocol().unwrap_or_default().to_string(),
                from_port: p.from_port().unwrap_or(-1),
                to_port: p.to_port().unwrap_or(-1),
                cidr_ip: r.cidr_ip().unwrap_or_default().to_string(),
            });
        }
    }
    crate::render::canonical_ingress(v)
}

// --- PEM -------------------------------------------------------------------------------------

/// Splits a `tls.crt` into the leaf certificate and the rest of the chain, as ImportCertificate
/// wants them.
pub fn split_chain(pem: &str) -> (String, Option<String>) {
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(END) else { break };
        let end = start + end + END.len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    if blocks.is_empty() {
        return (pem.to_string(), None);
    }
    let leaf = blocks.remove(0);
    (leaf, (!blocks.is_empty()).then(|| blocks.concat()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_round_trip_in_canonical_order() {
        let mut want = vec![
            Condition::QueryString { values: vec![KeyValue { key: "v".into(), value: "2".into() }] },
            Condition::HttpHeader { name: "x-b".into(), values: vec!["1".into()] },
            Condition::HttpHeader { name: "x-a".into(), values: vec!["1".into()] },
            Condition::PathPattern { values: vec!["/api/*".into(), "/api".into()] },
            Condition::HostHeader { values: vec!["a.example.com".into()] },
            Condition::HttpRequestMethod { values: vec!["POST".into()] },
        ];
        // The cloud reports them in some other order.
        let sdk: Vec<el::RuleCondition> = want.iter().rev().map(condition_to_sdk).collect();
        canonical_conditions(&mut want);
        assert_eq!(conditions_from_sdk(&sdk), serde_json::to_value(&want).unwrap());
        assert_eq!(want[0], Condition::HostHeader { values: vec!["a.example.com".into()] });
        assert_eq!(want[1], Condition::PathPattern { values: vec!["/api".into(), "/api/*".into()] });
    }

    #[test]
    fn actions_round_trip_with_names() {
        let arn = |n: &str| Some(format!("arn:tg/{n}"));
        let name = |a: &str| a.trim_start_matches("arn:tg/").to_string();
        for a in [
            Action::Forward {
                target_groups: vec![
                    WeightedTargetGroup { target_group: "a".into(), weight: 0 },
                    WeightedTargetGroup { target_group: "b".into(), weight: 999 },
                ],
            },
            Action::Redirect {
                protocol: "HTTPS".into(),
                host: "#{host}".into(),
                port: "443".into(),
                path: "/#{path}".into(),
                query: "#{query}".into(),
                status_code: "HTTP_301".into(),
            },
            Action::FixedResponse { status_code: "500".into(), content_type: "text/plain".into(), message_body: "x".into() },
        ] {
            let sdk = action_to_sdk(&a, &arn).unwrap();
            assert_eq!(action_from_sdk(&sdk, &name), serde_json::to_value(&a).unwrap());
        }
        let missing = Action::Forward { target_groups: vec![WeightedTargetGroup { target_group: "gone".into(), weight: 1 }] };
        assert!(action_to_sdk(&missing, &|_| None).is_err());
    }

    #[test]
    fn chain_split() {
        let c = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n";
        let (leaf, chain) = split_chain(c);
        assert_eq!(leaf, "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n");
        assert_eq!(chain.unwrap(), "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n");
        assert_eq!(split_chain(&c[..55]).1, None);
    }
}
