//! HyperLogLog distinct counting (Flajolet, Fusy, Gandouet and Meunier,
//! 2007) over the crate's fixed XXH64 hash, with linear counting for small
//! cardinalities.
//!
//! A 64-bit hash needs no large-range correction. Merging takes the
//! register-wise maximum, which is exactly the sketch of the union: merged
//! registers equal those of a sketch built from all the data at once.

use serde::{Deserialize, Serialize};

use super::ProfileError;

/// Default precision: 2¹² = 4096 registers, 1.6% standard error.
pub const DEFAULT_HLL_PRECISION: u8 = 12;
/// Smallest supported precision.
pub const MIN_HLL_PRECISION: u8 = 4;
/// Largest supported precision.
pub const MAX_HLL_PRECISION: u8 = 18;

/// A HyperLogLog sketch with `2^precision` one-byte registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HllRepr", into = "HllRepr")]
pub struct HyperLogLog {
    precision: u8,
    registers: Vec<u8>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        Self {
            precision: DEFAULT_HLL_PRECISION,
            registers: vec![0; 1 << DEFAULT_HLL_PRECISION],
        }
    }
}

impl HyperLogLog {
    /// An empty sketch; `precision` must be in `4..=18`.
    pub fn new(precision: u8) -> Result<Self, ProfileError> {
        check_precision(precision)?;
        Ok(Self {
            precision,
            registers: vec![0; 1 << precision],
        })
    }

    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// The registers, in index order: what two sketches must share to
    /// describe the same set.
    pub fn registers(&self) -> &[u8] {
        &self.registers
    }

    /// Adds an item by its 64-bit hash.
    #[inline(always)]
    pub fn insert_hash(&mut self, hash: u64) {
        let p = u32::from(self.precision);
        let index = (hash >> (64 - p)) as usize;
        // A sentinel bit caps the rank at 64 − p + 1.
        let rest = (hash << p) | (1u64 << (p - 1));
        let rank = (rest.leading_zeros() + 1) as u8;
        if let Some(register) = self.registers.get_mut(index)
            && rank > *register
        {
            *register = rank;
        }
    }

    /// Union with another sketch of the same precision.
    pub fn merge(&mut self, other: &HyperLogLog) -> Result<(), ProfileError> {
        self.check_compatible(other)?;
        for (a, &b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(b);
        }
        Ok(())
    }

    pub(crate) fn check_compatible(&self, other: &HyperLogLog) -> Result<(), ProfileError> {
        if self.precision != other.precision {
            return Err(ProfileError::ParameterMismatch {
                parameter: "hll_precision",
                left: u64::from(self.precision),
                right: u64::from(other.precision),
            });
        }
        Ok(())
    }

    /// The estimated number of distinct items: the raw harmonic-mean
    /// estimate, or linear counting `m·ln(m/V)` while it is at most `2.5·m`
    /// and `V` registers are still zero.
    pub fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let mut harmonic = 0.0;
        let mut zeros = 0usize;
        for &r in &self.registers {
            // 2^−r exactly, from the exponent bits.
            harmonic += f64::from_bits((1023 - u64::from(r)) << 52);
            zeros += usize::from(r == 0);
        }
        let alpha = match self.precision {
            4 => 0.673,
            5 => 0.697,
            6 => 0.709,
            _ => 0.7213 / (1.0 + 1.079 / m),
        };
        let raw = alpha * m * m / harmonic;
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }

    /// The relative standard error of [`estimate`](Self::estimate),
    /// `1.04/√m`.
    pub fn relative_standard_error(&self) -> f64 {
        1.04 / (self.registers.len() as f64).sqrt()
    }
}

pub(crate) fn check_precision(precision: u8) -> Result<(), ProfileError> {
    if (MIN_HLL_PRECISION..=MAX_HLL_PRECISION).contains(&precision) {
        Ok(())
    } else {
        Err(ProfileError::InvalidParameter {
            name: "hll_precision",
            value: precision.to_string(),
            expected: "an integer in 4..=18",
        })
    }
}

/// The wire form: registers as a hex string, two digits each.
#[derive(Serialize, Deserialize)]
struct HllRepr {
    precision: u8,
    registers: String,
}

