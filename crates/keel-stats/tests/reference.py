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

import numpy as np
import scipy
import scipy.special as sp
import scipy.stats as st
import statsmodels
from scipy import integrate
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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "reference.json")
    args = parser.parse_args()
    text = json.dumps(build(), indent=1, sort_keys=True, allow_nan=False) + "\n"
    args.out.write_text(text)


if __name__ == "__main__":
    main()
