//! One Gateway, translated: listeners validated, routes attached (parentRef sectionName/port,
//! allowedRoutes, hostname intersection), rules ranked by precedence, backends resolved.
//! This is where a Gateway becomes a [`LoadBalancerPlan`].
//!
//! Rules the provider cannot build on a particular listener ([`Capabilities::rule_check`]) are
//! left out of that listener's plan and reported on the parentRefs that reach it, like rules
//! lacking a feature: a rule the provider cannot express must cost that route rule, never the
//! Gateway and every other route on it (which is what a render error would do).

use std::collections::{BTreeMap, BTreeSet};

use crate::backends;
use crate::capabilities::{feature, Capabilities, Protocol};
use crate::conditions::{kind, reason, Cond};
use crate::hostname;
use crate::listeners::{self, ListenerVerdict};
use crate::model::{Filter, ObjKey, ParentRef, PathMatch, Route, RouteKey, RouteKind, RouteMatch};
use crate::plan::{BackendId, LoadBalancerPlan, ListenerPlan, PlanRule, RequestedAddress, RuleAction};
use crate::precedence;
use crate::rules::{self, Refusals, RouteAnalysis};
use crate::world::World;

#[derive(Clone, Debug)]
pub struct GatewayTranslation {
    pub plan: LoadBalancerPlan,
    pub gateway: GatewayVerdict,
    /// One entry per parentRef (of any route) that names this Gateway.
    pub routes: Vec<RouteParentVerdict>,
}

#[derive(Clone, Debug)]
pub struct GatewayVerdict {
    pub key: ObjKey,
    pub generation: Option<i64>,
    pub accepted: Cond,
    pub listeners: Vec<ListenerVerdict>,
}

#[derive(Clone, Debug)]
pub struct RouteParentVerdict {
    pub route: RouteKey,
    pub generation: Option<i64>,
    pub parent_ref: ParentRef,
    pub conditions: Vec<Cond>,
}

/// Where one route landed on one listener.
struct Attachment<'a> {
    route: &'a Route,
    /// `None`: any hostname.
    hostnames: Option<Vec<String>>,
}

