//! `cloudgate crds` prints exactly what is committed under crds/.

use std::path::Path;
use std::process::Command;

#[test]
fn crds_command_output_equals_the_committed_files() {
    let out = Command::new(env!("CARGO_BIN_EXE_cloudgate")).arg("crds").output().expect("run cloudgate crds");
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut committed = String::new();
    let mut files = 0;
    for (name, _) in cloudgate_crds::crd_yamls() {
        committed.push_str(&std::fs::read_to_string(dir.join(&name)).unwrap_or_else(|e| panic!("crds/{name}: {e}")));
        files += 1;
    }
    assert_eq!(files, 5);
    assert_eq!(printed, committed, "`cloudgate crds` differs from crds/*.yaml; run UPDATE_CRDS=1 cargo test -p cloudgate-crds");
    assert!(printed.contains("kind: CustomResourceDefinition"));
}
