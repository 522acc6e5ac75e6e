"""Start `bentoml serve` on a free loopback port and wait until it is ready; stop it fully.

The one helper the integration tests and the benchmark (``bench``) share.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]


#: Ports this process has handed out; never handed out twice.
_GIVEN: set[int] = set()
#: How often `serve` picks another port when the one it picked was taken meanwhile.
BIND_ATTEMPTS = 4


def _ephemeral_low() -> int:
    """The kernel's lowest auto-assigned port (32768 on Linux by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port free now, and below the kernel's ephemeral range where it can.

    A port from ``bind(0)`` comes from the ephemeral range, which every outgoing
    connection and BentoML's own ``reserve_free_port`` also draw from, so between our
    check and ``bentoml serve`` binding it, another socket could take it (CI saw
    "Address already in use" once). Below that range only an explicit bind can.
    """
    low = _ephemeral_low()
    candidates = list(range(max(1024, low - 12_000), low)) if low > 2048 else []
    random.shuffle(candidates)
    for port in candidates[:200]:
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
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

    def log_when(self, holds: Callable[[str], bool], within_s: float = 15) -> str:
        """The log once ``holds(log)`` (a worker's line reaches the file a moment after
        its answer does), or as it is after ``within_s``: the caller's assert then fails
        with the text in hand rather than racing a fixed sleep."""
        deadline = time.monotonic() + within_s
        while not holds(text := self.log_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return text

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
    """``bentoml serve target`` ready on /readyz; raises with the log's tail if it never is.

    A start that fails because its port was taken meanwhile is retried on another port.
    """
    for attempt in range(1, BIND_ATTEMPTS + 1):
        try:
            return _serve_once(target, env, log, timeout_s=timeout_s, poll_s=poll_s)
        except PortTaken:
            if attempt == BIND_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    """``bentoml serve`` exited because its port was taken between picking and binding."""


def _serve_once(
    target: str, env: Mapping[str, str], log: Path, *, timeout_s: float, poll_s: float
) -> Server:
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
                tail = server.log_text()[-3000:]
                failure = PortTaken if "Address already in use" in tail else RuntimeError
                raise failure(f"bentoml serve {target} exited {proc.returncode}:\n{tail}")
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
