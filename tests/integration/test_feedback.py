"""Prediction log, feedback and the A/B report through a real server, on a known scenario."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from models.families import member_names
from train.synthetic import feature_rows

from .conftest import AUTH, ROOT, base_env, running, trained_decision

pytestmark = pytest.mark.integration

N_DEVICES = 1000


def _flip(label: str) -> str:
    return "fail" if label == "pass" else "pass"


def test_feedback_joins_and_report_gives_the_known_accuracies(
    model_home: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    with running(model_home, tmp_path, challenger_fraction="0.3", data_dir=str(data_dir)) as srv:
        devices = [
            {"device_id": f"D{i}", "features": r}
            for i, r in enumerate(feature_rows(N_DEVICES, seed=11))
        ]
        served = httpx.post(
            f"{srv.url}/predict_batch", json={"devices": devices}, timeout=60
        ).json()["results"]
        by_arm = {"ensemble": [], "challenger": []}
        for r in served:
            by_arm[r["arm"]].append(r)
        assert len(by_arm["challenger"]) > 200
        # Ground truth made up so the ensemble arm is right on 90% of its devices and
        # the challenger on 70% of its own: label i of an arm agrees unless i % 10 < k.
        truth: dict[str, str] = {}
        for arm, wrong_per_10 in (("ensemble", 1), ("challenger", 3)):
            for i, r in enumerate(by_arm[arm]):
                truth[r["request_id"]] = (
                    _flip(r["prediction"]) if i % 10 < wrong_per_10 else r["prediction"]
                )
        # Half the outcomes by request id, half by device id; plus two unknowns.
        outcomes = [
            {"request_id": r["request_id"], "actual": truth[r["request_id"]]}
            if n % 2
            else {"device_id": r["device_id"], "actual": truth[r["request_id"]]}
            for n, r in enumerate(served)
        ]
        outcomes += [
            {"request_id": "no-such-id", "actual": "pass"},
            {"device_id": "D-unknown", "actual": "fail"},
        ]
        fb = httpx.post(
            f"{srv.url}/feedback", headers=AUTH, json={"outcomes": outcomes}, timeout=60
        ).json()
        assert fb["received"] == N_DEVICES + 2
        assert fb["counts"] == {"recorded": N_DEVICES, "replaced": 0, "unchanged": 0, "unknown": 2}
        assert [u["index"] for u in fb["unknown"]] == [N_DEVICES, N_DEVICES + 1]
        assert fb["unknown"][1]["device_id"] == "D-unknown"

        again = httpx.post(
            f"{srv.url}/feedback", headers=AUTH, json={"outcomes": outcomes[:10]}, timeout=60
        ).json()
        assert again["counts"]["unchanged"] == 10  # idempotent

        report = httpx.get(f"{srv.url}/ab/report", headers=AUTH, timeout=60).json()
        for arm, wrong_per_10 in (("ensemble", 1), ("challenger", 3)):
            n = len(by_arm[arm])
            right = sum(1 for i in range(n) if i % 10 >= wrong_per_10)
            a = report["arms"][arm]
            assert (a["served"], a["labelled"]) == (n, n)
            assert (a["accuracy"]["k"], a["accuracy"]["n"]) == (right, n)
        assert report["comparisons"]["challenger"]["arm_minus_ensemble"] == pytest.approx(
            report["arms"]["challenger"]["accuracy"]["value"]
            - report["arms"]["ensemble"]["accuracy"]["value"]
        )
        # Shadow: each member alone (its fitted rule) and each combiner, against the same
        # truth, recomputed here from the votes in the responses.
        decision = trained_decision(model_home)
        ens = by_arm["ensemble"]
        actual = np.array([truth[r["request_id"]] == "pass" for r in ens])
        votes = {m: np.array([r["votes"][m] for r in ens]) for m in member_names()}
        for member in member_names():
            right = int(np.sum(decision.single(member).combine(votes)[0] == actual))
            s = report["shadow"][member]
            assert (s["paired"], s["member_accuracy"]["k"]) == (len(ens), right)
        served_key = ens[0]["combiner"]
        for name, combiner in decision.combiners.items():
            passed = combiner.combine(votes)[0]
            s = report["shadow_combiners"][name]
            assert (s["paired"], s["accuracy"]["k"]) == (len(ens), int(np.sum(passed == actual)))
            assert s["escapes"] == int(np.sum(passed & ~actual))
            assert s["overkill"]["k"] == int(np.sum(~passed & actual))
            assert s["served"] == (combiner.key == served_key)
        assert sum(s["served"] for s in report["shadow_combiners"].values()) == 1
        # Escapes and overkill per arm, from the served answers.
        for arm, rows in by_arm.items():
            called = np.array([r["prediction"] == "pass" for r in rows])
            truly = np.array([truth[r["request_id"]] == "pass" for r in rows])
            a = report["arms"][arm]
            assert a["escapes"] == int(np.sum(called & ~truly))
            assert (a["overkill"]["k"], a["overkill"]["n"]) == (
                int(np.sum(~called & truly)),
                int(truly.sum()),
            )
            assert a["cost"]["value"] == pytest.approx(1 - a["accuracy"]["value"])  # 1:1 costs

        only = httpx.get(f"{srv.url}/ab/report", headers=AUTH, params={"arm": "challenger"}).json()
        assert only["arms"]["ensemble"]["labelled"] == 0
        later = httpx.get(
            f"{srv.url}/ab/report", headers=AUTH, params={"since": "2999-01-01T00:00:00Z"}
        ).json()
        assert later["labelled"] == 0

        # A changed outcome replaces the old one and moves the accuracy by one device.
        first = by_arm["ensemble"][0]
        changed = {"request_id": first["request_id"], "actual": _flip(truth[first["request_id"]])}
        assert (
            httpx.post(f"{srv.url}/feedback", headers=AUTH, json={"outcomes": [changed]}).json()[
                "counts"
            ]["replaced"]
            == 1
        )
        after = httpx.get(f"{srv.url}/ab/report", headers=AUTH).json()["arms"]["ensemble"][
            "accuracy"
        ]["k"]
        assert after == report["arms"]["ensemble"]["accuracy"]["k"] + 1

    # The HTML report from the same log, after the server is gone.
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "train.cli", "report", "--out", str(out)],
        cwd=ROOT,
        env=base_env(model_home, data_dir=str(data_dir), challenger_fraction="0.3"),
        capture_output=True,
        text=True,
        check=True,
    )
    page = out.read_text()
    # Four charts (inline SVG) and the drift section's histogram (a PNG).
    assert page.startswith("<!doctype html>") and page.count('<figure id="chart-') == 4
    assert page.count('<img alt="drift histogram ') == 1
    assert done.stdout.splitlines()[0] in page  # the conclusion is on the page
    assert "Shadow: each member alone" in page and "Shadow: every combiner" in page
    assert page.count("<th>escapes</th>") == 3  # arms, members, combiners
    assert "Model versions on the ensemble arm" in page and "(newest)" in page


def test_report_without_a_log_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "train.cli", "report", "--out", str(tmp_path / "r.html")],
        cwd=ROOT,
        env=base_env(tmp_path, data_dir=str(tmp_path / "nothing")),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no prediction log" in done.stderr


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcomes": []}, "outcomes"),
        ({"outcomes": [{"request_id": "a", "actual": "maybe"}]}, "outcomes[0].actual"),
        ({"outcomes": [{"actual": "pass"}]}, "outcomes[0]"),
        ({"outcomes": [{"request_id": "a", "device_id": "b", "actual": "pass"}]}, "outcomes[0]"),
        ({"outcomes": [{"request_id": "a", "actual": "pass", "x": 1}]}, "outcomes[0].x"),
        ({"outcomes": {"request_id": "a"}}, "outcomes"),
    ],
)
def test_bad_feedback_is_422_naming_the_field(server, body, field) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{server.url}/feedback", headers=AUTH, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


@pytest.mark.parametrize(
    ("params", "field"),
    [({"arm": "both"}, "arm"), ({"since": "yesterday"}, "since"), ({"window": "1h"}, "window")],
)
def test_bad_report_query_is_422(server, params, field) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(f"{server.url}/ab/report", headers=AUTH, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_unwritable_log_stops_start_up(model_home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service:YieldEnsemble", "--port", "0"],
        cwd=ROOT,
        env=base_env(model_home, data_dir=str(blocker / "data")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "prediction log" in proc.stdout + proc.stderr


@pytest.mark.skipif(not os.environ.get("YE_TEST_POSTGRES_URL"), reason="YE_TEST_POSTGRES_URL unset")
def test_the_service_logs_to_postgresql(model_home: Path, tmp_path: Path) -> None:
    """What replicas share: predictions, feedback and the report through PostgreSQL."""
    import sqlalchemy as sa

    from ledger.migrate import drop_all

    url = os.environ["YE_TEST_POSTGRES_URL"]
    engine = sa.create_engine(url)
    drop_all(engine)
    with running(model_home, tmp_path, database_url=url, challenger_fraction="0") as srv:
        body = httpx.post(
            f"{srv.url}/predict", json={"features": feature_rows(1)[0], "device_id": "PG-1"}
        ).json()
        fb = httpx.post(
            f"{srv.url}/feedback",
            headers=AUTH,
            json={"outcomes": [{"device_id": "PG-1", "actual": body["prediction"]}]},
        ).json()
        assert fb["counts"]["recorded"] == 1
        report = httpx.get(f"{srv.url}/ab/report", headers=AUTH).json()
        assert report["arms"]["ensemble"]["accuracy"]["k"] == 1
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT request_id FROM predictions")).scalar()
            == body["request_id"]
        )
    engine.dispose()
