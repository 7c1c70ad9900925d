"""The lifecycle engine through the real `keel server`: definitions, instances,
events, timers, actions, history, graphs, bad input, and kill -9 recovery.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.keel_only

CONTRACT = """\
lifecycle: {name}
mode: durable
initial: waiting_for_data
states:
  waiting_for_data:
    on: {{data_arrived: training}}
  training:
    action: {{command: "{train}"}}
    retry: {{max_attempts: 3, backoff: 10ms}}
    on: {{action_succeeded: testing, action_failed: failed}}
  testing:
    on:
      suite_passed: {{target: staging, guard: "event.auc > 0.8"}}
      suite_failed: rejected
  staging:
    timeout: {{after: 7d, event: canary_expired}}
    on: {{canary_won: production, canary_lost: rejected, canary_expired: rejected}}
  production:
    schedule: {{cron: "0 3 * * 1", event: retrain_due}}
    on: {{drift_detected: training, retrain_due: training}}
  rejected: {{terminal: true}}
  failed: {{terminal: true}}
"""


@pytest.fixture
def v1(tracking_uri):
    return tracking_uri + "/v1"


def apply(v1, text):
    return requests.post(v1 + "/lifecycles", data=text.encode(), timeout=30)


def wait_state(v1, name, key, state, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = requests.get(f"{v1}/lifecycles/{name}/instances/{key}", timeout=10)
        assert r.status_code == 200, r.text
        last = r.json()
        if last["state"] == state:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{name}/{key} did not reach {state}; last: {last}")


def send(v1, event, **kw):
    return requests.post(v1 + "/events", json={"event": event, **kw}, timeout=30)


def test_contract_definition_end_to_end(v1, unique):
    name = f"churn-{unique}"
    r = apply(v1, CONTRACT.format(name=name, train="echo '{\\\"auc\\\": 0.93}'"))
    assert r.status_code == 201, r.text
    assert r.json() == {"lifecycle": name, "version": 1, "changed": True}
    # Applying the same text again is a no-op.
    again = apply(v1, CONTRACT.format(name=name, train="echo '{\\\"auc\\\": 0.93}'"))
    assert again.status_code == 200 and again.json()["changed"] is False

    r = requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": "cust-1"}, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["instance"]["state"] == "waiting_for_data"
    # Start is idempotent.
    r = requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": "cust-1"}, timeout=10)
    assert r.status_code == 200 and r.json()["created"] is False

    r = send(v1, "data_arrived", lifecycle=name, key="cust-1")
    assert r.status_code == 200, r.text
    assert r.json()["moved"] == [{"lifecycle": name, "key": "cust-1", "from": "waiting_for_data", "to": "training"}]
    # The command action runs and succeeds: testing.
    inst = wait_state(v1, name, "cust-1", "testing")
    assert inst["version"] == 1

    # A false guard is rejected with 409 and changes nothing.
    r = send(v1, "suite_passed", lifecycle=name, key="cust-1", data={"auc": 0.5})
    assert r.status_code == 409, r.text
    assert "event.auc > 0.8" in r.json()["error"]["message"]
    assert wait_state(v1, name, "cust-1", "testing")["seq"] == inst["seq"]

    r = send(v1, "suite_passed", lifecycle=name, key="cust-1", data={"auc": 0.91})
    assert r.status_code == 200, r.text
    inst = wait_state(v1, name, "cust-1", "staging")
    assert [t["kind"] for t in inst["timers"]] == ["timeout"]
    assert inst["timers"][0]["at"] - inst["entered_at"] == 7 * 24 * 3600 * 1000

    r = send(v1, "canary_won", lifecycle=name, key="cust-1")
    inst = wait_state(v1, name, "cust-1", "production")
    assert [t["kind"] for t in inst["timers"]] == ["schedule"]
    # The next Monday 03:00 UTC.
    at = inst["timers"][0]["at"]
    assert time.gmtime(at / 1000).tm_wday == 0 and time.gmtime(at / 1000).tm_hour == 3

    # Drift sends it back to training for every production instance.
    r = send(v1, "drift_detected", lifecycle=name, state="production")
    assert r.status_code == 200 and r.json()["applied"] == 1

    wait_state(v1, name, "cust-1", "testing")
    hist = requests.get(f"{v1}/lifecycles/{name}/history/cust-1", timeout=10).json()["history"]
    transitions = [(h["from"], h["to"]) for h in reversed(hist)]
    assert transitions[0] == ("", "waiting_for_data")
    assert ("testing", "staging") in transitions
    assert ("production", "training") in transitions
    assert all(h["time"] > 0 for h in hist)

    stats = requests.get(f"{v1}/lifecycles/{name}/stats", timeout=10).json()
    assert stats["instances"] == 1
    metrics = requests.get(v1.rsplit("/v1", 1)[0] + "/metrics", timeout=10).text
    assert "keel_lifecycle_" in metrics
    assert {s["state"]: s["count"] for s in stats["states"]}["testing"] == 1


def test_failing_action_retries_then_fails(v1, unique):
    name = f"retry-{unique}"
    assert apply(v1, CONTRACT.format(name=name, train="echo attempt $KEEL_ATTEMPT >&2; exit 3")).status_code == 201
    requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": "k"}, timeout=10)
    send(v1, "data_arrived", lifecycle=name, key="k")
    inst = wait_state(v1, name, "k", "failed")
    assert inst["terminal"] is True
    hist = requests.get(f"{v1}/lifecycles/{name}/history/k", timeout=10).json()["history"]
    actions = [h for h in reversed(hist) if h["kind"] == "action"]
    assert len(actions) == 3, hist
    assert "attempt 1 of 3 failed" in actions[0]["note"]
    assert actions[-1]["event"] == "action_failed"
    assert actions[-1]["data"]["output"]["exit_code"] == 3
    assert "attempt 3" in actions[-1]["data"]["output"]["stderr"]


def test_timeout_fires_and_survives_restart(v1, unique, server_proc):
    name = f"timer-{unique}"
    text = f"""
