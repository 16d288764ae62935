//! Access logging and access control for what a Gateway exposes, attached to the Gateway (the
//! whole load balancer / service network) or to one route. They come from cloudgate's
//! `LatticeAccessLogPolicy` and `LatticeAuthPolicy`; only providers that say so in
//! [`Provider::access_policy_support`](crate::Provider::access_policy_support) get them in
//! [`RenderContext::access`](crate::RenderContext).

use cloudgate_translate::model::RouteKey;
use serde::Serialize;

/// What a policy is attached to, within one Gateway's render.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccessTarget {
    /// The Gateway itself (on Lattice: its service network).
    Gateway,
    /// One route attached to the Gateway (on Lattice: the route's service).
    Route(RouteKey),
}

/// As a plain string (`Gateway`, `HTTPRoute apps/web`), so maps keyed by it serialize to JSON.
impl Serialize for AccessTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AccessTarget::Gateway => s.serialize_str("Gateway"),
            AccessTarget::Route(r) => s.collect_str(r),
        }
    }
}

/// IAM auth for a target: `policy` is the IAM auth policy document (JSON). IAM auth with no
/// policy denies every request, as Lattice does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IamAuth {
    pub policy: Option<String>,
}

/// The access settings of one target. `auth: None` means auth type NONE (the default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccessSettings {
    /// Where access logs go (an S3 bucket, CloudWatch Logs group or Firehose stream ARN).
    pub access_log_destination: Option<String>,
    pub auth: Option<IamAuth>,
}
