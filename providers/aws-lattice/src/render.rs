//! Plan -> Lattice resources. Pure: the same plan and context always give the same graph.
//!
//! Shape (after aws-application-networking-k8s, minus its flaws):
//!
//! ```text
//! Gateway ──► ServiceNetwork ──► ServiceNetworkVpcAssociation (ctx.network)
//! route (per Gateway) ──► Service ──► ServiceNetworkServiceAssociation
//!                           └─► Listener (per Gateway listener port the route is on)
//!                                  └─► Rule (per plan rule, priority from plan precedence)
//! Service port (per route service, per flavour) ──► TargetGroup {targets from EndpointSlices}
//! ```
//!
//! Differences from aws-application-networking-k8s, on purpose:
//! - rule priorities follow the plan's precedence order, never YAML order, so a header canary
//!   listed after a catch-all still wins;
//! - names are readable prefix + hash of the full identity, so long names never collide;
//! - `PathPrefix /foo` becomes `exact /foo` + `prefix /foo/`: Gateway API prefixes match whole
//!   path elements, a plain string prefix would also send `/foobar` to the rule;
//! - a Service used by both gRPC and HTTP/1 routes gets one target group per protocol flavour
//!   instead of whichever route was seen first deciding for both;
//! - a target group serves one Lattice service only (Lattice refuses a second service with
//!   ConflictException), so each route's service gets its own target group per backend, even
//!   when two routes forward to the same Service port;
//! - what Lattice cannot change in place (a service's custom domain, a listener's port and
//!   protocol, which service or listener a child hangs off, whether a rule matches a method) is
//!   part of the resource's identity: a change renders a new resource (the diff creates it and
//!   deletes the old one) instead of an update the API would refuse;
//! - what Lattice cannot express is a render error naming the object, never a silent drop.
//!
//! The service network is the Gateway's own, unless the class adopts an existing one
//! (`RenderContext::service_network`): then no `ServiceNetwork` or VPC association is rendered,
//! only our services' associations with it (and access log subscriptions, which are ours).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cloudgate_provider::access::{AccessSettings, AccessTarget};
use cloudgate_provider::backend::{BackendProtocolVersion, BackendSettings, LoadBalancingAlgorithm};
use cloudgate_provider::health::{self, HealthCheck, HealthCheckProtocol};
use cloudgate_provider::names::{self, LATTICE, LATTICE_TG};
use cloudgate_provider::{tags, DesiredResource, RenderContext, RenderError, ResourceGraph, ResourceKey};
use cloudgate_translate::capabilities::Protocol;
use cloudgate_translate::model::{Filter, MatchType, ObjKey, PathMatch as PlanPath, RouteKey, RouteKind, RouteMatch};
use cloudgate_translate::plan::{Backend, BackendId, ListenerPlan, PlanRule, RuleAction as PlanAction, TlsMode};
use cloudgate_translate::{weights, LoadBalancerPlan};

use crate::spec::*;
use crate::{kind, MAX_BACKENDS_PER_RULE, MAX_WEIGHT, PROVIDER};

/// Lattice rule priorities are 1..=100 per listener.
pub const MAX_RULES_PER_LISTENER: usize = 100;
/// Lattice accepts at most 5 header matches in one rule.
pub const MAX_HEADER_MATCHES: usize = 5;
/// Fixed responses Lattice can send.
const FIXED_RESPONSE_CODES: [u16; 2] = [404, 500];
/// Prefix of every name cloudgate gives a Lattice resource. Also keeps names clear of the
/// `sn-`/`svc-`/`tg-` prefixes Lattice uses for its own ids.
const NAME_PREFIX: &str = "cg";

fn unrenderable(message: impl Into<String>) -> RenderError {
    RenderError::Unrenderable { provider: PROVIDER, message: message.into() }
}

pub fn render(plan: &LoadBalancerPlan, ctx: &RenderContext) -> Result<ResourceGraph, RenderError> {
    if ctx.network.is_empty() {
        return Err(unrenderable("the VPC id (network) is not set; Lattice associates the service network and target groups with it"));
    }
    Renderer { plan, ctx, gw_id: plan.gateway.to_string(), graph: ResourceGraph::default() }.run()
}

struct Renderer<'a> {
    plan: &'a LoadBalancerPlan,
    ctx: &'a RenderContext,
    /// `namespace/name` of the Gateway.
    gw_id: String,
    graph: ResourceGraph,
}

/// One route as this Gateway carries it: the listeners it is attached to and its rules on
/// each, in plan (precedence) order.
struct RouteWork<'a> {
    key: &'a RouteKey,
    listeners: Vec<(&'a ListenerPlan, Vec<&'a PlanRule>)>,
    /// The service's custom domain (see [`custom_domain`]).
    domain: Option<String>,
    /// What makes the route's Lattice service unique; every resource under it (association,
    /// listeners, rules, target groups) extends it, so replacing the service replaces them too.
    ident: Vec<String>,
}

impl RouteWork<'_> {
    fn ident_with(&self, more: &[&str]) -> Vec<String> {
        self.ident.iter().cloned().chain(more.iter().map(|s| s.to_string())).collect()
    }
}

