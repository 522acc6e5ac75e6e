"""OpenAPI path items of the analysis reads: drift (/dashboard/drift/...) and a wafer's
spatial read (/dashboard/wafers/{wafer_id}/spatial).

Mounted routes BentoML does not list, documented as the other dashboard reads are
(``ops.openapi_reads``): a ``report`` key, the window, pages, every status. The drift
reads answer 409 when the serving champion has no reference distributions.
"""

from __future__ import annotations

from typing import Any

from ops.openapi_parts import ID, WINDOW, error_response, get, ok_response, query

_NUMBER = {"type": "number"}
_NULLABLE = {"type": "number", "nullable": True}
#: The drift reads' largest page (``ledger.drift.MAX_LIMIT``).
_DRIFT_PAGE = [
    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "example": 100},
          "Lots or wafers per page."),
    query("offset", {"type": "integer", "minimum": 0, "example": 0}, "First of the page."),
]  # fmt: skip
_FEATURE = {
    "type": "object",
    "properties": {
        "feature": {"type": "string"},
        "psi": {"type": "number", "description": "population stability index against "
                "training: under 0.1 no shift, 0.1 to 0.25 moderate, over 0.25 significant"},
        "p_value": {**_NULLABLE, "description": "two-sample chi-square of the served bins "
                    "against training, widened for sampling whole wafers (null: not tested)"},
        "p_below": {"type": "boolean", "description": "the true p-value is below p_value"},
        "p_holm": {**_NULLABLE, "description": "Holm-adjusted for the number of features"},
        "drifted": {"type": "boolean", "description": "p_holm under alpha (0.01)"},
        "level": {"type": "string", "enum": ["none", "moderate", "significant"]},
    },
}  # fmt: skip
_DRIFT = {
    "first_ts": _NUMBER,
    "last_ts": _NUMBER,
    "dies": {"type": "integer", "description": "logged predictions, repeats included"},
    "wafers": {"type": "integer"},
    "out_of_range_dies": {"type": "integer"},
    "out_of_range_share": {**_NULLABLE, "description": "share of predictions with any "
                           "feature outside the training range"},
    "max_psi": _NUMBER,
    "drifted": {"type": "boolean", "description": "some feature drifted"},
    "alert": {"type": "boolean", "description": "a drifted feature has PSI over 0.25 (the "
              "YieldEnsembleLotDrift alert's threshold)"},
    "moved_most": {"type": "array", "items": {"type": "string"},
                   "description": "the drifted features, largest PSI first"},
    "features": {"type": "array", "items": _FEATURE, "description": "largest PSI first"},
    "alpha": _NUMBER,
    "tested": {"type": "boolean", "description": "every feature has a p-value"},
}  # fmt: skip
_HISTOGRAM = {
    "type": "object",
    "properties": {
        "feature": {"type": "string"},
        "edges": {"type": "array", "items": _NUMBER, "description": "the reference's bin "
                  "edges: training minimum, inner edges, maximum"},
        "bins": {"type": "array", "items": {"type": "string"}},
        "served": {"type": "array", "items": {"type": "integer"}, "description": "served "
                   "counts per bin, below and above the training range first and last"},
        "served_share": {"type": "array", "items": _NUMBER, "nullable": True},
        "train_share": {"type": "array", "items": _NUMBER},
        "held_out_share": {"type": "array", "items": _NUMBER, "nullable": True},
    },
}  # fmt: skip
_THRESHOLDS = {"thresholds": {"type": "object", "description": "psi_significant, alpha"}}
_PAGED = {
    "total": {"type": "integer"},
    "limit": {"type": "integer"},
    "offset": {"type": "integer"},
    "next_offset": {"type": "integer", "nullable": True},
    "window": {"type": "object"},
    **_THRESHOLDS,
}
_CONFLICT = error_response(
    "The serving champion was saved without reference distributions (trained before drift "
    "references): nothing to compare with."
)


def _path(name: str, example: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "example": example}}  # fmt: skip


def _drift(
    operation: str,
    description: str,
    parameters: list[dict[str, Any]],
    ok: dict[str, Any],
    not_found: str | None = None,
) -> dict[str, Any]:
    item = get(operation, description, parameters, ok)
    responses = item["get"]["responses"]
    responses["409"] = _CONFLICT
    if not_found:
        responses["404"] = error_response(not_found)
    return item


