"""Reference values for keel-stats, computed with numpy, scipy and statsmodels.

Builds fixed, seeded datasets, computes what the reference libraries say
about them, and writes both (with the library versions) to
``reference.json`` beside this file, which ``reference.rs`` checks the Rust
crate against. The output is deterministic: rerunning this script with the
same library versions reproduces the file byte for byte, and
``tests/python/test_reference_fixtures.py`` asserts exactly that.

    python crates/keel-stats/tests/reference.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import warnings

import numpy as np
import scipy
import scipy.special as sp
import scipy.stats as st
import statsmodels
from scipy import integrate
from scipy.spatial import distance
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

SEED = 20240611
HERE = Path(__file__).resolve().parent


def f(x) -> float:
    """A plain Python float (JSON-serialisable, repr round-trips)."""
    return float(x)


def sample(rng, n, mean, sd):
    """Normal data rounded to 4 decimals (exact doubles, short JSON)."""
    return [round(float(v), 4) for v in rng.normal(mean, sd, n)]


def special_functions():
    xs = [-6.0, -3.5, -1.3, -0.5, -1e-8, 0.0, 1e-8, 0.3, 0.9, 1.2, 1.25, 2.0, 3.7, 5.5, 9.0, 15.0, 26.0]
    erf = [{"x": x, "erf": f(sp.erf(x)), "erfc": f(sp.erfc(x))} for x in xs]
    norm = [
        {"x": x, "cdf": f(st.norm.cdf(x)), "sf": f(st.norm.sf(x))}
        for x in [-37.0, -20.0, -8.0, -3.0, -1.96, -0.1, 0.0, 0.7, 2.5, 6.0, 12.0]
    ]
    norm_ppf = [
        {"p": p, "ppf": f(st.norm.ppf(p))}
        for p in [1e-300, 1e-50, 1e-10, 1e-4, 0.001, 0.02, 0.02425, 0.1, 0.3, 0.5, 0.6, 0.9, 0.975, 0.99999, 1 - 1e-12]
    ]
    t = []
    for df in [1.0, 2.5, 7.0, 30.0, 123.456, 5000.0, 200000.0, 3e6, 9.9e6, 1.1e7, 1e9]:
        for x in [-40.0, -3.0, -0.4, 0.0, 1e-6, 1.1, 2.2, 6.0, 1e3]:
            case = {"t": x, "df": df, "cdf": f(st.t.cdf(x, df)), "sf": f(st.t.sf(x, df))}
            if df == 1.0:
                # t with 1 df is the Cauchy distribution, whose cdf is exact in
                # closed form; scipy's stdtr is off by ~1e-11 near t = 0 there.
                case["cauchy_cdf"] = f(st.cauchy.cdf(x))
                case["cauchy_sf"] = f(st.cauchy.sf(x))
            t.append(case)
    t_ppf = []
    for df in [1.0, 3.3, 10.0, 57.0, 1e4]:
        for p in [1e-12, 1e-5, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999]:
            t_ppf.append({"p": p, "df": df, "ppf": f(st.t.ppf(p, df))})
    chi2 = [
        {"x": x, "k": k, "sf": f(st.chi2.sf(x, k))}
        for k in [1.0, 2.0, 3.0, 7.0, 40.0]
        for x in [0.01, 0.5, 3.84, 9.0, 30.0, 120.0]
    ]
    beta = [
        {"a": a, "b": b, "x": x, "value": f(sp.betainc(a, b, x))}
        for (a, b) in [(0.5, 0.5), (1.0, 3.0), (2.5, 7.5), (30.0, 2.0), (200.0, 300.0), (0.1, 50.0)]
        for x in [0.0, 1e-6, 0.05, 0.3, 0.5, 0.77, 0.999, 1.0]
    ]
    gamma = [
        {"a": a, "x": x, "p": f(sp.gammainc(a, x)), "q": f(sp.gammaincc(a, x))}
        for a in [0.3, 1.0, 4.5, 20.0, 150.0]
        for x in [1e-3, 0.5, 2.0, 6.0, 25.0, 160.0]
    ]
    ln_gamma = [{"x": x, "value": f(sp.gammaln(x))} for x in [1e-5, 0.1, 0.5, 1.5, 2.5, 3.0, 7.7, 33.3, 171.0, 1e5]]
    return {
        "erf": erf,
        "norm": norm,
        "norm_ppf": norm_ppf,
        "t": t,
        "t_ppf": t_ppf,
        "chi2_sf": chi2,
        "beta_inc": beta,
        "gamma_inc": gamma,
        "ln_gamma": ln_gamma,
    }


def proportions():
    ci = []
    for s, n, conf in [(0, 20, 0.95), (3, 20, 0.95), (120, 1000, 0.95), (999, 1000, 0.9), (50, 50, 0.99), (4567, 123456, 0.95)]:
        lo, hi = proportion_confint(s, n, alpha=1 - conf, method="wilson")
        ci.append({"successes": s, "trials": n, "confidence": conf, "low": f(lo), "high": f(hi)})
    ztest = []
    for sa, na, sb, nb, conf in [
        (120, 1000, 140, 1000, 0.95),
        (45, 300, 30, 310, 0.95),
        (5012, 50000, 4880, 49500, 0.99),
        (7, 40, 15, 45, 0.9),
        (0, 100, 3, 100, 0.95),
    ]:
        z, p = proportions_ztest([sa, sb], [na, nb], alternative="two-sided")
        lo, hi = confint_proportions_2indep(sa, na, sb, nb, method="wald", compare="diff", alpha=1 - conf)
        ztest.append({
            "successes_a": sa, "n_a": na, "successes_b": sb, "n_b": nb, "confidence": conf,
            "z": f(z), "p_value": f(p), "low": f(lo), "high": f(hi),
        })
    return {"wilson": ci, "two_proportion": ztest}


def welch(rng):
    samples = []
    for na, nb, ma, mb, sa, sb in [(12, 9, 5.0, 6.0, 1.0, 2.5), (40, 55, 0.0, 0.3, 1.0, 1.0), (300, 250, 10.0, 10.1, 3.0, 1.0), (2, 3, 1.0, 2.0, 1.0, 1.0)]:
        a = sample(rng, na, ma, sa)
        b = sample(rng, nb, mb, sb)
        res = st.ttest_ind(a, b, equal_var=False)
        ci = res.confidence_interval(0.95)
        samples.append({
            "a": a, "b": b, "confidence": 0.95,
            "t": f(res.statistic), "df": f(res.df), "p_value": f(res.pvalue), "low": f(ci.low), "high": f(ci.high),
        })
    summaries = []
    for (na, ma, va), (nb, mb, vb), conf in [
        ((100000.0, 1.02, 4.0), (100000.0, 1.0, 4.1), 0.95),
        ((5000.0, 3.0, 10.0), (20000.0, 3.2, 2.0), 0.99),
        ((8.0, -1.0, 0.25), (30.0, 0.0, 9.0), 0.9),
    ]:
        res = st.ttest_ind_from_stats(ma, math.sqrt(va), na, mb, math.sqrt(vb), nb, equal_var=False)
        # ttest_ind_from_stats has no interval: recompute it from its df.
        se = math.sqrt(va / na + vb / nb)
        df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        tc = st.t.ppf(0.5 + conf / 2, df)
        summaries.append({
            "a": {"n": na, "mean": ma, "variance": va}, "b": {"n": nb, "mean": mb, "variance": vb},
            "confidence": conf, "t": f(res.statistic), "df": f(df), "p_value": f(res.pvalue),
            "low": f(ma - mb - tc * se), "high": f(ma - mb + tc * se),
        })
    return {"samples": samples, "summaries": summaries}


def srm():
    out = []
    for obs, w in [([5000, 5050], [1, 1]), ([10321, 9679], [0.5, 0.5]), ([900, 110], [0.9, 0.1]), ([3300, 3350, 3120, 3400], [1, 1, 1, 1]), ([18, 31, 51], [1, 2, 3])]:
        exp = np.asarray(w, dtype=float) / np.sum(w) * np.sum(obs)
        res = st.chisquare(obs, exp)
        out.append({"observed": obs, "weights": [f(x) for x in w], "statistic": f(res.statistic), "p_value": f(res.pvalue), "df": len(obs) - 1})
    return out


def msprt():
    out = []
    for diff, na, nb, va, vb, tau2 in [
        (0.05, 1000.0, 1000.0, 1.0, 1.0, 0.01),
        (-0.2, 50.0, 60.0, 2.0, 1.5, 0.1),
        (0.0, 200.0, 200.0, 1.0, 1.0, 0.5),
        (0.012, 20000.0, 20000.0, 0.09, 0.09, 1e-4),
        (1.5, 10.0, 10.0, 4.0, 4.0, 1.0),
    ]:
        s2 = va / na + vb / nb
        closed = math.sqrt(s2 / (s2 + tau2)) * math.exp(tau2 * diff**2 / (2 * s2 * (s2 + tau2)))
        # Direct integration of ∫ φ(diff; θ, s²) φ(θ; 0, τ²) dθ / φ(diff; 0, s²),
        # over ±40 posterior sd around the posterior mean of θ.
        post_m = tau2 * diff / (s2 + tau2)
        post_sd = math.sqrt(tau2 * s2 / (tau2 + s2))
        log_null = st.norm.logpdf(diff, 0.0, math.sqrt(s2))

        def integrand(theta):
            return math.exp(st.norm.logpdf(diff, theta, math.sqrt(s2)) + st.norm.logpdf(theta, 0.0, math.sqrt(tau2)) - log_null)

        val, err = integrate.quad(integrand, post_m - 40 * post_sd, post_m + 40 * post_sd, points=[post_m], epsabs=0, epsrel=1e-13, limit=500)
        out.append({"diff": diff, "n_a": na, "n_b": nb, "variance_a": va, "variance_b": vb, "tau2": tau2, "quad": f(val), "quad_error": f(err), "closed_form": f(closed)})
    return out


def cuped(rng):
    n = 400
    x = sample(rng, n, 10.0, 2.0)
    y = [round(3.0 + 0.8 * xi + float(e), 4) for xi, e in zip(x, rng.normal(0, 1.0, n))]
    xa, ya = np.asarray(x), np.asarray(y)
    theta = np.cov(ya, xa, ddof=1)[0, 1] / np.var(xa, ddof=1)
    adj = ya - theta * (xa - xa.mean())
    single = {
        "y": y, "x": x, "theta": f(theta), "adjusted_mean": f(adj.mean()), "adjusted_variance": f(np.var(adj, ddof=1)),
        "original_variance": f(np.var(ya, ddof=1)), "variance_reduction": f(1 - np.var(adj, ddof=1) / np.var(ya, ddof=1)),
    }
    groups = []
    for size, effect in [(300, 0.0), (320, 0.25), (280, -0.1)]:
        gx = sample(rng, size, 10.0, 2.0)
        gy = [round(3.0 + effect + 0.8 * xi + float(e), 4) for xi, e in zip(gx, rng.normal(0, 1.0, size))]
        groups.append((gy, gx))
    ally = np.concatenate([np.asarray(g[0]) for g in groups])
    allx = np.concatenate([np.asarray(g[1]) for g in groups])
    ptheta = np.cov(ally, allx, ddof=1)[0, 1] / np.var(allx, ddof=1)
    adjs = [np.asarray(gy) - ptheta * (np.asarray(gx) - allx.mean()) for gy, gx in groups]
    comparisons = []
    for k in range(1, len(groups)):
        res = st.ttest_ind(adjs[k], adjs[0], equal_var=False)
        ci = res.confidence_interval(0.95)
        comparisons.append({"t": f(res.statistic), "df": f(res.df), "p_value": f(res.pvalue), "low": f(ci.low), "high": f(ci.high)})
    compare = {
        "groups": [{"y": gy, "x": gx} for gy, gx in groups],
        "theta": f(ptheta),
        "adjusted_means": [f(a.mean()) for a in adjs],
        "adjusted_variances": [f(np.var(a, ddof=1)) for a in adjs],
        "comparisons": comparisons,
    }
    return {"single": single, "compare": compare}


def prob_best_quad(dists, lo_hi):
    """P(arm k is best) and E[max] for independent continuous posteriors."""
    probs, e_max = [], 0.0
    for k, dk in enumerate(dists):
        lo, hi = lo_hi(dk)

        def others(x, k=k):
            return math.prod(d.cdf(x) for j, d in enumerate(dists) if j != k)

        p, _ = integrate.quad(lambda x: dk.pdf(x) * others(x), lo, hi, points=[dk.mean()], epsabs=0, epsrel=1e-11, limit=500)
        m, _ = integrate.quad(lambda x: x * dk.pdf(x) * others(x), lo, hi, points=[dk.mean()], epsabs=0, epsrel=1e-11, limit=500)
        probs.append(f(p))
        e_max += m
    return probs, [f(e_max - d.mean()) for d in dists]


def miller(aa, ba, ab, bb):
    """Evan Miller's closed form for P(X_b > X_a), integer alpha_b."""
    return f(sum(math.exp(sp.betaln(aa + i, ba + bb) - math.log(bb + i) - sp.betaln(1 + i, bb) - sp.betaln(aa, ba)) for i in range(int(ab))))


