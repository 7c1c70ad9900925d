#!/usr/bin/env python3
"""`keel test run` (model-quality suites) against the same checks in Python
(scikit-learn + fairlearn + evidently), in one run.

The data is a seeded synthetic credit set: 20 numeric features (income,
debt, age, dependents, f04 ... f19), the sensitive text columns sex and
region, free-text columns email and note where a small share of rows hold
personal data (e-mail addresses; phone numbers, payment cards, IBANs, IPv4
addresses), and a binary label `default` drawn from a logistic model of the
features with noise. test.parquet has --rows rows (1,000,000), train.parquet
and holdout.parquet --train-rows each (200,000), cases.csv the
minimum-functionality cases (the 20 features and the label each case must
get, `expected`). A scikit-learn LogisticRegression trained on train.parquet
is exported with skl2onnx to model.onnx (float input [None, 20], no
ZipMap): the model Keel compiles; the estimator itself goes to model.joblib
for Python.

The suite (suite.yaml for Keel; the same document as suite.json for
Python) has a check of every kind and most metrics: performance (overall,
on SQL slices, calibration, the worst-slice gap), fairness (sex, region,
both), robustness (Gaussian noise, category swap, directional, cases),
privacy (membership inference, PII, k-anonymity), security (evasion,
hostile inputs) and cost (latency p50/p99, throughput, cost per 1,000,
peak memory). A few checks are meant to fail (severity warning): PII in the
data, k-anonymity over sex, region and age, a wrong directional
expectation, a strict equalized-odds ratio.

Timed, each as one process per run, whole command (start-up and imports
included), --runs times alternating, after one untimed warm-up of each:

  keel      keel test run suite.yaml --json
  python    bench/quality_reference.py: the same checks with scikit-learn,
            fairlearn and evidently (its Accuracy, Precision, Recall,
            F1Score, RocAuc, LogLoss with gte/lte tests), pandas and numpy
  numpy     the quickest Python the reference has: the same checks without
            evidently (scikit-learn computes those six) and without
            fairlearn (the same group rates from numpy bincounts), since
            fairlearn 0.15's MetricFrame costs about a second per call per
            100,000 rows (--python-variants)

Reported: median wall time of each, Python's import time and its time
without imports, peak RSS (VmHWM, polled), the ratio Python / Keel (goal
≥ 10×), and per check both verdicts and values with their relative
difference; with --per-check, what each check alone costs Keel.
Stochastic checks (noise, category swap, evasion: different random draws)
and cost (different runtimes) are expected to differ in value; the verdicts
should match. Results go to bench/results/quality.json (or --out) and a
table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from procstat import system_busy_s  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REFERENCE = HERE / "quality_reference.py"
SEED = 20261129
FEATURES = ["income", "debt", "age", "dependents"] + [f"f{i:02d}" for i in range(4, 20)]
REGIONS = ["EU", "US", "APAC", "LATAM", "MEA"]
REGION_P = [0.35, 0.30, 0.20, 0.10, 0.05]
# Weights of f04 ... f19 in the label's logit.
F_WEIGHTS = [0.55, -0.45, 0.35, 0.0, 0.25, -0.2, 0.15, 0.0, 0.1, -0.1, 0.05, 0.0, 0.3, -0.25, 0.0, 0.08]
NOTES = ["paid on time", "asked about a limit increase", "no remarks", "moved house",
         "requested paper statements", "prefers e-mail contact", ""]
# Checks whose value depends on random draws or on the runtime: their
# values differ between Keel and Python by construction.
STOCHASTIC = ("gaussian_noise", "category_swap", "evasion")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# data, model, cases
# --------------------------------------------------------------------------


def luhn_complete(rng, prefix: str, length: int = 16) -> str:
    digits = prefix + "".join(str(d) for d in rng.integers(0, 10, length - len(prefix) - 1))
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch)
        if k % 2 == 0:  # doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def iban_de(rng) -> str:
    bban = "".join(str(d) for d in rng.integers(0, 10, 18))
    num = int("".join(str(int(ch, 36)) for ch in bban + "DE00"))
    check = 98 - num % 97
    s = f"DE{check:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def generate(n: int, seed: int, with_text: bool):
    """A credit-like table of n rows (a dict of numpy columns)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["F", "M"]), n)
    region = rng.choice(np.array(REGIONS), n, p=REGION_P)
    male = (sex == "M").astype(float)
    age = np.clip(np.rint(rng.normal(42, 13, n)), 18, 80).astype(np.int64)
    income = np.round(np.exp(rng.normal(8.05 + 0.10 * male + 0.12 * (region == "US")
                                        + 0.006 * (age - 42), 0.45, n)), 2)
    debt = np.round(rng.gamma(2.0, 900.0, n) * (1 + 0.1 * (region == "LATAM")), 2)
    dependents = rng.integers(0, 5, n)
    f = rng.normal(0.0, 1.0, (n, 16))
    f[:, 0] += 0.3 * (region == "APAC")
    logit = (-1.25 + 0.00085 * (debt - 1800) - 0.0004 * (income - 3300) - 0.022 * (age - 42)
             + 0.12 * dependents + f @ np.array(F_WEIGHTS) + 0.15 * male)
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    cols = {"income": income, "debt": debt, "age": age, "dependents": dependents}
    for i in range(16):
        cols[f"f{i + 4:02d}"] = np.round(f[:, i], 5)
    cols["sex"] = sex
    cols["region"] = region
    if with_text:
        email = np.full(n, "", dtype=object)
        has = np.flatnonzero(rng.random(n) < 0.02)
        first = np.array(["ana", "ben", "chloe", "dev", "eva", "farid", "grace", "hugo"])
        last = np.array(["smith", "garcia", "novak", "khan", "muller", "rossi", "tanaka"])
        fi, la = rng.integers(0, len(first), len(has)), rng.integers(0, len(last), len(has))
        for k, r in enumerate(has):
            email[r] = f"{first[fi[k]]}.{last[la[k]]}{r}@example.com"
        note = np.array(NOTES, dtype=object)[rng.integers(0, len(NOTES), n)]
        kinds = rng.random(n)
        for r in np.flatnonzero(kinds < 0.016):
            k = kinds[r]
            if k < 0.004:
                note[r] = f"customer called from +1 415 555 {rng.integers(0, 10000):04d}"
            elif k < 0.008:
                note[r] = f"card {' '.join(luhn_complete(rng, '4539')[i:i + 4] for i in range(0, 16, 4))} on file"
            elif k < 0.012:
                note[r] = f"refund to {iban_de(rng)} requested"
            else:
                note[r] = (f"login from 10.{rng.integers(0, 256)}.{rng.integers(0, 256)}."
                           f"{rng.integers(1, 255)} flagged")
        cols["email"] = email
        cols["note"] = note
    cols["default"] = default
    return cols


