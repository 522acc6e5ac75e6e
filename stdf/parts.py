"""Parts and their PTR results: the parts-by-tests matrix one STDF file holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: PRR X_COORD / Y_COORD of a part whose position is not known.
NO_COORD = -32768
#: PTR TEST_FLG bits that make RESULT meaningless: 1 RESULT not valid, 4 test not executed.
INVALID_RESULT = 0x02 | 0x10
#: PRR PART_FLG bits: 3 part failed, 4 no pass/fail indication.
PART_FAILED, NO_PASS_FAIL = 0x08, 0x10


@dataclass(frozen=True)
class Test:
    """One parametric test: PTR TEST_NUM, TEST_TXT and UNITS (empty when the file gives none)."""

    number: int
    text: str
    units: str = ""

    @property
    def key(self) -> tuple[int, str]:
        """How tests are told apart: real files reuse a TEST_NUM, or leave it 0."""
        return (self.number, self.text)

    def label(self) -> str:
        """``1000 glxy_OSC [v]`` for messages and the inspect table."""
        units = f" [{self.units}]" if self.units else ""
        return f"{self.number} {self.text}{units}"


@dataclass(frozen=True)
class Parts:
    """The parts of one or more STDF files, the last test of each die, in file order.

    Per part (arrays of length n): ``part_id`` (PRR PART_ID, None when empty), ``lot``
    (MIR LOT_ID), ``wafer`` (WIR WAFER_ID, None outside a wafer), ``head``, ``site``,
    ``x``/``y`` (PRR X_COORD/Y_COORD, -32768 = unknown), ``hard_bin``, ``soft_bin``,
    ``passed`` (PRR PART_FLG bit 3 clear), ``pass_known`` (PART_FLG bit 4 clear),
    ``retests`` (earlier tests of the same die in the file, dropped). ``values`` is
    (n, len(tests)) float32, NaN where the part has no valid result for the test.
    """

    part_id: np.ndarray
    lot: np.ndarray
    wafer: np.ndarray
    head: np.ndarray
    site: np.ndarray
    x: np.ndarray
    y: np.ndarray
    hard_bin: np.ndarray
    soft_bin: np.ndarray
    passed: np.ndarray
    pass_known: np.ndarray
    retests: np.ndarray
    values: np.ndarray
    tests: tuple[Test, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.part_id)

    @property
    def n_retests(self) -> int:
        """Tests of a die that a later test of the same die superseded."""
        return int(self.retests.sum())

    def empty_share(self) -> np.ndarray:
        """(len(tests),) share of parts with no result for each test."""
        if not len(self):
            return np.zeros(len(self.tests))
        return np.asarray(np.isnan(self.values).mean(axis=0))

    def outcomes(self) -> list[dict[str, str]]:
        """``/feedback`` items, ``{"device_id": PART_ID, "actual": "pass"|"fail"}``.

        One per part with a PART_ID and a pass/fail indication. The ledger joins outcomes by
        request id or device id only; a join by lot, wafer and x/y needs a ledger change.
        """
        return [
            {"device_id": str(pid), "actual": "pass" if ok else "fail"}
            for pid, ok, known in zip(self.part_id, self.passed, self.pass_known, strict=True)
            if pid is not None and known
        ]


def concat(many: list[Parts]) -> Parts:
    """Several files' parts as one, tests aligned by (TEST_NUM, TEST_TXT) (NaN where absent)."""
    if len(many) == 1:
        return many[0]
    tests: dict[tuple[int, str], Test] = {}
    for parts in many:
        for test in parts.tests:
            tests.setdefault(test.key, test)
    keys = list(tests)
    blocks = []
    for parts in many:
        block = np.full((len(parts), len(keys)), np.nan, dtype=np.float32)
        where = [keys.index(t.key) for t in parts.tests]
        block[:, where] = parts.values
        blocks.append(block)
    arrays = {
        name: np.concatenate([getattr(p, name) for p in many])
        for name in (
            "part_id", "lot", "wafer", "head", "site", "x", "y", "hard_bin", "soft_bin",
            "passed", "pass_known", "retests",
        )
    }  # fmt: skip
    return Parts(
        **arrays,
        values=np.concatenate(blocks),
        tests=tuple(tests.values()),
        info={"files": [p.info for p in many]},
    )
