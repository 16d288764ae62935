//! Hostname matching between listeners and routes (Gateway API "hostname intersection").
//!
//! A wildcard `*.example.com` matches one or more DNS labels to the left, so it matches
//! `a.example.com` and `a.b.example.com` but not `example.com`.

/// Does wildcard-or-exact `pattern` match the (possibly wildcard) `host`?
/// For two wildcards, `pattern` matches when `host` is at least as specific.
fn covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        None => pattern.eq_ignore_ascii_case(host),
        Some(suffix) => {
            // suffix starts with '.', e.g. ".example.com"
            let host_body = host.strip_prefix('*').unwrap_or(host);
            host_body.len() > suffix.len() && ends_with_ignore_case(host_body, suffix)
                || (host.starts_with('*') && host_body.eq_ignore_ascii_case(suffix))
        }
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The hostname a request must carry to reach both the listener and the route, if any.
/// `None` for one side means "any hostname".
pub fn intersect(listener: Option<&str>, route: &str) -> Option<String> {
    let Some(l) = listener else { return Some(route.to_ascii_lowercase()) };
    if covers(l, route) {
        Some(route.to_ascii_lowercase())
    } else if covers(route, l) {
        Some(l.to_ascii_lowercase())
    } else {
        None
    }
}

/// Effective hostnames for a route attached through a listener.
/// `Ok(None)`: any hostname. `Ok(Some(list))`: these hostnames. `Err(())`: no intersection
/// (`NoMatchingListenerHostname`).
pub fn effective(listener: Option<&str>, route_hostnames: &[String]) -> Result<Option<Vec<String>>, ()> {
    if route_hostnames.is_empty() {
        return Ok(listener.map(|l| vec![l.to_ascii_lowercase()]));
    }
    let mut out: Vec<String> = route_hostnames.iter().filter_map(|r| intersect(listener, r)).collect();
    out.sort();
    out.dedup();
    if out.is_empty() { Err(()) } else { Ok(Some(out)) }
}

/// Hostname precedence key: exact hostnames before wildcards, longer (more labels) before
/// shorter, and a rule with no hostname last. Smaller sorts first.
pub fn precedence_key(host: Option<&str>) -> (u8, std::cmp::Reverse<usize>) {
    match host {
        None => (2, std::cmp::Reverse(0)),
        Some(h) if h.starts_with('*') => (1, std::cmp::Reverse(h.len())),
        Some(h) => (0, std::cmp::Reverse(h.len())),
    }
}

/// RFC 1123 subdomain, optionally with a single leading `*.` label (what the CRD allows).
pub fn is_valid(h: &str) -> bool {
    let body = h.strip_prefix("*.").unwrap_or(h);
    !body.is_empty()
        && h.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcards() {
        assert_eq!(intersect(Some("foo.example.com"), "foo.example.com").as_deref(), Some("foo.example.com"));
        assert_eq!(intersect(Some("foo.example.com"), "bar.example.com"), None);
        assert_eq!(intersect(Some("*.example.com"), "foo.example.com").as_deref(), Some("foo.example.com"));
        assert_eq!(intersect(Some("*.example.com"), "a.b.example.com").as_deref(), Some("a.b.example.com"));
        assert_eq!(intersect(Some("*.example.com"), "example.com"), None);
        assert_eq!(intersect(Some("foo.example.com"), "*.example.com").as_deref(), Some("foo.example.com"));
        assert_eq!(intersect(Some("*.example.com"), "*.foo.example.com").as_deref(), Some("*.foo.example.com"));
        assert_eq!(intersect(Some("*.foo.example.com"), "*.example.com").as_deref(), Some("*.foo.example.com"));
        assert_eq!(intersect(Some("*.example.com"), "*.example.com").as_deref(), Some("*.example.com"));
        assert_eq!(intersect(Some("*.example.com"), "*.example.net"), None);
        assert_eq!(intersect(None, "Foo.Example.com").as_deref(), Some("foo.example.com"));
    }

    #[test]
    fn effective_hostnames() {
        assert_eq!(effective(None, &[]), Ok(None));
        assert_eq!(effective(Some("a.com"), &[]), Ok(Some(vec!["a.com".into()])));
        assert_eq!(effective(Some("*.a.com"), &["x.a.com".into(), "y.b.com".into()]), Ok(Some(vec!["x.a.com".into()])));
        assert_eq!(effective(Some("*.a.com"), &["y.b.com".into()]), Err(()));
    }

    #[test]
    fn validity() {
        assert!(is_valid("foo.example.com"));
        assert!(is_valid("*.example.com"));
        assert!(!is_valid("*"));
        assert!(!is_valid("foo..com"));
        assert!(!is_valid("Foo.com"));
        assert!(!is_valid("-a.com"));
    }

    #[test]
    fn precedence_orders_exact_then_wildcards_then_none() {
        let mut v = vec![None, Some("*.example.com"), Some("a.example.com"), Some("*.a.example.com")];
        v.sort_by_key(|h| precedence_key(*h));
        assert_eq!(v, vec![Some("a.example.com"), Some("*.a.example.com"), Some("*.example.com"), None]);
    }
}
