"""The API as the OpenAPI spec shows it: every route typed, with an example and its statuses.

BentoML derives ``/predict``, ``/predict_batch``, ``/predict_wafer`` and ``/feedback``
from the endpoints' signatures, whose fields are ``Any`` (the service validates them
itself, to name the wrong field); it lists neither the mounted routes (``/ab``,
``/dashboard``) nor the status codes the edge answers. The path items here replace or
add those (``models.bentoml_quirks.add_openapi_paths``). Each example is one the real
server accepts (a test posts them).
"""

from __future__ import annotations

from typing import Any

from ensemble.api_docs import REPORT_OPENAPI, error_response

EXAMPLE_ROW = [1.2, 100, 2000, 25, 50, 0.95]
EXAMPLE_ROW_2 = [1.31, 180, 1750, 125, 71, 0.25]
_ID = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 256}, {"type": "integer"}]}
_NUMBERS = {"type": "array", "items": {"type": "number"}}
_FEATURES = {
    "description": "A list in schema order (vdd_v, idd_ma, freq_mhz, temp_c, test_time_ms, "
    "neighbor_yield by default) or an object keyed by feature name.",
    "oneOf": [_NUMBERS, {"type": "object", "additionalProperties": {"type": "number"}}],
}
_VERSIONS = {"type": "object", "additionalProperties": {"type": "string"}}
_PREDICTION = {
    "prediction": {"type": "string", "enum": ["pass", "fail"]},
    "probability": {"type": "number", "description": "combined, calibrated P(pass)"},
    "votes": {"type": "object", "additionalProperties": {"type": "number"}},
    "arm": {"type": "string"},
    "combiner": {"type": "string", "example": "majority:1@202611271251360c63"},
    "threshold": {"type": "number"},
    "degraded": {"type": "boolean"},
    "missing_members": {"type": "array", "items": {"type": "string"}},
    "cached": {"type": "boolean"},
}


def _ok(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"request_id": {"type": "string"}, **properties}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _statuses(role: str | None, body: bool, unavailable: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if body:
        out["400"] = error_response("Malformed JSON or a missing field (BentoML's validation).")
    if role:
        out["401"] = error_response("No API key, or an unknown one (WWW-Authenticate: Bearer).")
        out["403"] = error_response(f"The key has no {role} role.")
    if body:
        out["413"] = error_response(
            "Body over YIELD_ENSEMBLE_MAX_BODY_MB, refused before it is read."
        )
        out["415"] = error_response("The body is not application/json.")
    out["422"] = error_response("A field is wrong; `field` names it (and the device or die).")
    if unavailable:
        out["503"] = error_response(
            "Fewer than two members answered, or the prediction log can take no rows."
        )
    return out


def _post(
    operation: str,
    description: str,
    request: dict[str, Any],
    example: dict[str, Any],
    ok: dict[str, Any],
    role: str | None = None,
    unavailable: bool = True,
) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["Service APIs"],
            "operationId": f"yield_ensemble__{operation}",
            "description": description,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request, "example": example}},
            },
            "responses": {"200": ok, **_statuses(role, True, unavailable)},
        }
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_WINDOW = [
    _query("since", {"type": "string", "example": "2026-11-01T00:00:00Z"},
           "Window start: ISO 8601 or unix seconds."),
    _query("until", {"type": "string", "example": "2099-01-01T00:00:00Z"},
           "Window end, later than since."),
]  # fmt: skip
_PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000, "example": 100},
           "Rows per page."),
    _query("offset", {"type": "integer", "minimum": 0, "example": 0}, "First row of the page."),
]  # fmt: skip
_WAFER_PATH = {
    "name": "wafer_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "W0007"},
}
_YIELDS = {
    "dies": {
        "type": "integer",
        "description": "distinct dies (by device id, else wafer and position), each counted "
        "once: its newest prediction in the window",
    },
    "predictions": {"type": "integer", "description": "every prediction, repeats included"},
    "predicted_pass": {"type": "integer"},
    "predicted_yield": {
        "type": "number",
        "nullable": True,
        "description": "share of dies whose newest decision is pass, at the served "
        "cost-tuned threshold (counts decisions)",
    },
    "expected_yield": {
        "type": "number",
        "nullable": True,
        "description": "mean calibrated P(pass) of each die's newest prediction",
    },
    "labelled": {"type": "integer", "description": "dies with ground truth fed back"},
    "actual_pass": {"type": "integer"},
    "actual_yield": {"type": "number", "nullable": True},
    "first_ts": {"type": "number"},
    "last_ts": {"type": "number"},
}
_PAGED = {
    "total": {"type": "integer"},
    "limit": {"type": "integer"},
    "offset": {"type": "integer"},
    "next_offset": {"type": "integer", "nullable": True},
    "window": {"type": "object"},
    "yield_definitions": {
        "type": "object",
        "description": "each yield of the answer, in words",
        "additionalProperties": {"type": "string"},
    },
}