def write_parquet(cols: dict, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({k: (v.astype(str) if v.dtype == object else v) for k, v in cols.items()}),
                   path)


def make_cases(model, n: int, seed: int):
    """Minimum-functionality cases: clear-cut applicants (very low or very
    high risk by the generating rule) that must get that label, and
    borderline ones whose label is the rule's (some of which a model may
    miss)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = np.zeros((n, len(FEATURES)))
    expected = np.zeros(n, dtype=np.int64)
    for r in range(n):
        kind = r % 4
        income = {0: 9000, 1: 900, 2: 3300, 3: 3300}[kind] * rng.uniform(0.9, 1.1)
        debt = {0: 200, 1: 7000, 2: 1800, 3: 2600}[kind] * rng.uniform(0.9, 1.1)
        age = {0: 55, 1: 22, 2: 42, 3: 30}[kind] + int(rng.integers(-3, 4))
        dependents = {0: 0, 1: 4, 2: 1, 3: 2}[kind]
        f = rng.normal(0.0, 0.3, 16)
        X[r] = [round(income, 2), round(debt, 2), age, dependents, *np.round(f, 5)]
        logit = (-1.25 + 0.00085 * (debt - 1800) - 0.0004 * (income - 3300) - 0.022 * (age - 42)
                 + 0.12 * dependents + f @ np.array(F_WEIGHTS))
        expected[r] = int(logit > 0)
    return X, expected


def build(work: Path, args) -> dict:
    import joblib
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    t = time.perf_counter()
    test = generate(args.rows, SEED, with_text=True)
    write_parquet(test, work / "test.parquet")
    train = generate(args.train_rows, SEED + 1, with_text=False)
    write_parquet(train, work / "train.parquet")
    holdout = generate(args.train_rows, SEED + 2, with_text=False)
    write_parquet(holdout, work / "holdout.parquet")
    gen_s = time.perf_counter() - t

    t = time.perf_counter()
    X = np.column_stack([train[c] for c in FEATURES]).astype(np.float64)
    # Newton-Cholesky: exact and quick on 20 unscaled features.
    model = LogisticRegression(solver="newton-cholesky", max_iter=100).fit(X, train["default"])
    train_s = time.perf_counter() - t
    onx = to_onnx(model, X[:1].astype(np.float32), options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    (work / "model.onnx").write_bytes(onx.SerializeToString())
    joblib.dump(model, work / "model.joblib")

    cx, expected = make_cases(model, 200, SEED + 3)
    lines = [",".join(FEATURES + ["expected"])]
    lines += [",".join([repr(float(v)) if j not in (2, 3) else str(int(v)) for j, v in enumerate(row)]
                       + [str(int(e))]) for row, e in zip(cx, expected)]
    (work / "cases.csv").write_text("\n".join(lines) + "\n")
    return {"generate_s": round(gen_s, 2), "train_s": round(train_s, 2),
            "onnx_ops": [n.op_type for n in onx.graph.node],
            "coef": dict(zip(FEATURES, [round(float(c), 6) for c in model.coef_[0]])),
            "intercept": round(float(model.intercept_[0]), 6),
            "test_default_rate": round(float(test["default"].mean()), 4),
            "emails": int(sum(1 for e in test["email"] if e)),
            "file_mb": {p.name: round(p.stat().st_size / 2**20, 1)
                        for p in sorted(work.iterdir()) if p.is_file()}}


# --------------------------------------------------------------------------
# the suite
# --------------------------------------------------------------------------

# name: (SQL predicate for Keel, the same as a pandas expression)
SLICES = {
    "young": ("age < 25", "age < 25"),
    "senior": ("age >= 65", "age >= 65"),
    "young_eu": ("age < 30 AND region = 'EU'", "age < 30 and region == 'EU'"),
    "high_debt": ("debt > 4000", "debt > 4000"),
}


def suite_dict(rows: int) -> dict:
    """The suite, with thresholds well away from the values this data gives
    (a few checks are meant to fail; they are severity warning)."""
    min_size = max(100, rows // 1000)
    perf = [("accuracy", "min", 0.75), ("precision", "min", 0.65), ("recall", "min", 0.45),
            ("f1", "min", 0.55), ("roc_auc", "min", 0.80), ("pr_auc", "min", 0.65),
            ("log_loss", "max", 0.50), ("brier", "max", 0.17)]
    checks = [{"kind": "performance", "metric": m, b: v} for m, b, v in perf]
    checks += [
        {"kind": "performance", "metric": "ece", "bins": 10, "max": 0.03},
        {"kind": "performance", "metric": "accuracy", "slice": "young", "min": 0.70},
        {"kind": "performance", "metric": "roc_auc", "slice": "young_eu", "min": 0.78},
        {"kind": "performance", "metric": "recall", "slice": "senior", "min": 0.35},
        {"kind": "performance", "metric": "log_loss", "slice": "high_debt", "max": 0.55},
        {"kind": "performance", "metric": "no_slice_worse_than_overall", "max_gap": 0.25,
         "min_size": min_size},
        {"kind": "fairness", "metric": "demographic_parity_difference", "sensitive": "sex", "max": 0.10},
        {"kind": "fairness", "metric": "demographic_parity_ratio", "sensitive": "sex", "min": 0.80},
        {"kind": "fairness", "metric": "equal_opportunity_difference", "sensitive": "sex", "max": 0.10},
        {"kind": "fairness", "metric": "equalized_odds_difference", "sensitive": "region", "max": 0.15},
        {"kind": "fairness", "metric": "disparate_impact", "sensitive": "region", "min": 0.70},
        {"kind": "fairness", "metric": "equalized_odds_ratio", "sensitive": "region", "min": 0.90,
         "severity": "warning"},
        {"kind": "fairness", "metric": "group_metrics", "sensitive": ["sex", "region"]},
        {"kind": "robustness", "perturbation": {"gaussian_noise": {"columns": ["income", "debt"],
                                                                   "scale": 0.05}},
         "max_flip_rate": 0.03},
        {"kind": "robustness", "name": "robustness.gaussian_noise_mean_change",
         "perturbation": {"gaussian_noise": {"columns": ["f04", "f05", "f06", "f07"], "scale": 0.1}},
         "max_mean_change": 0.03, "seed": 7},
        {"kind": "robustness", "perturbation": {"category_swap": {"columns": ["dependents"],
                                                                  "rate": 0.2}},
         "max_flip_rate": 0.05},
        {"kind": "robustness", "directional": {"feature": "income", "increase": 500,
                                               "expect": "decrease"}, "max_violation_rate": 0.01},
        {"kind": "robustness", "name": "robustness.directional_debt",
         "directional": {"feature": "debt", "increase": 500, "expect": "decrease"},
         "max_violation_rate": 0.01, "severity": "warning"},
        {"kind": "robustness", "cases": "cases.csv", "min_pass_rate": 0.90},
        {"kind": "privacy", "test": "membership_inference", "max_advantage": 0.05},
        {"kind": "privacy", "name": "privacy.membership_inference_auc", "test": "membership_inference",
         "max_auc": 0.55},
        {"kind": "privacy", "test": "pii", "columns": ["email", "note"], "max_findings": 0,
         "severity": "warning"},
        {"kind": "privacy", "test": "k_anonymity", "quasi_identifiers": ["sex", "region", "age"],
         "min_k": 10, "severity": "warning"},
        {"kind": "security", "test": "evasion", "norm": "linf", "budget": 0.1, "queries": 100,
         "samples": 200, "max_success_rate": 0.30},
        {"kind": "security", "name": "security.evasion_l2", "test": "evasion", "norm": "l2",
         "budget": 0.5, "queries": 100, "samples": 200, "max_success_rate": 0.30},
        {"kind": "security", "test": "hostile_inputs", "reject": ["wrong_type", "wrong_shape"],
         "max_answered": 0},
        {"kind": "security", "name": "security.hostile_non_finite", "test": "hostile_inputs",
         "reject": ["nan", "pos_inf", "neg_inf"], "max_answered": 0, "severity": "warning"},
        {"kind": "cost", "latency_p50_ms": {"batch": 1, "max": 5}},
        {"kind": "cost", "latency_p99_ms": {"batch": 1, "max": 20}},
        {"kind": "cost", "throughput": {"batch": 1000, "min": 50000}},
        {"kind": "cost", "cost_per_1000": {"batch": 1000, "max": 0.001}, "cpu_hour_usd": 0.05},
        {"kind": "cost", "peak_memory_mb": {"batch": 100000, "max": 500}},
    ]
    return {
        "suite": "credit-quality-bench",
        "model": {"onnx": "model.onnx"},
        "data": {"test": {"path": "test.parquet", "label": "default"},
                 "train": {"path": "train.parquet", "label": "default"},
                 "holdout": {"path": "holdout.parquet", "label": "default"}},
        "slices": {k: v[0] for k, v in SLICES.items()},
        "checks": checks,
    }


def yaml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        s = repr(v)
        if "e" in s or "inf" in s or "nan" in s:
            raise ValueError(f"{v}: write thresholds as plain decimals")
        return s
    if isinstance(v, str):
        plain = v.replace("_", "").replace(".", "").replace("-", "").isalnum() and not v[0].isdigit()
        return v if plain and v not in ("true", "false", "null") else json.dumps(v)
    raise TypeError(type(v))


def yaml_flow(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {yaml_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(yaml_flow(x) for x in v) + "]"
    return yaml_scalar(v)


def suite_yaml(s: dict) -> str:
    out = [f"suite: {s['suite']}", f"model: {yaml_flow(s['model'])}", "data:"]
    out += [f"  {k}: {yaml_flow(v)}" for k, v in s["data"].items()]
    out += ["slices:"] + [f"  {k}: {json.dumps(v)}" for k, v in s["slices"].items()]
    out += ["checks:"] + [f"  - {yaml_flow(c)}" for c in s["checks"]]
    return "\n".join(out) + "\n"


def write_suite(work: Path, rows: int, drop_kinds: set[str]) -> dict:
    s = suite_dict(rows)
    s["checks"] = [c for c in s["checks"]
                   if c["kind"] not in drop_kinds and c.get("test") not in drop_kinds]
    (work / "suite.yaml").write_text(suite_yaml(s))
    as_json = dict(s, slices_pandas={k: v[1] for k, v in SLICES.items()})
    (work / "suite.json").write_text(json.dumps(as_json, indent=1) + "\n")
    return s


# --------------------------------------------------------------------------
# running each side
# --------------------------------------------------------------------------


def vm_hwm_kb(pid: int) -> int | None:
    """The process's peak resident set so far (VmHWM), or None once gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), None)
    except OSError:
        return None


