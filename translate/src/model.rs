//! One shape for every route kind. The generated Gateway API types give HTTPRoute, GRPCRoute,
//! TLSRoute and TCPRoute each their own struct for the same concept (parentRefs, backendRefs,
//! ...); translation reads them through this normalised model so that every rule (attachment,
//! references, precedence) is written once.

use gateway_api::experimental::{grpcroutes, httproutes, tcproutes, tlsroutes};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
pub const CORE_GROUP: &str = "";

/// Namespace + name; the identity used everywhere in translation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjKey {
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjKey { namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RouteKind {
    #[serde(rename = "HTTPRoute")]
    Http,
    #[serde(rename = "GRPCRoute")]
    Grpc,
    #[serde(rename = "TLSRoute")]
    Tls,
    #[serde(rename = "TCPRoute")]
    Tcp,
}

impl RouteKind {
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
            RouteKind::Tcp => "TCPRoute",
        }
    }
    pub fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "HTTPRoute" => RouteKind::Http,
            "GRPCRoute" => RouteKind::Grpc,
            "TLSRoute" => RouteKind::Tls,
            "TCPRoute" => RouteKind::Tcp,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RouteKey {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
}

impl RouteKey {
    pub fn obj(&self) -> ObjKey {
        ObjKey::new(&self.namespace, &self.name)
    }
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

impl ParentRef {
    /// The Gateway this ref points at, if it points at a Gateway at all.
    pub fn gateway(&self, route_ns: &str) -> Option<ObjKey> {
        (self.group == GATEWAY_GROUP && self.kind == "Gateway")
            .then(|| ObjKey::new(self.namespace.as_deref().unwrap_or(route_ns), &self.name))
    }
}

/// A `status.parents[]` entry as found on the object (ours or another controller's).
#[derive(Clone, Debug, PartialEq)]
pub struct ParentStatus {
    pub parent_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    #[serde(skip)]
    pub created: Option<Time>,
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: Vec<String>,
    pub rules: Vec<RouteRule>,
    #[serde(skip)]
    pub status_parents: Vec<ParentStatusEq>,
}

/// `ParentStatus` wrapper so `Route` can stay `Eq` (Condition is only PartialEq).
#[derive(Clone, Debug, PartialEq)]
pub struct ParentStatusEq(pub ParentStatus);
impl Eq for ParentStatusEq {}

impl Route {
    pub fn key(&self) -> RouteKey {
        RouteKey { kind: self.kind, namespace: self.namespace.clone(), name: self.name.clone() }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RouteRule {
    pub name: Option<String>,
    /// Empty means "match everything" (the spec's default of one PathPrefix "/" match).
    pub matches: Vec<RouteMatch>,
    pub filters: Vec<Filter>,
    pub backends: Vec<BackendRef>,
    pub timeouts: Option<Timeouts>,
    /// Fields the rule sets that only some providers can express (retry, sessionPersistence).
    pub extra_features: Vec<&'static str>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    pub request: Option<String>,
    pub backend_request: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    pub method: Option<String>,
    pub headers: Vec<ValueMatch>,
    pub query_params: Vec<ValueMatch>,
    /// GRPCRoute method match, kept for providers that speak gRPC natively; `path` holds the
    /// equivalent HTTP/2 path match.
    pub grpc: Option<GrpcMethod>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathMatch {
    Exact(String),
    PathPrefix(String),
    RegularExpression(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum MatchType {
    Exact,
    RegularExpression,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ValueMatch {
    pub name: String,
    pub value: String,
    #[serde(rename = "type")]
    pub match_type: MatchType,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct GrpcMethod {
    pub service: Option<String>,
    pub method: Option<String>,
    #[serde(rename = "type")]
    pub match_type: MatchType,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Filter {
    RequestHeaderModifier(HeaderModifier),
    ResponseHeaderModifier(HeaderModifier),
    RequestRedirect(Redirect),
    #[serde(rename = "URLRewrite")]
    UrlRewrite(Rewrite),
    RequestMirror { backend: BackendRef, percent: Option<u32> },
    #[serde(rename = "CORS")]
    Cors,
    ExternalAuth,
    ExtensionRef { group: String, kind: String, name: String },
}

impl Filter {
    pub fn type_name(&self) -> &'static str {
        match self {
            Filter::RequestHeaderModifier(_) => "RequestHeaderModifier",
            Filter::ResponseHeaderModifier(_) => "ResponseHeaderModifier",
            Filter::RequestRedirect(_) => "RequestRedirect",
            Filter::UrlRewrite(_) => "URLRewrite",
            Filter::RequestMirror { .. } => "RequestMirror",
            Filter::Cors => "CORS",
            Filter::ExternalAuth => "ExternalAuth",
            Filter::ExtensionRef { .. } => "ExtensionRef",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderModifier {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<i32>,
    pub status_code: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum PathModifier {
    ReplaceFullPath(String),
    ReplacePrefixMatch(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackendRef {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub port: Option<i32>,
    /// 0..=1_000_000 per the spec; defaults to 1.
    pub weight: u32,
    pub filters: Vec<Filter>,
}

// ---------------------------------------------------------------------------------------------
// Conversion from the generated types.
//
// The generated structs share field names but not types, so small macros read the common
// shapes (parentRefs, backendRefs, header matches) without writing each conversion four times.

macro_rules! parent_ref {
    ($p:expr) => {
        ParentRef {
            group: $p.group.clone().unwrap_or_else(|| GATEWAY_GROUP.to_string()),
            kind: $p.kind.clone().unwrap_or_else(|| "Gateway".to_string()),
            namespace: $p.namespace.clone(),
            name: $p.name.clone(),
            section_name: $p.section_name.clone(),
            port: $p.port,
        }
    };
}

macro_rules! backend_ref {
    ($b:expr, $filters:expr) => {
        BackendRef {
            group: $b.group.clone().unwrap_or_default(),
            kind: $b.kind.clone().unwrap_or_else(|| "Service".to_string()),
            namespace: $b.namespace.clone(),
            name: $b.name.clone(),
            port: $b.port,
            weight: $b.weight.unwrap_or(1).clamp(0, 1_000_000) as u32,
            filters: $filters,
        }
    };
}

macro_rules! status_parents {
    ($status:expr) => {
        $status
            .iter()
            .flat_map(|s| s.parents.iter())
            .map(|p| {
                ParentStatusEq(ParentStatus {
                    parent_ref: parent_ref!(p.parent_ref),
                    controller_name: p.controller_name.clone(),
                    conditions: p.conditions.clone(),
                })
            })
            .collect()
    };
}

/// A header or query-parameter match; `$regex` is the generated enum's RegularExpression variant.
macro_rules! value_match {
    ($h:expr, $regex:path) => {
        ValueMatch {
            name: $h.name.clone(),
            value: $h.value.clone(),
            match_type: if matches!($h.r#type, Some($regex)) { MatchType::RegularExpression } else { MatchType::Exact },
        }
    };
}

/// The fields every route kind has, read the same way.
macro_rules! route {
    ($kind:expr, $r:expr, $hostnames:expr, $rules:expr) => {{
        let (namespace, name, generation, created) = meta_common(&$r.metadata);
        Route {
            kind: $kind,
            namespace,
            name,
            generation,
            created,
            parent_refs: $r.spec.parent_refs.iter().flatten().map(|p| parent_ref!(p)).collect(),
            hostnames: $hostnames,
            rules: $rules,
            status_parents: status_parents!($r.status),
        }
    }};
}

/// Filters are read through their JSON form: every filter struct in the generated code has the
/// same JSON shape, so one reader serves HTTPRoute, GRPCRoute and backend-level filters.
fn filters_from_json<T: Serialize>(filters: Option<&Vec<T>>) -> Vec<Filter> {
    let Some(filters) = filters else { return Vec::new() };
    filters
        .iter()
        .filter_map(|f| serde_json::to_value(f).ok())
        .filter_map(|v| filter_from_value(&v))
        .collect()
}

fn filter_from_value(v: &serde_json::Value) -> Option<Filter> {
    let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let header_mod = |v: Option<&serde_json::Value>| {
        let v = v.cloned().unwrap_or_default();
        let pairs = |k: &str| {
            v.get(k)
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|h| Some((s(h, "name")?, s(h, "value").unwrap_or_default())))
                        .collect()
                })
                .unwrap_or_default()
        };
        HeaderModifier {
            set: pairs("set"),
            add: pairs("add"),
            remove: v
                .get("remove")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        }
    };
    let path_mod = |v: Option<&serde_json::Value>| -> Option<PathModifier> {
        let v = v?;
        match v.get("type")?.as_str()? {
            "ReplaceFullPath" => Some(PathModifier::ReplaceFullPath(s(v, "replaceFullPath").unwrap_or_default())),
            "ReplacePrefixMatch" => {
                Some(PathModifier::ReplacePrefixMatch(s(v, "replacePrefixMatch").unwrap_or_default()))
            }
            _ => None,
        }
    };
    Some(match v.get("type")?.as_str()? {
        "RequestHeaderModifier" => Filter::RequestHeaderModifier(header_mod(v.get("requestHeaderModifier"))),
        "ResponseHeaderModifier" => Filter::ResponseHeaderModifier(header_mod(v.get("responseHeaderModifier"))),
        "RequestRedirect" => {
            let r = v.get("requestRedirect").cloned().unwrap_or_default();
            Filter::RequestRedirect(Redirect {
                scheme: s(&r, "scheme"),
                hostname: s(&r, "hostname"),
                path: path_mod(r.get("path")),
                port: r.get("port").and_then(|p| p.as_i64()).map(|p| p as i32),
                status_code: r.get("statusCode").and_then(|p| p.as_i64()),
            })
        }
        "URLRewrite" => {
            let r = v.get("urlRewrite").cloned().unwrap_or_default();
            Filter::UrlRewrite(Rewrite { hostname: s(&r, "hostname"), path: path_mod(r.get("path")) })
        }
        "RequestMirror" => {
            let m = v.get("requestMirror").cloned().unwrap_or_default();
            let b = m.get("backendRef").cloned().unwrap_or_default();
            let percent = m.get("percent").and_then(|p| p.as_u64()).map(|p| p as u32).or_else(|| {
                let f = m.get("fraction")?;
                let num = f.get("numerator")?.as_u64()?;
                let den = f.get("denominator").and_then(|d| d.as_u64()).unwrap_or(100).max(1);
                Some((num * 100 / den) as u32)
            });
            Filter::RequestMirror {
                backend: BackendRef {
                    group: s(&b, "group").unwrap_or_default(),
                    kind: s(&b, "kind").unwrap_or_else(|| "Service".into()),
                    namespace: s(&b, "namespace"),
                    name: s(&b, "name").unwrap_or_default(),
                    port: b.get("port").and_then(|p| p.as_i64()).map(|p| p as i32),
                    weight: 1,
                    filters: Vec::new(),
                },
                percent,
            }
        }
        "CORS" => Filter::Cors,
        "ExternalAuth" => Filter::ExternalAuth,
        "ExtensionRef" => {
            let e = v.get("extensionRef").cloned().unwrap_or_default();
            Filter::ExtensionRef {
                group: s(&e, "group").unwrap_or_default(),
                kind: s(&e, "kind").unwrap_or_default(),
                name: s(&e, "name").unwrap_or_default(),
            }
        }
        _ => return None,
    })
}

fn meta_common(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String, Option<i64>, Option<Time>) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
        meta.generation,
        meta.creation_timestamp.clone(),
    )
}

impl From<&httproutes::HttpRoute> for Route {
    fn from(r: &httproutes::HttpRoute) -> Self {
        use httproutes::*;
        // The CRD defaults absent rules to one rule matching every path (and, with no
        // backendRefs, answering 500); manifests read without an API server get the same.
        let default_rules = [HttpRouteRules::default()];
        let rules = r
            .spec
            .rules
            .as_deref()
            .unwrap_or(&default_rules)
            .iter()
            .map(|rule| {
                let matches = rule
                    .matches
                    .iter()
                    .flatten()
                    .map(|m| RouteMatch {
                        path: m.path.as_ref().map(|p| {
                            let value = p.value.clone().unwrap_or_else(|| "/".into());
                            match p.r#type {
                                Some(HttpRouteRulesMatchesPathType::Exact) => PathMatch::Exact(value),
                                Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
                                    PathMatch::RegularExpression(value)
                                }
                                _ => PathMatch::PathPrefix(value),
                            }
                        }),
                        method: m.method.as_ref().and_then(|x| serde_json::to_value(x).ok()).and_then(|v| v.as_str().map(str::to_string)),
                        headers: m
                            .headers
                            .iter()
                            .flatten()
                            .map(|h| value_match!(h, HttpRouteRulesMatchesHeadersType::RegularExpression))
                            .collect(),
                        query_params: m
                            .query_params
                            .iter()
                            .flatten()
                            .map(|h| value_match!(h, HttpRouteRulesMatchesQueryParamsType::RegularExpression))
                            .collect(),
                        grpc: None,
                    })
                    .collect();
                let mut extra_features = Vec::new();
                if rule.retry.is_some() {
                    extra_features.push(crate::capabilities::feature::HTTP_ROUTE_RETRY);
                }
                if rule.session_persistence.is_some() {
                    extra_features.push(crate::capabilities::feature::HTTP_ROUTE_SESSION_PERSISTENCE);
                }
                RouteRule {
                    name: rule.name.clone(),
                    matches,
                    filters: filters_from_json(rule.filters.as_ref()),
                    backends: rule
                        .backend_refs
                        .iter()
                        .flatten()
                        .map(|b| backend_ref!(b, filters_from_json(b.filters.as_ref())))
                        .collect(),
                    timeouts: rule.timeouts.as_ref().map(|t| Timeouts {
                        request: t.request.clone(),
                        backend_request: t.backend_request.clone(),
                    }),
                    extra_features,
                }
            })
            .collect();
        route!(RouteKind::Http, r, r.spec.hostnames.clone().unwrap_or_default(), rules)
    }
}

impl From<&grpcroutes::GrpcRoute> for Route {
    fn from(r: &grpcroutes::GrpcRoute) -> Self {
        use grpcroutes::*;
        let rules = r
            .spec
            .rules
            .iter()
            .flatten()
            .map(|rule| {
                let matches = rule
                    .matches
                    .iter()
                    .flatten()
                    .map(|m| {
                        let grpc = m.method.as_ref().map(|mm| GrpcMethod {
                            service: mm.service.clone(),
                            method: mm.method.clone(),
                            match_type: match mm.r#type {
                                Some(GrpcRouteRulesMatchesMethodType::RegularExpression) => MatchType::RegularExpression,
                                _ => MatchType::Exact,
                            },
                        });
                        RouteMatch {
                            path: grpc.as_ref().map(grpc_path),
                            method: None,
                            headers: m
                                .headers
                                .iter()
                                .flatten()
                                .map(|h| value_match!(h, GrpcRouteRulesMatchesHeadersType::RegularExpression))
                                .collect(),
                            query_params: Vec::new(),
                            grpc,
                        }
                    })
                    .collect();
                let mut extra_features = Vec::new();
                if rule.session_persistence.is_some() {
                    extra_features.push(crate::capabilities::feature::HTTP_ROUTE_SESSION_PERSISTENCE);
                }
                RouteRule {
                    name: rule.name.clone(),
                    matches,
                    filters: filters_from_json(rule.filters.as_ref()),
                    backends: rule
                        .backend_refs
                        .iter()
                        .flatten()
                        .map(|b| backend_ref!(b, filters_from_json(b.filters.as_ref())))
                        .collect(),
                    timeouts: None,
                    extra_features,
                }
            })
            .collect();
        route!(RouteKind::Grpc, r, r.spec.hostnames.clone().unwrap_or_default(), rules)
    }
}

/// gRPC is HTTP/2 with path `/<service>/<method>`; the equivalent path match lets providers
/// without native gRPC matching route it (and gives GRPCRoute matches their spec precedence:
/// service+method is an exact path, service alone a prefix).
fn grpc_path(m: &GrpcMethod) -> PathMatch {
    match (m.match_type, &m.service, &m.method) {
        (MatchType::Exact, Some(s), Some(me)) => PathMatch::Exact(format!("/{s}/{me}")),
        (MatchType::Exact, Some(s), None) => PathMatch::PathPrefix(format!("/{s}/")),
        (MatchType::Exact, None, Some(me)) => PathMatch::RegularExpression(format!("^/[^/]+/{}$", regex_escape(me))),
        (MatchType::Exact, None, None) => PathMatch::PathPrefix("/".into()),
        (MatchType::RegularExpression, s, me) => PathMatch::RegularExpression(format!(
            "^/{}/{}$",
            s.as_deref().unwrap_or("[^/]+"),
            me.as_deref().unwrap_or("[^/]+")
        )),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// TLSRoute and TCPRoute rules are only weighted backends.
macro_rules! l4_rules {
    ($rules:expr) => {
        $rules
            .iter()
            .map(|rule| RouteRule {
                name: rule.name.clone(),
                backends: rule.backend_refs.iter().map(|b| backend_ref!(b, Vec::new())).collect(),
                ..Default::default()
            })
            .collect()
    };
}

impl From<&tlsroutes::TlsRoute> for Route {
    fn from(r: &tlsroutes::TlsRoute) -> Self {
        route!(RouteKind::Tls, r, r.spec.hostnames.clone(), l4_rules!(r.spec.rules))
    }
}

impl From<&tcproutes::TcpRoute> for Route {
    fn from(r: &tcproutes::TcpRoute) -> Self {
        route!(RouteKind::Tcp, r, Vec::new(), l4_rules!(r.spec.rules))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_route_defaults_are_applied() {
        let r: httproutes::HttpRoute = serde_yaml::from_str(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps, generation: 3}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: Exact, value: /a}, headers: [{name: x, value: "1"}]}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, statusCode: 301}
    backendRefs: [{name: svc, port: 80}]
"#,
        )
        .unwrap();
        let m = Route::from(&r);
        assert_eq!(m.parent_refs[0].group, GATEWAY_GROUP);
        assert_eq!(m.parent_refs[0].kind, "Gateway");
        assert_eq!(m.parent_refs[0].gateway("apps"), Some(ObjKey::new("apps", "gw")));
        assert_eq!(m.rules[0].backends[0].weight, 1);
        assert_eq!(m.rules[0].backends[0].kind, "Service");
        assert_eq!(m.rules[0].matches[0].path, Some(PathMatch::Exact("/a".into())));
        assert_eq!(m.rules[0].matches[0].headers[0].match_type, MatchType::Exact);
        assert!(matches!(&m.rules[0].filters[0], Filter::RequestRedirect(r) if r.scheme.as_deref() == Some("https") && r.status_code == Some(301)));
    }

    #[test]
    fn grpc_method_becomes_a_path() {
        let m = GrpcMethod { service: Some("pkg.Svc".into()), method: Some("Get".into()), match_type: MatchType::Exact };
        assert_eq!(grpc_path(&m), PathMatch::Exact("/pkg.Svc/Get".into()));
        let m = GrpcMethod { service: Some("pkg.Svc".into()), method: None, match_type: MatchType::Exact };
        assert_eq!(grpc_path(&m), PathMatch::PathPrefix("/pkg.Svc/".into()));
    }
}
