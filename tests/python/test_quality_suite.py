"""Model-quality suites end to end: ``keel test run`` on a real model.

A scikit-learn logistic regression is trained on a synthetic credit data set
(numbers, a sex and a region column) and exported to ONNX with skl2onnx;
the test set goes to Parquet. A suite with performance checks (overall, on a
SQL slice, discovered slices) and fairness checks runs through the CLI, and
every value must equal scikit-learn's / fairlearn's on onnxruntime's
predictions for the same rows. The exit status is 0 when all error checks
pass, 1 when one fails, 2 for an invalid suite (with line and column); the
JUnit XML lists each check.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fairlearn.metrics import (demographic_parity_difference, equalized_odds_difference)
from skl2onnx import to_onnx
from sklearn import metrics
from sklearn.linear_model import LogisticRegression

from online_crosscheck import KeelTarget, keel_bin, keel_server

N = 4000


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    rng = np.random.default_rng(5)
    age = rng.integers(18, 70, N).astype(float)
    income = rng.normal(3000, 900, N)
    debt = rng.gamma(2.0, 800, N)
    sex = rng.choice(["f", "m"], N)
    region = rng.choice(["EU", "US", "APAC"], N, p=[0.5, 0.3, 0.2])
    logit = -1.0 + 0.0008 * debt - 0.0006 * (income - 3000) - 0.02 * (age - 40) + 0.4 * (sex == "m")
    default = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.column_stack([age, income, debt]).astype(np.float32)
    model = LogisticRegression(max_iter=2000).fit(X[:2000], default[:2000])
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    (root / "model.onnx").write_bytes(onx.SerializeToString())
    test = slice(2000, N)
    contact = np.array([f"user{i}@example.com" if i % 50 == 0 else f"note {i}" for i in range(N)])
    pq.write_table(pa.table({
        "age": age[test], "income": income[test], "debt": debt[test],
        "sex": sex[test], "region": region[test], "contact": contact[test], "default": default[test],
    }), root / "test.parquet")
    # Training rows (the model saw them) and holdout rows (it did not).
    for name, rows in (("train", slice(0, 1000)), ("holdout", slice(3000, N))):
        pq.write_table(pa.table({"age": age[rows], "income": income[rows], "debt": debt[rows],
                                 "default": default[rows]}), root / f"{name}.parquet")
    sess = ort.InferenceSession(str(root / "model.onnx"))
    label, proba = sess.run(None, {"X": X[test]})
    losses = {}
    for name, rows in (("train", slice(0, 1000)), ("holdout", slice(3000, N))):
        p = np.clip(sess.run(None, {"X": X[rows]})[1][:, 1].astype(np.float64), 1e-15, 1 - 1e-15)
        y = default[rows]
        losses[name] = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {"root": root, "y": default[test], "pred": label.astype(np.int64), "score": proba[:, 1],
            "age": age[test], "sex": sex[test], "region": region[test], "losses": losses,
            "emails": int(sum(1 for c in contact[test] if "@" in c))}


SUITE = """\
suite: credit-candidate
model: {onnx: model.onnx}
data:
  test: {path: test.parquet, label: default}
slices:
  young: "age < 25"
  young_eu: "age < 25 AND region = 'EU'"
checks:
  - {kind: performance, metric: roc_auc, min: 0.60}
  - {kind: performance, metric: accuracy, min: 0.5}
  - {kind: performance, metric: accuracy, slice: young, min: 0.5}
  - {kind: performance, metric: f1, slice: young_eu, min: 0.0}
  - {kind: performance, metric: log_loss, max: 1.0}
  - {kind: performance, metric: brier, max: 0.5}
  - {kind: performance, metric: ece, max: 0.5}
  - {kind: performance, metric: pr_auc, min: 0.1}
  - {kind: fairness, metric: demographic_parity_difference, sensitive: sex, max: 0.9}
  - {kind: fairness, metric: equalized_odds_difference, sensitive: [sex, region], max: 0.9, severity: warning}
