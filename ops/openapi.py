"""The API as the OpenAPI spec shows it: every route typed, with an example and its statuses.

BentoML derives ``/predict``, ``/predict_batch``, ``/predict_wafer`` and ``/feedback``
from the endpoints' signatures, whose fields are ``Any`` (the service validates them
itself, to name the wrong field); it lists neither the mounted routes (``/ab``,
``/dashboard``, ``/admin``) nor the status codes the edge answers. The path items here
replace or add those (``models.bentoml_quirks.add_openapi_paths``): the predict routes'
in ``ops.openapi_predict``, the tester files' in ``ops.openapi_stdf``, the reads' and the
admin's in ``ops.openapi_reads``, the drift and spatial reads' in ``ops.openapi_analysis``.
Each JSON example is one the real server accepts (a test posts them). Every declared route
is documented but for ``UNDOCUMENTED`` (``tests/unit/test_openapi_docs.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ensemble.schema import FeatureSchema
from ops import openapi_analysis, openapi_predict, openapi_reads, openapi_stdf
from ops.openapi_parts import SECURITY_SCHEMES

#: Declared routes (``ops.access.ROUTES``) the spec leaves out: the documentation itself
#: (``/`` is Swagger UI) and its static files.
UNDOCUMENTED = ("/", "/docs", "/docs/", "/docs.json", "/schema.json", "/static_content/*")
#: Every path item we write, by path, in the spec's order (the synthetic data's schema).
PATHS: dict[str, Any] = {
    **openapi_predict.PATHS,
    **openapi_stdf.PATHS,
    **openapi_reads.PATHS,
    **openapi_analysis.PATHS,
}


def paths(schema: FeatureSchema | None) -> dict[str, Any]:
    """Every path item, the predict routes' for ``schema`` (None: the synthetic data's)."""
    return {
        **openapi_predict.paths(schema),
        **openapi_stdf.PATHS,
        **openapi_reads.PATHS,
        **openapi_analysis.PATHS,
    }


def served(schema: Callable[[], FeatureSchema | None]) -> Callable[[], dict[str, Any]]:
    """The path items for the schema ``schema()`` gives when the spec is asked for."""
    return lambda: paths(schema())


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yield-ensemble")
    except PackageNotFoundError:
        return "0+unknown"


def finish(spec: dict[str, Any]) -> None:
    """Our title, the package's version, and the API keys' security scheme."""
    spec["info"] = {
        "title": "yield-ensemble",
        "version": package_version(),
        "description": "Pass/fail predictions of dies from their parametric tests. Routes "
        "marked with a lock need an API key: Authorize, then paste the key's secret.",
    }
    spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