fn cloud_name(rules: names::NameRules, readable: &[&str], identity: &[String]) -> String {
    let identity: Vec<&str> = identity.iter().map(String::as_str).collect();
    names::cloud_name(rules, NAME_PREFIX, readable, &identity)
}

/// What a target group speaks. Everything here is immutable in Lattice, so it is part of the
/// target group's identity: a change renders a new target group instead of an update the API
/// would refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Flavour {
    protocol: TargetGroupProtocol,
    version: Option<ProtocolVersion>,
    ip: IpAddressType,
}

impl Flavour {
    fn label(&self) -> String {
        let p = match self.protocol {
            TargetGroupProtocol::Http => "http",
            TargetGroupProtocol::Https => "https",
            TargetGroupProtocol::Tcp => "tcp",
        };
        let v = match self.version {
            None => "",
            Some(ProtocolVersion::Http1) => "-http1",
            Some(ProtocolVersion::Http2) => "-http2",
            Some(ProtocolVersion::Grpc) => "-grpc",
        };
        let ip = match self.ip {
            IpAddressType::Ipv4 => "",
            IpAddressType::Ipv6 => "-ipv6",
        };
        format!("{p}{v}{ip}")
    }
}

/// A target group as a rule refers to it.
struct TgRef {
    name: String,
    backend: BackendId,
    flavour: Flavour,
}

impl<'a> Renderer<'a> {
    fn run(mut self) -> Result<ResourceGraph, RenderError> {
        let mut routes = self.routes()?;
        for route in &mut routes {
            route.domain = custom_domain(route);
            let key = route.key;
            route.ident = [
                self.ctx.cluster_id.as_str(),
                self.gw_id.as_str(),
                key.kind.kind(),
                key.namespace.as_str(),
                key.name.as_str(),
                route.domain.as_deref().unwrap_or(""),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
        }

        // Target groups first: rules and passthrough listeners point at them. Collected over
        // every rule so that only target groups something forwards to are created.
        let mut tgs: BTreeMap<String, (BackendId, Flavour, &RouteKey)> = BTreeMap::new();
        for route in &routes {
            for (listener, rules) in &route.listeners {
                for rule in rules {
                    if let PlanAction::Forward { backends } = &rule.action {
                        for b in backends {
                            let tg = self.target_group_ref(&b.backend, route, listener)?;
                            tgs.insert(tg.name, (tg.backend, tg.flavour, route.key));
                        }
                    }
                }
            }
        }

        let gw = &self.plan.gateway;
        let sn = match &self.ctx.service_network {
            // Adopted: someone else's network (and its VPC associations); only our services
            // join it. The key names it as the class does, and observe reads it back so.
            Some(adopted) => ResourceKey { kind: kind::SERVICE_NETWORK.into(), name: adopted.clone() },
            None => self.push_service_network(gw),
        };
        // Access logs of the Gateway's service network: a subscription is our own resource
        // (tagged), so an adopted network can carry one too.
        if let Some(dest) = self.access(&AccessTarget::Gateway).and_then(|a| a.access_log_destination.clone()) {
            let ident = [self.ctx.cluster_id.as_str(), &gw.namespace, &gw.name, "access-log", destination_type(&dest), &sn.name];
            let name = names::cloud_name(LATTICE, NAME_PREFIX, &[&gw.namespace, &gw.name], &ident);
            let parent = sn.clone();
            self.push_access_log(name, None, &parent, dest);
        }
        for (name, (backend, flavour, route)) in &tgs {
            self.push_target_group(name, backend, *flavour, route)?;
        }

        // A custom domain can serve one Lattice service only; two routes of this Gateway
        // claiming the same one would make the second service unreachable under it.
        let mut domains: BTreeMap<String, &RouteKey> = BTreeMap::new();
        for route in &routes {
            let Some(d) = route.domain.clone() else { continue };
            if let Some(other) = domains.insert(d.clone(), route.key) {
                return Err(unrenderable(format!(
                    "{other} and {} both use hostname {d}; a Lattice service (one per route) owns its custom domain name alone",
                    route.key
                )));
            }
        }

        for route in &routes {
            self.push_route(route, &sn)?;
        }
        Ok(self.graph)
    }

    fn access(&self, t: &AccessTarget) -> Option<&AccessSettings> {
        self.ctx.access.get(t)
    }

    /// An access log subscription on `parent` (the service network or a route's service).
    fn push_access_log(&mut self, name: String, route: Option<&RouteKey>, parent: &ResourceKey, destination_arn: String) {
        let tags = self.tags("access-log-subscription", route, &name);
        let depends = self.graph.get(parent).map(|_| parent.clone());
        self.graph.push(
            DesiredResource::new(
                kind::ACCESS_LOG_SUBSCRIPTION,
                name,
                tags,
                AccessLogSubscriptionSpec { resource_identifier: parent.name.clone(), destination_arn },
            )
            .depends_on(depends),
        );
    }

    /// The Gateway's own service network and its association with the VPC.
    fn push_service_network(&mut self, gw: &ObjKey) -> ResourceKey {
        let sn_name = names::cloud_name(LATTICE, NAME_PREFIX, &[&gw.namespace, &gw.name], &[&self.ctx.cluster_id, &gw.namespace, &gw.name]);
        let sn = self.graph.push(DesiredResource::new(
            kind::SERVICE_NETWORK,
            sn_name.clone(),
            self.tags("service-network", None, &sn_name),
            {
                let (auth_type, auth_policy) = auth_fields(self.access(&AccessTarget::Gateway).and_then(|a| a.auth.as_ref()));
                ServiceNetworkSpec { name: sn_name.clone(), auth_type, auth_policy }
            },
        ));
        let vpc_assoc_name = names::cloud_name(
            LATTICE,
            NAME_PREFIX,
            &[&gw.namespace, &gw.name],
            &[&self.ctx.cluster_id, &gw.namespace, &gw.name, "vpc-association", &self.ctx.network],
        );
        self.graph.push(
            DesiredResource::new(
                kind::SERVICE_NETWORK_VPC_ASSOCIATION,
                vpc_assoc_name.clone(),
                self.tags("service-network-vpc-association", None, &vpc_assoc_name),
                ServiceNetworkVpcAssociationSpec { service_network_identifier: sn_name, vpc_identifier: self.ctx.network.clone() },
            )
            .depends_on([sn.clone()]),
        );
        sn
    }

    /// Routes in the order the plan's listeners first mention them.
    fn routes(&self) -> Result<Vec<RouteWork<'a>>, RenderError> {
        let mut out: Vec<RouteWork<'a>> = Vec::new();
        for l in &self.plan.listeners {
            if matches!(l.protocol, Protocol::Tcp | Protocol::Udp) {
                return Err(unrenderable(format!("listener {}: protocol {} is not available in Lattice", l.name, l.protocol.as_str())));
            }
            for key in &l.routes {
                let pos = match out.iter().position(|w| w.key == key) {
                    Some(p) => p,
                    None => {
                        out.push(RouteWork { key, listeners: Vec::new(), domain: None, ident: Vec::new() });
                        out.len() - 1
                    }
                };
                let work = &mut out[pos];
                // A Lattice service has one listener per port. Two Gateway listeners on the same
                // port (same protocol, different hostnames) carry identical rules for this route;
                // the first, in spec order, stands for both.
                if work.listeners.iter().any(|(seen, _)| seen.port == l.port) {
                    continue;
                }
                // The plan repeats a rule once per effective hostname; a Lattice service has a
                // single domain and no host matching, so each (rule, match) is rendered once, at
                // its first (highest precedence) position.
                let mut seen = BTreeSet::new();
                let rules = l
                    .rules
                    .iter()
                    .filter(|r| &r.route == key)
                    .filter(|r| seen.insert((r.rule_index, r.match_index)))
                    .collect();
                work.listeners.push((l, rules));
            }
        }
        // A route none of whose rules survived translation is not accepted (its status says
        // why): no service for it, nothing would answer there.
        out.retain(|w| w.listeners.iter().any(|(_, rules)| !rules.is_empty()));
        Ok(out)
    }

