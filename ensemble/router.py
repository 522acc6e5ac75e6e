"""Route rows to an arm, answer from the cache where possible, ask members for the rest."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ensemble.arms import ENSEMBLE, Arm, assign_arm
from ensemble.cache import PredictionCache, row_keys
from ensemble.combiners import Single
from ensemble.predictor import EnsemblePredictor, EnsembleResult
from ensemble.responses import Prediction

#: The unfitted one-member rule: the member's P(pass) against 0.5.
SINGLE = Single().key


@dataclass(frozen=True)
class SplitConfig:
    """The arms (``ensemble.arms.build_arms``) and the salt of the sticky split."""

    arms: tuple[Arm, ...]
    salt: str


class Router:
    """The request path below validation: A/B split, cache, members, vote.

    Returns one result dict per row: ``prediction``, ``probability``, ``votes``,
    ``arm``, ``cached``, ``degraded``, ``missing_members``.
    """

    def __init__(
        self,
        predictor: EnsemblePredictor,
        cache: PredictionCache,
        split: SplitConfig,
        model_versions: Mapping[str, str],
        rng: random.Random | None = None,
        singles: Mapping[str, Single] | None = None,
    ) -> None:
        """``singles``: each member's rule on a one-member arm (default: unfitted, at 0.5)."""
        for arm in split.arms:
            if arm.single is not None and arm.single not in predictor.coalescers:
                raise ValueError(f"arm {arm.name}: '{arm.single}' is not a member")
        self.predictor = predictor
        self.cache = cache
        self.split = split
        self._rng = rng or random.Random()
        self.arms = {arm.name: arm for arm in split.arms}
        self.singles = {
            arm.single: (singles or {}).get(arm.single, Single(member=arm.single))
            for arm in split.arms
            if arm.single is not None
        }
        # What decides an answer: the model versions and how their votes are combined.
        self._model_keys = {
            arm.name: (
                (*sorted(model_versions.values()), predictor.combiner.key)
                if arm.single is None
                else (model_versions[arm.single], self.singles[arm.single].key)
            )
            for arm in split.arms
        }

    def arm_for(self, key: str | None) -> str:
        return assign_arm(key, self.split.arms, self.split.salt, self._rng)

    async def predict(self, rows: np.ndarray, keys: list[str | None]) -> list[Prediction]:
        """Results for ``rows`` (n, k), in order; ``keys`` are the sticky split keys."""
        arms = [self.arm_for(k) for k in keys]
        results: list[Prediction | None] = [None] * len(rows)
        jobs = []
        for arm in self.arms:
            idx = [i for i, a in enumerate(arms) if a == arm]
            if idx:
                jobs.append(self._predict_arm(arm, rows[idx], idx, results))
        await asyncio.gather(*jobs)
        return results  # type: ignore[return-value]

    async def _predict_arm(
        self, arm: str, rows: np.ndarray, idx: list[int], out: list[Prediction | None]
    ) -> None:
        cache_keys = row_keys(rows, arm, self._model_keys[arm])
        for i, hit in zip(idx, self.cache.get_many(cache_keys), strict=True):
            if hit is not None:
                out[i] = {**hit, "cached": True}
        miss = [j for j, i in enumerate(idx) if out[i] is None]
        if not miss:
            return
        fresh = await self._ask(arm, rows[miss])
        self.cache.put_many(
            [cache_keys[j] for j, r in zip(miss, fresh, strict=True) if not r["degraded"]],
            [r for r in fresh if not r["degraded"]],
        )
        for j, r in zip(miss, fresh, strict=True):
            out[idx[j]] = {**r, "cached": False}

    async def _ask(self, arm: str, rows: np.ndarray) -> list[Prediction]:
        member = self.arms[arm].single
        if member is not None:
            p, _ = await self.predictor.ask(member, rows)
            if p is not None:
                answered = ~np.isnan(p)
                rule = self.singles[member]
                passed, probability = rule.combine({member: p})
                out: list[Prediction] = [
                    {
                        "prediction": "pass" if ok else "fail",
                        "probability": q,
                        "votes": {member: v},
                        "arm": arm,
                        "combiner": rule.key,
                        "threshold": rule.threshold,
                        "degraded": False,
                        "missing_members": (),
                        "cached": False,
                    }
                    for ok, q, v in zip(
                        passed.tolist(), probability.tolist(), p.tolist(), strict=True
                    )
                ]
                if answered.all():
                    return out
                # Rows the challenger gave no probability for go to the ensemble, as below.
                lost = np.flatnonzero(~answered)
                for i, r in zip(lost, await self._ask(ENSEMBLE, rows[lost]), strict=True):
                    out[i] = r
                return out
            # The arm's member is down: answer with the ensemble rather than not at
            # all; the response says so (arm "ensemble", degraded, member missing).
        combiner = self.predictor.combiner
        return _ensemble_rows(await self.predictor.predict(rows), combiner.key, combiner.threshold)


def _ensemble_rows(result: EnsembleResult, combiner: str, threshold: float) -> list[Prediction]:
    passed = result.passed.tolist()
    probability = result.probability.tolist()
    votes = {m: p.tolist() for m, p in result.p_pass.items()}
    # A tuple of str and a dict of floats: the cached result dicts stay out of the
    # garbage collector's reach (gen2 passes over 100,000 cached dicts cost ~60 ms).
    missing = result.missing_at()
    return [
        {
            "prediction": "pass" if passed[i] else "fail",
            "probability": probability[i],
            "votes": {m: v[i] for m, v in votes.items() if v[i] == v[i]},  # NaN: no vote
            "arm": ENSEMBLE,
            "combiner": combiner,
            "threshold": threshold,
            "degraded": bool(missing[i]),
            "missing_members": missing[i],
            "cached": False,
        }
        for i in range(len(passed))
    ]
