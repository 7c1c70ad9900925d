#!/usr/bin/env python3
"""keel-learn's gradient-boosted trees against LightGBM and XGBoost (hist),
on the same data, with equivalent parameters, in one run.

Data: scikit-learn's make_classification, --rows rows (200,000) x 20
features (8 informative, 4 redundant, 8 noise; 2 clusters per class, 3% of
labels flipped, class_sep 0.8), seed 7, written to a CSV whose last column
is the label. The last 20% of the rows are the validation set for all
three.

Parameters: --trees 200 trees, depth 6 (LightGBM: max_depth 6 with
num_leaves 64, so trees grow to the same depth-wise shape; XGBoost:
max_depth 6, grow_policy depthwise), learning rate 0.1, 255 bins (XGBoost:
max_bin 256, its count includes the missing bin), L2 lambda 1,
min_data_in_leaf 20 / min_child_weight 1e-3 for LightGBM and keel-learn
(XGBoost has no row minimum; its min_child_weight is set to 1e-3 too), no
row or column sampling, --threads 2 threads each.

Timed: fit only (binning the features and growing the trees; not reading
the CSV and not predicting), the median of --runs runs after one untimed
warm-up each; keel-learn runs as a separate process (the example
`gbdt_vs`, built in release), which reports its own fit time. The
validation AUC is computed after training from each model's predictions
(scikit-learn's roc_auc_score for the Python libraries; keel-learn's own,
the same definition).

    bench/run train            # builds gbdt_vs in release, makes the venv, runs this

or by hand: cargo build --release -p keel-learn --example gbdt_vs, then
python bench/train_bench.py --keel TARGET/release/examples/gbdt_vs (or set
KEEL_GBDT_VS to the binary). Prints a table and writes
bench/results/train.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm
import numpy as np
import sklearn
import xgboost
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent


def make_data(rows: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=rows,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        n_repeated=0,
        n_clusters_per_class=2,
        flip_y=0.03,
        class_sep=0.8,
        shuffle=True,
        random_state=7,
    )
    header = ",".join([f"f{i:02d}" for i in range(20)] + ["label"])
    data = np.column_stack([x, y])
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.17g")
    return x, y.astype(np.float64)


def time_fit(fit, runs: int) -> tuple[float, object]:
    fit()  # warm-up
    times = []
    model = None
    for _ in range(runs):
        t0 = time.perf_counter()
        model = fit()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel", default=os.environ.get("KEEL_GBDT_VS"),
                    help="path of the gbdt_vs example binary (or $KEEL_GBDT_VS)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--bins", type=int, default=255)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train.json")
    args = ap.parse_args()
    if not args.keel:
        ap.error("give the gbdt_vs binary with --keel or KEEL_GBDT_VS")

    with tempfile.TemporaryDirectory(prefix="keel-train-bench-") as tmp:
        csv = Path(tmp) / "data.csv"
        x, y = make_data(args.rows, csv)
        split = args.rows - args.rows // 5
        xt, yt, xv, yv = x[:split], y[:split], x[split:], y[split:]
        results = {}

        def lgb_fit():
            return lightgbm.LGBMClassifier(
                n_estimators=args.trees, max_depth=args.depth, num_leaves=2 ** args.depth,
                learning_rate=args.lr, max_bin=args.bins, reg_lambda=1.0,
                min_child_samples=20, min_child_weight=1e-3, subsample=1.0,
                colsample_bytree=1.0, n_jobs=args.threads, verbose=-1, random_state=0,
            ).fit(xt, yt)

        secs, m = time_fit(lgb_fit, args.runs)
        results["lightgbm"] = {"seconds": secs, "valid_auc": roc_auc_score(yv, m.predict_proba(xv)[:, 1]),
                               "version": lightgbm.__version__}

        def xgb_fit():
            return xgboost.XGBClassifier(
                n_estimators=args.trees, max_depth=args.depth, learning_rate=args.lr,
                tree_method="hist", grow_policy="depthwise", max_bin=args.bins + 1,
                reg_lambda=1.0, min_child_weight=1e-3, subsample=1.0, colsample_bytree=1.0,
                n_jobs=args.threads, random_state=0,
            ).fit(xt, yt)

        secs, m = time_fit(xgb_fit, args.runs)
        results["xgboost"] = {"seconds": secs, "valid_auc": roc_auc_score(yv, m.predict_proba(xv)[:, 1]),
                              "version": xgboost.__version__}

        cmd = [args.keel, str(csv), "--trees", str(args.trees), "--depth", str(args.depth),
               "--lr", str(args.lr), "--bins", str(args.bins), "--seed", "0",
               "--threads", str(args.threads)]
        runs = []
        for i in range(args.runs + 1):
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            if i > 0:
                runs.append(json.loads(out.strip().splitlines()[-1]))
        results["keel"] = {"seconds": statistics.median(r["seconds"] for r in runs),
                           "valid_auc": runs[-1]["valid_auc"], "trees": runs[-1]["trees"]}

    keel = results["keel"]
    print(f"{args.rows:,} rows x 20 features ({args.rows // 5:,} validation), {args.trees} trees, "
          f"depth {args.depth}, lr {args.lr}, {args.bins} bins, {args.threads} threads, "
          f"median of {args.runs}")
    print(f"{'':10} {'fit s':>8} {'valid AUC':>10} {'keel time / peer':>17} {'AUC keel - peer':>16}")
    for name in ["keel", "lightgbm", "xgboost"]:
        r = results[name]
        ratio = keel["seconds"] / r["seconds"]
        diff = keel["valid_auc"] - r["valid_auc"]
        extra = "" if name == "keel" else f"{ratio:>17.2f} {diff:>+16.4f}"
        print(f"{name:10} {r['seconds']:>8.3f} {r['valid_auc']:>10.4f} {extra}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "params": {k: getattr(args, k) for k in ["rows", "trees", "depth", "lr", "bins", "threads", "runs"]},
        "results": results,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0], "numpy": np.__version__,
                    "scikit-learn": sklearn.__version__},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
