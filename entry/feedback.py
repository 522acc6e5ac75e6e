"""``POST /feedback``: what final test said about devices we predicted.

Each outcome is recorded against its logged prediction with who sent it and what it
replaced (``ledger.queries``); idempotent per prediction.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from ensemble.validation import parse_outcomes
from entry.runtime import Runtime
from ops.edge import current
from ops.logs import redact

request_log = logging.getLogger("yield_ensemble.requests")
logger = logging.getLogger("yield_ensemble")
#: Most outcomes in one call.
MAX_OUTCOMES = 100_000
STATUSES = ("recorded", "replaced", "unchanged", "unknown")


def _sender() -> str:
    state = current()
    return state.key_id if state is not None and state.key_id else "anonymous"


async def _record(
    runtime: Runtime, request_id: str, items: list[tuple[str, str, str]], unknown: list[Any],
    received: int,
) -> dict[str, Any]:  # fmt: skip
    """Record ``items``; counts (``unknown`` adds the ones already known to be unknown)."""
    log = runtime.log
    sent_by = _sender()
    statuses = await runtime.feedback(log.add_outcomes, items, sent_by) if items else []
    counts = dict.fromkeys(STATUSES, 0)
    counts["unknown"] = len(unknown)
    for st in statuses:
        counts[st["status"]] += 1
    unknown = unknown + [
        {"index": i, **st} for i, st in enumerate(statuses) if st["status"] == "unknown"
    ]
    for status, n in counts.items():
        if n:
            runtime.metrics.feedback.labels(status=status).inc(n)
    await runtime.feedback(_update_accuracy, runtime)
    request_log.info(
        "feedback",
        extra={"fields": {"request_id": request_id, "key_id": sent_by, "received": received,
                          **counts}},
    )  # fmt: skip
    return {"request_id": request_id, "received": received, "counts": counts, "unknown": unknown}


def _update_accuracy(runtime: Runtime) -> None:
    """The live-accuracy gauges, read once; on a database error they keep their values
    (the outcomes are committed by then: the answer must say so, not 503)."""
    try:
        runtime.metrics.accuracy(runtime.log.accuracy_by_arm())
    except Exception as exc:
        from ledger.errors import cause_line, unavailable

        if unavailable(exc) is None:
            raise
        logger.warning("accuracy gauges not updated: %s", redact(cause_line(exc)))


async def feedback(runtime: Runtime, request_id: str, raw: Any) -> dict[str, Any]:
    """The answer to a ``/feedback`` body's ``outcomes``: counts, and the unknown ones."""
    items = parse_outcomes(raw, MAX_OUTCOMES)
    # Predictions served a moment ago may still sit in the writer's queue.
    await runtime.feedback(runtime.log.flush, 10.0)
    return await _record(runtime, request_id, items, [], len(items))


async def feedback_file(
    runtime: Runtime, request_id: str, body: bytes, max_bytes: int
) -> dict[str, Any]:
    """``POST /feedback_stdf``: a final-test STDF file's outcomes against the logged
    predictions of its dies (by wafer and PART_ID, else wafer and x/y; ``ledger.lookup``).

    Each die's outcome is its PRR PART_FLG (its last test when retested); dies without
    a pass/fail indication are skipped; dies with no logged prediction are listed.
    """
    from ledger.lookup import latest_requests
    from ledger.retry import retried
    from stdf.errors import StdfInvalid
    from stdf.format import read
    from stdf.parts import NO_COORD

    if not body:
        raise StdfInvalid("the body is empty; send the STDF file itself")
    parts = await runtime.feedback(read, body, max_bytes)
    if len(parts) > MAX_OUTCOMES:
        raise StdfInvalid(f"at most {MAX_OUTCOMES} parts per file, the file has {len(parts)}")
    await runtime.feedback(runtime.log.flush, 10.0)

    def text(v: Any) -> str | None:
        return None if v is None or v == "" else str(v)

    def coord(v: int) -> int | None:
        return None if v == NO_COORD else int(v)

    known = [i for i in range(len(parts)) if parts.pass_known[i]]
    dies = [
        (text(parts.lot[i]), text(parts.wafer[i]), text(parts.part_id[i]), coord(parts.x[i]),
         coord(parts.y[i]))
        for i in known
    ]  # fmt: skip
    find = functools.partial(latest_requests, runtime.log.engine, dies)
    rids = await runtime.feedback(retried, find, what="finding the dies' predictions")
    items, unknown = [], []
    for i, die, rid in zip(known, dies, rids, strict=True):
        if rid is None:
            lot, wafer, part, x, y = die
            unknown.append({"index": i, "lot_id": lot, "wafer_id": wafer, "device_id": part,
                            "die_x": x, "die_y": y, "status": "unknown",
                            "error": "no logged prediction for this die"})  # fmt: skip
        else:
            items.append(("request_id", rid, "pass" if parts.passed[i] else "fail"))
    answer = await _record(runtime, request_id, items, unknown, len(known))
    return {**answer, "skipped_no_pass_fail": len(parts) - len(known), "retests": parts.n_retests}
