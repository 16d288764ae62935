//! Pure Gateway API translation: objects in, a cloud-neutral [`plan::LoadBalancerPlan`] and the
//! status of every object out. No kube client, no async runtime, no cloud SDK: everything here
//! is a function of its inputs, and is tested as such.
//!
//! Start at [`gateway::translate_gateway`].
#![forbid(unsafe_code)]

pub mod backends;
pub mod capabilities;
pub mod conditions;
pub mod gateway;
pub mod gateway_class;
pub mod grants;
pub mod hostname;
pub mod listeners;
pub mod manifest;
pub mod model;
pub mod plan;
pub mod precedence;
pub mod rules;
pub mod selector;
pub mod status;
pub mod weights;
pub mod world;

pub use capabilities::Capabilities;
pub use gateway::{translate_gateway, GatewayTranslation};
pub use plan::LoadBalancerPlan;
pub use world::World;