pub fn translate_gateway(world: &World, key: &ObjKey, caps: &Capabilities) -> Option<GatewayTranslation> {
    let gw = world.gateways.get(key)?;
    let mut listeners = listeners::validate(world, gw, caps);

    // Attach routes.
    let mut attachments: Vec<Vec<Attachment<'_>>> = (0..listeners.len()).map(|_| Vec::new()).collect();
    let mut attached: Vec<BTreeSet<RouteKey>> = vec![BTreeSet::new(); listeners.len()];
    // Each parentRef's attachment: the listeners it reached, or why none. Its conditions are
    // decided after the plan is built, since the provider may refuse a rule on a listener.
    let mut parents: Vec<(&Route, &ParentRef, Result<Vec<usize>, Cond>)> = Vec::new();
    let mut analyses: BTreeMap<RouteKey, RouteAnalysis> = BTreeMap::new();
    for route in world.routes_for_gateway(key) {
        let rkey = route.key();
        // A parentRef the CRD would reject (an apiserver without that validation may store
        // it) neither attaches nor gets a status entry: the entry would repeat the invalid
        // values, and the apiserver would then reject the route's whole status.parents.
        for pref in route.parent_refs.iter().filter(|p| p.gateway(&route.namespace).as_ref() == Some(key) && reportable(p)) {
            analyses.entry(rkey.clone()).or_insert_with(|| rules::analyze(world, route, caps));
            let reached = attach(world, key, &listeners, route, pref, caps).map(|hits| {
                hits.into_iter()
                    .map(|(i, hostnames)| {
                        if attached[i].insert(rkey.clone()) {
                            attachments[i].push(Attachment { route, hostnames });
                        }
                        i
                    })
                    .collect()
            });
            parents.push((route, pref, reached));
        }
    }
    for (l, set) in listeners.iter_mut().zip(&attached) {
        l.attached_routes = set.len() as i32;
    }

    // Gateway acceptance.
    let addresses: Vec<RequestedAddress> = gw
        .spec
        .addresses
        .iter()
        .flatten()
        .filter_map(|a| {
            Some(RequestedAddress {
                type_: a.r#type.clone().unwrap_or_else(|| "IPAddress".into()),
                value: a.value.clone()?,
            })
        })
        .collect();
    let accepted = gateway_accepted(&listeners, &addresses, caps);

    // Plan.
    let mut plan_listeners = Vec::new();
    let mut backends = BTreeMap::new();
    // Listener indices that got a plan, and what the provider refused on them.
    let mut planned: BTreeSet<usize> = BTreeSet::new();
    let mut refused: Refused = BTreeMap::new();
    let mut refused_backends: BTreeSet<BackendId> = BTreeSet::new();
    for (i, l) in listeners.iter().enumerate() {
        if !l.programmable || !accepted.status {
            continue;
        }
        let mut entries = Vec::new();
        for a in &attachments[i] {
            let analysis = &analyses[&a.route.key()];
            for r in &analysis.kept {
                for (id, b) in &analysis.backends {
                    backends.entry(id.clone()).or_insert_with(|| b.clone());
                }
                let spec_rule = &a.route.rules[r.index];
                let matches: Vec<(Option<usize>, RouteMatch)> = if spec_rule.matches.is_empty() {
                    vec![(None, default_match(a.route.kind))]
                } else {
                    spec_rule.matches.iter().cloned().enumerate().map(|(i, m)| (Some(i), m)).collect()
                };
                let hosts: Vec<Option<String>> = match &a.hostnames {
                    None => vec![None],
                    Some(h) => h.iter().cloned().map(Some).collect(),
                };
                for (mi, m) in &matches {
                    for h in &hosts {
                        entries.push((a.route, r, *mi, m.clone(), h.clone()));
                    }
                }
            }
        }
        let created: BTreeMap<RouteKey, Option<String>> = attachments[i]
            .iter()
            .map(|a| (a.route.key(), a.route.created.as_ref().map(|t| t.0.to_string())))
            .collect();
        type Candidate<'r> = (&'r Route, &'r rules::AnalyzedRule, Option<usize>, RouteMatch, Option<String>);
        fn entry<'e>(x: &'e Candidate<'_>, created: &'e BTreeMap<RouteKey, Option<String>>) -> precedence::Entry<'e> {
            let (route, rule, match_index, matches, host) = x;
            precedence::Entry {
                hostname: host.as_deref(),
                matches,
                created: created[&route.key()].as_deref(),
                namespace: &route.namespace,
                name: &route.name,
                rule_index: rule.index,
                match_index: match_index.unwrap_or(0),
            }
        }
        entries.sort_by(|x, y| precedence::compare(&entry(x, &created), &entry(y, &created)));
        let rules: Vec<PlanRule> = entries
            .into_iter()
            .enumerate()
            .map(|(n, (route, r, mi, m, h))| PlanRule {
                priority: n as u32 + 1,
                route: route.key(),
                rule_index: r.index,
                rule_name: route.rules[r.index].name.clone(),
                match_index: mi,
                hostname: h,
                matches: m,
                filters: r.filters.clone(),
                action: r.action.clone(),
                timeouts: route.rules[r.index].timeouts.clone(),
            })
            .collect();
        let mut lp = ListenerPlan {
            name: l.name.clone(),
            port: l.port,
            protocol: l.protocol.clone().unwrap_or(Protocol::Http),
            hostname: l.hostname.clone(),
            tls: l.tls.clone(),
            routes: attached[i].iter().cloned().collect(),
            rules,
        };
        for (r, why) in refuse_rules(&mut lp, caps) {
            refused_backends.extend(rule_backends(&r));
            refused.entry((i, r.route, r.rule_index)).or_insert(why);
        }
        planned.insert(i);
        plan_listeners.push(lp);
    }
    if !refused.is_empty() {
        // A refused rule's backends are not provisioned for it: kept only if a rule still in
        // the plan uses them.
        let used: BTreeSet<BackendId> = plan_listeners.iter().flat_map(|l| &l.rules).flat_map(rule_backends).collect();
        let refused_only: BTreeSet<BackendId> = refused_backends.into_iter().filter(|b| !used.contains(b)).collect();
        backends.retain(|id, _| !refused_only.contains(id));
    }

    // Route conditions, per parentRef: attachment, then the route's rules, less those refused
    // on the listeners this parentRef reached.
    let verdicts = parents
        .into_iter()
        .map(|(route, pref, reached)| {
            let analysis = &analyses[&route.key()];
            let mut conditions = match reached {
                Err(cond) => vec![cond],
                Ok(hits) => analysis.acceptance(route, &refusals_for(route, &hits, &listeners, &planned, &refused)),
            };
            conditions.push(analysis.resolved_refs.clone());
            RouteParentVerdict { route: route.key(), generation: route.generation, parent_ref: pref.clone(), conditions }
        })
        .collect();

    let plan = LoadBalancerPlan {
        gateway: key.clone(),
        gateway_uid: gw.metadata.uid.clone(),
        class_name: gw.spec.gateway_class_name.clone(),
        addresses,
        infrastructure_labels: gw.spec.infrastructure.as_ref().and_then(|i| i.labels.clone()).unwrap_or_default(),
        listeners: plan_listeners,
        backends,
    };
    Some(GatewayTranslation {
        plan,
        gateway: GatewayVerdict { key: key.clone(), generation: gw.metadata.generation, accepted, listeners },
        routes: verdicts,
    })
}

