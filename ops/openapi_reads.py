"""OpenAPI path items of the read and admin routes: /ab/report, /dashboard/*, /admin/serving.

These are mounted routes BentoML does not list; each answers the edge's statuses.
"""

from __future__ import annotations

from typing import Any

from ensemble.arms import ARM_NAME, ENSEMBLE
from ops.openapi_parts import (
    ID,
    PAGE,
    WINDOW,
    error_response,
    get,
    ok_response,
    post,
    query,
    statuses,
    time_parameter,
)

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
        "drift": {
            "type": "object",
            "description": "The window's input against the champion's training reference, "
            "whatever the arm: overall and per lot (worst first) PSI, Holm-adjusted p per "
            "feature, out-of-range share, moved_most, drifted, alert; worst_lot with its most "
            "drifted feature's histogram. available false (with a note) without a reference.",
        },
        "conclusion": {"type": "string"},
    },
}

#: /ab/report in the OpenAPI spec (BentoML lists only its own APIs and FastAPI mounts).
REPORT_OPENAPI = {
    "/ab/report": {
        "get": {
            "tags": ["Dashboard"],
            "operationId": "yield_ensemble__ab_report",
            "description": "The A/B accuracy report over the prediction log (a `report` key).",
            "parameters": [
                time_parameter("since", "Window start", "2026-11-01T00:00:00Z"),
                time_parameter("until", "Window end, later than since", "2099-01-01T00:00:00Z"),
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
                "503": error_response(
                    "The prediction log cannot be read now, the read waited over 30 s behind "
                    "others, or its process died (`Retry-After` says when to try again)."
                ),
            },
            "security": [{"apiKey": []}],
        }
    }
}

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
PAGED = {
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
    path = post(
        f"admin_serving_{action}",
        description + " Every replica follows within seconds. Needs an `admin` key.",
        request,
        example,
        ok_response("The new state.", {"state": _STATE, "versions": {"type": "object"}}),
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


#: /ab/report, the dashboard and the admin routes, in the spec's order.
PATHS: dict[str, Any] = {
    **REPORT_OPENAPI,
    "/dashboard/wafers": get(
        "dashboard_wafers",
        "Wafers, newest first: dies, predicted and fed-back yield.",
        [
            *WINDOW,
            *PAGE,
            query("lot_id", {"type": "string", "example": "LOT42"}, "Only this lot's wafers."),
        ],
        ok_response(
            "One page of wafers.",
            {
                "wafers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"wafer_id": ID, "lot_id": ID, **_YIELDS},
                    },
                },
                **PAGED,
            },
        ),
    ),
    "/dashboard/lots": get(
        "dashboard_lots",
        "Lots, newest first: dies, predicted and fed-back yield.",
        [*WINDOW, *PAGE],
        ok_response(
            "One page of lots.",
            {
                "lots": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"lot_id": ID, **_YIELDS}},
                },
                **PAGED,
            },
        ),
    ),
    "/dashboard/wafers/{wafer_id}": get(
        "dashboard_wafer",
        "One wafer: yields, and counts per arm of each decision and each fed-back outcome.",
        [_WAFER_PATH, *WINDOW],
        ok_response(
            "The wafer's summary.",
            {"wafer_id": ID, "lot_ids": {"type": "array"}, **_YIELDS, "arms": {"type": "object"}},
        ),
        not_found=True,
    ),
    "/dashboard/wafers/{wafer_id}/map": get(
        "dashboard_wafer_map",
        "One wafer's dies by time, then row and column, each once: its newest prediction "
        "(x, y, decision, P(pass)), its newest ground truth and how often it was predicted.",
        [_WAFER_PATH, *WINDOW, *PAGE],
        ok_response(
            "One page of dies.",
            {
                "wafer_id": ID,
                "dies": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "request_id": {"type": "string"},
                            "device_id": ID,
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
                **PAGED,
            },
        ),
        not_found=True,
    ),
    "/admin/serving": {
        "get": {
            "tags": ["Admin"],
            "operationId": "yield_ensemble__admin_serving",
            "description": "What serves: the ledger's state (champion, candidate, share), what "
            "this replica serves, and the latest changes with who made them and when. Needs an "
            "`admin` key.",
            "parameters": [
                query(
                    "history",
                    {"type": "integer", "minimum": 0, "maximum": 1000, "example": 20},
                    "Changes to list, newest first.",
                ),
            ],
            "responses": {
                "200": ok_response("The serving state.", _SERVING_STATUS),
                **statuses("admin", False, False),
            },
            "security": [{"apiKey": []}],
        }
    },
    **{
        f"/admin/serving/{action}": _admin_change(action, description, request, example)
        for action, description, request, example in _ADMIN_CHANGES
    },
}
