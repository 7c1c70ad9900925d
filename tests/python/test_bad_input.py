"""Malformed and invalid requests over raw HTTP.

Every invalid request must get a 4xx with a JSON body carrying ``error_code``
and ``message`` -- never a 5xx, never a success.  Cases where the reference
``mlflow server`` (3.17) answers differently are marked ``keel_only`` with a
comment saying what MLflow does; Keel keeps the stricter behaviour.
"""

from __future__ import annotations

import uuid

import pytest
import requests

TIMEOUT = 60
JSON = {"Content-Type": "application/json"}
UNKNOWN_RUN = "f" * 32
UNKNOWN_EXP = "987654321"


def assert_error(resp, status=None, codes=None):
    """The response is a client error with MLflow's JSON error shape."""
    assert 400 <= resp.status_code < 500, (
        f"expected 4xx, got {resp.status_code}: {resp.text[:500]}"
    )
    if status is not None:
        assert resp.status_code == status, f"{resp.status_code}: {resp.text[:500]}"
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"error body is not JSON: {resp.text[:500]!r}")
    assert isinstance(body, dict), body
    assert isinstance(body.get("error_code"), str) and body["error_code"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if codes is not None:
        if isinstance(codes, str):
            codes = {codes}
        assert body["error_code"] in codes, body
    return body


def post(api, path, body):
    return requests.post(api + path, json=body, timeout=TIMEOUT)


def post_raw(api, path, data, headers=JSON):
    return requests.post(api + path, data=data, headers=headers, timeout=TIMEOUT)


def get(api, path, params):
    return requests.get(api + path, params=params, timeout=TIMEOUT)


@pytest.fixture
def exp_id(api):
    r = post(api, "/experiments/create", {"name": f"bad-input-{uuid.uuid4().hex}"})
    assert r.status_code == 200, r.text
    return r.json()["experiment_id"]


@pytest.fixture
def run_id(api, exp_id):
    r = post(api, "/runs/create", {"experiment_id": exp_id, "start_time": 1})
    assert r.status_code == 200, r.text
    return r.json()["run"]["info"]["run_id"]


def get_run(api, run_id):
    r = get(api, "/runs/get", {"run_id": run_id})
    assert r.status_code == 200, r.text
    return r.json()["run"]


def run_metrics(api, run_id):
    return {m["key"]: m for m in get_run(api, run_id).get("data", {}).get("metrics", [])}


def run_params(api, run_id):
    return {p["key"]: p["value"] for p in get_run(api, run_id).get("data", {}).get("params", [])}


def run_tags(api, run_id):
    return {t["key"]: t["value"] for t in get_run(api, run_id).get("data", {}).get("tags", [])}


# --------------------------------------------------------------------------
# malformed bodies
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, data",
    [
        ("/experiments/create", '{"name": '),
        ("/runs/log-metric", "{not json"),
        ("/experiments/create", "null"),
    ],
)
def test_malformed_json(api, path, data):
    # MLflow answers 400 INVALID_PARAMETER_VALUE (it treats the body as empty
    # and complains about the first missing required field).
    assert_error(
        post_raw(api, path, data),
        status=400,
        codes={"INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST"},
    )


@pytest.mark.keel_only
@pytest.mark.parametrize(
    "path, data",
    [
        # mlflow server: 500 with an HTML body
        ("/runs/log-batch", '{"run_id": "x", "metrics": [}'),
        # mlflow server: 200 `{}` (the garbage is read as an empty search)
        ("/runs/search", "\x00\x01garbage"),
    ],
)
def test_malformed_json_keel(api, path, data):
    assert_error(
        post_raw(api, path, data),
        status=400,
        codes={"INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST"},
    )


@pytest.mark.keel_only
@pytest.mark.parametrize("data", ["[1, 2]", '"a string"', "42"])
def test_non_object_json_body(api, data):
    # mlflow server: 500 with an HTML body (unhandled exception); `null` is a 400 there.
    assert_error(
        post_raw(api, "/experiments/create", data),
        status=400,
        codes={"INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST"},
    )


