"""Derived spatial features: computed from a wafer's dies by one function in training
and serving (``derive``), declared at training in the model's metadata (``Spec``).

A derived feature is its own module (``radial``, ``nnr``, ``zscore``, ``prior``: a
``Feature`` with its columns and its computation), its line in ``derive.FEATURES``, and
its test. numpy only: the serving image has no scipy.
"""

from ensemble.spatial.base import Geometry, WaferDies
from ensemble.spatial.derive import FEATURES, METADATA_KEY, Spec, derive

__all__ = ["FEATURES", "METADATA_KEY", "Geometry", "Spec", "WaferDies", "derive"]
