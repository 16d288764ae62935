//! `cloudgate controller` flags. Every flag has an environment fallback so the same image runs
//! from a Deployment's `env:` or from a shell.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::providers;
use crate::DEFAULT_CONTROLLER_NAME;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args, Clone, Debug)]
pub struct ControllerArgs {
    /// Kubeconfig file. Without it: $KUBECONFIG, ~/.kube/config, then the in-cluster service
    /// account (kube's usual inference).
    #[arg(long, env = "CLOUDGATE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// GatewayClasses with this controllerName are ours.
    #[arg(long, env = "CLOUDGATE_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Identifies this cluster in the ownership tags of every cloud resource, so two clusters
    /// sharing an account never touch each other's resources.
    #[arg(long, env = "CLOUDGATE_CLUSTER_ID")]
    pub cluster_id: String,
    /// Which cloud to provision in.
    #[arg(long, env = "CLOUDGATE_PROVIDER", default_value = "aws-alb", value_parser = clap::builder::PossibleValuesParser::new(providers::NAMES))]
    pub provider: String,
    /// Cloud region; for AWS, defaults to the SDK's (AWS_REGION, profile).
    #[arg(long, env = "CLOUDGATE_REGION")]
    pub region: Option<String>,
    /// VPC the load balancers and target groups go into (aws-alb, aws-lattice), or the GCP
    /// network of the NEGs (gcp; GCE's `default` network when empty).
    #[arg(long, env = "CLOUDGATE_VPC_ID", default_value = "")]
    pub vpc_id: String,
    /// Subnets for the load balancers (comma separated; ALB needs two in different AZs).
    #[arg(long, env = "CLOUDGATE_SUBNETS", value_delimiter = ',')]
    pub subnets: Vec<String>,
    /// ALB scheme: internet-facing or internal. For gcp, the load balancer flavour:
    /// global-external-managed (also what the default internet-facing means),
    /// regional-external-managed or regional-internal-managed (both need --region).
    #[arg(long, env = "CLOUDGATE_SCHEME", default_value = "internet-facing")]
    pub scheme: String,
    /// GCP project the load balancers go into (gcp only). The Compute endpoint and credentials
    /// come from the environment: Application Default Credentials, or GCE_ENDPOINT (and
    /// GCE_ANONYMOUS) for a local fake.
    #[arg(long, env = "CLOUDGATE_GCP_PROJECT", default_value = "")]
    pub gcp_project: String,
    /// Gateways reconciled at once. One Gateway is never reconciled concurrently with itself.
    #[arg(long, env = "CLOUDGATE_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// How often every Gateway is re-checked against the cloud (drift), with ±10% jitter.
    /// Accepts `90s`, `10m`, `1h`, `500ms` or plain seconds.
    #[arg(long, env = "CLOUDGATE_RESYNC_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "CLOUDGATE_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader election Lease; defaults to the pod's namespace (in cluster) or
    /// the kubeconfig's namespace.
    #[arg(long, env = "CLOUDGATE_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader election Lease. Replicas sharing it elect one leader.
    #[arg(long, env = "CLOUDGATE_LEASE_NAME", default_value = "cloudgate-controller")]
    pub lease_name: String,
    /// How long a leader's Lease is valid without renewal; followers take over after that.
    #[arg(long, env = "CLOUDGATE_LEASE_DURATION", default_value = "15s", value_parser = parse_duration, hide = true)]
    pub lease_duration: Duration,
    /// How often the leader renews its Lease.
    #[arg(long, env = "CLOUDGATE_LEASE_RENEW_PERIOD", default_value = "5s", value_parser = parse_duration, hide = true)]
    pub lease_renew_period: Duration,
    /// Log lines as plain text or as JSON objects (one per line, with the reconcile span's
    /// fields). Verbosity: RUST_LOG (e.g. `info,cloudgate=debug`).
    #[arg(long, env = "CLOUDGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--provider {0} is not a provider cloudgate knows; supported: {supported}", supported = crate::providers::NAMES.join(", "))]
    UnknownProvider(String),
    #[error("--cluster-id must not be empty: it scopes the ownership tags of every cloud resource")]
    EmptyClusterId,
    #[error("--vpc-id is required for the {0} provider")]
    MissingVpc(String),
    #[error("--subnets is required for the {0} provider (an ALB needs at least two, in different availability zones)")]
    MissingSubnets(String),
    #[error("--scheme {0}: expected internet-facing or internal (aws-alb), or global-external-managed, regional-external-managed or regional-internal-managed (gcp)")]
    BadScheme(String),
    #[error("cloud client: {0}")]
    Cloud(String),
    #[error("--gcp-project is required for the gcp provider")]
    MissingGcpProject,
    #[error("--scheme {0} needs --region")]
    MissingRegion(String),
    #[error("--lease-renew-period ({renew:?}) must be shorter than --lease-duration ({duration:?})")]
    LeaseTiming { renew: Duration, duration: Duration },
}

