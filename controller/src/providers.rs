//! The provider registry: one place that maps a provider name to its implementation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cloudgate_provider::Provider;

use crate::class_params::BackendKey;
use crate::config::ConfigError;
use crate::metrics::CallSnapshot;

pub const NAMES: &[&str] = &["aws-alb", "aws-lattice", "gcp"];

pub fn by_name(name: &str) -> Option<Box<dyn Provider>> {
    match name {
        "aws-alb" => Some(Box::new(cloudgate_aws_alb::AlbProvider::default())),
        "aws-lattice" => Some(Box::new(cloudgate_aws_lattice::LatticeProvider::default())),
        "gcp" => Some(Box::new(cloudgate_gcp::GcpProvider::default())),
        _ => None,
    }
}

/// A provider the controller can drive: render plus cloud I/O, with what the generic loop needs
/// to know about it.
pub struct CloudBackend {
    pub provider: Arc<dyn cloudgate_provider::cloud::CloudProvider>,
    /// Resource kinds parents-first, for `diff`.
    pub kind_order: &'static [&'static str],
    /// Reads the provider's cloud call counter, for /metrics.
    calls: Box<dyn Fn() -> CallSnapshot + Send + Sync>,
}

fn snapshot(counter: &cloudgate_cloud_runtime::CallCounter) -> CallSnapshot {
    counter.snapshot().into_iter().map(|c| (c.service.to_string(), c.operation.to_string(), c.outcome.to_string(), c.count)).collect()
}

/// Builds the cloud half of one backend (provider + AWS region). No request is made: AWS
/// credentials and GCP Application Default Credentials are resolved on first use. `index`
/// answers what a provider needs from the cluster beyond the plan (GCP: the node of each
/// endpoint).
async fn build(key: &BackendKey, index: &Arc<Mutex<crate::index::Index>>) -> Result<CloudBackend, ConfigError> {
    let region = Some(key.region.as_str()).filter(|r| !r.is_empty());
    let with_region = |sdk: aws_config::SdkConfig| match region {
        Some(r) => sdk.into_builder().region(aws_config::Region::new(r.to_string())).build(),
        None => sdk,
    };
    match key.provider {
        "aws-alb" => {
            let opts = cloudgate_aws_alb::CloudOptions::default();
            let sdk = with_region(cloudgate_aws_alb::cloud::load_sdk_config(&opts).await);
            let cloud = cloudgate_aws_alb::AlbCloud::new(&sdk, &opts);
            let counter = cloud.calls();
            Ok(CloudBackend { provider: Arc::new(cloud), kind_order: cloudgate_aws_alb::KIND_ORDER, calls: Box::new(move || snapshot(&counter)) })
        }
        "aws-lattice" => {
            let opts = cloudgate_aws_lattice::CloudOptions::default();
            let sdk = with_region(cloudgate_aws_lattice::cloud::load_sdk_config(&opts).await);
            let cloud = cloudgate_aws_lattice::LatticeCloud::new(&sdk, &opts);
            let counter = cloud.calls();
            Ok(CloudBackend { provider: Arc::new(cloud), kind_order: cloudgate_aws_lattice::KIND_ORDER, calls: Box::new(move || snapshot(&counter)) })
        }
        "gcp" => {
            let ix = index.clone();
            let lookup: cloudgate_gcp::InstanceLookup =
                Arc::new(move |zone: &str, ip: &str| ix.lock().unwrap_or_else(|p| p.into_inner()).node_of(zone, ip));
            let config = cloudgate_gcp::GcpConfig { instances: Some(lookup), ..cloudgate_gcp::GcpConfig::from_env() };
            // The flavour comes from each class's RenderContext::scheme; this is only the fallback.
            let cloud = cloudgate_gcp::GcpCloud::new(cloudgate_gcp::GcpProvider::default(), config)
                .await
                .map_err(|e| ConfigError::Cloud(e.to_string()))?;
            let counter = cloud.calls();
            Ok(CloudBackend { provider: Arc::new(cloud), kind_order: cloudgate_gcp::KIND_ORDER, calls: Box::new(move || snapshot(&counter)) })
        }
        other => Err(ConfigError::UnknownProvider(other.to_string())),
    }
}

/// Every cloud client the controller has built, one per [`BackendKey`], made on first use:
/// GatewayClasses choose provider and region, so which clients exist is known only as classes
/// are read.
pub struct Backends {
    index: Arc<Mutex<crate::index::Index>>,
    built: Mutex<BTreeMap<BackendKey, Arc<CloudBackend>>>,
}

impl Backends {
    pub fn new(index: Arc<Mutex<crate::index::Index>>) -> Self {
        Backends { index, built: Mutex::new(BTreeMap::new()) }
    }

    pub async fn get(&self, key: &BackendKey) -> Result<Arc<CloudBackend>, ConfigError> {
        if let Some(b) = self.built.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(b.clone());
        }
        // Built outside the lock (it awaits); a concurrent build of the same key loses the race
        // and is dropped, which is harmless since building makes no request.
        let b = Arc::new(build(key, &self.index).await?);
        tracing::info!(provider = key.provider, region = %key.region, "cloud client ready");
        Ok(self.built.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_insert(b).clone())
    }

    /// Cloud calls of every backend, summed over regions, for /metrics.
    pub fn calls(&self) -> CallSnapshot {
        let mut sum: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for b in self.built.lock().unwrap_or_else(|p| p.into_inner()).values() {
            for (s, o, r, n) in (b.calls)() {
                *sum.entry((s, o, r)).or_default() += n;
            }
        }
        sum.into_iter().map(|((s, o, r), n)| (s, o, r, n)).collect()
    }
}
