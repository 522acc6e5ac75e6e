"""Fitting calibrations (training only): the maps ``ensemble.calibration.Calibration`` applies.

``fit_logistic`` is numpy only; the isotonic fit uses scikit-learn, which training has.
"""

from __future__ import annotations

import numpy as np

from ensemble.calibration import Calibration, expit, logit


def fit_calibration(kind: str, p: np.ndarray, y: np.ndarray) -> Calibration:
    """Fit ``kind`` (one of ``Calibration.KINDS``) on probabilities ``p`` and labels ``y``.

    ``p``: (n,) P(pass) of one member; ``y``: (n,) labels, 1 = pass. ``none`` (or any
    other kind) gives the identity.
    """
    if kind == "sigmoid":
        coef, intercept = fit_logistic(logit(p)[:, None], y)
        return Calibration("sigmoid", a=float(coef[0]), b=float(intercept))
    if kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        x, v = iso.X_thresholds_, iso.y_thresholds_
        if len(x) < 2:  # a constant member: one knot; keep a flat line
            x, v = np.array([0.0, 1.0]), np.repeat(v[:1] if len(v) else [0.5], 2)
        return Calibration("isotonic", x=tuple(map(float, x)), y=tuple(map(float, v)))
    return Calibration()


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50
) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method (a few features): (coefficients, intercept).

    ``x``: (n, k) features; ``y``: (n,) labels in {0, 1}; returns coefficients (k,) and
    the intercept. A small ridge ``l2`` keeps separable or constant inputs finite.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    design = np.hstack([np.ones((len(x), 1)), x])
    beta = np.zeros(design.shape[1])
    ridge = l2 * len(x) * np.eye(design.shape[1])
    ridge[0, 0] = 0.0
    for _ in range(iterations):
        p = expit(design @ beta)
        gradient = design.T @ (p - y) + ridge @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta[1:], float(beta[0])