"""


def keel_test(workdir, text: str, *extra) -> subprocess.CompletedProcess:
    path = workdir["root"] / "suite.yaml"
    path.write_text(text)
    return subprocess.run([keel_bin(), "test", "run", str(path), *extra],
                          capture_output=True, text=True, timeout=300)


def test_every_value_matches_sklearn_and_fairlearn(workdir):
    junit = workdir["root"] / "report.xml"
    html = workdir["root"] / "report.html"
    res = keel_test(workdir, SUITE, "--json", "--junit", str(junit), "--html", str(html))
    assert res.returncode == 0, res.stderr + res.stdout
    out = json.loads(res.stdout)
    assert out["suite"] == "credit-candidate" and out["passed"] is True
    got = {c["name"]: c for c in out["checks"]}
    y, pred, score = workdir["y"], workdir["pred"], workdir["score"]
    young = workdir["age"] < 25
    young_eu = young & (workdir["region"] == "EU")
    expected = {
        "performance.roc_auc": metrics.roc_auc_score(y, score),
        "performance.accuracy": metrics.accuracy_score(y, pred),
        "performance.accuracy[young]": metrics.accuracy_score(y[young], pred[young]),
        "performance.f1[young_eu]": metrics.f1_score(y[young_eu], pred[young_eu], zero_division=0),
        "performance.log_loss": metrics.log_loss(y, score),
        "performance.brier": metrics.brier_score_loss(y, score),
        "performance.pr_auc": metrics.average_precision_score(y, score),
        "fairness.demographic_parity_difference@sex":
            demographic_parity_difference(y, pred, sensitive_features=workdir["sex"]),
        "fairness.equalized_odds_difference@[sex,region]":
            equalized_odds_difference(y, pred, sensitive_features=np.column_stack(
                [workdir["sex"], workdir["region"]])),
    }
    for name, want in expected.items():
        assert name in got, (name, list(got))
        # onnxruntime and tract compute the float32 scores independently.
        assert got[name]["value"] == pytest.approx(want, rel=1e-5, abs=1e-6), name
        assert got[name]["status"] == "pass"
    assert got["performance.accuracy[young]"]["evidence"]["rows"] == int(young.sum())
    assert got["performance.accuracy"]["evidence"]["worst_slices"]["slices"], "discovered slices"
    ece = got["performance.ece"]
    assert 0 <= ece["value"] < 0.5 and len(ece["evidence"]["calibration_curve"]) > 0
    groups = got["fairness.demographic_parity_difference@sex"]["evidence"]["groups"]
    assert [g["group"] for g in groups] == [["f"], ["m"]]
    assert got["fairness.equalized_odds_difference@[sex,region]"]["severity"] == "warning"
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "credit-candidate" in page and "PASSED" in page
    assert "fraction positive" in page and "Selection rate per group" in page
    assert "Worst slices" in page and page.count("<svg") >= 4
    for name in got:
        assert name.replace("<", "&lt;") in page
    cases = ET.parse(junit).getroot()
    assert cases.get("tests") == str(len(out["checks"])) and cases.get("failures") == "0"
    assert {c.get("name") for c in cases.iter("testcase")} == set(got)


def test_a_failed_check_fails_the_suite_and_a_warning_does_not(workdir):
    text = SUITE.replace("metric: roc_auc, min: 0.60", "metric: roc_auc, min: 0.99")
    res = keel_test(workdir, text)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL" in res.stdout and "performance.roc_auc" in res.stdout and "FAILED" in res.stdout
    text = SUITE.replace("max: 0.9, severity: warning", "max: 0.0, severity: warning")
    res = keel_test(workdir, text, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    warn = [c for c in json.loads(res.stdout)["checks"] if c["severity"] == "warning"][0]
    assert warn["status"] == "fail"


def test_checks_that_cannot_run_say_why(workdir):
    text = SUITE + "  - {kind: performance, metric: accuracy, slice: nobody, min: 0.5}\n"
    text = text.replace('young: "age < 25"', 'young: "age < 25"\n  nobody: "age > 200"')
    res = keel_test(workdir, text, "--json")
    assert res.returncode == 1
    bad = [c for c in json.loads(res.stdout)["checks"] if c["status"] == "error"]
    assert len(bad) == 1 and "no rows" in bad[0]["evidence"]["error"]


@pytest.mark.parametrize("mutate,needle", [
    (lambda s: s.replace("metric: roc_auc,", "metric: roc_acu,"), "did you mean `roc_auc`"),
    (lambda s: s.replace("slice: young,", "slice: yuong,"), "line 11, column 50: checks[2].slice"),
    (lambda s: s.replace("test.parquet", "missing.parquet"), "missing.parquet"),
    (lambda s: s.replace("label: default", "label: defualt"), 'data.test: no column "defualt"'),
    (lambda s: s.replace('"age < 25"', '"agee < 25"'), "slices.young"),
    (lambda s: s.replace("model.onnx", "nothing.onnx"), "nothing.onnx"),
])
def test_bad_suites_and_data_exit_2_with_the_reason(workdir, mutate, needle):
    res = keel_test(workdir, mutate(SUITE))
    assert res.returncode == 2, res.stdout + res.stderr
    assert needle in res.stderr, res.stderr


OTHER_KINDS = """\
suite: credit-other-kinds
model: {onnx: model.onnx, features: [age, income, debt]}
data:
  test: {path: test.parquet, label: default}
  train: {path: train.parquet, label: default}
  holdout: {path: holdout.parquet, label: default}
checks:
  - {kind: robustness, perturbation: {gaussian_noise: {columns: [income], scale: 0.05}}, max_flip_rate: 0.2, seed: 3}
  - {kind: robustness, perturbation: {missing: {columns: [debt], rate: 0.1}}, max_mean_change: 1.0}
  - {kind: robustness, directional: {feature: debt, increase: 500, expect: increase}, max_violation_rate: 0.0}
  - {kind: robustness, cases: cases.csv, min_pass_rate: 0.5}
  - {kind: privacy, test: membership_inference, max_advantage: 0.5}
  - {kind: privacy, test: k_anonymity, quasi_identifiers: [sex, region], min_k: 5}
  - {kind: privacy, test: pii, max_findings: 0, severity: warning}
  - {kind: privacy, test: pii, scan: [test, train, outputs], max_findings: 1000, name: pii-everywhere}
  - {kind: security, test: evasion, norm: linf, budget: 0.5, max_success_rate: 1.0, samples: 50}
  - {kind: cost, latency_p99_ms: {batch: 1, max: 1000}}
  - {kind: cost, throughput: {batch: 500, min: 1}}
  - {kind: cost, cost_per_1000: {max: 1.0}, cpu_hour_usd: 0.05}
