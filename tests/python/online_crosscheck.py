"""One seeded online-serving data set, served twice: by Keel (``keel server``)
and by Feast's Python feature server (``feast serve``, Feast 0.67, SQLite
online store); plus a small stream repo for Keel's windowed aggregations.
Used by ``test_online_features.py``; self-contained (numpy, pyarrow,
requests; Feast only for the Feast half).

The batch data set (``generate``), seeded and vectorised, placed just before
an ``anchor`` time (default: now, to the second) because both Keel's ttl
check and the tests look at the wall clock:

* ``user_activity`` (ttl 1 day; source ``user_activity_push``, which is a
  push source in both systems) has one column of every type the online path
  encodes: int64, float64, string, bool, int32, float32, timestamp,
  list<int64>, list<float64>; about 4% of each column is null (some lists
  are empty, which is not null). Every user has ``events_per_user`` events
  in the hours before the anchor, except the *stale* users (``user_id % 10
  == 7``) whose events are 2-3 days old. A tenth of the events have a twin
  at the same (user, event time) with another ``created`` time and other
  values: the larger ``created`` must win. Users with ``user_id % 20 == 0``
  have no activity.
* ``user_profile`` (ttl 0 = never expires, no created column): a few
  updates per user over the last 60 days; ``user_id % 20 == 10`` has none.
* ``user_item`` (ttl 7 days) keyed by (user_id INT64, item_id STRING): a
  few (user, item) pairs per user in the last 2 days.
* ``spend_per_click`` (on-demand): ``spend / NULLIF(clicks, 0)`` and
  ``spend * (1 - discount)``, ``discount`` from the request source
  ``checkout_request`` (Feast: a pandas-mode ODFV).
* service ``user_features``: all of user_activity, and user_profile:age.

User ids run 1..users; larger ids exist nowhere. ``keel_repo/`` (YAML) and
``feast_repo/`` (Python) describe the same files.

Where Keel deliberately differs from Feast 0.67 (``compare_online`` tolerates
exactly these, each only where it applies):

* features in request order (a service: in service order), join keys first;
  Feast orders view by view, and by ``set`` order within a view (it changes
  with the process's hash seed), so results are matched by name;
* a row older than its view's ttl is ``OUTSIDE_MAX_AGE`` with a null value
  (the event timestamp kept); Feast's online read ignores the ttl. An
  on-demand feature over such a row may differ too;
* an older pushed or written event never replaces a newer one online (Feast
  overwrites unconditionally);
* a null ``timestamp`` feature is null (Feast answers its stored sentinel
  -9223372036854775808, status PRESENT);
* errors are JSON objects ``{"error": {"code", "message", "field"}}`` with
  400/404 (Feast: a JSON string, with 500, 404 or 422); a join key of the
  wrong kind (``"1"`` for an integer key, ``true``, ``1.5``) is a 400 (Feast
  coerces it);
* on-demand features are kept with full feature names.

Both servers agree on the rest: the JSON shape, value encodings (float32
widened then written as Python's ``repr``, timestamps as Unix seconds,
lists, NaN as null), statuses ``PRESENT``/``NOT_FOUND``, event times as
``YYYY-MM-DDTHH:MM:SSZ``, numeric event times in pushes read as nanoseconds,
``200`` with an empty body for ``/push`` and ``null`` for
``/write-to-online-store``.

Processes: ``setup_feast`` (``feast apply``, ``feast materialize``, ``feast
serve``: the ``feast`` CLI next to ``sys.executable``) and ``keel_*``
(``$KEEL_BIN``, default ``target/debug/keel``), each server in its own
process group with its output in files. Redis online stores: ``redis_db_url``
picks a database index and ``redis_flushdb`` empties it (raw RESP over a
socket; Keel's keys are not namespaced by data directory, so every Keel setup
that shares a Redis gets its own database index).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAY = 86_400
TS = pa.timestamp("us", tz="UTC")
PROJECT = "keel_online"
SERVICE = "user_features"
PUSH_SOURCE = "user_activity_push"
REQUEST_SOURCE = "checkout_request"
COUNTRIES = ["de", "fr", "nl", "pl", "se", "us", "br", "jp", "in", "ke"]
TIERS = ["free", "plus", "pro"]
ITEMS = [f"item_{c}" for c in "abcdefgh"]
START_TIMEOUT_S = 120.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class View:
    name: str
    source: str  # the Keel source's name (Feast: the FileSource's, unless pushed)
    path: str  # relative to the Keel repo folder
    entities: tuple[str, ...]
    timestamp_field: str
    created_field: str | None
    ttl_s: int
    features: tuple[tuple[str, str], ...]  # (name, Keel dtype)
    push_source: str | None = None  # the Feast PushSource wrapping the file source


ACTIVITY = View(
    "user_activity", PUSH_SOURCE, "data/user_activity.parquet", ("user",),
    "event_timestamp", "created", DAY,
    (("clicks", "int64"), ("spend", "float64"), ("country", "string"),
     ("is_premium", "bool"), ("sessions", "int32"), ("ratio", "float32"),
     ("last_login", "timestamp"), ("recent_items", "list<int64>"),
     ("weights", "list<float64>")),
    push_source=PUSH_SOURCE)
PROFILE = View(
    "user_profile", "user_profile_src", "data/user_profile.parquet", ("user",),
    "updated_at", None, 0,
    (("age", "int64"), ("tier", "string"), ("score", "float64")))
USER_ITEM = View(
    "user_item", "user_item_src", "data/user_item.parquet", ("user", "item"),
    "event_timestamp", None, 7 * DAY,
    (("rating", "float64"), ("views", "int64")))
VIEWS = (ACTIVITY, PROFILE, USER_ITEM)
ENTITIES = {"user": ("user_id", "int64"), "item": ("item_id", "string")}
# on-demand view: (name, dtype, Keel SQL expression)
ODFV = "spend_per_click"
ODFV_FEATURES = (
    ("spend_per_click", "float64", "user_activity__spend / NULLIF(user_activity__clicks, 0)"),
    ("discounted_spend", "float64", "user_activity__spend * (1 - discount)"),
)
ODFV_SOURCES = (ACTIVITY.name,)
SERVICE_FEATURES = [ACTIVITY.name, f"{PROFILE.name}:age"]


@dataclasses.dataclass(frozen=True)
class Sizes:
    users: int = 200
    events_per_user: int = 4
    twin_share: float = 0.1  # events with a same-time twin (another created)
    inactive_every: int = 20  # user_id % this == 0: no activity (0: none)
    seed: int = 20261129


@dataclasses.dataclass
class Dataset:
    root: Path
    sizes: Sizes
    anchor: int  # epoch seconds; the data sits before it
    keel_repo: Path
    feast_repo: Path
    counts: dict

    def source(self, view: View) -> Path:
        return self.keel_repo / view.path

    @property
    def materialize_range(self) -> tuple[str, str]:
        """(start, end) covering every row: RFC 3339 UTC with Z (both CLIs take it)."""
        return iso(self.anchor - 90 * DAY), iso(self.anchor + 3600)


def iso(secs: int) -> str:
    return dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stale_user(uid) -> Any:
    return uid % 10 == 7


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def _ts(secs: np.ndarray) -> pa.Array:
    return pa.array(secs.astype(np.int64) * 1_000_000, type=pa.int64()).cast(TS)


def _mask(rng, n: int, share: float = 0.04) -> np.ndarray:
    return rng.random(n) < share


def _lists(rng, n: int, values) -> pa.Array:
    """n lists of 0..4 items drawn by ``values(k)``; 4% null, some empty."""
    lengths = rng.integers(0, 5, n)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    flat = values(int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat),
                                    mask=pa.array(_mask(rng, n)))


def _activity(rng, sizes: Sizes, anchor: int) -> tuple[pa.Table, dict]:
    users = np.arange(1, sizes.users + 1, dtype=np.int64)
    if sizes.inactive_every:
        users = users[users % sizes.inactive_every != 0]
    k = sizes.events_per_user
    uid = np.repeat(users, k)
    step = np.tile(np.arange(k), len(users))
    # event j of a user: within hour j before the anchor (distinct per user)
    ago = step * 3600 + rng.integers(1, 3600, len(uid))
    ago = np.where(stale_user(uid), ago + 2 * DAY, ago)
    secs = anchor - ago
    created = secs + rng.integers(0, 600, len(uid))
    twin = rng.random(len(uid)) < sizes.twin_share
    sign = rng.choice([-1, 1], int(twin.sum()))
    all_uid = np.r_[uid, uid[twin]]
    all_secs = np.r_[secs, secs[twin]]
    all_created = np.r_[created, created[twin] + sign * rng.integers(1, 600, int(twin.sum()))]
    n = len(all_uid)
    order = rng.permutation(n)
    lists_i = _lists(rng, n, lambda m: rng.integers(1, 10_000, m).astype(np.int64))
    lists_f = _lists(rng, n, lambda m: np.round(rng.random(m), 3))
    ratio = rng.integers(0, 16, n).astype(np.float32) / np.float32(8) + np.float32(0.1)
    table = pa.table({
        "user_id": pa.array(all_uid, pa.int64()),
        "event_timestamp": _ts(all_secs),
        "created": _ts(all_created),
        "clicks": pa.array(rng.integers(0, 50, n), pa.int64(), mask=_mask(rng, n)),
        "spend": pa.array(np.round(rng.gamma(2.0, 20.0, n), 2), pa.float64(), mask=_mask(rng, n)),
        "country": pa.array(np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)],
                            mask=_mask(rng, n)),
        "is_premium": pa.array(rng.random(n) < 0.3, pa.bool_(), mask=_mask(rng, n)),
        "sessions": pa.array(rng.integers(0, 20, n), pa.int32(), mask=_mask(rng, n)),
        "ratio": pa.array(ratio, pa.float32(), mask=_mask(rng, n)),
        "last_login": pa.array(((all_secs - rng.integers(0, 30 * DAY, n)) * 1_000_000),
                               pa.int64(), mask=_mask(rng, n)).cast(TS),
        "recent_items": lists_i,
        "weights": lists_f,
    }).take(pa.array(order))
    return table, {"rows": n, "users": int(len(users)), "twins": int(twin.sum()),
                   "stale_users": int(stale_user(users).sum())}


def _profile(rng, sizes: Sizes, anchor: int) -> tuple[pa.Table, dict]:
    users = np.arange(1, sizes.users + 1, dtype=np.int64)
    users = users[users % 20 != 10]
    per = rng.integers(1, 4, len(users))
    uid = np.repeat(users, per)
    # distinct days per user: update j is j days (+ some seconds) further back
    j = np.concatenate([np.arange(p) for p in per]) if len(per) else np.array([], int)
    secs = anchor - (j * 20 + rng.integers(0, 20, len(uid))) * DAY // 10 - rng.integers(1, 3600, len(uid))
    n = len(uid)
    table = pa.table({
        "user_id": pa.array(uid, pa.int64()),
        "updated_at": _ts(secs),
        "age": pa.array(rng.integers(18, 80, n), pa.int64(), mask=_mask(rng, n)),
        "tier": pa.array(np.array(TIERS)[rng.integers(0, len(TIERS), n)], mask=_mask(rng, n)),
        "score": pa.array(np.round(rng.random(n), 4), pa.float64(), mask=_mask(rng, n)),
    }).take(pa.array(rng.permutation(n)))
    return table, {"rows": n, "users": int(len(users))}


def _user_item(rng, sizes: Sizes, anchor: int) -> tuple[pa.Table, dict]:
    users = np.arange(1, sizes.users + 1, dtype=np.int64)
    per = rng.integers(1, 4, len(users))
    uid = np.repeat(users, per)
    # distinct items per user: a random start, then consecutive items
    first = np.repeat(rng.integers(0, len(ITEMS), len(users)), per)
    j = np.concatenate([np.arange(p) for p in per])
    item = np.array(ITEMS)[(first + j) % len(ITEMS)]
    secs = anchor - rng.integers(60, 2 * DAY, len(uid))
    n = len(uid)
    table = pa.table({
        "user_id": pa.array(uid, pa.int64()),
        "item_id": pa.array(item, pa.string()),
        "event_timestamp": _ts(secs),
        "rating": pa.array(np.round(rng.random(n) * 5, 1), pa.float64(), mask=_mask(rng, n)),
        "views": pa.array(rng.integers(0, 100, n), pa.int64(), mask=_mask(rng, n)),
    })
    return table, {"rows": n}


def generate(root: Path, sizes: Sizes = Sizes(), anchor: int | None = None) -> Dataset:
    """Write the data, the Keel repo and the Feast repo under ``root``."""
    anchor = int(time.time()) if anchor is None else int(anchor)
    rng = np.random.default_rng(sizes.seed)
    root = Path(root).resolve()
    keel_repo, feast_repo = root / "keel_repo", root / "feast_repo"
    (keel_repo / "data").mkdir(parents=True, exist_ok=True)
    (feast_repo / "data").mkdir(parents=True, exist_ok=True)
    counts = {}
    for view, make in ((ACTIVITY, _activity), (PROFILE, _profile), (USER_ITEM, _user_item)):
        table, c = make(rng, sizes, anchor)
        pq.write_table(table, keel_repo / view.path, row_group_size=1 << 20)
        counts[view.name] = c
    (keel_repo / "features.yaml").write_text(keel_yaml())
    (feast_repo / "feature_store.yaml").write_text(feast_store_yaml())
    ds = Dataset(root=root, sizes=sizes, anchor=anchor, keel_repo=keel_repo,
                 feast_repo=feast_repo, counts=counts)
    (feast_repo / "definitions.py").write_text(feast_definitions(ds))
    (root / "dataset.json").write_text(json.dumps(
        {"sizes": dataclasses.asdict(sizes), "anchor": anchor, "counts": counts}))
    return ds


def load(root: Path) -> Dataset:
    root = Path(root).resolve()
    meta = json.loads((root / "dataset.json").read_text())
    return Dataset(root=root, sizes=Sizes(**meta["sizes"]), anchor=meta["anchor"],
                   keel_repo=root / "keel_repo", feast_repo=root / "feast_repo",
                   counts=meta["counts"])


def read_rows(ds: Dataset, view: View) -> list[dict]:
    return pq.read_table(ds.source(view)).to_pylist()


def latest_rows(ds: Dataset, view: View) -> dict[tuple, dict]:
    """{key tuple: the row an online read must answer}: the largest event time,
    then the largest created time (both engines' materialization rule)."""
    keys = [ENTITIES[e][0] for e in view.entities]
    best: dict[tuple, dict] = {}
    for r in read_rows(ds, view):
        k = tuple(r[c] for c in keys)
        rank = (r[view.timestamp_field], r[view.created_field] if view.created_field else 0)
        if k not in best or rank > best[k]["__rank"]:
            best[k] = {**r, "__rank": rank}
    return best


# --------------------------------------------------------------------------
# the two repos
# --------------------------------------------------------------------------


def keel_yaml() -> str:
    def view_yaml(v: View) -> str:
        feats = "\n".join(f"      - {{name: {f}, dtype: {t}}}" for f, t in v.features)
        ttl = "0" if not v.ttl_s else f"{v.ttl_s // DAY}d" if v.ttl_s % DAY == 0 else f"{v.ttl_s}s"
        return (f"  - name: {v.name}\n    entities: [{', '.join(v.entities)}]\n    ttl: {ttl}\n"
                f"    source: {v.source}\n    online: true\n    features:\n{feats}\n")

    def source_yaml(v: View) -> str:
        s = f"  - name: {v.source}\n    path: {v.path}\n    timestamp_field: {v.timestamp_field}\n"
        if v.created_field:
            s += f"    created_timestamp_field: {v.created_field}\n"
        return s

    odfv = "\n".join(f"      - {{name: {n}, dtype: {t}, expression: \"{e}\"}}"
                     for n, t, e in ODFV_FEATURES)
    return ("# Generated by online_crosscheck.py.\n"
            "entities:\n"
            + "".join(f"  - name: {e}\n    join_keys: [{k}]\n" for e, (k, _) in ENTITIES.items())
            + "sources:\n" + "".join(source_yaml(v) for v in VIEWS)
            + f"request_sources:\n  - name: {REQUEST_SOURCE}\n    schema:\n"
              "      - {name: discount, dtype: float64}\n"
            + "feature_views:\n" + "".join(view_yaml(v) for v in VIEWS)
            + f"on_demand_feature_views:\n  - name: {ODFV}\n"
              f"    sources: [{', '.join(ODFV_SOURCES)}, {REQUEST_SOURCE}]\n    features:\n{odfv}\n"
            + f"feature_services:\n  - name: {SERVICE}\n"
              f"    features: [{', '.join(SERVICE_FEATURES)}]\n")


FEAST_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String", "bool": "Bool",
               "int32": "Int32", "float32": "Float32", "timestamp": "UnixTimestamp",
               "list<int64>": "Array(Int64)", "list<float64>": "Array(Float64)"}


