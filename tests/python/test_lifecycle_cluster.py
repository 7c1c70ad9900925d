"""Two `keel server` nodes on one PostgreSQL share the lifecycle partitions.
One is killed with SIGKILL mid-stream; the other takes its partitions over.
Every acknowledged event is applied, and none twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import ServerProcess, _run_psql, _with_database

KEYS = 24
EVENTS_PER_KEY = 80
LEASE = "2s"

COUNTER = """
lifecycle: counter
initial: counting
states:
  counting:
    on:
      tick: {target: counting, assign: {n: "context.n + 1"}}
"""


class Node(ServerProcess):
    def __init__(self, workdir: Path, database_url: str, name: str):
        super().__init__("postgres", workdir)
        self.database_url = database_url
        self.name = name

    def prepare(self) -> None:  # the database is shared and made by the test
        pass

    def start(self) -> None:
        os.environ["KEEL_NODE_ID"] = self.name
        os.environ["KEEL_LIFECYCLE_LEASE"] = LEASE
        try:
            super().start()
        finally:
            os.environ.pop("KEEL_NODE_ID", None)
            os.environ.pop("KEEL_LIFECYCLE_LEASE", None)


@pytest.fixture
def cluster():
    admin = os.environ.get("KEEL_TEST_POSTGRES_URL")
    if not admin:
        if os.environ.get("CI") == "true":
            pytest.fail("KEEL_TEST_POSTGRES_URL is required in CI for the cluster test")
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set")
    dbname = "keel_cluster_" + uuid.uuid4().hex[:12]
    _run_psql(admin, f'CREATE DATABASE "{dbname}"')
    url = _with_database(admin, dbname)
    workdir = Path(tempfile.mkdtemp(prefix="keel-cluster-"))
    nodes = [Node(workdir / n, url, n) for n in ("node-a", "node-b")]
    try:
        for n in nodes:
            n.start()
        yield nodes
    finally:
        for n in nodes:
            n.stop()
        _run_psql(admin, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


def owned(node: Node) -> list[int]:
    r = requests.get(node.uri + "/v1/lifecycle-engine/stats", timeout=5)
    r.raise_for_status()
    return r.json()["owned_partitions"]


def wait_for(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_node_s_partitions_are_taken_over_exactly_once(cluster):
    a, b = cluster
    # The two nodes split the partitions between them.
    wait_for(lambda: len(owned(a)) > 0 and len(owned(b)) > 0 and len(owned(a)) + len(owned(b)) == 16,
             what="both nodes to own partitions")
    r = requests.post(a.uri + "/v1/lifecycles", data=COUNTER.encode(), timeout=30)
    assert r.status_code == 201, r.text
    keys = [f"customer-{i:03d}" for i in range(KEYS)]
    for i, k in enumerate(keys):
        node = (a, b)[i % 2]
        r = requests.post(node.uri + "/v1/lifecycles/counter/instances", json={"key": k, "data": {"n": 0}}, timeout=30)
        assert r.status_code == 201, r.text

    acked: dict[str, int] = {k: 0 for k in keys}
    failures_before_ack = [0]
    killed = threading.Event()
    # Set by the sender whose acknowledgement makes a third of all events:
    # the kill follows at once, with the stream certainly still running.
    a_third_acked = threading.Event()
    errors: list[str] = []

    def sender(my_keys: list[str], first: int):
        session = requests.Session()
        turn = first
        for seq in range(EVENTS_PER_KEY):
            for k in my_keys:
                body = {"event": "tick", "lifecycle": "counter", "key": k, "idempotency_key": f"{k}-{seq}"}
                deadline = time.monotonic() + 90
                while True:
                    node = (a, b)[turn % 2]
                    if killed.is_set() and node is a:
                        turn += 1
                        continue
                    try:
                        r = session.post(node.uri + "/v1/events", json=body, timeout=40)
                        if r.status_code == 200 and (r.json()["applied"] == 1 or r.json()["duplicates"] == 1):
                            acked[k] += 1
                            if sum(acked.values()) >= KEYS * EVENTS_PER_KEY // 3:
                                a_third_acked.set()
                            break
                        failures_before_ack[0] += 1
                        if r.status_code < 500:
                            errors.append(f"{k} {seq}: {r.status_code} {r.text}")
                            return
                    except requests.RequestException:
                        failures_before_ack[0] += 1
                    turn += 1
                    if time.monotonic() > deadline:
                        errors.append(f"{k} {seq}: never acknowledged")
                        return
                turn += 1

    groups = [keys[i::4] for i in range(4)]
    threads = [threading.Thread(target=sender, args=(g, i), daemon=True) for i, g in enumerate(groups)]
    for t in threads:
        t.start()
    # Kill node A mid-stream: once a third of the events are acknowledged.
    assert a_third_acked.wait(120), "timed out waiting for a third of the events to be acknowledged"
    a.kill9()
    acked_at_kill = sum(acked.values())
    assert acked_at_kill < KEYS * EVENTS_PER_KEY, "the stream ended before the kill"
    # The senders alternate between the nodes: until one of them has met the
    # dead node (a request cut off or refused, then retried on B), they are
    # not told of the kill.
    wait_for(lambda: failures_before_ack[0] > 0, timeout=60,
             what="a sender to meet the killed node")
    killed.set()
    for t in threads:
        t.join(timeout=180)
    assert not errors, errors[:5]
    # The kill interrupted requests in flight: they were retried elsewhere.
    assert failures_before_ack[0] > 0
    assert all(n == EVENTS_PER_KEY for n in acked.values()), acked
    # The survivor took every partition over.
    wait_for(lambda: len(owned(b)) == 16, what="node-b to own all partitions")
    for k in keys:
        inst = requests.get(f"{b.uri}/v1/lifecycles/counter/instances/{k}", timeout=10).json()
        # Every acknowledged event applied, none twice.
        assert inst["context"]["n"] == EVENTS_PER_KEY, (k, inst)
        hist = requests.get(f"{b.uri}/v1/lifecycles/counter/history/{k}", params={"limit": 0}, timeout=10).json()["history"]
        assert len(hist) == EVENTS_PER_KEY + 1, (k, len(hist))
