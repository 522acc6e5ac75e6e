"""Start `bentoml serve` on a free loopback port and wait until it is ready; stop it fully.

The one helper the integration tests and the benchmark (``bench``) share.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready_after_s: float = 0.0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the serve process (its group) and wait; returns its exit code."""
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


def serve(
    target: str,
    env: Mapping[str, str],
    log: Path,
    *,
    timeout_s: float = 120,
    poll_s: float = 0.05,
) -> Server:
    """``bentoml serve target`` ready on /readyz; raises with the log's tail if it never is."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=ROOT,
        env=dict(env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.url, timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"bentoml serve {target} exited {proc.returncode}:\n{server.log_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if http.get("/readyz").status_code == 200:
                    server.ready_after_s = time.perf_counter() - started
                    return server
            time.sleep(poll_s)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"{target} not ready after {timeout_s} s:\n{server.log_text()[-3000:]}")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []
