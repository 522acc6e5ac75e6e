"""Where served predictions go: the prediction log and the metrics.

``LedgerEvidence`` is the entry's ``ensemble.pipeline.Evidence``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ensemble.cache import PredictionCache
from ensemble.pipeline import Served
from ops.metrics import ServiceMetrics

if TYPE_CHECKING:
    from ledger.predlog import PredictionLog

request_log = logging.getLogger("yield_ensemble.requests")


class LedgerEvidence:
    """Logs every served die to the ledger and counts it in the metrics."""

    def __init__(self, log: PredictionLog, metrics: ServiceMetrics, cache: PredictionCache) -> None:
        self.log = log
        self.metrics = metrics
        self.cache = cache

    def check_room(self) -> None:
        """``LogBackedUp`` (503) when the log may not take more rows."""
        self.log.check_room()

    def room(self, n: int, in_flight: int) -> bool:
        """Whether ``n`` more rows fit in the log's memory beside ``in_flight`` admitted
        ones, with a tenth of it left for small requests (any request fits an empty,
        idle log, whatever its size)."""
        pending = self.log.pending_rows
        most = self.log.durability.max_pending_rows
        return pending + in_flight + n <= most - most // 10 or pending == in_flight == 0

    def record(self, served: Served) -> dict[str, Any]:
        from ledger.predlog import Served as Row

        serving = served.serving
        self.log.record(
            Row(
                time.time(),
                served.latency_ms,
                served.request_ids,
                served.dies.ids,
                served.dies.rows,
                served.batch,
                serving.model_versions,
                serving.arm_specs,
                served.dies.positions,
                serving.arm_versions,
                served.out_of_range,
            )
        )
        tally = self.metrics.served(served.batch)
        self.metrics.out_of_range(served.flags.by_feature())
        self.metrics.cache_entries.set(len(self.cache))
        self.metrics.log_pending.set(self.log.pending_rows)
        if request_log.isEnabledFor(logging.DEBUG):
            request_log.debug(
                "features",
                extra={
                    "fields": {
                        "request_id": served.request_id,
                        "features": served.dies.rows.tolist(),
                    }
                },
            )
        return tally
