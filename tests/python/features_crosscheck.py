"""One seeded feature repo, built three ways: through Keel, through Feast
(its DuckDB and its dask offline stores) and through DuckDB's ASOF JOIN.

Shared by ``test_features_crosscheck.py`` (a few thousand entity rows) and
``bench/features_bench.py`` (the issue's 100,000 entity rows x 500,000
events per view, and 10,000,000 events per view).

The data, seeded and vectorised so the benchmark sizes take seconds:

* ``user_activity`` (ttl 1 day) has a ``created`` timestamp, and a tenth of
  its events have a twin (a few a triplet) at the same user and event time
  with a different ``created`` timestamp and different values: the
  point-in-time join must pick the largest ``created``. Its ``spend_1d``
  is null on a few rows (a null value is not a missing row).
* ``user_profile`` (ttl 7 days, timestamp field ``updated_at``, no created
  column) has one row per (user, time); some users update far more often
  than others (so some have gaps longer than the ttl), and a twentieth of
  the users have no profile at all.
* Entity rows: mostly uniform over the 30 days, plus rows placed on purpose —
  before any event, for users no view knows, exactly at an event's time
  (the inclusive upper bound), exactly one ttl after an event (the
  inclusive lower bound), just after a tie — and exact duplicates of
  earlier rows. Shuffled, with a ``row_id`` column (the row's position in
  the file) that every engine must carry through unchanged, as Feast
  carries label columns.

Semantics all engines are held to (Feast's contract): for each entity row
and view, the latest feature row of the same key with
``event_ts - ttl <= row_ts <= event_ts`` (both inclusive; ttl 0: no lower
bound), ties on event time
to the larger created timestamp; unmatched rows kept with nulls; entity
row order kept (Feast reorders; it is compared by ``row_id``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAY = 86_400
START = int(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp())
TS = pa.timestamp("us", tz="UTC")
SERVICE = "user_features"
COUNTRIES = ["de", "fr", "nl", "pl", "se", "us", "br", "jp", "in", "ke"]


@dataclasses.dataclass(frozen=True)
class View:
    name: str
    source: str
    path: str  # relative to the repo folder
    timestamp_field: str
    created_field: str | None
    ttl_s: int
    features: tuple[tuple[str, str], ...]  # (name, Keel dtype)
    served: tuple[str, ...]  # the features the service takes from this view


ACTIVITY = View("user_activity", "user_activity_src", "data/user_activity.parquet",
                "event_timestamp", "created", DAY,
                (("clicks_1d", "int64"), ("spend_1d", "float64")),
                ("clicks_1d", "spend_1d"))
PROFILE = View("user_profile", "user_profile_src", "data/user_profile.parquet",
               "updated_at", None, 7 * DAY,
               (("age", "int64"), ("country", "string"), ("score", "float64")),
               ("age", "country"))
VIEWS = (ACTIVITY, PROFILE)
KEY = "user_id"
ENTITY_TS = "event_timestamp"


@dataclasses.dataclass(frozen=True)
class Sizes:
    users: int = 400
    days: int = 30
    events_per_view: int = 20_000
    entity_rows: int = 4_000
    seed: int = 20261129


@dataclasses.dataclass
class Dataset:
    """Where one generated repo lives, and its shape."""

    root: Path
    sizes: Sizes
    repo: Path  # the Keel feature repo (YAML + data/)
    entities: Path  # the entity Parquet file (outside the repo)
    counts: dict
    views: tuple[View, ...] = VIEWS

    def source(self, view: View) -> Path:
        return self.repo / view.path

    def feature_columns(self, short_names: bool = False) -> list[str]:
        return [f if short_names else f"{v.name}__{f}" for v in self.views for f in v.served]


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def _unique_pairs(users: np.ndarray, secs: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each (user, second) pair."""
    key = users.astype(np.int64) * (1 << 32) + secs.astype(np.int64)
    _, first = np.unique(key, return_index=True)
    return np.sort(first)


