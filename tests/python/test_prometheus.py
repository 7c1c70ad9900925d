"""A real Prometheus scrapes Keel's ``/metrics``, and the Grafana dashboard
in ``deploy/grafana/keel-dashboard.json`` asks only for what Keel exposes.

One ``keel server --model-repository DIR`` serves a scikit-learn logistic
regression exported with skl2onnx (``iris``, version 1, with named
features for ``/v1/predict``) and an A/B deployment over it. A throwaway
``prometheus`` (temporary config and storage, a free loopback port)
scrapes it every second. Once the target is up the test sends V2 infer
requests of 1 to 5 rows, requests the signature refuses (FP64 for FP32),
and ``/v1/predict`` calls to the plain model and to the deployment, spread
over a few scrapes. Then:

* ``promtool check metrics`` finds nothing to report in ``/metrics``: it
  parses as the text exposition format and follows the naming conventions;
* ``/metrics`` counts exactly what was sent, by model, version, outcome,
  deployment and variant, with the process metrics present;
* Prometheus' ``keel_inference_requests_total`` equals the same counts, and
  the p99 of ``keel_inference_duration_seconds`` over 30 s is finite and
  positive;
* every metric name in the dashboard's PromQL (and its variable) is in
  ``/metrics``, and every panel expression is valid PromQL to this
  Prometheus.

Prometheus and promtool come from ``KEEL_TEST_PROMETHEUS`` /
``KEEL_TEST_PROMTOOL`` (``scripts/prometheus.sh`` installs Debian's package
and sets them) or the PATH. Without them the module is skipped, or failed
when CI=true.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from conftest import REPO_ROOT, ServerProcess, keel_bin

TIMEOUT = 60
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "keel-dashboard.json"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
S = requests.Session()


def _require(env: str, name: str) -> str:
    found = os.environ.get(env) or shutil.which(name)
    if found and Path(found).exists():
        return found
    problem = (f"`{name}` not found (set {env} or install Debian's prometheus package; "
               "scripts/prometheus.sh does both)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: a missing service fails the test)")
    pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float = TIMEOUT, interval: float = 0.25):
    """Calls ``check`` until it returns instead of failing an assertion (or
    a request); its answer. The last failure is in the timeout's message;
    any other exception ends the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, requests.RequestException) as exc:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {exc})") from exc
        time.sleep(interval)


# --------------------------------------------------------------------------
# Keel, Prometheus and the traffic
# --------------------------------------------------------------------------


class ModelServer(ServerProcess):
    """A Keel server that also serves a model repository."""

    def __init__(self, workdir: Path, repository: Path):
        super().__init__("sqlite", workdir)
        self.repository = repository

    def command(self) -> list[str]:
        return super().command() + ["--model-repository", str(self.repository)]


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return {"prometheus": _require("KEEL_TEST_PROMETHEUS", "prometheus"),
            "promtool": _require("KEEL_TEST_PROMTOOL", "promtool")}


