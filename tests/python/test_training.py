"""Training jobs end to end: a real ``keel server`` schedules jobs that run
as supervised local processes, log to their tracking run with the mlflow
client, are billed from the operating system's accounting, retried, timed
out, cancelled, rate-limited, shared fairly between tenants and found
again after the server is killed with SIGKILL.

The server's scheduler is given 6 virtual CPUs (``KEEL_TRAIN_CPUS``) so
that contention between tenants is visible on a 2-core machine: the jobs
mostly sleep.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from conftest import KEEL_BACKENDS, ServerProcess, _requested_backends, keel_bin

PY = sys.executable
CPU_HOUR = 0.36  # $ per CPU-hour: 0.0001 per CPU-second
GB_HOUR = 0.018


@pytest.fixture(scope="module", params=[b for b in _requested_backends() if b in KEEL_BACKENDS])
def server(request):
    mp = pytest.MonkeyPatch()
    for k, v in {"KEEL_TRAIN_CPUS": "6", "KEEL_TRAIN_RETRY_BACKOFF_MS": "200",
                 "KEEL_CPU_HOUR_PRICE": str(CPU_HOUR), "KEEL_GB_HOUR_PRICE": str(GB_HOUR)}.items():
        mp.setenv(k, v)
    workdir = Path(tempfile.mkdtemp(prefix="keel-train-"))
    s = ServerProcess(request.param, workdir)
    try:
        s.prepare()
        s.start()
        yield s
    finally:
        s.cleanup()
        mp.undo()
        shutil.rmtree(workdir, ignore_errors=True)


def submit(server, spec: dict) -> requests.Response:
    return requests.post(f"{server.uri}/v1/train/jobs", data=json.dumps(spec), timeout=30)


def job(server, job_id: int) -> dict:
    r = requests.get(f"{server.uri}/v1/train/jobs/{job_id}", timeout=30)
    r.raise_for_status()
    return r.json()


def wait(server, job_id: int, states=("succeeded", "failed", "cancelled"), timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = job(server, job_id)
        if j["job"]["state"] in states:
            if j["job"]["state"] == "failed":
                err = requests.get(f"{server.uri}/v1/train/jobs/{job_id}/logs",
                                   params={"stream": "stderr"}, timeout=30)
                j["job"]["stderr"] = err.text[-2000:]
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not in {states} after {timeout}s: {job(server, job_id)}")


def python_job(name: str, tenant: str, code: str, **extra) -> dict:
    return {"job": name, "tenant": tenant, "command": f"{PY} -c {shlex.quote(code)}", **extra}


def test_a_command_job_logs_to_its_run_with_the_mlflow_client(server):
    code = (
        "import json, os, mlflow\n"
        "p = json.load(open('params.json'))\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('loss', 0.25 * p['lr'], step=1)\n"
        "    mlflow.log_param('seen_lr', p['lr'])\n"
        "print('trained with', os.environ['KEEL_PARAMS'])\n"
    )
    r = submit(server, python_job("mlflow-logging", "growth", code, params={"lr": 0.4}))
    assert r.status_code == 201, r.text
    j = wait(server, r.json()["job"]["id"])["job"]
    assert j["state"] == "succeeded", j
    client = MlflowClient(server.uri)
    run = client.get_run(j["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["loss"] == pytest.approx(0.1)
    assert run.data.params["lr"] == "0.4" and run.data.params["seen_lr"] == "0.4"
    assert run.data.tags["keel.job_id"] == str(j["id"]) and run.data.tags["keel.tenant"] == "growth"
    assert run.data.metrics["keel.cpu_seconds"] > 0
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "mlflow-logging"
    # stdout is a run artifact, and readable through the jobs API.
    local = client.download_artifacts(j["run_id"], "logs/stdout.log", tempfile.mkdtemp())
    assert 'trained with {"lr":0.4}' in Path(local).read_text()
    logs = requests.get(f"{server.uri}/v1/train/jobs/{j['id']}/logs", timeout=30)
    assert logs.status_code == 200 and "trained with" in logs.text


def test_billing_equals_the_measured_usage(server):
    # Each job burns CPU and reports its own CPU time from the kernel.
    code = (
        "import resource, time\n"
        "t = time.process_time()\n"
        "x = 0\n"
        "while time.process_time() - t < {secs}: x += 1\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(u.ru_utime + u.ru_stime)\n"
    )
    ids = []
    for secs in (0.4, 0.8):
        r = submit(server, python_job(f"burn-{secs}", "billing", code.format(secs=secs)))
        assert r.status_code == 201, r.text
        ids.append(r.json()["job"]["id"])
    for i in ids:
        assert wait(server, i)["job"]["state"] == "succeeded"
    report = requests.get(f"{server.uri}/v1/billing/report", params={"tenant": "billing"}, timeout=30).json()
    assert report["attempts"] == 2
    for e, i in zip(report["entries"], ids):
        assert e["job_id"] == i
        own = float(requests.get(f"{server.uri}/v1/train/jobs/{i}/logs", timeout=30).text)
        # The kernel's count for the whole process tree (the shell, the
        # interpreter's start-up) is at least the job's own and not much more.
        assert own - 0.01 <= e["cpu_seconds"] <= own + 0.5, (own, e)
        assert e["memory_gb_seconds"] > 0 and e["max_rss_bytes"] > 1_000_000
        assert e["cost"] == pytest.approx(e["cpu_seconds"] / 3600 * CPU_HOUR
                                          + e["memory_gb_seconds"] / 3600 * GB_HOUR, rel=1e-12)
    for key in ("cpu_seconds", "memory_gb_seconds", "wall_seconds", "cost"):
        assert report[key] == pytest.approx(sum(e[key] for e in report["entries"]), rel=1e-12)
    # The CLI prints the same report.
    out = subprocess.run([str(keel_bin()), "billing", "report", "--tenant", "billing", "--json",
                          "--server", server.uri], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cost"] == pytest.approx(report["cost"], rel=1e-12)


def test_failures_are_retried_with_backoff_then_fail(server):
    r = submit(server, {"job": "flaky", "tenant": "growth", "command": "echo try; exit 3", "retries": 2})
    assert r.status_code == 201
    j = wait(server, r.json()["job"]["id"])["job"]
    assert j["state"] == "failed" and j["attempts"] == 3 and j["max_attempts"] == 3, j
    assert j["message"] == "exited with status 3" and j["result"]["exit_code"] == 3
    report = requests.get(f"{server.uri}/v1/billing/report", params={"tenant": "growth"}, timeout=30).json()
    assert sorted(e["attempt"] for e in report["entries"] if e["job_id"] == j["id"]) == [1, 2, 3]
    # A job that fails once and then succeeds (it counts its attempts in its
    # working directory, which attempts share).
    script = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 2 ]"
    r = submit(server, {"job": "second-time-lucky", "tenant": "growth", "command": script, "retries": 3})
    j = wait(server, r.json()["job"]["id"])["job"]
    assert j["state"] == "succeeded" and j["attempts"] == 2, j
    assert MlflowClient(server.uri).get_run(j["run_id"]).data.tags["keel.attempt"] == "2"


def test_timeouts_and_cancellation_stop_the_process_group(server):
    r = submit(server, {"job": "slow", "tenant": "growth", "command": "sleep 60 & sleep 60", "timeout": "500ms"})
    j = wait(server, r.json()["job"]["id"])["job"]
    assert j["state"] == "failed" and j["message"] == "timed out" and j["result"]["timed_out"]
    assert j["result"]["usage"]["wall_seconds"] < 10
    r = submit(server, {"job": "cancelled", "tenant": "growth", "command": "sleep 60"})
    jid = r.json()["job"]["id"]
    wait(server, jid, states=("running",))
    out = subprocess.run([str(keel_bin()), "jobs", "cancel", str(jid), "--server", server.uri],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    j = wait(server, jid, timeout=20)["job"]
    assert j["state"] == "cancelled", j
    assert MlflowClient(server.uri).get_run(j["run_id"]).info.status == "KILLED"
    again = requests.post(f"{server.uri}/v1/train/jobs/{jid}/cancel", timeout=30)
    assert again.status_code == 409


def test_submissions_beyond_the_rate_get_429(server):
    r = requests.put(f"{server.uri}/v1/train/tenants/bursty",
                     json={"submit_rate": 0.5, "submit_burst": 2}, timeout=30)
    assert r.status_code == 200, r.text
    spec = {"job": "noop", "tenant": "bursty", "command": "true"}
    codes = [submit(server, spec) for _ in range(3)]
    assert [c.status_code for c in codes] == [201, 201, 429]
    assert int(codes[2].headers["Retry-After"]) >= 1
    assert codes[2].json()["error"]["code"] == "RATE_LIMITED"
    bad = requests.put(f"{server.uri}/v1/train/tenants/bursty", json={"weight": -1}, timeout=30)
    assert bad.status_code == 400 and "weight" in bad.json()["error"]["message"]


def test_bad_specs_name_the_field(server):
    r = requests.post(f"{server.uri}/v1/train/jobs",
                      data="job: x\ntenant: t\ntrainer: builtin:gbtd\nresources: {cpus: 64}\n", timeout=30)
    assert r.status_code == 400
    problems = r.json()["error"]["problems"]
    assert problems[0]["path"] == "trainer" and problems[0]["line"] == 3
    assert "did you mean `builtin:gbdt`" in problems[0]["message"]
    r = submit(server, {"job": "huge", "tenant": "t", "command": "true", "resources": {"cpus": 64}})
    assert r.status_code == 400 and "resources" in r.json()["error"]["message"]
    spec = Path(tempfile.mkdtemp()) / "job.yaml"
    spec.write_text("job: x\ntenant: t\nexecutor: kubernetes\ncommand: true\n")
    out = subprocess.run([str(keel_bin()), "jobs", "submit", str(spec), "--server", server.uri],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "job.yaml:line 3, column 11: executor" in out.stderr, out.stderr


def test_a_grid_sweep_runs_one_child_per_combination(server):
    code = "import json; p = json.load(open('params.json')); print(p['a'] * p['b'])"
    r = submit(server, python_job("grid", "growth", code, sweep={"grid": {"a": [1, 2], "b": [10, 20]}}))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["job"]["state"] == "sweep" and len(body["children"]) == 4
    parent = wait(server, body["job"]["id"])
    assert parent["job"]["state"] == "succeeded" and parent["job"]["result"] == {"succeeded": 4}
    outputs = sorted(int(requests.get(f"{server.uri}/v1/train/jobs/{c['id']}/logs", timeout=30).text)
                     for c in parent["children"])
    assert outputs == [10, 20, 20, 40]


def test_contending_tenants_get_their_weighted_shares_within_quotas(server):
    # Six CPUs; t3 would get half by weight but its quota caps it at two,
    # and the four left are shared 1:2 between t1 and t2.
    policies = {"t1": {"weight": 1}, "t2": {"weight": 2}, "t3": {"weight": 3, "max_cpus": 2}}
    for tenant, policy in policies.items():
        r = requests.put(f"{server.uri}/v1/train/tenants/{tenant}", json=policy, timeout=30)
        assert r.status_code == 200
    ids = {}
    for _ in range(24):
        for tenant in ("t1", "t2", "t3"):
            r = submit(server, {"job": f"share-{tenant}", "tenant": tenant, "command": "sleep 0.5"})
            assert r.status_code == 201, r.text
            ids.setdefault(tenant, []).append(r.json()["job"]["id"])
    # While every tenant still has a backlog, sample who runs.
    samples = {"t1": 0.0, "t2": 0.0, "t3": 0.0}
    n, max_t3 = 0, 0.0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = requests.get(f"{server.uri}/v1/train/scheduler", timeout=30).json()
        tenants = {t["tenant"]: t for t in s["tenants"]}
        if any(tenants[t]["queued"] == 0 for t in samples):
            break
        for t in samples:
            samples[t] += tenants[t]["running_cpus"]
        max_t3 = max(max_t3, tenants["t3"]["running_cpus"])
        n += 1
        time.sleep(0.1)
    assert n >= 10, "the tenants were backlogged long enough to sample"
    total = sum(samples.values())
    shares = {t: v / total for t, v in samples.items()}
    for t, want in (("t1", 4 / 18), ("t2", 8 / 18), ("t3", 2 / 6)):
        assert shares[t] == pytest.approx(want, abs=0.06), shares
    assert max_t3 <= 2, "the quota held"
    for t in ids:
        for i in ids[t]:
            wait(server, i)


def test_a_running_job_survives_a_server_killed_with_sigkill(server):
    r = submit(server, {"job": "survivor", "tenant": "growth",
                        "command": "sleep 2; echo finished"})
    jid = r.json()["job"]["id"]
    deadline = time.monotonic() + 30
    while "handle" not in job(server, jid)["job"] and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill9()
    server.start()
    j = wait(server, jid, timeout=60)["job"]
    assert j["state"] == "succeeded" and j["attempts"] == 1, j
    assert requests.get(f"{server.uri}/v1/train/jobs/{jid}/logs", timeout=30).text == "finished\n"
    report = requests.get(f"{server.uri}/v1/billing/report", params={"tenant": "growth"}, timeout=30).json()
    assert [e["attempt"] for e in report["entries"] if e["job_id"] == jid] == [1]
    # Jobs queued when it died are still there and run.
    r = submit(server, {"job": "after", "tenant": "growth", "command": "true"})
    assert wait(server, r.json()["job"]["id"])["job"]["state"] == "succeeded"
    listed = subprocess.run([str(keel_bin()), "jobs", "list", "--tenant", "growth", "--json",
                             "--server", server.uri], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and jid in [j["id"] for j in json.loads(listed.stdout)["jobs"]]


# --------------------------------------------------------------------------
# the Ray executor: a local Ray head from the ray[default] package
# --------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_server():
    ray_bin = Path(PY).parent / "ray"
    assert ray_bin.exists(), f"{ray_bin}: the test venv has no ray (ray[default] in requirements.txt)"
    temp = Path(tempfile.mkdtemp(prefix="keel-ray-"))
    dashboard = _free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    start = subprocess.run(
        [str(ray_bin), "start", "--head", "--num-cpus", "2", "--port", str(_free_port()),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--include-dashboard", "true", "--temp-dir", str(temp), "--disable-usage-stats"],
        capture_output=True, text=True, timeout=180, env=env)
    assert start.returncode == 0, start.stdout + start.stderr
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{address}/api/version", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    mp = pytest.MonkeyPatch()
    mp.setenv("KEEL_RAY_ADDRESS", address)
    mp.setenv("KEEL_CPU_HOUR_PRICE", str(CPU_HOUR))
    mp.setenv("KEEL_GB_HOUR_PRICE", str(GB_HOUR))
    workdir = Path(tempfile.mkdtemp(prefix="keel-train-ray-"))
    s = ServerProcess("sqlite", workdir)
    try:
        s.prepare()
        s.start()
        s.ray_address = address
        yield s
    finally:
        s.cleanup()
        mp.undo()
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_ray_job_round_trip_logs_a_run_with_the_mlflow_client(ray_server):
    code = (
        "import mlflow\n"
        "with mlflow.start_run():\n"
        "    mlflow.log_metric('accuracy', 0.91)\n"
        "print('ran on ray')\n"
    )
    spec = python_job("on-ray", "research", code, executor="ray",
                      resources={"cpus": 1, "memory": "256MiB"})
    r = submit(ray_server, spec)
    assert r.status_code == 201, r.text
    j = wait(ray_server, r.json()["job"]["id"], timeout=120)["job"]
    assert j["state"] == "succeeded", j
    ray_job = requests.get(f"{ray_server.ray_address}/api/jobs/keel-{j['id']}-1", timeout=30).json()
    assert ray_job["status"] == "SUCCEEDED"
    run = MlflowClient(ray_server.uri).get_run(j["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == 0.91
    assert run.data.tags["keel.executor"] == "ray"
    assert "ran on ray" in requests.get(f"{ray_server.uri}/v1/train/jobs/{j['id']}/logs", timeout=30).text
    # Billed for what it reserved: 1 CPU and 256 MiB for its wall time.
    entry = requests.get(f"{ray_server.uri}/v1/billing/report", params={"tenant": "research"},
                         timeout=30).json()["entries"][0]
    assert entry["executor"] == "ray" and entry["wall_seconds"] > 0
    assert entry["cpu_seconds"] == pytest.approx(entry["wall_seconds"])
    assert entry["memory_gb_seconds"] == pytest.approx(entry["wall_seconds"] * 256 * 2**20 / 1e9)


def test_a_ray_job_is_stopped_when_cancelled(ray_server):
    r = submit(ray_server, {"job": "long-on-ray", "tenant": "research", "executor": "ray",
                            "command": "sleep 120"})
    jid = r.json()["job"]["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(f"{ray_server.ray_address}/api/jobs/keel-{jid}-1", timeout=30)
        if status.ok and status.json()["status"] == "RUNNING":
            break
        time.sleep(0.3)
    assert requests.post(f"{ray_server.uri}/v1/train/jobs/{jid}/cancel", timeout=30).status_code == 200
    j = wait(ray_server, jid, timeout=60)["job"]
    assert j["state"] == "cancelled", j
    assert requests.get(f"{ray_server.ray_address}/api/jobs/keel-{jid}-1", timeout=30).json()["status"] == "STOPPED"


def test_a_server_without_ray_refuses_ray_jobs(server):
    r = submit(server, {"job": "nowhere", "tenant": "t", "executor": "ray", "command": "true"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "executor", r.text


# --------------------------------------------------------------------------
# built-in trainers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def churn_parquet(tmp_path_factory):
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=4000, n_features=8, n_informative=5, random_state=0)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    df["churned"] = y.astype(np.int64)
    path = tmp_path_factory.mktemp("churn") / "train.parquet"
    df.to_parquet(path)
    return path, X.astype(np.float32), y


def _artifact(server, run_id: str, path: str) -> bytes:
    local = MlflowClient(server.uri).download_artifacts(run_id, path, tempfile.mkdtemp())
    return Path(local).read_bytes()


def test_a_builtin_gbdt_logs_every_iteration_and_registers_an_onnx_model(server, churn_parquet):
    import numpy as np
    import onnxruntime as ort
    from sklearn.metrics import roc_auc_score

    path, X, y = churn_parquet
    spec = {"job": "churn-gbdt", "tenant": "growth", "trainer": "builtin:gbdt",
            "data": {"training_set": str(path), "label": "churned"},
            "params": {"max_depth": 4, "learning_rate": 0.1, "n_estimators": 40, "seed": 7},
            "resources": {"cpus": 1, "memory": "2GiB"}, "register": "churn", "executor": "local"}
    r = submit(server, spec)
    assert r.status_code == 201, r.text
    j = wait(server, r.json()["job"]["id"], timeout=120)["job"]
    assert j["state"] == "succeeded", j
    client = MlflowClient(server.uri)
    history = client.get_metric_history(j["run_id"], "valid_auc")
    assert [m.step for m in history] == list(range(1, 41))
    assert history[-1].value > 0.9
    run = client.get_run(j["run_id"])
    assert run.data.tags["keel.seed"] == "7" and run.data.tags["keel.dataset.digest"]
    onnx_bytes = _artifact(server, j["run_id"], "model/model.onnx")
    sess = ort.InferenceSession(onnx_bytes)
    label, proba = sess.run(None, {"X": X})
    assert roc_auc_score(y, proba[:, 1]) > 0.9
    assert np.array_equal(label, (proba[:, 1] > 0.5).astype(np.int64))
    versions = client.search_model_versions("name='churn'")
    assert [v.run_id for v in versions] == [j["run_id"]]


def test_a_killed_gbdt_resumes_from_its_checkpoint_to_the_same_model(server, churn_parquet):
    path, _, _ = churn_parquet
    spec = {"tenant": "growth", "trainer": "builtin:gbdt", "checkpoint_every": 10, "retries": 1,
            "data": {"training_set": str(path), "label": "churned"},
            "params": {"max_depth": 5, "learning_rate": 0.05, "n_estimators": 400, "seed": 11,
                       "subsample": 0.8, "colsample": 0.8}}
    whole = submit(server, {**spec, "job": "gbdt-whole"}).json()["job"]["id"]
    killed = submit(server, {**spec, "job": "gbdt-killed"}).json()["job"]["id"]
    checkpoint = server.data_dir / "jobs" / str(killed) / "checkpoints" / "checkpoint.json"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert checkpoint.exists(), job(server, killed)
    found = subprocess.run(["pgrep", "-f", f"train builtin .*jobs/{killed}/attempt-1/"],
                           capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    assert pids, "the trainer's process"
    for p in pids:
        os.kill(p, 9)
    a = wait(server, whole, timeout=180)["job"]
    b = wait(server, killed, timeout=180)["job"]
    assert a["state"] == b["state"] == "succeeded", (a, b)
    assert b["attempts"] == 2 and a["attempts"] == 1
    stderr = requests.get(f"{server.uri}/v1/train/jobs/{killed}/logs",
                          params={"stream": "stderr", "attempt": 2}, timeout=30).text
    assert "resuming from the checkpoint at iteration" in stderr
    assert _artifact(server, a["run_id"], "model/model.json") == _artifact(server, b["run_id"], "model/model.json")
    assert _artifact(server, a["run_id"], "model/model.onnx") == _artifact(server, b["run_id"], "model/model.onnx")


def test_a_training_run_is_reproduced_from_its_id(server, churn_parquet):
    path, _, _ = churn_parquet
    r = submit(server, {"job": "logreg", "tenant": "growth", "trainer": "builtin:logistic_regression",
                        "data": {"training_set": str(path), "label": "churned"},
                        "params": {"l2": 0.5}})
    j = wait(server, r.json()["job"]["id"], timeout=120)["job"]
    assert j["state"] == "succeeded", j
    out = subprocess.run([str(keel_bin()), "train", "reproduce", j["run_id"], "--json",
                          "--server", server.uri], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["reproduced"] and result["same_data"] and result["new_run_id"] != j["run_id"]
    assert {m["key"] for m in result["metrics"]} >= {"train_loss", "valid_loss", "valid_auc"}
    bad = submit(server, {"job": "typo", "tenant": "growth", "trainer": "builtin:gbdt",
                          "data": {"training_set": str(path), "label": "churned"},
                          "params": {"n_estimator": 5}})
    assert bad.status_code == 400, bad.text
    problem = bad.json()["error"]["problems"][0]
    assert problem["path"] == "params" and "unknown field `n_estimator`" in problem["message"]


RETRAIN = """\
lifecycle: {name}
initial: training
states:
  training:
    action: {{train: {{job: {name}-job, tenant: growth, command: "{command}"}}}}
    on: {{action_succeeded: waiting, action_failed: failed}}
  waiting:
    on: {{job_succeeded: trained, job_failed: failed}}
  trained: {{terminal: true}}
  failed: {{terminal: true}}
