"""End-to-end tracking workflow through the real ``mlflow`` client.

Everything here must pass against the reference ``mlflow server``
(KEEL_TEST_BACKENDS=mlflow) as well as against Keel.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

FLOAT_MAX = sys.float_info.max


def _tags(run):
    return dict(run.data.tags)


def _user_tags(run):
    """Run tags without the ``mlflow.*`` system tags."""
    return {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}


def _is_proxied_artifact_uri(uri: str) -> bool:
    # The client only routes artifacts through the tracking server (the
    # mlflow-artifacts proxy) for these two URI forms; anything else (a
    # local path, s3://...) would make a remote client bypass the server.
    return uri.startswith("mlflow-artifacts:/") or "/api/2.0/mlflow-artifacts/artifacts" in uri


# --------------------------------------------------------------------------
# experiments
# --------------------------------------------------------------------------


def test_experiment_create_get_and_by_name(client, unique):
    name = f"exp-create-{unique}"
    loc = f"mlflow-artifacts:/custom-{unique}/loc"
    before = int(time.time() * 1000) - 5000
    eid = client.create_experiment(name, artifact_location=loc, tags={"team": "core", "k2": "v2"})
    assert isinstance(eid, str) and eid

    exp = client.get_experiment(eid)
    assert exp.experiment_id == eid
    assert exp.name == name
    assert exp.artifact_location == loc
    assert exp.lifecycle_stage == "active"
    assert exp.tags == {"team": "core", "k2": "v2"}
    assert exp.creation_time is not None and exp.creation_time >= before
    assert exp.last_update_time is not None and exp.last_update_time >= exp.creation_time - 1000

    by_name = client.get_experiment_by_name(name)
    assert by_name is not None
    assert by_name.experiment_id == eid
    assert by_name.name == name
    assert by_name.tags == {"team": "core", "k2": "v2"}

    assert client.get_experiment_by_name(f"no-such-experiment-{unique}") is None

    # Default artifact location: one that the client routes through the server.
    eid2 = client.create_experiment(f"exp-default-loc-{unique}")
    exp2 = client.get_experiment(eid2)
    assert _is_proxied_artifact_uri(exp2.artifact_location), exp2.artifact_location
    assert exp2.tags == {}
    assert eid2 != eid


def test_default_experiment_exists(client):
    exp = client.get_experiment("0")
    assert exp.experiment_id == "0"
    assert exp.name == "Default"
    assert exp.lifecycle_stage == "active"
    by_name = client.get_experiment_by_name("Default")
    assert by_name is not None and by_name.experiment_id == "0"


def test_get_unknown_experiment_raises(client):
    with pytest.raises(MlflowException) as ei:
        client.get_experiment("987654321")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_search_experiments_filter_order_paging(client, unique):
    prefix = f"srch-{unique}-"
    names = [f"{prefix}{i:02d}" for i in range(7)]
    ids = {}
    for i, n in enumerate(names):
        tags = {"parity": "even" if i % 2 == 0 else "odd", "idx": str(i)}
        ids[n] = client.create_experiment(n, tags=tags)

    # filter by name LIKE + order by name
    res = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"])
    assert [e.name for e in res] == names
    res = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"])
    assert [e.name for e in res] == list(reversed(names))

    # ILIKE is case-insensitive
    res = client.search_experiments(
        filter_string=f"name ILIKE '{prefix.upper()}%'", order_by=["name ASC"]
    )
    assert [e.name for e in res] == names

    # exact name
    res = client.search_experiments(filter_string=f"name = '{names[3]}'")
    assert [e.experiment_id for e in res] == [ids[names[3]]]

    # tag filter combined with name filter
    res = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%' AND tags.parity = 'odd'", order_by=["name ASC"]
    )
    assert [e.name for e in res] == [names[1], names[3], names[5]]
    for e in res:
        assert e.tags["parity"] == "odd"

    # order by creation/id-like attribute and paging through page tokens
    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_experiments(
            filter_string=f"name LIKE '{prefix}%'",
            order_by=["name ASC"],
            max_results=3,
            page_token=token,
        )
        pages += 1
        assert len(page) <= 3
        seen.extend(e.name for e in page)
        token = page.token
        if not token:
            break
        assert pages < 10, "paging does not terminate"
    assert seen == names
    assert pages == 3  # 3 + 3 + 1

    # order by last_update_time / creation_time is accepted
    res = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%'", order_by=["creation_time ASC", "name ASC"]
    )
    assert sorted(e.name for e in res) == names
    times = [e.creation_time for e in res]
    assert times == sorted(times)


def test_experiment_rename_tag_delete_restore(client, unique):
    name = f"exp-life-{unique}"
    eid = client.create_experiment(name)

    new_name = f"exp-life-renamed-{unique}"
    client.rename_experiment(eid, new_name)
    exp = client.get_experiment(eid)
    assert exp.name == new_name
    assert client.get_experiment_by_name(name) is None
    assert client.get_experiment_by_name(new_name).experiment_id == eid

    client.set_experiment_tag(eid, "stage", "one")
    client.set_experiment_tag(eid, "stage", "two")  # overwrite
    client.set_experiment_tag(eid, "other", "x")
    assert client.get_experiment(eid).tags == {"stage": "two", "other": "x"}

    client.delete_experiment(eid)
    exp = client.get_experiment(eid)
    assert exp.lifecycle_stage == "deleted"
    active = client.search_experiments(
        view_type=ViewType.ACTIVE_ONLY, filter_string=f"name = '{new_name}'"
    )
    assert active == []
    deleted = client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{new_name}'"
    )
    assert [e.experiment_id for e in deleted] == [eid]
    everything = client.search_experiments(
        view_type=ViewType.ALL, filter_string=f"name = '{new_name}'"
    )
    assert [e.experiment_id for e in everything] == [eid]

    # A soft-deleted experiment's name cannot be reused.
    with pytest.raises(MlflowException) as ei:
        client.create_experiment(new_name)
    assert ei.value.error_code == "RESOURCE_ALREADY_EXISTS"

    client.restore_experiment(eid)
    exp = client.get_experiment(eid)
    assert exp.lifecycle_stage == "active"
    assert exp.tags == {"stage": "two", "other": "x"}
    active = client.search_experiments(filter_string=f"name = '{new_name}'")
    assert [e.experiment_id for e in active] == [eid]


def test_experiment_delete_cascades_to_runs(client, unique):
    eid = client.create_experiment(f"exp-cascade-{unique}")
    r1 = client.create_run(eid).info.run_id
    r2 = client.create_run(eid).info.run_id
    client.delete_experiment(eid)
    # runs of a deleted experiment are deleted too, but still readable
    assert client.get_run(r1).info.lifecycle_stage == "deleted"
    assert client.get_run(r2).info.lifecycle_stage == "deleted"
    assert client.search_runs([eid]) == []
    assert {r.info.run_id for r in client.search_runs([eid], run_view_type=ViewType.ALL)} == {
        r1, r2
    }
    with pytest.raises(MlflowException) as ei:
        client.log_metric(r1, "m", 1.0)
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as ei:
        client.create_run(eid)
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"

    client.restore_experiment(eid)
    assert client.get_run(r1).info.lifecycle_stage == "active"
    assert {r.info.run_id for r in client.search_runs([eid])} == {r1, r2}
    client.log_metric(r1, "m", 1.0)
    assert client.get_run(r1).data.metrics == {"m": 1.0}


def test_duplicate_experiment_name(client, unique):
    name = f"dup-{unique}"
    client.create_experiment(name)
    with pytest.raises(MlflowException) as ei:
        client.create_experiment(name)
    assert ei.value.error_code == "RESOURCE_ALREADY_EXISTS"


# --------------------------------------------------------------------------
# runs: create / log / get
# --------------------------------------------------------------------------


def test_run_create_log_and_get(client, unique):
    eid = client.create_experiment(f"runs-{unique}")
    t0 = int(time.time() * 1000)
    run = client.create_run(eid, run_name=f"run-{unique}", tags={"team": "ml", "k": "v"})
    info = run.info
    rid = info.run_id
    assert isinstance(rid, str) and len(rid) >= 16
    assert info.experiment_id == eid
    assert info.run_name == f"run-{unique}"
    assert info.status == "RUNNING"
    assert info.lifecycle_stage == "active"
    assert info.end_time is None
    assert abs(info.start_time - t0) < 60_000
    assert _is_proxied_artifact_uri(info.artifact_uri), info.artifact_uri
    assert rid in info.artifact_uri
    assert _user_tags(run) == {"team": "ml", "k": "v"}
    assert run.data.tags["mlflow.runName"] == f"run-{unique}"

    client.log_param(rid, "lr", 0.01)
    client.log_param(rid, "model", "gbdt")
    client.log_metric(rid, "loss", 0.5, timestamp=1000, step=1)
    client.log_metric(rid, "loss", 0.25, timestamp=2000, step=2)
    client.log_metric(rid, "acc", 0.75)
    client.log_metric(rid, "nan_metric", float("nan"))
    client.log_metric(rid, "pos_inf", float("inf"))
    client.log_metric(rid, "neg_inf", float("-inf"))
    client.set_tag(rid, "to_delete", "bye")
    client.set_tag(rid, "kept", "yes")
    client.set_tag(rid, "k", "v2")  # overwrite
    client.delete_tag(rid, "to_delete")

    got = client.get_run(rid)
    assert got.info.run_id == rid
    assert got.info.experiment_id == eid
    assert got.info.run_name == f"run-{unique}"
    assert got.info.status == "RUNNING"
    assert got.info.start_time == info.start_time
    assert got.info.artifact_uri == info.artifact_uri
    assert got.data.params == {"lr": "0.01", "model": "gbdt"}
    m = got.data.metrics
    assert set(m) == {"loss", "acc", "nan_metric", "pos_inf", "neg_inf"}
    assert m["loss"] == 0.25  # latest by step
    assert m["acc"] == 0.75
    assert math.isnan(m["nan_metric"])
    # MLflow's SQL store clamps +-inf to +-DBL_MAX; true infinity is also fine.
    assert m["pos_inf"] in (math.inf, FLOAT_MAX)
    assert m["neg_inf"] in (-math.inf, -FLOAT_MAX)
    assert _user_tags(got) == {"team": "ml", "k": "v2", "kept": "yes"}
    assert "to_delete" not in got.data.tags

    hist = client.get_metric_history(rid, "loss")
    assert [(h.step, h.timestamp, h.value) for h in sorted(hist, key=lambda h: h.step)] == [
        (1, 1000, 0.5),
        (2, 2000, 0.25),
    ]
    nan_hist = client.get_metric_history(rid, "nan_metric")
    assert len(nan_hist) == 1 and math.isnan(nan_hist[0].value)

    # deleting a tag that does not exist is an error
    with pytest.raises(MlflowException):
        client.delete_tag(rid, "never-set")


def test_log_batch_mixed(client, unique):
    eid = client.create_experiment(f"batch-{unique}")
    rid = client.create_run(eid).info.run_id
    ts = int(time.time() * 1000)
    metrics = [Metric("m1", float(i), ts + i, i) for i in range(10)]
    metrics += [Metric("m2", -1.5, ts, 0), Metric("m3", float("nan"), ts, 0)]
    params = [Param(f"p{i}", f"value-{i}") for i in range(20)]
    tags = [RunTag("t1", "a"), RunTag("t2", "b" * 500), RunTag("unicode", "héllo ✓")]
    client.log_batch(rid, metrics=metrics, params=params, tags=tags)

    run = client.get_run(rid)
    assert run.data.params == {f"p{i}": f"value-{i}" for i in range(20)}
    assert run.data.metrics["m1"] == 9.0
    assert run.data.metrics["m2"] == -1.5
    assert math.isnan(run.data.metrics["m3"])
    assert set(run.data.metrics) == {"m1", "m2", "m3"}
    assert _user_tags(run) == {"t1": "a", "t2": "b" * 500, "unicode": "héllo ✓"}

    hist = sorted(client.get_metric_history(rid, "m1"), key=lambda m: m.step)
    assert [(m.step, m.value, m.timestamp) for m in hist] == [
        (i, float(i), ts + i) for i in range(10)
    ]

    # Re-logging a param with the same value is allowed; a different value is not.
    client.log_batch(rid, params=[Param("p0", "value-0")])
    with pytest.raises(MlflowException) as ei:
        client.log_param(rid, "p0", "other")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(rid).data.params["p0"] == "value-0"


def test_metric_history_many_steps(client, tracking_uri, unique):
    eid = client.create_experiment(f"hist-{unique}")
    rid = client.create_run(eid).info.run_id
    n = 2500
    ts = 1_700_000_000_000
    metrics = [Metric("curve", i * 0.5, ts + i, i) for i in range(n)]
    client.log_batch(rid, metrics=metrics)  # the client splits into 1000-metric batches
    hist = client.get_metric_history(rid, "curve")
    assert len(hist) == n
    got = sorted((m.step, m.value, m.timestamp) for m in hist)
    assert got == [(i, i * 0.5, ts + i) for i in range(n)]
    assert client.get_run(rid).data.metrics["curve"] == (n - 1) * 0.5

    # Raw REST paging of metrics/get-history with max_results.
    url = tracking_uri + "/api/2.0/mlflow/metrics/get-history"
    token = None
    pages = []
    while True:
        params = {"run_id": rid, "metric_key": "curve", "max_results": 1000}
        if token:
            params["page_token"] = token
        r = requests.get(url, params=params, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body.get("metrics", []))
        token = body.get("next_page_token")
        if not token:
            break
        assert len(pages) < 10
    assert [len(p) for p in pages] == [1000, 1000, 500]
    steps = [int(m["step"]) for p in pages for m in p]
    assert sorted(steps) == list(range(n))
    assert len(set(steps)) == n


# --------------------------------------------------------------------------
# search_runs
# --------------------------------------------------------------------------

# name, params, metrics, tags, status, start offset (ms)
_SEARCH_RUNS = [
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
def search_fixture(tracking_uri):
    # module scope: built once per server and shared by the read-only tests below
    client = MlflowClient(tracking_uri=tracking_uri)
    eid = client.create_experiment(f"search-runs-{uuid.uuid4().hex[:12]}")
    base = 1_600_000_000_000
    ids = []
    for i, (name, params, metrics, tags, status) in enumerate(_SEARCH_RUNS):
        run = client.create_run(eid, run_name=name, tags=tags, start_time=base + i * 1000)
        rid = run.info.run_id
        client.log_batch(
            rid,
            metrics=[Metric(k, v, base, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
        if status != "RUNNING":
            client.set_terminated(rid, status=status, end_time=base + i * 1000 + 500)
        ids.append(rid)
    return eid, ids, base


def _search_idx(client, eid, ids, filter_string="", order_by=None, **kw):
    runs = client.search_runs([eid], filter_string=filter_string, order_by=order_by, **kw)
    pos = {rid: i for i, rid in enumerate(ids)}
    return [pos[r.info.run_id] for r in runs]


@pytest.mark.parametrize(
    "flt, expected",
    [
        ("metrics.auc > 0.9", {0, 3, 5}),
        ("metrics.auc >= 0.85 and params.model = 'gbdt'", {0, 2}),
        ("metrics.loss < 0.3", {0, 4}),
        ("metrics.auc = 0.8", {1}),
        ("metrics.auc != 0.8", {0, 2, 3, 5}),
        ("params.model = 'rf'", {3, 4}),
        ("params.model != 'gbdt'", {1, 3, 4, 5}),
        ("params.lr = '0.1'", {0}),
        ("params.model LIKE 'g%'", {0, 2}),
        ("tags.team = 'x'", {0, 2, 5}),
        ("tags.`team` = 'z'", {3}),
        ('tags."team" = \'y\'', {1, 4}),
        ("tags.env LIKE 'Prod'", {0}),
        ("tags.env ILIKE 'prod'", {0, 2, 3}),
        ("tags.env LIKE '%ro%'", {0, 2}),
        ("attributes.status = 'FINISHED'", {0, 3, 5}),
        ("attributes.status != 'FINISHED'", {1, 2, 4}),
        ("status = 'KILLED'", {4}),
        ("attributes.run_name = 'beta-2'", {2}),
        ("run_name = 'alpha-1'", {1}),
        ("attributes.run_name LIKE 'alpha%'", {0, 1}),
        ("attributes.run_name ILIKE 'gamma%'", {4, 5}),
        ("attributes.run_name LIKE 'gamma%'", {4}),
        ("tags.`mlflow.runName` = 'beta-3'", {3}),
        ("metrics.auc > 0.8 and tags.team = 'x' and attributes.status = 'FINISHED'", {0, 5}),
        ("", {0, 1, 2, 3, 4, 5}),
    ],
)
def test_search_runs_filters(client, search_fixture, flt, expected):
    eid, ids, _ = search_fixture
    got = _search_idx(client, eid, ids, flt)
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_search_runs_attribute_filters_time_and_ids(client, search_fixture):
    eid, ids, base = search_fixture
    got = _search_idx(client, eid, ids, f"attributes.start_time >= {base + 3000}")
    assert set(got) == {3, 4, 5}
    got = _search_idx(client, eid, ids, f"attributes.start_time < {base + 2000}")
    assert set(got) == {0, 1}
    got = _search_idx(client, eid, ids, f"attributes.end_time > {base + 3000}")
    assert set(got) == {3, 4, 5}
    flt = f"attributes.run_id IN ('{ids[1]}', '{ids[3]}')"
    assert set(_search_idx(client, eid, ids, flt)) == {1, 3}
    flt = f"attributes.run_id = '{ids[4]}'"
    assert _search_idx(client, eid, ids, flt) == [4]
    flt = f"attributes.run_id NOT IN ('{ids[0]}', '{ids[1]}', '{ids[2]}')"
    assert set(_search_idx(client, eid, ids, flt)) == {3, 4, 5}


def test_search_runs_ordering(client, search_fixture):
    eid, ids, base = search_fixture
    # default: start_time DESC
    assert _search_idx(client, eid, ids) == [5, 4, 3, 2, 1, 0]
    assert _search_idx(client, eid, ids, order_by=["attributes.start_time ASC"]) == [
        0, 1, 2, 3, 4, 5
    ]
    # runs without the metric sort last in both directions
    assert _search_idx(client, eid, ids, order_by=["metrics.auc DESC"]) == [5, 0, 3, 2, 1, 4]
    assert _search_idx(client, eid, ids, order_by=["metrics.auc ASC"]) == [1, 2, 3, 0, 5, 4]
    assert _search_idx(
        client, eid, ids, order_by=["params.model ASC", "metrics.auc DESC"]
    ) == [0, 2, 5, 1, 3, 4]
    got = _search_idx(
        client, eid, ids, f"attributes.start_time <= {base + 3000}",
        order_by=["attributes.run_name DESC"],
    )
    assert got == [3, 2, 1, 0]  # beta-3, beta-2, alpha-1, alpha-0
    got = _search_idx(
        client,
        eid,
        ids,
        "attributes.run_name LIKE '%-%'",
        order_by=["tags.team ASC", "attributes.start_time DESC"],
    )
    assert got == [5, 2, 0, 4, 1, 3]


def test_search_runs_paging(client, unique):
    eid = client.create_experiment(f"paging-{unique}")
    n = 25
    base = 1_650_000_000_000
    ids = []
    for i in range(n):
        r = client.create_run(eid, run_name=f"p{i:02d}", start_time=base + i)
        client.log_metric(r.info.run_id, "score", float(i), timestamp=base, step=0)
        ids.append(r.info.run_id)

    for order_by in (None, ["metrics.score ASC"], ["attributes.run_name DESC"]):
        seen = []
        token = None
        sizes = []
        while True:
            page = client.search_runs(
                [eid], max_results=7, order_by=order_by, page_token=token
            )
            sizes.append(len(page))
            seen.extend(r.info.run_id for r in page)
            token = page.token
            if not token:
                break
            assert len(sizes) < 10, "paging does not terminate"
        assert sizes == [7, 7, 7, 4], (order_by, sizes)
        assert len(seen) == len(set(seen)) == n
        assert set(seen) == set(ids)
        if order_by is None:
            assert seen == list(reversed(ids))
        elif order_by == ["metrics.score ASC"]:
            assert seen == ids
        else:
            assert seen == list(reversed(ids))

    # paging combined with a filter
    seen = []
    token = None
    while True:
        page = client.search_runs(
            [eid], filter_string="metrics.score >= 10", max_results=4,
            order_by=["metrics.score ASC"], page_token=token,
        )
        seen.extend(r.info.run_id for r in page)
        token = page.token
        if not token:
            break
    assert seen == ids[10:]


# --------------------------------------------------------------------------
# run lifecycle
# --------------------------------------------------------------------------


def test_run_lifecycle(client, unique):
    eid = client.create_experiment(f"life-{unique}")
    r1 = client.create_run(eid, run_name="one").info.run_id
    r2 = client.create_run(eid, run_name="two").info.run_id

    end = int(time.time() * 1000) + 1234
    client.set_terminated(r1, status="FAILED", end_time=end)
    info = client.get_run(r1).info
    assert info.status == "FAILED"
    assert info.end_time == end

    client.set_terminated(r2)  # default FINISHED, end_time = now
    info2 = client.get_run(r2).info
    assert info2.status == "FINISHED"
    assert info2.end_time is not None and info2.end_time >= info2.start_time

    # a finished (but active) run still accepts data
    client.log_metric(r2, "late", 3.0)
    client.log_param(r2, "late_p", "x")
    got2 = client.get_run(r2)
    assert got2.data.metrics == {"late": 3.0}
    assert got2.data.params == {"late_p": "x"}
    assert got2.info.status == "FINISHED"

    client.update_run(r2, name="two-renamed")
    got = client.get_run(r2)
    assert got.info.run_name == "two-renamed"
    assert got.data.tags["mlflow.runName"] == "two-renamed"

    client.delete_run(r1)
    deleted = client.get_run(r1)
    assert deleted.info.lifecycle_stage == "deleted"

    def ids(view):
        return {r.info.run_id for r in client.search_runs([eid], run_view_type=view)}

    assert ids(ViewType.ACTIVE_ONLY) == {r2}
    assert ids(ViewType.DELETED_ONLY) == {r1}
    assert ids(ViewType.ALL) == {r1, r2}

    client.restore_run(r1)
    assert client.get_run(r1).info.lifecycle_stage == "active"
    assert ids(ViewType.ACTIVE_ONLY) == {r1, r2}
    assert ids(ViewType.DELETED_ONLY) == set()


def test_get_unknown_run_raises(client):
    with pytest.raises(MlflowException) as ei:
        client.get_run("0" * 32)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


# --------------------------------------------------------------------------
# artifacts
# --------------------------------------------------------------------------


def test_artifacts_roundtrip(client, unique, tmp_path):
    eid = client.create_experiment(f"art-{unique}")
    rid = client.create_run(eid).info.run_id

    single = tmp_path / "single.txt"
    single.write_text("hello artifact\n")
    client.log_artifact(rid, str(single))
    client.log_artifact(rid, str(single), artifact_path="nested/deeper")

    tree = tmp_path / "tree"
    (tree / "sub" / "subsub").mkdir(parents=True)
    (tree / "a.txt").write_text("A")
    (tree / "sub" / "b.json").write_text('{"b": 1}')
    (tree / "sub" / "subsub" / "c.bin").write_bytes(bytes(range(256)))
    client.log_artifacts(rid, str(tree), artifact_path="tree")

    big = os.urandom(1024 * 1024)
    (tmp_path / "big.bin").write_bytes(big)
    client.log_artifact(rid, str(tmp_path / "big.bin"), artifact_path="blobs")

    root = client.list_artifacts(rid)
    assert [(f.path, f.is_dir) for f in root] == [
        ("blobs", True),
        ("nested", True),
        ("single.txt", False),
        ("tree", True),
    ]
    single_info = [f for f in root if f.path == "single.txt"][0]
    assert single_info.file_size == len("hello artifact\n")

    sub = client.list_artifacts(rid, "tree")
    assert [(f.path, f.is_dir) for f in sub] == [("tree/a.txt", False), ("tree/sub", True)]
    assert [f.file_size for f in sub if not f.is_dir] == [1]
    subsub = client.list_artifacts(rid, "tree/sub")
    assert [(f.path, f.is_dir, f.file_size) for f in subsub] == [
        ("tree/sub/b.json", False, 8),
        ("tree/sub/subsub", True, None),
    ]
    blobs = client.list_artifacts(rid, "blobs")
    assert [(f.path, f.file_size) for f in blobs] == [("blobs/big.bin", len(big))]
    assert client.list_artifacts(rid, "nested/deeper") and [
        f.path for f in client.list_artifacts(rid, "nested/deeper")
    ] == ["nested/deeper/single.txt"]
    # listing a path that does not exist is empty, not an error
    assert client.list_artifacts(rid, "does-not-exist") == []

    dl = tmp_path / "dl"
    dl.mkdir()
    path = client.download_artifacts(rid, "blobs/big.bin", str(dl))
    with open(path, "rb") as f:
        assert f.read() == big

    dl2 = tmp_path / "dl2"
    dl2.mkdir()
    tree_path = client.download_artifacts(rid, "tree", str(dl2))
    assert open(os.path.join(tree_path, "a.txt")).read() == "A"
    assert open(os.path.join(tree_path, "sub", "b.json")).read() == '{"b": 1}'
    with open(os.path.join(tree_path, "sub", "subsub", "c.bin"), "rb") as f:
        assert f.read() == bytes(range(256))

    dl3 = tmp_path / "dl3"
    dl3.mkdir()
    nested = client.download_artifacts(rid, "nested/deeper/single.txt", str(dl3))
    assert open(nested).read() == "hello artifact\n"


def test_log_text_and_dict(client, unique):
    eid = client.create_experiment(f"text-{unique}")
    rid = client.create_run(eid).info.run_id
    client.log_text(rid, "some text\nwith ünïcode ✓\n", "notes/readme.txt")
    payload = {"a": 1, "b": [1, 2, 3], "c": {"d": "e"}, "f": 1.5}
    client.log_dict(rid, payload, "config/params.json")
    client.log_dict(rid, payload, "config/params.yaml")

    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/readme.txt") == (
        "some text\nwith ünïcode ✓\n"
    )
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/config/params.json") == payload
    # load_dict only parses JSON; the YAML file is checked as text
    yaml_text = mlflow.artifacts.load_text(f"runs:/{rid}/config/params.yaml")
    assert "a: 1" in yaml_text and "d: e" in yaml_text
    names = [f.path for f in client.list_artifacts(rid, "config")]
    assert names == ["config/params.json", "config/params.yaml"]


def test_fluent_artifacts(tracking_uri, unique, tmp_path):
    mlflow.set_experiment(f"fluent-art-{unique}")
    with mlflow.start_run() as run:
        mlflow.log_text("fluent", "f.txt")
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        mlflow.log_artifact(str(tmp_path / "x.csv"), artifact_path="data")
        rid = run.info.run_id
    assert mlflow.artifacts.load_text(f"runs:/{rid}/f.txt") == "fluent"
    local = mlflow.artifacts.download_artifacts(
        run_id=rid, artifact_path="data/x.csv", dst_path=str(tmp_path / "out")
    )
    assert open(local).read() == "a,b\n1,2\n"


# --------------------------------------------------------------------------
# datasets / inputs
# --------------------------------------------------------------------------


def test_log_input_dataset(client, unique):
    eid = client.create_experiment(f"ds-{unique}")
    df = pd.DataFrame({"x": [1, 2, 3, 4], "y": [0.5, 1.5, 2.5, 3.5]})
    ds = mlflow.data.from_pandas(df, name=f"ds-{unique}", targets="y")
    mlflow.set_experiment(experiment_id=eid)
    with mlflow.start_run() as run:
        mlflow.log_input(ds, context="training", tags={"split": "train"})
        rid = run.info.run_id
    got = client.get_run(rid)
    inputs = got.inputs.dataset_inputs
    assert len(inputs) == 1
    d = inputs[0].dataset
    assert d.name == f"ds-{unique}"
    assert d.digest == ds.digest
    assert d.source_type == ds.source.__class__._get_source_type()
    assert json.loads(d.source) == json.loads(ds.source.to_json())
    assert json.loads(d.schema) == {"mlflow_colspec": ds.schema.to_dict()}
    assert json.loads(d.profile) == {"num_rows": 4, "num_elements": 8}
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags == {"mlflow.data.context": "training", "split": "train"}

    # logging the same dataset again does not duplicate it
    with mlflow.start_run(run_id=rid):
        mlflow.log_input(ds, context="training", tags={"split": "train"})
    assert len(client.get_run(rid).inputs.dataset_inputs) == 1

    # a second distinct dataset is added
    df2 = pd.DataFrame({"x": [9, 8]})
    ds2 = mlflow.data.from_pandas(df2, name=f"ds2-{unique}")
    with mlflow.start_run(run_id=rid):
        mlflow.log_input(ds2, context="eval")
    names = sorted(i.dataset.name for i in client.get_run(rid).inputs.dataset_inputs)
    assert names == sorted([f"ds-{unique}", f"ds2-{unique}"])


# --------------------------------------------------------------------------
# fluent API
# --------------------------------------------------------------------------


def test_fluent_runs_nested(client, unique):
    exp = mlflow.set_experiment(f"fluent-{unique}")
    assert client.get_experiment_by_name(f"fluent-{unique}").experiment_id == exp.experiment_id
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"alpha": 0.5, "layers": 3, "name": "net"})
        mlflow.log_metrics({"m1": 1.0, "m2": 2.0}, step=3)
        mlflow.set_tags({"phase": "train"})
        mlflow.log_metric("m1", 1.5, step=4)
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_param("child_param", "c")
            mlflow.log_metric("child_metric", 42.0)
        child_id = child.info.run_id
        parent_id = parent.info.run_id
        assert mlflow.active_run().info.run_id == parent_id
    assert mlflow.active_run() is None

    p = client.get_run(parent_id)
    assert p.info.experiment_id == exp.experiment_id
    assert p.info.run_name == "parent"
    assert p.info.status == "FINISHED"
    assert p.info.end_time is not None and p.info.end_time >= p.info.start_time
    assert p.data.params == {"alpha": "0.5", "layers": "3", "name": "net"}
    assert p.data.metrics == {"m1": 1.5, "m2": 2.0}
    assert p.data.tags["phase"] == "train"
    assert p.data.tags["mlflow.runName"] == "parent"
    assert "mlflow.user" in p.data.tags
    assert "mlflow.source.name" in p.data.tags
    hist = sorted((m.step, m.value) for m in client.get_metric_history(parent_id, "m1"))
    assert hist == [(3, 1.0), (4, 1.5)]

    c = client.get_run(child_id)
    assert c.info.status == "FINISHED"
    assert c.info.run_name == "child"
    assert c.data.tags["mlflow.parentRunId"] == parent_id
    assert c.data.params == {"child_param": "c"}
    assert c.data.metrics == {"child_metric": 42.0}

    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert [r.info.run_id for r in children] == [child_id]

    # a run that raises ends FAILED
    with pytest.raises(RuntimeError):
        with mlflow.start_run(run_name="boom") as failing:
            raise RuntimeError("boom")
    assert client.get_run(failing.info.run_id).info.status == "FAILED"

    df = mlflow.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(df) == 3
    assert set(df["run_id"]) == {parent_id, child_id, failing.info.run_id}


# --------------------------------------------------------------------------
# metric semantics and wire details the client depends on
# --------------------------------------------------------------------------


def test_latest_metric_semantics(client, unique):
    """runs/get reports, per key, the value with the largest step, then timestamp."""
    eid = client.create_experiment(f"latest-{unique}")
    rid = client.create_run(eid).info.run_id
    client.log_metric(rid, "d", 1.0, timestamp=5, step=1)
    client.log_metric(rid, "d", 2.0, timestamp=3, step=1)
    client.log_metric(rid, "d", 0.5, timestamp=9, step=0)  # later but smaller step
    client.log_metric(rid, "e", 7.0, timestamp=1, step=-3)  # negative steps are allowed
    run = client.get_run(rid)
    assert run.data.metrics == {"d": 1.0, "e": 7.0}
    hist = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(rid, "d"))
    assert hist == [(0, 9, 0.5), (1, 3, 2.0), (1, 5, 1.0)]
    # An exact duplicate (same key, value, timestamp, step) is stored once.
    client.log_metric(rid, "d", 1.0, timestamp=5, step=1)
    assert len(client.get_metric_history(rid, "d")) == 3
    assert [(m.step, m.value) for m in client.get_metric_history(rid, "e")] == [(-3, 7.0)]


def test_client_auxiliary_endpoints(client, tracking_uri, unique):
    """Endpoints the mlflow 3.x client calls behind the scenes.

    * ``POST /api/2.0/mlflow/logged-models/search`` is called by every
      ``runs:/`` artifact listing/download (mlflow.artifacts.load_text, ...);
      a server without it breaks those helpers.
    * ``GET /api/3.0/mlflow/server-info`` is probed before artifact transfers
      (multipart capability); 404 is tolerated by the client.
    """
    eid = client.create_experiment(f"aux-{unique}")
    r = requests.post(
        tracking_uri + "/api/2.0/mlflow/logged-models/search",
        json={"experiment_ids": [eid], "filter": "name = 'model'"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json().get("models", []) == []
    assert not r.json().get("next_page_token")

    r = requests.get(tracking_uri + "/api/3.0/mlflow/server-info", timeout=60)
    assert r.status_code in (200, 404), r.text[:300]
    if r.status_code == 200:
        info = r.json()
        assert isinstance(info, dict)
        # the proxy does not hand out presigned URLs, so multipart must be off
        assert info.get("multipart_uploads_enabled", False) is False
        assert info.get("multipart_downloads_enabled", False) is False


def test_artifact_proxy_wire_format(tracking_uri, unique):
    """The mlflow-artifacts proxy API exactly as the client uses it."""
    root = tracking_uri + "/api/2.0/mlflow-artifacts/artifacts"
    base = f"0/{unique}/artifacts"
    payload = os.urandom(3000)
    r = requests.put(f"{root}/{base}/d/blob.bin", data=payload,
                     headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert r.status_code == 200, r.text
    r = requests.put(f"{root}/{base}/top.txt", data=b"top",
                     headers={"Content-Type": "text/plain"}, timeout=60)
    assert r.status_code == 200, r.text

    r = requests.get(f"{root}/{base}/d/blob.bin", timeout=60)
    assert r.status_code == 200 and r.content == payload

    r = requests.get(root, params={"path": base}, timeout=60)
    assert r.status_code == 200, r.text
    files = sorted(r.json()["files"], key=lambda f: f["path"])
    # paths are relative to the listed directory; file_size only for files
    assert files == [
        {"path": "d", "is_dir": True},
        {"path": "top.txt", "is_dir": False, "file_size": 3},
    ]
    r = requests.get(root, params={"path": f"{base}/d"}, timeout=60)
    assert r.json()["files"] == [{"path": "blob.bin", "is_dir": False, "file_size": 3000}]
    # a directory that does not exist lists as empty
    r = requests.get(root, params={"path": f"{base}/nope"}, timeout=60)
    assert r.status_code == 200 and r.json().get("files", []) == []
