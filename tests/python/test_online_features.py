"""Keel's feature server against Feast's, and Keel's online store end to end.

One seeded data set (``online_crosscheck.py``) is applied to Keel and to
Feast 0.67 (``feast serve``, SQLite online store) and materialized in both;
then the same HTTP requests go to both servers and the answers are compared
field by field (values with their JSON types, statuses, event timestamps),
tolerating only Keel's documented differences (see ``online_crosscheck``'s
docstring). Every Keel test runs twice: on the embedded online store (redb)
and on Redis (``KEEL_TEST_REDIS_URL``; required when ``CI=true``). Keel's
Redis keys are not namespaced per data directory, so each Keel setup here
gets its own Redis database index (``REDIS_DBS``), emptied with FLUSHDB
first: never point ``KEEL_TEST_REDIS_URL`` at a Redis whose databases 5-8
hold anything you want to keep.

* parity: a feature service, a feature list, full and short names, the
  two-key view, the on-demand view with request data; single-feature
  answers byte for byte;
* pushes and ``/write-to-online-store``: the same writes to both, equal
  answers; an older event: Feast overwrites, Keel keeps the newer one;
* bad input (Keel only): a 4xx, a JSON error object naming the field, and
  nothing written by a refused push or write, online or offline;
* ``keel features materialize``: a full run twice gives the same bytes;
  ``--incremental`` picks up rows appended to a source after the
  watermark (and not the ones before it);
* a stream feature view: events pushed over HTTP (``online_and_offline``)
  give the same window values online as the training set built by the CLI
  at the same instant, and as the events themselves say. Every slide is a
  day, so values change only at UTC midnight; a check that straddles one is
  skipped.

Float window sums and means are compared at a relative 1e-12: the window
contract leaves the order of float additions unspecified, so two engines
(or two scans of the same events) may differ in the last bits.

Feast's setup (apply, materialize, serve: ~35 s) runs in a background
thread from the first test on, while the Keel-only tests run.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

import online_crosscheck as oc

pytestmark = pytest.mark.keel_command("features", "materialize")

STORES = ("redb", "redis")
# One Redis database per Keel setup (the crosscheck, the incremental runs,
# the stream repo, the stream repo's incremental run).
REDIS_DBS = {"crosscheck": 5, "incremental": 6, "stream": 7, "stream_incremental": 8}
# 1..205: every kind of user (stale % 10 == 7, no activity % 20 == 0, no
# profile % 20 == 10, 201..205 unknown) and one more unknown id.
USERS = list(range(1, 206)) + [9999]
TOLERABLE = {"feature order", "OUTSIDE_MAX_AGE", "null timestamp sentinel",
             "on-demand over a tolerated input"}
GET = "/get-online-features"


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


def redis_base_url() -> str:
    url = os.environ.get("KEEL_TEST_REDIS_URL")
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but KEEL_TEST_REDIS_URL is not set: scripts/test starts Redis "
                    "and sets it (the Redis online store must be tested in CI)")
    pytest.skip("KEEL_TEST_REDIS_URL is not set: the Redis online store is not tested")


def store_target(store: str, data_dir: Path, purpose: str) -> oc.KeelTarget:
    """A Keel data directory on the ``store`` online store; for Redis, a
    database of its own, emptied."""
    if store == "redb":
        return oc.KeelTarget(data_dir)
    url = oc.redis_db_url(redis_base_url(), REDIS_DBS[purpose])
    oc.redis_flushdb(url)
    return oc.KeelTarget(data_dir, online_store=url)


def cli_target(target: oc.KeelTarget, server: oc.Server) -> oc.KeelTarget:
    """Where CLI commands go while ``server`` runs: through it (``--server``).
    A data directory is one process's at a time (its lifecycle store, and
    the redb online store), whichever the online store."""
    return target.via(server.url)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> oc.Dataset:
    return oc.generate(tmp_path_factory.mktemp("online-crosscheck"))


@pytest.fixture(scope="module")
def _feast_boot(dataset):
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(oc.setup_feast, dataset)
    yield future
    try:
        future.result(timeout=600).stop()
    except Exception:  # its failure was reported by the tests that needed it
        pass
    pool.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _start_feast_early(request):
    """Start Feast in the background at the first test when any selected
    test of this module needs it."""
    if any("feast" in item.fixturenames for item in request.session.items
           if item.module is request.module):
        request.getfixturevalue("_feast_boot")


@pytest.fixture(scope="module")
def feast(_feast_boot) -> oc.Server:
    return _feast_boot.result(timeout=600)


@pytest.fixture(scope="module", params=STORES)
def store(request) -> str:
    if request.param == "redis":
        redis_base_url()  # skip or fail early
    return request.param


@dataclasses.dataclass
class KeelSetup:
    store: str
    server: oc.Server
    target: oc.KeelTarget

    @property
    def index(self) -> int:
        """Distinct user ids per store: Feast is shared by both."""
        return STORES.index(self.store)


@pytest.fixture(scope="module")
def keel(store, dataset, tmp_path_factory):
    target = store_target(store, tmp_path_factory.mktemp(f"keel-{store}"), "crosscheck")
    server = oc.setup_keel(dataset, target)
    yield KeelSetup(store, server, target)
    server.stop()


def get(server, body) -> dict:
    status, got = oc.post(server, GET, body)
    assert status == 200, (body, got)
    return got


def column(body: dict, name: str) -> dict:
    names = body["metadata"]["feature_names"]
    assert name in names, (name, names)
    return body["results"][names.index(name)]


def assert_error(r: requests.Response, status: int | None = None) -> dict:
    """A 4xx (never 5xx) whose body is Keel's JSON error object."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), r.text
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], r.text
    assert isinstance(err.get("message"), str) and err["message"], r.text
    return err


def now_s() -> int:
    return int(time.time())


