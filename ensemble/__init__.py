"""Pure ensemble logic: schema, validation, voting, coalescing. Never imports bentoml."""

from ensemble.coalesce import Coalescer
from ensemble.combiners import majority_vote
from ensemble.predictor import EnsemblePredictor, EnsembleResult, MembersUnavailable
from ensemble.schema import DEFAULT_FEATURES, FeatureSchema, SchemaMismatch, common_schema
from ensemble.validation import InvalidInput, parse_batch, parse_features

__all__ = [
    "DEFAULT_FEATURES",
    "Coalescer",
    "EnsemblePredictor",
    "EnsembleResult",
    "FeatureSchema",
    "InvalidInput",
    "MembersUnavailable",
    "SchemaMismatch",
    "common_schema",
    "majority_vote",
    "parse_batch",
    "parse_features",
]