def _page(by: str) -> dict[str, Any]:
    items = {"type": "object", "properties": {by: ID, **_DRIFT}}
    return ok_response(f"One page of {by[:-3]}s.", {f"{by[:-3]}s": {"type": "array",
                       "items": items}, **_PAGED})  # fmt: skip


def _one(by: str) -> dict[str, Any]:
    what = by[:-3]
    return ok_response(
        f"The {what}'s drift, each feature's histogram beside training's.",
        {by: ID, **_DRIFT, "histograms": {"type": "array", "items": _HISTOGRAM},
         "window": {"type": "object"}},
    )  # fmt: skip


_BUCKETS = {
    "bucket_s": {"type": "integer"},
    "buckets": {
        "type": "array",
        "items": {"type": "object", "properties": {"start": _NUMBER, **_DRIFT}},
        "description": "oldest first, the newest 500 at most",
    },
    "window": {"type": "object"},
    **_THRESHOLDS,
}
_XY = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
_SPATIAL = {
    "wafer_id": ID,
    "dies": {"type": "integer", "description": "dies with a position"},
    "unplaced": {"type": "integer", "description": "dies without a position, left out"},
    "labelled": {"type": "integer"},
    "morans_i": {"type": "object", "description": "Moran's I of predicted (and, when every "
                 "die is labelled, actual) fails over the 8 grid neighbours: i, p_value "
                 "(two-sided, normal approximation), n"},
    "clusters": {"type": "object", "description": "8-connected groups of fails: size and "
                 "centre [x, y], largest first, predicted (and actual)"},
    "rings": {"type": "array", "items": {"type": "object"}, "description": "predicted and "
              "actual yield by normalised distance from the wafer's centre (from, to)"},
    "escapes": {**_XY, "description": "[x, y] of dies called pass that failed final test"},
    "overkill": {**_XY, "description": "[x, y] of dies called fail that passed"},
    "window": {"type": "object"},
}  # fmt: skip

#: The drift and spatial reads, in the spec's order.
PATHS: dict[str, Any] = {
    "/dashboard/drift/lots": _drift(
        "dashboard_drift_lots",
        "Lots, newest first, each feature's drift against the serving champion's training "
        "reference: PSI, the wafer-corrected two-sample test (Holm-adjusted), the share of "
        "dies out of the training range, the features that moved most.",
        [*WINDOW, *_DRIFT_PAGE],
        _page("lot_id"),
    ),
    "/dashboard/drift/wafers": _drift(
        "dashboard_drift_wafers",
        "Wafers, newest first, each with its drift (as the lots').",
        [
            *WINDOW,
            *_DRIFT_PAGE,
            query("lot_id", {"type": "string", "example": "LOT42"}, "Only this lot's wafers."),
        ],
        _page("wafer_id"),
    ),
    "/dashboard/drift/lots/{lot_id}": _drift(
        "dashboard_drift_lot",
        "One lot's drift with every feature's histogram in the reference's bins.",
        [_path("lot_id", "LOT42"), *WINDOW],
        _one("lot_id"),
        "No prediction of this lot in the window.",
    ),
    "/dashboard/drift/wafers/{wafer_id}": _drift(
        "dashboard_drift_wafer",
        "One wafer's drift with every feature's histogram in the reference's bins.",
        [_path("wafer_id", "W0007"), *WINDOW],
        _one("wafer_id"),
        "No prediction of this wafer in the window.",
    ),
    "/dashboard/drift/timeline": _drift(
        "dashboard_drift_timeline",
        "The window's drift per time bucket, oldest first.",
        [
            *WINDOW,
            query(
                "bucket_s",
                {"type": "integer", "minimum": 60, "maximum": 31 * 86400, "example": 86400},
                "Seconds per bucket (default a day).",
            ),
        ],
        ok_response("The buckets.", _BUCKETS),
    ),
    "/dashboard/wafers/{wafer_id}/spatial": get(
        "dashboard_wafer_spatial",
        "One wafer's spatial read from each die's newest prediction and truth: Moran's I of "
        "predicted and actual fails, clusters of fails, yield by radial ring, escapes and "
        "overkill by position.",
        [_path("wafer_id", "W0007"), *WINDOW],
        ok_response("The wafer's spatial read.", _SPATIAL),
        not_found=True,
    ),
}
