"""What the entry serves at one serving-state revision, built whole and swapped whole.

A ``Snapshot`` holds everything a request needs to decide which versions answer it:
the arms (with the candidate's), the router over each version's predictor and
decision, and the model tags to log. A request reads the entry's snapshot once and
uses only it, so a promote or rollback that lands mid-request changes nothing for
that request: no request sees half of a change. The cache is shared between
snapshots; its keys hold the model tags and rule of the arm, so an answer of a
version that no longer serves can never be found, and ``Fleet.retire`` drops them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ensemble.arms import Arm, with_candidate
from ensemble.cache import PredictionCache
from ensemble.decision import Decision
from ensemble.drift import Ranges, Reference
from ensemble.predictor import EnsemblePredictor
from ensemble.router import Lane, Router, SplitConfig
from ensemble.schema import FeatureSchema
from ensemble.serving import CANDIDATE, InvalidChange, ServingState, comparison

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Version:
    """One model version as the entry serves it."""

    name: str
    tags: Mapping[str, str]  # member -> model tag
    decision: Decision
    predictor: EnsemblePredictor
    #: What its members were trained on (``ensemble.drift``); None: a model saved without.
    reference: Reference | None = None
    #: The training range of each feature (from the reference, else the schema).
    ranges: Ranges | None = None


@dataclass(frozen=True)
class Loaded:
    """What the model store says about a version: its name, tags, schema and decision."""

    version: str
    tags: Mapping[str, str]
    schema: FeatureSchema
    decision: Decision
    #: How raw inputs map to the features (``ensemble.pipeline.INPUT_KEYS``), if trained so.
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: The reference distributions saved with it (``ensemble.drift``), if any.
    reference: Reference | None = None

    def ranges(self) -> Ranges | None:
        """Each feature's training range: the reference's, else the schema's, else None."""
        return self.reference.ranges() if self.reference else Ranges.of_schema(self.schema)

    def other_features(self, schema: FeatureSchema) -> str | None:
        """Why this version cannot answer requests of ``schema``, or None if it can."""
        if self.schema.names == schema.names:
            return None
        return (
            f"version {self.version} was trained on features {list(self.schema.names)}, the "
            f"service takes {list(schema.names)}; it cannot serve the same requests"
        )


@dataclass(frozen=True)
class Snapshot:
    state: ServingState
    champion: Version
    candidate: Version | None
    arms: tuple[Arm, ...]
    router: Router

    @property
    def model_versions(self) -> Mapping[str, str]:
        """The champion's tags: what serves the ensemble and one-member arms."""
        return self.champion.tags

    @functools.cached_property
    def arm_specs(self) -> dict[str, str]:
        return {arm.name: arm.spec() for arm in self.arms}

    @functools.cached_property
    def arm_versions(self) -> dict[str, Mapping[str, str]]:
        """The tags of arms not served by the champion (the candidate's)."""
        if self.candidate is None:
            return {}
        return {CANDIDATE: self.candidate.tags}

    def tags_of(self, arm: str) -> Mapping[str, str]:
        return self.arm_versions.get(arm, self.champion.tags)

    def candidate_spec(self, alpha: float = 0.05) -> dict[str, Any] | None:
        """What the report compares (``ensemble.serving.comparison``); None without a candidate."""
        if self.candidate is None:
            return None
        return comparison(self.state, self.champion.tags, self.candidate.tags, alpha)

    def versions(self) -> dict[str, dict[str, str]]:
        """Each serving version's tags, by role, for answers and ``/admin/serving``."""
        out = {"champion": dict(self.champion.tags)}
        if self.candidate is not None:
            out[CANDIDATE] = dict(self.candidate.tags)
        return out


class Fleet:
    """Builds snapshots for serving states, keeping one predictor per version it serves.

    ``load(version)`` reads a version from the model store (raising if it is missing);
    ``predictor(version, decision)`` makes its predictor; ``prepare(versions)`` has every
    member load those versions (and drop others) before a snapshot is used.
    """

    def __init__(
        self,
        arms: Sequence[Arm],
        salt: str,
        cache: PredictionCache,
        schema: FeatureSchema,
        load: Callable[[str], Loaded],
        predictor: Callable[[str, Decision], EnsemblePredictor],
        prepare: Callable[[Sequence[str]], Awaitable[object]],
    ) -> None:
        self.arms = tuple(arms)
        self.salt = salt
        self.cache = cache
        self.schema = schema
        self._load = load
        self._predictor = predictor
        self.prepare = prepare
        self._versions: dict[str, Version] = {}

    @property
    def ensemble_share(self) -> float:
        """The share of split keys the configured arms leave the ensemble arm."""
        return self.arms[0].share

    def version(self, name: str) -> Version:
        """``name`` ready to serve; InvalidChange if it is missing or cannot serve here."""
        if name in self._versions:
            return self._versions[name]
        try:
            loaded = self._load(name)
        except Exception as exc:  # missing models, an unreadable decision
            raise InvalidChange(f"version {name}: {exc}") from exc
        wrong = loaded.other_features(self.schema)
        if wrong:
            raise InvalidChange(wrong)
        predictor = self._predictor(name, loaded.decision)
        version = Version(
            name, loaded.tags, loaded.decision, predictor, loaded.reference, loaded.ranges()
        )
        self._versions[name] = version
        return version

    def snapshot(self, state: ServingState) -> Snapshot:
        """Everything serving ``state`` needs; InvalidChange if it cannot serve."""
        champion = self.version(state.champion)
        candidate = None if state.candidate is None else self.version(state.candidate)
        try:
            arms = with_candidate(self.arms, CANDIDATE, state.candidate, state.share)
        except ValueError as exc:
            raise InvalidChange(f"share: {exc}") from None
        lanes = {}
        if candidate is not None:
            lanes[CANDIDATE] = Lane(
                candidate.predictor, candidate.tags, dict(candidate.decision.singles)
            )
        router = Router(
            champion.predictor,
            self.cache,
            SplitConfig(arms, self.salt),
            champion.tags,
            singles=champion.decision.singles,
            lanes=lanes,
        )
        return Snapshot(state, champion, candidate, arms, router)

    def retire(self, serving: Snapshot) -> int:
        """Forget versions ``serving`` does not use and drop their cached answers: how many."""
        for name in set(self._versions) - set(serving.state.versions):
            del self._versions[name]
        return self.cache.retain(serving.router.model_keys())
