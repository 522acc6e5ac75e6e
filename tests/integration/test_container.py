"""The image `deploy/build-image.sh` builds (bentoml containerize), run with podman.

Skipped where podman is missing; `.ci/run` installs it, so CI runs it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models.families import member_names
from tests.serving import free_port
from tests.stdf_writer import wafer_file

from .conftest import ADMIN_SECRET, ROOT, base_env, sample

pytestmark = [
    pytest.mark.integration,
    # A first build on a fresh machine debootstraps a base image and downloads wheels.
    pytest.mark.timeout(900),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]
IMAGE = "yield-ensemble:test"
READY_WAIT_S = 90


def podman(*args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=_podman_env(), check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout.strip()


def _state_dir() -> Path:
    return Path(os.environ.get("YE_IMAGE_STATE", "/var/tmp/yield-ensemble-image"))


def _podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(_state_dir() / "containers.conf")}


@pytest.fixture(scope="module")
def image(model_home: Path) -> str:
    """The image, built from the tiny test models by the project's own script."""
    env = {**base_env(model_home), "YE_IMAGE_STATE": str(_state_dir())}
    done = subprocess.run(
        ["bash", "deploy/build-image.sh", IMAGE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(done.stdout[-1500:])
    return IMAGE


def _wait_ready(check: callable, what: str) -> float:  # type: ignore[valid-type]
    start = time.monotonic()
    while time.monotonic() - start < READY_WAIT_S:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"{what} not ready after {READY_WAIT_S} s")


@pytest.fixture
def container(image: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the image's user, uid 1034, writes the log here
    port = free_port()
    name = f"ye-test-{port}"
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "-v",
        f"{data}:/data",
        "-e",
        f"YIELD_ENSEMBLE_API_KEYS=ops:admin:{ADMIN_SECRET}",
        "-p",
        f"127.0.0.1:{port}:3000",
        image,
    )
    try:
        yield name, f"http://127.0.0.1:{port}", data
    finally:
        podman("rm", "-f", name, check=False)


def test_image_serves_read_only_and_stops_cleanly(
    container: tuple[str, str, Path], model_home: Path
) -> None:
    name, url, data = container

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    took = _wait_ready(ready, "container")
    print(f"container ready after {took:.1f} s")
    # A device the default sticky split puts on the ensemble arm (without an id the arm
    # is random, and the challenger's rule is not the ensemble's combiner).
    device = {**sample("predict.json"), "device_id": "W0007-X+03Y-02"}
    r = httpx.post(f"{url}/predict", json=device, timeout=10)
    assert r.status_code == 200, r.text + podman("logs", name)
    body = r.json()
    assert body["prediction"] in ("pass", "fail") and not body["degraded"]
    assert body["arm"] == "ensemble"
    # The image reads tester files (stdf-convert through nanoarrow, no pyarrow): a final-test
    # file's dies are read and, never predicted here, listed as unknown.
    keys = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    octets = {"Content-Type": "application/octet-stream"}
    tester_file = bytes(wafer_file(">", parts=30, tests=3, seed=1))
    r = httpx.post(f"{url}/feedback_stdf", content=gzip.compress(tester_file),
                   headers={**keys, **octets}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text + podman("logs", name)
    assert r.json()["counts"]["unknown"] == 30, r.text
    r = httpx.post(f"{url}/predict_stdf", content=tester_file, headers=octets, timeout=30)
    assert r.status_code == 422 and "not trained from STDF" in r.json()["error"], r.text
    # Every read of the report runs in the image (its statistics need no scipy).
    report = httpx.get(f"{url}/ab/report", headers=keys, timeout=30)
    assert report.status_code == 200, report.text + podman("logs", name)

    assert podman("exec", name, "id", "-u") != "0"
    info = json.loads(podman("image", "inspect", IMAGE))[0]
    assert "/livez" in " ".join(info["Healthcheck"]["Test"])
    labels = info["Labels"]
    for member in member_names():
        assert labels[f"io.yield-ensemble.model.{member}.version"] == body["model_versions"][member]
        assert 0.5 < float(labels[f"io.yield-ensemble.model.{member}.heldout-accuracy"]) <= 1
    assert labels["org.opencontainers.image.title"] == "yield-ensemble"
    # The training run's decision went into the image with the members, and is served.
    assert body["combiner"] == labels["io.yield-ensemble.ensemble.combiner"]
    assert "@" in body["combiner"] and 0 < body["threshold"] < 1
    assert labels["io.yield-ensemble.champion.version"] == body["combiner"].split("@", 1)[1]

    podman("stop", "-t", "30", name)  # SIGTERM, SIGKILL only after 30 s
    assert podman("inspect", name, "--format", "{{.State.ExitCode}}") == "0", podman("logs", name)
    with sqlite3.connect(data / "predictions.db") as db:
        logged = [rid for (rid,) in db.execute("SELECT request_id FROM predictions")]
    assert body["request_id"] in logged


def test_image_starts_without_network(image: str) -> None:
    name = f"ye-offline-{free_port()}"
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp",
        image,  # /data: the anonymous volume of the image's VOLUME, owned by its user
    )
    probe = (
        "import urllib.request as u; "
        "print(u.urlopen('http://127.0.0.1:3000/readyz', timeout=2).status)"
    )
    try:
        took = _wait_ready(
            lambda: podman("exec", name, "python", "-c", probe, check=False) == "200", "offline"
        )
        print(f"offline container ready after {took:.1f} s")
    finally:
        podman("rm", "-f", name, check=False)
