//! Plan -> Compute resources.
//!
//! URL maps, one per listener port:
//! - Host rules: one per hostname the port's rules carry, plus `*` for rules without one. GCE
//!   (Envoy) sends a request to the most specific host rule, so each host's path matcher holds
//!   every rule that applies to that host: its own, then those of wildcards covering it, then
//!   the host-less ones. Kept in plan precedence order, this is exactly the spec's fall-through
//!   (a request for `a.example.com` that matches no `a.example.com` rule may still match a
//!   `*.example.com` rule).
//! - Priorities: 1, 2, 3, ... in that order. Compute only requires them unique per path matcher
//!   and evaluates lowest first. The URL map is always written whole (one `update`), so gaps
//!   would buy nothing: inserting a rule renumbers the ones after it in the same atomic write.
//!   The numbers follow precedence, never the order routes were listed in.
//! - Nothing matched: 404 (what Gateway API requires), made by fault injection against a
//!   backend service without backends (see [`crate::urlmap::fixed_response`]); it is the URL
//!   map's and every path matcher's `defaultRouteAction`. The same service backs plan rules
//!   whose action is a fixed 500.

use std::collections::{BTreeMap, BTreeSet};

use cloudgate_provider::names::{cloud_name, stable_hash, GCE};
use cloudgate_provider::resource::{DesiredResource, ResourceGraph, ResourceKey};
use cloudgate_provider::{tags, RenderContext, RenderError};
use cloudgate_translate::capabilities::Protocol;
use cloudgate_translate::hostname;
use cloudgate_translate::plan::{Backend, BackendId, Certificate, ListenerPlan, LoadBalancerPlan, PlanRule, TlsMode};
use serde::Serialize;

use crate::labels::{labels_from_tags, ownership_description};
use crate::policy;
use crate::spec::*;
use crate::urlmap::{self, Refs};
use crate::*;

/// Where Google's health checkers (and the global external ALB's proxies) connect from.
pub const HEALTH_CHECK_RANGES: &[&str] = &["35.191.0.0/16", "130.211.0.0/22"];

/// RATE balancing needs a per-endpoint capacity. cloudgate does not model capacity, so this is
/// a number no endpoint reaches: it spreads load without ever declaring an endpoint full.
const MAX_RATE_PER_ENDPOINT: u64 = 100_000_000;

/// Compute's limit on certificates per target HTTPS proxy.
const MAX_CERTS_PER_PROXY: usize = 15;

pub(crate) fn render(plan: &LoadBalancerPlan, ctx: &RenderContext, flavour: Flavour) -> Result<ResourceGraph, RenderError> {
    let r = Renderer::new(plan, ctx, flavour)?;
    r.render()
}

struct Renderer<'a> {
    plan: &'a LoadBalancerPlan,
    ctx: &'a RenderContext,
    flavour: Flavour,
    region: Option<String>,
    network: String,
    subnetwork: Option<String>,
    gateway: String,
    defaults: BTreeMap<String, String>,
}

impl<'a> Renderer<'a> {
    fn new(plan: &'a LoadBalancerPlan, ctx: &'a RenderContext, flavour: Flavour) -> Result<Self, RenderError> {
        let region = if flavour.regional() {
            if ctx.region.is_empty() {
                return Err(unrenderable(format!("the {} flavour needs a region", flavour.as_str())));
            }
            Some(ctx.region.clone())
        } else {
            None
        };
        let mut defaults = ctx.default_tags.clone();
        defaults.extend(plan.infrastructure_labels.clone());
        Ok(Renderer {
            plan,
            ctx,
            flavour,
            region,
            // GCE's own default network when none is configured.
            network: if ctx.network.is_empty() { "default".into() } else { ctx.network.clone() },
            subnetwork: ctx.subnets.first().cloned(),
            gateway: plan.gateway.to_string(),
            defaults,
        })
    }

