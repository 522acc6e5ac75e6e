"""The ONNX Runtime session both tree families serve from (RandomForest and XGBoost)."""

from __future__ import annotations

import numpy as np


class OnnxTreeEnsemble:
    """An exported tree ensemble (a RandomForest or an XGBoost booster, one ONNX
    TreeEnsembleClassifier) in one single-threaded ONNX Runtime session.

    ``pass_column``: the column of the ``probabilities`` output (n, 2) that is P(pass).
    """

    def __init__(self, onnx: bytes, pass_column: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # The arena keeps the peak of the largest batch for good (+50 MB after a wafer).
        options.enable_cpu_mem_arena = False
        # Graph rewrites do nothing for one tree-ensemble node but keep a second copy
        # of it: 14 MB less RSS for the 100-tree forest, same speed.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._pass_column = pass_column

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """``rows``: (n, n_features) float32 -> (n,) float32 P(pass)."""
        (proba,) = self._session.run(["probabilities"], {self._input: rows})
        return np.asarray(proba[:, self._pass_column], dtype=np.float32)
