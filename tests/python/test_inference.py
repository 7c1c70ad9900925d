"""Keel's model serving over Open Inference Protocol V2 (KServe / Triton REST),
checked against onnxruntime and driven by Triton's own HTTP client.

Every model is trained here (scikit-learn, 300 rows, 6 features) and exported
with skl2onnx (opsets 17 and ai.onnx.ml 3) into a Triton-layout repository,
``DIR/<name>/<version>/model.onnx``, which one Keel server
(``keel server --model-repository DIR``) serves for the whole module:

* parity: logistic regression (2 and 3 classes), a random forest, gradient
  boosting (2 and 3 classes) and an MLP classifier, each with ZipMap on and
  off; gradient boosting with string class labels; random forest, gradient
  boosting and linear regressors; a pipeline (ColumnTransformer:
  StandardScaler, OneHotEncoder over a string and an int64 column; logistic
  regression), ZipMap on and off, asked about categories it never saw. Every
  output Keel gives equals onnxruntime's on the same rows (200 rows, and a
  batch of 1): labels exactly, probabilities within 1e-5, regressors within
  rtol 1e-6 / atol 1e-5, through ``tritonclient.http`` with binary data on
  and off and through plain JSON with ``requests``. Keel serves a ZipMap
  output (onnxruntime: a list of dicts) as an FP32 [N, C] matrix in
  class-label order under the same name; the reference is turned into that
  matrix. Tree models fed NaN and infinities agree with onnxruntime too, and
  ``allow_nan`` in model-settings.json lets them through to any model. Model
  metadata matches onnxruntime's signature.
* tritonclient's server and model calls (live, ready, metadata, model ready,
  repository index, load, unload) work against Keel.
* two versions of one model (different trained models) answer as themselves
  at ``/versions/N/infer``, the unversioned path as the highest, and
  ``model_version`` says which.
* every V2 datatype round-trips through an ``Identity`` graph, in JSON and in
  binary, bit for bit (FP16 decimals that are not halves: within half
  precision).
* bad requests of every kind: a 4xx (never a 5xx) with V2's
  ``{"error": str}`` naming the input or problem, and the model still answers
  a good request afterwards; a body over 64 MiB gets a 413. A keep-alive
  connection is either kept after an answer or closed with
  ``Connection: close``.
* hot swap under load: 8 threads infer without pause while a second version
  is added and loaded, and then replaced and loaded again; no request fails,
  every answer equals onnxruntime's for the model file its version had at the
  time, and no request started after a load returned is answered by what the
  load replaced.
* unload (404 afterwards) and load again; a broken model file leaves its model
  out of the index as UNAVAILABLE with the reason, and the server serves the
  rest.
* adaptive batching (``max_batch_size`` 64, ``max_batch_time`` 0.02 s): 32
  concurrent single-row requests and a few multi-row ones, in JSON and in
  binary, all get their own rows' answers. Timing is not asserted.

It also pins the fixes of bugs it found: JSON floats read to the nearest
double (FP64 round trips, FLT_MAX and its shortest decimal accepted), logistic
regression with string labels compiling, and every handler reading the whole
body before answering, so kept-alive connections survive errors.

The Keel binary must have ``keel server --model-repository``: without it the
module is skipped, or failed when CI=true.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import requests
import tritonclient.http as triton
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tritonclient.utils import InferenceServerException

from conftest import ServerProcess, keel_bin

TIMEOUT = 60
OPSETS = {"": 17, "ai.onnx.ml": 3}
TEST_ROWS = 200
MAX_BODY = 64 * 1024 * 1024
BATCH_SETTINGS = {"max_batch_size": 64, "max_batch_time": 0.02}

V2_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
V2_OF = {dt: name for name, dt in V2_DTYPES.items()}
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}



# --------------------------------------------------------------------------
# the models
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Model:
    """An exported model, the rows it is asked about and its reference."""

    name: str
    onnx: bytes
    feeds: dict[str, np.ndarray]  # TEST_ROWS rows, by input name
    classes: list | None = None  # class labels: the column order of a ZipMap
    regressor: bool = False
    settings: dict | None = None
    _session: ort.InferenceSession | None = dataclasses.field(default=None, repr=False)

    @property
    def session(self) -> ort.InferenceSession:
        if self._session is None:
            self._session = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        return self._session

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {k: v[start:stop] for k, v in self.feeds.items()}

    def reference(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """onnxruntime's outputs, a ZipMap's list of dicts as the [N, C]
        matrix Keel serves."""
        out = {}
        for name, value in zip(self.output_names, self.session.run(None, feeds)):
            if isinstance(value, list):
                assert self.classes is not None, name
                value = np.array([[d[c] for c in self.classes] for d in value], dtype=np.float32)
            out[name] = np.asarray(value)
        return out


def export(estimator, sample, zipmap: bool | None = None, classifier=None) -> bytes:
    """skl2onnx, ZipMap on or off for the final classifier."""
    options = None
    if zipmap is not None:
        options = {id(classifier if classifier is not None else estimator): {"zipmap": zipmap}}
    if isinstance(sample, list):
        onx = to_onnx(estimator, initial_types=sample, options=options, target_opset=OPSETS)
    else:
        onx = to_onnx(estimator, sample, options=options, target_opset=OPSETS)
    return onx.SerializeToString()


@dataclasses.dataclass
class Zoo:
    parity: dict[str, Model]
    extra: dict[str, Model]  # served for one test each (versions, swaps, batching...)
    swap_files: dict[str, Model]  # the hot swap's three model files, A, B and C

    def __getitem__(self, name: str) -> Model:
        return {**self.parity, **self.extra}[name]


def classification_data():
    X, y3 = make_classification(n_samples=300, n_features=6, n_informative=4, n_redundant=1,
                                n_classes=3, random_state=0)
    X = X.astype(np.float32)
    y2 = (y3 == 1).astype(np.int64)
    rng = np.random.default_rng(7)
    # Wider than the training data, so that extreme scores and every tree
    # branch are reached.
    test = (rng.normal(size=(TEST_ROWS, 6)) * 1.7).astype(np.float32)
    return X, y2, y3, test


def build_zoo() -> Zoo:
    X, y2, y3, Xt = classification_data()
    classifiers = {
        "logreg_2": (LogisticRegression(max_iter=1000), y2),
        "logreg_3": (LogisticRegression(max_iter=1000), y3),
        "forest_3": (RandomForestClassifier(n_estimators=12, max_depth=6, random_state=0), y3),
        "boost_2": (GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0), y2),
        "boost_3": (GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0), y3),
        "mlp_3": (MLPClassifier(hidden_layer_sizes=(16,), max_iter=500, random_state=0), y3),
    }
    parity: dict[str, Model] = {}
    for base, (est, y) in classifiers.items():
        est.fit(X, y)
        for zipmap in (True, False):
            name = f"{base}_{'zipmap' if zipmap else 'plain'}"
            parity[name] = Model(name, export(est, X[:1], zipmap), {"X": Xt},
                                 classes=list(est.classes_))

    Xr, yr = make_regression(n_samples=300, n_features=6, noise=5.0, random_state=0)
    Xr = Xr.astype(np.float32)
    Xrt = (np.random.default_rng(8).normal(size=(TEST_ROWS, 6)) * 1.7).astype(np.float32)
    regressors = {
        "forest_reg": RandomForestRegressor(n_estimators=12, max_depth=6, random_state=0),
        "boost_reg": GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
        "linear_reg": LinearRegression(),
    }
    for name, est in regressors.items():
        est.fit(Xr, yr)
        parity[name] = Model(name, export(est, Xr[:1]), {"X": Xrt}, regressor=True)

    pipe, pipe_types, pipe_feeds = pipeline()
    for zipmap in (True, False):
        name = f"pipeline_{'zipmap' if zipmap else 'plain'}"
        parity[name] = Model(name, export(pipe, pipe_types, zipmap, pipe.steps[-1][1]),
                             pipe_feeds, classes=list(pipe.classes_))
    # String class labels: BYTES labels, a ZipMap keyed by strings.
    animals = np.array(["ant", "bee", "cat"])
    est = GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0)
    est.fit(X, animals[y3])
    parity["boost_3_strings"] = Model("boost_3_strings", export(est, X[:1], True), {"X": Xt},
                                      classes=list(est.classes_))

    extra: dict[str, Model] = {}
    # Two versions of one model: different models, the same signature.
    extra["versioned@1"] = dataclasses.replace(parity["logreg_3_plain"], name="versioned")
    extra["versioned@2"] = dataclasses.replace(parity["forest_3_plain"], name="versioned")
    extra["reloadable"] = dataclasses.replace(parity["logreg_3_zipmap"], name="reloadable")
    extra["nan_allowed"] = dataclasses.replace(parity["logreg_3_plain"], name="nan_allowed",
                                               settings={"allow_nan": True})
    extra["batched"] = dataclasses.replace(parity["forest_3_zipmap"], name="batched",
                                           settings=BATCH_SETTINGS)
    extra["batched_pipeline"] = dataclasses.replace(parity["pipeline_zipmap"],
                                                    name="batched_pipeline",
                                                    settings=BATCH_SETTINGS)
    pipe, pipe_types, pipe_feeds = pipeline(string_labels=True)
    extra["pipeline_strings"] = Model(
        "pipeline_strings", export(pipe, pipe_types, True, pipe.steps[-1][1]), pipe_feeds,
        classes=list(pipe.classes_))
    swap_files = {
        "A": dataclasses.replace(parity["logreg_3_plain"], name="swapped"),
        "B": dataclasses.replace(parity["forest_3_plain"], name="swapped"),
        "C": dataclasses.replace(parity["boost_3_plain"], name="swapped"),
    }
    for m in (*extra.values(), *swap_files.values()):
        m._session = None
    return Zoo(parity, extra, swap_files)


def pipeline(string_labels: bool = False):
    """StandardScaler + OneHotEncoder (string and int64 columns) + logistic
    regression (labels 0/1, or "churn"/"stays"); its test rows hold unseen
    categories (region "LATAM" and "", plan -1, 3 and 7)."""
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame({
        "age": rng.normal(40, 10, n).astype(np.float32),
        "income": rng.normal(5e4, 1e4, n).astype(np.float32),
        "region": rng.choice(["EU", "US", "APAC"], n),
        "plan": rng.integers(0, 3, n).astype(np.int64),
    })
    score = ((df["age"] - 40) / 10 + (df["region"] == "EU") * 1.2 - (df["plan"] == 2) * 1.5
             + rng.normal(0, 0.5, n))
    y = np.where(score > 0, "churn", "stays") if string_labels else (score > 0).astype(np.int64)
    pre = ColumnTransformer([
        ("num", StandardScaler(), ["age", "income"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "plan"]),
    ])
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))]).fit(df, y)
    types = [("age", FloatTensorType([None, 1])), ("income", FloatTensorType([None, 1])),
             ("region", StringTensorType([None, 1])), ("plan", Int64TensorType([None, 1]))]
    t = np.random.default_rng(4)
    feeds = {
        "age": t.normal(40, 14, (TEST_ROWS, 1)).astype(np.float32),
        "income": t.normal(5e4, 1.5e4, (TEST_ROWS, 1)).astype(np.float32),
        "region": t.choice(["EU", "US", "APAC", "LATAM", ""], (TEST_ROWS, 1)).astype(object),
        "plan": t.choice([-1, 0, 1, 2, 3, 7], (TEST_ROWS, 1)).astype(np.int64),
    }
    return pipe, types, feeds


def identity_model(datatype: str) -> bytes:
    t = ONNX_TYPES[datatype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], f"identity_{datatype.lower()}",
        [helper.make_tensor_value_info("x", t, ["N", 3])],
        [helper.make_tensor_value_info("y", t, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def dtype_model(datatype: str) -> str:
    return f"identity_{datatype.lower()}"


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------


class ModelServer(ServerProcess):
    """A Keel server that also serves a model repository."""

    def __init__(self, workdir: Path, repository: Path):
        super().__init__("sqlite", workdir)
        self.repository = repository

    def command(self) -> list[str]:
        return super().command() + ["--model-repository", str(self.repository)]


def require_model_repository() -> None:
    binary = keel_bin()
    problem = None
    if not binary.exists():
        problem = f"Keel binary not found at {binary}; build it (cargo build) or set KEEL_BIN"
    else:
        res = subprocess.run([str(binary), "server", "--help"], capture_output=True, text=True,
                             timeout=60)
        if "--model-repository" not in res.stdout:
            problem = f"{binary} has no `keel server --model-repository`"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (CI=true: a missing command fails the test)")
        pytest.skip(problem)


def write_model(repository: Path, name: str, version: int, model: Model | bytes) -> Path:
    path = repository / name / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = model if isinstance(model, bytes) else model.onnx
    # A new file, renamed over the old one: a load never reads half a model.
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    return build_zoo()


@pytest.fixture(scope="module")
def model_serving_binary() -> None:
    require_model_repository()


@pytest.fixture(scope="module")
def server(model_serving_binary, zoo, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("keel-inference")
    repository = workdir / "models"
    for m in zoo.parity.values():
        write_model(repository, m.name, 1, m)
    for key, m in zoo.extra.items():
        write_model(repository, m.name, int(key.split("@")[1]) if "@" in key else 1, m)
        if m.settings:
            (repository / m.name / "model-settings.json").write_text(json.dumps(m.settings))
    write_model(repository, "swapped", 1, zoo.swap_files["A"])
    for datatype in V2_DTYPES:
        write_model(repository, dtype_model(datatype), 1, identity_model(datatype))
    write_model(repository, "broken", 1, b"this is not an ONNX model")
    srv = ModelServer(workdir, repository)
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()
        if not os.environ.get("KEEL_TEST_KEEP_DATA"):
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def client(server):
    c = triton.InferenceServerClient(f"{server.host}:{server.port}",
                                     connection_timeout=TIMEOUT, network_timeout=TIMEOUT)
    yield c
    c.close()


# --------------------------------------------------------------------------
# V2 over JSON and binary
# --------------------------------------------------------------------------


def json_leaf(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if isinstance(x, bytes):
        return x.decode()
    return x


def json_data(a: np.ndarray, nested: bool = False):
    """V2 JSON data, row-major (nested arrays or flat); non-finite floats as
    V2's strings."""
    values = a.tolist() if nested else a.ravel().tolist()

    def walk(v):
        return [walk(x) for x in v] if isinstance(v, list) else json_leaf(v)

    return walk(values)