def timed(cmd: list, cwd: Path, out_path: Path, err_path: Path) -> dict:
    """Runs cmd once; wall time, exit status, CPU, peak RSS and the CPU
    other processes used meanwhile. The peak is the child's VmHWM polled
    every 10 ms: wait4's ru_maxrss would carry this driver's own resident
    set, which the child inherits at fork and the kernel keeps across exec."""
    busy0 = system_busy_s()
    peak = [0]
    stop = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t = time.perf_counter()
        p = subprocess.Popen([str(c) for c in cmd], cwd=cwd, stdout=out, stderr=err,
                             env=dict(os.environ, PYTHONWARNINGS="ignore"))

        def poll() -> None:
            while not stop.is_set():
                v = vm_hwm_kb(p.pid)
                if v:
                    peak[0] = max(peak[0], v)
                stop.wait(0.01)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        stop.set()
        th.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    other = max(0.0, system_busy_s() - busy0 - cpu)
    return {"wall_s": wall, "exit": p.returncode, "peak_rss_mb": round(peak[0] / 1024, 1),
            "cpu_s": round(cpu, 2), "other_cores": round(other / wall, 2) if wall > 0.25 else None}


def run_keel(args, work: Path, i: int) -> dict:
    r = timed([args.keel, "test", "run", "suite.yaml", "--json"], work,
              work / f"keel-{i}.json", work / f"keel-{i}.err")
    if r["exit"] not in (0, 1):
        raise RuntimeError(f"keel test run exited {r['exit']}: "
                           f"{(work / f'keel-{i}.err').read_text()[-3000:]}")
    res = json.loads((work / f"keel-{i}.json").read_text())
    r["in_process_s"] = res.get("seconds")
    r["result"] = res
    return r


