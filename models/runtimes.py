"""Which runtime answers a batch of a given size: the choice table training measures.

Training times every runtime of a family that passes parity on the stored model at
a few batch sizes (``SIZES``) and keeps the fewest runtimes that answer each size
about as fast as the fastest (``choose``); the table goes into the model's metadata
(``CHOICE_KEY``). A member loads only the runtimes the table names and sends each
call to the one chosen for its number of rows (``RuntimeAdapter``). A model saved
before the table existed serves with its family's default runtime, as it always did.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

#: Batch sizes (rows) each runtime is timed at.
SIZES = (1, 64, 1_000, 10_000)
#: Model-metadata key of the choice table.
CHOICE_KEY = "runtime_choice"
#: A runtime may answer in the fastest's place when it is at most this much slower ...
TOLERANCE = 1.25
#: ... or at most this many ms slower: well under one member call's own overhead (~1 ms).
SLACK_MS = 0.05
#: A runtime whose P(pass) strays further than this from the native model's is not chosen.
CHOICE_PARITY = 1e-6


class Predictor(Protocol):
    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """P(pass) for ``rows`` (n, k) float32, shaped (n,) float32."""
        ...


#: Loads one runtime of a stored model: (model directory, model metadata) -> Predictor.
Loader = Callable[[Path, Mapping[str, Any]], Predictor]


@dataclass(frozen=True)
class Choice:
    """Rungs ``(min_rows, runtime)`` in ascending ``min_rows`` (the first is 1), and the
    timings (ms per call, one per ``sizes``) and parity (max |dP|) they were chosen from."""

    rungs: tuple[tuple[int, str], ...]
    sizes: tuple[int, ...] = SIZES
    timings_ms: Mapping[str, tuple[float, ...]] | None = None
    parity: Mapping[str, float] | None = None
    rejected: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.rungs or self.rungs[0][0] != 1:
            raise ValueError(f"a choice table starts at 1 row, got {self.rungs}")
        if any(a[0] >= b[0] for a, b in zip(self.rungs, self.rungs[1:], strict=False)):
            raise ValueError(f"a choice table's rungs ascend, got {self.rungs}")

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The runtimes the table names, each once, in rung order."""
        return tuple(dict.fromkeys(runtime for _, runtime in self.rungs))

    def runtime_for(self, n_rows: int) -> str:
        """The runtime chosen for a batch of ``n_rows`` rows."""
        chosen = self.rungs[0][1]
        for min_rows, runtime in self.rungs:
            if n_rows < min_rows:
                break
            chosen = runtime
        return chosen

    def describe(self) -> str:
        """E.g. ``onnx`` or ``onnx (1-7 rows), tl2cgen (8+ rows)``."""
        if len(self.rungs) == 1:
            return self.rungs[0][1]
        ends = [m - 1 for m, _ in self.rungs[1:]]
        parts = [
            f"{runtime} ({start}-{end} rows)" if end is not None else f"{runtime} ({start}+ rows)"
            for (start, runtime), end in zip(self.rungs, [*ends, None], strict=True)
        ]
        return ", ".join(parts)

    def to_metadata(self) -> dict[str, Any]:
        """The table as BentoML model metadata (string keys, lists)."""
        out: dict[str, Any] = {
            "rungs": [{"min_rows": m, "runtime": r} for m, r in self.rungs],
            "sizes": list(self.sizes),
        }
        if self.timings_ms is not None:
            out["timings_ms"] = {r: list(t) for r, t in self.timings_ms.items()}
        if self.parity is not None:
            out["parity_max_abs_diff"] = dict(self.parity)
        if self.rejected:
            out["rejected"] = dict(self.rejected)
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Choice | None:
        """The table in a model's metadata; None for a model saved before tables existed.

        Raises ValueError if a table is there but malformed.
        """
        table = metadata.get(CHOICE_KEY)
        if table is None:
            return None
        try:
            rungs = tuple((int(r["min_rows"]), str(r["runtime"])) for r in table["rungs"])
            timings = table.get("timings_ms")
            return cls(
                rungs,
                tuple(int(s) for s in table.get("sizes", SIZES)),
                {r: tuple(float(v) for v in t) for r, t in timings.items()} if timings else None,
                table.get("parity_max_abs_diff"),
                table.get("rejected"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{CHOICE_KEY} in the model's metadata is malformed: {exc}") from None


def choose(timings_ms: Mapping[str, tuple[float, ...]], sizes: tuple[int, ...] = SIZES) -> Choice:
    """The fewest runtimes that answer each size within ``TOLERANCE`` or ``SLACK_MS`` of
    the fastest, as rungs; each runtime kept costs a member its memory (40-250 MB).

    ``timings_ms``: runtime -> ms per call at each of ``sizes`` (ascending); at least one.
    The rung of size ``s`` starts at the geometric midpoint between ``s`` and the size
    before it.
    """
    if not timings_ms:
        raise ValueError("no runtime to choose from")

    def fastest(among: set[str], i: int) -> str:
        return min(sorted(among), key=lambda r: timings_ms[r][i])

    kept = {fastest(set(timings_ms), i) for i in range(len(sizes))}
    wins = {r: sum(fastest(kept, i) == r for i in range(len(sizes))) for r in kept}
    # Drop the runtime that wins least often while the others stay close enough at its sizes.
    for runtime in sorted(kept, key=lambda r: (wins[r], r)):
        others = kept - {runtime}
        if others and all(
            timings_ms[fastest(others, i)][i]
            <= max(TOLERANCE * timings_ms[runtime][i], timings_ms[runtime][i] + SLACK_MS)
            for i in range(len(sizes))
            if fastest(kept, i) == runtime
        ):
            kept = others
    rungs: list[tuple[int, str]] = []
    for i, size in enumerate(sizes):
        runtime = fastest(kept, i)
        if not rungs or rungs[-1][1] != runtime:
            start = 1 if not rungs else math.ceil(math.sqrt(sizes[i - 1] * size))
            rungs.append((start, runtime))
    return Choice(tuple(rungs), tuple(sizes), dict(timings_ms))


def store_model(directory: Path) -> Any:
    """The BentoML model stored in ``directory`` (``<store>/models/<name>/<version>``), for
    the models saved by BentoML's framework modules before the exports existed."""
    import bentoml

    return bentoml.models.get(f"{directory.parent.name}:{directory.name}")


class RuntimeAdapter:
    """One stored model served by the runtimes its choice table names, each call by the one
    chosen for its number of rows. Subclasses declare ``LOADERS`` (runtime -> Loader, in
    the family's order: default first, native last).

    ``runtime``: one runtime for every batch (the ``YIELD_ENSEMBLE_RUNTIMES`` override);
    None: the model's choice table, or the default runtime for a model saved without one.
    A runtime that cannot load (its export or its library missing: the image has neither
    scikit-learn nor xgboost) falls back to the others in ``LOADERS`` order, with a
    warning, rather than failing to serve.
    """

    LOADERS: Mapping[str, Loader] = {}

    def __init__(self, model: Any, runtime: str | None = None) -> None:
        directory, metadata = Path(model.path), model.info.metadata
        choice = Choice.from_metadata(metadata) if runtime is None else None
        if choice is None:
            self.source = "override" if runtime is not None else "default"
            choice = Choice(((1, runtime or next(iter(self.LOADERS))),))
        else:
            self.source = "measured"
        self._impls: dict[str, Predictor] = {}
        rungs = []
        for min_rows, wanted in choice.rungs:
            rungs.append((min_rows, self._load(wanted, directory, metadata, str(model.tag))))
        merged = [r for i, r in enumerate(rungs) if i == 0 or rungs[i - 1][1] != r[1]]
        self.choice = Choice(tuple(merged), choice.sizes, choice.timings_ms, choice.parity,
                             choice.rejected)  # fmt: skip
        self.runtime = self.choice.describe()
        self._single = self._impls[merged[0][1]] if len(merged) == 1 else None

    def _load(self, wanted: str, directory: Path, metadata: Mapping[str, Any], tag: str) -> str:
        if wanted not in self.LOADERS:
            raise ValueError(f"model {tag}: no runtime {wanted!r}; known: {list(self.LOADERS)}")
        for runtime in [wanted, *(r for r in self.LOADERS if r != wanted)]:
            if runtime in self._impls:
                return runtime
            try:
                self._impls[runtime] = self.LOADERS[runtime](directory, metadata)
                return runtime
            except (FileNotFoundError, ImportError, OSError) as exc:
                logger.warning("model %s cannot serve with %s (%s: %s); trying the next runtime",
                               tag, runtime, type(exc).__name__, exc)  # fmt: skip
        raise RuntimeError(f"model {tag}: no runtime from {wanted!r} on could load")

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """P(pass) for ``rows`` (n, k) float32, shaped (n,) float32, from the chosen runtime."""
        if self._single is not None:
            return self._single.predict_proba(rows)
        return self._impls[self.choice.runtime_for(len(rows))].predict_proba(rows)

    def info(self) -> dict[str, Any]:
        """The choice for ``/admin/serving``: source (measured, override, default) and table."""
        return {"source": self.source, "summary": self.runtime, **self.choice.to_metadata()}
