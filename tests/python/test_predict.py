"""The online request path, ``POST /v1/predict/{deployment}``, end to end.

A feature repo (one batch view of per-user activity) is applied and
materialized into the embedded online store; a scikit-learn logistic
regression over ``clicks``, ``spend`` (online features) and ``age`` (request
data) is exported with skl2onnx into a model repository whose
``model-settings.json`` names the feature order and the feature service.
``keel server --model-repository`` then answers predictions for entity keys:
each answer must equal onnxruntime on the row assembled from the user's
latest materialized values and the request's data, carry a fresh decision id
and the model version, and be appended to the prediction log (Parquet
segments, read back through ``GET /v1/monitor/deployments/D/predictions``)
with its features, outputs and latency. Bad requests get a 4xx naming what is wrong.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from online_crosscheck import KeelTarget, keel_apply, keel_materialize, keel_server

USERS = 50


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(7)
    now = int(time.time())
    # Three events per user; the latest one (by event time) is what is served.
    rows = []
    for uid in range(1, USERS + 1):
        for k in range(3):
            rows.append((uid, now - 3600 * (3 - k) - uid, float(rng.integers(0, 40)), float(rng.normal(50, 20))))
    table = pa.table({
        "user_id": pa.array([r[0] for r in rows], pa.int64()),
        "event_timestamp": pa.array([r[1] * 1_000_000 for r in rows], pa.timestamp("us", tz="UTC")),
        "clicks": pa.array([r[2] for r in rows], pa.float64()),
        "spend": pa.array([r[3] for r in rows], pa.float64()),
    })
    repo = root / "repo"
    (repo / "data").mkdir(parents=True)
    pq.write_table(table, repo / "data" / "activity.parquet")
    latest = {}
    for uid, ts, clicks, spend in rows:
        if uid not in latest or ts > latest[uid][0]:
            latest[uid] = (ts, clicks, spend)
    (repo / "features.yaml").write_text(
        "entities:\n  - name: user\n    join_keys: [user_id]\n"
        "sources:\n  - name: activity_src\n    path: data/activity.parquet\n    timestamp_field: event_timestamp\n"
        "feature_views:\n  - name: activity\n    entities: [user]\n    ttl: 0\n    source: activity_src\n"
        "    online: true\n    features:\n      - {name: clicks, dtype: float64}\n"
        "      - {name: spend, dtype: float64}\n"
        "feature_services:\n  - name: churn_features\n    features: [activity]\n"
    )
    target = KeelTarget(root / "data")
    keel_apply(repo, target)
    keel_materialize(target)

    X = rng.normal(size=(400, 3)).astype(np.float32) * [10, 20, 12] + [20, 50, 40]
    y = (X[:, 0] * 0.1 + X[:, 1] * 0.02 - X[:, 2] * 0.05 > 1.0).astype(int)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    onx = to_onnx(model, X[:1].astype(np.float32), options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    models = root / "models"
    (models / "churn" / "1").mkdir(parents=True)
    (models / "churn" / "1" / "model.onnx").write_bytes(onx.SerializeToString())
    (models / "churn" / "model-settings.json").write_text(json.dumps(
        {"features": ["clicks", "spend", "age"], "feature_service": "churn_features"}))
    # The same model with one input per feature and no feature service.
    (models / "plain" / "1").mkdir(parents=True)
    (models / "plain" / "1" / "model.onnx").write_bytes(onx.SerializeToString())
    # A challenger trained on another rule, for deployments.
    y_b = (X[:, 0] * 0.05 - X[:, 1] * 0.03 + X[:, 2] * 0.04 > 1.0).astype(int)
    model_b = LogisticRegression(max_iter=1000).fit(X, y_b)
    onx_b = to_onnx(model_b, X[:1].astype(np.float32), options={id(model_b): {"zipmap": False}},
                    target_opset={"": 17, "ai.onnx.ml": 3})
    (models / "churn_b" / "1").mkdir(parents=True)
    (models / "churn_b" / "1" / "model.onnx").write_bytes(onx_b.SerializeToString())
    (models / "churn_b" / "model-settings.json").write_text(json.dumps(
        {"features": ["clicks", "spend", "age"], "feature_service": "churn_features"}))

    server = keel_server(target, extra_args=["--model-repository", str(models)])
    try:
        yield {
            "url": f"http://127.0.0.1:{server.port}",
            "latest": latest,
            "session": ort.InferenceSession(str(models / "churn" / "1" / "model.onnx")),
            "session_b": ort.InferenceSession(str(models / "churn_b" / "1" / "model.onnx")),
            "artifacts": target.data_dir / "artifacts",
        }
    finally:
        server.stop()


def _expected(served, clicks, spend, age, session="session"):
    x = np.array([[clicks, spend, age]], dtype=np.float32)
    label, proba = served[session].run(None, {"X": x})
    return int(label[0]), proba[0]


def test_predictions_join_online_features_and_request_data(served):
    ids = set()
    for uid in (1, 7, 23, USERS):
        age = 20.0 + uid
        r = requests.post(f"{served['url']}/v1/predict/churn",
                          json={"entities": {"user_id": uid}, "features": {"age": age}})
        assert r.status_code == 200, r.text
        body = r.json()
        _, clicks, spend = served["latest"][uid]
        label, proba = _expected(served, clicks, spend, age)
        assert body["outputs"]["label"] == label
        np.testing.assert_allclose(body["outputs"]["probabilities"], proba, atol=1e-5)
        assert body["model"] == "churn" and body["model_version"] == "1" and body["deployment"] == "churn"
        uuid.UUID(body["decision_id"])
        assert body["latency_ms"] > 0
        ids.add(body["decision_id"])
    assert len(ids) == 4, "every prediction has its own decision id"


def test_request_data_wins_over_stored_features(served):
    uid = 5
    r = requests.post(f"{served['url']}/v1/predict/churn",
                      json={"entities": {"user_id": uid}, "features": {"age": 30.0, "clicks": 0.0}})
    assert r.status_code == 200, r.text
    _, _, spend = served["latest"][uid]
    label, proba = _expected(served, 0.0, spend, 30.0)
    np.testing.assert_allclose(r.json()["outputs"]["probabilities"], proba, atol=1e-5)


def test_every_prediction_is_logged(served):
    r = requests.post(f"{served['url']}/v1/predict/churn",
                      json={"entities": {"user_id": 2}, "features": {"age": 44.0}})
    assert r.status_code == 200, r.text
    decision = r.json()["decision_id"]
    found = _log_lines(served, "churn", lambda x: x["decision_id"] == decision)[0]
    _, clicks, spend = served["latest"][2]
    assert found["features"]["age"] == 44.0
    assert found["features"]["clicks"] == clicks and found["features"]["spend"] == spend
    assert found["outputs"] == r.json()["outputs"]
    # The positive class's probability is the number monitoring scores.
    assert found["prediction"] == r.json()["outputs"]["probabilities"][1]
    assert found["model_version"] == "1" and found["latency_us"] > 0 and found["at"] > 0


def test_named_inputs_without_a_feature_service(served):
    # "plain" has no settings: its single input X cannot take named features.
    r = requests.post(f"{served['url']}/v1/predict/plain", json={"features": {"X": [1.0, 2.0, 3.0]}})
    assert r.status_code == 200, r.text
    label, proba = _expected(served, 1.0, 2.0, 3.0)
    np.testing.assert_allclose(r.json()["outputs"]["probabilities"], proba, atol=1e-5)


@pytest.mark.parametrize("path,body,status,needle", [
    ("churn", "not json", 400, "malformed JSON"),
    ("churn", {"entities": {"user_id": 1}}, 400, "features.age: missing"),
    ("churn", {"entities": {"user_id": 1}, "features": {"age": "old"}}, 400, "features"),
    ("churn", {"entities": {"user_id": 10**6}, "features": {"age": 30}}, 400, "NaN"),
    ("churn", {"entities": {"user_id": "one"}, "features": {"age": 30}}, 400, "user_id"),
    ("churn", {"entities": [1], "features": {"age": 30}}, 400, "entities"),
    ("churn", {"features": {"clicks": 1, "spend": 2, "age": 3}, "version": "9"}, 404, "no version 9"),
    ("plain", {"entities": {"user_id": 1}}, 400, "no feature_service"),
    ("plain", {"features": {"X": [1.0, 2.0]}}, 400, "shape"),
    ("nope", {"features": {}}, 404, "not loaded"),
])
def test_bad_predictions_name_the_problem(served, path, body, status, needle):
    url = f"{served['url']}/v1/predict/{path}"
    r = requests.post(url, data=body) if isinstance(body, str) else requests.post(url, json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"], r.text
    ok = requests.post(f"{served['url']}/v1/predict/churn",
                       json={"entities": {"user_id": 3}, "features": {"age": 30.0}})
    assert ok.status_code == 200, ok.text


# --------------------------------------------------------------------------
# deployments behind the request path
# --------------------------------------------------------------------------


def _deploy(served, body):
    r = requests.post(f"{served['url']}/v1/deployments", json=body)
    assert r.status_code == 201, r.text


def _log_lines(served, deployment, want, timeout=10.0):
    """Rows of the deployment's prediction log matching `want` (flushed
    every second), with the row id also under ``decision_id``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(f"{served['url']}/v1/monitor/deployments/{deployment}/predictions",
                         params={"window": "1h", "limit": 100000})
        assert r.status_code == 200, r.text
        rows = [dict(x, decision_id=x["id"]) for x in r.json()["rows"]]
        found = [x for x in rows if want(x)]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no log row of {deployment} matched within {timeout} s")