def json_tensor(name: str, a: np.ndarray, nested: bool = False) -> dict:
    return {"name": name, "datatype": V2_OF[a.dtype], "shape": list(a.shape),
            "data": json_data(a, nested)}


def json_body(feeds: dict[str, np.ndarray], nested: bool = False, **extra) -> dict:
    return {"inputs": [json_tensor(k, v, nested) for k, v in feeds.items()], **extra}


def from_json_float(x):
    return float(x) if not isinstance(x, str) else {
        "NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[x]


def outputs_of(response: dict, binary: bytes = b"") -> dict[str, np.ndarray]:
    """A V2 response's outputs as arrays (BYTES as str objects)."""
    out = {}
    offset = 0
    for o in response["outputs"]:
        dt = V2_DTYPES[o["datatype"]]
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            chunk = binary[offset:offset + size]
            offset += size
            if dt == object:
                items, rest = [], chunk
                while rest:
                    (n,) = struct.unpack("<I", rest[:4])
                    items.append(rest[4:4 + n].decode())
                    rest = rest[4 + n:]
                arr = np.array(items, dtype=object)
            else:
                arr = np.frombuffer(chunk, dtype=dt.newbyteorder("<")).astype(dt)
        else:
            data = o["data"]
            if dt.kind == "f":
                data = [from_json_float(x) for x in data]
            arr = np.array(data, dtype=dt)
        out[o["name"]] = arr.reshape(o["shape"])
    assert offset == len(binary), (offset, len(binary))
    return out


def url(server, name: str, version: str | None = None, what: str = "infer") -> str:
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "")
    return server.uri + path + (f"/{what}" if what else "")