# --------------------------------------------------------------------------
# wrong field types
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body",
    [
        ("/experiments/create", {"name": 123}),
        ("/experiments/create", {"name": ["a"]}),
        ("/runs/create", {"experiment_id": {"a": 1}}),
        ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": "abc", "timestamp": 1}),
        ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": 1, "timestamp": 1, "step": "x"}),
        ("/runs/log-parameter", {"run_id": "RUN", "key": "p", "value": 5}),
        ("/runs/log-batch", {"run_id": "RUN", "metrics": {"key": "x"}}),
        ("/runs/search", {"experiment_ids": ["EXP"], "max_results": "ten"}),
        ("/runs/search", {"experiment_ids": "EXP"}),
    ],
)
def test_wrong_field_types(api, run_id, exp_id, path, body):
    body = {
        k: (run_id if v == "RUN" else exp_id if v == "EXP" else v) for k, v in body.items()
    }
    if isinstance(body.get("experiment_ids"), list):
        body["experiment_ids"] = [exp_id]
    assert_error(post(api, path, body), status=400, codes="INVALID_PARAMETER_VALUE")
    assert "m" not in run_metrics(api, run_id)
    assert "p" not in run_params(api, run_id)


@pytest.mark.keel_only
def test_wrong_type_inside_log_batch(api, run_id):
    # mlflow server: a non-numeric metric value inside log-batch
    # (`"value": "zz"`) is accepted with 200.
    r = post(api, "/runs/log-batch",
             {"run_id": run_id, "metrics": [{"key": "x", "value": "zz", "timestamp": 1}]})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert run_metrics(api, run_id) == {}


def test_protobuf_json_lenient_forms_are_accepted(api, run_id):
    """Proto3 JSON allows int64 as strings and NaN/Infinity as strings.

    Non-Python clients (e.g. MLflow's Java client) send these forms, so they
    are valid input, not bad input.
    """
    r = post(api, "/runs/log-metric",
             {"run_id": run_id, "key": "s", "value": 1.5, "timestamp": "1234", "step": "7"})
    assert r.status_code == 200, r.text
    r = post(api, "/runs/log-metric",
             {"run_id": run_id, "key": "n", "value": "NaN", "timestamp": 5})
    assert r.status_code == 200, r.text
    r = post(api, "/runs/log-metric",
             {"run_id": run_id, "key": "i", "value": "Infinity", "timestamp": 5})
    assert r.status_code == 200, r.text
    r = post(api, "/runs/log-metric",
             {"run_id": run_id, "key": "ni", "value": "-Infinity", "timestamp": 5})
    assert r.status_code == 200, r.text
    r = post(api, "/runs/log-batch",
             {"run_id": run_id,
              "metrics": [{"key": "b", "value": 2, "timestamp": "9", "step": "3"}]})
    assert r.status_code == 200, r.text

    m = run_metrics(api, run_id)
    assert (int(m["s"]["timestamp"]), int(m["s"]["step"]), m["s"]["value"]) == (1234, 7, 1.5)
    assert m["n"]["value"] == "NaN"  # NaN is serialised as the string "NaN"
    # MLflow clamps +-inf to +-DBL_MAX; "Infinity" strings are also valid output.
    assert m["i"]["value"] in ("Infinity", 1.7976931348623157e308)
    assert m["ni"]["value"] in ("-Infinity", -1.7976931348623157e308)
    assert (int(m["b"]["timestamp"]), int(m["b"]["step"]), m["b"]["value"]) == (9, 3, 2.0)
    # int64 fields are written back as JSON numbers
    assert isinstance(m["s"]["timestamp"], int) and isinstance(m["s"]["step"], int)


