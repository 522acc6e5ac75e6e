"""The runtime choice table: chosen per batch size, followed per call, and optional."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from models.runtimes import CHOICE_KEY, Choice, RuntimeAdapter, choose

SIZES = (1, 64, 1_000, 10_000)


def test_each_size_goes_to_the_fastest_runtime_that_is_not_within_tolerance() -> None:
    # onnx wins small batches by far, native wins big ones by far: both kept.
    choice = choose({"onnx": (0.01, 0.3, 15.0, 170.0), "native": (7.0, 9.0, 5.0, 30.0)}, SIZES)
    assert choice.rungs == ((1, "onnx"), (253, "native"))  # sqrt(64 * 1000) = 252.98
    assert [choice.runtime_for(n) for n in (1, 64, 252, 253, 1_000, 10_000, 50_000)] == [
        "onnx", "onnx", "onnx", "native", "native", "native", "native",
    ]  # fmt: skip
    assert choice.runtimes == ("onnx", "native")
    assert choice.describe() == "onnx (1-252 rows), native (253+ rows)"


def test_a_runtime_that_wins_by_little_is_not_kept() -> None:
    # onnx wins one row by 14 us (< SLACK_MS) and 64 rows by 10% (< TOLERANCE): one runtime
    # answers everything, and the member holds one library in memory, not two.
    choice = choose({"onnx": (0.010, 0.30, 9.0, 76.0), "tl2": (0.024, 0.33, 5.7, 31.0)}, SIZES)
    assert choice.rungs == ((1, "tl2"),)
    # ... but a clear win at one row keeps it.
    choice = choose({"onnx": (0.010, 0.30, 9.0, 76.0), "tl2": (0.5, 0.33, 5.7, 31.0)}, SIZES)
    assert choice.rungs == ((1, "onnx"), (253, "tl2"))  # both held: each size its fastest


def test_the_table_survives_the_model_metadata() -> None:
    choice = choose({"onnx": (0.01, 0.3, 15.0, 170.0), "native": (7.0, 9.0, 5.0, 30.0)}, SIZES)
    stored = {CHOICE_KEY: choice.to_metadata()}
    again = Choice.from_metadata(stored)
    assert again is not None
    assert again.rungs == choice.rungs and again.timings_ms == choice.timings_ms
    assert Choice.from_metadata({"features": {}}) is None  # a model saved before tables
    with pytest.raises(ValueError, match="runtime_choice"):
        Choice.from_metadata({CHOICE_KEY: {"rungs": [{"runtime": "onnx"}]}})
    with pytest.raises(ValueError, match="starts at 1 row"):
        Choice(((8, "onnx"),))


class _Fake:
    def __init__(self, name: str, calls: list[tuple[str, int]]) -> None:
        self.name, self.calls = name, calls

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append((self.name, len(rows)))
        return np.zeros(len(rows), dtype=np.float32)


def _adapter(metadata: Mapping[str, Any], runtime: str | None = None, missing: str = "") -> Any:
    calls: list[tuple[str, int]] = []
    loaded: list[str] = []

    def loader(name: str) -> Any:
        def load(directory: Path, meta: Mapping[str, Any]) -> _Fake:
            if name == missing:
                raise FileNotFoundError(directory / f"{name}.bin")
            loaded.append(name)
            return _Fake(name, calls)

        return load

    class Adapter(RuntimeAdapter):
        LOADERS: Mapping[str, Any] = {n: loader(n) for n in ("fast", "compiled", "native")}

    info = SimpleNamespace(metadata=metadata)
    model = SimpleNamespace(path="/nowhere", tag="yield-x:1", info=info)
    adapter = Adapter(model, runtime)
    return adapter, calls, loaded


TABLE = {CHOICE_KEY: {"rungs": [{"min_rows": 1, "runtime": "fast"},
                                {"min_rows": 253, "runtime": "compiled"}]}}  # fmt: skip


def test_each_call_goes_to_the_runtime_chosen_for_its_size_and_only_those_load() -> None:
    adapter, calls, loaded = _adapter(TABLE)
    for n in (1, 252, 253, 10_000):
        adapter.predict_proba(np.zeros((n, 6), dtype=np.float32))
    assert calls == [("fast", 1), ("fast", 252), ("compiled", 253), ("compiled", 10_000)]
    assert loaded == ["fast", "compiled"]  # never the native library it does not use
    assert adapter.info()["source"] == "measured"
    assert adapter.runtime == "fast (1-252 rows), compiled (253+ rows)"


def test_a_store_trained_before_the_table_serves_with_the_default_runtime() -> None:
    adapter, calls, loaded = _adapter({"features": {}})
    adapter.predict_proba(np.zeros((10_000, 6), dtype=np.float32))
    assert loaded == ["fast"] and calls == [("fast", 10_000)]
    assert adapter.info()["source"] == "default" and adapter.runtime == "fast"
    # ... and without its export, with the next runtime, as before the table.
    adapter, _, loaded = _adapter({"features": {}}, missing="fast")
    assert loaded == ["compiled"] and adapter.runtime == "compiled"


def test_the_runtimes_setting_overrides_the_table_for_every_size() -> None:
    adapter, calls, loaded = _adapter(TABLE, runtime="native")
    adapter.predict_proba(np.zeros((1, 6), dtype=np.float32))
    adapter.predict_proba(np.zeros((10_000, 6), dtype=np.float32))
    assert loaded == ["native"] and [c[0] for c in calls] == ["native", "native"]
    assert adapter.info()["source"] == "override"


def test_a_chosen_runtime_that_cannot_load_falls_back_and_merges_rungs() -> None:
    adapter, calls, loaded = _adapter(TABLE, missing="compiled")
    assert loaded == ["fast"]  # the runtime already held, not a third library
    adapter.predict_proba(np.zeros((10_000, 6), dtype=np.float32))
    assert calls == [("fast", 10_000)] and adapter.runtime == "fast"


def test_a_native_runtime_the_image_lacks_falls_back_to_the_exports() -> None:
    table = {CHOICE_KEY: {"rungs": [{"min_rows": 1, "runtime": "native"}]}}
    adapter, _, loaded = _adapter(table, missing="native")
    assert loaded == ["fast"] and adapter.runtime == "fast"


def test_an_unknown_runtime_in_the_table_is_refused_by_name() -> None:
    bad = {CHOICE_KEY: {"rungs": [{"min_rows": 1, "runtime": "gpu"}]}}
    with pytest.raises(ValueError, match="no runtime 'gpu'"):
        _adapter(bad)


def test_a_busy_machine_slows_a_sample_not_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each runtime's time is its fastest sample: interference only ever adds time, so a
    runtime slowed in most of its samples is still timed at its own speed (a clock that
    the calls advance stands in for the machine)."""
    import train.runtimes as timing

    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    class Runtime:
        def __init__(self, ms: float, slowed_every: int) -> None:
            self.ms, self.slowed_every, self.calls = ms, slowed_every, 0

        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            self.calls += 1
            busy = self.calls % self.slowed_every != 0  # all but every n-th call slowed 3x
            clock[0] += self.ms * (3 if busy else 1) / 1000
            return np.zeros(len(rows), dtype=np.float32)

    timed = timing.time_runtimes(
        {"a": Runtime(10.0, slowed_every=3), "b": Runtime(12.0, slowed_every=1)},
        np.zeros((4, 2), dtype=np.float32),
        sizes=(1_000,),
    )
    assert timed == {"a": (pytest.approx(10.0),), "b": (pytest.approx(12.0),)}
    assert choose(timed, (1_000,)).describe() == "a"  # with the median, "a" was timed at 30 ms
