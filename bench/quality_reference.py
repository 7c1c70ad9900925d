#!/usr/bin/env python3
"""The Python reference of `keel test run`: the checks of a suite computed
with scikit-learn, fairlearn, evidently, pandas and numpy, in one process,
the way bench/quality_bench.py times it (imports included, like Keel's
start-up).

    quality_reference.py --suite suite.json --model model.joblib --out result.json
                         [--variant libraries|numpy]

The suite is the same document as the suite.yaml Keel reads, as JSON (the
driver writes both from one dict); files are relative to it. The model is
the scikit-learn estimator that model.onnx was exported from. Each check is
computed with the definitions Keel documents (crates/keel-suite/src/run.rs,
checks.rs and keel-quality's primitives), thresholds applied the same way:

  performance  evidently's Accuracy, Precision, Recall, F1Score, RocAuc and
               LogLoss with gte/lte tests (one Report per slice) where it
               has the metric; scikit-learn for pr_auc (average precision)
               and brier; numpy for ECE (equal-width bins, a probability on
               an inner edge in the lower bin); slices are pandas masks
               (DataFrame.query of the same predicate); the worst-slice gap
               searches single columns and pairs (numeric columns in
               quartiles as pandas.qcut, text by value) with numpy.
  fairness     fairlearn 0.15: demographic_parity_difference/ratio,
               equal_opportunity_difference, equalized_odds_difference/
               ratio, disparate impact (= the parity ratio), and a
               MetricFrame by group for group_metrics.
  robustness   numpy + model.predict: Gaussian noise of scale x the
               column's population standard deviation, category swap,
               directional expectations (tolerance 1e-9), minimum-
               functionality cases.
  privacy      per-row log loss on train vs holdout rows, attacker AUC
               (roc_auc_score) and advantage max(TPR - FPR) over loss
               thresholds (roc_curve); a regex scan for e-mail, phone,
               payment card (Luhn), IBAN (mod 97) and IPv4; k-anonymity as
               the smallest pandas groupby size.
  security     random search on the corners of the L-inf ball (or the L2
               sphere) in standard-deviation units, batched per round, then
               a bisection of the flipping segment; hostile probes sent to
               model.predict_proba, answered or raised.
  cost         predict_proba timed at least 50 times and 0.5 s, at most
               10,000 times, as Keel times its compiled model; peak memory
               as tracemalloc's peak while predict_proba answers the batch.

--variant numpy is the quickest Python this reference has: no evidently
(scikit-learn computes its six metrics) and no fairlearn (the same group
rates from numpy bincounts, fairlearn's definitions: between-groups max -
min and min / max, an undefined TPR or FPR counted as 0, worst case for
equalized odds). fairlearn 0.15's MetricFrame turns every column into
arrays element by element (np.stack over objects in
_annotated_metric_function.py), about a second per call per 100,000 rows.
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

# --variant numpy imports neither fairlearn nor evidently.
LIBRARIES = "--variant" not in sys.argv or sys.argv[sys.argv.index("--variant") + 1:][:1] != ["numpy"]
EVIDENTLY_IMPORT_S = None
if LIBRARIES:
    from fairlearn import metrics as flm  # noqa: E402

    t = time.perf_counter()
    from evidently import BinaryClassification, DataDefinition, Dataset, Report  # noqa: E402
    from evidently import metrics as evm  # noqa: E402
    from evidently.tests import gte, lte  # noqa: E402
    EVIDENTLY_IMPORT_S = time.perf_counter() - t

T_IMPORTED = time.perf_counter()

LOG_LOSS_EPS = np.finfo(np.float64).eps
# evidently's metric class for each performance metric it has.
EVIDENTLY_METRICS = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall",
                     "f1": "F1Score", "roc_auc": "RocAuc", "log_loss": "LogLoss"}
MAX_KEYS = ("max", "max_gap", "max_flip_rate", "max_mean_change", "max_violation_rate",
            "max_advantage", "max_auc", "max_findings", "max_success_rate", "max_answered")
MIN_KEYS = ("min", "min_pass_rate", "min_k")
COST_MEASURES = ("latency_p50_ms", "latency_p99_ms", "throughput", "peak_memory_mb", "cost_per_1000")
OVERSIZED_ROWS = 100_000


class Unsupported(Exception):
    """A check this reference does not compute."""


def threshold(p: dict):
    """(min, max) as Keel reads them: the first bound key present, else the
    cost measure's own min/max."""
    cost = next((p[m] for m in COST_MEASURES if m in p), {})
    lo = next((p[k] for k in MIN_KEYS if k in p), cost.get("min"))
    hi = next((p[k] for k in MAX_KEYS if k in p), cost.get("max"))
    return lo, hi


