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

import json
import math
import subprocess

import numpy as np
import pytest
import requests
from scipy import stats

from online_crosscheck import KeelTarget, keel_bin, keel_server, run

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
    {"type": "softmax", "temperature": 0.1},
]


@pytest.mark.parametrize("strategy", BANDITS, ids=[b["type"] for b in BANDITS])
def test_bandits_find_the_best_arm(server, strategy):
    name = f"mab-{strategy['type']}"
    probs = [0.2, 0.3, 0.75, 0.4, 0.25]
    # Seeded: the environment's draws are seeded too, so the run is reproducible.
    create(server, {"name": name, "strategy": strategy, "seed": 7,
                    "variants": variants([f"arm{i}" for i in range(5)])})
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
    create(server, {"name": name, "strategy": strategy, "seed": 8,
                    "variants": variants([f"arm{i}" for i in range(k)])})
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
                    "per_segment": True, "seed": 9, "variants": variants(["x", "y"])})
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
    ("post", "/v1/deployments/recs/decide", {"context": [1, 2, 3], "covariate": "high"}, 400, None),
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


def test_batches_decide_and_take_feedback_in_one_call(server):
    create(server, {"name": "batched", "strategy": {"type": "linucb"}, "variants": variants("xyz")})
    url = f"{server.url}/v1/deployments/batched/decide/batch"
    reqs = [{"unit_id": f"b{i}", "context": [i / 10, 1.0]} for i in range(50)]
    r = S.post(url, json={"requests": reqs})
    assert r.status_code == 200, r.text
    decisions = r.json()["decisions"]
    assert [d["decision_id"] for d in decisions] == [f"batched.{i}" for i in range(1, 51)]
    assert all(d["variant"] in "xyz" and 0 < d["propensity"] <= 1 for d in decisions)
    # One bad request refuses the whole batch, naming it; nothing is decided.
    bad = S.post(url, json={"requests": [{"context": [1.0, 2.0]}, {"context": [1.0]}]})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "requests[1].context", bad.text
    for body, field in (({"requests": []}, "requests"), ({"reqs": []}, "reqs")):
        bad = S.post(url, json=body)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == field, bad.text
    assert describe(server, "batched")["decisions"] == 50
    feedback(server, decisions[0]["decision_id"], 1.0)
    items = [{"decision_id": d["decision_id"], "reward": float(i % 2)} for i, d in enumerate(decisions)]
    items.append({"decision_id": "batched.9999", "reward": 1.0})
    items.append({"decision_id": decisions[3]["decision_id"], "error": True})
    r = S.post(f"{server.url}/v1/feedback/batch", json={"feedback": items})
    assert r.status_code == 200, r.text
    got = r.json()
    # The first was rewarded already, 9999 was never decided, the last repeats #3.
    assert got["recorded"] == 49, got
    assert [x["index"] for x in got["rejected"]] == [0, 50, 51], got
    assert "already" in got["rejected"][0]["error"] and "batched.9999" in got["rejected"][1]["error"]
    d = describe(server, "batched")
    assert d["rewards"] == 50 and d["awaiting_reward"] == 0
    bad = S.post(f"{server.url}/v1/feedback/batch", json={"feedback": [{"decision_id": "batched.1", "reward": "x"}]})
    assert bad.status_code == 400, bad.text
    bad = S.post(f"{server.url}/v1/feedback/batch", json={"feedback": [{"decision_id": "batched.1"}, {"decision_id": "batched.2"}]})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "feedback[0].reward", bad.text


def test_malformed_json_is_a_400(server):
    r = S.post(f"{server.url}/v1/deployments", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]


# --------------------------------------------------------------------------
# statistics, cross-checked against scipy and statsmodels on the same data
# --------------------------------------------------------------------------


def run_experiment(server, name: str, draw_reward, units: int = 3000, weights=(1, 1, 1)):
    """An A/B/C test over HTTP: ``units`` sticky decisions, each rewarded
    with ``draw_reward(variant)``; returns the rewards per variant as sent."""
    names = ["control", "b", "c"]
    create(server, {"name": name, "strategy": {"type": "ab"},
                    "variants": [{"name": n, "weight": w} for n, w in zip(names, weights)]})
    sent = {n: [] for n in names}
    for i in range(units):
        d = decide(server, name, unit_id=f"{name}-unit-{i}")
        r = draw_reward(d["variant"])
        sent[d["variant"]].append(r)
        feedback(server, d["decision_id"], r)
    return sent