# --------------------------------------------------------------------------
# missing required fields
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/experiments/create", {}),
        ("POST", "/experiments/create", {"name": ""}),
        ("POST", "/runs/log-metric", {"run_id": "RUN", "value": 1, "timestamp": 1}),
        ("POST", "/runs/log-metric", {"run_id": "RUN", "key": "m", "timestamp": 1}),
        ("POST", "/runs/log-metric", {"run_id": "RUN", "key": "m", "value": 1}),
        ("POST", "/runs/log-metric", {"key": "m", "value": 1, "timestamp": 1}),
        ("POST", "/runs/log-parameter", {"run_id": "RUN", "value": "v"}),
        ("POST", "/runs/set-tag", {"run_id": "RUN", "value": "v"}),
        ("POST", "/runs/log-batch", {"metrics": []}),
        ("POST", "/runs/log-batch", {"run_id": "RUN", "metrics": [{"value": 1, "timestamp": 1}]}),
        ("POST", "/runs/log-batch", {"run_id": "RUN", "metrics": [{"key": "m", "value": 1}]}),
        ("GET", "/runs/get", {}),
        ("GET", "/experiments/get", {}),
        ("GET", "/experiments/get-by-name", {}),
        ("GET", "/metrics/get-history", {"run_id": "RUN"}),
    ],
)
def test_missing_required_fields(api, run_id, method, path, body):
    body = {k: (run_id if v == "RUN" else v) for k, v in body.items()}
    r = post(api, path, body) if method == "POST" else get(api, path, body)
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert run_metrics(api, run_id) == {}


@pytest.mark.keel_only
@pytest.mark.parametrize("path", ["/runs/log-parameter", "/runs/set-tag"])
def test_missing_value_field(api, run_id, path):
    # mlflow server: a missing `value` is read as "" and accepted (200).  The
    # mlflow client always sends `"value"` (also when it is ""), so rejecting
    # a missing field does not affect it.
    r = post(api, path, {"run_id": run_id, "key": "k"})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert "k" not in run_params(api, run_id)
    assert "k" not in run_tags(api, run_id)


# --------------------------------------------------------------------------
# unknown ids
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/runs/get", {"run_id": UNKNOWN_RUN}),
        ("POST", "/runs/log-metric", {"run_id": UNKNOWN_RUN, "key": "m", "value": 1, "timestamp": 1}),
        ("POST", "/runs/log-parameter", {"run_id": UNKNOWN_RUN, "key": "p", "value": "v"}),
        ("POST", "/runs/set-tag", {"run_id": UNKNOWN_RUN, "key": "t", "value": "v"}),
        ("POST", "/runs/delete-tag", {"run_id": UNKNOWN_RUN, "key": "t"}),
        ("POST", "/runs/log-batch",
         {"run_id": UNKNOWN_RUN, "metrics": [{"key": "m", "value": 1, "timestamp": 1}]}),
        ("POST", "/runs/update", {"run_id": UNKNOWN_RUN, "status": "FINISHED"}),
        ("POST", "/runs/delete", {"run_id": UNKNOWN_RUN}),
        ("POST", "/runs/restore", {"run_id": UNKNOWN_RUN}),
        ("GET", "/experiments/get", {"experiment_id": UNKNOWN_EXP}),
        ("POST", "/runs/create", {"experiment_id": UNKNOWN_EXP}),
        ("POST", "/experiments/delete", {"experiment_id": UNKNOWN_EXP}),
        ("POST", "/experiments/restore", {"experiment_id": UNKNOWN_EXP}),
        ("POST", "/experiments/update", {"experiment_id": UNKNOWN_EXP, "new_name": "zz-unknown"}),
        ("POST", "/experiments/set-experiment-tag",
         {"experiment_id": UNKNOWN_EXP, "key": "a", "value": "b"}),
        ("GET", "/experiments/get-by-name", {"experiment_name": "no-such-experiment-xyz-123"}),
    ],
)
def test_unknown_ids_are_404(api, method, path, body):
    r = post(api, path, body) if method == "POST" else get(api, path, body)
    assert_error(r, status=404, codes="RESOURCE_DOES_NOT_EXIST")


def test_delete_unknown_tag_is_404(api, run_id):
    r = post(api, "/runs/delete-tag", {"run_id": run_id, "key": "never-set"})
    assert_error(r, status=404, codes="RESOURCE_DOES_NOT_EXIST")


