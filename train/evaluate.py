"""Held-out evaluation: accuracy, fail-class recall and precision, Brier score.

The tables training prints are ``train.decide.format_table``.
"""

from __future__ import annotations

import numpy as np


def classification_metrics(
    labels: np.ndarray, p_pass: np.ndarray, passed: np.ndarray
) -> dict[str, float]:
    """Metrics of pass decisions ``passed`` and P(pass) ``p_pass`` against ``labels`` (1 = pass).

    Fail is the class a yield engineer hunts, so recall and precision are of fail.
    """
    from sklearn.metrics import accuracy_score, brier_score_loss, precision_score, recall_score

    actual = np.asarray(labels).astype(int)
    predicted = np.asarray(passed).astype(int)
    return {
        "accuracy": float(accuracy_score(actual, predicted)),
        "fail_recall": float(recall_score(actual, predicted, pos_label=0, zero_division=0)),
        "fail_precision": float(precision_score(actual, predicted, pos_label=0, zero_division=0)),
        "brier": float(brier_score_loss(actual, np.asarray(p_pass, dtype=np.float64))),
        "n": len(actual),
    }
