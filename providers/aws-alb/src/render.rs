//! The pure half: capabilities and render. This is where a Gateway becomes an ALB:
//! Gateway -> load balancer + security group; listener -> ALB listener; plan rule -> listener
//! rule (priority = plan precedence); Service port -> IP target group; certificate Secret ->
//! ACM certificate.
//!
//! The spec structs below are the vocabulary shared with the SDK half: render serialises them
//! into `DesiredResource::spec`, observe builds the same structs from what the APIs report, and
//! apply deserialises desired specs back into them. Every list in a spec is in a canonical
//! order (sorted where the cloud does not keep order), so steady state diffs to nothing.

use std::collections::BTreeMap;

use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm};
use cloudgate_provider::health::{self, HealthCheck, HealthCheckProtocol};
use cloudgate_provider::names::{self, cloud_name};
use cloudgate_provider::resource::{DesiredResource, ResourceGraph, ResourceKey};
use cloudgate_provider::{tags, Provider, RenderContext, RenderError};
use cloudgate_translate::capabilities::{feature, Capabilities, Protocol};
use cloudgate_translate::model::{MatchType, PathMatch, PathModifier, RouteKind};
use cloudgate_translate::plan::{Backend, LoadBalancerPlan, ListenerPlan, PlanRule, RuleAction, TlsMode};
use cloudgate_translate::weights;
use serde::{Deserialize, Serialize};

pub const PROVIDER: &str = "aws-alb";

pub const KIND_LOAD_BALANCER: &str = "elbv2:LoadBalancer";
pub const KIND_SECURITY_GROUP: &str = "ec2:SecurityGroup";
pub const KIND_CERTIFICATE: &str = "acm:Certificate";
pub const KIND_TARGET_GROUP: &str = "elbv2:TargetGroup";
pub const KIND_LISTENER: &str = "elbv2:Listener";
pub const KIND_RULE: &str = "elbv2:Rule";

/// Parents first; deletes run in reverse (rules, listeners, target groups, ...).
pub const KIND_ORDER: &[&str] =
    &[KIND_SECURITY_GROUP, KIND_CERTIFICATE, KIND_LOAD_BALANCER, KIND_TARGET_GROUP, KIND_LISTENER, KIND_RULE];

/// ALB accepts target group weights 0..=999 and at most 5 target groups per forward action.
const MAX_WEIGHT: u32 = 999;
/// ALB counts condition values per rule (host, path patterns, header and query values...).
const MAX_CONDITION_VALUES: usize = 5;
const MAX_RULE_PRIORITY: u32 = 50_000;

pub fn capabilities() -> Capabilities {
    Capabilities {
        provider: PROVIDER,
        protocols: [Protocol::Http, Protocol::Https].into_iter().collect(),
        features: [
            feature::GATEWAY,
            feature::GATEWAY_PORT_8080,
            feature::REFERENCE_GRANT,
            feature::HTTP_ROUTE,
            feature::GRPC_ROUTE,
            feature::HTTP_ROUTE_METHOD_MATCHING,
            feature::HTTP_ROUTE_QUERY_PARAM_MATCHING,
            feature::HTTP_ROUTE_PARENT_REF_PORT,
            feature::HTTP_ROUTE_NAMED_ROUTE_RULE,
            feature::REQUEST_REDIRECT,
            feature::HTTP_ROUTE_SCHEME_REDIRECT,
            feature::HTTP_ROUTE_PORT_REDIRECT,
        ]
        .into_iter()
        .collect(),
        max_weight: MAX_WEIGHT,
        reserved_ports: Default::default(),
        max_backends_per_rule: 5,
        rule_check: None,
    }
}

pub struct AlbProvider {
    caps: Capabilities,
}

impl std::fmt::Debug for AlbProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlbProvider")
    }
}

impl Default for AlbProvider {
    fn default() -> Self {
        AlbProvider { caps: capabilities() }
    }
}

