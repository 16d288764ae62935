//! Spec structs <-> SDK types, both directions, pure.
//!
//! Desired specs (crate::spec) name other resources by their cloudgate key name; the SDK wants
//! ids. `to_sdk` functions take a resolver from name to id; `to_json` functions take the
//! reverse map, so what observe reports reads exactly like what render produced. Fields the
//! cloud reports and render does not set are kept (the diff ignores extra fields), and shapes
//! render never emits (header `prefix`/`contains` matches, unknown union members) are reported
//! as they are, so a foreign edit shows up as a difference instead of being hidden.

use aws_sdk_vpclattice::types as sdk;
use cloudgate_provider::cloud::CloudError;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::errors::permanent;
use crate::spec;

/// The wire string of a spec enum (its serde name is the API's enum value).
pub fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

fn build_err(what: &str, e: impl std::fmt::Display) -> CloudError {
    permanent("build", format!("{what}: {e}"))
}

// ---------------------------------------------------------------- spec -> SDK (apply)

pub fn action_to_sdk(a: &spec::RuleAction, tg_id: &dyn Fn(&str) -> Result<String, CloudError>) -> Result<sdk::RuleAction, CloudError> {
    Ok(match a {
        spec::RuleAction::Forward(f) => {
            let mut groups = Vec::with_capacity(f.target_groups.len());
            for t in &f.target_groups {
                groups.push(
                    sdk::WeightedTargetGroup::builder()
                        .target_group_identifier(tg_id(&t.target_group_identifier)?)
                        .weight(t.weight as i32)
                        .build()
                        .map_err(|e| build_err("forward target group", e))?,
                );
            }
            sdk::RuleAction::Forward(sdk::ForwardAction::builder().set_target_groups(Some(groups)).build().map_err(|e| build_err("forward", e))?)
        }
        spec::RuleAction::FixedResponse(f) => sdk::RuleAction::FixedResponse(
            sdk::FixedResponseAction::builder().status_code(i32::from(f.status_code)).build().map_err(|e| build_err("fixed response", e))?,
        ),
    })
}

pub fn match_to_sdk(m: &spec::RuleMatch) -> Result<sdk::RuleMatch, CloudError> {
    let h = &m.http_match;
    let path = h.path_match.as_ref().map(|p| {
        let t = match &p.match_ {
            spec::PathMatchType::Exact(s) => sdk::PathMatchType::Exact(s.clone()),
            spec::PathMatchType::Prefix(s) => sdk::PathMatchType::Prefix(s.clone()),
        };
        sdk::PathMatch::builder().r#match(t).case_sensitive(p.case_sensitive).build()
    });
    let mut headers = Vec::with_capacity(h.header_matches.len());
    for hm in &h.header_matches {
        let t = match &hm.match_ {
            spec::HeaderMatchType::Exact(s) => sdk::HeaderMatchType::Exact(s.clone()),
        };
        headers.push(
            sdk::HeaderMatch::builder()
                .name(&hm.name)
                .r#match(t)
                .case_sensitive(hm.case_sensitive)
                .build()
                .map_err(|e| build_err("header match", e))?,
        );
    }
    Ok(sdk::RuleMatch::HttpMatch(
        sdk::HttpMatch::builder()
            .set_method(h.method.clone())
            .set_path_match(path)
            .set_header_matches((!headers.is_empty()).then_some(headers))
            .build(),
    ))
}

pub fn health_check_to_sdk(h: &spec::HealthCheckConfig) -> sdk::HealthCheckConfig {
    sdk::HealthCheckConfig::builder()
        .enabled(h.enabled)
        .set_protocol(h.protocol.as_ref().map(|p| sdk::TargetGroupProtocol::from(wire(p).as_str())))
        .set_protocol_version(h.protocol_version.as_ref().map(|v| sdk::HealthCheckProtocolVersion::from(wire(v).as_str())))
        .set_port(h.port.map(i32::from))
        .set_path(h.path.clone())
        .set_health_check_interval_seconds(h.health_check_interval_seconds.map(|v| v as i32))
        .set_health_check_timeout_seconds(h.health_check_timeout_seconds.map(|v| v as i32))
        .set_healthy_threshold_count(h.healthy_threshold_count.map(|v| v as i32))
        .set_unhealthy_threshold_count(h.unhealthy_threshold_count.map(|v| v as i32))
        .set_matcher(h.matcher.as_ref().map(|m| sdk::Matcher::HttpCode(m.http_code.clone())))
        .build()
}

