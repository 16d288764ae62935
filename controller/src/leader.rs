//! Leader election with a `coordination.k8s.io/v1` Lease, the way client-go does it: the holder
//! renews `renewTime` every renew period; a follower takes over once it has seen the same
//! holder and renewTime for a whole lease duration, measured on its own clock (so clock skew
//! between replicas does not matter); every write carries the Lease's resourceVersion, so two
//! followers racing for an expired Lease cannot both win. The leader steps down when it has not
//! managed to renew for two thirds of the lease duration, before any follower can take over.
//!
//! Only the leader reconciles and writes status; followers keep their watches (warm caches) and
//! report not-ready.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::errors::is_status;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process: pod name (or hostname) plus pid.
    pub identity: String,
    pub duration: Duration,
    pub renew_period: Duration,
}

impl LeaseConfig {
    /// The leader gives up after failing to renew for this long; followers wait `duration`.
    pub fn renew_deadline(&self) -> Duration {
        self.duration.mul_f64(2.0 / 3.0).max(self.renew_period)
    }
}

/// Identity of this process: `$POD_NAME` or the hostname, plus the pid (two processes on one
/// host, as in tests, are two candidates).
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "cloudgate".into());
    format!("{host}_{}", std::process::id())
}

/// What to do with the Lease as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free, released or expired: take it.
    Acquire,
    /// Someone else holds it and is still renewing.
    Follow,
}

/// `unchanged_for`: how long this process has seen the same holder and renewTime.
pub fn decide(spec: &LeaseSpec, me: &str, unchanged_for: Duration, default_duration: Duration) -> Decision {
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) => {
            let duration = spec.lease_duration_seconds.map_or(default_duration, |s| Duration::from_secs(s.max(1) as u64));
            if unchanged_for >= duration { Decision::Acquire } else { Decision::Follow }
        }
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// (holder, renewTime) last seen, and when this process first saw it.
    observed: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> Self {
        Elector { api: Api::namespaced(client, &cfg.namespace), cfg, observed: None }
    }

    /// Runs until `shutdown`; `leader` says whether we lead right now. On shutdown a held Lease
    /// is released so a standby takes over at once instead of after a lease duration.
    pub async fn run(mut self, leader: watch::Sender<bool>, mut shutdown: watch::Receiver<bool>) {
        let mut last_renew: Option<Instant> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renew = Some(Instant::now());
                    if !*leader.borrow() {
                        tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became the leader");
                    }
                    leader.send_replace(true);
                }
                Ok(false) => {
                    if *leader.borrow() {
                        tracing::warn!(lease = %self.cfg.name, "lost the lease to another instance; stopping reconciles");
                    }
                    leader.send_replace(false);
                    last_renew = None;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.cfg.name, error = %e, "leader election: could not read or write the lease");
                    if *leader.borrow() && last_renew.is_none_or(|t| t.elapsed() >= self.cfg.renew_deadline()) {
                        tracing::warn!(lease = %self.cfg.name, "could not renew the lease in time; stepping down");
                        leader.send_replace(false);
                    }
                }
            }
            // Leaders renew on the renew period; followers poll at the same pace (a takeover
            // waits for a lease duration anyway).
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.renew_period) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        if *leader.borrow() {
            leader.send_replace(false);
            match self.release().await {
                Ok(()) => tracing::info!(lease = %self.cfg.name, "released the lease"),
                Err(e) => tracing::warn!(lease = %self.cfg.name, error = %e, "could not release the lease; a standby takes over when it expires"),
            }
        }
    }

    /// `Ok(true)` when we hold the Lease after this call.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let me = self.cfg.identity.clone();
        let secs = self.cfg.duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.cfg.name.clone()), namespace: Some(self.cfg.namespace.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_status(&e, 409) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let record = format!("{:?}/{:?}", spec.holder_identity, spec.renew_time.as_ref().map(|t| t.0.to_string()));
        let unchanged_for = match &self.observed {
            Some((r, since)) if *r == record => since.elapsed(),
            _ => {
                self.observed = Some((record, Instant::now()));
                Duration::ZERO
            }
        };
        match decide(spec, &me, unchanged_for, self.cfg.duration) {
            Decision::Follow => return Ok(false),
            Decision::Renew => {}
            Decision::Acquire => {
                tracing::info!(lease = %self.cfg.name, previous = ?spec.holder_identity, "taking over the lease");
                spec.holder_identity = Some(me);
                spec.acquire_time = Some(now());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(secs);
        // resourceVersion from the read: a concurrent writer makes this a 409.
        match self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        self.api.replace(&self.cfg.name, &PostParams::default(), &lease).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>) -> LeaseSpec {
        LeaseSpec { holder_identity: holder.map(str::to_string), lease_duration_seconds: Some(15), ..Default::default() }
    }

    #[test]
    fn decisions() {
        let d = Duration::from_secs(15);
        assert_eq!(decide(&spec(Some("me")), "me", Duration::ZERO, d), Decision::Renew);
        assert_eq!(decide(&spec(None), "me", Duration::ZERO, d), Decision::Acquire);
        assert_eq!(decide(&spec(Some("")), "me", Duration::ZERO, d), Decision::Acquire);
        assert_eq!(decide(&spec(Some("other")), "me", Duration::from_secs(14), d), Decision::Follow);
        assert_eq!(decide(&spec(Some("other")), "me", Duration::from_secs(15), d), Decision::Acquire);
    }

    #[test]
    fn leader_steps_down_before_followers_take_over() {
        let c = LeaseConfig {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
        };
        assert!(c.renew_deadline() < c.duration);
        assert!(c.renew_deadline() >= c.renew_period);
        assert!(default_identity().contains(&std::process::id().to_string()));
    }
}