def _user_draws(rng, sizes: Sizes, n: int, users: int | None = None) -> np.ndarray:
    """``n`` user ids in 1..users, some users far busier than others (as
    profile updates are), so some keys have gaps longer than a 7-day ttl."""
    users = users or sizes.users
    weight = rng.gamma(0.8, 1.0, users)
    return rng.choice(users, n, p=weight / weight.sum()) + 1


def _last_before_gap(users: np.ndarray, secs: np.ndarray, gap: int) -> np.ndarray:
    """Indices of events after which their user has no event for more than
    ``gap`` seconds: an entity row exactly ``gap`` later matches them at the
    ttl's lower bound."""
    order = np.lexsort((secs, users))
    u, t = users[order], secs[order]
    nxt_same = np.r_[u[1:] == u[:-1], False]
    # the next *later* time of the same user (ties share a time)
    nxt_t = np.r_[t[1:], 0]
    later = np.where(nxt_same, nxt_t, np.iinfo(np.int64).max)
    # walk back over ties: a tie's first row sees the same next time as its last
    for _ in range(3):
        same = np.r_[nxt_same[:-1] & (t[1:] == t[:-1]), False]
        later = np.where(same, np.r_[later[1:], 0], later)
    return order[later > t + gap]


def _ts(secs: np.ndarray) -> pa.Array:
    return pa.array((START + secs.astype(np.int64)) * 1_000_000, type=pa.int64()).cast(TS)


def _activity(rng, sizes: Sizes, time_ordered: bool) -> tuple[pa.Table, dict]:
    span = sizes.days * DAY
    n_extra = sizes.events_per_view // 11  # twins + triplets: about a tenth of all rows
    n_base = sizes.events_per_view - n_extra
    users = rng.integers(1, sizes.users + 1, n_base)
    secs = rng.integers(0, span, n_base)
    keep = _unique_pairs(users, secs)
    users, secs = users[keep], secs[keep]
    created = secs + rng.integers(0, 3600, len(secs))
    n_base = len(secs)
    # Twins: same user and event time, created moved by 1..3600 s either way.
    n_triplets = n_extra // 11
    n_twins = n_extra - n_triplets
    twin_of = rng.choice(n_base, n_twins, replace=False)
    sign = rng.choice([-1, 1], n_twins)
    twin_created = created[twin_of] + sign * rng.integers(1, 3601, n_twins)
    # Triplets: a third row for some twinned events, 3601..7200 s away, so
    # every created timestamp in a tie is distinct.
    third_of = twin_of[rng.choice(n_twins, n_triplets, replace=False)]
    sign3 = rng.choice([-1, 1], n_triplets)
    third_created = created[third_of] + sign3 * rng.integers(3601, 7201, n_triplets)
    all_users = np.concatenate([users, users[twin_of], users[third_of]])
    all_secs = np.concatenate([secs, secs[twin_of], secs[third_of]])
    all_created = np.concatenate([created, twin_created, third_created])
    n = len(all_secs)
    clicks = rng.integers(0, 50, n)
    spend = np.round(rng.gamma(2.0, 20.0, n), 2)
    spend_null = rng.random(n) < 0.02
    order = np.lexsort((all_users, all_secs)) if time_ordered else rng.permutation(n)
    table = pa.table({
        KEY: pa.array(all_users[order], pa.int64()),
        ACTIVITY.timestamp_field: _ts(all_secs[order]),
        ACTIVITY.created_field: _ts(all_created[order]),
        "clicks_1d": pa.array(clicks[order], pa.int64()),
        "spend_1d": pa.array(spend[order], pa.float64(), mask=spend_null[order]),
    })
    tie_secs = secs[twin_of]
    return table, {"rows": n, "tied_events": n_twins, "triplets": n_triplets,
                   "_tie_users": users[twin_of], "_tie_secs": tie_secs,
                   "_users": all_users, "_secs": all_secs}


