//! Match precedence (Gateway API v1.5.1, HTTPRoute/GRPCRoute rules), across every route on a
//! listener:
//!
//! 1. hostname: exact before wildcard, longer before shorter, none last;
//! 2. path: `Exact` before `RegularExpression` before `PathPrefix`; longer prefixes first;
//! 3. a method match before none;
//! 4. more header matches first;
//! 5. more query parameter matches first;
//! 6. the older route (creationTimestamp);
//! 7. route `namespace/name` alphabetically;
//! 8. rule order, then match order, within a route.
//!
//! Cloud rule priorities are derived from this order, never from list position.

use std::cmp::{Ordering, Reverse};

use crate::hostname;
use crate::model::{PathMatch, RouteMatch};

/// Everything the order depends on, borrowed from one (hostname, match) entry.
pub struct Entry<'a> {
    pub hostname: Option<&'a str>,
    pub matches: &'a RouteMatch,
    /// RFC 3339 creation timestamp, compared as a string (it is fixed-width UTC), `None` last.
    pub created: Option<&'a str>,
    pub namespace: &'a str,
    pub name: &'a str,
    pub rule_index: usize,
    pub match_index: usize,
}

fn path_key(p: Option<&PathMatch>) -> (u8, Reverse<usize>) {
    match p {
        Some(PathMatch::Exact(v)) => (0, Reverse(v.len())),
        Some(PathMatch::RegularExpression(v)) => (1, Reverse(v.len())),
        Some(PathMatch::PathPrefix(v)) => (2, Reverse(prefix_len(v))),
        // No path match is a prefix match on "/".
        None => (2, Reverse(1)),
    }
}

/// "/foo/" and "/foo" are the same prefix to the spec (matching is per path element).
fn prefix_len(v: &str) -> usize {
    if v.len() > 1 { v.trim_end_matches('/').len() } else { v.len() }
}

pub fn compare(a: &Entry<'_>, b: &Entry<'_>) -> Ordering {
    hostname::precedence_key(a.hostname)
        .cmp(&hostname::precedence_key(b.hostname))
        .then_with(|| path_key(a.matches.path.as_ref()).cmp(&path_key(b.matches.path.as_ref())))
        .then_with(|| b.matches.method.is_some().cmp(&a.matches.method.is_some()))
        .then_with(|| b.matches.headers.len().cmp(&a.matches.headers.len()))
        .then_with(|| b.matches.query_params.len().cmp(&a.matches.query_params.len()))
        .then_with(|| match (a.created, b.created) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| (a.namespace, a.name).cmp(&(b.namespace, b.name)))
        .then_with(|| (a.rule_index, a.match_index).cmp(&(b.rule_index, b.match_index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MatchType, ValueMatch};

    fn m(path: Option<PathMatch>, method: bool, headers: usize, queries: usize) -> RouteMatch {
        let vm = |i| ValueMatch { name: format!("h{i}"), value: "v".into(), match_type: MatchType::Exact };
        RouteMatch {
            path,
            method: method.then(|| "GET".into()),
            headers: (0..headers).map(vm).collect(),
            query_params: (0..queries).map(vm).collect(),
            grpc: None,
        }
    }

    fn e<'a>(mm: &'a RouteMatch, created: &'a str, name: &'a str, rule: usize) -> Entry<'a> {
        Entry { hostname: None, matches: mm, created: Some(created), namespace: "ns", name, rule_index: rule, match_index: 0 }
    }

    #[test]
    fn each_criterion_in_order() {
        let exact = m(Some(PathMatch::Exact("/a".into())), false, 0, 0);
        let long_prefix = m(Some(PathMatch::PathPrefix("/abc/def".into())), false, 0, 0);
        let short_prefix = m(Some(PathMatch::PathPrefix("/abc".into())), false, 0, 0);
        let method = m(Some(PathMatch::PathPrefix("/abc".into())), true, 0, 0);
        let method_header = m(Some(PathMatch::PathPrefix("/abc".into())), true, 1, 0);
        let two_headers = m(Some(PathMatch::PathPrefix("/abc".into())), false, 2, 0);
        let query = m(Some(PathMatch::PathPrefix("/abc".into())), false, 2, 1);
        let t = "2026-01-01T00:00:00Z";
        let mut v = vec![
            e(&short_prefix, t, "r", 0),
            e(&two_headers, t, "r", 1),
            e(&query, t, "r", 2),
            e(&method, t, "r", 3),
            e(&method_header, t, "r", 4),
            e(&long_prefix, t, "r", 5),
            e(&exact, t, "r", 6),
        ];
        v.sort_by(compare);
        let order: Vec<usize> = v.iter().map(|x| x.rule_index).collect();
        // exact, longest prefix, method+header, method, then among "/abc" without method:
        // 2 headers + 1 query beats 2 headers beats nothing.
        assert_eq!(order, vec![6, 5, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn ties_go_to_older_route_then_name_then_rule_order() {
        let same = m(Some(PathMatch::PathPrefix("/".into())), false, 0, 0);
        let mut v = vec![
            e(&same, "2026-01-02T00:00:00Z", "a", 0),
            e(&same, "2026-01-01T00:00:00Z", "z", 1),
            e(&same, "2026-01-01T00:00:00Z", "z", 0),
            e(&same, "2026-01-01T00:00:00Z", "b", 3),
        ];
        v.sort_by(compare);
        let order: Vec<(&str, usize)> = v.iter().map(|x| (x.name, x.rule_index)).collect();
        assert_eq!(order, vec![("b", 3), ("z", 0), ("z", 1), ("a", 0)]);
    }

    #[test]
    fn trailing_slash_does_not_lengthen_a_prefix() {
        assert_eq!(prefix_len("/foo/"), prefix_len("/foo"));
        assert_eq!(prefix_len("/"), 1);
    }
}