impl ControllerArgs {
    /// Checks that flags parse alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !crate::providers::NAMES.contains(&self.provider.as_str()) {
            return Err(ConfigError::UnknownProvider(self.provider.clone()));
        }
        if self.cluster_id.trim().is_empty() {
            return Err(ConfigError::EmptyClusterId);
        }
        if self.provider == "aws-alb" {
            if self.vpc_id.is_empty() {
                return Err(ConfigError::MissingVpc(self.provider.clone()));
            }
            if self.subnets.is_empty() {
                return Err(ConfigError::MissingSubnets(self.provider.clone()));
            }
            if !matches!(self.scheme.as_str(), "internet-facing" | "internal") {
                return Err(ConfigError::BadScheme(self.scheme.clone()));
            }
        }
        // Lattice associates the service network with a VPC and puts target groups in it.
        if self.provider == "aws-lattice" && self.vpc_id.is_empty() {
            return Err(ConfigError::MissingVpc(self.provider.clone()));
        }
        if self.provider == "gcp" {
            if self.gcp_project.trim().is_empty() {
                return Err(ConfigError::MissingGcpProject);
            }
            let flavour = self.gcp_flavour().ok_or_else(|| ConfigError::BadScheme(self.scheme.clone()))?;
            if flavour.regional() && self.region.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::MissingRegion(self.scheme.clone()));
            }
        }
        if self.lease_renew_period >= self.lease_duration {
            return Err(ConfigError::LeaseTiming { renew: self.lease_renew_period, duration: self.lease_duration });
        }
        Ok(())
    }

    /// The GCP load balancer flavour `--scheme` names; the ALB default (`internet-facing`)
    /// means the provider's default flavour.
    pub fn gcp_flavour(&self) -> Option<cloudgate_gcp::Flavour> {
        match self.scheme.as_str() {
            "" | "internet-facing" => Some(cloudgate_gcp::Flavour::default()),
            s => cloudgate_gcp::Flavour::parse(s),
        }
    }
}

/// `500ms`, `90s`, `10m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 10m, 1h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ControllerArgs,
    }

    fn parse(args: &[&str]) -> ControllerArgs {
        T::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap().a
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn defaults_and_validation() {
        let a = parse(&["--cluster-id", "c1", "--vpc-id", "vpc-1", "--subnets", "subnet-a,subnet-b"]);
        assert_eq!(a.concurrency, 4);
        assert_eq!(a.resync_period, Duration::from_secs(600));
        assert_eq!(a.lease_name, "cloudgate-controller");
        assert_eq!(a.subnets, vec!["subnet-a", "subnet-b"]);
        assert_eq!(a.metrics_addr.port(), 8080);
        a.validate().unwrap();

        let e = parse(&["--cluster-id", "c1", "--subnets", "a,b"]).validate().unwrap_err();
        assert!(matches!(e, ConfigError::MissingVpc(_)));
        let e = parse(&["--cluster-id", " ", "--vpc-id", "v", "--subnets", "a,b"]).validate().unwrap_err();
        assert!(matches!(e, ConfigError::EmptyClusterId));
    }

    #[test]
    fn gcp_needs_a_project_and_a_region_for_regional_flavours() {
        let a = parse(&["--cluster-id", "c1", "--provider", "gcp", "--gcp-project", "p1"]);
        a.validate().unwrap();
        assert_eq!(a.gcp_flavour(), Some(cloudgate_gcp::Flavour::GlobalExternalManaged));
        let e = parse(&["--cluster-id", "c1", "--provider", "gcp"]).validate().unwrap_err();
        assert!(matches!(e, ConfigError::MissingGcpProject), "{e}");
        let e = parse(&["--cluster-id", "c1", "--provider", "gcp", "--gcp-project", "p1", "--scheme", "internal"]).validate().unwrap_err();
        assert!(matches!(e, ConfigError::BadScheme(_)), "{e}");
        let e = parse(&["--cluster-id", "c1", "--provider", "gcp", "--gcp-project", "p1", "--scheme", "regional-internal-managed"]).validate().unwrap_err();
        assert!(matches!(e, ConfigError::MissingRegion(_)), "{e}");
        let a = parse(&["--cluster-id", "c1", "--provider", "gcp", "--gcp-project", "p1", "--scheme", "regional-internal-managed", "--region", "us-central1"]);
        a.validate().unwrap();
        assert_eq!(a.gcp_flavour(), Some(cloudgate_gcp::Flavour::RegionalInternalManaged));
    }

    #[test]
    fn lattice_needs_a_vpc_but_no_subnets() {
        parse(&["--cluster-id", "c1", "--provider", "aws-lattice", "--vpc-id", "vpc-1"]).validate().unwrap();
        let e = parse(&["--cluster-id", "c1", "--provider", "aws-lattice"]).validate().unwrap_err();
        assert!(matches!(e, ConfigError::MissingVpc(_)), "{e}");
    }

    #[test]
    fn cluster_id_is_required() {
        assert!(T::try_parse_from(["x", "--vpc-id", "v"]).is_err() || std::env::var("CLOUDGATE_CLUSTER_ID").is_ok());
    }
}