def utc(secs: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(secs, dt.timezone.utc)


def activity_row(user: int, at: int, **values) -> dict:
    """A user_activity row (every column) for a push or write."""
    row = {"user_id": user, "event_timestamp": utc(at), "created": utc(at),
           "clicks": 5, "spend": 12.5, "country": "zz", "is_premium": True, "sessions": 3,
           "ratio": 0.1, "last_login": utc(at - 3600), "recent_items": [1, 2],
           "weights": [0.5, 1e-05]}
    row.update(values)
    return row


ACTIVITY_FEATURES = [f"{oc.ACTIVITY.name}:{f}" for f, _ in oc.ACTIVITY.features]


# --------------------------------------------------------------------------
# bad input (Keel only)
# --------------------------------------------------------------------------

# (id, path, body(users, now) -> dict, status, field, known bug)
# ``users`` are three ids nothing else uses; a refused write must leave them
# NOT_FOUND. ``field`` is the exact field, or a prefix ending in "*".


def _push(users, now, *, bad=None, to="online", drop=None, ragged=None):
    rows = [activity_row(u, now - 60 + i) for i, u in enumerate(users)]
    body = oc.push_body(rows, to=to)
    if bad:
        col, row, value = bad
        body["df"][col][row] = value
    if drop:
        del body["df"][drop]
    if ragged:
        body["df"][ragged] = body["df"][ragged][:-1]
    return body


def _write(users, now, *, view="user_activity", bad=None, drop=None):
    body = {"feature_view_name": view, "df": _push(users, now)["df"]}
    if bad:
        col, row, value = bad
        body["df"][col][row] = value
    if drop:
        del body["df"][drop]
    return body


def _item_write(users, now, *, item_value):
    return {"feature_view_name": "user_item", "df": {
        "user_id": list(users), "item_id": ["item_a", "item_b", item_value],
        "event_timestamp": [oc.iso(now - 60)] * 3, "rating": [1.0, 2.0, 3.0], "views": [1, 2, 3]}}


def _get(body):
    return lambda users, now: body


BAD_INPUT = [
    # /get-online-features
    ("get-unknown-feature", GET, _get({"entities": {"user_id": [1]},
                                       "features": ["user_activity:clicks", "user_activity:nope"]}),
     404, "features[1]", None),
    ("get-unknown-view", GET, _get({"entities": {"user_id": [1]}, "features": ["nope:clicks"]}),
     404, "features[0]", None),
    ("get-unknown-service", GET, _get({"entities": {"user_id": [1]}, "feature_service": "nope"}),
     404, "feature_service", None),
    ("get-ref-without-view", GET, _get({"entities": {"user_id": [1]}, "features": ["clicks"]}),
     400, "features[0]", None),
    ("get-no-features", GET, _get({"entities": {"user_id": [1]}, "features": []}),
     400, "features", None),
    ("get-duplicate-short-name", GET, _get({"entities": {"user_id": [1]},
                                            "features": ["user_activity:clicks"] * 2}),
     400, "features", None),
    ("get-missing-join-key", GET, _get({"entities": {"item_id": ["item_a"]},
                                        "features": ["user_activity:clicks"]}),
     400, "entities", None),
    ("get-no-entities", GET, _get({"entities": {}, "features": ["user_activity:clicks"]}),
     400, "entities", None),
    ("get-entities-missing", GET, _get({"features": ["user_activity:clicks"]}),
     400, "entities", None),
    ("get-ragged-entities", GET, _get({"entities": {"user_id": [1, 2], "item_id": ["item_a"]},
                                       "features": ["user_item:views"]}),
     400, "entities*", None),
    ("get-string-for-integer-key", GET, _get({"entities": {"user_id": [1, "2"]},
                                              "features": ["user_activity:clicks"]}),
     400, "entities.user_id[1]", None),
    ("get-bool-key", GET, _get({"entities": {"user_id": [True]}, "features": ["user_activity:clicks"]}),
     400, "entities.user_id[0]", None),
    ("get-float-key", GET, _get({"entities": {"user_id": [1.5]}, "features": ["user_activity:clicks"]}),
     400, "entities.user_id[0]", None),
    ("get-null-key", GET, _get({"entities": {"user_id": [1, None]}, "features": ["user_activity:clicks"]}),
     400, "entities.user_id[1]", None),
    ("get-integer-for-string-key", GET, _get({"entities": {"user_id": [1], "item_id": [5]},
                                              "features": ["user_item:views"]}),
     400, "entities.item_id[0]", None),
    ("get-column-not-a-list", GET, _get({"entities": {"user_id": 1}, "features": ["user_activity:clicks"]}),
     400, "entities.user_id", None),
    ("get-odfv-without-request-data", GET, _get({"entities": {"user_id": [1]},
                                                 "features": ["spend_per_click:spend_per_click"]}),
     400, "entities", None),
    ("get-odfv-bad-request-data", GET, _get({"entities": {"user_id": [1], "discount": ["x"]},
                                             "features": ["spend_per_click:spend_per_click"]}),
     400, "entities.discount[0]", None),
    ("get-features-not-a-list", GET, _get({"entities": {"user_id": [1]},
                                           "features": "user_activity:clicks"}),
     400, "body", None),
    # /push: three rows, the bad value in the last one unless said otherwise
    ("push-unknown-source", "/push",
     lambda u, n: {**_push(u, n), "push_source_name": "nope"}, 404, "push_source_name", None),
    ("push-bad-to", "/push", lambda u, n: {**_push(u, n), "to": "somewhere"}, 400, "to",
     None),
    ("push-no-df", "/push", _get({"push_source_name": oc.PUSH_SOURCE}), 400, "df", None),
    ("push-missing-feature-column", "/push", lambda u, n: _push(u, n, drop="spend"), 400, "df", None),
    ("push-missing-key-column", "/push", lambda u, n: _push(u, n, drop="user_id"), 400, "df", None),
    ("push-missing-event-time", "/push", lambda u, n: _push(u, n, drop="event_timestamp"),
     400, "df", None),
    ("push-bad-event-time", "/push",
     lambda u, n: _push(u, n, bad=("event_timestamp", 2, "not-a-date")),
     400, "df.event_timestamp[2]", None),
    ("push-string-for-int64", "/push", lambda u, n: _push(u, n, bad=("clicks", 2, "many")),
     400, "df.clicks[2]", None),
    ("push-fraction-for-int64-row0", "/push", lambda u, n: _push(u, n, bad=("clicks", 0, 3.7)),
     400, "df.clicks[0]", None),
    ("push-string-for-bool", "/push", lambda u, n: _push(u, n, bad=("is_premium", 2, "false")),
     400, "df.is_premium[2]", None),
    ("push-int32-overflow", "/push", lambda u, n: _push(u, n, bad=("sessions", 2, 2 ** 40)),
     400, "df.sessions[2]", None),
    ("push-string-in-int-list", "/push", lambda u, n: _push(u, n, bad=("recent_items", 2, [1, "x"])),
     400, "df.recent_items[2]", None),
    ("push-number-for-string", "/push", lambda u, n: _push(u, n, bad=("country", 2, 7)),
     400, "df.country[2]", None),
    ("push-string-for-integer-key", "/push", lambda u, n: _push(u, n, bad=("user_id", 2, "x")),
     400, "df.user_id[2]", None),
    ("push-null-key", "/push", lambda u, n: _push(u, n, bad=("user_id", 2, None)),
     400, "df.user_id[2]", None),
    ("push-offline-too-bad-value", "/push",
     lambda u, n: _push(u, n, to="online_and_offline", bad=("spend", 2, "lots")),
     400, "df.spend[2]", None),
    ("push-ragged-columns", "/push", lambda u, n: _push(u, n, ragged="clicks"), 400, "df*",
     None),
    # /write-to-online-store
    ("write-unknown-view", "/write-to-online-store", lambda u, n: _write(u, n, view="nope"),
     404, "feature_view_name", None),
    ("write-on-demand-view", "/write-to-online-store",
     lambda u, n: _write(u, n, view=oc.ODFV), 404, "feature_view_name", None),
    ("write-missing-feature-column", "/write-to-online-store",
     lambda u, n: _write(u, n, drop="weights"), 400, "df", None),
    ("write-bad-value", "/write-to-online-store",
     lambda u, n: _write(u, n, bad=("spend", 2, "lots")), 400, "df.spend[2]", None),
    # The second join key's kind is wrong; Keel names the first key's column
    ("write-integer-for-second-string-key", "/write-to-online-store",
     lambda u, n: _item_write(u, n, item_value=5), 400, "df.item_id[2]", None),
]


def _field_ok(got, want: str) -> bool:
    if want.endswith("*"):
        return isinstance(got, str) and got.startswith(want[:-1])
    return got == want


def _read_back(server, users) -> dict:
    body = oc.online_body(users, features=["user_activity:clicks", "user_activity:spend"])
    return get(server, body)


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(keel, case):
    name, path, build, status, field, _ = case
    i = BAD_INPUT.index(case)
    users = [9600 + 10 * i + 1000 * keel.index + k for k in range(3)]
    now = now_s()
    body = build(users, now)
    r = requests.post(keel.server.url + path, json=json.loads(json.dumps(body, default=str)),
                      timeout=60)
    err = assert_error(r, status)
    if path != GET:
        # All or nothing: not even the good rows before the bad one.
        got = _read_back(keel.server, users)
        for name_ in ("clicks", "spend"):
            assert column(got, name_)["statuses"] == ["NOT_FOUND"] * 3, (name, got)
        if path == "/write-to-online-store" and "item_id" in body["df"]:
            ok = [(u, item) for u, item in zip(users, body["df"]["item_id"]) if isinstance(item, str)]
            pairs = get(keel.server, {"entities": {"user_id": [u for u, _ in ok],
                                                   "item_id": [i for _, i in ok]},
                                      "features": ["user_item:views"]})
            assert column(pairs, "views")["statuses"] == ["NOT_FOUND"] * len(ok), pairs
    assert _field_ok(err.get("field"), field), (name, err)
    if field.rstrip("*") not in ("body",):
        assert field.rstrip("*").split("[")[0].split(".")[0] in err["message"], err


def test_refused_push_writes_nothing_offline(keel, tmp_path):
    """A push refused for a bad value in its last row, sent online and
    offline, leaves no trace in the push log: a training set at a later time
    finds nothing for its users (while an accepted one does)."""
    users = [9500 + 1000 * keel.index + k for k in range(4)]
    now = now_s() - 30
    bad = _push(users[:3], now, to="online_and_offline", bad=("clicks", 2, "many"))
    r = requests.post(keel.server.url + "/push", json=json.loads(json.dumps(bad, default=str)),
                      timeout=60)
    assert_error(r, 400)
    good = oc.push_body([activity_row(users[3], now, clicks=41)], to="online_and_offline")
    assert oc.post(keel.server, "/push", good) == (200, "")
    ents = tmp_path / "entities.parquet"
    pq.write_table(pa.table({"user_id": pa.array(users, pa.int64()),
                             "event_timestamp": pa.array([(now + 10) * 1_000_000] * 4,
                                                         pa.int64()).cast(oc.TS)}), ents)
    table = oc.keel_training_set(keel.target.via(keel.server.url), oc.SERVICE, ents,
                                 tmp_path / "train.parquet")
    assert table.column("user_id").to_pylist() == users
    assert table.column("clicks").to_pylist() == [None, None, None, 41]


# --------------------------------------------------------------------------
# materialization through the CLI (Keel only)
# --------------------------------------------------------------------------


@dataclasses.dataclass
class IncrementalSetup:
    ds: oc.Dataset
    target: oc.KeelTarget
    server: oc.Server
    cli: oc.KeelTarget
    start: str
    end: str  # the first run's END: the watermark
    report: dict


INCR_USERS = 60


def _incr_bodies():
    users = list(range(1, INCR_USERS + 8))
    return [
        oc.online_body(users, service=oc.SERVICE),
        {"entities": {"user_id": users, "item_id": [oc.ITEMS[u % len(oc.ITEMS)] for u in users]},
         "features": ["user_item:rating", "user_activity:clicks", "user_item:views", "user_profile:tier"]},
    ]


@pytest.fixture(scope="module")
def incremental(store, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"incremental-{store}")
    anchor = now_s() - 900  # leaves room for rows after the first run's END
    ds = oc.generate(root, oc.Sizes(users=INCR_USERS), anchor=anchor)
    target = store_target(store, root / "keel", "incremental")
    oc.keel_apply(ds.keel_repo, target)
    start, end = oc.iso(anchor - 90 * oc.DAY), oc.iso(anchor + 60)
    report = oc.keel_materialize(target, start=start, end=end)
    server = oc.keel_server(target)
    yield IncrementalSetup(ds, target, server, cli_target(target, server), start, end, report)
    server.stop()


def _rows_by_view(report: dict) -> dict:
    return {v["name"]: v for v in report["views"]}


def test_full_materialize_twice_gives_the_same_bytes(incremental):
    inc = incremental
    first = _rows_by_view(inc.report)
    assert set(first) == {v.name for v in oc.VIEWS}
    for v in oc.VIEWS:
        assert first[v.name]["kind"] == "batch"
        assert first[v.name]["rows"] == inc.ds.counts[v.name]["rows"], first
    before = [requests.post(inc.server.url + GET, json=b, timeout=60) for b in _incr_bodies()]
    again = oc.keel_materialize(inc.cli, start=inc.start, end=inc.end)
    after = [requests.post(inc.server.url + GET, json=b, timeout=60) for b in _incr_bodies()]
    for b, a in zip(before, after):
        assert b.status_code == a.status_code == 200, a.text
        assert a.content == b.content
    for name, v in _rows_by_view(again).items():
        assert v["rows"] == first[name]["rows"], (v, first[name])
        assert v["start"] == first[name]["start"] and v["end"] == first[name]["end"], v
    # ... and the answer is the files' (file oracle; stale rows are OUTSIDE_MAX_AGE)
    for body, r in zip(_incr_bodies(), after):
        want = oc.expected_response(inc.ds, body, null_timestamp=None)
        res = oc.compare_online(want, r.json(), request=body)
        assert res["differences"] == [], res


def test_incremental_materialize_picks_up_rows_after_the_watermark(incremental):
    inc = incremental
    watermark = int(oc.parse_ts(inc.end))
    now = now_s()
    assert now - watermark > 300, "the fixture leaves room after its END"
    path = inc.ds.source(oc.ACTIVITY)
    old = pq.read_table(path)
    template = old.slice(0, 1).to_pylist()[0]
    new_rows = []
    # (user, seconds after the watermark, clicks): existing users get newer
    # events (1 fresh, 7 stale until now), 61..63 are new; 64's row is late:
    # before the watermark, so only a full run brings it.
    for user, after, clicks in ((1, 120, 4001), (7, 180, 4007), (61, 60, 4061),
                                (62, 240, 4062), (63, 200, 4063), (64, -120, 4064)):
        at = utc(watermark + after)
        new_rows.append({**template, "user_id": user, "event_timestamp": at, "created": at,
                         "clicks": clicks})
    table = pa.concat_tables([old, pa.Table.from_pylist(new_rows, schema=old.schema)])
    pq.write_table(table, path)  # a new version of the source file

    report = _rows_by_view(oc.keel_materialize(inc.cli, incremental=True))
    act = report[oc.ACTIVITY.name]
    assert act["start"] == watermark * 1_000_000, act
    assert act["rows"] == 5 and act["entities_written"] == 5, act
    assert act["end"] >= now * 1_000_000, act
    for v in (oc.PROFILE, oc.USER_ITEM):
        assert report[v.name]["rows"] == 0 and report[v.name]["start"] == watermark * 1_000_000

    latest = oc.latest_rows(inc.ds, oc.ACTIVITY)
    without_late = {k: r for k, r in latest.items() if k != (64,)}
    for body in _incr_bodies():
        got = get(inc.server, body)
        want = oc.expected_response(inc.ds, body, null_timestamp=None,
                                    rows={oc.ACTIVITY.name: without_late})
        res = oc.compare_online(want, got, request=body)
        assert res["differences"] == [], res
    got = get(inc.server, oc.online_body([1, 7, 61, 62, 63, 64], features=["user_activity:clicks"]))
    clicks = column(got, "clicks")
    assert clicks["values"] == [4001, 4007, 4061, 4062, 4063, None], got
    assert clicks["statuses"] == ["PRESENT"] * 5 + ["NOT_FOUND"], got

    # A second incremental run has nothing new; a full run brings the late row.
    again = _rows_by_view(oc.keel_materialize(inc.cli, incremental=True))
    assert again[oc.ACTIVITY.name]["rows"] == 0, again
    oc.keel_materialize(inc.cli, start=inc.start)
    got = get(inc.server, oc.online_body([64], features=["user_activity:clicks"]))
    assert column(got, "clicks")["values"] == [4064], got


# --------------------------------------------------------------------------
# stream feature views: online windows == training set == the events
# --------------------------------------------------------------------------


@dataclasses.dataclass
class StreamSetup:
    sds: oc.StreamDataset
    target: oc.KeelTarget
    server: oc.Server
    cli: oc.KeelTarget
    events: list  # every event: the file's and the pushed ones
    pushed: int


STREAM_USERS = list(range(1, 15)) + [99]  # 99: never seen


def _push_stream(server, events, chunk=50):
    for i in range(0, len(events), chunk):
        body = oc.stream_push_body(events[i:i + chunk], nanos=(i // chunk) % 3 == 1)
        assert oc.post(server, "/push", body) == (200, ""), body


@pytest.fixture(scope="module")
def stream(store, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"stream-{store}")
    now = now_s()
    sds = oc.generate_stream(root, now=now)
    target = store_target(store, root / "keel", "stream")
    oc.keel_apply(sds.repo, target)
    report = _rows_by_view(oc.keel_materialize(target))
    assert report[oc.STREAM_VIEW]["kind"] == "stream"
    assert report[oc.STREAM_VIEW]["rows"] == len(sds.file_events)
    server = oc.keel_server(target)
    rng = np.random.default_rng(7)
    taken = {(e["user_id"], e["event_timestamp"]) for e in sds.file_events}
    # 300 events of users 1..12 over the last 4 days, a third of them in the
    # last 3 hours; 11 and 12 are only pushed, never in the file.
    pushed = oc.stream_events(rng, range(1, 13), 300, now, 4 * oc.DAY, taken, recent_share=1 / 3)
    midnight = now // oc.DAY * oc.DAY
    if now - midnight > 30:  # 13: only events since midnight (no window has them yet)
        pushed += oc.stream_events(rng, [13], 5, now, now - midnight, taken)
    # 14: only events 8-9 days old (older than every window)
    pushed += [{"user_id": 14, "event_timestamp": now - 8 * oc.DAY - k * 3600, "clicks": k,
                "spend": 1.0 + k} for k in range(3)]
    order = rng.permutation(len(pushed))  # out of order
    pushed = [pushed[i] for i in order]
    _push_stream(server, pushed)
    yield StreamSetup(sds, target, server, cli_target(target, server),
                      sds.file_events + pushed, len(pushed))
    server.stop()


def _same_day(t0: float, t1: float) -> None:
    if int(t0 // oc.DAY) != int(t1 // oc.DAY):
        pytest.skip("the check straddled a UTC midnight, when every window moves; run again")


def _read_stream(server) -> tuple[dict, float]:
    """The service's answer and the instant it answers for."""
    t = time.time()
    got = get(server, {"entities": {"user_id": STREAM_USERS}, "feature_service": oc.STREAM_SERVICE})
    _same_day(t, time.time())
    return got, t


def _training_set(target, t: float, tmp_path: Path) -> dict:
    ents = tmp_path / "stream_entities.parquet"
    pq.write_table(pa.table({
        "user_id": pa.array(STREAM_USERS, pa.int64()),
        "event_timestamp": pa.array([int(t * 1_000_000)] * len(STREAM_USERS), pa.int64()).cast(oc.TS),
    }), ents)
    table = oc.keel_training_set(target, oc.STREAM_SERVICE, ents, tmp_path / "stream_train.parquet")
    assert table.column("user_id").to_pylist() == STREAM_USERS
    return table.to_pydict()


# Floats of sums and means: equal up to the order of the additions (online:
# per-bucket partials in arrival order; offline: the window kernel's; here:
# Python's). Bit-exactness with the training set is its own test.
FLOAT_REL = 1e-12


def _stream_differences(online: dict, training: dict, ref: dict, rel: float = FLOAT_REL,
                        against_events: bool = True) -> list[str]:
    """Online against the training set and against the events, value by value
    (JSON types included: a count is an integer, a mean a float)."""
    diffs = []
    seen = ref["__seen"]
    names = [n for *_, n in oc.STREAM_AGGS] + ["clicks", "spend"]
    assert online["metadata"]["feature_names"] == ["user_id"] + names, online["metadata"]
    for name in names:
        col = column(online, name)
        for i, u in enumerate(STREAM_USERS):
            o, tr, want = col["values"][i], training[name][i], ref[name][i]
            if not seen[i]:
                # Never seen online: no row (NOT_FOUND, null); the training
                # set has count 0 and nulls (documented in Keel's own tests).
                if (o, col["statuses"][i], col["event_timestamps"][i]) != (None, "NOT_FOUND", oc.EPOCH):
                    diffs.append(f"{name}[user {u}]: unseen user answered {o!r} {col['statuses'][i]}")
                if tr != (0 if name.startswith("events_") else None):
                    diffs.append(f"{name}[user {u}]: training set {tr!r} for an unseen user")
                continue
            if col["statuses"][i] != "PRESENT":
                diffs.append(f"{name}[user {u}]: status {col['statuses'][i]}")
            if col["event_timestamps"][i] != oc.ts_str(ref["__latest"][i]):
                diffs.append(f"{name}[user {u}]: event time {col['event_timestamps'][i]}, "
                             f"the latest event is {oc.ts_str(ref['__latest'][i])}")
            if not oc._same_value(o, tr, rel):
                diffs.append(f"{name}[user {u}]: online {o!r} != training set {tr!r}")
            if against_events and not oc._same_value(o, want, FLOAT_REL):
                diffs.append(f"{name}[user {u}]: online {o!r} != the events' {want!r}")
    return diffs


def test_stream_windows_online_equal_the_training_set(stream, tmp_path):
    online, t = _read_stream(stream.server)
    training = _training_set(stream.target.via(stream.server.url), t, tmp_path)
    ref = oc.window_reference(stream.events, STREAM_USERS, t)
    assert _stream_differences(online, training, ref) == []
    # The data is not trivial: windows with events, and users whose windows are empty.
    counts = column(online, "events_1d")["values"]
    assert sum(c or 0 for c in counts) >= 30, counts
    assert counts[STREAM_USERS.index(14)] == 0, counts
    assert sum(v is not None for v in column(online, "spend_mean_7d")["values"]) >= 12
    week = sum(1 for e in stream.events if t - 7 * oc.DAY < e["event_timestamp"] <= t)
    assert week >= 250, week


def _stream_body(server) -> requests.Response:
    r = requests.post(server.url + GET, json={
        "entities": {"user_id": STREAM_USERS}, "feature_service": oc.STREAM_SERVICE}, timeout=60)
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("span", ["whole-history", "start-end"])
def test_stream_full_rematerialize_rebuilds_the_same_windows(stream, span, tmp_path):
    """A full run replays every event (the source file's and the push log's)
    into the windows: they are the ones the pushes built (floats up to
    rounding, #5) and the training set's, and two full runs give the same
    bytes. An explicit --start/--end around every event must give the same
    values (the CLI's help: "running it twice writes the same values")."""
    t0 = time.time()
    before = _stream_body(stream.server)
    start, end = oc.iso(int(t0) - 30 * oc.DAY), oc.iso(int(t0))
    try:
        if span == "whole-history":
            report = _rows_by_view(oc.keel_materialize(stream.cli))
            first = _stream_body(stream.server)
            oc.keel_materialize(stream.cli)
        else:
            report = _rows_by_view(oc.keel_materialize(stream.cli, start=start, end=end))
        after = _stream_body(stream.server)
        t1 = time.time()
        _same_day(t0, t1)
        # Every event once: the source file's and the push log's.
        assert report[oc.STREAM_VIEW]["rows"] == len(stream.events), report
        assert report[oc.STREAM_BATCH_VIEW]["rows"] == len(stream.events), report
        # The windows the full run rebuilt are the ones the pushes built
        # (float sums up to the order of additions, see #5) and the training set's.
        ref = oc.window_reference(stream.events, STREAM_USERS, t1)
        training = _training_set(stream.target.via(stream.server.url), t1, tmp_path)
        diffs = _stream_differences(after.json(), training, ref)
        assert diffs == []
        b, a = before.json(), after.json()
        assert a["metadata"] == b["metadata"]
        for x, y in zip(a["results"], b["results"]):
            assert x["statuses"] == y["statuses"] and x["event_timestamps"] == y["event_timestamps"]
            assert all(oc._same_value(p, q, FLOAT_REL) for p, q in zip(x["values"], y["values"])), (x, y)
        if span == "whole-history":
            # Two full runs over the same events: the same values (float sums
            # up to the order the scan delivers the events in).
            f_, a_ = first.json(), after.json()
            assert f_["metadata"] == a_["metadata"]
            for x, y in zip(a_["results"], f_["results"]):
                assert x["statuses"] == y["statuses"] and x["event_timestamps"] == y["event_timestamps"]
                assert all(oc._same_value(p, q, FLOAT_REL) for p, q in zip(x["values"], y["values"]))
    finally:
        if span != "whole-history":  # leave correct windows to the tests after this one
            oc.keel_materialize(stream.cli)


def test_stream_incremental_materialize_after_pushes(store, tmp_path):
    """Materialize up to a CUT (yesterday 18:00 UTC), push events on both
    sides of it (online and offline), then ``materialize --incremental``:
    the window values must still be the training set's, every event counted
    once."""
    now = now_s()
    midnight = now // oc.DAY * oc.DAY
    cut = midnight - 6 * 3600
    sds = oc.generate_stream(tmp_path / "data", now=now, file_users=range(1, 7), per_user=6)
    target = store_target(store, tmp_path / "keel", "stream_incremental")
    oc.keel_apply(sds.repo, target)
    oc.keel_materialize(target, end=oc.iso(cut))
    with oc.keel_server(target) as server:
        rng = np.random.default_rng(11)
        taken = {(e["user_id"], e["event_timestamp"]) for e in sds.file_events}
        taken |= {(u, cut) for u in range(1, 9)}  # nothing exactly at the watermark
        pushed = oc.stream_events(rng, range(1, 9), 120, now, 3 * oc.DAY, taken)
        _push_stream(server, pushed)
        events = sds.file_events + pushed
        report = _rows_by_view(oc.keel_materialize(cli_target(target, server), incremental=True))
        # A stream view is rebuilt from every event its windows can still
        # count (the longest window plus two slides), whatever the range.
        lookback = max(w + 2 * (s or w) for _, _, w, s, _ in oc.STREAM_AGGS) * oc.DAY
        end = report[oc.STREAM_VIEW]["end"] / 1e6
        recent = [e for e in events if e["event_timestamp"] >= end - lookback]
        assert report[oc.STREAM_VIEW]["rows"] == len(recent), report
        online, t = _read_stream(server)
        training = _training_set(target.via(server.url), t, tmp_path)
    ref = oc.window_reference(events, STREAM_USERS, t)
    diffs = _stream_differences(online, training, ref)  # 9..14 and 99: never seen here
    pushed_after_cut = [e for e in pushed if e["event_timestamp"] > cut]
    assert pushed_after_cut, "the data pushes events after the watermark"
    assert diffs == []


# --------------------------------------------------------------------------
# Keel == Feast
# --------------------------------------------------------------------------

MIXED = ["user_profile:score", "user_activity:spend", "user_profile:age", "user_activity:clicks",
         "user_activity:last_login", "user_profile:tier", "user_activity:weights"]


def _two_key_body(ds: oc.Dataset, full: bool) -> dict:
    pairs = sorted(oc.latest_rows(ds, oc.USER_ITEM))[:40]
    pairs += [(1, "item_zz"), (9999, "item_a"), (7, pairs[0][1]), (20, "item_b")]
    return {"entities": {"item_id": [i for _, i in pairs], "user_id": [u for u, _ in pairs]},
            "features": ["user_item:rating", "user_activity:clicks", "user_item:views",
                         "user_profile:tier"],
            "full_feature_names": full}


def _odfv_body(full: bool) -> dict:
    users = USERS[:80] + [9999]
    return oc.online_body(users, discount=[round(0.05 * (u % 10), 2) for u in users],
                          full_feature_names=full,
                          features=[f"{oc.ODFV}:spend_per_click", "user_activity:clicks",
                                    f"{oc.ODFV}:discounted_spend", "user_profile:age"])


CROSSCHECK = {
    "service": lambda ds: oc.online_body(USERS, service=oc.SERVICE),
    "service-full-names": lambda ds: oc.online_body(USERS, service=oc.SERVICE, full_feature_names=True),
    "features": lambda ds: oc.online_body(USERS, features=MIXED),
    "features-full-names": lambda ds: oc.online_body(USERS, features=MIXED, full_feature_names=True),
    "two-keys": lambda ds: _two_key_body(ds, False),
    "two-keys-full-names": lambda ds: _two_key_body(ds, True),
    "odfv-request-data": lambda ds: _odfv_body(False),
    "odfv-request-data-full-names": lambda ds: _odfv_body(True),
}


@pytest.mark.parametrize("case", list(CROSSCHECK))
def test_keel_answers_what_feast_answers(dataset, feast, keel, case):
    body = CROSSCHECK[case](dataset)
    f, k = get(feast, body), get(keel.server, body)
    res = oc.compare_online(f, k, request=body, null_timestamp_as_null=True)
    assert res["differences"] == [], res
    assert set(res["tolerated"]) <= TOLERABLE, res
    full = body.get("full_feature_names")
    name = (lambda v, f_: f"{v}__{f_}") if full else (lambda v, f_: f_)
    keys = [k_ for k_ in body["entities"] if k_ in ("user_id", "item_id")]
    if body.get("feature_service"):
        # Keel: join keys, then the service's features in its order.
        want = keys + [name(oc.ACTIVITY.name, f_) for f_, _ in oc.ACTIVITY.features] \
            + [name(oc.PROFILE.name, "age")]
        assert k["metadata"]["feature_names"] == want
        # what the comparison rests on is in the data
        assert res["tolerated"].get("OUTSIDE_MAX_AGE", 0) >= 9 * 20, res
        assert res["tolerated"].get("null timestamp sentinel", 0) >= 1, res
    else:
        want = keys + [name(*r.split(":")) for r in body["features"]]
        assert k["metadata"]["feature_names"] == want
    if not any(r.startswith(oc.ODFV + ":") for r in body.get("features", [])):
        # Keel against the files themselves, too
        oracle = oc.expected_response(dataset, body, null_timestamp=None)
        res2 = oc.compare_online(oracle, k, request=body)
        assert res2["differences"] == [], res2


def test_the_comparison_is_not_blind(dataset, feast, keel):
    """What the parity tests rest on: the comparator flags a changed value,
    JSON type, status, event time, order or row, and tolerates a deviation
    only where it is documented to apply."""
    body = CROSSCHECK["features"](dataset)
    f, k = get(feast, body), get(keel.server, body)
    assert oc.compare_online(f, k, request=body, null_timestamp_as_null=True)["differences"] == []
    clicks = column(k, "clicks")
    fresh = next(i for i, u in enumerate(USERS) if clicks["statuses"][i] == "PRESENT"
                 and clicks["values"][i] not in (None, 0))
    login = column(k, "last_login")
    with_login = next(i for i, v in enumerate(login["values"]) if isinstance(v, int))

    def mutated(name, *cells):
        """A copy of Keel's answer with ``(field, row, value)`` set in column ``name``."""
        k2 = copy.deepcopy(k)
        for field, row, value in cells:
            column(k2, name)[field][row] = value
        return k2

    v = clicks["values"][fresh]
    cases = {
        "value": mutated("clicks", ("values", fresh, v + 1)),
        "int as float": mutated("clicks", ("values", fresh, float(v))),
        "status": mutated("clicks", ("statuses", fresh, "NOT_FOUND")),
        "event time": mutated("clicks", ("event_timestamps", fresh, oc.EPOCH)),
        "expired a fresh row": mutated("clicks", ("values", fresh, None),
                                       ("statuses", fresh, "OUTSIDE_MAX_AGE")),
        "nulled a timestamp": mutated("last_login", ("values", with_login, None)),
    }
    short = copy.deepcopy(k)
    for field in ("values", "statuses", "event_timestamps"):
        column(short, "age")[field].pop()
    cases["a row less"] = short
    swapped = copy.deepcopy(k)
    names = swapped["metadata"]["feature_names"]
    i, j = names.index("spend"), names.index("clicks")
    names[i], names[j] = names[j], names[i]
    swapped["results"][i], swapped["results"][j] = swapped["results"][j], swapped["results"][i]
    cases["request order"] = swapped
    for what, k2 in cases.items():
        res = oc.compare_online(f, k2, request=body, null_timestamp_as_null=True)
        assert res["differences"], what
    # an older write is tolerated only for the keys it names
    older = mutated("clicks", ("event_timestamps", fresh, oc.ts_str(time.time())))
    assert oc.compare_online(f, older, request=body, older_writes="any",
                             null_timestamp_as_null=True)["differences"] == []
    assert oc.compare_online(f, older, request=body, null_timestamp_as_null=True,
                             older_writes=[(oc.ACTIVITY.name, USERS[fresh] + 1)])["differences"]


FRESH = [u for u in range(1, 121) if not oc.stale_user(u)] + [9999]
SINGLE = ACTIVITY_FEATURES + ["user_profile:age", "user_profile:tier", "user_profile:score"]


@pytest.mark.parametrize("feature", SINGLE + ["user_item:rating"])
def test_single_feature_answers_are_byte_identical(dataset, feast, keel, feature):
    """One feature (so no order to differ), users with no expired rows: the
    raw bodies are equal byte for byte (number formats, escapes, spacing),
    up to Feast's null-timestamp sentinel, which Keel answers as null."""
    body = oc.online_body(FRESH, features=[feature], full_feature_names=feature.endswith("age"))
    if feature.startswith("user_item:"):
        body["entities"]["item_id"] = [oc.ITEMS[u % len(oc.ITEMS)] for u in FRESH]
    f = requests.post(feast.url + GET, json=body, timeout=60)
    k = requests.post(keel.server.url + GET, json=body, timeout=60)
    assert f.status_code == k.status_code == 200, (f.text[:300], k.text[:300])
    feast_text = f.text
    if feature == "user_activity:last_login":
        feast_text = feast_text.replace(str(oc.INT64_MIN), "null")
    assert oc.raw_differences(feast_text, k.text) == []
    assert k.headers["content-type"] == "application/json"


def _push_both(feast, keel, body) -> None:
    for server in (feast, keel.server):
        r = requests.post(server.url + "/push", json=body, timeout=60)
        assert (r.status_code, r.content) == (200, b""), (server.name, r.status_code, r.text)


def test_pushes_answer_the_same_and_keel_keeps_the_newest_event(feast, keel):
    base = 9100 + 100 * keel.index
    now = now_s()
    users = [base + i for i in range(6)]
    # Rows without nulls go in one push; a row with nulls goes alone: Feast
    # reads a push through pandas, where a null turns an int column into
    # floats (2**53 + 1 loses its last bit) and a timestamp column into the
    # null sentinel for every row.
    together = [
        activity_row(users[0], now - 600),
        activity_row(users[3], now - 570, clicks=9007199254740993, spend=123456789.125,
                     ratio=16777217.0, recent_items=[-1, 0, 2 ** 40], weights=[]),
    ]
    alone = [
        activity_row(users[1], now - 590, clicks=None, spend=0.30000000000000004, country="zürich",
                     is_premium=False, sessions=-3, ratio=2.75, last_login=None,
                     recent_items=[], weights=[1e16, -0.0]),
        activity_row(users[2], now - 580, spend=None, country="日本 \"q\"\n", is_premium=None,
                     sessions=None, ratio=None, recent_items=None, weights=None),
    ]
    _push_both(feast, keel, oc.push_body(together))
    for row in alone:
        _push_both(feast, keel, oc.push_body([row]))
    # users[4]: event and created times as integer nanoseconds (both read
    # numbers as ns)
    ns_row = oc.push_body([activity_row(users[4], now - 560, clicks=44)])
    ns_row["df"]["event_timestamp"] = [(now - 560) * 1_000_000_000]
    ns_row["df"]["created"] = [(now - 560) * 1_000_000_000]
    _push_both(feast, keel, ns_row)
    read = oc.online_body(users, features=ACTIVITY_FEATURES)
    f, k = get(feast, read), get(keel.server, read)
    res = oc.compare_online(f, k, request=read, null_timestamp_as_null=True)
    assert res["differences"] == [], res
    assert column(k, "clicks")["values"] == [5, None, 5, 9007199254740993, 44, None], k
    assert column(k, "clicks")["statuses"] == ["PRESENT"] * 5 + ["NOT_FOUND"]
    assert column(k, "clicks")["event_timestamps"][4] == oc.ts_str(now - 560)
    assert column(k, "last_login")["values"][1] is None

    # A newer event for users[0]: both take it.
    _push_both(feast, keel, oc.push_body([activity_row(users[0], now - 60, clicks=111)]))
    f, k = get(feast, read), get(keel.server, read)
    res = oc.compare_online(f, k, request=read, null_timestamp_as_null=True)
    assert res["differences"] == [], res
    assert column(k, "clicks")["values"][0] == column(f, "clicks")["values"][0] == 111

    # An older event for users[0] (5 hours back): Feast overwrites the newer
    # row, Keel keeps it — the one documented difference, per feature.
    _push_both(feast, keel, oc.push_body([activity_row(users[0], now - 5 * 3600, clicks=222,
                                                       country="old")]))
    f, k = get(feast, read), get(keel.server, read)
    assert column(f, "clicks")["values"][0] == 222
    assert column(f, "country")["values"][0] == "old"
    assert column(f, "clicks")["event_timestamps"][0] == oc.ts_str(now - 5 * 3600)
    assert column(k, "clicks")["values"][0] == 111
    assert column(k, "country")["values"][0] == "zz"
    assert column(k, "clicks")["event_timestamps"][0] == oc.ts_str(now - 60)
    res = oc.compare_online(f, k, request=read, null_timestamp_as_null=True,
                            older_writes=[(oc.ACTIVITY.name, users[0])])
    assert res["differences"] == [], res
    # every feature of that row differs (its event time at least)
    assert res["tolerated"].get("older write kept newer") == len(ACTIVITY_FEATURES), res


def test_write_to_online_store_answers_the_same(feast, keel):
    base = 9300 + 100 * keel.index
    now = now_s()
    users = [base + i for i in range(3)]
    writes = [
        {"feature_view_name": oc.ACTIVITY.name, "df": oc.push_body([
            activity_row(users[0], now - 300, clicks=7),
            activity_row(users[1], now - 200, clicks=None, country="", weights=[0.1]),
        ])["df"]},
        {"feature_view_name": oc.PROFILE.name, "df": {
            "user_id": users, "updated_at": [oc.iso(now - 100 * 86400), oc.iso(now - 50), oc.iso(now)],
            "age": [30, 41, 2 ** 53 + 1], "tier": ["pro", "free", None], "score": [0.5, 1e-05, None]}},
        # nulls in an int column: alone (see the push test); not *all* null:
        # Feast drops a row whose features are all null, Keel writes it.
        {"feature_view_name": oc.PROFILE.name, "df": {
            "user_id": [users[1]], "updated_at": [oc.iso(now - 40)], "age": [None],
            "tier": ["plus"], "score": [None]}},
        {"feature_view_name": oc.USER_ITEM.name, "df": {
            "user_id": [users[0], users[0], users[2]], "item_id": ["item_z", "item_a", "item_z"],
            "event_timestamp": [oc.iso(now - 10)] * 3, "rating": [4.5, None, 1.0], "views": [3, 4, None]}},
    ]
    for w in writes:
        for server in (feast, keel.server):
            r = requests.post(server.url + "/write-to-online-store", json=w, timeout=60)
            assert (r.status_code, r.text) == (200, "null"), (server.name, w["feature_view_name"], r.text)
    pairs = [(users[0], "item_z"), (users[0], "item_a"), (users[2], "item_z"), (users[1], "item_z")]
    read = {"entities": {"user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs]},
            "features": ["user_item:views", "user_activity:clicks", "user_profile:age",
                         "user_item:rating", "user_profile:score", "user_activity:country",
                         "user_profile:tier", "user_activity:weights"]}
    f, k = get(feast, read), get(keel.server, read)
    res = oc.compare_online(f, k, request=read, null_timestamp_as_null=True)
    assert res["differences"] == [], res
    assert column(k, "views")["values"] == [3, 4, None, None]
    assert column(k, "views")["statuses"] == ["PRESENT"] * 3 + ["NOT_FOUND"]
    assert column(k, "age")["values"] == [30, 30, 2 ** 53 + 1, None]

    # An older write: Feast overwrites, Keel keeps the newer row.
    older = {"feature_view_name": oc.ACTIVITY.name,
             "df": oc.push_body([activity_row(users[0], now - 7200, clicks=70)])["df"]}
    for server in (feast, keel.server):
        r = requests.post(server.url + "/write-to-online-store", json=older, timeout=60)
        assert (r.status_code, r.text) == (200, "null"), r.text
    f, k = get(feast, read), get(keel.server, read)
    assert column(f, "clicks")["values"][:2] == [70, 70]
    assert column(k, "clicks")["values"][:2] == [7, 7]
    res = oc.compare_online(f, k, request=read, null_timestamp_as_null=True,
                            older_writes=[(oc.ACTIVITY.name, users[0])])
    assert res["differences"] == [], res
