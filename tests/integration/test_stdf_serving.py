"""A tester's file end to end on a real server: train from it, predict it, feed outcomes back.

Reads the real wafer-sort file (``../shared/testdata/stdf/lot2.stdf.gz``): 1,569 PRRs,
which are 1,456 dies and 113 retests of failing dies.
"""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stdf.decode import decode
from tests.integration.conftest import AUTH, LOT2, metric, needs_lot2, running, scrape
from tests.serving import Server

pytestmark = [pytest.mark.integration, needs_lot2]
OCTETS = {"Content-Type": "application/octet-stream"}
SENT_BY = {**AUTH, **OCTETS}


@pytest.fixture(scope="module")
def stdf_server(
    stdf_trained: tuple[Path, subprocess.CompletedProcess[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    home, run = stdf_trained
    assert run.returncode == 0, run.stderr[-3000:]
    with running(home, tmp_path_factory.mktemp("stdf_serve"), challenger_fraction="0.1") as srv:
        yield srv


def _served(url: str) -> float:
    return sum(
        v for (name, _), v in scrape(url).items() if name == "yield_ensemble_predictions_total"
    )


def test_a_file_is_answered_die_by_die_and_logged(stdf_server: Server) -> None:
    url = stdf_server.url
    data = LOT2.read_bytes()
    parts = decode(data, max_bytes=1 << 30)
    r = httpx.post(f"{url}/predict_stdf", content=data, headers=OCTETS, timeout=120)
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    columns = body["columns"]
    assert body["count"] == len(parts) == 1456 and body["retests"] == 113
    assert columns["device_id"] == [str(p) for p in parts.part_id]
    assert columns["die_x"] == parts.x.tolist() and columns["die_y"] == parts.y.tolist()
    assert set(columns["prediction"]) <= {"pass", "fail"}
    assert set(columns["arm"]) <= {"ensemble", "challenger"}
    (wafer,) = body["wafers"]
    assert wafer["dies"] == 1456 and wafer["retests"] == 113
    assert wafer["predicted_pass"] == columns["prediction"].count("pass")
    assert 0 < wafer["untested"] < 1456  # dies that stopped before any PTR: said, not hidden
    # Logged like a wafer: the dashboard reads it back, die by die.
    w = httpx.get(f"{url}/dashboard/wafers/{wafer['wafer_id']}", headers=AUTH, timeout=30)
    assert w.status_code == 200 and w.json()["dies"] == 1456, w.text[:300]
    # The same file uncompressed is the same answer.
    raw = httpx.post(f"{url}/predict_stdf", content=gzip.decompress(data), headers=OCTETS,
                     timeout=120)  # fmt: skip
    assert raw.json()["columns"]["prediction"] == columns["prediction"]


def test_outcomes_from_a_file_reach_the_report(stdf_server: Server) -> None:
    url = stdf_server.url
    data = LOT2.read_bytes()
    httpx.post(f"{url}/predict_stdf", content=data, headers=OCTETS, timeout=120)
    r = httpx.post(f"{url}/feedback_stdf", content=data, headers=SENT_BY, timeout=120)
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["received"] == 1456 and body["counts"]["unknown"] == 0
    assert body["counts"]["recorded"] + body["counts"]["unchanged"] == 1456
    report = httpx.get(f"{url}/ab/report", headers=AUTH, timeout=60).json()
    labelled = sum(a["labelled"] for a in report["arms"].values())
    assert labelled >= 1456, report["arms"]
    # Sent again: nothing changes, and the history says who sent it (the key's id).
    again = httpx.post(f"{url}/feedback_stdf", content=data, headers=SENT_BY, timeout=120)
    assert again.json()["counts"]["unchanged"] == 1456


def test_feedback_for_dies_never_predicted_lists_them(tmp_path: Path, stdf_server: Server) -> None:
    from tests.stdf_writer import StdfWriter

    writer = StdfWriter(">").far().mir("LOT-NEW").wir("W-UNSEEN").pir()
    data = bytes(writer.prr("1", x=3, y=4).wrr().mrr())
    r = httpx.post(f"{stdf_server.url}/feedback_stdf", content=data, headers=SENT_BY, timeout=30)
    assert r.status_code == 200, r.text
    (unknown,) = r.json()["unknown"]
    assert unknown["wafer_id"] == "W-UNSEEN" and (unknown["die_x"], unknown["die_y"]) == (3, 4)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"hello, not a tester file", "not an STDF"),
        (None, "truncated"),  # lot2 cut in the middle of a record
        (b"", "empty"),
    ],
)
def test_a_bad_file_is_refused_naming_it_and_nothing_is_logged(
    stdf_server: Server, data: bytes | None, words: str
) -> None:
    url = stdf_server.url
    if data is None:
        data = gzip.decompress(LOT2.read_bytes())[:100_003]
    before = _served(url)
    r = httpx.post(f"{url}/predict_stdf", content=data, headers=OCTETS, timeout=60)
    assert r.status_code == 422, r.text
    assert words in r.json()["error"] and r.json()["field"] == "body"
    assert _served(url) == before
    assert metric(scrape(url), "yield_ensemble_errors_total", kind="bad_input") >= 1


def test_json_is_refused_with_415_and_a_json_model_with_422(
    stdf_server: Server, server: Server
) -> None:
    r = httpx.post(f"{stdf_server.url}/predict_stdf", json={"features": []}, timeout=30)
    assert r.status_code == 415 and "application/octet-stream" in r.json()["error"]
    # The shared server's model was trained on JSON features: it has no test map.
    r = httpx.post(f"{server.url}/predict_stdf", content=LOT2.read_bytes(), headers=OCTETS,
                   timeout=60)  # fmt: skip
    assert r.status_code == 422 and "not trained from STDF" in r.json()["error"]


def test_the_file_routes_are_documented(stdf_server: Server) -> None:
    spec = httpx.get(f"{stdf_server.url}/docs.json", timeout=30).json()
    for path in ("/predict_stdf", "/feedback_stdf"):
        op = spec["paths"][path]["post"]
        assert "application/octet-stream" in op["requestBody"]["content"], path
        assert {"200", "413", "415", "422", "503"} <= set(op["responses"]), path
    assert {"401", "403"} <= set(spec["paths"]["/feedback_stdf"]["post"]["responses"])