def test_an_ab_deployment_routes_to_each_variants_model(served):
    _deploy(served, {"name": "churn-ab", "strategy": {"type": "ab"},
                     "variants": [{"name": "a", "model": "churn/1"}, {"name": "b", "model": "churn_b"}]})
    seen = {}
    for i in range(40):
        uid = 1 + i % USERS
        r = requests.post(f"{served['url']}/v1/predict/churn-ab",
                          json={"unit_id": f"user-{i}", "entities": {"user_id": uid}, "features": {"age": 33.0}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["decision_id"].startswith("churn-ab.") and body["propensity"] == 0.5
        _, clicks, spend = served["latest"][uid]
        session = "session" if body["variant"] == "a" else "session_b"
        assert body["model"] == {"a": "churn", "b": "churn_b"}[body["variant"]]
        _, proba = _expected(served, clicks, spend, 33.0, session)
        np.testing.assert_allclose(body["outputs"]["probabilities"], proba, atol=1e-5)
        seen.setdefault(body["variant"], []).append(body["decision_id"])
        # Sticky: the same unit gets the same variant again.
        again = requests.post(f"{served['url']}/v1/predict/churn-ab",
                              json={"unit_id": f"user-{i}", "entities": {"user_id": uid}, "features": {"age": 33.0}})
        assert again.json()["variant"] == body["variant"]
    assert set(seen) == {"a", "b"}
    # The decision id takes feedback like any other decision.
    ok = requests.post(f"{served['url']}/v1/feedback", json={"decision_id": seen["b"][0], "reward": 1.0})
    assert ok.status_code == 200, ok.text
    d = requests.get(f"{served['url']}/v1/deployments/churn-ab").json()
    assert d["decisions"] == 80 and d["rewards"] == 1
    line = _log_lines(served, "churn-ab", lambda x: x["decision_id"] == seen["a"][0])[0]
    assert line["variant"] == "a" and line["model"] == "churn" and line["propensity"] == 0.5


def test_shadows_answer_in_the_log_only(served):
    _deploy(served, {"name": "churn-shadow", "strategy": {"type": "shadow"},
                     "variants": [{"name": "live", "model": "churn"}, {"name": "challenger", "model": "churn_b/1"}]})
    r = requests.post(f"{served['url']}/v1/predict/churn-shadow",
                      json={"entities": {"user_id": 4}, "features": {"age": 51.0}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["variant"] == "live" and body["model"] == "churn"
    _, clicks, spend = served["latest"][4]
    _, proba = _expected(served, clicks, spend, 51.0)
    np.testing.assert_allclose(body["outputs"]["probabilities"], proba, atol=1e-5)
    shadow = _log_lines(served, "churn-shadow",
                        lambda x: x["decision_id"] == body["decision_id"] and x.get("shadow"))[0]
    assert shadow["variant"] == "challenger" and shadow["model"] == "churn_b"
    _, proba_b = _expected(served, clicks, spend, 51.0, "session_b")
    np.testing.assert_allclose(shadow["outputs"]["probabilities"], proba_b, atol=1e-5)
    assert shadow["features"]["age"] == 51.0


def test_a_failing_candidate_is_rolled_back_by_its_errors(served):
    # The candidate's model is not served: each of its predictions fails,
    # is fed back as an error, and the error-rate guard rolls back.
    _deploy(served, {"name": "churn-canary", "strategy": {"type": "canary", "steps": [50, 100]},
                     "variants": [{"name": "stable", "model": "churn"}, {"name": "broken", "model": "ghost/1"}],
                     "guards": {"min_samples": 5, "max_error_rate": 0.2}})
    failures = 0
    for i in range(60):
        r = requests.post(f"{served['url']}/v1/predict/churn-canary",
                          json={"unit_id": f"c{i}", "features": {"clicks": 1.0, "spend": 2.0, "age": 3.0}})
        if r.status_code != 200:
            assert r.status_code == 404 and "ghost" in r.json()["error"], r.text
            failures += 1
    assert 5 <= failures < 20, failures
    d = requests.get(f"{served['url']}/v1/deployments/churn-canary").json()
    assert d["rollout"]["phase"] == "rolled_back" and d["variants"][1]["errors"] == failures
    for i in range(60, 80):
        r = requests.post(f"{served['url']}/v1/predict/churn-canary",
                          json={"unit_id": f"c{i}", "features": {"clicks": 1.0, "spend": 2.0, "age": 3.0}})
        assert r.status_code == 200 and r.json()["variant"] == "stable", r.text


def test_a_contextual_deployment_decides_on_the_features(served):
    _deploy(served, {"name": "churn-linucb", "strategy": {"type": "linucb"},
                     "variants": [{"name": "a", "model": "churn"}, {"name": "b", "model": "churn_b"}]})
    r = requests.post(f"{served['url']}/v1/predict/churn-linucb",
                      json={"features": {"clicks": 1.0, "spend": 2.0, "age": 3.0}})
    assert r.status_code == 200, r.text
    logged = requests.get(f"{served['url']}/v1/deployments/churn-linucb/decisions").text.splitlines()
    assert json.loads(logged[0])["context"] == [3.0, 1.0, 2.0]  # age, clicks, spend
    bad = requests.post(f"{served['url']}/v1/predict/churn-linucb",
                        json={"features": {"clicks": 1.0, "spend": 2.0, "age": 3.0}, "context": [1, "x"]})
    assert bad.status_code == 400 and "context[1]" in bad.json()["error"]
    pinned = requests.post(f"{served['url']}/v1/predict/churn-linucb",
                           json={"features": {"clicks": 1.0, "spend": 2.0, "age": 3.0}, "version": "1"})
    assert pinned.status_code == 400 and "version" in pinned.json()["error"]
