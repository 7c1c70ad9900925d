"""The drift cross-check data: 20 numeric and 5 categorical columns, with
drift injected into some, written as a reference and a current Parquet file.

Shared by tests/evidently (1,000 and 100,000 rows) and bench/drift_bench.py
(1,000,000 and 10,000,000 rows). Columns:

* num_00..num_04: normal, shifted in the current data by 0, 0.02, 0.05, 0.2
  and 1 standard deviation (a clear miss, two borderline, two clear hits);
* num_05: normal whose scale grows by half; num_06: lognormal; num_07:
  normal with 5 % NaN; num_08: exponential, shifted; num_09: uniform;
* num_10..num_15: assorted stable distributions (t, gamma, beta, mixtures);
* num_16: integers 0..3 stored as floats (few values); num_17: 0/1 with the
  rate moving from 0.30 to 0.36; num_18: counts (Poisson), shifted; num_19:
  heavy-tailed (Cauchy);
* cat_0: 3 stable categories; cat_1: two categories, the share moving;
  cat_2: 50 stable categories with a long tail (where a goodness-of-fit
  chi-square against a small reference flags noise); cat_3: 8 categories,
  one growing; cat_4: 5 categories with 3 % nulls.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
# Columns drawn from the same distribution in both files.
STABLE = {"num_00", "num_06", "num_07", "num_09", "num_10", "num_11", "num_12", "num_13",
          "num_14", "num_15", "num_16", "num_19", "cat_0", "cat_2", "cat_4"}


def _columns(rng: np.random.Generator, n: int, current: bool) -> dict:
    c = 1.0 if current else 0.0
    cols: dict = {}
    for i, shift in enumerate([0.0, 0.02, 0.05, 0.2, 1.0]):
        cols[f"num_{i:02d}"] = rng.normal(shift * c, 1.0, n)
    cols["num_05"] = rng.normal(0.0, 1.0 + 0.5 * c, n)
    cols["num_06"] = rng.lognormal(0.0, 0.75, n)
    x = rng.normal(3.0, 2.0, n)
    x[rng.random(n) < 0.05] = np.nan
    cols["num_07"] = x
    cols["num_08"] = rng.exponential(1.0, n) + 0.3 * c
    cols["num_09"] = rng.uniform(-5.0, 5.0, n)
    cols["num_10"] = rng.standard_t(5, n)
    cols["num_11"] = rng.gamma(2.0, 2.0, n)
    cols["num_12"] = rng.beta(2.0, 5.0, n)
    cols["num_13"] = np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(2, 1, n))
    cols["num_14"] = rng.normal(100.0, 15.0, n).round(1)
    cols["num_15"] = rng.laplace(0.0, 1.0, n)
    cols["num_16"] = rng.integers(0, 4, n).astype(float)
    cols["num_17"] = (rng.random(n) < 0.30 + 0.06 * c).astype(float)
    cols["num_18"] = rng.poisson(3.0 + 0.8 * c, n).astype(float)
    cols["num_19"] = rng.standard_cauchy(n)
    cols["cat_0"] = rng.choice(np.array(["red", "green", "blue"]), n, p=[0.5, 0.3, 0.2])
    cols["cat_1"] = rng.choice(np.array(["no", "yes"]), n, p=[0.8 - 0.1 * c, 0.2 + 0.1 * c])
    tail = 1.0 / np.arange(1, 51) ** 1.1
    cols["cat_2"] = rng.choice(np.array([f"v{i:02d}" for i in range(50)]), n, p=tail / tail.sum())
    p3 = np.array([0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05])
    if current:
        p3 = p3 + np.array([-0.04, -0.02, 0, 0, 0, 0, 0, 0.06])
    cols["cat_3"] = rng.choice(np.array(list("ABCDEFGH")), n, p=p3)
    c4 = rng.choice(np.array(["a", "b", "c", "d", "e"]), n).astype(object)
    c4[rng.random(n) < 0.03] = None
    cols["cat_4"] = c4
    return cols


def write(path, n: int, current: bool, seed: int, chunk: int = 1_000_000) -> None:
    """Writes `n` rows in row groups of `chunk` (so 10M rows never sit in
    memory at once)."""
    rng = np.random.default_rng(seed)
    writer = None
    try:
        done = 0
        while done < n:
            m = min(chunk, n - done)
            table = pa.table(_columns(rng, m, current))
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
            done += m
    finally:
        if writer is not None:
            writer.close()


def make(directory, n_reference: int, n_current: int | None = None, seed: int = 42):
    """Writes reference.parquet and current.parquet; returns their paths."""
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ref, cur = d / "reference.parquet", d / "current.parquet"
    write(ref, n_reference, False, seed)
    write(cur, n_current or n_reference, True, seed + 1)
    return ref, cur
