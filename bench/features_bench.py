#!/usr/bin/env python3
"""Keel's offline feature store vs. Feast and DuckDB: the same training set
(point-in-time join of an entity file with two feature views) built by each
engine from the same Parquet files, in one run.

Workloads (select with --only, comma separated; default both):

  compare  the issue's size: 100,000 entity rows x 2 views x 500,000 events
           each (10,000 users, 30 days). Engines: `keel features
           training-set`, Feast `get_historical_features` with its dask
           (default) and its DuckDB offline stores, and DuckDB's ASOF JOIN.
  large    10,000,000 events per view, the same 100,000 entity rows: Keel
           and DuckDB's ASOF JOIN only (Feast's stores are left out at this
           size: dask takes minutes already at 500,000).

The data, the Keel repo, the equivalent Feast repo and the DuckDB query are
those of the cross-check tests (tests/python/features_crosscheck.py), with
the feature files sorted by event time as an event log is.

Every engine runs as its own child process, one at a time: Keel is the
`keel` binary; Feast and DuckDB run in a child Python (this file with
--child). Reported per engine: wall time of the process (start to exit,
reading Parquet and writing the result included), for the Python engines
also the time inside the call itself (`get_historical_features(...).to_df()`,
the ASOF query), Keel's own time when it prints one, CPU seconds, and peak
resident memory (the child's VmHWM; for the Python engines it includes the
interpreter and its imports). Every result is compared
with DuckDB's ASOF JOIN, row by row by row_id: rows missing, extra rows,
rows with different values (for Feast's dask store, sorted into its known
causes). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "python"))
import features_crosscheck as fc  # noqa: E402

WORKLOADS = ("compare", "large")
ENGINES = ("keel", "feast_dask", "feast_duckdb", "duckdb_asof")
LARGE_ENGINES = ("keel", "duckdb_asof")
REFERENCE = "duckdb_asof"
FULL = dict(users=10_000, days=30, entity_rows=100_000, events=500_000,
            large_events=10_000_000, timeout_s=3600)
QUICK = dict(users=1_000, days=30, entity_rows=10_000, events=50_000,
             large_events=1_000_000, timeout_s=900)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# child: one Python engine
# --------------------------------------------------------------------------


def child(engine: str, root: Path, result: Path, timing: Path) -> None:
    ds = fc.load(root)
    t0 = time.perf_counter()
    if engine == "duckdb_asof":
        t = time.perf_counter()
        table = fc.asof_reference(ds)
        call_s = time.perf_counter() - t
        import pyarrow.parquet as pq
        pq.write_table(table, result)
        info = {}
    elif engine in ("feast_dask", "feast_duckdb"):
        store_kind = engine.split("_", 1)[1]
        t = time.perf_counter()
        store = fc.feast_store(ds, store_kind)
        apply_s = time.perf_counter() - t
        df, call_s = fc.feast_historical(ds, store_kind, store)
        df.to_parquet(result)
        info = {"apply_s": apply_s}
    else:
        raise SystemExit(f"unknown engine {engine}")
    timing.write_text(json.dumps(dict(info, call_s=call_s, after_imports_s=time.perf_counter() - t0,
                                      self_peak_rss_mb=vm_hwm_mb())))


# --------------------------------------------------------------------------
# parent: run, measure, compare
# --------------------------------------------------------------------------


def vm_hwm_mb(pid: int | str = "self"):
    """The process's peak resident memory (VmHWM) so far, in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_measured(cmd: list[str], workdir: Path, name: str, timeout_s: float) -> dict:
    """Run ``cmd`` as a child in its own process group: wall time, CPU (from
    wait4) and peak RSS. The peak is the child's VmHWM, read every 20 ms
    until it exits, not wait4's ru_maxrss: Linux carries the parent's RSS at
    fork into the child's ru_maxrss across exec, which would count this
    driver's own memory."""
    out_path, err_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        killed = threading.Event()
        done = threading.Event()
        peak = [0.0]

        def poll():
            while not done.is_set():
                v = vm_hwm_mb(proc.pid)
                if v is not None:
                    peak[0] = max(peak[0], v)
                done.wait(0.02)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()

        def kill():
            killed.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            done.set()
        wall = time.perf_counter() - t
        poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": peak[0],
            "exit_code": proc.returncode, "timed_out": killed.is_set(),
            "stdout": out_path.read_text(errors="replace")[-4000:],
            "stderr": err_path.read_text(errors="replace")[-4000:]}


REPORTED = re.compile(r"(?:\bin|\btook|\btime|\belapsed)[:= ]+([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\b", re.I)


