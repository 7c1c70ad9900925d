"""Shared fixtures for Keel's MLflow-compatibility integration tests.

The suite drives a tracking server with the real ``mlflow`` Python client (and
raw HTTP via ``requests``).  The server under test is chosen by the env var
``KEEL_TEST_BACKENDS`` (comma separated, default ``sqlite``):

* ``sqlite``   -- ``$KEEL_BIN server --data-dir TMP --host 127.0.0.1 --port P``
* ``postgres`` -- same plus ``--database-url`` pointing at a fresh database
                  created on ``$KEEL_TEST_POSTGRES_URL`` (required) with ``psql``
* ``mlflow``   -- the reference ``mlflow server`` from this venv; used to
                  validate that the tests encode real MLflow behaviour.

Tests marked ``@pytest.mark.keel_only`` are skipped for the ``mlflow`` backend
only (they test Keel extensions or places where Keel is stricter than MLflow).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

# The client must surface server errors instead of retrying them for minutes
# (its default is 7 retries with exponential backoff), and must not hang
# forever on a dead server.  Set before mlflow reads them (it reads per call).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
# Keep the client quiet and self-contained.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# No usage telemetry from the client or the reference server.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
KEEL_BACKENDS = ("sqlite", "postgres")
ALL_BACKENDS = KEEL_BACKENDS + ("mlflow",)
HEALTH_TIMEOUT_S = 60.0
# The reference server (Python, DB migrations on first start) is much slower to start.
MLFLOW_HEALTH_TIMEOUT_S = 180.0


def _requested_backends() -> list[str]:
    raw = os.environ.get("KEEL_TEST_BACKENDS", "sqlite")
    names = [b.strip() for b in raw.split(",") if b.strip()]
    unknown = [b for b in names if b not in ALL_BACKENDS]
    if unknown or not names:
        raise pytest.UsageError(
            f"KEEL_TEST_BACKENDS={raw!r}: unknown backend(s) {unknown}; "
            f"choose from {', '.join(ALL_BACKENDS)}"
        )
    return names


def is_keel(backend: str) -> bool:
    """True when ``backend`` is a Keel server (as opposed to reference mlflow)."""
    return backend in KEEL_BACKENDS


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "keel_only: Keel extension or Keel-stricter behaviour; skipped for the "
        "reference `mlflow` backend only",
    )
    config.addinivalue_line(
        "markers",
        "keel_command(*words): needs a Keel binary that has this command (e.g. "
        "'features', 'training-set'); skipped when it does not, but failed when CI=true",
    )


_KEEL_COMMAND_PROBLEMS: dict[tuple[str, ...], str | None] = {}


def keel_command_problem(words: tuple[str, ...]) -> str | None:
    """Why ``keel WORDS...`` cannot run here, or None when it can.

    Commands are added to the binary while their tests are written; a test
    marked ``keel_command`` says which one it needs, so a binary built before
    it skips the test locally instead of failing it.
    """
    if words not in _KEEL_COMMAND_PROBLEMS:
        binary = keel_bin()
        problem = None
        if not binary.exists():
            problem = f"Keel binary not found at {binary}; build it (cargo build) or set KEEL_BIN"
        else:
            res = subprocess.run([str(binary), *words, "--help"], capture_output=True,
                                 text=True, timeout=60)
            if res.returncode != 0:
                said = (res.stderr or res.stdout).strip().splitlines()
                problem = (f"{binary} has no `keel {' '.join(words)}` command"
                           + (f" ({said[0]})" if said else ""))
        _KEEL_COMMAND_PROBLEMS[words] = problem
    return _KEEL_COMMAND_PROBLEMS[words]


def pytest_runtest_setup(item):
    for mark in item.iter_markers("keel_command"):
        problem = keel_command_problem(tuple(mark.args))
        if problem:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{problem} (CI=true: a missing command fails the test)")
            pytest.skip(problem)


# --------------------------------------------------------------------------
# server process management
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keel_bin() -> Path:
    env = os.environ.get("KEEL_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else REPO_ROOT / "target"
    if not base.is_absolute():
        base = REPO_ROOT / base
    return base / "debug" / "keel"


def mlflow_bin() -> str:
    candidate = Path(sys.executable).parent / "mlflow"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("mlflow")
    if not found:
        raise RuntimeError("`mlflow` executable not found next to the test interpreter")
    return found


def _run_psql(url: str, sql: str) -> None:
    psql = shutil.which("psql")
    if not psql:
        raise RuntimeError("the `psql` command-line client is required for the postgres backend")
    res = subprocess.run(
        [psql, url, "-v", "ON_ERROR_STOP=1", "-q", "-X", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if res.returncode != 0:
        raise RuntimeError(f"psql failed ({sql!r}): {res.stderr.strip()}")


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


class ServerProcess:
    """A tracking server subprocess that can be killed (-9) and restarted."""

    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.host = "127.0.0.1"
        self.database_url: str | None = None
        self._admin_url: str | None = None
        self._dbname: str | None = None
        self.proc: subprocess.Popen | None = None
        self._log_index = 0
        self.stderr_path: Path | None = None
        self.stdout_path: Path | None = None

    # -- properties -------------------------------------------------------
    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_keel(self) -> bool:
        return is_keel(self.backend)

    # -- setup ------------------------------------------------------------
    def prepare(self) -> None:
        if self.backend == "postgres":
            admin = os.environ.get("KEEL_TEST_POSTGRES_URL")
            if not admin:
                raise RuntimeError(
                    "backend `postgres` requested but KEEL_TEST_POSTGRES_URL is not set "
                    "(e.g. postgres://postgres@127.0.0.1:5433/postgres)"
                )
            self._admin_url = admin
            self._dbname = "keel_test_" + uuid.uuid4().hex[:16]
            _run_psql(admin, f'CREATE DATABASE "{self._dbname}"')
            self.database_url = _with_database(admin, self._dbname)

    def command(self) -> list[str]:
        if self.backend == "mlflow":
            return [
                mlflow_bin(),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.data_dir / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.data_dir / "artifacts"),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--workers",
                "1",
            ]
        binary = keel_bin()
        if not binary.exists():
            raise RuntimeError(
                f"Keel binary not found at {binary}; build it (cargo build) or set KEEL_BIN"
            )
        cmd = [
            str(binary),
            "server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        if self.backend == "postgres":
            assert self.database_url
            cmd += ["--database-url", self.database_url]
        return cmd

    # -- lifecycle --------------------------------------------------------
    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self._log_index += 1
        self.stdout_path = self.workdir / f"server-{self._log_index}.stdout"
        self.stderr_path = self.workdir / f"server-{self._log_index}.stderr"
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        if self.backend == "mlflow":
            # The reference server otherwise spawns several background job
            # consumers (huey) that only slow its start-up and shutdown.
            env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=str(self.workdir),
                env=env,
                start_new_session=True,
            )
        self.wait_healthy()

    def stderr_text(self, limit: int = 20000) -> str:
        if not self.stderr_path or not self.stderr_path.exists():
            return ""
        data = self.stderr_path.read_text(errors="replace")
        return data[-limit:]

    def wait_healthy(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = MLFLOW_HEALTH_TIMEOUT_S if self.backend == "mlflow" else HEALTH_TIMEOUT_S
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.backend} server exited with code {self.proc.returncode} before "
                    f"becoming healthy; command: {self.command()}\n"
                    f"--- stderr ---\n{self.stderr_text()}"
                )
            try:
                r = requests.get(self.uri + "/health", timeout=2)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.2)
        self._kill_group(signal.SIGKILL)
        raise RuntimeError(
            f"{self.backend} server not healthy at {self.uri}/health after {timeout:.0f}s "
            f"(last: {last}); command: {self.command()}\n--- stderr ---\n{self.stderr_text()}"
        )

    def _kill_group(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill9(self) -> None:
        """SIGKILL the server (and anything it spawned) and wait for it to die."""
        assert self.proc is not None
        self._kill_group(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def restart(self) -> None:
        """Start a fresh server process on the same port and data dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
        self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self._kill_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill_group(signal.SIGKILL)
            self.proc.wait(timeout=15)

    def cleanup(self) -> None:
        self.stop()
        if self._admin_url and self._dbname:
            try:
                _run_psql(self._admin_url, f'DROP DATABASE IF EXISTS "{self._dbname}" WITH (FORCE)')
            except Exception as exc:  # pragma: no cover - best effort
                print(f"warning: could not drop test database {self._dbname}: {exc}")


