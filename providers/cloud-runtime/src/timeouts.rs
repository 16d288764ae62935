//! Timeout settings every AWS provider reads the same way.

use std::time::Duration;

/// Environment variable overriding the timeout of one cloud API attempt (the SDK retries
/// after it): `20s`, `1500ms` or plain seconds. For tests that hold answers back (the chaos
/// test's fault proxy) and for operators behind slow networks; unset or malformed, `default`.
pub const ATTEMPT_TIMEOUT_ENV: &str = "CLOUDGATE_CLOUD_ATTEMPT_TIMEOUT";

pub fn attempt_timeout(default: Duration) -> Duration {
    std::env::var(ATTEMPT_TIMEOUT_ENV).ok().as_deref().and_then(parse).unwrap_or(default)
}

fn parse(v: &str) -> Option<Duration> {
    let v = v.trim();
    let d = if let Some(ms) = v.strip_suffix("ms") {
        Duration::from_millis(ms.trim().parse().ok()?)
    } else {
        Duration::from_secs_f64(v.strip_suffix('s').unwrap_or(v).trim().parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0)?)
    };
    (!d.is_zero()).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_milliseconds_and_rejects_the_rest() {
        assert_eq!(parse("4s"), Some(Duration::from_secs(4)));
        assert_eq!(parse("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse(" 2.5 "), Some(Duration::from_millis(2500)));
        for bad in ["", "0", "0s", "-1s", "soon", "5m", "NaN"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
