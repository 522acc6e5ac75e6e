"""Every workaround for BentoML behaviour, seen in 1.4.40 (the version pyproject.toml pins).

Each one has a test in ``tests/unit/test_bentoml_quirks.py`` that fails when BentoML
stops behaving this way, so an upgrade says which workaround to delete.

- Client errors BentoML answers itself (its pydantic 400s) are logged at ERROR with
  a traceback and no request id (1,599 bad requests gave 43,000 lines): dropped, the
  edge logs them once at WARNING (``quiet_client_errors``).
- ``bentoml serve`` exits 0 whatever its workers lost at shutdown: a worker that lost
  predictions leaves a marker, the serve process then exits 1 (``report_loss``).
- The listening socket belongs to the serve process and outlives the entry worker's
  SIGTERM: connections queued in its backlog hung 5.1 s and were reset. The worker
  shuts the shared socket down at SIGTERM (``refuse_new_connections_on_sigterm``).
- A client that leaves mid-body made a 500 with a traceback (starlette's
  ClientDisconnect, caught as an unexpected error): the traceback is dropped too, the
  edge counts it as ``client_disconnected``.
- An API's input model ignores body fields it has no parameter for (pydantic's default
  ``extra="ignore"``): ``deviceId`` for ``device_id`` was dropped silently. They are
  refused (``refuse_unknown_fields``); the edge answers 422 naming the field.
- BentoML builds uvicorn's config itself and passes it no more than the command line's
  ``--timeout-keep-alive`` (5 s, under the 60 s of the proxies in front: requests raced
  the close and were lost); uvicorn has no header-read timeout (a client that sent half
  a request line was held for as long as it liked). ``serve_connections`` sets both.
- The OpenAPI spec lists a mounted app's routes only for FastAPI apps: ``/ab/report``
  is added (``add_openapi_paths``).
- The entry's client session to a dependency is recycled under calls in flight
  (``RUNNER_CONNECTION``); tracing costs a third of the CPU without an exporter
  (``tracing_options``); an ndarray output's media type is recomputed per response
  (``fix_media_type``); members stop at SIGTERM while the entry still drains
  (``outlive_the_entry``); the request id and the store's home are private
  (``new_request_id``, ``bentoml_home``). Its index page (``/``, a tag manager, a CDN)
  has no setting: our ``/`` is mounted, and BentoML adds its own after (``ops.docs_page``).
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
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
            or name == "BodyRefused"  # the edge cut the body off (413, 400, 415)
            or name == "ClientDisconnect"  # the client left mid-body
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


def refuse_new_connections_on_sigterm(stopping: threading.Event) -> None:
    """In the entry worker: at SIGTERM, set ``stopping``, stop the shared socket listening,
    then drain (uvicorn's own handler). Run after uvicorn installed it (``__init__`` is)."""
    fd = listening_fd()
    uvicorn_exit = signal.getsignal(signal.SIGTERM)
    if not callable(uvicorn_exit):
        return
    if threading.current_thread() is not threading.main_thread():
        return

    def stop_listening(sig: int, frame: FrameType | None) -> None:
        stopping.set()
        if fd is not None:
            try:
                with socket.socket(fileno=os.dup(fd)) as listener:
                    listener.shutdown(socket.SHUT_RDWR)  # for every process holding it
            except OSError as exc:  # already shut by another worker
                logging.getLogger(__name__).debug("listening socket: %s", exc)
        uvicorn_exit(sig, frame)

    signal.signal(signal.SIGTERM, stop_listening)


#: Called with the spec as a dict, to change it in place (info, components, ...).
Finish = Callable[[dict[str, Any]], None]


class _Spec:
    """BentoML's spec with our path items and ``finish`` applied to its dict: BentoML's
    ``PathItem``/``Components`` (1.4.40) forbid ``security`` and ``securitySchemes``."""

    def __init__(self, spec: Any, paths: dict[str, Any], finish: Finish | None) -> None:
        self._spec, self._paths, self._finish = spec, paths, finish

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)

    def asdict(self) -> dict[str, Any]:
        out: dict[str, Any] = self._spec.asdict()
        out.setdefault("paths", {}).update(copy.deepcopy(self._paths))
        if self._finish is not None:
            self._finish(out)
        return out


def add_openapi_paths(
    service_name: str,
    paths: dict[str, Any] | Callable[[], dict[str, Any]],
    finish: Finish | None = None,
) -> None:
    """Add ``paths`` (OpenAPI path items as dicts, or a function giving them when the spec
    is asked for, e.g. for the schema served then) to the spec of the service so named,
    then ``finish(spec_dict)``. ``/docs.json`` asks BentoML for the spec on every request."""
    import importlib

    openapi = importlib.import_module("_bentoml_sdk.service.openapi")
    generate = openapi.generate_spec
    entry = (paths, finish)
    if getattr(generate, "yield_ensemble_paths", None) is not None:
        generate.yield_ensemble_paths[service_name] = entry
        return
    extra: dict[str, tuple[Any, Finish | None]] = {service_name: entry}

    def generate_spec(svc: Any, **kwargs: Any) -> Any:
        spec = generate(svc, **kwargs)
        if svc.name not in extra:
            return spec
        items, done = extra[svc.name]
        return _Spec(spec, items() if callable(items) else items, done)

    generate_spec.yield_ensemble_paths = extra  # type: ignore[attr-defined]
    generate_spec.original = generate  # type: ignore[attr-defined]
    setattr(openapi, "generate_spec", generate_spec)  # noqa: B010 (a module attribute)


