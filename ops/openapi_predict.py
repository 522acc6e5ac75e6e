"""OpenAPI path items of the predict routes and /feedback: typed bodies, examples, statuses.

Built for the schema the service serves (``paths(schema)``): the feature names in the
descriptions and examples of those names' ranges. Each example with the default schema
is one the real server accepts (a test posts them).
"""

from __future__ import annotations

from typing import Any

from ensemble.schema import FeatureSchema
from ops.openapi_parts import ID, NUMBERS, ok_response, post

#: The synthetic data's features (``train/synthetic.py``), and a pass and a fail die of it.
DEFAULT_NAMES = ("vdd_v", "idd_ma", "freq_mhz", "temp_c", "test_time_ms", "neighbor_yield")
EXAMPLE_ROW = [1.2, 100, 2000, 25, 50, 0.95]
EXAMPLE_ROW_2 = [1.31, 180, 1750, 125, 71, 0.25]


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def example_rows(schema: FeatureSchema | None) -> tuple[list[float], list[float]]:
    """Two example dies (lists in schema order): the default ones for the synthetic
    schema; else the middle and the lower quarter of each feature's training range
    (0 and 1 where the schema keeps no range)."""
    if schema is None or schema.names == DEFAULT_NAMES:
        return EXAMPLE_ROW, EXAMPLE_ROW_2
    if not schema.minimums or not schema.maximums:
        return [0.0] * len(schema), [1.0] * len(schema)
    spans = list(zip(schema.minimums, schema.maximums, strict=True))
    return (
        [_round(lo + (hi - lo) / 2) for lo, hi in spans],
        [_round(lo + (hi - lo) / 4) for lo, hi in spans],
    )


def _features(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "description": f"A list in schema order ({', '.join(names)}) or an object keyed by "
        "those feature names.",
        "oneOf": [
            {**NUMBERS, "minItems": len(names), "maxItems": len(names)},
            {
                "type": "object",
                "properties": {n: {"type": "number"} for n in names},
                "additionalProperties": False,
            },
        ],
    }


_VERSIONS = {"type": "object", "additionalProperties": {"type": "string"},
             "description": "member -> model tag: the versions that answered"}  # fmt: skip
#: Top level of a many-die answer: the champion's, which may not be what answered a row.
_CHAMPION = {**_VERSIONS, "description": "member -> model tag of the CHAMPION (the ensemble "
             "and one-member arms); a row on the candidate arm was answered by other "
             "versions: see the row's own model_versions, or arm_versions"}  # fmt: skip
_ARM_VERSIONS = {"type": "object", "additionalProperties": _VERSIONS,
                 "description": "per arm that answered dies of this request, member -> "
                 "model tag of what answered them"}  # fmt: skip
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


def paths(schema: FeatureSchema | None = None) -> dict[str, Any]:
    """The predict routes and /feedback, in the spec's order, for ``schema`` (None: the
    synthetic data's six features)."""
    names = schema.names if schema is not None else DEFAULT_NAMES
    row, row_2 = example_rows(schema)
    return _paths(_features(names), dict(zip(names, row, strict=True)), row, row_2)


def _paths(
    features: dict[str, Any], named: dict[str, float], row: list[float], row_2: list[float]
) -> dict[str, Any]:
    return {
        "/predict": post(
            "predict",
            "Pass/fail for one device.",
            {
                "type": "object",
                "required": ["features"],
                "properties": {"features": features, "device_id": ID, "wafer_id": ID, "lot_id": ID},
            },
            {"features": named, "device_id": "W0007-X+03Y-02", "wafer_id": "W0007"},
            ok_response(
                "The decision, with every member's P(pass).",
                {**_PREDICTION, "device_id": ID, "model_versions": _VERSIONS},
            ),
        ),
        "/predict_batch": post(
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
                                "features": features,
                                "device_id": ID,
                                "wafer_id": ID,
                                "lot_id": ID,
                            },
                        },
                    }
                },
            },
            {
                "devices": [
                    {"device_id": "d1", "features": row},
                    {"device_id": "d2", "features": row_2},
                ]
            },
            ok_response(
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
                                "device_id": ID,
                                "model_versions": _VERSIONS,
                            },
                        },
                    },
                    "model_versions": _CHAMPION,
                    "arm_versions": _ARM_VERSIONS,
                    "degraded": {"type": "boolean"},
                },
            ),
        ),
        "/predict_wafer": post(
            "predict_wafer",
            "Pass/fail for a whole wafer in columns: one feature matrix in, arrays out "
            "(or records with answer=records). Die i's request id is <request_id>.<i>.",
            {
                "type": "object",
                "required": ["features"],
                "properties": {
                    "features": {
                        "oneOf": [
                            {"type": "array", "items": NUMBERS},
                            {"type": "object", "additionalProperties": NUMBERS},
                        ],
                        "description": "One row per die in schema order, or one array per "
                        f"feature ({', '.join(named)}).",
                    },
                    "device_id": {"type": "array", "items": ID},
                    "wafer_id": {"oneOf": [ID, {"type": "array", "items": ID}]},
                    "lot_id": {"oneOf": [ID, {"type": "array", "items": ID}]},
                    "die_x": {"type": "array", "items": {"type": "integer"}},
                    "die_y": {"type": "array", "items": {"type": "integer"}},
                    "answer": {
                        "type": "string",
                        "enum": ["columns", "records"],
                        "default": "columns",
                    },
                },
            },
            {
                "features": [row, row_2],
                "device_id": ["W0007-0", "W0007-1"],
                "wafer_id": "W0007",
                "lot_id": "LOT42",
                "die_x": [0, 1],
                "die_y": [0, 0],
            },
            ok_response(
                "Results as arrays in request order, and the rule of each arm.",
                {
                    "count": {"type": "integer"},
                    "columns": {
                        "type": "object",
                        "properties": {
                            "device_id": {"type": "array", "items": ID},
                            "prediction": {"type": "array", "items": {"type": "string"}},
                            "probability": NUMBERS,
                            "arm": {"type": "array", "items": {"type": "string"}},
                            "cached": {"type": "array", "items": {"type": "boolean"}},
                            "degraded": {"type": "array", "items": {"type": "boolean"}},
                            "votes": {"type": "object", "additionalProperties": NUMBERS},
                        },
                    },
                    "missing_members": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                    },
                    "rules": {"type": "object"},
                    "model_versions": _CHAMPION,
                    "arm_versions": _ARM_VERSIONS,
                    "degraded": {"type": "boolean"},
                },
            ),
        ),
        "/feedback": post(
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
                                "device_id": ID,
                                "actual": {"type": "string", "enum": ["pass", "fail"]},
                            },
                        },
                    }
                },
            },
            {"outcomes": [{"device_id": "W0007-X+03Y-02", "actual": "pass"}]},
            ok_response(
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
    }


#: The predict routes and /feedback for the synthetic data's schema.
PATHS: dict[str, Any] = paths()
