"""The always-valid comparison, read after every batch of labels, as people read the report."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from ledger.sequential import ALPHA, MIN_LABELS, compare

BATCH = 50  # labels per arm between two looks


def _run(
    rng: np.random.Generator, p_base: float, p_cand: float, looks: int, alpha: float = ALPHA
) -> tuple[str, int]:
    """One monitored experiment: the first verdict and the labels (both arms) it took."""
    right = rng.random((2, looks * BATCH))
    k_base = np.cumsum(right[0] < p_base)[BATCH - 1 :: BATCH]
    k_cand = np.cumsum(right[1] < p_cand)[BATCH - 1 :: BATCH]
    for look in range(looks):
        n = (look + 1) * BATCH
        v = compare(int(k_base[look]), n, int(k_cand[look]), n, alpha=alpha, advise=False)
        if v.decision != "keep collecting":
            return v.decision, 2 * n
    return "keep collecting", 2 * looks * BATCH


@pytest.mark.parametrize("alpha", [ALPHA, 0.01])
def test_a_a_runs_read_after_every_batch_rarely_declare_a_winner(alpha: float) -> None:
    """The configured alpha (``YIELD_ENSEMBLE_PROMOTION_ALPHA``) bounds the false verdicts."""
    rng = np.random.default_rng(2026)
    runs = [_run(rng, 0.93, 0.93, looks=200, alpha=alpha) for _ in range(500)]  # 10,000 a side
    false = sum(decision != "keep collecting" for decision, _ in runs) / len(runs)
    promote = sum(decision == "candidate better" for decision, _ in runs) / len(runs)
    print(f"A/A, alpha {alpha}: any verdict {false:.3f}, false promote {promote:.3f} over 500 "
          "runs x 200 looks")  # fmt: skip
    assert promote <= alpha and false <= alpha


def test_a_two_point_gap_reaches_the_right_verdict() -> None:
    rng = np.random.default_rng(7)
    runs = [_run(rng, 0.93, 0.95, looks=600) for _ in range(200)]  # up to 30,000 a side
    better = [labels for decision, labels in runs if decision == "candidate better"]
    assert not any(decision == "candidate worse" for decision, _ in runs)
    assert len(better) >= 0.9 * len(runs)
    print(f"A/B 93% vs 95%: verdict in {len(better)}/200 runs, median labels "
          f"{statistics.median(better):.0f} (both arms)")  # fmt: skip


def test_the_verdict_names_a_worse_candidate_and_advises_while_undecided() -> None:
    worse = compare(9300, 10_000, 9000, 10_000)
    assert worse.decision == "candidate worse" and worse.ci[1] < 0 and worse.p_value < ALPHA
    early = compare(93, 100, 95, 100)
    assert early.decision == "keep collecting" and early.more_labels and early.more_labels > 0
    assert early.ci[0] < early.difference < early.ci[1]
    # Below the minimum each side needs, even a large gap waits.
    assert compare(50, MIN_LABELS - 1, 99, MIN_LABELS - 1).decision == "keep collecting"
    # More labels at the same difference: a narrower interval and fewer still needed.
    later = compare(930, 1000, 950, 1000)
    assert later.ci[1] - later.ci[0] < early.ci[1] - early.ci[0]
    assert later.more_labels is not None and later.more_labels < early.more_labels
    assert compare(0, 0, 1, 1).decision == "keep collecting"