def run_python(args, work: Path, variant: str, i: int) -> dict:
    out = work / f"{variant}-{i}.json"
    cmd = [sys.executable, REFERENCE, "--suite", work / "suite.json", "--model", work / "model.joblib",
           "--out", out]
    cmd += ["--variant", "libraries" if variant == "python" else "numpy"]
    r = timed(cmd, work, work / f"{variant}-{i}.out", work / f"{variant}-{i}.err")
    if r["exit"] not in (0, 1) or not out.exists():
        raise RuntimeError(f"the Python reference ({variant}) exited {r['exit']}: "
                           f"{(work / f'{variant}-{i}.err').read_text()[-3000:]}")
    res = json.loads(out.read_text())
    r["import_s"] = res["import_s"]
    r["compute_s"] = res["compute_s"]
    r["timings_s"] = res["timings_s"]
    r["result"] = res
    return r


BASELINE_CHECK = {"kind": "privacy", "name": "baseline", "test": "k_anonymity",
                  "quasi_identifiers": ["sex"], "min_k": 1}


def keel_per_check(args, work: Path, suite: dict) -> dict:
    """Each check alone in a suite of its own (same data), against a suite
    with one trivial check: Keel's own `seconds` minus the baseline's is
    what the check costs it (loading and predicting all datasets is in the
    baseline)."""
    def one(checks: list, tag: str) -> float:
        s = dict(suite, checks=checks)
        (work / f"suite-{tag}.yaml").write_text(suite_yaml(s))
        r = timed([args.keel, "test", "run", f"suite-{tag}.yaml", "--json"], work,
                  work / f"keel-{tag}.json", work / f"keel-{tag}.err")
        if r["exit"] not in (0, 1):
            raise RuntimeError(f"keel test run (suite-{tag}) exited {r['exit']}: "
                               f"{(work / f'keel-{tag}.err').read_text()[-2000:]}")
        return json.loads((work / f"keel-{tag}.json").read_text())["seconds"]

    base = min(one([BASELINE_CHECK], "baseline") for _ in range(2))
    out = {"baseline_in_process_s": base, "checks": []}
    for i, c in enumerate(suite["checks"]):
        t = one([c], f"check{i}")
        out["checks"].append({"index": i, "in_process_s": t, "marginal_s": max(0.0, t - base)})
    return out


