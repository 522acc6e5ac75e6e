"""Derived spatial features: each against a hand-computed wafer, the edge cases, the same
values in training and serving, and the pipeline's refusals for a spatial model."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ensemble.arms import build_arms
from ensemble.cache import PredictionCache
from ensemble.decision import Decision
from ensemble.errors import InvalidInput
from ensemble.fleet import Fleet, Loaded
from ensemble.formats import RECORDS, SINGLE, WAFER
from ensemble.pipeline import Limits, Pipeline
from ensemble.predictor import EnsemblePredictor
from ensemble.serving import ServingState
from ensemble.spatial import Geometry, Spec, derive
from tests.unit.test_pipeline import TAGS, Ledger
from train.data import TrainingDataError
from train.spatial import plain, spatial_dataset

RAW = ("a", "s")
# A 3 x 3 wafer (x, y in -1..1) with its centre die missing: a partial wafer.
POS = [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)]
A = [1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 20.0]
S = [0, 1, 0, 0, 1, 0, 0, 1]
ROWS = np.column_stack([A, S]).astype(np.float32)
GEOMETRY = Geometry(0.0, 0.0, float(np.sqrt(2)))


def _spec(*features: str) -> Spec:
    return Spec(features, RAW, ("a",), "s", GEOMETRY)


def _one(feature: str) -> np.ndarray:
    return derive(_spec(feature), ROWS, POS, [("L", "W")] * 8)[:, 2:]


def test_radial_by_hand() -> None:
    out = _one("radial")
    r = np.hypot(*np.array(POS).T) / np.sqrt(2)
    assert np.allclose(out[:, 0], r)
    # Edge ring: more than radius - 2 die steps out, so every die of this tiny map.
    assert out[:, 1].tolist() == [1.0] * 8


def test_nearest_neighbour_residual_by_hand() -> None:
    # (-1,-1) a=1: neighbours (0,-1)=2 and (-1,0)=4 (the centre is missing): median 3.
    # (0,-1) a=2: (-1,-1)=1, (1,-1)=3, (-1,0)=4, (1,0)=6: median 3.5.
    # (1,1) a=20: (0,1)=8, (1,0)=6: median 7.
    out = _one("nnr")[:, 0]
    assert out[0] == pytest.approx(1 - 3)
    assert out[1] == pytest.approx(2 - 3.5)
    assert out[7] == pytest.approx(20 - 7)


def test_robust_zscore_by_hand() -> None:
    # median of A = (4 + 6) / 2 = 5; |A - 5| = 4 3 2 1 1 2 3 15 -> MAD 2.5.
    out = _one("zscore")[:, 0]
    assert out[7] == pytest.approx((20 - 5) / (1.4826 * 2.5), rel=1e-6)
    assert out[0] == pytest.approx((1 - 5) / (1.4826 * 2.5), rel=1e-6)


def test_neighbour_prior_fail_by_hand() -> None:
    # (-1,-1): neighbours (0,-1) s=1, (-1,0) s=0 -> 0.5; (0,1): (-1,0)0 (1,0)1 (-1,1)0 (1,1)1.
    out = _one("prior")[:, 0]
    assert out[0] == pytest.approx(0.5)
    assert out[6] == pytest.approx(0.5)
    assert out[5] == pytest.approx(0.0)  # (-1,1): (-1,0) 0, (0,1) 0


def test_a_wafer_of_one_die_and_identical_dies_give_zero_not_nan() -> None:
    spec = _spec("nnr", "zscore", "prior")
    one = derive(spec, ROWS[:1], POS[:1], [("L", "W")])
    assert one[0, 2:].tolist() == [0.0, 0.0, 0.0]
    same = derive(spec, np.ones((4, 2), np.float32), POS[:4], [None] * 4)
    assert np.isfinite(same).all() and same[:, 3].tolist() == [0.0] * 4


def test_neighbours_stay_on_their_own_wafer() -> None:
    keys = [("L", "W1")] * 4 + [("L", "W2")] * 4
    apart = derive(_spec("nnr", "prior"), ROWS, POS, keys)
    alone = derive(_spec("nnr", "prior"), ROWS[:4], POS[:4], keys[:4])
    assert np.array_equal(apart[:4], alone)


def test_a_partial_wafer_keeps_the_trained_geometry() -> None:
    spec = _spec("radial")
    whole = derive(spec, ROWS, POS, [None] * 8)
    part = derive(spec, ROWS[5:], POS[5:], [None] * 3)
    assert np.array_equal(whole[5:], part)


def test_missing_positions_and_a_position_twice_are_422() -> None:
    with pytest.raises(InvalidInput, match="whole wafers with die_x and die_y") as err:
        derive(_spec("radial"), ROWS, None, [None] * 8)
    assert err.value.status == 422
    twice = [*POS[:7], POS[0]]
    with pytest.raises(InvalidInput, match=r"die_x\[7\].*also die 0's"):
        derive(_spec("nnr"), ROWS, twice, [None] * 8)


def test_a_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown spatial feature"):
        Spec(("curl",), RAW, ("a",), None, GEOMETRY)
    with pytest.raises(ValueError, match="needs the previous insertion"):
        Spec(("prior",), RAW, ("a",), None, GEOMETRY)
    with pytest.raises(ValueError, match="not a raw feature"):
        Spec(("nnr",), RAW, ("b",), None, GEOMETRY)
    assert Spec.from_dict(_spec("radial", "prior").to_dict()) == _spec("radial", "prior")


def _frame(wafers: int = 3) -> pd.DataFrame:
    from train.synthetic import SPATIAL, generate

    return generate(n_devices=709 * wafers, seed=3, truth=SPATIAL)


def test_training_and_serving_derive_the_same_values() -> None:
    from train.synthetic import SPATIAL_FEATURES

    frame = _frame()
    data = spatial_dataset(frame, "passed", SPATIAL_FEATURES, ("radial", "nnr", "zscore", "prior"),
                           prior="sort_fail")  # fmt: skip
    assert data.metadata["spatial"]["features"] == ["radial", "nnr", "zscore", "prior"]
    assert data.schema.names[:6] == SPATIAL_FEATURES and len(data.schema) == 6 + 2 + 5 + 5 + 1
    assert plain(data).features.shape == (len(frame), 6)
    limits = Limits(data.schema, 10_000, inputs=data.metadata)
    wafer = frame[frame.wafer_id == "W0001"]
    body = {"features": wafer[list(SPATIAL_FEATURES)].to_numpy().tolist(), "wafer_id": "W0001",
            "die_x": wafer.die_x.tolist(), "die_y": wafer.die_y.tolist()}  # fmt: skip
    decoded = WAFER.decode(body, limits.raw)
    served = limits.derive(decoded.dies).rows
    assert np.array_equal(served, data.features[wafer.index.to_numpy()])


def test_training_refuses_rows_without_position() -> None:
    frame = _frame(1)
    frame.loc[3, "die_x"] = np.nan
    with pytest.raises(TrainingDataError, match="1 rows have no integer die_x"):
        spatial_dataset(frame, "passed", ["vdd_v"], ("radial",))


def test_the_default_synthetic_output_is_unchanged() -> None:
    from train.synthetic import SHIFTED, generate

    def digest(frame: pd.DataFrame) -> str:
        return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()

    # Hashes of the generator's output before the spatial truth was added.
    assert digest(generate(5000, seed=3)).startswith("cc754e764ae676b1")
    assert digest(generate(3000, shift=SHIFTED)).startswith("91cf00f80e28d72c")


def _spatial_pipeline(
    schema: Any = None, inputs: dict[str, Any] | None = None
) -> tuple[Pipeline, Ledger, Limits]:
    """A pipeline over fake members serving a spatial model: ``schema`` and ``inputs`` (the
    saved metadata) a trained one's, by default radial, nnr and prior of ``RAW``."""
    from ensemble.schema import FeatureSchema

    if schema is None:
        spec = _spec("radial", "nnr", "prior")
        schema, inputs = FeatureSchema((*RAW, *spec.derived())), {"spatial": spec.to_dict()}
    limits = Limits(schema, 10_000, inputs=inputs or {})

    async def member(rows: np.ndarray) -> np.ndarray:
        assert rows.shape[1] == len(schema)
        return np.full(len(rows), 0.9, np.float32)

    loaded = Loaded("v1", TAGS, schema, Decision.unfitted(TAGS), limits.inputs)

    def predictor(version: str, d: Decision) -> EnsemblePredictor:
        return EnsemblePredictor(dict.fromkeys(TAGS, member), 1.0, combiner=d.combiner())

    async def prepare(versions: Any) -> None:
        return None

    arms = build_arms([], list(TAGS))
    fleet = Fleet(arms, "salt", PredictionCache(100), schema, lambda v: loaded, predictor, prepare)
    snapshot = fleet.snapshot(ServingState(1, "v1"))
    ledger = Ledger()
    return Pipeline(lambda: snapshot, ledger, lambda: limits), ledger, limits