def keel_reported_s(text: str):
    """The time Keel prints for the join, if it prints one ("... in 235 ms"),
    when its --json output has no elapsed_ms."""
    for line in reversed(text.splitlines()):
        m = REPORTED.search(line)
        if m:
            v = float(m.group(1))
            return (v / 1000 if m.group(2).lower() == "ms" else v), line.strip()
    return None, None


def keel_problem(keel: Path):
    if not keel.exists():
        return f"keel binary not found: {keel}"
    res = subprocess.run([str(keel), "features", "training-set", "--help"], capture_output=True,
                         text=True, timeout=60)
    if res.returncode != 0:
        return "this keel binary has no `features training-set` command"
    return None


def run_engine(engine: str, ds: fc.Dataset, workdir: Path, opts, timeout_s: float) -> dict:
    result = workdir / f"{engine}.parquet"
    if engine == "keel":
        data_dir = workdir / "keel-data"
        if not data_dir.exists():
            data_dir.mkdir()
            res, apply_s = fc.keel_apply(Path(opts.keel_bin), ds, ["--data-dir", str(data_dir)])
        else:
            apply_s = None
        cmd = [opts.keel_bin, *fc.training_set_args(ds, result), "--data-dir", str(data_dir),
               "--json"]
        r = run_measured(cmd, workdir, engine, timeout_s)
        r["apply_s"] = apply_s
        try:  # --json: the manifest, with the time it took
            r["reported_s"] = json.loads(r["stdout"])["elapsed_ms"] / 1000
            r["reported_line"] = "elapsed_ms in --json output"
        except (ValueError, KeyError, TypeError):
            r["reported_s"], r["reported_line"] = keel_reported_s(r["stdout"] + "\n" + r["stderr"])
    else:
        timing = workdir / f"{engine}.timing.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", engine,
               "--dataset", str(ds.root), "--result", str(result), "--timing", str(timing)]
        r = run_measured(cmd, workdir, engine, timeout_s)
        if timing.exists():
            r.update(json.loads(timing.read_text()))
            # exact, where polling may miss the last few milliseconds
            r["peak_rss_mb"] = max(r["peak_rss_mb"], r.get("self_peak_rss_mb") or 0)
    if r["exit_code"] != 0:
        raise RuntimeError(f"{engine} exited with {r['exit_code']}"
                           f"{' (timed out)' if r['timed_out'] else ''}: {r['stderr'][-1500:]}")
    r["result"] = result
    return r


def compare_results(ds: fc.Dataset, engines: dict) -> None:
    """Each engine's result against DuckDB's ASOF JOIN (in place)."""
    import pyarrow.parquet as pq

    ref_run = engines.get(REFERENCE)
    if not ref_run or "result" not in ref_run:
        return
    ref = pq.read_table(ref_run["result"])
    with_matches = None
    for name, r in engines.items():
        if not r or "result" not in r or name == REFERENCE:
            continue
        got = pq.read_table(r["result"])
        r["vs_asof"] = fc.mismatches(ds, got, ref)
        if name == "keel":
            r["vs_asof"]["in_order"] = fc.table_differences(got, ref, limit=3)
        if name == "feast_dask":
            with_matches = with_matches or fc.asof_reference(ds, match_times=True)
            found = fc.explain_feast_dask(ds, got.to_pandas(), with_matches)
            r["dask_causes"] = {k: v for k, v in found.items()
                                if k not in ("no_feature_in_ttl_rows", "wrong_tie_rows")}
            r["dask_causes"]["unexplained"] = found["unexplained"][:10]


def data_files(ds: fc.Dataset) -> dict:
    return {p.name: round(p.stat().st_size / 2**20, 1)
            for p in [ds.entities, *(ds.source(v) for v in ds.views)]}


def wl(name: str, opts, sizes: dict, engines: list[str], workdir: Path) -> dict:
    events = sizes["events"] if name == "compare" else sizes["large_events"]
    s = fc.Sizes(users=sizes["users"], days=sizes["days"], events_per_view=events,
                 entity_rows=sizes["entity_rows"])
    root = workdir / name
    log(f"== {name}: generating {s.entity_rows:,} entity rows x 2 views x {events:,} events")
    t = time.perf_counter()
    ds = fc.generate(root / "data", s, time_ordered=True)
    out = {"sizes": {"users": s.users, "days": s.days, "entity_rows": s.entity_rows,
                     "events_per_view": events},
           "dataset": dict(ds.counts, generate_s=round(time.perf_counter() - t, 1),
                           files_mb=data_files(ds)),
           "engines": {}, "errors": {}}
    order = [e for e in (REFERENCE, *ENGINES) if e in engines]  # the reference first
    order = list(dict.fromkeys(order))
    for engine in order:
        log(f"   {name} / {engine}")
        b0, o0 = system_busy_s(), time.perf_counter()
        try:
            r = run_engine(engine, ds, root, opts, sizes["timeout_s"])
        except Exception as exc:  # keep going: record and report
            log(f"!! {name}/{engine} failed: {exc}")
            out["errors"][engine] = str(exc)[-3000:]
            continue
        wall = time.perf_counter() - o0
        r["other_cores"] = round(max(0.0, (system_busy_s() - b0) - r["cpu_s"]) / wall, 2)
        out["engines"][engine] = r
        log(f"   {engine}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
            f"{r['peak_rss_mb']:.0f} MB peak RSS"
            + (f", call {r['call_s']:.1f} s" if r.get("call_s") is not None else "")
            + (f", reported {r['reported_s']:.2f} s" if r.get("reported_s") is not None else ""))
    compare_results(ds, out["engines"])
    for r in out["engines"].values():
        r.pop("result", None)
    if not opts.keep_data:
        shutil.rmtree(root, ignore_errors=True)
    return out


