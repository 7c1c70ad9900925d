#!/usr/bin/env python3
"""Keel vs. `mlflow server`: the same workloads against both, in one run.

Workloads (select with --only, comma separated; default all):

  startup  process spawn -> first 200 on /health (fresh and existing data
           dir), CPU seconds used by then, idle RSS/PSS and idle CPU rate.
  client   the real mlflow client end to end (experiment, runs with
           log_batch, single log_metric calls, search_runs, metric history,
           artifacts); wall seconds per phase; RSS before/after.
  cpu      server CPU per request (utime+stime of the server's whole process
           tree from /proc) for log-metric, runs/get, log-batch of 500
           values and runs/search over a populated experiment.
  load     log-batch throughput from a fast client (wrk + Lua, or a
           multi-process Python generator) at a few concurrency levels,
           for a bounded duration; acknowledged writes checked in the DB.
  search   search_runs p50/p99 over a large experiment (100,000 runs):
           Keel populated over HTTP (create + log_batch), mlflow populated
           through its own SQLAlchemy store (template run) plus bulk SQL.

Every loop is bounded in count and time; every request goes to 127.0.0.1.
Results are written as JSON (--out) and summarised as a table on stdout.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import datetime as _dt
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from procstat import PAGE, read_stat, system_busy_s, tree_cpu_s, tree_pids  # noqa: E402

# The mlflow client must surface server errors instead of retrying for
# minutes, and never hang forever.  Set before mlflow is imported.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import requests  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
API = "/api/2.0/mlflow"
SERVERS = ("keel", "mlflow")
WORKLOADS = ("startup", "client", "cpu", "load", "search")

FULL = dict(
    startup_reps=3,
    client_runs=200, client_params=10, client_tags=5, client_metric_keys=5,
    client_steps=100, client_single_metrics=1000, client_search_rounds=3,
    client_histories=20, client_big_artifact_mb=1,
    cpu_runs=1000, cpu_n_simple=3000, cpu_n_batch=300, cpu_n_search=300,
    cpu_deadline_s=60.0,
    load_duration_s=10, load_conns=[1, 8], load_batch=100, load_keys=10, load_runs=16,
    search_runs=100_000, search_reps=100, search_deadline_s=60.0, search_pages=10,
    populate_deadline_s=1800.0, populate_workers=2, populate_threads=8,
)
QUICK = dict(
    startup_reps=1,
    client_runs=20, client_params=10, client_tags=5, client_metric_keys=5,
    client_steps=100, client_single_metrics=100, client_search_rounds=1,
    client_histories=5, client_big_artifact_mb=1,
    cpu_runs=200, cpu_n_simple=500, cpu_n_batch=50, cpu_n_search=50,
    cpu_deadline_s=20.0,
    load_duration_s=3, load_conns=[8], load_batch=100, load_keys=10, load_runs=4,
    search_runs=5_000, search_reps=20, search_deadline_s=15.0, search_pages=5,
    populate_deadline_s=300.0, populate_workers=2, populate_threads=8,
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, q):
    """q-th percentile (0..100), nearest-rank on the sorted sample."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# /proc: the server's process tree
# --------------------------------------------------------------------------


def _pss_kb(pid: int):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
    except OSError:
        return ""
    return " ".join(p.decode(errors="replace") for p in parts if p)[:160]


def tree_mem(root: int) -> dict:
    procs = []
    for p in tree_pids(root):
        st = read_stat(p)
        if not st:
            continue
        procs.append({
            "pid": p,
            "comm": st["comm"],
            "cmd": _cmdline(p),
            "rss_mb": round(st["rss_pages"] * PAGE / 2**20, 1),
            "pss_mb": round((_pss_kb(p) or 0) / 1024, 1),
        })
    return {
        "rss_mb": round(sum(x["rss_mb"] for x in procs), 1),
        "pss_mb": round(sum(x["pss_mb"] for x in procs), 1),
        "processes": len(procs),
        "detail": procs,
    }


# --------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------