lifecycle: {name}
initial: waiting
states:
  waiting:
    timeout: {{after: 1500ms, event: expired}}
    on: {{expired: expired, done: finished}}
  expired: {{terminal: true}}
  finished: {{terminal: true}}
"""
    assert apply(v1, text).status_code == 201
    for k in ("a", "b"):
        assert requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": k}, timeout=10).status_code == 201
    # A timer armed before a crash fires after the restart.
    server_proc.kill9()
    time.sleep(2.0)
    server_proc.start()
    wait_state(v1, name, "a", "expired", timeout=10)
    wait_state(v1, name, "b", "expired", timeout=10)
    hist = requests.get(f"{v1}/lifecycles/{name}/history/a", timeout=10).json()["history"]
    assert hist[0]["kind"] == "timeout" and hist[0]["event"] == ""


def test_parallel_map_and_emit(v1, unique):
    child = f"segment-{unique}"
    parent = f"fanout-{unique}"
    watcher = f"watcher-{unique}"
    assert apply(v1, f"""
lifecycle: {watcher}
initial: watching
states:
  watching:
    on: {{fanout_done: notified}}
  notified: {{terminal: true}}
""").status_code == 201
    assert requests.post(f"{v1}/lifecycles/{watcher}/instances", json={"key": "w"}, timeout=10).status_code == 201
    assert apply(v1, f"""
lifecycle: {child}
initial: scoring
states:
  scoring:
    on: {{scored: done}}
  done: {{terminal: true}}
""").status_code == 201
    r = apply(v1, f"""
lifecycle: {parent}
initial: prepare
states:
  prepare:
    on: {{go: both}}
  both:
    parallel:
      features:
        initial: building
        states:
          building: {{on: {{features_ready: ready}}}}
          ready: {{terminal: true}}
      labels:
        initial: joining
        states:
          joining: {{on: {{labels_ready: ready}}}}
          ready: {{terminal: true}}
    on: {{parallel_done: fan_out}}
  fan_out:
    map: {{items: "context.segments", lifecycle: {child}, key: "item"}}
    on: {{map_done: notify}}
  notify:
    action: {{emit: {{event: fanout_done, lifecycle: {watcher}, key: w}}}}
    on: {{action_succeeded: finished, action_failed: broken}}
  finished: {{terminal: true}}
  broken: {{terminal: true}}
""")
    assert r.status_code == 201, r.text
    r = requests.post(f"{v1}/lifecycles/{parent}/instances", json={"key": "p1", "data": {"segments": ["eu", "us"]}}, timeout=10)
    assert r.status_code == 201, r.text
    send(v1, "go", lifecycle=parent, key="p1")
    inst = wait_state(v1, parent, "p1", "both")
    assert inst["branches"] == ["both.features.building", "both.labels.joining"]
    send(v1, "features_ready", lifecycle=parent, key="p1")
    inst = wait_state(v1, parent, "p1", "both")
    assert inst["branches"] == ["both.features.ready", "both.labels.joining"]
    send(v1, "labels_ready", lifecycle=parent, key="p1")
    inst = wait_state(v1, parent, "p1", "fan_out")
    assert inst["pending_children"] == 2
    kids = requests.get(f"{v1}/lifecycles/{child}/instances", params={"prefix": "p1/"}, timeout=10).json()
    assert [i["key"] for i in kids["instances"]] == ["p1/eu", "p1/us"]
    assert kids["instances"][0]["parent"] == f"{parent}/p1"
    r = send(v1, "scored", lifecycle=child, prefix="p1/")
    assert r.json()["applied"] == 2
    # map_done → notify, whose emit moves the watcher, in the same commit.
    wait_state(v1, parent, "p1", "finished")
    wait_state(v1, watcher, "w", "notified")
    # Each history says what caused its entries.
    whist = requests.get(f"{v1}/lifecycles/{watcher}/history/w", timeout=10).json()["history"]
    assert whist[0]["note"] == f"emitted by {parent}/p1", whist[0]
    khist = requests.get(f"{v1}/lifecycles/{child}/history/p1/eu", timeout=10).json()["history"]
    assert khist[-1]["note"] == f"started by the map of {parent}/p1", khist
    hist = requests.get(f"{v1}/lifecycles/{parent}/history/p1", timeout=10).json()["history"]
    kinds = [h["kind"] for h in reversed(hist)]
    assert kinds.count("child") == 2


def test_bad_definitions_report_every_problem(v1, unique):
    text = f"""lifecycle: bad-{unique}