def test_non_numeric_experiment_id(api):
    # mlflow server: 400 INVALID_PARAMETER_VALUE ("must be a valid integer").
    r = get(api, "/experiments/get", {"experiment_id": "not-a-number"})
    assert_error(r, codes={"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"})


@pytest.mark.keel_only
def test_metric_history_of_unknown_run_is_404(api):
    # mlflow server: 200 with an empty body `{}` for an unknown run id.
    r = get(api, "/metrics/get-history", {"run_id": UNKNOWN_RUN, "metric_key": "m"})
    assert_error(r, status=404, codes="RESOURCE_DOES_NOT_EXIST")


# --------------------------------------------------------------------------
# conflicts and state
# --------------------------------------------------------------------------


def test_duplicate_experiment_name(api):
    name = f"dup-raw-{uuid.uuid4().hex}"
    assert post(api, "/experiments/create", {"name": name}).status_code == 200
    assert_error(post(api, "/experiments/create", {"name": name}),
                 status=400, codes="RESOURCE_ALREADY_EXISTS")


def test_rename_to_existing_name(api):
    a = post(api, "/experiments/create", {"name": f"ren-a-{uuid.uuid4().hex}"}).json()
    b_name = f"ren-b-{uuid.uuid4().hex}"
    assert post(api, "/experiments/create", {"name": b_name}).status_code == 200
    # mlflow server: 400 BAD_REQUEST (with the SQL IntegrityError text as message).
    r = post(api, "/experiments/update", {"experiment_id": a["experiment_id"], "new_name": b_name})
    assert_error(r, status=400,
                 codes={"RESOURCE_ALREADY_EXISTS", "BAD_REQUEST", "INVALID_PARAMETER_VALUE"})


def test_changing_param_value_rejected(api, run_id):
    assert post(api, "/runs/log-parameter",
                {"run_id": run_id, "key": "p", "value": "one"}).status_code == 200
    r = post(api, "/runs/log-parameter", {"run_id": run_id, "key": "p", "value": "two"})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    r = post(api, "/runs/log-batch",
             {"run_id": run_id, "params": [{"key": "p", "value": "three"}]})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert run_params(api, run_id) == {"p": "one"}


def test_duplicate_param_keys_in_batch(api, run_id):
    r = post(api, "/runs/log-batch", {"run_id": run_id, "params": [
        {"key": "d", "value": "1"}, {"key": "d", "value": "2"}]})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert "d" not in run_params(api, run_id)


def test_logging_to_deleted_run_rejected(api, run_id):
    assert post(api, "/runs/delete", {"run_id": run_id}).status_code == 200
    r = post(api, "/runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": 1})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    r = post(api, "/runs/log-batch", {"run_id": run_id, "params": [{"key": "a", "value": "b"}]})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    run = get_run(api, run_id)
    assert run["info"]["lifecycle_stage"] == "deleted"
    assert run.get("data", {}).get("metrics", []) == []
    assert run.get("data", {}).get("params", []) == []


def test_create_run_in_deleted_experiment_rejected(api, exp_id):
    assert post(api, "/experiments/delete", {"experiment_id": exp_id}).status_code == 200
    r = post(api, "/runs/create", {"experiment_id": exp_id})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------
# invalid search input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flt",
    [
        "metrics.auc >>> 1",
        "foo.bar = 1",
        "params.x = unquoted",
        "metrics.auc = 'a'",
        "attributes.nope = 'x'",
        "attributes.status = 1",
        "tags.a LIKE 5",
        "metrics.auc",
        "= 'x'",
    ],
)
def test_invalid_run_filter(api, exp_id, flt):
    r = post(api, "/runs/search", {"experiment_ids": [exp_id], "filter": flt})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


