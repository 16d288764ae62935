//! Values read from a cloud API, by resource id (ARN), reused for a while instead of read again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Values by id with an age limit. Meant for ids the cloud never reuses (ARNs), for what the
/// controller itself changes only through calls after which it refreshes the entry; the risk
/// of a stale entry is someone else changing the resource within the TTL. Zero disables it.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, id: &str) -> Option<V> {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(id) {
            Some((v, at)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, id: &str, v: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: entries of deleted resources would otherwise pile up.
        if m.len() > 100_000 {
            let ttl = self.ttl;
            m.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        m.insert(id.to_string(), (v, Instant::now()));
    }

    pub fn remove(&self, id: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_can_be_off() {
        let c = TtlCache::new(Duration::from_millis(50));
        c.put("arn:1", 7);
        assert_eq!(c.get("arn:1"), Some(7));
        assert_eq!(c.get("arn:2"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("arn:1"), None);
        c.put("arn:3", 7);
        c.remove("arn:3");
        assert_eq!(c.get("arn:3"), None);
        let off = TtlCache::new(Duration::ZERO);
        off.put("arn:1", 7);
        assert_eq!(off.get("arn:1"), None);
    }
}