class Server:
    def __init__(self, kind: str, opts, workdir: Path):
        self.kind = kind
        self.opts = opts
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._n = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / ("keel.db" if self.kind == "keel" else "mlflow.db")

    def command(self) -> list[str]:
        if self.kind == "keel":
            return [self.opts.keel_bin, "server", "--data-dir", str(self.data_dir),
                    "--host", "127.0.0.1", "--port", str(self.port)]
        return [self.opts.mlflow_bin, "server",
                "--backend-store-uri", f"sqlite:///{self.data_dir / 'mlflow.db'}",
                "--artifacts-destination", str(self.data_dir / "artifacts"),
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]

    def start(self, timeout: float = 300.0) -> dict:
        """Spawn and wait for /health 200; returns ready seconds and CPU used."""
        assert self.proc is None
        self.port = free_port()
        self._n += 1
        out = open(self.workdir / f"{self.kind}-{self._n}.stdout", "wb")
        err = open(self.workdir / f"{self.kind}-{self._n}.stderr", "wb")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=str(self.workdir),
                                     env=env, start_new_session=True)
        out.close()
        err.close()
        deadline = t0 + timeout
        sess = requests.Session()
        ready = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n"
                                   + self.stderr_tail())
            try:
                r = sess.get(self.uri + "/health", timeout=2)
                if r.status_code == 200:
                    ready = time.monotonic() - t0
                    break
            except requests.RequestException:
                pass
            time.sleep(0.005)
        if ready is None:
            self.stop()
            raise RuntimeError(f"{self.kind} not healthy after {timeout}s\n" + self.stderr_tail())
        cpu = tree_cpu_s(self.proc.pid)
        # really serving the tracking API (and the right server)?
        r = sess.get(self.uri + API + "/experiments/search", params={"max_results": 1}, timeout=30)
        r.raise_for_status()
        version = sess.get(self.uri + "/version", timeout=30).text.strip()
        sess.close()
        return {"ready_s": ready, "cpu_at_ready_s": cpu, "version": version}

    def stderr_tail(self, n: int = 4000) -> str:
        p = self.workdir / f"{self.kind}-{self._n}.stderr"
        try:
            return p.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return tree_cpu_s(self.pid)

    def settle(self, limit_s: float = 120.0, window_s: float = 1.0, max_rate: float = 0.03) -> float:
        """Wait until the whole tree is idle (CPU < max_rate cores over a
        window): mlflow's job-runner children keep booting after /health
        answers.  Returns the seconds waited (bounded by limit_s)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit_s:
            c0 = self.cpu()
            time.sleep(window_s)
            if (self.cpu() - c0) / window_s < max_rate:
                break
        return time.monotonic() - t0

    def mem(self) -> dict:
        return tree_mem(self.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=20)
        # the group may still hold stragglers (uvicorn / job runner children)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None


class ServerSession:
    """Context manager: fresh work dir, started server, cleanup."""

    def __init__(self, kind, opts, tag):
        self.kind, self.opts, self.tag = kind, opts, tag

    def __enter__(self) -> Server:
        base = Path(self.opts.workdir) if self.opts.workdir else None
        wd = Path(tempfile.mkdtemp(prefix=f"keel-bench-{self.kind}-{self.tag}-", dir=base))
        self.server = Server(self.kind, self.opts, wd)
        return self.server

    def __exit__(self, *exc):
        self.server.stop()
        if not self.opts.keep_data:
            shutil.rmtree(self.server.workdir, ignore_errors=True)
        return False


def api(sess, uri, method, path, **kw):
    r = sess.request(method, uri + API + path, timeout=kw.pop("timeout", 300), **kw)
    if r.status_code != 200:
        raise RuntimeError(f"{method} {path} -> {r.status_code}: {r.text[:300]}")
    return r.json()


# --------------------------------------------------------------------------
# workload d: start to ready, idle memory
# --------------------------------------------------------------------------


def wl_startup(kind, opts, sizes) -> dict:
    reps = []
    for i in range(sizes["startup_reps"]):
        with ServerSession(kind, opts, "startup") as srv:
            fresh = srv.start()
            fresh["settle_s"] = srv.settle()
            mem = srv.mem()
            c0, t0 = srv.cpu(), time.monotonic()
            time.sleep(5.0)
            idle_rate = (srv.cpu() - c0) / (time.monotonic() - t0)
            srv.stop()
            warm = srv.start()
            srv.stop()
            rep = {"fresh": fresh, "existing": warm, "idle_after_start": mem,
                   "ready_to_idle_s": fresh["settle_s"],
                   "idle_cpu_ms_per_s": idle_rate * 1000}
            log(f"  {kind} startup #{i}: fresh {fresh['ready_s']:.3f}s "
                f"(cpu {fresh['cpu_at_ready_s']:.2f}s), existing {warm['ready_s']:.3f}s, "
                f"idle rss {mem['rss_mb']} MB pss {mem['pss_mb']} MB in {mem['processes']} procs")
            reps.append(rep)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    return {
        "reps": reps,
        "fresh_ready_s": med([r["fresh"]["ready_s"] for r in reps]),
        "fresh_cpu_s": med([r["fresh"]["cpu_at_ready_s"] for r in reps]),
        "existing_ready_s": med([r["existing"]["ready_s"] for r in reps]),
        "existing_cpu_s": med([r["existing"]["cpu_at_ready_s"] for r in reps]),
        "idle_rss_mb": med([r["idle_after_start"]["rss_mb"] for r in reps]),
        "idle_pss_mb": med([r["idle_after_start"]["pss_mb"] for r in reps]),
        "idle_processes": reps[0]["idle_after_start"]["processes"],
        "idle_cpu_ms_per_s": med([r["idle_cpu_ms_per_s"] for r in reps]),
        "ready_to_idle_s": med([r["ready_to_idle_s"] for r in reps]),
        "version": reps[0]["fresh"]["version"],
    }


# --------------------------------------------------------------------------
# workload a: the mlflow client end to end
# --------------------------------------------------------------------------

CLIENT_SEARCHES = [
    ("metrics.m0 > 0.5", ["metrics.m0 DESC"]),
    ("metrics.m1 < 0.2", ["metrics.m1 ASC"]),
    ("params.p0 = 'v3'", None),
    ("params.p1 != 'v0'", ["params.p1 ASC"]),
    ("tags.t0 = 't0-3'", None),
    ("tags.t1 LIKE 't1-1%'", None),
    ("attributes.run_name LIKE 'run-001%'", ["attributes.start_time DESC"]),
    ("metrics.m2 >= 0.3 and params.p2 = 'v1'", ["metrics.m2 DESC"]),
    ("attributes.status = 'FINISHED'", ["metrics.m3 ASC"]),
    ("", ["metrics.m4 DESC"]),
    ("tags.t2 ILIKE '%-2'", ["attributes.run_name ASC"]),
    ("metrics.m0 > 0.1 and metrics.m1 < 0.9", ["metrics.m0 ASC"]),
]


def client_run_data(i, sizes):
    """Deterministic content of client-workload run i (same on both servers)."""
    rng = random.Random(1000 + i)
    params = {f"p{j}": f"v{rng.randrange(5)}" for j in range(sizes["client_params"])}
    tags = {f"t{j}": f"t{j}-{rng.randrange(5)}" for j in range(sizes["client_tags"])}
    metrics = []
    for k in range(sizes["client_metric_keys"]):
        for s in range(sizes["client_steps"]):
            metrics.append((f"m{k}", round(rng.random(), 6), s))
    return params, tags, metrics


def wl_client(kind, opts, sizes) -> dict:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    with ServerSession(kind, opts, "client") as srv:
        srv.start()
        settle = srv.settle()
        mem_before = srv.mem()
        mlflow.set_tracking_uri(srv.uri)
        c = MlflowClient(tracking_uri=srv.uri)
        tmp = Path(tempfile.mkdtemp(prefix="keel-bench-art-"))
        (tmp / "up" / "sub").mkdir(parents=True)
        for j in range(3):
            (tmp / "up" / f"notes-{j}.txt").write_text(f"file {j}\n" * 200)
        big = tmp / "up" / "sub" / "weights.bin"
        big.write_bytes(random.Random(7).randbytes(sizes["client_big_artifact_mb"] * 2**20))
        big_sha = hashlib.sha256(big.read_bytes()).hexdigest()

        phases, checks, calls = {}, {}, {}
        base_ts = 1_700_000_000_000
        cpu0 = srv.cpu()
        # set_terminated prints "View run ... at" links (after an extra
        # runs/get, which stays part of the workload); keep them off stdout.
        quiet = contextlib.redirect_stdout(io.StringIO())
        quiet.__enter__()
        client_cpu0 = time.process_time()
        t_all = time.perf_counter()

        t = time.perf_counter()
        eid = c.create_experiment(f"bench-{uuid.uuid4().hex[:8]}")
        run_ids = []
        for i in range(sizes["client_runs"]):
            params, tags, metrics = client_run_data(i, sizes)
            r = c.create_run(eid, start_time=base_ts + i * 1000, run_name=f"run-{i:04d}")
            rid = r.info.run_id
            c.log_batch(rid,
                        metrics=[Metric(k, v, base_ts + i * 1000 + s, s) for k, v, s in metrics],
                        params=[Param(k, v) for k, v in params.items()],
                        tags=[RunTag(k, v) for k, v in tags.items()])
            c.set_terminated(rid, end_time=base_ts + i * 1000 + 999)
            run_ids.append(rid)
        phases["runs_log_batch_s"] = time.perf_counter() - t
        calls["runs_log_batch"] = 1 + 4 * len(run_ids)  # create, log_batch, update, get

        t = time.perf_counter()
        n_live = sizes["client_single_metrics"]
        live_runs = run_ids[:10]
        for k in range(n_live):
            c.log_metric(live_runs[k % len(live_runs)], "live", k * 0.001,
                         timestamp=base_ts + k, step=k // len(live_runs))
        phases["single_log_metric_s"] = time.perf_counter() - t
        calls["single_log_metric"] = n_live

        t = time.perf_counter()
        search_results = []
        n_search = 0
        for rnd in range(sizes["client_search_rounds"]):
            max_results = (10, 100, 1000)[rnd % 3]
            for flt, order in CLIENT_SEARCHES:
                res = c.search_runs([eid], filter_string=flt, order_by=order,
                                    max_results=max_results)
                n_search += 1
                search_results.append({
                    "filter": flt, "order_by": order, "max_results": max_results,
                    "count": len(res),
                    "names_sha": hashlib.sha256(
                        "\n".join(x.info.run_name for x in res).encode()).hexdigest()[:16],
                })
        phases["search_runs_s"] = time.perf_counter() - t
        calls["search_runs"] = n_search

        t = time.perf_counter()
        hist_lens = []
        for j in range(sizes["client_histories"]):
            key = "live" if j % 4 == 3 else f"m{j % sizes['client_metric_keys']}"
            h = c.get_metric_history(run_ids[j % len(live_runs)], key)
            hist_lens.append(len(h))
        phases["metric_history_s"] = time.perf_counter() - t
        calls["metric_history"] = len(hist_lens)

        t = time.perf_counter()
        art_run = run_ids[0]
        for j in range(3):
            c.log_artifact(art_run, str(tmp / "up" / f"notes-{j}.txt"))
        c.log_artifact(art_run, str(big), artifact_path="sub")
        top = c.list_artifacts(art_run)
        sub = c.list_artifacts(art_run, "sub")
        dst = tmp / "down"
        dst.mkdir()
        c.download_artifacts(art_run, "", str(dst))
        phases["artifacts_s"] = time.perf_counter() - t
        calls["artifacts"] = 4 + 2 + 1
        total = time.perf_counter() - t_all
        client_cpu = time.process_time() - client_cpu0
        cpu_used = srv.cpu() - cpu0
        quiet.__exit__(None, None, None)

        got = dst / "sub" / "weights.bin"
        checks["artifact_top_listing"] = sorted(f.path for f in top)
        checks["artifact_sub_listing"] = sorted((f.path, f.file_size) for f in sub)
        checks["big_artifact_roundtrip_ok"] = got.exists() and \
            hashlib.sha256(got.read_bytes()).hexdigest() == big_sha
        checks["history_lengths"] = hist_lens
        checks["searches"] = search_results
        shutil.rmtree(tmp, ignore_errors=True)
        srv.settle(limit_s=30)
        mem_after = srv.mem()
        log(f"  {kind} client: total {total:.2f}s "
            + " ".join(f"{k}={v:.2f}" for k, v in phases.items()))
        return {"total_s": total, "phases": phases, "calls": calls,
                "server_cpu_s": cpu_used, "client_cpu_s": client_cpu, "settle_before_s": settle, "rss_before": mem_before, "rss_after": mem_after,
                "checks": checks}


# --------------------------------------------------------------------------
# workload b: server CPU per request
# --------------------------------------------------------------------------


def small_run_data(i):
    rng = random.Random(50_000 + i)
    params = [{"key": "p0", "value": f"v{rng.randrange(5)}"},
              {"key": "p1", "value": f"v{rng.randrange(5)}"},
              {"key": "p2", "value": str(rng.choice([0.1, 0.01, 0.001]))}]
    metrics = [{"key": f"m{k}", "value": round(rng.random(), 6), "timestamp": 1_700_000_000_000 + i,
                "step": 0} for k in range(3)]
    tags = [{"key": "team", "value": f"team-{rng.randrange(10)}"}, {"key": "env", "value": "bench"}]
    return params, metrics, tags


def measure_cpu(srv: Server, n: int, deadline_s: float, fn, warmup: int = 20) -> dict:
    for k in range(warmup):
        fn(-1 - k)
    lat = []
    c0 = srv.cpu()
    t0 = time.perf_counter()
    end = t0 + deadline_s
    done = 0
    while done < n and time.perf_counter() < end:
        t = time.perf_counter()
        fn(done)
        lat.append(time.perf_counter() - t)
        done += 1
    wall = time.perf_counter() - t0
    cpu = srv.cpu() - c0
    return {"requests": done, "wall_s": wall, "server_cpu_s": cpu,
            "cpu_ms_per_req": cpu * 1000 / done, "req_per_s": done / wall,
            "lat_p50_ms": pct(lat, 50) * 1000, "lat_p99_ms": pct(lat, 99) * 1000,
            "lat_mean_ms": statistics.fmean(lat) * 1000}


def wl_cpu(kind, opts, sizes) -> dict:
    with ServerSession(kind, opts, "cpu") as srv:
        srv.start()
        srv.settle()
        uri = srv.uri
        s = requests.Session()
        eid = api(s, uri, "POST", "/experiments/create", json={"name": "cpu-bench"})["experiment_id"]
        t = time.perf_counter()
        run_ids = []
        for i in range(sizes["cpu_runs"]):
            params, metrics, tags = small_run_data(i)
            r = api(s, uri, "POST", "/runs/create", json={
                "experiment_id": eid, "start_time": 1_700_000_000_000 + i, "run_name": f"r{i:05d}",
                "tags": tags})
            rid = r["run"]["info"]["run_id"]
            api(s, uri, "POST", "/runs/log-batch", json={"run_id": rid, "params": params,
                                                          "metrics": metrics})
            run_ids.append(rid)
        populate_s = time.perf_counter() - t
        w = api(s, uri, "POST", "/runs/create", json={"experiment_id": eid, "run_name": "writer"})
        writer = w["run"]["info"]["run_id"]
        log(f"  {kind} cpu: populated {len(run_ids)} runs in {populate_s:.1f}s")
        time.sleep(1.0)
        c0, t0 = srv.cpu(), time.monotonic()
        time.sleep(3.0)
        idle = (srv.cpu() - c0) / (time.monotonic() - t0)

        n, dl = sizes["cpu_n_simple"], sizes["cpu_deadline_s"]
        out = {"populate_runs": len(run_ids), "populate_s": populate_s,
               "idle_cpu_ms_per_s": idle * 1000}

        def log_metric(k):
            api(s, uri, "POST", "/runs/log-metric", json={
                "run_id": writer, "key": "w", "value": k * 0.5,
                "timestamp": 1_700_000_000_000 + k, "step": k + 100})
        out["log_metric"] = measure_cpu(srv, n, dl, log_metric)

        reader = run_ids[len(run_ids) // 2]

        def get_run(k):
            api(s, uri, "GET", "/runs/get", params={"run_id": reader})
        out["runs_get"] = measure_cpu(srv, n, dl, get_run)

        def log_batch(k):
            base = (k + 100) * 100
            api(s, uri, "POST", "/runs/log-batch", json={"run_id": writer, "metrics": [
                {"key": f"b{j}", "value": (base + st) * 1e-3, "timestamp": 1_700_000_000_000 + k,
                 "step": base + st} for j in range(5) for st in range(100)]})
        out["log_batch_500"] = measure_cpu(srv, sizes["cpu_n_batch"], dl, log_batch)

        search_counts = []

        def search(k):
            v = f"v{k % 5}"
            r = api(s, uri, "POST", "/runs/search", json={
                "experiment_ids": [eid], "filter": f"metrics.m0 > 0.5 and params.p0 = '{v}'",
                "order_by": ["metrics.m1 DESC"], "max_results": 100})
            if k < 5:
                search_counts.append(len(r.get("runs", [])))
        out["search"] = measure_cpu(srv, sizes["cpu_n_search"], dl, search)
        out["search"]["filter"] = "metrics.m0 > 0.5 and params.p0 = 'vN'; order metrics.m1 DESC; 100"
        out["search"]["first_counts"] = search_counts
        s.close()
        for op in ("log_metric", "runs_get", "log_batch_500", "search"):
            r = out[op]
            log(f"  {kind} cpu {op}: {r['cpu_ms_per_req']:.3f} ms CPU/req over {r['requests']} req, "
                f"p50 {r['lat_p50_ms']:.2f} ms")
        return out


# --------------------------------------------------------------------------
# workload c1: log-batch load from a fast client
# --------------------------------------------------------------------------


def _py_load_worker(args):
    uri, run_ids, batch, nkeys, duration, wid, nworkers, q = args
    s = requests.Session()
    steps = batch // nkeys
    end = time.monotonic() + duration
    ok = bad = 0
    lat = []
    k = 0
    while time.monotonic() < end:
        n = k * nworkers + wid
        k += 1
        body = {"run_id": run_ids[n % len(run_ids)], "metrics": [
            {"key": f"m{j}", "value": ((n * steps + st) * 7 + j) % 1000 / 1000.0,
             "timestamp": 1_700_000_000_000 + n, "step": n * steps + st}
            for st in range(steps) for j in range(nkeys)]}
        t = time.monotonic()
        try:
            r = s.post(uri + API + "/runs/log-batch", json=body, timeout=30)
            ok += r.status_code == 200
            bad += r.status_code != 200
        except requests.RequestException:
            bad += 1
        lat.append(time.monotonic() - t)
    q.put((ok, bad, lat))


def run_python_load(uri, run_ids, batch, nkeys, duration, conns) -> dict:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_py_load_worker,
                         args=((uri, run_ids, batch, nkeys, duration, w, conns, q),))
             for w in range(conns)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results = [q.get(timeout=duration + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    wall = time.monotonic() - t0
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    lat = [x for r in results for x in r[2]]
    return {"tool": "python", "requests": ok + bad, "ok": ok, "non_2xx": bad,
            "duration_s": wall, "lat_p50_ms": pct(lat, 50) * 1000 if lat else None,
            "lat_p99_ms": pct(lat, 99) * 1000 if lat else None}


def run_wrk(uri, run_ids, batch, nkeys, duration, conns) -> dict:
    env = dict(os.environ, WRK_RUN_IDS=",".join(run_ids), WRK_BATCH=str(batch),
               WRK_KEYS=str(nkeys))
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "10s",
           "-s", str(HERE / "wrk_log_batch.lua"), uri]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 120)
    m = re.search(r"^WRKJSON (\{.*\})$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stdout[-2000:]} {p.stderr[-2000:]}")
    w = json.loads(m.group(1))
    errs = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
    return {"tool": "wrk -t1", "requests": w["requests"], "ok": w["requests"] - w["err_status"],
            "non_2xx": w["err_status"], "socket_errors": errs,
            "duration_s": w["duration_us"] / 1e6,
            "lat_p50_ms": w["lat_p50_us"] / 1000, "lat_p90_ms": w["lat_p90_us"] / 1000,
            "lat_p99_ms": w["lat_p99_us"] / 1000, "lat_max_ms": w["lat_max_us"] / 1000}


def count_metric_rows(db: Path) -> int | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        n = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error as exc:
        log(f"  cannot count metrics in {db}: {exc}")
        return None


def wl_load(kind, opts, sizes) -> dict:
    tool = opts.load_tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    out = {"tool": tool, "batch_values": sizes["load_batch"], "levels": {}}
    for conns in sizes["load_conns"]:
        with ServerSession(kind, opts, f"load{conns}") as srv:
            srv.start()
            srv.settle()
            s = requests.Session()
            eid = api(s, srv.uri, "POST", "/experiments/create", json={"name": "load"})["experiment_id"]
            run_ids = [api(s, srv.uri, "POST", "/runs/create",
                           json={"experiment_id": eid, "run_name": f"load-{i}"})["run"]["info"]["run_id"]
                       for i in range(sizes["load_runs"])]
            s.close()
            time.sleep(1.0)
            c0 = srv.cpu()
            if tool == "wrk":
                r = run_wrk(srv.uri, run_ids, sizes["load_batch"], sizes["load_keys"],
                            sizes["load_duration_s"], conns)
            else:
                r = run_python_load(srv.uri, run_ids, sizes["load_batch"], sizes["load_keys"],
                                    sizes["load_duration_s"], conns)
            cpu = srv.cpu() - c0
            r["connections"] = conns
            r["ok_req_per_s"] = r["ok"] / r["duration_s"]
            r["values_per_s"] = r["ok_req_per_s"] * sizes["load_batch"]
            r["server_cpu_s"] = cpu
            r["server_cpu_ms_per_ok_req"] = cpu * 1000 / r["ok"] if r["ok"] else None
            srv.stop()
            rows = count_metric_rows(srv.db_path)
            r["metric_rows_in_db"] = rows
            r["metric_rows_acknowledged"] = r["ok"] * sizes["load_batch"]
            if rows is not None and rows < r["metric_rows_acknowledged"]:
                r["LOST_ACKNOWLEDGED_WRITES"] = r["metric_rows_acknowledged"] - rows
            log(f"  {kind} load c={conns}: {r['ok_req_per_s']:.0f} ok req/s, {r['non_2xx']} non-2xx, "
                f"p99 {r['lat_p99_ms']:.1f} ms, {r['server_cpu_ms_per_ok_req'] or 0:.2f} ms CPU/req, "
                f"db rows {rows} vs acked {r['metric_rows_acknowledged']}")
            out["levels"][str(conns)] = r
    return out


# --------------------------------------------------------------------------
# workload c2: search over a large experiment
# --------------------------------------------------------------------------

MODELS = ["resnet", "vit", "bert", "gpt", "mlp"]
BASE_START = 1_600_000_000_000


def big_run_data(i):
    rng = random.Random(9_000_000 + i)
    return {
        "name": f"run-{i:06d}",
        "start_time": BASE_START + i * 1000,
        "tags": {"team": f"team-{rng.randrange(50):02d}"},
        "params": {"model": MODELS[rng.randrange(len(MODELS))],
                   "lr": str(rng.choice([0.1, 0.03, 0.01, 0.003, 0.001]))},
        "metrics": {"accuracy": round(rng.random(), 6), "loss": round(rng.random() * 5, 6)},
    }


def _populate_http_chunk(args):
    uri, eid, lo, hi, threads, deadline = args
    local = threading.local()

    def sess():
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def one(i):
        if time.time() > deadline:
            return 0
        d = big_run_data(i)
        s = sess()
        r = api(s, uri, "POST", "/runs/create", json={
            "experiment_id": eid, "start_time": d["start_time"], "run_name": d["name"],
            "user_id": "bench", "tags": [{"key": k, "value": v} for k, v in d["tags"].items()]})
        rid = r["run"]["info"]["run_id"]
        api(s, uri, "POST", "/runs/log-batch", json={
            "run_id": rid,
            "params": [{"key": k, "value": v} for k, v in d["params"].items()],
            "metrics": [{"key": k, "value": v, "timestamp": d["start_time"], "step": 0}
                        for k, v in d["metrics"].items()]})
        return 1

    with ThreadPoolExecutor(threads) as ex:
        return sum(ex.map(one, range(lo, hi), chunksize=64))


def populate_http(uri, eid, n, sizes) -> dict:
    workers, threads = sizes["populate_workers"], sizes["populate_threads"]
    deadline = time.time() + sizes["populate_deadline_s"]
    bounds = [(n * w // workers, n * (w + 1) // workers) for w in range(workers)]
    t = time.perf_counter()
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as pool:
        done = sum(pool.map(_populate_http_chunk,
                            [(uri, eid, lo, hi, threads, deadline) for lo, hi in bounds]))
    return {"method": f"HTTP runs/create + runs/log-batch, {workers} procs x {threads} threads",
            "runs": done, "seconds": time.perf_counter() - t}


def populate_mlflow_store(db: Path, artifacts: Path, n: int) -> tuple[str, dict]:
    """Create the schema and run 0 through mlflow's SqlAlchemyStore, then copy
    run 0's rows (same columns, same shape) for runs 1..n-1 in one transaction."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    t = time.perf_counter()
    store = SqlAlchemyStore(f"sqlite:///{db}", "mlflow-artifacts:/")
    eid = store.create_experiment("search-bench")
    d0 = big_run_data(0)
    r0 = store.create_run(eid, "bench", d0["start_time"],
                          [RunTag(k, v) for k, v in d0["tags"].items()], d0["name"])
    rid0 = r0.info.run_id
    store.log_batch(rid0, [Metric(k, v, d0["start_time"], 0) for k, v in d0["metrics"].items()],
                    [Param(k, v) for k, v in d0["params"].items()], [])
    store.engine.dispose()
    schema_s = time.perf_counter() - t

    con = sqlite3.connect(str(db))
    con.row_factory = sqlite3.Row
    tmpl = {}
    for table in ("runs", "tags", "params", "metrics", "latest_metrics"):
        tmpl[table] = [dict(r) for r in con.execute(f"SELECT * FROM {table} WHERE run_uuid = ?", (rid0,))]
    assert len(tmpl["runs"]) == 1 and tmpl["params"] and tmpl["metrics"], tmpl
    rows = {k: [] for k in tmpl}
    for i in range(1, n):
        d = big_run_data(i)
        rid = uuid.uuid4().hex
        run = dict(tmpl["runs"][0])
        run.update(run_uuid=rid, name=d["name"], start_time=d["start_time"],
                   artifact_uri=run["artifact_uri"].replace(rid0, rid))
        rows["runs"].append(run)
        tagvals = dict(d["tags"], **{"mlflow.runName": d["name"]})
        for r in tmpl["tags"]:
            rows["tags"].append(dict(r, run_uuid=rid, value=tagvals.get(r["key"], r["value"])))
        for r in tmpl["params"]:
            rows["params"].append(dict(r, run_uuid=rid, value=d["params"][r["key"]]))
        for table in ("metrics", "latest_metrics"):
            for r in tmpl[table]:
                rows[table].append(dict(r, run_uuid=rid, value=d["metrics"][r["key"]],
                                        timestamp=d["start_time"]))
    with con:
        for table, rs in rows.items():
            if not rs:
                continue
            cols = list(rs[0].keys())
            con.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [tuple(r[c] for c in cols) for r in rs])
    total = con.execute("SELECT count(*) FROM runs WHERE experiment_id = ?", (eid,)).fetchone()[0]
    con.close()
    return str(eid), {"method": "SqlAlchemyStore (schema + template run 0) + bulk INSERT of runs 1..n-1",
                      "runs": total, "seconds": time.perf_counter() - t, "schema_s": schema_s}


