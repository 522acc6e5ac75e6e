"""The ledger reads' own process: the A/B report and dashboard reads run there.

A report over 200,000 logged predictions is seconds of Python and numpy. Run in the entry
worker's threads, it held the GIL the predictions and readiness probes need: under 24
reading clients, a probe's 0.5 s checks ran late and ``/readyz`` answered 503 while the
database and members were fine. In a process of its own a read costs the entry worker
only its arguments out and its answer back (pickled), and the report's CPU lands on
another core.

- ``ReadProcess(url, processes)``: ``processes`` worker processes
  (``YIELD_ENSEMBLE_READ_PROCESSES``, default 1) opened on the same database URL, each
  with an engine of its own; 0 runs the reads in the calling thread (the entry's read
  threads), as before, and saves the process's memory (~60 MB RSS).
- ``call(fn, *args, **kwargs)`` runs ``fn(queries, *args, **kwargs)`` there, ``queries`` a
  ``ledger.queries.LedgerQueries`` on that engine; ``fn`` must be importable (a module's
  function). It blocks: call it from a read thread, never on the event loop.
- The processes are started with ``spawn`` (the entry worker has threads; ``fork``
  would copy their held locks) when the worker starts, so the first read does not wait
  for their start-up (~1 s).
- A read's exception reaches the caller as its own type and message (an unknown arm is
  still a 422, a lost database still a 503). A process that dies (killed, out of memory)
  fails the reads it held with ``ReadProcessLost`` (503, ``Retry-After``) and is started
  again for the next read.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ensemble.errors import Internal, Unavailable

logger = logging.getLogger("yield_ensemble")
#: Longest ``ReadProcess.close`` waits for a read in flight, seconds.
CLOSE_S = 5.0


class ReadProcessLost(Unavailable):
    """The read's process died before it answered (killed, out of memory); a new one
    serves the next read (503)."""

    kind = "read_process_lost"
    retry_after_s = 1


#: The process's own queries (``_open`` sets it); None in the entry worker.
_QUERIES: Any = None


def _open(url: str, log_format: str, log_level: str) -> None:
    """A read process's start: our log format (redacted), its own engine on ``url``.

    SIGINT and SIGTERM are ignored: a server's stop signals its whole process group, and
    the entry worker, which drains its requests first, decides when its reads stop (its
    exit, even by SIGKILL, ends this process too: ``_exit_with``)."""
    global _QUERIES
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="read-parent", daemon=True).start()
    from ledger.engine import make_engine
    from ledger.queries import LedgerQueries
    from ops import logs

    logs.configure(log_format, log_level)
    queries = LedgerQueries()
    queries.engine = make_engine(url)
    _QUERIES = queries


def _exit_with(parent: Any) -> None:
    """Exit when the entry worker is gone, however it went (SIGKILL included): a read
    process blocked on its call pipe otherwise outlives it, an orphan holding memory."""
    parent.join()
    os._exit(0)


def _ready() -> bool:
    return _QUERIES is not None


def _run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """In the read process: ``fn``'s answer, or its exception as (type, args, state).

    An exception is sent apart from its class's constructor, which unpickling would call
    with the wrong arguments (``UnknownArm(arm, known)``); ``_raised`` rebuilds it."""
    try:
        return True, fn(_QUERIES, *args, **kwargs)
    except Exception as exc:
        state = (type(exc), exc.args, dict(vars(exc)))
        try:
            pickle.dumps(state)
        except Exception:
            logger.exception("a read failed with an error that cannot be sent back")
            state = (Internal, (f"the read failed: {type(exc).__name__}",), {})
        return False, state


def _raised(state: tuple[type[BaseException], tuple[Any, ...], dict[str, Any]]) -> BaseException:
    cls, args, attrs = state
    exc = cls.__new__(cls)
    exc.args = args
    vars(exc).update(attrs)
    return exc


class ReadProcess:
    """Ledger reads in ``processes`` processes of their own on ``url`` (module docstring)."""

    def __init__(self, url: str, processes: int, log_format: str = "json",
                 log_level: str = "INFO", local: Any = None) -> None:  # fmt: skip
        """``local``: the queries to run reads on in the caller when ``processes`` is 0."""
        self.processes = processes
        self._init = (url, log_format, log_level)
        self._local = local
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def start(self) -> Future[bool] | None:
        """Start the processes now (they open their engine in the background)."""
        if not self.processes:
            return None
        try:
            return self._executor().submit(_ready)
        except OSError as exc:
            self._in_threads(exc)
            return None

    def _in_threads(self, exc: OSError) -> None:
        """No process can be started here (no /dev/shm for its locks, no process left):
        the reads run in the caller's threads, as with ``processes`` 0, and the log says so."""
        logger.warning("ledger reads run in the entry worker's threads: a read process "
                       "cannot start here (%s: %s)", type(exc).__name__, exc)  # fmt: skip
        self.processes = 0

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise Unavailable("the worker is shutting down")
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_open,
                    initargs=self._init,
                )
            return self._pool

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(queries, *args, **kwargs)`` in a read process (blocking); its exception as
        raised there; ``ReadProcessLost`` if the process died first."""
        if not self.processes:
            return fn(self._local, *args, **kwargs)
        try:
            pool, future = self._submit(fn, args, kwargs)
        except OSError as exc:
            self._in_threads(exc)
            return fn(self._local, *args, **kwargs)
        try:
            ok, value = future.result()
        except BrokenProcessPool:
            self._replace(pool)
            raise ReadProcessLost(
                "the process reading the prediction log died before it answered (killed "
                "or out of memory); a new one takes the next read"
            ) from None
        if ok:
            return value
        raise _raised(value)

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> tuple[ProcessPoolExecutor, Future[Any]]:  # fmt: skip
        """The read sent to a process; a process that died between reads (its pool broken
        before this read was sent) is replaced first: no read was lost, none fails."""
        pool = self._executor()
        try:
            return pool, pool.submit(_run, fn, args, kwargs)
        except BrokenProcessPool:
            self._replace(pool)
            pool = self._executor()
            return pool, pool.submit(_run, fn, args, kwargs)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                logger.error("a ledger read process died; starting another")
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self, wait_s: float = CLOSE_S) -> None:
        """Stop the processes, waiting up to ``wait_s`` for a read in flight; no new read
        starts. Waited for, they hand back their locks (else multiprocessing's resource
        tracker warns of leaked semaphores at exit); past ``wait_s`` the worker goes on
        and its read process follows it out (``_exit_with``)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            stop = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True},
                                    name="read-close", daemon=True)  # fmt: skip
            stop.start()
            stop.join(wait_s)


def on_engine(queries: Any, fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """``fn(engine, *args, **kwargs)`` (a ``ledger.dashboard``-style read) on ``queries``'
    engine, run again across a lost database connection (``ledger.retry``)."""
    from ledger.retry import retried

    return retried(lambda: fn(queries.engine, *args, **kwargs), what=what)


def report(queries: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``LedgerQueries.report(*args, **kwargs)`` on ``queries``, run again across a lost
    database connection (``ledger.retry``): LedgerUnavailable (503) once that is spent."""
    from ledger.retry import retried

    result: dict[str, Any] = retried(lambda: queries.report(*args, **kwargs), what="the A/B report")
    return result
