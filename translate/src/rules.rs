//! Route rules: what the provider can express, which backends resolve, and what action each
//! rule becomes. Independent of the parent the route attaches to, so computed once per route.

use std::collections::{BTreeMap, BTreeSet};

use crate::backends::{self, BackendError};
use crate::capabilities::{feature, Capabilities};
use crate::conditions::{kind, reason, Cond};
use crate::model::{Filter, MatchType, PathMatch, Route, RouteRule};
use crate::plan::{Backend, BackendId, RuleAction, WeightedBackend};
use crate::world::World;

#[derive(Clone, Debug)]
pub struct AnalyzedRule {
    pub index: usize,
    pub filters: Vec<Filter>,
    pub action: RuleAction,
}

#[derive(Clone, Debug)]
pub struct RouteAnalysis {
    /// Rules the provider can build, with their actions.
    pub kept: Vec<AnalyzedRule>,
    /// Rules dropped, with why (unsupported by the provider or incompatible filters).
    pub dropped: Vec<(usize, &'static str, String)>,
    pub resolved_refs: Cond,
    pub backends: BTreeMap<BackendId, Backend>,
}

/// Kept rules the provider refused on listeners one parentRef attaches to
/// ([`Capabilities::rule_check`]): they are not in those listeners' plans.
#[derive(Clone, Debug, Default)]
pub struct Refusals {
    /// (rule index, "rule N on listener L: why"), for the status message.
    pub details: Vec<(usize, String)>,
    /// Rules refused on every planned listener of the parentRef: nothing of them is programmed
    /// for it. A rule refused on some listeners only (an HTTPS one but not an HTTP one) still
    /// works through the others, so it is reported but does not count as lost.
    pub everywhere: BTreeSet<usize>,
}

impl RouteAnalysis {
    /// Accepted / PartiallyInvalid for an attached parent. Rules dropped for the whole route
    /// and rules refused on this parent's listeners are reported alike, by rule index: the
    /// route is not Accepted when no rule is left working for this parent.
    pub fn acceptance(&self, route: &Route, refused: &Refusals) -> Vec<Cond> {
        if self.dropped.is_empty() && refused.details.is_empty() {
            return vec![Cond::yes(kind::ACCEPTED, reason::ACCEPTED, "Route is accepted")];
        }
        let mut entries: Vec<(usize, String)> = self.dropped.iter().map(|(i, _, m)| (*i, format!("rule {i}: {m}"))).collect();
        entries.extend(refused.details.iter().cloned());
        // Stable: a rule's entries keep their order.
        entries.sort_by_key(|(i, _)| *i);
        let detail = entries.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; ");
        let working = self.kept.iter().filter(|r| !refused.everywhere.contains(&r.index)).count();
        if working == 0 && !route.rules.is_empty() {
            // All rules invalid: the whole route is not accepted. IncompatibleFilters is more
            // precise than UnsupportedValue when that is the only problem.
            let r = if refused.details.is_empty() && self.dropped.iter().all(|(_, r, _)| *r == reason::INCOMPATIBLE_FILTERS) {
                reason::INCOMPATIBLE_FILTERS
            } else {
                reason::UNSUPPORTED_VALUE
            };
            return vec![Cond::no(kind::ACCEPTED, r, detail)];
        }
        vec![
            Cond::yes(kind::ACCEPTED, reason::ACCEPTED, "Route is accepted"),
            Cond::yes(kind::PARTIALLY_INVALID, reason::UNSUPPORTED_VALUE, format!("Dropped Rule(s): {detail}")),
        ]
    }
}

pub fn analyze(world: &World, route: &Route, caps: &Capabilities) -> RouteAnalysis {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut errors: Vec<BackendError> = Vec::new();
    let mut backends = BTreeMap::new();

    for (index, rule) in route.rules.iter().enumerate() {
        // References are resolved for every rule, dropped or not, so ResolvedRefs is truthful.
        let mut forward = Vec::new();
        let mut any_invalid = false;
        for b in &rule.backends {
            match backends::resolve(world, route.kind, &route.namespace, b) {
                Ok(resolved) => {
                    let id = backends::id_of(&route.namespace, b);
                    backends.entry(id.clone()).or_insert(resolved);
                    forward.push(WeightedBackend { backend: id, weight: b.weight, filters: b.filters.clone() });
                }
                Err(e) => {
                    any_invalid = true;
                    errors.push(e);
                }
            }
        }
        for f in &rule.filters {
            if let Filter::RequestMirror { backend, .. } = f {
                match backends::resolve(world, route.kind, &route.namespace, backend) {
                    Ok(resolved) => {
                        backends.entry(backends::id_of(&route.namespace, backend)).or_insert(resolved);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }

        if let Some(problem) = incompatible_filters(rule) {
            dropped.push((index, reason::INCOMPATIBLE_FILTERS, problem));
            continue;
        }
        let unsupported = unsupported_features(rule, caps);
        if !unsupported.is_empty() {
            dropped.push((
                index,
                reason::UNSUPPORTED_VALUE,
                format!("{} not supported by the {} provider", unsupported.join(", "), caps.provider),
            ));
            continue;
        }

        let redirect = rule.filters.iter().find_map(|f| match f {
            Filter::RequestRedirect(r) => Some(r.clone()),
            _ => None,
        });
        let action = if let Some(r) = redirect {
            RuleAction::Redirect(r)
        } else if forward.iter().all(|b| b.weight == 0) {
            // No valid backend carrying traffic: the spec requires a 500 for all of it. A rule
            // where only some backends are invalid keeps its valid ones (clouds cannot mix a
            // weighted 500 into a forward); ResolvedRefs=False says so.
            let why = if any_invalid || rule.backends.is_empty() { "no valid backend" } else { "all backend weights are 0" };
            RuleAction::FixedResponse { status: 500, reason: why.into() }
        } else {
            RuleAction::Forward { backends: forward }
        };
        let filters = rule.filters.iter().filter(|f| !matches!(f, Filter::RequestRedirect(_))).cloned().collect();
        kept.push(AnalyzedRule { index, filters, action });
    }

    let resolved_refs = match errors.first() {
        None => Cond::yes(kind::RESOLVED_REFS, reason::RESOLVED_REFS, "All references resolved"),
        Some(first) => Cond::no(
            kind::RESOLVED_REFS,
            first.reason,
            errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "),
        ),
    };
    RouteAnalysis { kept, dropped, resolved_refs, backends }
}

fn incompatible_filters(rule: &RouteRule) -> Option<String> {
    let has = |name: &str| rule.filters.iter().filter(|f| f.type_name() == name).count();
    if has("RequestRedirect") > 0 && has("URLRewrite") > 0 {
        return Some("RequestRedirect and URLRewrite cannot be used together".into());
    }
    None
}

/// Feature names a rule needs that the provider lacks (empty when the rule is expressible).
fn unsupported_features(rule: &RouteRule, caps: &Capabilities) -> Vec<&'static str> {
    let mut need: Vec<&'static str> = Vec::new();
    for m in &rule.matches {
        if m.method.is_some() {
            need.push(feature::HTTP_ROUTE_METHOD_MATCHING);
        }
        if !m.query_params.is_empty() {
            need.push(feature::HTTP_ROUTE_QUERY_PARAM_MATCHING);
        }
        if m.query_params.iter().any(|q| q.match_type == MatchType::RegularExpression) {
            need.push(feature::QUERY_REGEX_MATCHING);
        }
        if m.headers.iter().any(|h| h.match_type == MatchType::RegularExpression) {
            need.push(feature::HEADER_REGEX_MATCHING);
        }
        if matches!(m.path, Some(PathMatch::RegularExpression(_))) {
            need.push(feature::PATH_REGEX_MATCHING);
        }
    }
    for f in &rule.filters {
        match f {
            Filter::RequestHeaderModifier(_) => need.push(feature::REQUEST_HEADER_MODIFICATION),
            Filter::ResponseHeaderModifier(_) => need.push(feature::HTTP_ROUTE_RESPONSE_HEADER_MODIFICATION),
            Filter::RequestRedirect(r) => {
                need.push(feature::REQUEST_REDIRECT);
                if r.port.is_some() {
                    need.push(feature::HTTP_ROUTE_PORT_REDIRECT);
                }
                if r.scheme.is_some() {
                    need.push(feature::HTTP_ROUTE_SCHEME_REDIRECT);
                }
                if r.path.is_some() {
                    need.push(feature::HTTP_ROUTE_PATH_REDIRECT);
                }
                match r.status_code {
                    Some(303) => need.push(feature::HTTP_ROUTE_303_REDIRECT),
                    Some(307) => need.push(feature::HTTP_ROUTE_307_REDIRECT),
                    Some(308) => need.push(feature::HTTP_ROUTE_308_REDIRECT),
                    _ => {}
                }
            }
            Filter::UrlRewrite(r) => {
                if r.hostname.is_some() {
                    need.push(feature::HTTP_ROUTE_HOST_REWRITE);
                }
                if r.path.is_some() {
                    need.push(feature::HTTP_ROUTE_PATH_REWRITE);
                }
            }
            Filter::RequestMirror { percent, .. } => {
                need.push(feature::HTTP_ROUTE_REQUEST_MIRROR);
                if percent.is_some_and(|p| p < 100) {
                    need.push(feature::HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR);
                }
            }
            Filter::Cors => need.push(feature::HTTP_ROUTE_CORS),
            // Never expressible by a cloud load balancer here.
            Filter::ExternalAuth => need.push("ExternalAuth filter"),
            Filter::ExtensionRef { .. } => need.push("ExtensionRef filter"),
        }
    }
    if rule.filters.iter().filter(|f| matches!(f, Filter::RequestMirror { .. })).count() > 1 {
        need.push(feature::HTTP_ROUTE_REQUEST_MULTIPLE_MIRRORS);
    }
    for b in &rule.backends {
        for f in &b.filters {
            match f {
                Filter::RequestHeaderModifier(_) => need.push(feature::HTTP_ROUTE_BACKEND_REQUEST_HEADER_MODIFICATION),
                other => need.push(match other {
                    Filter::ResponseHeaderModifier(_) => "backendRef ResponseHeaderModifier filter",
                    _ => "backendRef filters other than RequestHeaderModifier",
                }),
            }
        }
    }
    if let Some(t) = &rule.timeouts {
        if t.request.is_some() {
            need.push(feature::HTTP_ROUTE_REQUEST_TIMEOUT);
        }
        if t.backend_request.is_some() {
            need.push(feature::HTTP_ROUTE_BACKEND_TIMEOUT);
        }
    }
    need.extend(rule.extra_features.iter().copied());
    let mut missing: Vec<&'static str> = need.into_iter().filter(|f| !caps.supports(f)).collect();
    if rule.backends.len() > caps.max_backends_per_rule {
        missing.push("more backendRefs in one rule than the provider's weighted forward allows");
    }
    missing.sort();
    missing.dedup();
    // Report cloudgate-internal names without their prefix.
    missing.into_iter().map(|f| f.strip_prefix("cloudgate/").unwrap_or(f)).collect()
}