def _profile(rng, sizes: Sizes, time_ordered: bool) -> tuple[pa.Table, dict]:
    span = sizes.days * DAY
    with_profile = max(1, sizes.users * 19 // 20)
    users = _user_draws(rng, sizes, sizes.events_per_view, with_profile)
    secs = rng.integers(0, span, sizes.events_per_view)
    keep = _unique_pairs(users, secs)
    users, secs = users[keep], secs[keep]
    n = len(secs)
    order = np.lexsort((users, secs)) if time_ordered else rng.permutation(n)
    table = pa.table({
        KEY: pa.array(users[order], pa.int64()),
        PROFILE.timestamp_field: _ts(secs[order]),
        "age": pa.array(rng.integers(18, 80, n)[order], pa.int64()),
        "country": pa.array(np.array(COUNTRIES)[rng.integers(0, len(COUNTRIES), n)][order]),
        "score": pa.array(np.round(rng.random(n), 4)[order], pa.float64()),
    })
    return table, {"rows": n, "users_without_profile": sizes.users - with_profile,
                   "_users": users, "_secs": secs}


def _entities(rng, sizes: Sizes, act: dict, prof: dict) -> tuple[pa.Table, dict]:
    n = sizes.entity_rows
    share = {  # rows placed on purpose, as shares of the entity rows
        "before_any_event": 0.04, "unknown_user": 0.03,
        "at_activity_event": 0.04, "at_profile_event": 0.02,
        "at_activity_event_plus_ttl": 0.03, "at_profile_event_plus_ttl": 0.02,
        "just_after_tie": 0.05,
    }
    parts_u, parts_s, counts = [], [], {}

    def add(kind, users, secs):
        parts_u.append(np.asarray(users, np.int64))
        parts_s.append(np.asarray(secs, np.int64))
        counts[kind] = len(users)

    k = int(n * share["before_any_event"])
    add("before_any_event", rng.integers(1, sizes.users + 1, k), -rng.integers(1, 3 * DAY, k))
    k = int(n * share["unknown_user"])
    add("unknown_user", sizes.users + rng.integers(1, 51, k), rng.integers(0, sizes.days * DAY, k))
    for kind, src in (("at_activity_event", act), ("at_profile_event", prof)):
        k = int(n * share[kind])
        pick = rng.integers(0, len(src["_secs"]), k)
        add(kind, src["_users"][pick], src["_secs"][pick])
    for kind, src, ttl in (("at_activity_event_plus_ttl", act, ACTIVITY.ttl_s),
                           ("at_profile_event_plus_ttl", prof, PROFILE.ttl_s)):
        k = int(n * share[kind])
        lonely = _last_before_gap(src["_users"], src["_secs"], ttl)
        pick = lonely[rng.integers(0, len(lonely), k if len(lonely) else 0)]
        add(kind, src["_users"][pick], src["_secs"][pick] + ttl)
    k = int(n * share["just_after_tie"])
    pick = rng.integers(0, len(act["_tie_secs"]), k)
    add("just_after_tie", act["_tie_users"][pick], act["_tie_secs"][pick] + rng.integers(0, 1800, k))
    n_dups = n // 25
    k = n - n_dups - sum(counts.values())
    add("uniform", rng.integers(1, sizes.users + 1, k), rng.integers(0, sizes.days * DAY, k))
    users, secs = np.concatenate(parts_u), np.concatenate(parts_s)
    dup = rng.integers(0, len(users), n_dups)
    users = np.concatenate([users, users[dup]])
    secs = np.concatenate([secs, secs[dup]])
    counts["duplicates"] = n_dups
    order = rng.permutation(len(users))
    table = pa.table({
        KEY: pa.array(users[order], pa.int64()),
        ENTITY_TS: _ts(secs[order]),
        "row_id": pa.array(np.arange(len(users)), pa.int64()),
    })
    return table, counts


def generate(root: Path, sizes: Sizes = Sizes(), *, time_ordered: bool = False) -> Dataset:
    """Write the data, the Keel repo and the entity file under ``root``.

    ``time_ordered`` writes the feature files sorted by event time, as an
    event log usually is; otherwise rows are shuffled (so a tie's input
    order says nothing about which row should win).
    """
    rng = np.random.default_rng(sizes.seed)
    repo = root / "keel_repo"
    (repo / "data").mkdir(parents=True, exist_ok=True)
    act_table, act = _activity(rng, sizes, time_ordered)
    prof_table, prof = _profile(rng, sizes, time_ordered)
    ent_table, ent = _entities(rng, sizes, act, prof)
    pq.write_table(act_table, repo / ACTIVITY.path, row_group_size=1 << 20)
    pq.write_table(prof_table, repo / PROFILE.path, row_group_size=1 << 20)
    entities = root / "entities.parquet"
    pq.write_table(ent_table, entities)
    (repo / "features.yaml").write_text(keel_yaml(VIEWS))
    counts = {"user_activity": {k: int(v) for k, v in act.items() if not k.startswith("_")},
              "user_profile": {k: int(v) for k, v in prof.items() if not k.startswith("_")},
              "entity_rows": {"total": ent_table.num_rows, **ent}}
    (root / "dataset.json").write_text(json.dumps(
        {"sizes": dataclasses.asdict(sizes), "time_ordered": time_ordered, "counts": counts}))
    return Dataset(root=root, sizes=sizes, repo=repo, entities=entities, counts=counts)


def load(root: Path) -> Dataset:
    """A dataset ``generate`` wrote under ``root``."""
    meta = json.loads((root / "dataset.json").read_text())
    return Dataset(root=root, sizes=Sizes(**meta["sizes"]), repo=root / "keel_repo",
                   entities=root / "entities.parquet", counts=meta["counts"])


def variant(ds: Dataset, name: str, ttl_s: dict[str, int]) -> Dataset:
    """The same data under a second Keel repo whose views have other ttls
    (``{view name: seconds}``): its ``data`` folder links to the first's."""
    views = tuple(dataclasses.replace(v, ttl_s=ttl_s.get(v.name, v.ttl_s)) for v in ds.views)
    repo = ds.root / f"keel_repo_{name}"
    repo.mkdir(exist_ok=True)
    if not (repo / "data").exists():
        (repo / "data").symlink_to(ds.repo / "data", target_is_directory=True)
    (repo / "features.yaml").write_text(keel_yaml(views))
    return dataclasses.replace(ds, repo=repo, views=views)


def keel_yaml(views: tuple[View, ...], paths: dict[str, str] | None = None) -> str:
    """The repo's definitions; ``paths`` replaces a view's source path (by
    view name), e.g. with a registered dataset's ``dataset:NAME@VERSION``."""
    paths = paths or {}

    def view_yaml(v: View) -> str:
        feats = "\n".join(f"      - {{name: {f}, dtype: {t}}}" for f, t in v.features)
        ttl = "0" if not v.ttl_s else f"{v.ttl_s // DAY}d" if v.ttl_s % DAY == 0 else f"{v.ttl_s}s"
        return (f"  - name: {v.name}\n    entities: [user]\n    ttl: {ttl}\n"
                f"    source: {v.source}\n    features:\n{feats}\n")

    def source_yaml(v: View) -> str:
        s = (f"  - name: {v.source}\n    path: {paths.get(v.name, v.path)}\n"
             f"    timestamp_field: {v.timestamp_field}\n")
        if v.created_field:
            s += f"    created_timestamp_field: {v.created_field}\n"
        return s

    served = [ACTIVITY.name] + [f"{PROFILE.name}:{f}" for f in PROFILE.served]
    return ("# Generated by tests/python/features_crosscheck.py.\n"
            "entities:\n  - name: user\n    join_keys: [user_id]\n"
            "sources:\n" + "".join(source_yaml(v) for v in views)
            + "feature_views:\n" + "".join(view_yaml(v) for v in views)
            + f"feature_services:\n  - name: {SERVICE}\n    features: [{', '.join(served)}]\n")


# --------------------------------------------------------------------------
# DuckDB ASOF JOIN: the reference
# --------------------------------------------------------------------------


def asof_reference(ds: Dataset, *, short_names: bool = False, match_times: bool = False,
                   threads: int | None = None) -> pa.Table:
    """The training set by DuckDB: each view deduplicated to the largest
    created timestamp per (key, event time), ``ASOF LEFT JOIN`` on the key
    and ``entity_ts >= row_ts``, then matches older than the ttl nulled.
    Entity columns first, in the entity file's row order. With
    ``match_times``, also ``<view>__matched_ts`` (the matched row's event
    time, null when nothing is within the ttl)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        entities = pq.read_table(ds.entities)
        ent_cols = entities.column_names
        con.register("entity_rows", entities.append_column(
            "__pos", pa.array(np.arange(entities.num_rows), pa.int64())))
        ctes, joins, cols = [], [], []
        for i, v in enumerate(ds.views):
            feats = ", ".join(f"f.{f}" for f in v.served)
            src = f"read_parquet('{ds.source(v)}')"
            if v.created_field:
                src = (f"(SELECT * FROM {src} QUALIFY row_number() OVER (PARTITION BY {KEY}, "
                       f"{v.timestamp_field} ORDER BY {v.created_field} DESC) = 1)")
            ctes.append(
                f"j{i} AS (SELECT e.__pos, f.{v.timestamp_field} AS __ts, {feats} "
                f"FROM entity_rows e ASOF LEFT JOIN {src} f "
                f"ON e.{KEY} = f.{KEY} AND e.{ENTITY_TS} >= f.{v.timestamp_field})")
            joins.append(f"JOIN j{i} USING (__pos)")
            within = (f"j{i}.__ts IS NOT NULL" if v.ttl_s == 0 else
                      f"epoch_us(j{i}.__ts) >= epoch_us(e.{ENTITY_TS}) - {v.ttl_s * 1_000_000}")
            for f in v.served:
                name = f if short_names else f"{v.name}__{f}"
                cols.append(f'CASE WHEN {within} THEN j{i}.{f} END AS "{name}"')
            if match_times:
                cols.append(f'CASE WHEN {within} THEN j{i}.__ts END AS "{v.name}__matched_ts"')
        sql = (f"WITH {', '.join(ctes)} SELECT {', '.join('e.' + c for c in ent_cols)}, "
               f"{', '.join(cols)} FROM entity_rows e {' '.join(joins)} ORDER BY e.__pos")
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


# --------------------------------------------------------------------------
# Feast
# --------------------------------------------------------------------------

FEAST_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String"}


def feast_definitions(ds: Dataset) -> str:
    lines = [
        '"""Generated by tests/python/features_crosscheck.py: the Keel repo\'s',
        'definitions in Feast\'s Python API."""',
        "from datetime import timedelta",
        "",
        "from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType",
        "from feast.types import Float64, Int64, String",
        "",
        f"user = Entity(name='user', join_keys=['{KEY}'], value_type=ValueType.INT64)",
    ]
    for v in ds.views:
        created = f", created_timestamp_column='{v.created_field}'" if v.created_field else ""
        schema = ", ".join(f"Field(name='{f}', dtype={FEAST_TYPES[t]})" for f, t in v.features)
        lines += [
            "",
            # Absolute: Feast's DuckDB store reads the path as given (from the
            # working directory), its dask store relative to the repo.
            f"{v.source} = FileSource(name='{v.source}', path={str(ds.source(v))!r}, "
            f"timestamp_field='{v.timestamp_field}'{created})",
            f"{v.name} = FeatureView(name='{v.name}', entities=[user], "
            f"ttl=timedelta(seconds={v.ttl_s}), source={v.source}, schema=[{schema}], online=False)",
        ]
    profile_feats = ", ".join(repr(f) for f in PROFILE.served)
    lines += ["", f"{SERVICE} = FeatureService(name='{SERVICE}', features=[{ACTIVITY.name}, "
                  f"{PROFILE.name}[[{profile_feats}]]])", ""]
    return "\n".join(lines)