    /// Ownership tags plus the key name: associations have no name of their own in Lattice,
    /// so observe reads their key back from [`tags::NAME`] (every resource carries it, as on ALB).
    fn tags(&self, role: &str, route: Option<&RouteKey>, name: &str) -> BTreeMap<String, String> {
        let mut t = tags::ownership(&self.ctx.cluster_id, &self.plan.gateway, role, &self.ctx.default_tags);
        if let Some(r) = route {
            t.insert(tags::ROUTE.into(), route_tag(r));
        }
        t.insert(tags::NAME.into(), name.into());
        t
    }

    fn backend(&self, id: &BackendId) -> Result<&'a Backend, RenderError> {
        self.plan.backends.get(id).ok_or_else(|| unrenderable(format!("backend {id} is used by a rule but missing from the plan")))
    }

    /// The target group `route`'s service forwards to for backend `id`. One per (route service,
    /// backend, flavour): Lattice lets a target group serve a single service.
    fn target_group_ref(&self, id: &BackendId, route: &RouteWork<'_>, listener: &ListenerPlan) -> Result<TgRef, RenderError> {
        let backend = self.backend(id)?;
        let flavour = flavour(backend, route.key.kind, is_passthrough(listener));
        let flavour = with_backend_settings(flavour, self.ctx.backend_settings.get(&backend.service), route.key.kind);
        let label = flavour.label();
        let port = backend.port.to_string();
        let name = cloud_name(
            LATTICE_TG,
            &[&route.key.name, &backend.service.namespace, &backend.service.name, &port, &label],
            &route.ident_with(&["target-group", &id.0, &label, &self.ctx.network]),
        );
        Ok(TgRef { name, backend: id.clone(), flavour })
    }

    fn push_target_group(&mut self, name: &str, id: &BackendId, flavour: Flavour, route: &RouteKey) -> Result<(), RenderError> {
        let backend = self.backend(id)?;
        let mut targets: Vec<Target> = backend
            .endpoints
            .iter()
            .filter(|e| ip_type(&e.ip) == Some(flavour.ip))
            .map(|e| Target { id: e.ip.clone(), port: e.port })
            .collect();
        targets.sort();
        targets.dedup();
        let spec = TargetGroupSpec {
            name: name.to_string(),
            type_: "IP".into(),
            config: TargetGroupConfig {
                // The Service port, not an endpoint port: config is immutable and endpoints come
                // and go; every target is registered with its own port anyway.
                port: backend.port,
                protocol: flavour.protocol,
                protocol_version: flavour.version,
                ip_address_type: flavour.ip,
                vpc_identifier: self.ctx.network.clone(),
                health_check: match self.ctx.health_checks.get(&backend.service) {
                    Some(policy) => with_policy(health_check(flavour), policy, flavour),
                    None => health_check(flavour),
                },
            },
            targets,
        };
        self.graph.push(DesiredResource::new(kind::TARGET_GROUP, name, self.tags(&format!("target-group/{id}"), Some(route), name), spec));
        Ok(())
    }

    fn push_route(&mut self, route: &RouteWork<'a>, sn: &ResourceKey) -> Result<(), RenderError> {
        let key = route.key;

        let svc_name = cloud_name(LATTICE, &[&key.namespace, &key.name], &route.ident);
        let domain = route.domain.clone();
        let svc = self.graph.push(DesiredResource::new(
            kind::SERVICE,
            svc_name.clone(),
            self.tags("service", Some(key), &svc_name),
            {
                let (auth_type, auth_policy) = auth_fields(self.access(&AccessTarget::Route(key.clone())).and_then(|a| a.auth.as_ref()));
                ServiceSpec { name: svc_name.clone(), custom_domain_name: domain.clone(), auth_type, auth_policy }
            },
        ));
        if let Some(dest) = self.access(&AccessTarget::Route(key.clone())).and_then(|a| a.access_log_destination.clone()) {
            let ident = route.ident_with(&["access-log", destination_type(&dest)]);
            let name = cloud_name(LATTICE, &[&key.namespace, &key.name], &ident);
            self.push_access_log(name, Some(key), &svc, dest);
        }

        let assoc_name = cloud_name(LATTICE, &[&key.namespace, &key.name], &route.ident_with(&["service-association", &sn.name]));
        self.graph.push(
            DesiredResource::new(
                kind::SERVICE_NETWORK_SERVICE_ASSOCIATION,
                assoc_name.clone(),
                self.tags("service-network-service-association", Some(key), &assoc_name),
                ServiceNetworkServiceAssociationSpec { service_identifier: svc_name.clone(), service_network_identifier: sn.name.clone() },
            )
            // An adopted network is not in the graph: the association waits only for the service.
            .depends_on(self.graph.get(sn).map(|_| sn.clone()).into_iter().chain([svc.clone()])),
        );

        for (listener, rules) in &route.listeners {
            let passthrough = is_passthrough(listener);
            let protocol = if passthrough {
                ListenerProtocol::TlsPassthrough
            } else {
                match (&listener.protocol, listener.tls.as_ref().map(|t| t.mode)) {
                    (Protocol::Http, _) => ListenerProtocol::Http,
                    (Protocol::Https, Some(TlsMode::Terminate) | None) => ListenerProtocol::Https,
                    (p, mode) => {
                        return Err(unrenderable(format!("listener {}: {} with TLS mode {mode:?} is not available in Lattice", listener.name, p.as_str())));
                    }
                }
            };
            // Port and protocol cannot be updated on a Lattice listener: they are identity.
            let listener_ident = route.ident_with(&["listener", &listener.name, &listener.port.to_string(), protocol.as_str()]);
            let listener_name = cloud_name(LATTICE, &[&listener.name, &key.name], &listener_ident);
            if passthrough {
                self.push_passthrough_listener(route, listener, rules, &listener_name, &svc, domain.as_deref())?;
                continue;
            }
            let listener_key = self.graph.push(
                DesiredResource::new(
                    kind::LISTENER,
                    listener_name.clone(),
                    self.tags(&format!("listener/{}", listener.name), Some(key), &listener_name),
                    ListenerSpec {
                        name: listener_name.clone(),
                        service_identifier: svc_name.clone(),
                        protocol,
                        port: listener.port,
                        // Nothing matched: the spec's answer for a request no rule takes is 404.
                        default_action: RuleAction::FixedResponse(FixedResponseAction { status_code: 404 }),
                    },
                )
                .depends_on([svc.clone()]),
            );

            let mut priority = 0u32;
            for rule in rules {
                let action = self.rule_action(rule, route, listener)?;
                let tg_keys: Vec<ResourceKey> = match &action {
                    RuleAction::Forward(f) => f
                        .target_groups
                        .iter()
                        .map(|t| ResourceKey { kind: kind::TARGET_GROUP.into(), name: t.target_group_identifier.clone() })
                        .collect(),
                    RuleAction::FixedResponse(_) => Vec::new(),
                };
                let rule_id = match &rule.rule_name {
                    Some(n) => format!("name:{n}"),
                    None => format!("index:{}", rule.rule_index),
                };
                let match_id = rule.match_index.map_or_else(|| "all".to_string(), |i| i.to_string());
                let label = rule.rule_name.clone().unwrap_or_else(|| format!("rule{}", rule.rule_index));
                for (part, http_match) in http_matches(&rule.matches, key)? {
                    priority += 1;
                    if priority as usize > MAX_RULES_PER_LISTENER {
                        return Err(unrenderable(format!(
                            "{key} needs more than {MAX_RULES_PER_LISTENER} Lattice rules on listener {} (PathPrefix matches other than / take two)",
                            listener.name
                        )));
                    }
                    // Identity leaves out the priority: when precedence shifts, the same rule
                    // is updated in place (UpdateRule) rather than deleted and recreated.
                    // Whether a method is matched is identity too: the diff reads a field the
                    // desired spec leaves out as "don't care", so dropping the method from a
                    // match could not be seen as an update.
                    let method = if http_match.method.is_some() { "method" } else { "any-method" };
                    let rule_ident: Vec<String> = listener_ident
                        .iter()
                        .cloned()
                        .chain(["rule", &rule_id, &match_id, part, method].map(String::from))
                        .collect();
                    let rule_name = cloud_name(LATTICE, &[&key.name, &label], &rule_ident);
                    self.graph.push(
                        DesiredResource::new(
                            kind::RULE,
                            rule_name.clone(),
                            self.tags(&format!("rule/{}", listener.name), Some(key), &rule_name),
                            RuleSpec {
                                name: rule_name,
                                service_identifier: svc_name.clone(),
                                listener_identifier: listener_name.clone(),
                                priority,
                                match_: RuleMatch { http_match },
                                action: action.clone(),
                            },
                        )
                        .depends_on([svc.clone(), listener_key.clone()])
                        .depends_on(tg_keys.clone()),
                    );
                }
            }
        }
        Ok(())
    }

    /// TLS_PASSTHROUGH listeners take no rules: the default action carries the route's one rule,
    /// and the service's custom domain is the SNI name Lattice routes on.
    fn push_passthrough_listener(
        &mut self,
        route: &RouteWork<'a>,
        listener: &ListenerPlan,
        rules: &[&PlanRule],
        listener_name: &str,
        svc: &ResourceKey,
        domain: Option<&str>,
    ) -> Result<(), RenderError> {
        let key = route.key;
        // TLSRoute rules have no matches, so after de-duplication one entry is one rule.
        let rule = match rules {
            [] => return Ok(()), // every rule was dropped by translation: nothing to serve
            [only] => *only,
            _ => {
                return Err(unrenderable(format!(
                    "{key} has {} rules on TLS listener {}; a Lattice TLS passthrough listener carries exactly one",
                    rules.len(),
                    listener.name
                )));
            }
        };
        if domain.is_none() {
            return Err(unrenderable(format!(
                "{key} on TLS listener {} has no exact hostname; Lattice TLS passthrough routes on the service's custom domain name, which cannot be a wildcard",
                listener.name
            )));
        }
        let action = match &rule.action {
            PlanAction::Forward { .. } => self.rule_action(rule, route, listener)?,
            // No valid backend. Lattice cannot answer a TLS connection with a status code;
            // leaving the listener out refuses the connection, which is what the spec asks
            // for a route whose backends are all invalid.
            PlanAction::FixedResponse { .. } => return Ok(()),
            PlanAction::Redirect(_) => return Err(unrenderable(format!("{key}: redirects are not available in Lattice"))),
        };
        let tg_keys: Vec<ResourceKey> = match &action {
            RuleAction::Forward(f) => f
                .target_groups
                .iter()
                .map(|t| ResourceKey { kind: kind::TARGET_GROUP.into(), name: t.target_group_identifier.clone() })
                .collect(),
            RuleAction::FixedResponse(_) => Vec::new(),
        };
        self.graph.push(
            DesiredResource::new(
                kind::LISTENER,
                listener_name,
                self.tags(&format!("listener/{}", listener.name), Some(key), listener_name),
                ListenerSpec {
                    name: listener_name.to_string(),
                    service_identifier: svc.name.clone(),
                    protocol: ListenerProtocol::TlsPassthrough,
                    port: listener.port,
                    default_action: action,
                },
            )
            .depends_on([svc.clone()])
            .depends_on(tg_keys),
        );
        Ok(())
    }

    fn rule_action(&self, rule: &PlanRule, route: &RouteWork<'_>, listener: &ListenerPlan) -> Result<RuleAction, RenderError> {
        let key = &rule.route;
        // Translation drops rules needing features Lattice lacks; anything left over here means
        // the plan and the capabilities disagree, which must fail loudly, not render wrong.
        if let Some(f) = rule.filters.iter().find(|f| !is_noop(f)) {
            return Err(unrenderable(format!("{key} rule {}: filter {} is not available in Lattice", rule.rule_index, f.type_name())));
        }
        if rule.timeouts.as_ref().is_some_and(|t| t.request.is_some() || t.backend_request.is_some()) {
            return Err(unrenderable(format!("{key} rule {}: timeouts are not available in Lattice", rule.rule_index)));
        }
        match &rule.action {
            PlanAction::Forward { backends } => {
                if let Some(b) = backends.iter().find(|b| b.filters.iter().any(|f| !is_noop(f))) {
                    return Err(unrenderable(format!("{key} rule {}: backendRef {} filters are not available in Lattice", rule.rule_index, b.backend)));
                }
                // Two backendRefs to the same Service port land in one target group; Lattice
                // wants each target group once per action, so their weights are added up first.
                let mut merged: Vec<(String, u32)> = Vec::new();
                for b in backends {
                    let tg = self.target_group_ref(&b.backend, route, listener)?;
                    match merged.iter_mut().find(|(n, _)| *n == tg.name) {
                        Some((_, w)) => *w = w.saturating_add(b.weight),
                        None => merged.push((tg.name, b.weight)),
                    }
                }
                if merged.is_empty() {
                    return Err(unrenderable(format!("{key} rule {}: a forward without backends", rule.rule_index)));
                }
                if merged.len() > MAX_BACKENDS_PER_RULE {
                    return Err(unrenderable(format!(
                        "{key} rule {}: {} target groups in one forward; Lattice allows {MAX_BACKENDS_PER_RULE}",
                        rule.rule_index,
                        merged.len()
                    )));
                }
                let raw: Vec<u32> = merged.iter().map(|(_, w)| *w).collect();
                let scaled = weights::normalize(&raw, MAX_WEIGHT);
                Ok(RuleAction::Forward(ForwardAction {
                    target_groups: merged
                        .into_iter()
                        .zip(scaled)
                        .map(|((name, _), weight)| WeightedTargetGroup { target_group_identifier: name, weight })
                        .collect(),
                }))
            }
            PlanAction::FixedResponse { status, .. } if FIXED_RESPONSE_CODES.contains(status) => {
                Ok(RuleAction::FixedResponse(FixedResponseAction { status_code: *status }))
            }
            PlanAction::FixedResponse { status, .. } => {
                Err(unrenderable(format!("{key} rule {}: Lattice fixed responses are 404 or 500, not {status}", rule.rule_index)))
            }
            PlanAction::Redirect(_) => Err(unrenderable(format!("{key} rule {}: redirects are not available in Lattice", rule.rule_index))),
        }
    }
}