    /// `cg-<readable>-<hash>`; the hash covers cluster, Gateway and `identity`, so names never
    /// collide across clusters or Gateways sharing a project, however they are truncated.
    fn name(&self, readable: &[&str], identity: &[&str]) -> String {
        let gw = &self.plan.gateway;
        let mut id = vec![self.ctx.cluster_id.as_str(), gw.namespace.as_str(), gw.name.as_str()];
        id.extend_from_slice(identity);
        cloud_name(GCE, "cg", readable, &id)
    }

    /// GCE labels for the kinds that have them (Address, ForwardingRule).
    fn labels(&self, resource: &str) -> BTreeMap<String, String> {
        labels_from_tags(&tags::ownership(&self.ctx.cluster_id, &self.plan.gateway, resource, &self.defaults))
    }

    fn description(&self, resource: &str, extra: &[(&str, &str)]) -> String {
        ownership_description(&self.ctx.cluster_id, &self.gateway, resource, extra)
    }

    /// Ownership plus a hash of everything else in the spec: these kinds are updated with a
    /// full PUT, and the hash makes any change, including a list that became empty (and is
    /// therefore left out of the spec), a change of `description` that the diff sees.
    fn hashed_description<T: Serialize>(&self, resource: &str, spec: &T) -> String {
        let text = serde_json::to_string(spec).unwrap_or_default();
        let hash = stable_hash(&[&text]);
        self.description(resource, &[("specHash", &hash[..16])])
    }