def write_feast_repo(ds: Dataset, offline_store: str) -> Path:
    """A Feast repo (feature_store.yaml + definitions.py) over the same files."""
    repo = ds.root / f"feast_{offline_store}_{ds.repo.name}"
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: keel_crosscheck
        registry: data/registry.db
        provider: local
        offline_store:
          type: {offline_store}
        online_store:
          type: sqlite
          path: data/online_store.db
        entity_key_serialization_version: 3
        """))
    (repo / "definitions.py").write_text(feast_definitions(ds))
    return repo


def feast_store(ds: Dataset, offline_store: str):
    """A Feast FeatureStore with the definitions applied (what `feast apply` does)."""
    os.environ.setdefault("FEAST_USAGE", "False")
    from feast import Entity, FeatureService, FeatureStore, FeatureView, FileSource

    repo = write_feast_repo(ds, offline_store)
    spec = importlib.util.spec_from_file_location(f"feast_defs_{repo.name}", repo / "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    objects = [o for o in vars(module).values()
               if isinstance(o, (Entity, FileSource, FeatureView, FeatureService))]
    store = FeatureStore(repo_path=str(repo))
    store.apply(objects)
    return store


def entity_frame(ds: Dataset):
    return pq.read_table(ds.entities).to_pandas()


def feast_historical(ds: Dataset, offline_store: str, store=None):
    """``get_historical_features(...).to_df()`` for the service, full
    feature names; returns (DataFrame, seconds spent in the call + to_df)."""
    store = store or feast_store(ds, offline_store)
    frame = entity_frame(ds)
    t = time.perf_counter()
    job = store.get_historical_features(entity_df=frame,
                                        features=store.get_feature_service(SERVICE),
                                        full_feature_names=True)
    df = job.to_df()
    return df, time.perf_counter() - t


# --------------------------------------------------------------------------
# Keel
# --------------------------------------------------------------------------


def run_keel(keel: Path, args: list[str], target: list[str], timeout: float = 1800):
    """Run ``keel ARGS TARGET`` (TARGET: ``--data-dir DIR`` or ``--server URL``);
    (the finished process, wall seconds). A non-zero exit is an AssertionError
    carrying both streams."""
    cmd = [str(keel), *args, *target]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise AssertionError(f"`keel {' '.join(args)}` exited with {res.returncode}\n"
                             f"--- stdout ---\n{res.stdout[-4000:]}\n--- stderr ---\n{res.stderr[-4000:]}")
    return res, wall


def keel_apply(keel: Path, ds: Dataset, target: list[str]):
    return run_keel(keel, ["features", "apply", str(ds.repo), "--yes"], target)


def keel_register(keel: Path, name: str, path: Path, target: list[str]) -> str:
    """``keel data register NAME PATH``: the new version's id (it prints it)."""
    res, _ = run_keel(keel, ["data", "register", name, str(path)], target)
    return res.stdout.strip().splitlines()[-1].strip()


