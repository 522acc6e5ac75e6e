"""The ledger's tables and the record of one served request.

The schema changes only through ``ledger/migrations`` (Alembic); these definitions
are what the newest migration makes, and a test compares the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from ensemble.batch import Batch
from ensemble.drift import OutOfRange

#: Ids per ``IN (...)`` query, well under every database's parameter limit.
CHUNK = 500

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("device_id", sa.String(256)),
    sa.Column("wafer_id", sa.String(256)),
    sa.Column("lot_id", sa.String(256)),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("prediction", sa.String(4), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("degraded", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("model_versions", sa.Text, nullable=False),
    # Each member's P(pass), as JSON {"member": p}; members that gave none are absent.
    sa.Column("votes", sa.Text, nullable=False),
    # The rule that decided: combiner name:version ("single:1" on the challenger arm).
    sa.Column("combiner", sa.String(64)),
    # What the row's arm was when it served: {"serves": ..., "share": ...}.
    sa.Column("arm_spec", sa.Text),
    # The die's position on its wafer, when the request gave it.
    sa.Column("die_x", sa.Integer),
    sa.Column("die_y", sa.Integer),
    # The arm the split assigned the device to: another arm may have served it (its
    # member down), and the same as ``arm`` otherwise; NULL on rows logged before 0007.
    sa.Column("assigned_arm", sa.String(16)),
    # {feature: distance beyond the training range, in training ranges} of a die with any
    # feature outside it (``ensemble.drift``); NULL in range, and on rows before 0008.
    sa.Column("out_of_range", sa.Text),
    sa.Index("ix_predictions_device_ts", "device_id", "ts"),
    sa.Index("ix_predictions_wafer_ts", "wafer_id", "ts"),
    sa.Index("ix_predictions_lot_ts", "lot_id", "ts"),
)
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("actual", sa.String(4), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
)
#: Every outcome ever received, in order: who sent it, when, and what it replaced.
#: ``outcomes`` holds the current one per prediction; this table is its history.
outcome_events = sa.Table(
    "outcome_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("actual", sa.String(4), nullable=False),
    sa.Column("previous", sa.String(4)),
    sa.Column("sent_by", sa.String(64), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
)


def _serving_columns() -> list[sa.Column[Any]]:
    """What a serving state is (``ensemble.serving.ServingState``), now or in its history."""
    return [
        sa.Column("champion", sa.String(64), nullable=False),
        sa.Column("candidate", sa.String(64)),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("previous", sa.String(64)),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("candidate_since", sa.Float),
    ]


#: What serves now (one row, ``id`` 1), and the start-up settings it last applied.
serving_state = sa.Table(
    "serving_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.Integer, nullable=False),
    *_serving_columns(),
    sa.Column("configured", sa.Text),
)
#: Every revision of the serving state, as it was made.
serving_history = sa.Table(
    "serving_history",
    metadata,
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    *_serving_columns(),
)
#: Columns the writer encodes as JSON text.
JSON_COLUMNS = ("features", "votes")


@dataclass
class Served:
    """One request's served predictions, as the request path hands them over."""

    ts: float
    latency_ms: float
    request_ids: Sequence[str]
    # Per device {device_id, wafer_id, lot_id}, or those three as columns.
    ids: Sequence[Mapping[str, str | None]] | Mapping[str, Sequence[str | None]]
    rows: np.ndarray
    results: Sequence[Mapping[str, Any]] | Batch  # one Prediction per device, or the arrays
    model_versions: Mapping[str, str]
    arm_specs: Mapping[str, str] = field(default_factory=dict)  # arm -> what it was (JSON)
    dies: Sequence[tuple[int, int]] | None = None  # (x, y) per device, when given
    # arm -> the model versions serving it, where they are not ``model_versions`` (a candidate).
    arm_versions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Each die's features outside the training range (None: not checked).
    out_of_range: OutOfRange | None = None

    def records(self) -> Iterator[list[Any]]:
        """One list per device, in ``predictions`` column order; features as a float list."""
        champion = json.dumps(self.model_versions, sort_keys=True)
        by_arm = {a: json.dumps(v, sort_keys=True) for a, v in self.arm_versions.items()}
        # float64 of a float32 is exact, and its repr round-trips to the same float32.
        features = np.asarray(self.rows, dtype=np.float64).tolist()
        n = len(features)
        flags = self.out_of_range
        flagged = [None] * n if flags is None else [
            None if f is None else json.dumps(f) for f in flags.per_die()
        ]  # fmt: skip
        dies = self.dies if self.dies is not None else [(None, None)] * n
        if isinstance(self.ids, Mapping):
            device, wafer, lot = (self.ids[f] for f in ("device_id", "wafer_id", "lot_id"))
        else:
            device, wafer, lot = (
                [i.get(f) for i in self.ids] for f in ("device_id", "wafer_id", "lot_id")
            )
        if isinstance(self.results, Batch):
            # Straight from the arrays (this runs in the writer thread, not the request).
            b = self.results
            arms = b.arm_names()
            assigned = b.assigned_names()
            prediction = ["pass" if p else "fail" for p in b.passed.tolist()]
            columns: tuple[list[Any], ...] = (arms, prediction, b.probability.tolist(),
                       b.cached.tolist(), b.degraded.tolist(), b.vote_dicts)  # fmt: skip
            combiner: list[Any] = [b.rules[a][0] for a in arms]
        else:
            r = self.results
            columns = ([x["arm"] for x in r], [x["prediction"] for x in r],
                       [x["probability"] for x in r], [x["cached"] for x in r],
                       [x["degraded"] for x in r], [x["votes"] for x in r])  # fmt: skip
            combiner = [x.get("combiner") for x in r]
            assigned = [x.get("assigned_arm", x["arm"]) for x in r]
        for rid, d, w, lo, row, (arm, pred, p, cached, degraded, votes), rule, (x, y), (given,
             oor) in zip(
            self.request_ids, device, wafer, lot, features, zip(*columns, strict=True),
            combiner, dies, zip(assigned, flagged, strict=True), strict=True,
        ):  # fmt: skip
            yield [
                rid,
                self.ts,
                arm,
                d,
                w,
                lo,
                row,
                pred,
                p,
                cached,
                degraded,
                self.latency_ms,
                by_arm.get(arm, champion),
                votes,
                rule,
                self.arm_specs.get(arm),
                x,
                y,
                given,
                oor,
            ]
