#!/usr/bin/env python3
"""Keel's bandit policies vs. Vowpal Wabbit on the same simulated
environments, in one run (issue 8).

Workloads (select with --only, comma separated; default both):

  contextual  bench/bandits/contextual.json: 5 arms, 10-dimensional contexts,
              Bernoulli rewards with p_a(x) = clip(bias_a + theta_a . x).
              Keel's linucb, linear_thompson and cb_epsilon_greedy (each at
              a few settings) against VW's `--cb_explore_adf --epsilon 0.1`
              and `--cb_explore_adf --squarecb` (and the VW options that
              helped it most, see VW_CONTEXTUAL).
  bernoulli   bench/bandits/bernoulli.json: 5 Bernoulli arms. Keel's
              thompson, ucb1, epsilon_greedy and softmax against the oracle,
              and VW's `--cb_explore 5 --epsilon 0.1` as a peer.

One stream per environment, generated from its file with numpy and shared
by every policy: each round's context and two uniforms, u0 for the reward
(the chosen arm pays 1 when u0 < p_chosen(x): common random numbers) and u1
to sample an action from VW's probability vector. Keel runs in the release
build of `crates/keel-experiment/examples/bandit_sim.rs` (through
keel_experiment::policy::PolicyState, as the server's Deployments::decide
does), one process per setting; VW runs in this process through its Python
bindings (vowpalwabbit.Workspace: predict, sample, learn, round by round).

Reported per policy: cumulative expected regret sum_t max_a p_a(x_t) -
p_chosen(x_t), total reward, rounds/s (wall time of the decide + learn loop
only: stream generation, reward probabilities and, for VW, the text of each
round's shared features are made before the clock starts), the regret every
--checkpoint rounds, and the CPU other processes used meanwhile. For VW,
also its rounds/s learning from a file of the same examples (`-d`, no
Python in the loop). Results go to bench/results/bandits.json (or --out)
and a table on stdout.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procstat import system_busy_s  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENVS = {"contextual": HERE / "bandits" / "contextual.json",
        "bernoulli": HERE / "bandits" / "bernoulli.json"}
MAGIC = b"KEELBND1"
SIM_SOURCES = ("crates/keel-experiment/src/policy.rs", "crates/keel-experiment/src/strategy.rs",
               "crates/keel-experiment/examples/bandit_sim.rs", "crates/keel-stats/src")
POLICY_SEED = 1

# Keel: (label, strategy as POST /v1/deployments takes it). Every setting
# tried is run and reported; the contextual table's "best" is the lowest
# regret of them all, as for VW.
KEEL_CONTEXTUAL = (
    [(f"linucb alpha={a:g}{' (default)' if a == 1 else ''}",
      {"type": "linucb", "alpha": a, "lambda": 1.0}) for a in (0.1, 0.3, 0.5, 1.0, 2.0)]
    + [(f"linear_thompson v={v:g}{' (default)' if v == 1 else ''}, 1 draw",
        {"type": "linear_thompson", "v": v, "lambda": 1.0, "propensity_draws": 1})
       for v in (0.1, 0.2, 0.3, 0.5, 1.0)]
    + [(f"cb_epsilon_greedy eps={e:g}{' (default)' if e == 0.1 else ''}",
        {"type": "cb_epsilon_greedy", "epsilon": e, "lambda": 1.0}) for e in (0.1, 0.05, 0.02, 0.01)]
)
# The best linear_thompson v above is then run again as served: with the
# default 100 propensity draws per decision (the same policy; the draws
# only estimate the propensity, and cost the time).
SERVED_DRAWS = 100
KEEL_BERNOULLI = [
    ("thompson (100 propensity draws, default)",
     {"type": "thompson", "reward": "bernoulli", "propensity_draws": 100}),
    ("thompson (1 propensity draw)",
     {"type": "thompson", "reward": "bernoulli", "propensity_draws": 1}),
    ("ucb1", {"type": "ucb1"}),
    ("epsilon_greedy eps=0.1 (default)", {"type": "epsilon_greedy", "epsilon": 0.1}),
    ("epsilon_greedy eps=0.02", {"type": "epsilon_greedy", "epsilon": 0.02}),
    ("softmax temperature=0.1 (default)", {"type": "softmax", "temperature": 0.1}),
    ("softmax temperature=0.02", {"type": "softmax", "temperature": 0.02}),
    ("softmax temperature=0.01", {"type": "softmax", "temperature": 0.01}),
]
# VW: (label, arguments, cost of a reward r: "neg" is -r, "one_minus" 1 - r).
# Shared features x0..x9 in namespace U, one action-indicator feature per
# action in namespace A, and -q UA: each action gets its own linear model
# of x, plus its own bias (a0..a4) and VW's constant. VW's defaults
# otherwise (cb_type mtr, adaptive normalized SGD, -l 0.5, --power_t 0.5).
# The two settings, then the best found for each in a quick search
# on this environment (VW_SEARCH).
VW_CONTEXTUAL = [
    ("vw --cb_explore_adf --epsilon 0.1", "--cb_explore_adf --epsilon 0.1 -q UA", "neg"),
    ("vw --cb_explore_adf --squarecb", "--cb_explore_adf --squarecb -q UA", "neg"),
    ("vw --cb_explore_adf --epsilon 0.1 -l 0.1", "--cb_explore_adf --epsilon 0.1 -q UA -l 0.1", "neg"),
    ("vw --cb_explore_adf --squarecb --gamma_exponent 0.7",
     "--cb_explore_adf --squarecb -q UA --gamma_exponent 0.7", "neg"),
]
VW_BERNOULLI = [
    ("vw --cb_explore 5 --epsilon 0.1", "--cb_explore 5 --epsilon 0.1", "neg"),
    ("vw --cb_explore 5 --epsilon 0.1 -l 0.1", "--cb_explore 5 --epsilon 0.1 -l 0.1", "neg"),
]
# How the VW settings above were chosen: cumulative regret of each setting
# tried with run_vw on one stream of the contextual environment generated
# for 50,000 rounds (--rounds 50000), then of the best few on the full
# 200,000-round streams. Single streams: differences of a few hundred are
# within the noise between streams.
VW_SEARCH = {
    "rounds": 50_000,
    "contextual (all with -q UA, cost -reward unless said)": {
        "--cb_explore_adf --epsilon 0.1": 3322, "... cost 1 - reward": 3278,
        "--epsilon 0.02": 4151, "--epsilon 0.1 -l 0.05": 2254, "--epsilon 0.1 -l 0.1": 2203,
        "--epsilon 0.05 -l 0.1": 2572, "--epsilon 0.1 -l 2": 4190, "--epsilon 0.1 --cb_type ips": 3234,
        "--epsilon 0.1 --cb_type dr": 2630, "--epsilon 0.1 -l 0.1 --cb_type dr": 2336,
        "--epsilon 0.1 --coin": 4926,
        "--squarecb": 1152, "--squarecb, cost 1 - reward": 1128, "--squarecb -l 0.1": 1761,
        "--squarecb -l 1": 1184, "--squarecb -l 2": 1184, "--squarecb --power_t 0.3": 1152,
        "--squarecb --gamma_scale 1": 1780, "--squarecb --gamma_scale 3": 1436,
        "--squarecb --gamma_scale 30": 2957, "--squarecb --gamma_scale 100": 3852,
        "--squarecb --gamma_scale 1000": 4327, "--squarecb --gamma_exponent 0.3": 1589,
        "--squarecb --gamma_exponent 0.7": 880, "--squarecb --gamma_exponent 0.85": 1003,
        "--squarecb --gamma_exponent 1.0": 706, "--squarecb --gamma_exponent 0.7 --gamma_scale 3": 919,
        "--squarecb --gamma_exponent 0.7 --gamma_scale 30": 2886,
        "--squarecb --gamma_exponent 0.7 -l 1": 1009, "--squarecb --gamma_exponent 1.0 -l 1": 1252,
        "--squarecb --gamma_exponent 1.0 -l 0.25": 1318, "--squarecb --gamma_exponent 1.0 --coin": 2672,
        "--squarecb --gamma_exponent 1.0 --gamma_scale 3": 706,
        "--squarecb --gamma_exponent 1.0 --gamma_scale 30": 3048,
        "--squarecb --gamma_exponent 1.0 --power_t 0.3": 2662,
        "--regcbopt": 8244, "--cover 4": 5149,
    },
    "contextual at 200,000 rounds": {
        "--squarecb": 3353, "--squarecb --gamma_exponent 0.7": 2213,
        "--squarecb --gamma_exponent 1.0": 6443, "--epsilon 0.1 -l 0.1": 6101,
    },
    "bernoulli at 200,000 rounds": {
        "--cb_explore 5 --epsilon 0.1": 7090, "... cost 1 - reward": 7302,
        "... --cb_type ips": 5484, "... --cb_type mtr": 7090, "... -l 0.1": 4470, "... -l 2": 9036,
    },
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def children_cpu_s() -> float:
    t = os.times()
    return t.children_user + t.children_system


# --------------------------------------------------------------------------
# The environment and its stream
# --------------------------------------------------------------------------


def load_env(path: Path) -> dict:
    env = json.loads(path.read_text())
    for key in ("kind", "arms", "rounds", "seed"):
        if key not in env:
            raise SystemExit(f"{path}: missing {key!r}")
    return env


def make_stream(env: dict, rounds: int, path: Path, seed_offset: int = 0):
    """Writes the stream file bandit_sim reads; returns (x, u, p)."""
    import numpy as np

    d = int(env.get("dim", 0))
    rng = np.random.default_rng(env["seed"] + seed_offset)
    x = rng.standard_normal((rounds, d)) / math.sqrt(d) if d else np.zeros((rounds, 0))
    u = rng.random((rounds, 2))
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(np.array([rounds, d], dtype="<u8").tobytes())
        f.write(np.ascontiguousarray(np.hstack([x, u]), dtype="<f8").tobytes())
    p = probabilities(env, x)
    return x, u, p


def probabilities(env: dict, x):
    import numpy as np

    if env["kind"] == "bernoulli":
        return np.tile(np.asarray(env["rates"], dtype=float), (x.shape[0], 1))
    lo, hi = env["clip"]
    # bandit_sim sums in another order: the two agree to rounding.
    w = np.asarray(env["weights"], dtype=float)
    lin = np.asarray(env["bias"], dtype=float)[None, :] + np.zeros((x.shape[0], env["arms"]))
    for i in range(x.shape[1]):
        lin = lin + x[:, i:i + 1] * w[None, :, i]
    return np.clip(lin, lo, hi)


def env_stats(env: dict, p) -> dict:
    import numpy as np

    best = p.max(axis=1)
    out = {"oracle_expected_reward": float(best.sum()),
           "best_arm_share": (np.bincount(p.argmax(axis=1), minlength=env["arms"]) / len(p)).round(4).tolist(),
           "uniform_policy_regret": float((best - p.mean(axis=1)).sum()),
           "best_single_arm": int(p.mean(axis=0).argmax()),
           "best_single_arm_regret": float((best - p[:, p.mean(axis=0).argmax()]).sum())}
    if env["kind"] == "contextual":
        lin_lo, lin_hi = env["clip"]
        out["clipped_share"] = float(((p <= lin_lo) | (p >= lin_hi)).mean())
        s = np.sort(p, axis=1)
        out["mean_gap_best_to_second"] = float((s[:, -1] - s[:, -2]).mean())
    return out


# --------------------------------------------------------------------------
# Keel
# --------------------------------------------------------------------------


def run_keel(sim: Path, env_path: Path, stream: Path, label: str, strategy: dict,
             checkpoint: int, rounds: int) -> dict:
    cmd = [str(sim), "--env", str(env_path), "--stream", str(stream), "--strategy",
           json.dumps(strategy), "--seed", str(POLICY_SEED), "--checkpoint", str(checkpoint),
           "--rounds", str(rounds)]
    busy0, child0, own0, t0 = system_busy_s(), children_cpu_s(), self_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    busy, child, own = system_busy_s() - busy0, children_cpu_s() - child0, self_cpu_s() - own0
    if proc.returncode != 0:
        raise RuntimeError(f"bandit_sim failed ({proc.returncode}): {proc.stderr.strip()}")
    out = json.loads(proc.stdout)
    r = out["results"][0]
    return {"label": label, "side": "keel", "strategy": strategy, "kind": r["kind"],
            "cumulative_regret": r["cumulative_regret"], "reward": r["reward"],
            "expected_reward": r["expected_reward"], "rounds_per_s": r["rounds_per_s"],
            "loop_s": r["seconds"], "mean_propensity": r["mean_propensity"],
            "arm_counts": r["arm_counts"], "checkpoints": r["checkpoints"],
            "process_wall_s": round(wall, 3), "process_cpu_s": round(child, 3),
            "other_cores": other_cores(busy, child + own, wall),
            "oracle_expected_reward_rust": out["oracle_expected_reward"]}


# --------------------------------------------------------------------------
# Vowpal Wabbit
# --------------------------------------------------------------------------


def other_cores(busy: float, ours: float, wall: float) -> float | None:
    """Cores used by processes outside the benchmark meanwhile; None for runs
    too short for /proc's 10 ms ticks to say."""
    return round(max(0.0, busy - ours) / wall, 2) if wall >= 0.25 else None