def verdict(value, lo, hi) -> str:
    ok = value is not None and math.isfinite(value)
    ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
    return "pass" if ok else "fail"


def default_name(c: dict) -> str:
    if "name" in c:
        return c["name"]
    kind = c["kind"]
    if kind in ("performance", "fairness"):
        main = c["metric"]
    elif kind == "robustness":
        main = (next(iter(c["perturbation"])) if "perturbation" in c
                else "directional" if "directional" in c else "minimum_functionality")
    elif kind in ("privacy", "security"):
        main = c["test"]
    else:
        main = next(m for m in COST_MEASURES if m in c)
    name = f"{kind}.{main}"
    if "sensitive" in c:
        s = c["sensitive"]
        name += "@" + (s if isinstance(s, str) else "[" + ",".join(s) + "]")
    if "slice" in c:
        name += f"[{c['slice']}]"
    return name


# --------------------------------------------------------------------------
# the model and the data
# --------------------------------------------------------------------------


class Scored:
    """A dataset, its feature matrix and the model's answers on it."""

    def __init__(self, df: pd.DataFrame, label, features, model):
        self.df = df
        self.label = label
        self.X = df[features].to_numpy(dtype=np.float64)
        self.pred = model.predict(self.X)
        self.proba = model.predict_proba(self.X)[:, 1]
        self.y = df[label].to_numpy().astype(np.int64) if label else None


def numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def load(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


# --------------------------------------------------------------------------
# performance
# --------------------------------------------------------------------------


def ece(y, p, bins: int) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.searchsorted(edges[1:-1], p, side="left")
    count = np.bincount(b, minlength=bins)
    hits = np.bincount(b, weights=y, minlength=bins)
    pred = np.bincount(b, weights=p, minlength=bins)
    nz = count > 0
    return float(np.sum(count[nz] / len(p) * np.abs(hits[nz] / count[nz] - pred[nz] / count[nz])))


def sklearn_metric(metric: str, y, pred, proba, c: dict) -> float:
    if metric == "accuracy":
        return skm.accuracy_score(y, pred)
    if metric == "precision":
        return skm.precision_score(y, pred, pos_label=1, zero_division=0)
    if metric == "recall":
        return skm.recall_score(y, pred, pos_label=1, zero_division=0)
    if metric == "f1":
        return skm.f1_score(y, pred, pos_label=1, zero_division=0)
    if metric == "roc_auc":
        return skm.roc_auc_score(y, proba)
    if metric == "pr_auc":
        return skm.average_precision_score(y, proba, pos_label=1)
    if metric == "log_loss":
        return skm.log_loss(y, proba, labels=[0, 1])
    if metric == "brier":
        return skm.brier_score_loss(y, proba, pos_label=1)
    if metric == "ece":
        return ece(y, proba, int(c.get("bins", 10)))
    raise Unsupported(f"metric {metric} (a classifier's suite)")


def quantile_codes(v: np.ndarray, bins: int):
    """pandas.qcut(duplicates="drop") codes, NaN its own code."""
    nan = np.isnan(v)
    finite = v[~nan]
    if len(finite) == 0:
        return np.zeros(len(v), dtype=np.int64), 1
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))
    names = max(len(edges) - 1, 1)
    inner = edges[1:-1] if len(edges) > 2 else edges[:0]
    codes = np.searchsorted(inner, v, side="left").astype(np.int64)
    if nan.any():
        codes[nan] = names
        names += 1
    return codes, names