/// Whether a parentRef's sectionName and port are ones the CRD accepts (its name and
/// namespace are, when it names an existing Gateway).
fn reportable(p: &ParentRef) -> bool {
    p.section_name.as_deref().is_none_or(listeners::valid_section_name) && p.port.is_none_or(|port| (1..=65535).contains(&port))
}

fn default_match(kind: RouteKind) -> RouteMatch {
    match kind {
        RouteKind::Http | RouteKind::Grpc => RouteMatch { path: Some(PathMatch::PathPrefix("/".into())), ..Default::default() },
        RouteKind::Tls | RouteKind::Tcp => RouteMatch::default(),
    }
}

/// Which listeners a parentRef attaches the route to, with the effective hostnames on each;
/// or the `Accepted=False` condition saying why none.
fn attach(
    world: &World,
    gw: &ObjKey,
    listeners: &[ListenerVerdict],
    route: &Route,
    pref: &ParentRef,
    caps: &Capabilities,
) -> Result<Vec<(usize, Option<Vec<String>>)>, Cond> {
    if pref.port.is_some() && !caps.supports(feature::HTTP_ROUTE_PARENT_REF_PORT) {
        return Err(Cond::no(
            kind::ACCEPTED,
            reason::UNSUPPORTED_VALUE,
            format!("parentRef port is not supported by the {} provider", caps.provider),
        ));
    }
    let candidates: Vec<usize> = (0..listeners.len())
        .filter(|&i| pref.section_name.as_ref().is_none_or(|s| *s == listeners[i].name))
        .filter(|&i| pref.port.is_none_or(|p| p == listeners[i].port))
        .collect();
    if candidates.is_empty() {
        let what = match (&pref.section_name, pref.port) {
            (Some(s), Some(p)) => format!("no listener named {s} on port {p}"),
            (Some(s), None) => format!("no listener named {s}"),
            (None, Some(p)) => format!("no listener on port {p}"),
            (None, None) => "the Gateway has no listeners".into(),
        };
        return Err(Cond::no(kind::ACCEPTED, reason::NO_MATCHING_PARENT, format!("Gateway {gw}: {what}")));
    }
    let allowed: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| listeners[i].supported_kinds.contains(&route.kind))
        .filter(|&i| listeners[i].allows_namespace(world, &gw.namespace, &route.namespace))
        .collect();
    if allowed.is_empty() {
        return Err(Cond::no(
            kind::ACCEPTED,
            reason::NOT_ALLOWED_BY_LISTENERS,
            format!("No listener of Gateway {gw} allows a {} from namespace {}", route.kind.kind(), route.namespace),
        ));
    }
    let hits: Vec<(usize, Option<Vec<String>>)> = allowed
        .into_iter()
        .filter_map(|i| {
            if route.kind == RouteKind::Tcp {
                return Some((i, None));
            }
            hostname::effective(listeners[i].hostname.as_deref(), &route.hostnames).ok().map(|h| (i, h))
        })
        .collect();
    if hits.is_empty() {
        return Err(Cond::no(
            kind::ACCEPTED,
            reason::NO_MATCHING_LISTENER_HOSTNAME,
            format!("None of the route's hostnames match a listener hostname of Gateway {gw}"),
        ));
    }
    Ok(hits)
}

