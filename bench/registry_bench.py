#!/usr/bin/env python3
"""Keel vs. `mlflow server`: the model registry, the same workloads against
both in one run.

Workloads (select with --only, comma separated; default all):

  search      a registry of 1,000 models x 100 versions (100,000 versions,
              tagged, each with its own run_id and source): p50/p99 latency
              and server CPU per query for `model-versions/search` (name =,
              name LIKE, tags.team =, run_id =, source_path LIKE, 10 pages
              by page_token) and `registered-models/search` (name LIKE,
              ORDER BY last_updated_timestamp DESC); the result sets are
              compared between the servers. Then an alias on every model and
              `registered-models/alias` resolution on the same registry.
              Keel is populated over HTTP, mlflow through its own store
              (template rows) plus bulk SQL into its SQLite file.
  load_model  the real mlflow client: log a scikit-learn model with
              registered_model_name, set an alias, then load
              `models:/NAME@champion` into a fresh directory and predict,
              N times; predictions compared with the original model's.

The server machinery (spawn, /health, process-tree CPU and memory, noise
accounting) is tracking_bench.py's. Every loop is bounded in count and time;
every request goes to 127.0.0.1. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tracking_bench as tb  # noqa: E402  (sets the mlflow client's environment first)
import requests  # noqa: E402

HERE = tb.HERE
SERVERS = tb.SERVERS
WORKLOADS = ("search", "load_model")

FULL = dict(
    models=1000, versions=100, teams=10,
    search_reps=200, search_warmup=2, search_deadline_s=60.0, search_pages=10,
    alias_reps=2000, alias_deadline_s=60.0,
    load_reps=20,
    populate_deadline_s=900.0, populate_workers=2, populate_threads=8,
)
QUICK = dict(
    models=100, versions=50, teams=10,
    search_reps=30, search_warmup=1, search_deadline_s=10.0, search_pages=5,
    alias_reps=200, alias_deadline_s=10.0,
    load_reps=5,
    populate_deadline_s=300.0, populate_workers=2, populate_threads=8,
)
PAGE_SIZE = 100
ORDER = ["name ASC", "version_number DESC"]  # explicit: the servers' default orders differ
# mlflow's server caps model-version pages at 200,000, Keel's at 50,000.
FULL_SET_MAX = 50_000
STAGE_HINTS = ["candidate", "shadow", "production", "archived"]
BASE_TS = 1_700_000_000_000
ALIAS = "champion"
log = tb.log


# --------------------------------------------------------------------------
# the registry's contents (seeded: identical on both servers)
# --------------------------------------------------------------------------


def model_name(i: int) -> str:
    return f"model-{i:04d}"


def model_tags(i: int) -> dict:
    return {"owner": f"owner-{i % 7}"}


def model_description(i: int) -> str:
    return f"registry benchmark model {i}"


def version_data(i: int, v: int, sizes) -> dict:
    """Model i's version v (1-based): source, run_id and tags."""
    rng = random.Random(i * 100_003 + v)
    return {
        "source": f"s3://bucket/{model_name(i)}/v{v}/artifacts",
        "run_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "tags": {"team": f"team-{rng.randrange(sizes['teams'])}",
                 "stage_hint": STAGE_HINTS[rng.randrange(len(STAGE_HINTS))]},
    }


def alias_version(i: int, sizes) -> int:
    return (i * 7) % sizes["versions"] + 1


def decile_prefix(d: int, sizes) -> str:
    """A name prefix matching a tenth of the models (model counts are powers of ten)."""
    n = sizes["models"]
    tenth = n // 10
    return model_name(d * tenth)[: -(len(str(tenth)) - 1) or None]


# --------------------------------------------------------------------------
# populating
# --------------------------------------------------------------------------


