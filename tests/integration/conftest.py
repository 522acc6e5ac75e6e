"""Real servers: tiny models in a temporary BENTOML_HOME, `bentoml serve` on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ensemble.decision import FILE, STORE_NAME, Decision
from tests.serving import ROOT, Server, free_port, serve

TESTDATA = ROOT / "tests" / "testdata"
#: The real wafer-sort file (``../shared/testdata/stdf``; ``YE_STDF_TESTDATA`` elsewhere).
LOT2 = Path(os.environ.get("YE_STDF_TESTDATA", ROOT / "../shared/testdata/stdf")) / "lot2.stdf.gz"
needs_lot2 = pytest.mark.skipif(not LOT2.is_file(), reason=f"the shared STDF file is not at {LOT2}")
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


def base_env(home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIELD_ENSEMBLE_")}
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true", TF_CPP_MIN_LOG_LEVEL="2")
    env.update({f"YIELD_ENSEMBLE_{k.upper()}": v for k, v in settings.items()})
    return env


def start_server(home: Path, log: Path, **settings: str) -> Server:
    """The service on a free port, ready; raises with the log if it never gets ready."""
    return serve("service:YieldEnsemble", base_env(home, **settings), log, poll_s=0.5)


@pytest.fixture(scope="session")
def stdf_trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A BENTOML_HOME trained from the wafer-sort file by the real CLI (``train --tiny --stdf``),
    and that run's output: one training for the tests that read it and the server that
    predicts files with it."""
    if not LOT2.is_file():
        pytest.skip(f"the shared STDF file is not at {LOT2}")
    home = tmp_path_factory.mktemp("stdf_home")
    run = subprocess.run(
        [sys.executable, "-m", "train.cli", "train", "--tiny", "--folds", "2", "--stdf", str(LOT2)],
        cwd=ROOT, env=base_env(home), capture_output=True, text=True,
    )  # fmt: skip
    return home, run


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


def trained_decision(home: Path) -> Decision:
    """The latest decision saved in ``home``'s model store, read from its file."""
    runs = sorted((home / "models" / STORE_NAME).glob("*/" + FILE), key=lambda p: p.stat().st_mtime)
    return Decision.from_dict(json.loads(runs[-1].read_text()))


@contextlib.contextmanager
def running(home: Path, tmp: Path, **settings: str) -> Iterator[Server]:
    tag = free_port()
    settings.setdefault("data_dir", str(tmp / f"data-{tag}"))
    settings.setdefault("api_keys", API_KEYS)
    # Members keep serving 5 s after SIGTERM so the entry can drain its requests; a test
    # server stops with none in flight (test_ops's SIGTERM test keeps the grace): 5 s saved
    # per server.
    settings.setdefault("member_shutdown_grace_s", "0")
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