def analysis(server, name: str, **query) -> dict:
    r = S.get(f"{server.url}/v1/deployments/{name}/analysis", params=query)
    assert r.status_code == 200, r.text
    return r.json()


def test_conversion_statistics_match_statsmodels(server):
    from statsmodels.stats.proportion import proportion_confint, proportions_ztest

    rng = np.random.default_rng(21)
    rates = {"control": 0.10, "b": 0.13, "c": 0.10}
    sent = run_experiment(server, "conv", lambda v: float(rng.random() < rates[v]))
    got = analysis(server, "conv", confidence=0.95)
    assert got["reward_kind"] == "conversion" and got["control"] == "control"
    by_name = {v["name"]: v for v in got["variants"]}
    for name, rewards in sent.items():
        s, n = int(sum(rewards)), len(rewards)
        v = by_name[name]
        assert v["rewards"] == n and v["decisions"] == n
        assert v["mean"] == pytest.approx(s / n, rel=1e-12)
        lo, hi = proportion_confint(s, n, alpha=0.05, method="wilson")
        assert v["interval"] == pytest.approx([lo, hi], rel=1e-9)
    c_s, c_n = int(sum(sent["control"])), len(sent["control"])
    for comp in got["comparisons"]:
        rewards = sent[comp["variant"]]
        s, n = int(sum(rewards)), len(rewards)
        z, p = proportions_ztest([s, c_s], [n, c_n], alternative="two-sided")
        f = comp["fixed_horizon"]
        assert f["test"] == "two_proportion_ztest"
        assert f["statistic"] == pytest.approx(z, rel=1e-9)
        assert f["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-15)
        assert f["difference"] == pytest.approx(s / n - c_s / c_n, rel=1e-12)
        # The always-valid p-value: the normal-mixture likelihood ratio at
        # these sample sizes, computed here from its closed form.
        seq = comp["sequential"]
        pa, pc = s / n, c_s / c_n
        s2 = pa * (1 - pa) / n + pc * (1 - pc) / c_n
        tau2 = seq["tau2"]
        lr = math.sqrt(s2 / (s2 + tau2)) * math.exp(tau2 * (pa - pc) ** 2 / (2 * s2 * (s2 + tau2)))
        assert seq["always_valid_p_value"] == pytest.approx(min(1.0, 1 / lr), rel=1e-9)
        # Never smaller than the fixed-horizon p-value: looking early costs.
        assert seq["always_valid_p_value"] >= f["p_value"] - 1e-12
    # Sample-ratio check: scipy's chi-square on the same counts.
    counts = [len(sent[n]) for n in ("control", "b", "c")]
    srm = got["sample_ratio"]
    assert srm["observed"] == counts
    assert srm["p_value"] == pytest.approx(stats.chisquare(counts).pvalue, rel=1e-9)
    assert srm["mismatch"] is False
    # Bayesian probability to be best: Monte Carlo in numpy on the same
    # posteriors (Beta(1 + s, 1 + n - s)), within Monte-Carlo error.
    draws = np.stack([rng.beta(1 + sum(sent[n]), 1 + len(sent[n]) - sum(sent[n]), 400_000)
                      for n in ("control", "b", "c")])
    ref = np.bincount(draws.argmax(axis=0), minlength=3) / draws.shape[1]
    assert got["bayesian"]["prob_best"] == pytest.approx(ref.tolist(), abs=0.02)


def test_continuous_statistics_match_scipy(server):
    rng = np.random.default_rng(22)
    means = {"control": 10.0, "b": 10.4, "c": 9.9}
    sent = run_experiment(server, "revenue", lambda v: float(rng.normal(means[v], 3.0)), units=1500)
    got = analysis(server, "revenue", confidence=0.9, control="control")
    assert got["reward_kind"] == "continuous"
    by_name = {v["name"]: v for v in got["variants"]}
    for name, rewards in sent.items():
        x = np.array(rewards)
        v = by_name[name]
        assert v["mean"] == pytest.approx(x.mean(), rel=1e-10)
        assert v["variance"] == pytest.approx(x.var(ddof=1), rel=1e-8)
        lo, hi = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert v["interval"] == pytest.approx([lo, hi], rel=1e-8)
    for comp in got["comparisons"]:
        a, c = np.array(sent[comp["variant"]]), np.array(sent["control"])
        ref = stats.ttest_ind(a, c, equal_var=False)
        f = comp["fixed_horizon"]
        assert f["test"] == "welch_ttest"
        assert f["statistic"] == pytest.approx(ref.statistic, rel=1e-8)
        assert f["p_value"] == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-14)
        assert f["df"] == pytest.approx(ref.df, rel=1e-8)
        ci = ref.confidence_interval(0.9)
        assert f["interval"] == pytest.approx([ci.low, ci.high], rel=1e-7)


