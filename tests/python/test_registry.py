"""Model registry: registered models, model versions, aliases and stages,
driven through the real mlflow client (``MlflowClient`` and the fluent API)
and raw HTTP where the client hides the wire. Valid against ``mlflow server``
(3.x) and Keel alike.

Wire shapes recorded from the reference ``mlflow server`` 3.x (compact; keys in
the order the server sends them; timestamps are epoch milliseconds as JSON
numbers; ``version`` is always a JSON *string*)::

  POST /registered-models/create, GET /registered-models/get, PATCH .../update,
  POST .../rename  ->  {"registered_model": RM}
    RM (fresh, created with description + tags):
      {"name": "m", "creation_timestamp": 1795906774833,
       "last_updated_timestamp": 1795906774833, "description": "d",
       "tags": [{"key": "t", "value": "v"}]}
    RM (with versions and aliases; no description/tags were set, so those
    keys are absent):
      {"name": "m", "creation_timestamp": ..., "last_updated_timestamp": ...,
       "latest_versions": [MV, ...],          # newest version per stage
       "aliases": [{"alias": "b", "version": "1"},
                   {"alias": "champion", "version": "1"}]}   # sorted by alias
    Empty repeated fields (tags, latest_versions, aliases) and an unset
    description are OMITTED, not sent as [] / "".

  POST /model-versions/create, GET /model-versions/get, PATCH .../update,
  POST .../transition-stage  ->  {"model_version": MV}
  GET /registered-models/alias  ->  {"model_version": MV}
    MV: {"name": "m", "version": "1", "creation_timestamp": ...,
         "last_updated_timestamp": ..., "current_stage": "None",
         "description": "vd",              # "" when none given (always sent)
         "source": "mlflow-artifacts:/1/<run>/artifacts/model",
         "run_id": "<run>",                # "" when none given (always sent)
         "status": "READY",
         "tags": [{"key": "a", "value": "b"}],   # omitted when empty
         "run_link": "",                   # always sent
         "aliases": ["b", "champion"]}     # omitted when empty
    latest_versions entries inside RM never carry "aliases".
    MLflow 3's mlflow.register_model / log_model(registered_model_name=...)
    send {"name", "source": "models:/m-<id>", "run_id"?, "model_id": "m-<id>"}
    to model-versions/create (log_model omits run_id). The response MV has
    source "models:/m-<id>", NO model_id key, and run_id filled in from the
    logged model's source_run_id even when the request had none.

  GET /registered-models/search  ->
    {"registered_models": [RM, ...], "next_page_token": "eyJvZmZzZXQiOiAyfQ=="}
    next_page_token is a top-level sibling, present only while more pages
    remain; with no match at all the body is just {}.
  GET /model-versions/search  ->
    {"model_versions": [MV, ...], "next_page_token": "..."}  (same rules;
    default order: version DESC; MVs here carry no "aliases").
  POST /registered-models/get-latest-versions -> {"model_versions": [MV...]} or {}
  GET /model-versions/get-download-uri -> {"artifact_uri": "<the version's source>"}
    except for a "models:/m-<id>" source, which resolves to the logged model's
    artifact_uri: {"artifact_uri": "mlflow-artifacts:/1/models/m-<id>/artifacts"}
  POST/DELETE registered-models/alias, set-tag, delete-tag, delete,
  model-versions/set-tag, delete-tag, delete  ->  {}
  Both search endpoints are GET only (POST -> 405).

  Errors: {"error_code": "...", "message": "...", "sqlstate": "KAM00",
           "error_class": "..."}  (only error_code/message are asserted), e.g.
    400 {"error_code": "RESOURCE_ALREADY_EXISTS",
         "message": "Registered Model (name=m1) already exists."}
    404 {"error_code": "RESOURCE_DOES_NOT_EXIST",
         "message": "Registered Model with name=nope not found"}
    404 {"error_code": "RESOURCE_DOES_NOT_EXIST",
         "message": "Model Version (name=m1, version=7) not found"}
    400 {"error_code": "INVALID_PARAMETER_VALUE",
         "message": "Missing value for required parameter 'name'. ..."}
    400 {"error_code": "INVALID_PARAMETER_VALUE",
         "message": "Version alias name 'v1' is reserved."}
    400 {"error_code": "INVALID_PARAMETER_VALUE",
         "message": "'latest' alias name (case insensitive) is reserved."}
    400 {"error_code": "INVALID_PARAMETER_VALUE",
         "message": "Registered model alias nope not found."}   # unknown alias
    400 {"error_code": "INVALID_PARAMETER_VALUE",
         "message": "Parameter 'version' must be an integer, got 'abc'."}
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
import requests
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

TIMEOUT = 60


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _training_data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(120, 3))
    y = (x[:, 0] - 0.7 * x[:, 2] > 0).astype(int)
    return x, y


def _fit():
    x, y = _training_data()
    return LogisticRegression().fit(x, y), x


def _error(resp, status, code):
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["error_code"] == code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def _expect_mlflow_error(fn, code, status):
    with pytest.raises(MlflowException) as exc_info:
        fn()
    assert exc_info.value.error_code == code, str(exc_info.value)
    assert exc_info.value.get_http_status_code() == status
    return exc_info.value


def _new_run(client, unique, suffix="runs"):
    exp_id = client.create_experiment(f"registry-{suffix}-{unique}")
    return client.create_run(exp_id)


def _rest_get(api, path, **params):
    r = requests.get(f"{api}/{path}", params=params, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------
# 1. end to end
# --------------------------------------------------------------------------


def test_register_model_alias_and_load_predicts_identically(tracking_uri, client, api, unique):
    model, x = _fit()
    name = f"e2e-{unique}"
    mlflow.set_experiment(f"registry-e2e-{unique}")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model")
    run_id = run.info.run_id

    mv = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert mv.name == name
    assert mv.version == "1"
    assert mv.run_id == run_id
    assert mv.status == "READY"
    assert mv.current_stage == "None"
    # MLflow 3 registers the logged model, not the run's artifact path.
    assert mv.source == f"models:/{info.model_id}"
    logged = client.get_logged_model(info.model_id)
    assert client.get_model_version_download_uri(name, "1") == logged.artifact_location

    client.set_registered_model_alias(name, "champion", mv.version)
    by_alias = client.get_model_version_by_alias(name, "champion")
    assert by_alias.version == "1"
    assert by_alias.run_id == run_id
    assert by_alias.aliases == ["champion"]

    rm = client.get_registered_model(name)
    assert rm.aliases == {"champion": "1"}

    # Wire shapes, for the record (run with -s to see them).
    print("\nregistered_model:", json.dumps(_rest_get(api, "registered-models/get", name=name)))
    mv_json = _rest_get(api, "model-versions/get", name=name, version="1")
    print("model_version:", json.dumps(mv_json))
    print(
        "by alias:",
        json.dumps(_rest_get(api, "registered-models/alias", name=name, alias="champion")),
    )
    print(
        "download uri:",
        json.dumps(_rest_get(api, "model-versions/get-download-uri", name=name, version="1")),
    )

    want_labels = model.predict(x[:25])
    for uri in (f"models:/{name}@champion", f"models:/{name}/1"):
        loaded = mlflow.pyfunc.load_model(uri)
        np.testing.assert_array_equal(np.asarray(loaded.predict(x[:25])), want_labels)
    want_proba = model.predict_proba(x[:25])
    for uri in (f"models:/{name}@champion", f"models:/{name}/1"):
        np.testing.assert_allclose(
            mlflow.sklearn.load_model(uri).predict_proba(x[:25]), want_proba
        )

    # A second registration of the same run's model becomes version 2.
    mv2 = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert mv2.version == "2"
    assert client.get_model_version_by_alias(name, "champion").version == "1"


def test_log_model_with_registered_model_name(tracking_uri, client, api, unique):
    model, x = _fit()
    name = f"logreg-{unique}"
    mlflow.set_experiment(f"registry-logreg-{unique}")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    assert str(info.registered_model_version) == "1"

    versions = client.search_model_versions(f"name='{name}'")
    assert [v.version for v in versions] == ["1"]
    # log_model sends no run_id to model-versions/create, only source
    # "models:/<model_id>" and model_id: the server fills run_id in from the
    # logged model's source run.
    assert versions[0].run_id == run.info.run_id
    assert versions[0].source == f"models:/{info.model_id}"
    assert versions[0].status == "READY"
    wire = _rest_get(api, "model-versions/get", name=name, version="1")["model_version"]
    assert wire["run_id"] == run.info.run_id

    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    np.testing.assert_array_equal(np.asarray(loaded.predict(x[:25])), model.predict(x[:25]))

    # Registering again under the same name adds version 2 to the existing model.
    with mlflow.start_run():
        info2 = mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    assert str(info2.registered_model_version) == "2"
    latest = mlflow.pyfunc.load_model(f"models:/{name}/2")
    np.testing.assert_array_equal(np.asarray(latest.predict(x[:25])), model.predict(x[:25]))


# --------------------------------------------------------------------------
# 2. registered models
# --------------------------------------------------------------------------


def test_registered_model_create_get_update_tags(tracking_uri, client, api, unique):
    name = f"rm-{unique}"
    created = client.create_registered_model(
        name, tags={"team": "ml", "tier": "gold"}, description="first"
    )
    assert created.name == name
    assert created.description == "first"
    assert created.tags == {"team": "ml", "tier": "gold"}
    assert created.creation_timestamp > 0

    got = client.get_registered_model(name)
    assert got.name == name
    assert got.description == "first"
    assert got.tags == {"team": "ml", "tier": "gold"}
    assert got.latest_versions == []
    assert got.aliases == {}

    updated = client.update_registered_model(name, description="second")
    assert updated.description == "second"
    assert client.get_registered_model(name).description == "second"

    client.set_registered_model_tag(name, "owner", "alice")
    client.set_registered_model_tag(name, "tier", "silver")  # overwrite
    assert client.get_registered_model(name).tags == {
        "team": "ml",
        "tier": "silver",
        "owner": "alice",
    }
    client.delete_registered_model_tag(name, "team")
    assert client.get_registered_model(name).tags == {"tier": "silver", "owner": "alice"}

    # Raw wire: the JSON shape of a registered model.
    body = _rest_get(api, "registered-models/get", name=name)
    rm = body["registered_model"]
    assert rm["name"] == name
    assert rm["description"] == "second"
    assert isinstance(rm["creation_timestamp"], int)
    assert isinstance(rm["last_updated_timestamp"], int)
    assert rm["last_updated_timestamp"] >= rm["creation_timestamp"]
    assert sorted(rm["tags"], key=lambda t: t["key"]) == [
        {"key": "owner", "value": "alice"},
        {"key": "tier", "value": "silver"},
    ]
    # No versions and no aliases yet: those keys are omitted, not [].
    assert "latest_versions" not in rm
    assert "aliases" not in rm


def test_registered_model_without_description_or_tags_omits_them(tracking_uri, api, unique):
    name = f"bare-{unique}"
    r = requests.post(f"{api}/registered-models/create", json={"name": name}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    rm = r.json()["registered_model"]
    assert rm["name"] == name
    assert set(rm) == {"name", "creation_timestamp", "last_updated_timestamp"}, rm


def test_rename_registered_model(tracking_uri, client, api, unique):
    old, new = f"old-{unique}", f"new-{unique}"
    run = _new_run(client, unique, "rename")
    client.create_registered_model(old, description="keep me")
    client.create_model_version(old, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(old, "prod", "1")

    client.rename_registered_model(old, new)  # the client returns None
    got = client.get_registered_model(new)
    assert got.description == "keep me"
    assert got.aliases == {"prod": "1"}
    # Versions and aliases follow the model to its new name.
    assert client.get_model_version(new, "1").name == new
    assert client.get_model_version_by_alias(new, "prod").version == "1"

    _expect_mlflow_error(
        lambda: client.get_registered_model(old), "RESOURCE_DOES_NOT_EXIST", 404
    )
    r = requests.get(f"{api}/registered-models/get", params={"name": old}, timeout=TIMEOUT)
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = requests.get(
        f"{api}/model-versions/get", params={"name": old, "version": "1"}, timeout=TIMEOUT
    )
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")


def test_rename_via_rest_returns_the_renamed_model(tracking_uri, client, api, unique):
    old, new = f"rold-{unique}", f"rnew-{unique}"
    client.create_registered_model(old, tags={"a": "b"})
    r = requests.post(
        f"{api}/registered-models/rename", json={"name": old, "new_name": new}, timeout=TIMEOUT
    )
    assert r.status_code == 200, r.text
    rm = r.json()["registered_model"]
    assert rm["name"] == new
    assert rm["tags"] == [{"key": "a", "value": "b"}]


def test_rename_onto_existing_name_is_rejected(tracking_uri, client, api, unique):
    a, b = f"ra-{unique}", f"rb-{unique}"
    client.create_registered_model(a)
    client.create_registered_model(b)
    r = requests.post(
        f"{api}/registered-models/rename", json={"name": a, "new_name": b}, timeout=TIMEOUT
    )
    _error(r, 400, "RESOURCE_ALREADY_EXISTS")
    # Both still exist under their own names.
    assert client.get_registered_model(a).name == a
    assert client.get_registered_model(b).name == b


def test_search_registered_models_filter_order_and_paging(tracking_uri, client, api, unique):
    prefix = f"srch-{unique}-"
    names = [f"{prefix}{s}" for s in ("delta", "alpha", "echo", "charlie", "bravo")]
    for n in names:
        client.create_registered_model(n)
    client.create_registered_model(f"other-{unique}")

    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'")
    assert sorted(m.name for m in found) == sorted(names)

    asc = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"]
    )
    assert [m.name for m in asc] == sorted(names)
    desc = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"]
    )
    assert [m.name for m in desc] == sorted(names, reverse=True)

    exact = client.search_registered_models(filter_string=f"name = '{prefix}echo'")
    assert [m.name for m in exact] == [f"{prefix}echo"]

    # Paging with max_results + page_token walks every match exactly once.
    seen, token, pages = [], None, 0
    while True:
        page = client.search_registered_models(
            filter_string=f"name LIKE '{prefix}%'",
            max_results=2,
            order_by=["name"],
            page_token=token,
        )
        pages += 1
        assert len(page) <= 2
        seen += [m.name for m in page]
        token = page.token
        if not token:
            break
    assert seen == sorted(names)
    assert pages == 3

    # Raw wire: next_page_token is a top-level sibling of registered_models,
    # present only while there are more results.
    params = {"filter": f"name LIKE '{prefix}%'", "max_results": 2, "order_by": "name ASC"}
    r = requests.get(f"{api}/registered-models/search", params=params, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    first = r.json()
    print("\nsearch registered models page 1:", json.dumps(first))
    assert [m["name"] for m in first["registered_models"]] == sorted(names)[:2]
    assert isinstance(first["next_page_token"], str) and first["next_page_token"]
    params2 = dict(params, page_token=first["next_page_token"])
    second = _rest_get(api, "registered-models/search", **params2)
    assert [m["name"] for m in second["registered_models"]] == sorted(names)[2:4]
    params3 = dict(params, page_token=second["next_page_token"])
    last = _rest_get(api, "registered-models/search", **params3)
    assert [m["name"] for m in last["registered_models"]] == sorted(names)[4:]
    assert "next_page_token" not in last or not last["next_page_token"]

    # No match: an empty body (or an empty list), never an error.
    none = _rest_get(api, "registered-models/search", filter=f"name = 'missing-{unique}'")
    assert none.get("registered_models", []) == []
    assert not none.get("next_page_token")


def test_delete_registered_model(tracking_uri, client, api, unique):
    name = f"del-{unique}"
    run = _new_run(client, unique, "delete")
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    r = requests.delete(f"{api}/registered-models/delete", json={"name": name}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json() == {}

    err = _expect_mlflow_error(
        lambda: client.get_registered_model(name), "RESOURCE_DOES_NOT_EXIST", 404
    )
    assert name in err.message
    r = requests.get(f"{api}/registered-models/get", params={"name": name}, timeout=TIMEOUT)
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    # Its versions went with it.
    r = requests.get(
        f"{api}/model-versions/get", params={"name": name, "version": "1"}, timeout=TIMEOUT
    )
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    assert client.search_model_versions(f"name='{name}'") == []
    # Deleting again is a 404 too.
    r = requests.delete(f"{api}/registered-models/delete", json={"name": name}, timeout=TIMEOUT)
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    # The name is free again.
    assert client.create_registered_model(name).name == name


# --------------------------------------------------------------------------
# 3. model versions
# --------------------------------------------------------------------------


def test_model_version_lifecycle(tracking_uri, client, api, unique):
    name = f"mv-{unique}"
    run = _new_run(client, unique, "mv")
    run_id = run.info.run_id
    source = f"{run.info.artifact_uri}/model"
    client.create_registered_model(name)

    mv = client.create_model_version(
        name, source, run_id=run_id, tags={"k1": "v1", "k2": "v2"}, description="v1 desc"
    )
    assert mv.name == name
    assert mv.version == "1"
    assert mv.source == source
    assert mv.run_id == run_id
    assert mv.description == "v1 desc"
    assert mv.tags == {"k1": "v1", "k2": "v2"}
    assert mv.status == "READY"
    assert mv.current_stage == "None"

    got = client.get_model_version(name, "1")
    assert (got.version, got.source, got.run_id, got.status, got.current_stage) == (
        "1",
        source,
        run_id,
        "READY",
        "None",
    )
    assert got.tags == {"k1": "v1", "k2": "v2"}

    # Raw wire: version is a JSON string, stage the string "None".
    body = _rest_get(api, "model-versions/get", name=name, version="1")
    wire = body["model_version"]
    assert wire["name"] == name
    assert wire["version"] == "1" and isinstance(wire["version"], str)
    assert wire["current_stage"] == "None"
    assert wire["status"] == "READY"
    assert wire["source"] == source
    assert wire["run_id"] == run_id
    assert wire["description"] == "v1 desc"
    assert isinstance(wire["creation_timestamp"], int)
    assert isinstance(wire["last_updated_timestamp"], int)
    assert sorted(wire["tags"], key=lambda t: t["key"]) == [
        {"key": "k1", "value": "v1"},
        {"key": "k2", "value": "v2"},
    ]
    assert "aliases" not in wire  # no aliases yet: key omitted

    # Versions number up from 1 per registered model.
    mv2 = client.create_model_version(name, source, run_id=run_id)
    assert mv2.version == "2"
    assert mv2.description == ""
    assert mv2.tags == {}

    updated = client.update_model_version(name, "1", description="better desc")
    assert updated.description == "better desc"
    assert client.get_model_version(name, "1").description == "better desc"

    client.set_model_version_tag(name, "1", "k3", "v3")
    client.set_model_version_tag(name, "1", "k1", "changed")
    assert client.get_model_version(name, "1").tags == {"k1": "changed", "k2": "v2", "k3": "v3"}
    client.delete_model_version_tag(name, "1", "k2")
    assert client.get_model_version(name, "1").tags == {"k1": "changed", "k3": "v3"}

    assert client.get_model_version_download_uri(name, "1") == source
    uri_body = _rest_get(api, "model-versions/get-download-uri", name=name, version="1")
    assert uri_body == {"artifact_uri": source}

    # Stages (the older, deprecated API).
    staged = client.transition_model_version_stage(name, "1", "Staging")
    assert staged.current_stage == "Staging"
    assert client.get_model_version(name, "1").current_stage == "Staging"
    assert client.get_model_version(name, "2").current_stage == "None"
    latest_staging = client.get_latest_versions(name, stages=["Staging"])
    assert [v.version for v in latest_staging] == ["1"]
    rm = client.get_registered_model(name)
    assert sorted((v.current_stage, v.version) for v in rm.latest_versions) == [
        ("None", "2"),
        ("Staging", "1"),
    ]
    r = requests.post(
        f"{api}/model-versions/transition-stage",
        json={
            "name": name,
            "version": "2",
            "stage": "Nonsense",
            "archive_existing_versions": False,
        },
        timeout=TIMEOUT,
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")

    client.delete_model_version(name, "2")
    _expect_mlflow_error(
        lambda: client.get_model_version(name, "2"), "RESOURCE_DOES_NOT_EXIST", 404
    )
    assert [v.version for v in client.search_model_versions(f"name='{name}'")] == ["1"]
    # A new version after a delete does not reuse the deleted number.
    assert client.create_model_version(name, source, run_id=run_id).version == "3"


def test_search_model_versions_by_name_and_run_id(tracking_uri, client, api, unique):
    name = f"smv-{unique}"
    other = f"smv-other-{unique}"
    run_a = _new_run(client, unique, "smv-a")
    run_b = client.create_run(run_a.info.experiment_id)
    client.create_registered_model(name)
    client.create_registered_model(other)
    for run in (run_a, run_b, run_a):
        client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.create_model_version(
        other, f"{run_a.info.artifact_uri}/model", run_id=run_a.info.run_id
    )

    by_name = client.search_model_versions(f"name='{name}'")
    assert sorted(int(v.version) for v in by_name) == [1, 2, 3]
    assert {v.name for v in by_name} == {name}

    by_run = client.search_model_versions(f"run_id='{run_a.info.run_id}'")
    assert sorted((v.name, v.version) for v in by_run) == sorted(
        [(name, "1"), (name, "3"), (other, "1")]
    )
    both = client.search_model_versions(f"name='{name}' AND run_id='{run_b.info.run_id}'")
    assert [(v.name, v.version) for v in both] == [(name, "2")]

    # Raw wire: paging over model versions, next_page_token beside model_versions.
    r = requests.get(
        f"{api}/model-versions/search",
        params={"filter": f"name='{name}'", "max_results": 2},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    first = r.json()
    print("\nsearch model versions page 1:", json.dumps(first))
    assert len(first["model_versions"]) == 2
    assert all(isinstance(v["version"], str) for v in first["model_versions"])
    assert first["next_page_token"]
    rest = _rest_get(
        api,
        "model-versions/search",
        filter=f"name='{name}'",
        max_results=2,
        page_token=first["next_page_token"],
    )
    assert len(rest["model_versions"]) == 1
    assert not rest.get("next_page_token")
    versions = [v["version"] for v in first["model_versions"] + rest["model_versions"]]
    assert sorted(versions) == ["1", "2", "3"]

    none = _rest_get(api, "model-versions/search", filter=f"name='missing-{unique}'")
    assert none.get("model_versions", []) == []


def test_aliases(tracking_uri, client, api, unique):
    name = f"alias-{unique}"
    run = _new_run(client, unique, "alias")
    source = f"{run.info.artifact_uri}/model"
    client.create_registered_model(name)
    client.create_model_version(name, source, run_id=run.info.run_id)
    client.create_model_version(name, source, run_id=run.info.run_id)

    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    client.set_registered_model_alias(name, "backup", "1")

    rm = client.get_registered_model(name)
    assert rm.aliases == {"champion": "1", "challenger": "2", "backup": "1"}
    assert sorted(client.get_model_version(name, "1").aliases) == ["backup", "champion"]
    assert client.get_model_version(name, "2").aliases == ["challenger"]
    assert client.get_model_version_by_alias(name, "challenger").version == "2"

    # Raw wire: aliases on a registered model are [{alias, version}], on a
    # version a plain list of names.
    rm_wire = _rest_get(api, "registered-models/get", name=name)["registered_model"]
    assert sorted(rm_wire["aliases"], key=lambda a: a["alias"]) == [
        {"alias": "backup", "version": "1"},
        {"alias": "challenger", "version": "2"},
        {"alias": "champion", "version": "1"},
    ]
    mv_wire = _rest_get(api, "registered-models/alias", name=name, alias="champion")
    assert mv_wire["model_version"]["version"] == "1"
    assert sorted(mv_wire["model_version"]["aliases"]) == ["backup", "champion"]

    # Re-pointing an alias moves it.
    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_model_version(name, "1").aliases == ["backup"]

    client.delete_registered_model_alias(name, "champion")
    assert client.get_registered_model(name).aliases == {"challenger": "2", "backup": "1"}
    assert client.get_model_version(name, "2").aliases == ["challenger"]
    r = requests.get(
        f"{api}/registered-models/alias",
        params={"name": name, "alias": "champion"},
        timeout=TIMEOUT,
    )
    # MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE, not 404.
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    # Deleting an alias that is not set is a no-op success.
    r = requests.delete(
        f"{api}/registered-models/alias", json={"name": name, "alias": "champion"}, timeout=TIMEOUT
    )
    assert r.status_code == 200, r.text
    assert r.json() == {}

    # Deleting a version drops the aliases pointing at it.
    client.delete_model_version(name, "1")
    assert client.get_registered_model(name).aliases == {"challenger": "2"}


# --------------------------------------------------------------------------
# 4. bad input via raw HTTP
# --------------------------------------------------------------------------


def test_duplicate_registered_model_is_400(tracking_uri, api, unique):
    name = f"dup-{unique}"
    r = requests.post(f"{api}/registered-models/create", json={"name": name}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    r = requests.post(f"{api}/registered-models/create", json={"name": name}, timeout=TIMEOUT)
    body = _error(r, 400, "RESOURCE_ALREADY_EXISTS")
    print("\nduplicate:", json.dumps(body))


def test_duplicate_registered_model_via_client(tracking_uri, client, unique):
    name = f"dupc-{unique}"
    client.create_registered_model(name)
    _expect_mlflow_error(
        lambda: client.create_registered_model(name), "RESOURCE_ALREADY_EXISTS", 400
    )


def test_unknown_registered_model_is_404(tracking_uri, api, unique):
    name = f"nope-{unique}"
    calls = [
        ("GET", "registered-models/get", {"name": name}),
        ("PATCH", "registered-models/update", {"name": name, "description": "x"}),
        ("POST", "registered-models/rename", {"name": name, "new_name": f"{name}-2"}),
        ("DELETE", "registered-models/delete", {"name": name}),
        ("POST", "registered-models/set-tag", {"name": name, "key": "k", "value": "v"}),
        ("POST", "model-versions/create", {"name": name, "source": "s3://bucket/model"}),
        ("GET", "model-versions/get", {"name": name, "version": "1"}),
        ("GET", "registered-models/alias", {"name": name, "alias": "champion"}),
    ]
    for method, path, payload in calls:
        if method == "GET":
            r = requests.get(f"{api}/{path}", params=payload, timeout=TIMEOUT)
        else:
            r = requests.request(method, f"{api}/{path}", json=payload, timeout=TIMEOUT)
        body = _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
        if path == "registered-models/get":
            print("\nunknown model:", json.dumps(body))


def test_unknown_model_version_is_404(tracking_uri, client, api, unique):
    name = f"nov-{unique}"
    client.create_registered_model(name)
    calls = [
        ("GET", "model-versions/get", {"name": name, "version": "7"}),
        ("GET", "model-versions/get-download-uri", {"name": name, "version": "7"}),
        ("PATCH", "model-versions/update", {"name": name, "version": "7", "description": "x"}),
        (
            "POST",
            "model-versions/set-tag",
            {"name": name, "version": "7", "key": "k", "value": "v"},
        ),
        ("DELETE", "model-versions/delete", {"name": name, "version": "7"}),
        (
            "POST",
            "model-versions/transition-stage",
            {"name": name, "version": "7", "stage": "Staging", "archive_existing_versions": False},
        ),
        ("POST", "registered-models/alias", {"name": name, "alias": "champion", "version": "7"}),
    ]
    for method, path, payload in calls:
        if method == "GET":
            r = requests.get(f"{api}/{path}", params=payload, timeout=TIMEOUT)
        else:
            r = requests.request(method, f"{api}/{path}", json=payload, timeout=TIMEOUT)
        body = _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
        if path == "model-versions/get":
            print("\nunknown version:", json.dumps(body))
    _expect_mlflow_error(
        lambda: client.get_model_version(name, "7"), "RESOURCE_DOES_NOT_EXIST", 404
    )


def test_non_integer_version_is_400(tracking_uri, client, api, unique):
    name = f"badv-{unique}"
    client.create_registered_model(name)
    r = requests.get(
        f"{api}/model-versions/get", params={"name": name, "version": "abc"}, timeout=TIMEOUT
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("alias", ["v1", "V12", "latest", "LATEST", "Latest", "a/b", "a b"])
def test_invalid_alias_names_are_400(tracking_uri, client, api, unique, alias):
    name = f"badalias-{unique}"
    run = _new_run(client, unique, "badalias")
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    r = requests.post(
        f"{api}/registered-models/alias",
        json={"name": name, "alias": alias, "version": "1"},
        timeout=TIMEOUT,
    )
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    if alias in ("v1", "latest"):
        print(f"\nalias {alias!r}:", json.dumps(body))
    assert client.get_registered_model(name).aliases == {}


def test_alias_names_that_only_look_reserved_are_fine(tracking_uri, client, unique):
    name = f"okalias-{unique}"
    run = _new_run(client, unique, "okalias")
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    for alias in ("v1a", "version1", "latest-good", "my_alias-2"):
        client.set_registered_model_alias(name, alias, "1")
    assert set(client.get_registered_model(name).aliases) == {
        "v1a",
        "version1",
        "latest-good",
        "my_alias-2",
    }


@pytest.mark.parametrize(
    "method,path,payload",
    [
        ("POST", "registered-models/create", {}),
        ("POST", "registered-models/create", {"name": ""}),
        ("GET", "registered-models/get", {}),
        ("POST", "registered-models/rename", {"name": "x"}),
        ("POST", "model-versions/create", {"source": "s3://bucket/model"}),
        ("GET", "model-versions/get", {"version": "1"}),
        ("POST", "registered-models/alias", {"name": "x", "version": "1"}),
    ],
    ids=[
        "create-no-name",
        "create-empty-name",
        "get-no-name",
        "rename-no-new-name",
        "version-create-no-name",
        "version-get-no-name",
        "alias-no-alias",
    ],
)
def test_missing_required_parameter_is_400(tracking_uri, api, method, path, payload):
    if method == "GET":
        r = requests.get(f"{api}/{path}", params=payload, timeout=TIMEOUT)
    else:
        r = requests.request(method, f"{api}/{path}", json=payload, timeout=TIMEOUT)
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    if path == "registered-models/create" and not payload:
        print("\nmissing name:", json.dumps(body))


def test_model_version_missing_source_and_version_are_400(tracking_uri, client, api, unique):
    name = f"miss-{unique}"
    client.create_registered_model(name)
    r = requests.post(f"{api}/model-versions/create", json={"name": name}, timeout=TIMEOUT)
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    r = requests.get(f"{api}/model-versions/get", params={"name": name}, timeout=TIMEOUT)
    _error(r, 400, "INVALID_PARAMETER_VALUE")


def test_invalid_registered_model_name_and_filter_are_400(tracking_uri, api, unique):
    r = requests.post(
        f"{api}/registered-models/create", json={"name": f"a/b-{unique}"}, timeout=TIMEOUT
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    r = requests.get(
        f"{api}/registered-models/search", params={"filter": "foo = 'x'"}, timeout=TIMEOUT
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")


def test_search_page_sizes_are_mlflows(tracking_uri, api, unique):
    """Without max_results a version search answers up to 200,000 versions
    in one page (MLflow's proto default), a model search 100; above the
    thresholds (200,000 and 1,000) the request is refused."""
    name = f"pages-{unique}"
    s = requests.Session()
    assert s.post(f"{api}/registered-models/create", json={"name": name}, timeout=TIMEOUT).status_code == 200
    for _ in range(105):
        r = s.post(f"{api}/model-versions/create", json={"name": name, "source": "s3://bucket/pages"}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
    body = _rest_get(api, "model-versions/search", filter=f"name = '{name}'")
    assert len(body["model_versions"]) == 105
    assert "next_page_token" not in body
    assert [v["version"] for v in body["model_versions"][:2]] == ["105", "104"]
    _error(s.get(f"{api}/registered-models/search", params={"max_results": 1001}, timeout=TIMEOUT), 400, "INVALID_PARAMETER_VALUE")
    _error(s.get(f"{api}/model-versions/search", params={"max_results": 200001}, timeout=TIMEOUT), 400, "INVALID_PARAMETER_VALUE")


def test_version_search_default_order_is_mlflows(tracking_uri, client, api, unique):
    """Without order_by, versions come newest change first, then by name and
    newest version (MLflow's default), so an edited old version leads."""
    name = f"order-{unique}"
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, "s3://bucket/order")
    import time as _time

    _time.sleep(0.01)
    client.update_model_version(name, "1", description="touched")
    body = _rest_get(api, "model-versions/search", filter=f"name = '{name}'")
    assert [v["version"] for v in body["model_versions"]] == ["1", "3", "2"]
    body = _rest_get(api, "model-versions/search", filter=f"name = '{name}'", order_by="version_number ASC")
    assert [v["version"] for v in body["model_versions"]] == ["1", "2", "3"]
