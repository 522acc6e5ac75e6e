"""``POST /feedback``: what final test said about devices we predicted.

Each outcome is recorded against its logged prediction with who sent it and what it
replaced (``ledger.queries``); idempotent per prediction.
"""

from __future__ import annotations

import logging
from typing import Any

from ensemble.validation import parse_outcomes
from entry.runtime import Runtime
from ops.edge import current

request_log = logging.getLogger("yield_ensemble.requests")
#: Most outcomes in one call.
MAX_OUTCOMES = 100_000
STATUSES = ("recorded", "replaced", "unchanged", "unknown")


async def feedback(runtime: Runtime, request_id: str, raw: Any) -> dict[str, Any]:
    """The answer to a ``/feedback`` body's ``outcomes``: counts, and the unknown ones."""
    items = parse_outcomes(raw, MAX_OUTCOMES)
    log = runtime.log
    # Predictions served a moment ago may still sit in the writer's queue.
    await runtime.read(log.flush, 10.0)
    state = current()
    sent_by = state.key_id if state is not None and state.key_id else "anonymous"
    statuses = await runtime.read(log.add_outcomes, items, sent_by)
    counts = dict.fromkeys(STATUSES, 0)
    for st in statuses:
        counts[st["status"]] += 1
    unknown = [{"index": i, **st} for i, st in enumerate(statuses) if st["status"] == "unknown"]
    for status, n in counts.items():
        if n:
            runtime.metrics.feedback.labels(status=status).inc(n)
    runtime.metrics.accuracy(await runtime.read(log.accuracy_by_arm))
    request_log.info(
        "feedback",
        extra={
            "fields": {"request_id": request_id, "key_id": sent_by, "received": len(items),
                       **counts}
        },
    )  # fmt: skip
    return {"request_id": request_id, "received": len(items), "counts": counts, "unknown": unknown}
