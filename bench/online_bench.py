#!/usr/bin/env python3
"""Keel's online feature store vs. Feast's feature server, in one run.

Workloads (select with --only, comma separated; default all):

  reads        POST /get-online-features for the feature service (9 + 1
               features of two views), 1 and 100 entities per request,
               sequential (1 connection) and concurrent (16 connections),
               each for --seconds: Keel on its embedded store (redb), Keel
               on Redis, and `feast serve` (SQLite online store, as many
               workers as cores) — the same data, the same load client
               (wrk, one process), the same request bodies.
  materialize  1,000,000 rows (200,000 entities, 9 features) from Parquet
               into the online store: `keel features materialize` (redb and
               Redis) vs `feast materialize` (SQLite), wall time of each
               command.
  push         POST /push of 100 events per request to a stream feature
               view with four windowed aggregations (and, for Feast, to
               its push source, which has no windows), concurrent: events
               per second sustained.

The data and both repos are those of the online cross-check tests
(tests/python/online_crosscheck.py). Results go to bench/results/online.json
and a table on stdout; see BENCHMARKS.md for how to read them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "python"))

import online_crosscheck as oc  # noqa: E402

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
bodies = {%s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
"""


def lua_string(s: str) -> str:
    return "[==[" + s + "]==]"


def wrk(url: str, bodies: list[str], connections: int, seconds: int, workdir: Path) -> dict:
    """Runs wrk against ``url`` cycling through ``bodies``; requests/s and
    latency percentiles (ms)."""
    script = workdir / "wrk_online.lua"
    script.write_text(WRK_SCRIPT % ", ".join(lua_string(b) for b in bodies))
    threads = 1 if connections == 1 else 2
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            v = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            lat[f"p{p}_ms"] = round(v, 3)
    return {"rps": round(rps, 1), **lat, "non_2xx": int(errors.group(1)) if errors else 0,
            "connections": connections, "seconds": seconds}


def server_buckets(base: str, route: str) -> dict[float, int]:
    """Keel's /metrics latency histogram of ``route`` (status 200):
    {upper bound in seconds: cumulative count}."""
    import requests

    text = requests.get(base + "/metrics", timeout=10).text
    out: dict[float, int] = {}
    pat = re.compile(r'keel_http_request_duration_seconds_bucket\{route="([^"]+)",method="POST",'
                     r'status="200",le="([^"]+)"\} (\d+)')
    for m in pat.finditer(text):
        if m.group(1) == route:
            le = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
            out[le] = int(m.group(3))
    return out


def server_p99(before: dict[float, int], after: dict[float, int]) -> dict:
    """The server-side latency bucket holding the 99th percentile, and the
    share of requests answered within 1 ms, from two histogram scrapes."""
    delta = {le: after.get(le, 0) - before.get(le, 0) for le in after}
    total = delta.get(float("inf"), 0)
    if not total:
        return {}
    p99 = next(le for le in sorted(delta) if delta[le] >= 0.99 * total)
    within_1ms = delta.get(0.001, 0) / total
    return {"server_p99_le_ms": None if p99 == float("inf") else p99 * 1e3,
            "server_share_within_1ms": round(within_1ms, 4)}


def read_bodies(users: int, per_request: int, n: int = 64, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [json.dumps(oc.online_body(rng.sample(range(1, users + 1), per_request),
                                      service=oc.SERVICE))
            for _ in range(n)]


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = oc.free_port()
    d = workdir / "redis"
    d.mkdir(exist_ok=True)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(d), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0:
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def keel_cmd(keel: Path, *args, online_store: str | None = None) -> list[str]:
    cmd = [str(keel), *map(str, args)]
    if online_store:
        cmd += ["--online-store", online_store]
    return cmd


def timed(cmd: list[str], cwd: Path | None = None) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return time.perf_counter() - t


def keel_server(keel: Path, data_dir: Path, online_store: str | None) -> oc.Server:
    port = oc.free_port()
    cmd = keel_cmd(keel, "server", "--data-dir", data_dir, "--host", "127.0.0.1", "--port", port,
                   online_store=online_store)
    return oc.Server("keel", cmd, port, data_dir, data_dir / "logs").start()


def run_reads(args, ds, workdir: Path, redis_url: str) -> dict:
    scenarios = [(1, 1), (1, 16), (100, 1), (100, 16)]
    out = {}
    bodies = {n: read_bodies(ds.sizes.users, n) for n in (1, 100)}

    def measure(name: str, url: str, base: str | None = None):
        # warm up: every body once, then a short run
        wrk(url, bodies[100], 4, 2, workdir)
        res = {}
        for per, conns in scenarios:
            key = f"{per}_entities_{'sequential' if conns == 1 else f'{conns}_connections'}"
            before = server_buckets(base, "/get-online-features") if base else None
            res[key] = wrk(url, bodies[per], conns, args.seconds, workdir)
            if base:
                res[key].update(server_p99(before, server_buckets(base, "/get-online-features")))
            print(f"  {name:12s} {key:30s} {res[key]['rps']:>10.1f} req/s  "
                  f"p50 {res[key].get('p50_ms')} ms  p99 {res[key].get('p99_ms')} ms", flush=True)
        out[name] = res

    for name, store in (("keel_redb", None), ("keel_redis", redis_url)):
        data = workdir / f"keel-{name}"
        timed(keel_cmd(args.keel_bin, "features", "apply", ds.keel_repo, "--yes", "--data-dir", data,
                       online_store=store))
        s, e = ds.materialize_range
        timed(keel_cmd(args.keel_bin, "features", "materialize", "--start", s, "--end", e,
                       "--data-dir", data, online_store=store))
        with keel_server(args.keel_bin, data, store) as srv:
            measure(name, srv.url + "/get-online-features", srv.url)
    oc.feast_apply(ds)
    oc.feast_materialize(ds)
    port = oc.free_port()
    cmd = oc.feast_cli() + ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                            "--workers", str(os.cpu_count() or 1), "--max-requests", "0",
                            "--registry_ttl_sec", "600"]
    with oc.Server("feast", cmd, port, ds.feast_repo, ds.root / "logs").start() as srv:
        measure("feast", srv.url + "/get-online-features")
    return out