fn gateway_accepted(listeners: &[ListenerVerdict], addresses: &[RequestedAddress], caps: &Capabilities) -> Cond {
    if !addresses.is_empty() {
        if !caps.supports(feature::GATEWAY_STATIC_ADDRESSES) {
            return Cond::no(
                kind::ACCEPTED,
                reason::UNSUPPORTED_ADDRESS,
                format!("spec.addresses is not supported by the {} provider", caps.provider),
            );
        }
        if let Some(bad) = addresses.iter().find(|a| a.type_ == "IPAddress" && a.value.parse::<std::net::IpAddr>().is_err()) {
            return Cond::no(kind::ACCEPTED, reason::UNSUPPORTED_ADDRESS, format!("{} is not an IP address", bad.value));
        }
        if let Some(bad) = addresses.iter().find(|a| a.type_ != "IPAddress" && a.type_ != "NamedAddress") {
            return Cond::no(
                kind::ACCEPTED,
                reason::UNSUPPORTED_ADDRESS,
                format!("address type {} is not supported by the {} provider", bad.type_, caps.provider),
            );
        }
    }
    let bad: Vec<&str> = listeners.iter().filter(|l| !l.accepted).map(|l| l.name.as_str()).collect();
    if bad.is_empty() {
        Cond::yes(kind::ACCEPTED, reason::ACCEPTED, "Gateway is accepted")
    } else if bad.len() == listeners.len() {
        Cond::no(kind::ACCEPTED, reason::LISTENERS_NOT_VALID, format!("No valid listeners; invalid: {}", bad.join(", ")))
    } else {
        let good: Vec<&str> = listeners.iter().filter(|l| l.accepted).map(|l| l.name.as_str()).collect();
        Cond::yes(
            kind::ACCEPTED,
            reason::LISTENERS_NOT_VALID,
            format!("Invalid listeners: {}; accepted listeners: {}", bad.join(", "), good.join(", ")),
        )
    }
}

/// Rules the provider refused: (listener index, route, rule index) -> why.
type Refused = BTreeMap<(usize, RouteKey, usize), String>;

/// Takes out of a listener's plan the rules the provider's [`Capabilities::rule_check`] refuses
/// on that listener, and renumbers the rest (priorities stay dense). A route rule is refused
/// whole: all its plan rules (one per match and hostname) go when any of them is refused, since
/// programming some of a rule's matches would be a silent partial rule. Returns the plan rules
/// taken out, each with why.
fn refuse_rules(lp: &mut ListenerPlan, caps: &Capabilities) -> Vec<(PlanRule, String)> {
    let Some(check) = caps.rule_check else { return Vec::new() };
    let mut why: BTreeMap<(RouteKey, usize), String> = BTreeMap::new();
    for r in &lp.rules {
        if let Err(e) = check(lp, r) {
            why.entry((r.route.clone(), r.rule_index)).or_insert(e);
        }
    }
    if why.is_empty() {
        return Vec::new();
    }
    let (out, kept): (Vec<PlanRule>, Vec<PlanRule>) =
        std::mem::take(&mut lp.rules).into_iter().partition(|r| why.contains_key(&(r.route.clone(), r.rule_index)));
    lp.rules = kept;
    for (n, r) in lp.rules.iter_mut().enumerate() {
        r.priority = n as u32 + 1;
    }
    out.into_iter()
        .map(|r| {
            let w = why[&(r.route.clone(), r.rule_index)].clone();
            (r, w)
        })
        .collect()
}

