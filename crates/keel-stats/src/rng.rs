//! A small deterministic PRNG for Monte Carlo and Thompson sampling.
//!
//! [`Rng`] is xoshiro256\*\* (Blackman & Vigna, 2018: 256 bits of state,
//! period 2²⁵⁶ − 1, passes BigCrush) seeded through SplitMix64 so that any
//! `u64` seed, 0 included, gives a well-mixed state. It is `Clone`, 40 bytes,
//! and `Serialize`/`Deserialize`, so a bandit can persist its sampler and
//! resume the same stream. It is not cryptographic.
//!
//! Draws: [`Rng::next_f64`] uniform on `[0, 1)` (53 random bits),
//! [`Rng::normal`] by Marsaglia's polar method (the second value of each
//! pair is kept for the next call), [`Rng::gamma`] by Marsaglia & Tsang
//! (2000) with the `U^{1/a}` boost for shape `a < 1`, and [`Rng::beta`] as
//! `X / (X + Y)` of two gammas.

use crate::{Result, positive};
use serde::{Deserialize, Serialize};

/// One step of SplitMix64 (Steele, Lea & Flood 2014), used for seeding.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded xoshiro256\*\* generator (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
    /// The unused second normal of the last polar-method pair.
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform draw from `[0, 1)`: the top 53 bits times 2⁻⁵³.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw from `(0, 1)` (never 0, for logs).
    fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (Lemire's multiply-shift, unbiased);
    /// 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// A standard normal draw, by Marsaglia's polar method.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.next_f64() - 1.0;
            let v = 2.0 * self.next_f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare_normal = Some(v * f);
                return u * f;
            }
        }
    }

    /// A Gamma(`shape`, 1) draw for `shape > 0` (Marsaglia & Tsang 2000;
    /// for `shape < 1`, a Gamma(shape + 1) draw times `U^{1/shape}`).
    /// Scale it by θ for Gamma(shape, θ).
    pub fn gamma(&mut self, shape: f64) -> Result<f64> {
        positive("shape", shape)?;
        Ok(self.gamma_raw(shape))
    }

    pub(crate) fn gamma_raw(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let boost = self.open01().powf(1.0 / shape);
            return self.gamma_raw(shape + 1.0) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.open01();
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
                return d * v;
            }
        }
    }

    /// A Beta(`a`, `b`) draw for `a, b > 0`, as `X / (X + Y)` with
    /// `X ~ Gamma(a)`, `Y ~ Gamma(b)`.
    pub fn beta(&mut self, a: f64, b: f64) -> Result<f64> {
        positive("a", a)?;
        positive("b", b)?;
        Ok(self.beta_raw(a, b))
    }

    pub(crate) fn beta_raw(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma_raw(a);
        let y = self.gamma_raw(b);
        let s = x + y;
        if s > 0.0 {
            x / s
        } else {
            // Both underflowed (tiny shapes): pick a side in proportion.
            if self.next_f64() < a / (a + b) {
                1.0
            } else {
                0.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_stream() {
        // xoshiro256** reference: state {1, 2, 3, 4} gives 11520, 0, 1509978240.
        let mut r = Rng {
            s: [1, 2, 3, 4],
            spare_normal: None,
        };
        assert_eq!(r.next_u64(), 11520);
        assert_eq!(r.next_u64(), 0);
        assert_eq!(r.next_u64(), 1_509_978_240);
        // SplitMix64 from 1234567: first output 6457827717110365317.
        let mut sm = 1_234_567;
        assert_eq!(splitmix64(&mut sm), 6_457_827_717_110_365_317);
    }

    #[test]
    fn deterministic_and_serialisable() {
        let mut a = Rng::from_seed(42);
        let mut b = Rng::from_seed(42);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let _ = a.normal();
        let json = serde_json::to_string(&a).unwrap();
        let mut c: Rng = serde_json::from_str(&json).unwrap();
        assert_eq!(a.normal(), c.normal());
        assert_eq!(a.next_u64(), c.next_u64());
        assert_ne!(Rng::from_seed(1).next_u64(), Rng::from_seed(2).next_u64());
    }

    fn moments(xs: &[f64]) -> (f64, f64) {
        crate::mean_var(xs)
    }

    #[test]
    fn distribution_moments() {
        let mut r = Rng::from_seed(7);
        let n = 40_000;
        let u: Vec<f64> = (0..n).map(|_| r.next_f64()).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let (m, v) = moments(&u);
        assert!((m - 0.5).abs() < 0.01 && (v - 1.0 / 12.0).abs() < 0.003);
        let z: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let (m, v) = moments(&z);
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "{m} {v}");
        for shape in [0.3, 1.0, 2.5, 30.0] {
            let g: Vec<f64> = (0..n).map(|_| r.gamma(shape).unwrap()).collect();
            let (m, v) = moments(&g);
            let se = (shape / n as f64).sqrt();
            assert!((m - shape).abs() < 5.0 * se, "shape {shape}: mean {m}");
            assert!((v - shape).abs() < 0.1 * shape, "shape {shape}: var {v}");
        }
        let b: Vec<f64> = (0..n).map(|_| r.beta(2.0, 5.0).unwrap()).collect();
        let (m, _) = moments(&b);
        assert!((m - 2.0 / 7.0).abs() < 0.005);
        let k: Vec<u64> = (0..1000).map(|_| r.below(3)).collect();
        assert!(k.iter().all(|&x| x < 3));
        assert!(r.gamma(0.0).is_err() && r.beta(1.0, f64::NAN).is_err());
    }
}