def worst_slice_gap(df: pd.DataFrame, label: str, correct: np.ndarray, min_size: int, bins: int = 4):
    """The worst discovered slice's accuracy below the overall: every column
    but the label, alone and in pairs, at least min_size rows (a pair with
    exactly the rows of one of its single slices is skipped)."""
    y = correct.astype(np.float64)
    n = len(y)
    overall = y.mean()
    enc = []
    for col in df.columns:
        if col == label:
            continue
        s = df[col]
        if numeric(s):
            enc.append(quantile_codes(s.to_numpy(dtype=np.float64), bins))
        else:
            codes, uniques = pd.factorize(s.fillna("(null)"), sort=False)
            enc.append((codes.astype(np.int64), len(uniques)))
    worst = None
    singles = []
    for codes, k in enc:
        cnt = np.bincount(codes, minlength=k)
        sm = np.bincount(codes, weights=y, minlength=k)
        singles.append(cnt)
        ok = cnt >= min_size
        if ok.any():
            w = np.min(sm[ok] / cnt[ok])
            worst = w if worst is None else min(worst, w)
    for a in range(len(enc)):
        ca, ka = enc[a]
        for b in range(a + 1, len(enc)):
            cb, kb = enc[b]
            key = ca * kb + cb
            if ka * kb <= 1 << 22:
                cnt = np.bincount(key, minlength=ka * kb)
                sm = np.bincount(key, weights=y, minlength=ka * kb)
                keys = np.nonzero(cnt)[0]
                cnt, sm = cnt[keys], sm[keys]
            else:
                keys, inv = np.unique(key, return_inverse=True)
                cnt = np.bincount(inv)
                sm = np.bincount(inv, weights=y)
            ok = ((cnt >= min_size) & (cnt != singles[a][keys // kb])
                  & (cnt != singles[b][keys % kb]))
            if ok.any():
                w = np.min(sm[ok] / cnt[ok])
                worst = w if worst is None else min(worst, w)
    return overall, (None if worst is None else overall - worst), n


def performance(checks, ctx, out, use_evidently: bool):
    s = ctx["test"]
    # evidently: one Report per slice with every metric it has.
    if use_evidently:
        groups: dict = {}
        for i, c in checks:
            if c["metric"] in EVIDENTLY_METRICS and c.get("dataset", "test") == "test":
                groups.setdefault(c.get("slice"), []).append((i, c))
        for slice_name, members in groups.items():
            t = time.perf_counter()
            rows = ctx["slices"][slice_name] if slice_name else None
            frame = pd.DataFrame({"target": s.y, "prediction": s.pred, "proba": s.proba})
            if rows is not None:
                frame = frame.iloc[rows]
            definition = DataDefinition(classification=[BinaryClassification(
                target="target", prediction_labels="prediction", prediction_probas="proba",
                pos_label=1)])
            dataset = Dataset.from_pandas(frame, data_definition=definition)
            metrics = []
            for i, c in members:
                lo, hi = threshold(c)
                tests = ([gte(lo)] if lo is not None else []) + ([lte(hi)] if hi is not None else [])
                metrics.append(getattr(evm, EVIDENTLY_METRICS[c["metric"]])(tests=tests))
            snap = Report(metrics).run(dataset, None).dict()
            by_id = {m["id"]: m for m in snap["metrics"]}
            statuses: dict = {}
            for tr in snap["tests"]:
                statuses.setdefault(tr["metric_config"]["metric_id"], []).append(tr["status"])
            ids = [m["id"] for m in snap["metrics"]]
            spent = time.perf_counter() - t
            for (i, c), mid in zip(members, ids):
                st = statuses.get(mid, [])
                value = float(by_id[mid]["value"])
                lo, hi = threshold(c)
                out[i] = {"value": value,
                          "status": "pass" if st and all(x == "SUCCESS" for x in st) else "fail",
                          "own_verdict": verdict(value, lo, hi),
                          "evidently_tests": st, "how": "evidently",
                          "seconds": spent / len(members)}
    for i, c in checks:
        if i in out:
            continue
        t = time.perf_counter()
        metric = c["metric"]
        d = ctx[c.get("dataset", "test")]
        rows = ctx["slices"][c["slice"]] if "slice" in c else None
        y, pred, proba = d.y, d.pred, d.proba
        if rows is not None:
            y, pred, proba = y[rows], pred[rows], proba[rows]
        if metric == "no_slice_worse_than_overall":
            correct_all = d.y == d.pred
            overall = correct_all[rows].mean() if rows is not None else correct_all.mean()
            gap = 0.0
            for name, r in ctx["slices"].items():
                if len(r):
                    gap = max(gap, overall - correct_all[r].mean())
            _, discovered, _ = worst_slice_gap(d.df, d.label, correct_all, int(c.get("min_size", 30)))
            if discovered is not None:
                gap = max(gap, discovered)
            value, how = float(gap), "numpy (pandas masks, quantile bins, pairs)"
        else:
            value = float(sklearn_metric(metric, y, pred, proba, c))
            how = "numpy" if metric == "ece" else "scikit-learn"
        lo, hi = threshold(c)
        out[i] = {"value": value, "status": verdict(value, lo, hi), "how": how,
                  "seconds": time.perf_counter() - t}


# --------------------------------------------------------------------------
# fairness
# --------------------------------------------------------------------------


def fairness_numpy(metric, y, pred, frame, cols) -> float:
    """fairlearn's disparity metrics from per-group counts."""
    g = (pd.factorize(frame[cols[0]])[0] if len(cols) == 1
         else frame.groupby(cols, sort=False).ngroup().to_numpy())
    k = g.max() + 1
    n = np.bincount(g, minlength=k)
    pos = np.bincount(g, weights=(y == 1), minlength=k)
    pp = np.bincount(g, weights=(pred == 1), minlength=k)
    tp = np.bincount(g, weights=(y == 1) & (pred == 1), minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        sel = pp / n
        tpr = np.nan_to_num(tp / pos)
        fpr = np.nan_to_num((pp - tp) / (n - pos))

    def diff(r):
        return float(r.max() - r.min())

    def ratio(r):
        return float(r.min() / r.max()) if r.max() > 0 else float("nan")

    if metric in ("demographic_parity_difference", "group_metrics"):
        return diff(sel)
    if metric in ("demographic_parity_ratio", "disparate_impact"):
        return ratio(sel)
    if metric == "equal_opportunity_difference":
        return diff(tpr)
    if metric == "equalized_odds_difference":
        return max(diff(tpr), diff(fpr))
    if metric == "equalized_odds_ratio":
        return min(ratio(tpr), ratio(fpr))
    raise Unsupported(f"fairness metric {metric}")


def fairness(i, c, ctx, use_fairlearn: bool):
    d = ctx[c.get("dataset", "test")]
    sens = c["sensitive"]
    cols = [sens] if isinstance(sens, str) else list(sens)
    rows = ctx["slices"][c["slice"]] if "slice" in c else None
    frame = d.df[cols].astype(str) if any(not numeric(d.df[x]) for x in cols) else d.df[cols]
    y, pred = d.y, d.pred
    if rows is not None:
        frame, y, pred = frame.iloc[rows], y[rows], pred[rows]
    sf = frame[cols[0]] if len(cols) == 1 else frame
    metric = c["metric"]
    if not use_fairlearn:
        return fairness_numpy(metric, y, pred, frame, cols), "numpy bincount by group"
    fn = {"demographic_parity_difference": flm.demographic_parity_difference,
          "demographic_parity_ratio": flm.demographic_parity_ratio,
          "equal_opportunity_difference": flm.equal_opportunity_difference,
          "equalized_odds_difference": flm.equalized_odds_difference,
          "equalized_odds_ratio": flm.equalized_odds_ratio,
          "disparate_impact": flm.demographic_parity_ratio}.get(metric)
    if fn is not None:
        return float(fn(y, pred, sensitive_features=sf)), "fairlearn"
    if metric == "group_metrics":
        mf = flm.MetricFrame(metrics={"count": flm.count, "selection_rate": flm.selection_rate,
                                      "true_positive_rate": flm.true_positive_rate,
                                      "false_positive_rate": flm.false_positive_rate,
                                      "accuracy": skm.accuracy_score},
                             y_true=y, y_pred=pred, sensitive_features=sf)
        rates = mf.by_group["selection_rate"]
        return float(rates.max() - rates.min()), "fairlearn MetricFrame"
    raise Unsupported(f"fairness metric {metric}")


# --------------------------------------------------------------------------
# robustness
# --------------------------------------------------------------------------


def column_index(features, names):
    names = [names] if isinstance(names, str) else list(names)
    return [features.index(n) for n in names]


def robustness(i, c, ctx, model, features, base: Path):
    d = ctx[c.get("dataset", "test")]
    rng = np.random.default_rng(int(c.get("seed", 0)))
    X = d.X
    if "perturbation" in c:
        kind, args = next(iter(c["perturbation"].items()))
        cols = column_index(features, args["columns"])
        X2 = X.copy()
        n = len(X)
        if kind == "gaussian_noise":
            for col in cols:
                v = X2[:, col]
                fin = np.isfinite(v)
                sd = float(np.std(v[fin])) * float(args["scale"]) if fin.any() else 0.0
                if sd > 0:
                    noise = rng.standard_normal(n) * sd
                    v[fin] += noise[fin]
        elif kind == "missing":
            for col in cols:
                X2[rng.random(n) < float(args["rate"]), col] = np.nan
        elif kind == "category_swap":
            for col in cols:
                v = X[:, col]
                seen = np.unique(v[~np.isnan(v)])
                if len(seen) < 2:
                    continue
                swap = (rng.random(n) < float(args["rate"])) & ~np.isnan(v)
                own = np.searchsorted(seen, v[swap])
                k = rng.integers(0, len(seen) - 1, swap.sum())
                k = k + (k >= own)
                X2[swap, col] = seen[k]
        else:
            raise Unsupported(f"perturbation {kind}")
        after_pred = model.predict(X2)
        after_proba = model.predict_proba(X2)[:, 1]
        flips = float(np.mean(after_pred != d.pred))
        change = float(np.mean(np.abs(after_proba - d.proba)))
        value = change if "max_mean_change" in c else flips
        return value, "numpy + model.predict", {"flip_rate": flips, "mean_abs_change": change}
    if "directional" in c:
        dr = c["directional"]
        col = column_index(features, dr["feature"])[0]
        X2 = X.copy()
        X2[:, col] += float(dr.get("increase", 1.0))
        diff = model.predict_proba(X2)[:, 1] - model.predict_proba(X)[:, 1]
        tol = 1e-9
        bad = {"increase": diff < -tol, "decrease": diff > tol,
               "no_change": np.abs(diff) > tol}[dr["expect"]] | np.isnan(diff)
        return float(bad.mean()), "numpy + model.predict_proba", {"violations": int(bad.sum())}
    if "cases" in c:
        cases = load(base / c["cases"])
        got = model.predict(cases[features].to_numpy(dtype=np.float64))
        ok = got == cases["expected"].to_numpy().astype(np.int64)
        return float(ok.mean()), "model.predict", {"cases": int(len(ok)), "passed": int(ok.sum())}
    raise Unsupported("robustness check")


# --------------------------------------------------------------------------
# privacy
# --------------------------------------------------------------------------


def row_log_loss(d: Scored) -> np.ndarray:
    q = np.where(d.y == 1, d.proba, 1.0 - d.proba)
    return -np.log(np.clip(q, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS))


EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![A-Za-z0-9])")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.]*\d)")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?!\d)")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}(?:[ -]\d{1,4}){2,5}|\(?\d{3}\)?[ -]\d{3}[ -]\d{4})(?![\w])")
IBAN_START = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}")
IBAN_LENGTHS = {
    "AD": 24, "AL": 28, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GI": 23,
    "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MT": 31, "NL": 18, "NO": 15,
    "PL": 28, "PT": 25, "RO": 24, "RS": 22, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
    "UA": 29, "VA": 22}


