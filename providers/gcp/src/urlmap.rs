//! Plan rules into URL map route rules.
//!
//! Matching follows Gateway API, not GCE's string semantics:
//! - `PathPrefix /foo` matches per path element (`/foo`, `/foo/...`, never `/foobar`), while
//!   GCE's `prefixMatch` is a plain string prefix. So it becomes two OR-ed match rules:
//!   `fullPathMatch: /foo` and `prefixMatch: /foo/` (each with the same header and query
//!   matches). `PathPrefix /` is `prefixMatch: /`.
//! - A redirect or rewrite with `ReplacePrefixMatch` is split into two route rules, because
//!   the replacement differs for the two halves (`/foo` -> `/new`, `/foo/x` -> `/new/x`) and a
//!   route rule has one `urlRedirect` / `urlRewrite`.
//! - A rewrite with `ReplaceFullPath` under `PathPrefix /foo` is split too: `fullPathMatch:
//!   /foo` with `pathPrefixRewrite` (the matched part of a full-path match is the whole path),
//!   and `pathTemplateMatch: /foo/{path=**}` with `pathTemplateRewrite` (a literal new path):
//!   `prefixMatch` + `pathPrefixRewrite` would only replace the prefix.

use std::collections::BTreeMap;

use cloudgate_provider::RenderError;
use cloudgate_translate::capabilities::Protocol;
use cloudgate_translate::model::{Filter, HeaderModifier, MatchType, ObjKey, PathMatch, PathModifier, Redirect};
use cloudgate_translate::plan::{BackendId, ListenerPlan, PlanRule, RuleAction, WeightedBackend};
use cloudgate_translate::weights;

use crate::spec::*;
use crate::{unrenderable, Flavour, MAX_WEIGHT};

/// What a route rule can refer to.
pub(crate) struct Refs<'a> {
    pub flavour: Flavour,
    /// Backend service name per plan backend.
    pub backend_services: &'a BTreeMap<BackendId, String>,
    /// The backend service without backends that fault-injected responses go "to".
    pub no_backend: &'a str,
}

/// A response the load balancer makes up: a route action to the backend-less service whose
/// every request is aborted with `status`. Compute has no fixed-response action; fault
/// injection (supported by the Envoy-based ALBs) is the way to return an exact status code,
/// where pointing at an empty backend service would answer 503.
pub(crate) fn fixed_response(no_backend: &str, status: u16) -> RouteAction {
    RouteAction {
        weighted_backend_services: vec![WeightedBackendService {
            backend_service: no_backend.to_string(),
            weight: 1,
            header_action: None,
        }],
        fault_injection_policy: Some(FaultInjectionPolicy { abort: FaultAbort { http_status: status, percentage: 100 } }),
        ..Default::default()
    }
}