def system_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def table_rows(results: dict) -> list[tuple]:
    rows = []
    for wname, w in results.items():
        if not w:
            continue
        keel = (w["engines"].get("keel") or {}).get("wall_s")
        for engine in ENGINES:
            r = w["engines"].get(engine)
            if r is None:
                if engine in w.get("errors", {}):
                    rows.append((wname, engine, "failed", "", "", "", "", "", ""))
                continue
            vs = r.get("vs_asof")
            agree = ("reference" if engine == REFERENCE else
                     "-" if vs is None else
                     "yes" if not (vs["missing"] or vs["extra"] or vs["differing"]) else
                     f"{vs['missing']} missing, {vs['extra']} extra, {vs['differing']} differ")
            call = r.get("call_s", r.get("reported_s"))
            ratio = (f"{(call or r['wall_s']) / keel:.1f}x" if keel and engine != "keel" else "")
            rows.append((wname, engine, fmt(r["wall_s"], 2), fmt(call, 2), fmt(r["cpu_s"]),
                         fmt(r["peak_rss_mb"], 0), ratio, agree, fmt(r.get("other_cores"), 2)))
    return rows


def print_table(results: dict) -> None:
    hdr = ("workload", "engine", "wall s", "call s", "CPU s", "peak MB", "÷ keel", "agrees with ASOF",
           "other cores")
    lines = [hdr, *table_rows(results)]
    w = [max(len(str(l[i])) for l in lines) for i in range(len(hdr))]
    for n, l in enumerate(lines):
        print("  ".join(str(x).ljust(w[i]) if i in (0, 1, 7) else str(x).rjust(w[i])
                        for i, x in enumerate(l)))
        if n == 0:
            print("  ".join("-" * x for x in w))
    print("\nwall s: the engine's process, start to exit. call s: inside the Python call "
          "(Feast: get_historical_features + to_df; DuckDB: the query), or the time Keel prints.\n"
          "÷ keel: the engine's call time over Keel's wall time (Keel's includes starting its "
          "process and writing the Parquet file; the calls do not).\n"
          "peak MB: the process's peak RSS (VmHWM). other cores: CPU used meanwhile by "
          "processes outside the benchmark.")
    for wname, w in results.items():
        dask = ((w or {}).get("engines", {}).get("feast_dask") or {}).get("dask_causes")
        if dask:
            print(f"\n{wname}: Feast dask store vs ASOF JOIN, {dask['entity_rows']:,} entity rows: "
                  f"{dask['no_feature_in_ttl']:,} dropped with no feature inside the ttl, "
                  f"{dask['duplicate_entity_row']:,} duplicate entity rows collapsed, "
                  f"{dask['wrong_tie']:,} of {dask['tie_rows']:,} ties decided wrongly, "
                  f"{len(dask['unexplained'])} unexplained")


