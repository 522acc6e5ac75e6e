"""The columnar wafer format of ``/predict_wafer``: one matrix in, columns out.

Request: ``features`` as one matrix (a list of rows in schema order) or one array per
named feature; ``device_id`` an array (optional); ``wafer_id``/``lot_id`` one value for
the whole request or an array; ``die_x``/``die_y`` integer arrays (optional, together);
``answer``: ``columns`` (default) or ``records`` (``/predict_batch``'s shape). Every
array has one entry per die, in the same order; errors name the field and the index.

Answer (``columns``): the results as arrays in request order, plus per arm the rule that
decided (combiner and threshold). Die ``i``'s request id is ``<request_id>.<i>``, as in
``/predict_batch``, so feedback can name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensemble.responses import Ids, Prediction
from ensemble.schema import FeatureSchema
from ensemble.validation import (
    FLOAT32_MAX,
    ID_FIELDS,
    InvalidInput,
    number,
    parse_identifier,
    parse_rows,
    shown,
)

ANSWERS = ("columns", "records")
#: Largest |die_x| or |die_y| accepted: die coordinates are small integers.
DIE_LIMIT = 100_000


@dataclass(frozen=True)
class Wafer:
    rows: np.ndarray  # (n, k) float32
    ids: list[Ids]  # per die: device_id, wafer_id, lot_id
    dies: list[tuple[int, int]] | None  # (x, y) per die
    answer: str


def _length(value: Any, field: str, n: int | None) -> int:
    if not isinstance(value, list):
        raise InvalidInput(field, f"must be an array (one entry per die), got {shown(value)}")
    if n is not None and len(value) != n:
        raise InvalidInput(field, f"expected {n} entries (one per die), got {len(value)}")
    return len(value)


def _named_columns(raw: Mapping[str, Any], schema: FeatureSchema) -> np.ndarray:
    unknown = [k for k in raw if schema.index(k) is None]
    if unknown:
        raise InvalidInput(
            f"features.{unknown[0]}", f"unknown feature; expected {list(schema.names)}"
        )
    missing = [n for n in schema.names if n not in raw]
    if missing:
        raise InvalidInput(f"features.{missing[0]}", "missing feature")
    n = None
    for name in schema.names:
        n = _length(raw[name], f"features.{name}", n)
    columns = []
    for name in schema.names:
        column = raw[name]
        if all(type(v) is float or type(v) is int for v in column):
            try:
                values = np.asarray(column, dtype=np.float64)
            except OverflowError:
                values = None
            if values is not None and (np.abs(values) <= FLOAT32_MAX).all():
                columns.append(values)
                continue
        # Something is wrong in this column: find and name the first bad entry.
        columns.append(
            np.asarray([number(v, f"features.{name}[{i}]") for i, v in enumerate(column)])
        )
    return np.ascontiguousarray(np.column_stack(columns), dtype=np.float32)


def _ids(body: Mapping[str, Any], n: int) -> list[Ids]:
    out: dict[str, list[str | None]] = {}
    for f in ID_FIELDS:
        value = body.get(f)
        if isinstance(value, list):
            _length(value, f, n)
            out[f] = [parse_identifier(v, f"{f}[{i}]") for i, v in enumerate(value)]
        elif f == "device_id" and value is not None:
            raise InvalidInput(f, "must be an array of device ids, one per die")
        else:
            out[f] = [parse_identifier(value, f)] * n
    return [
        {"device_id": d, "wafer_id": w, "lot_id": lo}
        for d, w, lo in zip(out["device_id"], out["wafer_id"], out["lot_id"], strict=True)
    ]


def _coordinates(value: Any, field: str, n: int) -> list[int]:
    _length(value, field, n)
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > DIE_LIMIT:
            raise InvalidInput(
                f"{field}[{i}]", f"must be an integer within +-{DIE_LIMIT}, got {shown(v)}"
            )
    return list(value)


def parse_wafer(body: Mapping[str, Any], schema: FeatureSchema, max_devices: int) -> Wafer:
    """A ``/predict_wafer`` body as checked arrays; InvalidInput naming the field otherwise."""
    raw = body.get("features")
    if isinstance(raw, Mapping):
        rows = _named_columns(raw, schema)
    elif isinstance(raw, list):
        rows = parse_rows(raw, schema, "features", row_field="{field}[{i}]")
    else:
        raise InvalidInput(
            "features",
            f"must be a matrix (a list of rows in the order {list(schema.names)}) or an object "
            "of one array per feature name",
        )
    n = len(rows)
    if not n:
        raise InvalidInput("features", "must hold at least one die")
    if n > max_devices:
        raise InvalidInput("features", f"at most {max_devices} dies per request, got {n}")
    ids = _ids(body, n)
    x, y = body.get("die_x"), body.get("die_y")
    if (x is None) != (y is None):
        raise InvalidInput("die_x" if x is None else "die_y", "give die_x and die_y together")
    dies = None
    if x is not None:
        dies = list(zip(_coordinates(x, "die_x", n), _coordinates(y, "die_y", n), strict=True))
    answer = body.get("answer", "columns")
    if answer not in ANSWERS:
        raise InvalidInput("answer", f"must be one of {list(ANSWERS)}, got {shown(answer)}")
    return Wafer(rows, ids, dies, answer)


def columns_answer(
    request_id: str,
    ids: Sequence[Ids],
    results: Sequence[Prediction],
    versions: Mapping[str, str],
    degraded: bool,
    members: Sequence[str],
) -> dict[str, Any]:
    """The body of a ``/predict_wafer`` answer in columns."""
    votes: dict[str, list[float | None]] = {m: [] for m in members}
    missing: dict[str, list[int]] = {}
    rules: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(results):
        for m, column in votes.items():
            column.append(r["votes"].get(m))
        for m in r["missing_members"]:
            missing.setdefault(m, []).append(i)
        if r["arm"] not in rules:
            rules[r["arm"]] = {"combiner": r["combiner"], "threshold": r["threshold"]}
    return {
        "request_id": request_id,
        "count": len(results),
        "columns": {
            "device_id": [d["device_id"] for d in ids],
            "prediction": [r["prediction"] for r in results],
            "probability": [r["probability"] for r in results],
            "arm": [r["arm"] for r in results],
            "cached": [r["cached"] for r in results],
            "degraded": [r["degraded"] for r in results],
            "votes": votes,
        },
        "missing_members": missing,
        "rules": rules,
        "model_versions": versions,
        "degraded": degraded,
    }
