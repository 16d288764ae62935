//! Kubernetes manifests (multi-document YAML or JSON, `List`s) into a [`World`]. Pure: the
//! caller reads the bytes.
//!
//! Malformed YAML is an error; an object of an unknown kind, or one that does not fit its
//! schema, is reported as a warning naming the source and object and skipped, the way
//! `kubectl apply` reports one bad object without dropping the rest.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::Route;
use crate::World;

#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {doc}: malformed YAML: {error}")]
pub struct YamlError {
    pub source_name: String,
    pub doc: usize,
    pub error: serde_yaml::Error,
}

/// What loading produced besides the objects.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: usize,
    pub warnings: Vec<String>,
}

pub fn load_str(label: &str, text: &str, world: &mut World, loaded: &mut Loaded) -> Result<(), YamlError> {
    for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(de)
            .map_err(|e| YamlError { source_name: label.to_string(), doc: doc + 1, error: e })?;
        if value.is_null() {
            continue;
        }
        let items = match value.get("kind").and_then(Value::as_str) {
            Some(k) if k.ends_with("List") => value.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
            _ => vec![value],
        };
        for obj in items {
            let where_ = format!("{label}: document {}", doc + 1);
            if let Err(w) = add(obj, world) {
                loaded.warnings.push(format!("{where_}: {w}"));
            } else {
                loaded.objects += 1;
            }
        }
    }
    Ok(())
}

fn describe(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("<no kind>");
    let meta = obj.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or("<no name>");
    match meta.and_then(|m| m.get("namespace")).and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn typed<T: DeserializeOwned>(obj: Value, what: &str) -> Result<T, String> {
    serde_json::from_value(obj).map_err(|e| format!("{what} is invalid: {e}; skipped"))
}

/// Fills what the API server would: a namespace on namespaced objects, generation 1, and
/// Secret `stringData` folded into `data`.
fn defaults(obj: &mut Value, namespaced: bool) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    if namespaced && !meta.contains_key("namespace") {
        meta.insert("namespace".into(), Value::String("default".into()));
    }
    if !meta.get("generation").and_then(Value::as_i64).is_some_and(|g| g > 0) {
        // The API server owns generation (always >= 1); anything else in a manifest, `null`
        // included, means "not set", so status never carries an observedGeneration the CRD
        // rejects (or none at all).
        meta.insert("generation".into(), Value::from(1));
    }
}

fn add(mut obj: Value, world: &mut World) -> Result<(), String> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    // An empty name is no name: the API server would refuse the object.
    if obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(format!("{} has no metadata.name; skipped", describe(&obj)));
    }
    let namespaced = !matches!(kind.as_str(), "GatewayClass" | "Namespace");
    defaults(&mut obj, namespaced);
    let what = describe(&obj);
    match (group, kind.as_str()) {
        ("gateway.networking.k8s.io", "GatewayClass") => world.upsert_class(typed(obj, &what)?),
        ("gateway.networking.k8s.io", "Gateway") => world.upsert_gateway(typed(obj, &what)?),
        ("gateway.networking.k8s.io", "HTTPRoute") => {
            let r: gateway_api::experimental::httproutes::HttpRoute = typed(obj, &what)?;
            world.upsert_route(Route::from(&r));
        }
        ("gateway.networking.k8s.io", "GRPCRoute") => {
            let r: gateway_api::experimental::grpcroutes::GrpcRoute = typed(obj, &what)?;
            world.upsert_route(Route::from(&r));
        }
        ("gateway.networking.k8s.io", "TLSRoute") => {
            let r: gateway_api::experimental::tlsroutes::TlsRoute = typed(obj, &what)?;
            world.upsert_route(Route::from(&r));
        }
        ("gateway.networking.k8s.io", "TCPRoute") => {
            let r: gateway_api::experimental::tcproutes::TcpRoute = typed(obj, &what)?;
            world.upsert_route(Route::from(&r));
        }
        ("gateway.networking.k8s.io", "ReferenceGrant") => world.upsert_grant(typed(obj, &what)?),
        ("gateway.networking.k8s.io", "BackendTLSPolicy") => {
            // Parsed so a bad one is reported; translation does not use BackendTLSPolicy yet.
            let _: gateway_api::backendtlspolicies::BackendTlsPolicy = typed(obj, &what)?;
            return Err(format!("{what}: BackendTLSPolicy is not implemented by cloudgate yet; ignored"));
        }
        ("", "Service") => world.upsert_service(typed(obj, &what)?),
        ("", "Namespace") => world.upsert_namespace(typed(obj, &what)?),
        ("", "Secret") => {
            fold_string_data(&mut obj);
            world.upsert_secret(typed(obj, &what)?)
        }
        ("discovery.k8s.io", "EndpointSlice") => world.upsert_slice(typed(obj, &what)?),
        _ => return Err(format!("{what} ({api_version}) is not a kind cloudgate reads; skipped")),
    }
    Ok(())
}