def _populate_keel_chunk(args):
    uri, models, sizes, threads, deadline = args
    local = threading.local()

    def sess():
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def one_model(i):
        if time.time() > deadline:
            return 0
        s = sess()
        name = model_name(i)
        tb.api(s, uri, "POST", "/registered-models/create", json={
            "name": name, "tags": [{"key": k, "value": v} for k, v in model_tags(i).items()]})
        done = 0
        for v in range(1, sizes["versions"] + 1):
            if time.time() > deadline:
                break
            d = version_data(i, v, sizes)
            r = tb.api(s, uri, "POST", "/model-versions/create", json={
                "name": name, "source": d["source"], "run_id": d["run_id"],
                "tags": [{"key": k, "value": x} for k, x in d["tags"].items()]})
            if r["model_version"]["version"] != str(v):
                raise RuntimeError(f"{name}: expected version {v}, got {r['model_version']['version']}")
            done += 1
        return done

    with ThreadPoolExecutor(threads) as ex:
        return sum(ex.map(one_model, models))


def populate_keel(srv, sizes) -> dict:
    """Over HTTP, models spread over processes x threads, each model's
    versions created in order (the server numbers them); then every model
    is updated once in name order so `last_updated_timestamp` orders them
    as in the mlflow store."""
    workers, threads = sizes["populate_workers"], sizes["populate_threads"]
    deadline = time.time() + sizes["populate_deadline_s"]
    n = sizes["models"]
    t = time.perf_counter()
    c0 = srv.cpu()
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as pool:
        done = sum(pool.map(_populate_keel_chunk, [
            (srv.uri, list(range(w, n, workers)), sizes, threads, deadline)
            for w in range(workers)]))
    create_s = time.perf_counter() - t
    s = requests.Session()
    last = 0
    for i in range(n):
        # distinct milliseconds, so the order does not fall back to ties
        while int(time.time() * 1000) <= last + 1:
            time.sleep(0.001)
        tb.api(s, srv.uri, "PATCH", "/registered-models/update",
               json={"name": model_name(i), "description": model_description(i)})
        last = int(time.time() * 1000)
    s.close()
    return {"method": f"HTTP registered-models/create + model-versions/create, "
                      f"{workers} procs x {threads} threads; then registered-models/update "
                      f"per model in name order",
            "models": n, "versions": done, "seconds": time.perf_counter() - t,
            "create_s": create_s, "requests": n + done + n,
            "server_cpu_s": srv.cpu() - c0,
            "deadline_hit": done < n * sizes["versions"]}


def populate_mlflow(db: Path, sizes) -> dict:
    """mlflow's own registry SqlAlchemyStore creates the schema and one
    model with one version (as the server would); their rows are the
    templates for every model and version, bulk-inserted in one transaction
    (every column as mlflow wrote it, with this benchmark's values)."""
    from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    t = time.perf_counter()
    store = SqlAlchemyStore(f"sqlite:///{db}")
    n0 = model_name(0)
    store.create_registered_model(n0, tags=[RegisteredModelTag(k, v) for k, v in model_tags(0).items()])
    store.update_registered_model(n0, model_description(0))
    d0 = version_data(0, 1, sizes)
    store.create_model_version(n0, d0["source"], run_id=d0["run_id"],
                               tags=[ModelVersionTag(k, v) for k, v in d0["tags"].items()])
    store.engine.dispose()
    schema_s = time.perf_counter() - t

    con = sqlite3.connect(str(db))
    con.row_factory = sqlite3.Row
    tmpl = {tbl: [dict(r) for r in con.execute(f"SELECT * FROM {tbl} WHERE name = ?", (n0,))]
            for tbl in ("registered_models", "registered_model_tags", "model_versions",
                        "model_version_tags")}
    assert len(tmpl["registered_models"]) == 1 and len(tmpl["model_versions"]) == 1, tmpl
    assert {r["key"] for r in tmpl["model_version_tags"]} == set(d0["tags"]), tmpl
    assert tmpl["model_versions"][0]["storage_location"] == d0["source"], tmpl
    n, nv = sizes["models"], sizes["versions"]
    rows = {k: [] for k in tmpl}
    # Versions were created one after another, model by model; then each
    # model was updated once, in name order (as populate_keel does).
    touched = BASE_TS + n * nv + 1000
    for i in range(n):
        name = model_name(i)
        rows["registered_models"].append(dict(
            tmpl["registered_models"][0], name=name, creation_time=BASE_TS + i * nv,
            last_updated_time=touched + 10 * i, description=model_description(i)))
        mt = model_tags(i)
        for r in tmpl["registered_model_tags"]:
            rows["registered_model_tags"].append(dict(r, name=name, value=mt[r["key"]]))
        for v in range(1, nv + 1):
            d = version_data(i, v, sizes)
            ts = BASE_TS + i * nv + v
            rows["model_versions"].append(dict(
                tmpl["model_versions"][0], name=name, version=v, creation_time=ts,
                last_updated_time=ts, source=d["source"], storage_location=d["source"],
                run_id=d["run_id"]))
            for r in tmpl["model_version_tags"]:
                rows["model_version_tags"].append(dict(r, name=name, version=v,
                                                       value=d["tags"][r["key"]]))
    with con:
        for tbl in ("model_version_tags", "model_versions", "registered_model_tags",
                    "registered_models"):
            con.execute(f"DELETE FROM {tbl}")
        for tbl in ("registered_models", "registered_model_tags", "model_versions",
                    "model_version_tags"):
            rs = rows[tbl]
            if not rs:
                continue
            cols = list(rs[0].keys())
            con.executemany(
                f"INSERT INTO {tbl} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [tuple(r[c] for c in cols) for r in rs])
    versions = con.execute("SELECT count(*) FROM model_versions").fetchone()[0]
    models = con.execute("SELECT count(*) FROM registered_models").fetchone()[0]
    con.close()
    return {"method": "registry SqlAlchemyStore (schema + template model and version) "
                      "+ bulk INSERT of every model, version and tag",
            "models": models, "versions": versions, "seconds": time.perf_counter() - t,
            "schema_s": schema_s}


# --------------------------------------------------------------------------
# workload: search, then aliases, on one populated registry
# --------------------------------------------------------------------------


def _mv_sig(r) -> str:
    items = [f"{x['name']}/{x['version']}" for x in r.get("model_versions", [])]
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:12] + f":{len(items)}"


