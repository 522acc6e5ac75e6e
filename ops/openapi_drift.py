"""OpenAPI path items of the spatial and drift reads: /dashboard/wafers/{id}/spatial and
/dashboard/drift/* (``entry.reads``; the answers are ``ledger.spatial_read`` and
``ledger.drift``'s). Each needs a ``report`` key; the drift reads answer 409 when the
serving model was saved without reference distributions.
"""

from __future__ import annotations

from typing import Any

from ops.openapi_parts import ID, PAGE, WINDOW, error_response, get, ok_response, query

_OBJECT: dict[str, Any] = {"type": "object"}
_WAFER = {
    "name": "wafer_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "W0007"},
}
_LOT = {
    "name": "lot_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "example": "LOT42"},
}
_THRESHOLDS = {"type": "object", "description": "psi_significant and alpha the answer used"}
#: One lot's, wafer's or time bucket's drift (``ledger.drift_stats.drift``).
DRIFT = {
    "first_ts": {"type": "number"},
    "last_ts": {"type": "number"},
    "dies": {"type": "integer"},
    "wafers": {"type": "integer"},
    "out_of_range_dies": {
        "type": "integer",
        "description": "dies with a feature outside the training range",
    },
    "out_of_range_share": {"type": "number", "nullable": True},
    "max_psi": {"type": "number", "description": "the largest population stability index"},
    "drifted": {"type": "boolean", "description": "a feature's Holm-adjusted p below alpha"},
    "alert": {"type": "boolean", "description": "a drifted feature with PSI over psi_significant"},
    "moved_most": {"type": "array", "items": {"type": "string"}},
    "features": {
        "type": "array",
        "items": _OBJECT,
        "description": "per feature: psi, "
        "p_value (wafer-corrected chi-square), p_holm, drifted, level; one lot or "
        "wafer also its histogram beside training's",
    },
    "alpha": {"type": "number"},
    "tested": {"type": "boolean"},
}


def _drift_get(
    operation: str, description: str, parameters: list[Any], ok: Any, not_found: bool = False
) -> dict[str, Any]:
    item = get(operation, description, parameters, ok, not_found)
    responses = item["get"]["responses"]
    responses["409"] = error_response(
        "The serving model was saved without reference distributions (train again)."
    )
    if not_found:
        responses["404"] = error_response("Nothing served for it in the window.")
    item["get"]["tags"] = ["Drift"]
    return item


def _page(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return ok_response(
        f"One page of {key}, newest first.",
        {
            key: {"type": "array", "items": {"type": "object", "properties": item}},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": {"type": "integer", "nullable": True},
            "window": _OBJECT,
            "thresholds": _THRESHOLDS,
        },
    )


PATHS: dict[str, Any] = {
    "/dashboard/wafers/{wafer_id}/spatial": get(
        "dashboard_wafer_spatial",
        "One wafer's spatial read: Moran's I of predicted and actual fails (normal "
        "approximation p-value), 8-connected fail clusters, yield by radial ring, escapes "
        "and overkill as die positions.",
        [_WAFER, *WINDOW],
        ok_response(
            "The wafer's spatial read.",
            {
                "wafer_id": ID,
                "dies": {"type": "integer"},
                "unplaced": {"type": "integer"},
                "labelled": {"type": "integer"},
                "morans_i": _OBJECT,
                "clusters": _OBJECT,
                "rings": {"type": "array", "items": _OBJECT},
                "escapes": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "integer"}},
                },
                "overkill": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "integer"}},
                },
                "window": _OBJECT,
            },
        ),
        not_found=True,
    ),
    "/dashboard/drift/lots": _drift_get(
        "drift_lots",
        "Lots, newest first, each with its drift from the training data.",
        [*WINDOW, *PAGE],
        _page("lot_id", {"lot_id": ID, **DRIFT}),
    ),
    "/dashboard/drift/wafers": _drift_get(
        "drift_wafers",
        "Wafers, newest first, each with its drift from the training data.",
        [
            *WINDOW,
            *PAGE,
            query("lot_id", {"type": "string", "example": "LOT42"}, "Only this lot's wafers."),
        ],
        _page("wafer_id", {"wafer_id": ID, **DRIFT}),
    ),
    "/dashboard/drift/lots/{lot_id}": _drift_get(
        "drift_lot",
        "One lot's drift, every feature with its histogram beside training's.",
        [_LOT, *WINDOW],
        ok_response("The lot's drift.", {"lot_id": ID, **DRIFT, "window": _OBJECT}),
        not_found=True,
    ),
    "/dashboard/drift/wafers/{wafer_id}": _drift_get(
        "drift_wafer",
        "One wafer's drift, every feature with its histogram beside training's.",
        [_WAFER, *WINDOW],
        ok_response("The wafer's drift.", {"wafer_id": ID, **DRIFT, "window": _OBJECT}),
        not_found=True,
    ),
    "/dashboard/drift/timeline": _drift_get(
        "drift_timeline",
        "The window's drift per time bucket, oldest first.",
        [
            *WINDOW,
            query(
                "bucket_s",
                {"type": "integer", "minimum": 60, "maximum": 31 * 86400, "example": 86400},
                "Bucket length, seconds.",
            ),
        ],
        ok_response(
            "Drift per bucket.",
            {
                "bucket_s": {"type": "integer"},
                "buckets": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"start": {"type": "integer"}, **DRIFT},
                    },
                },
                "window": _OBJECT,
                "thresholds": _THRESHOLDS,
            },
        ),
    ),
}
