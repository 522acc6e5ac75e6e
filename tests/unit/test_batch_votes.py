"""``Batch.vote_dicts``: each row's members that voted, their P(pass) as given."""

from __future__ import annotations

import math

import numpy as np

from ensemble.batch import Batch


def _batch(votes: np.ndarray) -> Batch:
    batch = Batch.empty(votes.shape[1], ["random_forest", "xgboost", "keras"], ["ensemble"])
    batch.votes = votes
    return batch


def test_every_member_voted() -> None:
    votes = np.random.default_rng(0).random((3, 5)).astype(np.float32)
    dicts = _batch(votes).vote_dicts
    assert dicts == [
        {"random_forest": float(votes[0, i]), "xgboost": float(votes[1, i]),
         "keras": float(votes[2, i])}
        for i in range(5)
    ]  # fmt: skip


def test_a_member_without_a_vote_is_absent_from_its_rows_only() -> None:
    votes = np.array([[0.9, 0.8, 0.7], [math.nan, 0.6, 0.5], [math.nan, math.nan, math.nan]])
    assert _batch(votes).vote_dicts == [
        {"random_forest": 0.9},
        {"random_forest": 0.8, "xgboost": 0.6},
        {"random_forest": 0.7, "xgboost": 0.5},
    ]
    assert _batch(np.zeros((3, 0))).vote_dicts == []
