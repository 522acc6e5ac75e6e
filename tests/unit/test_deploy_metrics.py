"""Prometheus rules and the Grafana dashboard in deploy/ use only metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import prometheus_client
import pytest
import yaml

from ensemble.batch import Batch
from ops.metrics import ServiceMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\b(yield_ensemble_[a-z_]+)")


SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """The sample names the service's metric families produce, by Prometheus type."""
    registry = prometheus_client.CollectorRegistry()
    ServiceMetrics(registry)
    return {f.name + suffix for f in registry.collect() for suffix in SUFFIXES[f.type]}


def _exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "yield-ensemble.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return exprs


def test_every_dashboard_and_alert_metric_is_exported(exported: set[str]) -> None:
    used = {name for expr in _exprs() for name in NAME.findall(expr)}
    assert used, "no yield_ensemble_ metric found in deploy/"
    assert used <= exported, sorted(used - exported)


def test_metric_names_follow_prometheus_conventions() -> None:
    registry = prometheus_client.CollectorRegistry()
    ServiceMetrics(registry)
    for family in registry.collect():
        assert family.name.startswith("yield_ensemble_")
        if family.type == "histogram":
            assert family.name.endswith("_seconds")
        if family.type == "gauge" and "ratio" in family.name:
            assert family.name.endswith("_ratio")


def test_served_counts_and_returns_the_tally() -> None:
    registry = prometheus_client.CollectorRegistry()
    metrics = ServiceMetrics(registry)
    # Three devices: an ensemble pass whose members split, a cached degraded ensemble
    # fail (keras missing; the other two agree), a challenger fail.
    nan = float("nan")
    results = Batch(
        members=("random_forest", "xgboost", "keras"),
        arms=("ensemble", "challenger"),
        arm=np.array([0, 0, 1]),
        passed=np.array([True, False, False]),
        probability=np.array([0.63, 0.15, 0.2]),
        votes=np.array([[0.9, 0.1, nan], [0.2, 0.2, 0.2], [0.8, nan, nan]]),
        cached=np.array([False, True, False]),
        degraded=np.array([False, True, False]),
        split=np.array([True, False, True]),  # the router marks splits; see test_router
        missing={1: ("keras",)},
    )
    tally = metrics.served(results)
    assert tally == {
        "arms": {"ensemble": 2, "challenger": 1},
        "fails": 2,
        "cached": 1,
        "degraded": 1,
    }

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("yield_ensemble_predictions_total", arm="ensemble", prediction="fail") == 1
    assert value("yield_ensemble_cache_hits_total") == 1
    assert value("yield_ensemble_cache_misses_total") == 2
    assert value("yield_ensemble_degraded_predictions_total", missing_member="keras") == 1
    # Only the ensemble arm's split counts.
    assert value("yield_ensemble_member_disagreements_total") == 1
    assert value("yield_ensemble_predictions_total", arm="ensemble", prediction="pass") == 1
    assert value("yield_ensemble_predictions_total", arm="challenger", prediction="fail") == 1
    assert value("yield_ensemble_predictions_total", arm="challenger", prediction="pass") == 0
    # Counted again, into the same series (the counters' children are kept, not re-made).
    assert metrics.served(results) == tally
    assert value("yield_ensemble_predictions_total", arm="ensemble", prediction="pass") == 2
    assert value("yield_ensemble_predictions_total", arm="challenger", prediction="fail") == 2
    assert value("yield_ensemble_member_disagreements_total") == 2