# --------------------------------------------------------------------------
# comparing and reporting
# --------------------------------------------------------------------------


def category(c: dict) -> str:
    if c["kind"] == "cost" or c.get("test") == "hostile_inputs":
        return "runtime"  # Keel's compiled model vs scikit-learn itself
    if c.get("test") == "evasion" or any(p in c.get("perturbation", {}) for p in STOCHASTIC):
        return "stochastic"
    return "exact"


def compare(suite: dict, keel: dict, py: dict) -> list[dict]:
    rows = []
    for i, c in enumerate(suite["checks"]):
        k = keel["checks"][i] if i < len(keel["checks"]) else {}
        p = py["checks"][i]
        kv, pv = k.get("value"), p.get("value")
        rel = absd = None
        if isinstance(kv, (int, float)) and isinstance(pv, (int, float)):
            absd = abs(kv - pv)
            rel = 0.0 if absd == 0 else absd / max(abs(pv), abs(kv), 1e-300)
        cat = category(c)
        note = ""
        if k.get("status") == "error":
            note = "keel: " + str((k.get("evidence") or {}).get("error", "error"))[:90]
        elif p.get("status") == "error":
            note = "python: " + str(p.get("error", "error"))[:90]
        elif cat == "exact" and rel is not None and rel > 1e-3 and absd > 1e-4:
            note = "VALUE DIFFERS beyond float32 rounding"
        rows.append({"index": i, "name": k.get("name", p["name"]), "python_name": p["name"],
                     "category": cat, "severity": p["severity"], "threshold": p["threshold"],
                     "keel_status": k.get("status"), "keel_value": kv,
                     "python_status": p.get("status"), "python_value": pv,
                     "python_how": p.get("how"), "python_own_verdict": p.get("own_verdict"),
                     "abs_diff": absd, "rel_diff": rel,
                     "verdicts_agree": k.get("status") == p.get("status"), "note": note,
                     "python_seconds": p.get("seconds"),
                     "keel_evidence": k.get("evidence"), "python_evidence": p.get("evidence")})
    return rows


def keel_cost_loop_s(result: dict) -> float:
    """Seconds Keel's cost checks spent in their timing loops (≥ 0.5 s each
    by design), from their evidence."""
    total = 0.0
    for c in result["checks"]:
        ev = c.get("evidence") or {}
        if c["kind"] == "cost" and ev.get("rows_per_s"):
            total += ev["runs"] * ev["batch"] / ev["rows_per_s"]
    return total


