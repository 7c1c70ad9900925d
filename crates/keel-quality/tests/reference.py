"""Reference values for keel-quality, computed with scikit-learn, fairlearn and numpy.

Builds fixed, seeded datasets (ties in scores, imbalanced classes, 3- and
4-class problems, groups of very different sizes, regression targets with
zeros), computes what the reference libraries say about them, and writes
both (with the library versions) to ``reference.json`` beside this file,
which ``reference.rs`` checks the Rust crate against. The output is
deterministic: rerunning this script with the same library versions
reproduces the file byte for byte, and
``tests/python/test_reference_fixtures.py`` asserts exactly that.

Where the crate defines a metric that scikit-learn has no function for
(expected calibration error, precision@k, MAP@k), the value comes from a
straightforward numpy implementation of the crate's stated definition.

    python crates/keel-quality/tests/reference.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import fairlearn
import numpy as np
import pandas as pd
import sklearn
import sklearn.metrics as skm
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.calibration import calibration_curve

HERE = Path(__file__).resolve().parent
# scikit-learn warns on zero division (and substitutes 0, which is what the
# crate documents) and on deprecated argument names; neither matters here.
warnings.simplefilter("ignore")


def f(x):
    """A plain Python float (JSON-serialisable, repr round-trips); NaN → None."""
    x = float(x)
    return None if math.isnan(x) else x


def floats(a):
    return [float(v) for v in a]


def ints(a):
    return [int(v) for v in a]


# --- classification -------------------------------------------------------


def uniform_bins(prob, n_bins):
    """numpy's version of the crate's bins: linspace edges, searchsorted."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], prob)


def ece(counts, hit_rate, confidence, n):
    """Σ |B|/n · |hit_rate(B) − confidence(B)| over the non-empty bins, in order."""
    total = 0.0
    for c, h, p in zip(counts, hit_rate, confidence):
        total += c / n * abs(h - p)
    return total