def feast_store_yaml() -> str:
    return textwrap.dedent(f"""\
        project: {PROJECT}
        registry: data/registry.db
        provider: local
        offline_store:
          type: duckdb
        online_store:
          type: sqlite
          path: data/online_store.db
        entity_key_serialization_version: 3
        """)


def feast_definitions(ds: Dataset) -> str:
    """Feast's Python definitions of the same repo, over the Keel repo's files
    (absolute paths: Feast's DuckDB store reads them from the working directory)."""
    lines = [
        '"""Generated by online_crosscheck.py: the Keel repo in Feast\'s API."""',
        "from datetime import timedelta",
        "",
        "import pandas as pd",
        "from feast import (Entity, FeatureService, FeatureView, Field, FileSource, PushSource,",
        "                   RequestSource, ValueType)",
        "from feast.on_demand_feature_view import on_demand_feature_view",
        "from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp",
        "",
    ]
    vt = {"int64": "INT64", "string": "STRING"}
    for e, (k, t) in ENTITIES.items():
        lines.append(f"{e} = Entity(name='{e}', join_keys=['{k}'], value_type=ValueType.{vt[t]})")
    for v in VIEWS:
        created = f", created_timestamp_column='{v.created_field}'" if v.created_field else ""
        file_src = f"{v.name}_file" if v.push_source else v.source
        schema = ", ".join(
            [f"Field(name='{ENTITIES[e][0]}', dtype={FEAST_TYPES[ENTITIES[e][1]]})" for e in v.entities]
            + [f"Field(name='{f}', dtype={FEAST_TYPES[t]})" for f, t in v.features])
        lines += ["", f"{file_src} = FileSource(name='{file_src}', path={str(ds.source(v))!r}, "
                      f"timestamp_field='{v.timestamp_field}'{created})"]
        src = file_src
        if v.push_source:
            lines.append(f"{v.push_source} = PushSource(name='{v.push_source}', batch_source={file_src})")
            src = v.push_source
        lines.append(
            f"{v.name} = FeatureView(name='{v.name}', entities=[{', '.join(v.entities)}], "
            f"ttl=timedelta(seconds={v.ttl_s}), source={src}, schema=[{schema}], online=True)")
    lines += [
        "",
        f"{REQUEST_SOURCE} = RequestSource(name='{REQUEST_SOURCE}', "
        "schema=[Field(name='discount', dtype=Float64)])",
        "",
        "",
        "# pandas mode: python mode silently drops its outputs when full_feature_names",
        "# is true (the UDF's short output names do not match the full refs).",
        f"@on_demand_feature_view(sources=[{', '.join(ODFV_SOURCES)}, {REQUEST_SOURCE}],",
        "                        schema=[" + ", ".join(
            f"Field(name='{n}', dtype={FEAST_TYPES[t]})" for n, t, _ in ODFV_FEATURES) + "],",
        "                        mode='pandas')",
        f"def {ODFV}(inputs: pd.DataFrame) -> pd.DataFrame:",
        "    # Keel: spend / NULLIF(clicks, 0) and spend * (1 - discount); NaN is served as null",
        "    out = pd.DataFrame()",
        "    clicks = inputs['clicks'].astype('float64')",
        "    spend = inputs['spend'].astype('float64')",
        "    out['spend_per_click'] = spend / clicks.where(clicks != 0)",
        "    out['discounted_spend'] = spend * (1 - inputs['discount'].astype('float64'))",
        "    return out",
        "",
        "",
        f"{SERVICE} = FeatureService(name='{SERVICE}', features=[{ACTIVITY.name}, "
        f"{PROFILE.name}[['age']]])",
        "",
    ]
    return "\n".join(lines)



# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def feast_cli() -> list[str]:
    """The ``feast`` CLI of this interpreter's environment."""
    exe = Path(sys.executable).with_name("feast")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "feast.cli.cli"]


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("FEAST_USAGE", "False")
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.setdefault("RUST_BACKTRACE", "1")
    return env


def run(cmd: list, cwd: Path | None = None, timeout: float = 600):
    """Run ``cmd``; (the finished process, wall seconds). A non-zero exit is
    an AssertionError carrying both streams."""
    cmd = [str(c) for c in cmd]
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL, env=_env())
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` exited with {res.returncode}\n"
                             f"--- stdout ---\n{res.stdout[-4000:]}\n--- stderr ---\n{res.stderr[-4000:]}")
    return res, wall


def feast_apply(ds: Dataset):
    return run(feast_cli() + ["apply"], cwd=ds.feast_repo)


def feast_materialize(ds: Dataset, start: str | None = None, end: str | None = None):
    """`feast materialize START END` (default: the dataset's whole range)."""
    s, e = ds.materialize_range
    return run(feast_cli() + ["materialize", start or s, end or e], cwd=ds.feast_repo)


class Server:
    """A server subprocess in its own process group, its output in files."""

    def __init__(self, name: str, cmd: list, port: int, cwd: Path, logdir: Path,
                 health: str = "/health"):
        self.name, self.cmd, self.port, self.cwd = name, [str(c) for c in cmd], port, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.health = health
        logdir.mkdir(parents=True, exist_ok=True)
        self.out_path = logdir / f"{name}-{port}.out"
        self.err_path = logdir / f"{name}-{port}.err"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = START_TIMEOUT_S) -> "Server":
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=_env(),
                                         start_new_session=True)
        self.wait(timeout)
        return self

    def log(self, limit: int = 8000) -> str:
        text = ""
        for p in (self.out_path, self.err_path):
            if p.exists():
                text += p.read_text(errors="replace")[-limit:]
        return text

    def wait(self, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before "
                                     f"answering; command: {self.cmd}\n{self.log()}")
            try:
                if requests.get(self.url + self.health, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"{self.name} not answering at {self.url}{self.health} after "
                             f"{timeout:.0f}s; command: {self.cmd}\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # `feast serve` is gunicorn: a master and its workers, one group
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def feast_server(ds: Dataset, port: int | None = None, *, max_requests: int = 0,
                 max_requests_jitter: int = 0, registry_ttl_sec: int = 60) -> Server:
    """`feast serve` over the (applied, materialized) Feast repo, started and
    answering. ``max_requests=0`` keeps gunicorn from recycling its worker
    every ~1000 requests (its default), which stalls a request for ~1 s."""
    port = port or free_port()
    cmd = feast_cli() + ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                         "--max-requests", str(max_requests),
                         "--max-requests-jitter", str(max_requests_jitter),
                         "--registry_ttl_sec", str(registry_ttl_sec)]
    return Server("feast", cmd, port, ds.feast_repo, ds.root / "logs").start()


def setup_feast(ds: Dataset, port: int | None = None) -> Server:
    """apply + materialize (the whole range) + serve."""
    feast_apply(ds)
    feast_materialize(ds)
    return feast_server(ds, port)


def keel_bin() -> Path:
    """``$KEEL_BIN``, else the debug build of this repository."""
    env = os.environ.get("KEEL_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else REPO_ROOT / "target"
    if not base.is_absolute():
        base = REPO_ROOT / base
    return base / "debug" / "keel"


@dataclasses.dataclass
class KeelTarget:
    """Where a Keel command acts: a data directory (and its online store,
    ``None`` = the embedded redb file), or a running server (``--server``)."""

    data_dir: Path
    online_store: str | None = None
    server: str | None = None

    def args(self, *, local: bool = False) -> list[str]:
        """CLI flags; ``local`` ignores ``server`` (e.g. to start one)."""
        if self.server and not local:
            return ["--server", self.server]
        out = ["--data-dir", str(self.data_dir)]
        if self.online_store:
            out += ["--online-store", self.online_store]
        return out

    def via(self, server: str | None) -> "KeelTarget":
        return dataclasses.replace(self, server=server)


def keel(args: list, target: KeelTarget, timeout: float = 600):
    """``keel ARGS TARGET-FLAGS``; (process, wall seconds); fails loudly."""
    return run([keel_bin(), *args, *target.args()], timeout=timeout)


def keel_apply(repo: Path, target: KeelTarget):
    return keel(["features", "apply", repo, "--yes"], target)


def keel_materialize(target: KeelTarget, *, incremental: bool = False,
                     start: str | None = None, end: str | None = None,
                     views: Iterable[str] = ()) -> dict:
    """``keel features materialize --json ...``: the parsed report
    ``{"views": [{name, kind, start, end, rows, entities_written,
    kept_newer, elapsed_ms}], "elapsed_ms"}`` (times in microseconds)."""
    args = ["features", "materialize", "--json"]
    if incremental:
        args.append("--incremental")
    if start:
        args += ["--start", start]
    if end:
        args += ["--end", end]
    for v in views:
        args += ["--view", v]
    res, _ = keel(args, target)
    return json.loads(res.stdout)


def keel_training_set(target: KeelTarget, service: str, entities: Path, out: Path,
                      short_names: bool = True) -> pa.Table:
    """``keel features training-set``: the table it wrote. Through a running
    server, paths must be absolute (the server reads and writes them)."""
    args = ["features", "training-set", "--service", service, "--entities",
            Path(entities).resolve(), "--out", Path(out).resolve()]
    if short_names:
        args.append("--short-names")
    keel(args, target)
    return pq.read_table(out)


def keel_server(target: KeelTarget, port: int | None = None,
                logdir: Path | None = None, extra_args: Iterable[str] = ()) -> Server:
    """``keel server --data-dir DIR [--online-store S] [EXTRA...]``, answering /health."""
    port = port or free_port()
    cmd = [keel_bin(), "server", *target.args(local=True), "--host", "127.0.0.1",
           "--port", str(port), *extra_args]
    return Server("keel", cmd, port, Path(target.data_dir),
                  Path(logdir or target.data_dir) / "logs").start()


def setup_keel(ds: Dataset, target: KeelTarget) -> Server:
    """apply + materialize (the whole range) + serve. With the embedded store
    (one process at a time) materialization must come before the server."""
    keel_apply(ds.keel_repo, target)
    s, e = ds.materialize_range
    keel_materialize(target, start=s, end=e)
    return keel_server(target)


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


def redis_db_url(url: str, db: int) -> str:
    """``url`` (redis://[user:pass@]host:port[/db]) with database index ``db``."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{db}", p.query, p.fragment))


def _resp(*args: str) -> bytes:
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        b = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def redis_command(url: str, *args: str) -> str:
    """Send one command to the database of ``url`` (AUTH and SELECT first);
    the first reply line of the command. No client library needed."""
    p = urlsplit(url)
    if p.scheme != "redis":
        raise ValueError(f"only redis:// URLs are supported here, not {url!r}")
    db = (p.path or "/0").strip("/") or "0"
    cmds = []
    if p.password is not None:
        cmds.append(_resp("AUTH", *([p.username] if p.username else []), p.password))
    cmds += [_resp("SELECT", db), _resp(*args)]
    with socket.create_connection((p.hostname or "127.0.0.1", p.port or 6379), timeout=10) as s:
        s.sendall(b"".join(cmds))
        f = s.makefile("rb")
        line = b""
        for _ in cmds:
            line = f.readline()
            if line.startswith(b"-"):
                raise RuntimeError(f"Redis {url}: {args[0]} failed: {line.decode().strip()}")
            if line.startswith(b"$") and int(line[1:]) >= 0:  # a bulk reply's payload
                line = f.readline()
    return line.decode().strip()


def redis_flushdb(url: str) -> None:
    """Empty the database ``url`` names (only that one)."""
    redis_command(url, "FLUSHDB")


def redis_dbsize(url: str) -> int:
    return int(redis_command(url, "DBSIZE").lstrip(":"))


# --------------------------------------------------------------------------
# the stream repo (Keel only)
# --------------------------------------------------------------------------

STREAM_SOURCE = "clicks_src"
STREAM_VIEW = "click_windows"
STREAM_BATCH_VIEW = "user_clicks"
STREAM_SERVICE = "click_features"
# (column, function, window days, slide days or None = the window, name).
# Every slide is a whole day: a read at t answers the windows that end at
# the last UTC midnight, so values only change at midnight.
STREAM_AGGS = (
    ("clicks", "count", 1, None, "events_1d"),
    ("clicks", "sum", 2, 1, "clicks_2d"),
    ("spend", "sum", 1, None, "spend_1d"),
    ("spend", "mean", 7, 1, "spend_mean_7d"),
    ("spend", "min", 3, 1, "spend_min_3d"),
    ("spend", "max", 3, 1, "spend_max_3d"),
    ("clicks", "last", 7, 1, "last_clicks_7d"),
)


@dataclasses.dataclass
class StreamDataset:
    root: Path
    repo: Path
    now: int  # epoch seconds the events were placed before
    file_events: list[dict]  # {"user_id", "event_timestamp" (secs), "clicks", "spend"}

    @property
    def source(self) -> Path:
        return self.repo / "data" / "clicks.parquet"


def stream_yaml() -> str:
    aggs = "\n".join(
        f"      - {{column: {c}, function: {f}, window: {w}d, "
        + (f"slide: {s}d, " if s else "") + f"name: {n}}}"
        for c, f, w, s, n in STREAM_AGGS)
    return textwrap.dedent(f"""\
        # Generated by online_crosscheck.py: a stream feature view over a source
        # that is also pushed to, and a batch view over the same source.
        entities:
          - name: user
            join_keys: [user_id]
        sources:
          - name: {STREAM_SOURCE}
            path: data/clicks.parquet
            timestamp_field: event_timestamp
        feature_views:
          - name: {STREAM_BATCH_VIEW}
            entities: [user]
            ttl: 0
            source: {STREAM_SOURCE}
            features:
              - {{name: clicks, dtype: int64}}
              - {{name: spend, dtype: float64}}
        stream_feature_views:
          - name: {STREAM_VIEW}
            entities: [user]
            source: {STREAM_SOURCE}
            aggregations:
        """) + aggs + textwrap.dedent(f"""
        feature_services:
          - name: {STREAM_SERVICE}
            features: [{STREAM_VIEW}, {STREAM_BATCH_VIEW}]
        """)


def stream_events(rng, users: Iterable[int], n: int, now: int, max_age: int,
                  taken: set, recent_share: float = 0.0, recent_age: int = 3 * 3600) -> list[dict]:
    """``n`` events of random ``users``, at most ``max_age`` seconds before
    ``now`` (a ``recent_share`` of them within ``recent_age``), never two of
    one user at the same second (``taken`` collects (user, time)). clicks
    0..9, never null (``last`` and ``count`` then need no null rule); spend
    null one time in ten."""
    users = list(users)
    out = []
    while len(out) < n:
        u = int(users[rng.integers(0, len(users))])
        top = recent_age if rng.random() < recent_share else max_age
        ts = now - int(rng.integers(1, max(2, top)))
        if (u, ts) in taken:
            continue
        taken.add((u, ts))
        out.append({"user_id": u, "event_timestamp": ts, "clicks": int(rng.integers(0, 10)),
                    "spend": None if rng.random() < 0.1 else float(round(rng.random() * 100, 2))})
    return out


def write_stream_source(path: Path, events: list[dict]) -> None:
    pq.write_table(pa.table({
        "user_id": pa.array([e["user_id"] for e in events], pa.int64()),
        "event_timestamp": _ts(np.array([e["event_timestamp"] for e in events], dtype=np.int64)),
        "clicks": pa.array([e["clicks"] for e in events], pa.int64()),
        "spend": pa.array([e["spend"] for e in events], pa.float64()),
    }), path)


def generate_stream(root: Path, now: int | None = None, seed: int = 20261129,
                    file_users: Iterable[int] = range(1, 11), per_user: int = 4) -> StreamDataset:
    """The stream repo with a source file of ``per_user`` events for each of
    ``file_users`` over the last 6 days."""
    now = int(time.time()) if now is None else int(now)
    root = Path(root).resolve()
    repo = root / "stream_repo"
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "features.yaml").write_text(stream_yaml())
    rng = np.random.default_rng(seed)
    taken: set = set()
    users = list(file_users)
    events = stream_events(rng, users, per_user * len(users), now, 6 * DAY, taken)
    ds = StreamDataset(root=root, repo=repo, now=now, file_events=events)
    write_stream_source(ds.source, events)
    return ds


def stream_push_body(events: list[dict], to: str = "online_and_offline",
                     nanos: bool = False) -> dict:
    """A /push body of stream events: event times as RFC 3339 strings, or as
    integer nanoseconds (``nanos``; both servers read numbers as ns)."""
    times = [e["event_timestamp"] * 1_000_000_000 if nanos else iso(e["event_timestamp"])
             for e in events]
    return {"push_source_name": STREAM_SOURCE, "to": to, "df": {
        "user_id": [e["user_id"] for e in events], "event_timestamp": times,
        "clicks": [e["clicks"] for e in events], "spend": [e["spend"] for e in events]}}


def window_reference(events: list[dict], users: Iterable[int], t: float) -> dict:
    """What a stream read at ``t`` must answer, from the events themselves:
    ``{name: [value per user]}`` for every aggregation of STREAM_AGGS (window
    ``(E - W, E]``, ``E = floor(t / S) * S``; nulls ignored; count 0 and the
    others null over an empty window), plus ``__seen`` (the user has any
    event), ``__latest`` (the latest event time, secs) and, for the batch
    view, ``clicks``/``spend`` of the latest event."""
    by_user: dict[int, list[dict]] = {}
    for e in events:
        by_user.setdefault(e["user_id"], []).append(e)
    out: dict[str, list] = {n: [] for *_, n in STREAM_AGGS}
    for extra in ("__seen", "__latest", "clicks", "spend"):
        out[extra] = []
    for u in users:
        evs = sorted(by_user.get(u, []), key=lambda e: e["event_timestamp"])
        out["__seen"].append(bool(evs))
        last = evs[-1] if evs else None
        out["__latest"].append(last["event_timestamp"] if last else None)
        out["clicks"].append(last["clicks"] if last else None)
        out["spend"].append(last["spend"] if last else None)
        for col, fn, w, s, name in STREAM_AGGS:
            slide = (s or w) * DAY
            end = math.floor(t / slide) * slide
            vals = [e[col] for e in evs
                    if end - w * DAY < e["event_timestamp"] <= end and e[col] is not None]
            if fn == "count":
                v = len(vals)
            elif not vals:
                v = None
            elif fn == "sum":
                v = sum(vals)
            elif fn == "mean":
                v = math.fsum(vals) / len(vals)
            elif fn == "min":
                v = min(vals)
            elif fn == "max":
                v = max(vals)
            else:  # last: the latest event in the window
                v = vals[-1]
            out[name].append(v)
    return out


# --------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------


def online_body(user_ids: Iterable[int], *, features: list[str] | None = None,
                service: str | None = None, full_feature_names: bool = False,
                item_ids: Iterable[str] | None = None,
                discount: Iterable[float] | None = None) -> dict:
    ents: dict[str, list] = {"user_id": [int(u) for u in user_ids]}
    if item_ids is not None:
        ents["item_id"] = list(item_ids)
    if discount is not None:
        ents["discount"] = list(discount)  # request data rides in `entities`
    body: dict[str, Any] = {"entities": ents, "full_feature_names": full_feature_names}
    if service:
        body["feature_service"] = service
    else:
        body["features"] = list(features or [])
    return body


def post(server_or_url, path: str, body: dict, session=None):
    """POST JSON; (status code, parsed body or raw text)."""
    import requests

    url = getattr(server_or_url, "url", server_or_url)
    r = (session or requests).post(url + path, json=body, timeout=60)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def push_body(rows: list[dict], to: str = "online", view: View = ACTIVITY,
              source: str = PUSH_SOURCE) -> dict:
    """A /push body (columns of lists) from row dicts, encoded the way Feast
    0.67 accepts them: the event and created timestamps as ISO-8601 strings
    (epoch numbers would be read as *nanoseconds*), a ``timestamp`` feature
    as int epoch seconds (an ISO string is a 500, a float is stored as the
    null sentinel). Every feature column must be present (a missing one is a
    500); None is a null value."""
    ts_feats = {f for f, t in view.features if t == "timestamp"}
    cols: dict[str, list] = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, dt.datetime):
                v = int(v.timestamp()) if k in ts_feats else v.astimezone(dt.timezone.utc).isoformat()
            cols.setdefault(k, []).append(v)
    return {"push_source_name": source, "df": cols, "to": to}


INT64_MIN = -(2 ** 63)
EPOCH = "1970-01-01T00:00:00Z"


def ts_str(value) -> str:
    """An event timestamp as Feast writes it: RFC 3339, UTC, ``Z``; whole
    seconds (its SQLite store truncates to seconds)."""
    if isinstance(value, dt.datetime):
        value = value.timestamp()
    secs = int(value)
    return EPOCH if secs == 0 else \
        dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_value(value, dtype: str, *, null_timestamp=INT64_MIN):
    """A stored value as Feast's /get-online-features writes it in JSON
    (before serialisation): ints as ints, float32 widened to a double,
    timestamps as int epoch seconds — and a null timestamp as the int64
    minimum, which Feast stores for it and serves as PRESENT."""
    if value is None:
        return null_timestamp if dtype == "timestamp" else None
    if dtype == "float32":
        return float(np.float32(value))
    if dtype == "timestamp":
        return int(value.timestamp()) if isinstance(value, dt.datetime) else int(value)
    if dtype.startswith("list<"):
        return [json_value(x, dtype[5:-1]) for x in value]
    if dtype == "float64":
        return float(value)
    return value


def expected_response(ds: Dataset, body: dict, *, null_timestamp=INT64_MIN,
                      rows: dict[str, dict[tuple, dict]] | None = None) -> dict:
    """The /get-online-features body Feast 0.67 answers for ``body`` after
    materializing the whole dataset, computed from the files (batch views
    only; no on-demand features). Features in *request order* (Feast's own
    order varies from process to process: compare by name). ``rows``
    replaces ``latest_rows`` per view name (e.g. after pushes)."""
    full = bool(body.get("full_feature_names"))
    if body.get("feature_service"):
        refs = [f"{ACTIVITY.name}:{f}" for f, _ in ACTIVITY.features] + [f"{PROFILE.name}:age"]
    else:
        refs = list(body["features"])
    ents = body["entities"]
    n = len(next(iter(ents.values())))
    known = {k for k, _ in ENTITIES.values()}
    names, results = [], []
    for k, vals in ents.items():
        if k in known:
            names.append(k)
            results.append({"values": list(vals), "statuses": ["PRESENT"] * n,
                            "event_timestamps": [EPOCH] * n})
    views = {v.name: v for v in VIEWS}
    cache: dict[str, dict] = {}
    for ref in refs:
        vname, feat = ref.split(":", 1)
        v = views[vname]
        if vname not in cache:
            cache[vname] = (rows or {}).get(vname) or latest_rows(ds, v)
        dtype = dict(v.features)[feat]
        keys = [ENTITIES[e][0] for e in v.entities]
        vec = {"values": [], "statuses": [], "event_timestamps": []}
        for i in range(n):
            key = tuple(ents.get(k, [None] * n)[i] for k in keys)
            row = cache[vname].get(key)
            if row is None:
                vec["values"].append(None)
                vec["statuses"].append("NOT_FOUND")
                vec["event_timestamps"].append(EPOCH)
            else:
                vec["values"].append(json_value(row[feat], dtype, null_timestamp=null_timestamp))
                vec["statuses"].append("PRESENT")
                vec["event_timestamps"].append(ts_str(row[v.timestamp_field]))
        names.append(f"{vname}__{feat}" if full else feat)
        results.append(vec)
    return {"results": results, "metadata": {"feature_names": names}}


# --------------------------------------------------------------------------
# comparing
# --------------------------------------------------------------------------


def feature_ttls(full_feature_names: bool) -> dict[str, tuple[str, int]]:
    """{response feature name: (view, ttl seconds)} for every batch-view feature."""
    out = {}
    for v in VIEWS:
        for f, _ in v.features:
            out[f"{v.name}__{f}" if full_feature_names else f] = (v.name, v.ttl_s)
    return out


def odfv_names(full_feature_names: bool) -> set[str]:
    return {f"{ODFV}__{n}" if full_feature_names else n for n, _, _ in ODFV_FEATURES}


def parse_ts(s: str) -> float:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def _same_value(a, b, rel: float = 1e-9) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a == b and type(a) is type(b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if type(a) is not type(b):
            return False  # 3 vs 3.0: the JSON text differs
        if isinstance(a, float) and (math.isnan(a) or math.isnan(b)):
            return math.isnan(a) and math.isnan(b)
        return a == b or (isinstance(a, float) and math.isclose(a, b, rel_tol=rel))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y, rel) for x, y in zip(a, b))
    return a == b


def compare_online(feast: dict, keel: dict, *, request: dict | None = None,
                   now: float | None = None, keel_max_age: bool = True,
                   keel_request_order: bool = True,
                   older_writes: Iterable[tuple] | str | None = None,
                   full_feature_names: bool | None = None,
                   null_timestamp_as_null: bool = False,
                   float_rel: float = 1e-9) -> dict:
    """Field-by-field comparison of two /get-online-features bodies.

    Returns ``{"differences": [...], "tolerated": {reason: count}}``;
    ``differences`` is empty when the bodies agree up to the tolerated,
    documented Keel deviations:

    * ``keel_max_age``: Keel answers ``OUTSIDE_MAX_AGE`` with a null value
      for a feature whose event is older than its view's ttl (``now`` minus
      ttl; ``now`` defaults to the wall clock) where Feast's online read
      ignores the ttl and answers PRESENT/NULL_VALUE with the stored value.
      Tolerated when Feast's timestamp for that row and feature is in fact
      older than ``now - ttl`` (with 60 s of slack); Keel's event timestamp
      must still equal Feast's. On-demand features of such a row may differ.
    * ``keel_request_order``: Keel orders features as requested (join keys
      first, as Feast does); Feast orders them view by view. Results are then
      matched by name, and Keel's order is checked against the request's
      ``features`` when ``request`` is given.
    * ``older_writes``: Keel keeps the newest event when an older one is
      written; Feast overwrites. Either ``"any"`` or an iterable of
      ``(view, user_id)`` / ``(view, (key, ...))``. A differing cell of such a
      key is tolerated when Keel's event timestamp is newer than Feast's.
    * ``null_timestamp_as_null``: Feast serves a null ``timestamp`` feature
      as -9223372036854775808 (its stored sentinel, status PRESENT); with
      this option Keel may answer null there instead.

    Values compare by JSON type and value (an int is not a float: ``3`` and
    ``3.0`` are different bytes); floats within ``float_rel``.
    """
    diffs: list[str] = []
    tolerated: dict[str, int] = {}

    def tol(reason: str):
        tolerated[reason] = tolerated.get(reason, 0) + 1

    if set(feast) != set(keel):
        diffs.append(f"top-level keys {sorted(keel)} != Feast's {sorted(feast)}")
    fn = feast.get("metadata", {}).get("feature_names", [])
    kn = keel.get("metadata", {}).get("feature_names", [])
    if set(keel.get("metadata", {})) != set(feast.get("metadata", {})):
        diffs.append(f"metadata keys {sorted(keel.get('metadata', {}))} != Feast's "
                     f"{sorted(feast.get('metadata', {}))}")
    if len(fn) != len(set(fn)) or len(kn) != len(set(kn)):
        diffs.append(f"duplicate feature names: Feast {fn}, Keel {kn}")
    if fn != kn:
        if not keel_request_order or sorted(fn) != sorted(kn):
            diffs.append(f"feature_names {kn} != Feast's {fn}")
        else:
            tol("feature order")
    if keel_request_order and request and request.get("features"):
        want = [f.split(":", 1)[1] if not request.get("full_feature_names")
                else f.replace(":", "__") for f in request["features"]]
        got = [n for n in kn if n in set(want)]
        if got != want:
            diffs.append(f"Keel's feature order {got} is not the request's {want}")
    fr, kr = feast.get("results", []), keel.get("results", [])
    if len(fr) != len(fn) or len(kr) != len(kn):
        diffs.append(f"results: Feast {len(fr)} vectors for {len(fn)} names, "
                     f"Keel {len(kr)} for {len(kn)}")
        return {"differences": diffs, "tolerated": tolerated}
    fby, kby = dict(zip(fn, fr)), dict(zip(kn, kr))
    if full_feature_names is None:
        full_feature_names = any("__" in n for n in fn)
    ttls = feature_ttls(full_feature_names)
    derived = odfv_names(full_feature_names)
    now = time.time() if now is None else now
    keys = list(ENTITIES[e][0] for e in ENTITIES)
    key_cols = {k: fby[k]["values"] for k in keys if k in fby}
    older = older_writes
    if older not in (None, "any"):
        older = {(v, k if isinstance(k, tuple) else (k,)) for v, k in older}

    def row_key(view: str, i: int) -> tuple:
        v = next(x for x in VIEWS if x.name == view)
        return tuple(key_cols.get(ENTITIES[e][0], [None] * (i + 1))[i] for e in v.entities)

    rows_with_tolerance: set[int] = set()
    for name in fn:
        if name not in kby or name in derived:
            continue
        f, k = fby[name], kby[name]
        if set(f) != set(k):
            diffs.append(f"{name}: vector keys {sorted(k)} != Feast's {sorted(f)}")
        n = len(f["values"])
        for field in ("values", "statuses", "event_timestamps"):
            if len(k.get(field, [])) != len(f.get(field, [])):
                diffs.append(f"{name}.{field}: {len(k.get(field, []))} entries != Feast's "
                             f"{len(f.get(field, []))}")
        if any(d.startswith(f"{name}.") for d in diffs):
            continue
        for i in range(n):
            fv, kv = f["values"][i], k["values"][i]
            fs, ks = f["statuses"][i], k["statuses"][i]
            ft, kt = f["event_timestamps"][i], k["event_timestamps"][i]
            if _same_value(fv, kv, float_rel) and fs == ks and ft == kt:
                continue
            view_ttl = ttls.get(name)
            if (keel_max_age and view_ttl and view_ttl[1] and ks == "OUTSIDE_MAX_AGE"
                    and kv is None and fs in ("PRESENT", "NULL_VALUE") and kt == ft
                    and parse_ts(ft) < now - view_ttl[1] + 60):
                tol("OUTSIDE_MAX_AGE")
                rows_with_tolerance.add(i)
                continue
            if (older is not None and view_ttl and kt != ft
                    and (older == "any" or (view_ttl[0], row_key(view_ttl[0], i)) in older)
                    and parse_ts(kt) > parse_ts(ft)):
                tol("older write kept newer")
                rows_with_tolerance.add(i)
                continue
            if (null_timestamp_as_null and fv == INT64_MIN and kv is None
                    and fs == ks and ft == kt):
                tol("null timestamp sentinel")
                continue
            diffs.append(f"{name}[{i}]: Keel ({kv!r}, {ks}, {kt}) != Feast ({fv!r}, {fs}, {ft})")
    for name in fn:
        if name not in derived or name not in kby:
            continue
        f, k = fby[name], kby[name]
        for i in range(len(f["values"])):
            same = (_same_value(f["values"][i], k["values"][i], float_rel)
                    and f["statuses"][i] == k["statuses"][i]
                    and f["event_timestamps"][i] == k["event_timestamps"][i])
            if same:
                continue
            if i in rows_with_tolerance:
                tol("on-demand over a tolerated input")
                continue
            diffs.append(f"{name}[{i}]: Keel ({k['values'][i]!r}, {k['statuses'][i]}, "
                         f"{k['event_timestamps'][i]}) != Feast ({f['values'][i]!r}, "
                         f"{f['statuses'][i]}, {f['event_timestamps'][i]})")
    return {"differences": diffs, "tolerated": tolerated}


def raw_differences(feast_text: str, keel_text: str) -> list[str]:
    """Byte-level check of two bodies whose features are in the same order
    (e.g. a one-feature request): the raw text must be identical, which
    catches number formats (``5.0``, ``1e-05``) that parsing would hide."""
    if feast_text == keel_text:
        return []
    i = next((j for j, (a, b) in enumerate(zip(feast_text, keel_text)) if a != b),
             min(len(feast_text), len(keel_text)))
    return [f"raw bodies differ at byte {i}: Keel ...{keel_text[max(0, i - 40):i + 40]!r} "
            f"vs Feast ...{feast_text[max(0, i - 40):i + 40]!r}"]


if __name__ == "__main__":  # python online_crosscheck.py DIR: generate, serve Feast, one query
    d = generate(Path(sys.argv[1]))
    with setup_feast(d) as srv:
        print(json.dumps(post(srv, "/get-online-features",
                              online_body([1, 2, 7], service=SERVICE))[1])[:2000])