// --- desired specs, named after the ELBv2 / EC2 / ACM API fields -----------------------------

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    pub r#type: String,
    pub scheme: String,
    pub ip_address_type: String,
    pub subnets: Vec<String>,
    /// Security group names (resolved to ids on apply).
    pub security_groups: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupSpec {
    pub vpc_id: String,
    pub description: String,
    pub ingress: Vec<IngressRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    pub ip_protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub cidr_ip: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The Secret the PEM comes from (read from the plan on apply; never serialised).
    pub secret: String,
    pub certificate_sha256: String,
}

/// Target type, protocol, protocol version, port and VPC are fixed at creation (apply replaces
/// the group when they change); the health check, attributes and targets change in place.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupSpec {
    pub target_type: String,
    pub protocol: String,
    pub protocol_version: String,
    pub port: i32,
    pub vpc_id: String,
    /// The health check, every field written out (cloudgate's defaults where no
    /// HealthCheckPolicy says otherwise), so that removing a policy restores them.
    pub health_check_protocol: String,
    /// `traffic-port` or a port number.
    pub health_check_port: String,
    pub health_check_path: String,
    pub health_check_interval_seconds: i32,
    pub health_check_timeout_seconds: i32,
    pub healthy_threshold_count: i32,
    pub unhealthy_threshold_count: i32,
    /// HTTP codes, or gRPC codes when `protocol_version` is GRPC.
    pub matcher: String,
    /// The target group attributes cloudgate manages ([`MANAGED_ATTRIBUTES`]), by ALB key, as
    /// ALB reports them (strings); unset BackendPolicy fields are ALB's defaults.
    pub attributes: BTreeMap<String, String>,
    /// Registered targets; the apply layer registers/deregisters the difference.
    pub targets: Vec<Target>,
}

pub const ATTR_DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
pub const ATTR_SLOW_START: &str = "slow_start.duration_seconds";
pub const ATTR_ALGORITHM: &str = "load_balancing.algorithm.type";

/// The target group attributes BackendPolicy sets, with ALB's defaults (what a new target
/// group has, and what removing a policy goes back to). Other attributes are left alone.
pub const MANAGED_ATTRIBUTES: &[(&str, &str)] = &[(ATTR_DEREGISTRATION_DELAY, "300"), (ATTR_SLOW_START, "0"), (ATTR_ALGORITHM, "round_robin")];

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub id: String,
    pub port: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    pub load_balancer: String,
    pub port: i32,
    pub protocol: String,
    /// ACM certificate names; the first is the listener's default certificate, the rest are
    /// sorted (ALB keeps no order for additional certificates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_policy: Option<String>,
    pub default_action: Action,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    pub listener: String,
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "field", rename_all = "kebab-case")]
pub enum Condition {
    HostHeader { values: Vec<String> },
    PathPattern { values: Vec<String> },
    HttpHeader {
        #[serde(rename = "httpHeaderName")]
        name: String,
        values: Vec<String>,
    },
    QueryString { values: Vec<KeyValue> },
    HttpRequestMethod { values: Vec<String> },
}

