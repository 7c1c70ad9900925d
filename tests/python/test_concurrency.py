"""Many clients logging at the same time: nothing may fail or get lost."""

from __future__ import annotations

import threading
import time
import traceback
import uuid

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

THREADS = 16
SINGLE_PARAMS = 5
SINGLE_METRIC_STEPS = 10
BATCHES = 3
BATCH_METRICS = 40  # steps per batch, for one metric key
BATCH_PARAMS = 5


def _worker(uri, exp_id, idx, barrier, results, errors):
    try:
        client = MlflowClient(tracking_uri=uri)  # one client per thread
        barrier.wait(timeout=60)
        run = client.create_run(exp_id, run_name=f"worker-{idx}", tags={"worker": str(idx)})
        rid = run.info.run_id
        ts = 1_700_000_000_000 + idx
        for p in range(SINGLE_PARAMS):
            client.log_param(rid, f"single_p{p}", f"w{idx}-p{p}")
        for s in range(SINGLE_METRIC_STEPS):
            client.log_metric(rid, "single", idx * 1000 + s, timestamp=ts + s, step=s)
        for b in range(BATCHES):
            metrics = [
                Metric("batched", float(idx * 10000 + b * BATCH_METRICS + i), ts, b * BATCH_METRICS + i)
                for i in range(BATCH_METRICS)
            ]
            metrics.append(Metric(f"per_batch_{b}", float(idx + b), ts, 0))
            params = [Param(f"b{b}_p{i}", f"w{idx}-b{b}-{i}") for i in range(BATCH_PARAMS)]
            tags = [RunTag(f"batch_tag_{b}", f"w{idx}-{b}")]
            client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        client.set_terminated(rid, status="FINISHED")
        results[idx] = rid
    except Exception:  # noqa: BLE001 - reported below
        errors.append((idx, traceback.format_exc()))
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001
            pass


def test_parallel_logging(tracking_uri):
    client = MlflowClient(tracking_uri=tracking_uri)
    exp_id = client.create_experiment(f"concurrency-{uuid.uuid4().hex[:12]}")
    barrier = threading.Barrier(THREADS)
    results: dict[int, str] = {}
    errors: list = []
    threads = [
        threading.Thread(
            target=_worker, args=(tracking_uri, exp_id, i, barrier, results, errors), daemon=True
        )
        for i in range(THREADS)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "worker threads hung"
    assert not errors, "requests failed:\n" + "\n".join(f"[{i}] {tb}" for i, tb in errors)
    assert sorted(results) == list(range(THREADS))
    assert len(set(results.values())) == THREADS
    elapsed = time.monotonic() - t0

    for idx, rid in results.items():
        run = client.get_run(rid)
        assert run.info.experiment_id == exp_id
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"worker-{idx}"
        expected_params = {f"single_p{p}": f"w{idx}-p{p}" for p in range(SINGLE_PARAMS)}
        for b in range(BATCHES):
            expected_params.update(
                {f"b{b}_p{i}": f"w{idx}-b{b}-{i}" for i in range(BATCH_PARAMS)}
            )
        assert run.data.params == expected_params
        tags = run.data.tags
        assert tags["worker"] == str(idx)
        for b in range(BATCHES):
            assert tags[f"batch_tag_{b}"] == f"w{idx}-{b}"
        m = run.data.metrics
        assert m["single"] == idx * 1000 + SINGLE_METRIC_STEPS - 1
        last = BATCHES * BATCH_METRICS - 1
        assert m["batched"] == float(idx * 10000 + last)
        for b in range(BATCHES):
            assert m[f"per_batch_{b}"] == float(idx + b)
        assert len(m) == 2 + BATCHES

        single = sorted((h.step, h.value) for h in client.get_metric_history(rid, "single"))
        assert single == [(s, float(idx * 1000 + s)) for s in range(SINGLE_METRIC_STEPS)]
        batched = sorted((h.step, h.value) for h in client.get_metric_history(rid, "batched"))
        assert batched == [
            (s, float(idx * 10000 + s)) for s in range(BATCHES * BATCH_METRICS)
        ]

    runs = client.search_runs([exp_id], max_results=100)
    assert {r.info.run_id for r in runs} == set(results.values())
    print(f"{THREADS} workers finished in {elapsed:.1f}s")
