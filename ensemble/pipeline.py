"""The prediction pipeline: every predict route is a decoder and an encoder around it.

decode (a ``Format``'s, from the request body) -> validate (the decoder's own checks)
-> derive (a spatial model's features from the wafer, ``ensemble.spatial``)
-> route (the serving snapshot's router: arms, cache, members, combiner) -> a ``Batch``
-> record (``Evidence``: the ledger and the metrics) -> encode (the ``Format`` again).

No BentoML, no database, no HTTP: the entry service hands in what serves now and where
the evidence goes, so the whole path runs in-process in a unit test with fake members
(``tests/unit/test_pipeline.py``). A new input format is a new ``Format`` (its decoder
and encoder) and its route declaration; nothing here changes.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from ensemble.admission import Admission
from ensemble.batch import Batch
from ensemble.drift import OutOfRange, out_of_range
from ensemble.fleet import Snapshot
from ensemble.responses import Ids, Prediction
from ensemble.schema import FeatureSchema
from ensemble.spatial import METADATA_KEY as SPATIAL_KEY
from ensemble.spatial import Spec, derive

#: One line per request.
request_log = logging.getLogger("yield_ensemble.requests")
#: The identifier columns of every decoded request, in split-key order.
ID_FIELDS = ("device_id", "wafer_id", "lot_id")


@dataclass(frozen=True)
class Dies:
    """A decoded request: what every decoder hands the pipeline.

    ``rows`` is (n, k) float32 in the schema's order; ``ids`` holds ``device_id``,
    ``wafer_id`` and ``lot_id`` as columns of n entries (None where not given);
    ``positions`` the (x, y) of each die on its wafer, when the input has them.
    """

    rows: np.ndarray
    ids: Mapping[str, Sequence[str | None]]
    positions: Sequence[tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def device_ids(self) -> list[str | None]:
        return list(self.ids["device_id"])

    @property
    def split_keys(self) -> list[str | None]:
        """Per die the first of device_id, wafer_id, lot_id given (the sticky A/B key)."""
        d, w, lot = (self.ids[f] for f in ID_FIELDS)
        return [
            a if a is not None else b if b is not None else c
            for a, b, c in zip(d, w, lot, strict=True)
        ]

    def records(self) -> list[Ids]:
        """Per die its identifiers as a dict (the record-shaped answers)."""
        d, w, lot = (self.ids[f] for f in ID_FIELDS)
        return [
            {"device_id": a, "wafer_id": b, "lot_id": c} for a, b, c in zip(d, w, lot, strict=True)
        ]

    @classmethod
    def of_records(cls, rows: np.ndarray, ids: Sequence[Ids]) -> Dies:
        """Dies from one identifier dict per row."""
        return cls(rows, {f: [i.get(f) for i in ids] for f in ID_FIELDS})


#: Keys of a saved model's metadata that say how raw inputs map to its features (a
#: tester file's PTR tests, ``stdf.testmap``; the derived spatial features,
#: ``ensemble.spatial``); decoders read them from ``Limits.inputs``.
INPUT_KEYS = ("stdf_tests", SPATIAL_KEY)


@dataclass(frozen=True)
class Limits:
    """What a decoder checks a request against: the served schema, the most dies, the
    largest body (bytes, as it decompresses too), and the served model's input maps."""

    schema: FeatureSchema
    max_dies: int
    max_bytes: int = 32 << 20
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def spatial(self) -> Spec | None:
        """The derived spatial features the served model needs, if any."""
        spec = self.inputs.get(SPATIAL_KEY)
        return None if spec is None else Spec.from_dict(spec)

    @functools.cached_property
    def raw(self) -> Limits:
        """The limits a decoder checks against: a spatial model's requests send only the
        raw features (the first of the served schema); the derived ones are computed."""
        if self.spatial is None:
            return self
        return replace(self, schema=self.spatial.raw_schema(self.schema))

    def derive(self, dies: Dies) -> Dies:
        """``dies`` with the served model's derived features appended (``ensemble.spatial``);
        InvalidInput (422) when it needs die positions the request lacks."""
        if self.spatial is None:
            return dies
        keys = list(zip(dies.ids["lot_id"], dies.ids["wafer_id"], strict=True))
        return replace(dies, rows=derive(self.spatial, dies.rows, dies.positions, keys))


