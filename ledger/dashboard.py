"""Reads for yield dashboards: per wafer and per lot, and one wafer's die map, from the log.

Each die counts once, however often it was sent: its newest prediction in the time
window, with the newest ground truth fed back for any of its predictions there
(``/feedback`` by device id labels the newest prediction, by request id the one named).
A die is its wafer and ``device_id``; without a device id, its wafer and position
(``die_x``, ``die_y``); without those, each prediction is a die of its own. Of two
predictions (or truths) of a die at the same time, "pass" counts. ``predictions`` counts
every prediction, repeats included. Pages are ``limit`` rows from ``offset``, newest
wafer or lot first; the answer carries ``total`` and ``next_offset`` (None on the last).

Three yields, which differ: ``predicted_yield`` is the share of dies whose newest decision
is pass, at the served, cost-tuned threshold (a pass decision, not a probability);
``expected_yield`` is the mean calibrated P(pass) of each die's newest prediction, the yield
the models expect; ``actual_yield`` is the share of labelled dies that passed final test.
Every answer names them in ``yield_definitions``.

The yields need only each die's newest times, so they are one GROUP BY per die; the die
map and a wafer's arms need each die's newest row, ranked with window functions on one
wafer's rows. Counting each die once costs 2 to 2.5 times what counting every prediction
did (``python -m bench.dashboard``: 440,000 predictions, the wafer list in 0.7-0.9 s on
PostgreSQL, 1.1 s on SQLite).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ledger.tables import outcomes, predictions

#: What each yield of an answer is (returned with it, so a dashboard can say which is which).
YIELD_DEFINITIONS = {
    "predicted_yield": "share of dies whose newest decision is pass, at the served cost-tuned "
    "threshold (counts decisions)",
    "expected_yield": "mean calibrated P(pass) of each die's newest prediction (the yield the "
    "models expect)",
    "actual_yield": "share of labelled dies that passed final test",
}
#: Largest page a dashboard may ask for.
MAX_LIMIT = 10_000
GROUPS = ("wafer_id", "lot_id")


def _die() -> list[Any]:
    """Which die of its wafer a prediction is: its device id, else its position, else its
    request id, as columns to group or partition by (no strings built per row)."""
    p = predictions.c
    no_id = p.device_id.is_(None)
    placed = sa.and_(p.wafer_id.is_not(None), p.die_x.is_not(None), p.die_y.is_not(None))
    return [
        p.device_id,
        sa.case((no_id, p.die_x)),
        sa.case((no_id, p.die_y)),
        sa.case((sa.and_(no_id, sa.not_(placed)), p.request_id)),
    ]


def _rows(*columns: Any, where: list[Any], since: float | None, until: float | None) -> Any:
    p, o = predictions.c, outcomes.c
    q = sa.select(*columns).select_from(
        predictions.outerjoin(outcomes, o.request_id == p.request_id)
    )
    if since is not None:
        q = q.where(p.ts >= since)
    if until is not None:
        q = q.where(p.ts < until)
    return q.where(*where)


def _latest_ts(condition: Any) -> Any:
    return sa.func.max(sa.case((condition, predictions.c.ts)))


def _per_die(where: list[Any], since: float | None, until: float | None) -> Any:
    """A row per die: its wafer and lot, prediction count, first and last time, and the
    newest time of each decision and of each truth."""
    p, o = predictions.c, outcomes.c
    return (
        _rows(
            p.wafer_id,
            sa.func.max(p.lot_id).label("lot_id"),
            sa.func.count().label("predictions"),
            sa.func.min(p.ts).label("first_ts"),
            sa.func.max(p.ts).label("last_ts"),
            _latest_ts(p.prediction == "pass").label("pass_ts"),
            _latest_ts(p.prediction == "fail").label("fail_ts"),
            _latest_ts(o.actual == "pass").label("actual_pass_ts"),
            _latest_ts(o.actual == "fail").label("actual_fail_ts"),
            where=where,
            since=since,
            until=until,
        )
        .group_by(p.wafer_id, *_die())
        .subquery("dies")
    )


def _not_older(a: Any, b: Any) -> Any:
    """``a`` is set and at least as new as ``b``."""
    return sa.and_(a.is_not(None), sa.or_(b.is_(None), a >= b))


def _count(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _aggregates(d: Any) -> list[Any]:
    """Yields over ``d``, a ``_per_die`` subquery."""
    return [
        sa.func.count().label("dies"),
        sa.func.sum(d.c.predictions).label("predictions"),
        _count(_not_older(d.c.pass_ts, d.c.fail_ts)).label("predicted_pass"),
        _count(sa.or_(d.c.actual_pass_ts.is_not(None), d.c.actual_fail_ts.is_not(None))).label(
            "labelled"
        ),
        _count(_not_older(d.c.actual_pass_ts, d.c.actual_fail_ts)).label("actual_pass"),
        sa.func.min(d.c.first_ts).label("first_ts"),
        sa.func.max(d.c.last_ts).label("last_ts"),
    ]


def _newest_rows(wafer_id: str, since: float | None, until: float | None) -> Any:
    """One wafer's dies, a row each: the newest prediction, its truth and the count, in
    the order ``_per_die`` decides (at the same time, pass first)."""
    return _newest_where([predictions.c.wafer_id == wafer_id], since, until)


def _newest_where(where: list[Any], since: float | None, until: float | None) -> Any:
    """The dies of the predictions ``where`` selects, a row each, as ``_newest_rows``."""
    p, o = predictions.c, outcomes.c
    die = [p.wafer_id, *_die()]
    newest = (p.ts.desc(), sa.case((p.prediction == "pass", 0), else_=1), p.request_id.desc())
    truth_first = (
        sa.case((o.actual.is_(None), 1), else_=0),
        p.ts.desc(),
        sa.case((o.actual == "pass", 0), else_=1),
    )
    ranked = _rows(
        p.request_id, p.ts, p.arm, p.wafer_id, p.device_id, p.die_x, p.die_y, p.prediction,
        p.probability,
        sa.func.row_number().over(partition_by=die, order_by=newest).label("newest"),
        sa.func.first_value(o.actual).over(partition_by=die, order_by=truth_first).label("actual"),
        sa.func.count().over(partition_by=die).label("predictions"),
        p.lot_id,
        where=where,
        since=since,
        until=until,
    ).subquery("ranked")  # fmt: skip
    return sa.select(ranked).where(ranked.c.newest == 1).subquery("newest")


def _expected(
    conn: sa.Connection, by: str, ids: list[str], since: float | None, until: float | None
) -> dict[str, float]:
    """``by`` (wafer or lot) id -> the mean P(pass) of its dies' newest predictions."""
    if not ids:
        return {}
    d = _newest_where([predictions.c[by].in_(ids)], since, until)
    q = sa.select(d.c[by], sa.func.avg(d.c.probability)).group_by(d.c[by])
    return {key: float(mean) for key, mean in conn.execute(q) if mean is not None}


