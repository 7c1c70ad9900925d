"""Deployments as long processes, through a real ``keel server``.

A canary with guards waits for its required check, then advances step by
step and is promoted, and the lifecycle it names follows it to
``production``; another canary whose candidate fails too many requests is
rolled back and its lifecycle goes to ``rejected``; an A/B test names its
winner; people pause, resume, advance, promote and roll back by hand (HTTP
and CLI); the moves survive a restart; the plot is an SVG with the moves
marked; bad requests get 4xx errors naming the field.
"""

from __future__ import annotations

import json
import subprocess
import time

import numpy as np
import pytest
import requests

from online_crosscheck import KeelTarget, keel_bin, keel_server, run

S = requests.Session()

LIFECYCLE = """\
lifecycle: rollout
mode: durable
initial: canary
states:
  canary:
    on: {canary_advanced: canary, canary_promoted: production, rolled_back: rejected, winner_found: production}
  production: {terminal: true}
  rejected: {terminal: true}
"""


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> KeelTarget:
    return KeelTarget(tmp_path_factory.mktemp("rollouts") / "data")


@pytest.fixture(scope="module")
def server(target):
    srv = keel_server(target)
    r = S.post(f"{srv.url}/v1/lifecycles", data=LIFECYCLE.encode())
    assert r.status_code in (200, 201), r.text
    yield srv
    srv.stop()