impl Condition {
    fn value_count(&self) -> usize {
        match self {
            Condition::HostHeader { values } | Condition::PathPattern { values } | Condition::HttpRequestMethod { values } => values.len(),
            Condition::HttpHeader { values, .. } => values.len(),
            Condition::QueryString { values } => values.len(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    Forward {
        #[serde(rename = "targetGroups")]
        target_groups: Vec<WeightedTargetGroup>,
    },
    Redirect {
        protocol: String,
        host: String,
        port: String,
        path: String,
        query: String,
        #[serde(rename = "statusCode")]
        status_code: String,
    },
    FixedResponse {
        #[serde(rename = "statusCode")]
        status_code: String,
        #[serde(rename = "contentType")]
        content_type: String,
        #[serde(rename = "messageBody")]
        message_body: String,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTargetGroup {
    pub target_group: String,
    pub weight: u32,
}

// --- render ----------------------------------------------------------------------------------

impl Provider for AlbProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn render(&self, plan: &LoadBalancerPlan, ctx: &RenderContext) -> Result<ResourceGraph, RenderError> {
        let gw = &plan.gateway;
        let id = |parts: &[&str]| -> Vec<String> {
            let mut v = vec![ctx.cluster_id.clone(), gw.namespace.clone(), gw.name.clone()];
            v.extend(parts.iter().map(|s| s.to_string()));
            v
        };
        let name = |rules: names::NameRules, readable: &[&str], identity: &[String]| {
            let identity: Vec<&str> = identity.iter().map(String::as_str).collect();
            cloud_name(rules, "cg", readable, &identity)
        };
        let mut defaults = ctx.default_tags.clone();
        defaults.extend(plan.infrastructure_labels.clone());
        // Every ALB-side resource also carries its key name: listeners, rules and ACM
        // certificates have no cloud-side name, and observe reads the key back from the tag.
        let tagged = |role: &str, name: &str| {
            let mut t = tags::ownership(&ctx.cluster_id, gw, &tag_value(role), &defaults);
            t.insert(tags::NAME.into(), name.into());
            t
        };
        let mut g = ResourceGraph::default();

        let sg_name = name(names::ELBV2, &[&gw.namespace, &gw.name], &id(&["sg"]));
        let sg = g.push(DesiredResource::new(
            KIND_SECURITY_GROUP,
            &sg_name,
            tagged("security-group", &sg_name),
            SecurityGroupSpec {
                vpc_id: ctx.network.clone(),
                description: format!("cloudgate Gateway {gw}"),
                ingress: canonical_ingress(
                    plan.listeners
                        .iter()
                        .map(|l| IngressRule { ip_protocol: "tcp".into(), from_port: l.port, to_port: l.port, cidr_ip: "0.0.0.0/0".into() })
                        .collect(),
                ),
            },
        ));

        let lb_name = name(names::ELBV2, &[&gw.namespace, &gw.name], &id(&["alb"]));
        let lb = g.push(
            DesiredResource::new(
                KIND_LOAD_BALANCER,
                &lb_name,
                tagged("load-balancer", &lb_name),
                LoadBalancerSpec {
                    r#type: "application".into(),
                    scheme: if ctx.scheme.is_empty() { "internet-facing".into() } else { ctx.scheme.clone() },
                    ip_address_type: "ipv4".into(),
                    // A set on the ALB side (reported per availability zone).
                    subnets: {
                        let mut s = ctx.subnets.clone();
                        s.sort();
                        s.dedup();
                        s
                    },
                    security_groups: vec![sg_name.clone()],
                },
            )
            .depends_on([sg]),
        );

        // Target groups, one per Service port the plan forwards to.
        let mut tg_names: BTreeMap<&cloudgate_translate::plan::BackendId, (String, ResourceKey)> = BTreeMap::new();
        for (bid, b) in &plan.backends {
            let port = b.port.to_string();
            let n = name(names::ELBV2, &[&b.service.namespace, &b.service.name, &port], &id(&["tg", &bid.0]));
            let key = g.push(DesiredResource::new(KIND_TARGET_GROUP, &n, tagged(&format!("target-group/{bid}"), &n), target_group_spec(b, ctx)));
            tg_names.insert(bid, (n, key));
        }

        for l in &plan.listeners {
            let mut certs = Vec::new();
            if let Some(tls) = l.tls.as_ref().filter(|t| t.mode == TlsMode::Terminate) {
                for c in &tls.certificates {
                    let n = name(names::TAG_KEY, &[&c.secret.namespace, &c.secret.name, &c.sha256[..12]], &id(&["cert", &c.secret.to_string(), &c.sha256]));
                    g.push(DesiredResource::new(
                        KIND_CERTIFICATE,
                        &n,
                        tagged(&format!("certificate/{}", c.secret), &n),
                        CertificateSpec { secret: c.secret.to_string(), certificate_sha256: c.sha256.clone() },
                    ));
                    certs.push(n);
                }
            }
            // The first certificate is the default one; ALB keeps the others as a set.
            if certs.len() > 2 {
                certs[1..].sort();
            }
            let listener_name = format!("{lb_name}:{}", l.port);
            let cert_keys: Vec<ResourceKey> =
                certs.iter().map(|n| ResourceKey { kind: KIND_CERTIFICATE.into(), name: n.clone() }).collect();
            let listener_key = g.push(
                DesiredResource::new(
                    KIND_LISTENER,
                    &listener_name,
                    tagged(&format!("listener/{}", l.name), &listener_name),
                    ListenerSpec {
                        load_balancer: lb_name.clone(),
                        port: l.port,
                        protocol: if l.protocol == Protocol::Https { "HTTPS" } else { "HTTP" }.into(),
                        certificates: certs,
                        ssl_policy: (l.protocol == Protocol::Https).then(|| "ELBSecurityPolicy-TLS13-1-2-2021-06".into()),
                        default_action: Action::FixedResponse {
                            status_code: "404".into(),
                            content_type: "text/plain".into(),
                            message_body: "no route matched".into(),
                        },
                    },
                )
                .depends_on(std::iter::once(lb.clone()).chain(cert_keys)),
            );
            for r in &l.rules {
                let (spec, deps) = rule_spec(l, r, &listener_name, &tg_names)?;
                let identity = rule_identity(l, r);
                let n = name(names::TAG_KEY, &[&r.route.name], &id(&[&identity]));
                g.push(
                    DesiredResource::new(KIND_RULE, &n, tagged(&format!("rule/{identity}"), &n), spec)
                        .depends_on(std::iter::once(listener_key.clone()).chain(deps)),
                );
            }
        }
        Ok(g)
    }

    fn health_check_support(&self, hc: &HealthCheck) -> Result<(), String> {
        health_check_support(hc)
    }

    fn backend_settings_support(&self, s: &BackendSettings) -> Result<(), String> {
        backend_settings_support(s)
    }
}

/// A rule's identity survives precedence changes: inserting a higher-priority rule changes
/// other rules' `priority` (one SetRulePriorities call), not their identity (which would mean
/// delete + create).
fn rule_identity(l: &ListenerPlan, r: &PlanRule) -> String {
    format!(
        "{}/{}/{}/{}/{}/{}/{}",
        l.name,
        r.route.kind.kind(),
        r.route.namespace,
        r.route.name,
        r.rule_index,
        r.match_index.map_or("-".to_string(), |m| m.to_string()),
        r.hostname.as_deref().unwrap_or("*")
    )
}

fn target_group_spec(b: &Backend, ctx: &RenderContext) -> TargetGroupSpec {
    let settings = ctx.backend_settings.get(&b.service);
    let h2c = matches!(b.app_protocol.as_deref(), Some("kubernetes.io/h2c") | Some("h2c"));
    // A GRPCRoute's backends speak gRPC whatever a BackendPolicy says; an HTTPRoute's speak
    // what the policy says, else HTTP/2 for h2c, else HTTP/1.1.
    let protocol_version = if b.used_by == RouteKind::Grpc {
        "GRPC"
    } else {
        match settings.and_then(|s| s.protocol_version) {
            Some(BackendProtocolVersion::Http1) => "HTTP1",
            Some(BackendProtocolVersion::Http2) => "HTTP2",
            Some(BackendProtocolVersion::Grpc) => "GRPC",
            None if h2c => "HTTP2",
            None => "HTTP1",
        }
    };
    let grpc = protocol_version == "GRPC";
    let protocol = if b.app_protocol.as_deref() == Some("https") { "HTTPS" } else { "HTTP" };
    let hc = ctx.health_checks.get(&b.service).cloned().unwrap_or_default();
    let mut targets: Vec<Target> = b.endpoints.iter().map(|e| Target { id: e.ip.clone(), port: e.port }).collect();
    targets.sort();
    targets.dedup();
    TargetGroupSpec {
        target_type: "ip".into(),
        protocol: protocol.into(),
        protocol_version: protocol_version.into(),
        port: b.port,
        vpc_id: ctx.network.clone(),
        // ALB checks over HTTP or HTTPS; a GRPC target group's check is gRPC over that.
        health_check_protocol: match hc.protocol {
            Some(HealthCheckProtocol::Http) => "HTTP",
            Some(HealthCheckProtocol::Https) => "HTTPS",
            _ => protocol,
        }
        .into(),
        health_check_port: hc.port.map_or("traffic-port".into(), |p| p.to_string()),
        health_check_path: hc.path.unwrap_or_else(|| if grpc { "/AWS.ALB/healthcheck" } else { "/" }.into()),
        health_check_interval_seconds: hc.interval_seconds.map_or(DEFAULT_INTERVAL, |v| v as i32),
        health_check_timeout_seconds: hc.timeout_seconds.map_or(DEFAULT_TIMEOUT, |v| v as i32),
        healthy_threshold_count: hc.healthy_threshold.map_or(5, |v| v as i32),
        unhealthy_threshold_count: hc.unhealthy_threshold.map_or(2, |v| v as i32),
        // gRPC health checks answer with gRPC status codes; 12 = UNIMPLEMENTED still proves
        // the server is up. A GRPC target group matches gRPC codes only, any other HTTP codes
        // only (ALB's Matcher), so each takes its own kind from the policy.
        matcher: if grpc { hc.grpc_codes.unwrap_or_else(|| "0-99".into()) } else { hc.http_codes.unwrap_or_else(|| "200-499".into()) },
        attributes: attributes(settings),
        targets,
    }
}

/// Health check interval and timeout when no policy sets them (ALB's defaults for HTTP).
const DEFAULT_INTERVAL: i32 = 30;
const DEFAULT_TIMEOUT: i32 = 5;

/// The managed attributes: the policy's values over ALB's defaults.
fn attributes(s: Option<&BackendSettings>) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = MANAGED_ATTRIBUTES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let Some(s) = s else { return a };
    if let Some(v) = s.deregistration_delay_seconds {
        a.insert(ATTR_DEREGISTRATION_DELAY.into(), v.to_string());
    }
    if let Some(v) = s.slow_start_seconds {
        a.insert(ATTR_SLOW_START.into(), v.to_string());
    }
    if let Some(alg) = s.algorithm {
        let v = match alg {
            LoadBalancingAlgorithm::RoundRobin => "round_robin",
            LoadBalancingAlgorithm::LeastRequest => "least_outstanding_requests",
            LoadBalancingAlgorithm::Random => "weighted_random",
        };
        a.insert(ATTR_ALGORITHM.into(), v.into());
    }
    a
}

/// What ALB target groups can take from a BackendPolicy (ModifyTargetGroupAttributes ranges).
pub fn backend_settings_support(s: &BackendSettings) -> Result<(), String> {
    health::in_range("deregistrationDelaySeconds", s.deregistration_delay_seconds, 0, 3600, PROVIDER)?;
    if let Some(v) = s.slow_start_seconds.filter(|v| *v != 0) {
        if !(30..=900).contains(&v) {
            return Err(format!("slowStartSeconds {v}: {PROVIDER} takes 0 (off) or 30 to 900"));
        }
        if s.algorithm == Some(LoadBalancingAlgorithm::LeastRequest) {
            return Err(format!("{PROVIDER} cannot combine slow start with the LeastRequest algorithm (least_outstanding_requests)"));
        }
    }
    Ok(())
}

/// What ALB target group health checks can do (ModifyTargetGroup): HTTP or HTTPS, gRPC through
/// a GRPC target group's matcher; ALB's ranges for the numbers.
pub fn health_check_support(hc: &HealthCheck) -> Result<(), String> {
    match hc.protocol {
        Some(HealthCheckProtocol::Http2) => {
            return Err(format!("{PROVIDER} health checks speak HTTP or HTTPS (gRPC on GRPC target groups); HTTP2 is not an ALB health check protocol"))
        }
        Some(HealthCheckProtocol::Tcp) => return Err(format!("{PROVIDER} checks Application Load Balancer targets over HTTP or HTTPS, not TCP")),
        _ => {}
    }
    health::in_range("intervalSeconds", hc.interval_seconds, 5, 300, PROVIDER)?;
    health::in_range("timeoutSeconds", hc.timeout_seconds, 2, 120, PROVIDER)?;
    health::in_range("healthyThreshold", hc.healthy_threshold, 2, 10, PROVIDER)?;
    health::in_range("unhealthyThreshold", hc.unhealthy_threshold, 2, 10, PROVIDER)?;
    let interval = hc.interval_seconds.map_or(DEFAULT_INTERVAL as u32, |v| v);
    let timeout = hc.timeout_seconds.map_or(DEFAULT_TIMEOUT as u32, |v| v);
    if timeout >= interval {
        return Err(format!("timeoutSeconds {timeout} must be less than intervalSeconds {interval} ({PROVIDER}'s default where unset)"));
    }
    if let Some(codes) = &hc.http_codes {
        codes_in_range("matcher.httpCodes", codes, 200, 499)?;
    }
    if let Some(codes) = &hc.grpc_codes {
        codes_in_range("matcher.grpcCodes", codes, 0, 99)?;
    }
    Ok(())
}

/// Every code of a `200,204` / `200-399` list lies in `lo..=hi`.
fn codes_in_range(field: &str, codes: &str, lo: u32, hi: u32) -> Result<(), String> {
    for part in codes.split(',') {
        for code in part.split('-') {
            match code.trim().parse::<u32>() {
                Ok(c) if (lo..=hi).contains(&c) => {}
                _ => return Err(format!("{field} {codes}: {PROVIDER} takes codes from {lo} to {hi}")),
            }
        }
    }
    Ok(())
}

/// Escapes ALB's wildcard characters so a value matches literally.
fn literal(v: &str) -> String {
    v.replace('*', "\\*").replace('?', "\\?")
}

fn rule_spec(
    l: &ListenerPlan,
    r: &PlanRule,
    listener: &str,
    tgs: &BTreeMap<&cloudgate_translate::plan::BackendId, (String, ResourceKey)>,
) -> Result<(RuleSpec, Vec<ResourceKey>), RenderError> {
    let mut conditions = Vec::new();
    if let Some(h) = &r.hostname {
        conditions.push(Condition::HostHeader { values: vec![h.clone()] });
    }
    match &r.matches.path {
        Some(PathMatch::Exact(p)) => conditions.push(Condition::PathPattern { values: vec![p.clone()] }),
        // Prefix matching is per path element: "/foo" matches "/foo" and "/foo/..." but not
        // "/foobar", which is exactly the pair of patterns below.
        Some(PathMatch::PathPrefix(p)) if p == "/" => {}
        Some(PathMatch::PathPrefix(p)) => {
            let p = p.trim_end_matches('/');
            conditions.push(Condition::PathPattern { values: vec![p.to_string(), format!("{p}/*")] });
        }
        Some(PathMatch::RegularExpression(_)) => {
            return Err(unrenderable(r, "regular-expression path matches cannot be expressed by ALB"));
        }
        None => {}
    }
    if let Some(m) = &r.matches.method {
        conditions.push(Condition::HttpRequestMethod { values: vec![m.clone()] });
    }
    for h in &r.matches.headers {
        if h.match_type != MatchType::Exact {
            return Err(unrenderable(r, "regular-expression header matches cannot be expressed by ALB"));
        }
        conditions.push(Condition::HttpHeader { name: h.name.clone(), values: vec![literal(&h.value)] });
    }
    for q in &r.matches.query_params {
        conditions.push(Condition::QueryString { values: vec![KeyValue { key: literal(&q.name), value: literal(&q.value) }] });
    }
    if conditions.is_empty() {
        // ALB rules need at least one condition; "/*" matches every path.
        conditions.push(Condition::PathPattern { values: vec!["/*".into()] });
    }
    canonical_conditions(&mut conditions);
    let values: usize = conditions.iter().map(Condition::value_count).sum();
    if values > MAX_CONDITION_VALUES {
        return Err(unrenderable(r, &format!("the match needs {values} ALB condition values; ALB allows {MAX_CONDITION_VALUES} per rule")));
    }
    if r.priority > MAX_RULE_PRIORITY {
        return Err(unrenderable(r, "more than 50000 rules on one listener"));
    }
    let mut deps = Vec::new();
    let action = match &r.action {
        RuleAction::Forward { backends } => {
            let raw: Vec<u32> = backends.iter().map(|b| b.weight).collect();
            let scaled = weights::normalize(&raw, MAX_WEIGHT);
            // ALB forwards to a set of target groups (one entry each), so the same Service port
            // named twice becomes one entry with the summed weight.
            let mut by_name: BTreeMap<String, u32> = BTreeMap::new();
            for (b, w) in backends.iter().zip(scaled) {
                let (n, key) = tgs.get(&b.backend).ok_or_else(|| unrenderable(r, "backend missing from plan"))?;
                deps.push(key.clone());
                let e = by_name.entry(n.clone()).or_default();
                *e = (*e + w).min(MAX_WEIGHT);
            }
            let target_groups = by_name.into_iter().map(|(target_group, weight)| WeightedTargetGroup { target_group, weight }).collect();
            Action::Forward { target_groups }
        }
        RuleAction::Redirect(rd) => Action::Redirect {
            protocol: rd.scheme.as_deref().map_or("#{protocol}".into(), str::to_ascii_uppercase),
            host: rd.hostname.clone().unwrap_or_else(|| "#{host}".into()),
            // The spec: a scheme change without a port means the scheme's default port.
            port: match (rd.port, rd.scheme.as_deref()) {
                (Some(p), _) => p.to_string(),
                (None, Some("https")) => "443".into(),
                (None, Some("http")) => "80".into(),
                (None, _) => "#{port}".into(),
            },
            path: match &rd.path {
                Some(PathModifier::ReplaceFullPath(p)) => p.clone(),
                _ => "/#{path}".into(),
            },
            query: "#{query}".into(),
            status_code: if rd.status_code == Some(301) { "HTTP_301" } else { "HTTP_302" }.into(),
        },
        RuleAction::FixedResponse { status, reason } => Action::FixedResponse {
            status_code: status.to_string(),
            content_type: "text/plain".into(),
            message_body: reason.clone(),
        },
    };
    let _ = l;
    Ok((RuleSpec { listener: listener.to_string(), priority: r.priority, conditions, actions: vec![action] }, deps))
}

/// ELBv2 and ACM tag values: at most 256 characters from letters, digits, spaces and
/// `_ . : / = + - @`. The role tag is informational (observe keys on NAME), so characters outside
/// that set (`*` of a wildcard or absent hostname) become `_` rather than fail the request.
pub fn tag_value(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c) { c } else { '_' })
        .take(256)
        .collect()
}

/// Ingress rules form a set on the EC2 side: sorted and deduplicated.
pub fn canonical_ingress(mut v: Vec<IngressRule>) -> Vec<IngressRule> {
    let k = |r: &IngressRule| (r.from_port, r.to_port, r.ip_protocol.clone(), r.cidr_ip.clone());
    v.sort_by_key(k);
    v.dedup_by(|a, b| k(a) == k(b));
    v
}

/// Conditions of a rule are ANDed and the values of one condition ORed, so neither order means
/// anything to ALB and it need not report them as sent: host, path, method, headers, query,
/// values sorted.
pub fn canonical_conditions(v: &mut [Condition]) {
    fn rank(c: &Condition) -> u8 {
        match c {
            Condition::HostHeader { .. } => 0,
            Condition::PathPattern { .. } => 1,
            Condition::HttpRequestMethod { .. } => 2,
            Condition::HttpHeader { .. } => 3,
            Condition::QueryString { .. } => 4,
        }
    }
    for c in v.iter_mut() {
        match c {
            Condition::HostHeader { values } | Condition::PathPattern { values } | Condition::HttpRequestMethod { values } => values.sort(),
            Condition::HttpHeader { values, .. } => values.sort(),
            Condition::QueryString { values } => values.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value))),
        }
    }
    v.sort_by_cached_key(|c| (rank(c), serde_json::to_string(c).unwrap_or_default()));
}

fn unrenderable(r: &PlanRule, why: &str) -> RenderError {
    RenderError::Unrenderable { provider: PROVIDER, message: format!("{} rule {}: {why}", r.route, r.rule_index) }
}