@pytest.mark.keel_only
@pytest.mark.parametrize(
    "flt", ["metrics.auc > 1 AND", "params.a = 'b' and", "params.p = 'a' AND AND params.q = 'b'"]
)
def test_dangling_and_in_filter(api, exp_id, flt):
    # mlflow server: a dangling or doubled AND is silently ignored (200).
    r = post(api, "/runs/search", {"experiment_ids": [exp_id], "filter": flt})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


def test_invalid_experiment_filter(api):
    r = post(api, "/experiments/search", {"max_results": 10, "filter": "bogus stuff"})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    r = post(api, "/experiments/search", {"max_results": 10, "filter": "name = unquoted"})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    "body",
    [
        {"order_by": ["nonsense DESC ASC"]},
        {"order_by": ["metrics.a SIDEWAYS"]},
        {"page_token": "garbage!!"},
        {"max_results": 0},
        {"max_results": -1},
        {"max_results": 100000},  # MLflow's cap for runs/search is 50000
    ],
)
def test_invalid_search_params(api, exp_id, body):
    r = post(api, "/runs/search", {"experiment_ids": [exp_id], **body})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


@pytest.mark.keel_only
def test_invalid_run_view_type(api, exp_id):
    # mlflow server: an unknown enum value is ignored (200, default view).
    r = post(api, "/runs/search", {"experiment_ids": [exp_id], "run_view_type": "BOGUS"})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


@pytest.mark.keel_only
def test_invalid_run_status(api, run_id):
    # mlflow server: an unknown status enum is ignored (200, status unchanged).
    r = post(api, "/runs/update", {"run_id": run_id, "status": "BOGUS"})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert get_run(api, run_id)["info"]["status"] == "RUNNING"


# --------------------------------------------------------------------------
# MLflow's size limits
# --------------------------------------------------------------------------


def _metrics(n):
    return [{"key": f"m{i}", "value": float(i), "timestamp": 1, "step": 0} for i in range(n)]


def _params(n):
    return [{"key": f"p{i}", "value": "v"} for i in range(n)]


def _tags(n):
    return [{"key": f"t{i}", "value": "v"} for i in range(n)]


@pytest.mark.parametrize(
    "batch",
    [
        {"metrics": _metrics(1001)},
        {"params": _params(101)},
        {"tags": _tags(101)},
        {"metrics": _metrics(901), "params": _params(100)},  # 1001 entities in total
        {"metrics": _metrics(900), "params": _params(50), "tags": _tags(51)},
    ],
    ids=["1001-metrics", "101-params", "101-tags", "1001-total", "1001-total-3-kinds"],
)
def test_log_batch_over_limits(api, run_id, batch):
    r = post(api, "/runs/log-batch", {"run_id": run_id, **batch})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    # nothing of a rejected batch was written
    run = get_run(api, run_id)
    data = run.get("data", {})
    assert data.get("metrics", []) == []
    assert data.get("params", []) == []
    assert [t for t in data.get("tags", []) if not t["key"].startswith("mlflow.")] == []


def test_log_batch_at_limits_is_accepted(api, run_id):
    r = post(api, "/runs/log-batch", {"run_id": run_id, "metrics": _metrics(1000)})
    assert r.status_code == 200, r.text
    r = post(api, "/runs/log-batch", {"run_id": run_id, "params": _params(100), "tags": _tags(100)})
    assert r.status_code == 200, r.text
    r = post(api, "/runs/set-tag", {"run_id": run_id, "key": "long_tag", "value": "y" * 8000})
    assert r.status_code == 200, r.text
    assert run_tags(api, run_id)["long_tag"] == "y" * 8000
    assert len(run_metrics(api, run_id)) == 1000
    assert len(run_params(api, run_id)) == 100
    assert {k for k in run_tags(api, run_id) if k.startswith("t")} == {f"t{i}" for i in range(100)}


