//! What the controller end-to-end tests share: environment, polling, the controller process,
//! and Kubernetes object helpers. Each test binary uses part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gateway_api::experimental::gateways::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::{json, Value};

/// The options every controller under test gets.
pub struct Common<'a> {
    pub cluster_id: &'a str,
    pub controller_name: &'a str,
    pub lease: &'a str,
    pub resync: &'a str,
}

pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: run via tests/run (or source the ground's STATE_DIR/*.env)"),
    }
}

/// A client for the ground's apiserver (KUBECONFIG).
pub async fn kube_client() -> Client {
    let kubeconfig = env("KUBECONFIG");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("KUBECONFIG={kubeconfig}: {e}"));
    Client::try_from(config).expect("kube client")
}

/// A VPC `10.<octet>.0.0/16` with two subnets in two zones (an ALB needs both).
pub async fn vpc_with_subnets(ec2: &aws_sdk_ec2::Client, octet: u8) -> (String, Vec<String>) {
    let vpc = ec2.create_vpc().cidr_block(format!("10.{octet}.0.0/16")).send().await.expect("CreateVpc");
    let vpc = vpc.vpc().and_then(|v| v.vpc_id()).expect("vpc id").to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let s = ec2.create_subnet().vpc_id(&vpc).cidr_block(format!("10.{octet}.{i}.0/24")).availability_zone(*zone).send().await.expect("CreateSubnet");
        subnets.push(s.subnet().and_then(|s| s.subnet_id()).expect("subnet id").to_string());
    }
    (vpc, subnets)
}

/// A self-signed certificate and key for `cn` (PEM), made with the openssl CLI the k8s ground
/// needs anyway.
pub fn self_signed(cn: &str) -> (String, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("cert"));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl (needed to make a test certificate)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    let pems = (std::fs::read_to_string(&crt).unwrap(), std::fs::read_to_string(&key).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    pems
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{:x}{:x}{:x}", std::process::id() & 0xfff, N.fetch_add(1, Ordering::Relaxed), nanos & 0xffff)
}

/// Appends a line to a figures report (a String): `figure!(out, "ops {n}")`.
#[macro_export]
macro_rules! figure {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Writes a test's figures straight to the process's stderr: libtest captures only the print
/// macros, so the figures show in `cargo test` output (tests/run) even when the test passes.
pub fn print_figures(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Progress on stderr (shown with --nocapture, and on failure), with the time since start.
pub fn step(what: &str) {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed();
    eprintln!("[e2e {:>6.1}s] {what}", t.as_secs_f64());
}

pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("timed out after {timeout:?} waiting for {what}; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// HTTP/1.0 so the answer is never chunked; `base` is `http://host:port`.
pub fn http(method: &str, base: &str, path: &str) -> Result<(u16, String), String> {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| format!("{base}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Length: 0\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let code = out.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad response: {out:.200}"))?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// A Compute API call on the GCE fake (plain HTTP/1.1, optional JSON body); `path` is absolute
/// or a full URL on `base` (selfLinks). Any status but 200 is an error.
pub fn gce_request(base: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let path = path.strip_prefix(base.trim_end_matches('/')).unwrap_or(path);
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| format!("{hostport}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let body = match body {
        Some(b) => b.to_string(),
        None if method == "POST" => "{}".to_string(),
        None => String::new(),
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if code != 200 {
        return Err(format!("{method} {path}: {code}: {body:.300}"));
    }
    serde_json::from_str(body).map_err(|e| format!("{path}: {e}"))
}

pub struct Controller {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Controller {
    /// Starts `cloudgate controller` with the options every test shares plus the provider's own.
    pub fn start(o: &Common<'_>, provider_args: &[&str]) -> Controller {
        Controller::start_with_env(o, provider_args, &[])
    }

    /// As [`Controller::start`], with extra environment (e.g. cloud endpoints through the
    /// fault proxy).
    pub fn start_with_env(o: &Common<'_>, provider_args: &[&str], vars: &[(&str, &str)]) -> Controller {
        let port = free_port();
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{port}.log", o.lease));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cloudgate"))
            .args(["controller", "--cluster-id", o.cluster_id, "--controller-name", o.controller_name])
            .args(["--lease-name", o.lease, "--leader-election-namespace", "default"])
            .args(["--resync-period", o.resync])
            .args(provider_args)
            .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--concurrency", "2"])
            .env("RUST_LOG", "info,cloudgate=debug")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start cloudgate controller");
        Controller { child, base: format!("http://127.0.0.1:{port}"), log }
    }

    pub fn readyz(&self) -> Option<u16> {
        http("GET", &self.base, "/readyz").ok().map(|(c, _)| c)
    }

    pub fn metrics(&self) -> String {
        http("GET", &self.base, "/metrics").map(|(_, b)| b).unwrap_or_default()
    }

    /// Sum of a metric's samples whose line contains every `filter`.
    pub fn metric(&self, name: &str, filters: &[&str]) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && filters.iter().all(|f| l.contains(f)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn wait_ready(&self) {
        poll("controller /readyz", Duration::from_secs(60), || async {
            match self.readyz() {
                Some(200) => Ok(()),
                other => Err(format!("{other:?}; log {}", self.log.display())),
            }
        })
        .await
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- controller log {} (tail) ---\n{}", self.log.display(), self.log_tail());
        }
        self.kill();
    }
}

pub fn gvk(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind))
}

pub async fn create(client: &Client, ns: Option<&str>, obj: Value) -> DynamicObject {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let api_version = obj["apiVersion"].as_str().unwrap().to_string();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &kind));
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let obj: DynamicObject = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create {kind}: {e}"))
}

pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    create(client, None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await;
    name
}

pub async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone()).delete(name, &DeleteParams::background()).await;
}

/// A Deployment (kwok runs its pods: Ready with an IP) and a Service in front of it.
pub async fn app(client: &Client, ns: &str, name: &str, replicas: i32) {
    create(
        client,
        Some(ns),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "registry.invalid/cloudgate/e2e:never-pulled",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}}}),
    )
    .await;
    service(client, ns, name).await;
}

pub async fn service(client: &Client, ns: &str, name: &str) {
    create(
        client,
        Some(ns),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    )
    .await;
}

pub async fn scale(client: &Client, ns: &str, name: &str, replicas: i32) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await
        .expect("scale");
}

/// IPs of the Ready pods of `app` (exactly `want` of them).
pub async fn pod_ips(client: &Client, ns: &str, app: &str, want: usize) -> BTreeSet<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    poll(&format!("{want} ready pods of {app}"), Duration::from_secs(90), || async {
        let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.map_err(|e| e.to_string())?;
        let live: Vec<&Pod> = list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let ips: BTreeSet<String> = live
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")))
            .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
            .collect();
        let total = live.len();
        if ips.len() == want && total == want { Ok(ips) } else { Err(format!("{} ready of {total}: {ips:?}", ips.len())) }
    })
    .await
}

pub fn class(name: &str, controller: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": name},
        "spec": {"controllerName": controller}})
}

pub fn gateway(name: &str, class: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": name},
        "spec": {"gatewayClassName": class, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})
}

pub async fn get_gateway(client: &Client, ns: &str, name: &str) -> Option<Gateway> {
    Api::<Gateway>::namespaced(client.clone(), ns).get_opt(name).await.expect("get gateway")
}

pub async fn get_route(client: &Client, ns: &str, name: &str) -> DynamicObject {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &gvk("HTTPRoute")).get(name).await.expect("get route")
}

pub fn cond<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// The route's `status.parents` entry of `controller`, as (type, status, reason, observedGeneration).
pub fn route_conditions(route: &DynamicObject, controller: &str) -> Vec<(String, String, String, Option<i64>)> {
    route
        .data
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p["controllerName"] == controller)
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["type"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["observedGeneration"].as_i64(),
            )
        })
        .collect()
}

