//! The provider feature matrix, generated from each provider's declared capabilities so the
//! README can never claim more than the code does (a test compares the two).

use cloudgate_translate::capabilities::{feature, Protocol};

use crate::providers;

/// Rows: (feature or protocol label, how to test a provider for it).
fn rows() -> Vec<(&'static str, Box<dyn Fn(&cloudgate_translate::Capabilities) -> bool>)> {
    let f = |name: &'static str| -> (&'static str, Box<dyn Fn(&cloudgate_translate::Capabilities) -> bool>) {
        (name, Box::new(move |c| c.supports(name)))
    };
    let p = |label: &'static str, proto: Protocol| -> (&'static str, Box<dyn Fn(&cloudgate_translate::Capabilities) -> bool>) {
        (label, Box::new(move |c| c.supports_protocol(&proto)))
    };
    vec![
        p("HTTP listeners", Protocol::Http),
        p("HTTPS listeners (TLS terminate)", Protocol::Https),
        p("TLS listeners", Protocol::Tls),
        p("TCP listeners", Protocol::Tcp),
        f(feature::TLS_PASSTHROUGH),
        f(feature::HTTP_ROUTE),
        f(feature::GRPC_ROUTE),
        f(feature::TLS_ROUTE),
        f(feature::TCP_ROUTE),
        f(feature::REFERENCE_GRANT),
        f(feature::GATEWAY_PORT_8080),
        f(feature::GATEWAY_STATIC_ADDRESSES),
        f(feature::HTTP_ROUTE_PARENT_REF_PORT),
        f(feature::HTTP_ROUTE_NAMED_ROUTE_RULE),
        f(feature::HTTP_ROUTE_METHOD_MATCHING),
        f(feature::HTTP_ROUTE_QUERY_PARAM_MATCHING),
        f(feature::HEADER_REGEX_MATCHING),
        f(feature::PATH_REGEX_MATCHING),
        f(feature::QUERY_REGEX_MATCHING),
        f(feature::REQUEST_REDIRECT),
        f(feature::HTTP_ROUTE_SCHEME_REDIRECT),
        f(feature::HTTP_ROUTE_PORT_REDIRECT),
        f(feature::HTTP_ROUTE_PATH_REDIRECT),
        f(feature::HTTP_ROUTE_303_REDIRECT),
        f(feature::HTTP_ROUTE_307_REDIRECT),
        f(feature::HTTP_ROUTE_308_REDIRECT),
        f(feature::HTTP_ROUTE_HOST_REWRITE),
        f(feature::HTTP_ROUTE_PATH_REWRITE),
        f(feature::REQUEST_HEADER_MODIFICATION),
        f(feature::HTTP_ROUTE_RESPONSE_HEADER_MODIFICATION),
        f(feature::HTTP_ROUTE_BACKEND_REQUEST_HEADER_MODIFICATION),
        f(feature::HTTP_ROUTE_REQUEST_MIRROR),
        f(feature::HTTP_ROUTE_REQUEST_PERCENTAGE_MIRROR),
        f(feature::HTTP_ROUTE_REQUEST_TIMEOUT),
        f(feature::HTTP_ROUTE_BACKEND_TIMEOUT),
        f(feature::HTTP_ROUTE_CORS),
    ]
}