def keel_query(keel: Path, sql: str, target: list[str]) -> list[dict]:
    """``keel data query SQL --json``: the result rows."""
    res, _ = run_keel(keel, ["data", "query", sql, "--json"], target)
    return json.loads(res.stdout)["rows"]


def training_set_args(ds: Dataset, out: Path, short_names: bool = False) -> list[str]:
    return (["features", "training-set", "--service", SERVICE, "--entities", str(ds.entities),
             "--out", str(out)] + (["--short-names"] if short_names else []))


def keel_training_set(keel: Path, ds: Dataset, target: list[str], out: Path,
                      short_names: bool = False):
    """(the table Keel wrote to ``out``, wall seconds, the finished process)."""
    res, wall = run_keel(keel, training_set_args(ds, out, short_names), target)
    return pq.read_table(out), wall, res


# --------------------------------------------------------------------------
# comparing
# --------------------------------------------------------------------------


def table_differences(got: pa.Table, want: pa.Table, limit: int = 10) -> list[str]:
    """Row by row, in order; nulls equal nulls. Empty when equal."""
    out = []
    if got.column_names != want.column_names:
        return [f"columns {got.column_names} != {want.column_names}"]
    if got.num_rows != want.num_rows:
        return [f"{got.num_rows} rows != {want.num_rows}"]
    for name in want.column_names:
        a, b = got.column(name).to_pylist(), want.column(name).to_pylist()
        bad = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        if bad:
            out.append(f"{name}: {len(bad)} rows differ, e.g. " + "; ".join(
                f"row {i}: {a[i]!r} != {b[i]!r}" for i in bad[:limit]))
    return out


