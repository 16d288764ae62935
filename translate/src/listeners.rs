//! Listener validation: protocol and port support, allowedRoutes kinds, TLS certificate
//! references, and distinctness (conflicts) across the Gateway's listeners.

use std::collections::BTreeMap;

use gateway_api::experimental::gateways::{Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom, GatewayListenersTlsMode};
use sha2::{Digest, Sha256};

use crate::capabilities::{feature, Capabilities, Protocol};
use crate::conditions::{kind, reason, Cond};
use crate::grants;
use crate::model::{ObjKey, RouteKind, GATEWAY_GROUP};
use crate::plan::{Certificate, TlsMode, TlsPlan};
use crate::selector;
use crate::world::World;

/// What translation decided about one listener.
#[derive(Clone, Debug)]
pub struct ListenerVerdict {
    pub name: String,
    pub port: i32,
    pub protocol: Option<Protocol>,
    pub hostname: Option<String>,
    /// Accepted and not conflicted: routes attach and count.
    pub accepted: bool,
    /// Accepted and every reference resolved: the listener goes into the plan.
    pub programmable: bool,
    pub supported_kinds: Vec<RouteKind>,
    pub tls: Option<TlsPlan>,
    /// Accepted, Conflicted, ResolvedRefs (Programmed is added once the cloud answers).
    pub conditions: Vec<Cond>,
    pub attached_routes: i32,
    /// Allowed-namespace policy (evaluated per route).
    pub namespaces: NamespacePolicy,
}

#[derive(Clone, Debug)]
pub enum NamespacePolicy {
    Same,
    All,
    Selector(selector::LabelSelector),
    /// A selector that cannot be evaluated (bad operator): matches nothing.
    Invalid,
}

impl ListenerVerdict {
    pub fn allows_namespace(&self, world: &World, gateway_ns: &str, route_ns: &str) -> bool {
        match &self.namespaces {
            NamespacePolicy::Same => gateway_ns == route_ns,
            NamespacePolicy::All => true,
            NamespacePolicy::Selector(s) => s.matches(&world.namespace_labels(route_ns)),
            NamespacePolicy::Invalid => false,
        }
    }
}

pub fn validate(world: &World, gw: &Gateway, caps: &Capabilities) -> Vec<ListenerVerdict> {
    let gw_ns = gw.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut out: Vec<ListenerVerdict> = gw.spec.listeners.iter().map(|l| validate_one(world, &gw_ns, l, caps)).collect();
    reject_unreportable_names(&mut out);
    mark_conflicts(&mut out);
    for l in &mut out {
        l.programmable = l.accepted && l.conditions.iter().all(|c| c.type_ != kind::RESOLVED_REFS || c.status);
        if l.protocol == Some(Protocol::Https) && l.tls.as_ref().is_none_or(|t| t.certificates.is_empty()) {
            l.programmable = false;
        }
    }
    out
}

