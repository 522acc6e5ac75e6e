"""The JSON input formats of the predict routes: each a decoder and an encoder.

``SINGLE`` is ``/predict`` (one device), ``RECORDS`` is ``/predict_batch`` (a list of
devices), ``WAFER`` is ``/predict_wafer`` (one matrix, answered in columns or records).
Each turns a request body (the route's fields as a dict) into ``ensemble.pipeline.Dies``
and the served batch into the answer; ``ensemble.pipeline.Pipeline`` does the rest.

Every answer says which dies had features outside the training range and how far
(``ensemble.drift``): ``/predict`` as ``out_of_range`` {feature: distance} ({} when in
range); records in each die's result the same way; columns as a column, None where
in range; the batch's counted in ``out_of_range`` {dies, features}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ensemble.pipeline import ID_FIELDS, Decoded, Dies, Format, Limits, Served
from ensemble.responses import batch_answer, batch_log, single_answer, single_log
from ensemble.validation import parse_batch, parse_features, parse_identifier
from ensemble.wafer import columns_answer, parse_wafer


def _decode_single(body: Mapping[str, Any], limits: Limits) -> Decoded:
    rows = np.asarray([parse_features(body.get("features"), limits.schema)], dtype=np.float32)
    ids = {f: [parse_identifier(body.get(f), f)] for f in ID_FIELDS}
    return Decoded(Dies(rows, ids))


def _encode_single(served: Served, options: Mapping[str, Any]) -> dict[str, Any]:
    (result,) = served.results
    versions = served.serving.tags_of(result["arm"])
    (ids,) = served.id_records
    return {**single_answer(served.request_id, ids, result, versions),
            "out_of_range": served.flags.die(0)}  # fmt: skip


def _log_single(served: Served) -> tuple[str, dict[str, Any]]:
    (result,) = served.results
    (ids,) = served.id_records
    versions = served.serving.tags_of(result["arm"])
    return "prediction", single_log(served.request_id, ids, result, served.latency_ms, versions)


def _decode_records(body: Mapping[str, Any], limits: Limits) -> Decoded:
    rows, ids = parse_batch(body.get("devices"), limits.schema, limits.max_dies)
    return Decoded(Dies.of_records(rows, ids))


def _encode_records(served: Served, options: Mapping[str, Any]) -> dict[str, Any]:
    answer = batch_answer(
        served.request_id,
        served.request_ids,
        served.id_records,
        served.results,
        served.serving.model_versions,
        served.degraded,
        served.serving.tags_of,
    )
    flags = served.flags
    for result, flagged in zip(answer["results"], flags.per_die(), strict=True):
        result["out_of_range"] = flagged or {}
    return {**answer, "arm_versions": served.arm_versions(), "out_of_range": flags.summary()}


def _log_batch(endpoint: str, message: str) -> Any:
    def log(served: Served) -> tuple[str, dict[str, Any]]:
        fields = batch_log(
            served.request_id,
            len(served.batch),
            served.tally,
            served.latency_ms,
            served.serving.model_versions,
            served.arm_versions(),
        )
        return message, {**fields, "endpoint": endpoint}

    return log


def _decode_wafer(body: Mapping[str, Any], limits: Limits) -> Decoded:
    wafer = parse_wafer(body, limits.schema, limits.max_dies)
    return Decoded(Dies(wafer.rows, wafer.columns, wafer.dies), {"answer": wafer.answer})


def encode_columns(served: Served, options: Mapping[str, Any]) -> dict[str, Any]:
    """A wafer's answer in columns (``options["answer"] == "records"``: as records).

    ``model_versions``: the champion's tags; ``arm_versions``: per arm that answered a
    die, the tags that answered it (``columns.arm`` says which arm answered each die)."""
    if options.get("answer") == "records":
        return _encode_records(served, options)
    answer = columns_answer(
        served.request_id,
        served.dies.device_ids,
        served.batch,
        served.serving.model_versions,
        served.degraded,
    )
    answer["columns"]["out_of_range"] = served.flags.per_die()
    return {**answer, "arm_versions": served.arm_versions(), "out_of_range": served.flags.summary()}


SINGLE = Format("/predict", _decode_single, _encode_single, _log_single, per_die_ids=False)
RECORDS = Format(
    "/predict_batch",
    _decode_records,
    _encode_records,
    _log_batch("/predict_batch", "prediction batch"),
)
WAFER = Format(
    "/predict_wafer",
    _decode_wafer,
    encode_columns,
    _log_batch("/predict_wafer", "prediction wafer"),
)