@pytest.mark.parametrize(
    "path, body",
    [
        ("/runs/log-parameter", {"key": "k" * 251, "value": "v"}),
        ("/runs/log-metric", {"key": "k" * 251, "value": 1, "timestamp": 1}),
        ("/runs/set-tag", {"key": "k" * 251, "value": "v"}),
        ("/runs/log-metric", {"key": "../escape", "value": 1, "timestamp": 1}),
        ("/runs/log-parameter", {"key": "a/../../b", "value": "v"}),
    ],
)
def test_bad_keys(api, run_id, path, body):
    r = post(api, path, {"run_id": run_id, **body})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert run_metrics(api, run_id) == {}
    assert run_params(api, run_id) == {}


def test_experiment_name_too_long(api):
    r = post(api, "/experiments/create", {"name": "x" * 501})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


def test_param_value_at_limit_is_accepted(api, run_id):
    r = post(api, "/runs/log-parameter", {"run_id": run_id, "key": "long", "value": "x" * 6000})
    assert r.status_code == 200, r.text
    assert run_params(api, run_id) == {"long": "x" * 6000}


@pytest.mark.parametrize(
    "path, body, limit",
    [
        ("/runs/log-parameter", {"key": "long", "value": "x" * 6001}, 6000),
        ("/runs/log-batch", {"params": [{"key": "long", "value": "x" * 6001}]}, 6000),
        ("/runs/set-tag", {"key": "long", "value": "x" * 8001}, 8000),
        ("/runs/log-batch", {"tags": [{"key": "long", "value": "x" * 8001}]}, 8000),
    ],
)
def test_too_long_values_are_truncated_like_mlflow(api, run_id, path, body, limit):
    # mlflow server (MLFLOW_TRUNCATE_LONG_VALUES defaults to true) truncates
    # param values to 6000 and tag values to 8000 characters and answers 200;
    # the client does not check, so rejecting would break `mlflow.log_param`
    # scripts that work against MLflow. Keel keeps that behaviour.
    r = post(api, path, {"run_id": run_id, **body})
    assert r.status_code == 200, r.text
    stored = {**run_params(api, run_id), **run_tags(api, run_id)}["long"]
    assert stored == "x" * limit


# --------------------------------------------------------------------------
# routing
# --------------------------------------------------------------------------


@pytest.mark.keel_only
def test_unknown_endpoint_is_json_404(api):
    # mlflow server: 404 with an HTML body.
    r = post(api, "/runs/nonexistent", {})
    assert_error(r, status=404)


@pytest.mark.keel_only
def test_wrong_method_is_json_405(api):
    # mlflow server: 405 with an HTML body.
    r = get(api, "/runs/create", {})
    assert_error(r, status=405)


@pytest.mark.parametrize(
    "path, body",
    [
        ("/runs/search", {"experiment_ids": ["EXP"], "filter": "'" * 50}),
        ("/runs/search", {"experiment_ids": ["EXP"], "filter": "params.`unterminated = 'x'"}),
        ("/runs/search", {"experiment_ids": ["EXP"], "order_by": [""]}),
        ("/experiments/search", {"max_results": 10, "order_by": ["nope ASC"]}),
        ("/experiments/create", {"name": "NEW", "tags": [{"value": "no key"}]}),
    ],
)
def test_odd_requests_rejected(api, run_id, exp_id, path, body):
    body = _subst(body, run_id, exp_id)
    assert_error(post(api, path, body), status=400, codes="INVALID_PARAMETER_VALUE")


def test_out_of_range_metric_threshold_is_not_a_server_error(api, exp_id):
    # mlflow server: 200 with no runs (the threshold parses as +inf); a 400 is fine too.
    r = post(api, "/runs/search", {"experiment_ids": [exp_id], "filter": "metrics.m > 1e999999"})
    assert r.status_code in (200, 400), r.text[:300]
    if r.status_code == 200:
        assert r.json().get("runs", []) == []
    else:
        assert_error(r, codes="INVALID_PARAMETER_VALUE")