def post_infer(server, name: str, body, version: str | None = None, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    return requests.post(url(server, name, version), data=data, headers=h, timeout=TIMEOUT)


def infer_json(server, name: str, feeds, version=None, nested=False, **extra):
    r = post_infer(server, name, json_body(feeds, nested, **extra), version)
    assert r.status_code == 200, (name, r.status_code, r.text[:2000])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    response = r.json()
    return response, outputs_of(response)


def split_binary(r: requests.Response) -> tuple[dict, bytes]:
    n = int(r.headers["inference-header-content-length"])
    return json.loads(r.content[:n]), r.content[n:]


def binary_request(inputs: list[tuple[str, str, list, bytes]], **extra) -> tuple[bytes, dict]:
    """A request in Triton's binary tensor extension; inputs are (name,
    datatype, shape, raw bytes)."""
    header = {"inputs": [{"name": n, "datatype": d, "shape": s,
                          "parameters": {"binary_data_size": len(b)}} for n, d, s, b in inputs],
              **extra}
    head = json.dumps(header).encode()
    body = head + b"".join(b for *_, b in inputs)
    return body, {"Inference-Header-Content-Length": str(len(head))}


def infer_triton(client, name: str, feeds, binary: bool, outputs: list[str] | None,
                 version: str = "", request_id: str = ""):
    inputs = []
    for k, v in feeds.items():
        t = triton.InferInput(k, list(v.shape), V2_OF[v.dtype])
        t.set_data_from_numpy(v, binary_data=binary)
        inputs.append(t)
    requested = None if outputs is None else [
        triton.InferRequestedOutput(o, binary_data=binary) for o in outputs]
    result = client.infer(name, inputs, model_version=version, outputs=requested,
                          request_id=request_id)
    response = result.get_response()
    return response, {o["name"]: result.as_numpy(o["name"]) for o in response["outputs"]}


def text(a: np.ndarray) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in a.ravel()]


def assert_same_outputs(model: Model, got: dict[str, np.ndarray], want: dict[str, np.ndarray],
                        where: str = ""):
    """Labels and every non-float output exactly, floats within 1e-5."""
    assert list(got) == list(want), (where, list(got), list(want))
    for name, ref in want.items():
        have = got[name]
        assert have.shape == ref.shape, (where, name, have.shape, ref.shape)
        if ref.dtype == object:
            assert text(have) == text(ref), (where, name)
        elif ref.dtype.kind == "f":
            assert have.dtype == ref.dtype, (where, name, have.dtype, ref.dtype)
            if model.regressor:
                # Tree regressors add float32 leaf values in a different order
                # than onnxruntime; outputs near 100 differ by a couple of
                # float32 ulps (spacing at 100: 7.6e-6), hence the relative term.
                np.testing.assert_allclose(have, ref, rtol=1e-6, atol=1e-5,
                                           err_msg=f"{where} {name}")
            else:
                np.testing.assert_allclose(have, ref, rtol=0, atol=1e-5,
                                           err_msg=f"{where} {name}")
        else:
            assert have.dtype == ref.dtype, (where, name, have.dtype, ref.dtype)
            np.testing.assert_array_equal(have, ref, err_msg=f"{where} {name}")


def same_outputs(model: Model, got, want) -> bool:
    try:
        assert_same_outputs(model, got, want)
        return True
    except AssertionError:
        return False


# --------------------------------------------------------------------------
# parity with onnxruntime
# --------------------------------------------------------------------------

PARITY_MODELS = (
    [f"{b}_{z}" for b in ("logreg_2", "logreg_3", "forest_3", "boost_2", "boost_3", "mlp_3")
     for z in ("zipmap", "plain")]
    + ["boost_3_strings", "forest_reg", "boost_reg", "linear_reg", "pipeline_zipmap",
       "pipeline_plain"]
)
TRANSPORTS = ("triton-binary", "triton-json", "requests-json")


def infer_any(server, client, model: Model, feeds, transport: str, request_id: str):
    if transport == "requests-json":
        response, got = infer_json(server, model.name, feeds, nested=True, id=request_id)
    else:
        response, got = infer_triton(client, model.name, feeds, transport == "triton-binary",
                                     model.output_names, request_id=request_id)
    assert response["model_name"] == model.name
    assert response["model_version"] == "1"
    assert response.get("id") == request_id, response
    return got


def test_the_zoo_is_what_it_says(zoo):
    """The parity models cover what the module claims: ZipMap outputs where
    zipmap is on, string labels, unseen categories in the pipeline (which
    decide some of its answers), and tree models whose probabilities are not
    trivially 0 or 1."""
    assert sorted(zoo.parity) == sorted(PARITY_MODELS)
    for name, m in zoo.parity.items():
        types = [o.type for o in m.session.get_outputs()]
        if name.endswith(("_zipmap", "_strings")):
            assert any(t.startswith("seq(map(") for t in types), (name, types)
        else:
            assert not any(t.startswith("seq") for t in types), (name, types)
    strings = zoo.parity["boost_3_strings"]
    assert [o.type for o in strings.session.get_outputs()] == [
        "tensor(string)", "seq(map(string,tensor(float)))"]
    assert set(strings.reference(strings.feeds)["output_label"]) == {"ant", "bee", "cat"}
    pipe = zoo.parity["pipeline_plain"]
    assert pipe.classes == [0, 1]
    assert set(pipe.feeds["region"].ravel()) - {"EU", "US", "APAC"} == {"LATAM", ""}
    assert set(pipe.feeds["plan"].ravel()) - {0, 1, 2} == {-1, 3, 7}
    labels = pipe.reference(pipe.feeds)["label"]
    assert set(labels) == {0, 1}
    # Unseen categories are all-zero one-hot columns: replacing them with a
    # seen one changes the probabilities.
    seen = {k: v.copy() for k, v in pipe.feeds.items()}
    seen["region"][seen["region"] == "LATAM"] = "EU"
    seen["plan"][seen["plan"] == 7] = 2
    assert np.abs(pipe.reference(seen)["probabilities"]
                  - pipe.reference(pipe.feeds)["probabilities"]).max() > 0.05
    forest = zoo.parity["forest_3_plain"].reference(zoo.parity["forest_3_plain"].feeds)
    assert list(forest) == ["label", "probabilities"]
    probs = forest["probabilities"]
    assert ((probs > 0.05) & (probs < 0.95)).mean() > 0.3
    assert len(set(forest["label"])) == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", PARITY_MODELS)
def test_outputs_equal_onnxruntime(server, client, zoo, name, transport):
    model = zoo.parity[name]
    for rows in ((0, TEST_ROWS), (17, 18)):
        feeds = model.rows(*rows)
        got = infer_any(server, client, model, feeds, transport, f"{name}-{rows[0]}")
        assert_same_outputs(model, got, model.reference(feeds), f"{transport} rows {rows}")


def test_logistic_regression_with_string_labels(server, client, zoo):
    """The pipeline again, trained on "churn" / "stays": the tree and MLP
    classifiers take string labels (boost_3_strings above), logistic
    regression must too."""
    model = zoo["pipeline_strings"]
    entries = index_entries(client, model.name)
    assert [e["state"] for e in entries] == ["READY"], entries
    for transport in TRANSPORTS:
        feeds = model.rows(0, 50)
        got = infer_any(server, client, model, feeds, transport, "strings")
        assert_same_outputs(model, got, model.reference(feeds), transport)


# tritonclient writes NaN and infinities into JSON as bare NaN / Infinity
# tokens, which are not JSON (Keel refuses them as malformed): in JSON they
# go as V2's strings "NaN", "Infinity", "-Infinity" with requests only.
@pytest.mark.parametrize("transport", ["triton-binary", "requests-json"])
@pytest.mark.parametrize("name", ["forest_3_zipmap", "boost_2_plain", "forest_reg", "boost_reg"])
def test_tree_models_take_nan_and_infinity_like_onnxruntime(server, client, zoo, name, transport):
    """Tree ensembles route missing values, so Keel accepts NaN and
    infinities for them; the answers equal onnxruntime's."""
    model = zoo.parity[name]
    x = model.feeds["X"][:60].copy()
    rng = np.random.default_rng(5)
    mask = rng.random(x.shape) < 0.25
    x[mask] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), mask.sum())
    feeds = {"X": x}
    got = infer_any(server, client, model, feeds, transport, "nan")
    assert_same_outputs(model, got, model.reference(feeds), transport)


def test_model_allowing_nan_in_its_settings(server, zoo):
    """`allow_nan: true` in model-settings.json lets NaN reach a model that
    has no tree or imputer (the same model without it refuses them, see the
    bad-request tests); the answer equals onnxruntime's."""
    model = zoo["nan_allowed"]
    x = model.feeds["X"][:4].copy()
    x[1, 2] = np.nan
    _, got = infer_json(server, model.name, {"X": x})
    want = model.reference({"X": x})
    # The row with a NaN has NaN scores, and its label is whichever index
    # the engine's ArgMax picks among NaNs: compare the other rows' labels
    # and every probability (NaN where it is NaN).
    np.testing.assert_allclose(got["probabilities"], want["probabilities"],
                               rtol=0, atol=1e-5, equal_nan=True)
    assert np.isnan(got["probabilities"][1]).all()
    keep = [0, 2, 3]
    np.testing.assert_array_equal(got["label"][keep], want["label"][keep])


