"""Monitoring through the real server (``/v1/monitor``): the prediction log
of a deployment, its reference data, drift of a window and over time,
performance once labels arrive and estimated before (CBPE), alert rules
whose firing reaches a lifecycle instance and a webhook, and the metric
series evaluations leave behind. Runs on SQLite and PostgreSQL.

Expected values come from scipy, scikit-learn and numpy on the same rows.
"""

from __future__ import annotations

import http.server
import io
import json
import math
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import scipy.stats as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from conftest import KEEL_BACKENDS, ServerProcess, _requested_backends

HOUR_MS = 3_600_000


@pytest.fixture(scope="module", params=[b for b in _requested_backends() if b in KEEL_BACKENDS])
def server(request):
    mp = pytest.MonkeyPatch()
    # Alerts are evaluated by the test (POST /v1/monitor/alerts/evaluate).
    mp.setenv("KEEL_ALERT_INTERVAL", "1h")
    workdir = Path(tempfile.mkdtemp(prefix="keel-monitor-"))
    s = ServerProcess(request.param, workdir)
    try:
        s.prepare()
        s.start()
        yield s
    finally:
        s.cleanup()
        mp.undo()
        shutil.rmtree(workdir, ignore_errors=True)


def rows(rng, n, shift=0.0, start_ms=None, step_ms=1000, labels=True):
    """Log rows of a calibrated classifier: x ~ N(shift, 1), colour in
    {red, green, blue}, the score a logistic of x, the label drawn from it."""
    start_ms = start_ms or int(time.time() * 1000) - n * step_ms
    x = rng.normal(shift, 1.0, n)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2] if shift == 0 else [0.2, 0.3, 0.5])
    score = 1 / (1 + np.exp(-x))
    label = (rng.random(n) < score).astype(float)
    out = []
    for i in range(n):
        r = {"id": f"p{start_ms}-{i}", "at": start_ms + i * step_ms,
             "features": {"x": float(x[i]), "colour": str(colour[i])},
             "prediction": float(score[i]), "variant": "a" if i % 2 else "b",
             "latency_ms": 1.0 + (i % 100) / 10}
        if labels:
            r["label"] = float(label[i])
        out.append(r)
    return out


def post(server, path, body):
    return requests.post(f"{server.uri}/v1/monitor/{path}", json=body, timeout=60)