/// `stringData` is write-only sugar the API server folds into base64 `data`.
fn fold_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else { return };
    let Some(Value::Object(sd)) = map.remove("stringData") else { return };
    let data = map.entry("data").or_insert_with(|| Value::Object(Default::default()));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in sd {
            if let Some(s) = v.as_str() {
                data.insert(k, Value::String(base64_encode(s.as_bytes())));
            }
        }
    }
}

fn base64_encode(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_with_bad_and_unknown_objects() {
        let mut w = World::new();
        let mut l = Loaded::default();
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: 7}\n";
        load_str("x.yaml", text, &mut w, &mut l).unwrap();
        assert_eq!(l.objects, 1);
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        assert!(l.warnings[0].contains("x.yaml: document 3: Deployment d"));
        assert!(l.warnings[1].contains("Gateway default/g is invalid"));
    }

    // Found by the fuzzer (controller/src/fuzz_tests.rs): a Gateway named "" was planned, and
    // its routes got status entries for a parentRef with an empty name, which the CRD rejects.
    #[test]
    fn objects_with_an_empty_name_are_skipped() {
        let mut w = World::new();
        let mut l = Loaded::default();
        let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: ''}\nspec: {gatewayClassName: cg, listeners: []}\n";
        load_str("e.yaml", text, &mut w, &mut l).unwrap();
        assert!(w.gateways.is_empty());
        assert_eq!(l.warnings, vec!["e.yaml: document 1: Gateway <no name> has no metadata.name; skipped"]);
    }

    // Found by the fuzzer: `generation: null` left GatewayClass conditions without
    // observedGeneration.
    #[test]
    fn generation_is_set_when_null_or_not_positive() {
        for g in ["null", "-3", "0", "x"] {
            let mut w = World::new();
            let text = format!("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {{name: c, generation: {g}}}\nspec: {{controllerName: x}}\n");
            load_str("g.yaml", &text, &mut w, &mut Loaded::default()).unwrap();
            assert_eq!(w.classes["c"].metadata.generation, Some(1), "generation: {g}");
        }
    }

    #[test]
    fn malformed_yaml_is_an_error() {
        let mut w = World::new();
        let mut l = Loaded::default();
        let err = load_str("bad.yaml", "kind: [unclosed", &mut w, &mut l).unwrap_err();
        assert!(err.to_string().starts_with("bad.yaml: document 1: malformed YAML"), "{err}");
    }

    #[test]
    fn string_data_becomes_data() {
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_encode(b"hi!"), "aGkh");
        let mut w = World::new();
        let mut l = Loaded::default();
        load_str("s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {tls.crt: abc}\n", &mut w, &mut l).unwrap();
        let s = w.secrets.values().next().unwrap();
        assert_eq!(s.data.as_ref().unwrap()["tls.crt"].0, b"abc");
    }
}