@pytest.fixture(scope="module")
def keel(tools, tmp_path_factory):
    if not keel_bin().exists():
        problem = f"Keel binary not found at {keel_bin()}; build it (cargo build) or set KEEL_BIN"
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    workdir = tmp_path_factory.mktemp("keel-prometheus")
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    repository = workdir / "models"
    (repository / "iris" / "1").mkdir(parents=True)
    (repository / "iris" / "1" / "model.onnx").write_bytes(onx.SerializeToString())
    (repository / "iris" / "model-settings.json").write_text(json.dumps({"features": FEATURES}))
    srv = ModelServer(workdir, repository)
    # The server samples its own figures into the embedded metric series
    # every second (KEEL_ALERT_INTERVAL; the environment is read at start).
    previous = os.environ.get("KEEL_ALERT_INTERVAL")
    os.environ["KEEL_ALERT_INTERVAL"] = "1s"
    try:
        srv.start()
        if previous is None:
            os.environ.pop("KEEL_ALERT_INTERVAL", None)
        else:
            os.environ["KEEL_ALERT_INTERVAL"] = previous
        yield {"server": srv, "url": srv.uri, "X": X}
    finally:
        srv.cleanup()
        if not os.environ.get("KEEL_TEST_KEEP_DATA"):
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus(tools, keel):
    """A throwaway Prometheus scraping keel every second, its target up."""
    workdir = Path(tempfile.mkdtemp(prefix="keel-prometheus-"))
    port = _free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: keel\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{keel['server'].port}']\n"
    )
    log = open(workdir / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [tools["prometheus"], f"--config.file={config}",
         f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=str(workdir), start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def target_up():
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}:\n"
                               + (workdir / "prometheus.log").read_text(errors="replace")[-4000:])
        active = S.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        up = [t for t in active if t["health"] == "up"]
        assert up, [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError")} for t in active]
        return up

    try:
        up = _wait("prometheus target up", target_up)
        assert up[0]["labels"]["job"] == "keel", up
        yield {"url": url, "instance": up[0]["labels"]["instance"]}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _infer(url: str, rows: np.ndarray, datatype: str = "FP32") -> requests.Response:
    return S.post(f"{url}/v2/models/iris/infer", timeout=TIMEOUT, json={"inputs": [{
        "name": "X", "datatype": datatype, "shape": list(rows.shape),
        "data": rows.flatten().tolist()}]})


@pytest.fixture(scope="module")
def traffic(keel, prometheus):
    """Requests sent while Prometheus scrapes, spread over several scrapes;
    what each series must count."""
    url, X = keel["url"], keel["X"]
    r = S.post(f"{url}/v1/deployments", timeout=TIMEOUT, json={
        "name": "iris-ab", "strategy": {"type": "ab"},
        "variants": [{"name": "a", "model": "iris/1"}, {"name": "b", "model": "iris"}]})
    assert r.status_code == 201, r.text
    sent = {"success": 0, "error": 0, "rows": 0, "predictions": {}}
    for i in range(5):
        for k in range(5):
            rows = X[(i * 5 + k) % 150:][: 1 + k]
            r = _infer(url, rows)
            assert r.status_code == 200, r.text
            sent["success"] += 1
            sent["rows"] += len(rows)
        # The signature takes FP32: refused by the model, an error of iris v1.
        r = _infer(url, X[:2].astype(np.float64), "FP64")
        assert r.status_code == 400, r.text
        sent["error"] += 1
        for k in range(3):
            features = dict(zip(FEATURES, map(float, X[i * 3 + k])))
            r = S.post(f"{url}/v1/predict/iris", json={"features": features}, timeout=TIMEOUT)
            assert r.status_code == 200, r.text
            assert r.json()["model_version"] == "1"
            sent["predictions"][("iris", "")] = sent["predictions"].get(("iris", ""), 0) + 1
            r = S.post(f"{url}/v1/predict/iris-ab", timeout=TIMEOUT,
                       json={"unit_id": f"u{i}-{k}", "features": features})
            assert r.status_code == 200, r.text
            key = ("iris-ab", r.json()["variant"])
            sent["predictions"][key] = sent["predictions"].get(key, 0) + 1
            sent["success"] += 2
            sent["rows"] += 2
        time.sleep(0.7)
    return sent


def _metrics(url: str) -> str:
    r = S.get(f"{url}/metrics", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out.append((m[1], dict(LABEL.findall(m[3] or "")), float(m[4])))
    return out


def _query(prometheus: dict, expr: str) -> list[dict]:
    r = S.get(f"{prometheus['url']}/api/v1/query", params={"query": expr}, timeout=TIMEOUT)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


# --------------------------------------------------------------------------
# /metrics itself
# --------------------------------------------------------------------------


def test_promtool_finds_nothing_to_report(tools, keel, traffic):
    text = _metrics(keel["url"])
    res = subprocess.run([tools["promtool"], "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), (
        f"promtool check metrics exited {res.returncode}:\n{res.stdout}{res.stderr}")


def test_metrics_count_what_was_sent(keel, traffic):
    samples = _samples(_metrics(keel["url"]))
    value = {(name, tuple(sorted(labels.items()))): v for name, labels, v in samples}

    def get(name, **labels):
        return value.get((name, tuple(sorted(labels.items()))))

    iris = {"model": "iris", "version": "1"}
    assert get("keel_inference_requests_total", **iris, outcome="success") == traffic["success"]
    assert get("keel_inference_requests_total", **iris, outcome="error") == traffic["error"]
    assert get("keel_inference_duration_seconds_count", **iris) == traffic["success"]
    assert get("keel_inference_duration_seconds_bucket", **iris, le="+Inf") == traffic["success"]
    assert 0 < get("keel_inference_duration_seconds_sum", **iris) < traffic["success"] * 5
    assert get("keel_inference_batch_size_sum", **iris) == traffic["rows"]
    assert get("keel_inference_batch_size_bucket", **iris, le="1") == traffic["success"] - 20
    assert get("keel_inference_batch_size_bucket", **iris, le="8") == traffic["success"]
    buckets = [(float(labels["le"]), v) for name, labels, v in samples
               if name == "keel_inference_duration_seconds_bucket" and labels.get("model") == "iris"]
    assert [v for _, v in sorted(buckets)] == sorted(v for _, v in buckets), "not cumulative"
    for (deployment, variant), n in traffic["predictions"].items():
        assert get("keel_predictions_total", deployment=deployment, variant=variant) == n
    assert {v for (d, v) in traffic["predictions"] if d == "iris-ab"} == {"a", "b"}
    assert sum(v for n, _, v in samples if n == "keel_predictions_total") == 30
    assert get("keel_prediction_log_pending") is not None
    assert get("process_resident_memory_bytes") > 1e6
    assert get("process_cpu_seconds_total") > 0
    start = get("process_start_time_seconds")
    assert time.time() - 3600 < start <= time.time() + 2
    route = {"route": "/v2/models/{name}/infer", "method": "POST"}
    assert get("keel_http_requests_total", **route, status="200") == 25
    assert get("keel_http_requests_total", **route, status="400") == 5


# --------------------------------------------------------------------------
# what Prometheus scraped
# --------------------------------------------------------------------------


def test_prometheus_scraped_the_inference_counters(prometheus, traffic):
    want = {"success": traffic["success"], "error": traffic["error"]}

    def counters():
        got = {s["metric"]["outcome"]: float(s["value"][1])
               for s in _query(prometheus, "keel_inference_requests_total")
               if s["metric"].get("model") == "iris" and s["metric"].get("version") == "1"}
        assert got == want, f"scraped so far: {got}"

    _wait("Prometheus has the counts sent", counters)
    series = _query(prometheus, 'keel_inference_requests_total{outcome="success"}')
    assert len(series) == 1
    assert series[0]["metric"]["job"] == "keel"
    assert series[0]["metric"]["instance"] == prometheus["instance"]


def test_prometheus_computes_a_finite_p99(prometheus, traffic):
    expr = ("histogram_quantile(0.99, sum by (le) "
            "(rate(keel_inference_duration_seconds_bucket[30s])))")

    def p99():
        result = _query(prometheus, expr)
        value = float(result[0]["value"][1]) if result else math.nan
        assert math.isfinite(value) and value > 0, result
        return value

    value = _wait("a finite, positive p99", p99)
    # The largest finite bucket bound is 5 s; these calls take milliseconds.
    assert value <= 5.0, value


# --------------------------------------------------------------------------
# the Grafana dashboard
# --------------------------------------------------------------------------

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers outside strings,
    label matchers, ranges and grouping clauses that are not functions
    (followed by a parenthesis) or keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[m.end():].lstrip().startswith("(") or m[0].lower() in PROMQL_WORDS:
            continue
        names.add(m[0])
    return names


def test_promql_metric_names_are_found():
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{x=~"$i",y="b c"}[$__rate_interval])))'
        " / ignoring(z) sum without (q) (b_total offset 5m) + time() - c_seconds > 1e3"
    ) == {"a_bucket", "b_total", "c_seconds"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict]):
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def _exprs(dashboard: dict) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in _panels(dashboard["panels"])
            for t in p.get("targets", []) if t.get("expr")]


