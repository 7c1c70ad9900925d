"""Keel's S3 artifact store, end to end, against a real S3-compatible server.

A ``moto`` server (``python -m moto.server``) listens on loopback; Keel runs
with ``--artifacts s3://keel-test/some/prefix`` and the ``AWS_*`` environment
pointing at it (``object_store`` options).  The real mlflow client then logs,
lists and downloads artifacts through Keel's artifact proxy, and boto3 checks
that the objects really are in the bucket, under
``some/prefix/<experiment_id>/<run_id>/artifacts/...``, and that a permanent
run delete removes them.

Keel only (the reference server is not started with an S3 store here): runs
once per requested Keel backend (``sqlite``, ``postgres``) and is skipped when
``KEEL_TEST_BACKENDS`` names none.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conftest import (
    KEEL_BACKENDS,
    ServerProcess,
    _free_port,
    _requested_backends,
)

pytestmark = [pytest.mark.keel_only, pytest.mark.timeout(180)]

BUCKET = "keel-test"
PREFIX = "some/prefix"
TIMEOUT = 60
MOTO_START_TIMEOUT_S = 60.0
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
}

_KEEL_BACKENDS = [b for b in _requested_backends() if b in KEEL_BACKENDS]


# --------------------------------------------------------------------------
# moto (S3) server
# --------------------------------------------------------------------------


class MotoServer:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "moto.log"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(AWS_ENV)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(self.workdir),
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"moto server exited with code {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                # ListBuckets, path style, unsigned: moto answers 200 with XML.
                r = requests.get(self.endpoint + "/", timeout=2)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"moto server not up at {self.endpoint} after {MOTO_START_TIMEOUT_S:.0f}s "
            f"(last: {last}):\n{self.log_text()}"
        )

    def log_text(self, limit: int = 20000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-limit:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


class S3KeelServer(ServerProcess):
    """A Keel server whose artifact store is ``s3://BUCKET/PREFIX`` on moto."""

    def __init__(self, backend: str, workdir: Path, endpoint: str):
        super().__init__(backend, workdir)
        self.s3_env = dict(AWS_ENV, AWS_ENDPOINT=endpoint)

    def command(self) -> list[str]:
        return super().command() + ["--artifacts", f"s3://{BUCKET}/{PREFIX}"]

    def start(self) -> None:
        # ServerProcess.start copies os.environ: give it the S3 options only
        # for the time of the spawn.
        with pytest.MonkeyPatch.context() as mp:
            for k, v in self.s3_env.items():
                mp.setenv(k, v)
            super().start()


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_workdir():
    workdir = Path(tempfile.mkdtemp(prefix="keel-pytest-s3-"))
    try:
        yield workdir
    finally:
        if os.environ.get("KEEL_TEST_KEEP_DATA"):
            print(f"kept S3 test data at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def moto(s3_workdir):
    server = MotoServer(s3_workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(moto):
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name=AWS_ENV["AWS_REGION"],
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 1},
        ),
    )
    client.create_bucket(Bucket=BUCKET)
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [BUCKET]
    return client


@pytest.fixture(scope="module", params=_KEEL_BACKENDS or ["none"])
def keel_s3(request):
    if request.param == "none":
        pytest.skip("the S3 artifact test needs a Keel backend in KEEL_TEST_BACKENDS")
    # resolved only now, so that a skip starts no moto server
    moto = request.getfixturevalue("moto")
    s3 = request.getfixturevalue("s3")  # the bucket exists before Keel starts
    # Each backend's server starts numbering experiments at 1 again: give it
    # an empty bucket, so no backend sees the objects of the one before.
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
    s3_workdir = request.getfixturevalue("s3_workdir")
    server = S3KeelServer(request.param, s3_workdir / request.param, moto.endpoint)
    try:
        server.prepare()
        server.start()
    except Exception:
        server.cleanup()
        raise
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def client(keel_s3, monkeypatch) -> MlflowClient:
    # The artifact repository of `mlflow-artifacts:` URIs finds the server
    # through the tracking URI.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", keel_s3.uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(keel_s3.uri)
    try:
        yield MlflowClient(tracking_uri=keel_s3.uri)
    finally:
        mlflow.set_tracking_uri(previous)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _bucket_objects(s3, prefix: str) -> dict[str, int]:
    """Key -> size of every object under ``prefix`` (paginated)."""
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["Size"]
    return out