initial: nowhere
states:
  a:
    on: {{go: b, stop: missing}}
    retry: {{max_attempts: 0}}
  b:
    timeout: {{after: soon, event: late}}
"""
    r = apply(v1, text)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "INVALID_DEFINITION"
    problems = err["problems"]
    assert len(problems) >= 4, problems
    assert all(p["line"] >= 1 and p["column"] >= 1 for p in problems)
    lines = {p["line"] for p in problems}
    assert 2 in lines  # initial: nowhere
    # Nothing was written.
    assert requests.get(f"{v1}/lifecycles/bad-{unique}", timeout=10).status_code == 404

    r = apply(v1, "lifecycle: [unclosed")
    assert r.status_code == 400
    assert r.json()["error"]["problems"][0]["line"] in (1, 2)  # at the end of the text


def test_bad_events_and_requests(v1, unique):
    name = f"strict-{unique}"
    assert apply(v1, CONTRACT.format(name=name, train="true")).status_code == 201
    requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": "k"}, timeout=10)
    # Unknown event: 400 naming the events the lifecycle uses.
    r = send(v1, "no_such_event", lifecycle=name, key="k")
    assert r.status_code == 400 and r.json()["error"]["code"] == "UNKNOWN_EVENT", r.text
    # Known event, wrong state: 409.
    r = send(v1, "canary_won", lifecycle=name, key="k")
    assert r.status_code == 409, r.text
    assert "waiting_for_data" in r.json()["error"]["message"]
    # Missing fields, unknown instance, oversized payload.
    assert send(v1, "data_arrived", lifecycle=name).status_code == 400
    assert send(v1, "data_arrived", lifecycle=name, key="nobody").status_code == 404
    big = {"blob": "x" * 200_000}
    r = send(v1, "data_arrived", lifecycle=name, key="k", data=big)
    assert r.status_code == 413 and r.json()["error"]["field"] == "data"
    r = requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": ""}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "key"
    r = requests.post(f"{v1}/lifecycles/nope-{unique}/instances", json={"key": "k"}, timeout=10)
    assert r.status_code == 404
    r = requests.get(f"{v1}/lifecycles/{name}/instances", params={"state": "nope"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "state"
    # None of it moved the instance.
    inst = requests.get(f"{v1}/lifecycles/{name}/instances/k", timeout=10).json()
    assert inst["state"] == "waiting_for_data" and inst["seq"] == 1


def test_idempotency_keys_and_versions(v1, unique):
    name = f"idem-{unique}"
    text = f"""
lifecycle: {name}
initial: counting
states:
  counting:
    on:
      tick: {{target: counting, assign: {{n: "context.n + 1"}}}}
      stop: stopped
  stopped: {{terminal: true}}
"""
    assert apply(v1, text).status_code == 201
    requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": "k", "data": {"n": 0}}, timeout=10)
    for _ in range(3):
        r = send(v1, "tick", lifecycle=name, key="k", idempotency_key="once")
        assert r.status_code == 200
    inst = requests.get(f"{v1}/lifecycles/{name}/instances/k", timeout=10).json()
    assert inst["context"]["n"] == 1
    # A new version: running instances keep theirs, new ones get the new one.
    r = apply(v1, text.replace("stopped: {terminal: true}", "stopped: {terminal: true}\n  extra: {terminal: true}").replace("stop: stopped", "stop: stopped\n      skip: extra"))
    assert r.status_code == 201 and r.json()["version"] == 2, r.text
    requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": "k2", "data": {"n": 0}}, timeout=10)
    assert requests.get(f"{v1}/lifecycles/{name}/instances/k", timeout=10).json()["version"] == 1
    assert requests.get(f"{v1}/lifecycles/{name}/instances/k2", timeout=10).json()["version"] == 2
    assert send(v1, "skip", lifecycle=name, key="k").status_code == 400
    assert send(v1, "skip", lifecycle=name, key="k2").status_code == 200


def test_graph_json_and_svg(v1, unique):
    name = f"graph-{unique}"
    assert apply(v1, CONTRACT.format(name=name, train="true")).status_code == 201
    g = requests.get(f"{v1}/lifecycles/{name}/graph", timeout=10).json()
    assert {n["id"] for n in g["nodes"]} >= {"waiting_for_data", "training", "production"}
    kinds = {(e["from"], e["to"], e["kind"]) for e in g["edges"]}
    assert ("staging", "rejected", "timeout") in kinds
    assert ("production", "training", "schedule") in kinds
    r = requests.get(f"{v1}/lifecycles/{name}/graph.svg", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.text.lstrip().startswith("<svg") and "waiting_for_data" in r.text


def test_restart_loads_a_parent_before_its_map_child(v1, unique, server_proc):
    """A node loads stored definitions in whatever order the database returns
    them; a parent that maps over a child defined later must still load."""
    child = f"zz-child-{unique}"
    parent = f"aa-parent-{unique}"
    assert apply(v1, f"""