def run_materialize(args, workdir: Path, redis_url: str) -> dict:
    sizes = oc.Sizes(users=200_000, events_per_user=5, twin_share=0.0, inactive_every=0)
    ds = oc.generate(workdir / "mat", sizes)
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(ds.source(oc.ACTIVITY)).metadata.num_rows
    s, e = ds.materialize_range
    out = {"rows": rows, "entities": sizes.users}
    for name, store in (("keel_redb", None), ("keel_redis", redis_url)):
        data = workdir / f"mat-{name}"
        timed(keel_cmd(args.keel_bin, "features", "apply", ds.keel_repo, "--yes", "--data-dir", data,
                       online_store=store))
        out[name] = round(timed(keel_cmd(args.keel_bin, "features", "materialize", "--view",
                                         oc.ACTIVITY.name, "--start", s, "--end", e,
                                         "--data-dir", data, online_store=store)), 2)
        print(f"  materialize {name}: {out[name]} s", flush=True)
    oc.feast_apply(ds)
    out["feast_sqlite"] = round(timed(oc.feast_cli() + ["materialize", "--views", oc.ACTIVITY.name, s, e],
                                      cwd=ds.feast_repo), 2)
    print(f"  materialize feast_sqlite: {out['feast_sqlite']} s", flush=True)
    return out


STREAM_YAML = """
stream_feature_views:
  - name: activity_windows
    entities: [user]
    source: {source}
    aggregations:
      - {{column: spend, function: sum, window: 1h, slide: 10m, name: spend_1h}}
      - {{column: clicks, function: count, window: 10m, name: clicks_10m}}
      - {{column: spend, function: mean, window: 1d, slide: 1h, name: spend_mean_1d}}
      - {{column: clicks, function: max, window: 1d, slide: 1h, name: max_clicks_1d}}
    ttl: 1d
"""


def push_bodies(ds, n: int = 32, per: int = 100, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    now = time.time()
    out = []
    for _ in range(n):
        rows = []
        for _ in range(per):
            t = now - rng.uniform(0, 3 * 3600)
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"
            rows.append({"user_id": rng.randint(1, ds.sizes.users), "event_timestamp": ts,
                         "created": ts, "clicks": rng.randint(0, 50),
                         "spend": round(rng.uniform(0, 100), 2), "country": "de",
                         "is_premium": False, "sessions": 1, "ratio": 0.5,
                         "last_login": int(t), "recent_items": [1], "weights": [0.5]})
        out.append(json.dumps(oc.push_body(rows, to="online")))
    return out


def run_push(args, ds, workdir: Path, redis_url: str) -> dict:
    out = {}
    bodies = push_bodies(ds)
    repo = workdir / "keel_stream_repo"
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(ds.keel_repo, repo)
    with open(repo / "features.yaml", "a") as f:
        f.write(STREAM_YAML.format(source=oc.ACTIVITY.source))
    for name, store in (("keel_redb", None), ("keel_redis", redis_url)):
        data = workdir / f"push-{name}"
        timed(keel_cmd(args.keel_bin, "features", "apply", repo, "--yes", "--data-dir", data,
                       online_store=store))
        with keel_server(args.keel_bin, data, store) as srv:
            r = wrk(srv.url + "/push", bodies, 8, args.seconds, workdir)
        r["events_per_s"] = round(r["rps"] * 100, 1)
        out[name] = r
        print(f"  push {name}: {r['events_per_s']} events/s (p99 {r.get('p99_ms')} ms)", flush=True)
    port = oc.free_port()
    cmd = oc.feast_cli() + ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                            "--workers", str(os.cpu_count() or 1), "--max-requests", "0",
                            "--registry_ttl_sec", "600"]
    with oc.Server("feast", cmd, port, ds.feast_repo, ds.root / "logs").start() as srv:
        r = wrk(srv.url + "/push", bodies, 8, args.seconds, workdir)
    r["events_per_s"] = round(r["rps"] * 100, 1)
    out["feast_no_windows"] = r
    print(f"  push feast (no windows): {r['events_per_s']} events/s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel-bin", type=Path, required=True)
    ap.add_argument("--only", default="reads,materialize,push")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "online.json")
    ap.add_argument("--keep-data", action="store_true")
    args = ap.parse_args()
    only = set(args.only.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="keel-online-bench-"))
    redis, redis_url = start_redis(workdir)
    results: dict = {"machine": {"cores": os.cpu_count()}, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        ds = oc.generate(workdir / "reads", oc.Sizes(users=args.users, events_per_user=4))
        if "reads" in only:
            print("reads", flush=True)
            results["reads"] = run_reads(args, ds, workdir, redis_url)
        if "push" in only:
            print("push", flush=True)
            results["push"] = run_push(args, ds, workdir, redis_url)
        if "materialize" in only:
            print("materialize", flush=True)
            results["materialize"] = run_materialize(args, workdir, redis_url)
    finally:
        redis.terminate()
        if not args.keep_data:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