def calibration(y_bin, prob, n_bins):
    prob_true, prob_pred = calibration_curve(y_bin, prob, n_bins=n_bins, strategy="uniform")
    ids = uniform_bins(prob, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    nonzero = counts[counts > 0]
    return {
        "n_bins": n_bins,
        "counts": ints(nonzero),
        "fraction_positive": floats(prob_true),
        "mean_predicted": floats(prob_pred),
        "ece": f(ece(nonzero, prob_true, prob_pred, len(prob))),
    }


def binary_case(name, seed, n, positive_rate, labels, pos_label, score_decimals):
    rng = np.random.default_rng(seed)
    y_bin = (rng.random(n) < positive_rate).astype(int)
    neg_label = [l for l in labels if l != pos_label][0]
    y = np.where(y_bin == 1, pos_label, neg_label)
    # Real-valued scores (decision function), rounded: ties, and -0.0.
    score = rng.normal(0.0, 1.0, n) + 1.2 * y_bin
    if score_decimals is not None:
        score = np.round(score, score_decimals)
    # Probabilities: a noisy sigmoid of the score, 3 decimals (ties), with a
    # few certain (0 and 1) predictions, right and wrong, for log loss's
    # clipping.
    prob = np.round(1 / (1 + np.exp(-(score + rng.normal(0, 0.5, n)))), 3)
    certain = rng.choice(n, size=max(4, n // 100), replace=False)
    prob[certain] = rng.integers(0, 2, len(certain)).astype(float)
    y_pred = np.where(prob >= 0.5, pos_label, neg_label)
    return {
        "name": name,
        "pos_label": pos_label,
        "y_true": ints(y),
        "y_score": floats(score),
        "y_prob": floats(prob),
        "y_pred": ints(y_pred),
        "roc_auc": f(skm.roc_auc_score(y_bin, score)),
        "roc_auc_prob": f(skm.roc_auc_score(y_bin, prob)),
        "average_precision": f(skm.average_precision_score(y_bin, score)),
        "average_precision_prob": f(skm.average_precision_score(y_bin, prob)),
        "log_loss": f(skm.log_loss(y_bin, prob)),
        "brier": f(skm.brier_score_loss(y_bin, prob)),
        "accuracy": f(skm.accuracy_score(y, y_pred)),
        "precision": f(skm.precision_score(y, y_pred, pos_label=pos_label)),
        "recall": f(skm.recall_score(y, y_pred, pos_label=pos_label)),
        "f1": f(skm.f1_score(y, y_pred, pos_label=pos_label)),
        "confusion_matrix": {
            "labels": ints(np.unique(np.concatenate([y, y_pred]))),
            "counts": [ints(r) for r in skm.confusion_matrix(y, y_pred)],
        },
        "calibration": [calibration(y_bin, prob, b) for b in (10, 7, 1)],
    }


def multiclass_case(name, seed, n, classes, class_probs, stray_label):
    rng = np.random.default_rng(seed)
    classes = np.asarray(classes)
    k = len(classes)
    idx = rng.choice(k, size=n, p=class_probs)
    y = classes[idx]
    logits = rng.normal(0.0, 1.0, (n, k))
    logits[np.arange(n), idx] += 1.5
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    # Multiples of 1/1000 (ties, exact zeros) that sum to 1.
    proba = np.stack([rng.multinomial(1000, row) for row in p]) / 1000.0
    y_pred = classes[np.argmax(proba, axis=1)]
    if stray_label is not None:
        # A label only ever predicted: zero support, recall 0/0.
        y_pred[rng.choice(n, size=5, replace=False)] = stray_label
    conf = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == y
    out = {
        "name": name,
        "classes": ints(classes),
        "y_true": ints(y),
        "proba": floats(proba.ravel()),
        "y_pred": ints(y_pred),
        "roc_auc_ovr_macro": f(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)),
        "roc_auc_ovr_weighted": f(skm.roc_auc_score(y, proba, multi_class="ovr", average="weighted", labels=classes)),
        "log_loss": f(skm.log_loss(y, proba, labels=classes)),
        "brier": f(skm.brier_score_loss(y, proba, labels=classes)),
        "accuracy": f(skm.accuracy_score(y, y_pred)),
        "prf": {
            avg: {
                "precision": f(skm.precision_score(y, y_pred, average=avg)),
                "recall": f(skm.recall_score(y, y_pred, average=avg)),
                "f1": f(skm.f1_score(y, y_pred, average=avg)),
            }
            for avg in ("macro", "micro", "weighted")
        },
        "confusion_matrix": {
            "labels": ints(np.unique(np.concatenate([y, y_pred]))),
            "counts": [ints(r) for r in skm.confusion_matrix(y, y_pred)],
        },
    }
    top = []
    for n_bins in (10, 15):
        ids = uniform_bins(conf, n_bins)
        counts = np.bincount(ids, minlength=n_bins)
        hits = np.bincount(ids, weights=correct.astype(float), minlength=n_bins)
        sums = np.bincount(ids, weights=conf, minlength=n_bins)
        nz = counts > 0
        acc = hits[nz] / counts[nz]
        mean_conf = sums[nz] / counts[nz]
        top.append({
            "n_bins": n_bins,
            "counts": ints(counts[nz]),
            "accuracy": floats(acc),
            "confidence": floats(mean_conf),
            "ece": f(ece(counts[nz], acc, mean_conf, n)),
        })
    out["top_label_calibration"] = top
    return out


def classification():
    return {
        "binary": [
            binary_case("balanced_ties", 101, 1000, 0.5, [0, 1], 1, 1),
            binary_case("imbalanced_3pct", 102, 2000, 0.03, [0, 1], 1, 2),
            binary_case("minus_one_positive", 103, 500, 0.35, [-1, 1], -1, 1),
            binary_case("continuous_small", 104, 200, 0.6, [0, 1], 1, None),
            binary_case("labels_3_7", 105, 600, 0.2, [3, 7], 7, 0),
        ],
        "multiclass": [
            multiclass_case("three_classes", 201, 600, [0, 1, 2], [0.5, 0.3, 0.2], None),
            multiclass_case("four_imbalanced", 202, 800, [-3, 0, 4, 10], [0.6, 0.25, 0.1, 0.05], 99),
        ],
    }


# --- regression -----------------------------------------------------------


def regression_case(name, y_true, y_pred):
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    return {
        "name": name,
        "y_true": floats(y_true),
        "y_pred": floats(y_pred),
        "rmse": f(skm.root_mean_squared_error(y_true, y_pred)),
        "mae": f(skm.mean_absolute_error(y_true, y_pred)),
        "r2": f(skm.r2_score(y_true, y_pred)),
        "mape": f(skm.mean_absolute_percentage_error(y_true, y_pred)),
    }


def regression():
    rng = np.random.default_rng(301)
    n = 500
    y = np.round(rng.gamma(2.0, 3.0, n), 3)
    y[rng.choice(n, size=25, replace=False)] = 0.0  # zeros: MAPE's epsilon
    pred = np.round(y + rng.normal(0, 1.0, n), 3)
    pred[np.flatnonzero(y == 0.0)[:5]] = 0.0  # a few exact hits on zero
    rng = np.random.default_rng(302)
    big = np.round(1e6 + rng.normal(0, 3.0, 300), 3)
    big_pred = np.round(big + rng.normal(0, 1.5, 300), 3)
    rng = np.random.default_rng(303)
    const = np.full(50, 2.5)
    return [
        regression_case("gamma_with_zeros", y, pred),
        regression_case("large_offset", big, big_pred),
        regression_case("constant_imperfect", const, np.round(const + rng.normal(0, 0.1, 50), 3)),
        regression_case("constant_perfect", const, const),
        regression_case("negative_and_small", np.round(rng.normal(0, 0.01, 200), 5), np.round(rng.normal(0, 0.01, 200), 5)),
    ]


# --- ranking --------------------------------------------------------------


def ap_at_k(rel_sorted, k):
    """AP@k = Σ_{i≤k} P@i·rel_i / min(k, R); 0 when R = 0."""
    total_relevant = rel_sorted.sum()
    if total_relevant == 0:
        return 0.0
    top = rel_sorted[:k].astype(float)
    precision_at_i = np.cumsum(top) / np.arange(1, len(top) + 1)
    return float((precision_at_i * top).sum() / min(k, total_relevant))


def ranking():
    ks = [None, 1, 3, 5, 10, 50]
    single = []
    rng = np.random.default_rng(401)
    lists = [
        ("graded_ties", rng.integers(0, 4, 300).astype(float) * (rng.random(300) < 0.4), None),
        ("float_relevance", np.round(rng.gamma(1.0, 1.0, 120), 2), None),
        ("all_irrelevant", np.zeros(40), None),
    ]
    for name, rel, _ in lists:
        score = np.round(rel * 0.3 + rng.normal(0, 1.0, len(rel)), 1)
        cases = []
        for k in ks:
            cases.append({"k": k, "ndcg": f(skm.ndcg_score([rel], [score], k=k))})
        single.append({"name": name, "relevance": floats(rel), "scores": floats(score), "results": cases})

    # Queries of 2–25 items (scikit-learn needs ≥ 2), rows shuffled so that a
    # query's rows are not contiguous; one query with nothing relevant.
    rng = np.random.default_rng(402)
    qid, rel, score = [], [], []
    for q in range(60):
        m = int(rng.integers(2, 26))
        r = rng.integers(0, 4, m) * (rng.random(m) < 0.35)
        if q == 7:
            r = np.zeros(m, dtype=int)
        s = np.round(r * 0.4 + rng.normal(0, 1.0, m), 1)
        qid += [f"q{q:03d}"] * m
        rel += list(r.astype(float))
        score += list(s)
    perm = rng.permutation(len(qid))
    qid = [qid[i] for i in perm]
    rel = np.asarray(rel)[perm]
    score = np.asarray(score)[perm]
    qid_arr = np.asarray(qid)
    queries = sorted(set(qid))
    results = []
    for k in ks:
        ndcgs, precisions, aps = [], [], []
        for q in queries:
            rows = np.flatnonzero(qid_arr == q)  # ascending row order
            r, s = rel[rows], score[rows]
            ndcgs.append(skm.ndcg_score([r], [s], k=k))
            if k is not None:
                order = np.argsort(-s, kind="stable")
                hit = r[order] > 0
                precisions.append(hit[:k].sum() / k)
                aps.append(ap_at_k(hit, k))
        entry = {"k": k, "ndcg": f(np.mean(ndcgs))}
        if k is not None:
            entry["precision"] = f(np.mean(precisions))
            entry["map"] = f(np.mean(aps))
        results.append(entry)
    by_query = {
        "query": qid,
        "relevance": floats(rel),
        "scores": floats(score),
        "queries": len(queries),
        "results": results,
    }
    return {"single": single, "by_query": by_query}


# --- fairness -------------------------------------------------------------


def fairness_case(name, seed, n, columns, empty_smallest=True):
    """`columns`: (column name, values, probabilities, selection bias per value).

    With `empty_smallest`, the smallest group of the first column has only
    negative rows, so its TPR is undefined (fairlearn says 0)."""
    rng = np.random.default_rng(seed)
    sensitive = {}
    bias = np.zeros(n)
    for col, values, probs, shifts in columns:
        idx = rng.choice(len(values), size=n, p=probs)
        sensitive[col] = np.asarray(values)[idx]
        bias += np.asarray(shifts)[idx]
    y_true = (rng.random(n) < 0.3 + 0.1 * np.tanh(bias)).astype(int)
    score = 0.8 * y_true + 0.5 * bias + rng.normal(0, 0.6, n)
    y_pred = (score > 0.5).astype(int)
    first = columns[0][0]
    if empty_smallest:
        smallest = columns[0][1][int(np.argmin(columns[0][2]))]
        y_true[sensitive[first] == smallest] = 0
    frame = pd.DataFrame(sensitive) if len(columns) > 1 else sensitive[first]
    mf = MetricFrame(
        metrics={
            "count": count,
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "accuracy": skm.accuracy_score,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=frame,
    )
    groups = []
    for key, row in mf.by_group.iterrows():
        key = list(key) if isinstance(key, tuple) else [key]
        mask = np.ones(n, dtype=bool)
        for col, value in zip(sensitive, key):
            mask &= sensitive[col] == value
        groups.append({
            "group": [str(v) for v in key],
            "count": int(row["count"]),
            "positives": int(y_true[mask].sum()),
            "selection_rate": f(row["selection_rate"]),
            "tpr": f(row["tpr"]),
            "fpr": f(row["fpr"]),
            "accuracy": f(row["accuracy"]),
        })
    kw = {"sensitive_features": frame}
    return {
        "name": name,
        "y_true": ints(y_true),
        "y_pred": ints(y_pred),
        "sensitive": {col: [str(v) for v in vals] for col, vals in sensitive.items()},
        "column_order": list(sensitive),
        "by_group": groups,
        "overall": {k: f(v) for k, v in mf.overall.items()},
        "demographic_parity_difference": f(demographic_parity_difference(y_true, y_pred, **kw)),
        "demographic_parity_ratio": f(demographic_parity_ratio(y_true, y_pred, **kw)),
        "equalized_odds_difference": f(equalized_odds_difference(y_true, y_pred, **kw)),
        "equalized_odds_ratio": f(equalized_odds_ratio(y_true, y_pred, **kw)),
        "equal_opportunity_difference": f(equal_opportunity_difference(y_true, y_pred, **kw)),
    }


def fairness():
    return [
        fairness_case("one_column_skewed_sizes", 501, 2000, [
            ("region", ["north", "south", "east", "west", "islands"], [0.55, 0.3, 0.1, 0.04, 0.01], [0.0, 0.4, -0.3, 0.8, -0.5]),
        ]),
        fairness_case("intersectional", 502, 1500, [
            ("age_band", ["18-25", "26-40", "41-65", "66+"], [0.2, 0.45, 0.3, 0.05], [0.3, 0.0, -0.2, -0.6]),
            ("sex", ["female", "male"], [0.48, 0.52], [-0.2, 0.2]),
        ]),
        # Every rate defined: the ratios are not pinned to 0.
        fairness_case("every_rate_defined", 503, 1200, [
            ("segment", ["consumer", "small business", "enterprise"], [0.7, 0.2, 0.1], [0.1, -0.2, 0.3]),
        ], empty_smallest=False),
    ]


# --- output ---------------------------------------------------------------


def build():
    return {
        "versions": {
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "fairlearn": fairlearn.__version__,
            "pandas": pd.__version__,
        },
        "classification": classification(),
        "regression": regression(),
        "ranking": ranking(),
        "fairness": fairness(),
    }


def dump(obj, level=0):
    """JSON with one object key or nested list per line and lists of scalars
    on one line: reviewable diffs at a fraction of ``indent=1``'s size."""
    pad = " " * level
    if isinstance(obj, dict):
        items = [f"{pad} {json.dumps(k)}: {dump(obj[k], level + 1)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(x, (dict, list)) for x in obj):
        items = [f"{pad} {dump(x, level + 1)}" for x in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False, separators=(",", ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "reference.json")
    args = parser.parse_args()
    args.out.write_text(dump(build()) + "\n")


if __name__ == "__main__":
    main()