def luhn(digits: str) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch)
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    s = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in s)) % 97 == 1


def ibans(text: str):
    for m in IBAN_START.finditer(text):
        need = IBAN_LENGTHS.get(m.group()[:2])
        if need is None:
            continue
        j, compact = m.start(), []
        while len(compact) < need and j < len(text):
            ch = text[j]
            if ch.isascii() and ch.isalnum():
                compact.append(ch.upper())
                j += 1
            elif ch == " " and j + 1 < len(text) and text[j + 1].isalnum():
                j += 1
            else:
                break
        if len(compact) == need and not (j < len(text) and text[j].isalnum()) and iban_ok("".join(compact)):
            yield m.start(), j


def find_pii(text: str):
    """(kind, start, end) of each finding; a finding overlapping an earlier
    one (in the order e-mail, IBAN, IPv4, card, phone) is dropped."""
    found = []

    def add(kind, a, b):
        if not any(a < e and s < b for _, s, e in found):
            found.append((kind, a, b))

    for m in EMAIL.finditer(text):
        add("email", *m.span())
    for a, b in ibans(text):
        add("iban", a, b)
    for m in IPV4.finditer(text):
        if all(len(p) == 1 or p[0] != "0" for p in m.group().split(".")) and \
                all(int(p) <= 255 for p in m.group().split(".")):
            add("ipv4", *m.span())
    for m in CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and luhn(digits):
            add("credit_card", *m.span())
    for m in PHONE.finditer(text):
        if 7 <= sum(ch.isdigit() for ch in m.group()) <= 15:
            add("phone", *m.span())
    return found