def python_cost_loop_s(result: dict) -> float:
    return sum((c.get("evidence") or {}).get("timed_s", 0.0) for c in result["checks"]
               if c["kind"] == "cost")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(results: dict) -> dict:
    runs = results["runs"]
    out: dict = {}
    keel = runs.get("keel", [])
    if keel:
        out["keel"] = {"median_wall_s": med([r["wall_s"] for r in keel]),
                       "min_wall_s": min(r["wall_s"] for r in keel),
                       "median_in_process_s": med([r.get("in_process_s") for r in keel]),
                       "median_cost_loops_s": med([r.get("cost_loops_s") for r in keel]),
                       "peak_rss_mb": max(r["peak_rss_mb"] for r in keel),
                       "median_cpu_s": med([r["cpu_s"] for r in keel])}
    for v in results["options"]["python_variants"]:
        rs = runs.get(v, [])
        if not rs:
            continue
        s = {"median_wall_s": med([r["wall_s"] for r in rs]),
             "min_wall_s": min(r["wall_s"] for r in rs),
             "median_import_s": med([r["import_s"] for r in rs]),
             "median_wall_without_imports_s": med([r["wall_s"] - r["import_s"] for r in rs]),
             "median_compute_s": med([r["compute_s"] for r in rs]),
             "median_cost_loops_s": med([r.get("cost_loops_s") for r in rs]),
             "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
             "median_cpu_s": med([r["cpu_s"] for r in rs]),
             "median_sections_s": {k: round(med([r["timings_s"].get(k) for r in rs]), 3)
                                   for k in rs[-1]["timings_s"]}}
        if keel:
            kw = out["keel"]["median_wall_s"]
            s["ratio_to_keel"] = s["median_wall_s"] / kw
            s["ratio_to_keel_without_imports"] = s["median_wall_without_imports_s"] / kw
            kc, pc = out["keel"]["median_cost_loops_s"], s["median_cost_loops_s"]
            if kc is not None and pc is not None and kw > kc:
                s["ratio_to_keel_without_cost_loops"] = (s["median_wall_s"] - pc) / (kw - kc)
            s["goal_10x_met"] = s["ratio_to_keel"] >= 10
        out[v] = s
    cmp_rows = results.get("comparison", [])
    if cmp_rows:
        by_cat: dict = {}
        for r in cmp_rows:
            if r["keel_status"] == "error" or r["python_status"] == "error":
                key = "not_compared"
            else:
                key = r["category"]
            d = by_cat.setdefault(key, {"checks": 0, "verdicts_agree": 0})
            d["checks"] += 1
            d["verdicts_agree"] += int(r["verdicts_agree"])
        out["verdicts"] = by_cat
        out["exact_value_differences"] = [r["name"] for r in cmp_rows if r["note"].startswith("VALUE")]
    return out


def fmt(v, spec=".3g"):
    if v is None:
        return "-"
    if isinstance(v, float) and (abs(v) >= 1e5 or (0 < abs(v) < 1e-3)):
        return f"{v:.3e}"
    return format(v, spec)


def print_table(results: dict) -> None:
    s = results.get("summary", {})
    o = results["options"]
    print(f"\nkeel test run vs the same checks in Python: {o['rows']:,} test rows x 20 features, "
          f"{o['train_rows']:,} train + {o['train_rows']:,} holdout rows, "
          f"{len(results.get('comparison', []))} checks, {o['runs']} timed run(s) each")
    hdr = f"  {'':<34} {'median wall':>11} {'min':>8} {'w/o imports':>11} {'imports':>8} {'peak RSS':>9} {'x Keel':>7}"
    print(hdr)
    print("  " + "-" * (len(hdr) - 2))
    k = s.get("keel")
    if k:
        print(f"  {'keel test run --json':<34} {k['median_wall_s']:>10.2f}s {k['min_wall_s']:>7.2f}s "
              f"{'-':>11} {'-':>8} {k['peak_rss_mb']:>7.0f}MB {'1.0':>7}")
    labels = {"python": "python (sklearn+fairlearn+evidently)", "numpy": "python (sklearn+numpy)"}
    for v in o["python_variants"]:
        p = s.get(v)
        if not p:
            continue
        ratio = f"{p['ratio_to_keel']:.1f}" if "ratio_to_keel" in p else "-"
        print(f"  {labels[v]:<34} {p['median_wall_s']:>10.2f}s {p['min_wall_s']:>7.2f}s "
              f"{p['median_wall_without_imports_s']:>10.2f}s {p['median_import_s']:>7.2f}s "
              f"{p['peak_rss_mb']:>7.0f}MB {ratio:>7}")
    if k:
        print(f"  Keel in process (its own `seconds`): {k['median_in_process_s']:.2f}s; "
              f"its cost checks' timing loops: {k['median_cost_loops_s']:.2f}s")
    for v in o["python_variants"]:
        p = s.get(v)
        if p and "ratio_to_keel" in p:
            extra = (f", {p['ratio_to_keel_without_cost_loops']:.1f}x without both sides' cost-check "
                     "timing loops" if "ratio_to_keel_without_cost_loops" in p else "")
            print(f"  {labels[v]}: {p['ratio_to_keel']:.1f}x Keel's wall time "
                  f"({p['ratio_to_keel_without_imports']:.1f}x without its imports{extra}); goal >= 10x: "
                  f"{'met' if p['goal_10x_met'] else 'NOT met'}")
            secs = sorted(p["median_sections_s"].items(), key=lambda kv: -kv[1])
            print("    where its time goes (median s): "
                  + ", ".join(f"{name} {t:.2f}" for name, t in secs))
    rows = results.get("comparison", [])
    if rows:
        per = {c["index"]: c["marginal_s"] for c in results.get("keel_per_check", {}).get("checks", [])}
        print(f"\n  {'check':<46} {'kind':<10} {'threshold':<14} {'keel':<20} {'python':<20} {'rel diff':>8}"
              f" {'keel s':>7} {'py s':>7}")
        for r in rows:
            th = ",".join(f"{a}{fmt(b)}" for a, b in (("≥", r["threshold"].get("min")),
                                                       ("≤", r["threshold"].get("max"))) if b is not None)
            sev = "" if r["severity"] == "error" else " (w)"
            mark = "" if r["verdicts_agree"] else "  <- verdicts differ"
            print(f"  {r['name'] + sev:<46} {r['category']:<10} {th:<14} "
                  f"{(r['keel_status'] or '-') + ' ' + fmt(r['keel_value']):<20} "
                  f"{(r['python_status'] or '-') + ' ' + fmt(r['python_value']):<20} "
                  f"{fmt(r['rel_diff'], '.1e') if r['rel_diff'] else '0':>8}"
                  f" {fmt(per.get(r['index']), '.2f'):>7} {fmt(r.get('python_seconds'), '.2f'):>7}{mark}"
                  + (f"  [{r['note']}]" if r["note"] else ""))
        print("\n  verdicts agree: " + "; ".join(
            f"{cat} {d['verdicts_agree']}/{d['checks']}" for cat, d in s["verdicts"].items())
              + "  (exact: deterministic definitions; stochastic: other random draws; runtime: "
                "Keel's compiled model vs scikit-learn's own behaviour and speed)")
        if per:
            kp = results["keel_per_check"]
            print(f"  keel s: the check alone in a suite, Keel's own seconds minus a trivial suite's "
                  f"({kp['baseline_in_process_s']:.2f}s: loading and predicting every dataset), so work "
                  "the suite shares (the worst-slice search behind accuracy, precision, recall, f1 and "
                  "no_slice_worse_than_overall, done once per dataset) counts in each of them; "
                  "py s: the reference's own clock for the check (evidently's share of its Report)")
        if s.get("exact_value_differences"):
            print("  exact checks whose values differ beyond float32 rounding: "
                  + ", ".join(s["exact_value_differences"]))
    others = [r.get("other_cores") for rs in results["runs"].values() for r in rs
              if r.get("other_cores") is not None]
    if others:
        print(f"  other processes used at most {max(others)} cores during a timed run "
              f"(of {os.cpu_count()}): figures taken while it is high are suspect")


