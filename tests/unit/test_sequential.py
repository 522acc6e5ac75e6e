"""The always-valid comparison, read after every batch of labels, as people read the report."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from ledger.sequential import ALPHA, MIN_LABELS, compare

BATCH = 50  # labels per arm between two looks


def _run(
    rng: np.random.Generator,
    p_base: float,
    p_cand: float,
    looks: int,
    alpha: float = ALPHA,
    base_per_cand: int = 1,
) -> tuple[str, int]:
    """One monitored experiment: the first verdict and the labels (both arms) it took.

    ``base_per_cand``: baseline labels per candidate label (2 for a 30% candidate beside
    a 60% ensemble arm).
    """
    step = BATCH * base_per_cand
    k_base = np.cumsum(rng.random(looks * step) < p_base)[step - 1 :: step]
    k_cand = np.cumsum(rng.random(looks * BATCH) < p_cand)[BATCH - 1 :: BATCH]
    for look in range(looks):
        n = (look + 1) * BATCH
        v = compare(int(k_base[look]), n * base_per_cand, int(k_cand[look]), n, alpha=alpha,
                    advise=False)  # fmt: skip
        if v.decision != "keep collecting":
            return v.decision, n * (1 + base_per_cand)
    return "keep collecting", looks * BATCH * (1 + base_per_cand)


@pytest.mark.parametrize(("alpha", "base_per_cand"), [(ALPHA, 1), (0.01, 1), (ALPHA, 2)])
def test_a_a_runs_read_after_every_batch_rarely_declare_a_winner(
    alpha: float, base_per_cand: int
) -> None:
    """The configured alpha (``YIELD_ENSEMBLE_PROMOTION_ALPHA``) bounds the false verdicts,
    with equal arms and with a 30% candidate beside a 60% ensemble arm."""
    rng = np.random.default_rng(2026)
    runs = [_run(rng, 0.93, 0.93, 200, alpha, base_per_cand) for _ in range(500)]
    false = sum(decision != "keep collecting" for decision, _ in runs) / len(runs)
    promote = sum(decision == "candidate better" for decision, _ in runs) / len(runs)
    print(f"A/A, alpha {alpha}, {base_per_cand}:1: any verdict {false:.3f}, false promote "
          f"{promote:.3f} over 500 runs x 200 looks")  # fmt: skip
    assert promote <= alpha and false <= alpha


@pytest.mark.parametrize("base_per_cand", [1, 2])
def test_a_two_point_gap_reaches_the_right_verdict(base_per_cand: int) -> None:
    rng = np.random.default_rng(7)
    runs = [_run(rng, 0.93, 0.95, 600, base_per_cand=base_per_cand) for _ in range(200)]
    better = [labels for decision, labels in runs if decision == "candidate better"]
    assert not any(decision == "candidate worse" for decision, _ in runs)
    assert len(better) >= 0.9 * len(runs)
    print(f"A/B 93% vs 95%, {base_per_cand}:1: verdict in {len(better)}/200 runs, median "
          f"labels {statistics.median(better):.0f} (both arms)")  # fmt: skip


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
