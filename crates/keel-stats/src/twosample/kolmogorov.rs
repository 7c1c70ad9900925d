//! The null distributions behind [`super::ks_2samp`]:
//!
//! * the exact two-sample p-value `P(D_{n1,n2} ≥ d)` by lattice-path
//!   counting (Hodges 1958; Viehmann 2021 for the `1 − p` recursion), the
//!   way `scipy.stats._stats_py._attempt_exact_2kssamp` computes it;
//! * the survival function of the one-sample two-sided Kolmogorov statistic
//!   `D_n` (`scipy.stats.kstwo.sf`), which scipy's asymptotic two-sample
//!   p-value evaluates at `n = round(n1·n2/(n1+n2))`. It switches between
//!   methods as Simard & L'Ecuyer (2011) recommend and scipy's `_ksstats.py`
//!   implements: Ruben–Gambino closed forms at the ends, the Durbin matrix
//!   (Marsaglia–Tsang–Wang), Pomeranz's recursion, the Pelz–Good
//!   asymptotic series, and twice the one-sided Smirnov tail (cephes'
//!   Birnbaum–Tingey sum, each term evaluated as a binomial probability).
//!
//! Everything here works on plain numbers the caller has validated.

/// `P(D_{n,n} ≥ h/n)` for two samples of the same size `n`, `1 ≤ h ≤ n`:
/// `2 Σ_k (−1)^{k+1} C(2n, n−kh) / C(2n, n)`, evaluated Horner-style from
/// the smallest term so that no binomial coefficient is formed and there is
/// no subtractive cancellation. Costs `O(n + h)`.
pub(crate) fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = ((n - k * h - j) as f64 * p1) / ((n + k * h + j + 1) as f64);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// `P(D_{m,n} ≥ h/lcm(m, n))` for samples of different sizes: the share of
/// monotone lattice paths from `(0, 0)` to `(m, n)` that touch one of the
/// lines `|x/m − y/n| = h/lcm`. One column of the path-count table is kept
/// (only the window of cells strictly inside the band, `≈ 2·d·n` wide), and
/// the recursion carries probabilities of having left the band, so each
/// cell is a convex combination of two neighbours and the result stays in
/// `[0, 1]` without rescaling. Costs `O(m · min(n, 2dn))`: at most
/// `n1·n2 ≤ 10⁸` steps under scipy's `max(n1, n2) ≤ 10 000` rule.
pub(crate) fn prob_outside_band(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ceil_div(h, mg).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for cell in a.iter_mut().take(maxj as usize) {
        *cell = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (floor_div(ng * i - h, mg) + 1).max(0).min(n);
        maxj = ceil_div(ng * i + h, mg).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        let shift = (minj - lastminj) as usize;
        let fi = i as f64;
        for jj in 0..(maxj - minj) as usize {
            let j = (jj as i64 + minj) as f64;
            // The window moves by at most one cell a column, and stays
            // inside `a` (see scipy's `_compute_outer_prob_inside_method`);
            // a cell past the end would be outside the band: probability 1.
            let prev = a.get(jj + shift).copied().unwrap_or(1.0);
            val = (prev * fi + val * j) / (fi + j);
            a[jj] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = curlen as usize;
            let end = (start + (lastlen - curlen) as usize).min(len_a);
            for cell in a.iter_mut().take(end).skip(start) {
                *cell = 1.0;
            }
        }
    }
    // The window is never empty here (an empty one returned above).
    a.get((maxj - minj - 1) as usize).copied().unwrap_or(1.0)
}

/// `P(D_{m,n} = 1) = 2/C(m+n, m)`: of all the lattice paths only the two
/// along the edges separate the samples completely. What
/// [`prob_outside_band`] computes for `h = lcm`, in `O(min(m, n))`.
pub(crate) fn prob_disjoint(m: u64, n: u64) -> f64 {
    let (big, small) = (m.max(n), m.min(n));
    let mut p = 2.0;
    for k in 1..=small {
        p *= k as f64 / (big + k) as f64;
        if p == 0.0 {
            break;
        }
    }
    p
}

fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// `scipy.stats.kstwo.sf(x, n)`: `P(D_n > x)` for the two-sided
/// one-sample Kolmogorov–Smirnov statistic with `n ≥ 1` observations.
pub(crate) fn kstwo_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    // rv_continuous: the support is (1/(2n), 1).
    if x <= 0.5 / nf {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        // Ruben–Gambino: P(D_n ≤ x) = n!/nⁿ (2t − 1)ⁿ for 1/2n ≤ x ≤ 1/n.
        let cdf = if n <= 140 {
            let (inv_n, w) = (1.0 / nf, 2.0 * t - 1.0);
            (1..=n).fold(1.0, |acc, i| acc * (i as f64 * inv_n * w))
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip(1.0 - cdf);
    }
    if t >= nf - 1.0 {
        // Ruben–Gambino: P(D_n ≥ x) = 2(1 − x)ⁿ for x ≥ 1 − 1/n.
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        // The one-sided tails cannot both be exceeded: exactly 2·smirnov.
        return clip(2.0 * smirnov_sf(n, x));
    }
    let nxx = t * x;
    if n <= 140 {
        if nxx <= 0.754_693 {
            return clip(1.0 - durbin_cdf(n, x));
        }
        if nxx <= 4.0 {
            return clip(1.0 - pomeranz_cdf(n, x));
        }
        return clip(2.0 * smirnov_sf(n, x));
    }
    if nxx >= 370.0 {
        return 0.0;
    }
    if nxx >= 2.2 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let cdf = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(nf, x)
    };
    clip(1.0 - cdf)
}

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

const E128: i32 = 128;
const EP128: f64 = 3.402_823_669_209_385e38; // 2^128
const EM128: f64 = 2.938_735_877_055_719e-39; // 2^-128

/// `ln(n!/nⁿ)` by Stirling's series with `n ln n` removed up front.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const STIRLING: [f64; 8] = [
        -2.955_065_359_477_124_2e-2,
        6.410_256_410_256_41e-3,
        -1.917_526_917_526_917_6e-3,
        8.417_508_417_508_417e-4,
        -5.952_380_952_380_953e-4,
        7.936_507_936_507_937e-4,
        -2.777_777_777_777_778e-3,
        8.333_333_333_333_333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = STIRLING.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// `P(D_n ≤ d)` by Durbin's matrix method as Marsaglia, Tsang & Wang
/// (2003) evaluate it: the `k`-th diagonal entry of `Hⁿ` (an `m × m`
/// matrix, `m = 2⌈nd⌉ − 1`) times `n!/nⁿ`, with powers of two split off to
/// avoid overflow. `O(m³ log n)`.
fn durbin_cdf(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    let mut v = vec![0.0; m];
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] = (1.0 - h.powi(j as i32)) * fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }

    let mut pwr = vec![0.0; m * m];
    for i in 0..m {
        pwr[i * m + i] = 1.0;
    }
    let mut scratch = vec![0.0; m * m];
    let mut nn = n;
    let mut expnt: i32 = 0;
    let mut h_expnt: i32 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            matmul(&pwr, &hm, &mut scratch, m);
            std::mem::swap(&mut pwr, &mut scratch);
            expnt += h_expnt;
        }
        nn /= 2;
        if nn == 0 {
            break;
        }
        matmul(&hm, &hm, &mut scratch, m);
        std::mem::swap(&mut hm, &mut scratch);
        h_expnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            for x in hm.iter_mut() {
                *x /= EP128;
            }
            h_expnt += E128;
        }
    }
    let mut p = pwr[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= E128;
        }
    }
    clip(ldexp(p, expnt))
}

fn matmul(a: &[f64], b: &[f64], out: &mut [f64], m: usize) {
    out.iter_mut().for_each(|x| *x = 0.0);
    for i in 0..m {
        let row = &mut out[i * m..(i + 1) * m];
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for (o, bkj) in row.iter_mut().zip(&b[k * m..(k + 1) * m]) {
                *o += aik * bkj;
            }
        }
    }
}