def _norm(v):
    """A value as comparable across engines: None for null/NaN, float for numbers."""
    if v is None:
        return None
    try:
        import pandas as pd
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return str(v)


def rows_by_id(frame, columns: list[str]) -> dict[int, tuple]:
    """{row_id: normalised values of ``columns``} from a DataFrame or Table."""
    if isinstance(frame, pa.Table):
        frame = frame.to_pandas()
    ids = frame["row_id"].to_numpy()
    vals = list(zip(*[[_norm(v) for v in frame[c].tolist()] for c in columns]))
    out = {}
    for i, row in zip(ids.tolist(), vals):
        if int(i) in out:
            raise AssertionError(f"row_id {i} appears twice in the result")
        out[int(i)] = row
    return out


def _tie_candidates(ds: Dataset, view: View) -> dict[tuple[int, int], list[tuple]]:
    """{(user, event time in us): [values of every row at that key and time]}
    for the keys and times that have more than one row."""
    t = pq.read_table(ds.source(view), columns=[KEY, view.timestamp_field, *view.served])
    frame = t.to_pandas()
    frame["event_us"] = t.column(view.timestamp_field).cast(pa.int64()).to_numpy()
    frame = frame[frame.duplicated([KEY, "event_us"], keep=False)]
    out: dict[tuple[int, int], list[tuple]] = {}
    for row in frame.itertuples(index=False):
        d = row._asdict()
        out.setdefault((int(d[KEY]), int(d["event_us"])), []).append(
            tuple(_norm(d[f]) for f in view.served))
    return out


