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
from ops.openapi_parts import SECURITY_SCHEMES, error_response, security

#: Declared routes (``ops.access.ROUTES``) the spec leaves out: the documentation itself
#: (``/`` and ``/docs`` are its page) and the page's files.
UNDOCUMENTED = ("/", "/docs", "/docs/", "/docs.json", "/schema.json", "/docs/assets/{name}")
#: Every path item we write, by path, in the spec's order (the synthetic data's schema).
PATHS: dict[str, Any] = {
    **openapi_predict.PATHS, **openapi_stdf.PATHS, **openapi_reads.PATHS, **openapi_analysis.PATHS,
}  # fmt: skip
#: The routes a ``predict`` key opens when YIELD_ENSEMBLE_PREDICT_REQUIRES_KEY is set.
PREDICT_ROUTES = ("/predict", "/predict_batch", "/predict_wafer", "/predict_stdf")


def paths(schema: FeatureSchema | None, predict_requires_key: bool = False) -> dict[str, Any]:
    """Every path item, the predict routes' for ``schema`` (None: the synthetic data's),
    keyed (bearer scheme, 401 and 403) when ``predict_requires_key``."""
    items = {**openapi_predict.paths(schema), **openapi_stdf.PATHS, **openapi_reads.PATHS,
             **openapi_analysis.PATHS}  # fmt: skip
    if predict_requires_key:
        for route in PREDICT_ROUTES:
            op = items[route] = {"post": dict(items[route]["post"])}
            op["post"].update(security("predict"))
            op["post"]["responses"] = {
                **op["post"]["responses"],
                "401": error_response("No API key, or an unknown one (WWW-Authenticate: Bearer)."),
                "403": error_response("The key has no predict role."),
            }
    return items


def served(schema: Callable[[], FeatureSchema | None]) -> Callable[[], dict[str, Any]]:
    """The path items for the schema ``schema()`` gives when the spec is asked for."""
    from ops.settings import get_ops_settings

    return lambda: paths(schema(), get_ops_settings().predict_requires_key)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yield-ensemble")
    except PackageNotFoundError:
        return "0+unknown"


#: The spec's groups, in the page's order, in our words (BentoML's name its own product).
TAGS = [
    {"name": "Service APIs", "description": "Predictions (open unless predict keys are "
     "required) and ground truth (a `feedback` key)."},
    {"name": "Dashboard", "description": "The A/B report and per-wafer and per-lot reads (a "
     "`report` key)."},
    {"name": "Drift", "description": "What is served against the training data (a `report` "
     "key)."},
    {"name": "Admin", "description": "What serves, and changing it (an `admin` key)."},
    {"name": "Infrastructure", "description": "Probes and Prometheus metrics, no key."},
]  # fmt: skip
#: The probes' failure answers (BentoML lists only their 200).
PROBE_FAILURES = {
    "/livez": "Not alive: the prediction log's writer stalled (restart the replica).",
    "/readyz": "Not ready: fewer than two members answer, a member lacks the serving "
    "versions, or the prediction log takes no rows.",
}


def finish(spec: dict[str, Any]) -> None:
    """Our title, the package's version, the API keys' security scheme, our tag
    descriptions and the probes' 503."""
    spec["info"] = {
        "title": "yield-ensemble",
        "version": package_version(),
        "description": "Pass/fail predictions of dies from their parametric tests. Routes "
        "marked with a lock need an API key: Authorize, then paste the key's secret.",
    }
    spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    spec["tags"] = TAGS
    for path, why in PROBE_FAILURES.items():
        if path in spec.get("paths", {}):
            spec["paths"][path]["get"]["responses"]["503"] = {"description": why}
