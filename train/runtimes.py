"""Time each runtime of a saved member at a few batch sizes and choose per size.

Run by ``train.fit.save`` on the model's files before they go into the store: each
runtime the family's adapter declares (``models.runtimes.RuntimeAdapter.LOADERS``) is
loaded from those files, checked against the native model's P(pass) on the held-out
rows (``CHOICE_PARITY``), and timed single-threaded on held-out rows tiled to each of
``SIZES``, interleaved so a busy machine slows all of them alike (the fastest sample is
kept). The choice table (``models.runtimes.choose``) goes into the model's metadata.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.runtimes import CHOICE_PARITY, SIZES, Choice, Predictor, RuntimeAdapter, choose

#: Timed samples per runtime and size; the fastest is kept: another process on the machine
#: only ever adds time to a sample (with the median, two busy cores flipped the XGBoost
#: choice at 10,000 rows in one of three runs, keeping a second runtime of +89 MB).
REPEATS = 7
#: Each sample repeats the call until it lasts about this long (s), at most 1,000 calls.
SAMPLE_S = 0.005


def measure(
    adapter: Any,
    directory: Path,
    metadata: Mapping[str, Any],
    x: np.ndarray,
    p_native: np.ndarray,
    say: Callable[[str], None] = print,
) -> Choice | None:
    """The choice table of the model saved in ``directory``, or None when the family's
    adapter is not a ``RuntimeAdapter`` (it serves one runtime) or no runtime passes.

    ``x``: held-out rows (n, k) float32; ``p_native``: the native model's P(pass) on them.
    """
    if not (isinstance(adapter, type) and issubclass(adapter, RuntimeAdapter)):
        return None
    impls: dict[str, Predictor] = {}
    parity: dict[str, float] = {}
    rejected: dict[str, str] = {}
    reference = np.asarray(p_native, dtype=np.float64).reshape(-1)
    for runtime, loader in adapter.LOADERS.items():
        try:
            impl = loader(directory, metadata)
        except (FileNotFoundError, ImportError, OSError) as exc:
            rejected[runtime] = f"not available: {type(exc).__name__}: {str(exc)[:120]}"
            continue
        p = np.asarray(impl.predict_proba(x), dtype=np.float64).reshape(-1)
        parity[runtime] = float(np.max(np.abs(p - reference))) if len(p) else 0.0
        if parity[runtime] > CHOICE_PARITY:
            rejected[runtime] = f"max |dP| {parity[runtime]:.2e} > {CHOICE_PARITY:g}"
            continue
        impls[runtime] = impl
    for runtime, why in rejected.items():
        say(f"  {runtime}: not chosen ({why})")
    if not impls:
        return None
    timings = time_runtimes(impls, x)
    choice = replace(choose(timings), parity=parity, rejected=rejected)
    say(
        "  ms per call at "
        + "/".join(f"{s:,}" for s in SIZES)
        + " rows: "
        + "; ".join(f"{r} " + "/".join(f"{t:.3g}" for t in ts) for r, ts in timings.items())
        + f" -> {choice.describe()}"
    )
    return choice


def time_runtimes(
    impls: Mapping[str, Predictor], x: np.ndarray, sizes: tuple[int, ...] = SIZES
) -> dict[str, tuple[float, ...]]:
    """Each runtime's ms per call at each size (the fastest of ``REPEATS`` samples), on
    ``x`` tiled to that size."""
    out: dict[str, list[float]] = {runtime: [] for runtime in impls}
    for size in sizes:
        rows = np.ascontiguousarray(np.resize(x, (size, x.shape[1])), dtype=np.float32)
        loops = {}
        for runtime, impl in impls.items():
            t0 = time.perf_counter()
            impl.predict_proba(rows)  # warm-up, and a first guess of its time
            loops[runtime] = int(min(1000, max(1, SAMPLE_S / (time.perf_counter() - t0))))
        samples: dict[str, list[float]] = {runtime: [] for runtime in impls}
        for _ in range(REPEATS):
            for runtime, impl in impls.items():
                t0 = time.perf_counter()
                for _ in range(loops[runtime]):
                    impl.predict_proba(rows)
                samples[runtime].append((time.perf_counter() - t0) / loops[runtime])
        for runtime, s in samples.items():
            out[runtime].append(1000 * min(s))
    return {runtime: tuple(t) for runtime, t in out.items()}
