"""Which PTR tests a model reads, as which features, and what fills an empty cell; and,
for the ``prior`` spatial feature, the file's own PRR pass/fail as one more column."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stdf.errors import StdfInvalid
from stdf.parts import Parts, Test

#: The shortest list of a file's tests an error shows.
SHOWN_TESTS = 12
#: Metadata key of the map in a saved model's metadata.
METADATA_KEY = "stdf_tests"
#: The column a map with ``prior_fail`` adds after the tests: the file's own PRR fail flag.
PRIOR_FAIL = "sort_fail"


def failed(parts: Parts) -> np.ndarray:
    """(n,) float32: 1 where PRR PART_FLG says the part failed, else 0 (passed, or no
    pass/fail indication: an unknown result counts as no known fail)."""
    return np.asarray(parts.pass_known & ~parts.passed, dtype=np.float32)


@dataclass(frozen=True)
class MappedTest:
    """One test a model reads: the PTR's TEST_NUM, TEST_TXT and UNITS, its feature name and
    ``fill``, the training median that replaces an empty cell ("not tested")."""

    number: int
    text: str
    units: str
    feature: str
    fill: float

    @property
    def key(self) -> tuple[int, str]:
        return (self.number, self.text)


def feature_name(test: Test, taken: set[str]) -> str:
    """``t1000_glxy_ss_ih_glxy_pin2``: TEST_NUM and TEST_TXT in lower snake case, unique."""
    slug = re.sub(r"[^a-z0-9]+", "_", test.text.lower()).strip("_")[:40].rstrip("_")
    base = f"t{test.number}_{slug}" if slug else f"t{test.number}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def matches(test: Test, pattern: str) -> bool:
    """``re:REGEX`` searches TEST_TXT; anything else is a glob (or exact name) on TEST_TXT."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], test.text) is not None
    return fnmatch.fnmatchcase(test.text, pattern)


@dataclass(frozen=True)
class TestMap:
    """Tests -> features. ``rows(parts)`` gives (n, k) float32 in ``feature_names`` order:
    one column per test and, with ``indicators``, then one 0/1 ``<feature>_empty`` column per
    test; with ``prior_fail``, then ``sort_fail`` (:func:`failed`: the file's own PRR
    pass/fail, the input of the ``prior`` spatial feature when the label comes from a later
    insertion). Saved in every member's and the decision's metadata (``to_dict``)."""

    tests: tuple[MappedTest, ...]
    indicators: bool = False
    prior_fail: bool = False

    @classmethod
    def choose(
        cls,
        parts: Parts,
        patterns: Sequence[str] | None = None,
        *,
        only_complete: bool = False,
        indicators: bool = False,
    ) -> TestMap:
        """The tests of ``parts`` that match any of ``patterns`` (all without), fills from
        their medians. ``only_complete`` keeps only the tests every part has a result for.
        Raises ValueError when nothing is left, naming the patterns and the tests."""
        share = parts.empty_share()
        chosen: list[MappedTest] = []
        taken: set[str] = set()
        for j, test in enumerate(parts.tests):
            if patterns and not any(matches(test, p) for p in patterns):
                continue
            if share[j] >= 1.0 or (only_complete and share[j] > 0):
                continue
            fill = float(np.nanmedian(parts.values[:, j]))
            name = feature_name(test, taken)
            chosen.append(MappedTest(test.number, test.text, test.units, name, fill))
        if not chosen:
            what = f"matching {list(patterns)}" if patterns else "at all"
            complete = " that every part ran" if only_complete else ""
            raise ValueError(f"no test{complete} {what}; the files have {_listed(parts.tests)}")
        return cls(tuple(chosen), indicators)

    @property
    def feature_names(self) -> tuple[str, ...]:
        names = tuple(t.feature for t in self.tests)
        empty = tuple(f"{n}_empty" for n in names) if self.indicators else ()
        return names + empty + ((PRIOR_FAIL,) if self.prior_fail else ())

    def rows(self, parts: Parts) -> np.ndarray:
        """(len(parts), len(feature_names)) float32; empty cells hold the training median.

        Raises StdfInvalid (422) listing the tests the model needs that ``parts`` lacks, and
        the tests it has.
        """
        column = {t.key: j for j, t in enumerate(parts.tests)}
        missing = [t for t in self.tests if t.key not in column]
        if missing:
            shown = ", ".join(f"{t.number} {t.text!r}" for t in missing[:SHOWN_TESTS])
            more = f" and {len(missing) - SHOWN_TESTS} more" if len(missing) > SHOWN_TESTS else ""
            raise StdfInvalid(
                f"the file lacks {len(missing)} of the model's {len(self.tests)} tests "
                f"(TEST_NUM TEST_TXT): {shown}{more}; it has {_listed(parts.tests)}"
            )
        picked = parts.values[:, [column[t.key] for t in self.tests]]
        empty = np.isnan(picked)
        fills = np.array([t.fill for t in self.tests], dtype=np.float32)
        filled = np.where(empty, fills, picked).astype(np.float32, copy=False)
        extra = [empty.astype(np.float32)] if self.indicators else []
        extra += [failed(parts)[:, None]] if self.prior_fail else []
        return np.hstack([filled, *extra]) if extra else filled

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in model metadata under ``stdf_tests``."""
        return {
            "indicators": self.indicators,
            "prior_fail": self.prior_fail,
            "tests": [
                {"num": t.number, "txt": t.text, "units": t.units, "feature": t.feature,
                 "fill": t.fill}
                for t in self.tests
            ],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestMap:
        """Inverse of :meth:`to_dict`."""
        tests = tuple(
            MappedTest(int(t["num"]), str(t["txt"]), str(t["units"]), str(t["feature"]),
                       float(t["fill"]))
            for t in data["tests"]
        )  # fmt: skip
        return cls(tests, bool(data.get("indicators", False)), bool(data.get("prior_fail", False)))


def _listed(tests: Sequence[Test]) -> str:
    if not tests:
        return "no PTR tests"
    shown = ", ".join(f"{t.number} {t.text!r}" for t in tests[:SHOWN_TESTS])
    more = f", ... ({len(tests)} in all)" if len(tests) > SHOWN_TESTS else ""
    return f"{len(tests)} test(s): {shown}{more}"
