"""No database password on any path: the log and every answer of a real server, start-up
included, when its PostgreSQL is down."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.serving import ROOT, Server, free_port

from .conftest import API_KEYS, AUTH, base_env, sample

PASSWORD = "Pw-4c1d7f-never-shown"
#: Paths a client, a probe or an operator may ask for; each answer is checked.
PATHS = ("/readyz", "/livez", "/healthz", "/metrics", "/ab/report", "/admin/serving")


def _closed_port() -> int:
    """A loopback port nothing listens on (picked free, never bound)."""
    return free_port()


def test_a_replica_starting_while_postgres_is_down_never_shows_the_password(
    model_home: Path, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://yield:{PASSWORD}@127.0.0.1:{_closed_port()}/yield"
    env = base_env(
        model_home,
        database_url=url,
        data_dir=str(tmp_path / "data"),
        api_keys=API_KEYS,
    )
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "service:YieldEnsemble", "--host",
         "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    answers: list[str] = []
    try:
        deadline = time.monotonic() + 45
        with httpx.Client(base_url=server.url, timeout=5) as http:
            while time.monotonic() < deadline and proc.poll() is None:
                for path in PATHS:
                    with contextlib.suppress(httpx.HTTPError):
                        r = http.get(path, headers=AUTH)
                        answers.append(f"{path} {r.status_code} {r.headers} {r.text}")
                with contextlib.suppress(httpx.HTTPError):
                    r = http.post("/predict", json=sample("predict.json"))
                    answers.append(f"/predict {r.status_code} {r.headers} {r.text}")
                time.sleep(1)
    finally:
        server.stop()
    text = log.read_text(errors="replace")
    # The start-up failed and said why (so the check below read a log that covers it).
    assert "cannot be opened" in text and "yield:***@127.0.0.1" in text, text[-2000:]
    assert PASSWORD not in text, [line for line in text.splitlines() if PASSWORD in line]
    assert not [a for a in answers if PASSWORD in a]
