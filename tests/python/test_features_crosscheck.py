"""The offline feature store's training sets, cross-checked: one seeded repo
and entity file (``features_crosscheck.py``) through Keel, through Feast's
DuckDB and dask offline stores, and through DuckDB's ASOF JOIN.

* DuckDB's ASOF JOIN is the reference (each view deduplicated to the largest
  created timestamp per key and time, ``ASOF LEFT JOIN`` on the key and
  ``entity_ts >= row_ts``, matches older than the ttl nulled).
* Keel must equal it exactly: same columns in the same order, same rows in
  the entity file's order, nulls where it has nulls.
* Feast's DuckDB store must equal it too (compared by ``row_id``: Feast
  reorders rows and turns integer columns with nulls into floats).
* Feast's default dask store does not, and every one of its differences is
  sorted into a known cause (``explain_feast_dask``); a difference with no
  known cause fails the test.

The Keel tests need a binary with ``keel features training-set``; without
one they are skipped, or failed when CI=true (the ``keel_command`` marker).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import features_crosscheck as fc
from conftest import ServerProcess, keel_bin

needs_keel = pytest.mark.keel_command("features", "training-set")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> fc.Dataset:
    return fc.generate(tmp_path_factory.mktemp("features-crosscheck"))


@pytest.fixture(scope="module")
def reference_with_matches(dataset) -> pa.Table:
    return fc.asof_reference(dataset, match_times=True)


@pytest.fixture(scope="module")
def reference(dataset) -> pa.Table:
    return fc.asof_reference(dataset)


@pytest.fixture(scope="module")
def feast_duckdb(dataset):
    df, _ = fc.feast_historical(dataset, "duckdb")
    return df


@pytest.fixture(scope="module")
def no_ttl(dataset) -> fc.Dataset:
    """The same data, with the profile view's ttl 0: no lower bound."""
    return fc.variant(dataset, "no_ttl", {fc.PROFILE.name: 0})


@pytest.fixture(scope="module")
def keel_data_dir(dataset, tmp_path_factory) -> list[str]:
    """A Keel data directory with the repo applied, as CLI arguments."""
    data_dir = tmp_path_factory.mktemp("keel-data")
    fc.keel_apply(keel_bin(), dataset, ["--data-dir", str(data_dir)])
    return ["--data-dir", str(data_dir)]


# --------------------------------------------------------------------------
# the data and the reference
# --------------------------------------------------------------------------


def test_the_data_exercises_every_case(dataset, reference_with_matches):
    """What the other tests rely on is really in the data: ties that decide a
    match, both ttl bounds hit exactly, rows with no match (before any event,
    unknown users, nothing inside the ttl), duplicate entity rows."""
    ref = reference_with_matches.to_pandas()
    n = len(ref)
    assert n == dataset.sizes.entity_rows
    assert ref["row_id"].tolist() == list(range(n)), "the reference keeps the entity order"
    ets = ref[fc.ENTITY_TS]
    for v in dataset.views:
        matched = ref[f"{v.name}__matched_ts"]
        at_upper = (matched == ets).sum()
        at_lower = (matched == ets - pd.Timedelta(seconds=v.ttl_s)).sum()
        unmatched = matched.isna().sum()
        assert at_upper >= 20, f"{v.name}: {at_upper} rows matched at exactly their own time"
        assert at_lower >= 5, f"{v.name}: {at_lower} rows matched exactly one ttl back"
        assert unmatched >= n // 20, f"{v.name}: only {unmatched} rows without a match"
    ties = fc._tie_candidates(dataset, fc.ACTIVITY)
    act_us = reference_with_matches.column("user_activity__matched_ts").cast(pa.int64()).to_pylist()
    on_tie = sum((k, t) in ties for k, t in zip(ref[fc.KEY].tolist(), act_us) if t is not None)
    assert on_tie >= 200, f"only {on_tie} entity rows are decided by a created-timestamp tie"
    before = ets < pd.Timestamp(fc.START, unit="s", tz="UTC")
    assert before.sum() > 0 and ref.loc[before, "user_activity__matched_ts"].isna().all()
    unknown = ref[fc.KEY] > dataset.sizes.users
    assert unknown.sum() > 0 and ref.loc[unknown, fc.ACTIVITY.name + "__clicks_1d"].isna().all()
    assert ref.duplicated([fc.KEY, fc.ENTITY_TS]).sum() >= n // 50
    # A null feature value on a matched row is kept as a null, not a miss.
    assert (ref["user_activity__spend_1d"].isna() & ref["user_activity__matched_ts"].notna()).sum() > 0


