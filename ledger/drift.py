"""Drift reads: each lot's, wafer's or time bucket's features against the model's reference.

Counted in the database: each feature's value is read from the stored JSON list
(``json_extract`` on SQLite, ``->>`` on PostgreSQL), put in the reference's bins with
one CASE per feature, and the bins summed per group, one GROUP BY over the group's
rows in the window; Python gets (groups x features x bins) counts back, never the
rows. A page of lots or wafers first picks the page's groups (newest first) and then
counts only their rows (the ``lot_id``/``wafer_id``, ``ts`` indexes). Every logged
prediction counts, repeats of a die included. The statistics are
``ledger.drift_stats``'s; the reference is the serving champion's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from ensemble.drift import FeatureReference, Reference
from ledger.dashboard import paged
from ledger.drift_stats import ALPHA, PSI_SIGNIFICANT, drift
from ledger.tables import predictions

#: Largest page of lots or wafers.
MAX_LIMIT = 1000
#: Fewest and most seconds per time bucket of the timeline.
BUCKETS_S = (60, 31 * 86400)
#: Most time buckets one timeline answers.
MAX_BUCKETS = 500


def _value(j: int, sqlite: bool) -> Any:
    """Feature ``j`` of a row, as a float expression."""
    features = predictions.c.features
    if sqlite:
        return sa.type_coerce(features, sa.JSON)[j].as_float()
    return sa.cast(features, sa.JSON)[j].as_float()


def _bin(v: Any, f: FeatureReference) -> Any:
    """The reference bin of value ``v`` (as ``FeatureReference.bin_of``)."""
    whens = [(v < f.minimum, 0)]
    whens += [(v < edge, i + 1) for i, edge in enumerate(f.inner)]
    whens += [(v <= f.maximum, len(f.inner) + 1)]
    return sa.case(*whens, else_=f.bins - 1)


def _where(since: float | None, until: float | None, extra: Sequence[Any]) -> list[Any]:
    p = predictions.c
    out = list(extra)
    if since is not None:
        out.append(p.ts >= since)
    if until is not None:
        out.append(p.ts < until)
    return out


def counts(
    engine: sa.Engine, reference: Reference, key: Any, where: Sequence[Any]
) -> dict[Any, dict[str, Any]]:
    """Group key -> dies, wafers, out-of-range dies, first/last time and (k, bins) counts
    of the predictions ``where`` selects, grouped by the expression ``key``."""
    p = predictions.c
    sqlite = engine.dialect.name == "sqlite"
    values = [_value(j, sqlite).label(f"v{j}") for j in range(len(reference.features))]
    # Each row's values and bins computed once (MATERIALIZED, PostgreSQL 12+, SQLite
    # 3.35+): inlined, every bin's sum parsed the row's JSON again, 0.3 ms a row on
    # PostgreSQL (bench/drift_reads.py).
    rows = (
        sa.select(key.label("g"), p.wafer_id, p.ts, p.out_of_range, *values)
        .where(*where)
        .cte("rows")
        .prefix_with("MATERIALIZED")
    )
    binned = (
        sa.select(
            rows.c.g, rows.c.wafer_id, rows.c.ts, rows.c.out_of_range,
            *(_bin(rows.c[f"v{j}"], f).label(f"b{j}") for j, f in enumerate(reference.features)),
        )
        .cte("binned")
        .prefix_with("MATERIALIZED")
    )  # fmt: skip
    sums = [
        sa.func.sum(sa.case((binned.c[f"b{j}"] == b, 1), else_=0))
        for j, f in enumerate(reference.features)
        for b in range(f.bins)
    ]
    q = sa.select(
        binned.c.g,
        sa.func.count(),
        sa.func.count(sa.distinct(binned.c.wafer_id)),
        sa.func.count(binned.c.out_of_range),
        sa.func.min(binned.c.ts),
        sa.func.max(binned.c.ts),
        *sums,
    ).group_by(binned.c.g)
    out: dict[Any, dict[str, Any]] = {}
    with engine.connect() as conn:
        for g, n, wafers, oor, first, last, *bins in conn.execute(q):
            flat, at, per_feature = [int(b or 0) for b in bins], 0, []
            for f in reference.features:
                per_feature.append(np.asarray(flat[at : at + f.bins]))
                at += f.bins
            out[g] = {"dies": int(n), "wafers": int(wafers), "out_of_range": int(oor),
                      "first_ts": first, "last_ts": last, "counts": per_feature}  # fmt: skip
    return out


def _judged(reference: Reference, c: dict[str, Any], alpha: float) -> dict[str, Any]:
    result = drift(reference, c["counts"], c["dies"], c["wafers"], c["out_of_range"], alpha)
    result["alert"] = any(f["drifted"] and f["psi"] > PSI_SIGNIFICANT for f in result["features"])
    return {"first_ts": c["first_ts"], "last_ts": c["last_ts"], **result}


def groups(
    engine: sa.Engine,
    reference: Reference,
    by: str,
    since: float | None,
    until: float | None,
    lot_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """A page of lots (``by="lot_id"``) or wafers, newest first, each with its drift."""
    p = predictions.c
    key = p[by]
    where = _where(
        since, until, [key.is_not(None), *([] if lot_id is None else [p.lot_id == lot_id])]
    )
    page_q = (
        sa.select(key, sa.func.max(p.ts).label("last"), sa.func.count().over().label("total"))
        .where(*where)
        .group_by(key)
        .order_by(sa.desc("last"), key)
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        page = conn.execute(page_q).all()
    total = int(page[0][2]) if page else 0
    ids = [row[0] for row in page]
    found = counts(engine, reference, key, [*where, key.in_(ids)]) if ids else {}
    items = [{by: g, **_judged(reference, found[g], alpha)} for g in ids if g in found]
    for item in items:
        item["features"] = [_short(f) for f in item["features"]]
    window = {"since": since, "until": until, "lot_id": lot_id}
    page_ = paged(by, items, total, limit, offset, window)
    return {**page_, "thresholds": {"psi_significant": PSI_SIGNIFICANT, "alpha": alpha}}


def _short(f: dict[str, Any]) -> dict[str, Any]:
    keep = ("feature", "psi", "p_value", "p_below", "p_holm", "drifted", "level")
    return {k: f[k] for k in keep}


def histogram(f: FeatureReference, observed: np.ndarray) -> dict[str, Any]:
    """One feature's served counts beside the training and held-out shares, per bin."""
    train, held = np.asarray(f.train, float), np.asarray(f.held_out, float)
    n = observed.sum()
    return {
        "feature": f.name,
        "edges": [f.minimum, *f.inner, f.maximum],
        "bins": ["below training"]
        + [f"bin {i}" for i in range(1, f.bins - 1)]
        + ["above training"],
        "served": observed.tolist(),
        "served_share": (observed / n).tolist() if n else None,
        "train_share": (train / train.sum()).tolist(),
        "held_out_share": (held / held.sum()).tolist() if held.sum() else None,
    }