#: BentoML recycles the entry's client session to a dependency every
#: ``runner_connection.max_requests`` calls (default 100) and ``max_age`` seconds
#: (default 300), closing it under calls still in flight: at 16 concurrent clients
#: ~14% of requests failed with ServerDisconnectedError. The members are on the
#: same host, so the session is kept for the life of the process.
RUNNER_CONNECTION = {"max_requests": 2**31 - 1, "max_age": 10.0**9}


def tracing_options(enabled: bool, hot_paths: list[str]) -> dict[str, Any]:
    """Service options that keep OpenTelemetry off ``hot_paths`` unless tracing is wanted.

    Without an exporter BentoML still makes a span per request and per member call;
    py-spy put it at ~30% of the entry's CPU, and a member call took 2.3 ms, not 4.2.
    """
    return {} if enabled else {"tracing": {"excluded_urls": list(hot_paths)}}


def new_request_id() -> str:
    """A request's id: BentoML's span id when traced, else 16 random hex digits like it."""
    import secrets

    from bentoml._internal.context import trace_context

    span = trace_context.request_id
    return format(span, "016x") if span is not None else secrets.token_hex(8)


def fix_media_type(api: Any) -> None:
    """Declare an ndarray API's output media type once.

    BentoML works out an ndarray output's media type per response by building a
    pydantic TypeAdapter and its JSON schema: 25% of a member's CPU (py-spy). It always
    comes out "application/json".
    """
    api.output_spec.media_type = "application/json"


def outlive_the_entry(member: str, grace_s: float) -> None:
    """In a member worker: keep serving ``grace_s`` after SIGTERM, then stop as uvicorn would.

    ``bentoml serve`` sends SIGTERM to every service at once. A member that stopped at
    once would fail the entry's in-flight requests while the entry drains them
    (measured: degraded answers during shutdown under load).
    """
    uvicorn_exit = signal.getsignal(signal.SIGTERM)
    if grace_s <= 0 or threading.current_thread() is not threading.main_thread():
        return
    if not callable(uvicorn_exit):
        return

    def delayed(sig: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info(
            "member %s: SIGTERM; serving %.1f s more while the entry drains", member, grace_s
        )
        timer = threading.Timer(grace_s, uvicorn_exit, args=(sig, None))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, delayed)


def bentoml_home() -> str:
    """Where the model store lives (BentoML keeps it in a private container)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return str(BentoMLContainer.bentoml_home.get())


def refuse_unknown_fields(service: Any) -> None:
    """Make every JSON-object API of ``service`` refuse a body field it has no parameter
    for: a pydantic ``extra_forbidden`` error, which BentoML answers 400 with its detail
    and ``ops.edge`` turns into a 422 naming the field and the fields there are."""
    for api in service.apis.values():
        spec = api.input_spec
        if getattr(spec, "__root_input__", False):
            continue  # one positional argument: the whole body is its value
        spec.model_config["extra"] = "forbid"
        spec.model_rebuild(force=True)


def serve_connections(keepalive_s: float, header_timeout_s: float) -> None:
    """Every uvicorn server this process starts afterwards keeps idle connections
    ``keepalive_s`` (a new one too, which uvicorn leaves open until the client sends)
    and closes one whose request headers take over ``header_timeout_s`` to arrive.

    Call it when the service module is imported: BentoML's worker builds
    ``uvicorn.Config`` after loading the service. Without httptools (uvicorn's h11
    parser) only the keep-alive is set.
    """
    import uvicorn

    init = getattr(uvicorn.Config.__init__, "original", uvicorn.Config.__init__)
    protocol = _header_timeout_protocol(header_timeout_s)

    def config_init(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["timeout_keep_alive"] = keepalive_s
        if protocol is not None and kwargs.get("http", "auto") == "auto":
            kwargs["http"] = protocol
        init(self, app, *args, **kwargs)

    config_init.original = init  # type: ignore[attr-defined]
    uvicorn.Config.__init__ = config_init  # type: ignore[method-assign]


def _header_timeout_protocol(timeout_s: float) -> type[Any] | None:
    """uvicorn's httptools protocol with a timer from a request's first byte to the end
    of its headers, and the keep-alive timer armed on a new connection too."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn parses with h11
        return None

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._stop_header_timer()
            self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

        def on_headers_complete(self) -> None:
            self._stop_header_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            super().connection_lost(exc)

        def _stop_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            logging.getLogger(__name__).info(
                "closed a connection whose request headers took over %g s", timeout_s
            )
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
