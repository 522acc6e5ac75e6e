from __future__ import annotations

import numpy as np
import pytest

from ensemble.voting import majority_vote


def test_two_of_three_pass_votes_pass() -> None:
    passed, probability = majority_vote(
        {"a": np.array([0.9, 0.2]), "b": np.array([0.6, 0.4]), "c": np.array([0.1, 0.7])}
    )
    assert passed.tolist() == [True, False]
    assert probability == pytest.approx([(0.9 + 0.6 + 0.1) / 3, (0.2 + 0.4 + 0.7) / 3])


def test_threshold_is_inclusive() -> None:
    passed, _ = majority_vote({"a": np.array([0.5]), "b": np.array([0.5]), "c": np.array([0.0])})
    assert passed.tolist() == [True]


def test_majority_overrides_mean_probability() -> None:
    # Two narrow passes beat one confident fail even though the mean is below 0.5.
    passed, probability = majority_vote(
        {"a": np.array([0.51]), "b": np.array([0.51]), "c": np.array([0.0])}
    )
    assert passed.tolist() == [True]
    assert probability[0] < 0.5


def test_two_member_tie_goes_to_mean_probability() -> None:
    passed, _ = majority_vote({"a": np.array([0.9, 0.6]), "b": np.array([0.3, 0.1])})
    assert passed.tolist() == [True, False]


def test_no_members_is_an_error() -> None:
    with pytest.raises(ValueError):
        majority_vote({})


def test_soft_vote_follows_the_mean_and_skips_missing_members() -> None:
    from ensemble.combiners import SoftVote, combiner

    p = {"a": np.array([0.9, 0.9]), "b": np.array([0.3, np.nan]), "c": np.array([0.3, 0.05])}
    passed, probability = SoftVote().combine(p)
    assert passed.tolist() == [True, False]
    assert probability == pytest.approx([0.5, 0.475])
    assert combiner("soft").key == "soft:1" and combiner("majority").key == "majority:1"
    with pytest.raises(KeyError, match="known"):
        combiner("bagged")
