"""Keel's extensions of the MLflow REST API (not offered by MLflow itself).

* ``runs/search`` filters with ``OR``, ``NOT`` and parentheses
  (precedence NOT > AND > OR, keywords case-insensitive like MLflow's AND);
* ``"experiment_ids": ["*"]`` in ``runs/search`` searches every experiment;
* ``"info_only": true`` in ``runs/search`` returns runs with ``info`` only;
* ``"permanent": true`` in ``experiments/delete`` and ``runs/delete`` deletes
  for good (data and artifacts); a permanently deleted experiment's name can
  be reused at once.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
import requests
from mlflow.entities import Metric, Param, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.keel_only

TIMEOUT = 60

# name, params, metrics, tags, status
_RUNS = [
    ("alpha-0", {"model": "gbdt", "lr": "0.1"}, {"auc": 0.95, "loss": 0.2},
     {"team": "x", "env": "Prod"}, "FINISHED"),
    ("alpha-1", {"model": "linear"}, {"auc": 0.80, "loss": 0.5},
     {"team": "y", "env": "dev"}, "FAILED"),
    ("beta-2", {"model": "gbdt"}, {"auc": 0.85},
     {"team": "x", "env": "prod"}, "RUNNING"),
    ("beta-3", {"model": "rf"}, {"auc": 0.92},
     {"team": "z", "env": "PROD"}, "FINISHED"),
    ("gamma-4", {"model": "rf"}, {"loss": 0.1},
     {"team": "y"}, "KILLED"),
    ("Gamma-5", {"model": "linear"}, {"auc": 0.99},
     {"team": "x"}, "FINISHED"),
]


@pytest.fixture(scope="module")
def dataset(tracking_uri):
    client = MlflowClient(tracking_uri=tracking_uri)
    eid = client.create_experiment(f"ext-search-{uuid.uuid4().hex[:12]}")
    base = 1_600_000_000_000
    ids = []
    for i, (name, params, metrics, tags, status) in enumerate(_RUNS):
        rid = client.create_run(eid, run_name=name, tags=tags, start_time=base + i * 1000).info.run_id
        client.log_batch(
            rid,
            metrics=[Metric(k, v, base, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
        if status != "RUNNING":
            client.set_terminated(rid, status=status, end_time=base + i * 1000 + 500)
        ids.append(rid)
    return eid, ids


def _search(api, body):
    r = requests.post(api + "/runs/search", json=body, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def _idx(ids, runs):
    pos = {rid: i for i, rid in enumerate(ids)}
    return [pos[r["info"]["run_id"]] for r in runs]


# --------------------------------------------------------------------------
# OR / NOT / parentheses
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flt, expected",
    [
        ("(metrics.auc > 0.9 OR params.model = 'gbdt') AND NOT tags.team = 'x'", {3}),
        ("metrics.auc > 0.9 OR metrics.loss < 0.3", {0, 3, 4, 5}),
        ("params.model = 'rf' OR params.model = 'linear'", {1, 3, 4, 5}),
        ("NOT params.model = 'gbdt'", {1, 3, 4, 5}),
        ("NOT (tags.team = 'x' OR tags.team = 'y')", {3}),
        ("NOT NOT tags.team = 'z'", {3}),
        ("((params.model = 'gbdt'))", {0, 2}),
        ("(attributes.status = 'FINISHED' AND metrics.auc > 0.93) OR (attributes.status = 'KILLED')",
         {0, 4, 5}),
        ("tags.env ILIKE 'prod' OR attributes.run_name LIKE 'gamma%'", {0, 2, 3, 4}),
        # precedence: AND binds tighter than OR
        ("params.model = 'rf' OR params.model = 'gbdt' AND tags.team = 'y'", {3, 4}),
        ("(params.model = 'rf' OR params.model = 'gbdt') AND tags.team = 'y'", {4}),
        # NOT binds tighter than AND
        ("NOT tags.team = 'x' AND params.model = 'rf'", {3, 4}),
        ("params.model = 'rf' or not tags.team = 'x'", {1, 3, 4}),
        ("attributes.run_name = 'alpha-1' OR attributes.run_name = 'beta-3'", {1, 3}),
        ("attributes.status = 'FAILED' OR attributes.status = 'KILLED' OR metrics.auc >= 0.99",
         {1, 4, 5}),
    ],
)
def test_boolean_filters(api, dataset, flt, expected):
    eid, ids = dataset
    body = _search(api, {"experiment_ids": [eid], "filter": flt, "max_results": 100})
    got = _idx(ids, body.get("runs", []))
    assert len(got) == len(set(got))
    assert set(got) == expected, flt


def test_boolean_filter_with_run_id_in(api, dataset):
    eid, ids = dataset
    flt = f"attributes.run_id IN ('{ids[0]}', '{ids[1]}') OR tags.team = 'z'"
    body = _search(api, {"experiment_ids": [eid], "filter": flt})
    assert set(_idx(ids, body["runs"])) == {0, 1, 3}
    flt = f"NOT attributes.run_id IN ('{ids[0]}', '{ids[1]}') AND params.model != 'rf'"
    body = _search(api, {"experiment_ids": [eid], "filter": flt})
    assert set(_idx(ids, body["runs"])) == {2, 5}


def test_boolean_filter_through_client_with_order_and_paging(client, dataset):
    eid, ids = dataset
    flt = "(metrics.auc > 0.9 OR params.model = 'gbdt') AND NOT tags.team = 'y'"
    # auc > 0.9: 0, 3, 5; gbdt: 0, 2 -> {0, 2, 3, 5}; none of them has team y
    runs = client.search_runs([eid], filter_string=flt, order_by=["metrics.auc DESC"])
    pos = {rid: i for i, rid in enumerate(ids)}
    assert [pos[r.info.run_id] for r in runs] == [5, 0, 3, 2]

    seen, token, pages = [], None, 0
    while True:
        page = client.search_runs([eid], filter_string=flt, order_by=["metrics.auc DESC"],
                                  max_results=3, page_token=token)
        pages += 1
        seen.extend(pos[r.info.run_id] for r in page)
        token = page.token
        if not token:
            break
        assert pages < 5
    assert seen == [5, 0, 3, 2]
    assert pages == 2


@pytest.mark.parametrize(
    "flt",
    [
        "metrics.auc > 0.9 OR",
        "OR metrics.auc > 0.9",
        "(metrics.auc > 0.9",
        "metrics.auc > 0.9)",
        "NOT",
        "()",
        "metrics.auc > 0.9 OR AND params.model = 'rf'",
        "params.model = 'rf' NOT params.model = 'gbdt'",
    ],
)
def test_invalid_boolean_filters(api, dataset, flt):
    eid, _ = dataset
    r = requests.post(api + "/runs/search",
                      json={"experiment_ids": [eid], "filter": flt}, timeout=TIMEOUT)
    assert r.status_code == 400, (flt, r.status_code, r.text[:300])
    body = r.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert isinstance(body["message"], str) and body["message"]


# --------------------------------------------------------------------------
# experiment_ids: ["*"]
# --------------------------------------------------------------------------


def test_search_all_experiments(api, client, unique):
    marker = f"all-{unique}"
    exps = [client.create_experiment(f"star-{unique}-{i}") for i in range(3)]
    expected = {}
    scores = {}
    for i, eid in enumerate(exps):
        for j in range(2):
            rid = client.create_run(eid, run_name=f"s{i}{j}", tags={"marker": marker},
                                    start_time=1_000_000 + i * 10 + j).info.run_id
            client.log_metric(rid, "score", float(i * 10 + j))
            expected[rid] = eid
            scores[rid] = i * 10 + j
    # a run elsewhere that must not match the filter
    client.create_run(exps[0], tags={"marker": "other"})

    body = _search(api, {"experiment_ids": ["*"], "filter": f"tags.marker = '{marker}'"})
    runs = body["runs"]
    assert {r["info"]["run_id"]: r["info"]["experiment_id"] for r in runs} == expected
    assert "next_page_token" not in body or not body["next_page_token"]

    # ordering and paging across experiments
    seen, token, pages = [], None, 0
    while True:
        req = {"experiment_ids": ["*"], "filter": f"tags.marker = '{marker}'",
               "order_by": ["metrics.score DESC"], "max_results": 4}
        if token:
            req["page_token"] = token
        body = _search(api, req)
        pages += 1
        seen.extend(r["info"]["run_id"] for r in body.get("runs", []))
        token = body.get("next_page_token")
        if not token:
            break
        assert pages < 5
    assert pages == 2
    assert seen == sorted(expected, key=lambda rid: -scores[rid])

    # the client passes "*" through unchanged
    runs = client.search_runs(["*"], filter_string=f"tags.marker = '{marker}'")
    assert {r.info.run_id for r in runs} == set(expected)

    # deleted runs are excluded by default, included with ALL
    victim = next(iter(expected))
    client.delete_run(victim)
    runs = client.search_runs(["*"], filter_string=f"tags.marker = '{marker}'")
    assert {r.info.run_id for r in runs} == set(expected) - {victim}
    runs = client.search_runs(["*"], filter_string=f"tags.marker = '{marker}'",
                              run_view_type=ViewType.ALL)
    assert {r.info.run_id for r in runs} == set(expected)


# --------------------------------------------------------------------------
# info_only
# --------------------------------------------------------------------------


def test_info_only(api, dataset):
    eid, ids = dataset
    full = _search(api, {"experiment_ids": [eid], "order_by": ["attributes.start_time ASC"]})
    light = _search(api, {"experiment_ids": [eid], "info_only": True,
                          "order_by": ["attributes.start_time ASC"]})
    assert len(light["runs"]) == len(_RUNS)
    for f, li in zip(full["runs"], light["runs"]):
        assert set(li) == {"info"}, li
        assert li["info"] == f["info"]
        assert "data" in f and f["data"].get("params")

    # filters on data still apply in light mode; results are still info-only
    light = _search(api, {"experiment_ids": [eid], "info_only": True,
                          "filter": "metrics.auc > 0.9 AND params.model = 'rf'"})
    assert _idx(ids, light["runs"]) == [3]
    assert set(light["runs"][0]) == {"info"}
    info = light["runs"][0]["info"]
    assert info["run_name"] == "beta-3"
    assert info["status"] == "FINISHED"
    assert info["experiment_id"] == eid
    assert info["lifecycle_stage"] == "active"

    # paging in light mode
    seen, token = [], None
    while True:
        req = {"experiment_ids": [eid], "info_only": True, "max_results": 4,
               "order_by": ["attributes.start_time ASC"]}
        if token:
            req["page_token"] = token
        body = _search(api, req)
        for r in body.get("runs", []):
            assert set(r) == {"info"}
            seen.append(r["info"]["run_id"])
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == ids

    # info_only false is the normal response
    normal = _search(api, {"experiment_ids": [eid], "info_only": False,
                           "order_by": ["attributes.start_time ASC"]})
    assert normal == full


# --------------------------------------------------------------------------
# permanent delete
# --------------------------------------------------------------------------


def _artifact_file_url(tracking_uri, artifact_uri, rel):
    """Proxy URL of a run artifact (``mlflow-artifacts:/...`` or ``http://.../artifacts/...``)."""
    if artifact_uri.startswith("mlflow-artifacts:"):
        path = urlsplit(artifact_uri).path
    else:
        path = urlsplit(artifact_uri).path.split("/api/2.0/mlflow-artifacts/artifacts", 1)[1]
    return f"{tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{path.strip('/')}/{rel}"


def test_permanent_experiment_delete(api, client, tracking_uri, unique, tmp_path):
    name = f"hard-del-{unique}"
    eid = client.create_experiment(name, tags={"t": "1"})
    runs = []
    for i in range(2):
        rid = client.create_run(eid, run_name=f"hd{i}").info.run_id
        client.log_metric(rid, "m", float(i))
        client.log_param(rid, "p", str(i))
        client.log_text(rid, f"artifact {i}", "notes/a.txt")
        runs.append(rid)
    urls = [
        _artifact_file_url(tracking_uri, client.get_run(rid).info.artifact_uri, "notes/a.txt")
        for rid in runs
    ]
    for i, url in enumerate(urls):
        r = requests.get(url, timeout=TIMEOUT)
        assert r.status_code == 200 and r.content == f"artifact {i}".encode()

    r = requests.post(api + "/experiments/delete",
                      json={"experiment_id": eid, "permanent": True}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text

    r = requests.get(api + "/experiments/get", params={"experiment_id": eid}, timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment_by_name(name) is None
    found = client.search_experiments(view_type=ViewType.ALL, filter_string=f"name = '{name}'")
    assert found == []
    for rid in runs:
        with pytest.raises(MlflowException) as ei:
            client.get_run(rid)
        assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    body = _search(api, {"experiment_ids": ["*"], "run_view_type": "ALL",
                         "filter": f"attributes.run_id IN ('{runs[0]}', '{runs[1]}')"})
    assert body.get("runs", []) == []
    for url in urls:
        assert requests.get(url, timeout=TIMEOUT).status_code == 404

    # the name is free again at once
    eid2 = client.create_experiment(name)
    assert eid2 != eid
    exp2 = client.get_experiment(eid2)
    assert exp2.name == name and exp2.tags == {} and exp2.lifecycle_stage == "active"
    assert client.search_runs([eid2], run_view_type=ViewType.ALL) == []
    assert client.get_experiment_by_name(name).experiment_id == eid2


def test_soft_delete_still_blocks_name(api, client, unique):
    name = f"soft-del-{unique}"
    eid = client.create_experiment(name)
    r = requests.post(api + "/experiments/delete",
                      json={"experiment_id": eid, "permanent": False}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert client.get_experiment(eid).lifecycle_stage == "deleted"
    with pytest.raises(MlflowException) as ei:
        client.create_experiment(name)
    assert ei.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_permanent_run_delete(api, client, tracking_uri, unique):
    eid = client.create_experiment(f"hard-run-{unique}")
    keep = client.create_run(eid, run_name="keep").info.run_id
    victim = client.create_run(eid, run_name="victim").info.run_id
    for rid in (keep, victim):
        client.log_metric(rid, "m", 1.0)
        client.log_text(rid, "x", "f.txt")
    url = _artifact_file_url(tracking_uri, client.get_run(victim).info.artifact_uri, "f.txt")
    assert requests.get(url, timeout=TIMEOUT).status_code == 200

    r = requests.post(api + "/runs/delete", json={"run_id": victim, "permanent": True},
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text

    r = requests.get(api + "/runs/get", params={"run_id": victim}, timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as ei:
        client.get_run(victim)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # not restorable: it is gone, not soft-deleted
    r = requests.post(api + "/runs/restore", json={"run_id": victim}, timeout=TIMEOUT)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = requests.get(api + "/metrics/get-history", params={"run_id": victim, "metric_key": "m"},
                     timeout=TIMEOUT)
    assert r.status_code == 404
    assert {r.info.run_id for r in client.search_runs([eid], run_view_type=ViewType.ALL)} == {keep}
    assert requests.get(url, timeout=TIMEOUT).status_code == 404

    # the other run is untouched
    assert client.get_run(keep).data.metrics == {"m": 1.0}
    assert [f.path for f in client.list_artifacts(keep)] == ["f.txt"]

    # a soft-deleted run can be permanently deleted too
    client.delete_run(keep)
    r = requests.post(api + "/runs/delete", json={"run_id": keep, "permanent": True},
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert client.search_runs([eid], run_view_type=ViewType.ALL) == []