def explain_feast_dask(ds: Dataset, dask_df, reference: pa.Table) -> dict:
    """Sort every difference between Feast's dask store and the reference
    into its known cause; what cannot be explained is returned as such.

    Causes (Feast 0.67's dask store, `feast/infra/offline_stores/dask.py`):

    * ``no_feature_in_ttl`` — it left-joins the entity rows to all of the
      key's feature rows, then filters the *joined* rows to the ttl window
      (``_filter_ttl``); an entity row whose key has feature rows, none of
      them inside the window, loses every joined row and disappears
      (including rows before the key's first event). Only keys without any
      row survive, with nulls.
    * ``duplicate_entity_row`` — ``_drop_duplicates`` deduplicates on
      (join keys, entity event time), so entity rows with the same key and
      time (a label observed twice) collapse into one.
    * ``wrong_tie`` — it sorts by created, then by event time, and keeps the
      last row per entity row; dask's sort is not stable, so among rows with
      the same event time the one kept is not the one with the largest
      created timestamp.
    """
    feats = ds.feature_columns()
    ref_rows = rows_by_id(reference, feats)
    ref = reference.to_pandas()
    ids = ref["row_id"].to_numpy()
    keys = ref[KEY].to_numpy()
    ets = reference.column(ENTITY_TS).cast(pa.int64()).to_numpy()
    # no_feature_in_ttl: some view has rows for the key, none within the window.
    dropped = np.zeros(len(ref), bool)
    by_view = {}
    for v in ds.views:
        has_rows = np.isin(keys, pq.read_table(ds.source(v), columns=[KEY]).column(KEY).to_numpy())
        matched = ref[f"{v.name}__matched_ts"].notna().to_numpy()
        by_view[v.name] = int((has_rows & ~matched).sum())
        dropped |= has_rows & ~matched
    no_ttl = set(ids[dropped].tolist())
    # duplicate_entity_row: among the surviving rows, groups of one (key, time).
    groups: dict[tuple[int, int], list[int]] = {}
    for i, k, t in zip(ids[~dropped].tolist(), keys[~dropped].tolist(), ets[~dropped].tolist()):
        groups.setdefault((k, t), []).append(i)
    dup_groups = {g: m for g, m in groups.items() if len(m) > 1}

    got = rows_by_id(dask_df, feats)
    missing = set(ref_rows) - set(got)
    extra = set(got) - set(ref_rows)
    unexplained: list[str] = [f"row {i} is not in the entity file" for i in sorted(extra)[:10]]
    for i in sorted(no_ttl - missing)[:10]:
        unexplained.append(f"row {i} has no feature inside a ttl but was kept: {got[i]}")
    dup_missing = 0
    for g, members in dup_groups.items():
        kept = [m for m in members if m in got]
        if len(kept) != 1:
            unexplained.append(f"duplicate entity rows {members}: {len(kept)} kept, expected 1")
        dup_missing += len(members) - len(kept)
    explained_missing = no_ttl | {m for ms in dup_groups.values() for m in ms}
    for i in sorted(missing - explained_missing)[:10]:
        unexplained.append(f"row {i} is missing for no known reason: reference {ref_rows[i]}")

    # wrong_tie: present rows whose values differ, view by view.
    ties = {v.name: _tie_candidates(ds, v) for v in ds.views}
    pos = {int(i): p for p, i in enumerate(ids.tolist())}
    offset, tie_rows, wrong_tie = 0, 0, []
    for v in ds.views:
        width = len(v.served)
        match_us = reference.column(f"{v.name}__matched_ts").cast(pa.int64()).to_pylist()
        for i, want in ref_rows.items():
            cands = ties[v.name].get((int(keys[pos[i]]), match_us[pos[i]] or -1))
            if cands and i in got:
                tie_rows += 1
            if i not in got:
                continue
            a, b = got[i][offset:offset + width], want[offset:offset + width]
            if a == b:
                continue
            if cands and a in cands:
                wrong_tie.append(i)
            else:
                unexplained.append(f"row {i} view {v.name}: dask {a} != reference {b}"
                                   f"{' (a tie, but not one of its rows)' if cands else ''}")
        offset += width
    return {
        "entity_rows": len(ref_rows), "dask_rows": len(got),
        "no_feature_in_ttl": len(no_ttl), "no_feature_in_ttl_rows": sorted(no_ttl),
        "no_feature_in_ttl_by_view": by_view,
        "duplicate_entity_row": dup_missing,
        "tie_rows": tie_rows, "wrong_tie": len(wrong_tie), "wrong_tie_rows": sorted(wrong_tie),
        "unexplained": unexplained,
    }


