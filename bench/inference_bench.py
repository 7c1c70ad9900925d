#!/usr/bin/env python3
"""Keel's model server vs. MLServer: the same logistic regression served over
Open Inference Protocol V2 (REST, JSON tensors), in one run, with one load
client.

Workloads (select with --only, comma separated; default both):

  serve    `keel server --model-repository` (the model as ONNX, compiled by
           Keel) and `mlserver start` (the same model as a scikit-learn
           joblib file, MLServer's sklearn runtime), both up at once on
           127.0.0.1. First a check that both answer the same requests with
           the same labels (and Keel's probabilities within 1e-5 of
           onnxruntime's); then `wrk` POSTs one fixed V2 JSON body per cell,
           batch 1 and 64 rows per request, 1 connection (-t1 -c1) and 8
           connections (-t2 -c8), --seconds each after a --warmup run.
           Reported: requests/s, rows/s, p50/p90/p99 latency, non-2xx and
           socket errors, the server's CPU per request, the CPU other
           processes used meanwhile, and for Keel how its batcher
           coalesced the requests.
  compile  the in-process floor: `keel serve compile model.onnx --batch B
           --runs R --json` at batch 1 and 64 (the compiled plan's median
           latency, and the typed but unoptimized tract model's), against
           onnxruntime's InferenceSession.run in this Python (median of R
           runs), single-threaded and with its default threads.

With both, the summary has the server's rows/s at batch 64 (best
concurrency) as a share of the compiled plan's in-process rows/s (the
issue's goal: >= 70%).

What each server computes, in the pairs compared:

  keel / mlserver                 every row's label and class probabilities:
                                  Keel runs the whole ONNX graph (label
                                  INT64, probabilities FP32); MLServer is
                                  asked for outputs predict and
                                  predict_proba (two scikit-learn calls;
                                  FP32 probabilities, as scikit-learn keeps
                                  the float32 input's dtype)
  keel_label / mlserver_predict   labels only: Keel asked for output
                                  `label` (it still runs the graph, it
                                  encodes less); MLServer's default
                                  answer, predict()

Results go to bench/results/inference.json (or --out) and a table on
stdout; see bench/README.md for how to read them.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from procstat import system_busy_s, tree_cpu_s, tree_pids, tree_rss_mb  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKLOADS = ("serve", "compile", "overhead")
MODEL = "logreg"
FEATURES = 20
TRAIN_ROWS = 10_000
SEED = 0
# (rows per request, connections); wrk threads: 1 for one connection, else 2
SCENARIOS = ((1, 1), (1, 8), (64, 1), (64, 8))
# name: (server, requested outputs or None for the server's default, what it computes)
VARIANTS = {
    "keel": ("keel", None, "label + probabilities (FP32): the whole ONNX graph"),
    "mlserver": ("mlserver", ["predict", "predict_proba"],
                 "predict() + predict_proba() (FP32): two scikit-learn calls"),
    "keel_label": ("keel", ["label"], "output `label` only (the graph still runs whole)"),
    "mlserver_predict": ("mlserver", None, "predict() only (MLServer's default output)"),
}
PAIRS = (("keel", "mlserver"), ("keel_label", "mlserver_predict"))
START_TIMEOUT_S = 120.0
PROB_TOLERANCE = 1e-5


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# /proc: process trees and the machine's CPU
# --------------------------------------------------------------------------


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --------------------------------------------------------------------------
# the model, its two serialized forms, the request bodies
# --------------------------------------------------------------------------


def build_model(work: Path) -> dict:
    """Trains the logistic regression and writes Keel's repository
    (ONNX) and MLServer's (joblib + model-settings.json)."""
    import joblib
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=TRAIN_ROWS, n_features=FEATURES, n_informative=10,
                               n_redundant=4, random_state=SEED)
    # Four decimals: short JSON numbers that every parser turns into the
    # same float32.
    X = np.round(X, 4)
    X32 = X.astype(np.float32)
    t = time.perf_counter()
    model = LogisticRegression(max_iter=1000).fit(X32, y)
    train_s = time.perf_counter() - t
    onx = to_onnx(model, X32[:1], options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    onnx_path = work / "models" / MODEL / "1" / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx_path.write_bytes(onx.SerializeToString())
    mls_dir = work / "mlserver" / MODEL
    mls_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, mls_dir / "model.joblib")
    (mls_dir / "model-settings.json").write_text(json.dumps({
        "name": MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"}}, indent=2) + "\n")
    return {"model": model, "X": X, "X32": X32, "onnx_path": onnx_path,
            "onnx_ops": [n.op_type for n in onx.graph.node],
            "onnx_inputs": [i.name for i in onx.graph.input],
            "onnx_outputs": [o.name for o in onx.graph.output],
            "train_accuracy": round(float(model.score(X32, y)), 4), "train_s": round(train_s, 3)}


def v2_body(rows, outputs: list[str] | None) -> bytes:
    """A V2 request: one FP32 input X of shape [n, 20], flat data."""
    body = {"inputs": [{"name": "X", "shape": [len(rows), FEATURES], "datatype": "FP32",
                        "data": [float(v) for v in rows.ravel()]}]}
    if outputs is not None:
        body["outputs"] = [{"name": o} for o in outputs]
    return json.dumps(body, separators=(",", ":")).encode()


def v2_outputs(payload: bytes) -> dict:
    """{output name: (shape, flat data)} of a V2 JSON response."""
    v = json.loads(payload)
    return {o["name"]: (o["shape"], o["data"]) for o in v["outputs"]}


# --------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------


class Server:
    """A server in its own process group, its output in files; ready when
    /v2/health/ready and the model's /ready answer 200 and GET /v2 names the
    expected server (a port taken by someone else must not pass)."""

    def __init__(self, name: str, cmd: list, port: int, cwd: Path, logdir: Path, expect: str):
        self.name, self.cmd, self.port, self.cwd = name, [str(c) for c in cmd], port, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.expect = expect
        logdir.mkdir(parents=True, exist_ok=True)
        self.out_path = logdir / f"{name}.out"
        self.err_path = logdir / f"{name}.err"
        self.proc: subprocess.Popen | None = None
        self.ready_s: float | None = None

    def start(self) -> "Server":
        env = dict(os.environ, PYTHONWARNINGS="ignore", RUST_BACKTRACE="1")
        t = time.perf_counter()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was "
                                   f"ready; command: {self.cmd}\n{self.log()}")
            try:
                if (http("GET", self.url + "/v2/health/ready", timeout=2)[0] == 200
                        and http("GET", f"{self.url}/v2/models/{MODEL}/ready", timeout=2)[0] == 200):
                    status, meta = http("GET", self.url + "/v2", timeout=2)
                    name = json.loads(meta).get("name") if status == 200 else None
                    if name != self.expect:
                        raise RuntimeError(f"{self.url} answers as {name!r}, not {self.expect!r}: "
                                           "the port is someone else's")
                    self.ready_s = round(time.perf_counter() - t, 2)
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready at {self.url} after {START_TIMEOUT_S:.0f}s; "
                           f"command: {self.cmd}\n{self.log()}")

    def log(self, limit: int = 6000) -> str:
        return "".join(p.read_text(errors="replace")[-limit:]
                       for p in (self.out_path, self.err_path) if p.exists())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.alive():
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def keel_server(args, work: Path) -> Server:
    port = free_port()
    cmd = [args.keel_bin, "server", "--data-dir", work / "keel-data", "--host", "127.0.0.1",
           "--port", port, "--model-repository", work / "models"]
    return Server("keel", cmd, port, work, work / "logs", "keel")


def mlserver_server(args, work: Path) -> Server:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {"debug": False, "host": "127.0.0.1", "http_port": http_port,
                "grpc_port": grpc_port, "metrics_port": metrics_port,
                "metrics_dir": str(work / "mlserver-metrics"),
                "environments_dir": str(work / "mlserver-envs")}
    if args.mlserver_parallel_workers is not None:
        settings["parallel_workers"] = args.mlserver_parallel_workers
    (work / "mlserver" / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    cmd = [args.mlserver_bin, "start", work / "mlserver"]
    return Server("mlserver", cmd, http_port, work, work / "logs", "mlserver")


def keel_batch_stats(srv: Server) -> tuple[int, int, int] | None:
    """(requests, batches, rows) Keel's batcher has run for the model."""
    try:
        status, body = http("GET", srv.url + "/v1/serving/models", timeout=10)
        for m in json.loads(body)["models"]:
            if m["name"] == MODEL:
                s = m["stats"]
                return s["requests"], s["batches"], s["rows"]
    except (OSError, ValueError, KeyError):
        pass
    return None


# --------------------------------------------------------------------------
# the check: same labels, Keel's probabilities vs onnxruntime
# --------------------------------------------------------------------------


def ort_session(onnx_path: Path, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])


def check(servers: dict[str, Server], m: dict, bodies_rows: list) -> dict:
    """Sends the same rows to both servers (and every variant's body once):
    label mismatches between Keel, MLServer, onnxruntime and scikit-learn,
    and the largest probability differences."""
    import numpy as np

    sess = ort_session(m["onnx_path"], 1)
    out = {"rows": 0, "label_mismatch_keel_mlserver": 0, "label_mismatch_keel_onnxruntime": 0,
           "label_mismatch_mlserver_sklearn": 0, "max_abs_prob_diff_keel_onnxruntime": 0.0,
           "max_abs_prob_diff_keel_mlserver": 0.0, "bad_responses": []}
    for rows in bodies_rows:
        x32 = rows.astype(np.float32)
        st_k, resp_k = http("POST", f"{servers['keel'].url}/v2/models/{MODEL}/infer",
                            v2_body(rows, None))
        st_m, resp_m = http("POST", f"{servers['mlserver'].url}/v2/models/{MODEL}/infer",
                            v2_body(rows, ["predict", "predict_proba"]))
        if st_k != 200 or st_m != 200:
            out["bad_responses"].append({"rows": len(rows), "keel": [st_k, resp_k[:300].decode(errors="replace")],
                                         "mlserver": [st_m, resp_m[:300].decode(errors="replace")]})
            continue
        k, ml = v2_outputs(resp_k), v2_outputs(resp_m)
        k_label = np.array(k["label"][1])
        k_prob = np.array(k["probabilities"][1], dtype=np.float64).reshape(-1, 2)
        m_label = np.array(ml["predict"][1])
        m_prob = np.array(ml["predict_proba"][1], dtype=np.float64).reshape(-1, 2)
        o_label, o_prob = sess.run(None, {"X": x32})
        sk_label = m["model"].predict(x32)
        out["rows"] += len(rows)
        out["label_mismatch_keel_mlserver"] += int((k_label != m_label).sum())
        out["label_mismatch_keel_onnxruntime"] += int((k_label != o_label).sum())
        out["label_mismatch_mlserver_sklearn"] += int((m_label != sk_label).sum())
        out["max_abs_prob_diff_keel_onnxruntime"] = max(
            out["max_abs_prob_diff_keel_onnxruntime"], float(np.abs(k_prob - o_prob).max()))
        out["max_abs_prob_diff_keel_mlserver"] = max(
            out["max_abs_prob_diff_keel_mlserver"], float(np.abs(k_prob - m_prob).max()))
    # every variant's body answers 200 with the outputs it asked for
    out["variant_outputs"] = {}
    for name, (server, outputs, _) in VARIANTS.items():
        if server not in servers:
            continue
        st, resp = http("POST", f"{servers[server].url}/v2/models/{MODEL}/infer",
                        v2_body(bodies_rows[0][:1], outputs))
        if st == 200:
            out["variant_outputs"][name] = {o["name"]: o["datatype"] for o in json.loads(resp)["outputs"]}
        else:
            out["variant_outputs"][name] = f"HTTP {st}: {resp[:300].decode(errors='replace')}"
            out["bad_responses"].append({"variant": name, "status": st})
    out["ok"] = (not out["bad_responses"] and out["rows"] > 0
                 and out["label_mismatch_keel_mlserver"] == 0
                 and out["label_mismatch_keel_onnxruntime"] == 0
                 and out["max_abs_prob_diff_keel_onnxruntime"] <= PROB_TOLERANCE)
    return out


# --------------------------------------------------------------------------
# load: wrk
# --------------------------------------------------------------------------

# wrk's done hook: one line "WRK_JSON {...}" with the counts and latency
# percentiles (microseconds) for the drivers to parse.
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "mean_us": %.2f, "stdev_us": %.2f, ' ..
    '"max_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.stdev, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
""" + WRK_DONE.replace("%", "%%")


def wrk(url: str, body: bytes, connections: int, seconds: int, script: Path,
        prepared: bool = False) -> dict:
    """One wrk run POSTing ``body`` (or as ``script`` says, if ``prepared``):
    its done hook's counts and latency percentiles, and the CPU wrk itself
    used."""
    if not prepared:
        script.write_text(WRK_SCRIPT % body.decode())
    threads = 1 if connections == 1 else 2
    out_path = script.with_suffix(".out")
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
           "--timeout", "10s", "-s", str(script), url]
    t = time.perf_counter()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + seconds + 60
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            raise RuntimeError(f"wrk did not finish within {seconds + 60:.0f}s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    text = out_path.read_text(errors="replace")
    line = next((l for l in text.splitlines() if l.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(cmd)}\n{text[-2000:]}")
    r = json.loads(line[len("WRK_JSON "):])
    r["wall_s"] = wall
    r["wrk_cpu_s"] = ru.ru_utime + ru.ru_stime
    r["threads"], r["connections"] = threads, connections
    return r


def measure(args, work: Path, servers: dict[str, Server], variant: str, batch: int,
            connections: int, bodies: dict) -> dict:
    server_name, _, _ = VARIANTS[variant]
    srv = servers[server_name]
    url = f"{srv.url}/v2/models/{MODEL}/infer"
    body = bodies[(variant, batch)]
    script = work / "wrk" / f"{variant}-b{batch}-c{connections}.lua"
    script.parent.mkdir(exist_ok=True)
    if args.warmup > 0:
        wrk(url, body, connections, args.warmup, script)
    stats0 = keel_batch_stats(srv) if server_name == "keel" else None
    cpu0 = {n: tree_cpu_s(s.proc.pid) for n, s in servers.items()}
    busy0, self0 = system_busy_s(), self_cpu_s()
    r = wrk(url, body, connections, args.seconds, script)
    busy, own = system_busy_s() - busy0, self_cpu_s() - self0
    cpu = {n: tree_cpu_s(s.proc.pid) - cpu0[n] for n, s in servers.items()}
    stats1 = keel_batch_stats(srv) if server_name == "keel" else None
    if not srv.alive():
        raise RuntimeError(f"{server_name} died under load:\n{srv.log()}")
    dur = r["duration_us"] / 1e6
    ok = r["requests"] - r["status"]
    wall = r["wall_s"]
    res = {
        "batch": batch, "connections": connections, "threads": r["threads"],
        "seconds": round(dur, 2),
        "requests": r["requests"],
        "rps": round(r["requests"] / dur, 1),
        "ok_rps": round(ok / dur, 1),
        "rows_per_s": round(ok * batch / dur, 1),
        "p50_ms": r["p50_us"] / 1e3, "p90_ms": r["p90_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3,
        "p999_ms": r["p999_us"] / 1e3, "max_ms": r["max_us"] / 1e3,
        "mean_ms": round(r["mean_us"] / 1e3, 3),
        "non_2xx": r["status"],
        "socket_errors": {k: r[k] for k in ("connect", "read", "write", "timeout")},
        "response_bytes_per_req": round(r["bytes"] / max(1, r["requests"]), 1),
        "request_body_bytes": len(body),
        "server_cpu_ms_per_req": round(cpu[server_name] * 1e3 / max(1, r["requests"]), 4),
        "server_cores": round(cpu[server_name] / wall, 2),
        "wrk_cores": round(r["wrk_cpu_s"] / wall, 2),
        "idle_peer_cores": round(sum(v for n, v in cpu.items() if n != server_name) / wall, 3),
        "other_cores": round(max(0.0, busy - sum(cpu.values()) - r["wrk_cpu_s"] - own) / wall, 2),
    }
    if stats0 and stats1:
        dreq, dbat, drows = (b - a for a, b in zip(stats0, stats1))
        res["keel_batcher"] = {"requests": dreq, "batches": dbat, "rows": drows,
                               "rows_per_batch": round(drows / max(1, dbat), 2),
                               "requests_per_batch": round(dreq / max(1, dbat), 2)}
    return res


def run_serve(args, work: Path, m: dict, results: dict) -> None:
    import numpy as np

    variants = args.variants
    bodies = {}
    rows = {1: m["X"][:1], 64: m["X"][:64]}
    for v in variants:
        for b in (1, 64):
            bodies[(v, b)] = v2_body(rows[b], VARIANTS[v][1])
    servers: dict[str, Server] = {}
    try:
        needed = sorted({VARIANTS[v][0] for v in variants} | {"keel", "mlserver"})
        for name in needed:
            log(f"starting {name}")
            servers[name] = (keel_server if name == "keel" else mlserver_server)(args, work).start()
            log(f"  {name} ready in {servers[name].ready_s} s at {servers[name].url}")
        results["servers"] = {n: {"command": s.cmd, "ready_s": s.ready_s,
                                  "rss_mb_ready": tree_rss_mb(s.proc.pid)}
                              for n, s in servers.items()}
        results["servers"]["mlserver"]["settings"] = json.loads(
            (work / "mlserver" / "settings.json").read_text())
        # the same rows to both: 16 bodies of 64 rows, and one row
        rng = np.random.default_rng(SEED + 1)
        check_rows = [m["X"][:1], m["X"][:64]] + [
            m["X"][rng.choice(len(m["X"]), 64, replace=False)] for _ in range(15)]
        log("checking that both servers give the same answers")
        results["check"] = check(servers, m, check_rows)
        c = results["check"]
        log(f"  {c['rows']} rows: labels Keel≠MLServer {c['label_mismatch_keel_mlserver']}, "
            f"Keel≠onnxruntime {c['label_mismatch_keel_onnxruntime']}; max |p| diff Keel-onnxruntime "
            f"{c['max_abs_prob_diff_keel_onnxruntime']:.2e}, Keel-MLServer "
            f"{c['max_abs_prob_diff_keel_mlserver']:.2e} -> {'ok' if c['ok'] else 'MISMATCH'}")
        cells: dict = {v: {} for v in variants}
        results["cells"] = cells  # partial results survive a failure
        # scenario-major, the variants interleaved: noise spreads over both servers
        for batch, conns in SCENARIOS:
            for v in variants:
                key = f"b{batch}_c{conns}"
                r = measure(args, work, servers, v, batch, conns, bodies)
                cells[v][key] = r
                extra = ""
                if "keel_batcher" in r:
                    extra = f"  ({r['keel_batcher']['rows_per_batch']} rows/batch)"
                log(f"  {v:17s} batch {batch:2d} x {conns} conn: {r['ok_rps']:9.1f} req/s "
                    f"{r['rows_per_s']:11.1f} rows/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms"
                    f"  non-2xx {r['non_2xx']}  server {r['server_cores']} cores, "
                    f"other {r['other_cores']}{extra}")
        for n, s in servers.items():
            results["servers"][n]["rss_mb_after"] = tree_rss_mb(s.proc.pid)
            results["servers"][n]["processes"] = len(tree_pids(s.proc.pid))
    finally:
        for s in servers.values():
            s.stop()


# --------------------------------------------------------------------------
# compile: the in-process floor, tract before/after, onnxruntime
# --------------------------------------------------------------------------


def run_compile(args, work: Path, m: dict, results: dict) -> None:
    out: dict = {"keel": {}, "onnxruntime": {}, "runs": args.runs}

    def compile_report(batch: int, runs: int) -> dict:
        cmd = [str(args.keel_bin), "serve", "compile", str(m["onnx_path"]), "--batch", str(batch),
               "--runs", str(runs), "--json"]
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        rep = json.loads(p.stdout)["report"]
        rep["wall_s"] = round(wall, 3)
        return rep

    for batch in (1, 64):
        reps = [compile_report(batch, args.runs) for _ in range(args.compile_repeats)]
        # compile_ms is measured after the timing runs, so it includes them:
        # the compile time proper comes from processes timing one run each.
        quick = [compile_report(batch, 1) for _ in range(args.compile_repeats)]
        after = statistics.median(r["latency_after_us"] for r in reps)
        before = statistics.median(r["latency_before_us"] for r in reps)
        # `--runs R` times R runs before and R after: the process cannot be
        # much shorter than that if the flag took effect.
        least_s = min(r["wall_s"] for r in reps)
        timed_s = args.runs * (before + after) / 1e6
        out["keel"][f"b{batch}"] = {
            "latency_after_us": round(after, 3), "latency_before_us": round(before, 3),
            "speedup": round(before / after, 2) if after else None,
            "rows_per_s_in_process": round(batch / after * 1e6, 1) if after else None,
            "nodes_before": reps[0]["nodes_before"], "nodes_after": reps[0]["nodes_after"],
            "compile_ms": round(statistics.median(r["compile_ms"] for r in quick), 1),
            "compile_ms_with_timing_runs": round(statistics.median(r["compile_ms"] for r in reps), 1),
            "native_ops": reps[0].get("native_ops"),
            "repeats": reps,
            "runs_flag_honoured": least_s >= 0.5 * timed_s,
        }
        log(f"  keel serve compile --batch {batch}: compiled {after:.2f} µs, typed {before:.2f} µs "
            f"(median of {len(reps)} processes; --runs {args.runs} "
            f"{'honoured' if least_s >= 0.5 * timed_s else 'NOT honoured: each process ran in ' + f'{least_s:.2f}s'})")
    for label, threads in (("1_thread", 1), ("default_threads", None)):
        sess = ort_session(m["onnx_path"], threads)
        out["onnxruntime"][label] = {}
        for batch in (1, 64):
            x = m["X32"][:batch].copy()
            for _ in range(200):
                sess.run(None, {"X": x})
            times = []
            for _ in range(args.runs):
                t = time.perf_counter_ns()
                sess.run(None, {"X": x})
                times.append(time.perf_counter_ns() - t)
            times.sort()
            med = times[len(times) // 2] / 1e3
            out["onnxruntime"][label][f"b{batch}"] = {
                "median_us": round(med, 3), "p90_us": round(times[int(len(times) * 0.9)] / 1e3, 3),
                "rows_per_s": round(batch / med * 1e6, 1)}
            log(f"  onnxruntime {label} batch {batch}: {med:.2f} µs (median of {args.runs})")
    results["compile"] = out


# --------------------------------------------------------------------------
# overhead: the server's share of the in-process rate as the model grows
# --------------------------------------------------------------------------

# name: (what it is, a factory given numpy's rng seed)
OVERHEAD_MODELS = {
    "logreg": "the logistic regression above (LinearClassifier)",
    "forest": "RandomForestClassifier, 100 trees, max_depth 10 (TreeEnsembleClassifier)",
    "mlp": "MLPClassifier, hidden layers 256 × 256 (MatMul/Add/Relu)",
}

WRK_BINARY_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = "%d"
local f = assert(io.open("%s", "rb"))
wrk.body = f:read("*a")
f:close()
""" + WRK_SCRIPT.split('wrk.body = [==[%s]==]\n')[1]


def overhead_models(work: Path, m: dict) -> Path:
    """A repository with the logistic regression, a random forest and an
    MLP trained on the same rows: plans from about 20 µs to a few ms per
    64 rows."""
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neural_network import MLPClassifier

    repo = work / "overhead-models"
    X32 = m["X32"]
    y = (m["model"].predict(X32) > 0).astype(np.int64)
    fitted = {
        "logreg": m["model"],
        "forest": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=SEED).fit(X32, y),
        "mlp": MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=30, random_state=SEED).fit(X32, y),
    }
    for name, model in fitted.items():
        onx = to_onnx(model, X32[:1], options={id(model): {"zipmap": False}},
                      target_opset={"": 17, "ai.onnx.ml": 3})
        path = repo / name / "1" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(onx.SerializeToString())
    return repo


