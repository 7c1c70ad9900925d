"""MLflow 3's logged models: ``log_model`` goes through the logged-models
endpoints, and ``runs:/`` and ``models:/`` URIs resolve through them. Valid
against ``mlflow server`` and Keel alike."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import requests
from sklearn.linear_model import LogisticRegression

TIMEOUT = 60


class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return model_input + self.n


def test_sklearn_log_model_and_load_back(tracking_uri, client, unique):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    mlflow.set_experiment(f"logged-{unique}")
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("train_acc", float(model.score(x, y)))
        info = mlflow.sklearn.log_model(model, name="model", input_example=x[:2])
    assert info.model_id.startswith("m-")
    # The logged model record: ready, tied to the run, with the run's params.
    logged = client.get_logged_model(info.model_id)
    assert logged.name == "model"
    assert logged.source_run_id == run.info.run_id
    assert str(logged.status) in ("READY", "LoggedModelStatus.READY") or logged.status.name == "READY"
    assert logged.params.get("C") == "1.0"
    assert logged.artifact_location.endswith(f"/models/{info.model_id}/artifacts")
    # The run lists the model among its outputs.
    got = client.get_run(run.info.run_id)
    assert [o.model_id for o in got.outputs.model_outputs] == [info.model_id]
    # Loading through all three URI forms predicts exactly like the original.
    want = model.predict_proba(x[:20])[:, 1]
    for uri in (f"runs:/{run.info.run_id}/model", f"models:/{info.model_id}", info.model_uri):
        loaded = mlflow.sklearn.load_model(uri)
        np.testing.assert_allclose(loaded.predict_proba(x[:20])[:, 1], want)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(pyfunc.predict(x[:20]), model.predict(x[:20]))
    # Its files are listed under the model's own artifact root.
    files = {f.path for f in mlflow.artifacts.list_artifacts(f"models:/{info.model_id}")}
    assert {"MLmodel", "requirements.txt", "python_env.yaml"} <= files, files


def test_pyfunc_model_search_and_tags(tracking_uri, client, unique):
    exp_id = client.create_experiment(f"pyfunc-{unique}")
    mlflow.set_experiment(experiment_id=exp_id)
    with mlflow.start_run() as run:
        first = mlflow.pyfunc.log_model(name="adder", python_model=AddN(2))
        second = mlflow.pyfunc.log_model(name="other", python_model=AddN(5))
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/adder")
    np.testing.assert_array_equal(loaded.predict(np.array([1.0, 2.0])), np.array([3.0, 4.0]))
    found = client.search_logged_models(experiment_ids=[exp_id], filter_string="name = 'other'")
    assert [m.model_id for m in found] == [second.model_id]
    both = client.search_logged_models(experiment_ids=[exp_id], order_by=[{"field_name": "name"}])
    assert [m.name for m in both] == ["adder", "other"]
    client.set_logged_model_tags(first.model_id, {"stage": "candidate"})
    assert client.get_logged_model(first.model_id).tags.get("stage") == "candidate"
    client.delete_logged_model_tag(first.model_id, "stage")
    assert "stage" not in client.get_logged_model(first.model_id).tags


def test_unknown_logged_model_is_404(api):
    r = requests.get(f"{api}/logged-models/m-{'0' * 32}", timeout=TIMEOUT)
    assert r.status_code == 404, r.text
    assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