def test_a_spatial_model_answers_a_single_die_with_a_422_that_says_why() -> None:
    pipeline, ledger, _ = _spatial_pipeline()
    for fmt, body in ((SINGLE, {"features": [1.0, 0.0]}),
                      (RECORDS, {"devices": [{"features": [1.0, 0.0]}]}),
                      (WAFER, {"features": [[1.0, 0.0], [2.0, 1.0]]})):  # fmt: skip
        with pytest.raises(InvalidInput, match="derives spatial features") as err:
            asyncio.run(pipeline.run(fmt, "r", body))
        assert err.value.status == 422
    assert ledger.served == []


def test_a_spatial_model_takes_raw_features_of_a_wafer_and_logs_the_derived_ones() -> None:
    pipeline, ledger, limits = _spatial_pipeline()
    x, y = zip(*POS, strict=True)
    body = {"features": ROWS.tolist(), "wafer_id": "W", "die_x": list(x), "die_y": list(y)}
    answer = asyncio.run(pipeline.run(WAFER, "r", body))
    assert answer["count"] == 8
    (served,) = ledger.served
    assert np.array_equal(served.dies.rows, derive(limits.spatial, ROWS, POS, [(None, "W")] * 8))
    with pytest.raises(InvalidInput, match="features"):  # the derived ones are not sent
        asyncio.run(pipeline.run(WAFER, "r2", {**body, "features": served.dies.rows.tolist()}))
