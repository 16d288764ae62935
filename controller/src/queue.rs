//! The work queue: one entry per key however many events name it, a key never handed to two
//! workers at once (an event for a key being reconciled marks it dirty and it runs again after),
//! delayed entries (backoff, requeue-after, resync) that an immediate add overtakes, and
//! per-key exponential backoff with jitter.
//!
//! Small and explicit rather than `kube::runtime::Controller`: triggers come from eleven watches
//! through a pure index, not from owner references, and leadership gates the workers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How a reconcile ended, from the queue's point of view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Done; come back after this long (the resync period, or sooner while provisioning).
    Requeue(Duration),
    /// Failed; come back after the key's next backoff step.
    Backoff,
    /// Done; nothing scheduled (the next event brings the key back).
    Forget,
}

#[derive(Clone, Copy, Debug)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy { base: Duration::from_millis(500), max: Duration::from_secs(300) }
    }
}

impl BackoffPolicy {
    /// `base * 2^(failures-1)`, capped, then jittered into [50%, 100%] so keys that failed
    /// together (a cloud outage) do not retry in lockstep.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let d = exp.min(self.max);
        d.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// `d` ± 10%: spreads periodic resyncs so Gateways created together are not re-checked in bursts.
pub fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.9 + fastrand::f64() * 0.2)
}

struct State<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    delayed: HashMap<K, Instant>,
    running: HashSet<K>,
    /// Added while running: goes back to `ready` when the worker finishes.
    dirty: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    notify: Notify,
    backoff: BackoffPolicy,
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    pub fn new(backoff: BackoffPolicy) -> Self {
        WorkQueue {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                queued: HashSet::new(),
                delayed: HashMap::new(),
                running: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
            }),
            notify: Notify::new(),
            backoff,
        }
    }

    /// Queue `key` now (deduplicated).
    pub fn add(&self, key: K) {
        let mut s = self.state.lock().unwrap();
        Self::add_locked(&mut s, key);
        drop(s);
        self.notify.notify_waiters();
    }

    fn add_locked(s: &mut State<K>, key: K) {
        s.delayed.remove(&key);
        if s.running.contains(&key) {
            s.dirty.insert(key);
        } else if s.queued.insert(key.clone()) {
            s.ready.push_back(key);
        }
    }

    /// Queue `key` after `after`, unless it is already due sooner.
    #[cfg(test)]
    pub fn add_after(&self, key: K, after: Duration) {
        if after.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + after;
        let mut s = self.state.lock().unwrap();
        if s.queued.contains(&key) || s.dirty.contains(&key) {
            return;
        }
        let e = s.delayed.entry(key).or_insert(at);
        if at < *e {
            *e = at;
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// Waits for a key that is due and not running, and marks it running. Call [`done`] after.
    ///
    /// [`done`]: WorkQueue::done
    pub async fn next(&self) -> K {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let mut s = self.state.lock().unwrap();
                let now = Instant::now();
                let due: Vec<K> = s.delayed.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
                for k in due {
                    Self::add_locked(&mut s, k);
                }
                if let Some(k) = s.ready.pop_front() {
                    s.queued.remove(&k);
                    s.running.insert(k.clone());
                    return k;
                }
                s.delayed.values().min().copied()
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Ends the run of `key` and schedules what the outcome asks for. A key that was added while
    /// it ran runs again right away (its inputs changed under the reconcile).
    pub fn done(&self, key: K, outcome: Outcome) {
        let mut s = self.state.lock().unwrap();
        s.running.remove(&key);
        let again = match outcome {
            Outcome::Backoff => {
                let n = s.failures.entry(key.clone()).or_insert(0);
                *n += 1;
                Some(self.backoff.delay(*n))
            }
            Outcome::Requeue(d) => {
                s.failures.remove(&key);
                Some(d)
            }
            Outcome::Forget => {
                s.failures.remove(&key);
                None
            }
        };
        if s.dirty.remove(&key) {
            Self::add_locked(&mut s, key);
        } else if let Some(d) = again {
            let at = Instant::now() + d;
            let e = s.delayed.entry(key).or_insert(at);
            if at < *e {
                *e = at;
            }
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// Keys due now and waiting for a worker.
    pub fn depth(&self) -> usize {
        self.state.lock().unwrap().ready.len()
    }

    /// Keys scheduled for later (backoff, requeue, resync).
    #[cfg(test)]
    pub fn scheduled(&self) -> usize {
        self.state.lock().unwrap().delayed.len()
    }

    /// Consecutive failures of `key` (0 after a success).
    pub fn failures(&self, key: &K) -> u32 {
        self.state.lock().unwrap().failures.get(key).copied().unwrap_or(0)
    }

    #[cfg(test)]
    fn delayed_at(&self, key: &K) -> Option<Instant> {
        self.state.lock().unwrap().delayed.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn q() -> WorkQueue<&'static str> {
        WorkQueue::new(BackoffPolicy { base: Duration::from_secs(1), max: Duration::from_secs(8) })
    }

    #[tokio::test(start_paused = true)]
    async fn dedupes_and_keeps_order() {
        let q = q();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.depth(), 2);
        assert_eq!(q.next().await, "a");
        assert_eq!(q.next().await, "b");
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_not_handed_out_twice_but_reruns_after() {
        let q = Arc::new(q());
        q.add("a");
        let k = q.next().await;
        q.add("a"); // event while running
        assert_eq!(q.depth(), 0, "not ready while running");
        let q2 = q.clone();
        let second = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!second.is_finished(), "must wait for the running key to finish");
        q.done(k, Outcome::Forget);
        assert_eq!(second.await.unwrap(), "a");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_with_jitter_and_resets_on_success() {
        let q = q();
        q.add("a");
        for n in 1..=5u32 {
            let k = q.next().await;
            let before = Instant::now();
            q.done(k, Outcome::Backoff);
            let at = q.delayed_at(&"a").unwrap();
            let full = Duration::from_secs(1u64 << (n - 1)).min(Duration::from_secs(8));
            let d = at - before;
            assert!(d >= full / 2 && d <= full, "failure {n}: {d:?} not within [{:?}, {full:?}]", full / 2);
            assert_eq!(q.failures(&"a"), n);
        }
        let k = q.next().await; // waits (paused clock auto-advances)
        q.done(k, Outcome::Requeue(Duration::from_secs(60)));
        assert_eq!(q.failures(&"a"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn immediate_add_overtakes_a_delayed_entry() {
        let q = q();
        q.add_after("a", Duration::from_secs(600));
        assert_eq!(q.scheduled(), 1);
        q.add("a");
        assert_eq!(q.scheduled(), 0);
        assert_eq!(q.next().await, "a");
        // A later add_after does not postpone an earlier schedule.
        q.done("a", Outcome::Requeue(Duration::from_secs(5)));
        let first = q.delayed_at(&"a").unwrap();
        q.add_after("a", Duration::from_secs(500));
        assert_eq!(q.delayed_at(&"a").unwrap(), first);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_become_due() {
        let q = q();
        q.add_after("later", Duration::from_secs(30));
        let start = Instant::now();
        assert_eq!(q.next().await, "later");
        assert!(Instant::now() - start >= Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(100));
            assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
        }
    }
}