/// Waits until the route's entry of `controller` has `type_` = `status` with `reason`, at the
/// route's current generation.
pub async fn wait_route_condition(client: &Client, ns: &str, name: &str, controller: &str, type_: &str, status: &str, reason: &str) {
    poll(&format!("HTTPRoute {ns}/{name} {type_}={status} ({reason})"), Duration::from_secs(60), || async {
        let r = get_route(client, ns, name).await;
        let generation = r.metadata.generation;
        let conds = route_conditions(&r, controller);
        if conds.iter().any(|(t, s, re, g)| t == type_ && s == status && re == reason && *g == generation) {
            Ok(())
        } else {
            Err(format!("generation {generation:?}: {conds:?}"))
        }
    })
    .await
}

/// Waits for Programmed=True at the current generation and returns the address.
pub async fn wait_programmed(client: &Client, ns: &str, name: &str) -> String {
    poll(&format!("Gateway {ns}/{name} Programmed=True"), Duration::from_secs(90), || async {
        let gw = get_gateway(client, ns, name).await.ok_or("gateway missing")?;
        let status = gw.status.clone().unwrap_or_default();
        let conds = status.conditions.clone().unwrap_or_default();
        let programmed = cond(&conds, "Programmed").ok_or_else(|| format!("no Programmed yet: {conds:?}"))?;
        if programmed.status != "True" || programmed.observed_generation != gw.metadata.generation {
            return Err(format!("{programmed:?}"));
        }
        let addr = status.addresses.unwrap_or_default().first().map(|a| a.value.clone()).ok_or("no address")?;
        Ok(addr)
    })
    .await
}

/// Installs (server-side apply) cloudgate's own CRDs and waits until they are served, for tests
/// that use class parameters or policies. Idempotent; they are left installed.
pub async fn ensure_cloudgate_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in cloudgate_crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(&name, &PatchParams::apply("cloudgate-e2e").force(), &Patch::Apply(&crd)).await.unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        poll(&format!("CRD {name} established"), Duration::from_secs(30), || async {
            let c = api.get(&name).await.map_err(|e| e.to_string())?;
            let ok = c.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Established" && c.status == "True");
            if ok { Ok(()) } else { Err("not established".to_string()) }
        })
        .await;
    }
}

/// A GatewayClass whose parametersRef names CloudGatewayParameters `params`.
pub fn class_with_parameters(name: &str, controller: &str, params: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": name},
        "spec": {"controllerName": controller,
                 "parametersRef": {"group": "gateway.cloudgate.io", "kind": "CloudGatewayParameters", "name": params}}})
}

/// Waits for the class's Accepted condition to have `status` and `reason`; returns the class.
pub async fn wait_class(client: &Client, name: &str, status: &str, reason: &str) -> DynamicObject {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &gvk("GatewayClass"));
    poll(&format!("GatewayClass {name} Accepted={status} ({reason})"), Duration::from_secs(60), || async {
        let c = api.get(name).await.map_err(|e| e.to_string())?;
        let conds = c.data.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        let ok = conds.iter().any(|x| {
            x["type"] == "Accepted" && x["status"] == status && x["reason"] == reason && x["observedGeneration"] == c.metadata.generation.unwrap_or(0)
        });
        if ok { Ok(c) } else { Err(format!("{conds:?}")) }
    })
    .await
}

/// Waits until a deleted Gateway is finalized (its cloud resources drained) and gone.
pub async fn wait_gateway_gone(client: &Client, ns: &str, name: &str) {
    poll(&format!("Gateway {ns}/{name} finalized and gone"), Duration::from_secs(90), || async {
        match get_gateway(client, ns, name).await {
            None => Ok(()),
            Some(gw) => Err(format!("finalizers {:?}", gw.metadata.finalizers)),
        }
    })
    .await
}