/// The row interval `[j1, j2]` Pomeranz's recursion keeps at step `i`.
fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (half, odd) = ((i + 1) / 2, (i + 1) % 2);
        if odd == 0 {
            if half == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1)
            }
        } else {
            (half - 1 - ll - 1, half + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// `P(D_n ≤ x)` by Pomeranz's (1974) recursion: `2n + 1` convolutions of a
/// short row with (unnormalised) Poisson probabilities, then `× n!`.
fn pomeranz_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let ni = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![1.0; npwrs];
    let mut twogpower = vec![1.0; npwrs];
    let mut onem2gpower = vec![1.0; npwrs];
    let (g_n, two_g_n, one_m2g_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for k in 1..npwrs {
        let kf = k as f64;
        gpower[k] = gpower[k - 1] * g_n / kf;
        twogpower[k] = twogpower[k - 1] * two_g_n / kf;
        onem2gpower[k] = onem2gpower[k - 1] * one_m2g_n / kf;
    }
    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s) = (0i64, 0i64);
    let mut expnt: i32 = 0;
    let (mut j1, mut _j2) = pomeranz_j1j2(0, ni, ll, ceilf, roundf);
    let mut conv = Vec::with_capacity(2 * npwrs);
    for i in 1..(2 * ni + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|x| *x = 0.0);
        let (nj1, nj2) = pomeranz_j1j2(i, ni, ll, ceilf, roundf);
        j1 = nj1;
        _j2 = nj2;
        let pwrs = if i == 1 || i == 2 * ni + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = nj2 - k1 + 1;
        if ln2 > 0 {
            let start = (k1 - v0s).max(0) as usize;
            let end = ((k1 - v0s + ln2).max(0) as usize).min(npwrs);
            let seg = &v0[start.min(end)..end];
            let kern = &pwrs[..(ln2 as usize).min(npwrs)];
            convolve(seg, kern, &mut conv);
            let conv_start = (nj1 - k1).max(0) as usize;
            let conv_len = (nj2 - nj1 + 1).max(0) as usize;
            for (dst, src) in v1
                .iter_mut()
                .take(conv_len)
                .zip(conv.iter().skip(conv_start))
            {
                *dst = *src;
            }
            let vmax = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < vmax && vmax < EM128 {
                v1.iter_mut().for_each(|x| *x *= EP128);
                expnt -= E128;
            }
            v1s = v0s + nj1 - k1;
        }
    }
    let idx = (ni - v1s).clamp(0, npwrs as i64 - 1) as usize;
    let mut ans = v1[idx];
    for k in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += E128;
        }
        ans *= k as f64;
    }
    clip(ldexp(ans, expnt))
}

/// The full discrete convolution of `a` and `b` (`numpy.convolve`).
fn convolve(a: &[f64], b: &[f64], out: &mut Vec<f64>) {
    out.clear();
    if a.is_empty() || b.is_empty() {
        return;
    }
    out.resize(a.len() + b.len() - 1, 0.0);
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
}

/// The Pelz–Good (1976) approximation of `P(D_n ≤ x)`: Li-Chien and
/// Korolyuk's expansion in `1/√n`, each term rewritten with the Jacobi
/// theta transformation so that it converges fast for small `z = x√n`.
fn pelz_good_cdf(n: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi2 = PI * PI;
    let pi4 = pi2 * pi2;
    let pi6 = pi4 * pi2;
    let sqrt_2pi = (2.0 * PI).sqrt();
    let z = n.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);

    let mut kk = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = (2 * k - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for (acc, c) in kk.iter_mut().zip(coeffs) {
            *acc = *acc * qpower + c;
        }
    }
    let denoms = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (acc, d) in kk.iter_mut().zip(denoms) {
        *acc = *acc * q * sqrt_2pi / d;
    }
    let q = (-pi2 / 2.0 / z2).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let mut k2extra = 0.0;
    let mut k3extra = 0.0;
    for k in (1..=maxk).rev() {
        let kf = k as f64;
        let k2 = kf * kf;
        let qp = q.powf(k2);
        let kspi = PI * kf;
        k2extra += k2 * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * k2 * qp;
    }
    kk[2] += k2extra * pi2 * sqrt_2pi / (-36.0 * z3);
    kk[3] += k3extra * pi2 * sqrt_2pi / (216.0 * z6);
    let mut total = 0.0;
    for (i, acc) in kk.iter().enumerate() {
        total += acc / n.powf(i as f64 / 2.0);
    }
    total
}