"""


def test_robustness_privacy_security_and_cost_checks(workdir):
    # Minimum functionality: huge debt and low income must default; the
    # opposite must not; the last case expects the wrong answer on purpose.
    (workdir["root"] / "cases.csv").write_text(
        "age,income,debt,expected\n30,500,20000,1\n45,9000,0,0\n50,8000,100,0\n30,500,20000,0\n")
    res = keel_test(workdir, OTHER_KINDS, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    got = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    assert all(c["status"] in ("pass", "fail") for c in got.values()), got
    noise = got["robustness.gaussian_noise"]
    assert 0 <= noise["value"] <= 0.2 and noise["evidence"]["rows"] == len(workdir["y"])
    # Seeded: the same suite gives the same flips.
    again = {c["name"]: c for c in json.loads(keel_test(workdir, OTHER_KINDS, "--json").stdout)["checks"]}
    assert again["robustness.gaussian_noise"]["value"] == noise["value"]
    # More debt never lowers this model's default score (its debt weight is positive).
    assert got["robustness.directional"]["value"] == 0.0 and got["robustness.directional"]["status"] == "pass"
    mft = got["robustness.minimum_functionality"]
    assert mft["value"] == 0.75 and mft["evidence"]["failing"] == [{"index": 3, "expected": 0, "predicted": 1}]
    # Membership advantage = max over thresholds of TPR - FPR, members = low loss.
    train, holdout = workdir["losses"]["train"], workdir["losses"]["holdout"]
    thresholds = np.unique(np.concatenate([train, holdout]))
    adv = max(0.0, max((train <= t).mean() - (holdout <= t).mean() for t in thresholds))
    mi = got["privacy.membership_inference"]
    assert mi["value"] == pytest.approx(adv, abs=2e-3), mi
    assert mi["evidence"]["auc"] == pytest.approx(
        metrics.roc_auc_score(np.r_[np.ones(len(train)), np.zeros(len(holdout))], -np.r_[train, holdout]), abs=2e-3)
    k = got["privacy.k_anonymity"]
    pairs = {}
    for a, b in zip(workdir["sex"], workdir["region"]):
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    assert k["value"] == min(pairs.values()) and k["evidence"]["classes"] == len(pairs)
    pii = got["privacy.pii"]
    assert pii["value"] == workdir["emails"] and pii["status"] == "fail" and pii["severity"] == "warning"
    assert "contact" in pii["evidence"]["columns"]
    everywhere = got["pii-everywhere"]
    assert everywhere["value"] == workdir["emails"] and set(everywhere["evidence"]["scanned"]) == {
        "test", "train", "outputs"}
    assert everywhere["evidence"]["scanned"]["train"] == {} and everywhere["evidence"]["scanned"]["outputs"] == {}
    # The rows that flipped under noise, with the perturbed value.
    for ex in noise["evidence"]["examples"]:
        assert ex["label_before"] != ex["label_after"] and len(ex["inputs_before"]) == 1
        assert ex["inputs_before"] != ex["inputs_after"]
    assert len(noise["evidence"]["examples"]) == min(5, round(noise["value"] * len(workdir["y"])))
    assert 0.0 <= got["security.evasion"]["value"] <= 1.0
    assert got["security.evasion"]["evidence"]["rows"] == 50
    latency = got["cost.latency_p99_ms"]
    assert 0 < latency["value"] < 1000 and latency["evidence"]["runs"] >= 50
    assert got["cost.throughput"]["value"] > 1
    per_1000 = got["cost.cost_per_1000"]
    assert per_1000["value"] == pytest.approx(
        0.05 / 3600 / per_1000["evidence"]["rows_per_s"] * 1000, rel=1e-9)


GATE = """\
lifecycle: release-gate
initial: testing
states:
  testing:
    on: {suite_passed: staging, suite_failed: rejected}
  staging: {terminal: true}
  rejected: {terminal: true}
"""


def test_a_suite_result_moves_a_lifecycle(workdir, tmp_path):
    import requests

    srv = keel_server(KeelTarget(tmp_path / "data"))
    try:
        r = requests.post(f"{srv.url}/v1/lifecycles", data=GATE.encode(), timeout=30)
        assert r.status_code in (200, 201), r.text
        res = keel_test(workdir, SUITE, "--lifecycle", "release-gate", "--key", "churn-v7", "--server", srv.url)
        assert res.returncode == 0 and "sent suite_passed to release-gate/churn-v7" in res.stdout, res.stderr
        failing = SUITE.replace("metric: roc_auc, min: 0.60", "metric: roc_auc, min: 0.99")
        res = keel_test(workdir, failing, "--lifecycle", "release-gate", "--key", "churn-v8", "--server", srv.url)
        assert res.returncode == 1 and "sent suite_failed" in res.stdout, res.stderr
        states = {k: requests.get(f"{srv.url}/v1/lifecycles/release-gate/instances/{k}", timeout=10).json()["state"]
                  for k in ("churn-v7", "churn-v8")}
        assert states == {"churn-v7": "staging", "churn-v8": "rejected"}
        history = requests.get(f"{srv.url}/v1/lifecycles/release-gate/history/churn-v8", timeout=10).json()
        assert "performance.roc_auc" in json.dumps(history), history
    finally:
        srv.stop()


def _suite_at(workdir, name: str, text: str, *extra) -> subprocess.CompletedProcess:
    path = workdir["root"] / name
    path.write_text(text)
    return subprocess.run([keel_bin(), "test", "run", str(path), *extra],
                          capture_output=True, text=True, timeout=300)


MEMBERSHIP = """\
suite: membership-{model}
model: {{onnx: {model}.onnx, features: [age, income, debt]}}
data:
  test: {{path: test.parquet, label: default}}
  train: {{path: train.parquet, label: default}}
  holdout: {{path: holdout.parquet, label: default}}
