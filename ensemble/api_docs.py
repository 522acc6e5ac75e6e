"""What the API says about itself: field descriptions and the OpenAPI paths BentoML misses.

BentoML builds the spec of ``/predict``, ``/predict_batch`` and ``/feedback`` from the
endpoints' signatures (these descriptions); ``/ab/report`` is a mounted route, so its
path item is written here (``models.bentoml_quirks.add_openapi_paths`` adds it).
"""

from __future__ import annotations

from typing import Any

from ensemble.arms import ARM_NAME, ENSEMBLE
from ensemble.validation import ID_RULE

FEATURES_DOC = (
    "The device's parametric measurements: a list in schema order "
    "(vdd_v, idd_ma, freq_mhz, temp_c, test_time_ms, neighbor_yield by default) "
    "or an object keyed by feature name."
)
#: What every identifier must be (device, wafer, lot): the dashboard reads them in paths.
ID_RULE_DOC = (
    f"An id is a string or an integer (never a boolean or a float) of {ID_RULE}: "
    "the dashboard's paths (/dashboard/wafers/{wafer_id}) could not address others."
)
ID_DOC = (
    "Optional key; the first of device_id, wafer_id, lot_id given fixes the A/B arm. " + ID_RULE_DOC
)
WAFER_FEATURES_DOC = (
    "The dies' measurements: a matrix (one row per die, features in schema order) or an "
    'object of one array per feature name, {"vdd_v": [...], "idd_ma": [...], ...}.'
)
WAFER_IDS_DOC = (
    "device_id: an array, one per die (optional), each id once. wafer_id, lot_id: one value "
    "for every die, or an array. The first given fixes each die's A/B arm. " + ID_RULE_DOC
)
DIE_DOC = (
    "The dies' positions on the wafer, integer arrays (die_x and die_y together); "
    "one die per position of a wafer."
)
ANSWER_DOC = '"columns" (default): results as arrays; "records": /predict_batch\'s shape.'
OUTCOMES_DOC = (
    'Ground truth: [{"request_id": ..., "actual": "pass"|"fail"}] or with "device_id" '
    "instead of request_id (the device's latest prediction)."
)


def error_response(description: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {"type": "string"},
            "request_id": {"type": "string"},
            "field": {"type": "string", "description": "the wrong field (422)"},
        },
    }
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _time_parameter(name: str, what: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{what}: unix seconds or ISO 8601 (UTC unless it says otherwise).",
        "schema": {"type": "string", "example": example},
    }


_OBJECT = {"type": "object"}
REPORT_SCHEMA = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "window": _OBJECT,
        "labelled": {"type": "integer"},
        "arms": {
            "type": "object",
            "description": "Per arm: served, labelled, accuracy, fail recall and precision, "
            "escapes, overkill, escapes per million shipped, cost per die (95% intervals), "
            "confusion matrix, timeline.",
        },
        "comparisons": {"type": "object", "description": "Each arm against the ensemble."},
        "sample_size": _OBJECT,
        "costs": _OBJECT,
        "decision_run": {"type": "string", "nullable": True},
        "shadow": {"type": "object", "description": "Each member alone, on the same devices."},
        "shadow_combiners": {"type": "object", "description": "Every combiner, in shadow."},
        "agreement": _OBJECT,
        "versions": {
            "type": "array",
            "description": "The ensemble arm per logged model-version trio; the newest against "
            "each older one (always valid).",
        },
        "ground_truth": {"type": "object", "description": "Outcomes per sender, replacements."},
        "conclusion": {"type": "string"},
    },
}

#: /ab/report in the OpenAPI spec (BentoML lists only its own APIs and FastAPI mounts).
REPORT_OPENAPI = {
    "/ab/report": {
        "get": {
            "tags": ["Service APIs"],
            "operationId": "yield_ensemble__ab_report",
            "description": "The A/B accuracy report over the prediction log (a `report` key).",
            "parameters": [
                _time_parameter("since", "Window start", "2026-11-01T00:00:00Z"),
                _time_parameter("until", "Window end, later than since", "2099-01-01T00:00:00Z"),
                {
                    "name": "arm",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "pattern": ARM_NAME.pattern, "example": ENSEMBLE},
                },
            ],
            "responses": {
                "200": {
                    "description": "Per arm counts, accuracy with intervals, comparisons.",
                    "content": {"application/json": {"schema": REPORT_SCHEMA}},
                },
                "401": error_response("No API key, or an unknown one."),
                "403": error_response("The key has no report role."),
                "422": error_response("A query parameter is wrong; `field` names it."),
            },
        }
    }
}