def mismatches(ds: Dataset, got, reference: pa.Table, short_names: bool = False) -> dict:
    """``got`` (a DataFrame or Table) against the reference, aligned by
    row_id (Feast reorders rows and may turn ints with nulls into floats):
    entity rows missing, rows not in the entity file, rows whose feature
    values differ (with the first few)."""
    feats = ds.feature_columns(short_names)
    want = rows_by_id(reference, feats)
    have = rows_by_id(got, feats)
    bad = [i for i in sorted(want) if i in have and have[i] != want[i]]
    return {"rows": len(have), "missing": len(set(want) - set(have)),
            "extra": len(set(have) - set(want)), "differing": len(bad),
            "examples": [f"row {i}: {have[i]} != {want[i]}" for i in bad[:5]]}


def feast_differences(ds: Dataset, df, reference: pa.Table) -> list[str]:
    """Empty when Feast's result has the reference's rows and values."""
    m = mismatches(ds, df, reference)
    out = []
    if m["missing"] or m["extra"]:
        out.append(f"{m['missing']} entity rows missing, {m['extra']} unexpected")
    if m["differing"]:
        out.append(f"{m['differing']} rows differ, e.g. " + "; ".join(m["examples"]))
    return out


def entity_columns_differences(ds: Dataset, df) -> list[str]:
    """The entity columns of Feast's result, aligned by row_id, against the file."""
    ent = pq.read_table(ds.entities).to_pandas().set_index("row_id")
    got = df.set_index("row_id")
    common = ent.index.intersection(got.index)
    out = []
    if not (got.loc[common, KEY].to_numpy() == ent.loc[common, KEY].to_numpy()).all():
        out.append("user_id changed")
    a = got.loc[common, ENTITY_TS]
    b = ent.loc[common, ENTITY_TS]
    if not (a.dt.tz_convert("UTC").to_numpy() == b.dt.tz_convert("UTC").to_numpy()).all():
        out.append("event_timestamp changed")
    return out


if __name__ == "__main__":  # a quick look: python features_crosscheck.py DIR
    d = generate(Path(sys.argv[1]))
    print(d.counts)
