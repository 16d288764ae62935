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
