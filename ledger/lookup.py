"""Which logged prediction a die of a tester's file is: by wafer and part id, else position.

A final-test file names its dies by PART_ID (which restarts on every wafer) and by x/y on
the wafer; the prediction log keeps both. A die resolves to its wafer's (and lot's, when
both sides have one) newest prediction with the same device id, else with the same die
position; None when the log has neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ledger.tables import predictions

#: A die as a file names it: (lot, wafer, part id, x, y); None where the file has none.
Die = tuple[str | None, str | None, str | None, int | None, int | None]


def latest_requests(engine: sa.Engine, dies: Sequence[Die]) -> list[str | None]:
    """Per die the request id of its newest logged prediction, or None (see the module)."""
    c = predictions.c
    wafers = sorted({w for _, w, _, _, _ in dies if w is not None})
    by_id: dict[tuple[str | None, str, str], tuple[float, str]] = {}
    by_xy: dict[tuple[str | None, str, int, int], tuple[float, str]] = {}
    query = sa.select(c.request_id, c.ts, c.lot_id, c.wafer_id, c.device_id, c.die_x, c.die_y)
    with engine.connect() as conn:
        for start in range(0, len(wafers), 100):
            rows = conn.execute(query.where(c.wafer_id.in_(wafers[start : start + 100])))
            for rid, ts, lot, wafer, device, x, y in rows:
                for key, index in (((lot, wafer, device), by_id), ((lot, wafer, x, y), by_xy)):
                    if None in key[1:]:
                        continue
                    for k in (key, (None, *key[1:])):  # with and without the lot
                        if index.get(k, (-1.0, ""))[0] < ts:
                            index[k] = (ts, rid)
    out: list[str | None] = []
    for lot, wafer, part, x, y in dies:
        found = None
        for lot_key in dict.fromkeys((lot, None)):  # the lot when the log has it, else any
            if found is None and part is not None and wafer is not None:
                found = by_id.get((lot_key, wafer, part))
            if found is None and wafer is not None and x is not None and y is not None:
                found = by_xy.get((lot_key, wafer, x, y))
        out.append(found[1] if found is not None else None)
    return out