def cost_of(kind: str):
    return (lambda r: -r) if kind == "neg" else (lambda r: 1.0 - r)


def pick(pmf, u: float) -> int:
    c = 0.0
    for i, p in enumerate(pmf):
        c += p
        if u < c:
            return i
    return max(i for i, p in enumerate(pmf) if p > 0)


def run_vw(label: str, vw_args: str, cost_kind: str, env: dict, x, u, p, checkpoint: int,
           workdir: Path) -> dict:
    from vowpalwabbit import Workspace

    rounds, k = p.shape
    adf = "--cb_explore_adf" in vw_args
    if adf:
        shared = ["shared |U " + " ".join(f"x{i}:{v:.17g}" for i, v in enumerate(row)) for row in x]
        actions = [f"|A a{a}" for a in range(k)]
    else:
        plain = "| c"
    cost = cost_of(cost_kind)
    probs = p.tolist()
    u0 = u[:, 0].tolist()
    u1 = u[:, 1].tolist()
    chosen = [0] * rounds
    picked_p = [0.0] * rounds
    logged = []
    vw = Workspace(vw_args + " --quiet")
    busy0, own0, t0 = system_busy_s(), self_cpu_s(), time.perf_counter()
    if adf:
        for t in range(rounds):
            ex = [shared[t]] + actions
            pmf = vw.predict(ex)
            a = pick(pmf, u1[t])
            r = 1.0 if u0[t] < probs[t][a] else 0.0
            ex[1 + a] = f"0:{cost(r)}:{pmf[a]} {actions[a]}"
            vw.learn(ex)
            chosen[t] = a
            picked_p[t] = pmf[a]
    else:
        for t in range(rounds):
            pmf = vw.predict(plain)
            a = pick(pmf, u1[t])
            r = 1.0 if u0[t] < probs[t][a] else 0.0
            vw.learn(f"{a + 1}:{cost(r)}:{pmf[a]} {plain}")
            chosen[t] = a
            picked_p[t] = pmf[a]
    wall = time.perf_counter() - t0
    busy, own = system_busy_s() - busy0, self_cpu_s() - own0
    vw.finish()
    res = summarize_choices(label, "vw", chosen, p, u0, checkpoint)
    res.update(vw_args=vw_args, cost="-reward" if cost_kind == "neg" else "1 - reward",
               rounds_per_s=rounds / wall, loop_s=round(wall, 3),
               mean_propensity=sum(picked_p) / rounds,
               other_cores=other_cores(busy, own, wall))

    # The same examples, labelled as they were learnt, from a file: VW's own
    # parse + predict + learn loop in C++, without Python or the environment.
    data = workdir / f"vw-{abs(hash(label))}.txt"
    with open(data, "w") as f:
        for t in range(rounds):
            a = chosen[t]
            c = cost(1.0 if u0[t] < probs[t][a] else 0.0)
            if adf:
                lines = [shared[t]] + actions
                lines[1 + a] = f"0:{c}:{picked_p[t]} {actions[a]}"
                f.write("\n".join(lines) + "\n\n")
            else:
                f.write(f"{a + 1}:{c}:{picked_p[t]} {plain}\n")
    t0 = time.perf_counter()
    Workspace(vw_args + " --quiet").finish()
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    Workspace(vw_args + f" --quiet -d {data}").finish()
    file_wall = time.perf_counter() - t0 - setup
    data.unlink()
    res["file_rounds_per_s"] = rounds / file_wall
    return res


