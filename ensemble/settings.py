"""The request core's settings, read once from ``YIELD_ENSEMBLE_*`` variables at start-up.

Settings are split by area, each a ``pydantic-settings`` class validated at start-up:
this one (versions, arms, members, cache, combiner), ``ledger.settings`` (the prediction
log's database and spill) and ``ops.settings`` (keys, body limit, logs, workers).
``load`` reads any of them and names the bad variable when one is wrong.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ensemble.arms import Arm

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class ChaosSpec(BaseModel):
    """Deliberate faults for one member, for failure drills and tests; off by default."""

    delay_ms: float = Field(0.0, ge=0, description="Sleep this long before answering.")
    fail: bool = Field(False, description="Answer every call with an error.")


#: What every settings class shares: the variables' prefix, and ``none`` for an empty value.
CONFIG = SettingsConfigDict(env_prefix="YIELD_ENSEMBLE_", extra="ignore", env_parse_none_str="none")


class Settings(BaseSettings):
    """The request core's knobs. Each is set by ``YIELD_ENSEMBLE_<NAME>``."""

    model_config = CONFIG

    model_version: str = Field(
        "latest",
        description="The champion: model-store version of all three members (a training run's "
        "version). Applied when it differs from what the last start applied; run-time changes "
        "(promote, rollback) are kept in the ledger and survive restarts.",
    )
    candidate_version: str | None = Field(
        None, description="A candidate version served beside the champion on the candidate arm."
    )
    candidate_share: float = Field(
        0.0, ge=0, le=1, description="Share of traffic (of split keys) sent to the candidate."
    )
    serving_poll_s: float = Field(
        2.0, gt=0, le=60, description="How often each replica reads the shared serving state."
    )
    promotion_alpha: float = Field(
        0.05,
        gt=0,
        le=0.2,
        description="Error rate of the report's candidate-against-champion verdict, however "
        "often it is read (the always-valid test's alpha); the guardrail uses it too.",
    )
    guardrail: bool = Field(
        False,
        description="Stop the candidate by itself when the report finds it significantly worse "
        "than the champion (always-valid test); checked every guardrail_interval_s.",
    )
    guardrail_interval_s: float = Field(60.0, ge=1, description="How often the guardrail looks.")
    runtimes: dict[str, str] = Field(
        default_factory=dict,
        description='One runtime per family for every batch size, JSON, e.g. {"keras": '
        '"tensorflow"}; unset, each batch gets the runtime training measured fastest for its '
        "size (a model trained before that table: its family's first runtime).",
    )
    member_timeout_s: float = Field(
        2.0, gt=0, le=120, description="Per-member call timeout; a slower member is left out."
    )
    member_breaker_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="After a member call fails or times out, calls go without that member "
        "for this long (doubling while it keeps failing, up to 15 s), then one call tries it "
        "(ensemble.breaker); 0: every call waits out member_timeout_s.",
    )
    member_shutdown_grace_s: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Members keep serving this long after SIGTERM so the entry can drain.",
    )
    member_timeout_per_1000_rows_s: float = Field(
        0.1,
        ge=0,
        le=60,
        description="Added to a member's time limit per 1,000 rows of a call, so a wafer's "
        "limit fits its size.",
    )
    max_bulk_dies_in_flight: int = Field(
        50_000,
        ge=1,
        description="Dies of large requests (over 1,000 dies) answered at once; more wait "
        "their turn, and single dies never wait behind them.",
    )
    bulk_wait_s: float = Field(
        30,
        ge=0,
        le=55,
        description="Longest a large request waits its turn before it is refused with 429 "
        "and Retry-After.",
    )
    max_batch_devices: int = Field(
        50_000, ge=1, description="Most devices accepted by one /predict_batch request."
    )
    coalesce_max_rows: int = Field(
        16_384, ge=1, description="Most rows the entry service sends a member in one call."
    )
    coalesce_max_in_flight: int = Field(
        2, ge=1, le=64, description="Concurrent calls per member before requests are coalesced."
    )
    member_max_batch_size: int = Field(
        16_384, ge=1, description="BentoML adaptive batching: most rows a member runs at once."
    )
    member_max_latency_ms: int = Field(
        1_000, ge=1, description="BentoML adaptive batching: longest a row may queue in a member."
    )
    cache_maxsize: int = Field(
        100_000,
        ge=0,
        description="Most predictions kept in the LRU cache (0 disables it); ~510 B each.",
    )
    cache_ttl_s: float | None = Field(
        None, gt=0, description="Forget cached predictions after this many seconds (default never)."
    )
    combiner: str = Field(
        "trained",
        description="How member answers combine on the ensemble arm: trained (the one "
        "`yield-ensemble train --combiner` chose, default), majority, soft, weighted or "
        "stacked (each as fitted by that training run).",
    )
    challenger: str = Field(
        "xgboost", description="The single member that serves the challenger arm."
    )
    challenger_fraction: float = Field(
        0.10, ge=0, le=1, description="Share of traffic (of split keys) sent to the challenger."
    )
    arms: list[dict[str, Any]] | None = Field(
        None,
        description='A/B arms besides the ensemble, JSON: [{"name": "challenger", "serves": '
        '"xgboost", "share": 0.1}, ...]; default: one challenger arm from challenger and '
        "challenger_fraction. The ensemble arm takes the share left.",
    )
    split_salt: str = Field(
        "yield-ensemble",
        min_length=1,
        description="Salt of the sticky split hash; change to reshuffle.",
    )
    chaos: dict[str, ChaosSpec] = Field(
        default_factory=dict,
        description='Fault injection, JSON: {"keras": {"delay_ms": 300, "fail": true}}.',
    )

    def arm_list(self) -> tuple[Arm, ...]:
        """Every arm, the ensemble first; ValueError naming the setting if one is wrong."""
        from ensemble.arms import CHALLENGER, Arm, build_arms
        from models.families import member_names

        if self.arms is None:
            others = [Arm(CHALLENGER, self.challenger, self.challenger_fraction)]
        else:
            try:
                others = [
                    Arm(str(a["name"]), str(a["serves"]), float(a["share"])) for a in self.arms
                ]
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"YIELD_ENSEMBLE_ARMS: each arm needs name, serves, share ({exc})"
                ) from None
        try:
            return build_arms(others, member_names())
        except ValueError as exc:
            raise ValueError(f"YIELD_ENSEMBLE_ARMS: {exc}") from None

    def runtime(self, member: str) -> str:
        """The runtime ``member`` serves with."""
        from models.families import family

        return self.runtimes.get(member) or family(member).default_runtime

    def check_families(self) -> None:
        """Raise ValueError naming the setting whose family or runtime does not exist."""
        from ensemble.combiners import COMBINERS
        from ensemble.decision import TRAINED
        from models.families import families

        if self.combiner != TRAINED and self.combiner not in COMBINERS:
            raise ValueError(
                f"YIELD_ENSEMBLE_COMBINER: no combiner {self.combiner!r}; "
                f"known: {[TRAINED, *COMBINERS]}"
            )
        known = {f.name: f for f in families()}
        if self.challenger not in known:
            raise ValueError(f"YIELD_ENSEMBLE_CHALLENGER: no family {self.challenger!r}")
        for member, runtime in self.runtimes.items():
            if member not in known:
                raise ValueError(f"YIELD_ENSEMBLE_RUNTIMES: no family {member!r}")
            if runtime not in known[member].runtimes:
                raise ValueError(
                    f"YIELD_ENSEMBLE_RUNTIMES[{member}]: {runtime!r} is not one of "
                    f"{list(known[member].runtimes)}"
                )
        unknown = sorted(set(self.chaos) - set(known))
        if unknown:
            raise ValueError(f"YIELD_ENSEMBLE_CHAOS: no family {unknown[0]!r}")
        arms = self.arm_list()
        from ensemble.serving import CANDIDATE, check_version, share_problem

        if any(a.name == CANDIDATE for a in arms):
            raise ValueError(f"YIELD_ENSEMBLE_ARMS: '{CANDIDATE}' is the candidate version's arm")
        check_version(self.model_version, "YIELD_ENSEMBLE_MODEL_VERSION")
        if self.candidate_version is not None:
            check_version(self.candidate_version, "YIELD_ENSEMBLE_CANDIDATE_VERSION")
            wrong = share_problem(self.candidate_share, arms[0].share)
            if wrong:
                raise ValueError(f"YIELD_ENSEMBLE_CANDIDATE_SHARE: {wrong}")


class SettingsError(RuntimeError):
    """A setting is invalid; the message names the environment variable."""


def load(cls: type[S]) -> S:
    """``cls()`` from the environment; SettingsError naming the bad variable otherwise."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"YIELD_ENSEMBLE_{'_'.join(str(p) for p in err['loc'][:1]).upper()}"
            f"{''.join(f'[{p}]' for p in err['loc'][1:])}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid yield-ensemble setting: {problems}") from None


@functools.cache
def get_settings() -> Settings:
    """The request core's settings, validated once; raises SettingsError naming the bad
    variable."""
    settings = load(Settings)
    try:
        settings.check_families()
    except (ValueError, KeyError, ImportError, TypeError) as exc:
        raise SettingsError(f"invalid yield-ensemble setting: {exc}") from None
    return settings
