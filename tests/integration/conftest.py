"""Real servers: tiny models in a temporary BENTOML_HOME, `bentoml serve` on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "testdata"
READY_TIMEOUT_S = 120
#: Keys every test server is started with (YIELD_ENSEMBLE_API_KEYS); tests send them.
FEEDBACK_SECRET = "test-feedback-secret-0001"
REPORT_SECRET = "test-report-secret-00002"
ADMIN_SECRET = "test-admin-secret-000003"
API_KEYS = (
    f"line-tester:feedback:{FEEDBACK_SECRET},dashboard:report:{REPORT_SECRET},"
    f"ops:admin:{ADMIN_SECRET}"
)
#: Headers of a key that may send outcomes and read reports.
AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIELD_ENSEMBLE_")}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true", TF_CPP_MIN_LOG_LEVEL="2")
    env.update({f"YIELD_ENSEMBLE_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        # BentoML's workers run in process groups of their own: remember them, so none
        # outlives a server that had to be killed.
        workers = _descendants(self.proc.pid)
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, sig)
                try:
                    return self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    return self.proc.wait()
            return int(self.proc.returncode)
        finally:
            for worker in workers:
                with contextlib.suppress(psutil.Error):
                    worker.wait(10)
                with contextlib.suppress(psutil.Error):
                    worker.kill()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def start_server(home: Path, log: Path, **settings: str) -> Server:
    """Start `bentoml serve` and wait for /readyz; raises with the log if it never gets ready."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "service:YieldEnsemble",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=base_env(home, **settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"bentoml serve exited {proc.returncode}:\n{server.log_text()[-3000:]}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        time.sleep(0.5)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S} s:\n{server.log_text()[-3000:]}")


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BENTOML_HOME holding tiny members trained by the real CLI."""
    home = tmp_path_factory.mktemp("bentoml_home")
    subprocess.run(
        [sys.executable, "-m", "train.cli", "train", "--tiny", "--n-devices", "3000"],
        cwd=ROOT,
        env=base_env(home),
        check=True,
        capture_output=True,
    )
    return home


@contextlib.contextmanager
def running(home: Path, tmp: Path, **settings: str) -> Iterator[Server]:
    tag = _free_port()
    settings.setdefault("data_dir", str(tmp / f"data-{tag}"))
    settings.setdefault("api_keys", API_KEYS)
    server = start_server(home, tmp / f"serve-{tag}.log", **settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The service with every request on the ensemble arm, shared by the API tests."""
    with running(model_home, tmp_path_factory.mktemp("serve"), challenger_fraction="0") as srv:
        yield srv


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics parsed by prometheus_client's own parser: (sample name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value, 0 when absent (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def sample(name: str) -> dict[str, object]:
    return json.loads((TESTDATA / name).read_text())
