//! An exact sum of `f64` values, so that merged profiles report the same sum,
//! bit for bit, as the profile of the whole data in any order.
//!
//! Every finite `f64` is an integer multiple of 2⁻¹⁰⁷⁴, so the exact sum of
//! any number of them is an integer `S` times 2⁻¹⁰⁷⁴. `S` is held as signed
//! 32-bit digits in `i64` limbs (a "superaccumulator"): adding a value
//! touches three limbs, carries are propagated lazily, and [`ExactSum::value`]
//! rounds `S · 2⁻¹⁰⁷⁴` once, to nearest with ties to even. Addition of
//! integers is associative and commutative, hence order-independence.

use serde::{Deserialize, Serialize};

/// Bits per limb digit; the other 32 bits of each `i64` absorb carries.
const DIGIT_BITS: u32 = 32;
const DIGIT_MASK: i64 = (1 << DIGIT_BITS) - 1;
/// `S` needs 2098 bits for one value's range plus 64 for the count of
/// values: 68 limbs, two more for headroom.
const LIMBS: usize = 70;
/// Additions allowed between carry propagations: each adds less than 2³²
/// to a limb, so limbs stay below 2⁶² + 2³² in magnitude.
const MAX_PENDING: u32 = 1 << 30;

/// The exact sum of finite values.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "ExactSumRepr", into = "ExactSumRepr")]
pub struct ExactSum {
    /// Boxed: 560 bytes would dominate the size of every profile.
    limbs: Box<[i64; LIMBS]>,
    /// Additions since the last carry propagation.
    pending: u32,
}

impl Default for ExactSum {
    fn default() -> Self {
        Self {
            limbs: Box::new([0; LIMBS]),
            pending: 0,
        }
    }
}

impl PartialEq for ExactSum {
    /// Equal when the exact sums are equal, however they were accumulated.
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}

impl ExactSum {
    /// Adds a finite value; non-finite values are ignored (profiles count
    /// them elsewhere).
    #[inline(always)]
    pub fn add(&mut self, x: f64) {
        let bits = x.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as u32;
        if exponent == 0x7ff {
            return;
        }
        let fraction = bits & ((1u64 << 52) - 1);
        // x = mantissa · 2^(shift − 1074).
        let (mantissa, shift) = if exponent == 0 {
            (fraction, 0)
        } else {
            (fraction | (1u64 << 52), exponent - 1)
        };
        let limb = (shift / DIGIT_BITS) as usize;
        let wide = u128::from(mantissa) << (shift % DIGIT_BITS);
        let d0 = (wide & DIGIT_MASK as u128) as i64;
        let d1 = ((wide >> 32) & DIGIT_MASK as u128) as i64;
        let d2 = (wide >> 64) as i64;
        // shift ≤ 2045, so limb + 2 ≤ 65 < LIMBS.
        if bits >> 63 == 1 {
            self.limbs[limb] -= d0;
            self.limbs[limb + 1] -= d1;
            self.limbs[limb + 2] -= d2;
        } else {
            self.limbs[limb] += d0;
            self.limbs[limb + 1] += d1;
            self.limbs[limb + 2] += d2;
        }
        self.pending += 1;
        if self.pending >= MAX_PENDING {
            self.normalize();
        }
    }

    /// Adds another exact sum.
    pub fn merge(&mut self, other: &ExactSum) {
        self.normalize();
        let other = other.normalized();
        for (a, b) in self.limbs.iter_mut().zip(other.iter()) {
            *a += *b;
        }
        self.normalize();
    }

    /// Propagates carries: afterwards every limb but the top one is in
    /// `[0, 2³²)` and the top one carries the sign. This form is unique.
    pub fn normalize(&mut self) {
        normalize(&mut self.limbs);
        self.pending = 0;
    }

    fn normalized(&self) -> [i64; LIMBS] {
        let mut limbs = *self.limbs;
        normalize(&mut limbs);
        limbs
    }

    /// The exact sum rounded to the nearest `f64`, ties to even; `±inf` when
    /// it is beyond the `f64` range.
    pub fn value(&self) -> f64 {
        let mut limbs = self.normalized();
        let negative = limbs[LIMBS - 1] < 0;
        if negative {
            for limb in &mut limbs {
                *limb = -*limb;
            }
            normalize(&mut limbs);
        }
        let magnitude = round_magnitude(&limbs);
        if negative { -magnitude } else { magnitude }
    }
}