pub fn tg_config_to_sdk(c: &spec::TargetGroupConfig) -> sdk::TargetGroupConfig {
    sdk::TargetGroupConfig::builder()
        .port(c.port)
        .protocol(sdk::TargetGroupProtocol::from(wire(&c.protocol).as_str()))
        .set_protocol_version(c.protocol_version.as_ref().map(|v| sdk::TargetGroupProtocolVersion::from(wire(v).as_str())))
        .ip_address_type(sdk::IpAddressType::from(wire(&c.ip_address_type).as_str()))
        .vpc_identifier(&c.vpc_identifier)
        .health_check(health_check_to_sdk(&c.health_check))
        .build()
}

pub fn targets_to_sdk(targets: &[spec::Target]) -> Result<Vec<sdk::Target>, CloudError> {
    targets
        .iter()
        .map(|t| sdk::Target::builder().id(&t.id).port(t.port).build().map_err(|e| build_err("target", e)))
        .collect()
}

// ---------------------------------------------------------------- SDK -> JSON (observe)

pub fn action_to_json(a: &sdk::RuleAction, tg_name: &dyn Fn(&str) -> String) -> Value {
    match a {
        sdk::RuleAction::Forward(f) => {
            let groups: Vec<Value> = f
                .target_groups()
                .iter()
                .map(|t| {
                    let mut o = Map::new();
                    o.insert("targetGroupIdentifier".into(), json!(tg_name(t.target_group_identifier())));
                    if let Some(w) = t.weight() {
                        o.insert("weight".into(), json!(w));
                    }
                    Value::Object(o)
                })
                .collect();
            json!({"forward": {"targetGroups": groups}})
        }
        sdk::RuleAction::FixedResponse(f) => json!({"fixedResponse": {"statusCode": f.status_code()}}),
        other => json!({"unknown": format!("{other:?}")}),
    }
}

pub fn match_to_json(m: &sdk::RuleMatch) -> Value {
    let sdk::RuleMatch::HttpMatch(h) = m else { return json!({"unknown": format!("{m:?}")}) };
    let mut o = Map::new();
    if let Some(p) = h.path_match() {
        let t = match p.r#match() {
            Some(sdk::PathMatchType::Exact(s)) => json!({"exact": s}),
            Some(sdk::PathMatchType::Prefix(s)) => json!({"prefix": s}),
            other => json!({"unknown": format!("{other:?}")}),
        };
        let mut pm = Map::new();
        pm.insert("match".into(), t);
        if let Some(cs) = p.case_sensitive() {
            pm.insert("caseSensitive".into(), json!(cs));
        }
        o.insert("pathMatch".into(), Value::Object(pm));
    }
    if let Some(method) = h.method() {
        o.insert("method".into(), json!(method));
    }
    let headers: Vec<Value> = h
        .header_matches()
        .iter()
        .map(|hm| {
            let t = match hm.r#match() {
                Some(sdk::HeaderMatchType::Exact(s)) => json!({"exact": s}),
                Some(sdk::HeaderMatchType::Prefix(s)) => json!({"prefix": s}),
                Some(sdk::HeaderMatchType::Contains(s)) => json!({"contains": s}),
                other => json!({"unknown": format!("{other:?}")}),
            };
            let mut x = Map::new();
            x.insert("name".into(), json!(hm.name()));
            x.insert("match".into(), t);
            if let Some(cs) = hm.case_sensitive() {
                x.insert("caseSensitive".into(), json!(cs));
            }
            Value::Object(x)
        })
        .collect();
    o.insert("headerMatches".into(), Value::Array(headers));
    json!({ "httpMatch": o })
}

fn put<T: Into<Value>>(o: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        o.insert(k.into(), v.into());
    }
}

pub fn health_check_to_json(h: &sdk::HealthCheckConfig) -> Value {
    let mut o = Map::new();
    put(&mut o, "enabled", h.enabled());
    put(&mut o, "protocol", h.protocol().map(|p| p.as_str().to_string()));
    put(&mut o, "protocolVersion", h.protocol_version().map(|p| p.as_str().to_string()));
    put(&mut o, "port", h.port());
    put(&mut o, "path", h.path().map(str::to_string));
    put(&mut o, "healthCheckIntervalSeconds", h.health_check_interval_seconds());
    put(&mut o, "healthCheckTimeoutSeconds", h.health_check_timeout_seconds());
    put(&mut o, "healthyThresholdCount", h.healthy_threshold_count());
    put(&mut o, "unhealthyThresholdCount", h.unhealthy_threshold_count());
    if let Some(sdk::Matcher::HttpCode(c)) = h.matcher() {
        o.insert("matcher".into(), json!({"httpCode": c}));
    }
    Value::Object(o)
}

