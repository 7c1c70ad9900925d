//! Sorting scores: an order-preserving map from `f64` to `u64`, so that
//! ranking a million scores is one `sort_unstable` of integers (pdqsort;
//! an LSD radix sort measured no faster here).

/// A key whose unsigned order is the numeric order of `x` (not NaN), with
/// `-0.0` and `0.0` equal as scikit-learn's `np.diff` sees them.
#[inline]
pub(crate) fn key(x: f64) -> u64 {
    // -0.0 + 0.0 is +0.0; every other value is unchanged.
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// The `f64` a [`key`] came from.
#[inline]
pub(crate) fn value(key: u64) -> f64 {
    if key >> 63 == 1 {
        f64::from_bits(key & !(1 << 63))
    } else {
        f64::from_bits(!key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_numbers() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -1e-300,
            -0.0,
            0.0,
            1e-310,
            0.5,
            1.0,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{} vs {}", w[0], w[1]);
            assert_eq!(key(w[0]) == key(w[1]), w[0] == w[1]);
        }
        for &x in &xs {
            assert_eq!(value(key(x)), x + 0.0);
        }
    }
}