fn normalize(limbs: &mut [i64; LIMBS]) {
    for i in 0..LIMBS - 1 {
        let carry = limbs[i] >> DIGIT_BITS;
        limbs[i] &= DIGIT_MASK;
        limbs[i + 1] += carry;
    }
}

/// Rounds a non-negative normalized `S` (all limbs in `[0, 2³²)`) times
/// 2⁻¹⁰⁷⁴ to the nearest `f64`.
fn round_magnitude(limbs: &[i64; LIMBS]) -> f64 {
    let Some(top) = limbs.iter().rposition(|&l| l != 0) else {
        return 0.0;
    };
    // Index of the most significant set bit of S.
    let msb = top as u32 * DIGIT_BITS + (63 - limbs[top].leading_zeros());
    let bit = |i: u32| -> u64 {
        let limb = (i / DIGIT_BITS) as usize;
        (limbs[limb] as u64 >> (i % DIGIT_BITS)) & 1
    };
    if msb < 53 {
        // S < 2⁵³: S is exact as an f64 and S · 2⁻¹⁰⁷⁴ is representable.
        let s = (limbs[0] as u64) | ((limbs[1] as u64) << DIGIT_BITS);
        return s as f64 * f64::from_bits(1);
    }
    // The 53 bits [msb − 52, msb], the round bit below them, and whether any
    // bit further below is set.
    let low = msb - 52;
    let mut mantissa = 0u64;
    for i in (low..=msb).rev() {
        mantissa = (mantissa << 1) | bit(i);
    }
    let round_bit = bit(low - 1);
    let sticky = if low >= 2 {
        let below = low - 1;
        let full = (below / DIGIT_BITS) as usize;
        limbs[..full].iter().any(|&l| l != 0)
            || (limbs[full] & ((1i64 << (below % DIGIT_BITS)) - 1)) != 0
    } else {
        false
    };
    let mut exponent_msb = msb;
    if round_bit == 1 && (sticky || mantissa & 1 == 1) {
        mantissa += 1;
        if mantissa == 1 << 53 {
            mantissa >>= 1;
            exponent_msb += 1;
        }
    }
    // value = mantissa · 2^(msb − 52 − 1074); biased exponent msb − 1074 + 1023.
    let biased = u64::from(exponent_msb) - 51;
    if biased >= 0x7ff {
        return f64::INFINITY;
    }
    f64::from_bits((biased << 52) | (mantissa & ((1u64 << 52) - 1)))
}

/// The wire form: the normalized limbs from the lowest non-zero one.
#[derive(Serialize, Deserialize)]
struct ExactSumRepr {
    /// Index of the first limb in `limbs`.
    offset: usize,
    /// Base-2³² digits of the exact sum in units of 2⁻¹⁰⁷⁴, least
    /// significant first; the last one carries the sign.
    limbs: Vec<i64>,
}

impl From<ExactSum> for ExactSumRepr {
    fn from(sum: ExactSum) -> Self {
        let limbs = sum.normalized();
        let first = limbs.iter().position(|&l| l != 0).unwrap_or(LIMBS);
        let last = limbs.iter().rposition(|&l| l != 0).map_or(first, |i| i + 1);
        Self {
            offset: first.min(last),
            limbs: limbs[first.min(last)..last].to_vec(),
        }
    }
}

impl TryFrom<ExactSumRepr> for ExactSum {
    type Error = String;

