"""Deployments and live experiments through a real ``keel server``.

Every strategy type is created over HTTP, driven with decisions and
simulated rewards, and checked for what it promises: ``single`` and
``shadow`` always answer with the primary (shadow listing the mirrors),
``ab`` is sticky per unit and splits by weight (chi-square), ``canary``
gives the candidate its step's share, the multi-armed bandits
(``epsilon_greedy``, ``ucb1``, ``thompson``, ``softmax``) send most traffic
to the best arm of a Bernoulli environment, and the contextual ones
(``linucb``, ``linear_thompson``, ``cb_epsilon_greedy``) learn which arm
is best for which context. Propensities are probabilities that match the
strategy's rule. The server is then restarted on the same data directory:
counts, mean rewards and pending decisions survive. Bad requests get 4xx
errors naming the field.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import requests
from scipy import stats

from online_crosscheck import KeelTarget, keel_server

S = requests.Session()


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> KeelTarget:
    return KeelTarget(tmp_path_factory.mktemp("experiments") / "data")


@pytest.fixture(scope="module")
def server(target):
    srv = keel_server(target)
    yield srv
    srv.stop()


def create(server, body: dict) -> dict:
    r = S.post(f"{server.url}/v1/deployments", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def decide(server, name: str, **body) -> dict:
    r = S.post(f"{server.url}/v1/deployments/{name}/decide", json=body)
    assert r.status_code == 200, r.text
    d = r.json()
    assert 0.0 < d["propensity"] <= 1.0, d
    return d


def feedback(server, decision_id: str, reward: float) -> None:
    r = S.post(f"{server.url}/v1/feedback", json={"decision_id": decision_id, "reward": reward})
    assert r.status_code == 200, r.text


def describe(server, name: str) -> dict:
    r = S.get(f"{server.url}/v1/deployments/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def variants(names):
    return [{"name": n} for n in names]


def test_the_contract_example(server):
    body = {"name": "recs", "strategy": {"type": "linucb", "alpha": 1.0},
            "variants": variants("abc")}
    created = create(server, body)
    assert created["name"] == "recs" and created["strategy"]["type"] == "linucb"
    d = decide(server, "recs", unit_id="u1", context=[0.1, -0.3, 0.5])
    assert d["variant"] in "abc" and d["decision_id"]
    feedback(server, d["decision_id"], 1.0)
    got = describe(server, "recs")
    assert got["decisions"] == 1 and got["rewards"] == 1
    v = {x["name"]: x for x in got["variants"]}
    assert v[d["variant"]]["decisions"] == 1
    assert v[d["variant"]]["mean_reward"] == 1.0
    assert v[d["variant"]]["traffic_share"] == 1.0
    listed = S.get(f"{server.url}/v1/deployments").json()["deployments"]
    assert "recs" in [x["name"] for x in listed]


def test_single_and_shadow_answer_with_the_primary(server):
    create(server, {"name": "one", "strategy": {"type": "single"},
                    "variants": [{"name": "v1", "model": "models:/churn/1"}]})
    create(server, {"name": "shadowed", "strategy": {"type": "shadow"},
                    "variants": variants(["live", "cand1", "cand2"])})
    for i in range(20):
        d = decide(server, "one", unit_id=f"u{i}")
        assert d["variant"] == "v1" and d["propensity"] == 1.0 and d["model"] == "models:/churn/1"
        s = decide(server, "shadowed", unit_id=f"u{i}")
        assert s["variant"] == "live" and s["shadows"] == ["cand1", "cand2"]


def test_ab_is_sticky_and_splits_by_weight(server):
    create(server, {"name": "ab1", "strategy": {"type": "ab"},
                    "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]})
    seen = {}
    for i in range(2000):
        d = decide(server, "ab1", unit_id=f"user-{i}")
        seen[i] = d["variant"]
        assert d["propensity"] == (0.25 if d["variant"] == "a" else 0.75)
    for i in range(0, 2000, 97):
        assert decide(server, "ab1", unit_id=f"user-{i}")["variant"] == seen[i]
    counts = [sum(v == "a" for v in seen.values()), sum(v == "b" for v in seen.values())]
    p = stats.chisquare(counts, [500, 1500]).pvalue
    assert p > 1e-3, counts


def test_canary_gives_the_candidate_its_step(server):
    create(server, {"name": "can", "strategy": {"type": "canary", "steps": [10, 50, 100], "step": 0},
                    "variants": variants(["stable", "candidate"])})
    picks = [decide(server, "can", unit_id=f"c{i}") for i in range(2000)]
    share = sum(p["variant"] == "candidate" for p in picks) / len(picks)
    assert abs(share - 0.10) < 0.03, share
    for p in picks:
        assert p["propensity"] == pytest.approx(0.10 if p["variant"] == "candidate" else 0.90)
    assert describe(server, "can")["canary"] == {"step": 0, "candidate_percent": 10.0}


BANDITS = [
    {"type": "epsilon_greedy", "epsilon": 0.1},
    {"type": "ucb1"},
    {"type": "thompson"},
    {"type": "softmax", "temperature": 0.05},
]


@pytest.mark.parametrize("strategy", BANDITS, ids=[b["type"] for b in BANDITS])
def test_bandits_find_the_best_arm(server, strategy):
    name = f"mab-{strategy['type']}"
    probs = [0.2, 0.3, 0.75, 0.4, 0.25]
    create(server, {"name": name, "strategy": strategy, "variants": variants([f"arm{i}" for i in range(5)])})
    rng = np.random.default_rng(3)
    rounds = 1500
    for _ in range(rounds):
        d = decide(server, name)
        arm = int(d["variant"][3:])
        feedback(server, d["decision_id"], float(rng.random() < probs[arm]))
    got = describe(server, name)
    v = {x["name"]: x for x in got["variants"]}
    assert got["decisions"] == rounds and got["rewards"] == rounds
    assert max(v, key=lambda n: v[n]["decisions"]) == "arm2", v
    assert v["arm2"]["traffic_share"] > 0.5, v
    assert v["arm2"]["mean_reward"] == pytest.approx(0.75, abs=0.06)


CONTEXTUAL = [
    {"type": "linucb", "alpha": 0.5},
    {"type": "linear_thompson", "v": 0.2},
    {"type": "cb_epsilon_greedy", "epsilon": 0.1},
]


@pytest.mark.parametrize("strategy", CONTEXTUAL, ids=[b["type"] for b in CONTEXTUAL])
def test_contextual_bandits_learn_per_context(server, strategy):
    """Arm i pays off when the context's largest coordinate is i: after
    training, each context's greedy pick is its own arm."""
    name = f"cb-{strategy['type']}"
    k, dim = 3, 3
    create(server, {"name": name, "strategy": strategy, "variants": variants([f"arm{i}" for i in range(k)])})
    rng = np.random.default_rng(5)
    right = []
    for t in range(1200):
        best = int(rng.integers(k))
        x = np.full(dim, 0.1)
        x[best] = 1.0
        d = decide(server, name, context=x.tolist())
        arm = int(d["variant"][3:])
        right.append(arm == best)
        feedback(server, d["decision_id"], float(rng.random() < (0.9 if arm == best else 0.1)))
    late = np.mean(right[-300:])
    assert late > 0.8, (strategy, late)