fn validate_one(world: &World, gw_ns: &str, l: &GatewayListeners, caps: &Capabilities) -> ListenerVerdict {
    let protocol = Protocol::parse(&l.protocol);
    let mut accepted = Cond::yes(kind::ACCEPTED, reason::ACCEPTED, "Listener is accepted");
    let mut resolved = Cond::yes(kind::RESOLVED_REFS, reason::RESOLVED_REFS, "All references resolved");
    match &protocol {
        None => {
            accepted = Cond::no(kind::ACCEPTED, reason::UNSUPPORTED_PROTOCOL, format!("Protocol {} is not supported", l.protocol))
        }
        Some(p) if !caps.supports_protocol(p) => {
            accepted = Cond::no(
                kind::ACCEPTED,
                reason::UNSUPPORTED_PROTOCOL,
                format!("Protocol {} is not supported by the {} provider", l.protocol, caps.provider),
            )
        }
        _ if caps.reserved_ports.contains(&l.port) => {
            accepted = Cond::no(
                kind::ACCEPTED,
                reason::PORT_UNAVAILABLE,
                format!("Port {} is reserved by the {} provider", l.port, caps.provider),
            )
        }
        _ => {}
    }

    // supportedKinds: what the listener may carry, narrowed by allowedRoutes.kinds.
    let possible = protocol.as_ref().map(|p| caps.route_kinds_for(p)).unwrap_or_default();
    let requested = l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()).filter(|k| !k.is_empty());
    let mut supported_kinds = match requested {
        None => possible,
        Some(kinds) => {
            let mut valid = Vec::new();
            let mut invalid = Vec::new();
            for k in kinds {
                let group_ok = k.group.as_deref().is_none_or(|g| g == GATEWAY_GROUP);
                match RouteKind::from_kind(&k.kind).filter(|rk| group_ok && possible.contains(rk)) {
                    Some(rk) if !valid.contains(&rk) => valid.push(rk),
                    Some(_) => {}
                    None => invalid.push(k.kind.clone()),
                }
            }
            if !invalid.is_empty() {
                resolved = Cond::no(
                    kind::RESOLVED_REFS,
                    reason::INVALID_ROUTE_KINDS,
                    format!("Route kinds not supported on a {} listener: {}", l.protocol, invalid.join(", ")),
                );
            }
            valid
        }
    };

    let namespaces = match l.allowed_routes.as_ref().and_then(|a| a.namespaces.as_ref()) {
        None => NamespacePolicy::Same,
        Some(n) => match n.from {
            Some(GatewayListenersAllowedRoutesNamespacesFrom::All) => NamespacePolicy::All,
            Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector) => {
                let sel = n.selector.as_ref().map(|s| {
                    selector::LabelSelector::parse(
                        s.match_labels.clone().unwrap_or_default(),
                        s.match_expressions
                            .iter()
                            .flatten()
                            .map(|e| (e.key.clone(), e.operator.clone(), e.values.clone().unwrap_or_default())),
                    )
                });
                match sel {
                    Some(Ok(s)) => NamespacePolicy::Selector(s),
                    _ => NamespacePolicy::Invalid,
                }
            }
            _ => NamespacePolicy::Same,
        },
    };

    // TLS
    let mut tls = None;
    if matches!(protocol, Some(Protocol::Https) | Some(Protocol::Tls)) && accepted.status {
        let mode = match l.tls.as_ref().and_then(|t| t.mode.as_ref()) {
            Some(GatewayListenersTlsMode::Passthrough) => TlsMode::Passthrough,
            _ => TlsMode::Terminate,
        };
        if protocol == Some(Protocol::Tls) && mode == TlsMode::Terminate && !caps.supports(crate::capabilities::feature::TLS_ROUTE_MODE_TERMINATE) {
            accepted = Cond::no(
                kind::ACCEPTED,
                reason::UNSUPPORTED_VALUE,
                format!("TLS mode Terminate on a TLS listener is not supported by the {} provider", caps.provider),
            );
            // No route kind can attach to a listener mode the provider lacks.
            supported_kinds.clear();
        } else if protocol == Some(Protocol::Tls) && mode == TlsMode::Passthrough && !caps.supports(feature::TLS_PASSTHROUGH) {
            accepted = Cond::no(
                kind::ACCEPTED,
                reason::UNSUPPORTED_VALUE,
                format!("TLS passthrough is not supported by the {} provider", caps.provider),
            );
            supported_kinds.clear();
        }
        let mut certificates = Vec::new();
        if mode == TlsMode::Terminate {
            let refs = l.tls.as_ref().and_then(|t| t.certificate_refs.as_ref()).cloned().unwrap_or_default();
            let mut problems: Vec<(&'static str, String)> = Vec::new();
            if refs.is_empty() {
                problems.push((reason::INVALID_CERTIFICATE_REF, "TLS mode Terminate needs at least one certificateRef".into()));
            }
            for r in &refs {
                match resolve_certificate(world, gw_ns, r.group.as_deref(), r.kind.as_deref(), r.namespace.as_deref(), &r.name) {
                    Ok(c) => certificates.push(c),
                    Err(p) => problems.push(p),
                }
            }
            if let Some((first_reason, _)) = problems.first() {
                // RefNotPermitted wins over InvalidCertificateRef when both occur, so the
                // fix the user needs (a ReferenceGrant) is named.
                let reason = if problems.iter().any(|(r, _)| *r == reason::REF_NOT_PERMITTED) { reason::REF_NOT_PERMITTED } else { first_reason };
                let msg = problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
                resolved = Cond::no(kind::RESOLVED_REFS, reason, msg);
            }
        }
        tls = Some(TlsPlan { mode, certificates });
    }

    let hostname = match protocol {
        Some(Protocol::Tcp) | Some(Protocol::Udp) => None,
        _ => l.hostname.clone(),
    };
    let is_accepted = accepted.status;
    ListenerVerdict {
        name: l.name.clone(),
        port: l.port,
        protocol,
        hostname,
        accepted: is_accepted,
        programmable: false,
        supported_kinds,
        tls,
        conditions: vec![accepted, Cond::no(kind::CONFLICTED, reason::NO_CONFLICTS, "No conflicts"), resolved],
        attached_routes: 0,
        namespaces,
    }
}

