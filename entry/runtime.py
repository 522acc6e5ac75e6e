"""The running entry worker's parts, built once when the worker starts.

``Runtime`` holds the prediction log, the fleet of served versions and the switchboard
that follows the shared serving state, the metrics, the prediction pipeline, and the
thread pools that keep reads and probes apart from each other and from predictions.
The report and dashboard reads run in a process of their own (``entry.read_process``).
``current()`` is the worker's runtime, for the routes mounted beside the service.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from ensemble.admission import Admission
from ensemble.breaker import Breaker
from ensemble.cache import PredictionCache
from ensemble.decision import Decision
from ensemble.errors import MemberLoadFailed, ReadsBusy, Stopping
from ensemble.fleet import Fleet, Loaded, Snapshot
from ensemble.pipeline import Limits, Pipeline
from ensemble.predictor import EnsemblePredictor
from ensemble.schema import FeatureSchema
from ensemble.settings import get_settings
from ensemble.switchboard import Switchboard
from entry import read_process
from entry.evidence import LedgerEvidence
from entry.read_process import ReadProcess
from entry.startup import load_version, reconcile
from ledger.settings import get_ledger_settings
from ops.edge import current as current_request
from ops.gc_tuning import tune_gc
from ops.metrics import ServiceMetrics
from ops.settings import get_ops_settings

logger = logging.getLogger("yield_ensemble")
T = TypeVar("T")
#: How long a member may take to load the versions of a new serving state.
PREPARE_TIMEOUT_S = 120.0
#: Threads for reads (report, dashboards, drift) and, apart, for /feedback and
#: /feedback_stdf: probes, predictions and feedback never wait behind the reads.
READ_THREADS = FEEDBACK_THREADS = 2
#: A read (or feedback) still queued this long after its request came in answers 503
#: (``ReadsBusy``), not run: a clear answer to retry before BentoML's 60 s timeout's 504.
READ_WAIT_S = 30.0
#: BentoML's time limit on one entry request (``traffic.timeout``): a request in flight at
#: SIGTERM, a client stalled mid-body included, ends within it; the drain does too.
TRAFFIC_TIMEOUT_S = 60


def member_call(proxy: Any, version: str) -> Callable[[np.ndarray], Any]:
    """A member's P(pass) from the model of ``version``, a concrete run.

    Always named: a member restarted since loads its own start-up model, which may be
    another run than the one serving; it answers each call from the version named, so
    an answer's ``model_versions`` is what computed it. ``proxy.to_async`` is looked up
    per call: BentoML binds it after __init__.
    """

    async def call(rows: np.ndarray) -> np.ndarray:
        return np.asarray(await proxy.to_async.predict_version(rows, version))

    return call


class Runtime:
    """One entry worker's state; ``proxies``: member name -> its BentoML dependency."""

    def __init__(self, proxies: Mapping[str, Any], started: Loaded) -> None:
        from ledger.predlog import Durability, PredictionLog, Retention
        from ledger.serving import ServingStore

        core, ledger = get_settings(), get_ledger_settings()
        self.proxies = dict(proxies)
        #: One circuit breaker per member process, shared by every version's predictor.
        self.breakers = (
            {m: Breaker(core.member_breaker_s) for m in self.proxies}
            if core.member_breaker_s
            else {}
        )
        self.schema = started.schema
        self.metrics = ServiceMetrics()
        days = ledger.prediction_log_retention_days
        self.log = PredictionLog(
            ledger.log_url,
            flush_interval_s=ledger.prediction_log_flush_interval_s,
            retention=Retention(days * 86400 if days else None, ledger.prediction_log_max_rows),
            durability=Durability(
                spill_dir=ledger.spill_dir,
                spill_max_bytes=int(ledger.prediction_log_spill_max_mb * (1 << 20)),
                max_pending_rows=ledger.prediction_log_max_pending_rows,
                stall_s=ledger.prediction_log_stall_s,
            ),
            on_event=self._log_event,
        )
        self.fleet = Fleet(
            core.arm_list(),
            core.split_salt,
            PredictionCache(core.cache_maxsize, core.cache_ttl_s),
            self.schema,
            lambda version: started if version == started.version else load_version(version),
            self._predictor,
            self._prepare_members,
        )
        store = ServingStore(self.log.engine)
        #: Set at SIGTERM (``bentoml_quirks.refuse_new_connections_on_sigterm``): reads
        #: still queued are refused, the read in hand finishes, the serving state is no
        #: longer followed; predictions in flight drain as ever.
        self.stopping = threading.Event()
        self.switch = Switchboard(
            self.fleet,
            store,
            store.read() or reconcile(self.log.engine),
            self.metrics,
            core.serving_poll_s,
            report=self.guardrail_report if core.guardrail else None,
            guardrail_interval_s=core.guardrail_interval_s,
            stopping=self.stopping.is_set,
        )
        self.evidence = LedgerEvidence(self.log, self.metrics, self.fleet.cache)
        max_bytes = int(get_ops_settings().max_body_mb * (1 << 20))
        limits = Limits(self.schema, core.max_batch_devices, max_bytes, started.inputs)
        admission = Admission(core.max_bulk_dies_in_flight, core.bulk_wait_s)
        self.pipeline = Pipeline(
            lambda: self.switch.serving, self.evidence, lambda: limits, admission
        )
        self._reads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="yield-read")
        self._feedback = ThreadPoolExecutor(FEEDBACK_THREADS, thread_name_prefix="yield-feedback")
        ops = get_ops_settings()
        #: The report and dashboard reads' own process (``entry.read_process``).
        self.queries = ReadProcess(self.log.url, ledger.read_processes, ops.log_format,
                                   ops.log_level, local=self.log)  # fmt: skip
        self.queries.start()
        self._probes = ThreadPoolExecutor(1, thread_name_prefix="yield-probe")
        self.following: asyncio.Task[None] | None = None
        self.drift_watch: asyncio.Task[None] | None = None
        self.metrics.log_spool_rows(*self.spool_rows())
        self.metrics.accuracy(self.log.accuracy_by_arm())
        tune_gc()
        logger.info("serving %s on features %s", self.serving.versions(), list(self.schema.names))
        logger.info("prediction log: %s", self.log.safe_url)

    def observe(self, endpoint: str, seconds: float) -> None:
        """An answered request's duration, for the latency histogram."""
        self.metrics.request_duration.labels(endpoint=endpoint).observe(seconds)

    @property
    def serving(self) -> Snapshot:
        """What serves now (``ensemble.switchboard``); a request reads it once."""
        return self.switch.serving

    async def read(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``call`` in the reads' threads (reports, dashboards, drift); ReadsBusy if it
        would start ``READ_WAIT_S`` after its request came in, Stopping after SIGTERM."""
        return await self._queued(self._reads, "reads", call, *args, **kwargs)

    async def feedback(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``call`` in feedback's own threads, under ``read``'s rules: outcomes are
        recorded while any number of dashboards read."""
        return await self._queued(self._feedback, "feedback calls", call, *args, **kwargs)

    async def _queued(self, pool: ThreadPoolExecutor, lane: str, call: Callable[..., T], /,
                      *args: Any, **kwargs: Any) -> T:  # fmt: skip
        deadline = ((r.started if (r := current_request()) else time.monotonic())
                    + READ_WAIT_S)  # fmt: skip

        def run() -> T:
            if self.stopping.is_set():
                raise Stopping("this worker is stopping (SIGTERM); send the request again")
            if time.monotonic() > deadline:
                raise ReadsBusy(f"too many {lane} wait ahead of this one (over "
                                f"{READ_WAIT_S:g} s); try again later")  # fmt: skip
            return call(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(pool, run)

    async def probe(self, call: Callable[[], T]) -> T:
        """``call`` in the probes' own thread: a read never delays a readiness answer."""
        return await asyncio.get_running_loop().run_in_executor(self._probes, call)

    def spool_rows(self) -> tuple[int, int]:
        """Rows in the spill and in the dead letter, counted from the files."""
        spill, dead = self.log.spill, self.log.dead_letter
        return (spill.size()[0] if spill else 0), (dead.size()[0] if dead else 0)

    def _log_event(self, kind: str, rows: int) -> None:
        """Called by the log's writer thread: what it did with how many rows."""
        self.metrics.log_event(kind, rows)
        self.metrics.log_pending.set(self.log.pending_rows)
        if kind != "written":
            self.metrics.log_spool_rows(*self.spool_rows())

    def _predictor(self, version: str, decision: Decision) -> EnsemblePredictor:
        """The ensemble of ``version``'s members, deciding with its trained combiner."""
        core = get_settings()
        return EnsemblePredictor(
            {m: member_call(proxy, version) for m, proxy in self.proxies.items()},
            timeout_s=core.member_timeout_s,
            timeout_per_1000_rows_s=core.member_timeout_per_1000_rows_s,
            max_rows_per_call=core.coalesce_max_rows,
            max_in_flight=core.coalesce_max_in_flight,
            observer=self.metrics.member_call,
            combiner=decision.combiner(core.combiner),
            breakers=self.breakers,
        )

    async def _prepare_members(self, versions: Sequence[str]) -> None:
        """Have every member load ``versions``; MemberLoadFailed naming the one that could not."""

        async def prepare(member: str, proxy: Any) -> None:
            try:
                await asyncio.wait_for(proxy.to_async.prepare(list(versions)), PREPARE_TIMEOUT_S)
            except Exception as exc:
                why = str(exc)[:300] or type(exc).__name__
                raise MemberLoadFailed(
                    f"member {member} could not load {list(versions)}: {why}"
                ) from exc

        await asyncio.gather(*(prepare(m, p) for m, p in self.proxies.items()))

    async def members_loaded(self, key: str = "loaded") -> dict[str, Any]:
        """What each member's ``info()`` says under ``key`` (default: the model tags it
        holds in memory; ``runtime_choice``: the runtime per batch size training measured,
        with its timings), or why it did not say."""

        async def ask(proxy: Any) -> Any:
            try:
                return (await asyncio.wait_for(proxy.to_async.info(), 2.0)).get(key)
            except Exception as exc:
                return f"unavailable: {str(exc)[:200] or type(exc).__name__}"

        answers = await asyncio.gather(*(ask(p) for p in self.proxies.values()))
        return dict(zip(self.proxies, answers, strict=True))

    def flushed_read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The rows served so far written (up to 10 s), then ``fn(queries, *args, **kwargs)``
        in the reads' own process (``entry.read_process``); blocking, for a read thread."""
        self.log.flush(10.0)
        result: T = self.queries.call(fn, *args, **kwargs)
        return result

    def guardrail_report(self, since: float | None) -> dict[str, Any]:
        """The report the guardrail judges the candidate by (no drift: it reads none)."""
        return self.report(since, None, None, drift=False)

    def report(
        self, since: float | None, until: float | None, arm: str | None, drift: bool = True
    ) -> dict[str, Any]:
        """The A/B report over the logged predictions in [since, until), optionally one arm;
        ``drift``: with the drift section against the champion's reference.

        Its reads are run again across a lost database connection (``ledger.retry``);
        LedgerUnavailable (503) once ``ledger_retry_s`` is spent."""
        serving = self.serving
        champion = serving.champion
        result: dict[str, Any] = self.flushed_read(
            read_process.report,
            serving.arms,
            since,
            until,
            arm,
            champion.decision,
            champion.predictor.combiner.key,
            candidate=serving.candidate_spec(get_settings().promotion_alpha),
            reference=champion.reference if drift else None,
        )
        return result

    def start(self) -> None:
        """Follow the shared serving state and watch drift (on the worker's event loop)."""
        loop = asyncio.get_running_loop()
        self.following = loop.create_task(self.switch.run())
        if get_ledger_settings().drift_interval_s:
            self.drift_watch = loop.create_task(self._watch_drift())

    def drift_gauges(self) -> None:
        """Judge the lots of the drift window and set the drift gauges (a read thread)."""
        import time

        from ledger.drift import MAX_LIMIT, groups

        reference = self.serving.champion.reference
        if reference is None:
            return
        since = time.time() - get_ledger_settings().drift_window_s
        lots = self.queries.call(
            read_process.on_engine, groups, reference, "lot_id", since, None,
            limit=MAX_LIMIT, what="the drift gauges",
        )["lots"]  # fmt: skip
        worst = dict.fromkeys(reference.names, 0.0)
        for lot in lots:
            for f in lot["features"]:
                worst[f["feature"]] = max(worst[f["feature"]], f["psi"])
        self.metrics.drift(worst, sum(lot["alert"] for lot in lots))

    async def _watch_drift(self) -> None:
        interval = get_ledger_settings().drift_interval_s
        while True:
            try:
                await self.read(self.drift_gauges)
            except Stopping:
                return
            except Exception:  # the gauges keep their last values; the next round retries
                logger.exception("drift gauges not updated")
            await asyncio.sleep(interval)

    def shutdown(self) -> int:
        """Stop following, flush the log: how many rows were lost."""
        for task in (self.following, self.drift_watch):
            if task is not None:
                task.cancel()
        # Uvicorn has drained in-flight requests by now: everything served is queued.
        pending = self.log.pending_rows
        status = self.log.close()
        spilled = self.spool_rows()[0]
        logger.info("prediction log flushed %d rows at shutdown: %d lost, %d waiting in the "
                    "spill", pending, status.lost, spilled)  # fmt: skip
        self._reads.shutdown(wait=False, cancel_futures=True)
        self._feedback.shutdown(wait=False, cancel_futures=True)
        self.queries.close()
        self._probes.shutdown(wait=False, cancel_futures=True)
        return status.lost


_CURRENT: list[Runtime] = []


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` this worker's (one per process)."""
    _CURRENT[:] = [runtime]
    return runtime


def served_schema() -> FeatureSchema | None:
    """The feature schema this worker serves; None before its runtime is built."""
    return _CURRENT[0].schema if _CURRENT else None


def current() -> Runtime:
    """This worker's runtime; RuntimeError before the worker built it."""
    if not _CURRENT:
        raise RuntimeError("the entry worker has not started")
    return _CURRENT[0]