lifecycle: {child}
initial: scoring
states:
  scoring: {{on: {{scored: done}}}}
  done: {{terminal: true}}
""").status_code == 201
    assert apply(v1, f"""
lifecycle: {parent}
initial: fan_out
states:
  fan_out:
    map: {{items: "context.segments", lifecycle: {child}, key: "item"}}
    on: {{map_done: finished}}
  finished: {{terminal: true}}
""").status_code == 201
    server_proc.kill9()
    server_proc.start()
    r = requests.post(f"{v1}/lifecycles/{parent}/instances", json={"key": "p", "data": {"segments": ["eu"]}}, timeout=10)
    assert r.status_code == 201, r.text
    wait_state(v1, child, "p/eu", "scoring")
    send(v1, "scored", lifecycle=child, key="p/eu")
    wait_state(v1, parent, "p", "finished")


def test_acknowledged_events_survive_kill_9(v1, unique, server_proc):
    """Senders count every acknowledged tick; after kill -9 and restart each
    instance's counter is at least its acknowledged ticks and at most the ticks
    sent (an unacknowledged one may or may not have landed)."""
    name = f"crash-{unique}"
    text = f"""
lifecycle: {name}
initial: counting
states:
  counting:
    on:
      tick: {{target: counting, assign: {{n: "context.n + 1"}}}}
"""
    assert apply(v1, text).status_code == 201
    keys = [f"k{i}" for i in range(4)]
    for k in keys:
        assert requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": k, "data": {"n": 0}}, timeout=10).status_code == 201
    acked = {k: 0 for k in keys}
    sent = {k: 0 for k in keys}
    stop = threading.Event()

    def sender(k):
        s = requests.Session()
        while not stop.is_set():
            sent[k] += 1
            try:
                r = s.post(v1 + "/events", json={"event": "tick", "lifecycle": name, "key": k}, timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 200 and r.json()["applied"] == 1:
                acked[k] += 1

    threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in keys]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server_proc.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert sum(acked.values()) > 20, acked
    server_proc.start()
    for k in keys:
        n = requests.get(f"{v1}/lifecycles/{name}/instances/{k}", timeout=10).json()["context"]["n"]
        assert acked[k] <= n <= sent[k], (k, acked[k], n, sent[k])
        hist = requests.get(f"{v1}/lifecycles/{name}/history/{k}", params={"limit": 0}, timeout=10).json()["history"]
        assert len(hist) == n + 1  # the start and one record per applied tick


def test_event_batches_apply_each_event_on_its_own(v1, unique):
    name = f"batch-{unique}"
    text = f"""
lifecycle: {name}
initial: counting
states:
  counting:
    on:
      tick: {{target: counting, assign: {{n: "context.n + 1"}}}}
"""
    assert apply(v1, text).status_code == 201
    for k in ("a", "b"):
        requests.post(f"{v1}/lifecycles/{name}/instances", json={"key": k, "data": {"n": 0}}, timeout=10)
    events = [{"event": "tick", "lifecycle": name, "key": k} for k in ("a", "b", "a")]
    events.append({"event": "tick", "lifecycle": name, "key": "nobody"})
    events.append({"event": "tick"})
    events.append({"event": "boom", "lifecycle": name, "key": "a"})
    r = requests.post(v1 + "/events/batch", json={"events": events}, timeout=30)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [("ok" in x) for x in results] == [True, True, True, False, False, False]
    assert [x["error"]["status"] for x in results[3:]] == [404, 400, 400]
    assert requests.get(f"{v1}/lifecycles/{name}/instances/a", timeout=10).json()["context"]["n"] == 2
    assert requests.get(f"{v1}/lifecycles/{name}/instances/b", timeout=10).json()["context"]["n"] == 1
    r = requests.post(v1 + "/events/batch", json={"events": "nope"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["field"] == "events"
