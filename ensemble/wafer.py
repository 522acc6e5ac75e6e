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

from ensemble.batch import Batch
from ensemble.pipeline import Dies
from ensemble.responses import Ids
from ensemble.schema import FeatureSchema
from ensemble.validation import (
    FLOAT32_MAX,
    ID_FIELDS,
    UNADDRESSABLE,
    UNPRINTABLE,
    InvalidInput,
    number,
    parse_identifier,
    parse_rows,
    repeated,
    shown,
)

ANSWERS = ("columns", "records")
#: Largest |die_x| or |die_y| accepted: die coordinates are small integers.
DIE_LIMIT = 100_000


@dataclass(frozen=True)
class Wafer:
    rows: np.ndarray  # (n, k) float32
    columns: dict[str, list[str | None]]  # device_id, wafer_id, lot_id: one entry per die
    dies: list[tuple[int, int]] | None  # (x, y) per die
    answer: str

    @property
    def device_ids(self) -> list[str | None]:
        return self.columns["device_id"]

    @property
    def ids(self) -> list[Ids]:
        """Per die the identifiers as a dict (the records answer only)."""
        return Dies(self.rows, self.columns, self.dies).records()


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


def _ids(body: Mapping[str, Any], n: int) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = {}
    for f in ID_FIELDS:
        value = body.get(f)
        if isinstance(value, list):
            _length(value, f, n)
            out[f] = _id_column(value, f)
        elif f == "device_id" and value is not None:
            raise InvalidInput(f, "must be an array of device ids, one per die")
        else:
            out[f] = [parse_identifier(value, f)] * n
    return out


def _id_column(value: list[Any], field: str) -> list[str | None]:
    """One id per die: strings checked at once when all are plain (a 10,000-die wafer in
    under a millisecond), else one by one, naming the first bad entry."""
    if all(type(v) is str and 0 < len(v) <= 256 for v in value):
        joined = "".join(value)
        plain = not UNPRINTABLE.search(joined) and not UNADDRESSABLE.search(joined)
        if plain and ("." not in joined or not {".", ".."} & set(value)):
            return list(value)
    return [parse_identifier(v, f"{field}[{i}]") for i, v in enumerate(value)]


def _coordinates(value: Any, field: str, n: int) -> list[int]:
    _length(value, field, n)
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > DIE_LIMIT:
            raise InvalidInput(
                f"{field}[{i}]", f"must be an integer within +-{DIE_LIMIT}, got {shown(v)}"
            )
    return list(value)


def _one_die_per_position(
    dies: list[tuple[int, int]], columns: dict[str, list[str | None]]
) -> None:
    """InvalidInput naming both indexes if two dies of one wafer (and lot) share (x, y)."""
    keys = list(zip(columns["lot_id"], columns["wafer_id"], dies, strict=True))
    if len(set(keys)) == len(keys):
        return
    first: dict[tuple[str | None, str | None, tuple[int, int]], int] = {}
    for i, key in enumerate(keys):
        j = first.setdefault(key, i)
        if j != i:
            raise InvalidInput(
                f"die_x[{i}], die_y[{i}]",
                f"die position {key[2]} of wafer {shown(key[1])} is also at index {j}; "
                "each die of a wafer must have its own position",
            )


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
    columns = _ids(body, n)
    x, y = body.get("die_x"), body.get("die_y")
    if (x is None) != (y is None):
        raise InvalidInput("die_x" if x is None else "die_y", "give die_x and die_y together")
    # A device or a die twice would be answered twice and logged as two dies at one place:
    # the die map would keep one of them, and feedback by device id would label either.
    repeated(columns["device_id"], "device_id[{i}]", "device_id")
    dies = None
    if x is not None:
        dies = list(zip(_coordinates(x, "die_x", n), _coordinates(y, "die_y", n), strict=True))
        _one_die_per_position(dies, columns)
    answer = body.get("answer", "columns")
    if answer not in ANSWERS:
        raise InvalidInput("answer", f"must be one of {list(ANSWERS)}, got {shown(answer)}")
    return Wafer(rows, columns, dies, answer)


def columns_answer(
    request_id: str,
    device_ids: Sequence[str | None],
    batch: Batch,
    versions: Mapping[str, str],
    degraded: bool,
) -> dict[str, Any]:
    """The body of a ``/predict_wafer`` answer in columns, straight from the arrays."""
    missing: dict[str, list[int]] = {}
    for i, why in sorted(batch.missing.items()):
        for m in why:
            missing.setdefault(m, []).append(i)
    votes = {
        m: [None if v != v else v for v in column]
        for m, column in zip(batch.members, batch.votes.tolist(), strict=True)
    }
    passed = batch.passed.tolist()
    used = np.unique(batch.arm).tolist()
    return {
        "request_id": request_id,
        "count": len(batch),
        "columns": {
            "device_id": list(device_ids),
            "prediction": ["pass" if p else "fail" for p in passed],
            "probability": batch.probability.tolist(),
            "arm": batch.arm_names(),
            "cached": batch.cached.tolist(),
            "degraded": batch.degraded.tolist(),
            "votes": votes,
        },
        "missing_members": missing,
        "rules": {
            batch.arms[a]: dict(
                zip(("combiner", "threshold"), batch.rules[batch.arms[a]], strict=True)
            )
            for a in used
        },
        "model_versions": versions,
        "degraded": degraded,
    }
