"""yield-ensemble's Prometheus metrics, next to BentoML's own ``bentoml_service_*``.

``prometheus_client`` is imported when :class:`ServiceMetrics` is built, in the
worker's ``__init__``: by then BentoML has set ``PROMETHEUS_MULTIPROC_DIR``, so
every worker process writes its own files and ``/metrics`` sums them.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ensemble.arms import ENSEMBLE
from ensemble.batch import Batch
from ensemble.errors import kinds

if TYPE_CHECKING:
    from ensemble.fleet import Snapshot

PREFIX = "yield_ensemble_"
#: Seconds; fine below 50 ms where single-row requests live, coarse up to a wafer batch.
LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.004,
    0.006,
    0.008,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ServiceMetrics:
    """Every yield_ensemble_* metric; ``registry`` only for tests (multiprocess ignores it)."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as pc

        kw: dict[str, Any] = {} if registry is None else {"registry": registry}
        p = PREFIX
        self._served_models: set[tuple[str, str, str]] = set()
        self._predictions: dict[tuple[str, str], Any] = {}
        self.predictions = pc.Counter(
            p + "predictions",
            "Served device predictions by arm and outcome.",
            ["arm", "prediction"],
            **kw,
        )
        self.errors = pc.Counter(
            p + "errors",
            f"Failed requests by kind: {', '.join(kinds())}.",
            ["kind"],
            **kw,
        )
        self.request_duration = pc.Histogram(
            p + "request_duration_seconds",
            "Time to answer a request, validation to vote.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.member_duration = pc.Histogram(
            p + "member_call_duration_seconds",
            "Time from asking a member to its answer, seen by the entry service.",
            ["member"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.member_failures = pc.Counter(
            p + "member_failures",
            "Member calls that failed, by reason: timeout or error; breaker_open counts calls "
            "not made while the member's breaker was open; non_finite counts rows a member "
            "answered with no probability (NaN, infinity).",
            ["member", "reason"],
            **kw,
        )
        self.cache_hits = pc.Counter(p + "cache_hits", "Predictions answered from the cache.", **kw)
        self.cache_misses = pc.Counter(
            p + "cache_misses", "Predictions the cache did not hold.", **kw
        )
        self.cache_entries = pc.Gauge(
            p + "cache_entries",
            "Predictions held in the LRU cache.",
            multiprocess_mode="livesum",
            **kw,
        )
        self.degraded = pc.Counter(
            p + "degraded_predictions",
            "Predictions voted without a member, by missing member.",
            ["missing_member"],
            **kw,
        )
        self.disagreements = pc.Counter(
            p + "member_disagreements",
            "Ensemble-arm predictions whose members, each at its own fitted threshold, did "
            "not all vote alike (a drift signal; the report's agreement counts the same); "
            'divide by yield_ensemble_predictions_total{arm="ensemble"}.',
            **kw,
        )
        self.feedback = pc.Counter(
            p + "feedback_outcomes",
            "Outcomes received on /feedback, by status.",
            ["status"],
            **kw,
        )
        self.labelled = pc.Gauge(
            p + "labelled_predictions",
            "Logged predictions with a ground-truth outcome, by arm.",
            ["arm"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.live_accuracy = pc.Gauge(
            p + "live_accuracy_ratio",
            "Accuracy of labelled predictions in the log, by arm.",
            ["arm"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.model_info = pc.Gauge(
            p + "model_info",
            "1 for each model each member serves now, by role (champion, candidate); 0 for "
            "one it served before in this process.",
            ["member", "version", "role"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.member_up = pc.Gauge(
            p + "member_up",
            "1 if the member answered the last readiness probe (/readyz), 0 if not: the "
            "replica stays ready on the others and its answers are flagged degraded.",
            ["member"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.serving_revision = pc.Gauge(
            p + "serving_revision",
            "Revision of the serving state (champion, candidate, share) this replica serves.",
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.candidate_share = pc.Gauge(
            p + "candidate_share",
            "Share of traffic sent to the candidate version (0 without one).",
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.serving_changes = pc.Counter(
            p + "serving_changes",
            "Changes of the serving state made through this replica, by action: candidate, "
            "promote, rollback, guardrail (the candidate stopped by the guardrail).",
            ["action"],
            **kw,
        )
        self.serving_sync_failures = pc.Counter(
            p + "serving_sync_failures",
            "Times this replica could not read or serve the ledger's serving state; it keeps "
            "serving the last state it could.",
            **kw,
        )
        self.log_pending = pc.Gauge(
            p + "prediction_log_pending_rows",
            "Served predictions not yet written to the log.",
            multiprocess_mode="livesum",
            **kw,
        )
        self.log_written = pc.Counter(
            p + "prediction_log_rows_written", "Predictions written to the prediction log.", **kw
        )
        self.log_rows = pc.Counter(
            p + "prediction_log_rows",
            "What the log writer did with rows besides writing them: spilled (database down), "
            "replayed (from the spill), dead_letter (refused by the database), lost.",
            ["outcome"],
            **kw,
        )
        self.out_of_range_dies = pc.Counter(
            p + "out_of_range_dies",
            "Served dies with the feature outside the serving model's training range.",
            ["feature"],
            **kw,
        )
        self.drift_psi_max = pc.Gauge(
            p + "lot_drift_psi_max",
            "The largest feature PSI of any lot served in the drift window (ledger.drift), "
            "by feature; 0.25 and over is a significant shift.",
            ["feature"],
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.drift_lots = pc.Gauge(
            p + "lots_drifted",
            "Lots served in the drift window whose drift test rejected (Holm-adjusted p "
            "under alpha) on a feature with PSI over 0.25.",
            multiprocess_mode="mostrecent",
            **kw,
        )
        self.log_spool = pc.Gauge(
            p + "prediction_log_spool_rows",
            "Rows on disk: waiting in the spill, or refused in the dead letter.",
            ["place"],
            multiprocess_mode="mostrecent",
            **kw,
        )

    def serving_change(self, action: str) -> None:
        self.serving_changes.labels(action=action).inc()

    def serving_sync_failure(self) -> None:
        self.serving_sync_failures.inc()

    def serving(self, snapshot: Snapshot) -> None:
        """What serves now: model info by role, the revision and the candidate's share."""
        now = {
            (member, tag, role)
            for role, tags in snapshot.versions().items()
            for member, tag in tags.items()
        }
        for member, tag, role in self._served_models - now:
            self.model_info.labels(member=member, version=tag, role=role).set(0)
        for member, tag, role in now:
            self.model_info.labels(member=member, version=tag, role=role).set(1)
        self._served_models = now
        self.serving_revision.set(snapshot.state.revision)
        self.candidate_share.set(snapshot.state.share)
        self.cache_entries.set(len(snapshot.router.cache))

    def log_event(self, kind: str, rows: int) -> None:
        """See ``ledger.predlog.LogEvent``."""
        if kind == "written":
            self.log_written.inc(rows)
        else:
            self.log_rows.labels(outcome=kind).inc(rows)

    def log_spool_rows(self, spill: int, dead_letter: int) -> None:
        self.log_spool.labels(place="spill").set(spill)
        self.log_spool.labels(place="dead_letter").set(dead_letter)

    def member_call(
        self, member: str, seconds: float | None, failure: str | None, rows: int = 1
    ) -> None:
        """See ``ensemble.predictor.CallObserver``."""
        if seconds is not None:
            self.member_duration.labels(member=member).observe(seconds)
        if failure is not None:
            self.member_failures.labels(member=member, reason=failure).inc(rows)

    def served(self, batch: Batch) -> dict[str, Any]:
        """Count a request's results; returns the tally (arms, fails, cached, degraded).

        Counted on the arrays, before touching the counters: a 10,000-device wafer costs
        a few numpy passes, and a single die a few microseconds (every request counts).
        """
        n_arms = len(batch.arms)
        hits = int(np.count_nonzero(batch.cached))
        misses = len(batch) - hits
        degraded = int(np.count_nonzero(batch.degraded))
        on_arm = np.bincount(batch.arm, minlength=n_arms).tolist()
        passed_on_arm = np.bincount(batch.arm[batch.passed], minlength=n_arms).tolist()
        # Ensemble-arm rows where the members that voted split (a drift signal).
        disagree = 0
        if ENSEMBLE in batch.arms and batch.split.any():
            disagree = int(
                np.count_nonzero(batch.split & (batch.arm == batch.arms.index(ENSEMBLE)))
            )
        arms: dict[str, int] = {}
        fails = 0
        for name, n, passed in zip(batch.arms, on_arm, passed_on_arm, strict=True):
            if not n:
                continue
            arms[name] = n
            fails += n - passed
            for prediction, count in (("pass", passed), ("fail", n - passed)):
                if count:
                    self._prediction(name, prediction).inc(count)
        if batch.missing:
            missing = Tally(m for why in batch.missing.values() for m in why)
            for member, k in missing.items():
                self.degraded.labels(missing_member=member).inc(k)
        if hits:
            self.cache_hits.inc(hits)
        if misses:
            self.cache_misses.inc(misses)
        if disagree:
            self.disagreements.inc(disagree)
        return {"arms": arms, "fails": fails, "cached": hits, "degraded": degraded}

    def _prediction(self, arm: str, prediction: str) -> Any:
        """The predictions counter of (arm, prediction), looked up once."""
        child = self._predictions.get((arm, prediction))
        if child is None:
            child = self._predictions[arm, prediction] = self.predictions.labels(
                arm=arm, prediction=prediction
            )
        return child

    def out_of_range(self, by_feature: Mapping[str, int]) -> None:
        """Count a request's out-of-range dies, per feature."""
        for feature, n in by_feature.items():
            self.out_of_range_dies.labels(feature=feature).inc(n)

    def drift(self, worst: Mapping[str, float], drifted: int) -> None:
        """The drift window's largest PSI per feature and its count of drifted lots."""
        for feature, value in worst.items():
            self.drift_psi_max.labels(feature=feature).set(value)
        self.drift_lots.set(drifted)

    def accuracy(self, per_arm: Mapping[str, tuple[int, int]]) -> None:
        """``per_arm``: arm -> (correct, labelled) over the log."""
        for arm, (correct, n) in per_arm.items():
            self.labelled.labels(arm=arm).set(n)
            if n:
                self.live_accuracy.labels(arm=arm).set(correct / n)