def create(server, body: dict) -> dict:
    r = S.post(f"{server.url}/v1/deployments", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def describe(server, name: str) -> dict:
    r = S.get(f"{server.url}/v1/deployments/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def events(server, name: str) -> list[dict]:
    r = S.get(f"{server.url}/v1/deployments/{name}/events")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def traffic(server, name: str, n: int, reward, error=lambda variant, i: False, start: int = 0):
    """n decisions for distinct units, each answered with a reward or an error."""
    for i in range(start, start + n):
        r = S.post(f"{server.url}/v1/deployments/{name}/decide", json={"unit_id": f"u{i}"})
        assert r.status_code == 200, r.text
        d = r.json()
        body = {"decision_id": d["decision_id"]}
        if error(d["variant"], i):
            body["error"] = True
        else:
            body["reward"] = reward(d["variant"], i)
        r = S.post(f"{server.url}/v1/feedback", json=body)
        assert r.status_code == 200, r.text


def lifecycle_state(server, key: str, want: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = S.get(f"{server.url}/v1/lifecycles/rollout/instances/{key}")
        if r.status_code == 200:
            last = r.json()
            if last["state"] == want:
                return last
        time.sleep(0.05)
    raise AssertionError(f"lifecycle instance {key} never reached {want}: {last}")


def canary(name: str, guards: dict, steps=(20, 100), key: str | None = None) -> dict:
    link = {"name": "rollout"} if key is None else {"name": "rollout", "key": key}
    return {"name": name, "strategy": {"type": "canary", "steps": list(steps)},
            "variants": [{"name": "stable", "model": "models:/recs/1"},
                         {"name": "candidate", "model": "models:/recs/2"}],
            "guards": guards, "lifecycle": link}


def test_a_guarded_canary_is_promoted_and_its_lifecycle_follows(server, tmp_path):
    guards = {"min_samples": 30, "max_error_rate": 0.1, "max_reward_drop": 0.5,
              "required_checks": ["quality"]}
    create(server, canary("promo", guards))
    half = lambda v, i: float(i % 2 == 0)  # noqa: E731
    traffic(server, "promo", 300, half)
    d = describe(server, "promo")
    # The required check has not passed: the canary stays at 20%.
    assert d["canary"] == {"step": 0, "candidate_percent": 20.0}
    assert d["rollout"]["phase"] == "running" and events(server, "promo") == []
    share = d["variants"][1]["traffic_share"]
    assert 0.12 < share < 0.28, share
    # The check passes (from the CLI): the next outcomes advance the canary,
    # then promote it.
    out, _ = run([keel_bin(), "deploy", "check", "promo", "--suite", "quality",
                  "--variant", "candidate", "--passed", "--server", server.url])
    assert "promo: running" in out.stdout
    traffic(server, "promo", 200, half, start=300)
    d = describe(server, "promo")
    assert d["rollout"]["phase"] == "promoted", d["rollout"]
    assert d["canary"]["candidate_percent"] == 100.0
    moves = events(server, "promo")
    assert [e["event"] for e in moves] == ["canary_advanced", "canary_promoted"]
    assert moves[0]["step"] == 1 and moves[0]["by"] == "guard"
    assert moves[1]["variant"] == "candidate"
    # Promoted: every unit gets the candidate, with propensity 1.
    r = S.post(f"{server.url}/v1/deployments/promo/decide", json={"unit_id": "u1"}).json()
    assert (r["variant"], r["propensity"]) == ("candidate", 1.0)
    # The lifecycle instance (key = the deployment's name) heard both moves.
    inst = lifecycle_state(server, "promo", "production")
    assert inst["state"] == "production"
    history = S.get(f"{server.url}/v1/lifecycles/rollout/history/promo").json()
    assert "canary_advanced" in json.dumps(history) and "canary_promoted" in json.dumps(history), history
    # The CLI lists the moves and draws the plot.
    table = run([keel_bin(), "deploy", "events", "promo", "--server", server.url])[0].stdout
    assert "canary_advanced" in table and "canary_promoted" in table and "guard" in table
    svg_path = tmp_path / "promo.svg"
    run([keel_bin(), "deploy", "plot", "promo", "-o", svg_path, "--bins", "30", "--server", server.url])
    svg = svg_path.read_text()
    assert svg.startswith("<svg") and "canary_promoted" in svg and "candidate" in svg


def test_a_failing_candidate_is_rolled_back(server):
    guards = {"min_samples": 40, "max_error_rate": 0.1}
    create(server, canary("errs", guards, steps=(50, 100), key="errs-rollout"))
    # The candidate fails every third request: 33% > 10%.
    traffic(server, "errs", 400, lambda v, i: 1.0, error=lambda v, i: v == "candidate" and i % 3 == 0)
    d = describe(server, "errs")
    assert d["rollout"]["phase"] == "rolled_back", d["rollout"]
    assert d["canary"]["candidate_percent"] == 0.0
    cand = d["variants"][1]
    assert cand["errors"] > 0 and cand["error_rate"] > 0.1
    (move,) = events(server, "errs")
    assert move["event"] == "rolled_back" and "error rate" in move["reason"]
    assert move["variant"] == "candidate"
    lifecycle_state(server, "errs-rollout", "rejected")
    # Rolled back: everyone gets the stable variant.
    for i in range(20):
        r = S.post(f"{server.url}/v1/deployments/errs/decide", json={"unit_id": f"x{i}"}).json()
        assert (r["variant"], r["propensity"]) == ("stable", 1.0)


def test_metrics_and_failed_checks_roll_back(server):
    guards = {"metrics": {"latency_p99_ms": {"max": 50}}}
    create(server, canary("lat", guards, key="lat"))
    ok = S.post(f"{server.url}/v1/deployments/lat/metrics",
                json={"variant": "candidate", "name": "latency_p99_ms", "value": 31.5})
    assert ok.status_code == 200 and ok.json()["rollout"]["phase"] == "running", ok.text
    out, _ = run([keel_bin(), "deploy", "metric", "lat", "--variant", "candidate",
                  "--metric", "latency_p99_ms", "--value", "75", "--server", server.url])
    assert "rolled_back" in out.stdout and "latency_p99_ms" in out.stdout
    create(server, canary("fair", {}, key="fair"))
    r = S.post(f"{server.url}/v1/deployments/fair/checks",
               json={"suite": "fairness", "variant": "candidate", "passed": False,
                     "details": {"demographic_parity_difference": 0.31}})
    assert r.status_code == 200 and r.json()["rollout"]["phase"] == "rolled_back", r.text
    # A warning does not roll back.
    create(server, canary("warn", {}, key="warn"))
    r = S.post(f"{server.url}/v1/deployments/warn/checks",
               json={"suite": "cost", "variant": "candidate", "passed": False, "severity": "warning"})
    assert r.json()["rollout"]["phase"] == "running"


def test_an_ab_test_names_its_winner(server):
    create(server, {"name": "ab-win", "strategy": {"type": "ab"}, "variants": [{"name": "a"}, {"name": "b"}],
                    "guards": {"min_samples": 150, "winner_probability": 0.99}, "seed": 5})
    rng = np.random.default_rng(3)
    u = rng.random(2000)
    rates = {"a": 0.2, "b": 0.45}
    traffic(server, "ab-win", 600, lambda v, i: float(u[i] < rates[v]))
    moves = events(server, "ab-win")
    assert [e["event"] for e in moves] == ["winner_found"], moves
    assert moves[0]["variant"] == "b"
    d = describe(server, "ab-win")
    # "report" (the default) names the winner but keeps the split.
    assert d["rollout"]["winner"] == "b" and d["rollout"]["phase"] == "running"


def test_people_move_deployments_by_hand(server):
    create(server, canary("manual", {"auto_advance": False, "min_samples": 1}, steps=(10, 50, 100), key="manual"))
    url = f"{server.url}/v1/deployments/manual/rollout"
    traffic(server, "manual", 100, lambda v, i: 1.0)
    assert describe(server, "manual")["canary"]["step"] == 0  # no auto-advance
    r = S.post(url, json={"action": "advance", "reason": "dashboards look fine"})
    assert r.status_code == 200 and r.json()["canary"] == {"step": 1, "candidate_percent": 50.0}, r.text
    r = S.post(url, json={"action": "pause"})
    assert r.json()["rollout"]["phase"] == "paused"
    r = S.post(url, json={"action": "pause"})
    assert r.status_code == 409 and "paused" in r.json()["error"]["message"], r.text
    out, _ = run([keel_bin(), "deploy", "rollout", "manual", "resume", "--server", server.url])
    assert "manual: running" in out.stdout
    out, _ = run([keel_bin(), "deploy", "rollout", "manual", "rollback", "--reason", "p99 doubled",
                  "--server", server.url])
    assert "rolled_back" in out.stdout and "p99 doubled" in out.stdout
    moves = events(server, "manual")
    assert [e["event"] for e in moves] == ["canary_advanced", "paused", "resumed", "rolled_back"]
    assert all(e["by"] == "api" for e in moves) and moves[0]["reason"] == "dashboards look fine"
    lifecycle_state(server, "manual", "rejected")
    # A bandit is promoted to a named variant.
    create(server, {"name": "mab-manual", "strategy": {"type": "epsilon_greedy"}, "variants": [{"name": "p"}, {"name": "q"}]})
    r = S.post(f"{server.url}/v1/deployments/mab-manual/rollout", json={"action": "promote", "variant": "q"})
    assert r.status_code == 200 and r.json()["rollout"]["promoted"] == "q", r.text
    assert events(server, "mab-manual")[-1]["event"] == "promoted"
    d = S.post(f"{server.url}/v1/deployments/mab-manual/decide", json={}).json()
    assert (d["variant"], d["propensity"]) == ("q", 1.0)


def test_moves_survive_a_restart(server):
    before = {n: describe(server, n) for n in ("promo", "errs", "manual", "ab-win")}
    server.stop()
    server.start()
    for name, d in before.items():
        after = describe(server, name)
        for key in ("rollout", "canary", "variants", "decisions"):
            assert after.get(key) == d.get(key), (name, key)
    assert [e["event"] for e in events(server, "manual")][-1] == "rolled_back"


def test_the_plot_is_an_svg(server):
    r = S.get(f"{server.url}/v1/deployments/errs/plot", params={"bins": 20})
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml"
    assert r.text.startswith("<svg") and "rolled_back" in r.text and r.text.count("<path") == 4


@pytest.mark.parametrize("method,path,body,status,field", [
    ("post", "/v1/deployments", {"name": "g1", "strategy": {"type": "canary"}, "variants": [{"name": "a"}, {"name": "b"}],
                                 "guards": {"max_error_rate": 2}}, 400, "guards.max_error_rate"),
    ("post", "/v1/deployments", {"name": "g2", "strategy": {"type": "canary"}, "variants": [{"name": "a"}, {"name": "b"}],
                                 "guards": {"max_errors": 0.1}}, 400, "max_errors"),
    ("post", "/v1/deployments", {"name": "g3", "strategy": {"type": "canary"}, "variants": [{"name": "a"}, {"name": "b"}],
                                 "guards": {"metrics": {"latency": {}}}}, 400, "guards.metrics.latency"),
    ("post", "/v1/deployments", {"name": "g4", "strategy": {"type": "ab"}, "variants": [{"name": "a"}, {"name": "b"}],
                                 "guards": {"winner_probability": 0.3}}, 400, "guards.winner_probability"),
    ("post", "/v1/deployments", {"name": "g5", "strategy": {"type": "single"}, "variants": [{"name": "a"}],
                                 "lifecycle": {"name": "bad name!"}}, 400, "lifecycle.name"),
    ("post", "/v1/deployments/manual/rollout", {"action": "explode"}, 400, "action"),
    ("post", "/v1/deployments/manual/rollout", {}, 400, "action"),
    ("post", "/v1/deployments/nope/rollout", {"action": "pause"}, 404, None),
    ("post", "/v1/deployments/manual/rollout", {"action": "resume"}, 409, None),
    ("post", "/v1/deployments/mab-manual/rollout", {"action": "advance"}, 409, None),
    ("post", "/v1/deployments/warn/checks", {"suite": "q", "variant": "nobody", "passed": True}, 400, "variant"),
    ("post", "/v1/deployments/warn/checks", {"suite": "q", "variant": "candidate", "passed": True, "severity": "fatal"}, 400, "severity"),
    ("post", "/v1/deployments/warn/checks", {"variant": "candidate", "passed": True}, 400, "suite"),
    ("post", "/v1/deployments/warn/metrics", {"variant": "candidate", "name": "x", "value": "fast"}, 400, None),
    ("post", "/v1/deployments/warn/metrics", {"variant": "ghost", "name": "x", "value": 1}, 400, "variant"),
    ("get", "/v1/deployments/warn/plot?bins=0", None, 400, "bins"),
    ("get", "/v1/deployments/warn/plot?bins=many", None, 400, "bins"),
    ("get", "/v1/deployments/nope/events", None, 404, None),
    ("post", "/v1/feedback", {"decision_id": "warn.1"}, 400, "reward"),
])
def test_bad_requests_get_clear_errors(server, method, path, body, status, field):
    r = getattr(S, method)(f"{server.url}{path}", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    if field:
        assert err.get("field") == field, err
    for name in ("g1", "g2", "g3", "g4", "g5"):
        assert S.get(f"{server.url}/v1/deployments/{name}").status_code == 404


def test_an_error_alone_is_feedback(server):
    r = S.post(f"{server.url}/v1/deployments/warn/decide", json={"unit_id": "e1"}).json()
    ok = S.post(f"{server.url}/v1/feedback", json={"decision_id": r["decision_id"], "error": True})
    assert ok.status_code == 200, ok.text
    res = subprocess.run([keel_bin(), "deploy", "feedback", "warn.999999", "--error", "--server", server.url],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "warn.999999" in res.stderr, res.stderr
