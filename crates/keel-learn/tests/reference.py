"""Reference fits for keel-learn, computed with scikit-learn and LightGBM.

Builds small fixed, seeded datasets (each stored once, with every fit on it) — logistic data with features on very
different scales, correlated regression features, a classification set with
missing values for boosting — fits the reference models on them and writes
both the data and what the references learnt (with the library versions)
to ``reference.json`` beside this file, which ``it/reference.rs`` checks
the Rust crate against:

* ``LogisticRegression(C=1/l2)`` (``C=inf`` for l2 = 0) with the
  newton-cholesky solver at tol 1e-12: coefficients, intercept and
  probabilities;
* ``Ridge(alpha=l2)`` and ``LinearRegression`` (l2 = 0): coefficients,
  intercept and predictions;
* ``LGBMClassifier`` / ``LGBMRegressor`` with the parameters the Rust test
  uses (depth-wise to depth 4, 16 leaves, lr 0.1, 255 bins, lambda 1,
  min_data_in_leaf 20): validation ROC AUC and R².

The output is deterministic: rerunning with the same library versions
reproduces the file byte for byte.

    python crates/keel-learn/tests/reference.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import lightgbm
import numpy as np
import sklearn
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score

HERE = Path(__file__).resolve().parent
warnings.simplefilter("ignore")


def floats(a):
    """Plain Python floats; NaN → None (JSON has no NaN)."""
    return [None if math.isnan(float(v)) else float(v) for v in np.ravel(a)]


def matrix(x):
    return {"rows": int(x.shape[0]), "cols": int(x.shape[1]), "values": floats(x)}


def logistic_data(rng, n, scales, coef, intercept):
    x = rng.normal(size=(n, len(scales))) * np.array(scales)
    z = x @ (np.array(coef) / np.array(scales)) + intercept
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return np.round(x, 6), y


def logistic_cases(rng):
    x, y = logistic_data(rng, 400, [1.0, 10.0, 0.1, 3.0, 1.0], [1.2, -0.8, 0.5, 0.0, 2.0], -0.4)
    fits = []
    for l2, fit_intercept in [(1.0, True), (0.1, True), (10.0, True), (0.0, True), (1.0, False)]:
        c = np.inf if l2 == 0 else 1 / l2
        m = LogisticRegression(C=c, solver="newton-cholesky", tol=1e-12, max_iter=1000,
                               fit_intercept=fit_intercept).fit(x, y)
        fits.append({
            "name": f"scaled_l2_{l2}_intercept_{fit_intercept}",
            "l2": l2, "fit_intercept": fit_intercept,
            "coefficients": floats(m.coef_[0]),
            "intercept": float(m.intercept_[0]) if fit_intercept else 0.0,
            "probabilities": floats(m.predict_proba(x)[:, 1]),
        })
    return {"x": matrix(x), "y": floats(y), "fits": fits}


def ridge_cases(rng):
    n = 300
    base = rng.normal(size=(n, 3))
    x = np.column_stack([base, base[:, 0] + 0.1 * rng.normal(size=n),
                         base[:, 1] * 5 + 2 + 0.05 * rng.normal(size=n),
                         rng.uniform(-1, 1, size=n) * 100])
    x = np.round(x, 6)
    y = x @ np.array([1.5, -2.0, 0.3, 0.7, 0.1, 0.01]) + 4.0 + rng.normal(size=n)
    fits = []
    for l2, fit_intercept in [(0.0, True), (0.5, True), (10.0, True), (3.0, False)]:
        if l2 == 0:
            m = LinearRegression(fit_intercept=fit_intercept).fit(x, y)
        else:
            m = Ridge(alpha=l2, fit_intercept=fit_intercept, solver="cholesky").fit(x, y)
        fits.append({
            "name": f"ridge_l2_{l2}_intercept_{fit_intercept}",
            "l2": l2, "fit_intercept": fit_intercept,
            "coefficients": floats(m.coef_),
            "intercept": float(m.intercept_) if fit_intercept else 0.0,
            "predictions": floats(m.predict(x)),
        })
    return {"x": matrix(x), "y": floats(y), "fits": fits}


GBDT_PARAMS = {"n_estimators": 100, "max_depth": 4, "num_leaves": 16, "learning_rate": 0.1,
               "max_bin": 255, "reg_lambda": 1.0, "min_child_samples": 20,
               "min_child_weight": 1e-3, "verbose": -1, "n_jobs": 1, "random_state": 0}


def with_missing(rng, x, columns, share):
    x = x.copy()
    for c in columns:
        x[rng.random(x.shape[0]) < share, c] = np.nan
    return x


def gbdt_cases(rng):
    cases = []
    x, y = make_classification(n_samples=3000, n_features=8, n_informative=5, n_redundant=1,
                               flip_y=0.05, class_sep=0.7, random_state=3)
    x = np.round(with_missing(rng, x, [0, 3], 0.08), 4)
    y = y.astype(float)
    xt, yt, xv, yv = x[:2400], y[:2400], x[2400:], y[2400:]
    m = lightgbm.LGBMClassifier(**GBDT_PARAMS).fit(xt, yt)
    cases.append({
        "name": "binary_with_missing", "objective": "binary",
        "train_x": matrix(xt), "train_y": floats(yt), "valid_x": matrix(xv), "valid_y": floats(yv),
        "lightgbm_valid_auc": float(roc_auc_score(yv, m.predict_proba(xv)[:, 1])),
    })
    x, y = make_regression(n_samples=3000, n_features=6, n_informative=4, noise=10.0, random_state=4)
    y = y + 0.02 * x[:, 0] ** 2 * 30
    x = np.round(with_missing(rng, x, [1], 0.05), 4)
    y = np.round(y, 4)
    xt, yt, xv, yv = x[:2400], y[:2400], x[2400:], y[2400:]
    m = lightgbm.LGBMRegressor(**GBDT_PARAMS).fit(xt, yt)
    cases.append({
        "name": "regression_with_missing", "objective": "regression",
        "train_x": matrix(xt), "train_y": floats(yt), "valid_x": matrix(xv), "valid_y": floats(yv),
        "lightgbm_valid_r2": float(r2_score(yv, m.predict(xv))),
    })
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "reference.json")
    args = ap.parse_args()
    rng = np.random.default_rng(20240611)
    out = {
        "versions": {"numpy": np.__version__, "scikit-learn": sklearn.__version__,
                     "lightgbm": lightgbm.__version__},
        "gbdt_params": {k: v for k, v in GBDT_PARAMS.items() if k not in ("verbose", "n_jobs")},
        "logistic": logistic_cases(rng),
        "ridge": ridge_cases(rng),
        "gbdt": gbdt_cases(rng),
    }
    args.out.write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
