#!/usr/bin/env python3
"""Decisions over HTTP: what a deployment adds to a request's latency, and
how many decide + feedback pairs one Keel server takes.

A release ``keel server`` (fresh data directory) gets two deployments of 5
variants: ``epsilon_greedy`` and ``linucb`` on a 10-number context. ``wrk``
then drives, each for ``--seconds``:

  baseline   GET /health — the same server, connection and HTTP stack,
             nothing decided: the floor every request pays;
  decide     POST /v1/deployments/NAME/decide, a new unit id per request;
  pairs      decide, then POST /v1/feedback for the decision just made
             (wrk's response hook reads its id), alternating per connection;

at 1 connection (latency) and 8 (load), and a Python client sends batches
of 1,000 through /decide/batch and /v1/feedback/batch. The added latency of
a decision is its p50/p99 minus the baseline's at the same connections.
Everything runs twice: with the decision log fsynced before each answer
(the default) and without (``lifecycle_fsync = false``).

    bench/run experiments [--seconds 10] [--out FILE]

JSON goes to bench/results/experiments.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client as httpclient
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inference_bench import WRK_DONE, free_port, http, wrk
from procstat import system_busy_s, tree_cpu_s

HERE = Path(__file__).resolve().parent
ARMS = 5
DIM = 10
BATCH = 1000
CONTEXT = json.dumps([round(0.1 * (i - 4.5), 2) for i in range(DIM)])

DECIDE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local path = os.getenv("WRK_PATH")
local context = os.getenv("WRK_CONTEXT")
local pairing = os.getenv("WRK_PAIRS") == "1"
local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end
local counter = 0
-- Decisions awaiting their feedback: one Lua state serves all of a
-- thread's connections, so responses are told apart by their bodies.
local pending = {}
request = function()
  if pairing and #pending > 0 then
    local id = table.remove(pending)
    return wrk.format("POST", "/v1/feedback", nil,
      string.format('{"decision_id":"%s","reward":%d}', id, counter % 2))
  end
  counter = counter + 1
  local unit = string.format('"unit_id":"t%d-%d"', tid or 0, counter)
  local body
  if context then
    body = string.format('{%s,"context":%s}', unit, context)
  else
    body = string.format('{%s}', unit)
  end
  return wrk.format("POST", path, nil, body)
end
response = function(status, headers, body)
  if pairing and status == 200 and string.find(body, '"variant"', 1, true) then
    pending[#pending + 1] = string.match(body, '"decision_id":"([^"]+)"')
  end
end
""" + WRK_DONE