def bayes():
    prior = (1.0, 1.0)
    beta_cases = []
    for arms in [[(120, 1000), (140, 1000)], [(120, 1000), (140, 1000), (135, 1000)], [(3, 25), (6, 30)]]:
        dists = [st.beta(prior[0] + s, prior[1] + n - s) for s, n in arms]
        probs, losses = prob_best_quad(dists, lambda d: (d.ppf(1e-15), d.isf(1e-15)))
        case = {"arms": [list(a) for a in arms], "prior": list(prior), "prob_best": probs, "expected_loss": losses}
        if len(arms) == 2:
            (sa, na), (sb, nb) = arms
            case["miller_b_beats_a"] = miller(prior[0] + sa, prior[1] + na - sa, prior[0] + sb, prior[1] + nb - sb)
        beta_cases.append(case)
    gauss_cases = []
    for arms in [[(2000.0, 10.0, 9.0), (2100.0, 10.1, 9.5)], [(500.0, 3.0, 4.0), (520.0, 3.05, 4.0), (480.0, 3.1, 6.0)]]:
        dists = [st.norm(m, math.sqrt(v / n)) for n, m, v in arms]
        probs, losses = prob_best_quad(dists, lambda d: (d.mean() - 12 * d.std(), d.mean() + 12 * d.std()))
        case = {"arms": [{"n": n, "mean": m, "variance": v} for n, m, v in arms], "prob_best": probs, "expected_loss": losses}
        if len(arms) == 2:
            # E[max(X_b − X_a, 0)] for X_b − X_a ~ N(mu, s²): mu Φ(mu/s) + s φ(mu/s).
            mu = dists[1].mean() - dists[0].mean()
            s = math.hypot(dists[0].std(), dists[1].std())
            case["closed_loss_a"] = f(mu * st.norm.cdf(mu / s) + s * st.norm.pdf(mu / s))
            case["closed_prob_b"] = f(st.norm.cdf(mu / s))
        gauss_cases.append(case)
    return {"beta": beta_cases, "gaussian": gauss_cases}