@pytest.mark.keel_only
@pytest.mark.parametrize(
    "path, body",
    [
        # mlflow server: 500 with an HTML body for these two
        ("/runs/log-batch", {"run_id": "RUN", "metrics": [None]}),
        ("/runs/log-batch", {"run_id": "RUN", "params": ["str"]}),
        # mlflow server: 200, the wrongly typed `tags` is ignored
        ("/runs/create", {"experiment_id": "EXP", "tags": "notalist"}),
        # mlflow server: 200, an int64 overflow is accepted
        ("/runs/log-metric", {"run_id": "RUN", "key": "m", "value": 1,
                              "timestamp": 99999999999999999999999}),
    ],
)
def test_odd_requests_rejected_keel(api, run_id, exp_id, path, body):
    body = _subst(body, run_id, exp_id)
    assert_error(post(api, path, body), status=400, codes="INVALID_PARAMETER_VALUE")
    assert run_metrics(api, run_id) == {}
    assert run_params(api, run_id) == {}


def _subst(body, run_id, exp_id):
    def one(v):
        if v == "RUN":
            return run_id
        if v == "EXP":
            return exp_id
        if v == "NEW":
            return f"new-{uuid.uuid4().hex}"
        if isinstance(v, list):
            return [one(x) for x in v]
        return v

    return {k: one(v) for k, v in body.items()}


# --------------------------------------------------------------------------
# artifact proxy paths
# --------------------------------------------------------------------------


def _artifacts_root(api):
    return api.replace("/api/2.0/mlflow", "/api/2.0/mlflow-artifacts/artifacts")


def _raw_request(url, method, path_and_query, body=None):
    """Send a request line exactly as given (no client-side dot-segment removal)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(method, path_and_query, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_artifact_path_traversal_rejected(api, unique):
    import json
    import os
    import tempfile
    from urllib.parse import quote, urlsplit

    root = _artifacts_root(api)
    base_path = urlsplit(root).path
    tmp_parts = [p for p in tempfile.gettempdir().split(os.sep) if p]
    target_name = f"keel-traversal-{unique}.txt"
    escape = "/".join([".."] * 30 + tmp_parts + [target_name])
    target = os.path.join(tempfile.gettempdir(), target_name)
    try:
        # list with a path escaping the artifact root
        for p in ("../../etc", "a/../../..", "a/%2E%2E/../.."):
            r = requests.get(root, params={"path": p}, timeout=TIMEOUT)
            assert_error(r, codes={"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"})
        # download / upload with raw and percent-encoded dot segments
        for path in (
            f"{base_path}/1/{escape}",
            f"{base_path}/1/" + escape.replace("..", "%2E%2E"),
            f"{base_path}/" + quote(escape, safe=""),
        ):
            status, body = _raw_request(root, "GET", path)
            assert 400 <= status < 500, (path, status, body[:200])
            status, body = _raw_request(root, "PUT", path, body=b"pwned")
            assert 400 <= status < 500, (path, status, body[:200])
            err = json.loads(body)
            assert err["error_code"] and err["message"]
            assert not os.path.exists(target), "artifact upload escaped the artifact root"
    finally:
        if os.path.exists(target):
            os.remove(target)


def test_absolute_artifact_list_path_rejected(api):
    # mlflow server: 400 INVALID_PARAMETER_VALUE "Invalid path" for an absolute
    # `path` (the client itself always sends paths without a leading slash).
    r = requests.get(_artifacts_root(api), params={"path": "/etc"}, timeout=TIMEOUT)
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")


def test_missing_artifact_download_is_404(api, unique):
    root = _artifacts_root(api)
    r = requests.get(f"{root}/0/{unique}/artifacts/missing.txt", timeout=TIMEOUT)
    assert_error(r, status=404, codes="RESOURCE_DOES_NOT_EXIST")


@pytest.mark.keel_only
def test_nul_characters_are_a_400_on_every_backend(api, run_id):
    # PostgreSQL cannot store NUL in text; Keel refuses it at the edge on
    # every backend instead of failing inside the database with a 500.
    r = post(api, "/runs/log-parameter", {"run_id": run_id, "key": "k", "value": "a\u0000b"})
    assert_error(r, status=400, codes="INVALID_PARAMETER_VALUE")
    assert "k" not in run_params(api, run_id)
