"""The wafer path on a real `bentoml serve`: the columnar format and the dashboard reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from models.families import member_names
from train.synthetic import feature_rows

from .conftest import AUTH, ROOT, base_env, running

pytestmark = pytest.mark.integration
DATABASES = ["sqlite"]
if os.environ.get("YE_TEST_POSTGRES_URL"):
    DATABASES.append("postgresql")


def _wafer(rows: list[list[float]], wafer: str, **extra: Any) -> dict[str, Any]:
    side = 8
    return {
        "features": rows,
        "device_id": [f"{wafer}-{i}" for i in range(len(rows))],
        "wafer_id": wafer,
        "lot_id": "LOT-9",
        "die_x": [i % side for i in range(len(rows))],
        "die_y": [i // side for i in range(len(rows))],
        **extra,
    }


def test_columns_keep_order_and_ids_and_equal_single_calls(
    model_home: Path, tmp_path: Path
) -> None:
    rows = feature_rows(40, seed=61)
    with running(model_home, tmp_path, challenger_fraction="0.3") as srv:
        cols = httpx.post(f"{srv.url}/predict_wafer", json=_wafer(rows, "W-A"), timeout=60)
        assert cols.status_code == 200, cols.text
        body = cols.json()
        records = httpx.post(
            f"{srv.url}/predict_wafer", json=_wafer(rows, "W-A", answer="records"), timeout=60
        ).json()
        singles = [
            httpx.post(
                f"{srv.url}/predict",
                json={"features": r, "device_id": f"W-A-{i}", "wafer_id": "W-A"},
            ).json()
            for i, r in enumerate(rows)
        ]
        batch = httpx.post(
            f"{srv.url}/predict_batch",
            json={
                "devices": [{"features": r, "device_id": f"W-A-{i}"} for i, r in enumerate(rows)]
            },
            timeout=60,
        ).json()
    c = body["columns"]
    assert body["count"] == 40 and c["device_id"] == [f"W-A-{i}" for i in range(40)]
    assert set(c["votes"]) == set(member_names())
    assert {len(v) for v in c.values() if isinstance(v, list)} == {40}
    assert set(c["arm"]) == {"ensemble", "challenger"}  # the sticky split works per die
    for i, single in enumerate(singles):
        # The same device id gets the same arm, and the same features the same answer.
        assert (c["arm"][i], c["prediction"][i]) == (single["arm"], single["prediction"])
        assert c["probability"][i] == pytest.approx(single["probability"])
        rule = body["rules"][c["arm"][i]]
        assert (rule["combiner"], rule["threshold"]) == (single["combiner"], single["threshold"])
    assert [r["prediction"] for r in records["results"]] == c["prediction"]
    assert [r["device_id"] for r in records["results"]] == c["device_id"]
    assert [r["prediction"] for r in batch["results"]] == c["prediction"]
    assert records["results"][5]["request_id"] == f"{records['request_id']}.5"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"features": [[1.0, 2.0]]}, "features[0]"),
        ({"device_id": ["only-one"]}, "device_id"),
        ({"die_y": None}, "die_y"),
        ({"die_x": [0, 1, "2"]}, "die_x[2]"),
        ({"answer": "xml"}, "answer"),
        ({"features": {"vdd_v": [1.2, 1.2, 1.2]}}, "features.idd_ma"),
    ],
)
def test_bad_shapes_are_422_naming_the_field(
    server: Any, change: dict[str, Any], field: str
) -> None:
    body = {**_wafer(feature_rows(3, seed=62), "W-BAD"), **change}
    r = httpx.post(f"{server.url}/predict_wafer", json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["request_id"]


@pytest.mark.parametrize("database", DATABASES)
def test_dashboard_reads_per_wafer_per_lot_and_the_die_map(
    model_home: Path, tmp_path: Path, database: str
) -> None:
    settings: dict[str, str] = {"challenger_fraction": "0.2", "data_dir": str(tmp_path / "d")}
    if database == "postgresql":
        import sqlalchemy as sa

        from ledger.migrate import drop_all

        url = os.environ["YE_TEST_POSTGRES_URL"]
        engine = sa.create_engine(url)
        drop_all(engine)
        engine.dispose()
        settings["database_url"] = url
    rows = feature_rows(64, seed=63)
    with running(model_home, tmp_path, **settings) as srv:
        a = httpx.post(f"{srv.url}/predict_wafer", json=_wafer(rows, "W-1"), timeout=60).json()
        b = httpx.post(f"{srv.url}/predict_wafer", json=_wafer(rows[:10], "W-2"), timeout=60).json()
        # Ground truth for the first 20 dies of W-1: say the opposite of the prediction
        # for the first 5 so actual and predicted yields differ.
        truth = [
            {
                "request_id": f"{a['request_id']}.{i}",
                "actual": (("fail" if p == "pass" else "pass") if i < 5 else p),
            }
            for i, p in enumerate(a["columns"]["prediction"][:20])
        ]
        fb = httpx.post(f"{srv.url}/feedback", headers=AUTH, json={"outcomes": truth}).json()
        assert fb["counts"]["recorded"] == 20

        def get(path: str, **params: Any) -> httpx.Response:
            return httpx.get(f"{srv.url}/dashboard{path}", headers=AUTH, params=params, timeout=30)

        wafers = get("/wafers").json()
        page = get("/wafers", limit=1).json()
        later = get("/wafers", since="2999-01-01T00:00:00Z").json()
        lots = get("/lots").json()
        one = get("/wafers/W-1").json()
        full = get("/wafers/W-1/map").json()
        first = get("/wafers/W-1/map", limit=50).json()
        rest = get("/wafers/W-1/map", limit=50, offset=50).json()
        missing = get("/wafers/W-9")
        missing_map = get("/wafers/W-9/map")
        bad = get("/wafers", limit="many")
        unknown = get("/lots", colour="red")
        anonymous = httpx.get(f"{srv.url}/dashboard/wafers")
        # The wafer sent again (a dashboard refresh, a retried upload): each die counts once,
        # its newest prediction with the truth fed back for the earlier one.
        again = httpx.post(f"{srv.url}/predict_wafer", json=_wafer(rows, "W-1"), timeout=60)
        assert again.status_code == 200, again.text
        resent = get("/wafers/W-1").json()
        resent_map = get("/wafers/W-1/map").json()
    assert (resent["dies"], resent["predictions"], resent["labelled"]) == (64, 128, 20)
    assert resent_map["total"] == 64
    assert {d["request_id"].rsplit(".", 1)[0] for d in resent_map["dies"]} == {
        again.json()["request_id"]
    }
    assert [d["actual"] for d in resent_map["dies"][:20]] == [t["actual"] for t in truth]
    assert all(d["predictions"] == 2 for d in resent_map["dies"])
    predicted_pass = a["columns"]["prediction"].count("pass")
    assert [w["wafer_id"] for w in wafers["wafers"]] == ["W-2", "W-1"]  # newest first
    w1 = wafers["wafers"][1]
    assert (w1["dies"], w1["predicted_pass"], w1["lot_id"]) == (64, predicted_pass, "LOT-9")
    assert w1["predicted_yield"] == pytest.approx(predicted_pass / 64)
    # The yield the models expect (mean P(pass)), beside the share of pass decisions.
    assert w1["expected_yield"] == pytest.approx(np.mean(a["columns"]["probability"]))
    assert "threshold" in wafers["yield_definitions"]["predicted_yield"]
    actual = [t["actual"] for t in truth]
    assert (w1["labelled"], w1["actual_pass"]) == (20, actual.count("pass"))
    assert wafers["total"] == 2 and wafers["next_offset"] is None
    assert page["wafers"][0]["wafer_id"] == "W-2" and page["next_offset"] == 1
    assert later["wafers"] == [] and later["total"] == 0
    assert lots["lots"][0]["lot_id"] == "LOT-9" and lots["lots"][0]["dies"] == 74
    assert (one["dies"], one["predictions"], one["lot_ids"]) == (64, 64, ["LOT-9"])
    assert sum(arm["dies"] for arm in one["arms"].values()) == 64
    assert sum(arm["actual"].get("unlabelled", 0) for arm in one["arms"].values()) == 44
    by_arm = {arm: a["columns"]["arm"].count(arm) for arm in set(a["columns"]["arm"])}
    assert {k: v["dies"] for k, v in one["arms"].items()} == by_arm
    dies = full["dies"]
    assert full["total"] == 64 and len(dies) == 64
    assert [(d["x"], d["y"]) for d in dies] == [(i % 8, i // 8) for i in range(64)]
    assert [d["prediction"] for d in dies] == a["columns"]["prediction"]
    assert [d["actual"] for d in dies[:20]] == actual and dies[20]["actual"] is None
    assert first["next_offset"] == 50 and rest["next_offset"] is None
    assert first["dies"] + rest["dies"] == dies
    assert missing.status_code == 404 and missing.json()["request_id"]
    assert missing_map.status_code == 404, missing_map.text
    assert "W-9" in missing_map.json()["error"]
    # The refusal is logged at the edge, with its kind (it was counted but never logged).
    log = srv.log_when(lambda text: missing.json()["request_id"] in text)
    refusals = [json.loads(line) for line in log.splitlines()
                if line.startswith("{") and "request refused" in line]  # fmt: skip
    assert any(
        r.get("request_id") == missing.json()["request_id"] and r.get("kind") == "not_found"
        for r in refusals
    ), refusals
    assert bad.status_code == 422 and bad.json()["field"] == "limit"
    assert unknown.status_code == 422 and unknown.json()["field"] == "colour"
    assert anonymous.status_code == 401
    assert b["count"] == 10
    # The HTML report draws the window's wafers: predicted beside actual fails.
    page = tmp_path / "report.html"
    env = {k: v for k, v in settings.items() if k != "challenger_fraction"}
    subprocess.run(
        [sys.executable, "-m", "train.cli", "report", "--out", str(page)],
        cwd=ROOT,
        env=base_env(model_home, **env),
        check=True,
        capture_output=True,
    )
    html = page.read_text()
    assert "Wafer maps: decisions against ground truth" in html
    assert "expected yield (mean P(pass))" in html and "<th>W-1</th>" in html
    assert 'aria-label="wafer map W-1"' in html and 'aria-label="wafer map W-2"' in html
    # Which wafers, of how many; W-1's escapes and overkill from its newest decisions.
    assert "2 of the window's 2 wafers drawn: the 2 with the most labelled dies" in html
    newest = again.json()["columns"]
    called = list(zip(newest["prediction"][:20], actual, strict=True))
    escapes, overkill = called.count(("pass", "fail")), called.count(("fail", "pass"))
    others = sum(arm != "ensemble" for arm in newest["arm"])
    assert (f"<b>W-1</b> (lot LOT-9): 64 dies, 20 labelled: {escapes} escapes, {overkill} "
            f"overkill; {others} decided by an arm other than the ensemble.") in html  # fmt: skip
    # The drift section, from the champion's reference in the store.
    assert "Drift: is the window's input like the training data?" in html
    assert "<th>lot LOT-9</th>" in html and 'alt="drift histogram ' in html