def sanitize(obj, subs: list[tuple[str, str]]):
    """Machine paths out of everything written to the results file."""
    if isinstance(obj, dict):
        return {k: sanitize(v, subs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [sanitize(v, subs) for v in obj]
    if isinstance(obj, Path):
        obj = str(obj)
    if isinstance(obj, str):
        for a, b in subs:
            if a:
                obj = obj.replace(a, b)
    return obj


def machine_info(opts) -> dict:
    import datetime as _dt
    import platform

    info = {"date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in f
                                      if line.startswith("model name")), None)
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    from importlib.metadata import version
    info["versions"] = {p: version(p) for p in ("feast", "duckdb", "dask", "pandas", "pyarrow",
                                                "ibis-framework", "numpy")}
    try:
        info["keel_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "crates"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["keel_crates_dirty"] = bool(dirty)
        kb = Path(opts.keel_bin)
        info["keel_version"] = subprocess.run([str(kb), "--version"], capture_output=True,
                                              text=True, timeout=10).stdout.strip()
        info["keel_bin_profile"] = kb.parent.name  # release or debug
    except Exception:  # pragma: no cover
        pass
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel-bin", default=str(REPO / "target" / "release" / "keel"))
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help=f"comma-separated workloads ({','.join(WORKLOADS)})")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help=f"comma-separated engines ({','.join(ENGINES)}); `large` runs only "
                         f"{' and '.join(LARGE_ENGINES)} of them")
    ap.add_argument("--skip-dask", action="store_true", help="leave out Feast's dask store")
    ap.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    ap.add_argument("--users", type=int)
    ap.add_argument("--entity-rows", type=int)
    ap.add_argument("--events", type=int, help="events per view in `compare`")
    ap.add_argument("--large-events", type=int, help="events per view in `large`")
    ap.add_argument("--out", default=str(HERE / "results" / "features.json"))
    ap.add_argument("--workdir", help="parent for the generated data (default: a temp dir)")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other workloads' results already in --out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--timing", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.child:
        child(opts.child, Path(opts.dataset), Path(opts.result), Path(opts.timing))
        return 0

    sizes = dict(QUICK if opts.quick else FULL)
    for k in ("users", "entity_rows", "events", "large_events"):
        if getattr(opts, k) is not None:
            sizes[k] = getattr(opts, k)
    only = [w.strip() for w in opts.only.split(",") if w.strip()]
    engines = [e.strip() for e in opts.engines.split(",") if e.strip()]
    if opts.skip_dask and "feast_dask" in engines:
        engines.remove("feast_dask")
    bad = [w for w in only if w not in WORKLOADS] + [e for e in engines if e not in ENGINES]
    if bad:
        ap.error(f"unknown workload/engine: {bad}")
    if REFERENCE not in engines:
        ap.error(f"{REFERENCE} is the reference every result is compared with; keep it")

    out = {"machine": machine_info(opts), "sizes": sizes, "quick": opts.quick,
           "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
           "results": {}, "errors": {}, "workload_runs": {}}
    if opts.merge and Path(opts.out).exists():
        prev = json.loads(Path(opts.out).read_text())
        for w, res in prev.get("results", {}).items():
            if w not in only:
                out["results"][w] = res
                out["workload_runs"][w] = prev.get("workload_runs", {}).get(w)
                out["errors"].update({k: v for k, v in prev.get("errors", {}).items()
                                      if k.split("/")[0] == w})
    if "keel" in engines:
        problem = keel_problem(Path(opts.keel_bin))
        if problem:
            log(f"!! keel left out: {problem}")
            engines.remove("keel")
            for w in only:
                out["errors"][f"{w}/keel"] = problem
    workdir = Path(tempfile.mkdtemp(prefix="keel-features-bench-", dir=opts.workdir))
    t_start = time.perf_counter()
    try:
        for w in only:
            chosen = [e for e in engines if w == "compare" or e in LARGE_ENGINES]
            out["workload_runs"][w] = {"date_utc": out["machine"]["date_utc"],
                                       "command": out["command"]}
            try:
                res = wl(w, opts, sizes, chosen, workdir)
            except Exception as exc:
                import traceback
                log(f"!! {w} failed: {exc!r}")
                out["errors"][w] = traceback.format_exc()[-4000:]
                continue
            out["results"][w] = res
            out["errors"].update({f"{w}/{e}": m for e, m in res.pop("errors").items()})
    finally:
        if not opts.keep_data:
            shutil.rmtree(workdir, ignore_errors=True)
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    venv = str(Path(sys.executable).parent.parent)
    target = Path(opts.keel_bin).resolve().parent.parent  # the cargo target dir
    subs = [(str(workdir), "$WORKDIR"), (venv, "$VENV")]
    if opts.workdir:
        subs.append((str(Path(opts.workdir).resolve()), "$WORKDIR_PARENT"))
        subs.append((opts.workdir, "$WORKDIR_PARENT"))
    out_dir = Path(opts.out).resolve().parent
    if REPO not in out_dir.parents and out_dir != REPO:
        subs.append((str(out_dir), "$OUT_DIR"))
    if REPO not in target.parents:
        subs.append((str(target), "$CARGO_TARGET_DIR"))
    subs += [(str(REPO) + "/", ""), (str(REPO), "."),
            (str(Path.home()), "~"), (tempfile.gettempdir() + "/", "$TMPDIR/")]
    out = sanitize(out, subs)
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print()
    print_table(out["results"])
    if out["errors"]:
        print("\nErrors:")
        for k, v in out["errors"].items():
            print(f"  {k}: {str(v).strip().splitlines()[-1] if str(v).strip() else v}")
    print(f"\nwrote {sanitize(opts.out, subs)} ({out['wall_s']:.0f}s total)")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