def summarize_choices(label: str, side: str, chosen, p, u0, checkpoint: int) -> dict:
    rounds, k = p.shape
    best = p.max(axis=1).tolist()
    probs = p.tolist()
    regret = 0.0
    reward = 0
    exp_reward = 0.0
    counts = [0] * k
    curve = []
    for t, a in enumerate(chosen):
        pa = probs[t][a]
        regret += best[t] - pa
        exp_reward += pa
        reward += u0[t] < pa
        counts[a] += 1
        if (t + 1) % checkpoint == 0 or t + 1 == rounds:
            curve.append({"round": t + 1, "regret": regret, "reward": reward})
    return {"label": label, "side": side, "cumulative_regret": regret, "reward": reward,
            "expected_reward": exp_reward, "arm_counts": counts, "checkpoints": curve}


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


def best_of(results: list[dict], side: str, kind_prefix: str | None = None) -> dict | None:
    rows = [r for r in results if r["side"] == side
            and (kind_prefix is None or r.get("kind", "").startswith(kind_prefix))]
    return min(rows, key=lambda r: r["cumulative_regret"]) if rows else None


def run_env(name: str, args, work: Path, results: dict) -> None:
    env_path = ENVS[name]
    env = load_env(env_path)
    rounds = args.rounds or env["rounds"]
    stream = work / f"{name}.bin"
    log(f"{name}: generating {rounds:,} rounds from {env_path.relative_to(REPO)}")
    x, u, p = make_stream(env, rounds, stream, args.seed_offset)
    stats = env_stats(env, p)
    out: dict = {"env_file": str(env_path.relative_to(REPO)), "env": env, "rounds": rounds,
                 "stream_seed": env["seed"] + args.seed_offset,
                 "stats": stats, "policies": []}
    results["workloads"][name] = out

    keel_list = KEEL_CONTEXTUAL if name == "contextual" else KEEL_BERNOULLI
    for label, strategy in keel_list:
        log(f"{name}: keel {label}")
        r = run_keel(args.keel_sim, env_path, stream, label, strategy, args.checkpoint, rounds)
        out["policies"].append(r)
        log(f"   regret {r['cumulative_regret']:.1f}, {r['rounds_per_s']:,.0f} rounds/s")
    if name == "contextual":
        lts = best_of(out["policies"], "keel", "linear_thompson")
        if lts:
            strategy = dict(lts["strategy"], propensity_draws=SERVED_DRAWS)
            label = f"linear_thompson v={strategy['v']:g}, {SERVED_DRAWS} draws (as served)"
            log(f"{name}: keel {label}")
            r = run_keel(args.keel_sim, env_path, stream, label, strategy, args.checkpoint, rounds)
            out["policies"].append(r)
            log(f"   regret {r['cumulative_regret']:.1f}, {r['rounds_per_s']:,.0f} rounds/s")
    for r in out["policies"]:
        if not math.isclose(r["oracle_expected_reward_rust"], stats["oracle_expected_reward"],
                            rel_tol=1e-9):
            results["errors"][f"{name}/oracle"] = (
                f"bandit_sim's oracle reward {r['oracle_expected_reward_rust']} differs from "
                f"the driver's {stats['oracle_expected_reward']}: the two read the environment "
                "differently")
    if not args.skip_vw:
        vw_list = VW_CONTEXTUAL if name == "contextual" else VW_BERNOULLI
        vw_list = vw_list + [(f"vw {a}", a, c) for a, c in args.extra_vw if name == "contextual"]
        for label, vw_args, cost_kind in vw_list:
            log(f"{name}: {label} (cost {cost_kind})")
            r = run_vw(label, vw_args, cost_kind, env, x, u, p, args.checkpoint, work)
            out["policies"].append(r)
            log(f"   regret {r['cumulative_regret']:.1f}, {r['rounds_per_s']:,.0f} rounds/s "
                f"({r['file_rounds_per_s']:,.0f} from a file)")
    out["summary"] = summarize(name, out)