/// The plan backends a plan rule sends traffic to: its forward targets and its mirror.
fn rule_backends(r: &PlanRule) -> Vec<BackendId> {
    let mut out: Vec<BackendId> = match &r.action {
        RuleAction::Forward { backends } => backends.iter().map(|b| b.backend.clone()).collect(),
        RuleAction::Redirect(_) | RuleAction::FixedResponse { .. } => Vec::new(),
    };
    out.extend(r.filters.iter().filter_map(|f| match f {
        Filter::RequestMirror { backend, .. } => Some(backends::id_of(&r.route.namespace, backend)),
        _ => None,
    }));
    out
}

/// What the provider refused of `route` on the planned listeners among `hits` (those one
/// parentRef reached), as the parentRef's status reports it: each rule with the listeners
/// and why, e.g. "rule 2 (legacy) on listener https: ...".
fn refusals_for(route: &Route, hits: &[usize], listeners: &[ListenerVerdict], planned: &BTreeSet<usize>, refused: &Refused) -> Refusals {
    let rkey = route.key();
    let planned_hits: Vec<usize> = hits.iter().copied().filter(|i| planned.contains(i)).collect();
    let mut out = Refusals::default();
    for rule in 0..route.rules.len() {
        let on: Vec<(usize, &String)> =
            planned_hits.iter().filter_map(|&i| refused.get(&(i, rkey.clone(), rule)).map(|why| (i, why))).collect();
        if on.is_empty() {
            continue;
        }
        if on.len() == planned_hits.len() {
            out.everywhere.insert(rule);
        }
        // One entry per distinct reason, naming every listener it applies to.
        let mut by_why: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (i, why) in on {
            by_why.entry(why.as_str()).or_default().push(listeners[i].name.as_str());
        }
        let name = route.rules[rule].name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        for (why, names) in by_why {
            let on = if names.len() == 1 { format!("listener {}", names[0]) } else { format!("listeners {}", names.join(", ")) };
            out.details.push((rule, format!("rule {rule}{name} on {on}: {why}")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::capabilities::{feature, Capabilities, Protocol};
    use crate::manifest::{load_str, Loaded};
    use crate::model::ObjKey;
    use crate::World;

    // Found by the fuzzer (controller/src/fuzz_tests.rs): parentRefs with a port or sectionName
    // the CRD rejects got status entries repeating them, so the apiserver refused the route's
    // whole status.parents (valid entries included) on every write.
    #[test]
    fn parent_refs_the_crd_rejects_get_no_status_entry() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: ns}\nspec:\n  gatewayClassName: cg\n  listeners: [{name: http, protocol: HTTP, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: ns}\nspec:\n  parentRefs: [{name: gw, port: 0}, {name: gw, port: 65536}, {name: gw, sectionName: Bad_Name}, {name: gw, sectionName: http}]\n";
        let mut w = World::new();
        load_str("t", yaml, &mut w, &mut Loaded::default()).unwrap();
        let caps = Capabilities {
            provider: "test",
            protocols: [Protocol::Http].into_iter().collect(),
            features: [feature::HTTP_ROUTE, feature::HTTP_ROUTE_PARENT_REF_PORT].into_iter().collect(),
            max_weight: 100,
            reserved_ports: Default::default(),
            max_backends_per_rule: 5,
            rule_check: None,
        };
        let t = super::translate_gateway(&w, &ObjKey::new("ns", "gw"), &caps).unwrap();
        let refs: Vec<_> = t.routes.iter().map(|v| (v.parent_ref.section_name.as_deref(), v.parent_ref.port)).collect();
        assert_eq!(refs, vec![(Some("http"), None)]);
        assert_eq!(t.gateway.listeners[0].attached_routes, 1);
    }
}
