//! Backend weights: the spec allows 0..=1_000_000; clouds accept smaller ranges (ALB and
//! Lattice 0..=999, GCP 0..=1000). Scaling keeps the ratios as closely as integer weights allow
//! and never turns a zero into traffic or a non-zero into none.

/// Scales `weights` into `0..=max`. Zero stays zero; every non-zero weight stays at least 1.
/// Weights already within range are returned unchanged, so small hand-written weights like
/// 90/10 appear in the cloud exactly as written.
pub fn normalize(weights: &[u32], max: u32) -> Vec<u32> {
    let largest = weights.iter().copied().max().unwrap_or(0);
    if largest <= max {
        return weights.to_vec();
    }
    weights
        .iter()
        .map(|&w| {
            if w == 0 {
                0
            } else {
                // Round to nearest; u64 so 1_000_000 * 1000 cannot overflow.
                let scaled = (u64::from(w) * u64::from(max) + u64::from(largest) / 2) / u64::from(largest);
                (scaled as u32).clamp(1, max)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_range_weights_are_untouched() {
        assert_eq!(normalize(&[90, 10], 999), vec![90, 10]);
        assert_eq!(normalize(&[0, 1], 999), vec![0, 1]);
    }

    #[test]
    fn large_weights_scale_and_keep_zero_and_tiny() {
        assert_eq!(normalize(&[1_000_000, 0, 1], 999), vec![999, 0, 1]);
        assert_eq!(normalize(&[500_000, 500_000], 999), vec![999, 999]);
        assert_eq!(normalize(&[750_000, 250_000], 1000), vec![1000, 333]);
    }

    #[test]
    fn all_zero_stays_zero() {
        assert_eq!(normalize(&[0, 0], 999), vec![0, 0]);
        assert!(normalize(&[], 999).is_empty());
    }
}
