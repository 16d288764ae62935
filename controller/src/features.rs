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
}
