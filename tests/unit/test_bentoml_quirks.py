"""The BentoML workarounds' own logic (their effect is tested on a real server)."""

from __future__ import annotations

import logging
import sys

import pydantic
import pytest

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
    spec = generate(service.YieldEnsemble).asdict()
    assert "/ab/report" in spec["paths"]
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


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


def test_bentoml_still_ignores_body_fields_an_api_has_no_parameter_for() -> None:
    import bentoml

    @bentoml.service
    class Probe:
        @bentoml.api
        def predict(self, features: list[float]) -> float:
            return 0.0

    spec = Probe.apis["predict"].input_spec
    assert spec.model_validate_json(b'{"features": [1], "deviceId": "x"}').features == [1]


def test_unknown_fields_are_refused_once_the_quirk_is_applied() -> None:
    import bentoml

    from models.bentoml_quirks import refuse_unknown_fields

    @bentoml.service
    class Probe:
        @bentoml.api
        def predict(self, features: list[float], device_id: str | None = None) -> float:
            return 0.0

    refuse_unknown_fields(Probe)
    spec = Probe.apis["predict"].input_spec
    with pytest.raises(pydantic.ValidationError) as caught:
        spec.model_validate_json(b'{"features": [1], "deviceId": "x"}')
    (error,) = caught.value.errors()
    assert error["type"] == "extra_forbidden" and error["loc"] == ("deviceId",)
    assert spec.model_validate_json(b'{"features": [1], "device_id": "x"}').device_id == "x"


def test_the_edge_knows_the_fields_of_every_json_route() -> None:
    """ops.edge names the fields there are from REQUEST_FIELDS: it must match the APIs."""
    import service
    from ensemble.validation import REQUEST_FIELDS

    routes = {
        api.route: tuple(api.input_spec.model_fields) for api in service.YieldEnsemble.apis.values()
    }
    assert routes == REQUEST_FIELDS


def test_bentoml_still_gives_uvicorn_only_the_command_line_keep_alive() -> None:
    import inspect

    from _bentoml_impl.worker.service import main

    keep_alive = next(p for p in main.params if p.name == "timeout_keep_alive")
    assert keep_alive.default == 5
    source = inspect.getsource(main.callback)  # type: ignore[arg-type]
    assert "uvicorn.Config(" in source and "http=" not in source


def test_uvicorn_still_has_no_header_read_timeout() -> None:
    import inspect

    import uvicorn

    names = inspect.signature(uvicorn.Config).parameters
    assert not [n for n in names if "header" in n and "timeout" in n]


def test_serve_connections_sets_keep_alive_and_the_header_timer() -> None:
    import uvicorn

    from models.bentoml_quirks import serve_connections

    before = uvicorn.Config.__init__
    try:
        serve_connections(75.0, 3.0)
        serve_connections(76.0, 3.0)  # twice: wraps uvicorn's own, not itself
        config = uvicorn.Config(lambda *a: None, timeout_keep_alive=5)
        assert config.timeout_keep_alive == 76.0
        assert getattr(config.http, "__name__", "") == "HeaderTimeoutProtocol"
    finally:
        uvicorn.Config.__init__ = getattr(before, "original", before)  # type: ignore[method-assign]


def test_a_client_that_left_mid_body_leaves_no_traceback() -> None:
    from starlette.requests import ClientDisconnect

    from ops.body import BodyRefused

    keep = _ClientErrorFilter()
    assert not keep.filter(_record(ClientDisconnect()))
    assert not keep.filter(_record(BodyRefused(413, "")))