@dataclass(frozen=True)
class Served:
    """One request's predictions, as recorded and encoded.

    ``request_ids`` has one id per die (the request's own for a single die, else
    ``<request_id>.<i>``); ``tally`` is what the evidence counted (arms, fails, cached,
    degraded); ``serving`` the snapshot that answered (read once per request).
    """

    request_id: str
    request_ids: list[str]
    dies: Dies
    batch: Batch
    serving: Snapshot
    started: float
    latency_ms: float = 0.0
    tally: dict[str, Any] = field(default_factory=dict)
    out_of_range: OutOfRange | None = None

    @property
    def flags(self) -> OutOfRange:
        """``out_of_range``, or no flags when none were computed."""
        if self.out_of_range is not None:
            return self.out_of_range
        return out_of_range(self.dies.rows, None)

    @property
    def degraded(self) -> bool:
        return bool(self.tally.get("degraded", 0))

    @functools.cached_property
    def results(self) -> list[Prediction]:
        """One ``Prediction`` per die, made once for the answer and the log line alike."""
        return self.batch.records()

    @functools.cached_property
    def id_records(self) -> list[Ids]:
        """Per die its identifiers as a dict, made once (``Dies.records``)."""
        return self.dies.records()

    def arm_versions(self) -> dict[str, dict[str, str]]:
        """The model versions of each arm that answered (a candidate's differ)."""
        batch = self.batch
        return {
            batch.arms[a]: dict(self.serving.tags_of(batch.arms[a])) for a in np.unique(batch.arm)
        }


class Evidence(Protocol):
    """Where served predictions go: the ledger and the metrics (``entry.evidence``)."""

    def check_room(self) -> None:
        """Raise ``ensemble.errors.LogBackedUp`` when no prediction may be served now."""

    def record(self, served: Served) -> dict[str, Any]:
        """Log and count ``served``; return the tally (arms, fails, cached, degraded)."""

    def room(self, n: int, in_flight: int) -> bool:
        """Whether ``n`` more rows fit beside ``in_flight`` admitted but not yet recorded,
        with a reserve left for small requests (anything fits an empty, idle log)."""


@dataclass(frozen=True)
class Decoded:
    """A decoder's result: the dies and whatever its encoder needs (e.g. the answer shape)."""

    dies: Dies
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    """An input format: how a request body becomes dies and the answer is made.

    ``decode(body, limits)`` raises ``ensemble.errors.ServiceError`` (a 4xx naming the
    field) on bad input; ``encode(served, options)`` makes the answer's JSON body;
    ``log(served)`` the request log line (message, fields). ``per_die_ids``: every die
    gets ``<request_id>.<i>`` (False: the one die gets the request's id).
    """

    endpoint: str
    decode: Callable[[Any, Limits], Decoded]
    encode: Callable[[Served, Mapping[str, Any]], dict[str, Any]]
    log: Callable[[Served], tuple[str, dict[str, Any]]]
    per_die_ids: bool = True


class Pipeline:
    """decode -> route -> record -> encode, for any ``Format``.

    ``serving()`` returns what serves now (``ensemble.switchboard``); ``evidence``
    records what was served; ``limits()`` the checks decoders apply.
    """

    def __init__(
        self,
        serving: Callable[[], Snapshot],
        evidence: Evidence,
        limits: Callable[[], Limits],
        admission: Admission | None = None,
    ) -> None:
        self.serving = serving
        self.evidence = evidence
        self.limits = limits
        self.admission = admission or Admission(max_bulk_dies=10**9, wait_s=0)

    async def run(self, fmt: Format, request_id: str, body: Any) -> dict[str, Any]:
        """The answer body to ``body`` in ``fmt``; raises ServiceError on a refusal.

        Nothing is recorded unless every die was answered; a refused request costs no
        member call. A big request waits its turn (``ensemble.admission``) before it is
        routed, or is refused with 429.
        """
        started = time.perf_counter()
        self.evidence.check_room()
        limits = self.limits()
        decoded = fmt.decode(body, limits.raw)
        dies = limits.derive(decoded.dies)
        async with self.admission.admit(len(dies), self.evidence.room):
            self.evidence.check_room()
            serving = self.serving()
            served = await self.predict(request_id, dies, serving, started, fmt.per_die_ids)
        message, fields = fmt.log(served)
        if len(served.flags.dies):
            fields = {**fields, "out_of_range": served.flags.summary()}
        request_log.info(message, extra={"fields": fields})
        return fmt.encode(served, decoded.options)

    async def predict(
        self,
        request_id: str,
        dies: Dies,
        serving: Snapshot,
        started: float,
        per_die_ids: bool = True,
    ) -> Served:
        """Route ``dies`` through ``serving`` and record the answers, with each die's
        features outside the champion's training range flagged (not changing a decision)."""
        batch = await serving.router.predict_batch(dies.rows, dies.split_keys)
        flags = out_of_range(dies.rows, serving.champion.ranges)
        n = len(batch)
        request_ids = [f"{request_id}.{i}" for i in range(n)] if per_die_ids else [request_id] * n
        latency_ms = (time.perf_counter() - started) * 1000
        served = Served(request_id, request_ids, dies, batch, serving, started, latency_ms,
                        out_of_range=flags)  # fmt: skip
        return replace(served, tally=self.evidence.record(served))
