"""``POST /predict_stdf``: a tester's STDF file in, every die's prediction out.

The request body is the file itself (``application/octet-stream``, gzip accepted);
``stdf.decode`` reads it and the model's own ``TestMap`` (saved at training under
``stdf_tests``) maps its PTR results to the features, so a later file maps the same way.
A retested die is answered once, from its last test; the answer says how many retests
the file held. The answer is ``/predict_wafer``'s columns plus lot, wafer and die x/y per
die, and a summary per wafer. Every die is logged as a ``/predict_wafer`` die.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ensemble.errors import InvalidInput, NotInThisBuild
from ensemble.formats import encode_columns
from ensemble.pipeline import Decoded, Dies, Format, Limits, Served
from ensemble.responses import batch_log
from stdf.errors import StdfInvalid
from stdf.parts import NO_COORD, Parts
from stdf.testmap import METADATA_KEY, TestMap


def id_text(values: np.ndarray) -> list[str | None]:
    """Identifiers as the answer and the wafer grouping take them: None for empty."""
    return [None if v is None or v == "" else str(v) for v in values.tolist()]


def _decode(body: Any, limits: Limits) -> Decoded:
    mapping = limits.inputs.get(METADATA_KEY)
    if mapping is None:
        raise InvalidInput(
            "body",
            "the served model was not trained from STDF files (yield-ensemble train --stdf), "
            "so it has no map from PTR tests to its features; send /predict_wafer instead",
        )
    if not isinstance(body, (bytes, bytearray)) or not body:
        raise StdfInvalid("the body is empty; send the STDF file itself")
    parts = read(bytes(body), limits.max_bytes)
    if not len(parts):
        raise StdfInvalid("the file holds no part (no PIR/PRR pair)")
    if len(parts) > limits.max_dies:
        raise StdfInvalid(f"at most {limits.max_dies} dies per request, the file has {len(parts)}")
    tests = TestMap.from_dict(mapping)
    rows = tests.rows(parts)
    column = {t.key: j for j, t in enumerate(parts.tests)}
    ran = (~np.isnan(parts.values[:, [column[t.key] for t in tests.tests]])).sum(axis=1)
    located = (parts.x != NO_COORD) & (parts.y != NO_COORD)
    positions = (
        list(zip(parts.x.tolist(), parts.y.tolist(), strict=True)) if located.all() else None
    )
    ids = {"device_id": id_text(parts.part_id), "wafer_id": id_text(parts.wafer),
           "lot_id": id_text(parts.lot)}  # fmt: skip
    return Decoded(Dies(rows, ids, positions), {"parts": parts, "tests_run": ran})


def read(body: bytes, max_bytes: int) -> Parts:
    """``stdf.decode.decode`` of the body, imported on the first file. NotInThisBuild (501)
    where the reader (stdf-convert, read through nanoarrow) is not installed."""
    try:
        from stdf.decode import decode
        from stdf.read import reader

        reader()
    except ImportError as exc:
        raise NotInThisBuild(
            f"this build has no STDF reader ({exc.name or exc}): tester files are read where "
            "yield-ensemble is installed with its dependencies (pip install, bentoml serve); "
            "send the parts' features to /predict_wafer here"
        ) from None
    return decode(body, max_bytes=max_bytes)


def _summary(served: Served, parts: Parts, ran: np.ndarray) -> list[dict[str, Any]]:
    """Per wafer: dies, predicted pass and fail, predicted yield (the share of pass
    decisions), expected yield (mean P(pass)), retests, dies with none of the tests run."""
    wafers = served.dies.ids["wafer_id"]
    order = list(dict.fromkeys(wafers))
    out = []
    for wafer in order:
        on = np.array([w == wafer for w in wafers])
        n = int(on.sum())
        passed = int(served.batch.passed[on].sum())
        out.append(
            {
                "wafer_id": wafer,
                "lot_id": served.dies.ids["lot_id"][int(np.flatnonzero(on)[0])],
                "dies": n,
                "predicted_pass": passed,
                "predicted_fail": n - passed,
                "predicted_yield": passed / n,
                "expected_yield": float(served.batch.probability[on].mean()),
                "retests": int(parts.retests[on].sum()),
                "untested": int((ran[on] == 0).sum()),
            }
        )
    return out


def _encode(served: Served, options: Mapping[str, Any]) -> dict[str, Any]:
    parts: Parts = options["parts"]
    answer = encode_columns(served, {"answer": "columns"})
    columns = answer["columns"]
    columns["lot_id"] = list(served.dies.ids["lot_id"])
    columns["wafer_id"] = list(served.dies.ids["wafer_id"])
    columns["die_x"] = [None if v == NO_COORD else v for v in parts.x.tolist()]
    columns["die_y"] = [None if v == NO_COORD else v for v in parts.y.tolist()]
    columns["retests"] = parts.retests.tolist()
    # How many of the model's tests the die ran: 0 means its prediction rests on the
    # training medians alone (a part that stopped before any PTR).
    columns["tests_run"] = options["tests_run"].tolist()
    return {
        **answer,
        "wafers": _summary(served, parts, options["tests_run"]),
        "retests": parts.n_retests,
        "file": {k: v for k, v in parts.info.items() if isinstance(v, (str, int, float))},
    }


def _log(served: Served) -> tuple[str, dict[str, Any]]:
    fields = batch_log(served.request_id, len(served.batch), served.tally, served.latency_ms,
                       served.serving.model_versions, served.arm_versions())  # fmt: skip
    return "prediction stdf", {**fields, "endpoint": "/predict_stdf"}


STDF = Format("/predict_stdf", _decode, _encode, _log)
