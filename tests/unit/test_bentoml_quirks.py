"""The BentoML workarounds' own logic (their effect is tested on a real server)."""

from __future__ import annotations

import logging
import sys

import pydantic

from models.bentoml_quirks import _ClientErrorFilter, listening_fd


def test_listening_fd_is_read_from_the_worker_arguments() -> None:
    argv = ["-m", "_bentoml_impl.worker.service", "service:X", "--fd", "7", "--worker-id", "1"]
    assert listening_fd(argv) == 7
    assert listening_fd(["--fd"]) is None and listening_fd(["--worker-id", "1"]) is None


def _record(exc: BaseException | None) -> logging.LogRecord:
    info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("x", logging.ERROR, __file__, 1, "Exception on /predict", (), info)


def test_client_error_tracebacks_are_dropped_and_server_errors_kept() -> None:
    class Model(pydantic.BaseModel):
        n: int

    try:
        Model(n="x")  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        validation = exc
    keep = _ClientErrorFilter()
    assert not keep.filter(_record(validation))
    assert keep.filter(_record(RuntimeError("a real fault")))
    assert keep.filter(_record(None))
    assert sys.modules["models.bentoml_quirks"].HTTP_APP_LOGGER.startswith("bentoml.")