def _yields(row: Any, expected: float | None) -> dict[str, Any]:
    dies, labelled = int(row["dies"]), int(row["labelled"] or 0)
    predicted_pass, actual_pass = int(row["predicted_pass"] or 0), int(row["actual_pass"] or 0)
    return {
        "dies": dies,
        "predictions": int(row["predictions"] or 0),
        "predicted_pass": predicted_pass,
        "predicted_yield": predicted_pass / dies if dies else None,
        "expected_yield": expected,
        "labelled": labelled,
        "actual_pass": actual_pass,
        "actual_yield": actual_pass / labelled if labelled else None,
        "first_ts": row["first_ts"],
        "last_ts": row["last_ts"],
    }


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
    p = predictions.c
    where = [p[by].is_not(None), *([] if lot_id is None else [p.lot_id == lot_id])]
    d = _per_die(where, since, until)
    key = d.c[by]
    q = sa.select(key.label("id"), *_aggregates(d), sa.func.count().over().label("total"))
    if by == "wafer_id":
        q = q.add_columns(sa.func.min(d.c.lot_id).label("lot_id"))
    q = q.group_by(key).order_by(sa.desc("last_ts"), key).limit(limit).offset(offset)
    with engine.connect() as conn:
        page = conn.execute(q).mappings().all()
        expected = _expected(conn, by, [row["id"] for row in page], since, until)
        if page:
            total = int(page[0]["total"])
        else:  # past the last page, or nothing: count alone
            groups = sa.select(key).group_by(key).subquery()
            total = conn.execute(sa.select(sa.func.count()).select_from(groups)).scalar_one()
    items = []
    for row in page:
        item = {by: row["id"], **_yields(row, expected.get(row["id"]))}
        if by == "wafer_id":
            item["lot_id"] = row["lot_id"]
        items.append(item)
    window = {"since": since, "until": until, "lot_id": lot_id}
    page_ = paged(by, items, total, limit, offset, window)
    return {**page_, "yield_definitions": YIELD_DEFINITIONS}


