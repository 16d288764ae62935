//! Shared helpers for the ground checks: endpoints from the environment (never a silent skip),
//! unique names, and bounded polling.
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// The value of an environment variable the ground's `*.env` files set. Panics when it is
/// missing: a check that cannot reach the ground must fail, not pass by skipping.
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: run via tests/run (or source STATE_DIR/*.env)"),
    }
}

/// A short name that no other run or concurrent test uses: `prefix-<pid><nanos><counter>` in
/// lowercase hex (fixed widths for the first two), valid for Kubernetes, Lattice, ELBv2 and GCE.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{:04x}{:05x}{:x}",
        std::process::id() & 0xffff,
        nanos & 0xfffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` every `every` until it returns `Ok`, or panics after `timeout` naming `what`
/// and the last observation.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Installs rustls' ring provider as the process default (the Google clients are built without
/// a default provider, see the workspace Cargo.toml). Safe to call from every test.
pub fn init_crypto() {
    // Tests in one binary race to install it; losing that race is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// GETs a JSON document from a ground's own API (`/_ground/calls`, `/_ground/info`).
pub async fn ground_get(base: &str, path_and_query: &str) -> serde_json::Value {
    init_crypto();
    let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
    let resp = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn unique_names_are_distinct_and_valid_everywhere() {
        let names: Vec<String> = (0..1000).map(|_| unique("gc")).collect();
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        for n in &names {
            // RFC 1123 label (Kubernetes namespaces), GCE `[a-z]([-a-z0-9]*[a-z0-9])?`, Lattice
            // (no "--", no trailing "-"), and short enough for an ALB name with a suffix.
            assert!(n.len() <= 20, "{n}");
            assert!(n.starts_with(|c: char| c.is_ascii_lowercase()), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.ends_with('-') && !n.contains("--"), "{n}");
        }
    }

    #[test]
    #[should_panic(expected = "run via tests/run (or source STATE_DIR/*.env)")]
    fn missing_endpoint_panics_with_the_way_to_run() {
        super::env("CLOUDGATE_GROUND_CHECKS_SURELY_UNSET");
    }
}