def privacy(i, c, ctx):
    test = c["test"]
    if test == "membership_inference":
        tl, hl = row_log_loss(ctx["train"]), row_log_loss(ctx["holdout"])
        member = np.r_[np.ones(len(tl)), np.zeros(len(hl))]
        score = -np.r_[tl, hl]
        auc = skm.roc_auc_score(member, score)
        fpr, tpr, _ = skm.roc_curve(member, score)
        adv = float(max(0.0, np.max(tpr - fpr)))
        value = auc if "max_auc" in c else adv
        return float(value), "scikit-learn roc_auc_score, roc_curve", {"auc": float(auc), "advantage": adv}
    d = ctx[c.get("dataset", "test")]
    if test == "pii":
        wanted = c.get("columns")
        by_kind: dict = {}
        rows_with = 0
        for col in d.df.columns:
            if (wanted is not None and col not in wanted) or numeric(d.df[col]):
                continue
            s = d.df[col].fillna("").astype(str)
            cand = s[s.str.contains(r"[@\d]", regex=True)]
            for text in cand:
                f = find_pii(text)
                rows_with += bool(f)
                for kind, _, _ in f:
                    by_kind[kind] = by_kind.get(kind, 0) + 1
        return float(sum(by_kind.values())), "re + pandas .str", {"by_kind": by_kind,
                                                                 "rows_with_pii": rows_with}
    if test == "k_anonymity":
        q = c["quasi_identifiers"]
        q = [q] if isinstance(q, str) else list(q)
        sizes = d.df.groupby(q, dropna=False, observed=True, sort=False).size()
        return float(sizes.min()), "pandas groupby", {"classes": int(len(sizes))}
    raise Unsupported(f"privacy test {test}")


