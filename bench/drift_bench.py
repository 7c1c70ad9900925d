"""Drift report on the same Parquet files: `keel monitor drift` against
Evidently 0.7's DataDriftPreset (tests/evidently/drift_data.py: 20 numeric
and 5 categorical columns, drift injected into some).

Each side runs as its own process, timed from start to exit (reading the
files included) with its peak resident memory from wait4's rusage. Evidently
reads the files with pandas (pyarrow) and runs `Report([DataDriftPreset()])`;
its snapshot is built, not rendered to HTML. Keel prints its JSON.

    bench/run drift [--rows 1000000,10000000] [--evidently-max-rows N]
        [--evidently-timeout S] [--max-rss-gib G] [--out bench/results/drift.json]

Evidently is skipped above --evidently-max-rows (default 10,000,000: it runs
at every size the run asks for, and the outcome is recorded — a failure or
time-out included). The verdicts of both are compared column by column.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "evidently"))
import drift_data  # noqa: E402

EVIDENTLY = r"""
import json, sys
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
sys.path.insert(0, sys.argv[3])
import drift_data
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
d = DataDefinition(numerical_columns=drift_data.NUMERIC, categorical_columns=drift_data.CATEGORICAL)
snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=d),
                                       Dataset.from_pandas(ref, data_definition=d))
out = {}
for m in snap.dict()["metrics"]:
    c = m["config"]
    if c["type"].endswith("ValueDrift"):
        out[c["column"]] = {"method": c["method"], "score": float(m["value"]), "threshold": c["threshold"]}
    elif c["type"].endswith("DriftedColumnsCount"):
        out["__count"] = m["value"]["count"]
print(json.dumps(out))
"""

DRIFTED = {
    "K-S p_value": lambda s, t: s <= t,
    "chi-square p_value": lambda s, t: s < t,
    "Z-test p_value": lambda s, t: s < t,
    "Wasserstein distance (normed)": lambda s, t: s >= t,
    "Jensen-Shannon distance": lambda s, t: s >= t,
}


def rss_gib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def timed(cmd: list[str], timeout: float, max_rss_gib: float = 1e9) -> dict:
    """Wall seconds, peak RSS (MiB), exit status and stdout of one process;
    killed past `timeout` seconds or `max_rss_gib` of resident memory (the
    machine's budget, so a run that would swap or be OOM-killed is
    recorded as such)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        deadline = start + timeout
        status = None
        while True:
            pid, st, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = os.waitstatus_to_exitcode(st)
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, st, usage = os.wait4(proc.pid, 0)
                status = "timeout"
                break
            if rss_gib(proc.pid) > max_rss_gib:
                proc.kill()
                _, st, usage = os.wait4(proc.pid, 0)
                status = f"killed above {max_rss_gib} GiB resident"
                break
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return {"seconds": round(wall, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                "status": status, "stdout": out.read().decode(), "stderr": err.read().decode()[-2000:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel-bin", required=True)
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--evidently-max-rows", type=int, default=10_000_000)
    ap.add_argument("--evidently-timeout", type=float, default=1800)
    ap.add_argument("--max-rss-gib", type=float, default=18.0,
                    help="kill a side whose resident memory passes this (the machine has 24 GiB)")
    ap.add_argument("--data-dir", default=None, help="keep the generated files here (reused)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "drift.json"))
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(a.data_dir or tmp)
        for n in [int(x) for x in a.rows.split(",")]:
            d = base / f"rows{n}"
            ref, cur = d / "reference.parquet", d / "current.parquet"
            if not (ref.exists() and cur.exists()):
                print(f"generating {n:,} rows x 25 columns", file=sys.stderr)
                drift_data.make(d, n)
            row = {"rows": n, "columns": 25,
                   "file_mib": round((ref.stat().st_size + cur.stat().st_size) / 2**20, 1)}
            k = timed([a.keel_bin, "monitor", "drift", "--reference", str(ref), "--current", str(cur),
                       "--json", "--evidently-chisquare"], a.evidently_timeout, a.max_rss_gib)
            row["keel"] = {x: k[x] for x in ("seconds", "peak_rss_mib", "status")}
            keel = json.loads(k["stdout"]) if k["status"] == 0 else None
            print(f"{n:,} rows: keel {k['seconds']} s, {k['peak_rss_mib']} MiB", file=sys.stderr)
            if n <= a.evidently_max_rows:
                e = timed([sys.executable, "-c", EVIDENTLY, str(ref), str(cur), str(ROOT / "tests" / "evidently")],
                          a.evidently_timeout, a.max_rss_gib)
                row["evidently"] = {x: e[x] for x in ("seconds", "peak_rss_mib", "status")}
                if e["status"] != 0:
                    row["evidently"]["error"] = e["stderr"][-500:]
                print(f"{n:,} rows: evidently {e['seconds']} s, {e['peak_rss_mib']} MiB, status {e['status']}",
                      file=sys.stderr)
                if e["status"] == 0 and keel is not None:
                    ev = json.loads(e["stdout"])
                    count = ev.pop("__count")
                    by = {c["column"]: c for c in keel["columns"]}
                    same = sum(
                        1 for col, v in ev.items()
                        if by[col]["drifted"] == DRIFTED[v["method"]](v["score"], v["threshold"]))
                    worst = max(abs(by[col]["score"] - v["score"]) / max(abs(v["score"]), 1e-300)
                                for col, v in ev.items())
                    row["verdicts_equal"] = f"{same}/{len(ev)}"
                    row["drifted_columns"] = {"keel": keel["drifted_columns"], "evidently": count}
                    row["max_relative_score_difference"] = worst
                    row["speedup"] = round(e["seconds"] / k["seconds"], 1)
                    row["memory_ratio"] = round(k["peak_rss_mib"] / e["peak_rss_mib"], 3)
            results.append(row)
            print(json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
