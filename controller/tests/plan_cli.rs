//! `cloudgate plan` end to end: snapshot of what the examples become on each provider, and how
//! bad input is reported.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOW: &str = "2026-01-01T00:00:00Z";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloudgate"))
        .current_dir(root())
        .arg("plan")
        .args(args)
        .args(["--now", NOW])
        .env_remove("CLOUDGATE_PROVIDER")
        .output()
        .expect("run cloudgate")
}

/// Compares with the committed snapshot; `UPDATE_SNAPSHOTS=1` rewrites it (review the diff).
fn snapshot(name: &str, actual: &str) {
    let path = root().join("controller/tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{name} differs from the snapshot at line {} (UPDATE_SNAPSHOTS=1 to accept):\n expected: {}\n actual:   {}",
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>")
        );
    }
}

#[test]
fn examples_snapshot_per_provider() {
    for provider in ["aws-alb", "aws-lattice", "gcp"] {
        let out = plan(&["-f", "examples/", "--provider", provider, "-o", "yaml", "--network", "vpc-0example", "--subnets", "subnet-a,subnet-b"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        snapshot(&format!("examples-{provider}.yaml"), &String::from_utf8(out.stdout).unwrap());
    }
}

#[test]
fn the_invalid_example_shows_the_spec_conditions() {
    let out = plan(&["-f", "examples/invalid", "-o", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = |route: &str, type_: &str| -> String {
        let r = v["routes"].as_array().unwrap().iter().find(|r| r["name"] == route).expect(route);
        let c = r["status"]["parents"][0]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap();
        format!("{}/{}", c["status"].as_str().unwrap(), c["reason"].as_str().unwrap())
    };
    assert_eq!(reason("wrong-host", "Accepted"), "False/NoMatchingListenerHostname");
    assert_eq!(reason("no-grant", "ResolvedRefs"), "False/RefNotPermitted");
    assert_eq!(reason("missing-backend", "ResolvedRefs"), "False/BackendNotFound");
    assert_eq!(reason("wrong-section", "Accepted"), "False/NoMatchingParent");
    assert_eq!(reason("rewrite", "Accepted"), "False/UnsupportedValue");
    let listeners = v["gateways"][0]["status"]["listeners"].as_array().unwrap();
    let conflicted: Vec<&str> = listeners
        .iter()
        .filter(|l| l["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Conflicted" && c["status"] == "True"))
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(conflicted, vec!["web", "web-again"]);
    assert!(v["routes"][0]["status"]["parents"][0]["conditions"][0]["observedGeneration"].is_number());
}

/// A rule the GCP URL map cannot express is refused on its route, naming the rule and the
/// listener, while the Gateway is still rendered (no render error, its resources planned).
#[test]
fn gcp_refuses_an_unbuildable_rule_on_the_route_and_renders_the_gateway() {
    let out = plan(&["-f", "examples/invalid", "--provider", "gcp", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = v["routes"].as_array().unwrap().iter().find(|r| r["name"] == "template-rewrite").unwrap();
    let accepted = &r["status"]["parents"][0]["conditions"][0];
    assert_eq!(
        (accepted["type"].as_str(), accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("Accepted"), Some("False"), Some("UnsupportedValue"))
    );
    let message = accepted["message"].as_str().unwrap();
    assert!(message.starts_with("rule 0 (legacy) on listener admin: ReplaceFullPath"), "{message}");
    let gw = &v["gateways"][0];
    assert!(gw.get("renderError").is_none(), "{}", gw["renderError"]);
    assert!(gw["resources"]["resources"].as_array().unwrap().iter().any(|r| r["key"]["kind"] == "compute:UrlMap"), "{}", gw["resources"]);
}

#[test]
fn unreadable_input_fails_and_bad_objects_are_warnings() {
    let dir = std::env::temp_dir().join(format!("cloudgate-plan-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "kind: [unclosed\n").unwrap();
    let out = plan(&["-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml: document 1: malformed YAML"), "{err}");

    let out = plan(&["-f", dir.join("missing.yaml").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));

    let odd = dir.join("odd.yaml");
    std::fs::write(
        &odd,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {rules: 5}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
    )
    .unwrap();
    let out = plan(&["-f", odd.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("odd.yaml: document 1: Deployment default/d (apps/v1) is not a kind cloudgate reads"), "{text}");
    assert!(text.contains("odd.yaml: document 2: HTTPRoute default/r is invalid"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stdin_is_read_with_dash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudgate"))
        .current_dir(root())
        .args(["plan", "-f", "-", "-o", "json", "--now", NOW])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(std::fs::read(root().join("examples/basic-http/store.yaml")).unwrap().as_slice())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["gateways"][0]["gateway"], "ex-basic/web");
    assert_eq!(v["gateways"][0]["resources"]["resources"].as_array().unwrap().len(), 7);
}