# --------------------------------------------------------------------------
# security
# --------------------------------------------------------------------------


def evasion(c, d: Scored, model):
    samples = min(int(c.get("samples", 200)), len(d.X))
    budget = float(c.get("budget", 0.1))
    queries = int(c.get("queries", 100))
    per_round, refine = 10, 10
    l2 = c.get("norm") == "l2"
    rng = np.random.default_rng(int(c.get("seed", 0)))
    X = d.X[:samples]
    std = np.array([np.std(col[np.isfinite(col)]) if np.isfinite(col).any() else 0.0
                    for col in d.X.T])
    movable = std > 0
    original = model.predict(X)
    dim = X.shape[1]
    found = {}
    used = np.zeros(samples, dtype=np.int64)
    total = 0
    active = np.arange(samples) if movable.any() else np.arange(0)
    spent = 0
    while len(active) and spent < queries:
        k = min(per_round, queries - spent)
        spent += k
        if l2:
            z = rng.standard_normal((len(active), k, dim)) * movable
            z *= budget / np.linalg.norm(z, axis=2, keepdims=True)
        else:
            z = np.where(rng.random((len(active), k, dim)) < 0.5, -budget, budget) * movable
        cand = X[active][:, None, :] + z * std
        labels = model.predict(cand.reshape(-1, dim)).reshape(len(active), k)
        total += len(active) * k
        hit = labels != original[active][:, None]
        still = []
        for a, r in enumerate(active):
            js = np.nonzero(hit[a])[0]
            if len(js):
                found[int(r)] = (z[a, js[0]], int(used[r] + js[0] + 1))
            else:
                used[r] += k
                still.append(r)
        active = np.array(still, dtype=np.int64)
    evaded = sorted(found)
    lo = np.zeros(len(evaded))
    hi = np.ones(len(evaded))
    if evaded:
        deltas = np.array([found[r][0] for r in evaded])
        for _ in range(refine):
            t = 0.5 * (lo + hi)
            labels = model.predict(X[evaded] + t[:, None] * deltas * std)
            total += len(evaded)
            flipped = labels != original[evaded]
            hi = np.where(flipped, t, hi)
            lo = np.where(flipped, lo, t)
        norms = (np.linalg.norm(deltas, axis=1) if l2 else np.abs(deltas).max(axis=1))
        mean_q = float(np.mean([found[r][1] for r in evaded]))
        mean_d = float(np.mean(hi * norms))
    else:
        mean_q = mean_d = None
    rate = len(evaded) / samples
    return rate, {"rows": samples, "evaded": len(evaded), "mean_queries": mean_q,
                  "mean_min_distance": mean_d, "total_queries": total}


