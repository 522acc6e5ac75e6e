"""Workarounds for BentoML behaviour (seen in 1.4.40) that the edge and the exit code need.

- BentoML logs every client error it answers itself (its pydantic 400s) at ERROR
  with a full traceback and no request id: 1,599 bad requests gave 43,000 lines.
  The edge logs each refused request once at WARNING, so those records are dropped.
- ``bentoml serve`` exits 0 whatever its workers lost at shutdown. An entry worker
  that lost predictions leaves a marker; the serve process then exits 1.
- The listening socket belongs to the serve process, which hands it to the entry
  worker (``--fd``) and keeps it open until every service has stopped. After SIGTERM
  the worker stops accepting, but the kernel still completes handshakes into the
  socket's backlog: under 8 clients, 8 requests hung 5.1 s and were then reset. The
  worker now shuts the shared socket down at SIGTERM, so a new connection is refused
  at once (nothing accepted, the client may retry elsewhere) while the requests
  already accepted are answered.
- BentoML's OpenAPI spec (``/docs.json``) lists a mounted app's routes only for
  FastAPI apps; ``/ab/report`` is a Starlette route, so its path is added here.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

#: The logger BentoML's ``log_exception`` writes to.
HTTP_APP_LOGGER = "bentoml._internal.server.http_app"
#: Marker file of a worker's loss: prefix, serve pid, worker pid.
_MARKER = "yield-ensemble-loss-{serve}-{worker}"


class _ClientErrorFilter(logging.Filter):
    """Drop BentoML's traceback records for a client's mistake (and the edge's 413)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        name = type(exc).__name__
        module = type(exc).__module__
        return not (
            (name == "ValidationError" and module.startswith("pydantic"))
            or name == "_BodyTooLarge"
            or name == "JSONDecodeError"
        )


def quiet_client_errors() -> None:
    """Install the filter once in this process."""
    logger = logging.getLogger(HTTP_APP_LOGGER)
    if not any(isinstance(f, _ClientErrorFilter) for f in logger.filters):
        logger.addFilter(_ClientErrorFilter())


def _marker_dir() -> Path:
    return Path(tempfile.gettempdir())


def report_loss(rows: int) -> None:
    """In a worker at shutdown: tell the serve process that ``rows`` predictions were lost."""
    name = _MARKER.format(serve=os.getppid(), worker=os.getpid())
    try:
        (_marker_dir() / name).write_text(str(rows))
    except OSError:  # nowhere to write: the ERROR line already said it
        logging.getLogger(__name__).error("cannot mark the loss of %d rows for the exit code", rows)


def exit_nonzero_on_worker_loss() -> None:
    """In the serve process: exit 1 at the end if any worker reported a loss."""

    def check() -> None:
        prefix = _MARKER.format(serve=os.getpid(), worker="")
        markers = list(_marker_dir().glob(f"{prefix}*"))
        lost = 0
        for marker in markers:
            try:
                lost += int(marker.read_text() or 0)
                marker.unlink()
            except (OSError, ValueError):
                lost += 1
        if markers:
            logging.getLogger(__name__).error(
                "exiting 1: the prediction log lost %d rows at shutdown", lost
            )
            os._exit(1)

    atexit.register(check)


def listening_fd(argv: list[str] | None = None) -> int | None:
    """The listening socket's descriptor BentoML passed this worker (``--fd N``), if any."""
    args = sys.argv if argv is None else argv
    for i, arg in enumerate(args[:-1]):
        if arg == "--fd" and args[i + 1].isdigit():
            return int(args[i + 1])
    return None


def refuse_new_connections_on_sigterm() -> None:
    """In the entry worker: at SIGTERM, stop the shared socket listening, then drain.

    Must run after uvicorn installed its handler (a service's ``__init__`` does).
    """
    fd = listening_fd()
    uvicorn_exit = signal.getsignal(signal.SIGTERM)
    if fd is None or not callable(uvicorn_exit):
        return
    if threading.current_thread() is not threading.main_thread():
        return

    def stop_listening(sig: int, frame: FrameType | None) -> None:
        try:
            with socket.socket(fileno=os.dup(fd)) as listener:
                listener.shutdown(socket.SHUT_RDWR)  # for every process holding it
        except OSError as exc:  # already shut by another worker
            logging.getLogger(__name__).debug("listening socket: %s", exc)
        uvicorn_exit(sig, frame)

    signal.signal(signal.SIGTERM, stop_listening)


def add_openapi_paths(service_name: str, paths: dict[str, Any]) -> None:
    """Add ``paths`` (OpenAPI path items as dicts) to the spec of the service so named."""
    import importlib

    from bentoml._internal.service.openapi.specification import PathItem
    from bentoml._internal.utils.cattr import bentoml_cattr

    openapi = importlib.import_module("_bentoml_sdk.service.openapi")
    generate = openapi.generate_spec
    if getattr(generate, "yield_ensemble_paths", None) is not None:
        generate.yield_ensemble_paths[service_name] = paths  # type: ignore[attr-defined]
        return
    extra: dict[str, dict[str, Any]] = {service_name: paths}

    def generate_spec(svc: Any, **kwargs: Any) -> Any:
        spec = generate(svc, **kwargs)
        for path, item in extra.get(svc.name, {}).items():
            spec.paths[path] = bentoml_cattr.structure(item, PathItem)
        return spec

    generate_spec.yield_ensemble_paths = extra  # type: ignore[attr-defined]
    setattr(openapi, "generate_spec", generate_spec)  # noqa: B010 (a module attribute)