def search_queries(eid, sizes):
    """(name, body generator(rep) -> request json) for representative searches."""
    def q_metric(k):
        thr = round(0.90 + (k % 10) * 0.009, 3)
        return {"experiment_ids": [eid], "filter": f"metrics.accuracy > {thr}",
                "order_by": ["metrics.accuracy DESC"], "max_results": 100}

    def q_param(k):
        return {"experiment_ids": [eid], "filter": f"params.model = '{MODELS[k % len(MODELS)]}'",
                "max_results": 100}

    def q_tag_like(k):
        return {"experiment_ids": [eid], "filter": f"tags.team LIKE 'team-{k % 5}%'",
                "max_results": 100}

    def q_name_like(k):
        return {"experiment_ids": [eid],
                "filter": f"tags.mlflow.runName LIKE 'run-0{(k * 37) % 1000:03d}%'",
                "max_results": 100}

    def q_combined(k):
        return {"experiment_ids": [eid],
                "filter": f"metrics.loss < 1.0 and params.model = '{MODELS[k % len(MODELS)]}' "
                          f"and tags.team = 'team-{k % 50:02d}'",
                "order_by": ["metrics.loss ASC"], "max_results": 100}

    return [
        ("metric_filter_order", "metrics.accuracy > 0.9xx ORDER BY metrics.accuracy DESC, 100", q_metric),
        ("param_eq", "params.model = 'X' (default order), 100", q_param),
        ("tag_like_prefix", "tags.team LIKE 'team-N%', 100", q_tag_like),
        ("runname_like_selective", "tags.mlflow.runName LIKE 'run-0NNN%' (~10 hits), 100", q_name_like),
        ("combined", "metric < and param = and tag = ORDER BY metrics.loss ASC, 100", q_combined),
    ]