pub fn matrix_markdown() -> String {
    let provs: Vec<_> = providers::NAMES.iter().map(|n| providers::by_name(n).expect("registered provider")).collect();
    let mut out = format!("| feature | {} |\n|---|{}\n", providers::NAMES.join(" | "), "---|".repeat(provs.len()));
    for (label, test) in rows() {
        let label = label.strip_prefix("cloudgate/").unwrap_or(label);
        let cells: Vec<&str> = provs.iter().map(|p| if test(p.capabilities()) { "yes" } else { "no" }).collect();
        out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    let weights: Vec<String> = provs.iter().map(|p| format!("0..{}", p.capabilities().max_weight)).collect();
    out.push_str(&format!("| backend weight range | {} |\n", weights.join(" | ")));
    out
}

#[cfg(test)]
mod tests {
    /// The README's matrix is this function's output, verbatim.
    #[test]
    fn readme_matrix_matches_capabilities() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
        let m = super::matrix_markdown();
        assert!(readme.contains(&m), "README feature matrix is stale; paste the output of `cloudgate features`:\n{m}");
    }

    const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

    /// The meaningful lines of a tests/conformance list: `#` comments and blank lines dropped,
    /// each line split on whitespace.
    fn list(name: &str) -> Vec<Vec<String>> {
        let path = format!("{REPO}/tests/conformance/{name}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .map(|l| l.split('#').next().unwrap_or_default())
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|w| !w.is_empty())
            .collect()
    }

    /// Whether `file` (from the repo root) defines `fn name` with a `#[test]` or
    /// `#[tokio::test...]` attribute on one of the few lines above it.
    fn is_test_fn(file: &str, name: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(format!("{REPO}/{file}")).map_err(|e| format!("{file}: {e}"))?;
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let defines = |l: &str| {
            let l = l.strip_prefix("async ").unwrap_or(l);
            l.strip_prefix("fn ").and_then(|rest| rest.strip_prefix(name)).is_some_and(|rest| rest.starts_with(['(', '<']))
        };
        let at = lines.iter().position(|l| defines(l)).ok_or_else(|| format!("{file} has no fn {name}"))?;
        let attributed = lines[at.saturating_sub(3)..at].iter().any(|l| *l == "#[test]" || l.starts_with("#[tokio::test"));
        if attributed {
            Ok(())
        } else {
            Err(format!("{file}: fn {name} is not a #[test] or #[tokio::test]"))
        }
    }

    /// tests/conformance/feature-evidence.txt names, for every Gateway API feature each
    /// provider's GatewayClass claims, the tests that show the claim holds; those tests exist
    /// and (conformance tests) run for that provider.
    #[test]
    fn every_claimed_feature_has_a_test_behind_it() {
        use std::collections::{BTreeMap, BTreeSet};
        let first = |rows: Vec<Vec<String>>| rows.into_iter().map(|w| w[0].clone()).collect::<BTreeSet<String>>();
        let skipped = first(list("skip.txt"));
        let status_halves = first(list("status-halves.txt"));
        let known_failures: BTreeSet<(String, String)> =
            list("known-failures.txt").into_iter().filter(|w| w.len() >= 2).map(|w| (w[0].clone(), w[1].clone())).collect();
        let claims: BTreeMap<&str, BTreeSet<String>> = super::providers::NAMES
            .iter()
            .map(|n| (*n, super::providers::by_name(n).expect("registered provider").capabilities().supported_features().into_iter().collect()))
            .collect();

        let mut problems = Vec::new();
        let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
        for w in list("feature-evidence.txt") {
            let [provider, feature, tests] = w.as_slice() else {
                problems.push(format!("malformed line (want: provider feature test[,test...]): {}", w.join(" ")));
                continue;
            };
            let Some(claimed) = claims.get(provider.as_str()) else {
                problems.push(format!("{provider} {feature}: unknown provider (known: {:?})", super::providers::NAMES));
                continue;
            };
            if !claimed.contains(feature) {
                problems.push(format!("{provider} {feature}: stale line, {provider} does not claim {feature}"));
            }
            if !covered.insert((provider.clone(), feature.clone())) {
                problems.push(format!("{provider} {feature}: listed twice"));
            }
            for t in tests.split(',') {
                if let Some(short) = t.strip_prefix("conformance:") {
                    if skipped.contains(short) && !status_halves.contains(short) {
                        problems.push(format!("{provider} {feature}: conformance:{short} is in skip.txt and not in status-halves.txt, so it never runs"));
                    }
                    if known_failures.contains(&(provider.clone(), short.to_string())) {
                        problems.push(format!("{provider} {feature}: conformance:{short} is a known failure for {provider}"));
                    }
                } else if let Some((file, name)) = t.split_once("::") {
                    if let Err(e) = is_test_fn(file, name) {
                        problems.push(format!("{provider} {feature}: {e}"));
                    }
                } else {
                    problems.push(format!("{provider} {feature}: {t:?} is neither conformance:<ShortName> nor <path>::<fn>"));
                }
            }
        }
        for (provider, features) in &claims {
            for f in features {
                if !covered.contains(&(provider.to_string(), f.clone())) {
                    problems.push(format!("{provider} claims {f} but tests/conformance/feature-evidence.txt names no test for it"));
                }
            }
        }
        assert!(problems.is_empty(), "tests/conformance/feature-evidence.txt:\n  {}", problems.join("\n  "));
    }
}