    fn render(&self) -> Result<ResourceGraph, RenderError> {
        let plan = self.plan;
        let scheme = self.flavour.load_balancing_scheme();
        let mut g = ResourceGraph::default();

        // Port groups, in port order; listeners keep plan order within a port.
        let mut ports: BTreeMap<i32, Vec<(usize, &ListenerPlan)>> = BTreeMap::new();
        for (i, l) in plan.listeners.iter().enumerate() {
            if !matches!(l.protocol, Protocol::Http | Protocol::Https) {
                return Err(unrenderable(format!("listener {}: protocol {} is not supported", l.name, l.protocol.as_str())));
            }
            ports.entry(l.port).or_default().push((i, l));
        }

        // Firewall: health checkers to every endpoint port, and to the fixed port of a
        // HealthCheckPolicy on a Service that has endpoints.
        let mut endpoint_ports: BTreeSet<i32> = plan.backends.values().flat_map(|b| b.endpoints.iter().map(|e| e.port)).collect();
        endpoint_ports.extend(
            plan.backends.values().filter(|b| !b.endpoints.is_empty()).filter_map(|b| self.ctx.health_checks.get(&b.service)?.port.map(i32::from)),
        );
        if !endpoint_ports.is_empty() {
            let resource = "firewall/health-checks";
            let mut spec = FirewallSpec {
                network: self.network.clone(),
                direction: "INGRESS",
                priority: 1000,
                source_ranges: HEALTH_CHECK_RANGES.to_vec(),
                allowed: vec![FirewallAllowed { ip_protocol: "tcp", ports: endpoint_ports.iter().map(i32::to_string).collect() }],
                description: String::new(),
            };
            spec.description = self.hashed_description(resource, &spec);
            let n = self.name(&[&plan.gateway.namespace, &plan.gateway.name, "hc"], &["firewall"]);
            g.push(DesiredResource::new(KIND_FIREWALL, n, BTreeMap::new(), spec));
        }

        let (ip_address, address_key) = self.address(&mut g)?;

        // Certificates, once per distinct Secret content, shared by listeners and ports.
        let mut cert_names: BTreeMap<(String, String), String> = BTreeMap::new();
        for (_, l) in ports.values().flatten() {
            for c in self.certificates(l)? {
                let key = (c.secret.to_string(), c.sha256.clone());
                if cert_names.contains_key(&key) {
                    continue;
                }
                let n = self.cert_name(c);
                let resource = format!("certificate/{}", c.secret);
                let spec = SslCertificateSpec {
                    type_: "SELF_MANAGED",
                    secret: c.secret.to_string(),
                    certificate_sha256: c.sha256.clone(),
                    region: self.region.clone(),
                    description: self.description(&resource, &[("certificateSha256", &c.sha256), ("secret", &key.0)]),
                };
                g.push(DesiredResource::new(KIND_SSL_CERTIFICATE, &n, BTreeMap::new(), spec));
                cert_names.insert(key, n);
            }
        }

        // Backends: health checks, NEGs, backend services.
        let backend_services = self.backends(&mut g)?;
        if ports.is_empty() {
            return Ok(g);
        }
        let no_backend = self.name(&[&plan.gateway.namespace, &plan.gateway.name, "no-backend"], &["no-backend"]);
        let mut nb_spec = BackendServiceSpec {
            load_balancing_scheme: scheme,
            protocol: "HTTP",
            backends: Vec::new(),
            health_checks: Vec::new(),
            connection_draining: None,
            locality_lb_policy: None,
            region: self.region.clone(),
            description: String::new(),
        };
        nb_spec.description = self.hashed_description("backend-service/no-backend", &nb_spec);
        let no_backend_key = g.push(DesiredResource::new(KIND_BACKEND_SERVICE, &no_backend, BTreeMap::new(), nb_spec));
        let refs = Refs { flavour: self.flavour, backend_services: &backend_services.names, no_backend: &no_backend };

        // Per port: URL map, proxy, forwarding rule. All URL maps first, then proxies, then
        // forwarding rules, so the graph stays parents-first.
        let mut proxies = Vec::new();
        for (port, listeners) in &ports {
            let port_s = port.to_string();
            let readable = [plan.gateway.namespace.as_str(), plan.gateway.name.as_str(), port_s.as_str()];
            let resource = format!("url-map/{port}");
            let mut spec = self.url_map(listeners, &refs)?;
            spec.description = self.hashed_description(&resource, &spec);
            let um_name = self.name(&readable, &["url-map", &port_s]);
            let mut deps = vec![no_backend_key.clone()];
            deps.extend(referenced_backend_services(&spec, &backend_services.keys));
            let um_key = g.push(DesiredResource::new(KIND_URL_MAP, &um_name, BTreeMap::new(), spec).depends_on(deps));
            proxies.push((*port, listeners, um_name, um_key));
        }
        let mut rules = Vec::new();
        for (port, listeners, um_name, um_key) in proxies {
            let port_s = port.to_string();
            let readable = [plan.gateway.namespace.as_str(), plan.gateway.name.as_str(), port_s.as_str()];
            let https = listeners[0].1.protocol == Protocol::Https;
            let proxy_key = if https {
                let mut certs: Vec<String> = Vec::new();
                for (_, l) in listeners {
                    for c in self.certificates(l)? {
                        let n = &cert_names[&(c.secret.to_string(), c.sha256.clone())];
                        if !certs.contains(n) {
                            certs.push(n.clone());
                        }
                    }
                }
                if certs.len() > MAX_CERTS_PER_PROXY {
                    return Err(unrenderable(format!(
                        "port {port} needs {} certificates; a target HTTPS proxy takes at most {MAX_CERTS_PER_PROXY}",
                        certs.len()
                    )));
                }
                let cert_keys: Vec<ResourceKey> =
                    certs.iter().map(|n| ResourceKey { kind: KIND_SSL_CERTIFICATE.into(), name: n.clone() }).collect();
                let spec = TargetHttpsProxySpec {
                    url_map: um_name,
                    ssl_certificates: certs,
                    region: self.region.clone(),
                    description: self.description(&format!("target-https-proxy/{port}"), &[]),
                };
                let n = self.name(&readable, &["target-https-proxy", &port_s]);
                g.push(
                    DesiredResource::new(KIND_TARGET_HTTPS_PROXY, n, BTreeMap::new(), spec)
                        .depends_on(std::iter::once(um_key).chain(cert_keys)),
                )
            } else {
                let spec = TargetHttpProxySpec {
                    url_map: um_name,
                    region: self.region.clone(),
                    description: self.description(&format!("target-http-proxy/{port}"), &[]),
                };
                let n = self.name(&readable, &["target-http-proxy", &port_s]);
                g.push(DesiredResource::new(KIND_TARGET_HTTP_PROXY, n, BTreeMap::new(), spec).depends_on([um_key]))
            };
            let internal = self.flavour == Flavour::RegionalInternalManaged;
            let spec = ForwardingRuleSpec {
                ip_address: ip_address.clone(),
                ip_protocol: "TCP",
                port_range: format!("{port}-{port}"),
                target: proxy_key.name.clone(),
                load_balancing_scheme: scheme,
                // Global external forwarding rules take no network; regional ones must name the
                // VPC whose proxy-only subnet serves them; internal ones also the subnetwork
                // their IP comes from.
                network: self.flavour.regional().then(|| self.network.clone()),
                subnetwork: if internal { self.subnetwork.clone() } else { None },
                region: self.region.clone(),
            };
            let n = self.name(&readable, &["forwarding-rule", &port_s]);
            let deps = std::iter::once(proxy_key).chain(address_key.clone());
            rules.push(DesiredResource::new(KIND_FORWARDING_RULE, n, self.labels(&format!("forwarding-rule/{port}")), spec).depends_on(deps));
        }
        for r in rules {
            g.push(r);
        }
        Ok(g)
    }

