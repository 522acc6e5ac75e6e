"""Route rows to an arm, answer from the cache where possible, ask members for the rest."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ensemble.arms import ENSEMBLE, Arm, assign_arm
from ensemble.batch import Batch, CachedRow
from ensemble.cache import PredictionCache, row_keys
from ensemble.combiners import Single
from ensemble.predictor import EnsemblePredictor, EnsembleResult


@dataclass(frozen=True)
class Lane:
    """What answers an arm: a model version's predictor, its tags and its one-member rules."""

    predictor: EnsemblePredictor
    model_versions: Mapping[str, str]
    singles: Mapping[str, Single]


def _every_single(lane: Lane, members: Sequence[str]) -> Lane:
    """``lane`` with a rule for every member (unfitted, at 0.5, where it has none)."""
    singles = {m: lane.singles.get(m, Single(member=m)) for m in members}
    return replace(lane, singles=singles)


def members_split(votes: np.ndarray, members: Sequence[str], singles: Mapping[str, Single]
                  ) -> np.ndarray:  # fmt: skip
    """Rows where the members that voted did not all say the same, each deciding alone at
    its own threshold (``singles``), as the report's ``agreement`` counts them.

    ``votes`` is (members, n) P(pass), NaN where a member gave none.
    """
    voted = ~np.isnan(votes)
    said_pass = np.zeros(votes.shape[1], dtype=np.int64)
    for i, member in enumerate(members):
        said_pass += singles[member].combine({member: votes[i]})[0] & voted[i]
    return np.asarray((said_pass > 0) & (said_pass < voted.sum(axis=0)))


@dataclass(frozen=True)
class SplitConfig:
    """The arms (``ensemble.arms.build_arms``) and the salt of the sticky split."""

    arms: tuple[Arm, ...]
    salt: str