/// One plan rule's route rules (one, or two for a split prefix redirect), with `priority` 0;
/// the caller numbers them.
pub(crate) fn route_rules(l: &ListenerPlan, r: &PlanRule, refs: &Refs<'_>) -> Result<Vec<RouteRule>, RenderError> {
    let fail = |why: &str| unrenderable(format!("{} rule {} on listener {}: {why}", r.route, r.rule_index, l.name));
    if r.matches.method.is_some() {
        return Err(fail("URL maps cannot match the HTTP method"));
    }
    let regex_used = matches!(r.matches.path, Some(PathMatch::RegularExpression(_)))
        || r.matches.headers.iter().chain(&r.matches.query_params).any(|m| m.match_type == MatchType::RegularExpression);
    if regex_used && !refs.flavour.supports_regex() {
        return Err(fail(&format!("regular expressions are not available on {} URL maps", refs.flavour.as_str())));
    }
    let headers: Vec<HeaderMatch> = r
        .matches
        .headers
        .iter()
        .map(|h| {
            let (exact_match, regex_match) = split_value(h.match_type, &h.value);
            HeaderMatch { header_name: h.name.clone(), exact_match, regex_match }
        })
        .collect();
    let queries: Vec<QueryParameterMatch> = r
        .matches
        .query_params
        .iter()
        .map(|q| {
            let (exact_match, regex_match) = split_value(q.match_type, &q.value);
            QueryParameterMatch { name: q.name.clone(), exact_match, regex_match }
        })
        .collect();
    let with_values = |m: MatchRule| MatchRule { header_matches: headers.clone(), query_parameter_matches: queries.clone(), ..m };
    let full = |p: &str| with_values(MatchRule { full_path_match: Some(p.to_string()), ..Default::default() });
    let prefix = |p: &str| with_values(MatchRule { prefix_match: Some(p.to_string()), ..Default::default() });
    let template = |p: &str| with_values(MatchRule { path_template_match: Some(p.to_string()), ..Default::default() });

    let path = Path::of(r.matches.path.as_ref());
    let all_matches = match &path {
        Path::Exact(p) => vec![full(p)],
        Path::Prefix(t) if t.is_empty() => vec![prefix("/")],
        Path::Prefix(t) => vec![full(t), prefix(&format!("{t}/"))],
        Path::Regex(x) => vec![with_values(MatchRule { regex_match: Some(x.clone()), ..Default::default() })],
    };

    let filters = Filters::of(r, refs).map_err(|e| fail(&e))?;
    let header_action = filters.header_action.clone().filter(|h| !h.is_empty());
    let description = describe(r);
    let rule = |match_rules: Vec<MatchRule>, route_action: Option<RouteAction>, url_redirect: Option<UrlRedirect>| RouteRule {
        priority: 0,
        description: description.clone(),
        match_rules,
        route_action,
        url_redirect,
        header_action: header_action.clone(),
    };

    let halves = |m: &PathModifier, rewrite: bool| -> Result<Vec<(Vec<MatchRule>, NewPath)>, RenderError> {
        let groups = path_halves(&path, m, rewrite).map_err(|e| fail(&e))?;
        Ok(groups
            .into_iter()
            .map(|(selects, new_path)| {
                let matches = match selects {
                    Selects::All => all_matches.clone(),
                    Selects::Full(p) => vec![full(&p)],
                    Selects::Prefix(p) => vec![prefix(&p)],
                    Selects::Template(p) => vec![template(&p)],
                };
                (matches, new_path)
            })
            .collect())
    };
    Ok(match &r.action {
        RuleAction::Forward { backends } => {
            let mut action = RouteAction {
                weighted_backend_services: weighted(backends, refs).map_err(|e| fail(&e))?,
                request_mirror_policy: filters.mirror,
                ..Default::default()
            };
            if let Some(t) = r.timeouts.as_ref() {
                if t.backend_request.is_some() {
                    return Err(fail("backendRequest timeouts are not supported"));
                }
                if let Some(req) = &t.request {
                    action.timeout = Some(duration(req).ok_or_else(|| fail(&invalid_timeout(req)))?);
                }
            }
            let host_rewrite = filters.host_rewrite;
            match &filters.path_rewrite {
                None => {
                    action.url_rewrite = host_rewrite.map(|h| UrlRewrite { host_rewrite: Some(h), ..Default::default() });
                    vec![rule(all_matches, Some(action), None)]
                }
                Some(m) => halves(m, true)?
                    .into_iter()
                    .map(|(matches, new_path)| {
                        let url_rewrite = Some(new_path.rewrite(host_rewrite.clone()));
                        rule(matches, Some(RouteAction { url_rewrite, ..action.clone() }), None)
                    })
                    .collect(),
            }
        }
        RuleAction::FixedResponse { status, .. } => {
            vec![rule(all_matches, Some(fixed_response(refs.no_backend, *status)), None)]
        }
        RuleAction::Redirect(rd) => {
            let base = redirect_base(l, rd).map_err(|e| fail(&e))?;
            match &rd.path {
                None => vec![rule(all_matches, None, Some(base))],
                Some(m) => halves(m, false)?
                    .into_iter()
                    .map(|(matches, new_path)| Ok(rule(matches, None, Some(new_path.redirect(base.clone()).map_err(|e| fail(&e))?))))
                    .collect::<Result<_, RenderError>>()?,
            }
        }
    })
}

