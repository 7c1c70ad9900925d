"""The model store beyond MLflow's registry, through the real `keel server`
and the real mlflow client: artifact digests verified on download, lineage
from dataset to deployment, model cards, checkpoints, alias history and
retraining cadence.
"""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.keel_only

TIMEOUT = 60


def _train_and_register(client, unique, name):
    """A run that logs a dataset input, params and metrics, and a model
    registered as version 1 of ``name``."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    frame = pd.DataFrame(x, columns=["tenure", "spend", "tickets"]).assign(churned=y)
    model = LogisticRegression(C=0.5).fit(x, y)
    mlflow.set_experiment(f"store-{unique}")
    with mlflow.start_run(run_name="train-churn") as run:
        dataset = mlflow.data.from_pandas(frame, source="s3://lake/churn/2026-11.parquet", name="churn-events", targets="churned")
        mlflow.log_input(dataset, context="training")
        mlflow.log_params({"C": 0.5, "features": 3})
        mlflow.log_metric("auc", 0.91)
        mlflow.log_metric("accuracy", 0.87)
        signature = mlflow.models.infer_signature(x, model.predict(x))
        info = mlflow.sklearn.log_model(model, name="model", signature=signature, registered_model_name=name)
    return model, x, run.info.run_id, info, dataset


def _v1(tracking_uri):
    return tracking_uri + "/v1"


def test_artifact_digests_are_recorded_and_a_corrupted_file_is_refused(tracking_uri, client, unique, server_proc):
    name = f"integrity-{unique}"
    model, x, _run_id, info, _ = _train_and_register(client, unique, name)
    v1 = _v1(tracking_uri)
    detail = requests.get(f"{v1}/models/{name}/versions/1", timeout=TIMEOUT).json()
    files = {f["path"]: f for f in detail["files"]}
    # mlflow's sklearn flavour writes model.skops or model.pkl, by version.
    weights = next(p for p in ("model.skops", "model.pkl") if p in files)
    assert "MLmodel" in files and "requirements.txt" in files, files
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in files.values())
    report = requests.get(f"{v1}/models/{name}/versions/1/verify", timeout=TIMEOUT).json()
    assert report["ok"] is True and report["verifiable"] is True
    assert {f["status"] for f in report["files"]} == {"ok"}

    # Load works before anything changes.
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    np.testing.assert_array_equal(loaded.predict(x[:10]), model.predict(x[:10]))

    # Versions are immutable: no upload or delete below a version's root.
    root = detail["artifact_root"]
    r = requests.put(f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{root}/{weights}", data=b"evil", timeout=TIMEOUT)
    assert r.status_code == 409, r.text
    assert r.json()["error_code"] == "INVALID_STATE"
    assert f"{name}/1" in r.json()["message"]
    r = requests.delete(f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{root.rsplit('/', 1)[0]}", timeout=TIMEOUT)
    assert r.status_code == 409, r.text
    # Nor a hard delete of the experiment that holds them.
    exp_id = root.split("/", 1)[0]
    r = requests.post(f"{tracking_uri}/api/2.0/mlflow/experiments/delete", json={"experiment_id": exp_id, "permanent": True}, timeout=TIMEOUT)
    assert r.status_code == 409 and f"{name}/1" in r.json()["message"], r.text
    assert client.get_experiment(exp_id).lifecycle_stage == "active"

    # Corrupt the weights behind Keel's back, on disk.
    pkl = [p for p in server_proc.data_dir.rglob(weights) if info.model_id in str(p)]
    assert len(pkl) == 1, pkl
    data = bytearray(pkl[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    pkl[0].write_bytes(bytes(data))

    r = requests.get(f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{root}/{weights}", timeout=TIMEOUT)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["error_code"] == "DATA_LOSS"
    assert weights in body["message"] and "corrupted" in body["message"]
    assert files[weights]["sha256"] in body["message"]
    # The real client fails loudly instead of unpickling changed bytes.
    dst = server_proc.data_dir.parent / f"dl-{unique}"
    dst.mkdir()
    with pytest.raises(MlflowException) as exc:
        mlflow.pyfunc.load_model(f"models:/{name}/1", dst_path=str(dst))
    print("\nwhat the mlflow client reports:", str(exc.value))
    assert "corrupted" in str(exc.value), str(exc.value)
    report = requests.get(f"{v1}/models/{name}/versions/1/verify", timeout=TIMEOUT).json()
    assert report["ok"] is False
    changed = [f for f in report["files"] if f["status"] != "ok"]
    assert [f["path"] for f in changed] == [weights] and changed[0]["status"] == "changed"
    # Untouched files still download.
    r = requests.get(f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{root}/MLmodel", timeout=TIMEOUT)
    assert r.status_code == 200


def test_lineage_from_dataset_to_deployment_both_ways(tracking_uri, client, unique):
    name = f"lineage-{unique}"
    _, _, run_id, info, dataset = _train_and_register(client, unique, name)
    v1 = _v1(tracking_uri)
    # A deployment (recorded the way the deployment domain records it).
    r = requests.post(f"{v1}/lineage", json={
        "nodes": [{"kind": "deployment", "id": f"{name}-prod", "attrs": {"traffic": 100}}],
        "edges": [{"from": f"model_version:{name}/1", "to": f"deployment:{name}-prod", "relation": "deployed_as"}],
    }, timeout=TIMEOUT)
    assert r.status_code == 201, r.text

    up = requests.get(f"{v1}/lineage", params={"node": f"deployment:{name}-prod", "direction": "upstream"}, timeout=TIMEOUT).json()
    keys = [n["key"] for n in up["nodes"]]
    ds_key = f"dataset:churn-events@{dataset.digest}"
    assert keys == [f"deployment:{name}-prod", f"model_version:{name}/1", f"logged_model:{info.model_id}", f"run:{run_id}", ds_key], keys
    run_node = next(n for n in up["nodes"] if n["kind"] == "run")
    assert run_node["name"] == "train-churn"
    ds = next(n for n in up["nodes"] if n["kind"] == "dataset")
    assert ds["attrs"]["source"].endswith("2026-11.parquet") or "lake" in ds["attrs"]["source"], ds
    relations = {(e["from"].split(":")[0], e["to"].split(":")[0], e["relation"]) for e in up["edges"]}
    assert relations == {
        ("dataset", "run", "input"),
        ("run", "logged_model", "produced"),
        ("logged_model", "model_version", "registered_as"),
        ("model_version", "deployment", "deployed_as"),
    }

    down = requests.get(f"{v1}/lineage", params={"node": ds_key, "direction": "downstream"}, timeout=TIMEOUT).json()
    assert f"deployment:{name}-prod" in {n["key"] for n in down["nodes"]}

    svg = requests.get(f"{v1}/lineage", params={"node": f"model_version:{name}/1", "direction": "both", "format": "svg"}, timeout=TIMEOUT)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "churn-events" in svg.text and "train-churn" in svg.text

    ol = requests.get(f"{v1}/lineage", params={"node": f"model_version:{name}/1", "format": "openlineage"}, timeout=TIMEOUT).json()
    run_events = [e for e in ol["events"] if e["job"]["name"] == f"run:{run_id}"]
    assert len(run_events) == 1
    ev = run_events[0]
    assert ev["eventType"] == "COMPLETE" and ev["producer"] and ev["schemaURL"].startswith("https://openlineage.io/spec/")
    assert [i["name"] for i in ev["inputs"]] == [ds_key]
    assert [o["name"] for o in ev["outputs"]] == [f"logged_model:{info.model_id}"]

    # A renamed model keeps its lineage under the new name.
    client.rename_registered_model(name, f"{name}-renamed")
    up = requests.get(f"{v1}/lineage", params={"node": f"model_version:{name}-renamed/1"}, timeout=TIMEOUT).json()
    assert len(up["nodes"]) == 4

    # Bad input names the field.
    r = requests.get(f"{v1}/lineage", params={"node": "churn/1"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "node", r.text
    r = requests.get(f"{v1}/lineage", params={"node": "model_version:nope/1"}, timeout=TIMEOUT)
    assert r.status_code == 404
    r = requests.post(f"{v1}/lineage", json={"edges": [{"from": "run:x", "to": "dataset:never", "relation": "input"}]}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "edges[0].from", r.text
    r = requests.get(f"{v1}/lineage", params={"node": ds_key, "direction": "sideways"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "direction"


def test_model_card_is_generated_editable_and_rendered(tracking_uri, client, unique):
    name = f"card-{unique}"
    _, _, run_id, _, _ = _train_and_register(client, unique, name)
    client.set_registered_model_alias(name, "champion", "1")
    v1 = _v1(tracking_uri)
    card = requests.get(f"{v1}/models/{name}/versions/@champion/card", timeout=TIMEOUT).json()
    assert card["model"]["name"] == name and card["model"]["version"] == 1
    assert card["model"]["aliases"] == ["champion"]
    assert card["training"]["run_id"] == run_id
    assert card["training"]["params"] == {"C": "0.5", "features": "3"}
    assert card["evaluation"]["metrics"] == {"accuracy": 0.87, "auc": 0.91}
    assert [d["name"] for d in card["training_data"]["datasets"]] == ["churn-events"]
    assert card["integrity"]["files"] >= 3
    assert card["intended_use"] is None and card["edited"] is None

    r = requests.patch(f"{v1}/models/{name}/versions/1/card", json={
        "intended_use": "Rank accounts by churn risk for the retention team's weekly call list.",
        "limitations": "Trained on consumer accounts only; not for business accounts.",
        "owners": ["ana@example.com"],
    }, headers={"X-Keel-User": "ana"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["owners"] == ["ana@example.com"]
    assert card["edited"]["updated_by"] == "ana"
    # null removes a field; other fields stay.
    card = requests.patch(f"{v1}/models/{name}/versions/1/card", json={"limitations": None}, timeout=TIMEOUT).json()
    assert card["limitations"] is None and card["intended_use"].startswith("Rank accounts")

    md = requests.get(f"{v1}/models/{name}/versions/1/card", params={"format": "md"}, timeout=TIMEOUT)
    assert md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith(f"# Model card: {name} v1")
    for needle in ("## Intended use", "Rank accounts", "churn-events", "| auc | 0.9100 |", "## Signature", "scikit-learn" if "scikit-learn" in md.text else "## Dependencies"):
        assert needle in md.text, needle
    html = requests.get(f"{v1}/models/{name}/versions/1/card", params={"format": "html"}, timeout=TIMEOUT)
    assert html.headers["content-type"].startswith("text/html")
    assert "<h2>Intended use</h2>" in html.text and "<script" not in html.text

    # Bad edits name the field and change nothing.
    r = requests.patch(f"{v1}/models/{name}/versions/1/card", json={"intended_usage": "x"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "intended_usage", r.text
    r = requests.patch(f"{v1}/models/{name}/versions/1/card", json={"owners": "ana"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "owners"
    r = requests.patch(f"{v1}/models/{name}/versions/1/card", json={"intended_use": "<script>alert(1)</script>"}, timeout=TIMEOUT)
    assert r.status_code == 200
    html = requests.get(f"{v1}/models/{name}/versions/1/card", params={"format": "html"}, timeout=TIMEOUT).text
    assert "<script>" not in html and "&lt;script&gt;" in html
    r = requests.get(f"{v1}/models/{name}/versions/1/card", params={"format": "pdf"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "format"
    r = requests.get(f"{v1}/models/{name}/versions/7/card", timeout=TIMEOUT)
    assert r.status_code == 404
    r = requests.get(f"{v1}/models/{name}/versions/@nope/card", timeout=TIMEOUT)
    assert r.status_code == 400


def test_checkpoints_and_alias_history(tracking_uri, client, unique):
    name = f"ckpt-{unique}"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, "s3://bucket/models/x")
    v1 = _v1(tracking_uri)
    for step, loss in ((100, 0.52), (200, 0.41), (300, 0.44)):
        r = requests.post(f"{v1}/models/{name}/versions/2/checkpoints", json={"step": step, "metrics": {"val_loss": loss}, "artifact_uri": f"s3://bucket/ckpt/{step}"}, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
    cps = requests.get(f"{v1}/models/{name}/versions/2/checkpoints", timeout=TIMEOUT).json()["checkpoints"]
    assert [c["step"] for c in cps] == [100, 200, 300]
    assert min(cps, key=lambda c: c["metrics"]["val_loss"])["artifact_uri"] == "s3://bucket/ckpt/200"
    for bad, field in (({"metrics": {}}, "body"), ({"step": -1}, "step"), ({"step": 1, "metrics": {"loss": "low"}}, "metrics.loss")):
        r = requests.post(f"{v1}/models/{name}/versions/2/checkpoints", json=bad, timeout=TIMEOUT)
        assert r.status_code == 400, r.text
        assert r.json()["error"].get("field") == field, r.text

    api = tracking_uri + "/api/2.0/mlflow"
    for version, who in (("1", "ana"), ("2", "bo")):
        r = requests.post(f"{api}/registered-models/alias", json={"name": name, "alias": "champion", "version": version}, headers={"X-Keel-User": who}, timeout=TIMEOUT)
        assert r.status_code == 200
    # Setting the same target again is not a move.
    requests.post(f"{api}/registered-models/alias", json={"name": name, "alias": "champion", "version": "2"}, timeout=TIMEOUT)
    requests.delete(f"{api}/registered-models/alias", json={"name": name, "alias": "champion"}, auth=("cy", "pw"), timeout=TIMEOUT)
    hist = requests.get(f"{v1}/models/{name}/aliases/history", timeout=TIMEOUT).json()["history"]
    assert [(h["kind"], h["alias"], h["previous_version"], h["version"], h["actor"]) for h in hist] == [
        ("alias", "champion", None, 1, "ana"),
        ("alias", "champion", 1, 2, "bo"),
        ("alias", "champion", 2, None, "cy"),
    ]
    # Older clients' stage transitions are recorded too, with what they archived.
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    hist = requests.get(f"{v1}/models/{name}/aliases/history", timeout=TIMEOUT).json()["history"]
    assert [(h["kind"], h["alias"], h["version"], h["note"]) for h in hist[3:]] == [
        ("stage", "Production", 1, "from None"),
        ("stage", "Production", 2, "from None; archived version(s) 1"),
    ]
    assert requests.get(f"{v1}/models/nope-{unique}/aliases/history", timeout=TIMEOUT).status_code == 404


RETRAIN = """\
lifecycle: {name}
initial: serving
states:
  serving:
    on: {{retrain: retraining}}
  retraining:
    on: {{trained: serving}}