def ope(rng):
    n = 250
    k = 3
    logging = np.array([0.5, 0.3, 0.2])
    target = np.array([0.1, 0.3, 0.6])
    actions = rng.choice(k, size=n, p=logging)
    rewards = np.round(rng.normal(0.2 * actions + 0.1, 0.5), 4)
    q_hat = np.array([0.1, 0.31, 0.48])
    records = []
    for a, r in zip(actions, rewards):
        records.append({"action": int(a), "propensity": f(logging[a]), "reward": f(r), "target_prob": f(target[a]), "predicted_reward": f(q_hat[a]), "predicted_value": f(target @ q_hat)})
    w = target[actions] / logging[actions]
    ips_terms = w * rewards
    snips_v = np.sum(ips_terms) / np.sum(w)
    dr_terms = target @ q_hat + w * (rewards - q_hat[actions])
    wc = np.minimum(w, 2.0)
    clipped_terms = wc * rewards

    def summary(terms):
        return {"value": f(np.mean(terms)), "standard_error": f(np.std(terms, ddof=1) / math.sqrt(len(terms)))}

    return {
        "records": records,
        "ips": summary(ips_terms),
        "snips": {"value": f(snips_v), "standard_error": f(math.sqrt(np.sum((w * (rewards - snips_v)) ** 2)) / np.sum(w))},
        "doubly_robust": summary(dr_terms),
        "ips_clipped_at_2": summary(clipped_terms),
        "effective_sample_size": f(np.sum(w) ** 2 / np.sum(w**2)),
    }


