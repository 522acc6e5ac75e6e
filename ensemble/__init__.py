"""The request core: schema, validation, cache, arms, router, predictor, coalescer, combiners.

Plain Python and numpy: never imports BentoML or a database. ``settings`` (read by
every layer) and ``responses`` (typed prediction records) live here too. Imports go
down only to ``models.families`` (names of the model families).
"""

from ensemble.coalesce import Coalescer
from ensemble.errors import MembersUnavailable
from ensemble.predictor import EnsemblePredictor, EnsembleResult
from ensemble.schema import DEFAULT_FEATURES, FeatureSchema, SchemaMismatch, common_schema
from ensemble.validation import InvalidInput, parse_batch, parse_features
from ensemble.voting import majority_vote

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