/// The provider's [`RuleCheck`](cloudgate_translate::capabilities::RuleCheck): whether
/// [`route_rules`] can build `r` on `l`, for what feature names cannot say. Translation runs it
/// per (listener, rule) and leaves a refused rule out of that listener's plan, reporting it on
/// the route (`Accepted=False` / `PartiallyInvalid`, reason `UnsupportedValue`), so one rule
/// never fails the render of the whole Gateway and every other route on it.
///
/// What only the rule and its listener decide:
/// - a redirect's scheme change: `urlRedirect` can keep the scheme or switch http to https
///   (`httpsRedirect`), nothing else, so `http` is fine on an HTTP listener, not on HTTPS;
/// - a rewrite's `ReplaceFullPath` under a `PathPrefix`, written as a path template, which a
///   path containing template operators cannot be;
/// - values the CRD rejects but an apiserver without its validation may store (redirect status
///   codes, `ReplacePrefixMatch` under a regex, malformed timeouts).
///
/// It calls the functions `route_rules` calls for those parts, so the two cannot disagree.
/// Everything else `route_rules` refuses is a capability translation checks first (method
/// matching, regex by flavour, port redirects, filters); render keeps all its errors as the
/// backstop for a plan made without this check.
pub(crate) fn rule_support(l: &ListenerPlan, r: &PlanRule) -> Result<(), String> {
    let path = Path::of(r.matches.path.as_ref());
    match &r.action {
        RuleAction::Redirect(rd) => {
            let base = redirect_base(l, rd)?;
            if let Some(m) = &rd.path {
                for (_, new_path) in path_halves(&path, m, false)? {
                    new_path.redirect(base.clone())?;
                }
            }
        }
        RuleAction::Forward { .. } => {
            // The last URLRewrite wins, as in `Filters::of`.
            let rewrite = r.filters.iter().filter_map(|f| if let Filter::UrlRewrite(rw) = f { Some(rw) } else { None }).last();
            if let Some(m) = rewrite.and_then(|rw| rw.path.as_ref()) {
                path_halves(&path, m, true)?;
            }
            if let Some(req) = r.timeouts.as_ref().and_then(|t| t.request.as_ref()) {
                duration(req).ok_or_else(|| invalid_timeout(req))?;
            }
        }
        RuleAction::FixedResponse { .. } => {}
    }
    Ok(())
}

fn invalid_timeout(t: &str) -> String {
    format!("invalid timeout {t:?}")
}

/// The path a group of match rules leads to.
#[derive(Debug, PartialEq)]
enum NewPath {
    /// The matched path is replaced whole (a redirect's `pathRedirect`, or `pathPrefixRewrite`
    /// under a `fullPathMatch`).
    Whole(String),
    /// The matched prefix is replaced.
    Prefix(String),
    /// The path matched by a `pathTemplateMatch` becomes this literal.
    Template(String),
    /// The path matched by a `regexMatch` becomes this literal.
    Regex(String),
}

impl NewPath {
    fn redirect(self, base: UrlRedirect) -> Result<UrlRedirect, String> {
        match self {
            NewPath::Whole(p) => Ok(UrlRedirect { path_redirect: Some(p), ..base }),
            NewPath::Prefix(p) => Ok(UrlRedirect { prefix_redirect: Some(p), ..base }),
            NewPath::Template(_) | NewPath::Regex(_) => Err("a redirect cannot take its path from a template or regex".into()),
        }
    }

    fn rewrite(self, host_rewrite: Option<String>) -> UrlRewrite {
        let r = UrlRewrite { host_rewrite, ..Default::default() };
        match self {
            NewPath::Whole(p) | NewPath::Prefix(p) => UrlRewrite { path_prefix_rewrite: Some(p), ..r },
            NewPath::Template(p) => UrlRewrite { path_template_rewrite: Some(p), ..r },
            // `.*` matches the whole path, which becomes the literal.
            NewPath::Regex(p) => UrlRewrite {
                regex_rewrite: Some(RegexRewrite { path_pattern: ".*".into(), path_substitution: p }),
                ..r
            },
        }
    }
}

/// Characters with a meaning in path templates; a literal path containing one cannot be
/// written as a template or a template rewrite.
const TEMPLATE_OPERATORS: &[char] = &['*', '{', '}', '='];