fn route_tag(r: &RouteKey) -> String {
    format!("{}/{}/{}", r.kind.kind(), r.namespace, r.name)
}

/// The route a [`route_tag`] names.
pub(crate) fn parse_route_tag(t: &str) -> Option<RouteKey> {
    let mut parts = t.splitn(3, '/');
    let kind = RouteKind::from_kind(parts.next()?)?;
    Some(RouteKey { kind, namespace: parts.next()?.to_string(), name: parts.next()?.to_string() })
}

fn is_passthrough(l: &ListenerPlan) -> bool {
    l.protocol == Protocol::Tls && l.tls.as_ref().is_none_or(|t| t.mode == TlsMode::Passthrough)
}

/// A URLRewrite that rewrites nothing changes nothing; every other filter does something
/// Lattice cannot.
fn is_noop(f: &Filter) -> bool {
    matches!(f, Filter::UrlRewrite(r) if r.hostname.is_none() && r.path.is_none())
}

/// The route's custom domain: the first hostname its rules carry (plan order ranks exact
/// hostnames before wildcards), if it is exact. Lattice custom domains cannot be wildcards;
/// such a route is reachable by its Lattice-generated DNS name only.
fn custom_domain(route: &RouteWork<'_>) -> Option<String> {
    let first = route.listeners.iter().flat_map(|(_, rules)| rules.iter()).find_map(|r| r.hostname.as_deref())?;
    (!first.contains('*')).then(|| first.to_ascii_lowercase())
}