"""


def test_retraining_policy_triggers_lifecycle_events(tracking_uri, client, unique):
    name = f"retrain-{unique}"
    lc = f"retrain-lc-{unique}"
    client.create_registered_model(name)
    v1 = _v1(tracking_uri)
    assert requests.post(f"{v1}/lifecycles", data=RETRAIN.format(name=lc).encode(), timeout=TIMEOUT).status_code == 201
    policy = {
        "schedule": "0 3 * * 1",
        "triggers": [
            {"kind": "drift", "on": "tenure", "threshold": 0.2},
            {"kind": "metric_decay", "on": "auc", "threshold": 0.05},
            {"kind": "data_arrival"},
        ],
        "lifecycle": lc,
    }
    r = requests.put(f"{v1}/models/{name}/retraining", json=policy, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    got = r.json()
    # Next Monday 03:00 UTC.
    assert got["next_due_at"].endswith("T03:00:00.000Z")
    assert time.gmtime(got["next_due"] / 1000).tm_wday == 0

    # Below the threshold: nothing fires.
    r = requests.post(f"{v1}/models/{name}/retraining/trigger", json={"kind": "drift", "on": "tenure", "value": 0.1}, timeout=TIMEOUT)
    assert r.json()["fired"] is False
    r = requests.post(f"{v1}/models/{name}/retraining/trigger", json={"kind": "drift", "on": "spend", "value": 0.9}, timeout=TIMEOUT)
    assert r.json()["fired"] is False
    # Above it: the lifecycle instance (started for the model) moves.
    r = requests.post(f"{v1}/models/{name}/retraining/trigger", json={"kind": "drift", "on": "tenure", "value": 0.31}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["fired"] is True, r.text
    inst = requests.get(f"{v1}/lifecycles/{lc}/instances/{name}", timeout=TIMEOUT).json()
    assert inst["state"] == "retraining"
    hist = requests.get(f"{v1}/lifecycles/{lc}/history/{name}", timeout=TIMEOUT).json()["history"]
    assert hist[0]["event"] == "retrain" and hist[0]["data"]["reason"] == "drift" and hist[0]["data"]["value"] == 0.31
    assert requests.get(f"{v1}/models/{name}/retraining", timeout=TIMEOUT).json()["last_fired"] is not None

    # Bad policies name the field.
    for bad, field in (
        ({**policy, "schedule": "61 * * * *"}, "schedule"),
        ({**policy, "triggers": [{"kind": "moon_phase"}]}, "triggers[0].kind"),
        ({**policy, "triggers": [{"kind": "drift"}]}, "triggers[0].threshold"),
        ({**policy, "lifecycle": f"missing-{unique}"}, "lifecycle"),
        ({"lifecycle": lc}, "schedule"),
        ({**policy, "cadence": "weekly"}, "body"),
    ):
        r = requests.put(f"{v1}/models/{name}/retraining", json=bad, timeout=TIMEOUT)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"].get("field") == field, (bad, r.text)
    r = requests.post(f"{v1}/models/{name}/retraining/trigger", json={"kind": "vibes"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "kind"
    assert requests.delete(f"{v1}/models/{name}/retraining", timeout=TIMEOUT).status_code == 200
    assert requests.get(f"{v1}/models/{name}/retraining", timeout=TIMEOUT).status_code == 404


ONNX_FIXTURE = __import__("pathlib").Path(__file__).resolve().parents[2] / "crates/keel-registry/tests/fixtures/onnx/dynamic_batch.onnx"


def test_signature_and_dependencies_are_captured_at_registration(tracking_uri, client, unique):
    name = f"sig-{unique}"
    _train_and_register(client, unique, name)
    v1 = _v1(tracking_uri)
    detail = requests.get(f"{v1}/models/{name}/versions/1", timeout=TIMEOUT).json()
    sig = detail["signature"]
    assert sig["source"] == "mlmodel"
    # infer_signature on a float ndarray gives one tensor input.
    assert sig["inputs"][0]["kind"] == "tensor" and sig["inputs"][0]["type"] == "float64"
    assert sig["inputs"][0]["shape"] == [-1, 3]
    deps = detail["dependencies"]
    assert deps["mlflow_version"] == mlflow.__version__
    sk = next(f for f in deps["flavors"] if f["name"] == "sklearn")
    import sklearn

    assert sk["version"] == sklearn.__version__
    assert any(r.startswith("scikit-learn") for r in deps["requirements"]), deps["requirements"]
    assert deps["python_env"]["python"].startswith("3.")

    # An explicit signature replaces it; a malformed one names the field.
    good = {"inputs": [{"name": "tenure", "type": "double"}, {"name": "plan", "type": "string", "required": False}],
            "outputs": [{"type": "long"}]}
    r = requests.put(f"{v1}/models/{name}/versions/1/signature", json=good, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json()["signature"]["source"] == "explicit"
    got = requests.get(f"{v1}/models/{name}/versions/1/signature", timeout=TIMEOUT).json()["signature"]
    assert [c["name"] for c in got["inputs"]] == ["tenure", "plan"] and got["inputs"][1]["required"] is False
    bad = {"inputs": [{"name": "tenure", "type": "doubel"}, {"name": "tenure", "type": "double"}]}
    r = requests.put(f"{v1}/models/{name}/versions/1/signature", json=bad, timeout=TIMEOUT)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["field"] == "inputs[0].type" and "doubel" in err["message"]
    assert len(err["problems"]) == 2
    assert requests.get(f"{v1}/models/{name}/versions/1/signature", timeout=TIMEOUT).json()["signature"]["source"] == "explicit"


def test_onnx_graph_gives_the_signature_and_bad_metadata_refuses_registration(tracking_uri, client, unique):
    api = tracking_uri + "/api/2.0/mlflow"
    run = client.create_run(client.create_experiment(f"onnx-{unique}"))
    base = f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{run.info.artifact_uri.split('mlflow-artifacts:/', 1)[1]}"
    assert requests.put(f"{base}/onnx_model/model.onnx", data=ONNX_FIXTURE.read_bytes(), timeout=TIMEOUT).status_code == 200
    name = f"onnx-{unique}"
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/onnx_model", run_id=run.info.run_id)
    sig = requests.get(f"{tracking_uri}/v1/models/{name}/versions/{mv.version}/signature", timeout=TIMEOUT).json()["signature"]
    assert sig["source"] == "onnx"
    assert [(c["name"], c["type"], c.get("shape")) for c in sig["inputs"]] == [
        ("X", "float32", [-1, 4]), ("ids", "int64", [-1, 3]), ("flag", "bool", []),
    ]

    # A malformed MLmodel is refused with the file and field named, and
    # nothing is registered.
    assert requests.put(f"{base}/broken/MLmodel", data=b"flavors: [1, 2\n", timeout=TIMEOUT).status_code == 200
    r = requests.post(f"{api}/model-versions/create", json={"name": name, "source": f"runs:/{run.info.run_id}/broken"}, timeout=TIMEOUT)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "MLmodel" in r.json()["message"]
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == [mv.version]
