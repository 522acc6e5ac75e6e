"""The API as the OpenAPI spec shows it: every route typed, with an example and its statuses.

BentoML derives ``/predict``, ``/predict_batch``, ``/predict_wafer`` and ``/feedback``
from the endpoints' signatures, whose fields are ``Any`` (the service validates them
itself, to name the wrong field); it lists neither the mounted routes (``/ab``,
``/dashboard``, ``/admin``) nor the status codes the edge answers. The path items here
replace or add those (``models.bentoml_quirks.add_openapi_paths``): the predict routes'
in ``ops.openapi_predict``, the tester files' in ``ops.openapi_stdf``, the reads' and the
admin's in ``ops.openapi_reads``. Each JSON example is one the real server accepts (a test
posts them).
"""

from __future__ import annotations

from typing import Any

from ops import openapi_predict, openapi_reads, openapi_stdf

#: Every path item we write, by path, in the spec's order.
PATHS: dict[str, Any] = {**openapi_predict.PATHS, **openapi_stdf.PATHS, **openapi_reads.PATHS}
