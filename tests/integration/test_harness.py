"""The test harness's own promise: a server start survives its port being taken meanwhile."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import serving
from tests.integration.conftest import base_env

#: A one-route BentoML service: the harness is what is tested here, not the ensemble.
TINY = "tests.fixtures.tiny_service:Tiny"


def test_free_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    low = serving._ephemeral_low()
    ports = [serving.free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    assert all(1024 <= p < low for p in ports), (low, ports)


def test_a_start_whose_port_was_taken_retries_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        occupied = taken.getsockname()[1]
        real = serving.free_port

        given: list[int] = []

        def ports() -> Iterator[int]:
            given.append(occupied)
            yield occupied
            while True:
                given.append(real())
                yield given[-1]

        picks = ports()
        monkeypatch.setattr(serving, "free_port", lambda: next(picks))
        server = serving.serve(TINY, base_env(tmp_path), tmp_path / "serve.log")
        try:
            assert not server.url.endswith(f":{occupied}")
            assert given[0] == occupied and server.url.endswith(f":{given[-1]}")
            assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
            assert httpx.post(f"{server.url}/ping", json={}, timeout=5).text == "pong"
        finally:
            server.stop()