def _get(
    operation: str,
    description: str,
    parameters: list[dict[str, Any]],
    ok: dict[str, Any],
    not_found: bool = False,
) -> dict[str, Any]:
    responses = {"200": ok, **_statuses("report", False, False)}
    if not_found:
        responses["404"] = error_response("No prediction for this wafer in the window.")
    return {
        "get": {
            "tags": ["Dashboard"],
            "operationId": f"yield_ensemble__{operation}",
            "description": description + " Needs a `report` key.",
            "parameters": parameters,
            "responses": responses,
        }
    }


_STATE = {
    "type": "object",
    "properties": {
        "revision": {"type": "integer"},
        "champion": {"type": "string"},
        "candidate": {"type": "string", "nullable": True},
        "share": {"type": "number"},
        "previous": {"type": "string", "nullable": True, "description": "what rollback restores"},
        "changed_at": {"type": "number"},
        "changed_by": {"type": "string", "description": "the admin key's id, or start-up"},
        "action": {"type": "string", "enum": ["configure", "candidate", "promote", "rollback",
                                              "guardrail"]},
        "reason": {"type": "string", "nullable": True},
        "candidate_since": {"type": "number", "nullable": True},
    },
}  # fmt: skip
_SERVING_STATUS = {
    "state": _STATE,
    "here": {"type": "object", "description": "revision, versions by role and arms served here"},
    "history": {"type": "array", "items": _STATE},
}
_REASON = {"type": "string", "maxLength": 500, "description": "why, kept in the history"}
_ADMIN_CHANGES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("candidate",
     "Serve `version` beside the champion on a sticky `share` of traffic (`version` null "
     "stops the candidate).",
     {"type": "object", "required": ["version"], "properties": {
         "version": {"type": "string", "nullable": True, "example": "v2"},
         "share": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1},
         "reason": _REASON}},
     {"version": "v2", "share": 0.3, "reason": "retrained on lots 40-44"}),
    ("promote", "Make the candidate the champion; the champion is kept for a rollback.",
     {"type": "object", "properties": {"reason": _REASON}}, {"reason": "report says promote"}),
    ("rollback", "Serve the champion before the last promote again, without a candidate.",
     {"type": "object", "properties": {"reason": _REASON}}, {"reason": "escapes rose"}),
]  # fmt: skip


def _admin_change(
    action: str, description: str, request: dict[str, Any], example: dict[str, Any]
) -> dict[str, Any]:
    path = _post(
        f"admin_serving_{action}",
        description + " Every replica follows within seconds. Needs an `admin` key.",
        request,
        example,
        _ok("The new state.", {"state": _STATE, "versions": {"type": "object"}}),
        role="admin",
        unavailable=False,
    )
    path["post"]["tags"] = ["Admin"]
    path["post"]["requestBody"]["required"] = action == "candidate"
    path["post"]["responses"]["409"] = error_response(
        "The change cannot apply: no candidate, nothing to roll back, a version not in the "
        "store or trained on other features, a share not less than what the ensemble arm has, "
        "or a "
        "state changed meanwhile. Nothing changed."
    )
    path["post"]["responses"]["503"] = error_response("A member could not load the version.")
    return path


