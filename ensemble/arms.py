"""Arms as data: who serves a sticky share of traffic, for A/B comparison.

An arm is a name, what serves it and its share. ``ensemble`` is always there and takes
the share the others leave; every other arm is served by one member alone (a
challenger). Assignment is sticky: the same key lands in the same arm in every
worker, replica and restart, because it is a pure function of (key, salt). Arms
take consecutive slices of [0, 1) in the order they are listed, so adding an arm at
the end moves no device that was already assigned to an earlier one.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

ENSEMBLE = "ensemble"
CHALLENGER = "challenger"
#: What an arm name looks like.
ARM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,15}")


@dataclass(frozen=True)
class Arm:
    """``serves``: the member that answers alone, or ``ensemble`` for the combined vote."""

    name: str
    serves: str
    share: float
    version: str | None = None  # the model version serving it; None: the champion

    @property
    def single(self) -> str | None:
        """The member answering alone on this arm, or None for the ensemble."""
        return None if self.serves == ENSEMBLE else self.serves

    def spec(self) -> str:
        """What the arm was, as logged with each of its predictions."""
        spec: dict[str, object] = {"serves": self.serves, "share": self.share}
        if self.version is not None:
            spec["version"] = self.version
        return json.dumps(spec, sort_keys=True)


def bucket(key: str, salt: str) -> float:
    """A stable uniform number in [0, 1) for ``key``: the first 8 bytes of SHA-256(salt:key)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def build_arms(others: Sequence[Arm], members: Sequence[str]) -> tuple[Arm, ...]:
    """The ensemble arm (the remaining share) followed by ``others``; ValueError if invalid."""
    names = [a.name for a in others]
    if ENSEMBLE in names:
        raise ValueError(f"the '{ENSEMBLE}' arm takes the share the others leave; do not list it")
    if len(set(names)) != len(names):
        raise ValueError(f"an arm name appears twice in {names}")
    for arm in others:
        if not ARM_NAME.fullmatch(arm.name):
            raise ValueError(f"arm name {arm.name!r}: 1-16 of a-z 0-9 _ -, starting a-z")
        if arm.serves not in members:
            raise ValueError(f"arm {arm.name}: no member {arm.serves!r} (members: {list(members)})")
        if not 0 <= arm.share <= 1:
            raise ValueError(f"arm {arm.name}: share {arm.share} is not within [0, 1]")
    rest = 1.0 - sum(a.share for a in others)
    if rest < -1e-9:
        raise ValueError(f"arm shares add up to {1 - rest:g}, more than 1")
    return (Arm(ENSEMBLE, ENSEMBLE, max(rest, 0.0)), *others)


def with_candidate(
    arms: Sequence[Arm], name: str, version: str | None, share: float
) -> tuple[Arm, ...]:
    """``arms`` with the ``name`` arm (the ``version`` ensemble) last, taking ``share`` from
    the ensemble arm; unchanged when ``version`` is None. ValueError if the share is more
    than the ensemble arm has.

    Last, so that setting or resizing a candidate moves no device of the other arms.
    """
    if version is None:
        return tuple(arms)
    ensemble, *others = arms
    if share > ensemble.share + 1e-9:
        raise ValueError(f"share {share:g} is more than the {ensemble.share:g} the ensemble has")
    rest = Arm(ENSEMBLE, ENSEMBLE, max(ensemble.share - share, 0.0))
    return (rest, *others, Arm(name, ENSEMBLE, share, version))


def assign_arm(
    key: str | None, arms: Sequence[Arm], salt: str, rng: random.Random | None = None
) -> str:
    """The arm for ``key``: the non-ensemble arms take consecutive slices of [0, 1).

    With a key the choice is a pure function of (key, salt); without one it is random.
    """
    others = [a for a in arms if a.name != ENSEMBLE and a.share > 0]
    if not others:
        return ENSEMBLE
    u = bucket(key, salt) if key is not None else (rng or random).random()
    edge = 0.0
    for arm in others:
        edge += arm.share
        if u < edge:
            return arm.name
    return ENSEMBLE