checks:
  - {{kind: privacy, test: membership_inference, max_advantage: 0.1}}
"""


def test_membership_inference_finds_an_overfit_model_and_not_a_regularised_one(workdir):
    # A forest of unpruned trees memorises its 1,000 noisy training rows; the
    # logistic regression (fitted on 2,000 rows, three weights) cannot.
    from sklearn.ensemble import RandomForestClassifier

    root = workdir["root"]
    train = pq.read_table(root / "train.parquet").to_pandas()
    X = train[["age", "income", "debt"]].to_numpy(np.float32)
    forest = RandomForestClassifier(n_estimators=25, random_state=0).fit(X, train["default"])
    onx = to_onnx(forest, X[:1], options={id(forest): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    (root / "forest.onnx").write_bytes(onx.SerializeToString())
    got = {}
    for model in ("forest", "model"):
        res = _suite_at(workdir, f"mi-{model}.yaml", MEMBERSHIP.format(model=model), "--json")
        got[model] = json.loads(res.stdout)["checks"][0]
        assert res.returncode == (1 if model == "forest" else 0), res.stdout + res.stderr
    overfit, regularised = got["forest"], got["model"]
    assert overfit["status"] == "fail" and overfit["value"] > 0.3, overfit
    assert overfit["evidence"]["auc"] > 0.7, overfit
    assert regularised["status"] == "pass" and regularised["value"] < 0.1, regularised
    assert abs(regularised["evidence"]["auc"] - 0.5) < 0.1, regularised
    # The regularised figure equals the attack computed here (see above).
    train_l, holdout_l = workdir["losses"]["train"], workdir["losses"]["holdout"]
    thresholds = np.unique(np.concatenate([train_l, holdout_l]))
    adv = max(0.0, max((train_l <= t).mean() - (holdout_l <= t).mean() for t in thresholds))
    assert regularised["value"] == pytest.approx(adv, abs=2e-3)

    # The confidence-threshold attack needs no labels: members are the rows
    # the model is surest of (largest class probability).
    for model in ("forest", "model"):
        text = MEMBERSHIP.format(model=model).replace(
            "membership_inference,", "membership_inference, attack: confidence,")
        res = _suite_at(workdir, f"mi-conf-{model}.yaml", text, "--json")
        check = json.loads(res.stdout)["checks"][0]
        sess = ort.InferenceSession(str(root / f"{model}.onnx"))
        conf = {}
        for part in ("train", "holdout"):
            rows = pq.read_table(root / f"{part}.parquet").to_pandas()
            proba = sess.run(None, {"X": rows[["age", "income", "debt"]].to_numpy(np.float32)})[1]
            conf[part] = proba.max(axis=1).astype(np.float64)
        thresholds = np.unique(np.concatenate([conf["train"], conf["holdout"]]))
        adv = max(0.0, max((conf["train"] >= t).mean() - (conf["holdout"] >= t).mean() for t in thresholds))
        assert check["evidence"]["attack"] == "confidence"
        assert check["value"] == pytest.approx(adv, abs=2e-3), (model, check)
        auc = metrics.roc_auc_score(np.r_[np.ones(len(conf["train"])), np.zeros(len(conf["holdout"]))],
                                    np.r_[conf["train"], conf["holdout"]])
        # A forest's confidences are few values (votes of 25 trees) that
        # tract and onnxruntime sum in different orders: rows tied in one
        # are a float32 rounding apart in the other, which moves the AUC's
        # tie credit a little.
        assert check["evidence"]["auc"] == pytest.approx(auc, abs=2e-3 if model == "model" else 1e-2), (
            model, check)
        assert (check["status"], res.returncode) == (("fail", 1) if model == "forest" else ("pass", 0))


RANKING = """\
suite: ranking
model: {onnx: model.onnx, features: [age, income, debt]}
data:
  test: {path: ranked.parquet, label: relevance}
checks:
  - {kind: performance, metric: ndcg_at_k, query: user, k: 5, min: 0.1}
  - {kind: performance, metric: ndcg_at_k, query: user, min: 0.1, name: ndcg}
  - {kind: performance, metric: map_at_k, query: user, k: 5, min: 0.0}
  - {kind: performance, metric: precision_at_k, query: user, k: 3, min: 0.0}