PATHS: dict[str, Any] = {
    "/predict": _post(
        "predict",
        "Pass/fail for one device.",
        {
            "type": "object",
            "required": ["features"],
            "properties": {"features": _FEATURES, "device_id": _ID, "wafer_id": _ID, "lot_id": _ID},
        },
        {"features": EXAMPLE_ROW, "device_id": "W0007-X+03Y-02", "wafer_id": "W0007"},
        _ok(
            "The decision, with every member's P(pass).",
            {**_PREDICTION, "device_id": _ID, "model_versions": _VERSIONS},
        ),
    ),
    "/predict_batch": _post(
        "predict_batch",
        "Pass/fail for many devices (up to 50,000); results keep the request's order.",
        {
            "type": "object",
            "required": ["devices"],
            "properties": {
                "devices": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50000,
                    "items": {
                        "type": "object",
                        "required": ["features"],
                        "properties": {
                            "features": _FEATURES,
                            "device_id": _ID,
                            "wafer_id": _ID,
                            "lot_id": _ID,
                        },
                    },
                }
            },
        },
        {
            "devices": [
                {"device_id": "d1", "features": EXAMPLE_ROW},
                {"device_id": "d2", "features": EXAMPLE_ROW_2},
            ]
        },
        _ok(
            "One result per device, in order; device i's request id is <request_id>.<i>.",
            {
                "count": {"type": "integer"},
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            **_PREDICTION,
                            "request_id": {"type": "string"},
                            "device_id": _ID,
                        },
                    },
                },
                "model_versions": _VERSIONS,
                "degraded": {"type": "boolean"},
            },
        ),
    ),
    "/predict_wafer": _post(
        "predict_wafer",
        "Pass/fail for a whole wafer in columns: one feature matrix in, arrays out "
        "(or records with answer=records). Die i's request id is <request_id>.<i>.",
        {
            "type": "object",
            "required": ["features"],
            "properties": {
                "features": {
                    "oneOf": [
                        {"type": "array", "items": _NUMBERS},
                        {"type": "object", "additionalProperties": _NUMBERS},
                    ],
                    "description": "One row per die in schema order, or one array per feature.",
                },
                "device_id": {"type": "array", "items": _ID},
                "wafer_id": {"oneOf": [_ID, {"type": "array", "items": _ID}]},
                "lot_id": {"oneOf": [_ID, {"type": "array", "items": _ID}]},
                "die_x": {"type": "array", "items": {"type": "integer"}},
                "die_y": {"type": "array", "items": {"type": "integer"}},
                "answer": {"type": "string", "enum": ["columns", "records"], "default": "columns"},
            },
        },
        {
            "features": [EXAMPLE_ROW, EXAMPLE_ROW_2],
            "device_id": ["W0007-0", "W0007-1"],
            "wafer_id": "W0007",
            "lot_id": "LOT42",
            "die_x": [0, 1],
            "die_y": [0, 0],
        },
        _ok(
            "Results as arrays in request order, and the rule of each arm.",
            {
                "count": {"type": "integer"},
                "columns": {
                    "type": "object",
                    "properties": {
                        "device_id": {"type": "array", "items": _ID},
                        "prediction": {"type": "array", "items": {"type": "string"}},
                        "probability": _NUMBERS,
                        "arm": {"type": "array", "items": {"type": "string"}},
                        "cached": {"type": "array", "items": {"type": "boolean"}},
                        "degraded": {"type": "array", "items": {"type": "boolean"}},
                        "votes": {"type": "object", "additionalProperties": _NUMBERS},
                    },
                },
                "missing_members": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                },
                "rules": {"type": "object"},
                "model_versions": _VERSIONS,
                "degraded": {"type": "boolean"},
            },
        ),
    ),
    "/feedback": _post(
        "feedback",
        "Ground truth from final test, by request id or device id (its latest prediction).",
        {
            "type": "object",
            "required": ["outcomes"],
            "properties": {
                "outcomes": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100000,
                    "items": {
                        "type": "object",
                        "required": ["actual"],
                        "properties": {
                            "request_id": {"type": "string"},
                            "device_id": _ID,
                            "actual": {"type": "string", "enum": ["pass", "fail"]},
                        },
                    },
                }
            },
        },
        {"outcomes": [{"device_id": "W0007-X+03Y-02", "actual": "pass"}]},
        _ok(
            "Counts per status; unknown ids listed by index.",
            {
                "received": {"type": "integer"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "unknown": {"type": "array", "items": {"type": "object"}},
            },
        ),
        role="feedback",
        unavailable=False,
    ),
    **REPORT_OPENAPI,
    "/dashboard/wafers": _get(
        "dashboard_wafers",
        "Wafers, newest first: dies, predicted and fed-back yield.",
        [
            *_WINDOW,
            *_PAGE,
            _query("lot_id", {"type": "string", "example": "LOT42"}, "Only this lot's wafers."),
        ],
        _ok(
            "One page of wafers.",
            {
                "wafers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"wafer_id": _ID, "lot_id": _ID, **_YIELDS},
                    },
                },
                **_PAGED,
            },
        ),
    ),
    "/dashboard/lots": _get(
        "dashboard_lots",
        "Lots, newest first: dies, predicted and fed-back yield.",
        [*_WINDOW, *_PAGE],
        _ok(
            "One page of lots.",
            {
                "lots": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"lot_id": _ID, **_YIELDS}},
                },
                **_PAGED,
            },
        ),
    ),
    "/dashboard/wafers/{wafer_id}": _get(
        "dashboard_wafer",
        "One wafer: yields, and counts per arm of each decision and each fed-back outcome.",
        [_WAFER_PATH, *_WINDOW],
        _ok(
            "The wafer's summary.",
            {"wafer_id": _ID, "lot_ids": {"type": "array"}, **_YIELDS, "arms": {"type": "object"}},
        ),
        not_found=True,
    ),
    "/dashboard/wafers/{wafer_id}/map": _get(
        "dashboard_wafer_map",
        "One wafer's dies by time, then row and column, each once: its newest prediction "
        "(x, y, decision, P(pass)), its newest ground truth and how often it was predicted.",
        [_WAFER_PATH, *_WINDOW, *_PAGE],
        _ok(
            "One page of dies.",
            {
                "wafer_id": _ID,
                "dies": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "request_id": {"type": "string"},
                            "device_id": _ID,
                            "x": {"type": "integer", "nullable": True},
                            "y": {"type": "integer", "nullable": True},
                            "prediction": {"type": "string"},
                            "probability": {"type": "number"},
                            "arm": {"type": "string"},
                            "ts": {"type": "number"},
                            "actual": {"type": "string", "nullable": True},
                            "predictions": {"type": "integer"},
                        },
                    },
                },
                **_PAGED,
            },
        ),
    ),
    "/admin/serving": {
        "get": {
            "tags": ["Admin"],
            "operationId": "yield_ensemble__admin_serving",
            "description": "What serves: the ledger's state (champion, candidate, share), what "
            "this replica serves, and the latest changes with who made them and when. Needs an "
            "`admin` key.",
            "parameters": [
                _query(
                    "history",
                    {"type": "integer", "minimum": 0, "maximum": 1000, "example": 20},
                    "Changes to list, newest first.",
                ),
            ],
            "responses": {
                "200": _ok("The serving state.", _SERVING_STATUS),
                **_statuses("admin", False, False),
            },
        }
    },
    **{
        f"/admin/serving/{action}": _admin_change(action, description, request, example)
        for action, description, request, example in _ADMIN_CHANGES
    },
}
