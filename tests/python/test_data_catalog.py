"""The dataset catalog and the feature store's API through the real
`keel server` (SQLite and PostgreSQL metadata stores) and the real `keel`
command line: versions by content, schema changes, profiles cross-checked
against DuckDB on the same file, SQL, and every kind of bad input answered
with a 4xx that names the field — nothing half-written.
"""

from __future__ import annotations

import subprocess
import textwrap

import duckdb
import numpy as np
import pandas as pd
import pytest
import requests

from conftest import keel_bin

pytestmark = [pytest.mark.keel_only, pytest.mark.keel_command("data", "register")]

TIMEOUT = 120


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 10.0, n)
    spend[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 5_000, n),
            "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), unit="s"),
            "spend": spend,
            "country": rng.choice(["FR", "DE", "US", "BR", None], n),
        }
    )


def test_versions_schema_changes_and_profiles(tracking_uri, tmp_path, unique):
    v1 = tracking_uri + "/v1"
    name = f"events-{unique}"
    path = tmp_path / "events.parquet"
    frame = _frame(50_000, 1)
    frame.to_parquet(path, index=False)

    r = requests.post(f"{v1}/datasets", json={"name": name, "path": str(path)}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    first = r.json()["version"]
    assert first["version"] == 1 and first["row_count"] == 50_000
    assert first["schema_change"]["kind"] == "initial"
    assert first["lineage_node"] == f"dataset:{name}@{first['id']}"

    # The profile against DuckDB on the same file: exact counts and
    # moments, estimated distinct counts and quantiles close.
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
    cols = {c["name"]: c for c in first["profile"]["columns"]}
    nulls, lo, hi, mean, std, distinct = con.execute(
        "SELECT count(*) - count(spend), min(spend), max(spend), avg(spend), stddev_samp(spend), count(DISTINCT spend) FROM t"
    ).fetchone()
    spend = cols["spend"]
    assert spend["nulls"] == nulls
    assert spend["min"] == pytest.approx(lo) and spend["max"] == pytest.approx(hi)
    assert spend["mean"] == pytest.approx(mean, rel=1e-9)
    assert spend["std"] == pytest.approx(std, rel=1e-9)
    assert spend["distinct"] == pytest.approx(distinct, rel=0.05)
    for q in ("p05", "p25", "p50", "p75", "p95"):
        want = con.execute(f"SELECT quantile_cont(spend, {int(q[1:]) / 100}) FROM t").fetchone()[0]
        assert spend["quantiles"][q] == pytest.approx(want, rel=0.02), q
    country = cols["country"]
    assert country["nulls"] == con.execute("SELECT count(*) - count(country) FROM t").fetchone()[0]
    assert country["distinct"] == 4 and country["min"] == "BR" and country["max"] == "US"
    ids = con.execute("SELECT count(DISTINCT user_id) FROM t").fetchone()[0]
    assert cols["user_id"]["distinct"] == pytest.approx(ids, rel=0.05)

    # The same bytes: the same version.
    again = requests.post(f"{v1}/datasets", json={"name": name, "path": str(path)}, timeout=TIMEOUT)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["version"]["id"] == first["id"]

    # A column removed: a breaking change, and v1 still reads as it was.
    frame.drop(columns=["country"]).to_parquet(path, index=False)
    second = requests.post(f"{v1}/datasets", json={"name": name, "path": str(path)}, timeout=TIMEOUT).json()["version"]
    assert second["version"] == 2
    assert second["schema_change"]["kind"] == "breaking"
    assert [c["column"] for c in second["schema_change"]["changes"]] == ["country"]
    q = requests.post(
        f"{v1}/datasets/query",
        json={"sql": f'SELECT count(country) AS n FROM "{name}@v1"'},
        timeout=TIMEOUT,
    ).json()
    assert q["rows"] == [{"n": int(frame["country"].notna().sum())}]
    shown = requests.get(f"{v1}/datasets/{name}", timeout=TIMEOUT).json()
    assert [v["version"] for v in shown["versions"]] == [2, 1]
    one = requests.get(f"{v1}/datasets/{name}/versions/{first['id'][:8]}", timeout=TIMEOUT).json()
    assert one["version"]["version"] == 1

    # SQL results equal DuckDB's on the same data.
    got = requests.post(
        f"{v1}/datasets/query",
        json={"sql": f'SELECT user_id % 7 AS k, count(*) AS n, sum(spend) AS s FROM "{name}" GROUP BY 1 ORDER BY 1'},
        timeout=TIMEOUT,
    ).json()
    want = con.execute("SELECT user_id % 7, count(*), sum(spend) FROM t GROUP BY 1 ORDER BY 1").fetchall()
    assert [(r["k"], r["n"]) for r in got["rows"]] == [(k, n) for k, n, _ in want]
    for r, (_, _, s) in zip(got["rows"], want):
        assert r["s"] == pytest.approx(s, rel=1e-9)


def test_bad_dataset_input_is_a_4xx_naming_the_field(tracking_uri, tmp_path, unique):
    v1 = tracking_uri + "/v1"
    path = tmp_path / "x.parquet"
    _frame(10, 2).to_parquet(path, index=False)

    def post(url, body):
        return requests.post(f"{v1}{url}", json=body, timeout=TIMEOUT)

    cases = [
        ("/datasets", {"name": "bad name", "path": str(path)}, 400, "name"),
        ("/datasets", {"name": f"r-{unique}", "path": "x.parquet"}, 400, "path"),
        ("/datasets", {"name": f"m-{unique}", "path": str(tmp_path / "missing.parquet")}, 400, "path"),
        ("/datasets/query", {"sql": "DROP TABLE anything"}, 400, "sql"),
        ("/datasets/query", {"sql": "SELECT 1", "limit": 0}, 400, "limit"),
    ]
    for url, body, status, field in cases:
        r = post(url, body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    (tmp_path / "junk.parquet").write_text("not parquet")
    r = post("/datasets", {"name": f"junk-{unique}", "path": str(tmp_path / "junk.parquet")})
    assert 400 <= r.status_code < 500, r.text
    assert requests.get(f"{v1}/datasets/junk-{unique}", timeout=TIMEOUT).status_code == 404
    r = post("/datasets/query", {"sql": f"SELECT * FROM nothing_{unique}"})
    assert r.status_code == 404, r.text
    r = requests.post(f"{v1}/datasets", data="{", headers={"content-type": "application/json"}, timeout=TIMEOUT)
    assert 400 <= r.status_code < 500


BROKEN = textwrap.dedent(
    """\
    entities:
      - name: user
        join_keys: [user_id]
    sources:
      - name: src
        path: data/events.parquet
        timestamp_field: event_timestamp
    feature_views:
      - name: activity
        entities: [usr]
        ttl: 1 day
        source: src
        features:
          - {name: spend, dtype: float64}
          - {name: spend, dtype: float64}
    """
)


def _keel(*args, check=False):
    res = subprocess.run([str(keel_bin()), *args], capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def test_bad_definitions_are_all_reported_with_file_and_line(tracking_uri, tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    _frame(100, 3).to_parquet(repo / "data" / "events.parquet", index=False)
    (repo / "features.yaml").write_text(BROKEN)
    # Through the server: 400 with every problem, and nothing applied.
    res = _keel("features", "apply", str(repo), "--yes", "--server", tracking_uri)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("features.yaml:")]
    assert len(lines) == 3, res.stderr
    assert any(":10:" in line and "usr" in line for line in lines), lines
    assert any(":11:" in line and "ttl" in line for line in lines), lines
    assert any(":15:" in line and "spend" in line for line in lines), lines
    r = requests.post(
        tracking_uri + "/v1/features/apply",
        json={"files": [{"path": "features.yaml", "text": BROKEN}], "repo_dir": str(repo)},
        timeout=TIMEOUT,
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "INVALID_DEFINITION" and len(error["problems"]) == 3
    assert {p["file"] for p in error["problems"]} == {"features.yaml"}

    # The same through a data directory, and the type disagreeing with the
    # data once the definitions parse.
    fixed = BROKEN.replace("[usr]", "[user]").replace("1 day", "1d")
    fixed = fixed.replace("      - {name: spend, dtype: float64}\n      - {name: spend, dtype: float64}\n", "      - {name: spend, dtype: int64}\n")
    (repo / "features.yaml").write_text(fixed)
    res = _keel("features", "apply", str(repo), "--yes", "--data-dir", str(tmp_path / "kd"))
    assert res.returncode == 2, res.stderr
    # Data problems point at the view, with the path of the feature.
    assert "features.yaml:9:5: feature_views[0].features[0]:" in res.stderr, res.stderr
    assert "declared int64" in res.stderr, res.stderr
    res = _keel("features", "show", "--data-dir", str(tmp_path / "kd"))
    assert res.returncode != 0 and "no feature repo is applied" in res.stderr


def test_training_set_bad_input(tracking_uri, tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    _frame(1_000, 4).to_parquet(repo / "data" / "events.parquet", index=False)
    good = BROKEN.replace("[usr]", "[user]").replace("1 day", "1d").replace(
        "      - {name: spend, dtype: float64}\n      - {name: spend, dtype: float64}\n",
        "      - {name: spend, dtype: float64}\n",
    ) + "feature_services:\n  - name: svc\n    features: [activity]\n"
    (repo / "features.yaml").write_text(good)
    target = ["--data-dir", str(tmp_path / "kd")]
    _keel("features", "apply", str(repo), "--yes", *target, check=True)
    entities = tmp_path / "entities.parquet"
    pd.DataFrame({"uid": [1], "event_timestamp": [pd.Timestamp("2026-01-02", tz="UTC")]}).to_parquet(entities)
    out = tmp_path / "out.parquet"
    res = _keel("features", "training-set", "--service", "svc", "--entities", str(entities), "--out", str(out), *target)
    assert res.returncode == 2 and "user_id" in res.stderr, res.stderr
    res = _keel("features", "training-set", "--service", "sv", "--entities", str(entities), "--out", str(out), *target)
    assert res.returncode == 2 and "did you mean `svc`" in res.stderr, res.stderr
    res = _keel("features", "training-set", "--service", "svc", "--entities", str(tmp_path / "none.parquet"), "--out", str(out), *target)
    assert res.returncode == 2 and "none.parquet" in res.stderr, res.stderr
    assert not out.exists()
    res = _keel("features", "training-set", "--service", "svc", "--entities", str(entities), "--out", str(tmp_path / "no" / "such" / "dir.parquet"), *target)
    assert res.returncode == 2 and "does not exist" in res.stderr, res.stderr
