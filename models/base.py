"""What every member adapter offers, and how members find their models in the store."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import bentoml
import numpy as np
from bentoml.exceptions import NotFound

from ensemble.decision import FILE, STORE_NAME, Decision, DecisionMismatch
from ensemble.drift import Reference
from ensemble.fleet import Loaded
from ensemble.pipeline import INPUT_KEYS
from ensemble.schema import FeatureSchema, common_schema
from ensemble.serving import ServingState
from ensemble.settings import Settings, get_settings
from models.bentoml_quirks import bentoml_home
from models.families import family, member_names

logger = logging.getLogger(__name__)


class MemberAdapter(Protocol):
    """One model family behind the same two calls; the runtime is the adapter's business."""

    runtime: str

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """P(pass) for ``rows`` (n, k) float32, shaped (n,) float32."""
        ...


class ModelMissing(RuntimeError):
    """A member's model is not in the model store."""


def model_tag(member: str, version: str | None = None) -> str:
    """The store tag of ``member`` at ``version`` (default: the settings' champion), e.g.
    ``yield-keras:latest``."""
    return f"{family(member).store_name}:{version or get_settings().model_version}"


def decision_tag(version: str | None = None) -> str:
    """The store tag of the decision of ``version`` (default: the settings' champion)."""
    return f"{STORE_NAME}:{version or get_settings().model_version}"


def stored_models(version: str | None = None) -> dict[str, bentoml.Model]:
    """Every member's model of one concrete version (``latest``: the newest run of the
    first member; default: the settings'); ModelMissing unless every member has it."""
    first, *rest = member_names()
    model = stored_model(first, version)
    concrete = str(model.tag.version)
    return {first: model, **{m: stored_model(m, concrete) for m in rest}}


def resolve_version(version: str) -> str:
    """The concrete version ``version`` names (see ``stored_models``)."""
    return str(next(iter(stored_models(version).values())).tag.version)


def stored_model(member: str, version: str | None = None) -> bentoml.Model:
    """The member's model from the store, or a ModelMissing that says how to make it."""
    tag = model_tag(member, version)
    try:
        return bentoml.models.get(tag)
    except NotFound:
        raise ModelMissing(
            f"model {tag} is not in the BentoML model store under "
            f"{bentoml_home()}; train it with `yield-ensemble train`"
        ) from None


def decision_reference(version: str | None = None) -> bentoml.models.BentoModel | None:
    """A reference to the decision of ``version`` (default: the settings'), if stored."""
    tag = decision_tag(version)
    try:
        bentoml.models.get(tag)
    except NotFound:
        return None
    return bentoml.models.BentoModel(tag)


def saved_decision(version: str | None = None) -> Decision | None:
    """The decision of ``version`` (default: the settings') from the store, whatever models
    it was fitted for."""
    try:
        model = bentoml.models.get(decision_tag(version))
    except NotFound:
        return None
    path = Path(model.path_of(FILE))
    try:
        return Decision.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Serving other rules than the trained ones would change every decision silently.
        raise DecisionMismatch(
            f"decision {model.tag} cannot be read from {path} ({type(exc).__name__}: "
            f"{str(exc)[:200]}); train again, or delete it with `bentoml models delete "
            f"{model.tag}` to serve unfitted rules"
        ) from exc


def saved_reference(version: str | None = None) -> Reference | None:
    """The reference distributions saved with ``version``'s members (default: the
    settings'), as serving loads them (``load_version``); None if it has none or is not
    stored."""
    try:
        saved = stored_model(member_names()[0], version).info.metadata.get("reference")
    except ModelMissing:
        return None
    return Reference.from_dict(saved) if isinstance(saved, dict) else None


def stored_decision(members: Mapping[str, str], version: str | None = None) -> Decision:
    """The decision trained with the served members (``ensemble.decision``).

    Unfitted rules (0.5, no calibration; the first releases' behaviour), with a
    warning, when the store has none or it was fitted for other model tags.
    """
    decision = saved_decision(version)
    if decision is None:
        logger.warning("no %s model in the store: unfitted rules at P(pass) 0.5", STORE_NAME)
        return Decision.unfitted(members)
    if dict(decision.members) != dict(members):
        logger.warning(
            "decision %s was fitted for %s, not the served %s: unfitted rules at P(pass) 0.5",
            decision.run,
            dict(decision.members),
            dict(members),
        )
    return decision.for_members(members)


def model_schema(model: bentoml.Model) -> FeatureSchema:
    """The feature schema a stored member was trained on."""
    features = model.info.metadata["features"]
    if not isinstance(features, dict):
        raise ValueError(f"model {model.tag} has no feature schema in its metadata")
    return FeatureSchema.from_dict(features)


def check_schemas(version: str | None = None) -> None:
    """Raise ModelMissing or SchemaMismatch (naming the member and its features) unless
    every member has ``version`` (``latest``: its own newest) on one schema. Models trained
    on different features would vote noise; each member is read as asked, so one trained
    on other features is named as such, not as missing from the first member's run."""
    common_schema({m: model_schema(stored_model(m, version)) for m in member_names()})


def load_version(version: str | None, combiner: str) -> Loaded:
    """A version's tags, common schema and decision from the store (None: the settings'),
    ``latest`` made concrete; raises ModelMissing, SchemaMismatch or DecisionMismatch
    (``combiner`` needs fitting and there is no decision for these models)."""
    check_schemas(version)
    stored = stored_models(version)
    concrete = str(next(iter(stored.values())).tag.version)
    schema = common_schema({m: model_schema(s) for m, s in stored.items()})
    tags = {m: str(s.tag) for m, s in stored.items()}
    decision = stored_decision(tags, concrete)
    decision.combiner(combiner)
    metadata = next(iter(stored.values())).info.metadata
    inputs = {k: metadata[k] for k in INPUT_KEYS if k in metadata}
    saved = metadata.get("reference")
    reference = Reference.from_dict(saved) if isinstance(saved, dict) else None
    return Loaded(concrete, tags, schema, decision, inputs, reference)


def configured_state(settings: Settings) -> ServingState:
    """The serving state the start-up settings ask for: the versions made concrete
    (``latest``: the newest run now), ``configured`` the settings as written (JSON), so a
    newly trained run is not a changed setting (``ledger.serving.reconcile``)."""
    champion = resolve_version(settings.model_version)
    candidate = None
    if settings.candidate_version is not None:
        candidate = resolve_version(settings.candidate_version)
    share = settings.candidate_share if candidate else 0.0
    written = {
        "model_version": settings.model_version,
        "candidate_version": settings.candidate_version,
        "candidate_share": share,
    }
    return ServingState(0, champion, candidate, share,
                        configured=json.dumps(written, sort_keys=True))  # fmt: skip
