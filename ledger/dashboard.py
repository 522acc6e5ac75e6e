"""Reads for yield dashboards: per wafer and per lot, and one wafer's die map, from the log.

Every served prediction in the time window counts (a wafer sent twice counts twice:
narrow the window to one run). ``actual`` is the ground truth fed back through
``/feedback``, where there is one. Pages are ``limit`` rows from ``offset``, newest
wafer or lot first; the answer carries ``total`` and ``next_offset`` (None on the last).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ledger.tables import outcomes, predictions

#: Largest page a dashboard may ask for.
MAX_LIMIT = 10_000
GROUPS = ("wafer_id", "lot_id")


def _window(q: sa.Select[Any], since: float | None, until: float | None) -> sa.Select[Any]:
    if since is not None:
        q = q.where(predictions.c.ts >= since)
    if until is not None:
        q = q.where(predictions.c.ts < until)
    return q


def _joined() -> Any:
    return predictions.outerjoin(outcomes, outcomes.c.request_id == predictions.c.request_id)


def _count(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _yields(row: Any) -> dict[str, Any]:
    dies, labelled = int(row["dies"]), int(row["labelled"] or 0)
    predicted_pass, actual_pass = int(row["predicted_pass"] or 0), int(row["actual_pass"] or 0)
    return {
        "dies": dies,
        "predicted_pass": predicted_pass,
        "predicted_yield": predicted_pass / dies if dies else None,
        "labelled": labelled,
        "actual_pass": actual_pass,
        "actual_yield": actual_pass / labelled if labelled else None,
        "first_ts": row["first_ts"],
        "last_ts": row["last_ts"],
    }


def _aggregates() -> list[Any]:
    p, o = predictions.c, outcomes.c
    return [
        sa.func.count().label("dies"),
        _count(p.prediction == "pass").label("predicted_pass"),
        sa.func.count(o.actual).label("labelled"),
        _count(o.actual == "pass").label("actual_pass"),
        sa.func.min(p.ts).label("first_ts"),
        sa.func.max(p.ts).label("last_ts"),
    ]


def groups(
    engine: sa.Engine,
    by: str,
    since: float | None,
    until: float | None,
    lot_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """One page of wafers (``by="wafer_id"``) or lots, newest first, with their yields."""
    key = predictions.c[by]
    q = sa.select(key.label("id"), *_aggregates()).select_from(_joined()).where(key.is_not(None))
    if by == "wafer_id":
        q = q.add_columns(sa.func.min(predictions.c.lot_id).label("lot_id"))
    if lot_id is not None:
        q = q.where(predictions.c.lot_id == lot_id)
    q = _window(q, since, until).group_by(key)
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
        page = conn.execute(
            q.order_by(sa.desc("last_ts"), key).limit(limit).offset(offset)
        ).mappings()
        items = []
        for row in page:
            item = {by: row["id"], **_yields(row)}
            if by == "wafer_id":
                item["lot_id"] = row["lot_id"]
            items.append(item)
    plural = "wafers" if by == "wafer_id" else "lots"
    return {
        plural: items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
        "window": {"since": since, "until": until, "lot_id": lot_id},
    }


def wafer(
    engine: sa.Engine, wafer_id: str, since: float | None, until: float | None
) -> dict[str, Any] | None:
    """One wafer's yields, with counts per arm and per decision; None if never served."""
    p, o = predictions.c, outcomes.c
    base = _window(sa.select().select_from(_joined()).where(p.wafer_id == wafer_id), since, until)
    with engine.connect() as conn:
        total = conn.execute(base.add_columns(*_aggregates())).mappings().one()
        if not total["dies"]:
            return None
        per_arm = conn.execute(
            base.add_columns(p.arm, p.prediction, o.actual, sa.func.count().label("n")).group_by(
                p.arm, p.prediction, o.actual
            )
        ).all()
        lots = conn.execute(base.add_columns(p.lot_id).distinct()).scalars().all()
    arms: dict[str, dict[str, Any]] = {}
    for arm, predicted, actual, n in per_arm:
        counts = arms.setdefault(arm, {"dies": 0, "predicted": {}, "actual": {}})
        counts["dies"] += n
        counts["predicted"][predicted] = counts["predicted"].get(predicted, 0) + n
        label = actual or "unlabelled"
        counts["actual"][label] = counts["actual"].get(label, 0) + n
    return {
        "wafer_id": wafer_id,
        "lot_ids": sorted(lot for lot in lots if lot is not None),
        **_yields(total),
        "arms": arms,
        "window": {"since": since, "until": until},
    }


def die_map(
    engine: sa.Engine,
    wafer_id: str,
    since: float | None,
    until: float | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """One wafer's dies by time, then row and column: position, decision, P(pass), truth."""
    p, o = predictions.c, outcomes.c
    q = _window(
        sa.select(
            p.request_id, p.device_id, p.die_x, p.die_y, p.prediction, p.probability, p.arm,
            p.ts, o.actual,
        )
        .select_from(_joined())
        .where(p.wafer_id == wafer_id),
        since,
        until,
    )  # fmt: skip
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(q.subquery())).scalar_one()
        order = (p.ts, p.die_y, p.die_x, p.request_id)
        rows = conn.execute(q.order_by(*order).limit(limit).offset(offset)).all()
    columns = ("request_id", "device_id", "x", "y", "prediction", "probability", "arm", "ts",
               "actual")  # fmt: skip
    return {
        "wafer_id": wafer_id,
        "dies": [dict(zip(columns, row, strict=True)) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
        "window": {"since": since, "until": until},
    }