def test_a_zero_ttl_has_no_lower_bound(no_ttl, reference):
    """With ttl 0 the profile view matches every row that has a profile row
    at or before it; the rows a 7-day ttl matched keep their values. Feast's
    DuckDB store agrees with the reference here too."""
    ref0 = fc.asof_reference(no_ttl)
    profile = [f"{fc.PROFILE.name}__{f}" for f in fc.PROFILE.served]
    before = reference.select(profile).to_pandas()
    after = ref0.select(profile).to_pandas()
    had = before[profile[0]].notna()
    assert after[profile[0]].notna().sum() > had.sum()
    assert after[had].equals(before[had])
    df, _ = fc.feast_historical(no_ttl, "duckdb")
    assert fc.feast_differences(no_ttl, df, ref0) == []


# --------------------------------------------------------------------------
# Feast
# --------------------------------------------------------------------------


def test_feast_duckdb_store_equals_the_asof_join(dataset, reference, feast_duckdb):
    assert len(feast_duckdb) == reference.num_rows
    assert fc.feast_differences(dataset, feast_duckdb, reference) == []
    assert fc.entity_columns_differences(dataset, feast_duckdb) == []


def test_feast_dask_store_differs_only_for_known_reasons(dataset, reference_with_matches):
    """Feast's default (dask) offline store against the reference. Every
    difference must have one of these causes (see ``explain_feast_dask``
    for where each is in Feast's code):

    * no_feature_in_ttl — the entity row is dropped when its key has feature
      rows but none inside the ttl (about a quarter of the rows here);
    * duplicate_entity_row — entity rows with the same key and time collapse
      into one;
    * wrong_tie — among rows with the same event time it keeps an arbitrary
      one instead of the largest created timestamp (about half the rows
      decided by a tie).
    """
    df, _ = fc.feast_historical(dataset, "dask")
    found = fc.explain_feast_dask(dataset, df, reference_with_matches)
    n = found["entity_rows"]
    print(f"\nFeast dask store vs the ASOF JOIN reference, {n} entity rows:")
    print(f"  no_feature_in_ttl    {found['no_feature_in_ttl']:5} rows dropped "
          f"({found['no_feature_in_ttl'] / n:.0%}; by view {found['no_feature_in_ttl_by_view']}): "
          f"{found['no_feature_in_ttl_rows'][:20]} ...")
    print(f"  duplicate_entity_row {found['duplicate_entity_row']:5} rows dropped")
    print(f"  wrong_tie            {found['wrong_tie']:5} of {found['tie_rows']} tie-decided rows "
          f"({found['wrong_tie'] / max(1, found['tie_rows']):.0%}): {found['wrong_tie_rows'][:20]} ...")
    assert found["unexplained"] == [], "differences with no known cause"
    # Every missing row is accounted for, and the causes really occur here.
    assert found["dask_rows"] == n - found["no_feature_in_ttl"] - found["duplicate_entity_row"]
    assert found["no_feature_in_ttl"] > n // 10
    assert found["duplicate_entity_row"] > 0
    assert 0 < found["wrong_tie"] < found["tie_rows"]


# --------------------------------------------------------------------------
# Keel
# --------------------------------------------------------------------------