def _rm_sig(r) -> str:
    items = [x["name"] for x in r.get("registered_models", [])]
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:12] + f":{len(items)}"


def version_queries(sizes):
    """(name, description, params(k) for model-versions/search)."""
    n, nv = sizes["models"], sizes["versions"]

    def q(flt):
        return {"filter": flt, "max_results": PAGE_SIZE, "order_by": ORDER}

    def run_of(k):
        i, v = (k * 37) % n, (k * 13) % nv + 1
        return version_data(i, v, sizes)["run_id"]

    return [
        ("mv_name_eq", f"name = 'model-NNNN' ({nv} versions)",
         lambda k: q(f"name = '{model_name((k * 37) % n)}'")),
        ("mv_name_like", f"name LIKE '{decile_prefix(0, sizes)}%' (a tenth of the models)",
         lambda k: q(f"name LIKE '{decile_prefix(k % 10, sizes)}%'")),
        ("mv_tag_eq", f"tags.team = 'team-N' (1 in {sizes['teams']} versions)",
         lambda k: q(f"tags.team = 'team-{k % sizes['teams']}'")),
        ("mv_run_id_eq", "run_id = '<32 hex>' (1 version)",
         lambda k: q(f"run_id = '{run_of(k)}'")),
        ("mv_source_like", f"source_path LIKE 's3://bucket/{decile_prefix(1, sizes)}%' (a tenth)",
         lambda k: q(f"source_path LIKE 's3://bucket/{decile_prefix(k % 10, sizes)}%'")),
    ]


def model_queries(sizes):
    """(name, description, params(k) for registered-models/search)."""
    return [
        ("rm_name_like", f"name LIKE '{decile_prefix(0, sizes)}%', default order (name)",
         lambda k: {"filter": f"name LIKE '{decile_prefix(k % 10, sizes)}%'",
                    "max_results": PAGE_SIZE}),
        ("rm_order_updated", "no filter, ORDER BY last_updated_timestamp DESC",
         lambda k: {"max_results": PAGE_SIZE, "order_by": ["last_updated_timestamp DESC"]}),
    ]