def test_per_segment_policies_learn_separately(server):
    create(server, {"name": "seg", "strategy": {"type": "epsilon_greedy", "epsilon": 0.05},
                    "per_segment": True, "variants": variants(["x", "y"])})
    rng = np.random.default_rng(11)
    best = {"EU": "x", "US": "y"}
    for t in range(800):
        seg = "EU" if t % 2 else "US"
        d = decide(server, "seg", segment=seg)
        feedback(server, d["decision_id"], float(rng.random() < (0.8 if d["variant"] == best[seg] else 0.2)))
    got = describe(server, "seg")
    per = {s["segment"]: {v["name"]: v["decisions"] for v in s["variants"]} for s in got["segments"]}
    assert per["EU"]["x"] > per["EU"]["y"] and per["US"]["y"] > per["US"]["x"], per


def test_state_survives_a_restart(server, target):
    create(server, {"name": "durable", "strategy": {"type": "thompson"}, "variants": variants("pq")})
    ids = []
    for i in range(50):
        d = decide(server, "durable")
        ids.append(d["decision_id"])
        if i < 40:
            feedback(server, d["decision_id"], float(i % 3 == 0))
    before = describe(server, "durable")
    mab_before = describe(server, "mab-ucb1") if S.get(f"{server.url}/v1/deployments/mab-ucb1").ok else None
    server.stop()
    server.start()
    after = describe(server, "durable")
    for key in ("decisions", "rewards", "awaiting_reward", "variants"):
        assert after[key] == before[key], key
    if mab_before:
        assert describe(server, "mab-ucb1")["variants"] == mab_before["variants"]
    # A decision made before the restart takes its reward after it, once.
    feedback(server, ids[45], 1.0)
    assert describe(server, "durable")["rewards"] == 41
    r = S.post(f"{server.url}/v1/feedback", json={"decision_id": ids[45], "reward": 1.0})
    assert r.status_code == 409, r.text
    # And new decisions continue the numbering: no id is reused.
    assert decide(server, "durable")["decision_id"] not in ids