    /// The IP every forwarding rule uses, and the owned Address resource if there is one.
    ///
    /// - No `spec.addresses`: an owned Address, so the IP survives proxy and rule changes.
    /// - `IPAddress` on an external flavour: that IP as a literal. An external IP can only be
    ///   one the project already reserved, so it is referenced, never reserved again.
    /// - `IPAddress` on the internal flavour: an owned Address reserving that IP in the
    ///   subnetwork (shared by the Gateway's forwarding rules).
    /// - `NamedAddress`: the user's reserved Address of that name, referenced and never touched.
    fn address(&self, g: &mut ResourceGraph) -> Result<(String, Option<ResourceKey>), RenderError> {
        let requested = match self.plan.addresses.as_slice() {
            [] => None,
            [one] => Some(one),
            more => {
                return Err(RenderError::AddressNotUsable {
                    provider: PROVIDER,
                    message: format!("{} addresses requested; a Google Cloud load balancer here has one", more.len()),
                })
            }
        };
        let internal = self.flavour == Flavour::RegionalInternalManaged;
        let specific_ip = match requested {
            Some(a) if a.type_ == "NamedAddress" => return Ok((a.value.clone(), None)),
            Some(a) if a.type_ == "IPAddress" && !internal => return Ok((a.value.clone(), None)),
            Some(a) if a.type_ == "IPAddress" => Some(a.value.clone()),
            Some(a) => return Err(unrenderable(format!("address type {} is not supported", a.type_))),
            None => None,
        };
        let spec = AddressSpec {
            address_type: if internal { "INTERNAL" } else { "EXTERNAL" },
            address: specific_ip,
            region: self.region.clone(),
            subnetwork: if internal { self.subnetwork.clone() } else { None },
            purpose: internal.then_some("SHARED_LOADBALANCER_VIP"),
            description: format!("cloudgate Gateway {}", self.gateway),
        };
        let gw = &self.plan.gateway;
        let n = self.name(&[&gw.namespace, &gw.name], &["address"]);
        let key = g.push(DesiredResource::new(KIND_ADDRESS, &n, self.labels("address"), spec));
        Ok((n, Some(key)))
    }