def summarize(name: str, out: dict) -> dict:
    pol = out["policies"]
    keel = best_of(pol, "keel")
    vw = best_of(pol, "vw")
    s: dict = {"keel_best": keel and keel["label"], "vw_best": vw and vw["label"]}
    if name == "contextual" and keel and vw:
        s["regret_ratio_keel_to_vw"] = keel["cumulative_regret"] / vw["cumulative_regret"]
        s["rounds_per_s_ratio_keel_to_vw"] = keel["rounds_per_s"] / vw["rounds_per_s"]
        s["rounds_per_s_ratio_keel_to_vw_from_file"] = keel["rounds_per_s"] / vw["file_rounds_per_s"]
        s["goal_regret_met"] = keel["cumulative_regret"] < vw["cumulative_regret"]
        s["goal_rounds_per_s_met"] = keel["rounds_per_s"] > vw["rounds_per_s"]
    if name == "bernoulli":
        for key, label in (("thompson", KEEL_BERNOULLI[0][0]), ("ucb1", "ucb1")):
            r = next((r for r in pol if r["label"] == label), None)
            if r:
                s[f"{key}_regret"] = r["cumulative_regret"]
                if vw:
                    s[f"{key}_regret_ratio_to_vw"] = r["cumulative_regret"] / vw["cumulative_regret"]
                    s[f"{key}_rounds_per_s_ratio_to_vw"] = r["rounds_per_s"] / vw["rounds_per_s"]
    s["max_other_cores"] = max((r["other_cores"] for r in pol if r["other_cores"] is not None),
                               default=None)
    return s


