"""The three things that change as data: a new model family, a new combiner, a new arm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from train.synthetic import feature_rows

from .conftest import AUTH, ROOT, base_env, running, trained_decision

pytestmark = pytest.mark.integration

LOGREG = "tests.fixtures.logreg_family:FAMILY"


@pytest.fixture(scope="module")
def four_family_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store trained with a fourth family, registered only by the plugin setting."""
    home = tmp_path_factory.mktemp("four_families")
    run = subprocess.run(
        [sys.executable, "-m", "train.cli", "train", "--tiny", "--n-devices", "2000"],
        cwd=ROOT,
        env=base_env(home, family_plugins=LOGREG),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "saved logreg: yield-logreg:" in run.stdout
    return home


def test_a_fourth_family_votes_through_the_registry_only(
    four_family_home: Path, tmp_path: Path
) -> None:
    members = {"random_forest", "xgboost", "keras", "logreg"}
    with running(four_family_home, tmp_path, family_plugins=LOGREG, challenger_fraction="0") as srv:
        rows = feature_rows(20, seed=41)
        one = httpx.post(f"{srv.url}/predict", json={"features": rows[0], "device_id": "F4-0"})
        assert one.status_code == 200, one.text
        body = one.json()
        assert set(body["votes"]) == members and set(body["model_versions"]) == members
        assert not body["degraded"]
        votes = sorted(body["votes"].values())
        # Four voters: a 2-2 tie goes to the mean probability, else the majority.
        passes = sum(v >= 0.5 for v in votes)
        expected = passes > 2 or (passes == 2 and sum(votes) / 4 >= 0.5)
        assert (body["prediction"] == "pass") == expected
        batch = httpx.post(
            f"{srv.url}/predict_batch",
            json={"devices": [{"device_id": f"F4-{i}", "features": r} for i, r in enumerate(rows)]},
        ).json()
        assert all(set(r["votes"]) == members for r in batch["results"])
        outcomes = [{"device_id": f"F4-{i}", "actual": "pass"} for i in range(len(rows))]
        fb = httpx.post(f"{srv.url}/feedback", headers=AUTH, json={"outcomes": outcomes})
        assert fb.json()["counts"]["unknown"] == 0, fb.text
        report = httpx.get(f"{srv.url}/ab/report", headers=AUTH).json()
    assert set(report["shadow"]) == members
    assert report["shadow"]["logreg"]["paired"] == len(rows)


def test_a_three_arm_split_serves_logs_and_reports(model_home: Path, tmp_path: Path) -> None:
    arms = (
        '[{"name": "challenger", "serves": "xgboost", "share": 0.25},'
        ' {"name": "forest", "serves": "random_forest", "share": 0.25}]'
    )
    data_dir = tmp_path / "data"
    with running(model_home, tmp_path, arms=arms, data_dir=str(data_dir)) as srv:
        rows = feature_rows(400, seed=43)
        devices = [{"device_id": f"A3-{i}", "features": r} for i, r in enumerate(rows)]
        served = httpx.post(
            f"{srv.url}/predict_batch", json={"devices": devices}, timeout=60
        ).json()["results"]
        by_arm: dict[str, list[dict[str, object]]] = {}
        for r in served:
            by_arm.setdefault(str(r["arm"]), []).append(r)
        assert set(by_arm) == {"ensemble", "challenger", "forest"}
        assert all(set(r["votes"]) == {"random_forest"} for r in by_arm["forest"])
        decision = trained_decision(model_home)
        forest = decision.single("random_forest")
        assert forest.key.startswith("single:1@") and forest.calibration
        for r in by_arm["forest"]:
            assert (r["combiner"], r["threshold"]) == (forest.key, forest.threshold)
            p = {"random_forest": np.array([r["votes"]["random_forest"]])}
            assert r["prediction"] == ("pass" if forest.combine(p)[0][0] else "fail")
        assert 60 < len(by_arm["forest"]) < 140  # a quarter of 400 sticky keys
        outcomes = [{"request_id": r["request_id"], "actual": "pass"} for r in served]
        httpx.post(f"{srv.url}/feedback", headers=AUTH, json={"outcomes": outcomes}, timeout=60)
        report = httpx.get(f"{srv.url}/ab/report", headers=AUTH).json()
        html_out = tmp_path / "report.html"
        render = subprocess.run(
            [sys.executable, "-m", "ledger.cli", "report", "--out", str(html_out)],
            cwd=ROOT,
            env=base_env(model_home, data_dir=str(data_dir), arms=arms),
            capture_output=True,
            text=True,
        )
    assert set(report["arms"]) == {"ensemble", "challenger", "forest"}
    assert report["arms"]["forest"]["labelled"] == len(by_arm["forest"])
    assert report["arms"]["forest"]["share"] == 0.25
    assert set(report["comparisons"]) == {"challenger", "forest"}
    assert {c["correction"] for c in report["comparisons"].values()} == {"Holm"}
    assert render.returncode == 0, render.stderr[-2000:]
    page = html_out.read_text()
    assert "forest minus ensemble" in page  # one orientation everywhere: arm minus ensemble
    assert "Shadow: every combiner" in page and "cost per die" in page
    assert f"decision of training run {decision.run}" in page
    for name in ("majority (served)", "soft", "weighted", "stacked"):
        assert f"<th>{name}</th>" in page


def test_a_second_combiner_is_chosen_by_setting(model_home: Path, tmp_path: Path) -> None:
    with running(model_home, tmp_path, combiner="soft", challenger_fraction="0") as srv:
        rows = feature_rows(60, seed=44)
        answers = [httpx.post(f"{srv.url}/predict", json={"features": r}).json() for r in rows]
        again = httpx.post(f"{srv.url}/predict", json={"features": rows[0]}).json()
    soft = trained_decision(model_home).combiner("soft")
    assert soft.key.startswith("soft:1@")
    for a in answers:
        assert (a["combiner"], a["threshold"]) == (soft.key, soft.threshold)
        passed, probability = soft.combine({m: np.array([v]) for m, v in a["votes"].items()})
        assert a["prediction"] == ("pass" if passed[0] else "fail")
        assert a["probability"] == pytest.approx(probability[0])
    assert again["cached"] and again["combiner"] == soft.key