/// `scipy.special.smirnov(n, x)`: `P(D_n⁺ ≥ x)` for the one-sided
/// one-sample statistic, by the Birnbaum–Tingey sum
/// `Σ_{0 ≤ j < n(1−x)} x C(n, j) (1 − x − j/n)^{n−j} (x + j/n)^{j−1}`
/// with cephes' special cases and stopping rule.
///
/// cephes evaluates each term in double-double arithmetic with its power of
/// two split off, which costs ~1 µs a term; the sum has `O(n)` significant
/// terms (at `n = 10⁶` it takes scipy a second). Here each term is written
/// as a binomial probability, `x C(n,j) s^{j−1} (1−s)^{n−j} =
/// (x/s) · b(j; n, s)` with `s = x + j/n`, and `b` is evaluated with
/// Loader's (2000) saddle-point form `exp(−stirlerr − bd0 − bd0)/√(2πj(n−j)/n)`,
/// accurate to ~1e-15 relative with no large powers, and ~20× faster. Above
/// `n = 10⁶` cephes uses `exp(−(6nx + 1)²/18n)`, and so does this.
///
/// Only the lower sum is implemented: cephes switches to the alternating
/// upper sum only when `nx² ≤ 1/4`, which [`kstwo_sf`] never asks for.
pub(crate) fn smirnov_sf(n: u64, x: f64) -> f64 {
    const MAX_COMPUTE_N: u64 = 1_000_000;
    const MINLOG: f64 = -7.451_332_191_019_412e2;
    if !(0.0..=1.0).contains(&x) || n == 0 {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let ni = n as i64;
    let nf = n as f64;
    let nx = Dd::from(x).mul_f(nf);
    let (alpha, nxfl) = {
        let fl = nx.floor();
        let alpha = nx.sub(fl).hi;
        let nxfl = fl.hi as i64;
        if alpha == 1.0 {
            (0.0, nxfl + 1)
        } else {
            (alpha, nxfl)
        }
    };
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        // x ≤ 1/n: P(D⁺ < x) = x (1 + x)^{n−1}.
        let t = pow_dd(Dd::from(1.0).add_f(x), ni - 1).hi;
        return clip(1.0 - x * t);
    }
    if -2.0 * nf * x * x < MINLOG {
        return 0.0;
    }
    if nxfl >= ni - 1 {
        return pow_dd(Dd::from(1.0).add_f(-x), ni).hi;
    }
    if n > MAX_COMPUTE_N {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 {
            logp.exp()
        } else {
            1.0 + logp.exp_m1()
        };
    }
    // Terms j = 0 .. n − ⌊nx⌋ − 1 (cephes' n1mxfl + 1 of them).
    let n_terms = ni - nxfl;
    let vmid = ni / 2;
    let stirl_n = stirlerr(nf);
    let mut sum = Neumaier::new(pow_dd(Dd::from(1.0).add_f(-x), ni).hi);
    for j in 1..n_terms {
        let jf = j as f64;
        // n·s and n·(1 − s), from the exact n·x.
        let ns = (nx.hi + jf) + nx.lo;
        let nr = ((nf - jf) - nx.hi) - nx.lo;
        let lc = stirl_n - stirlerr(jf) - stirlerr(nf - jf) - bd0(jf, ns) - bd0(nf - jf, nr);
        let lf = LN_2PI + jf.ln() + (-jf / nf).ln_1p();
        let term = x * nf / ns * (lc - 0.5 * lf).exp();
        if term.is_finite() {
            sum.add(term);
        }
        if term != 0.0 {
            if 4.0 * (n_terms - j) as f64 * term.abs() < f64::EPSILON * sum.value()
                && j != n_terms - 1
            {
                break;
            }
        } else if j > vmid {
            break;
        }
    }
    clip(sum.value())
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `ln(k!) − ln(√(2πk) (k/e)^k)`, the error of Stirling's formula, for a
/// whole number `k ≥ 1` (Loader 2000): tabulated to 15, then its series.
fn stirlerr(k: f64) -> f64 {
    const TABLE: [f64; 16] = [
        0.0,
        0.081_061_466_795_327_26,
        0.041_340_695_955_409_3,
        0.027_677_925_684_998_34,
        0.020_790_672_103_765_093,
        0.016_644_691_189_821_193,
        0.013_876_128_823_070_748,
        0.011_896_709_945_891_77,
        0.010_411_265_261_972_096,
        0.009_255_462_182_712_733,
        0.008_330_563_433_362_87,
        0.007_573_675_487_951_841,
        0.006_942_840_107_209_53,
        0.006_408_994_188_004_207,
        0.005_951_370_112_758_847_5,
        0.005_554_733_551_962_801,
    ];
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    if k <= 15.0 {
        return TABLE[k as usize];
    }
    let inv = 1.0 / k;
    let ii = inv * inv;
    if k > 500.0 {
        (S0 - S1 * ii) * inv
    } else if k > 80.0 {
        (S0 - (S1 - S2 * ii) * ii) * inv
    } else if k > 35.0 {
        (S0 - (S1 - (S2 - S3 * ii) * ii) * ii) * inv
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 * ii) * ii) * ii) * ii) * inv
    }
}