def test_a_broken_split_is_flagged(server):
    """The sample-ratio check tests the observed split against the declared
    weights (2:1 here) with scipy's chi-square; the same traffic judged
    against a 1:1 split would be a mismatch."""
    create(server, {"name": "skewed", "strategy": {"type": "ab"},
                    "variants": [{"name": "a", "weight": 2}, {"name": "b", "weight": 1}]})
    for i in range(900):
        decide(server, "skewed", unit_id=f"s{i}")
    got = analysis(server, "skewed")
    counts = got["sample_ratio"]["observed"]
    assert got["sample_ratio"]["p_value"] == pytest.approx(
        stats.chisquare(counts, [900 * 2 / 3, 900 / 3]).pvalue, rel=1e-9)
    # And a declared 1:1 split with this traffic would be a mismatch.
    p_equal = stats.chisquare(counts).pvalue
    assert p_equal < 1e-3, counts


def test_cuped_matches_numpy_and_scipy(server, tmp_path):
    """CUPED with a pre-period covariate sent at decision time: θ pooled over
    every rewarded decision, adjusted rewards per variant, Welch's test on
    them — the same as numpy + scipy on the exported decisions."""
    rng = np.random.default_rng(33)
    create(server, {"name": "cuped", "strategy": {"type": "ab"}, "variants": variants(["control", "b"])})
    for i in range(1500):
        x = float(rng.normal(10, 3))
        d = decide(server, "cuped", unit_id=f"cu{i}", covariate=x)
        y = 0.8 * x + (0.3 if d["variant"] == "b" else 0.0) + float(rng.normal(0, 1))
        if i % 10 != 0:  # some decisions never get a reward
            feedback(server, d["decision_id"], y)
    got = analysis(server, "cuped", cuped="true")["cuped"]
    rows = [json.loads(line) for line in S.get(f"{server.url}/v1/deployments/cuped/decisions").text.splitlines()]
    rows = [r for r in rows if r.get("reward") is not None]
    assert got["rows"] == len(rows) == 1350
    x = np.array([r["covariate"] for r in rows])
    y = np.array([r["reward"] for r in rows])
    arm = np.array([r["variant"] for r in rows])
    theta = np.cov(y, x, ddof=1)[0, 1] / np.var(x, ddof=1)
    assert got["theta"] == pytest.approx(theta, rel=1e-9)
    adjusted = y - theta * (x - x.mean())
    a, b = adjusted[arm == "control"], adjusted[arm == "b"]
    ref = stats.ttest_ind(b, a, equal_var=False)
    (cmp,) = got["comparisons"]
    assert cmp["variant"] == "b" and cmp["control"] == "control"
    assert cmp["difference"] == pytest.approx(b.mean() - a.mean(), rel=1e-9)
    assert cmp["statistic"] == pytest.approx(ref.statistic, rel=1e-7)
    assert cmp["p_value"] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)
    for v in got["variants"]:
        raw = y[arm == v["name"]]
        adj = adjusted[arm == v["name"]]
        assert v["variance_reduction"] == pytest.approx(1 - adj.var(ddof=1) / raw.var(ddof=1), rel=1e-7)
        assert v["variance_reduction"] > 0.8  # corr(x, y)² is about 0.85 here
    # CUPED finds the effect the raw comparison is too noisy to be sure of.
    raw = analysis(server, "cuped")["comparisons"][0]["fixed_horizon"]
    assert cmp["p_value"] < raw["p_value"] and cmp["interval"][1] - cmp["interval"][0] < raw["interval"][1] - raw["interval"][0]
    out, _ = run([keel_bin(), "deploy", "analyse", "cuped", "--cuped", "--server", server.url])
    assert "CUPED on 1350 rewarded decisions" in out.stdout and "b − control" in out.stdout
    # Without covariates the section says what to send.
    none = analysis(server, "durable", cuped="true")["cuped"]
    assert "covariate" in none["unavailable"]