    fn try_from(repr: ExactSumRepr) -> Result<Self, Self::Error> {
        let end = repr.offset.checked_add(repr.limbs.len());
        if end.is_none_or(|end| end > LIMBS) {
            return Err(format!(
                "exact sum has limbs up to index {:?}, at most {LIMBS} allowed",
                end
            ));
        }
        let bound = 1i64 << 40;
        if let Some(bad) = repr.limbs.iter().find(|l| l.abs() >= bound) {
            return Err(format!("exact sum limb {bad} is out of range"));
        }
        let mut sum = ExactSum::default();
        sum.limbs[repr.offset..repr.offset + repr.limbs.len()].copy_from_slice(&repr.limbs);
        sum.normalize();
        // No sum of f64 values reaches the top limb (|S| < 2²¹⁶²): it holds
        // only the sign, 0 or −1, and rounding relies on that.
        if !matches!(sum.limbs[LIMBS - 1], 0 | -1) {
            return Err("exact sum is beyond the range of any sum of f64 values".to_owned());
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum_of(values: &[f64]) -> f64 {
        let mut sum = ExactSum::default();
        for &x in values {
            sum.add(x);
        }
        sum.value()
    }

    #[test]
    fn exact_where_naive_summation_is_not() {
        assert_eq!(sum_of(&[]), 0.0);
        assert_eq!(sum_of(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum_of(&[0.1, 0.2, 0.3]), 0.6);
        assert_eq!(sum_of(&[-0.0]), 0.0);
        assert_eq!(sum_of(&[-1.5, -2.25]), -3.75);
        let tiny = f64::from_bits(1);
        assert_eq!(sum_of(&[tiny, tiny, tiny]), f64::from_bits(3));
        assert_eq!(
            sum_of(&[f64::MIN_POSITIVE, -tiny]),
            f64::from_bits((1 << 52) - 1)
        );
    }

    #[test]
    fn rounds_to_nearest_with_ties_to_even() {
        let big = 2f64.powi(53);
        assert_eq!(sum_of(&[big, 1.0]), big);
        assert_eq!(sum_of(&[big, 1.0, 1.0]), big + 2.0);
        assert_eq!(sum_of(&[big, 2.0, 1.0]), big + 4.0);
        assert_eq!(sum_of(&[big, 1.0, 2f64.powi(-100)]), big + 2.0);
        assert_eq!(sum_of(&[-big, -1.0, -(2f64.powi(-100))]), -(big + 2.0));
    }

    #[test]
    fn overflow_is_infinite_and_cancels_exactly() {
        assert_eq!(sum_of(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(sum_of(&[-f64::MAX, -f64::MAX]), f64::NEG_INFINITY);
        assert_eq!(sum_of(&[f64::MAX, f64::MAX, -f64::MAX]), f64::MAX);
        assert_eq!(sum_of(&[f64::INFINITY, 1.0, f64::NAN]), 1.0);
    }

    #[test]
    fn json_round_trip_and_bad_input() {
        let mut sum = ExactSum::default();
        for x in [1e300, -3.5, 1e-300, 7.0] {
            sum.add(x);
        }
        let json = serde_json::to_string(&sum).unwrap();
        let back: ExactSum = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sum);
        assert_eq!(back.value(), sum.value());
        assert!(serde_json::from_str::<ExactSum>(r#"{"offset":69,"limbs":[1,2]}"#).is_err());
        assert!(
            serde_json::from_str::<ExactSum>(r#"{"offset":0,"limbs":[9223372036854775807]}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<ExactSum>(r#"{"offset":69,"limbs":[5]}"#).is_err());
        let negative: ExactSum = serde_json::from_str(r#"{"offset":0,"limbs":[-3]}"#).unwrap();
        assert_eq!(negative.value(), -3.0 * f64::from_bits(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5u64),
            ..ProptestConfig::default()
        })]

        /// Against integer arithmetic on values that are multiples of 2⁻²⁰.
        #[test]
        fn matches_integer_sum(units in prop::collection::vec(-(1i64 << 50)..(1i64 << 50), 0..200)) {
            let scale = 2f64.powi(-20);
            let values: Vec<f64> = units.iter().map(|&u| u as f64 * scale).collect();
            let exact: i128 = units.iter().map(|&u| i128::from(u)).sum();
            prop_assert_eq!(sum_of(&values), exact as f64 * scale);
        }

        #[test]
        fn order_and_grouping_do_not_matter(
            values in prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL, 0..100),
            split in 0usize..100,
        ) {
            let split = split.min(values.len());
            let mut reversed = values.clone();
            reversed.reverse();
            let mut left = ExactSum::default();
            let mut right = ExactSum::default();
            for &x in &values[..split] { left.add(x); }
            for &x in &values[split..] { right.add(x); }
            right.merge(&left);
            prop_assert_eq!(sum_of(&values), sum_of(&reversed));
            prop_assert_eq!(right.value(), sum_of(&values));
        }
    }
}