"""


def test_a_lifecycle_state_trains_and_moves_on_the_jobs_end(server):
    for name, command in (("retrain-ok", "echo trained"), ("retrain-bad", "exit 4")):
        r = requests.post(f"{server.uri}/v1/lifecycles", data=RETRAIN.format(name=name, command=command), timeout=30)
        assert r.status_code in (200, 201), r.text
        r = requests.post(f"{server.uri}/v1/lifecycles/{name}/instances", json={"key": "m1"}, timeout=30)
        assert r.status_code in (200, 201), r.text
    states = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {n: requests.get(f"{server.uri}/v1/lifecycles/{n}/instances/m1", timeout=10).json()["state"]
                  for n in ("retrain-ok", "retrain-bad")}
        if states == {"retrain-ok": "trained", "retrain-bad": "failed"}:
            break
        time.sleep(0.2)
    assert states == {"retrain-ok": "trained", "retrain-bad": "failed"}
    history = requests.get(f"{server.uri}/v1/lifecycles/retrain-ok/history/m1", timeout=10).json()
    text = json.dumps(history)
    assert "job_succeeded" in text and "retrain-ok-job" in text, history
    jobs = requests.get(f"{server.uri}/v1/train/jobs", params={"tenant": "growth"}, timeout=30).json()["jobs"]
    bad = [j for j in jobs if j["name"] == "retrain-bad-job"][0]
    assert bad["state"] == "failed" and bad["spec"]["notify"] == {"lifecycle": "retrain-bad", "key": "m1"}


def test_without_a_server_a_job_runs_in_the_command_on_the_data_directory(tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text("job: here\ntenant: solo\ncommand: \"echo local run\"\n")
    data = tmp_path / "data"
    run = subprocess.run([str(keel_bin()), "--data-dir", str(data), "jobs", "submit", str(spec)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "running the job here" in run.stderr and "succeeded" in run.stdout
    listed = subprocess.run([str(keel_bin()), "--data-dir", str(data), "jobs", "list", "--tenant", "solo", "--json"],
                            capture_output=True, text=True, timeout=60)
    jobs = json.loads(listed.stdout)["jobs"]
    assert [(j["name"], j["state"]) for j in jobs] == [("here", "succeeded")]
    logs = subprocess.run([str(keel_bin()), "--data-dir", str(data), "jobs", "logs", str(jobs[0]["id"])],
                          capture_output=True, text=True, timeout=60)
    assert logs.stdout == "local run\n"
    bill = subprocess.run([str(keel_bin()), "--data-dir", str(data), "billing", "report", "--tenant", "solo", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert json.loads(bill.stdout)["attempts"] == 1


def test_a_spent_monthly_budget_holds_the_tenants_jobs(server):
    r = requests.put(f"{server.uri}/v1/train/tenants/thrifty", json={"monthly_budget": 1e-9}, timeout=30)
    assert r.status_code == 200
    first = submit(server, {"job": "first", "tenant": "thrifty", "command": "sleep 0.2"}).json()["job"]["id"]
    assert wait(server, first)["job"]["state"] == "succeeded"
    second = submit(server, {"job": "second", "tenant": "thrifty", "command": "true"}).json()["job"]["id"]
    time.sleep(1.5)
    assert job(server, second)["job"]["state"] == "queued"
    shares = {t["tenant"]: t for t in requests.get(f"{server.uri}/v1/train/scheduler", timeout=30).json()["tenants"]}
    assert shares["thrifty"]["over_budget"] and shares["thrifty"]["spent_this_month"] > 1e-9
    # Raising the budget lets it run.
    requests.put(f"{server.uri}/v1/train/tenants/thrifty", json={"monthly_budget": 100}, timeout=30)
    assert wait(server, second)["job"]["state"] == "succeeded"


FEATURES = """\
entities:
  - name: user
    join_keys: [user_id]