/// Which requests a group of route rules' match rules selects.
#[derive(Debug, PartialEq)]
enum Selects {
    /// What the plan rule's own path match selects.
    All,
    /// `fullPathMatch` of this path.
    Full(String),
    /// `prefixMatch` of this string prefix.
    Prefix(String),
    /// `pathTemplateMatch` of this template.
    Template(String),
}

/// The route rules' match groups for a path modifier, and what each group's path becomes.
/// Gateway API replaces a prefix element-wise (`/foo` -> `/new`, `/foo/x` -> `/new/x`), so a
/// `PathPrefix` becomes the exact path and the `/`-terminated prefix, each with its own
/// replacement. `rewrite`: for a URLRewrite (a redirect's `pathRedirect` replaces the whole
/// path whatever matched; a rewrite's `pathPrefixRewrite` only the matched part).
fn path_halves(path: &Path, m: &PathModifier, rewrite: bool) -> Result<Vec<(Selects, NewPath)>, String> {
    let exact = |t: &str| if t.is_empty() { "/".to_string() } else { t.to_string() };
    Ok(match (m, path) {
        (PathModifier::ReplacePrefixMatch(repl), Path::Prefix(t)) => {
            // Replacement "" or "/": /foo -> /, /foo/x -> /x.
            let repl = repl.trim_end_matches('/');
            vec![
                (Selects::Full(exact(t)), NewPath::Whole(exact(repl))),
                (Selects::Prefix(format!("{t}/")), NewPath::Prefix(format!("{repl}/"))),
            ]
        }
        // The whole path is the matched prefix.
        (PathModifier::ReplacePrefixMatch(repl), Path::Exact(_)) => vec![(Selects::All, NewPath::Whole(exact(repl.trim_end_matches('/'))))],
        (PathModifier::ReplacePrefixMatch(_), Path::Regex(_)) => return Err("ReplacePrefixMatch needs a PathPrefix match".into()),
        (PathModifier::ReplaceFullPath(p), _) if !rewrite => vec![(Selects::All, NewPath::Whole(p.clone()))],
        (PathModifier::ReplaceFullPath(p), Path::Exact(_)) => vec![(Selects::All, NewPath::Whole(p.clone()))],
        (PathModifier::ReplaceFullPath(p), Path::Regex(_)) => vec![(Selects::All, NewPath::Regex(p.clone()))],
        (PathModifier::ReplaceFullPath(p), Path::Prefix(t)) => {
            if t.contains(TEMPLATE_OPERATORS) || p.contains(TEMPLATE_OPERATORS) {
                return Err(format!("ReplaceFullPath {p:?} under PathPrefix {:?}: a path with any of {TEMPLATE_OPERATORS:?} cannot be written as a path template", exact(t)));
            }
            vec![
                (Selects::Full(exact(t)), NewPath::Whole(p.clone())),
                (Selects::Template(format!("{t}/{{path=**}}")), NewPath::Template(p.clone())),
            ]
        }
    })
}

enum Path {
    Exact(String),
    /// Without trailing '/'; empty for "/".
    Prefix(String),
    Regex(String),
}

impl Path {
    fn of(p: Option<&PathMatch>) -> Self {
        match p {
            None => Path::Prefix(String::new()),
            Some(PathMatch::Exact(v)) => Path::Exact(v.clone()),
            // "/foo/" and "/foo" are the same prefix to the spec (element-wise matching).
            Some(PathMatch::PathPrefix(v)) => Path::Prefix(v.trim_end_matches('/').to_string()),
            Some(PathMatch::RegularExpression(v)) => Path::Regex(v.clone()),
        }
    }
}

fn split_value(t: MatchType, v: &str) -> (Option<String>, Option<String>) {
    match t {
        MatchType::Exact => (Some(v.to_string()), None),
        MatchType::RegularExpression => (None, Some(v.to_string())),
    }
}

fn describe(r: &PlanRule) -> String {
    let mut s = format!("{} rule {}", r.route, r.rule_index);
    if let Some(n) = &r.rule_name {
        s.push_str(&format!(" ({n})"));
    }
    if let Some(m) = r.match_index {
        s.push_str(&format!(" match {m}"));
    }
    s
}