def binary_body(rows) -> tuple[bytes, int]:
    """A V2 request with the FP32 input and every output in Triton's binary
    extension: (body, JSON header length)."""
    import numpy as np

    raw = np.ascontiguousarray(rows, dtype=np.float32).tobytes()
    header = json.dumps({"inputs": [{"name": "X", "shape": [len(rows), FEATURES], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}},
                        separators=(",", ":")).encode()
    return header + raw, len(header)


def run_overhead(args, work: Path, m: dict, results: dict) -> None:
    repo = overhead_models(work, m)
    cores = os.cpu_count() or 1
    out: dict = {"models": {}, "connections": 8, "batch": 64, "threads": cores}
    # The in-process figure runs the plan on the very rows the server is
    # sent: tree ensembles take data-dependent paths, and a synthetic
    # sample of small numbers walks shorter ones.
    request = work / "overhead-request.json"
    request.write_bytes(v2_body(m["X"][:64], None))
    for name in OVERHEAD_MODELS:
        cmd = [str(args.keel_bin), "serve", "compile", str(repo / name / "1" / "model.onnx"),
               "--input", str(request), "--runs", str(max(200, args.runs // 4)),
               "--threads", str(cores), "--json"]
        lat, thr = [], []
        for _ in range(3):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
            v = json.loads(p.stdout)
            lat.append(v["input"]["latency_us"])
            thr.append(v["throughput"]["rows_per_s"])
        after = statistics.median(lat)
        # The server runs plans on every core: its ceiling is the plan on
        # every core in process, through the same call the server makes.
        out["models"][name] = {"what": OVERHEAD_MODELS[name], "plan_us_b64": round(after, 2),
                               "one_thread_rows_per_s": round(64 / after * 1e6, 1),
                               "in_process_rows_per_s": round(statistics.median(thr), 1),
                               "cells": {}}
        log(f"  {name}: compiled plan {after:.1f} µs per 64 rows; {statistics.median(thr):.0f} rows/s "
            f"on {cores} threads in process")
    port = free_port()
    srv = Server("keel-overhead", [args.keel_bin, "server", "--data-dir", work / "keel-overhead-data",
                                   "--host", "127.0.0.1", "--port", port, "--model-repository", repo],
                 port, work, work / "logs", "keel").start()
    try:
        rows = m["X"][:64]
        script_dir = work / "wrk-overhead"
        script_dir.mkdir(exist_ok=True)
        # The transport floor: the same load client against a bodiless
        # health check. No server answering batch-64 requests can beat this
        # rate, so 64 x its requests/s bounds the share any server could
        # reach on this machine with the load client on the same cores.
        floor_script = script_dir / "floor.lua"
        floor_text = WRK_SCRIPT.split('wrk.body = [==[%s]==]\n')[1] % ()
        if args.warmup > 0:
            wrk_script(f"{srv.url}/v2/health/ready", floor_text, 8, args.warmup, floor_script)
        cpu0 = tree_cpu_s(srv.proc.pid)
        r = wrk_script(f"{srv.url}/v2/health/ready", floor_text, 8, args.seconds, floor_script)
        cpu = tree_cpu_s(srv.proc.pid) - cpu0
        dur = r["duration_us"] / 1e6
        out["floor"] = {"req_per_s": round((r["requests"] - r["status"]) / dur, 1),
                        "server_cpu_us_per_req": round(cpu * 1e6 / max(1, r["requests"]), 1),
                        "wrk_cpu_us_per_req": round(r["wrk_cpu_s"] * 1e6 / max(1, r["requests"]), 1),
                        "non_2xx": r["status"]}
        log(f"  floor (GET /v2/health/ready): {out['floor']['req_per_s']:.0f} req/s; server "
            f"{out['floor']['server_cpu_us_per_req']} µs CPU/request, wrk "
            f"{out['floor']['wrk_cpu_us_per_req']} µs")
        for name in OVERHEAD_MODELS:
            url = f"{srv.url}/v2/models/{name}/infer"
            json_script = script_dir / f"{name}-json.lua"
            json_body = v2_body(rows, None)
            body, header_len = binary_body(rows)
            body_path = script_dir / f"{name}.bin"
            body_path.write_bytes(body)
            status, resp = http("POST", url, json_body)
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status} {resp[:300]!r}")
            entry = out["models"][name]
            for encoding in ("json", "binary"):
                def run(seconds: int) -> dict:
                    if encoding == "json":
                        return wrk(url, json_body, 8, seconds, json_script)
                    script = script_dir / f"{name}-binary.lua"
                    text = WRK_BINARY_SCRIPT % (header_len, body_path)
                    # wrk() fills the script from a body; write ours and call it with none
                    return wrk_script(url, text, 8, seconds, script)
                if args.warmup > 0:
                    run(args.warmup)
                cpu0 = tree_cpu_s(srv.proc.pid)
                r = run(args.seconds)
                cpu = tree_cpu_s(srv.proc.pid) - cpu0
                dur = r["duration_us"] / 1e6
                ok = r["requests"] - r["status"]
                cell = {"req_per_s": round(ok / dur, 1), "rows_per_s": round(ok * 64 / dur, 1),
                        "p50_ms": r["p50_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3,
                        "non_2xx": r["status"], "server_cores": round(cpu / r["wall_s"], 2),
                        "wrk_cores": round(r["wrk_cpu_s"] / r["wall_s"], 2),
                        "server_cpu_us_per_req": round(cpu * 1e6 / max(1, r["requests"]), 1),
                        "wrk_cpu_us_per_req": round(r["wrk_cpu_s"] * 1e6 / max(1, r["requests"]), 1)}
                cell["share_of_in_process"] = ratio(cell["rows_per_s"], entry["in_process_rows_per_s"])
                entry["floor_share"] = ratio(out["floor"]["req_per_s"] * 64, entry["in_process_rows_per_s"])
                entry["cells"][encoding] = cell
                log(f"  {name:6s} {encoding:6s}: {cell['rows_per_s']:10.0f} rows/s = "
                    f"{cell['share_of_in_process'] * 100:5.1f}% of in process; server "
                    f"{cell['server_cpu_us_per_req']:.0f} µs CPU/request, wrk {cell['wrk_cores']} cores, "
                    f"non-2xx {cell['non_2xx']}")
    finally:
        srv.stop()
    results["overhead"] = out


def wrk_script(url: str, text: str, connections: int, seconds: int, script: Path) -> dict:
    """``wrk`` with a ready script (the binary body is read from a file)."""
    script.write_text(text)
    return wrk(url, b"", connections, seconds, script, prepared=True)


# --------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def summarize(results: dict) -> dict:
    s: dict = {"pairs": {}}
    cells = results.get("cells", {})
    for k, mls in PAIRS:
        if k not in cells or mls not in cells:
            continue
        rows = {}
        for batch, conns in SCENARIOS:
            key = f"b{batch}_c{conns}"
            if key not in cells[k] or key not in cells[mls]:
                continue
            a, b = cells[k][key], cells[mls][key]
            rows[key] = {"keel_over_mlserver_throughput": ratio(a["ok_rps"], b["ok_rps"]),
                         "mlserver_over_keel_p99": ratio(b["p99_ms"], a["p99_ms"]),
                         "mlserver_over_keel_p50": ratio(b["p50_ms"], a["p50_ms"]),
                         "mlserver_over_keel_cpu_per_req": ratio(b["server_cpu_ms_per_req"],
                                                                 a["server_cpu_ms_per_req"])}
        s["pairs"][f"{k}/{mls}"] = rows
    comp = results.get("compile", {}).get("keel", {}).get("b64")
    best = None
    if comp and "keel" in cells:
        best = max((cells["keel"][f"b64_c{c}"] for b, c in SCENARIOS
                    if b == 64 and f"b64_c{c}" in cells["keel"]),
                   key=lambda r: r["rows_per_s"], default=None)
    if comp and best:
        s["floor"] = {"in_process_rows_per_s_b64": comp["rows_per_s_in_process"],
                      "server_rows_per_s_b64_best": best["rows_per_s"],
                      "best_connections": best["connections"],
                      "server_share_of_in_process": ratio(best["rows_per_s"],
                                                          comp["rows_per_s_in_process"]),
                      "goal": 0.70}
    return s


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def print_table(results: dict) -> None:
    cells, summ = results.get("cells", {}), results.get("summary", {})
    if cells and any(cells.values()):
        secs = next(r for c in cells.values() for r in c.values())["seconds"]
        print(f"\nKeel vs MLServer: V2 REST, JSON bodies, wrk, {secs:.0f} s per cell "
              f"(t1 for 1 connection, t2 for 8)")
        for k, mls in PAIRS:
            if k not in cells or mls not in cells:
                continue
            print(f"\n  {k} — {VARIANTS[k][2]}\n  {mls} — {VARIANTS[mls][2]}")
            hdr = (f"  {'batch':>5} {'conn':>4} | {'req/s':>8} {'rows/s':>10} {'p50 ms':>7} {'p99 ms':>7}"
                   f" | {'req/s':>8} {'rows/s':>10} {'p50 ms':>7} {'p99 ms':>7} | {'thrpt':>6} {'p99':>6}")
            print(f"  {'':10} | {k:^35} | {mls:^35} | K/M    M/K")
            print(hdr)
            for batch, conns in SCENARIOS:
                key = f"b{batch}_c{conns}"
                if key not in summ["pairs"][f"{k}/{mls}"]:
                    continue
                a, b = cells[k][key], cells[mls][key]
                r = summ["pairs"][f"{k}/{mls}"][key]
                print(f"  {batch:>5} {conns:>4} | {a['ok_rps']:>8.0f} {a['rows_per_s']:>10.0f} "
                      f"{a['p50_ms']:>7.3f} {a['p99_ms']:>7.3f} | {b['ok_rps']:>8.0f} "
                      f"{b['rows_per_s']:>10.0f} {b['p50_ms']:>7.3f} {b['p99_ms']:>7.3f} | "
                      f"{fmt(r['keel_over_mlserver_throughput'], '.1f'):>5}× "
                      f"{fmt(r['mlserver_over_keel_p99'], '.1f'):>5}×")
        print("\n  server CPU per request (ms) and Keel's batcher:")
        for v in cells:
            parts = []
            for batch, conns in SCENARIOS:
                r = cells[v].get(f"b{batch}_c{conns}")
                if r is None:
                    continue
                extra = (f" ({r['keel_batcher']['rows_per_batch']:.0f} rows/batch)"
                         if "keel_batcher" in r and conns > 1 and batch == 1 else "")
                parts.append(f"b{batch}c{conns} {r['server_cpu_ms_per_req']:.3f}{extra}")
            print(f"    {v:17s} " + ", ".join(parts))
        bad = [(v, key, r["non_2xx"], r["socket_errors"]) for v in cells for key, r in cells[v].items()
               if r["non_2xx"] or any(r["socket_errors"].values())]
        print("  non-2xx / socket errors: " + ("none" if not bad else
              "; ".join(f"{v} {key}: {n} non-2xx {e}" for v, key, n, e in bad)))
        noisy = max((r["other_cores"] for v in cells for r in cells[v].values()), default=0)
        print(f"  other processes used at most {noisy} cores during a cell "
              f"(of {os.cpu_count()}; figures taken while that is high are suspect)")
    if "check" in results:
        c = results["check"]
        print(f"\n  check ({c['rows']} rows, the same requests to both): labels Keel≠MLServer "
              f"{c['label_mismatch_keel_mlserver']}, Keel≠onnxruntime {c['label_mismatch_keel_onnxruntime']}, "
              f"MLServer≠scikit-learn {c['label_mismatch_mlserver_sklearn']}; max |Δp| Keel–onnxruntime "
              f"{c['max_abs_prob_diff_keel_onnxruntime']:.1e}, Keel–MLServer "
              f"{c['max_abs_prob_diff_keel_mlserver']:.1e} → {'ok' if c['ok'] else 'MISMATCH'}")
    comp = results.get("compile")
    if comp:
        print(f"\nIn process, median µs per run (Keel: median of the processes' medians; "
              f"onnxruntime: InferenceSession.run from Python, {comp['runs']} runs)")
        print(f"  {'batch':>5} | {'Keel plan':>9} {'tract typed':>11} {'speedup':>7} {'compile ms':>10} | "
              f"{'ORT 1 thr':>9} {'ORT dflt':>9} | {'Keel rows/s':>12} {'ORT1 rows/s':>12}")
        for b in (1, 64):
            k = comp["keel"].get(f"b{b}", {})
            o1 = comp["onnxruntime"].get("1_thread", {}).get(f"b{b}", {})
            od = comp["onnxruntime"].get("default_threads", {}).get(f"b{b}", {})
            print(f"  {b:>5} | {fmt(k.get('latency_after_us'), '.2f'):>9} "
                  f"{fmt(k.get('latency_before_us'), '.2f'):>11} {fmt(k.get('speedup'), '.1f'):>6}× "
                  f"{fmt(k.get('compile_ms'), '.1f'):>10} | {fmt(o1.get('median_us'), '.2f'):>9} "
                  f"{fmt(od.get('median_us'), '.2f'):>9} | {fmt(k.get('rows_per_s_in_process'), '.0f'):>12} "
                  f"{fmt(o1.get('rows_per_s'), '.0f'):>12}")
        flags = [b for b in ("b1", "b64") if comp["keel"].get(b, {}).get("runs_flag_honoured") is False]
        if flags:
            print(f"  note: `keel serve compile --runs {comp['runs']}` was not honoured (each process "
                  "finished faster than that many runs take): its medians are of the default run count")
    o = results.get("overhead")
    if o:
        print(f"\nServer overhead: batch {o['batch']}, {o['connections']} connections, wrk on the same "
              f"cores; the server's rows/s as a share of the plan's on {o['threads']} threads in process "
              "(goal ≥ 70%)")
        print(f"  {'model':7} {'plan µs/64':>10} {'in process':>11} | {'JSON rows/s':>11} {'share':>6} "
              f"{'µs/req':>7} | {'binary rows/s':>13} {'share':>6} {'µs/req':>7}")
        for name, e in o["models"].items():
            j, b = e["cells"].get("json", {}), e["cells"].get("binary", {})
            print(f"  {name:7} {e['plan_us_b64']:>10.1f} {e['in_process_rows_per_s']:>11.0f} | "
                  f"{fmt(j.get('rows_per_s'), '.0f'):>11} {fmt((j.get('share_of_in_process') or 0) * 100, '.0f'):>5}% "
                  f"{fmt(j.get('server_cpu_us_per_req'), '.0f'):>7} | {fmt(b.get('rows_per_s'), '.0f'):>13} "
                  f"{fmt((b.get('share_of_in_process') or 0) * 100, '.0f'):>5}% "
                  f"{fmt(b.get('server_cpu_us_per_req'), '.0f'):>7}")
        for name, e in o["models"].items():
            print(f"    {name}: {e['what']}")
        fl = o.get("floor")
        if fl:
            print(f"  transport floor: GET /v2/health/ready at {fl['req_per_s']:.0f} req/s (server "
                  f"{fl['server_cpu_us_per_req']} µs, wrk {fl['wrk_cpu_us_per_req']} µs CPU/request); "
                  "x 64 rows as a share of in process, the most any server could reach here:")
            for name, e in o["models"].items():
                b = e["cells"].get("binary", {})
                print(f"    {name:7} {fmt((e.get('floor_share') or 0) * 100, '.0f'):>4}%   (wrk's own CPU "
                      f"per binary request: {fmt(b.get('wrk_cpu_us_per_req'), '.0f')} µs)")
    f = summ.get("floor")
    if f:
        print(f"\n  Keel server rows/s at batch 64 (best: {f['best_connections']} connections) "
              f"{f['server_rows_per_s_b64_best']:.0f} = {f['server_share_of_in_process'] * 100:.1f}% "
              f"of the compiled plan in process ({f['in_process_rows_per_s_b64']:.0f} rows/s; goal ≥ 70%)")


# --------------------------------------------------------------------------


def versions(args) -> dict:
    info = {"date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count(), "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("mlserver", "mlserver-sklearn", "scikit-learn", "numpy", "skl2onnx", "onnx",
                "onnxruntime", "uvloop", "uvicorn", "fastapi"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    try:
        info["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True,
                                     timeout=10).stdout.split("\n")[0].strip()
    except OSError:
        info["wrk"] = None
    try:
        info["keel_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True, timeout=10).stdout.strip()
        info["keel_crates_dirty"] = bool(subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "crates"],
            capture_output=True, text=True, timeout=10).stdout.strip())
        st = Path(args.keel_bin).stat()
        info["keel_bin"] = str(args.keel_bin)
        info["keel_bin_mtime_utc"] = _dt.datetime.fromtimestamp(
            st.st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
    except Exception:  # pragma: no cover
        pass
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel-bin", type=Path, required=True)
    ap.add_argument("--mlserver-bin", type=Path, default=Path(sys.executable).with_name("mlserver"),
                    help="the mlserver CLI (default: beside this Python)")
    ap.add_argument("--only", default="serve,compile,overhead", help="serve,compile,overhead")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"server configurations to load (default all: {','.join(VARIANTS)})")
    ap.add_argument("--seconds", type=int, default=10, help="wrk run per cell (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="wrk warm-up run per cell (default 2)")
    ap.add_argument("--runs", type=int, default=2000,
                    help="timed runs per median, keel serve compile --runs and onnxruntime (default 2000)")
    ap.add_argument("--compile-repeats", type=int, default=5,
                    help="keel serve compile processes per batch size; the median is reported (default 5)")
    ap.add_argument("--mlserver-parallel-workers", type=int, default=None,
                    help="MLServer's parallel_workers (default: MLServer's own, 1)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "inference.json")
    ap.add_argument("--workdir", type=Path, default=None, help="keep everything here (implies --keep-data)")
    ap.add_argument("--keep-data", action="store_true")
    args = ap.parse_args()
    only = [w for w in args.only.split(",") if w]
    args.variants = [v for v in args.variants.split(",") if v]
    bad = [w for w in only if w not in WORKLOADS] + [v for v in args.variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown workload/variant: {bad}")
    if not Path(args.keel_bin).is_file():
        ap.error(f"keel binary not found: {args.keel_bin}")
    if "serve" in only or "overhead" in only:
        if shutil.which("wrk") is None:
            ap.error("wrk not found (Debian: apt-get install wrk); the serve workload needs it")
        if "serve" in only and not Path(args.mlserver_bin).is_file():
            ap.error(f"mlserver not found at {args.mlserver_bin} (bench/run inference makes its venv)")
    args.keel_bin = Path(args.keel_bin).resolve()
    if args.workdir:
        work = args.workdir.resolve()
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        args.keep_data = True
    else:
        work = Path(tempfile.mkdtemp(prefix="keel-inference-bench-"))
    results: dict = {"machine": versions(args), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                     "options": {"seconds": args.seconds, "warmup": args.warmup, "runs": args.runs,
                                 "compile_repeats": args.compile_repeats, "only": only,
                                 "variants": {v: VARIANTS[v][2] for v in args.variants},
                                 "scenarios": [{"batch": b, "connections": c,
                                                "wrk_threads": 1 if c == 1 else 2} for b, c in SCENARIOS]},
                     "errors": {}}
    status = 0
    t0 = time.perf_counter()
    try:
        log(f"training the model and writing both repositories under {work}")
        m = build_model(work)
        results["model"] = {k: m[k] for k in ("onnx_ops", "onnx_inputs", "onnx_outputs",
                                              "train_accuracy", "train_s")}
        results["model"].update(rows=TRAIN_ROWS, features=FEATURES, classes=2, seed=SEED,
                                onnx_bytes=m["onnx_path"].stat().st_size)
        for wl, fn in (("serve", run_serve), ("compile", run_compile), ("overhead", run_overhead)):
            if wl not in only:
                continue
            log(f"== {wl}")
            try:
                fn(args, work, m, results)
            except Exception as exc:  # keep going: record and report
                import traceback
                log(f"!! {wl} failed: {exc!r}")
                results["errors"][wl] = traceback.format_exc()[-6000:]
                status = 1
        if results.get("check") and not results["check"]["ok"]:
            status = 1
    finally:
        if args.keep_data:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    results["summary"] = summarize(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results)
    if results["errors"]:
        print("\nErrors:")
        for k, v in results["errors"].items():
            print(f"  {k}: {v.strip().splitlines()[-1]}")
    out = args.out.resolve()
    print(f"\nwrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out} "
          f"({results['wall_s']:.0f}s total)")
    return status


if __name__ == "__main__":
    sys.exit(main())