HEALTH_LUA = 'wrk.method = "GET"\n' + WRK_DONE


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Keel:
    def __init__(self, binary: str, work: Path, fsync: bool):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = work / ("data-fsync" if fsync else "data-nofsync")
        env = dict(os.environ, KEEL_LIFECYCLE_FSYNC="true" if fsync else "false")
        self.err = open(work / f"keel-{'fsync' if fsync else 'nofsync'}.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "server", "--data-dir", str(data), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.err, stderr=self.err, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keel exited with {self.proc.returncode}; see {self.err.name}")
            try:
                if http("GET", self.url + "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("keel did not become ready within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.err.close()


def create(url: str, name: str, strategy: dict) -> None:
    body = {"name": name, "strategy": strategy, "variants": [{"name": f"v{i}"} for i in range(ARMS)]}
    status, text = http("POST", url + "/v1/deployments", json.dumps(body).encode())
    if status != 201:
        raise RuntimeError(f"creating {name}: {status} {text[:300]!r}")


def run_wrk(keel: Keel, work: Path, name: str, script_text: str, path: str, connections: int,
            seconds: int, env: dict) -> dict:
    script = work / f"{name}-c{connections}.lua"
    script.write_text(script_text)
    os.environ.update(env)
    try:
        busy0, cpu0 = system_busy_s(), tree_cpu_s(keel.proc.pid)
        r = wrk(keel.url + path, b"", connections, seconds, script, prepared=True)
        busy, cpu = system_busy_s() - busy0, tree_cpu_s(keel.proc.pid) - cpu0
    finally:
        for k in env:
            os.environ.pop(k, None)
    r["server_cores"] = round(cpu / r["wall_s"], 2)
    r["other_cores"] = round(max(0.0, busy - cpu - r["wrk_cpu_s"]) / r["wall_s"], 2)
    r["per_s"] = round(r["requests"] / (r["duration_us"] / 1e6), 1)
    return r


def run_batches(keel: Keel, seconds: int) -> dict:
    """Batches of 1,000 decisions, then their feedback, on one connection."""
    conn = httpclient.HTTPConnection("127.0.0.1", keel.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    decide = json.dumps({"requests": [{"unit_id": f"b{i}"} for i in range(BATCH)]})
    pairs, rounds = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        conn.request("POST", "/v1/deployments/eg/decide/batch", decide, headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"decide/batch: {resp.status} {body[:300]!r}")
        ids = [d["decision_id"] for d in json.loads(body)["decisions"]]
        feedback = json.dumps({"feedback": [{"decision_id": i, "reward": k % 2} for k, i in enumerate(ids)]})
        conn.request("POST", "/v1/feedback/batch", feedback, headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or json.loads(body)["recorded"] != BATCH:
            raise RuntimeError(f"feedback/batch: {resp.status} {body[:300]!r}")
        pairs += BATCH
        rounds += 1
    wall = time.perf_counter() - t0
    conn.close()
    return {"pairs": pairs, "rounds": rounds, "wall_s": round(wall, 2), "pairs_per_s": round(pairs / wall, 1)}


def measure(binary: str, work: Path, fsync: bool, seconds: int) -> dict:
    keel = Keel(binary, work, fsync)
    out: dict = {"fsync": fsync, "cells": {}}
    try:
        create(keel.url, "eg", {"type": "epsilon_greedy", "epsilon": 0.1})
        create(keel.url, "lin", {"type": "linucb", "alpha": 1.0})
        cells = [
            ("baseline", HEALTH_LUA, "/health", {}),
            ("decide_epsilon_greedy", DECIDE_LUA, "/v1/deployments/eg/decide",
             {"WRK_PATH": "/v1/deployments/eg/decide"}),
            ("decide_linucb_d10", DECIDE_LUA, "/v1/deployments/lin/decide",
             {"WRK_PATH": "/v1/deployments/lin/decide", "WRK_CONTEXT": CONTEXT}),
            ("pairs_epsilon_greedy", DECIDE_LUA, "/v1/deployments/eg/decide",
             {"WRK_PATH": "/v1/deployments/eg/decide", "WRK_PAIRS": "1"}),
        ]
        for connections in (1, 8):
            for name, script, path, env in cells:
                r = run_wrk(keel, work, name, script, path, connections, seconds, env)
                out["cells"][f"{name}/c{connections}"] = r
                log(f"fsync={fsync} {name:24s} c{connections}: {r['per_s']:9.0f} req/s "
                    f"p50 {r['p50_us']:6d} µs p99 {r['p99_us']:6d} µs non-2xx {r['status']} "
                    f"(server {r['server_cores']} cores, other {r['other_cores']})")
        out["batches"] = run_batches(keel, seconds)
        log(f"fsync={fsync} batches of {BATCH}: {out['batches']['pairs_per_s']:.0f} pairs/s")
    finally:
        keel.stop()
    for connections in (1, 8):
        base = out["cells"][f"baseline/c{connections}"]
        for name in ("decide_epsilon_greedy", "decide_linucb_d10", "pairs_epsilon_greedy"):
            cell = out["cells"][f"{name}/c{connections}"]
            cell["added_p50_us"] = cell["p50_us"] - base["p50_us"]
            cell["added_p99_us"] = cell["p99_us"] - base["p99_us"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel-bin", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results" / "experiments.json"))
    args = ap.parse_args()
    results = {
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, cwd=HERE).stdout.strip(),
        "seconds": args.seconds, "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="keel-experiments-bench-") as tmp:
        for fsync in (True, False):
            results["runs"].append(measure(args.keel_bin, Path(tmp), fsync, args.seconds))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\n{'fsync':6s} {'workload':26s} {'conns':>5s} {'req/s':>9s} {'p50 µs':>7s} {'p99 µs':>7s} "
          f"{'added p50':>9s} {'added p99':>9s}")
    for run in results["runs"]:
        for key, c in run["cells"].items():
            name, conns = key.split("/")
            print(f"{str(run['fsync']):6s} {name:26s} {conns[1:]:>5s} {c['per_s']:9.0f} {c['p50_us']:7d} "
                  f"{c['p99_us']:7d} {c.get('added_p50_us', ''):>9} {c.get('added_p99_us', ''):>9}")
        print(f"{str(run['fsync']):6s} {'batches of 1000':26s} {1:>5d} {run['batches']['pairs_per_s']:9.0f} pairs/s")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