sources:
  - name: events
    path: data/events.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: activity
    entities: [user]
    ttl: 30d
    source: events
    features:
      - {name: spend, dtype: float64}
      - {name: visits, dtype: float64}
feature_services:
  - name: churn_features
    features: [activity]
"""


def test_a_builtin_trainer_learns_from_a_feature_services_training_set(server, tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 600
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    users = np.arange(n)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    spend = rng.normal(100, 30, n)
    visits = rng.poisson(5, n).astype(float)
    pd.DataFrame({"user_id": users, "event_timestamp": [t0] * n, "spend": spend,
                  "visits": visits}).to_parquet(repo / "data" / "events.parquet", index=False)
    (repo / "features.yaml").write_text(FEATURES)
    applied = subprocess.run([str(keel_bin()), "features", "apply", str(repo), "--yes", "--server", server.uri],
                             capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    churned = (spend + rng.normal(0, 10, n) > 110).astype(np.int64)
    entities = tmp_path / "labels.parquet"
    pd.DataFrame({"user_id": users, "event_timestamp": [t0 + pd.Timedelta(days=1)] * n,
                  "churned": churned}).to_parquet(entities, index=False)
    spec = tmp_path / "job.yaml"
    spec.write_text("job: fs-gbdt\ntenant: growth\ntrainer: builtin:gbdt\n"
                    "data: {feature_service: churn_features, entities: labels.parquet, label: churned}\n"
                    "params: {n_estimators: 30, max_depth: 3, seed: 1}\n")
    out = subprocess.run([str(keel_bin()), "jobs", "submit", str(spec), "--wait", "--json", "--server", server.uri],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    j = json.loads(out.stdout)["job"]
    run = MlflowClient(server.uri).get_run(j["run_id"])
    tags = run.data.tags
    assert tags["keel.feature_service"] == "churn_features" and tags["keel.feature_repo.digest"]
    assert tags["keel.entities.digest"] and "activity" in tags["keel.feature_views"]
    assert run.data.metrics["valid_auc"] > 0.8
    model = json.loads(_artifact(server, j["run_id"], "model/model.json"))
    assert json.dumps(model).count("user_id") == 0, "join keys are not features"


def test_a_jobs_code_is_copied_when_it_is_submitted(server, tmp_path):
    code = tmp_path / "src"
    code.mkdir()
    (code / "train.py").write_text("print('version 1')\n")
    spec = tmp_path / "job.yaml"
    spec.write_text(f"job: with-code\ntenant: growth\ncode: src\ncommand: \"{PY} train.py\"\n")
    out = subprocess.run([str(keel_bin()), "jobs", "submit", str(spec), "--json", "--server", server.uri],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    jid = json.loads(out.stdout)["job"]["id"]
    (code / "train.py").write_text("print('version 2')\n")  # after submission: not seen
    assert wait(server, jid)["job"]["state"] == "succeeded"
    assert requests.get(f"{server.uri}/v1/train/jobs/{jid}/logs", timeout=30).text == "version 1\n"
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "data.bin", "wb") as f:
        f.truncate(300 << 20)
    r = submit(server, {"job": "too-big", "tenant": "growth", "code": str(big), "command": "true"})
    assert r.status_code == 400 and "code" in r.json()["error"]["message"], r.text
    listed = requests.get(f"{server.uri}/v1/train/jobs", params={"tenant": "growth"}, timeout=30).json()["jobs"]
    assert "too-big" not in [j["name"] for j in listed], "nothing half-written"


def test_a_builtin_trainer_reads_a_catalog_dataset_version(server, churn_parquet):
    path, _, _ = churn_parquet
    reg = subprocess.run([str(keel_bin()), "data", "register", "churn_train", str(path), "--server", server.uri],
                         capture_output=True, text=True, timeout=120)
    assert reg.returncode == 0, reg.stderr
    for ref in ("churn_train", "churn_train@v1"):
        r = submit(server, {"job": "from-catalog", "tenant": "growth", "trainer": "builtin:linear_regression",
                            "data": {"dataset": ref, "label": "churned"}, "params": {"l2": 1.0}})
        assert r.status_code == 201, r.text
        j = wait(server, r.json()["job"]["id"], timeout=120)["job"]
        assert j["state"] == "succeeded", j.get("stderr")
        tags = MlflowClient(server.uri).get_run(j["run_id"]).data.tags
        assert tags["keel.dataset"] == "churn_train@v1"
        shown = subprocess.run([str(keel_bin()), "data", "show", "churn_train", "--json", "--server", server.uri],
                               capture_output=True, text=True, timeout=60)
        assert tags["keel.dataset.digest"] in shown.stdout, "the run records the version's content digest"
    r = submit(server, {"job": "no-such-version", "tenant": "growth", "trainer": "builtin:linear_regression",
                        "data": {"dataset": "churn_train@v9", "label": "churned"}})
    j = wait(server, r.json()["job"]["id"], timeout=60)["job"]
    assert j["state"] == "failed" and "no version v9" in j["stderr"], j