/// What a rule's filters become.
struct Filters {
    header_action: Option<HeaderAction>,
    host_rewrite: Option<String>,
    path_rewrite: Option<PathModifier>,
    mirror: Option<RequestMirrorPolicy>,
}

impl Filters {
    fn of(r: &PlanRule, refs: &Refs<'_>) -> Result<Self, String> {
        let mut ha = HeaderAction::default();
        let mut host_rewrite = None;
        let mut path_rewrite = None;
        let mut mirror = None;
        let mut mirrors = 0;
        for f in &r.filters {
            match f {
                Filter::RequestHeaderModifier(m) => {
                    let (add, remove) = header_ops(m);
                    ha.request_headers_to_add.extend(add);
                    ha.request_headers_to_remove.extend(remove);
                }
                Filter::ResponseHeaderModifier(m) => {
                    let (add, remove) = header_ops(m);
                    ha.response_headers_to_add.extend(add);
                    ha.response_headers_to_remove.extend(remove);
                }
                Filter::UrlRewrite(rw) => {
                    host_rewrite = rw.hostname.clone();
                    path_rewrite = rw.path.clone();
                }
                Filter::RequestMirror { backend, percent } => {
                    mirrors += 1;
                    if mirrors > 1 {
                        return Err("only one RequestMirror per rule is supported".into());
                    }
                    let ns = backend.namespace.clone().unwrap_or_else(|| r.route.namespace.clone());
                    let id = BackendId::new(&ObjKey::new(ns, &backend.name), backend.port.unwrap_or(0));
                    // A mirror backend that did not resolve is absent from the plan; the route
                    // already says so (ResolvedRefs=False), and the rule still forwards.
                    mirror = refs.backend_services.get(&id).map(|bs| RequestMirrorPolicy {
                        backend_service: bs.clone(),
                        mirror_percent: percent.filter(|p| *p < 100),
                    });
                }
                other => return Err(format!("{} filter is not supported", other.type_name())),
            }
        }
        Ok(Filters { header_action: Some(ha), host_rewrite, path_rewrite, mirror })
    }
}

/// `set` replaces, `add` appends, `remove` removes.
fn header_ops(m: &HeaderModifier) -> (Vec<HeaderOption>, Vec<String>) {
    let opt = |(n, v): &(String, String), replace| HeaderOption { header_name: n.clone(), header_value: v.clone(), replace };
    let add = m.set.iter().map(|p| opt(p, true)).chain(m.add.iter().map(|p| opt(p, false))).collect();
    (add, m.remove.clone())
}

/// Weighted backend services, weights scaled into 0..=1000. Two refs to the same backend with
/// the same filters are one entry with the summed weight (a URL map names each backend
/// service once per action); zero weights stay, so it stays visible which backend gets none.
fn weighted(backends: &[WeightedBackend], refs: &Refs<'_>) -> Result<Vec<WeightedBackendService>, String> {
    let mut merged: Vec<(&WeightedBackend, u32)> = Vec::new();
    for b in backends {
        match merged.iter_mut().find(|(m, _)| m.backend == b.backend && m.filters == b.filters) {
            Some((_, w)) => *w = w.saturating_add(b.weight),
            None => merged.push((b, b.weight)),
        }
    }
    let raw: Vec<u32> = merged.iter().map(|(_, w)| *w).collect();
    let scaled = weights::normalize(&raw, MAX_WEIGHT);
    merged
        .iter()
        .zip(scaled)
        .map(|((b, _), weight)| {
            let bs = refs.backend_services.get(&b.backend).ok_or_else(|| format!("backend {} missing from the plan", b.backend))?;
            let mut ha = HeaderAction::default();
            for f in &b.filters {
                match f {
                    Filter::RequestHeaderModifier(m) => {
                        let (add, remove) = header_ops(m);
                        ha.request_headers_to_add.extend(add);
                        ha.request_headers_to_remove.extend(remove);
                    }
                    other => return Err(format!("backendRef {} filter is not supported", other.type_name())),
                }
            }
            Ok(WeightedBackendService { backend_service: bs.clone(), weight, header_action: (!ha.is_empty()).then_some(ha) })
        })
        .collect()
}