@pytest.mark.parametrize("query,field", [
    ({"control": "nope"}, "control"),
    ({"cuped": "maybe"}, "cuped"),
    ({"confidence": 1.5}, "confidence"),
    ({"tau2": -1}, "tau2"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_analysis_queries(server, query, field):
    if S.get(f"{server.url}/v1/deployments/conv").status_code == 404:
        create(server, {"name": "conv", "strategy": {"type": "ab"}, "variants": variants(["control", "b"])})
    r = S.get(f"{server.url}/v1/deployments/conv/analysis", params=query)
    assert r.status_code == 400, r.text
    assert r.json()["error"].get("field") == field, r.json()


# --------------------------------------------------------------------------
# off-policy evaluation from the decision log
# --------------------------------------------------------------------------

# P[context][arm]: the reward probability of each arm in each context.
P = np.array([[0.8, 0.3, 0.2],
              [0.2, 0.7, 0.3],
              [0.3, 0.2, 0.9]])


@pytest.fixture(scope="module")
def logged(server):
    """3,000 uniformly random decisions (epsilon_greedy with epsilon 1: each
    arm with propensity 1/3) on contexts that say which arm pays."""
    create(server, {"name": "ope", "seed": 10, "strategy": {"type": "epsilon_greedy", "epsilon": 1.0},
                    "variants": variants(["a0", "a1", "a2"])})
    rng = np.random.default_rng(31)
    for _ in range(3000):
        c = int(rng.integers(3))
        x = [0.1, 0.1, 0.1]
        x[c] = 1.0
        d = decide(server, "ope", context=x)
        assert d["propensity"] == pytest.approx(1 / 3)
        arm = int(d["variant"][1:])
        feedback(server, d["decision_id"], float(rng.random() < P[c, arm]))
    r = S.get(f"{server.url}/v1/deployments/ope/decisions")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert len(rows) == 3000 and all(row["reward"] is not None for row in rows)
    return rows


def evaluate(server, candidate: dict, **extra) -> dict:
    r = S.post(f"{server.url}/v1/deployments/ope/evaluate", json={"candidate": candidate, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def ridge_with_intercept(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    Xi = np.hstack([X, np.ones((len(X), 1))])
    return np.linalg.solve(Xi.T @ Xi + np.eye(Xi.shape[1]), Xi.T @ y)


def test_decisions_export_is_the_log(logged):
    ids = [row["decision_id"] for row in logged]
    assert len(set(ids)) == len(ids)
    assert {row["variant"] for row in logged} == {"a0", "a1", "a2"}
    assert all(len(row["context"]) == 3 and row["decided_at"] for row in logged)


def test_ope_of_a_fixed_variant_matches_numpy_and_covers_the_truth(server, logged):
    got = evaluate(server, {"type": "variant", "variant": "a1"})
    a = np.array([row["arm"] for row in logged])
    r = np.array([row["reward"] for row in logged])
    p = np.array([row["propensity"] for row in logged])
    X = np.array([row["context"] for row in logged])
    w = (a == 1) / p
    assert got["ips"]["value"] == pytest.approx(np.mean(w * r), rel=1e-12)
    assert got["ips"]["standard_error"] == pytest.approx(np.std(w * r, ddof=1) / np.sqrt(len(r)), rel=1e-9)
    assert got["snips"]["value"] == pytest.approx(np.sum(w * r) / np.sum(w), rel=1e-12)
    # Doubly robust with a ridge reward model per arm (λ = 1, intercept).
    thetas = [ridge_with_intercept(X[a == k], r[a == k]) for k in range(3)]
    Xi = np.hstack([X, np.ones((len(X), 1))])
    q = np.stack([Xi @ t for t in thetas], axis=1)
    dr_terms = q[:, 1] + w * (r - q[np.arange(len(a)), a])
    assert got["doubly_robust"]["value"] == pytest.approx(dr_terms.mean(), rel=1e-9)
    truth = P[:, 1].mean()
    for est in ("ips", "snips", "doubly_robust"):
        e = got[est]
        assert abs(e["value"] - truth) < 4 * e["standard_error"], (est, e, truth)
    # The reward model makes DR the tighter estimate.
    assert got["doubly_robust"]["standard_error"] < got["ips"]["standard_error"]


def test_ope_judges_a_contextual_strategy_before_it_runs(server, logged):
    """Replayed over the log, LinUCB learns which arm pays in which context:
    its estimated value beats every fixed variant and the logging policy,
    and approaches the oracle's."""
    got = evaluate(server, {"type": "strategy", "strategy": {"type": "linucb", "alpha": 0.3}})
    best_fixed = P.mean(axis=0).max()
    oracle = P.max(axis=1).mean()
    dr = got["doubly_robust"]
    assert dr["value"] > best_fixed + 2 * dr["standard_error"], (dr, best_fixed)
    assert abs(dr["value"] - oracle) < 0.08, (dr, oracle)
    assert got["logging_policy_value"] == pytest.approx(np.mean([row["reward"] for row in logged]))
    split = evaluate(server, {"type": "split", "weights": {"a0": 1, "a2": 1}})
    assert abs(split["snips"]["value"] - (P[:, 0].mean() + P[:, 2].mean()) / 2) < 4 * split["snips"]["standard_error"]


@pytest.mark.parametrize("body,field", [
    ({"candidate": {"type": "variant", "variant": "zz"}}, "candidate.variant"),
    ({"candidate": {"type": "split", "weights": {"a0": 0}}}, "candidate.weights"),
    ({"candidate": {"type": "strategy", "strategy": {"type": "epsilon_greedy", "epsilon": 3}}}, "candidate.strategy.epsilon"),
    ({"candidate": {"type": "variant", "variant": "a0"}, "max_weight": -1}, "max_weight"),
    ({"candidate": {"type": "nonsense"}}, None),
])
def test_bad_evaluations(server, logged, body, field):
    r = S.post(f"{server.url}/v1/deployments/ope/evaluate", json=body)
    assert r.status_code == 400, r.text
    if field:
        assert r.json()["error"].get("field") == field, r.json()


def test_evaluating_without_rewards_or_contexts_is_refused(server):
    create(server, {"name": "quiet", "strategy": {"type": "ucb1"}, "variants": variants("xy")})
    decide(server, "quiet")
    r = S.post(f"{server.url}/v1/deployments/quiet/evaluate",
               json={"candidate": {"type": "variant", "variant": "x"}})
    assert r.status_code == 400 and "feedback" in r.json()["error"]["message"], r.text
    d = decide(server, "quiet")
    feedback(server, d["decision_id"], 1.0)
    r = S.post(f"{server.url}/v1/deployments/quiet/evaluate",
               json={"candidate": {"type": "strategy", "strategy": {"type": "linucb"}}})
    assert r.status_code == 400 and r.json()["error"]["field"] == "candidate.strategy", r.text


# --------------------------------------------------------------------------
# the CLI
# --------------------------------------------------------------------------


def test_the_cli_drives_a_deployment(server, tmp_path):
    keel = [keel_bin()]
    spec = tmp_path / "cli.json"
    spec.write_text(json.dumps({"name": "cli-recs", "strategy": {"type": "linear_thompson", "v": 0.5},
                                "variants": [{"name": "a", "model": "models:/recs/1"}, {"name": "b"}]}))
    out, _ = run(keel + ["deploy", "create", spec, "--server", server.url])
    assert "created deployment cli-recs (linear_thompson, 2 variants)" in out.stdout
    out, _ = run(keel + ["deploy", "decide", "cli-recs", "--unit-id", "u1", "--context", "0.5,-1.5",
                         "--json", "--server", server.url])
    decision = json.loads(out.stdout)
    assert decision["variant"] in ("a", "b") and 0 < decision["propensity"] <= 1
    out, _ = run(keel + ["deploy", "feedback", decision["decision_id"], "-0.5", "--server", server.url])
    assert "recorded" in out.stdout
    shown = json.loads(run(keel + ["deploy", "show", "cli-recs", "--json", "--server", server.url])[0].stdout)
    assert shown["decisions"] == 1 and shown["rewards"] == 1
    table = run(keel + ["deploy", "show", "cli-recs", "--server", server.url])[0].stdout
    assert "VARIANT" in table and "models:/recs/1" in table
    listed = run(keel + ["deploy", "list", "--server", server.url])[0].stdout
    assert "cli-recs" in listed and "linear_thompson" in listed
    analysed = run(keel + ["deploy", "analyse", "cli-recs", "--server", server.url])[0].stdout
    assert "COMPARISON" in analysed and "b − a" in analysed
    # A server error reaches the user as a message, with a non-zero exit.
    res = subprocess.run([str(c) for c in keel + ["deploy", "decide", "cli-recs", "--context", "1",
                                                  "--server", server.url]],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "context" in res.stderr, res.stderr
