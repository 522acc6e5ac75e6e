"""Which model versions serve: the champion, an optional candidate and its share.

A version is a training run's name in the model store (``yield-<family>:<version>``
for every member, ``yield-decision:<version>`` for its decision). The champion
serves the ``ensemble`` arm and the one-member arms; a candidate, when set, serves
the ``candidate`` arm, a sticky share of traffic decided by the candidate version's
own ensemble. The state lives in the ledger's database (``ledger.serving``) so every
replica serves the same; the transitions below are pure and checked here, and each
change is one new revision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ensemble.errors import Conflict

#: The arm a candidate version serves.
CANDIDATE = "candidate"
#: A model-store version: what ``yield-ensemble train --version`` accepts.
VERSION = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
#: What a change of serving state is called in its history.
ACTIONS = ("configure", "candidate", "promote", "rollback", "guardrail")


class InvalidChange(Conflict, ValueError):
    """A change that cannot apply to the current state (HTTP 409), naming why."""


def check_version(value: Any, field: str = "version") -> str:
    """``value`` if it is a version name; ValueError naming ``field`` otherwise."""
    if not isinstance(value, str) or not VERSION.fullmatch(value):
        raise ValueError(
            f"{field}: a model-store version (1-64 of a-z 0-9 . _ -, starting and ending "
            f"with a letter or digit), got {json.dumps(value)[:80]}"
        )
    return value


def share_problem(share: float, ensemble_share: float) -> str | None:
    """What is wrong with a candidate ``share`` taken from an ensemble arm of
    ``ensemble_share``, or None.

    Less than the whole arm: the champion keeps devices the candidate is compared with
    (serving the candidate everywhere is what ``promote`` is for).
    """
    if 0 < share < ensemble_share - 1e-9:
        return None
    return (
        f"a candidate needs a share in (0, {ensemble_share:g}), less than what the other arms "
        f"leave the ensemble, so the champion keeps devices to compare it with (to serve the "
        f"candidate everywhere, promote it); got {share:g}"
    )


@dataclass(frozen=True)
class ServingState:
    """Revision ``revision`` of what serves, and who made it so, when, and how."""

    revision: int
    champion: str
    candidate: str | None = None
    share: float = 0.0  # of split keys, to the candidate arm
    previous: str | None = None  # the champion before the last promote: what rollback restores
    changed_at: float = 0.0
    changed_by: str = ""
    action: str = "configure"
    reason: str | None = None
    configured: str | None = None  # the start-up settings this state last applied (JSON)
    candidate_since: float | None = None  # when the candidate version was set

    @property
    def versions(self) -> tuple[str, ...]:
        """The versions serving traffic: the champion, then the candidate if any."""
        return (self.champion,) if self.candidate is None else (self.champion, self.candidate)

    def with_candidate(self, version: str | None, share: float, max_share: float) -> ServingState:
        """A candidate ``version`` at ``share`` (None: no candidate); InvalidChange if wrong."""
        if version is None:
            if self.candidate is None:
                raise InvalidChange("there is no candidate to stop")
            return replace(self, candidate=None, share=0.0)
        if version == self.champion:
            raise InvalidChange(f"version {version} is the champion already")
        wrong = share_problem(share, max_share)
        if wrong:
            raise InvalidChange(f"share: {wrong}")
        return replace(self, candidate=version, share=share)

    def promoted(self) -> ServingState:
        """The candidate as champion, the champion kept as ``previous`` for a rollback."""
        if self.candidate is None:
            raise InvalidChange("there is no candidate to promote; set one first")
        return replace(
            self, champion=self.candidate, candidate=None, share=0.0, previous=self.champion
        )

    def rolled_back(self) -> ServingState:
        """The champion before the last promote, and no candidate."""
        if self.previous is None:
            raise InvalidChange("nothing to roll back to: no promote since the last rollback")
        return replace(self, champion=self.previous, candidate=None, share=0.0, previous=None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "champion": self.champion,
            "candidate": self.candidate,
            "share": self.share,
            "previous": self.previous,
            "changed_at": self.changed_at,
            "changed_by": self.changed_by,
            "action": self.action,
            "reason": self.reason,
            "candidate_since": self.candidate_since,
        }


def comparison(
    state: ServingState,
    champion: Mapping[str, str],
    candidate: Mapping[str, str],
    alpha: float = 0.05,
) -> dict[str, Any]:
    """What the report compares for ``state``'s candidate: the two versions, their model
    tags, since when the candidate has served, and the verdict's error rate ``alpha``
    (``ledger.report``)."""
    return {
        "alpha": alpha,
        "champion": state.champion,
        "candidate": state.candidate,
        "champion_versions": dict(champion),
        "candidate_versions": dict(candidate),
        "since": state.candidate_since,
        "share": state.share,
    }