def test_dashboard_is_an_importable_grafana_dashboard():
    d = _dashboard()
    assert 36 <= d["schemaVersion"] <= 41
    assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"]
    assert d["__inputs"][0]["pluginId"] == "prometheus"
    titles = [p["title"] for p in _panels(d["panels"]) if p["type"] != "row"]
    assert len(titles) == len(set(titles)) >= 12, titles
    ids = [p["id"] for p in _panels(d["panels"])]
    assert len(ids) == len(set(ids))
    for p in _panels(d["panels"]):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]


def test_dashboard_asks_only_for_what_keel_exposes(keel, prometheus, traffic):
    d = _dashboard()
    used: dict[str, list[str]] = {}
    for title, expr in _exprs(d):
        for name in promql_metric_names(expr):
            used.setdefault(name, []).append(title)
    for var in d["templating"]["list"]:
        for name in re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", var["definition"]):
            used.setdefault(name, []).append(f"variable {var['name']}")
    # The panels the brief asks for are there (the check cannot pass empty).
    for name in ["keel_http_requests_total", "keel_http_request_duration_seconds_bucket",
                 "keel_inference_requests_total", "keel_inference_duration_seconds_bucket",
                 "keel_predictions_total", "process_resident_memory_bytes",
                 "process_cpu_seconds_total"]:
        assert name in used, name
    exposed = {name for name, _, _ in _samples(_metrics(keel["url"]))}
    missing = {name: titles for name, titles in used.items() if name not in exposed}
    assert not missing, f"the dashboard uses metrics Keel does not expose: {missing}"


