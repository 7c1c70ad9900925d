"""Durability: every write the server acknowledged survives a kill -9.

Writers log metrics, params and batches in a loop and record every write the
server answered 200 to.  The server is killed with SIGKILL at a random moment
mid-stream, restarted on the same data dir (and port), and every acknowledged
write must be read back.  Two kill/restart cycles are run.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

import pytest
import requests
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.keel_only

WRITERS_PER_ROUND = 2
MAX_WRITES = 50_000  # per writer; a bound, the kill comes much earlier
MAX_SECONDS = 30.0


class Writer(threading.Thread):
    def __init__(self, api: str, run_id: str, first_step: int, tag: str):
        super().__init__(daemon=True)
        self.api = api
        self.run_id = run_id
        self.step = first_step
        self.tag = tag
        self.acked_metrics: list[tuple[str, int, float]] = []  # (key, step, value)
        self.acked_params: dict[str, str] = {}
        self.bad_status: list[str] = []
        self.stop_reason = ""

    def _post(self, session, path, body):
        return session.post(self.api + path, json=body, timeout=15)

    def run(self):
        session = requests.Session()
        deadline = time.monotonic() + MAX_SECONDS
        for i in range(MAX_WRITES):
            if time.monotonic() > deadline:
                self.stop_reason = "deadline"
                return
            step = self.step
            ts = 1_700_000_000_000 + step
            kind = i % 10
            try:
                if kind == 4:
                    key, value = f"{self.tag}_p{step}", f"v{step}"
                    r = self._post(session, "/runs/log-parameter",
                                   {"run_id": self.run_id, "key": key, "value": value})
                    if r.status_code == 200:
                        self.acked_params[key] = value
                    self.step += 1
                elif kind == 9:
                    metrics = [
                        {"key": f"{self.tag}_batched", "value": float(step + j),
                         "timestamp": ts, "step": step + j}
                        for j in range(5)
                    ]
                    key, value = f"{self.tag}_bp{step}", f"b{step}"
                    r = self._post(session, "/runs/log-batch",
                                   {"run_id": self.run_id, "metrics": metrics,
                                    "params": [{"key": key, "value": value}]})
                    if r.status_code == 200:
                        self.acked_metrics += [
                            (f"{self.tag}_batched", step + j, float(step + j)) for j in range(5)
                        ]
                        self.acked_params[key] = value
                    self.step += 5
                else:
                    value = step * 0.5
                    r = self._post(session, "/runs/log-metric",
                                   {"run_id": self.run_id, "key": f"{self.tag}_m",
                                    "value": value, "timestamp": ts, "step": step})
                    if r.status_code == 200:
                        self.acked_metrics.append((f"{self.tag}_m", step, value))
                    self.step += 1
            except requests.RequestException as exc:
                self.stop_reason = f"connection lost: {type(exc).__name__}"
                return
            if r.status_code != 200:
                self.bad_status.append(f"{r.status_code}: {r.text[:200]}")
                return
        self.stop_reason = "max writes"

    @property
    def acked(self) -> int:
        return len(self.acked_metrics) + len(self.acked_params)


def _run_round(server, api, run_ids, first_step, tag, rng):
    writers = [Writer(api, rid, first_step, f"{tag}w{i}") for i, rid in enumerate(run_ids)]
    for w in writers:
        w.start()
    # wait until some writes are acknowledged, then kill at a random moment
    deadline = time.monotonic() + 20
    while sum(w.acked for w in writers) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(w.acked for w in writers) >= 40, "writers made no progress before the kill"
    time.sleep(rng.uniform(0.0, 1.5))
    server.kill9()
    for w in writers:
        w.join(timeout=60)
        assert not w.is_alive(), "writer did not stop after the server died"
        assert not w.bad_status, f"server answered a write with an error: {w.bad_status}"
        assert w.stop_reason.startswith("connection lost"), w.stop_reason
    server.restart()
    return writers


def _verify(client, writers):
    for w in writers:
        run = client.get_run(w.run_id)
        params = run.data.params
        missing = {k: v for k, v in w.acked_params.items() if params.get(k) != v}
        assert not missing, f"acknowledged params lost after kill -9: {sorted(missing)[:10]}"
        by_key: dict[str, set] = {}
        for key, step, value in w.acked_metrics:
            by_key.setdefault(key, set()).add((step, value))
        for key, expected in by_key.items():
            got = {(m.step, m.value) for m in client.get_metric_history(w.run_id, key)}
            lost = expected - got
            assert not lost, (
                f"{len(lost)} acknowledged {key!r} values lost after kill -9, "
                f"e.g. {sorted(lost)[:5]}"
            )


def test_acknowledged_writes_survive_kill9(server_proc, tracking_uri):
    seed = int(os.environ.get("KEEL_TEST_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed: {seed} (set KEEL_TEST_CRASH_SEED to replay)")
    rng = random.Random(seed)
    api = tracking_uri + "/api/2.0/mlflow"
    client = MlflowClient(tracking_uri=tracking_uri)

    exp_name = f"crash-{uuid.uuid4().hex[:12]}"
    exp_id = client.create_experiment(exp_name, tags={"purpose": "crash"})
    run_ids = [client.create_run(exp_id, run_name=f"crash-{i}").info.run_id
               for i in range(WRITERS_PER_ROUND)]

    round1 = _run_round(server_proc, api, run_ids, 0, "r1", rng)
    _verify(client, round1)
    assert client.get_experiment(exp_id).name == exp_name
    assert client.get_experiment(exp_id).tags == {"purpose": "crash"}

    # Second cycle: keep writing into the same runs (later steps) and a new run.
    new_run = client.create_run(exp_id, run_name="crash-new").info.run_id
    first = max(w.step for w in round1) + 100
    round2 = _run_round(server_proc, api, run_ids[:1] + [new_run], first, "r2", rng)
    _verify(client, round1 + round2)

    names = {r.info.run_name for r in client.search_runs([exp_id])}
    assert names == {f"crash-{i}" for i in range(WRITERS_PER_ROUND)} | {"crash-new"}

    # The restarted server is fully writable.
    client.log_metric(new_run, "after_restart", 1.0)
    assert client.get_run(new_run).data.metrics["after_restart"] == 1.0
    total = sum(w.acked for w in round1 + round2)
    print(f"verified {total} acknowledged writes across 2 kill -9 cycles")