def _check_keel_table(dataset, got: pa.Table, want: pa.Table):
    assert fc.table_differences(got, want) == []
    entities = pq.read_table(dataset.entities)
    for name in entities.column_names:
        assert got.schema.field(name).type == entities.schema.field(name).type, name
    dtypes = {f"{v.name}__{f}": t for v in dataset.views for f, t in v.features}
    for name in got.column_names[len(entities.column_names):]:
        typ = got.schema.field(name).type
        declared = dtypes.get(name) or next(t for k, t in dtypes.items() if k.endswith("__" + name))
        ok = {"int64": pa.types.is_int64, "float64": pa.types.is_float64,
              "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
              or getattr(pa.types, "is_string_view", lambda _: False)(t)}[declared]
        assert ok(typ), f"{name}: {typ} for a {declared} feature"


@needs_keel
def test_keel_training_set_equals_the_asof_join(dataset, reference, keel_data_dir, tmp_path):
    got, _, _ = fc.keel_training_set(keel_bin(), dataset, keel_data_dir, tmp_path / "out.parquet")
    _check_keel_table(dataset, got, reference)


@needs_keel
def test_keel_training_set_equals_feast_duckdb_store(dataset, feast_duckdb, keel_data_dir, tmp_path):
    got, _, _ = fc.keel_training_set(keel_bin(), dataset, keel_data_dir, tmp_path / "out.parquet")
    assert fc.feast_differences(dataset, feast_duckdb, got) == []


@needs_keel
def test_keel_training_set_short_names(dataset, keel_data_dir, tmp_path):
    got, _, _ = fc.keel_training_set(keel_bin(), dataset, keel_data_dir,
                                     tmp_path / "out.parquet", short_names=True)
    _check_keel_table(dataset, got, fc.asof_reference(dataset, short_names=True))


@needs_keel
def test_keel_training_set_with_a_zero_ttl(no_ttl, tmp_path):
    target = ["--data-dir", str(tmp_path / "data")]
    fc.keel_apply(keel_bin(), no_ttl, target)
    got, _, _ = fc.keel_training_set(keel_bin(), no_ttl, target, tmp_path / "out.parquet")
    _check_keel_table(no_ttl, got, fc.asof_reference(no_ttl))


@needs_keel
def test_keel_training_set_through_a_server(dataset, reference, tmp_path):
    server = ServerProcess("sqlite", Path(tempfile.mkdtemp(prefix="keel-features-", dir=tmp_path)))
    try:
        server.start()
        target = ["--server", server.uri]
        fc.keel_apply(keel_bin(), dataset, target)
        got, _, _ = fc.keel_training_set(keel_bin(), dataset, target, tmp_path / "out.parquet")
    finally:
        server.cleanup()
    _check_keel_table(dataset, got, reference)


@needs_keel
@pytest.mark.keel_command("data", "register")
def test_keel_training_set_from_registered_datasets(dataset, reference, tmp_path):
    """The views' sources as catalog datasets: `keel data register` prints
    each version's id, `keel data query` counts the rows DuckDB counts, a
    repo names them `dataset:NAME@ID`, and the training set is the same."""
    import duckdb

    target = ["--data-dir", str(tmp_path / "data")]
    paths = {}
    for v in dataset.views:
        source = dataset.source(v)
        version = fc.keel_register(keel_bin(), v.name, source, target)
        assert len(version) >= 4 and version.isalnum(), version
        rows = fc.keel_query(keel_bin(), f"SELECT count(*) AS n FROM {v.name}", target)
        want = duckdb.sql(f"SELECT count(*) FROM read_parquet('{source}')").fetchall()[0][0]
        assert rows == [{"n": want}], v.name
        paths[v.name] = f"dataset:{v.name}@{version}"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "features.yaml").write_text(fc.keel_yaml(dataset.views, paths))
    fc.run_keel(keel_bin(), ["features", "apply", str(repo), "--yes"], target)
    got, _, _ = fc.keel_training_set(keel_bin(), dataset, target, tmp_path / "out.parquet")
    _check_keel_table(dataset, got, reference)