def ort_v2_type(ort_type: str) -> str:
    inner = ort_type[len("tensor("):-1]
    return {"float": "FP32", "double": "FP64", "int64": "INT64", "string": "BYTES"}[inner]


@pytest.mark.parametrize("name", PARITY_MODELS)
def test_model_metadata_matches_the_onnx_signature(server, zoo, name):
    model = zoo.parity[name]
    r = requests.get(url(server, name, what=""), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["name"] == name and meta["versions"] == ["1"] and meta["platform"] == "onnx"
    want_inputs = [{"name": i.name, "datatype": ort_v2_type(i.type),
                    "shape": [d if isinstance(d, int) else -1 for d in i.shape]}
                   for i in model.session.get_inputs()]
    assert meta["inputs"] == want_inputs
    ref = model.reference(model.rows(0, 3))
    want_outputs = []
    for o in model.session.get_outputs():
        if o.type.startswith("seq(map("):
            datatype, shape = "FP32", [-1, len(model.classes)]
        else:
            datatype = ort_v2_type(o.type)
            shape = [-1] + list(ref[o.name].shape[1:])
        want_outputs.append({"name": o.name, "datatype": datatype, "shape": shape})
    assert meta["outputs"] == want_outputs


# --------------------------------------------------------------------------
# tritonclient's server and model calls
# --------------------------------------------------------------------------


def index_entries(client, name: str) -> list[dict]:
    return [e for e in client.get_model_repository_index() if e["name"] == name]


def test_tritonclient_server_and_model_calls(server, client, zoo):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "keel" and meta["version"]
    assert {"model_repository", "binary_tensor_data"} <= set(meta["extensions"])

    model = zoo.parity["logreg_3_zipmap"]
    m = client.get_model_metadata(model.name)
    assert m["name"] == model.name and m["versions"] == ["1"]
    assert [i["name"] for i in m["inputs"]] == ["X"]
    assert [o["name"] for o in m["outputs"]] == model.output_names
    assert client.get_model_metadata(model.name, model_version="1") == m

    assert client.is_model_ready(model.name)
    assert client.is_model_ready(model.name, "1")
    assert not client.is_model_ready(model.name, "2")
    assert not client.is_model_ready("no_such_model")
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("no_such_model")
    assert e.value.status() == "404" and "no_such_model" in e.value.message()

    index = client.get_model_repository_index()
    ready = {(e["name"], e.get("version")) for e in index if e["state"] == "READY"}
    for name in PARITY_MODELS:
        assert (name, "1") in ready
    assert {("versioned", "1"), ("versioned", "2")} <= ready
    for datatype in V2_DTYPES:
        assert (dtype_model(datatype), "1") in ready

    # Without requested outputs tritonclient asks for every output in binary
    # (parameters.binary_data_output); mixed: one binary, one JSON.
    feeds = model.rows(0, 5)
    want = model.reference(feeds)
    response, got = infer_triton(client, model.name, feeds, True, None)
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    assert_same_outputs(model, got, want, "binary_data_output")
    inputs = [triton.InferInput("X", [5, 6], "FP32")]
    inputs[0].set_data_from_numpy(feeds["X"], binary_data=False)
    result = client.infer(model.name, inputs, outputs=[
        triton.InferRequestedOutput("output_probability", binary_data=True),
        triton.InferRequestedOutput("output_label", binary_data=False)])
    outs = {o["name"]: o for o in result.get_response()["outputs"]}
    assert "data" in outs["output_label"] and "data" not in outs["output_probability"]
    assert [o["name"] for o in result.get_response()["outputs"]] == [
        "output_probability", "output_label"], "requested order"
    assert_same_outputs(model, {k: result.as_numpy(k) for k in model.output_names}, want, "mixed")


def test_unload_then_load(server, client, zoo):
    model = zoo["reloadable"]
    feeds = model.rows(0, 8)
    client.unload_model(model.name)
    assert not client.is_model_ready(model.name)
    r = post_infer(server, model.name, json_body(feeds))
    err = assert_v2_error(r, 404)
    assert model.name in err
    assert_v2_error(requests.get(url(server, model.name, what=""), timeout=TIMEOUT), 404)
    assert index_entries(client, model.name) == [
        {"name": model.name, "state": "UNAVAILABLE", "reason": "unloaded"}]
    # Unloading it again: it is not loaded.
    assert model.name in assert_v2_error(requests.post(
        f"{server.uri}/v2/repository/models/{model.name}/unload", timeout=TIMEOUT), 404)

    client.load_model(model.name)
    assert client.is_model_ready(model.name)
    assert [e["state"] for e in index_entries(client, model.name)] == ["READY"]
    _, got = infer_json(server, model.name, feeds)
    assert_same_outputs(model, got, model.reference(feeds))


def test_a_broken_model_is_reported_and_the_rest_served(server, client):
    entries = index_entries(client, "broken")
    assert len(entries) == 1 and entries[0]["state"] == "UNAVAILABLE", entries
    assert "model.onnx" in entries[0]["reason"], entries
    assert not client.is_model_ready("broken")
    r = requests.post(f"{server.uri}/v2/repository/models/broken/load", timeout=TIMEOUT)
    assert "broken" in assert_v2_error(r, 400)
    assert client.is_model_ready("logreg_2_plain")


# --------------------------------------------------------------------------
# versions
# --------------------------------------------------------------------------


def test_two_versions_answer_as_themselves(server, client, zoo):
    v1, v2 = zoo["versioned@1"], zoo["versioned@2"]
    feeds = v1.rows(0, 50)
    want1, want2 = v1.reference(feeds), v2.reference(feeds)
    assert np.abs(want1["probabilities"] - want2["probabilities"]).max() > 0.1

    for version, want, model in (("1", want1, v1), ("2", want2, v2), (None, want2, v2)):
        response, got = infer_json(server, "versioned", feeds, version=version)
        assert response["model_version"] == (version or "2"), response
        assert_same_outputs(model, got, want, f"version {version}")
        response, got = infer_triton(client, "versioned", feeds, True, model.output_names,
                                     version=version or "")
        assert response["model_version"] == (version or "2"), response
        assert_same_outputs(model, got, want, f"tritonclient version {version}")

    meta = client.get_model_metadata("versioned")
    assert meta["versions"] == ["1", "2"]
    assert client.get_model_metadata("versioned", "1")["versions"] == ["1"]
    assert client.is_model_ready("versioned", "1") and client.is_model_ready("versioned", "2")
    for bad in ("3", "0", "latest"):
        r = post_infer(server, "versioned", json_body(feeds), version=bad)
        assert bad in assert_v2_error(r, 404)
        assert not client.is_model_ready("versioned", bad)


# --------------------------------------------------------------------------
# datatypes
# --------------------------------------------------------------------------


def datatype_values(datatype: str) -> np.ndarray:
    """4 x 3 values of `datatype`, its limits included."""
    rng = np.random.default_rng(sum(map(ord, datatype)))
    dt = V2_DTYPES[datatype]
    if datatype == "BOOL":
        values = [True, False, True, True, False, False, True, False, False, True, True, False]
    elif datatype == "BYTES":
        values = ["", "a", "EU", "héllo wörld", "日本語", "with space", 'quo"te', "tab\tnl\n",
                  "nul\u0000inside", "emoji \U0001F389", "x" * 1000, "12"]
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        fill = rng.integers(info.min, info.max, size=7, dtype=dt, endpoint=True).tolist()
        values = [info.min, info.max, 0, 1, info.max - 1] + fill
    elif datatype == "FP16":
        tiny = float(np.finfo(np.float16).smallest_subnormal)
        values = [0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.103515625e-05, tiny,
                  0.333251953125] + rng.normal(size=3).astype(np.float16).tolist()
    elif datatype == "FP32":
        # Magnitudes from 1e-30 to 1e30 and the smallest normal and subnormal;
        # FLT_MAX itself: test_fp32_largest_values_in_json.
        f = np.finfo(np.float32)
        values = [0.0, -0.0, float(f.smallest_normal), float(f.smallest_subnormal)] + (
            rng.normal(size=8) * 10.0 ** rng.integers(-30, 30, size=8)).astype(np.float32).tolist()
    elif datatype == "FP64":
        f = np.finfo(np.float64)
        values = [0.0, -0.0, float(f.max), float(f.smallest_subnormal), float(f.smallest_normal),
                  0.1] + (rng.normal(size=6) * 10.0 ** rng.integers(-300, 300, size=6)).tolist()
    return np.array(values, dtype=dt).reshape(4, 3)


def datatype_params():
    for datatype in V2_DTYPES:
        for transport in ("requests-json", "triton-json", "triton-binary"):
            yield pytest.param(datatype, transport, id=f"{datatype}-{transport}")


@pytest.mark.parametrize("datatype,transport", datatype_params())
def test_every_datatype_round_trips(server, client, datatype, transport):
    name = dtype_model(datatype)
    x = datatype_values(datatype)
    if transport == "requests-json":
        response, got = infer_json(server, name, {"x": x})
    else:
        response, got = infer_triton(client, name, {"x": x}, transport == "triton-binary", ["y"])
    (out,) = response["outputs"]
    assert out["name"] == "y" and out["datatype"] == datatype and out["shape"] == [4, 3]
    y = got["y"]
    if datatype == "BYTES":
        assert text(y) == text(x)
    else:
        assert y.dtype == x.dtype and y.shape == x.shape
        # Bit for bit: -0.0 stays negative, subnormals survive.
        assert y.tobytes() == x.tobytes(), (x.ravel().tolist(), y.ravel().tolist())


def test_fp64_round_trips_in_binary_and_json_out(server):
    """Binary in, JSON out: Keel writes every double back exactly."""
    x = np.random.default_rng(11).normal(size=(300, 3)) * 10.0 ** np.random.default_rng(
        12).integers(-300, 300, size=(300, 3))
    body, headers = binary_request([("x", "FP64", [300, 3], x.tobytes())])
    r = post_infer(server, dtype_model("FP64"), body, headers=headers)
    assert r.status_code == 200, r.text
    got = outputs_of(r.json())["y"]
    assert got.tobytes() == x.tobytes()


def test_fp64_json_reads_ordinary_doubles_exactly(server):
    """Ordinary doubles (standard normal) in JSON, answered in binary: each
    must be the double its decimal names (Python writes the shortest decimal
    that reads back exactly)."""
    x = np.random.default_rng(13).normal(size=(300, 3))
    r = post_infer(server, dtype_model("FP64"),
                   json_body({"x": x}, parameters={"binary_data_output": True}))
    assert r.status_code == 200, r.text
    got = outputs_of(*split_binary(r))["y"].ravel()
    wrong = np.flatnonzero(got != x.ravel())
    assert len(wrong) == 0, (f"{len(wrong)} of {x.size} doubles changed, e.g. "
                             f"{x.ravel()[wrong[0]]!r} -> {got[wrong[0]]!r}")


FLT_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("decimal", [
    # Python's decimal for FLT_MAX (its exact double): must be read exactly,
    # not one ulp above FLT_MAX.
    pytest.param(repr(FLT_MAX), id="exact-decimal"),
    # The shortest decimal that reads back as FLT_MAX, which is what Keel's
    # own JSON answers hold (3.4028235e38, above FLT_MAX as a double): it
    # rounds to FLT_MAX, so the range check must come after rounding.
    pytest.param("3.4028235e38", id="shortest-decimal"),
])
def test_fp32_largest_values_in_json(server, decimal):
    body = ('{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], '
            f'"data": [{decimal}, -{decimal}, 1]}}]}}').encode()
    r = post_infer(server, dtype_model("FP32"), body)
    assert r.status_code == 200, r.text
    assert outputs_of(r.json())["y"].tolist() == [[FLT_MAX, -FLT_MAX, 1.0]]


def test_keel_writes_flt_max_as_its_shortest_decimal(server):
    """What the shortest-decimal case above feeds back: FLT_MAX in binary,
    answered in JSON."""
    x = np.array([[FLT_MAX, -FLT_MAX, 1]], dtype=np.float32)
    body, headers = binary_request([("x", "FP32", [1, 3], x.tobytes())])
    r = post_infer(server, dtype_model("FP32"), body, headers=headers)
    assert r.status_code == 200, r.text
    data = r.json()["outputs"][0]["data"]
    assert [float(v) for v in data] == [3.4028235e38, -3.4028235e38, 1.0], data
    assert np.array(data, dtype=np.float32).tobytes() == x.tobytes()


def test_fp16_json_values_are_rounded_to_half_precision(server):
    """Decimals that are not halves come back as the nearest half: within
    half precision's unit roundoff (2^-11 relative; 2^-25 absolute among the
    subnormals)."""
    v = np.array([[0.1, 1 / 3, 1000.1], [-12.345, 3.14159, 2.1e-6], [60000.3, -0.7, 1e-3]])
    body = {"inputs": [{"name": "x", "datatype": "FP16", "shape": [3, 3],
                        "data": v.ravel().tolist()}]}
    r = post_infer(server, dtype_model("FP16"), body)
    assert r.status_code == 200, r.text
    got = outputs_of(r.json())["y"].astype(np.float64)
    assert np.all(np.abs(got - v) <= np.maximum(np.abs(v) * 2.0 ** -11, 2.0 ** -25)), got
    np.testing.assert_array_equal(got, v.astype(np.float16).astype(np.float64))


# --------------------------------------------------------------------------
# bad requests
# --------------------------------------------------------------------------


def assert_v2_error(r: requests.Response, status: int | None = None) -> str:
    """A 4xx (never a 5xx) whose body is V2's {"error": str}; the message."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:2000])
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text[:2000])
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and list(body) == ["error"], body
    assert isinstance(body["error"], str) and body["error"], body
    return body["error"]


ROW = [0.5, -1.0, 2.0, 0.0, 1.5, -0.25]


def x_input(**change) -> dict:
    t = {"name": "X", "datatype": "FP32", "shape": [1, 6], "data": ROW}
    t.update(change)
    return {k: v for k, v in t.items() if v is not None}


def pipe_inputs(**change) -> list[dict]:
    inputs = {
        "age": {"name": "age", "datatype": "FP32", "shape": [1, 1], "data": [41.5]},
        "income": {"name": "income", "datatype": "FP32", "shape": [1, 1], "data": [52000.0]},
        "region": {"name": "region", "datatype": "BYTES", "shape": [1, 1], "data": ["EU"]},
        "plan": {"name": "plan", "datatype": "INT64", "shape": [1, 1], "data": [2]},
    }
    for name, t in change.items():
        if t is None:
            del inputs[name]
        else:
            inputs[name] = {**inputs[name], **t}
    return list(inputs.values())


def identity_input(datatype: str, data: list) -> dict:
    return {"inputs": [{"name": "x", "datatype": datatype, "shape": [1, 3], "data": data}]}


def raw_bytes(a: np.ndarray) -> bytes:
    """A tensor's bytes in the binary tensor extension (BYTES: each element
    after its 4-byte little-endian length)."""
    if a.dtype == object:
        items = [s.encode() if isinstance(s, str) else bytes(s) for s in a.ravel()]
        return b"".join(struct.pack("<I", len(b)) + b for b in items)
    return a.astype(a.dtype.newbyteorder("<")).tobytes()


def binary_body(feeds: dict[str, np.ndarray], binary_output: bool = True) -> tuple[bytes, dict]:
    extra = {"parameters": {"binary_data_output": True}} if binary_output else {}
    return binary_request([(k, V2_OF[v.dtype], list(v.shape), raw_bytes(v))
                           for k, v in feeds.items()], **extra)


X_BYTES = np.array([ROW], dtype=np.float32).tobytes()
LOGREG = "logreg_3_plain"
PIPE = "pipeline_plain"


@dataclasses.dataclass
class Bad:
    path: str  # after /v2/
    body: bytes | dict | list
    status: int
    says: list[str]  # the message names these
    headers: dict | None = None
    model: str = LOGREG  # answers a good request afterwards


def infer_path(model: str, version: str | None = None) -> str:
    return f"models/{model}" + (f"/versions/{version}" if version else "") + "/infer"


def bad_binary(parts: list[tuple[str, str, list, bytes]], claimed: list[int] | None = None,
               extra: bytes = b"", header_length: str | None = None, model=LOGREG) -> Bad:
    body, headers = binary_request(parts)
    if claimed is not None:
        header = json.loads(body[:int(headers["Inference-Header-Content-Length"])])
        for t, size in zip(header["inputs"], claimed):
            t["parameters"]["binary_data_size"] = size
        head = json.dumps(header).encode()
        body = head + b"".join(b for *_, b in parts)
        headers = {"Inference-Header-Content-Length": str(len(head))}
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    return Bad(infer_path(model), body + extra, 400, [], headers, model)


def with_says(bad: Bad, *says: str) -> Bad:
    return dataclasses.replace(bad, says=list(says))


BAD_REQUESTS = {
    # the body
    "malformed-json": Bad(infer_path(LOGREG), b'{"inputs": [', 400, ["malformed JSON"]),
    "empty-body": Bad(infer_path(LOGREG), b"", 400, ["malformed JSON"]),
    "not-an-object": Bad(infer_path(LOGREG), [1, 2], 400, ["JSON object"]),
    "no-inputs": Bad(infer_path(LOGREG), {}, 400, ["inputs"]),
    "inputs-empty": Bad(infer_path(LOGREG), {"inputs": []}, 400, ["inputs"]),
    "inputs-not-a-list": Bad(infer_path(LOGREG), {"inputs": {"X": ROW}}, 400, ["inputs"]),
    "id-not-a-string": Bad(infer_path(LOGREG), {"id": 5, "inputs": [x_input()]}, 400, ["id"]),
    "parameters-not-an-object": Bad(infer_path(LOGREG), {"inputs": [x_input()], "parameters": [1]},
                                    400, ["parameters"]),
    "binary-output-flag-not-bool": Bad(
        infer_path(LOGREG), {"inputs": [x_input()], "parameters": {"binary_data_output": "yes"}},
        400, ["binary_data_output"]),
    # which model
    "unknown-model": Bad(infer_path("no_such_model"), {"inputs": [x_input()]}, 404,
                         ["no_such_model"]),
    "unknown-version": Bad(infer_path(LOGREG, "9"), {"inputs": [x_input()]}, 404, [LOGREG, "9"]),
    # which inputs
    "unknown-input": Bad(infer_path(LOGREG), {"inputs": [x_input(name="Z")]}, 400, ["Z", "X"]),
    "missing-input": Bad(infer_path(PIPE), {"inputs": pipe_inputs(plan=None)}, 400,
                         ["plan", "missing"], model=PIPE),
    "duplicated-input": Bad(infer_path(LOGREG), {"inputs": [x_input(), x_input()]}, 400,
                            ["X", "twice"]),
    "input-without-name": Bad(infer_path(LOGREG), {"inputs": [x_input(name=None)]}, 400,
                              ["inputs[0].name"]),
    # datatypes
    "wrong-datatype": Bad(infer_path(LOGREG), {"inputs": [x_input(datatype="FP64")]}, 400,
                          ["X", "FP64", "FP32"]),
    "unknown-datatype": Bad(infer_path(LOGREG), {"inputs": [x_input(datatype="FLOAT32")]}, 400,
                            ["X", "FLOAT32"]),
    "no-datatype": Bad(infer_path(LOGREG), {"inputs": [x_input(datatype=None)]}, 400,
                       ["X", "datatype"]),
    # shapes and data
    "wrong-rank": Bad(infer_path(LOGREG), {"inputs": [x_input(shape=[6])]}, 400, ["X", "[6]"]),
    "wrong-fixed-dim": Bad(infer_path(LOGREG), {"inputs": [x_input(shape=[1, 5], data=ROW[:5])]},
                           400, ["X", "[1, 5]"]),
    "negative-dim": Bad(infer_path(LOGREG), {"inputs": [x_input(shape=[-1, 6])]}, 400,
                        ["X", "shape"]),
    "shape-not-a-list": Bad(infer_path(LOGREG), {"inputs": [x_input(shape="1,6")]}, 400,
                            ["X", "shape"]),
    "data-shorter-than-shape": Bad(infer_path(LOGREG), {"inputs": [x_input(shape=[2, 6])]}, 400,
                                   ["X", "12", "6"]),
    "data-longer-than-shape": Bad(infer_path(LOGREG), {"inputs": [x_input(data=ROW + ROW)]}, 400,
                                  ["X", "6", "12"]),
    "nested-data-wrong-size": Bad(infer_path(LOGREG),
                                  {"inputs": [x_input(shape=[2, 6], data=[ROW, ROW[:5]])]}, 400,
                                  ["X", "nested arrays must follow the shape"]),
    "no-data": Bad(infer_path(LOGREG), {"inputs": [x_input(data=None)]}, 400, ["X", "data"]),
    "rows-differ-between-inputs": Bad(
        infer_path(PIPE), {"inputs": pipe_inputs(age={"shape": [2, 1], "data": [41.5, 30.0]})},
        400, ["age", "rows"], model=PIPE),
    # values
    "uint8-300": Bad(infer_path(dtype_model("UINT8")), identity_input("UINT8", [1, 300, 2]), 400,
                     ["x", "300", "UINT8"], model=dtype_model("UINT8")),
    "uint64-negative": Bad(infer_path(dtype_model("UINT64")), identity_input("UINT64", [1, -1, 2]),
                           400, ["x", "-1", "UINT64"], model=dtype_model("UINT64")),
    "int8-128": Bad(infer_path(dtype_model("INT8")), identity_input("INT8", [1, 128, 2]), 400,
                    ["x", "128", "INT8"], model=dtype_model("INT8")),
    "int64-beyond-range": Bad(infer_path(dtype_model("INT64")),
                              identity_input("INT64", [1, 2 ** 63, 2]), 400,
                              ["x", str(2 ** 63), "INT64"], model=dtype_model("INT64")),
    "float-for-int64": Bad(infer_path(PIPE), {"inputs": pipe_inputs(plan={"data": [1.5]})}, 400,
                           ["plan", "1.5"], model=PIPE),
    "string-for-int64": Bad(infer_path(PIPE), {"inputs": pipe_inputs(plan={"data": ["2"]})}, 400,
                            ["plan"], model=PIPE),
    "string-for-fp32": Bad(infer_path(LOGREG), {"inputs": [x_input(data=ROW[:5] + ["abc"])]}, 400,
                           ["X", "abc"]),
    "bool-for-fp32": Bad(infer_path(LOGREG), {"inputs": [x_input(data=ROW[:5] + [True])]}, 400,
                         ["X", "true"]),
    "null-for-fp32": Bad(infer_path(LOGREG), {"inputs": [x_input(data=ROW[:5] + [None])]}, 400,
                         ["X", "null"]),
    "number-for-bytes": Bad(infer_path(PIPE), {"inputs": pipe_inputs(region={"data": [5]})}, 400,
                            ["region"], model=PIPE),
    "number-for-bool": Bad(infer_path(dtype_model("BOOL")),
                           identity_input("BOOL", [True, 1, False]), 400, ["x"],
                           model=dtype_model("BOOL")),
    "fp32-beyond-range": Bad(infer_path(LOGREG), {"inputs": [x_input(data=ROW[:5] + [1e39])]}, 400,
                             ["X", "FP32"]),
    "fp16-beyond-range": Bad(infer_path(dtype_model("FP16")), identity_input("FP16", [1, 7e4, 2]),
                             400, ["x", "FP16"], model=dtype_model("FP16")),
    # NaN and infinities where the model does not route missing values
    "nan-for-logistic-regression": Bad(infer_path(LOGREG),
                                       {"inputs": [x_input(data=ROW[:5] + ["NaN"])]}, 400,
                                       ["X", "NaN"]),
    "infinity-for-pipeline": Bad(infer_path(PIPE),
                                 {"inputs": pipe_inputs(income={"data": ["Infinity"]})}, 400,
                                 ["income"], model=PIPE),
    "nan-for-fp16": Bad(infer_path(dtype_model("FP16")), identity_input("FP16", [1, "NaN", 2]),
                        400, ["x", "NaN"], model=dtype_model("FP16")),
    "minus-infinity-for-fp64": Bad(infer_path(dtype_model("FP64")),
                                   identity_input("FP64", [1, "-Infinity", 2]), 400,
                                   ["x", "infinite"], model=dtype_model("FP64")),
    "nan-in-binary": with_says(bad_binary([("X", "FP32", [1, 6], np.array(
        [ROW[:5] + [math.nan]], dtype=np.float32).tobytes())]), "X", "NaN"),
    # requested outputs
    "unknown-output": Bad(infer_path(LOGREG),
                          {"inputs": [x_input()], "outputs": [{"name": "nope"}]}, 400,
                          ["nope", "label", "probabilities"]),
    "output-without-name": Bad(infer_path(LOGREG), {"inputs": [x_input()], "outputs": [{}]}, 400,
                               ["outputs[0].name"]),
    "outputs-not-a-list": Bad(infer_path(LOGREG), {"inputs": [x_input()], "outputs": "all"}, 400,
                              ["outputs"]),
    # the binary tensor extension
    "header-length-beyond-body": with_says(
        bad_binary([("X", "FP32", [1, 6], X_BYTES)], header_length="100000"),
        "Inference-Header-Content-Length"),
    "header-length-not-a-number": with_says(
        bad_binary([("X", "FP32", [1, 6], X_BYTES)], header_length="many"),
        "Inference-Header-Content-Length"),
    "header-length-cuts-the-json": with_says(
        bad_binary([("X", "FP32", [1, 6], X_BYTES)], header_length="10"), "malformed JSON"),
    "binary-size-beyond-the-body": with_says(
        bad_binary([("X", "FP32", [1, 6], X_BYTES)], claimed=[25]),
        "X", "binary_data_size", "25", "24"),
    "binary-size-not-a-count": with_says(
        bad_binary([("X", "FP32", [1, 6], X_BYTES)], claimed=[-4]), "X", "binary_data_size"),
    "binary-leftover-bytes": with_says(
        bad_binary([("X", "FP32", [1, 6], X_BYTES)], extra=b"\0\0\0"), "3 bytes"),
    "binary-size-not-the-shape": with_says(
        bad_binary([("X", "FP32", [1, 6], X_BYTES[:20])]), "X", "20"),
    "binary-bytes-element-cut-short": with_says(bad_binary(
        [("x", "BYTES", [1, 3], raw_bytes(np.array(["a", "bb", "ccc"], dtype=object))[:-1])],
        model=dtype_model("BYTES")), "x", "BYTES"),
    "binary-bytes-count-not-the-shape": with_says(bad_binary(
        [("x", "BYTES", [1, 3], raw_bytes(np.array(["a", "bb"], dtype=object)))],
        model=dtype_model("BYTES")), "x", "3", "2"),
    "binary-bytes-not-utf8": with_says(bad_binary(
        [("x", "BYTES", [1, 3], raw_bytes(np.array([b"a", b"\xff\xfe", b"c"], dtype=object)))],
        model=dtype_model("BYTES")), "x", "UTF-8"),
    # the repository
    "load-missing-folder": Bad("repository/models/no_such_folder/load", b"", 400,
                               ["no_such_folder"]),
    "load-invalid-name": Bad("repository/models/bad%20name!/load", b"", 400, ["bad name!"]),
    "unload-not-loaded": Bad("repository/models/no_such_model/unload", b"", 404,
                             ["no_such_model"]),
}


def good_request(server, zoo, model: str):
    """A request `model` must answer, checked against onnxruntime (identity
    models: against what was sent)."""
    if model.startswith("identity_"):
        # In binary, so that the check is independent of JSON number parsing.
        x = datatype_values(model[len("identity_"):].upper())
        body, headers = binary_body({"x": x})
        r = post_infer(server, model, body, headers=headers)
        assert r.status_code == 200, r.text
        assert raw_bytes(outputs_of(*split_binary(r))["y"]) == raw_bytes(x)
        return
    m = zoo[model]
    feeds = m.rows(0, 3)
    _, got = infer_json(server, model, feeds)
    assert_same_outputs(m, got, m.reference(feeds), f"good request to {model}")


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request(server, zoo, case):
    bad = BAD_REQUESTS[case]
    data = bad.body if isinstance(bad.body, bytes) else json.dumps(bad.body).encode()
    headers = {"Content-Type": "application/json", **(bad.headers or {})}
    r = requests.post(f"{server.uri}/v2/{bad.path}", data=data, headers=headers, timeout=TIMEOUT)
    message = assert_v2_error(r, bad.status)
    for word in bad.says:
        assert word in message, (word, message)
    good_request(server, zoo, bad.model)


def test_the_body_limit_is_64_mib(server, zoo):
    """A 16 MiB body is taken (beyond axum's default 2 MiB and the 4 MiB of
    Keel's /v1 routes; larger ones are slow to echo in a debug build); a body
    over 64 MiB gets a 413 with a V2 error, and the model still answers
    afterwards."""
    x = np.arange(1_400_000 * 3, dtype=np.float32).reshape(-1, 3)
    body, headers = binary_request([("x", "FP32", list(x.shape), x.tobytes())],
                                   outputs=[{"name": "y", "parameters": {"binary_data": True}}])
    assert 16 * 2 ** 20 < len(body) < MAX_BODY
    r = post_infer(server, dtype_model("FP32"), body, headers=headers)
    assert r.status_code == 200, r.text[:2000]
    head, tail = split_binary(r)
    assert head["outputs"][0]["shape"] == list(x.shape) and tail == x.tobytes()
    del body, tail, r

    big = b'{"inputs": []}' + b" " * (MAX_BODY + 1 - len(b'{"inputs": []}'))
    r = post_infer(server, LOGREG, big)
    assert "larger than" in assert_v2_error(r, 413)
    good_request(server, zoo, LOGREG)




def http_exchange(server, path: str, body: bytes, delay: float) -> tuple[str, bool]:
    """POSTs `body` to `path` on a fresh connection, the body `delay`
    seconds after the headers (as a large body, or a slow client, arrives);
    then a good request on the same connection. The first response's head,
    and whether the second request was answered."""
    def head(p: str, n: int) -> bytes:
        return (f"POST {p} HTTP/1.1\r\nHost: {server.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n").encode()

    def response(sock) -> str | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        top, rest = data.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":")[1]) for line in top.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return top.decode()

    good = json.dumps({"inputs": [x_input()]}).encode()
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head(path, len(body)))
        time.sleep(delay)
        try:
            sock.sendall(body)
        except OSError:
            pass
        first = response(sock)
        assert first is not None, "no answer to the first request"
        try:
            sock.sendall(head(f"/v2/{infer_path(LOGREG)}", len(good)) + good)
            second = response(sock)
        except OSError:
            second = None
    return first, second is not None and second.startswith("HTTP/1.1 200")


GOOD_BODY = json.dumps({"inputs": [x_input()]}).encode()
UNLOAD_BODY = b'{"parameters": {"unload_dependents": false}}'  # tritonclient's


@pytest.mark.parametrize("path,body,status", [
    pytest.param(f"/v2/{infer_path(LOGREG)}", GOOD_BODY, 200, id="infer"),
    pytest.param(f"/v2/{infer_path(dtype_model('FP32'))}",
                 json.dumps(identity_input("FP32", [1, "NaN", 2])).encode(), 400,
                 id="infer-refused-input"),
    pytest.param(f"/v2/{infer_path('no_such_model')}", GOOD_BODY, 404, id="unknown-model"),
    pytest.param(f"/v2/{infer_path(LOGREG, '9')}", GOOD_BODY, 404, id="unknown-version"),
    pytest.param("/v2/repository/models/no_such_model/unload", UNLOAD_BODY, 404, id="unload"),
    pytest.param("/v2/repository/index", b"{}", 200, id="repository-index"),
])
def test_keep_alive_connections_survive_an_answer(server, path, body, status):
    """HTTP/1.1: a server that will close the connection after a response
    says `Connection: close` in it; otherwise the client may send its next
    request on the same connection. Here the body follows the headers 0.2 s
    later."""
    first, second_answered = http_exchange(server, path, body, delay=0.2)
    assert first.startswith(f"HTTP/1.1 {status}"), first
    announced = any(line.lower() == "connection: close" for line in first.split("\r\n"))
    assert announced or second_answered, (
        f"the connection was closed after {first.splitlines()[0]!r} without Connection: close")


# --------------------------------------------------------------------------
# hot swap under load
# --------------------------------------------------------------------------


def test_hot_swap_under_load(server, zoo):
    """`swapped` serves version 1 (model A) to 8 threads that infer without
    pause on the unversioned path; version 2 is added (model B) and loaded,
    then its file replaced (model C) and loaded again."""
    files = zoo.swap_files
    payloads = [files["A"].rows(o, o + 1 + i % 4) for i, o in enumerate(range(0, 192, 8))]
    bodies = [json.dumps(json_body(p)).encode() for p in payloads]
    want = {k: [m.reference(p) for p in payloads] for k, m in files.items()}
    for j in range(len(payloads)):  # every answer tells the three models apart
        for a, b in (("A", "B"), ("A", "C"), ("B", "C")):
            assert not same_outputs(files[a], want[a][j], want[b][j]), (j, a, b)

    infer_url = url(server, "swapped")
    log: list[tuple[float, float, int, int | None, bytes]] = []
    stop = threading.Event()

    def client_loop(k: int):
        with requests.Session() as s:
            i = k
            while not stop.is_set():
                j = i % len(bodies)
                i += 1
                t0 = time.monotonic()
                try:
                    r = s.post(infer_url, data=bodies[j], timeout=TIMEOUT,
                               headers={"Content-Type": "application/json"})
                    log.append((t0, time.monotonic(), j, r.status_code, r.content))
                except requests.RequestException as e:
                    log.append((t0, time.monotonic(), j, None, repr(e).encode()))

    loads: dict[str, tuple[float, float]] = {}

    def load(label: str):
        write_model(server.repository, "swapped", 2, files[label])
        started = time.monotonic()
        r = requests.post(f"{server.uri}/v2/repository/models/swapped/load", timeout=TIMEOUT)
        loads[label] = (started, time.monotonic())
        assert r.status_code == 200, r.text

    threads = [threading.Thread(target=client_loop, args=(k,), daemon=True) for k in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        load("B")
        time.sleep(1.2)
        load("C")
        time.sleep(1.2)
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)

    failed = [(status, body[:300]) for *_, status, body in log if status != 200]
    assert not failed, f"{len(failed)} of {len(log)} requests failed, e.g. {failed[:3]}"
    (b_start, b_done), (c_start, c_done) = loads["B"], loads["C"]
    seen = {"A before": 0, "A": 0, "B": 0, "C after": 0}
    for t0, t1, j, _, body in log:
        response = json.loads(body)
        got = outputs_of(response)
        version = response["model_version"]
        where = f"request {j} sent {t0 - b_start:+.3f}s after the first load began"
        if version == "1":
            assert t0 < b_done, f"{where}: version 1 answered after the load returned"
            assert same_outputs(files["A"], got, want["A"][j]), where
            seen["A before" if t1 < b_start else "A"] += 1
            continue
        assert version == "2", response
        assert t1 > b_start, f"{where}: version 2 answered before its load began"
        # B until the second load returned; C from when it began.
        candidates = [k for k, possible in (("B", t0 < c_done), ("C", t1 > c_start)) if possible]
        matched = [k for k in candidates if same_outputs(files[k], got, want[k][j])]
        assert matched, f"{where}: the answer is none of {candidates}'s"
        if matched == ["C"] and t0 > c_done:
            seen["C after"] += 1
        elif matched == ["B"]:
            seen["B"] += 1
    assert seen["A before"] > 0 and seen["B"] > 0 and seen["C after"] > 0, seen

    # Both versions are still served, version 2 as model C.
    for version, label in (("1", "A"), ("2", "C"), (None, "C")):
        response, got = infer_json(server, "swapped", payloads[0], version=version)
        assert response["model_version"] == (version or "2")
        assert_same_outputs(files[label], got, want[label][0], f"version {version}")


# --------------------------------------------------------------------------
# keel serve compile --input: the plan timed on a request's own rows
# --------------------------------------------------------------------------


def test_compile_times_the_plan_on_a_requests_rows(model_serving_binary, zoo, tmp_path):
    """`keel serve compile --input REQUEST.json --threads 2` reads the V2
    body a client would send, checks it against the signature as the server
    does, and times the plan on its rows: latency and in-process throughput
    on the request, not on the synthetic sample. A request the server would
    refuse is refused here too, naming the input."""
    model = zoo["forest_3_plain"]
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(model.onnx)
    feeds = model.rows(0, 48)
    request = tmp_path / "request.json"
    request.write_text(json.dumps(json_body(feeds)))
    res = subprocess.run([str(keel_bin()), "serve", "compile", str(onnx_path), "--input",
                          str(request), "--threads", "2", "--runs", "20", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    v = json.loads(res.stdout)
    assert v["input"]["rows"] == 48
    assert v["input"]["latency_us"] > 0
    assert v["throughput"]["on"] == "input"
    assert v["throughput"]["batch"] == 48 and v["throughput"]["threads"] == 2
    assert v["throughput"]["rows_per_s"] > 0
    # the synthetic sample is still what the compile report is measured on
    assert v["report"]["sample_batch"] == 64

    (name, x), = feeds.items()
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"inputs": [{"name": name, "shape": [4, x.shape[1] + 1],
                                             "datatype": "FP32",
                                             "data": [0.0] * (4 * (x.shape[1] + 1))}]}))
    res = subprocess.run([str(keel_bin()), "serve", "compile", str(onnx_path), "--input",
                          str(wrong)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "--input" in res.stderr and name in res.stderr and "shape" in res.stderr, res.stderr
    res = subprocess.run([str(keel_bin()), "serve", "compile", str(onnx_path), "--input",
                          str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "--input" in res.stderr and "missing.json" in res.stderr, res.stderr


# --------------------------------------------------------------------------
# adaptive batching
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["batched", "batched_pipeline"])
def test_adaptive_batching_gives_each_request_its_rows(server, zoo, name):
    """With max_batch_size 64 and max_batch_time 0.02 s, 32 concurrent
    single-row requests and 4 multi-row ones (half in JSON, half in binary)
    are batched together and split back: each answer equals onnxruntime's on
    that request's rows alone."""
    model = zoo[name]
    sizes = [1] * 32 + [2, 3, 5, 7]
    starts = np.cumsum([0] + sizes[:-1])
    requests_feeds = [model.rows(int(s), int(s) + n) for s, n in zip(starts, sizes)]
    barrier = threading.Barrier(len(sizes))
    answers: list = [None] * len(sizes)

    def one(k: int):
        feeds = requests_feeds[k]
        if k % 2:
            body, headers = binary_body(feeds)
        else:
            body, headers = json.dumps(json_body(feeds)).encode(), {}
        with requests.Session() as s:
            barrier.wait(TIMEOUT)
            r = s.post(url(server, name), data=body, timeout=TIMEOUT,
                       headers={"Content-Type": "application/json", **headers})
        if r.status_code != 200:
            answers[k] = r
        elif "inference-header-content-length" in r.headers:
            answers[k] = outputs_of(*split_binary(r))
        else:
            answers[k] = outputs_of(r.json())

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    for k, (feeds, got) in enumerate(zip(requests_feeds, answers)):
        assert isinstance(got, dict), (k, got if got is None else (got.status_code, got.text))
        assert_same_outputs(model, got, model.reference(feeds), f"request {k} ({sizes[k]} rows)")


def test_compressed_requests_are_read(server, zoo):
    """tritonclient's request_compression_algorithm: gzip and deflate bodies
    (decompressed up to the body limit); an unknown encoding is a 415."""
    import gzip
    import zlib
    model = zoo.parity[LOGREG]
    feeds = model.rows(0, 20)
    body = json.dumps({"inputs": [x_input(shape=[20, 6], data=feeds["X"].ravel().tolist())]}).encode()
    reference = model.reference(feeds)
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        r = post_infer(server, LOGREG, packed, headers={"Content-Encoding": encoding})
        assert r.status_code == 200, (encoding, r.text)
        first = model.output_names[0]
        labels = outputs_of(r.json())[first]
        assert labels.ravel().tolist() == reference[first].ravel().tolist()
    r = post_infer(server, LOGREG, body, headers={"Content-Encoding": "br"})
    assert "Content-Encoding" in assert_v2_error(r, 415)
    r = post_infer(server, LOGREG, b"not gzip", headers={"Content-Encoding": "gzip"})
    assert "compressed body" in assert_v2_error(r, 400)


def test_model_config_and_ready_index(server, client):
    """Triton's model configuration (what get_model_config and perf_analyzer
    read) and the index filtered to ready models."""
    config = client.get_model_config(LOGREG)
    assert config["name"] == LOGREG and config["max_batch_size"] > 0
    assert [i["name"] for i in config["input"]] == ["X"]
    assert config["input"][0]["data_type"] == "TYPE_FP32" and config["input"][0]["dims"] == [6]
    ready = requests.post(f"{server.uri}/v2/repository/index", json={"ready": True}, timeout=TIMEOUT).json()
    assert ready and all(e["state"] == "READY" for e in ready)
    everything = requests.post(f"{server.uri}/v2/repository/index", timeout=TIMEOUT).json()
    assert len(everything) >= len(ready)


def test_unknown_v2_paths_answer_in_v2_shape(server):
    for method, path in (("GET", "/v2/nothing/here"), ("PUT", f"/v2/models/{LOGREG}/infer")):
        r = requests.request(method, f"{server.uri}{path}", timeout=TIMEOUT)
        assert 400 <= r.status_code < 500, r.text
        assert isinstance(r.json().get("error"), str), r.text


def test_an_output_requested_twice_is_named(server):
    body = {"inputs": [x_input()], "outputs": [{"name": "label"}, {"name": "label"}]}
    r = post_infer(server, LOGREG, json.dumps(body).encode())
    assert "requested twice" in assert_v2_error(r, 400)
