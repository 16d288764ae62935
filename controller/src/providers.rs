//! The provider registry: one place that maps a provider name to its implementation.

use cloudgate_provider::Provider;

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
    pub provider: std::sync::Arc<dyn cloudgate_provider::cloud::CloudProvider>,
    /// Resource kinds parents-first, for `diff`.
    pub kind_order: &'static [&'static str],
    /// The region actually used (flag, or the SDK's default chain).
    pub region: String,
    /// Reads the provider's cloud call counter, for /metrics.
    pub calls: Option<Box<dyn Fn() -> crate::metrics::CallSnapshot + Send + Sync>>,
}

/// Builds the cloud half of `args.provider`. Only providers with observe/apply are accepted
/// (checked by `ControllerArgs::validate` first). `index` answers what a provider needs from the
/// cluster beyond the plan (GCP: the node of each endpoint).
pub async fn cloud_by_name(
    args: &crate::config::ControllerArgs,
    index: &std::sync::Arc<std::sync::Mutex<crate::index::Index>>,
) -> Result<CloudBackend, crate::config::ConfigError> {
    let region = args.region.as_deref().filter(|r| !r.is_empty());
    match args.provider.as_str() {
        "aws-alb" => {
            let opts = cloudgate_aws_alb::CloudOptions::default();
            let mut sdk = cloudgate_aws_alb::cloud::load_sdk_config(&opts).await;
            if let Some(r) = region {
                sdk = sdk.into_builder().region(aws_config::Region::new(r.to_string())).build();
            }
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
            let cloud = cloudgate_aws_alb::AlbCloud::new(&sdk, &opts);
            let counter = cloud.calls();
            Ok(CloudBackend {
                provider: std::sync::Arc::new(cloud),
                kind_order: cloudgate_aws_alb::KIND_ORDER,
                region,
                calls: Some(Box::new(move || {
                    counter
                        .snapshot()
                        .into_iter()
                        .map(|c| (c.service.to_string(), c.operation.to_string(), c.outcome.to_string(), c.count))
                        .collect()
                })),
            })
        }
        "aws-lattice" => {
            let opts = cloudgate_aws_lattice::CloudOptions::default();
            let mut sdk = cloudgate_aws_lattice::cloud::load_sdk_config(&opts).await;
            if let Some(r) = region {
                sdk = sdk.into_builder().region(aws_config::Region::new(r.to_string())).build();
            }
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
            let cloud = cloudgate_aws_lattice::LatticeCloud::new(&sdk, &opts);
            let counter = cloud.calls();
            Ok(CloudBackend {
                provider: std::sync::Arc::new(cloud),
                kind_order: cloudgate_aws_lattice::KIND_ORDER,
                region,
                calls: Some(Box::new(move || {
                    counter
                        .snapshot()
                        .into_iter()
                        .map(|c| (c.service.to_string(), c.operation.to_string(), c.outcome.to_string(), c.count))
                        .collect()
                })),
            })
        }
        "gcp" => {
            let flavour = args.gcp_flavour().ok_or_else(|| crate::config::ConfigError::BadScheme(args.scheme.clone()))?;
            let ix = index.clone();
            let lookup: cloudgate_gcp::InstanceLookup =
                std::sync::Arc::new(move |zone: &str, ip: &str| ix.lock().unwrap_or_else(|p| p.into_inner()).node_of(zone, ip));
            let config = cloudgate_gcp::GcpConfig { instances: Some(lookup), ..cloudgate_gcp::GcpConfig::from_env() };
            let cloud = cloudgate_gcp::GcpCloud::new(cloudgate_gcp::GcpProvider::new(flavour), config)
                .await
                .map_err(|e| crate::config::ConfigError::Cloud(e.to_string()))?;
            let counter = cloud.calls();
            Ok(CloudBackend {
                provider: std::sync::Arc::new(cloud),
                kind_order: cloudgate_gcp::KIND_ORDER,
                region: region.unwrap_or_default().to_string(),
                calls: Some(Box::new(move || {
                    counter
                        .snapshot()
                        .into_iter()
                        .map(|c| (c.service.to_string(), c.operation.to_string(), c.outcome.to_string(), c.count))
                        .collect()
                })),
            })
        }
        other => Err(crate::config::ConfigError::UnknownProvider(other.to_string())),
    }
}
