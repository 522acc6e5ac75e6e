"""What one training run decided: its fitted combiners, each member alone, the fab's costs.

``yield-ensemble train`` fits every combiner of ``ensemble.combiners.COMBINERS`` and
each member's single-model rule on out-of-fold probabilities, picks one (``chosen``)
and saves the lot as ``decision.json`` in the model store (``yield-decision:<run>``,
the run's version, beside the members). The entry serves the chosen combiner (or
the one ``YIELD_ENSEMBLE_COMBINER`` names), uses the singles on one-member arms and
computes the rest in shadow for the A/B report. A store without a decision (trained
before decisions existed, or members from different runs) serves unfitted rules at
P(pass) 0.5, as the first releases did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ensemble.combiners import COMBINERS, Combiner, Objective, Single, from_dict

STORE_NAME = "yield-decision"
FILE = "decision.json"
#: ``YIELD_ENSEMBLE_COMBINER`` value meaning "the one training chose".
TRAINED = "trained"
#: Combiners that mean nothing unfitted: serving them needs a decision for these members.
NEEDS_FITTING = ("weighted", "stacked")


class DecisionMismatch(RuntimeError):
    """The configured combiner needs a fitted decision and the store has none for these models."""


@dataclass(frozen=True)
class Decision:
    run: str  # the training run ("" when unfitted)
    members: Mapping[str, str]  # member -> model tag it was fitted for
    objective: Objective
    chosen: str
    combiners: Mapping[str, Combiner]
    singles: Mapping[str, Single]
    tables: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fitted(self) -> bool:
        return bool(self.run)

    def combiner(self, name: str = TRAINED) -> Combiner:
        """The combiner to serve: ``name``, or the one training chose."""
        name = self.chosen if name == TRAINED else name
        if name not in self.combiners:
            raise KeyError(f"no combiner {name!r}; known: {sorted(self.combiners)}")
        if not self.fitted and name in NEEDS_FITTING:
            raise DecisionMismatch(
                f"the {name} combiner is fitted by `yield-ensemble train` and the model store "
                "has no decision for the served models; train again, or serve majority or soft"
            )
        return self.combiners[name]

    def single(self, member: str) -> Single:
        return self.singles.get(member, Single(member=member))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "members": dict(self.members),
            "objective": self.objective.to_dict(),
            "chosen": self.chosen,
            "combiners": {n: c.to_dict() for n, c in self.combiners.items()},
            "singles": {m: s.to_dict() for m, s in self.singles.items()},
            "tables": dict(self.tables),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        return cls(
            run=str(d["run"]),
            members=dict(d["members"]),
            objective=Objective.from_dict(d["objective"]),
            chosen=str(d["chosen"]),
            combiners={n: from_dict(c) for n, c in d["combiners"].items()},
            singles={m: from_dict(s) for m, s in d["singles"].items()},
            tables=dict(d.get("tables", {})),
        )

    @classmethod
    def unfitted(cls, members: Mapping[str, str]) -> Decision:
        """Every rule at P(pass) 0.5 with no calibration: the first releases' behaviour."""
        return cls(
            run="",
            members=dict(members),
            objective=Objective(),
            chosen="majority",
            combiners={name: kind() for name, kind in COMBINERS.items()},
            singles={m: Single(member=m) for m in members},
        )

    def for_members(self, members: Mapping[str, str]) -> Decision:
        """This decision if it was fitted for exactly these model tags, else the unfitted one."""
        return self if dict(self.members) == dict(members) else Decision.unfitted(members)