def test_dashboard_expressions_are_valid_promql(prometheus, traffic):
    for title, expr in _exprs(_dashboard()):
        concrete = expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
        assert "$" not in concrete, (title, expr)
        _query(prometheus, concrete)
    # The templating variable's values: keel's instance.
    result = _query(prometheus, "keel_uptime_seconds")
    assert [s["metric"]["instance"] for s in result] == [prometheus["instance"]]


def test_the_embedded_series_sampled_the_same_traffic(keel, traffic):
    """The server's own figures land in /v1/monitor/series once a second:
    inference rates per model version, predictions per deployment and
    variant, and the process's memory."""
    url = keel["url"]

    def series(name, labels=""):
        r = S.get(f"{url}/v1/monitor/series", timeout=TIMEOUT,
                  params={"name": name, "labels": labels, "step": "1s", "start": 0})
        assert r.status_code == 200, r.text
        return r.json()["points"]

    def sampled():
        assert any(p["max"] > 0 for p in series("inference_requests_per_second", "model=iris,version=1"))

    _wait("inference rates in the series", sampled)
    rates = series("inference_requests_per_second", "model=iris,version=1")
    # Rates times the one-second steps add up to no more than was sent.
    assert 0 < sum(p["value"] * p["count"] for p in rates) <= traffic["success"] * 1.5
    assert any(p["max"] > 0 for p in series("predictions_per_second", "deployment=iris-ab,variant=a")
               + series("predictions_per_second", "deployment=iris-ab,variant=b"))
    latency = series("inference_mean_latency_seconds", "model=iris,version=1")
    assert latency and all(0 < p["value"] < 5 for p in latency)
    rss = series("process_resident_memory_bytes")
    assert rss and all(p["value"] > 1e6 for p in rss)
    names = {x["name"] for x in S.get(f"{url}/v1/monitor/series", timeout=TIMEOUT).json()["series"]}
    assert {"inference_errors_per_second", "process_cpu_utilization"} <= names
    # The dashboard page charts them.
    page = S.get(f"{url}/v1/monitor/dashboard", params={"window": "10m", "step": "1s"}, timeout=TIMEOUT)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "inference_requests_per_second {model=iris,version=1}" in page.text
    assert page.text.count("<svg") >= 5 and "<path" in page.text
    per_deployment = S.get(f"{url}/v1/monitor/dashboard", params={"deployment": "iris-ab", "window": "1h"},
                           timeout=TIMEOUT).text
    assert "predictions_per_second {deployment=iris-ab,variant=" in per_deployment
    assert "process_resident_memory_bytes" not in per_deployment