@pytest.mark.parametrize("method,path,body,status,field", [
    ("post", "/v1/deployments/nope/decide", {}, 404, None),
    ("get", "/v1/deployments/nope", None, 404, None),
    ("post", "/v1/feedback", {"decision_id": "recs.999999", "reward": 1}, 404, None),
    ("post", "/v1/feedback", {"decision_id": "garbage", "reward": 1}, 404, None),
    ("post", "/v1/feedback", {"decision_id": "recs.1"}, 400, "reward"),
    ("post", "/v1/feedback", {"decision_id": "recs.1", "reward": "high"}, 400, None),
    ("post", "/v1/deployments/recs/decide", {"context": "not a list"}, 400, None),
    ("post", "/v1/deployments/recs/decide", {"context": [1, 2]}, 400, "context"),
    ("post", "/v1/deployments/recs/decide", {}, 400, "context"),
    ("post", "/v1/deployments/recs/decide", {"contxt": [1, 2, 3]}, 400, "contxt"),
    ("post", "/v1/deployments", {"name": "recs", "strategy": {"type": "single"}, "variants": [{"name": "a"}]}, 409, None),
    ("post", "/v1/deployments", {"name": "x1", "strategy": {"type": "bogus"}, "variants": [{"name": "a"}]}, 400, None),
    ("post", "/v1/deployments", {"name": "x2", "strategy": {"type": "epsilon_greedy", "epsilon": 2}, "variants": [{"name": "a"}]}, 400, "strategy.epsilon"),
    ("post", "/v1/deployments", {"name": "x3", "strategy": {"type": "single"}, "variants": []}, 400, "variants"),
    ("post", "/v1/deployments", {"name": "x4", "strategy": {"type": "ab"}, "variants": [{"name": "a"}, {"name": "a"}]}, 400, "variants[1].name"),
    ("post", "/v1/deployments", {"name": "bad name!", "strategy": {"type": "single"}, "variants": [{"name": "a"}]}, 400, "name"),
    ("post", "/v1/deployments", {"name": "x5", "strategy": {"type": "canary"}, "variants": [{"name": "a"}]}, 400, "variants"),
    ("post", "/v1/deployments", {"name": "x6", "strategy": {"type": "ab"}, "variants": [{"name": "a", "weight": -1}]}, 400, "variants[0].weight"),
])
def test_bad_requests_get_clear_errors(server, method, path, body, status, field):
    if S.get(f"{server.url}/v1/deployments/recs").status_code == 404:
        create(server, {"name": "recs", "strategy": {"type": "linucb"}, "variants": variants("abc")})
        decide(server, "recs", context=[0.1, 0.2, 0.3])
    r = getattr(S, method)(f"{server.url}{path}", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    if field:
        assert err.get("field") == field, err
    for name in ("x1", "x2", "x3", "x4", "x5", "x6"):
        assert S.get(f"{server.url}/v1/deployments/{name}").status_code == 404


def test_malformed_json_is_a_400(server):
    r = S.post(f"{server.url}/v1/deployments", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]
