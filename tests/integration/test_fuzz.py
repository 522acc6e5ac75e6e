"""Schemathesis against the real served OpenAPI spec: no 5xx, no invalid JSON, on every route."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN_SECRET, ROOT, running

pytestmark = pytest.mark.integration

#: Seeded and bounded: schemathesis fuzzes until this is spent (every route is reached in
#: the first few seconds). ``YE_FUZZ_SECONDS=600`` for a longer hunt by hand.
FUZZ_SECONDS = int(os.environ.get("YE_FUZZ_SECONDS", "20"))


def test_fuzzing_the_served_spec_finds_no_server_error(model_home: Path, tmp_path: Path) -> None:
    with running(model_home, tmp_path) as srv:
        paths = httpx.get(f"{srv.url}/docs.json").json()["paths"]
        assert {"/predict", "/predict_batch", "/feedback", "/ab/report"} <= set(paths)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{srv.url}/docs.json",
                "--url",
                srv.url,
                "--checks",
                "not_a_server_error,content_type_conformance,strict_json",
                "--seed",
                "20261127",
                "--max-time",
                str(FUZZ_SECONDS),
                "--workers",
                "1",
                "--header",
                f"Authorization: Bearer {ADMIN_SECRET}",
                "--no-color",
            ],
            cwd=ROOT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.schemathesis_hooks"},
            capture_output=True,
            text=True,
            timeout=FUZZ_SECONDS + 60,
        )
        server_log = srv.log_text()
    report = proc.stdout[-4000:]
    assert proc.returncode == 0, report + proc.stderr[-2000:]
    assert f"Tested: {len(paths)}" in proc.stdout, report
    assert "Traceback" not in server_log, server_log[-3000:]