def versions(args) -> dict:
    info = {"date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count(), "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "fairlearn", "evidently",
                "skl2onnx", "onnx"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    try:
        info["keel_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True, timeout=10).stdout.strip()
        info["keel_crates_dirty"] = bool(subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "crates"],
            capture_output=True, text=True, timeout=10).stdout.strip())
        st = Path(args.keel).stat()
        info["keel_bin_mtime_utc"] = _dt.datetime.fromtimestamp(
            st.st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
    except Exception:  # pragma: no cover
        pass
    return info


def public_command(argv: list[str]) -> str:
    """The command line with path arguments cut to their last component, so
    the results name no directory of the machine they ran on."""
    paths = ("--keel", "--keel-bin", "--workdir", "--out")
    out, after_path = [Path(argv[0]).name], False
    for a in argv[1:]:
        opt, eq, val = a.partition("=")
        if after_path:
            out.append(Path(a).name)
        elif eq and opt in paths:
            out.append(f"{opt}={Path(val).name}")
        else:
            out.append(a)
        after_path = a in paths
    return " ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel", "--keel-bin", dest="keel", type=Path,
                    default=os.environ.get("KEEL_BIN"), help="the keel binary (default: $KEEL_BIN)")
    ap.add_argument("--rows", type=int, default=None, help="test rows (default 1,000,000)")
    ap.add_argument("--train-rows", type=int, default=None,
                    help="rows of train.parquet and of holdout.parquet each (default 200,000)")
    ap.add_argument("--runs", type=int, default=None, help="timed runs of each side (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of each side first (default 1)")
    ap.add_argument("--quick", action="store_true",
                    help="100,000 test rows, 50,000 train/holdout rows, 1 run")
    ap.add_argument("--python-variants", default="python,numpy",
                    help="python (scikit-learn + fairlearn + evidently), numpy (scikit-learn + "
                         "numpy, neither fairlearn nor evidently); default both")
    ap.add_argument("--drop", default="",
                    help="check kinds or tests to leave out of the suite, e.g. hostile_inputs,cost")
    ap.add_argument("--per-check", action="store_true",
                    help="also time each check alone in Keel (one more keel run per check)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quality.json")
    ap.add_argument("--workdir", type=Path, default=None, help="keep everything here (implies --keep-data)")
    ap.add_argument("--keep-data", action="store_true")
    args = ap.parse_args()
    args.rows = args.rows or (100_000 if args.quick else 1_000_000)
    args.train_rows = args.train_rows or (50_000 if args.quick else 200_000)
    args.runs = args.runs or (1 if args.quick else 3)
    variants = [v for v in args.python_variants.split(",") if v]
    if any(v not in ("python", "numpy") for v in variants):
        ap.error(f"unknown Python variant in {variants}: python or numpy")
    if args.keel is None or not Path(args.keel).is_file():
        ap.error(f"keel binary not found: {args.keel} (--keel PATH or KEEL_BIN; bench/run quality builds it)")
    args.keel = Path(args.keel).resolve()
    drop = {d for d in args.drop.split(",") if d}
    if args.workdir:
        work = args.workdir.resolve()
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        args.keep_data = True
    else:
        work = Path(tempfile.mkdtemp(prefix="keel-quality-bench-"))
    results: dict = {"machine": versions(args),
                     "command": public_command(sys.argv),
                     "options": {"rows": args.rows, "train_rows": args.train_rows, "runs": args.runs,
                                 "warmup": args.warmup, "python_variants": variants,
                                 "features": FEATURES, "seed": SEED, "dropped": sorted(drop),
                                 "per_check": args.per_check},
                     "runs": {}, "errors": {}, "notes": []}
    status = 0
    t0 = time.perf_counter()
    try:
        log(f"generating {args.rows:,} test rows and {args.train_rows:,} train/holdout rows, "
            f"training and exporting the model, in {work}")
        results["data"] = build(work, args)
        suite = write_suite(work, args.rows, drop)
        results["suite_yaml"] = (work / "suite.yaml").read_text()
        for w in range(args.warmup):
            log(f"warm-up {w + 1}: keel")
            r = timed([args.keel, "test", "run", "suite.yaml", "--json"], work,
                      work / "keel-warmup.json", work / "keel-warmup.err")
            if r["exit"] == 2 and "hostile_inputs" not in drop:
                err = (work / "keel-warmup.err").read_text()
                if any(k in err for k in ("reject", "max_answered", "hostile")):
                    note = ("this Keel does not read the hostile_inputs keys yet (exit 2: "
                            f"{err.strip().splitlines()[-1][:200]}); left hostile_inputs out")
                    log(note)
                    results["notes"].append(note)
                    drop.add("hostile_inputs")
                    results["options"]["dropped"] = sorted(drop)
                    suite = write_suite(work, args.rows, drop)
                    results["suite_yaml"] = (work / "suite.yaml").read_text()
                    r = timed([args.keel, "test", "run", "suite.yaml", "--json"], work,
                              work / "keel-warmup.json", work / "keel-warmup.err")
            if r["exit"] not in (0, 1):
                raise RuntimeError(f"keel test run exited {r['exit']}: "
                                   f"{(work / 'keel-warmup.err').read_text()[-3000:]}")
            for v in variants:
                log(f"warm-up {w + 1}: {v}")
                run_python(args, work, v, 0)
        for i in range(1, args.runs + 1):
            r = run_keel(args, work, i)
            r["cost_loops_s"] = round(keel_cost_loop_s(r["result"]), 3)
            log(f"run {i}: keel {r['wall_s']:.2f}s (in process {r['in_process_s']:.2f}s, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB, exit {r['exit']})")
            results["runs"].setdefault("keel", []).append(r)
            for v in variants:
                r = run_python(args, work, v, i)
                r["cost_loops_s"] = round(python_cost_loop_s(r["result"]), 3)
                log(f"run {i}: {v} {r['wall_s']:.2f}s (imports {r['import_s']:.2f}s, "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB, exit {r['exit']})")
                results["runs"].setdefault(v, []).append(r)
        if args.per_check:
            log("timing each check alone in Keel")
            results["keel_per_check"] = keel_per_check(args, work, suite)
        keel_res = results["runs"]["keel"][-1]["result"]
        ref = variants[0]
        results["comparison"] = compare(suite, keel_res, results["runs"][ref][-1]["result"])
        results["comparison_against"] = ref
        if len(variants) > 1:
            a, b = (results["runs"][v][-1]["result"] for v in variants[:2])
            results["python_variants_differ"] = [
                {"name": x["name"], variants[0]: x.get("value"), variants[1]: y.get("value")}
                for x, y in zip(a["checks"], b["checks"])
                if x["kind"] != "cost" and x.get("value") != y.get("value")
                and not (isinstance(x.get("value"), float) and isinstance(y.get("value"), float)
                         and math.isclose(x["value"], y["value"], rel_tol=1e-9, abs_tol=1e-12))]
        # Only the last run's full answers are kept; the others keep their figures.
        for rs in results["runs"].values():
            for r in rs[:-1]:
                r.pop("result", None)
    except Exception as exc:  # record and report
        import traceback
        log(f"!! failed: {exc!r}")
        results["errors"]["run"] = traceback.format_exc()[-6000:]
        status = 1
    finally:
        if args.keep_data:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    try:
        results["summary"] = summarize(results)
    except Exception:  # the figures are still written
        import traceback
        results["errors"]["summary"] = traceback.format_exc()[-3000:]
        results["summary"] = {}
        status = 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    try:
        print_table(results)
    except Exception:
        import traceback
        traceback.print_exc()
        status = 1
    if results["notes"]:
        print("\nNotes:\n" + "\n".join(f"  {n}" for n in results["notes"]))
    if results["errors"]:
        print("\nErrors:")
        for k, v in results["errors"].items():
            print(f"  {k}: {v.strip().splitlines()[-1]}")
    out = args.out.resolve()
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out} "
          f"({results['wall_s']:.0f}s total)")
    return status


if __name__ == "__main__":
    sys.exit(main())