def test_a_logged_window_drifts_against_its_reference_as_scipy_says(server):
    rng = np.random.default_rng(1)
    d = f"drift-{server.backend}"
    now = int(time.time() * 1000)
    reference = rows(rng, 2000, start_ms=now - 3 * HOUR_MS, step_ms=100)
    current = rows(rng, 1500, shift=0.6, start_ms=now - HOUR_MS // 2, step_ms=100)
    for batch in (reference, current):
        r = post(server, f"deployments/{d}/predictions", {"rows": batch})
        assert r.status_code == 200 and r.json()["logged"] == len(batch), r.text
    # The first window of the log becomes the reference.
    r = requests.put(f"{server.uri}/v1/monitor/deployments/{d}/reference",
                     params={"start": now - 3 * HOUR_MS, "end": now - 2 * HOUR_MS}, timeout=60)
    assert r.status_code == 200 and r.json()["rows"] == 2000, r.text
    r = requests.get(f"{server.uri}/v1/monitor/deployments/{d}/drift", params={"window": "1h"}, timeout=60)
    assert r.status_code == 200, r.text
    report = r.json()
    cols = {c["column"]: c for c in report["columns"]}
    assert set(cols) == {"x", "colour"}
    rx = np.array([row["features"]["x"] for row in reference])
    cx = np.array([row["features"]["x"] for row in current])
    # 2,000 reference rows: Evidently's rule picks the normed Wasserstein distance.
    assert cols["x"]["method"] == "wasserstein"
    assert math.isclose(cols["x"]["score"], st.wasserstein_distance(rx, cx) / np.std(rx), rel_tol=1e-9)
    assert cols["x"]["drifted"] and cols["colour"]["method"] == "jensenshannon" and cols["colour"]["drifted"]
    assert report["dataset_drift"] and report["drift_share"] == 1.0
    # The prediction column is reported apart, as prediction drift.
    assert report["prediction"]["column"] == "prediction" and report["prediction"]["drifted"]
    # Another method on request, equal to scipy.
    r = requests.get(f"{server.uri}/v1/monitor/deployments/{d}/drift",
                     params={"window": "1h", "method": "x=ks"}, timeout=60)
    ks = {c["column"]: c for c in r.json()["columns"]}["x"]
    assert ks["method"] == "ks" and math.isclose(ks["score"], st.ks_2samp(rx, cx).pvalue, rel_tol=1e-9, abs_tol=1e-300)
    # The HTML report and the history over time.
    page = requests.get(f"{server.uri}/v1/monitor/deployments/{d}/drift",
                        params={"window": "1h", "format": "html"}, timeout=60)
    assert page.status_code == 200 and "<svg" in page.text and "Dataset drift detected" in page.text
    h = requests.get(f"{server.uri}/v1/monitor/deployments/{d}/drift/history",
                     params={"start": now - 3 * HOUR_MS, "end": now, "step": "1h"}, timeout=60)
    assert h.status_code == 200, h.text
    points = h.json()["points"]
    assert [p["dataset_drift"] for p in points] == [False, True], points
    assert "<path" in requests.get(f"{server.uri}/v1/monitor/deployments/{d}/drift/history",
                                   params={"start": now - 3 * HOUR_MS, "end": now, "step": "1h",
                                           "format": "html"}, timeout=60).text
    # The drift share was recorded as a series.
    s = requests.get(f"{server.uri}/v1/monitor/series",
                     params={"name": "drift_share", "deployment": d, "step": "1d"}, timeout=30).json()
    assert s["points"] and s["points"][-1]["max"] == 1.0
    page = requests.get(f"{server.uri}/v1/monitor/dashboard", params={"deployment": d, "window": "1d"}, timeout=30)
    assert page.status_code == 200 and f"drift_share {{deployment={d}}}" in page.text and "<svg" in page.text


def test_performance_with_late_labels_and_estimated_before_them(server):
    rng = np.random.default_rng(2)
    d = f"perf-{server.backend}"
    batch = rows(rng, 3000, labels=False, step_ms=500)
    assert post(server, f"deployments/{d}/predictions", {"rows": batch}).status_code == 200
    # Labels for the first 2,000 arrive later.
    y = {}
    for r in batch[:2000]:
        y[r["id"]] = float(rng.random() < r["prediction"])
    r = post(server, f"deployments/{d}/labels", {"labels": [{"id": k, "label": v} for k, v in y.items()]})
    assert r.status_code == 200 and r.json()["labels"] == 2000, r.text
    perf = requests.get(f"{server.uri}/v1/monitor/deployments/{d}/performance",
                        params={"window": "1h"}, timeout=60).json()
    step = perf["steps"][0]
    assert step["predictions"] == 3000 and step["labelled"] == 2000
    p = np.array([r["prediction"] for r in batch[:2000]])
    t = np.array([y[r["id"]] for r in batch[:2000]])
    pred = (p >= 0.5).astype(int)
    real = step["realized"]
    assert math.isclose(real["accuracy"], accuracy_score(t, pred), rel_tol=1e-12)
    assert math.isclose(real["precision"], precision_score(t, pred), rel_tol=1e-12)
    assert math.isclose(real["recall"], recall_score(t, pred), rel_tol=1e-12)
    assert math.isclose(real["f1"], f1_score(t, pred), rel_tol=1e-12)
    assert math.isclose(real["roc_auc"], roc_auc_score(t, p), rel_tol=1e-12)
    # CBPE on the 1,000 unlabelled rows: the expected confusion matrix.
    u = np.array([r["prediction"] for r in batch[2000:]])
    pos = u >= 0.5
    tp, fp = u[pos].sum(), (1 - u[pos]).sum()
    fn, tn = u[~pos].sum(), (1 - u[~pos]).sum()
    est = step["estimated"]
    assert est["count"] == 1000
    assert math.isclose(est["accuracy"], (tp + tn) / 1000, rel_tol=1e-9)
    assert math.isclose(est["precision"], tp / (tp + fp), rel_tol=1e-9)
    assert math.isclose(est["recall"], tp / (tp + fn), rel_tol=1e-9)
    # The estimate is close to what the labels will say (calibrated scores).
    assert abs(est["accuracy"] - real["accuracy"]) < 0.05
    assert set(step["variants"]) == {"a", "b"}
    assert step["variants"]["a"]["predictions"] == 1500


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


LIFECYCLE = """
lifecycle: {name}
initial: serving
states:
  serving:
    on: {{drift_detected: retraining}}
  retraining:
    on: {{drift_resolved: serving}}
"""


def test_a_drift_alert_moves_a_lifecycle_and_calls_a_webhook_then_resolves(server):
    rng = np.random.default_rng(3)
    d = f"alert-{server.backend}"
    lc = f"model-{server.backend}"
    r = requests.post(f"{server.uri}/v1/lifecycles", data=LIFECYCLE.format(name=lc), timeout=30)
    assert r.status_code in (200, 201), r.text
    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        now = int(time.time() * 1000)
        assert post(server, f"deployments/{d}/predictions",
                    {"rows": rows(rng, 1500, start_ms=now - 5 * HOUR_MS, step_ms=100)}).status_code == 200
        r = requests.put(f"{server.uri}/v1/monitor/deployments/{d}/reference",
                         params={"start": now - 5 * HOUR_MS, "end": now - 4 * HOUR_MS}, timeout=60)
        assert r.status_code == 200, r.text
        rule = {"deployment": d, "condition": {"kind": "drift_share", "op": ">=", "threshold": 0.5},
                "window_seconds": 600, "min_rows": 100,
                "lifecycle": {"name": lc, "key": d, "on_fire": "drift_detected", "on_resolve": "drift_resolved"},
                "webhook": f"http://127.0.0.1:{hook.server_port}/hook"}
        r = requests.put(f"{server.uri}/v1/monitor/alerts/drift-{d}", json=rule, timeout=30)
        assert r.status_code == 200 and r.json()["state"] == "ok", r.text
        # Too little data: no verdict, the reason is kept.
        ev = requests.post(f"{server.uri}/v1/monitor/alerts/evaluate", timeout=60).json()["evaluated"]
        mine = [e for e in ev if e["alert"] == f"drift-{d}"][0]
        assert mine["verdict"] is None and "min_rows" in mine["message"]
        # Drifted traffic arrives: the alert fires.
        now = int(time.time() * 1000)
        assert post(server, f"deployments/{d}/predictions",
                    {"rows": rows(rng, 500, shift=1.0, start_ms=now - 300_000, step_ms=100)}).status_code == 200
        ev = requests.post(f"{server.uri}/v1/monitor/alerts/evaluate", timeout=60).json()["evaluated"]
        mine = [e for e in ev if e["alert"] == f"drift-{d}"][0]
        assert mine["transition"] == "fired" and mine["state"] == "firing" and mine["message"] is None, mine
        inst = requests.get(f"{server.uri}/v1/lifecycles/{lc}/instances/{d}", timeout=10).json()
        assert inst["state"] == "retraining", inst
        assert Hook.received and Hook.received[-1]["transition"] == "fired"
        assert Hook.received[-1]["measure"] == "drift_share" and Hook.received[-1]["value"] == 1.0
        # Firing again does not send the event again.
        ev = requests.post(f"{server.uri}/v1/monitor/alerts/evaluate", timeout=60).json()["evaluated"]
        assert [e for e in ev if e["alert"] == f"drift-{d}"][0]["transition"] is None
        # The threshold is raised past the share: it resolves, and the lifecycle returns.
        rule["condition"]["op"] = ">"
        rule["condition"]["threshold"] = 1.0
        assert requests.put(f"{server.uri}/v1/monitor/alerts/drift-{d}", json=rule, timeout=30).json()["state"] == "firing"
        ev = requests.post(f"{server.uri}/v1/monitor/alerts/evaluate", timeout=60).json()["evaluated"]
        assert [e for e in ev if e["alert"] == f"drift-{d}"][0]["transition"] == "resolved"
        inst = requests.get(f"{server.uri}/v1/lifecycles/{lc}/instances/{d}", timeout=10).json()
        assert inst["state"] == "serving", inst
        assert Hook.received[-1]["transition"] == "resolved"
        alert = requests.get(f"{server.uri}/v1/monitor/alerts/drift-{d}", timeout=10).json()
        assert alert["state"] == "ok" and alert["last_value"] == 1.0
    finally:
        hook.shutdown()


def test_latency_and_error_rate_alerts(server):
    rng = np.random.default_rng(4)
    d = f"ops-{server.backend}"
    batch = rows(rng, 200, step_ms=100)
    for i, r in enumerate(batch[:20]):
        r["error"] = "model failed"
        r.pop("prediction")
    assert post(server, f"deployments/{d}/predictions", {"rows": batch}).status_code == 200
    for name, cond in (("p99", {"kind": "latency_p99_ms", "op": ">", "threshold": 5}),
                       ("errors", {"kind": "error_rate", "op": ">", "threshold": 0.05})):
        r = requests.put(f"{server.uri}/v1/monitor/alerts/{name}-{d}",
                         json={"deployment": d, "condition": cond, "window_seconds": 3600}, timeout=30)
        assert r.status_code == 200, r.text
    ev = {e["alert"]: e for e in requests.post(f"{server.uri}/v1/monitor/alerts/evaluate", timeout=60).json()["evaluated"]}
    lat = sorted(r["latency_ms"] for r in batch[20:])
    assert ev[f"p99-{d}"]["value"] == pytest.approx(lat[math.ceil(0.99 * len(lat)) - 1])
    assert ev[f"p99-{d}"]["state"] == "firing"
    assert ev[f"errors-{d}"]["value"] == pytest.approx(0.1) and ev[f"errors-{d}"]["state"] == "firing"
    for name in ("p99", "errors"):
        assert requests.delete(f"{server.uri}/v1/monitor/alerts/{name}-{d}", timeout=10).status_code == 200


@pytest.mark.parametrize("path,body,status,field", [
    ("deployments/x/predictions", {"rows": []}, 400, "rows"),
    ("deployments/x/predictions", {"rows": [{"features": {"a": [1, 2]}}]}, 400, "rows[0].features.a"),
    ("deployments/x/predictions", {"rows": [{"features": {"_at": 1}}]}, 400, "rows.features._at"),
    ("deployments/x/predictions", {"rows": [{"feature": {}}]}, 400, "rows"),
    ("deployments/x/labels", {"labels": [{"id": "", "label": 1}]}, 400, "labels[0].id"),
])
def test_bad_logging_requests_name_the_field(server, path, body, status, field):
    r = post(server, path, body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field, r.text


def test_bad_alerts_and_queries_name_the_field(server):
    bad = {"deployment": "x", "condition": {"kind": "metric", "metric": "acc", "op": "<", "threshold": 0.8}}
    r = requests.put(f"{server.uri}/v1/monitor/alerts/bad", json=bad, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "condition.metric", r.text
    r = requests.put(f"{server.uri}/v1/monitor/alerts/bad", json={"deployment": "x", "condition": {"kind": "drift_share", "op": "~", "threshold": 1}}, timeout=10)
    assert r.status_code == 400, r.text
    r = requests.get(f"{server.uri}/v1/monitor/deployments/none/drift", params={"window": "1h"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "window", r.text
    # Predictions but no reference: a conflict that says what to do.
    assert post(server, "deployments/noref/predictions", {"rows": [{"features": {"a": 1.0}}]}).status_code == 200
    r = requests.get(f"{server.uri}/v1/monitor/deployments/noref/drift", params={"window": "1h"}, timeout=10)
    assert r.status_code == 409 and r.json()["error"]["code"] == "NO_REFERENCE", r.text
    assert "PUT /v1/monitor/deployments/noref/reference" in r.json()["error"]["message"]
    r = requests.get(f"{server.uri}/v1/monitor/deployments/noref/reference", timeout=10)
    assert r.status_code == 404, r.text
    r = requests.get(f"{server.uri}/v1/monitor/deployments/x/drift", params={"method": "nope"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "method", r.text
    r = requests.put(f"{server.uri}/v1/monitor/deployments/x/reference", data=b"not parquet", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "reference", r.text
    # A reference uploaded as a Parquet file works.
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0]}), buf)
    r = requests.put(f"{server.uri}/v1/monitor/deployments/x/reference", data=buf.getvalue(), timeout=10)
    assert r.status_code == 200 and r.json()["rows"] == 3, r.text
    assert requests.get(f"{server.uri}/v1/monitor/alerts/ghost", timeout=10).status_code == 404


def keel_cli(server, *args, check=True):
    import subprocess
    from conftest import keel_bin
    res = subprocess.run([str(keel_bin()), "monitor", *args, "--server", server.uri],
                         capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def test_the_cli_logs_files_labels_and_reads_status_performance_and_alerts(server, tmp_path):
    rng = np.random.default_rng(5)
    d = f"cli-{server.backend}"
    now = int(time.time() * 1000)
    n = 3000
    x = rng.normal(0, 1, n)
    score = 1 / (1 + np.exp(-x))
    ids = [f"c{i}" for i in range(n)]
    table = pa.table({
        "id": ids,
        "at": pa.array([now - 600_000 + i * 100 for i in range(n)], pa.int64()),
        "x": x,
        "plan": rng.choice(["free", "pro"], n),
        "prediction": score,
        "variant": ["a"] * n,
    })
    pq.write_table(table, tmp_path / "scored.parquet")
    res = keel_cli(server, "log", d, str(tmp_path / "scored.parquet"), "--json")
    assert json.loads(res.stdout)["logged"] == n
    labels = (rng.random(n) < score).astype(float)
    pq.write_table(pa.table({"id": ids[:1000], "label": labels[:1000]}), tmp_path / "labels.parquet")
    assert json.loads(keel_cli(server, "labels", d, str(tmp_path / "labels.parquet"), "--json").stdout)["labels"] == 1000
    # The reference: the same distribution, uploaded as a file.
    pq.write_table(pa.table({"x": rng.normal(0, 1, 5000), "plan": rng.choice(["free", "pro"], 5000),
                             "prediction": 1 / (1 + np.exp(-rng.normal(0, 1, 5000)))}), tmp_path / "ref.parquet")
    res = keel_cli(server, "reference", d, "--file", str(tmp_path / "ref.parquet"), "--json")
    assert json.loads(res.stdout)["rows"] == 5000
    status = json.loads(keel_cli(server, "status", d, "--window", "1h", "--json").stdout)
    assert status["current_rows"] == n and not status["dataset_drift"], status
    text = keel_cli(server, "status", d, "--window", "1h", "--html", str(tmp_path / "s.html")).stdout
    assert "no dataset drift" in text and "<svg" in (tmp_path / "s.html").read_text()
    perf = json.loads(keel_cli(server, "performance", d, "--window", "1h", "--json").stdout)
    step = perf["steps"][0]
    assert step["labelled"] == 1000 and step["estimated"]["count"] == 2000
    t = labels[:1000]
    p = score[:1000]
    assert math.isclose(step["realized"]["roc_auc"], roc_auc_score(t, p), rel_tol=1e-12)
    # A slice: only rows whose plan is "pro".
    pro = np.array(table.column("plan").to_pylist()[:1000]) == "pro"
    r = requests.get(f"{server.uri}/v1/monitor/deployments/{d}/performance",
                     params={"window": "1h", "slice": "plan=pro"}, timeout=60).json()
    assert r["steps"][0]["labelled"] == int(pro.sum())
    assert math.isclose(r["steps"][0]["realized"]["accuracy"],
                        accuracy_score(t[pro], (p[pro] >= 0.5).astype(int)), rel_tol=1e-12)
    # The window's mergeable profile.
    prof = requests.get(f"{server.uri}/v1/monitor/deployments/{d}/profile", params={"window": "1h"}, timeout=60)
    assert prof.status_code == 200, prof.text
    cols = prof.json()["columns"]
    assert set(cols) == {"x", "plan", "prediction"}, set(cols)
    # Alerts through the CLI.
    rule = {"deployment": d, "condition": {"kind": "estimated_metric", "metric": "accuracy", "op": "<", "threshold": 0.9},
            "window_seconds": 3600}
    (tmp_path / "rule.json").write_text(json.dumps(rule))
    keel_cli(server, "alerts", "set", f"est-{d}", str(tmp_path / "rule.json"))
    ev = json.loads(keel_cli(server, "alerts", "evaluate", "--json").stdout)["evaluated"]
    mine = [e for e in ev if e["alert"] == f"est-{d}"][0]
    u = score[1000:]
    pos = u >= 0.5
    expected = (u[pos].sum() + (1 - u[~pos]).sum()) / len(u)
    assert math.isclose(mine["value"], expected, rel_tol=1e-9) and mine["state"] == "firing"
    assert mine["message"] is None, mine
    listed = keel_cli(server, "alerts").stdout
    assert f"est-{d}" in listed and "firing" in listed
    keel_cli(server, "alerts", "delete", f"est-{d}")
    bad = keel_cli(server, "alerts", "frobnicate", check=False)
    assert bad.returncode == 2 and "keel monitor alerts" in bad.stderr


def test_profiles_of_parts_merge_into_the_profile_of_the_whole(tmp_path):
    import subprocess
    from conftest import keel_bin
    rng = np.random.default_rng(6)
    n = 30_000
    x = rng.normal(5, 2, n)
    x[rng.random(n) < 0.02] = np.nan
    colour = rng.choice(["a", "b", "c", "d"], n)
    whole = pa.table({"x": x, "colour": colour})
    pq.write_table(whole, tmp_path / "whole.parquet")
    pq.write_table(whole.slice(0, 12_345), tmp_path / "p1.parquet")
    pq.write_table(whole.slice(12_345), tmp_path / "p2.parquet")
    run = lambda *a: subprocess.run([str(keel_bin()), "monitor", "profile", *map(str, a)],
                                    capture_output=True, text=True, timeout=120)
    assert run(tmp_path / "p1.parquet", "-o", tmp_path / "p1.json").returncode == 0
    merged = json.loads(run(tmp_path / "p1.json", tmp_path / "p2.parquet", "--json").stdout)
    single = json.loads(run(tmp_path / "whole.parquet", "--json").stdout)
    assert merged["rows"] == single["rows"] == n
    assert merged["columns"]["colour"] == single["columns"]["colour"]
    mx, sx = merged["columns"]["x"]["numeric"], single["columns"]["x"]["numeric"]
    finite = x[~np.isnan(x)]
    assert mx["null"] == sx["null"] == int(np.isnan(x).sum())
    assert mx["sum"] == sx["sum"], "the exact sum merges bit for bit"
    assert mx["hll"] == sx["hll"], "HyperLogLog registers merge exactly"
    assert sorted(mx["exact"]) == sorted(sx["exact"]) == sorted(finite.tolist())
    m, w = mx["moments"], sx["moments"]
    assert m["n"] == w["n"] == len(finite) and m["min"] == finite.min() and m["max"] == finite.max()
    assert math.isclose(m["mean"], finite.mean(), rel_tol=1e-12)
    assert math.isclose(m["m2"] / (m["n"] - 1), finite.var(ddof=1), rel_tol=1e-9)
    assert math.isclose(m["m2"], w["m2"], rel_tol=1e-9)
    bad = run(tmp_path / "p1.json", tmp_path / "nope.json")
    assert bad.returncode == 2 and "nope.json" in bad.stderr
    # Histograms on the reference's deciles: both parts get the same bins,
    # their merge equals the whole's, and the counts are numpy's.
    assert run(tmp_path / "whole.parquet", "-o", tmp_path / "ref.json").returncode == 0
    binned = [json.loads(run(p, "--edges-from", tmp_path / "ref.json", "--bins", 10, "--json").stdout)
              for p in (tmp_path / "p1.parquet", tmp_path / "p2.parquet", tmp_path / "whole.parquet")]
    hists = [b["columns"]["x"]["numeric"]["histogram"] for b in binned]
    edges = hists[2]["edges"]
    assert len(edges) == 11 and edges[0] == finite.min() and edges[-1] == finite.max()
    assert edges == hists[0]["edges"] == hists[1]["edges"]
    counts, _ = np.histogram(finite, bins=np.array(edges))
    assert hists[2]["counts"] == counts.tolist()
    assert [a + b for a, b in zip(hists[0]["counts"], hists[1]["counts"])] == hists[2]["counts"]
    assert hists[2]["below"] == hists[2]["above"] == 0


def test_saved_profiles_compare_exactly_or_within_their_error_bound(tmp_path):
    import subprocess
    from conftest import keel_bin
    rng = np.random.default_rng(7)
    n = 150_000  # past the 100,000 values a profile keeps exactly
    for name, shift in (("ref", 0.0), ("cur", 0.3)):
        pq.write_table(pa.table({
            "x": rng.normal(shift, 1.0, n),
            "small": rng.normal(shift, 1.0, n)[:n],
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }), tmp_path / f"{name}.parquet")
        res = subprocess.run([str(keel_bin()), "monitor", "profile", str(tmp_path / f"{name}.parquet"),
                              "-o", str(tmp_path / f"{name}.json")], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr

    def drift(ext):
        res = subprocess.run([str(keel_bin()), "monitor", "drift", "-r", str(tmp_path / f"ref.{ext}"),
                              "-c", str(tmp_path / f"cur.{ext}"), "--json"], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return {c["column"]: c for c in json.loads(res.stdout)["columns"]}

    files, profiles = drift("parquet"), drift("json")
    for col in ("x", "small"):
        exact, sketched = files[col], profiles[col]
        assert exact["method"] == sketched["method"] == "wasserstein"
        assert "score_error_bound" not in exact
        bound = sketched["score_error_bound"]
        assert 0 < bound < 1 and abs(sketched["score"] - exact["score"]) <= bound, (exact, sketched)
        # In practice far inside the bound.
        assert abs(sketched["score"] - exact["score"]) < 0.02
        assert sketched["drifted"] == exact["drifted"]
    # Categories are counted exactly: the same score as the files.
    assert profiles["colour"]["method"] == "jensenshannon"
    assert math.isclose(profiles["colour"]["score"], files["colour"]["score"], rel_tol=1e-12)
    mixed = subprocess.run([str(keel_bin()), "monitor", "drift", "-r", str(tmp_path / "ref.json"),
                            "-c", str(tmp_path / "cur.parquet")], capture_output=True, text=True, timeout=60)
    assert mixed.returncode == 2 and "both" in mixed.stderr