"""


def test_ranking_metrics_match_sklearn_per_query(workdir):
    # Each user's candidate rows are ranked by the model's score; the label
    # is a graded relevance that mostly follows the score.
    rng = np.random.default_rng(11)
    users = np.repeat(np.arange(150), rng.integers(2, 12, 150))
    n = len(users)
    age = rng.integers(18, 70, n).astype(float)
    income = rng.normal(3000, 900, n)
    debt = rng.gamma(2.0, 800, n)
    X = np.column_stack([age, income, debt]).astype(np.float32)
    sess = ort.InferenceSession(str(workdir["root"] / "model.onnx"))
    score = sess.run(None, {"X": X})[1][:, 1].astype(np.float64)
    relevance = np.clip(np.round(score * 4 + rng.normal(0, 0.8, n)), 0, 3)
    pq.write_table(pa.table({"user": users.astype(np.int64), "age": age, "income": income, "debt": debt,
                             "relevance": relevance}), workdir["root"] / "ranked.parquet")
    res = _suite_at(workdir, "ranking.yaml", RANKING, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    got = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    queries = [np.flatnonzero(users == u) for u in np.unique(users)]

    def per_query(f):
        return float(np.mean([f(relevance[q], score[q]) for q in queries]))

    def ap_at(rel, s, k):
        order = np.argsort(-s, kind="stable")[:k]
        hits, ap = 0, 0.0
        for i, r in enumerate(order):
            if rel[r] > 0:
                hits += 1
                ap += hits / (i + 1)
        relevant = int((rel > 0).sum())
        return ap / min(k, relevant) if relevant else 0.0

    expected = {
        "performance.ndcg_at_k": per_query(lambda r, s: metrics.ndcg_score([r], [s], k=5)),
        "ndcg": per_query(lambda r, s: metrics.ndcg_score([r], [s])),
        "performance.map_at_k": per_query(lambda r, s: ap_at(r, s, 5)),
        "performance.precision_at_k": per_query(
            lambda r, s: (r[np.argsort(-s, kind="stable")[:3]] > 0).sum() / 3),
    }
    for name, want in expected.items():
        assert got[name]["value"] == pytest.approx(want, rel=1e-6), name
        assert got[name]["evidence"]["queries"] == len(queries)


HOSTILE = """\
suite: hostile
model: {onnx: model.onnx, features: [age, income, debt]}
data:
  test: {path: test.parquet, label: default}
checks:
  - {kind: security, test: hostile_inputs}
  - {kind: security, test: hostile_inputs, reject: [huge, oversized_batch], name: strict, severity: warning}
  - {kind: cost, peak_memory_mb: {batch: 2000, max: 500}}
"""


def test_hostile_inputs_are_refused_and_peak_memory_is_measured(workdir):
    res = _suite_at(workdir, "hostile.yaml", HOSTILE, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    got = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    default = got["security.hostile_inputs"]
    assert default["status"] == "pass" and default["value"] == 0 and default["threshold"] == {"max": 0.0}
    probes = {p["probe"]: p for p in default["evidence"]["probes"]}
    assert set(probes) == {"nan", "pos_inf", "neg_inf", "huge", "neg_huge", "wrong_type",
                           "wrong_shape", "empty_batch", "oversized_batch"}
    for refused in ("nan", "pos_inf", "neg_inf", "wrong_type", "wrong_shape"):
        assert probes[refused]["answered"] is False and probes[refused]["error"], refused
    assert "NaN or infinite" in probes["nan"]["error"]
    assert "datatype" in probes["wrong_type"]["error"] and "shape" in probes["wrong_shape"]["error"]
    # A logistic regression answers a value of 1e12 and 100,000 rows: a
    # suite that demands their refusal fails (here as a warning).
    strict = got["strict"]
    assert strict["status"] == "fail" and strict["value"] == 2
    assert strict["evidence"]["answered_but_should_not"] == ["huge", "oversized_batch"]
    memory = got["cost.peak_memory_mb"]
    assert memory["status"] == "pass" and 0 <= memory["value"] < 500, memory
    # At least the float32 copy of the input (2,000 × 3 × 4 bytes) is allocated.
    assert memory["evidence"]["batch"] == 2000 and memory["evidence"]["peak_bytes"] >= 24_000
    assert memory["value"] == memory["evidence"]["peak_bytes"] / 1e6


def test_a_registry_model_is_tested_and_the_result_attached(workdir, tmp_path):
    import mlflow
    import onnx
    import requests

    srv = keel_server(KeelTarget(tmp_path / "data"))
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(srv.url)
        mlflow.set_experiment("quality-registry")
        with mlflow.start_run():
            mlflow.onnx.log_model(onnx.load(str(workdir["root"] / "model.onnx")), name="model",
                                  registered_model_name="credit")
        client = mlflow.MlflowClient(srv.url)
        client.set_registered_model_alias("credit", "candidate", "1")
        text = SUITE.replace("model: {onnx: model.onnx}",
                             'model: {registry: "models:/credit@candidate", features: [age, income, debt]}')
        res = keel_test(workdir, text, "--json", "--server", srv.url)
        assert res.returncode == 0, res.stdout + res.stderr
        local = json.loads(keel_test(workdir, SUITE, "--json").stdout)
        remote = json.loads(res.stdout)
        # The registered copy of the same ONNX model gives the same values.
        assert [(c["name"], c["value"]) for c in remote["checks"]] == \
            [(c["name"], c["value"]) for c in local["checks"]]
        stored = requests.get(f"{srv.url}/v1/models/credit/versions/@candidate/suites", timeout=30).json()
        assert stored["version"] == 1 and [s["suite"] for s in stored["suites"]] == ["credit-candidate"]
        assert stored["suites"][0]["passed"] is True
        assert stored["suites"][0]["result"]["checks"] == remote["checks"]
        assert client.get_model_version("credit", "1").tags["keel.suite.credit-candidate"] == "passed"
        # A failing run replaces the verdict.
        failing = text.replace("metric: roc_auc, min: 0.60", "metric: roc_auc, min: 0.99")
        assert keel_test(workdir, failing, "--server", srv.url).returncode == 1
        assert client.get_model_version("credit", "1").tags["keel.suite.credit-candidate"] == "failed"
        listed = subprocess.run([keel_bin(), "models", "suites", "credit@candidate", "--server", srv.url],
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        row = [line for line in listed.stdout.splitlines() if "credit-candidate" in line]
        assert len(row) == 1 and "FAILED" in row[0] and f"{len(remote['checks']) - 1}/{len(remote['checks'])}" in row[0]
        # An unknown alias is an invalid suite (exit 2) naming the reference.
        missing = text.replace("@candidate", "@champion")
        res = keel_test(workdir, missing, "--server", srv.url)
        assert res.returncode == 2 and "model.registry" in res.stderr and "champion" in res.stderr, res.stderr
        bad = requests.post(f"{srv.url}/v1/models/credit/versions/1/suites", json={"suite": "x"}, timeout=30)
        assert bad.status_code == 400 and "passed" in bad.text
    finally:
        mlflow.set_tracking_uri(previous)
        srv.stop()


MORE = """\
suite: more-kinds
model: {onnx: model.onnx, features: [age, income, debt]}
data:
  test: {path: test.parquet, label: default}