fn resolve_certificate(
    world: &World,
    gw_ns: &str,
    group: Option<&str>,
    kind_: Option<&str>,
    ns: Option<&str>,
    name: &str,
) -> Result<Certificate, (&'static str, String)> {
    let group = group.unwrap_or("");
    let kind_ = kind_.unwrap_or("Secret");
    if !(group.is_empty() || group == "core") || kind_ != "Secret" {
        return Err((reason::INVALID_CERTIFICATE_REF, format!("certificateRef {name}: kind {kind_}.{group} is not supported; only core Secret")));
    }
    let ns = ns.unwrap_or(gw_ns);
    let ok = grants::permitted(
        world,
        &grants::From { group: GATEWAY_GROUP, kind: "Gateway", namespace: gw_ns },
        &grants::To { group: "", kind: "Secret", namespace: ns, name },
    );
    if !ok {
        return Err((reason::REF_NOT_PERMITTED, format!("certificateRef {ns}/{name} is in another namespace and no ReferenceGrant there allows it")));
    }
    let key = ObjKey::new(ns, name);
    let Some(secret) = world.secrets.get(&key) else {
        return Err((reason::INVALID_CERTIFICATE_REF, format!("Secret {key} not found")));
    };
    let data = secret.data.as_ref();
    let crt = data.and_then(|d| d.get("tls.crt")).map(|b| b.0.clone()).unwrap_or_default();
    let key_bytes = data.and_then(|d| d.get("tls.key")).map(|b| b.0.clone()).unwrap_or_default();
    let cert_pem = String::from_utf8(crt).unwrap_or_default();
    let key_pem = String::from_utf8(key_bytes).unwrap_or_default();
    if !cert_pem.contains("-----BEGIN CERTIFICATE-----") || !key_pem.contains("PRIVATE KEY-----") {
        return Err((reason::INVALID_CERTIFICATE_REF, format!("Secret {key} has no PEM certificate in tls.crt and private key in tls.key")));
    }
    let mut h = Sha256::new();
    h.update(cert_pem.as_bytes());
    h.update([0u8]);
    h.update(key_pem.as_bytes());
    let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Certificate { secret: key, sha256, cert_pem, key_pem })
}

/// The most listener statuses a Gateway can have (the CRD's maxItems for `status.listeners`).
pub const MAX_LISTENER_STATUSES: usize = 64;

/// A listener name the CRD accepts (SectionName: an RFC 1123 subdomain, at most 253 bytes).
/// `status.listeners` is a map keyed by this name, so only such names can carry a status.
pub fn valid_section_name(name: &str) -> bool {
    !name.starts_with("*.") && crate::hostname::is_valid(name)
}

/// The CRD rejects listeners with invalid or repeated names, and more than 64 of them; an
/// apiserver without that validation may still store such a Gateway. Their status could not be
/// written (the apiserver would reject the whole Gateway status), and for a repeated name there
/// is no telling which listener a status is for, so none of them is accepted: the Gateway says
/// `ListenersNotValid` and names them, and the valid listeners keep working.
fn reject_unreportable_names(ls: &mut [ListenerVerdict]) {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in ls.iter() {
        *count.entry(l.name.as_str()).or_default() += 1;
    }
    let problems: Vec<Option<String>> = ls
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if !valid_section_name(&l.name) {
                Some(format!("Listener name {:?} is not a valid section name (RFC 1123 subdomain)", l.name))
            } else if count[l.name.as_str()] > 1 {
                Some(format!("Listener name {} is used by {} listeners; names must be unique", l.name, count[l.name.as_str()]))
            } else if i >= MAX_LISTENER_STATUSES {
                Some(format!("A Gateway has at most {MAX_LISTENER_STATUSES} listeners; this is number {}", i + 1))
            } else {
                None
            }
        })
        .collect();
    for (l, problem) in ls.iter_mut().zip(problems) {
        let Some(msg) = problem else { continue };
        l.accepted = false;
        for c in l.conditions.iter_mut().filter(|c| c.type_ == kind::ACCEPTED) {
            *c = Cond::no(kind::ACCEPTED, reason::UNSUPPORTED_VALUE, msg.clone());
        }
    }
}