def print_table(results: dict) -> None:
    for name, out in results["workloads"].items():
        st = out["stats"]
        print(f"\n{name}: {out['rounds']:,} rounds, {out['env']['arms']} arms, "
              f"dim {out['env'].get('dim', 0)}; oracle expected reward "
              f"{st['oracle_expected_reward']:,.1f}; uniform policy regret "
              f"{st['uniform_policy_regret']:,.1f}; best single arm regret "
              f"{st['best_single_arm_regret']:,.1f}")
        vw = best_of(out["policies"], "vw")
        hdr = (f"  {'policy':<52} {'regret':>10} {'reward':>8} {'rounds/s':>11} "
               f"{'÷VW regret':>10} {'×VW r/s':>8} {'other':>6}")
        print(hdr)
        print("  " + "-" * (len(hdr) - 2))
        for r in out["policies"]:
            rr = f"{r['cumulative_regret'] / vw['cumulative_regret']:.2f}" if vw else "-"
            sp = f"{r['rounds_per_s'] / vw['rounds_per_s']:.1f}" if vw else "-"
            oc = "-" if r["other_cores"] is None else r["other_cores"]
            extra = (f"  (from a file: {r['file_rounds_per_s']:,.0f}/s)"
                     if "file_rounds_per_s" in r else "")
            print(f"  {r['label']:<52} {r['cumulative_regret']:>10,.1f} {r['reward']:>8,} "
                  f"{r['rounds_per_s']:>11,.0f} {rr:>10} {sp:>8} {oc:>6}{extra}")
        s = out["summary"]
        for key in ("thompson", "ucb1"):
            if f"{key}_regret_ratio_to_vw" in s:
                print(f"  {key}: regret {s[f'{key}_regret']:,.1f} against the oracle, "
                      f"{s[f'{key}_regret_ratio_to_vw']:.2f}x VW's best ({s['vw_best']}), "
                      f"{s[f'{key}_rounds_per_s_ratio_to_vw']:.1f}x its rounds/s")
        if "goal_regret_met" in s:
            print(f"  Keel's best: {s['keel_best']}; VW's best: {s['vw_best']}. "
                  f"Regret {s['regret_ratio_keel_to_vw']:.2f}x VW's "
                  f"({'met' if s['goal_regret_met'] else 'NOT met'}: lower than VW's best), "
                  f"rounds/s {s['rounds_per_s_ratio_keel_to_vw']:.1f}x "
                  f"({'met' if s['goal_rounds_per_s_met'] else 'NOT met'}; "
                  f"{s['rounds_per_s_ratio_keel_to_vw_from_file']:.1f}x VW from a file)")
        if s["max_other_cores"] is not None:
            print(f"  other processes used at most {s['max_other_cores']} cores during a policy's "
                  f"run (of {os.cpu_count()}): figures taken while it is high are suspect")


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

    for pkg in ("vowpalwabbit", "numpy"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = None
    try:
        info["keel_commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True, timeout=10).stdout.strip()
        # What bandit_sim runs: uncommitted changes there make the commit a lie.
        info["keel_sim_sources_dirty"] = bool(subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", *SIM_SOURCES],
            capture_output=True, text=True, timeout=10).stdout.strip())
        st = Path(args.keel_sim).stat()
        info["keel_sim"] = str(args.keel_sim)
        info["keel_sim_mtime_utc"] = _dt.datetime.fromtimestamp(
            st.st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
    except Exception:  # pragma: no cover
        pass
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel-sim", type=Path, required=True,
                    help="the release build of keel-experiment's bandit_sim example")
    ap.add_argument("--only", default="contextual,bernoulli")
    ap.add_argument("--rounds", type=int, default=None, help="override the environments' rounds")
    ap.add_argument("--checkpoint", type=int, default=10_000)
    ap.add_argument("--skip-vw", action="store_true")
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="add this to each environment's stream seed (another draw of the same "
                         "environment, to see how much a figure moves between streams)")
    ap.add_argument("--vw", action="append", default=[], metavar="ARGS[;cost]",
                    help="an extra VW configuration for the contextual environment, e.g. "
                         "'--cb_explore_adf --squarecb -q UA --gamma_scale 100;one_minus' "
                         "(cost neg = -reward, the default, or one_minus = 1 - reward)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bandits.json")
    args = ap.parse_args()
    only = [w for w in args.only.split(",") if w]
    bad = [w for w in only if w not in ENVS]
    if bad:
        ap.error(f"unknown workload: {bad}")
    if not args.keel_sim.is_file():
        ap.error(f"bandit_sim not found at {args.keel_sim} (bench/run bandits builds it)")
    args.keel_sim = args.keel_sim.resolve()
    args.extra_vw = []
    for spec in args.vw:
        a, _, c = spec.partition(";")
        if c not in ("", "neg", "one_minus"):
            ap.error(f"--vw {spec!r}: cost must be neg or one_minus")
        args.extra_vw.append((a.strip(), c or "neg"))

    results: dict = {"machine": versions(args),
                     "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                     "options": {"rounds": args.rounds, "checkpoint": args.checkpoint,
                                 "policy_seed": POLICY_SEED, "seed_offset": args.seed_offset,
                                 "only": only, "served_propensity_draws": SERVED_DRAWS},
                     "vw_search": VW_SEARCH,
                     "workloads": {}, "errors": {}}
    status = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keel-bandits-bench-") as tmp:
        for name in only:
            try:
                run_env(name, args, Path(tmp), results)
            except Exception as exc:  # keep going: record and report
                import traceback
                log(f"!! {name} failed: {exc!r}")
                results["errors"][name] = traceback.format_exc()[-6000:]
    if results["errors"]:
        status = 1
    results["wall_s"] = round(time.perf_counter() - t0, 1)
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
