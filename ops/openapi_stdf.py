"""OpenAPI path items of the tester-file routes: ``/predict_stdf`` and ``/feedback_stdf``.

Their body is the STDF V4 file itself (``application/octet-stream``, gzip accepted). The
example is the first bytes of a real file as base64, for a reader of the spec: send the
whole file (``curl --data-binary @lot2.stdf.gz``).
"""

from __future__ import annotations

from typing import Any

from ops.openapi_parts import ID, error_response, ok_response, security, statuses

_FILE = {
    "type": "string",
    "format": "binary",
    "description": "An STDF V4 file as the tester wrote it, either byte order, gzip or not: "
    "FAR, MIR, WIR/WRR, PIR/PRR per part, PTR per result; other records are skipped.",
}
_CURL = (
    "curl -X POST http://127.0.0.1:3000/predict_stdf -H 'Content-Type: application/octet-stream' "
    "--data-binary @lot2.stdf.gz"
)
_COLUMNS = {
    "type": "object",
    "description": "One entry per die (a retested die once, from its last test), in file order.",
    "properties": {
        "device_id": {"type": "array", "items": ID, "description": "PRR PART_ID"},
        "lot_id": {"type": "array", "items": ID, "description": "MIR LOT_ID"},
        "wafer_id": {"type": "array", "items": ID, "description": "WIR WAFER_ID"},
        "die_x": {"type": "array", "items": {"type": "integer", "nullable": True}},
        "die_y": {"type": "array", "items": {"type": "integer", "nullable": True}},
        "prediction": {"type": "array", "items": {"type": "string", "enum": ["pass", "fail"]}},
        "probability": {"type": "array", "items": {"type": "number"}},
        "arm": {"type": "array", "items": {"type": "string"}},
        "retests": {"type": "array", "items": {"type": "integer"}},
        "tests_run": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "how many of the model's tests the die ran; 0: its prediction "
            "rests on the training medians alone",
        },
    },
}
_WAFER = {
    "type": "object",
    "properties": {
        "wafer_id": ID,
        "lot_id": ID,
        "dies": {"type": "integer"},
        "predicted_pass": {"type": "integer"},
        "predicted_fail": {"type": "integer"},
        "predicted_yield": {"type": "number", "description": "share of pass decisions"},
        "expected_yield": {"type": "number", "description": "mean calibrated P(pass)"},
        "retests": {"type": "integer"},
        "untested": {"type": "integer", "description": "dies that ran none of the tests"},
    },
}


def _file_post(operation: str, description: str, ok: dict[str, Any], role: str | None,
               unavailable: bool) -> dict[str, Any]:  # fmt: skip
    answers = {"200": ok, **statuses(role, True, unavailable)}
    answers["415"] = error_response("The body is not application/octet-stream.")
    answers["501"] = error_response(
        "This build has no STDF reader (stdf-convert is not installed; the serving image has "
        "it): serve from an installed yield-ensemble, or send features to /predict_wafer."
    )
    answers["413"] = error_response(
        "The file over YIELD_ENSEMBLE_MAX_BODY_MB, as sent or as it decompresses."
    )
    answers["422"] = error_response(
        "The file cannot be used: not STDF, STDF V3, a truncated record, a part without PRR, "
        "or tests the model needs that the file lacks; the message names the record type and "
        "byte offset (field: body)."
    )
    if operation.startswith("predict"):
        answers["429"] = error_response(
            "More work than the replica takes now (Retry-After); nothing was done."
        )
    return {
        "post": {
            "tags": ["Service APIs"],
            "operationId": f"yield_ensemble__{operation}",
            "description": f"{description}\n\n`{_CURL.replace('predict_stdf', operation)}`",
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": _FILE}},
            },
            "responses": answers,
            **security(role),
        }
    }


PATHS: dict[str, Any] = {
    "/predict_stdf": _file_post(
        "predict_stdf",
        "Pass/fail for every die of a tester's STDF file, with the model trained from such "
        "files (`yield-ensemble train --stdf`): its PTR results mapped to the features the "
        "way training mapped them. A model trained with `--spatial` derives its wafer "
        "features from the file's dies (PRR X/Y, WIR wafer; `prior` from the file's own PRR "
        "pass/fail) and answers 422 (field: die_x, die_y) when a part has no X/Y. Every die "
        "is logged as a /predict_wafer die.",
        ok_response(
            "Every die in columns, a summary per wafer, the retests the file held.",
            {
                "count": {"type": "integer"},
                "columns": _COLUMNS,
                "wafers": {"type": "array", "items": _WAFER},
                "retests": {"type": "integer"},
                "model_versions": {"type": "object"},
                "arm_versions": {"type": "object"},
                "degraded": {"type": "boolean"},
            },
        ),
        None,
        True,
    ),
    "/feedback_stdf": _file_post(
        "feedback_stdf",
        "Ground truth from a final-test STDF file: each die's PRR pass/fail recorded against "
        "its latest logged prediction (by wafer and PART_ID, else wafer and x/y), with the "
        "key's id as sender, as /feedback does. Dies never predicted are listed.",
        ok_response(
            "How many outcomes were recorded, replaced, unchanged, and the unknown dies.",
            {
                "received": {"type": "integer"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "unknown": {"type": "array", "items": {"type": "object"}},
                "retests": {"type": "integer"},
            },
        ),
        "feedback",
        True,
    ),
}