slices:
  young: "age < 25"
  eu: "region = 'EU'"
checks:
  - {kind: fairness, metric: demographic_parity_ratio, sensitive: sex, min: 0.0}
  - {kind: fairness, metric: disparate_impact, sensitive: region, min: 0.0}
  - {kind: fairness, metric: equal_opportunity_difference, sensitive: [sex, region], max: 1.0}
  - {kind: fairness, metric: equalized_odds_ratio, sensitive: sex, min: 0.0}
  - {kind: fairness, metric: group_metrics, sensitive: region}
  - {kind: performance, metric: precision, min: 0.0}
  - {kind: performance, metric: recall, slice: eu, min: 0.0}
  - {kind: performance, metric: no_slice_worse_than_overall, max_gap: 1.0, min_size: 50}
  - {kind: robustness, perturbation: {category_swap: {columns: [age], rate: 0.5}}, max_flip_rate: 1.0, seed: 2}
"""


def test_more_fairness_and_performance_metrics_match_fairlearn(workdir):
    from fairlearn.metrics import (demographic_parity_ratio, equal_opportunity_difference,
                                   equalized_odds_ratio)

    res = _suite_at(workdir, "more.yaml", MORE, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    got = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    y, pred = workdir["y"], workdir["pred"]
    both = np.column_stack([workdir["sex"], workdir["region"]])
    eu = workdir["region"] == "EU"
    young = workdir["age"] < 25
    expected = {
        "fairness.demographic_parity_ratio@sex": demographic_parity_ratio(
            y, pred, sensitive_features=workdir["sex"]),
        # Disparate impact: the lowest selection rate over the highest.
        "fairness.disparate_impact@region": demographic_parity_ratio(
            y, pred, sensitive_features=workdir["region"]),
        "fairness.equal_opportunity_difference@[sex,region]": equal_opportunity_difference(
            y, pred, sensitive_features=both),
        "fairness.equalized_odds_ratio@sex": equalized_odds_ratio(
            y, pred, sensitive_features=workdir["sex"]),
        "performance.precision": metrics.precision_score(y, pred),
        "performance.recall[eu]": metrics.recall_score(y[eu], pred[eu]),
    }
    for name, want in expected.items():
        assert got[name]["value"] == pytest.approx(want, rel=1e-9, abs=1e-12), name
    groups = got["fairness.group_metrics@region"]["evidence"]["groups"]
    assert {g["group"][0]: g["count"] for g in groups} == {
        r: int((workdir["region"] == r).sum()) for r in ("APAC", "EU", "US")}
    # The gap is overall accuracy minus the worst slice's (named or found).
    gap = got["performance.no_slice_worse_than_overall"]
    overall = metrics.accuracy_score(y, pred)
    named = overall - metrics.accuracy_score(y[young], pred[young])
    assert gap["value"] >= named - 1e-12 and gap["evidence"]["overall_accuracy"] == pytest.approx(overall)
    assert {s["slice"] for s in gap["evidence"]["slices"]} == {"young", "eu"}
    swap = got["robustness.category_swap"]
    assert swap["status"] == "pass" and 0 <= swap["value"] <= 1


REGRESSION = """\
suite: regression
model: {onnx: regressor.onnx, features: [age, debt]}
data:
  test: {path: test.parquet, label: income}
checks:
  - {kind: performance, metric: rmse, max: 1.0e9}
  - {kind: performance, metric: mae, max: 1.0e9}
  - {kind: performance, metric: r2, min: -1.0e9}
  - {kind: performance, metric: mape, max: 1.0e9}
"""


def test_regression_metrics_match_sklearn(workdir):
    # A regressor of income from age and debt, scored on the test set's income.
    from sklearn.linear_model import Ridge

    root = workdir["root"]
    test = pq.read_table(root / "test.parquet").to_pandas()
    X = test[["age", "debt"]].to_numpy(np.float32)
    target = test["income"].to_numpy()
    reg = Ridge(alpha=1.0).fit(X[:1000], target[:1000])
    onx = to_onnx(reg, X[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    (root / "regressor.onnx").write_bytes(onx.SerializeToString())
    out = ort.InferenceSession(str(root / "regressor.onnx")).run(None, {"X": X})[0].ravel().astype(np.float64)
    res = _suite_at(workdir, "regression.yaml", REGRESSION, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    got = {c["name"]: c["value"] for c in json.loads(res.stdout)["checks"]}
    assert got["performance.rmse"] == pytest.approx(metrics.root_mean_squared_error(target, out), rel=1e-6)
    assert got["performance.mae"] == pytest.approx(metrics.mean_absolute_error(target, out), rel=1e-6)
    assert got["performance.r2"] == pytest.approx(metrics.r2_score(target, out), rel=1e-5, abs=1e-6)
    assert got["performance.mape"] == pytest.approx(
        metrics.mean_absolute_percentage_error(target, out), rel=1e-6)


# --------------------------------------------------------------------------
# a model with text inputs: one ONNX input per column, as skl2onnx exports a
# pipeline over a data frame
# --------------------------------------------------------------------------

TEXT_SUITE = """\
suite: churn-text
model: {onnx: pipeline.onnx}
data:
  test: {path: test.parquet, label: churned}