pub fn tg_config_to_json(c: &sdk::TargetGroupConfig) -> Value {
    let mut o = Map::new();
    put(&mut o, "port", c.port());
    put(&mut o, "protocol", c.protocol().map(|p| p.as_str().to_string()));
    put(&mut o, "protocolVersion", c.protocol_version().map(|p| p.as_str().to_string()));
    put(&mut o, "ipAddressType", c.ip_address_type().map(|p| p.as_str().to_string()));
    put(&mut o, "vpcIdentifier", c.vpc_identifier().map(str::to_string));
    if let Some(h) = c.health_check() {
        o.insert("healthCheck".into(), health_check_to_json(h));
    }
    Value::Object(o)
}

/// `dnsEntry` as the API names it.
pub fn dns_to_json(d: Option<&sdk::DnsEntry>) -> Value {
    match d {
        Some(d) => json!({"domainName": d.domain_name(), "hostedZoneId": d.hosted_zone_id()}),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::*;

    fn ids(name: &str) -> Result<String, CloudError> {
        Ok(format!("tg-{name}"))
    }

    fn names(id: &str) -> String {
        id.trim_start_matches("tg-").to_string()
    }

    #[test]
    fn rule_match_and_action_round_trip_to_the_render_vocabulary() {
        let m = RuleMatch {
            http_match: HttpMatch {
                path_match: Some(PathMatch { match_: PathMatchType::Prefix("/api/".into()), case_sensitive: true }),
                method: Some("GET".into()),
                header_matches: vec![HeaderMatch { name: "x-canary".into(), match_: HeaderMatchType::Exact("true".into()), case_sensitive: true }],
            },
        };
        let back = match_to_json(&match_to_sdk(&m).unwrap());
        assert_eq!(back, serde_json::to_value(&m).unwrap());

        let bare = RuleMatch { http_match: HttpMatch { path_match: None, method: None, header_matches: vec![] } };
        assert_eq!(match_to_json(&match_to_sdk(&bare).unwrap()), json!({"httpMatch": {"headerMatches": []}}));

        let a = RuleAction::Forward(ForwardAction {
            target_groups: vec![
                WeightedTargetGroup { target_group_identifier: "cg-a".into(), weight: 90 },
                WeightedTargetGroup { target_group_identifier: "cg-b".into(), weight: 0 },
            ],
        });
        let s = action_to_sdk(&a, &ids).unwrap();
        assert_eq!(s.as_forward().unwrap().target_groups()[0].target_group_identifier(), "tg-cg-a");
        assert_eq!(action_to_json(&s, &names), serde_json::to_value(&a).unwrap());

        let f = RuleAction::FixedResponse(FixedResponseAction { status_code: 404 });
        assert_eq!(action_to_json(&action_to_sdk(&f, &ids).unwrap(), &names), serde_json::to_value(&f).unwrap());

        let missing = |_: &str| -> Result<String, CloudError> { Err(permanent("x", "no such target group")) };
        assert!(action_to_sdk(&a, &missing).is_err());
    }

    #[test]
    fn target_group_config_round_trips() {
        let c = TargetGroupConfig {
            port: 80,
            protocol: TargetGroupProtocol::Http,
            protocol_version: Some(ProtocolVersion::Grpc),
            ip_address_type: IpAddressType::Ipv4,
            vpc_identifier: "vpc-1".into(),
            health_check: HealthCheckConfig {
                enabled: true,
                protocol: Some(TargetGroupProtocol::Http),
                protocol_version: Some(ProtocolVersion::Http1),
                port: Some(8081),
                path: Some("/".into()),
                health_check_interval_seconds: Some(30),
                health_check_timeout_seconds: Some(5),
                healthy_threshold_count: Some(5),
                unhealthy_threshold_count: Some(2),
                matcher: Some(Matcher { http_code: "200".into() }),
            },
        };
        assert_eq!(tg_config_to_json(&tg_config_to_sdk(&c)), serde_json::to_value(&c).unwrap());
        let tcp = TargetGroupConfig {
            protocol: TargetGroupProtocol::Tcp,
            protocol_version: None,
            health_check: HealthCheckConfig { enabled: false, ..Default::default() },
            ..c
        };
        assert_eq!(tg_config_to_json(&tg_config_to_sdk(&tcp)), serde_json::to_value(&tcp).unwrap());
        assert_eq!(wire(&ListenerProtocol::TlsPassthrough), "TLS_PASSTHROUGH");
    }
}