SEARCH_TIMEOUT_S = 240.0


def _sig(r) -> str:
    names = [x["info"].get("run_name", "") for x in r.get("runs", [])]
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12] + f":{len(names)}"


def _lat_stats(lat, timeouts):
    """Latency figures; a timed-out request counts as taking the timeout
    (so p99 is then a lower bound, flagged by `timeouts`)."""
    xs = lat + [SEARCH_TIMEOUT_S] * timeouts
    if not xs:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "timeouts": 0}
    return {"n": len(xs), "p50_ms": pct(xs, 50) * 1000, "p99_ms": pct(xs, 99) * 1000,
            "max_ms": max(xs) * 1000, "timeouts": timeouts}


def run_searches(srv: Server, eid: str, sizes) -> dict:
    """Each query type: one warm-up (counted as a sample when it alone takes
    over a tenth of the deadline), then repetitions until search_reps or the
    deadline. A request over SEARCH_TIMEOUT_S ends that query type."""
    s = requests.Session()
    out = {}

    def post(body):
        t = time.perf_counter()
        r = api(s, srv.uri, "POST", "/runs/search", json=body, timeout=SEARCH_TIMEOUT_S)
        return r, time.perf_counter() - t

    for name, desc, gen in search_queries(eid, sizes):
        lat, sig, timeouts = [], [], 0
        try:
            r, w = post(gen(0))  # warm-up
            if w > sizes["search_deadline_s"] / 10:
                lat.append(w)
                sig.append(_sig(r))
            end = time.perf_counter() + sizes["search_deadline_s"]
            for k in range(len(lat), sizes["search_reps"]):
                if time.perf_counter() > end:
                    break
                r, w = post(gen(k))
                lat.append(w)
                if k < 10:
                    sig.append(_sig(r))
        except requests.Timeout:
            timeouts += 1
        out[name] = dict(_lat_stats(lat, timeouts), desc=desc, result_signatures=sig)
        log(f"  {srv.kind} search {name}: p50 {fmt(out[name]['p50_ms'])} ms, "
            f"p99 {fmt(out[name]['p99_ms'])} ms (n={out[name]['n']}, timeouts={timeouts})")

    # paging: follow next_page_token, default order, then ordered by a metric
    # (last: a timed-out request may keep the server busy)
    for name, order in (("paging_default", []), ("paging_metric_order", ["metrics.loss ASC"])):
        lat, sig, timeouts = [], [], 0
        end = time.perf_counter() + sizes["search_deadline_s"]
        try:
            for rep in range(max(1, sizes["search_reps"] // sizes["search_pages"])):
                token = None
                for _ in range(sizes["search_pages"]):
                    body = {"experiment_ids": [eid], "max_results": 100, "order_by": order}
                    if token:
                        body["page_token"] = token
                    r, w = post(body)
                    lat.append(w)
                    if rep == 0:
                        sig.append(_sig(r))
                    token = r.get("next_page_token")
                    if not token or time.perf_counter() > end:
                        break
                if time.perf_counter() > end:
                    break
        except requests.Timeout:
            timeouts += 1
        out[name] = dict(_lat_stats(lat, timeouts),
                         desc=f"{sizes['search_pages']} pages of 100 by next_page_token, "
                              f"order {order or 'default'}", result_signatures=sig)
        log(f"  {srv.kind} search {name}: p50 {fmt(out[name]['p50_ms'])} ms, "
            f"p99 {fmt(out[name]['p99_ms'])} ms (n={out[name]['n']}, timeouts={timeouts})")
    s.close()
    return out


def wl_search(kind, opts, sizes) -> dict:
    n = sizes["search_runs"]
    with ServerSession(kind, opts, "search") as srv:
        if kind == "keel":
            srv.start()
            srv.settle()
            s = requests.Session()
            eid = api(s, srv.uri, "POST", "/experiments/create", json={"name": "search-bench"})["experiment_id"]
            s.close()
            c0 = srv.cpu()
            pop = populate_http(srv.uri, eid, n, sizes)
            pop["server_cpu_s"] = srv.cpu() - c0
        else:
            eid, pop = populate_mlflow_store(srv.db_path, srv.data_dir / "artifacts", n)
            srv.start()
            srv.settle()
        log(f"  {kind} search: populated {pop['runs']} runs in {pop['seconds']:.1f}s ({pop['method']})")
        res = run_searches(srv, eid, sizes)
        srv_mem = srv.mem()
        return {"populate": pop, "queries": res, "rss_after": srv_mem}


# --------------------------------------------------------------------------
# orchestration and summary
# --------------------------------------------------------------------------


def ratio(keel, ml, higher_better=False):
    if keel is None or ml is None or keel == 0 or ml == 0:
        return None
    return keel / ml if higher_better else ml / keel


def summarize(results: dict) -> list[dict]:
    rows = []

    def add(name, unit, k, m, higher_better=False, goal=None, goal_ok=None):
        rows.append({"metric": name, "unit": unit, "keel": k, "mlflow": m,
                     "keel_advantage": ratio(k, m, higher_better), "goal": goal, "goal_met": goal_ok})

    def get(wl, kind, *path):
        x = results.get(wl, {}).get(kind)
        for p in path:
            if not isinstance(x, dict) or p not in x:
                return None
            x = x[p]
        return x

    if "client" in results:
        k, m = get("client", "keel", "total_s"), get("client", "mlflow", "total_s")
        ra = ratio(k, m)
        add("client workload wall", "s", k, m, goal=">= 5x", goal_ok=None if ra is None else ra >= 5)
        for ph in ("runs_log_batch_s", "single_log_metric_s", "search_runs_s", "metric_history_s",
                   "artifacts_s"):
            add(f"  client {ph[:-2]}", "s", get("client", "keel", "phases", ph),
                get("client", "mlflow", "phases", ph))
        add("  server CPU during client workload", "s", get("client", "keel", "server_cpu_s"),
            get("client", "mlflow", "server_cpu_s"))
        add("  client (python) CPU during client workload", "s", get("client", "keel", "client_cpu_s"),
            get("client", "mlflow", "client_cpu_s"))
    if "cpu" in results:
        for op, goal in (("log_metric", 0.2), ("runs_get", 0.2), ("log_batch_500", 2.0), ("search", None)):
            k = get("cpu", "keel", op, "cpu_ms_per_req")
            add(f"CPU/request {op}", "ms", k, get("cpu", "mlflow", op, "cpu_ms_per_req"),
                goal=f"<= {goal} ms" if goal else None,
                goal_ok=None if goal is None or k is None else k <= goal)
        for op in ("log_metric", "runs_get", "log_batch_500", "search"):
            add(f"  latency p50 {op}", "ms", get("cpu", "keel", op, "lat_p50_ms"),
                get("cpu", "mlflow", op, "lat_p50_ms"))
    if "load" in results:
        levels = set((results["load"].get("keel") or {}).get("levels", {})) | \
            set((results["load"].get("mlflow") or {}).get("levels", {}))
        for c in sorted(levels, key=int):
            add(f"log-batch(100 values) ok req/s, c={c}", "req/s",
                get("load", "keel", "levels", c, "ok_req_per_s"),
                get("load", "mlflow", "levels", c, "ok_req_per_s"), higher_better=True)
            add(f"  non-2xx responses, c={c}", "count", get("load", "keel", "levels", c, "non_2xx"),
                get("load", "mlflow", "levels", c, "non_2xx"))
            add(f"  latency p99, c={c}", "ms", get("load", "keel", "levels", c, "lat_p99_ms"),
                get("load", "mlflow", "levels", c, "lat_p99_ms"))
            add(f"  server CPU per ok request, c={c}", "ms",
                get("load", "keel", "levels", c, "server_cpu_ms_per_ok_req"),
                get("load", "mlflow", "levels", c, "server_cpu_ms_per_ok_req"))
    if "search" in results:
        add("search: runs populated", "runs", get("search", "keel", "populate", "runs"),
            get("search", "mlflow", "populate", "runs"), higher_better=True)
        add("  populate time (keel: HTTP; mlflow: bulk SQL)", "s",
            get("search", "keel", "populate", "seconds"), get("search", "mlflow", "populate", "seconds"))
        names = list((get("search", "keel", "queries") or get("search", "mlflow", "queries") or {}).keys())
        for q in names:
            k50, m50 = get("search", "keel", "queries", q, "p50_ms"), get("search", "mlflow", "queries", q, "p50_ms")
            k99, m99 = get("search", "keel", "queries", q, "p99_ms"), get("search", "mlflow", "queries", q, "p99_ms")
            kt = get("search", "keel", "queries", q, "timeouts")
            mt = get("search", "mlflow", "queries", q, "timeouts")
            to = "" if not (kt or mt) else f" (timeouts k{kt or 0}/m{mt or 0}: >= {SEARCH_TIMEOUT_S:.0f}s)"
            add(f"search {q} p50{to}", "ms", k50, m50)
            add(f"search {q} p99", "ms", k99, m99, goal="< 50 ms",
                goal_ok=None if k99 is None else k99 < 50)
    if "startup" in results:
        add("start to ready (fresh data dir)", "s", get("startup", "keel", "fresh_ready_s"),
            get("startup", "mlflow", "fresh_ready_s"))
        add("  ready to idle tree (background children booted)", "s",
            get("startup", "keel", "ready_to_idle_s"), get("startup", "mlflow", "ready_to_idle_s"))
        add("  CPU used by ready (fresh)", "s", get("startup", "keel", "fresh_cpu_s"),
            get("startup", "mlflow", "fresh_cpu_s"))
        add("start to ready (existing data dir)", "s", get("startup", "keel", "existing_ready_s"),
            get("startup", "mlflow", "existing_ready_s"))
        add("  CPU used by ready (existing)", "s", get("startup", "keel", "existing_cpu_s"),
            get("startup", "mlflow", "existing_cpu_s"))
        add("idle RSS after start (sum over tree)", "MB", get("startup", "keel", "idle_rss_mb"),
            get("startup", "mlflow", "idle_rss_mb"))
        add("idle PSS after start (sum over tree)", "MB", get("startup", "keel", "idle_pss_mb"),
            get("startup", "mlflow", "idle_pss_mb"))
        add("  processes in server tree", "count", get("startup", "keel", "idle_processes"),
            get("startup", "mlflow", "idle_processes"))
        add("  idle CPU", "ms/s", get("startup", "keel", "idle_cpu_ms_per_s"),
            get("startup", "mlflow", "idle_cpu_ms_per_s"))
    if "client" in results:
        add("RSS after client workload (sum over tree)", "MB", get("client", "keel", "rss_after", "rss_mb"),
            get("client", "mlflow", "rss_after", "rss_mb"))
        add("PSS after client workload (sum over tree)", "MB", get("client", "keel", "rss_after", "pss_mb"),
            get("client", "mlflow", "rss_after", "pss_mb"))
    return rows


def consistency(results: dict) -> list[str]:
    """Differences between what Keel and mlflow returned for the same data."""
    notes = []
    ck = (results.get("client", {}).get("keel") or {}).get("checks")
    cm = (results.get("client", {}).get("mlflow") or {}).get("checks")
    if ck and cm:
        for a, b in zip(ck["searches"], cm["searches"]):
            if (a["count"], a["names_sha"]) != (b["count"], b["names_sha"]):
                notes.append(f"client search {a['filter']!r} order {a['order_by']} max {a['max_results']}: "
                             f"keel {a['count']} runs vs mlflow {b['count']} (or different order)")
        for key in ("history_lengths", "artifact_top_listing", "artifact_sub_listing",
                    "big_artifact_roundtrip_ok"):
            if ck[key] != cm[key]:
                notes.append(f"client {key}: keel {ck[key]} vs mlflow {cm[key]}")
    sk = (results.get("search", {}).get("keel") or {}).get("queries")
    sm = (results.get("search", {}).get("mlflow") or {}).get("queries")
    pk = (results.get("search", {}).get("keel") or {}).get("populate", {}).get("runs")
    pm = (results.get("search", {}).get("mlflow") or {}).get("populate", {}).get("runs")
    if sk and sm and pk == pm:
        for q in sk:
            if q in sm:
                n = min(len(sk[q]["result_signatures"]), len(sm[q]["result_signatures"]))
                if sk[q]["result_signatures"][:n] != sm[q]["result_signatures"][:n]:
                    notes.append(f"search {q}: result pages differ between keel and mlflow "
                                 f"({sk[q]['result_signatures'][:3]} vs {sm[q]['result_signatures'][:3]})")
    ld = results.get("load", {})
    for kind in SERVERS:
        for c, r in ((ld.get(kind) or {}).get("levels") or {}).items():
            if r.get("LOST_ACKNOWLEDGED_WRITES"):
                notes.append(f"load {kind} c={c}: {r['LOST_ACKNOWLEDGED_WRITES']} acknowledged metric "
                             "values missing from the database")
    return notes


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def print_table(rows, notes):
    hdr = ("metric", "unit", "keel", "mlflow", "keel adv.", "goal")
    lines = [hdr]
    for r in rows:
        adv = "-" if r["keel_advantage"] is None else f"{r['keel_advantage']:.1f}x"
        goal = r["goal"] or ""
        if r["goal"] and r["goal_met"] is not None:
            goal += " ok" if r["goal_met"] else " MISSED"
        lines.append((r["metric"], r["unit"], fmt(r["keel"]), fmt(r["mlflow"]), adv, goal))
    w = [max(len(str(l[i])) for l in lines) for i in range(len(hdr))]
    for n, l in enumerate(lines):
        print("  ".join(str(x).ljust(w[i]) if i < 2 else str(x).rjust(w[i]) for i, x in enumerate(l)))
        if n == 0:
            print("  ".join("-" * x for x in w))
    print("\nkeel adv. = mlflow/keel for times, CPU and memory; keel/mlflow for throughput.")
    if notes:
        print("\nDifferences between keel and mlflow on the same data:")
        for n in notes:
            print("  - " + n)


def machine_info(opts) -> dict:
    info = {"date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import mlflow
        info["mlflow_version"] = mlflow.__version__
    except Exception:  # pragma: no cover
        pass
    try:
        info["keel_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "crates"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["keel_crates_dirty"] = bool(dirty)
    except Exception:  # pragma: no cover
        pass
    try:
        kb = Path(opts.keel_bin)
        info["keel_bin_mtime_utc"] = _dt.datetime.fromtimestamp(
            kb.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
        info["keel_bin_sha256"] = hashlib.sha256(kb.read_bytes()).hexdigest()[:16]
        info["keel_version"] = subprocess.run([str(kb), "--version"], capture_output=True,
                                              text=True, timeout=10).stdout.strip()
    except Exception:
        pass
    try:
        info["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                                     timeout=10).stdout.splitlines()[0]
    except Exception:
        info["wrk"] = None
    try:
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


RUNNERS = {"startup": wl_startup, "client": wl_client, "cpu": wl_cpu, "load": wl_load,
           "search": wl_search}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel-bin", required=True)
    ap.add_argument("--mlflow-bin", default=str(Path(sys.executable).parent / "mlflow"))
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help=f"comma-separated workloads ({','.join(WORKLOADS)})")
    ap.add_argument("--servers", default=",".join(SERVERS), help="keel,mlflow or one of them")
    ap.add_argument("--quick", action="store_true", help="scaled-down sizes for a quick run")
    ap.add_argument("--search-runs", type=int, help="override the size of the search experiment")
    ap.add_argument("--load-tool", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--workdir", help="parent for the servers' temporary data dirs")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other workloads' results already in --out; replace only "
                         "the workloads run now (each workload records when it ran)")
    opts = ap.parse_args(argv)

    sizes = dict(QUICK if opts.quick else FULL)
    if opts.search_runs:
        sizes["search_runs"] = opts.search_runs
    only = [w.strip() for w in opts.only.split(",") if w.strip()]
    servers = [s.strip() for s in opts.servers.split(",") if s.strip()]
    bad = [w for w in only if w not in WORKLOADS] + [s for s in servers if s not in SERVERS]
    if bad:
        ap.error(f"unknown workload/server: {bad}")
    if not Path(opts.keel_bin).exists() and "keel" in servers:
        ap.error(f"keel binary not found: {opts.keel_bin}")

    out = {"machine": machine_info(opts), "sizes": sizes, "quick": opts.quick,
           "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
           "results": {}, "errors": {}, "noise": {}}
    out["workload_runs"] = {}
    if opts.merge and Path(opts.out).exists():
        prev = json.loads(Path(opts.out).read_text())
        for wl, res in prev.get("results", {}).items():
            if wl not in only:
                out["results"][wl] = res
                out["workload_runs"][wl] = prev.get("workload_runs", {}).get(
                    wl, {"date_utc": prev.get("machine", {}).get("date_utc"),
                         "command": prev.get("command")})
                for key in ("noise", "errors"):
                    out[key].update({k: v for k, v in prev.get(key, {}).items()
                                     if k.split("/")[0] == wl})
    t_start = time.perf_counter()
    for wl in only:
        out["results"][wl] = {}
        out["workload_runs"][wl] = {"date_utc": out["machine"]["date_utc"], "command": out["command"]}
        for kind in servers:
            log(f"== {wl} / {kind}")
            t = time.perf_counter()
            b0, o0 = system_busy_s(), tree_cpu_s(os.getpid())
            try:
                out["results"][wl][kind] = RUNNERS[wl](kind, opts, sizes)
            except Exception as exc:  # keep going: record and report
                import traceback
                log(f"!! {wl}/{kind} failed: {exc!r}")
                out["errors"][f"{wl}/{kind}"] = traceback.format_exc()[-4000:]
                out["results"][wl][kind] = None
            wall = time.perf_counter() - t
            busy, ours = system_busy_s() - b0, tree_cpu_s(os.getpid()) - o0
            # CPU used on the machine by processes that are not this benchmark
            # (its driver, servers, load generators): noise to judge figures by.
            out["noise"][f"{wl}/{kind}"] = {
                "wall_s": round(wall, 1), "machine_busy_cores": round(busy / wall, 2),
                "bench_cores": round(ours / wall, 2),
                "other_cores": round(max(0.0, busy - ours) / wall, 2)}
            log(f"   ({wall:.0f}s; other processes used {out['noise'][f'{wl}/{kind}']['other_cores']}"
                f" of {os.cpu_count()} cores meanwhile)")
    out["wall_s"] = time.perf_counter() - t_start
    out["summary"] = summarize(out["results"])
    out["differences"] = consistency(out["results"])
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print()
    print_table(out["summary"], out["differences"])
    if out["errors"]:
        print("\nErrors:")
        for k, v in out["errors"].items():
            print(f"  {k}: {v.strip().splitlines()[-1]}")
    print("\nOther load on the machine (cores used by processes outside the benchmark):")
    print("  " + ", ".join(f"{k} {v['other_cores']}" for k, v in out["noise"].items()))
    print(f"\nwrote {opts.out} ({out['wall_s']:.0f}s total)")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
