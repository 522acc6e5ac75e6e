"""The findings of a hostile client and a failing disk, each against a real `bentoml serve`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from train.synthetic import feature_rows

from .conftest import (
    AUTH,
    FEEDBACK_SECRET,
    REPORT_SECRET,
    metric,
    running,
    scrape,
)

pytestmark = pytest.mark.integration

POISON = {"features": [1.2, 1e39, 2000, 25, 50, 0.95]}  # finite in float64, not in float32


def _strict(response: httpx.Response) -> dict[str, object]:
    """The body as strict JSON (NaN or Infinity raise)."""

    def refuse(token: str) -> None:
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(response.text, parse_constant=refuse)  # type: ignore[no-any-return]


def _logged(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "predictions.db") as db:
        return {rid for (rid,) in db.execute("SELECT request_id FROM predictions")}


def test_finding_1_float32_overflow_is_422_and_the_log_keeps_writing(server) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{server.url}/predict", json=POISON)
    assert r.status_code == 422 and _strict(r)["field"] == "features[1] (idd_ma)"
    big_int = httpx.post(
        f"{server.url}/predict",
        content='{"features": [1.2, 1' + "0" * 400 + ", 2000, 25, 50, 0.95]}",
        headers={"Content-Type": "application/json"},
    )
    assert big_int.status_code == 422 and _strict(big_int)["field"] == "features[1] (idd_ma)"
    batch = httpx.post(
        f"{server.url}/predict_batch", json={"devices": [{"features": [0] * 6}, POISON]}
    )
    assert batch.status_code == 422 and _strict(batch)["field"] == "devices[1].features[1] (idd_ma)"
    # Extreme but float32-finite values: answered, strict JSON, and logged.
    extreme = httpx.post(f"{server.url}/predict", json={"features": [3e38] * 6})
    assert extreme.status_code == 200, extreme.text
    body = _strict(extreme)
    later = httpx.post(f"{server.url}/predict", json={"features": feature_rows(1, seed=3)[0]})
    fb = httpx.post(
        f"{server.url}/feedback",
        headers=AUTH,
        json={"outcomes": [{"request_id": str(body["request_id"]), "actual": "pass"},
                           {"request_id": later.json()["request_id"], "actual": "pass"}]},
    )  # fmt: skip
    assert fb.json()["counts"]["unknown"] == 0, fb.text
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_finding_2_ground_truth_needs_a_key_with_the_role(server) -> None:  # type: ignore[no-untyped-def]
    served = httpx.post(
        f"{server.url}/predict", json={"features": feature_rows(1)[0], "device_id": "fb-3"}
    ).json()
    flipped = "fail" if served["prediction"] == "pass" else "pass"
    outcome = {"outcomes": [{"device_id": "fb-3", "actual": flipped}]}
    anonymous = httpx.post(f"{server.url}/feedback", json=outcome)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert _strict(anonymous)["request_id"] == anonymous.headers["x-bentoml-request-id"]
    wrong = httpx.post(
        f"{server.url}/feedback", json=outcome, headers={"Authorization": "Bearer not-a-key-at-all"}
    )
    assert wrong.status_code == 401
    reporter = {"Authorization": f"Bearer {REPORT_SECRET}"}
    forbidden = httpx.post(f"{server.url}/feedback", json=outcome, headers=reporter)
    assert forbidden.status_code == 403 and "dashboard" in forbidden.json()["error"]
    assert httpx.get(f"{server.url}/ab/report").status_code == 401
    assert httpx.get(f"{server.url}/ab/report", headers=reporter).status_code == 200
    line = {"Authorization": f"Bearer {FEEDBACK_SECRET}"}
    first = httpx.post(
        f"{server.url}/feedback",
        json={"outcomes": [{"device_id": "fb-3", "actual": served["prediction"]}]},
        headers=line,
    )
    assert first.json()["counts"]["recorded"] == 1
    second = httpx.post(f"{server.url}/feedback", json=outcome, headers=AUTH)
    assert second.json()["counts"] == {"recorded": 0, "replaced": 1, "unchanged": 0, "unknown": 0}
    history = httpx.get(f"{server.url}/ab/report", headers=reporter).json()["ground_truth"]
    change = next(
        c for c in history["latest_replacements"] if c["request_id"] == served["request_id"]
    )
    assert (change["old"], change["new"], change["sent_by"]) == (
        served["prediction"],
        flipped,
        "ops",
    )
    assert history["by_sender"]["line-tester"]["outcomes"] >= 1
    time.sleep(0.3)
    assert FEEDBACK_SECRET not in server.log_text() and REPORT_SECRET not in server.log_text()


def test_finding_4_bodies_and_echoes_are_bounded(model_home: Path, tmp_path: Path) -> None:
    with running(model_home, tmp_path, max_body_mb="1") as srv:
        big = b'{"devices": [' + b'{"features": [1,2,3,4,5,6]},' * 60_000 + b"{}]}"
        declared = httpx.post(
            f"{srv.url}/predict_batch", content=big, headers={"Content-Type": "application/json"}
        )
        assert declared.status_code == 413 and "request_id" in _strict(declared)

        def chunks():  # no Content-Length: the limit counts what arrives
            for _ in range(40):
                yield b" " * 65536

        chunked = httpx.post(
            f"{srv.url}/predict", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413, chunked.text
        key = "k" * 500_000
        echoed = httpx.post(f"{srv.url}/predict", json={"features": {key: 1.0}})
        assert echoed.status_code == 422 and len(echoed.text) < 1000
        time.sleep(0.3)
        assert "k" * 1000 not in srv.log_text()
        assert httpx.get(f"{srv.url}/readyz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        (
            "POST",
            "/predict",
            {"content": b"--x", "headers": {"Content-Type": "multipart/form-data"}},
            415,
        ),
        (
            "POST",
            "/feedback",
            {"content": b"x", "headers": {"Content-Type": "multipart/form-data", **AUTH}},
            415,
        ),
        ("GET", "/ab/report?since=inf", {"headers": AUTH}, 422),
        ("GET", "/ab/report?since=nan", {"headers": AUTH}, 422),
        ("GET", "/ab/report?since=1e309", {"headers": AUTH}, 422),
        ("GET", "/ab/report?since=1e30", {"headers": AUTH}, 422),
        ("GET", "/ab/report?since=2000&until=1000", {"headers": AUTH}, 422),
        (
            "POST",
            "/predict",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("POST", "/predict", {"json": {"device_id": "no-features"}}, 400),
    ],
)
def test_finding_5_client_errors_are_4xx_json_with_a_request_id(  # type: ignore[no-untyped-def]
    server, method, path, kwargs, status
) -> None:
    with httpx.Client(base_url=server.url) as http:
        r = http.request(method, path, **kwargs)
        assert r.status_code == status, r.text
        body = _strict(r)
        assert body["request_id"] == r.headers["x-bentoml-request-id"] and body["error"]
        assert http.get("/livez").status_code == 200  # the connection is still usable


def test_finding_6_client_errors_log_one_warning_and_are_counted(
    model_home: Path, tmp_path: Path
) -> None:
    with running(model_home, tmp_path) as srv:
        before = scrape(srv.url)
        bad = [
            httpx.post(
                f"{srv.url}/predict", content=b"{", headers={"Content-Type": "application/json"}
            ),
            httpx.post(f"{srv.url}/predict", json={"nothing": 1}),
            httpx.post(f"{srv.url}/predict", json=POISON),
            httpx.post(f"{srv.url}/feedback", json={"outcomes": []}),
            httpx.get(f"{srv.url}/ab/report", headers=AUTH, params={"since": "inf"}),
        ]
        assert [r.status_code for r in bad] == [400, 422, 422, 401, 422]
        text = srv.log_when(lambda log: all(r.json()["request_id"] in log for r in bad))
        after = scrape(srv.url)
        lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
        ok = httpx.get(f"{srv.url}/ab/report", headers=AUTH)
        report_lines = [
            json.loads(x)
            for x in srv.log_when(lambda log: ok.json()["request_id"] in log).splitlines()
            if x.startswith("{") and ok.json()["request_id"] in x
        ]
    for r in bad:
        mine = [x for x in lines if x.get("request_id") == r.json()["request_id"]]
        assert len(mine) == 1 and mine[0]["level"] == "WARNING", (r.text, mine)
    assert "Traceback" not in text
    kinds = {"bad_input": 4, "unauthenticated": 1}
    for kind, n in kinds.items():
        got = metric(after, "yield_ensemble_errors_total", kind=kind)
        assert got - metric(before, "yield_ensemble_errors_total", kind=kind) == n
    assert len(report_lines) == 1 and report_lines[0]["key_id"] == "ops"


def test_finding_7_readyz_answers_within_a_second_while_a_member_is_stopped(
    model_home: Path, tmp_path: Path
) -> None:
    with running(model_home, tmp_path) as srv:
        member = _member_pid(srv.proc.pid, "yield_keras")
        os.kill(member, signal.SIGSTOP)
        try:
            for _ in range(3):
                started = time.monotonic()
                r = httpx.get(f"{srv.url}/readyz", timeout=5)
                assert time.monotonic() - started < 1.0
                assert r.status_code in (200, 503)
        finally:
            os.kill(member, signal.SIGCONT)
        assert httpx.get(f"{srv.url}/readyz", timeout=5).status_code == 200


def _member_pid(serve_pid: int, name: str) -> int:
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid,ppid,args"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines()[1:]:
        pid, ppid, args = line.strip().split(None, 2)
        if int(ppid) == serve_pid and name in args:
            return int(pid)
    raise AssertionError(f"no member process {name} under {serve_pid}:\n{out}")


def _load(url: str, stop: threading.Event, answered: list[str], failures: list[object]) -> None:
    rows = feature_rows(50, seed=4)
    with httpx.Client(base_url=url, timeout=30) as http:
        n = 0
        while not stop.is_set():
            try:
                r = http.post("/predict", json={"features": rows[n % len(rows)]})
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
                time.sleep(0.05)
                continue
            if r.status_code == 200:
                answered.append(r.json()["request_id"])
            else:
                failures.append(r.status_code)
            n += 1


@contextlib.contextmanager
def _tmpfs(path: Path) -> Iterator[Path]:
    """A small filesystem of our own at ``path``, to turn read-only and back."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _can_mount() -> bool:
    return (
        os.geteuid() == 0
        and subprocess.run(["which", "mount"], capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a tmpfs")
@pytest.mark.parametrize("poisoned", [False, True])
def test_finding_3_a_read_only_database_under_load_loses_nothing(
    model_home: Path, tmp_path: Path, poisoned: bool
) -> None:
    """The database's filesystem turns read-only, then writable, while 8 clients send."""
    with _tmpfs(tmp_path / "db") as data:
        settings = {
            "data_dir": str(data),
            "prediction_log_spill_dir": str(tmp_path / "spill"),
            "cache_maxsize": "0",
            "prediction_log_flush_interval_s": "0.1",
        }
        with running(model_home, tmp_path, **settings) as srv:
            if poisoned:
                assert httpx.post(f"{srv.url}/predict", json=POISON).status_code == 422
            stop, answered, failures = threading.Event(), [], []
            clients = [
                threading.Thread(target=_load, args=(srv.url, stop, answered, failures))
                for _ in range(8)
            ]
            for c in clients:
                c.start()
            time.sleep(1.5)
            _remount(data, "ro")
            time.sleep(2.5)
            during = len(answered)
            ready_during = httpx.get(f"{srv.url}/readyz", timeout=5).status_code
            _remount(data, "rw")
            time.sleep(1.5)
            stop.set()
            for c in clients:
                c.join(30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if httpx.get(f"{srv.url}/readyz", timeout=5).status_code == 200:
                    break
                time.sleep(0.2)
            assert httpx.get(f"{srv.url}/readyz", timeout=5).status_code == 200
            deadline = time.monotonic() + 20
            while not set(answered) <= _logged(data) and time.monotonic() < deadline:
                time.sleep(0.3)
            m = scrape(srv.url)
            alive = httpx.get(f"{srv.url}/livez").status_code
        assert srv.proc.returncode == 0, srv.log_text()[-3000:]
        assert "Fatal Python error" not in srv.log_text()
        logged = _logged(data)
    assert failures == [] and during > 50 and alive == 200
    assert ready_during == 200  # the spill took the rows meanwhile
    assert metric(m, "yield_ensemble_prediction_log_rows_total", outcome="spilled") > 0
    assert metric(m, "yield_ensemble_prediction_log_rows_total", outcome="lost") == 0
    assert set(answered) <= logged


def _remount(path: Path, mode: str) -> None:
    """Remount, retrying while a write holds the file open (EBUSY for a moment)."""
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True)
        if r.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(r.stderr.decode())
        time.sleep(0.01)


@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a tmpfs")
def test_a_log_with_nowhere_to_write_fails_livez_then_the_exit_code(
    model_home: Path, tmp_path: Path
) -> None:
    """Database read-only, no usable spill and so no journal: once the writer has found
    that, predictions are refused (503 naming all three); what was answered before is
    held in memory: unready, then not alive, then exit 1 saying the rows were lost."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with _tmpfs(tmp_path / "db") as data:
        settings = {
            "data_dir": str(data),
            "prediction_log_spill_dir": str(blocker / "spill"),
            "prediction_log_stall_s": "2",
            "prediction_log_flush_interval_s": "0.1",
        }
        with running(model_home, tmp_path, **settings) as srv:
            _remount(data, "ro")
            rows, answered = feature_rows(100, seed=9), []
            for r in rows:
                answered.append(httpx.post(f"{srv.url}/predict", json={"features": r}))
                if answered[-1].status_code != 200:
                    break
                time.sleep(0.05)
            deadline = time.monotonic() + 15
            while httpx.get(f"{srv.url}/livez").status_code == 200:
                assert time.monotonic() < deadline, "livez never failed"
                time.sleep(0.3)
            assert httpx.get(f"{srv.url}/readyz", timeout=5).status_code == 503
            code = srv.stop()
        text = srv.log_text()
    codes = [a.status_code for a in answered]
    assert codes[0] == 200 and codes[-1] == 503 and set(codes[:-1]) == {200}, codes
    refusal = answered[-1].json()["error"]
    assert "the spill fails" in refusal and "the journal fails (not open)" in refusal
    assert "not serving predictions it cannot record" in refusal
    assert code == 1, text[-3000:]
    assert "rows lost" in text and "exiting 1" in text


def test_finding_8_no_request_forges_a_log_line_or_stores_a_control_character(  # type: ignore[no-untyped-def]
    server,
) -> None:
    """Found by trying: a NUL in a wafer id was stored on SQLite and dead-lettered on
    PostgreSQL (its text refuses NUL), and an encoded newline in a path started a forged
    line in BentoML's text access log."""
    forged = "%0A2026-11-27T00:00:00+0000 [ERROR] [entry_service:yield_ensemble:1] FORGED"
    rows = feature_rows(1, seed=3)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = {
            "path": http.get(f"/nope{forged}"),
            # (a newline in it is a 404 of the router, whose mount does not match one)
            "dashboard path": http.get("/dashboard/wafers/W%001/map", headers=AUTH),
            "dashboard newline": http.get(f"/dashboard/wafers/W1{forged}/map", headers=AUTH),
            "device id": http.post("/predict", json={"features": rows[0], "device_id": "a\nb"}),
            "wafer id": http.post(
                "/predict_wafer", json={"features": rows, "wafer_id": "W\u00001"}
            ),
            "feedback": http.post(
                "/feedback", headers=AUTH,
                json={"outcomes": [{"device_id": "d\u0000", "actual": "pass"}]},
            ),
        }  # fmt: skip
    assert answers["path"].status_code == answers["dashboard newline"].status_code == 404
    fields = {"dashboard path": "wafer_id", "device id": "device_id", "wafer id": "wafer_id",
              "feedback": "outcomes[0].device_id"}  # fmt: skip
    for name, field in fields.items():
        r = answers[name]
        assert r.status_code == 422 and r.json()["field"] == field, (name, r.text)
        assert "control characters" in r.json()["error"]
    time.sleep(0.3)
    assert not [line for line in server.log_text().splitlines() if "FORGED" in line[:80]]


def test_finding_9_a_database_that_cannot_be_read_is_503_not_500(
    model_home: Path, tmp_path: Path
) -> None:
    """Found by trying: with the ledger's file overwritten by a failing disk, the reads and
    /feedback answered 500 "Internal Server Error"; now 503 naming the database error,
    logged and counted as ledger_unavailable, while predictions keep being answered."""
    data = tmp_path / "data"
    rows = feature_rows(4, seed=2)
    with running(model_home, tmp_path, data_dir=str(data)) as srv:
        assert httpx.post(f"{srv.url}/predict_wafer", json={"features": rows, "wafer_id": "W1"},
                          timeout=30).status_code == 200  # fmt: skip
        assert httpx.get(f"{srv.url}/dashboard/wafers/W1", headers=AUTH).status_code == 200
        with (data / "predictions.db").open("r+b") as db:
            db.write(b"\0" * 4096)  # the header and first page, gone
        answers = [
            httpx.get(f"{srv.url}{path}", headers=AUTH, timeout=30)
            for path in ("/dashboard/wafers", "/dashboard/wafers/W1", "/dashboard/wafers/W1/map",
                         "/dashboard/lots", "/ab/report")
        ]  # fmt: skip
        answers.append(
            httpx.post(f"{srv.url}/feedback", headers=AUTH, timeout=30,
                       json={"outcomes": [{"device_id": "d1", "actual": "pass"}]})
        )  # fmt: skip
        served = httpx.post(f"{srv.url}/predict", json={"features": rows[0]}, timeout=30)
        m = scrape(srv.url)
        text = srv.log_text()
    for r in answers:
        assert r.status_code == 503, (r.request.url, r.text)
        assert r.json()["error"].startswith("the ledger's database is unavailable now: ")
    assert served.status_code == 200
    assert metric(m, "yield_ensemble_errors_total", kind="ledger_unavailable") == len(answers)
    assert text.count('"message": "ledger unavailable"') == len(answers)
    assert "Traceback" not in text