/// Scheme, host and status of a redirect (the path is added per route rule).
fn redirect_base(l: &ListenerPlan, rd: &Redirect) -> Result<UrlRedirect, String> {
    if rd.port.is_some() {
        return Err("redirect ports cannot be expressed (urlRedirect has no port)".into());
    }
    // `httpsRedirect` switches to https (and its port); leaving it out keeps the request's
    // scheme. Compute forbids it on HTTPS proxies, where https is the scheme already; going
    // from https to http has no field at all.
    let https_redirect = match (rd.scheme.as_deref(), &l.protocol) {
        (None, _) | (Some("http"), Protocol::Http) | (Some("https"), Protocol::Https) => None,
        (Some("https"), Protocol::Http) => Some(true),
        (Some(s), p) => {
            return Err(format!(
                "a redirect to scheme {s} from an {} listener cannot be expressed (a URL map redirect keeps the scheme or switches http to https)",
                p.as_str()
            ))
        }
    };
    let redirect_response_code = match rd.status_code {
        // Gateway API's default is 302; Compute's is 301, so it is always written.
        None | Some(302) => "FOUND",
        Some(301) => "MOVED_PERMANENTLY_DEFAULT",
        Some(303) => "SEE_OTHER",
        Some(307) => "TEMPORARY_REDIRECT",
        Some(308) => "PERMANENT_REDIRECT",
        Some(c) => return Err(format!("redirect status {c} cannot be expressed")),
    };
    Ok(UrlRedirect {
        host_redirect: rd.hostname.clone(),
        path_redirect: None,
        prefix_redirect: None,
        https_redirect,
        redirect_response_code,
    })
}

/// Gateway API duration (`1h30m`, `500ms`, up to four number+unit pairs) as a Compute
/// Duration. Zero means "no timeout"; implementations that cannot disable it must use their
/// longest, so it becomes the largest backend timeout the managed ALBs document
/// (2,147,483,647 s).
pub(crate) fn duration(s: &str) -> Option<Duration> {
    let mut millis: u64 = 0;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 5 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        millis += n * unit;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return None;
    }
    if millis == 0 {
        return Some(Duration { seconds: i32::MAX.to_string(), nanos: 0 });
    }
    Some(Duration { seconds: (millis / 1000).to_string(), nanos: ((millis % 1000) * 1_000_000) as i32 })
}

/// Does a rule for `rule_host` (None: any host) apply to requests the host rule `host`
/// selects? Exact hosts cover themselves; `*.a.com` covers `x.a.com`, `x.y.a.com` and
/// `*.x.a.com`.
pub(crate) fn covers(rule_host: Option<&str>, host: &str) -> bool {
    match rule_host {
        None => true,
        Some(p) if p == host => true,
        Some(p) => match p.strip_prefix('*') {
            None => false,
            Some(suffix) => {
                let body = host.strip_prefix('*').unwrap_or(host);
                body.len() > suffix.len() && body.ends_with(suffix)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("10s"), Some(Duration { seconds: "10".into(), nanos: 0 }));
        assert_eq!(duration("1m500ms"), Some(Duration { seconds: "60".into(), nanos: 500_000_000 }));
        assert_eq!(duration("1h"), Some(Duration { seconds: "3600".into(), nanos: 0 }));
        assert_eq!(duration("0s"), Some(Duration { seconds: "2147483647".into(), nanos: 0 }));
        assert_eq!(duration(""), None);
        assert_eq!(duration("10"), None);
        assert_eq!(duration("1d"), None);
    }

    #[test]
    fn host_coverage() {
        assert!(covers(None, "*"));
        assert!(covers(Some("a.com"), "a.com"));
        assert!(!covers(Some("a.com"), "b.a.com"));
        assert!(covers(Some("*.a.com"), "x.a.com"));
        assert!(covers(Some("*.a.com"), "x.y.a.com"));
        assert!(covers(Some("*.a.com"), "*.x.a.com"));
        assert!(covers(Some("*.a.com"), "*.a.com"));
        assert!(!covers(Some("*.a.com"), "a.com"));
        assert!(!covers(Some("*.x.a.com"), "*.a.com"));
    }
}