fn ip_type(ip: &str) -> Option<IpAddressType> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(_) => Some(IpAddressType::Ipv4),
        IpAddr::V6(_) => Some(IpAddressType::Ipv6),
    }
}

/// Protocol of the target group for this backend as this route uses it.
///
/// - behind a TLS passthrough listener: TCP (Lattice requires it there);
/// - gRPC when a GRPCRoute forwards to it or the Service port says `appProtocol: grpc`
///   (the *using* route decides, not `Backend::used_by`, which is only the first user);
/// - HTTP/2 for `kubernetes.io/h2c`; HTTPS towards targets for `appProtocol: https`;
/// - otherwise HTTP/1.1.
///
/// IPv4 unless the Service has only IPv6 endpoints (a target group holds one family).
fn flavour(backend: &Backend, route_kind: RouteKind, passthrough: bool) -> Flavour {
    let has_v4 = backend.endpoints.iter().any(|e| ip_type(&e.ip) == Some(IpAddressType::Ipv4));
    let has_v6 = backend.endpoints.iter().any(|e| ip_type(&e.ip) == Some(IpAddressType::Ipv6));
    let ip = if has_v6 && !has_v4 { IpAddressType::Ipv6 } else { IpAddressType::Ipv4 };
    if passthrough {
        return Flavour { protocol: TargetGroupProtocol::Tcp, version: None, ip };
    }
    let app = backend.app_protocol.as_deref().map(str::to_ascii_lowercase);
    let protocol = if app.as_deref() == Some("https") { TargetGroupProtocol::Https } else { TargetGroupProtocol::Http };
    let version = if route_kind == RouteKind::Grpc || app.as_deref() == Some("grpc") {
        ProtocolVersion::Grpc
    } else if matches!(app.as_deref(), Some("kubernetes.io/h2c" | "h2c")) {
        ProtocolVersion::Http2
    } else {
        ProtocolVersion::Http1
    };
    Flavour { protocol, version: Some(version), ip }
}