# --- two-sample drift statistics -------------------------------------------

GOLDEN = 0x9E3779B97F4A7C15


def splitmix_uniform(seed: int, count: int) -> np.ndarray:
    """`count` uniforms in [0, 1) from SplitMix64 (the k-th output is
    mix(seed + k·golden)), 53 bits each: reference.rs regenerates the same
    doubles bit for bit, so big datasets need not be stored in the fixture."""
    k = np.arange(1, count + 1, dtype=np.uint64)
    z = np.uint64(seed) + k * np.uint64(GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def generated(spec: dict) -> np.ndarray:
    """Irwin–Hall(4) data (a bell shape with sd 1/√3 before scaling),
    shifted and scaled, optionally floored to a grid of `step` for ties.
    Every operation is one IEEE operation in a fixed order."""
    u = splitmix_uniform(spec["seed"], 4 * spec["n"])
    s = ((u[0::4] + u[1::4]) + u[2::4]) + u[3::4]
    v = (s - 2.0) * spec["scale"] + spec["loc"]
    if spec.get("step"):
        v = np.floor(v / spec["step"]) * spec["step"]
    return v


def twosample_datasets(rng):
    """Named samples: small ones inline (rounded normals), big ones as
    generator specs with a fingerprint (length, first values, sum)."""
    inline = {
        "n12": sample(rng, 12, 5.0, 1.0),
        "n9": sample(rng, 9, 5.5, 2.0),
        "n30a": sample(rng, 30, 0.0, 1.0),
        "n30b": sample(rng, 30, 0.2, 1.2),
        "odd5": [1.0, 3.0, 5.0, 7.0, 9.0],
        "even5": [2.0, 4.0, 6.0, 8.0, 10.0],
        "lo7": [0.5, 1.0, 1.25, 2.0, 2.5, 3.0, 3.5],
        "hi5": [4.0, 4.5, 5.0, 6.25, 7.0],
        "tie60": [round(v * 2) / 2 for v in sample(rng, 60, 0.0, 1.5)],
        "tie45": [round(v * 2) / 2 for v in sample(rng, 45, 0.4, 1.5)],
        "tie15": [round(v) for v in sample(rng, 15, 2.0, 1.0)],
        "tie12": [round(v) for v in sample(rng, 12, 2.4, 1.0)],
        "n20a": sample(rng, 20, 0.0, 1.0),
        "n20b": sample(rng, 20, 1.3, 1.0),
        "n40": sample(rng, 40, 0.0, 1.0),
        "n55": sample(rng, 55, 0.1, 1.1),
        "n300": sample(rng, 300, 10.0, 2.0),
        "n250": sample(rng, 250, 10.0, 2.0),
        "n250s": sample(rng, 250, 11.6, 2.0),
        "n8": sample(rng, 8, 0.0, 1.0),
        "n11": sample(rng, 11, 0.5, 1.0),
    }
    inline["n300_copy"] = list(inline["n300"])
    specs = {
        "g12000": {"n": 12000, "seed": 101, "loc": 0.0, "scale": 1.0},
        "g10": {"n": 10, "seed": 102, "loc": 0.0, "scale": 1.0},
        "g10_shift": {"n": 10, "seed": 103, "loc": 0.35, "scale": 1.0},
        "g10_far": {"n": 10, "seed": 104, "loc": 1.6, "scale": 1.0},
        "g300": {"n": 300, "seed": 105, "loc": 0.0, "scale": 1.0},
        "g300_shift": {"n": 300, "seed": 106, "loc": 0.12, "scale": 1.0},
        "g300_far": {"n": 300, "seed": 107, "loc": 1.0, "scale": 1.0},
        "g20000a": {"n": 20000, "seed": 108, "loc": 0.0, "scale": 1.0},
        "g20000b": {"n": 20000, "seed": 109, "loc": 0.0, "scale": 1.0},
        "g20000_shift": {"n": 20000, "seed": 110, "loc": 0.02, "scale": 1.0},
        "g20000_tied": {"n": 20000, "seed": 111, "loc": 0.0, "scale": 1.0, "step": 0.05},
        "g15000_tied": {"n": 15000, "seed": 112, "loc": 0.01, "scale": 1.1, "step": 0.05},
        "g9000": {"n": 9000, "seed": 113, "loc": 0.0, "scale": 1.0},
        "g7000": {"n": 7000, "seed": 114, "loc": 0.03, "scale": 1.0},
        "g3000": {"n": 3000, "seed": 115, "loc": 0.0, "scale": 1.0},
        "g2000_far": {"n": 2000, "seed": 116, "loc": 0.6, "scale": 1.0},
    }
    data = {name: np.asarray(v, dtype=float) for name, v in inline.items()}
    stored = {name: {"values": [f(x) for x in v]} for name, v in inline.items()}
    for name, spec in specs.items():
        v = generated(spec)
        data[name] = v
        stored[name] = {"generated": spec, "len": len(v), "head": [f(x) for x in v[:4]], "sum": f(np.sum(v))}
    return data, stored


def evidently_fill_zeroes(percents):
    """Evidently's get_binned_data(..., feel_zeroes=True) replacement."""
    percents = np.array(percents, dtype=float)
    nonzero = percents[percents != 0]
    fill = min(nonzero) / 10**6 if min(nonzero) <= 0.0001 else 0.0001
    np.place(percents, percents == 0, fill)
    return percents


def evidently_numeric_percents(ref, cur):
    """Evidently's get_binned_data for a numerical column with > 20 distinct
    reference values, before filling: Sturges bins over both windows."""
    bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    return np.histogram(ref, bins)[0] / len(ref), np.histogram(cur, bins)[0] / len(cur)


def evidently_categorical_percents(ref, cur):
    keys = sorted(set(ref) | set(cur))
    return (np.array([ref.count(k) / len(ref) for k in keys]),
            np.array([cur.count(k) / len(cur) for k in keys]))


def evidently_hellinger_numeric(ref, cur):
    """Evidently's hellinger_distance.py, numerical branch, verbatim in
    substance: density histograms on Sturges bins over the distinct values
    of both windows, Bhattacharyya coefficient times the bin width."""
    keys = list(set(np.unique(ref)) | set(np.unique(cur)))
    bins = np.histogram_bin_edges(keys, bins="sturges")
    h1 = np.histogram(ref, bins=bins, density=True)[0]
    h2 = np.histogram(cur, bins=bins, density=True)[0]
    bin_width = (max(bins) - min(bins)) / (len(bins) - 1)
    bc = 0.0
    for i in range(len(h1)):
        bc += math.sqrt(float(h1[i]) * float(h2[i])) * bin_width
    return math.sqrt(1 - np.clip(bc, 0, 1)), np.histogram(ref, bins)[0] / len(ref), np.histogram(cur, bins)[0] / len(cur)


def evidently_hellinger_categorical(ref_percents, cur_percents):
    bc = 0.0
    for p1, p2 in zip(ref_percents, cur_percents):
        bc += math.sqrt(float(p1) * float(p2))
    return math.sqrt(1 - np.clip(bc, 0, 1))


def evidently_z_test(ref_ones, ref_n, cur_ones, cur_n):
    """Evidently's z_stattest.py: pooled two-proportion z, 2(1 − Φ(|z|)),
    and p = 1 when every row of both windows has the same value."""
    if (ref_ones in (0, ref_n)) and (cur_ones in (0, cur_n)) and (ref_ones == 0) == (cur_ones == 0):
        return None, 1.0
    p1 = float(ref_ones) / ref_n
    p2 = float(cur_ones) / cur_n
    pooled = float(p1 * ref_n + p2 * cur_n) / (ref_n + cur_n)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / ref_n + 1.0 / cur_n))
    return f(z), f(2 * (1 - st.norm.cdf(np.abs(z))))