impl From<HyperLogLog> for HllRepr {
    fn from(hll: HyperLogLog) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut registers = String::with_capacity(hll.registers.len() * 2);
        for &r in &hll.registers {
            registers.push(char::from(HEX[usize::from(r >> 4)]));
            registers.push(char::from(HEX[usize::from(r & 15)]));
        }
        Self {
            precision: hll.precision,
            registers,
        }
    }
}

impl TryFrom<HllRepr> for HyperLogLog {
    type Error = String;

    fn try_from(repr: HllRepr) -> Result<Self, Self::Error> {
        check_precision(repr.precision).map_err(|e| e.to_string())?;
        let m = 1usize << repr.precision;
        let max_rank = 64 - repr.precision + 1;
        let digits = repr.registers.as_bytes();
        if digits.len() != 2 * m {
            return Err(format!(
                "HyperLogLog of precision {} needs {} hex digits, got {}",
                repr.precision,
                2 * m,
                digits.len()
            ));
        }
        let nibble = |d: u8| -> Result<u8, String> {
            match d {
                b'0'..=b'9' => Ok(d - b'0'),
                b'a'..=b'f' => Ok(d - b'a' + 10),
                _ => Err(format!("`{}` is not a lowercase hex digit", char::from(d))),
            }
        };
        let mut registers = Vec::with_capacity(m);
        for pair in digits.chunks_exact(2) {
            let r = (nibble(pair[0])? << 4) | nibble(pair[1])?;
            if r > max_rank {
                return Err(format!(
                    "HyperLogLog register {r} exceeds the largest rank {max_rank}"
                ));
            }
            registers.push(r);
        }
        Ok(Self {
            precision: repr.precision,
            registers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::{hash_f64, xxh64};
    use super::*;

    fn sketch_of(range: std::ops::Range<u64>) -> HyperLogLog {
        let mut hll = HyperLogLog::default();
        for i in range {
            hll.insert_hash(hash_f64(i as f64));
        }
        hll
    }

    #[test]
    fn empty_and_tiny() {
        assert_eq!(HyperLogLog::default().estimate(), 0.0);
        let one = sketch_of(0..1);
        assert!((one.estimate() - 1.0).abs() < 0.01, "{}", one.estimate());
        let mut repeated = HyperLogLog::default();
        for _ in 0..1000 {
            repeated.insert_hash(xxh64(b"same"));
        }
        assert!((repeated.estimate() - 1.0).abs() < 0.01);
    }

    /// Relative error within three standard errors (1.04/√4096 = 1.625%).
    #[test]
    fn relative_error_within_three_standard_errors() {
        let hll = HyperLogLog::default();
        let bound = 3.0 * hll.relative_standard_error();
        for n in [1_000u64, 10_000, 100_000, 1_000_000] {
            let estimate = sketch_of(0..n).estimate();
            let error = (estimate - n as f64).abs() / n as f64;
            assert!(
                error <= bound,
                "n = {n}: estimate {estimate}, error {error}"
            );
        }
        // Strings too, with the same bound.
        let mut strings = HyperLogLog::default();
        for i in 0..100_000 {
            strings.insert_hash(xxh64(format!("user-{i}").as_bytes()));
        }
        let error = (strings.estimate() - 1e5).abs() / 1e5;
        assert!(error <= bound, "strings: error {error}");
    }

    #[test]
    fn merge_is_the_union_exactly() {
        let mut left = sketch_of(0..60_000);
        let right = sketch_of(40_000..100_000);
        left.merge(&right).unwrap();
        assert_eq!(left, sketch_of(0..100_000));
        let other = HyperLogLog::new(10).unwrap();
        assert!(matches!(
            left.merge(&other),
            Err(ProfileError::ParameterMismatch { .. })
        ));
    }

    #[test]
    fn json_round_trip_and_validation() {
        let hll = sketch_of(0..5000);
        let json = serde_json::to_string(&hll).unwrap();
        let back: HyperLogLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hll);
        assert!(
            serde_json::from_str::<HyperLogLog>(r#"{"precision":4,"registers":"00"}"#).is_err()
        );
        assert!(serde_json::from_str::<HyperLogLog>(r#"{"precision":2,"registers":""}"#).is_err());
        let too_big = format!(r#"{{"precision":4,"registers":"ff{}"}}"#, "00".repeat(15));
        assert!(serde_json::from_str::<HyperLogLog>(&too_big).is_err());
        assert!(HyperLogLog::new(19).is_err());
    }
}