/// A BackendPolicy's protocol version for an HTTPRoute's target groups. It is part of the
/// flavour, hence of the target group's name: a change renders a new target group. GRPCRoute
/// backends stay gRPC and TLS passthrough (TCP) target groups have no protocol version.
fn with_backend_settings(mut f: Flavour, s: Option<&BackendSettings>, route_kind: RouteKind) -> Flavour {
    if let (Some(v), Some(_), RouteKind::Http) = (s.and_then(|s| s.protocol_version), f.version, route_kind) {
        f.version = Some(match v {
            BackendProtocolVersion::Http1 => ProtocolVersion::Http1,
            BackendProtocolVersion::Http2 => ProtocolVersion::Http2,
            BackendProtocolVersion::Grpc => ProtocolVersion::Grpc,
        });
    }
    f
}

/// What Lattice target groups can take from a BackendPolicy: the protocol version only, and
/// round robin, the one algorithm Lattice has.
pub fn backend_settings_support(s: &BackendSettings) -> Result<(), String> {
    if s.deregistration_delay_seconds.is_some() {
        return Err(format!("{PROVIDER} target groups have no deregistration delay setting (deregistrationDelaySeconds)"));
    }
    if s.slow_start_seconds.is_some() {
        return Err(format!("{PROVIDER} target groups have no slow start setting (slowStartSeconds)"));
    }
    match s.algorithm {
        None | Some(LoadBalancingAlgorithm::RoundRobin) => Ok(()),
        Some(a) => Err(format!("{PROVIDER} balances round robin only; algorithm {a:?} cannot be set")),
    }
}