def hostile(c, d: Scored, model):
    dim = d.X.shape[1]
    base = d.X[:1]
    probes = {
        "nan": np.full((1, dim), np.nan), "pos_inf": np.full((1, dim), np.inf),
        "neg_inf": np.full((1, dim), -np.inf), "huge": np.full((1, dim), 1e12),
        "neg_huge": np.full((1, dim), -1e12),
        "wrong_type": np.array([["not a number"] * dim], dtype=object),
        "wrong_shape": np.zeros((1, dim + 1)), "empty_batch": np.zeros((0, dim)),
        "oversized_batch": np.repeat(base, OVERSIZED_ROWS, axis=0)}
    outcome = {}
    for name, m in probes.items():
        try:
            model.predict_proba(m)
            outcome[name] = {"answered": True}
        except Exception as e:  # noqa: BLE001 - a rejection is the outcome
            outcome[name] = {"answered": False, "error": f"{type(e).__name__}: {str(e)[:120]}"}
    # Keel's default: the non-finite probes too, unless the model takes
    # missing values (a scikit-learn LogisticRegression does not).
    reject = c.get("reject", ["nan", "pos_inf", "neg_inf", "wrong_type", "wrong_shape"])
    reject = [reject] if isinstance(reject, str) else reject
    answered = sum(outcome[p]["answered"] for p in reject)
    return float(answered), {"probes": outcome, "reject": reject}


def security(i, c, ctx, model):
    d = ctx[c.get("dataset", "test")]
    if c["test"] == "evasion":
        v, ev = evasion(c, d, model)
        return v, "numpy + model.predict (batched rounds)", ev
    if c["test"] == "hostile_inputs":
        v, ev = hostile(c, d, model)
        return v, "model.predict_proba, try/except", ev
    raise Unsupported(f"security test {c['test']}")


# --------------------------------------------------------------------------
# cost
# --------------------------------------------------------------------------


