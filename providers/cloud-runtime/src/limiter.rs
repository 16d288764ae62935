//! Client-side token bucket in front of every cloud call. AWS and GCE throttle per account/project
//! across every client of an API (the console, terraform, other controllers): a controller that
//! bursts through a Gateway deletion can starve them all. The bucket smooths our calls to a
//! steady rate with short bursts; the SDK's retry still handles throttling we get anyway.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second; `<= 0` disables limiting.
    rate: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` calls per second on average, up to `burst` at once after a quiet period.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter { rate, burst, bucket: Mutex::new(Bucket { tokens: burst, last: Instant::now() }) }
    }

    pub fn unlimited() -> Self {
        Self::new(0.0, 1)
    }

    /// Waits for a token. Waiters queue in arrival order (tokio's mutex is fair), so a burst of
    /// reconciles shares the rate instead of one of them starving.
    pub async fn acquire(&self) {
        if self.rate <= 0.0 {
            return;
        }
        let mut b = self.bucket.lock().await;
        loop {
            let now = Instant::now();
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - b.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_paces() {
        let l = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1), "the burst is immediate");
        for _ in 0..10 {
            l.acquire().await;
        }
        let e = start.elapsed();
        assert!(e >= Duration::from_millis(990) && e <= Duration::from_millis(1100), "{e:?}");
        // After a quiet second the bucket holds a burst again (capped at 5).
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(t.elapsed() < Duration::from_millis(1));
        l.acquire().await;
        assert!(t.elapsed() >= Duration::from_millis(99));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let l = RateLimiter::unlimited();
        let start = Instant::now();
        for _ in 0..1000 {
            l.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