/// `1/(2i + 1)` for the first terms of [`bd0`]'s series.
const ODD_RECIPROCALS: [f64; 24] = {
    let mut t = [0.0; 24];
    let mut i = 0;
    while i < 24 {
        t[i] = 1.0 / (2 * i + 1) as f64;
        i += 1;
    }
    t
};

/// `k ln(k/m) + m − k` without cancellation when `k ≈ m` (Loader 2000).
fn bd0(k: f64, m: f64) -> f64 {
    if (k - m).abs() < 0.1 * (k + m) {
        let mut v = (k - m) / (k + m);
        let mut s = (k - m) * v;
        if s.abs() < f64::MIN_POSITIVE {
            return s;
        }
        let mut ej = 2.0 * k * v;
        v *= v;
        // |v| < 0.1: the series has converged long before its 1000th term.
        for i in 1..1000 {
            ej *= v;
            let s1 = s + ej
                * ODD_RECIPROCALS
                    .get(i)
                    .copied()
                    .unwrap_or(1.0 / (2 * i + 1) as f64);
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        s
    } else {
        k * (k / m).ln() + m - k
    }
}

/// Neumaier's compensated sum.
struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    fn new(first: f64) -> Self {
        Neumaier {
            sum: first,
            comp: 0.0,
        }
    }

    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// `aᵐ` for a double-double `a`: `pow(a.hi, m)` corrected for `a.lo`.
fn pow_dd(a: Dd, m: i64) -> Dd {
    if m <= 0 {
        if m == 0 {
            return Dd::from(1.0);
        }
        return Dd::from(1.0).div(pow_dd(a, -m));
    }
    if a.hi == 0.0 && a.lo == 0.0 {
        return Dd::from(0.0);
    }
    let mf = m as f64;
    let ans = a.hi.powf(mf);
    let r = a.lo / a.hi;
    let mut adj = mf * r;
    if adj.abs() > 1e-8 {
        if adj.abs() < 1e-4 {
            adj += (mf * r) * ((mf - 1.0) / 2.0 * r);
        } else {
            adj = (mf * r.ln_1p()).exp_m1();
        }
    }
    Dd::from(ans).add_f(ans * adj)
}

/// `x · 2^e` without overflowing the scale factor.
pub(crate) fn ldexp(mut x: f64, mut e: i32) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e)
}

/// A double-double number `hi + lo` with `|lo| ≤ ulp(hi)/2` (Dekker, Bailey):
/// about 106 bits, for the few places where cephes' Smirnov code needs them.
#[derive(Debug, Clone, Copy)]
struct Dd {
    hi: f64,
    lo: f64,
}

impl From<f64> for Dd {
    fn from(hi: f64) -> Self {
        Dd { hi, lo: 0.0 }
    }
}

fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

fn quick_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