def twosample(rng):
    data, stored = twosample_datasets(rng)
    pairs = {
        "ks": [("n12", "n9"), ("n30a", "n30b"), ("odd5", "even5"), ("lo7", "hi5"), ("tie60", "tie45"),
               ("n300", "n250"), ("n300", "n250s"), ("n300", "n300_copy"), ("g9000", "g7000"),
               ("g3000", "g2000_far"), ("g12000", "g10"), ("g12000", "g10_shift"), ("g12000", "g10_far"),
               ("g12000", "g300"), ("g12000", "g300_shift"), ("g12000", "g300_far"),
               ("g20000a", "g20000b"), ("g20000a", "g20000_shift"), ("g20000_tied", "g15000_tied")],
        "cdf_distances": [("n12", "n9"), ("odd5", "even5"), ("lo7", "hi5"), ("tie60", "tie45"), ("n300", "n250s"),
                          ("n300", "n300_copy"), ("g12000", "g10_far"), ("g20000a", "g20000_shift"),
                          ("g20000_tied", "g15000_tied")],
        "anderson": [("n12", "n9"), ("n30a", "n30b"), ("lo7", "hi5"), ("tie60", "tie45"), ("n40", "n55"),
                     ("n300", "n250"), ("n300", "n250s"), ("n300", "n300_copy"), ("g3000", "g2000_far"),
                     ("g20000a", "g20000_shift"), ("g20000_tied", "g15000_tied")],
        "cramervonmises": [("n12", "n9"), ("n8", "n11"), ("n20a", "n20b"), ("tie15", "tie12"), ("lo7", "hi5"),
                           ("n40", "n55"), ("tie60", "tie45"), ("n300", "n250"), ("n300", "n250s"),
                           ("n300", "n300_copy"), ("g3000", "g2000_far"), ("g20000a", "g20000_shift"),
                           ("g20000_tied", "g15000_tied")],
    }
    ks = []
    for a, b in pairs["ks"]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = st.ks_2samp(data[a], data[b])
        exact_failed = any("Exact calculation unsuccessful" in str(w.message) for w in caught)
        method = "exact" if max(len(data[a]), len(data[b])) <= 10000 and not exact_failed else "asymptotic"
        ks.append({"a": a, "b": b, "statistic": f(res.statistic), "p_value": f(res.pvalue), "method": method})
    kstwo = []
    for n in [1, 2, 5, 10, 60, 140, 141, 293, 5000, 10000, 100000, 100001, 400000, 1000000, 1000001, 3000000]:
        for z in [0.3, 0.7, 0.9, 1.1, 1.3, 1.6, 2.0, 3.0, 5.0, 9.0, 15.0, 25.0]:
            x = z / math.sqrt(n)
            if x < 1:
                kstwo.append({"n": n, "d": x, "sf": f(st.kstwo.sf(x, n))})
        for x in [0.25 / n, 0.75 / n, 0.5, 0.8, 1 - 0.5 / n]:
            kstwo.append({"n": n, "d": f(x), "sf": f(st.kstwo.sf(x, n))})
        # Either side of each switch between algorithms (scipy's sf jumps
        # there, by up to ~3e-6 near n = 141).
        switches = [math.sqrt(0.754693 / n), math.sqrt(4.0 / n)] if n <= 140 else [math.sqrt(2.2 / n), (1.4 / n) ** (2 / 3)]
        for x in switches:
            for side in [0.0, 1.0]:
                xs = float(np.nextafter(x, side))
                if 0 < xs < 1:
                    kstwo.append({"n": n, "d": xs, "sf": f(st.kstwo.sf(xs, n))})
    cdf_distances = []
    for a, b in pairs["cdf_distances"]:
        cdf_distances.append({"a": a, "b": b, "wasserstein": f(st.wasserstein_distance(data[a], data[b])),
                              "wasserstein_ba": f(st.wasserstein_distance(data[b], data[a])),
                              "energy": f(st.energy_distance(data[a], data[b]))})
    anderson = []
    for a, b in pairs["anderson"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = st.anderson_ksamp([data[a], data[b]])
        anderson.append({"a": a, "b": b, "statistic": f(res.statistic), "p_value": f(res.pvalue),
                         "critical_values": [f(c) for c in res.critical_values]})
    cvm = []
    for a, b in pairs["cramervonmises"]:
        res = st.cramervonmises_2samp(data[a], data[b])
        method = "exact" if max(len(data[a]), len(data[b])) <= 20 else "asymptotic"
        cvm.append({"a": a, "b": b, "statistic": f(res.statistic), "p_value": f(res.pvalue), "method": method})

    chisq = []
    for obs, exp in [([16, 18, 16, 14, 12, 12], [16, 16, 16, 16, 16, 8]), ([50, 30], [40.0, 40.0]),
                     ([1200, 980, 410, 23], [1190.5, 1001.5, 400.0, 21.0]), ([3, 0, 7], [4.0, 2.5, 3.5])]:
        res = st.chisquare(obs, exp)
        chisq.append({"f_obs": [f(x) for x in obs], "f_exp": [f(x) for x in exp],
                      "statistic": f(res.statistic), "p_value": f(res.pvalue), "dof": len(obs) - 1})
    contingency = []
    for table in [[[12, 5], [7, 15]], [[10, 10], [10, 11]], [[250, 230], [190, 215]], [[3, 8, 14], [9, 2, 6]],
                  [[20, 31, 12, 7], [18, 25, 30, 4], [9, 9, 15, 21]], [[4, 9, 13]], [[5], [8]]]:
        for correction in [True, False]:
            res = st.chi2_contingency(table, correction=correction)
            contingency.append({"table": [[f(x) for x in row] for row in table], "correction": correction,
                                "statistic": f(res.statistic), "p_value": f(res.pvalue), "dof": int(res.dof),
                                "expected": [[f(x) for x in row] for row in res.expected_freq]})

    js = []
    for p, q, base in [([0.2, 0.5, 0.3], [0.1, 0.6, 0.3], None), ([1, 0, 0], [0, 1, 0], 2.0),
                       ([3, 0, 5, 2, 9], [1, 4, 4, 0, 6], None), ([0.25, 0.25, 0.5], [0.25, 0.25, 0.5], None),
                       ([10, 20, 30, 40], [12, 18, 33, 37], 10.0), ([0.7, 0.3], [0.2, 0.8], 2.0)]:
        js.append({"p": [f(x) for x in p], "q": [f(x) for x in q], "base": base,
                   "distance": f(distance.jensenshannon(p, q, base))})

    # Evidently's histogram scores on bin proportions formed as Evidently
    # forms them (numerical columns: Sturges bins over both windows).
    evidently = []
    for a, b in [("n300", "n250"), ("n300", "n250s"), ("n40", "n55"), ("g12000", "g300_far"), ("g20000a", "g20000_shift")]:
        ref_p, cur_p = evidently_numeric_percents(data[a], data[b])
        ref_f, cur_f = evidently_fill_zeroes(ref_p), evidently_fill_zeroes(cur_p)
        hel, ref_h, cur_h = evidently_hellinger_numeric(data[a], data[b])
        evidently.append({
            "kind": "numerical", "a": a, "b": b,
            "ref_percents": [f(x) for x in ref_p], "cur_percents": [f(x) for x in cur_p],
            "ref_filled": [f(x) for x in ref_f], "cur_filled": [f(x) for x in cur_f],
            "psi": f(np.sum((ref_f - cur_f) * np.log(ref_f / cur_f))),
            "kl_div": f(st.entropy(ref_f, cur_f)),
            "jensenshannon": f(distance.jensenshannon(ref_p, cur_p)),
            "hellinger_ref_percents": [f(x) for x in ref_h], "hellinger_cur_percents": [f(x) for x in cur_h],
            "hellinger": f(hel),
        })
    for ref, cur in [(list("aabbbcccccdd"), list("aabbccccdddde")), (list("xxxyyz") * 5, list("xyyzzz") * 4)]:
        ref_p, cur_p = evidently_categorical_percents(ref, cur)
        ref_f, cur_f = evidently_fill_zeroes(ref_p), evidently_fill_zeroes(cur_p)
        evidently.append({
            "kind": "categorical", "a": "".join(ref), "b": "".join(cur),
            "ref_percents": [f(x) for x in ref_p], "cur_percents": [f(x) for x in cur_p],
            "ref_filled": [f(x) for x in ref_f], "cur_filled": [f(x) for x in cur_f],
            "psi": f(np.sum((ref_f - cur_f) * np.log(ref_f / cur_f))),
            "kl_div": f(st.entropy(ref_f, cur_f)),
            "jensenshannon": f(distance.jensenshannon(ref_p, cur_p)),
            "hellinger_ref_percents": [f(x) for x in ref_p], "hellinger_cur_percents": [f(x) for x in cur_p],
            "hellinger": f(evidently_hellinger_categorical(ref_p, cur_p)),
        })
    z_tests = []
    for ro, rn, co, cn in [(120, 1000, 140, 1000), (45, 300, 30, 310), (0, 50, 0, 80), (50, 50, 80, 80),
                           (0, 40, 40, 40), (5012, 50000, 4880, 49500), (10, 10000, 400, 10000)]:
        z, p = evidently_z_test(ro, rn, co, cn)
        z_tests.append({"ref_ones": ro, "ref_n": rn, "cur_ones": co, "cur_n": cn, "z": z, "p_value": p})

    return {
        "datasets": stored,
        "ks_2samp": ks,
        "kstwo_sf": kstwo,
        "cdf_distances": cdf_distances,
        "anderson_ksamp": anderson,
        "cramervonmises_2samp": cvm,
        "chisquare": chisq,
        "chi2_contingency": contingency,
        "jensenshannon": js,
        "evidently": {"histograms": evidently, "z_test": z_tests},
    }


def build() -> dict:
    rng = np.random.default_rng(SEED)
    return {
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "statsmodels": statsmodels.__version__},
        "seed": SEED,
        "special": special_functions(),
        "proportions": proportions(),
        "welch": welch(rng),
        "srm": srm(),
        "msprt": msprt(),
        "cuped": cuped(rng),
        "bayes": bayes(),
        "ope": ope(rng),
        # Its own stream, so that adding cases here never moves the data above.
        "twosample": twosample(np.random.default_rng(SEED + 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "reference.json")
    args = parser.parse_args()
    text = json.dumps(build(), indent=1, sort_keys=True, allow_nan=False) + "\n"
    args.out.write_text(text)


if __name__ == "__main__":
    main()