    /// An HTTPS listener's certificates (terminated here; passthrough cannot be).
    fn certificates<'l>(&self, l: &'l ListenerPlan) -> Result<&'l [Certificate], RenderError> {
        if l.protocol != Protocol::Https {
            return Ok(&[]);
        }
        match &l.tls {
            Some(t) if t.mode == TlsMode::Terminate && !t.certificates.is_empty() => Ok(&t.certificates),
            _ => Err(unrenderable(format!("HTTPS listener {} needs TLS mode Terminate with a certificate", l.name))),
        }
    }

    /// The sha256 prefix comes first in the readable part so truncation never removes it: new
    /// Secret content is visibly a new certificate.
    fn cert_name(&self, c: &Certificate) -> String {
        let secret = c.secret.to_string();
        self.name(&[&c.sha256[..16.min(c.sha256.len())], &c.secret.name], &["certificate", &secret, &c.sha256])
    }

    fn backends(&self, g: &mut ResourceGraph) -> Result<BackendServices, RenderError> {
        let scheme = self.flavour.load_balancing_scheme();
        let mut out = BackendServices::default();
        // Health checks, then NEGs, then backend services: parents first.
        let mut hcs = BTreeMap::new();
        for (id, b) in &self.plan.backends {
            let resource = format!("health-check/{id}");
            let mut spec = policy::health_check_spec(self.ctx.health_checks.get(&b.service), self.region.clone());
            spec.description = self.hashed_description(&resource, &spec);
            let port = b.port.to_string();
            let n = self.name(&[&b.service.namespace, &b.service.name, &port], &["health-check", &id.0]);
            let key = g.push(DesiredResource::new(KIND_HEALTH_CHECK, &n, BTreeMap::new(), spec));
            hcs.insert(id, (n, key));
        }
        let mut negs: BTreeMap<&BackendId, Vec<(String, ResourceKey)>> = BTreeMap::new();
        for (id, b) in &self.plan.backends {
            for (zone, endpoints) in self.endpoints_by_zone(b)? {
                let port = b.port.to_string();
                let n = self.name(&[&b.service.namespace, &b.service.name, &port, &zone], &["neg", &id.0, &zone]);
                let spec = NetworkEndpointGroupSpec {
                    zone: zone.clone(),
                    network_endpoint_type: "GCE_VM_IP_PORT",
                    network: self.network.clone(),
                    subnetwork: self.subnetwork.clone(),
                    // NEGs cannot be updated: nothing that changes goes into the description.
                    description: self.description(&format!("neg/{id}/{zone}"), &[]),
                    endpoints,
                };
                let key = g.push(DesiredResource::new(KIND_NEG, &n, BTreeMap::new(), spec));
                negs.entry(id).or_default().push((n, key));
            }
        }
        for (id, b) in &self.plan.backends {
            let (hc_name, hc_key) = &hcs[id];
            let zonal = negs.remove(id).unwrap_or_default();
            let resource = format!("backend-service/{id}");
            let settings = self.ctx.backend_settings.get(&b.service);
            let mut spec = BackendServiceSpec {
                load_balancing_scheme: scheme,
                protocol: policy::backend_protocol(b, settings),
                backends: zonal
                    .iter()
                    .map(|(n, _)| BackendSpec {
                        group: n.clone(),
                        balancing_mode: "RATE",
                        max_rate_per_endpoint: MAX_RATE_PER_ENDPOINT,
                    })
                    .collect(),
                health_checks: vec![hc_name.clone()],
                connection_draining: policy::connection_draining(settings),
                locality_lb_policy: policy::locality_lb_policy(settings),
                region: self.region.clone(),
                description: String::new(),
            };
            spec.description = self.hashed_description(&resource, &spec);
            let port = b.port.to_string();
            let n = self.name(&[&b.service.namespace, &b.service.name, &port], &["backend-service", &id.0]);
            let deps = std::iter::once(hc_key.clone()).chain(zonal.into_iter().map(|(_, k)| k));
            let key = g.push(DesiredResource::new(KIND_BACKEND_SERVICE, &n, BTreeMap::new(), spec).depends_on(deps));
            out.names.insert(id.clone(), n.clone());
            out.keys.insert(n, key);
        }
        Ok(out)
    }

    /// Endpoints per zone, sorted; endpoints whose slice gave no zone go to `<region>-a`.
    fn endpoints_by_zone(&self, b: &Backend) -> Result<BTreeMap<String, Vec<NetworkEndpoint>>, RenderError> {
        let mut by_zone: BTreeMap<String, Vec<NetworkEndpoint>> = BTreeMap::new();
        for e in &b.endpoints {
            let zone = match &e.zone {
                Some(z) => z.clone(),
                None if !self.ctx.region.is_empty() => format!("{}-a", self.ctx.region),
                None => {
                    return Err(unrenderable(format!(
                        "endpoint {}:{} of {} has no zone and no region is configured to default it from",
                        e.ip, e.port, b.service
                    )))
                }
            };
            by_zone.entry(zone).or_default().push(NetworkEndpoint { ip_address: e.ip.clone(), port: e.port });
        }
        for v in by_zone.values_mut() {
            v.sort();
            v.dedup();
        }
        Ok(by_zone)
    }

    fn url_map(&self, listeners: &[(usize, &ListenerPlan)], refs: &Refs<'_>) -> Result<UrlMapSpec, RenderError> {
        let entries: Vec<(usize, &ListenerPlan, &PlanRule)> =
            listeners.iter().flat_map(|(i, l)| l.rules.iter().map(move |r| (*i, *l, r))).collect();
        let mut hosts: BTreeSet<String> = entries.iter().filter_map(|(_, _, r)| r.hostname.clone()).collect();
        if entries.iter().any(|(_, _, r)| r.hostname.is_none()) {
            hosts.insert("*".into());
        }
        let not_found = urlmap::fixed_response(refs.no_backend, 404);
        let mut host_rules = Vec::new();
        let mut path_matchers = Vec::new();
        for host in hosts {
            let rule_host = (host != "*").then_some(host.as_str());
            let mut applicable: Vec<&(usize, &ListenerPlan, &PlanRule)> =
                entries.iter().filter(|(_, _, r)| urlmap::covers(r.hostname.as_deref(), &host)).collect();
            // Plan precedence within a listener; across listeners sharing the port, the more
            // specific rule hostname first, then the more specific listener.
            applicable.sort_by_key(|(i, l, r)| {
                (hostname::precedence_key(r.hostname.as_deref()), hostname::precedence_key(l.hostname.as_deref()), *i, r.priority)
            });
            let mut route_rules = Vec::new();
            for (_, l, r) in applicable {
                for mut rr in urlmap::route_rules(l, r, refs)? {
                    rr.priority = route_rules.len() as u32 + 1;
                    route_rules.push(rr);
                }
            }
            let pm = cloud_name(GCE, "pm", &[rule_host.unwrap_or("any")], &[&host]);
            host_rules.push(HostRule { hosts: vec![host.clone()], path_matcher: pm.clone() });
            path_matchers.push(PathMatcher { name: pm, default_route_action: not_found.clone(), route_rules });
        }
        Ok(UrlMapSpec {
            region: self.region.clone(),
            default_route_action: not_found,
            host_rules,
            path_matchers,
            description: String::new(),
        })
    }
}

#[derive(Default)]
struct BackendServices {
    /// Backend service name per plan backend.
    names: BTreeMap<BackendId, String>,
    keys: BTreeMap<String, ResourceKey>,
}

fn referenced_backend_services(spec: &UrlMapSpec, keys: &BTreeMap<String, ResourceKey>) -> Vec<ResourceKey> {
    let mut out = Vec::new();
    for pm in &spec.path_matchers {
        for rr in &pm.route_rules {
            if let Some(a) = &rr.route_action {
                for w in &a.weighted_backend_services {
                    out.extend(keys.get(&w.backend_service).cloned());
                }
                if let Some(m) = &a.request_mirror_policy {
                    out.extend(keys.get(&m.backend_service).cloned());
                }
            }
        }
    }
    out
}
