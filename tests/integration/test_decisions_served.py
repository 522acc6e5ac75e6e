"""The trained decision in a real `bentoml serve`: missing, mismatched or unreadable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ensemble.decision import FILE, STORE_NAME
from tests.serving import free_port

from .conftest import ROOT, base_env, running, sample

pytestmark = pytest.mark.integration


def _copy_store(model_home: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(model_home, home, symlinks=True)
    return home


def _serve_fails(home: Path, tmp_path: Path, **settings: str) -> str:
    """Start `bentoml serve`; it must exit non-zero by itself. Returns its output."""
    env = base_env(home, data_dir=str(tmp_path / "data"), **settings)
    run = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:YieldEnsemble",
         "--port", str(free_port()), "--host", "127.0.0.1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode != 0
    return run.stdout + run.stderr


def test_an_unreadable_decision_stops_the_server_naming_it(
    model_home: Path, tmp_path: Path
) -> None:
    home = _copy_store(model_home, tmp_path)
    for path in (home / "models" / STORE_NAME).glob(f"*/{FILE}"):
        path.write_text('{"run": "half a file')
    out = _serve_fails(home, tmp_path)
    assert "cannot be read from" in out and FILE in out and "train again" in out


def test_a_store_without_a_decision_serves_unfitted_rules_and_refuses_fitted_ones(
    model_home: Path, tmp_path: Path
) -> None:
    home = _copy_store(model_home, tmp_path)
    shutil.rmtree(home / "models" / STORE_NAME)
    out = _serve_fails(home, tmp_path, combiner="stacked")
    assert "the stacked combiner is fitted by `yield-ensemble train`" in out
    with running(home, tmp_path, challenger_fraction="0") as srv:
        body = httpx.post(f"{srv.url}/predict", json=sample("predict.json")).json()
        log = srv.log_text()
    assert (body["combiner"], body["threshold"]) == ("majority:1", 0.5)
    assert "unfitted rules at P(pass) 0.5" in log


def test_a_ledger_serving_a_run_the_store_lacks_stops_with_what_to_do_and_no_traceback(
    model_home: Path, tmp_path: Path
) -> None:
    """A newcomer's case: a new model store (another BENTOML_HOME, or ~/bentoml removed)
    beside the ledger of the old one, whose champion run the new store does not have. The
    server must not swap the champion by itself; it stops, saying how to choose, in one
    message (exit 2), not a traceback."""
    import sqlalchemy as sa

    from ensemble.serving import ServingState
    from ledger.migrate import upgrade
    from ledger.serving import ServingStore

    data = tmp_path / "data"
    data.mkdir()
    engine = sa.create_engine(f"sqlite:///{data / 'predictions.db'}")
    upgrade(engine)
    ServingStore(engine).change(lambda s: ServingState(0, "run-gone"), "start-up:old", "configure")
    engine.dispose()
    env = base_env(model_home, data_dir=str(data))
    run = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:YieldEnsemble",
         "--port", str(free_port()), "--host", "127.0.0.1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 2, out[-3000:]
    assert "error: yield-ensemble cannot start: the serving state" in out
    assert "run-gone" in out and "YIELD_ENSEMBLE_MODEL_VERSION=<run>" in out
    assert "Traceback" not in out, out[-3000:]


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"max_body_mb": "-1"}, "YIELD_ENSEMBLE_MAX_BODY_MB"),
        ({"challenger_fraction": "1e39"}, "YIELD_ENSEMBLE_CHALLENGER_FRACTION"),
        ({"model_version": "../../etc/passwd"}, "YIELD_ENSEMBLE_MODEL_VERSION"),
        (
            {"database_url": "postgresql+psycopg//yield:SECRETPW123@127.0.0.1:5432/x"},
            "not a database URL",
        ),
    ],
    ids=["ops", "core", "version", "url-typo"],
)
def test_a_bad_setting_stops_start_up_in_one_line_without_a_secret(
    model_home: Path, tmp_path: Path, setting: dict[str, str], named: str
) -> None:
    """Settings are read at import by several modules: a bad one came out as a traceback
    from whichever read it first (exit 1), and a URL with a typo showed its password."""
    out = _serve_fails(model_home, tmp_path, **setting)
    assert "error: yield-ensemble cannot start:" in out and named in out, out[-3000:]
    assert "Traceback" not in out and "SECRETPW123" not in out, out[-3000:]
