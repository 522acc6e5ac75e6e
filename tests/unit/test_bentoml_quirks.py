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


# Each test below fails when BentoML stops behaving the way its workaround assumes.


def test_bentoml_still_logs_its_own_validation_errors_with_a_traceback() -> None:
    import inspect

    from _bentoml_impl.server.app import ServiceAppFactory

    source = inspect.getsource(ServiceAppFactory.api_endpoint_wrapper)
    assert "except ValidationError" in source and "log_exception(request)" in source


def test_bentoml_still_hands_workers_the_listening_socket() -> None:
    from _bentoml_impl.worker.service import main

    assert any("--fd" in p.opts for p in main.params)


def test_bentoml_still_leaves_starlette_mounts_out_of_the_spec() -> None:
    import importlib

    import bentoml
    from starlette.applications import Starlette
    from starlette.routing import Route

    import service

    generate = importlib.import_module("_bentoml_sdk.service.openapi").generate_spec
    original = generate.original
    app = Starlette(routes=[Route("/r", lambda request: None)])

    @bentoml.asgi_app(app, path="/mounted")
    @bentoml.service(name="quirk_probe")
    class Probe:
        @bentoml.api
        def ping(self) -> str:
            return "pong"

    assert not any(p.startswith("/mounted") for p in original(Probe).paths)
    assert "/ab/report" in generate(service.YieldEnsemble).paths


def test_bentoml_still_recycles_dependency_sessions_by_default() -> None:
    from pathlib import Path

    import yaml
    from bentoml._internal.configuration import v2

    defaults = yaml.safe_load((Path(v2.__file__).parent / "default_configuration.yaml").read_text())
    assert defaults["services"]["runner_connection"]["max_requests"] == 100


def test_bentoml_still_traces_every_request_without_an_exporter() -> None:
    import inspect

    from _bentoml_impl.server.app import ServiceAppFactory

    assert "OpenTelemetryMiddleware" in inspect.getsource(ServiceAppFactory)


def test_bentoml_still_leaves_an_ndarray_output_media_type_to_each_response() -> None:
    import bentoml
    import numpy as np

    @bentoml.service(name="quirk_media")
    class Media:
        @bentoml.api
        async def out(self, rows: np.ndarray) -> np.ndarray:
            return rows

    assert Media.apis["out"].output_spec.media_type is None


def test_the_private_names_the_workarounds_use_still_exist() -> None:
    from models.bentoml_quirks import bentoml_home, new_request_id

    assert len(new_request_id()) == 16 and bentoml_home()