def cost(i, c, ctx, model):
    d = ctx[c.get("dataset", "test")]
    measure = next(m for m in COST_MEASURES if m in c)
    batch = max(1, min(int(c[measure].get("batch", 1)), len(d.X)))
    x = np.ascontiguousarray(d.X[:batch])
    if measure == "peak_memory_mb":
        # As Keel measures it: the bytes answering the batch allocates at
        # its peak (Keel counts its allocations; numpy reports its buffers
        # to tracemalloc), in MB of 10^6 bytes.
        tracemalloc.start()
        try:
            model.predict_proba(x)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak / 1e6, "model.predict_proba, tracemalloc peak", {"batch": batch, "peak_bytes": peak,
                                                                     "input_bytes": x.nbytes}
    times = []
    started = time.perf_counter()
    while len(times) < 10_000 and (len(times) < 50 or time.perf_counter() - started < 0.5):
        t = time.perf_counter()
        model.predict_proba(x)
        times.append(time.perf_counter() - t)
    times.sort()

    def pct(q):
        return times[int(round((len(times) - 1) * q))]

    rows_per_s = batch / (sum(times) / len(times))
    value = {"latency_p50_ms": pct(0.5) * 1e3, "latency_p99_ms": pct(0.99) * 1e3,
             "throughput": rows_per_s,
             "cost_per_1000": float(c.get("cpu_hour_usd", 0.0)) / 3600.0 / rows_per_s * 1000.0}[measure]
    return value, "model.predict_proba timed", {"batch": batch, "runs": len(times),
                                                 "timed_s": sum(times)}


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variant", choices=("libraries", "numpy"), default="libraries",
                    help="libraries: evidently and fairlearn; numpy: neither (see above)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    use_evidently = use_fairlearn = args.variant == "libraries"
    t_start = time.perf_counter()
    suite = json.loads(args.suite.read_text())
    base = args.suite.parent
    model = joblib.load(args.model)
    timings: dict = {}

    t = time.perf_counter()
    frames = {name: load(base / d["path"]) for name, d in suite["data"].items()}
    timings["load_data"] = time.perf_counter() - t
    test = suite["data"]["test"]
    skip = set(test.get("exclude", [])) | ({test["label"]} if test.get("label") else set())
    for c in suite["checks"]:
        s = c.get("sensitive")
        if s is not None:
            skip |= {s} if isinstance(s, str) else set(s)
    features = suite["model"].get("features") or [
        col for col in frames["test"].columns if numeric(frames["test"][col]) and col not in skip]
    t = time.perf_counter()
    ctx: dict = {name: Scored(df, suite["data"][name].get("label"), features, model)
                 for name, df in frames.items()}
    timings["predict"] = time.perf_counter() - t
    t = time.perf_counter()
    # The same predicates as pandas expressions (the driver writes both).
    ctx["slices"] = {name: np.flatnonzero(frames["test"].eval(expr).to_numpy())
                     for name, expr in suite.get("slices_pandas", {}).items()}
    timings["slices"] = time.perf_counter() - t

    out: dict = {}
    perf = [(i, c) for i, c in enumerate(suite["checks"]) if c["kind"] == "performance"]
    t = time.perf_counter()
    try:
        performance(perf, ctx, out, use_evidently)
    except Unsupported as e:
        for i, _ in perf:
            out.setdefault(i, {"status": "error", "value": None, "error": str(e)})
    timings["performance"] = time.perf_counter() - t
    for i, c in enumerate(suite["checks"]):
        if c["kind"] == "performance":
            continue
        t = time.perf_counter()
        try:
            if c["kind"] == "fairness":
                v, how = fairness(i, c, ctx, use_fairlearn)
                ev = {}
            elif c["kind"] == "robustness":
                v, how, ev = robustness(i, c, ctx, model, features, base)
            elif c["kind"] == "privacy":
                v, how, ev = privacy(i, c, ctx)
            elif c["kind"] == "security":
                v, how, ev = security(i, c, ctx, model)
            else:
                v, how, ev = cost(i, c, ctx, model)
            lo, hi = threshold(c)
            out[i] = {"value": v, "status": verdict(v, lo, hi), "how": how, "evidence": ev}
        except Unsupported as e:
            out[i] = {"value": None, "status": "error", "error": f"not in the reference: {e}"}
        spent = time.perf_counter() - t
        out[i]["seconds"] = spent
        timings[c["kind"]] = timings.get(c["kind"], 0.0) + spent

    checks = []
    for i, c in enumerate(suite["checks"]):
        lo, hi = threshold(c)
        r = {"name": default_name(c), "kind": c["kind"],
             "severity": c.get("severity", "error"),
             "threshold": {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}}
        r.update(out[i])
        checks.append(r)
    passed = all(r["severity"] == "warning" or r["status"] == "pass" for r in checks)
    t_end = time.perf_counter()
    result = {"suite": suite["suite"], "passed": passed, "checks": checks,
              "rows": {k: len(v) for k, v in frames.items()}, "features": features,
              "variant": args.variant,
              "import_s": T_IMPORTED - T0, "evidently_import_s": EVIDENTLY_IMPORT_S,
              "compute_s": t_end - t_start, "timings_s": timings}
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