slices:
  eu: "region = 'EU'"
checks:
  - {kind: performance, metric: accuracy, min: 0.5}
  - {kind: performance, metric: roc_auc, min: 0.5}
  - {kind: performance, metric: accuracy, slice: eu, min: 0.0}
  - {kind: fairness, metric: demographic_parity_difference, sensitive: region, max: 1.0}
  - {kind: robustness, perturbation: {typos: {columns: [region], rate: 1.0}}, max_flip_rate: 1.0, name: typos, seed: 4}
  - {kind: robustness, perturbation: {typos: {columns: region, rate: 1.0}}, max_mean_change: 1.0, name: typos-change}
  - {kind: robustness, perturbation: {missing: {columns: [region], rate: 1.0}}, max_flip_rate: 1.0, name: missing}
  - {kind: robustness, perturbation: {category_swap: {columns: [region], rate: 1.0}}, max_flip_rate: 1.0, name: swap, seed: 9}
  - {kind: robustness, perturbation: {category_swap: {columns: [plan], rate: 0.5}}, max_flip_rate: 1.0, name: swap-plan}
  - {kind: robustness, perturbation: {gaussian_noise: {columns: [age], scale: 0.1}}, max_flip_rate: 1.0, name: noise}
  - {kind: robustness, perturbation: {gaussian_noise: {columns: [region], scale: 0.1}}, max_flip_rate: 1.0, name: noise-text}
  - {kind: robustness, perturbation: {missing: {columns: [plan], rate: 0.1}}, max_flip_rate: 1.0, name: missing-int}
  - {kind: robustness, perturbation: {typos: {columns: [age], rate: 0.1}}, max_flip_rate: 1.0, name: typos-number}
  - {kind: robustness, directional: {feature: debt, increase: 500, expect: increase}, max_violation_rate: 0.0}
  - {kind: robustness, cases: cases.csv, min_pass_rate: 0.5}
  - {kind: security, test: evasion, norm: linf, budget: 0.5, max_success_rate: 1.0, samples: 40}
  - {kind: security, test: hostile_inputs}
  - {kind: cost, latency_p50_ms: {batch: 1, max: 1000}}