def _object_bytes(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _listing(infos) -> list[tuple[str, bool, int | None]]:
    return sorted((f.path, f.is_dir, f.file_size) for f in infos)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------


def test_s3_store_round_trip(client, keel_s3, s3, tmp_path):
    eid = client.create_experiment(f"s3-{keel_s3.backend}-{time.time_ns()}")
    run = client.create_run(eid, run_name="s3-round-trip")
    rid = run.info.run_id
    assert run.info.artifact_uri == f"mlflow-artifacts:/{eid}/{rid}/artifacts"
    run_key = f"{PREFIX}/{eid}/{rid}/artifacts"

    # one 5 MB file (a single multipart part) and one of 17 MB (three parts
    # of object_store's 8 MiB chunks), both random
    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(5 * 1024 * 1024)
    (src / "big.bin").write_bytes(big)
    huge = os.urandom(17 * 1024 * 1024 + 123)
    (src / "huge.bin").write_bytes(huge)
    client.log_artifact(rid, str(src / "big.bin"))
    client.log_artifact(rid, str(src / "huge.bin"), artifact_path="blobs")

    # a directory tree, with an empty file
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    tree_files = {
        "a.txt": b"alpha\n",
        "sub/b.bin": os.urandom(4096),
        "sub/deeper/c.json": json.dumps({"k": [1, 2, 3]}).encode(),
        "sub/empty.txt": b"",
    }
    for rel, data in tree_files.items():
        (tree / rel).write_bytes(data)
    client.log_artifacts(rid, str(tree), artifact_path="tree")

    client.log_text(rid, "héllo s3 ✓\nsecond line", "notes/readme.md")
    text_bytes = "héllo s3 ✓\nsecond line".encode("utf-8")

    # ---- the objects are in the bucket, exactly where expected -----------
    expected = {
        f"{run_key}/big.bin": len(big),
        f"{run_key}/blobs/huge.bin": len(huge),
        f"{run_key}/tree/a.txt": len(tree_files["a.txt"]),
        f"{run_key}/tree/sub/b.bin": 4096,
        f"{run_key}/tree/sub/deeper/c.json": len(tree_files["sub/deeper/c.json"]),
        f"{run_key}/tree/sub/empty.txt": 0,
        f"{run_key}/notes/readme.md": len(text_bytes),
    }
    assert _bucket_objects(s3, f"{PREFIX}/{eid}/") == expected
    # nothing was written outside the prefix
    assert set(_bucket_objects(s3, "")) - set(_bucket_objects(s3, PREFIX + "/")) == set()
    assert _sha(_object_bytes(s3, f"{run_key}/big.bin")) == _sha(big)
    assert _sha(_object_bytes(s3, f"{run_key}/blobs/huge.bin")) == _sha(huge)
    assert _object_bytes(s3, f"{run_key}/tree/sub/b.bin") == tree_files["sub/b.bin"]
    assert _object_bytes(s3, f"{run_key}/tree/sub/empty.txt") == b""
    assert _object_bytes(s3, f"{run_key}/notes/readme.md") == text_bytes

    # ---- listings through the mlflow client -------------------------------
    assert _listing(client.list_artifacts(rid)) == [
        ("big.bin", False, len(big)),
        ("blobs", True, None),
        ("notes", True, None),
        ("tree", True, None),
    ]
    assert _listing(client.list_artifacts(rid, "tree")) == [
        ("tree/a.txt", False, 6),
        ("tree/sub", True, None),
    ]
    # MLflow omits file_size for empty files
    assert _listing(client.list_artifacts(rid, "tree/sub")) == [
        ("tree/sub/b.bin", False, 4096),
        ("tree/sub/deeper", True, None),
        ("tree/sub/empty.txt", False, None),
    ]
    assert _listing(client.list_artifacts(rid, "tree/sub/deeper")) == [
        ("tree/sub/deeper/c.json", False, len(tree_files["sub/deeper/c.json"])),
    ]
    assert _listing(client.list_artifacts(rid, "blobs")) == [
        ("blobs/huge.bin", False, len(huge)),
    ]
    assert client.list_artifacts(rid, "no/such/dir") == []

    # ---- raw proxy listing shape -------------------------------------------
    r = requests.get(
        keel_s3.uri + "/api/2.0/mlflow-artifacts/artifacts",
        params={"path": f"{eid}/{rid}/artifacts/tree"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["files"], key=lambda f: f["path"]) == [
        {"path": "a.txt", "is_dir": False, "file_size": 6},
        {"path": "sub", "is_dir": True},
    ]

    # ---- downloads through the mlflow client --------------------------------
    dst = tmp_path / "dst"
    dst.mkdir()
    got = Path(client.download_artifacts(rid, "big.bin", str(dst)))
    assert got == dst / "big.bin"
    assert _sha(got.read_bytes()) == _sha(big)
    got = Path(client.download_artifacts(rid, "blobs/huge.bin", str(dst)))
    assert got.stat().st_size == len(huge) and _sha(got.read_bytes()) == _sha(huge)

    got_tree = Path(client.download_artifacts(rid, "tree", str(dst)))
    assert got_tree == dst / "tree"
    downloaded = {
        p.relative_to(got_tree).as_posix(): p.read_bytes()
        for p in got_tree.rglob("*")
        if p.is_file()
    }
    assert downloaded == tree_files

    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/readme.md") == "héllo s3 ✓\nsecond line"
    assert (
        mlflow.artifacts.load_text(f"mlflow-artifacts:/{eid}/{rid}/artifacts/tree/a.txt")
        == "alpha\n"
    )

    # a missing artifact is a 404 through the proxy, not a 500
    r = requests.get(
        keel_s3.uri + f"/api/2.0/mlflow-artifacts/artifacts/{eid}/{rid}/artifacts/missing.bin",
        timeout=TIMEOUT,
    )
    assert r.status_code == 404, r.text

    # raw proxy download: exact bytes and length
    r = requests.get(
        keel_s3.uri + f"/api/2.0/mlflow-artifacts/artifacts/{eid}/{rid}/artifacts/tree/sub/b.bin",
        timeout=TIMEOUT,
    )
    assert r.status_code == 200
    assert r.content == tree_files["sub/b.bin"]

    # overwriting replaces the object
    client.log_text(rid, "replaced", "notes/readme.md")
    assert _object_bytes(s3, f"{run_key}/notes/readme.md") == b"replaced"
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/readme.md") == "replaced"


def test_s3_permanent_run_delete_removes_objects(client, keel_s3, s3):
    api = keel_s3.uri + "/api/2.0/mlflow"
    eid = client.create_experiment(f"s3-del-{keel_s3.backend}-{time.time_ns()}")
    keep = client.create_run(eid, run_name="keep").info.run_id
    victim = client.create_run(eid, run_name="victim").info.run_id
    for rid in (keep, victim):
        client.log_text(rid, f"x-{rid}", "f.txt")
        client.log_text(rid, f"y-{rid}", "d/e/g.txt")
    keep_prefix = f"{PREFIX}/{eid}/{keep}/"
    victim_prefix = f"{PREFIX}/{eid}/{victim}/"
    assert _bucket_objects(s3, victim_prefix) == {
        f"{victim_prefix}artifacts/f.txt": len(f"x-{victim}"),
        f"{victim_prefix}artifacts/d/e/g.txt": len(f"y-{victim}"),
    }
    keep_objects = {
        f"{keep_prefix}artifacts/f.txt": len(f"x-{keep}"),
        f"{keep_prefix}artifacts/d/e/g.txt": len(f"y-{keep}"),
    }
    assert _bucket_objects(s3, keep_prefix) == keep_objects

    r = requests.post(api + "/runs/delete", json={"run_id": victim, "permanent": True},
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json() == {}

    assert _bucket_objects(s3, victim_prefix) == {}
    assert _bucket_objects(s3, keep_prefix) == keep_objects
    with pytest.raises(MlflowException) as ei:
        client.get_run(victim)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [f.path for f in client.list_artifacts(keep)] == ["d", "f.txt"]
    assert mlflow.artifacts.load_text(f"runs:/{keep}/d/e/g.txt") == f"y-{keep}"

    # soft delete keeps the objects; the permanent delete of a soft-deleted
    # run removes them
    client.delete_run(keep)
    assert _bucket_objects(s3, keep_prefix) == keep_objects
    r = requests.post(api + "/runs/delete", json={"run_id": keep, "permanent": True},
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert _bucket_objects(s3, f"{PREFIX}/{eid}/") == {}


def test_datasets_register_from_s3_and_query_from_the_s3_store(keel_s3, s3, tmp_path):
    """A dataset registered from an object-store URL — one object, then a
    folder of objects — is copied under its content hash into the S3
    artifact store, and SQL reads it back from there."""
    import pandas as pd

    v1 = keel_s3.uri + "/v1"
    name = f"lake-{keel_s3.backend}-{time.time_ns()}"
    frame = pd.DataFrame({"user_id": range(1000), "spend": [i * 0.5 for i in range(1000)]})
    local = tmp_path / "events.parquet"
    frame.to_parquet(local, index=False)
    body = local.read_bytes()
    s3.put_object(Bucket=BUCKET, Key="lake/events.parquet", Body=body)
    r = requests.post(f"{v1}/datasets", json={"name": name, "path": f"s3://{BUCKET}/lake/events.parquet"}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    assert version["digest"] == _sha(body)
    assert version["row_count"] == 1000
    key = f"{PREFIX}/datasets/{name}/{version['id']}/events.parquet"
    assert _object_bytes(s3, key) == body
    assert not [k for k in _bucket_objects(s3, f"{PREFIX}/datasets/{name}/") if ".staging" in k]
    q = requests.post(f"{v1}/datasets/query", json={"sql": f'SELECT count(*) AS n, sum(spend) AS s FROM "{name}"'}, timeout=TIMEOUT)
    assert q.status_code == 200, q.text
    assert q.json()["rows"] == [{"n": 1000, "s": float(frame["spend"].sum())}]
    again = requests.post(f"{v1}/datasets", json={"name": name, "path": f"s3://{BUCKET}/lake/events.parquet"}, timeout=TIMEOUT)
    assert again.status_code == 200 and again.json()["created"] is False

    # A folder of objects, with a marker file that is not data.
    for i, part in enumerate([frame.iloc[:400], frame.iloc[400:]]):
        part_path = tmp_path / f"part-{i}.parquet"
        part.to_parquet(part_path, index=False)
        s3.put_object(Bucket=BUCKET, Key=f"lake/parts/part-{i}.parquet", Body=part_path.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="lake/parts/_SUCCESS", Body=b"")
    r = requests.post(f"{v1}/datasets", json={"name": name, "path": f"s3://{BUCKET}/lake/parts/"}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    second = r.json()["version"]
    assert second["version"] == 2 and [f["path"] for f in second["files"]] == ["part-0.parquet", "part-1.parquet"]
    assert second["schema_change"]["kind"] == "none"
    q = requests.post(f"{v1}/datasets/query", json={"sql": f'SELECT count(*) AS n FROM "{name}@v2"'}, timeout=TIMEOUT)
    assert q.json()["rows"] == [{"n": 1000}]

    r = requests.post(f"{v1}/datasets", json={"name": name, "path": f"s3://{BUCKET}/lake/nothing-here"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["field"] == "path", r.text