fn split(a: f64) -> (f64, f64) {
    const SPLITTER: f64 = 134_217_729.0; // 2^27 + 1
    let t = SPLITTER * a;
    let hi = t - (t - a);
    (hi, a - hi)
}

fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

impl Dd {
    fn add(self, b: Dd) -> Dd {
        let (s1, s2) = two_sum(self.hi, b.hi);
        let (t1, t2) = two_sum(self.lo, b.lo);
        let (s1, s2) = quick_two_sum(s1, s2 + t1);
        let (hi, lo) = quick_two_sum(s1, s2 + t2);
        Dd { hi, lo }
    }

    fn sub(self, b: Dd) -> Dd {
        self.add(Dd {
            hi: -b.hi,
            lo: -b.lo,
        })
    }

    fn add_f(self, b: f64) -> Dd {
        let (s1, s2) = two_sum(self.hi, b);
        let (hi, lo) = quick_two_sum(s1, s2 + self.lo);
        Dd { hi, lo }
    }

    fn mul_f(self, b: f64) -> Dd {
        let (p1, e1) = two_prod(self.hi, b);
        let (p2, e2) = two_prod(self.lo, b);
        let (hi, lo) = quick_two_sum(p1, e2 + p2 + e1);
        Dd { hi, lo }
    }

    fn div(self, b: Dd) -> Dd {
        let q1 = self.hi / b.hi;
        let r = self.sub(b.mul_f(q1));
        let q2 = r.hi / b.hi;
        let r = r.sub(b.mul_f(q2));
        let q3 = r.hi / b.hi;
        let (q1, q2) = quick_two_sum(q1, q2);
        Dd { hi: q1, lo: q2 }.add_f(q3)
    }

    fn floor(self) -> Dd {
        let hi = self.hi.floor();
        if hi == self.hi {
            let (hi, lo) = quick_two_sum(hi, self.lo.floor());
            Dd { hi, lo }
        } else {
            Dd { hi, lo: 0.0 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn ldexp_scales_by_powers_of_two() {
        assert_eq!(ldexp(0.75, 3), 6.0);
        assert_eq!(ldexp(1.0, -1074), 5e-324);
        assert_eq!(ldexp(2f64.powi(-1000), 2000), 2f64.powi(1000));
    }

    #[test]
    fn square_and_band_agree_with_closed_forms() {
        // D_{n,n} ≥ 1/n always: the probability is 1 (up to rounding).
        assert!(close(prob_outside_square(10, 1), 1.0, 1e-15));
        // P(D_{2,2} ≥ 1) = 2/C(4,2) = 1/3: both samples on one side.
        assert!(close(prob_outside_square(2, 2), 1.0 / 3.0, 1e-15));
        // P(D_{1,2} ≥ 1) = 2/3 (sizes 1 and 2, lcm 2, h = 2).
        assert!(close(prob_outside_band(1, 2, 1, 2), 2.0 / 3.0, 1e-15));
        // Complete separation: the band recursion and the closed form agree.
        for (m, n) in [(7, 5), (30, 12), (200, 150), (9, 6)] {
            let g = super::super::cvm::gcd(m, n);
            let lcm = m / g * n;
            let band = prob_outside_band(m, n, g, lcm);
            assert!(close(prob_disjoint(m, n), band, 1e-13), "{m} {n}: {band:e}");
        }
    }

    #[test]
    fn kstwo_sf_is_one_below_the_support_and_zero_above() {
        assert_eq!(kstwo_sf(10, 0.04), 1.0);
        assert_eq!(kstwo_sf(10, 1.0), 0.0);
        // n = 1: D_1 = max(U, 1 − U) ~ Uniform(1/2, 1): sf = 2 − 2x.
        assert!(close(kstwo_sf(1, 0.8), 0.4, 1e-15));
    }

    #[test]
    fn smirnov_matches_its_closed_forms() {
        // n = 2, x ≥ 1/2: (1 − x)² · ... ; x ≥ 1 − 1/n gives (1 − x)ⁿ.
        assert!(close(smirnov_sf(2, 0.6), 0.16, 1e-15));
        assert_eq!(smirnov_sf(5, 0.0), 1.0);
        assert_eq!(smirnov_sf(5, 1.0), 0.0);
    }
}
