"""The prediction pipeline in-process: decode, route, record, encode with fake members.

No BentoML and no database: members are coroutines, the evidence a list. Every
predict route is a ``Format`` run through the same ``Pipeline.run``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from ensemble.arms import Arm, build_arms
from ensemble.cache import PredictionCache
from ensemble.decision import Decision
from ensemble.errors import InvalidInput, LogBackedUp, MembersUnavailable, ServiceError
from ensemble.fleet import Fleet, Loaded
from ensemble.formats import RECORDS, SINGLE, WAFER
from ensemble.pipeline import Limits, Pipeline, Served
from ensemble.predictor import EnsemblePredictor
from ensemble.schema import DEFAULT_FEATURES, FeatureSchema
from ensemble.serving import ServingState

TAGS = {"rf": "yield-rf:v1", "xgb": "yield-xgb:v1", "nn": "yield-nn:v1"}
SCHEMA = FeatureSchema(DEFAULT_FEATURES)
ROW = [1.2, 100.0, 2000.0, 25.0, 50.0, 0.95]


class Ledger:
    """Evidence kept in a list; ``full`` refuses new predictions as a backed-up log does."""

    def __init__(self) -> None:
        self.served: list[Served] = []
        self.full = False

    def check_room(self) -> None:
        if self.full:
            raise LogBackedUp("the prediction log holds 3 unwritten predictions")

    def room(self, n: int, in_flight: int) -> bool:
        return not self.full

    def record(self, served: Served) -> dict[str, Any]:
        self.served.append(served)
        return {"degraded": int(served.batch.degraded.sum())}


def _pipeline(
    down: frozenset[str] = frozenset(), schema: FeatureSchema = SCHEMA, max_dies: int = 100
) -> tuple[Pipeline, Ledger, dict[str, int]]:
    calls = dict.fromkeys(TAGS, 0)

    def member(name: str, p: float) -> Any:
        async def call(rows: np.ndarray) -> np.ndarray:
            calls[name] += 1
            if name in down:
                raise ConnectionError(f"{name} is down")
            # P(pass) falls with the first feature: rows differ, so the cache keys do too.
            return np.clip(p - 0.1 * rows[:, 0], 0, 1).astype(np.float32)

        return call

    decision = Decision.unfitted(TAGS)
    loaded = Loaded("v1", TAGS, schema, decision)

    def predictor(version: str, d: Decision) -> EnsemblePredictor:
        members = {"rf": member("rf", 0.9), "xgb": member("xgb", 0.4), "nn": member("nn", 0.8)}
        return EnsemblePredictor(members, 1.0, combiner=d.combiner())

    async def prepare(versions: Any) -> None:
        return None

    arms = build_arms([Arm("challenger", "xgb", 0.0)], list(TAGS))
    fleet = Fleet(arms, "salt", PredictionCache(100), SCHEMA, lambda v: loaded, predictor, prepare)
    snapshot = fleet.snapshot(ServingState(1, "v1"))
    ledger = Ledger()
    return Pipeline(lambda: snapshot, ledger, lambda: Limits(schema, max_dies)), ledger, calls


def test_every_format_runs_the_same_path_and_is_recorded_once() -> None:
    pipeline, ledger, _ = _pipeline()
    single = asyncio.run(pipeline.run(SINGLE, "r1", {"features": ROW, "device_id": "d1"}))
    records = asyncio.run(
        pipeline.run(RECORDS, "r2", {"devices": [{"features": ROW, "device_id": "d2"}]})
    )
    wafer = asyncio.run(
        pipeline.run(
            WAFER,
            "r3",
            {"features": [ROW, ROW], "device_id": ["d3", "d4"], "wafer_id": "W1",
             "die_x": [0, 1], "die_y": [0, 0]},
        )
    )  # fmt: skip
    assert single["request_id"] == "r1" and single["device_id"] == "d1"
    assert single["model_versions"] == TAGS
    assert [r["request_id"] for r in records["results"]] == ["r2.0"]
    assert wafer["columns"]["device_id"] == ["d3", "d4"]
    # The same die answers the same in every format (the second and third from the cache).
    answers = [single["prediction"], records["results"][0]["prediction"]]
    assert answers + wafer["columns"]["prediction"] == [answers[0]] * 4
    assert [s.request_ids for s in ledger.served] == [["r1"], ["r2.0"], ["r3.0", "r3.1"]]
    assert ledger.served[2].dies.positions == [(0, 0), (1, 0)]
    assert ledger.served[2].dies.ids["wafer_id"] == ["W1", "W1"]


def test_a_refused_request_calls_no_member_and_records_nothing() -> None:
    pipeline, ledger, calls = _pipeline()
    with pytest.raises(InvalidInput, match="features") as err:
        asyncio.run(pipeline.run(WAFER, "r1", {"features": [ROW[:3]]}))
    assert err.value.status == 422 and err.value.kind == "bad_input"
    ledger.full = True
    with pytest.raises(LogBackedUp) as full:
        asyncio.run(pipeline.run(SINGLE, "r2", {"features": ROW}))
    assert full.value.status == 503 and full.value.headers() == {"Retry-After": "1"}
    assert ledger.served == [] and sum(calls.values()) == 0


def test_too_few_members_is_a_503_and_nothing_is_recorded() -> None:
    pipeline, ledger, _ = _pipeline(down=frozenset({"rf", "nn"}))
    with pytest.raises(MembersUnavailable) as err:
        asyncio.run(pipeline.run(SINGLE, "r1", {"features": ROW}))
    assert isinstance(err.value, ServiceError) and err.value.kind == "members_unavailable"
    assert ledger.served == []


def test_one_member_down_is_a_degraded_answer_that_says_so() -> None:
    pipeline, ledger, _ = _pipeline(down=frozenset({"nn"}))
    answer = asyncio.run(pipeline.run(RECORDS, "r1", {"devices": [{"features": ROW}]}))
    assert answer["degraded"] is True
    assert answer["results"][0]["missing_members"] == ("nn",)
    assert ledger.served[0].batch.degraded.tolist() == [True]


#: The schema with training ranges: ROW is inside them, FAR's vdd_v and idd_ma are not.
RANGED = FeatureSchema(
    DEFAULT_FEATURES, minimums=(1.0, 50.0, 1500.0, -40.0, 40.0, 0.0),
    maximums=(1.4, 150.0, 2500.0, 125.0, 90.0, 1.0),
)  # fmt: skip
FAR = [1.6, 20.0, 2000.0, 25.0, 50.0, 0.95]


def test_every_format_flags_features_out_of_range_without_changing_the_decision() -> None:
    pipeline, ledger, _ = _pipeline(schema=RANGED)
    plain, _, _ = _pipeline()
    far = {"vdd_v": 0.5, "idd_ma": 0.3}  # 0.2 V over a 0.4 V range; 30 mA under 100 mA
    single = asyncio.run(pipeline.run(SINGLE, "r1", {"features": FAR}))
    assert single["out_of_range"] == pytest.approx(far)
    unflagged = asyncio.run(plain.run(SINGLE, "r1", {"features": FAR}))
    assert "out_of_range" in unflagged and unflagged["out_of_range"] == {}
    assert (single["prediction"], single["probability"]) == (
        unflagged["prediction"], unflagged["probability"],
    )  # fmt: skip
    records = asyncio.run(
        pipeline.run(RECORDS, "r2", {"devices": [{"features": ROW}, {"features": FAR}]})
    )
    assert records["results"][0]["out_of_range"] == {}
    assert records["results"][1]["out_of_range"] == pytest.approx(far)
    assert records["out_of_range"] == {"dies": 1, "features": {"vdd_v": 1, "idd_ma": 1}}
    wafer = asyncio.run(pipeline.run(WAFER, "r3", {"features": [FAR, ROW, FAR]}))
    column = wafer["columns"]["out_of_range"]
    assert column[1] is None and column[0] == pytest.approx(far) == column[2]
    assert wafer["out_of_range"]["dies"] == 2
    # The evidence gets the flags (the ledger's row and the metrics count them).
    assert ledger.served[-1].flags.dies.tolist() == [0, 2]