def wafer(
    engine: sa.Engine, wafer_id: str, since: float | None, until: float | None
) -> dict[str, Any] | None:
    """One wafer's yields, with counts per arm (of each die's newest prediction) and per
    decision; None if never served."""
    on_wafer = [predictions.c.wafer_id == wafer_id]
    d = _per_die(on_wafer, since, until)
    newest = _newest_rows(wafer_id, since, until)
    with engine.connect() as conn:
        total = conn.execute(sa.select(*_aggregates(d))).mappings().one()
        if not total["dies"]:
            return None
        expected = conn.execute(sa.select(sa.func.avg(newest.c.probability))).scalar()
        per_arm = conn.execute(
            sa.select(newest.c.arm, newest.c.prediction, newest.c.actual, sa.func.count())
            .group_by(newest.c.arm, newest.c.prediction, newest.c.actual)
        ).all()  # fmt: skip
        lots = (
            conn.execute(
                _rows(predictions.c.lot_id, where=on_wafer, since=since, until=until).distinct()
            )
            .scalars()
            .all()
        )
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
        **_yields(total, None if expected is None else float(expected)),
        "arms": arms,
        "window": {"since": since, "until": until},
        "yield_definitions": YIELD_DEFINITIONS,
    }


def die_map(
    engine: sa.Engine,
    wafer_id: str,
    since: float | None,
    until: float | None,
    limit: int,
    offset: int,
) -> dict[str, Any] | None:
    """One wafer's dies by time, then row and column: each die's newest prediction
    (position, decision, P(pass), arm), its truth and how often it was predicted; None
    (404, as for its summary) if the wafer has no prediction in the window."""
    d = _newest_rows(wafer_id, since, until)
    q = sa.select(
        d.c.request_id, d.c.device_id, d.c.die_x, d.c.die_y, d.c.prediction, d.c.probability,
        d.c.arm, d.c.ts, d.c.actual, d.c.predictions,
    )  # fmt: skip
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(d)).scalar_one()
        if total == 0:
            return None
        order = (d.c.ts, d.c.die_y, d.c.die_x, d.c.request_id)
        rows = conn.execute(q.order_by(*order).limit(limit).offset(offset)).all()
    columns = ("request_id", "device_id", "x", "y", "prediction", "probability", "arm", "ts",
               "actual", "predictions")  # fmt: skip
    return {
        "wafer_id": wafer_id,
        "dies": [dict(zip(columns, row, strict=True)) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
        "window": {"since": since, "until": until},
    }


def all_dies(
    engine: sa.Engine, wafer_id: str, since: float | None, until: float | None
) -> list[dict[str, Any]] | None:
    """Every die of one wafer (``die_map``'s entries, page after page); None if the wafer
    has no prediction in the window."""
    dies: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = die_map(engine, wafer_id, since, until, MAX_LIMIT, offset)
        if page is None:
            return None
        dies += page["dies"]
        offset = page["next_offset"]
    return dies


def paged(
    by: str, items: list[dict[str, Any]], total: int, limit: int, offset: int,
    window: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """A page of a per-wafer or per-lot read (``by``: wafer_id or lot_id): its items under
    ``wafers`` or ``lots``, the total, and where the next page starts (None: the last)."""
    return {
        "wafers" if by == "wafer_id" else "lots": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
        "window": window,
    }