"""


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    import pandas as pd
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    root = tmp_path_factory.mktemp("quality_text")
    rng = np.random.default_rng(11)
    n = 3000
    df = pd.DataFrame({
        "age": rng.integers(18, 70, n).astype(np.float32),
        "debt": rng.gamma(2.0, 800, n).astype(np.float32),
        "region": rng.choice(["EU", "US", "APAC"], n, p=[0.5, 0.3, 0.2]),
        "plan": rng.integers(0, 3, n).astype(np.int64),
    })
    logit = (-0.5 + 0.0008 * (df.debt - 1600) - 0.02 * (df.age - 40) + 1.5 * (df.region == "APAC")
             - 1.0 * (df.region == "US") + 0.8 * (df.plan == 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(np.int64)
    pipe = Pipeline([
        ("pre", ColumnTransformer([("num", StandardScaler(), ["age", "debt"]),
                                   ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "plan"])])),
        ("clf", LogisticRegression(max_iter=1000)),
    ]).fit(df[:2000], y[:2000])
    types = [("age", FloatTensorType([None, 1])), ("debt", FloatTensorType([None, 1])),
             ("region", StringTensorType([None, 1])), ("plan", Int64TensorType([None, 1]))]
    onx = to_onnx(pipe, initial_types=types, options={id(pipe.steps[-1][1]): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    (root / "pipeline.onnx").write_bytes(onx.SerializeToString())
    test = df[2000:].reset_index(drop=True)
    pq.write_table(pa.table({"age": test.age, "debt": test.debt, "region": test.region,
                             "plan": test.plan, "churned": y[2000:]}), root / "test.parquet")
    sess = ort.InferenceSession(str(root / "pipeline.onnx"))

    def predict(frame):
        label, proba = sess.run(None, {
            "age": frame.age.to_numpy(np.float32).reshape(-1, 1),
            "debt": frame.debt.to_numpy(np.float32).reshape(-1, 1),
            "region": frame.region.to_numpy(object).reshape(-1, 1),
            "plan": frame.plan.to_numpy(np.int64).reshape(-1, 1)})
        return label.astype(np.int64), proba[:, 1]

    return {"root": root, "test": test, "y": y[2000:], "predict": predict}


def test_a_model_with_text_inputs_is_tested_per_column(text_model):
    from fairlearn.metrics import demographic_parity_difference

    root, test, y, predict = (text_model[k] for k in ("root", "test", "y", "predict"))
    # Cases: the model's own answers for three rows, and a wrong one on purpose.
    cases = test.iloc[[0, 1, 2, 3]].copy()
    cases_label, _ = predict(cases)
    cases["expected"] = cases_label
    cases.loc[cases.index[3], "expected"] = 1 - cases_label[3]
    cases.to_csv(root / "cases.csv", index=False)
    (root / "suite.yaml").write_text(TEXT_SUITE)
    res = subprocess.run([keel_bin(), "test", "run", str(root / "suite.yaml"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr  # the three misuse checks are errors
    got = {c["name"]: c for c in json.loads(res.stdout)["checks"]}

    # The inputs are found by name: age, debt (float), region (string), plan (int64).
    pred, score = predict(test)
    assert got["performance.accuracy"]["value"] == pytest.approx(metrics.accuracy_score(y, pred), abs=1e-12)
    assert got["performance.roc_auc"]["value"] == pytest.approx(metrics.roc_auc_score(y, score), rel=1e-5)
    eu = (test.region == "EU").to_numpy()
    assert got["performance.accuracy[eu]"]["value"] == pytest.approx(
        metrics.accuracy_score(y[eu], pred[eu]), abs=1e-12)
    assert got["fairness.demographic_parity_difference@region"]["value"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=test.region), abs=1e-12)

    # A typo makes every region unknown to the one-hot encoder (no category
    # is one typo from another), as does a missing region (fed as ""): all
    # three equal onnxruntime's answers with the region blanked.
    blank_label, blank_score = predict(test.assign(region=""))
    flips = float(np.mean(blank_label != pred))
    assert 0.05 < flips < 0.95
    for name in ("typos", "missing"):
        assert got[name]["status"] == "pass", got[name]
        assert got[name]["value"] == pytest.approx(flips, abs=1e-12), name
    assert got["typos-change"]["value"] == pytest.approx(np.mean(np.abs(blank_score - score)), abs=1e-5)
    for ex in got["typos"]["evidence"]["examples"]:
        (before,), (after,) = ex["inputs_before"], ex["inputs_after"]
        assert before in ("EU", "US", "APAC") and after not in ("EU", "US", "APAC")
        assert abs(len(after) - len(before)) <= 1 and ex["label_before"] != ex["label_after"]
        assert ex["label_before"] == pred[ex["row"]]

    # Swapping every region for another: between the rows every other
    # region flips and the rows some other region flips.
    others = {r: [o for o in ("EU", "US", "APAC") if o != r] for r in ("EU", "US", "APAC")}
    alt = {o: predict(test.assign(region=o))[0] for o in ("EU", "US", "APAC")}
    regions = test.region.to_numpy()
    flip_any = np.array([any(alt[o][i] != pred[i] for o in others[regions[i]]) for i in range(len(y))])
    flip_all = np.array([all(alt[o][i] != pred[i] for o in others[regions[i]]) for i in range(len(y))])
    swap = got["swap"]
    assert flip_all.mean() <= swap["value"] <= flip_any.mean(), (flip_all.mean(), swap["value"], flip_any.mean())
    for ex in swap["evidence"]["examples"]:
        (before,), (after,) = ex["inputs_before"], ex["inputs_after"]
        assert before == regions[ex["row"]] and after in others[before]
        assert alt[after][ex["row"]] == ex["label_after"]
    assert got["swap-plan"]["status"] == "pass" and got["noise"]["status"] == "pass"
    assert got["robustness.directional"]["value"] == 0.0
    assert got["robustness.minimum_functionality"]["value"] == 0.75

    # Perturbations that do not fit how the model reads a column say so.
    assert got["noise-text"]["status"] == "error"
    assert 'perturbs numbers; the model reads "region" as text' in got["noise-text"]["evidence"]["error"]
    assert got["missing-int"]["status"] == "error" and "integer" in got["missing-int"]["evidence"]["error"]
    assert got["typos-number"]["status"] == "error"
    assert 'the model reads "age" as floats' in got["typos-number"]["evidence"]["error"]

    # Evasion moves only the numbers; hostile probes reach each input.
    assert got["security.evasion"]["status"] == "pass" and got["security.evasion"]["evidence"]["rows"] == 40
    hostile = got["security.hostile_inputs"]
    assert hostile["status"] == "pass" and hostile["value"] == 0, hostile
    probes = {p["probe"]: p for p in hostile["evidence"]["probes"]}
    assert "NaN or infinite" in probes["nan"]["error"] and "input age" in probes["wrong_type"]["error"]
    assert probes["oversized_batch"]["answered"] is True
    assert got["cost.latency_p50_ms"]["status"] == "pass"


def test_a_text_model_whose_inputs_are_not_columns_asks_for_features(text_model, tmp_path):
    root = text_model["root"]
    (root / "renamed.yaml").write_text(TEXT_SUITE.replace("test.parquet", "renamed.parquet")
                                       .split("checks:")[0] + "checks:\n  - {kind: performance, metric: accuracy, min: 0.5}\n")
    test = text_model["test"].rename(columns={"region": "area"})
    pq.write_table(pa.Table.from_pandas(test.assign(churned=text_model["y"]), preserve_index=False),
                   root / "renamed.parquet")
    res = subprocess.run([keel_bin(), "test", "run", str(root / "renamed.yaml")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "model.features" in res.stderr, res.stderr
    (root / "named.yaml").write_text((root / "renamed.yaml").read_text().replace(
        "model: {onnx: pipeline.onnx}", "model: {onnx: pipeline.onnx, features: [age, debt, area, plan]}")
        .replace("slices:\n  eu: \"region = 'EU'\"\n", ""))
    res = subprocess.run([keel_bin(), "test", "run", str(root / "named.yaml"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    pred, _ = text_model["predict"](text_model["test"])
    assert json.loads(res.stdout)["checks"][0]["value"] == pytest.approx(
        metrics.accuracy_score(text_model["y"], pred), abs=1e-12)
