//! Cloud resource names: a readable prefix plus a stable hash of the full identity. Names are
//! never made unique by truncation alone: two identities that share a long prefix still get
//! different hashes, so they never collide (the failure aws-application-networking-k8s users
//! hit with long namespace/name pairs).

use sha2::{Digest, Sha256};

/// Character rules of a cloud's names.
#[derive(Clone, Copy, Debug)]
pub struct NameRules {
    pub max_len: usize,
    /// GCE names must start with a letter; ALB/Lattice names must not start with a hyphen.
    pub must_start_with_letter: bool,
    /// Lowercase only (GCE, Lattice); ALB allows upper case but we always emit lower.
    pub lowercase: bool,
}

/// ALB and target group names: 32 chars, alphanumerics and hyphens.
pub const ELBV2: NameRules = NameRules { max_len: 32, must_start_with_letter: true, lowercase: true };
/// VPC Lattice names: 3-40 chars (service networks/services), lowercase, digits, hyphens.
pub const LATTICE: NameRules = NameRules { max_len: 40, must_start_with_letter: true, lowercase: true };
/// Lattice target group names: up to 128 chars.
pub const LATTICE_TG: NameRules = NameRules { max_len: 128, must_start_with_letter: true, lowercase: true };
/// Keys of resources that have no cloud-side name (ALB rules, ACM certificates): the key is
/// kept only in the ownership tags, whose values may be 256 chars.
pub const TAG_KEY: NameRules = NameRules { max_len: 128, must_start_with_letter: true, lowercase: true };
/// GCE: `[a-z]([-a-z0-9]*[a-z0-9])?`, 63 chars.
pub const GCE: NameRules = NameRules { max_len: 63, must_start_with_letter: true, lowercase: true };

const HASH_LEN: usize = 10;

/// Hex sha256 of the parts joined with a separator that cannot occur in Kubernetes names.
pub fn stable_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `prefix-readable...-hash`. `identity` is everything that makes the resource unique (e.g.
/// cluster id, namespace, name, listener); `readable` is what a person should recognise.
pub fn cloud_name(rules: NameRules, prefix: &str, readable: &[&str], identity: &[&str]) -> String {
    let hash = &stable_hash(identity)[..HASH_LEN];
    let mut body: String = std::iter::once(prefix)
        .chain(readable.iter().copied())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if rules.lowercase {
        body = body.to_ascii_lowercase();
    }
    let mut body: String = body.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while body.contains("--") {
        body = body.replace("--", "-");
    }
    if rules.must_start_with_letter && !body.starts_with(|c: char| c.is_ascii_alphabetic()) {
        body.insert(0, 'x');
    }
    let room = rules.max_len - HASH_LEN - 1;
    body.truncate(room);
    let body = body.trim_end_matches('-');
    format!("{body}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_sharing_a_prefix_do_not_collide() {
        let ns = "a".repeat(60);
        let n1 = format!("{}-one", "r".repeat(56));
        let n2 = format!("{}-two", "r".repeat(56));
        let a = cloud_name(LATTICE, "cg", &[&ns, &n1], &["c", &ns, &n1]);
        let b = cloud_name(LATTICE, "cg", &[&ns, &n2], &["c", &ns, &n2]);
        assert_ne!(a, b);
        assert!(a.len() <= 40 && b.len() <= 40, "{a} {b}");
    }

    #[test]
    fn names_are_valid_and_stable() {
        let n = cloud_name(GCE, "cg", &["My_NS", "9route"], &["x"]);
        assert_eq!(n, cloud_name(GCE, "cg", &["My_NS", "9route"], &["x"]));
        assert!(n.len() <= 63);
        assert!(n.starts_with("cg-my-ns-9route-"));
        assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        let n = cloud_name(ELBV2, "", &["1abc"], &["x"]);
        assert!(n.starts_with('x'));
        assert!(n.len() <= 32);
    }
}