/// Listeners must be distinct. Our cloud load balancers bind one protocol per port, so
/// listeners sharing a port with different protocols conflict (`ProtocolConflict`); listeners
/// sharing port, protocol and hostname conflict (`HostnameConflict`; for TCP/UDP, which have no
/// hostname, `ProtocolConflict`). Every listener in a conflict is rejected: the spec forbids
/// picking a winner.
fn mark_conflicts(ls: &mut [ListenerVerdict]) {
    let mut by_port: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, l) in ls.iter().enumerate() {
        if l.accepted {
            by_port.entry(l.port).or_default().push(i);
        }
    }
    let mut conflicts: BTreeMap<usize, (&'static str, String)> = BTreeMap::new();
    for (port, idx) in &by_port {
        let protocols: std::collections::BTreeSet<_> = idx.iter().filter_map(|&i| ls[i].protocol.clone()).collect();
        if protocols.len() > 1 {
            let names: Vec<_> = idx.iter().map(|&i| ls[i].name.as_str()).collect();
            for &i in idx {
                conflicts.insert(
                    i,
                    (reason::PROTOCOL_CONFLICT, format!("Listeners {} share port {port} with different protocols", names.join(", "))),
                );
            }
            continue;
        }
        for (a_pos, &a) in idx.iter().enumerate() {
            for &b in &idx[a_pos + 1..] {
                let tcp_like = matches!(ls[a].protocol, Some(Protocol::Tcp) | Some(Protocol::Udp));
                if tcp_like || ls[a].hostname == ls[b].hostname {
                    let (r, what) = if tcp_like {
                        (reason::PROTOCOL_CONFLICT, format!("port {port}"))
                    } else {
                        (reason::HOSTNAME_CONFLICT, format!("port {port} and hostname {}", ls[a].hostname.as_deref().unwrap_or("(none)")))
                    };
                    let msg = format!("Listeners {} and {} share {what}", ls[a].name, ls[b].name);
                    conflicts.insert(a, (r, msg.clone()));
                    conflicts.insert(b, (r, msg));
                }
            }
        }
    }
    for (i, (r, msg)) in conflicts {
        let l = &mut ls[i];
        l.accepted = false;
        for c in &mut l.conditions {
            if c.type_ == kind::CONFLICTED {
                *c = Cond::yes(kind::CONFLICTED, r, msg.clone());
            } else if c.type_ == kind::ACCEPTED {
                *c = Cond::no(kind::ACCEPTED, r, format!("Listener is conflicted: {msg}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Capabilities;
    use crate::manifest::{load_str, Loaded};
    use crate::status::{gateway_status, Provisioning};

    fn gateway(listeners: &str) -> (World, Gateway) {
        let mut w = World::new();
        let yaml = format!("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: ns}}\nspec:\n  gatewayClassName: cg\n  listeners:\n{listeners}");
        load_str("t", &yaml, &mut w, &mut Loaded::default()).unwrap();
        let gw = (*w.gateways.values().next().unwrap().clone()).clone();
        (w, gw)
    }

    fn caps() -> Capabilities {
        Capabilities {
            provider: "test",
            protocols: [Protocol::Http].into_iter().collect(),
            features: Default::default(),
            max_weight: 100,
            reserved_ports: Default::default(),
            max_backends_per_rule: 5,
            rule_check: None,
        }
    }

    // Found by the fuzzer (controller/src/fuzz_tests.rs): listener names the CRD would reject
    // produced listener statuses the apiserver rejects, failing the whole Gateway status write.
    #[test]
    fn invalid_and_repeated_listener_names_are_rejected_and_not_reported() {
        let (w, gw) = gateway(
            "  - {name: '', protocol: HTTP, port: 80}\n  - {name: Bad_Name, protocol: HTTP, port: 81}\n  - {name: dup, protocol: HTTP, port: 82}\n  - {name: dup, protocol: HTTP, port: 83}\n  - {name: ok, protocol: HTTP, port: 84}\n",
        );
        let ls = validate(&w, &gw, &caps());
        let accepted: Vec<(&str, bool, &str)> = ls.iter().map(|l| (l.name.as_str(), l.accepted, l.conditions[0].reason)).collect();
        assert_eq!(
            accepted,
            vec![("", false, "UnsupportedValue"), ("Bad_Name", false, "UnsupportedValue"), ("dup", false, "UnsupportedValue"), ("dup", false, "UnsupportedValue"), ("ok", true, "Accepted")]
        );
        let t = crate::translate_gateway(&w, &ObjKey::new("ns", "gw"), &caps()).unwrap();
        assert_eq!(t.gateway.accepted.reason, reason::LISTENERS_NOT_VALID);
        assert_eq!(t.plan.listeners.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), vec!["ok"]);
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap());
        let st = gateway_status(&t.gateway, &Provisioning::Pending("p".into()), None, &now);
        let names: Vec<String> = st.listeners.unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, vec!["dup", "ok"], "one status per valid name");
    }

    // Found by the fuzzer: more listeners than status.listeners can hold.
    #[test]
    fn listeners_past_the_64th_are_rejected_and_status_holds_64() {
        let many: String = (0..66).map(|i| format!("  - {{name: l{i}, protocol: HTTP, port: {}}}\n", 1000 + i)).collect();
        let (w, _) = gateway(&many);
        let t = crate::translate_gateway(&w, &ObjKey::new("ns", "gw"), &caps()).unwrap();
        assert_eq!(t.plan.listeners.len(), 64);
        assert!(!t.gateway.listeners[64].accepted && !t.gateway.listeners[65].accepted);
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap());
        let st = gateway_status(&t.gateway, &Provisioning::Pending("p".into()), None, &now);
        assert_eq!(st.listeners.unwrap().len(), 64);
    }
}