_SERVERS: dict[str, ServerProcess] = {}


@pytest.fixture(scope="session", params=_requested_backends())
def tracking_uri(request):
    """Start a server for one backend and yield its base URI."""
    backend = request.param
    workdir = Path(tempfile.mkdtemp(prefix=f"keel-pytest-{backend}-"))
    server = ServerProcess(backend, workdir)
    try:
        server.prepare()
        server.start()
    except Exception:
        server.cleanup()
        raise
    _SERVERS[server.uri] = server
    try:
        yield server.uri
    finally:
        _SERVERS.pop(server.uri, None)
        server.cleanup()
        if os.environ.get("KEEL_TEST_KEEP_DATA"):
            print(f"kept server data for {backend} at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def server_proc(tracking_uri) -> ServerProcess:
    """The ServerProcess behind ``tracking_uri`` (kill9(), restart(), data_dir...)."""
    return _SERVERS[tracking_uri]


@pytest.fixture
def backend(server_proc) -> str:
    return server_proc.backend


@pytest.fixture(autouse=True)
def _keel_only_and_env(request, monkeypatch):
    """Skip keel_only tests on the reference backend; point fluent APIs at the server."""
    if "tracking_uri" not in request.fixturenames:
        yield
        return
    uri = request.getfixturevalue("tracking_uri")
    server = _SERVERS[uri]
    if (
        request.node.get_closest_marker("keel_only")
        and not server.is_keel
        and not os.environ.get("KEEL_TEST_FORCE_KEEL_ONLY")
    ):
        pytest.skip("Keel-only behaviour; not expected of the reference mlflow server")
    # The server may have been killed by an earlier failed test: bring it back.
    if server.proc is not None and server.proc.poll() is not None:
        server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    _reset_fluent_experiment()
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        _reset_fluent_experiment()


def _reset_fluent_experiment():
    """Forget the experiment chosen by an earlier test's mlflow.set_experiment()."""
    fluent = mlflow.tracking.fluent
    if hasattr(fluent, "_active_experiment_id"):
        fluent._active_experiment_id = None


@pytest.fixture
def client(tracking_uri) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


@pytest.fixture
def api(tracking_uri):
    """Base URL of the MLflow REST API (``.../api/2.0/mlflow``)."""
    return tracking_uri + "/api/2.0/mlflow"


@pytest.fixture
def unique():
    """A short unique token for names, so tests sharing one server never collide."""
    return uuid.uuid4().hex[:12]