def measure(srv, fn, n, deadline_s, warmup):
    r = tb.measure_cpu(srv, n, deadline_s, fn, warmup=warmup)
    r.pop("lat_mean_ms", None)
    return r


def run_registry_searches(srv, sizes) -> dict:
    s = requests.Session()
    out = {}
    reps, dl, wu = sizes["search_reps"], sizes["search_deadline_s"], sizes["search_warmup"]

    def get(path, params, timeout=300):
        return tb.api(s, srv.uri, "GET", path, params=params, timeout=timeout)

    for path, queries, sig in (("/model-versions/search", version_queries(sizes), _mv_sig),
                               ("/registered-models/search", model_queries(sizes), _rm_sig)):
        for name, desc, gen in queries:
            sigs = []

            def fn(k, gen=gen, sigs=sigs, path=path, sig=sig):
                r = get(path, gen(k))
                if 0 <= k < 10:
                    sigs.append(sig(r))
            res = measure(srv, fn, reps, dl, wu)
            out[name] = dict(res, desc=desc, endpoint=path, result_signatures=sigs)
            log(f"  {srv.kind} {name}: p50 {tb.fmt(res['lat_p50_ms'])} ms, p99 "
                f"{tb.fmt(res['lat_p99_ms'])} ms, {tb.fmt(res['cpu_ms_per_req'])} ms CPU/req "
                f"(n={res['requests']})")

    # paging: follow next_page_token through search_pages pages, over again
    pages = sizes["search_pages"]
    state = {"token": None}
    sigs = []

    def page(k):
        params = {"max_results": PAGE_SIZE, "order_by": ORDER}
        if k >= 0 and k % pages and state["token"]:
            params["page_token"] = state["token"]
        r = get("/model-versions/search", params)
        if k >= 0:
            state["token"] = r.get("next_page_token")
            if k < pages:
                sigs.append(_mv_sig(r))
    n_pages = max(pages, reps // pages * pages)
    res = measure(srv, page, n_pages, dl, wu)
    out["mv_paging"] = dict(res, desc=f"no filter, {pages} pages of {PAGE_SIZE} by page_token "
                                      f"(figures per page)",
                            endpoint="/model-versions/search", result_signatures=sigs)
    log(f"  {srv.kind} mv_paging: p50 {tb.fmt(res['lat_p50_ms'])} ms, p99 "
        f"{tb.fmt(res['lat_p99_ms'])} ms, {tb.fmt(res['cpu_ms_per_req'])} ms CPU/req "
        f"(n={res['requests']})")

    # the whole result set of each filter (k = 0), outside the timings
    full = {}
    for name, desc, gen in version_queries(sizes):
        params = dict(gen(0), max_results=FULL_SET_MAX)
        t = time.perf_counter()
        r = get("/model-versions/search", params, timeout=600)
        full[name] = {"filter": params["filter"], "signature": _mv_sig(r),
                      "count": len(r.get("model_versions", [])),
                      "more": bool(r.get("next_page_token")),
                      "seconds": time.perf_counter() - t}
    # what a bare REST call gets: no max_results, no order_by
    bare = {"filter": "name LIKE 'model-000%'"}
    r = get("/model-versions/search", bare, timeout=600)
    full["bare_request"] = {"filter": bare["filter"], "signature": _mv_sig(r),
                            "count": len(r.get("model_versions", [])),
                            "more": bool(r.get("next_page_token"))}
    s.close()
    return {"queries": out, "full_results": full}


def run_aliases(srv, sizes) -> dict:
    s = requests.Session()
    n = sizes["models"]
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        tb.api(s, srv.uri, "POST", "/registered-models/alias",
               json={"name": model_name(i), "alias": ALIAS, "version": str(alias_version(i, sizes))})
        lat.append(time.perf_counter() - t)
    set_s = time.perf_counter() - t0
    srv.settle(limit_s=30)
    wrong = []

    def resolve(k):
        i = k % n
        r = tb.api(s, srv.uri, "GET", "/registered-models/alias",
                   params={"name": model_name(i), "alias": ALIAS})
        mv = r["model_version"]
        if mv["name"] != model_name(i) or mv["version"] != str(alias_version(i, sizes)):
            wrong.append((model_name(i), mv["name"], mv["version"]))
    res = measure(srv, resolve, sizes["alias_reps"], sizes["alias_deadline_s"], 20)
    s.close()
    log(f"  {srv.kind} alias: set {n} in {set_s:.1f}s; resolve p50 {tb.fmt(res['lat_p50_ms'])} ms, "
        f"p99 {tb.fmt(res['lat_p99_ms'])} ms, {tb.fmt(res['cpu_ms_per_req'])} ms CPU/req, "
        f"{len(wrong)} wrong")
    return {"set": {"aliases": n, "seconds": set_s, "lat_p50_ms": tb.pct(lat, 50) * 1000,
                    "lat_p99_ms": tb.pct(lat, 99) * 1000},
            "resolve": res, "wrong_versions": wrong[:10], "wrong_count": len(wrong)}


def wl_search(kind, opts, sizes) -> dict:
    with tb.ServerSession(kind, opts, "registry") as srv:
        if kind == "keel":
            srv.start()
            srv.settle()
            pop = populate_keel(srv, sizes)
        else:
            pop = populate_mlflow(srv.db_path, sizes)
            srv.start()
        srv.settle()
        log(f"  {kind} registry: {pop['models']} models, {pop['versions']} versions in "
            f"{pop['seconds']:.1f}s ({pop['method']})")
        c0, t0 = srv.cpu(), time.monotonic()
        time.sleep(3.0)
        idle = (srv.cpu() - c0) / (time.monotonic() - t0)
        res = run_registry_searches(srv, sizes)
        res["aliases"] = run_aliases(srv, sizes)
        res["populate"] = pop
        res["idle_cpu_ms_per_s"] = idle * 1000
        res["rss_after"] = srv.mem()
        return res


# --------------------------------------------------------------------------
# workload: the mlflow client's load_model round trip
# --------------------------------------------------------------------------


def wl_load_model(kind, opts, sizes) -> dict:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    expected = model.predict(X)
    name = "iris-classifier"
    with tb.ServerSession(kind, opts, "load_model") as srv:
        srv.start()
        srv.settle()
        mlflow.set_tracking_uri(srv.uri)
        mlflow.set_registry_uri(srv.uri)
        client = MlflowClient(tracking_uri=srv.uri, registry_uri=srv.uri)
        tmp = Path(tempfile.mkdtemp(prefix="keel-bench-load-"))
        quiet = contextlib.redirect_stdout(io.StringIO())
        try:
            with quiet:
                mlflow.set_experiment("registry-bench")
                # The first log_model in a process pays one-time client costs
                # (imports, the first requirements inference): not timed.
                with mlflow.start_run():
                    mlflow.sklearn.log_model(model, name="warm-up")
                t = time.perf_counter()
                with mlflow.start_run():
                    info = mlflow.sklearn.log_model(model, name="model",
                                                    registered_model_name=name)
                log_s = time.perf_counter() - t
                version = info.registered_model_version
                client.set_registered_model_alias(name, ALIAS, version)
                uri = f"models:/{name}@{ALIAS}"
                # warm-up (imports, connection pool), not counted
                (tmp / "warm").mkdir()
                mlflow.pyfunc.load_model(uri, dst_path=str(tmp / "warm")).predict(X)
                srv.settle(limit_s=30)
                loads, predicts, totals, equal = [], [], [], []
                c0, p0 = srv.cpu(), time.process_time()
                for k in range(sizes["load_reps"]):
                    dst = tmp / f"load-{k}"
                    dst.mkdir()  # load_model wants an existing, here empty, directory
                    t = time.perf_counter()
                    m = mlflow.pyfunc.load_model(uri, dst_path=str(dst))
                    t1 = time.perf_counter()
                    pred = m.predict(X)
                    t2 = time.perf_counter()
                    loads.append(t1 - t)
                    predicts.append(t2 - t1)
                    totals.append(t2 - t)
                    equal.append(bool(np.array_equal(np.asarray(pred), expected)))
                    shutil.rmtree(dst, ignore_errors=True)
                cpu, client_cpu = srv.cpu() - c0, time.process_time() - p0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    ms = lambda xs, q: tb.pct(xs, q) * 1000  # noqa: E731
    out = {"model": "LogisticRegression on iris (150 x 4)", "registered_version": str(version),
           "log_model_s": log_s, "reps": len(totals),
           "total_p50_ms": statistics.median(totals) * 1000, "total_p90_ms": ms(totals, 90),
           "load_p50_ms": statistics.median(loads) * 1000, "load_p90_ms": ms(loads, 90),
           "predict_p50_ms": statistics.median(predicts) * 1000,
           "server_cpu_ms_per_load": cpu * 1000 / len(totals),
           "client_cpu_ms_per_load": client_cpu * 1000 / len(totals),
           "predictions_equal": all(equal), "predictions_equal_count": sum(equal)}
    log(f"  {kind} load_model: p50 {out['total_p50_ms']:.0f} ms, p90 {out['total_p90_ms']:.0f} ms, "
        f"server CPU {out['server_cpu_ms_per_load']:.1f} ms/load, predictions equal "
        f"{out['predictions_equal_count']}/{len(totals)}")
    return out


# --------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------

SEARCH_GOAL = 10.0


def summarize(results: dict) -> list[dict]:
    rows = []

    def add(name, unit, k, m, goal=None, goal_ok=None):
        rows.append({"metric": name, "unit": unit, "keel": k, "mlflow": m,
                     "keel_advantage": tb.ratio(k, m), "goal": goal, "goal_met": goal_ok})

    def get(wl, kind, *path):
        x = results.get(wl, {}).get(kind)
        for p in path:
            if not isinstance(x, dict) or p not in x:
                return None
            x = x[p]
        return x

    def add_goal(name, unit, k, m):
        ra = tb.ratio(k, m)
        add(name, unit, k, m, goal=f">= {SEARCH_GOAL:.0f}x",
            goal_ok=None if ra is None else ra >= SEARCH_GOAL)

    if "search" in results:
        rows.append({"metric": "model versions populated", "unit": "count",
                     "keel": get("search", "keel", "populate", "versions"),
                     "mlflow": get("search", "mlflow", "populate", "versions"),
                     "keel_advantage": None, "goal": None, "goal_met": None})
        rows.append({"metric": "  populate time (keel: HTTP; mlflow: bulk SQL)", "unit": "s",
                     "keel": get("search", "keel", "populate", "seconds"),
                     "mlflow": get("search", "mlflow", "populate", "seconds"),
                     "keel_advantage": None, "goal": None, "goal_met": None})
        qk = get("search", "keel", "queries") or {}
        qm = get("search", "mlflow", "queries") or {}
        for q in list(dict.fromkeys(list(qk) + list(qm))):
            add_goal(f"search {q} p50", "ms", get("search", "keel", "queries", q, "lat_p50_ms"),
                     get("search", "mlflow", "queries", q, "lat_p50_ms"))
            add(f"  {q} p99", "ms", get("search", "keel", "queries", q, "lat_p99_ms"),
                get("search", "mlflow", "queries", q, "lat_p99_ms"))
            add_goal(f"  {q} server CPU/query", "ms",
                     get("search", "keel", "queries", q, "cpu_ms_per_req"),
                     get("search", "mlflow", "queries", q, "cpu_ms_per_req"))
        add("alias resolution p50", "ms", get("search", "keel", "aliases", "resolve", "lat_p50_ms"),
            get("search", "mlflow", "aliases", "resolve", "lat_p50_ms"))
        add("  alias resolution p99", "ms", get("search", "keel", "aliases", "resolve", "lat_p99_ms"),
            get("search", "mlflow", "aliases", "resolve", "lat_p99_ms"))
        add("  alias resolution server CPU/call", "ms",
            get("search", "keel", "aliases", "resolve", "cpu_ms_per_req"),
            get("search", "mlflow", "aliases", "resolve", "cpu_ms_per_req"))
        add("  set alias p50", "ms", get("search", "keel", "aliases", "set", "lat_p50_ms"),
            get("search", "mlflow", "aliases", "set", "lat_p50_ms"))
        add("  idle CPU with the registry loaded", "ms/s",
            get("search", "keel", "idle_cpu_ms_per_s"), get("search", "mlflow", "idle_cpu_ms_per_s"))
        add("  RSS after (sum over tree)", "MB", get("search", "keel", "rss_after", "rss_mb"),
            get("search", "mlflow", "rss_after", "rss_mb"))
    if "load_model" in results:
        add("load_model + predict p50", "ms", get("load_model", "keel", "total_p50_ms"),
            get("load_model", "mlflow", "total_p50_ms"))
        add("  load_model + predict p90", "ms", get("load_model", "keel", "total_p90_ms"),
            get("load_model", "mlflow", "total_p90_ms"))
        add("  server CPU per load", "ms", get("load_model", "keel", "server_cpu_ms_per_load"),
            get("load_model", "mlflow", "server_cpu_ms_per_load"))
        add("  client (python) CPU per load", "ms",
            get("load_model", "keel", "client_cpu_ms_per_load"),
            get("load_model", "mlflow", "client_cpu_ms_per_load"))
        add("  log_model(registered_model_name=...)", "s", get("load_model", "keel", "log_model_s"),
            get("load_model", "mlflow", "log_model_s"))
        rows.append({"metric": "  predictions equal the original model's", "unit": "",
                     "keel": get("load_model", "keel", "predictions_equal"),
                     "mlflow": get("load_model", "mlflow", "predictions_equal"),
                     "keel_advantage": None, "goal": None, "goal_met": None})
    return rows


def consistency(results: dict) -> list[str]:
    notes = []
    sk = (results.get("search", {}) or {}).get("keel") or {}
    sm = (results.get("search", {}) or {}).get("mlflow") or {}
    for kind, r in (("keel", sk), ("mlflow", sm)):
        pop = r.get("populate") or {}
        if pop.get("deadline_hit"):
            notes.append(f"{kind}: populate stopped at its deadline with {pop.get('versions')} versions")
        al = r.get("aliases") or {}
        if al.get("wrong_count"):
            notes.append(f"{kind}: {al['wrong_count']} alias resolutions returned the wrong version "
                         f"({al['wrong_versions'][:3]})")
    same_size = (sk.get("populate") or {}).get("versions") == (sm.get("populate") or {}).get("versions")
    if sk and sm and same_size:
        for q, a in (sk.get("queries") or {}).items():
            b = (sm.get("queries") or {}).get(q)
            if not b:
                continue
            n = min(len(a["result_signatures"]), len(b["result_signatures"]))
            diff = [j for j in range(n) if a["result_signatures"][j] != b["result_signatures"][j]]
            if diff:
                notes.append(f"{q}: {len(diff)} of the first {n} result pages differ "
                             f"(first: keel {a['result_signatures'][diff[0]]} vs mlflow "
                             f"{b['result_signatures'][diff[0]]})")
        for q, a in (sk.get("full_results") or {}).items():
            b = (sm.get("full_results") or {}).get(q)
            if b and (a["signature"], a["more"]) != (b["signature"], b["more"]):
                notes.append(f"whole result of {q} ({a['filter']!r}): keel {a['count']} versions"
                             f"{' + more pages' if a['more'] else ''} ({a['signature']}) vs mlflow "
                             f"{b['count']}{' + more pages' if b['more'] else ''} ({b['signature']})")
    lk = (results.get("load_model", {}) or {}).get("keel") or {}
    lm = (results.get("load_model", {}) or {}).get("mlflow") or {}
    for kind, r in (("keel", lk), ("mlflow", lm)):
        if r and not r.get("predictions_equal"):
            notes.append(f"load_model {kind}: predictions equal in only "
                         f"{r.get('predictions_equal_count')} of {r.get('reps')} loads")
    return notes


RUNNERS = {"search": wl_search, "load_model": wl_load_model}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel-bin", required=True)
    ap.add_argument("--mlflow-bin", default=str(Path(sys.executable).parent / "mlflow"))
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help=f"comma-separated workloads ({','.join(WORKLOADS)})")
    ap.add_argument("--servers", default=",".join(SERVERS), help="keel,mlflow or one of them")
    ap.add_argument("--quick", action="store_true", help="scaled-down sizes for a quick run")
    ap.add_argument("--models", type=int, help="registered models (a power of ten)")
    ap.add_argument("--versions", type=int, help="versions per model")
    ap.add_argument("--out", default=str(HERE / "results" / "registry.json"))
    ap.add_argument("--workdir", help="parent for the servers' temporary data dirs")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other workloads' results already in --out; replace only "
                         "the workloads run now (each workload records when it ran)")
    opts = ap.parse_args(argv)

    sizes = dict(QUICK if opts.quick else FULL)
    if opts.models:
        sizes["models"] = opts.models
    if opts.versions:
        sizes["versions"] = opts.versions
    if sizes["models"] < 10 or str(sizes["models"]).rstrip("0") != "1":
        ap.error("--models must be a power of ten (10, 100, 1000, ...)")
    only = [w.strip() for w in opts.only.split(",") if w.strip()]
    servers = [s.strip() for s in opts.servers.split(",") if s.strip()]
    bad = [w for w in only if w not in WORKLOADS] + [s for s in servers if s not in SERVERS]
    if bad:
        ap.error(f"unknown workload/server: {bad}")
    if "keel" in servers and not Path(opts.keel_bin).exists():
        ap.error(f"keel binary not found: {opts.keel_bin}")

    out = {"machine": tb.machine_info(opts), "sizes": sizes, "quick": opts.quick,
           "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
           "results": {}, "errors": {}, "noise": {}, "workload_runs": {}}
    if opts.merge and Path(opts.out).exists():
        prev = json.loads(Path(opts.out).read_text())
        for wl, res in prev.get("results", {}).items():
            if wl not in only:
                out["results"][wl] = res
                out["workload_runs"][wl] = prev.get("workload_runs", {}).get(
                    wl, {"date_utc": prev.get("machine", {}).get("date_utc"),
                         "command": prev.get("command")})
                for key in ("noise", "errors"):
                    out[key].update({k: v for k, v in prev.get(key, {}).items()
                                     if k.split("/")[0] == wl})
    t_start = time.perf_counter()
    for wl in only:
        out["results"][wl] = {}
        out["workload_runs"][wl] = {"date_utc": out["machine"]["date_utc"], "command": out["command"]}
        for kind in servers:
            log(f"== {wl} / {kind}")
            t = time.perf_counter()
            b0, o0 = tb.system_busy_s(), tb.tree_cpu_s(os.getpid())
            try:
                out["results"][wl][kind] = RUNNERS[wl](kind, opts, sizes)
            except Exception as exc:  # keep going: record and report
                import traceback
                log(f"!! {wl}/{kind} failed: {exc!r}")
                out["errors"][f"{wl}/{kind}"] = traceback.format_exc()[-4000:]
                out["results"][wl][kind] = None
            wall = time.perf_counter() - t
            busy, ours = tb.system_busy_s() - b0, tb.tree_cpu_s(os.getpid()) - o0
            out["noise"][f"{wl}/{kind}"] = {
                "wall_s": round(wall, 1), "machine_busy_cores": round(busy / wall, 2),
                "bench_cores": round(ours / wall, 2),
                "other_cores": round(max(0.0, busy - ours) / wall, 2)}
            log(f"   ({wall:.0f}s; other processes used {out['noise'][f'{wl}/{kind}']['other_cores']}"
                f" of {os.cpu_count()} cores meanwhile)")
    out["wall_s"] = time.perf_counter() - t_start
    out["summary"] = summarize(out["results"])
    out["differences"] = consistency(out["results"])
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    print()
    tb.print_table(out["summary"], out["differences"])
    if out["errors"]:
        print("\nErrors:")
        for k, v in out["errors"].items():
            print(f"  {k}: {v.strip().splitlines()[-1]}")
    print("\nOther load on the machine (cores used by processes outside the benchmark):")
    print("  " + ", ".join(f"{k} {v['other_cores']}" for k, v in out["noise"].items()))
    print(f"\nwrote {opts.out} ({out['wall_s']:.0f}s total)")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