def one(
    engine: sa.Engine,
    reference: Reference,
    by: str,
    group_id: str,
    since: float | None,
    until: float | None,
    alpha: float = ALPHA,
) -> dict[str, Any] | None:
    """One lot's or wafer's drift with every feature's histogram; None if never served."""
    key = predictions.c[by]
    found = counts(engine, reference, key, _where(since, until, [key == group_id]))
    if group_id not in found:
        return None
    c = found[group_id]
    judged = _judged(reference, c, alpha)
    named = {f.name: (f, c["counts"][j]) for j, f in enumerate(reference.features)}
    judged["histograms"] = [histogram(*named[f["feature"]]) for f in judged["features"]]
    return {by: group_id, **judged, "window": {"since": since, "until": until}}


def lot(
    engine: sa.Engine, reference: Reference, lot_id: str, since: float | None, until: float | None
) -> dict[str, Any] | None:
    """``one`` lot."""
    return one(engine, reference, "lot_id", lot_id, since, until)


def wafer(
    engine: sa.Engine, reference: Reference, wafer_id: str, since: float | None, until: float | None
) -> dict[str, Any] | None:
    """``one`` wafer."""
    return one(engine, reference, "wafer_id", wafer_id, since, until)


def most_drifted(judged: dict[str, Any]) -> str | None:
    """The feature that moved most: the drifted one of largest PSI, else the largest PSI."""
    if judged["moved_most"]:
        return str(judged["moved_most"][0])
    return str(judged["features"][0]["feature"]) if judged["features"] else None


def by_lot(
    engine: sa.Engine,
    reference: Reference,
    since: float | None,
    until: float | None,
    alpha: float = ALPHA,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """The whole window's drift and every lot's, from one count of the window's rows by
    lot (``counts``; rows without a lot count in the window's only): (the window's, with
    the histogram of its most drifted feature (``most_drifted``), None if it has no rows;
    each lot's as ``groups`` lists them; lot -> its (k, bins) counts, for histograms)."""
    p = predictions.c
    where = _where(since, until, [])
    found = counts(engine, reference, p.lot_id, where)
    if not found:
        return None, [], {}
    groups_ = list(found.values())
    with engine.connect() as conn:
        wafers = conn.execute(sa.select(sa.func.count(sa.distinct(p.wafer_id))).where(*where))
        merged = {
            "dies": sum(c["dies"] for c in groups_),
            "wafers": int(wafers.scalar_one()),
            "out_of_range": sum(c["out_of_range"] for c in groups_),
            "first_ts": min(c["first_ts"] for c in groups_),
            "last_ts": max(c["last_ts"] for c in groups_),
            "counts": [
                sum(c["counts"][j] for c in groups_) for j in range(len(reference.features))
            ],
        }
    whole = _judged(reference, merged, alpha)
    name = most_drifted(whole)
    j = reference.names.index(name) if name is not None else 0
    whole["histogram"] = histogram(reference.features[j], merged["counts"][j])
    whole["window"] = {"since": since, "until": until}
    lots = []
    for lot_id, c in found.items():
        if lot_id is not None:
            judged = _judged(reference, c, alpha)
            lots.append(
                {"lot_id": lot_id, **judged, "features": [_short(f) for f in judged["features"]]}
            )
    return whole, lots, {g: c["counts"] for g, c in found.items() if g is not None}


def timeline(
    engine: sa.Engine,
    reference: Reference,
    since: float | None,
    until: float | None,
    bucket_s: int = 86400,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """The window's drift per time bucket of ``bucket_s`` seconds, oldest first (the
    newest ``MAX_BUCKETS`` buckets when there are more)."""
    ts = predictions.c.ts
    if engine.dialect.name == "sqlite":
        key = sa.cast(ts / bucket_s, sa.Integer)
    else:
        key = sa.cast(sa.func.floor(ts / bucket_s), sa.BigInteger)
    found = counts(engine, reference, key, _where(since, until, []))
    keys = sorted(found)[-MAX_BUCKETS:]
    buckets = []
    for k in keys:
        judged = _judged(reference, found[k], alpha)
        judged["features"] = [_short(f) for f in judged["features"]]
        buckets.append({"start": int(k) * bucket_s, **judged})
    return {
        "bucket_s": bucket_s,
        "buckets": buckets,
        "window": {"since": since, "until": until},
        "thresholds": {"psi_significant": PSI_SIGNIFICANT, "alpha": alpha},
    }