class Router:
    """The request path below validation: A/B split, cache, members, vote.

    ``predict_batch`` returns the results as arrays (``ensemble.batch.Batch``);
    ``Batch.records`` makes them one ``Prediction`` dict per row.
    """

    def __init__(
        self,
        predictor: EnsemblePredictor,
        cache: PredictionCache,
        split: SplitConfig,
        model_versions: Mapping[str, str],
        rng: random.Random | None = None,
        singles: Mapping[str, Single] | None = None,
        lanes: Mapping[str, Lane] | None = None,
    ) -> None:
        """``singles``: each member's rule on a one-member arm (default: unfitted, at 0.5).

        ``predictor``, ``model_versions`` and ``singles`` answer every arm but those
        ``lanes`` names (a candidate version's arm).
        """
        for arm in split.arms:
            if arm.single is not None and arm.single not in predictor.coalescers:
                raise ValueError(f"arm {arm.name}: '{arm.single}' is not a member")
        self.cache = cache
        self.split = split
        self._rng = rng or random.Random()
        self.arms = {arm.name: arm for arm in split.arms}
        self.members = tuple(predictor.coalescers)
        self._names = tuple(self.arms)
        self._position = {name: i for i, name in enumerate(self._names)}
        champion = Lane(predictor, model_versions, dict(singles or {}))
        self.lanes = {
            arm.name: _every_single((lanes or {}).get(arm.name, champion), self.members)
            for arm in split.arms
        }
        # What decides an answer: the model versions and how their votes are combined.
        self._model_keys = {
            arm.name: (
                (*sorted(lane.model_versions.values()), lane.predictor.combiner.key)
                if arm.single is None
                else (lane.model_versions[arm.single], lane.singles[arm.single].key)
            )
            for arm, lane in zip(split.arms, self.lanes.values(), strict=True)
        }

    def arm_for(self, key: str | None) -> str:
        return assign_arm(key, self.split.arms, self.split.salt, self._rng)

    async def predict_batch(self, rows: np.ndarray, keys: Sequence[str | None]) -> Batch:
        """Results for ``rows`` (n, k) as arrays, in order; ``keys``: sticky split keys."""
        n = len(rows)
        position = self._position
        arm = np.fromiter((position[self.arm_for(k)] for k in keys), dtype=np.int64, count=n)
        out = Batch.empty(n, self.members, self._names)
        out.assigned = arm  # kept apart from the arm that serves, which may differ
        jobs = []
        for i, name in enumerate(self._names):
            idx = np.flatnonzero(arm == i)
            if len(idx):
                jobs.append(self._predict_arm(name, rows[idx], idx, out))
        await asyncio.gather(*jobs)
        return out

    def model_keys(self) -> set[Hashable]:
        """What identifies the answers of every arm: cache keys of other ones are stale."""
        return set(self._model_keys.values())

    def _rule(self, arm: str) -> tuple[str, float]:
        single = self.arms[arm].single
        lane = self.lanes[arm]
        rule = lane.predictor.combiner if single is None else lane.singles[single]
        return rule.key, rule.threshold

    async def _predict_arm(self, arm: str, rows: np.ndarray, idx: np.ndarray, out: Batch) -> None:
        cache_keys = row_keys(rows, arm, self._model_keys[arm])
        found = self.cache.get_many(cache_keys)
        hits = [(j, h) for j, h in enumerate(found) if h is not None]
        if hits:
            out.put(idx[[j for j, _ in hits]], self._cached(arm, [h for _, h in hits]))
        miss = [j for j, h in enumerate(found) if h is None]
        if not miss:
            return
        fresh = await self._ask(arm, rows[miss])
        out.put(idx[miss], fresh)
        # Only whole answers of this very arm are kept (not degraded ones, and not rows
        # the ensemble answered because the arm's member could not).
        keep = np.flatnonzero(~fresh.degraded & (fresh.arm == self._position[arm]))
        if len(keep):
            answers = fresh.cache_rows()
            self.cache.put_many([cache_keys[miss[j]] for j in keep], [answers[j] for j in keep])

    def _cached(self, arm: str, found: list[CachedRow]) -> Batch:
        part = Batch.empty(len(found), self.members, self._names)
        part.arm[:] = self._position[arm]
        part.passed[:] = [row[0] for row in found]
        part.probability[:] = [row[1] for row in found]
        part.votes[:] = np.array([row[2] for row in found], dtype=np.float64).T
        part.split[:] = [row[3] for row in found]
        part.cached[:] = True
        part.rules[arm] = self._rule(arm)
        return part

    async def _ask(self, arm: str, rows: np.ndarray) -> Batch:
        member = self.arms[arm].single
        lane = self.lanes[arm]
        if member is not None:
            p, _ = await lane.predictor.ask(member, rows)
            if p is not None:
                rule = lane.singles[member]
                part = Batch.empty(len(rows), self.members, self._names)
                part.arm[:] = self._position[arm]
                part.passed[:], part.probability[:] = rule.combine({member: p})
                part.votes[self.members.index(member)] = p
                part.rules[arm] = (rule.key, rule.threshold)
                lost = np.flatnonzero(np.isnan(p))
                if len(lost):
                    # Rows the member gave no probability for go to the ensemble, as below.
                    part.put(lost, await self._ask(ENSEMBLE, rows[lost]))
                return part
            # The arm's member is down: answer with the ensemble rather than not at
            # all; the response says so (arm "ensemble", degraded, member missing).
            return self._ensemble(ENSEMBLE, await self.lanes[ENSEMBLE].predictor.predict(rows))
        return self._ensemble(arm, await lane.predictor.predict(rows))

    def _ensemble(self, arm: str, result: EnsembleResult) -> Batch:
        """An ensemble's answer on ``arm`` (the ensemble arm, or a candidate version's)."""
        part = Batch.empty(len(result.passed), self.members, self._names)
        part.arm[:] = self._position[arm]
        part.passed[:] = result.passed
        part.probability[:] = result.probability
        for m, p in result.p_pass.items():
            part.votes[self.members.index(m)] = p
        part.split[:] = members_split(part.votes, self.members, self.lanes[arm].singles)
        # A member missing from the call, or with NaN for a row, leaves NaN there.
        part.degraded[:] = np.isnan(part.votes).any(axis=0)
        if part.degraded.any():
            missing = result.missing_at()
            part.missing = {int(i): missing[i] for i in np.flatnonzero(part.degraded)}
        part.rules[arm] = self._rule(arm)
        return part