/// Health checks as Lattice would default them, written out so drift is visible in the diff.
/// HTTP/1 target groups check `GET /` for a 200 (Lattice's default). Lattice cannot health
/// check gRPC, and an HTTP check against an h2c or raw TCP server would mark every target
/// unhealthy, so those stay off (also Lattice's default); pod readiness already keeps
/// unready endpoints out of the target list. Configurable health checks are a later policy.
fn health_check(f: Flavour) -> HealthCheckConfig {
    match f.version {
        Some(ProtocolVersion::Http1) => HealthCheckConfig {
            enabled: true,
            protocol: Some(f.protocol),
            protocol_version: Some(ProtocolVersion::Http1),
            port: None,
            path: Some("/".into()),
            health_check_interval_seconds: Some(30),
            health_check_timeout_seconds: Some(5),
            healthy_threshold_count: Some(5),
            unhealthy_threshold_count: Some(2),
            matcher: Some(Matcher { http_code: "200".into() }),
        },
        _ => HealthCheckConfig { enabled: false, ..Default::default() },
    }
}

/// What Lattice health checks can do (HealthCheckConfig): HTTP or HTTPS over HTTP/1.1 or
/// HTTP/2, HTTP status matchers, interval 5-300 s, timeout 1-120 s, thresholds 2-10.
pub fn health_check_support(hc: &HealthCheck) -> Result<(), String> {
    match hc.protocol {
        Some(HealthCheckProtocol::Grpc) => return Err("aws-lattice health checks speak HTTP or HTTPS (HTTP/1.1 or HTTP/2), not gRPC".into()),
        Some(HealthCheckProtocol::Tcp) => return Err("aws-lattice checks HTTP target groups over HTTP or HTTPS, not TCP".into()),
        _ => {}
    }
    if hc.grpc_codes.is_some() {
        return Err("aws-lattice health checks match HTTP codes only (matcher.grpcCodes)".into());
    }
    health::in_range("intervalSeconds", hc.interval_seconds, 5, 300, PROVIDER)?;
    health::in_range("timeoutSeconds", hc.timeout_seconds, 1, 120, PROVIDER)?;
    health::in_range("healthyThreshold", hc.healthy_threshold, 2, 10, PROVIDER)?;
    health::in_range("unhealthyThreshold", hc.unhealthy_threshold, 2, 10, PROVIDER)?;
    Ok(())
}

/// A policy's settings over the defaults of a target group's health check. TCP (passthrough)
/// target groups keep theirs: Lattice checks those with no HTTP at all.
fn with_policy(mut hc: HealthCheckConfig, p: &HealthCheck, f: Flavour) -> HealthCheckConfig {
    if f.protocol == TargetGroupProtocol::Tcp {
        return hc;
    }
    hc.enabled = true;
    let (protocol, version) = match p.protocol {
        Some(HealthCheckProtocol::Https) => (TargetGroupProtocol::Https, ProtocolVersion::Http1),
        Some(HealthCheckProtocol::Http) => (TargetGroupProtocol::Http, ProtocolVersion::Http1),
        Some(HealthCheckProtocol::Http2) => (f.protocol, ProtocolVersion::Http2),
        // The target group's own protocol; gRPC and HTTP/2 backends are checked over HTTP/2.
        _ => (f.protocol, if f.version == Some(ProtocolVersion::Http1) { ProtocolVersion::Http1 } else { ProtocolVersion::Http2 }),
    };
    hc.protocol = Some(protocol);
    hc.protocol_version = Some(version);
    hc.path = p.path.clone().or(hc.path).or_else(|| Some("/".into()));
    hc.port = p.port.or(hc.port);
    hc.health_check_interval_seconds = p.interval_seconds.or(hc.health_check_interval_seconds);
    hc.health_check_timeout_seconds = p.timeout_seconds.or(hc.health_check_timeout_seconds);
    hc.healthy_threshold_count = p.healthy_threshold.or(hc.healthy_threshold_count);
    hc.unhealthy_threshold_count = p.unhealthy_threshold.or(hc.unhealthy_threshold_count);
    if let Some(codes) = &p.http_codes {
        hc.matcher = Some(Matcher { http_code: codes.clone() });
    } else if hc.matcher.is_none() {
        hc.matcher = Some(Matcher { http_code: "200".into() });
    }
    hc
}

/// The Lattice matches for one plan match, each with a stable label for its rule's identity.
/// Usually one; a `PathPrefix` other than `/` becomes two (see the module docs).
fn http_matches(m: &RouteMatch, key: &RouteKey) -> Result<Vec<(&'static str, HttpMatch)>, RenderError> {
    if !m.query_params.is_empty() {
        return Err(unrenderable(format!("{key}: query parameter matches are not available in Lattice")));
    }
    if m.headers.len() > MAX_HEADER_MATCHES {
        return Err(unrenderable(format!(
            "{key}: a match with {} headers; Lattice rules match at most {MAX_HEADER_MATCHES}",
            m.headers.len()
        )));
    }
    let mut header_matches = Vec::with_capacity(m.headers.len());
    for h in &m.headers {
        if h.match_type != MatchType::Exact {
            return Err(unrenderable(format!("{key}: regular expression header matches are not available in Lattice")));
        }
        header_matches.push(HeaderMatch {
            // Header names are case-insensitive in HTTP; lowercase is the form HTTP/2 puts on
            // the wire. Values are matched case-sensitively, as Gateway API requires.
            name: h.name.to_ascii_lowercase(),
            match_: HeaderMatchType::Exact(h.value.clone()),
            case_sensitive: true,
        });
    }
    let base = HttpMatch { path_match: None, method: m.method.clone(), header_matches };
    let with_path = |t: PathMatchType| HttpMatch { path_match: Some(PathMatch { match_: t, case_sensitive: true }), ..base.clone() };
    Ok(match &m.path {
        None => vec![("all", base.clone())],
        Some(PlanPath::Exact(p)) => vec![("exact", with_path(PathMatchType::Exact(p.clone())))],
        Some(PlanPath::PathPrefix(p)) => {
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() {
                vec![("prefix", with_path(PathMatchType::Prefix("/".into())))]
            } else {
                // Element-wise prefix: `/foo` itself, and anything under `/foo/`.
                vec![
                    ("exact", with_path(PathMatchType::Exact(trimmed.to_string()))),
                    ("prefix", with_path(PathMatchType::Prefix(format!("{trimmed}/")))),
                ]
            }
        }
        Some(PlanPath::RegularExpression(_)) => {
            return Err(unrenderable(format!("{key}: regular expression path matches are not available in Lattice")));
        }
    })
}

#[cfg(test)]
mod route_tag_tests {
    use super::*;

    #[test]
    fn route_tags_round_trip() {
        let r = RouteKey { kind: RouteKind::Grpc, namespace: "apps".into(), name: "a.b".into() };
        assert_eq!(parse_route_tag(&route_tag(&r)), Some(r));
        assert_eq!(parse_route_tag("Nope/x/y"), None);
        assert_eq!(parse_route_tag("HTTPRoute/only-namespace"), None);
    }
}

/// The destination type of an access log destination ARN (`s3`, `logs` or `firehose`), which
/// Lattice allows one subscription of per resource.
pub fn destination_type(arn: &str) -> &str {
    arn.split(':').nth(2).unwrap_or("")
}

/// What Lattice takes from a LatticeAccessLogPolicy / LatticeAuthPolicy.
pub fn access_policy_support(s: &AccessSettings) -> Result<(), String> {
    if let Some(d) = &s.access_log_destination {
        if !matches!(destination_type(d), "s3" | "logs" | "firehose") {
            return Err(format!("access log destination {d}: Lattice sends access logs to S3, CloudWatch Logs or Kinesis Data Firehose only"));
        }
    }
    if let Some(doc) = s.auth.as_ref().and_then(|a| a.policy.as_deref()) {
        match serde_json::from_str::<serde_json::Value>(doc) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err("the auth policy is not a JSON object (an IAM policy document)".into()),
        }
    }
    Ok(())
}
