"""Champion and candidate versions on a real `bentoml serve`: promote and roll back under
load with no failed or mixed answer, replicas following one PostgreSQL ledger, the
operator's commands, and the guardrail."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from train.synthetic import feature_rows

from .conftest import ADMIN_SECRET, AUTH, REPORT_SECRET, ROOT, base_env, metric, running, scrape

pytestmark = pytest.mark.integration
CLIENTS = 16
STORE_NAMES = {"random_forest": "yield-random-forest", "xgboost": "yield-xgboost",
               "keras": "yield-keras"}  # fmt: skip
V1 = {m: f"{s}:v1" for m, s in STORE_NAMES.items()}
V2 = {m: t.replace(":v1", ":v2") for m, t in V1.items()}


@pytest.fixture(scope="module")
def versions_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store with two training runs, v1 and v2 (other seeds, so other models)."""
    home = tmp_path_factory.mktemp("versions_home")
    # Both at once (a tiny training is mostly one core's Keras tracing): two stores, then
    # v2's run lands beside v1's as `train` would have written it.
    homes = {"v1": home, "v2": tmp_path_factory.mktemp("versions_home_v2")}
    errors = tmp_path_factory.mktemp("versions_training")
    runs = {}
    for version, seed in (("v1", "7"), ("v2", "8")):
        runs[version] = subprocess.Popen(
            [sys.executable, "-m", "train.cli", "train", "--tiny", "--n-devices", "3000",
             "--seed", seed, "--version", version],
            cwd=ROOT, env=base_env(homes[version]), stdout=subprocess.DEVNULL,
            stderr=(errors / version).open("wb"),
        )  # fmt: skip
    for version, run in runs.items():
        code = run.wait(600)
        assert code == 0, f"training {version} failed:\n{(errors / version).read_text()[-3000:]}"
    _land(homes["v2"], home, "v2")
    return home


def _cli(url: str, *args: str, key: str = ADMIN_SECRET) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YIELD_ENSEMBLE_URL": url, "YIELD_ENSEMBLE_API_KEY": key}
    return subprocess.run([sys.executable, "-m", "train.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=200)  # fmt: skip


def _version_of(tags: dict[str, str]) -> str:
    """The one version of a whole trio; fails on a mixed one."""
    found = {tag.split(":", 1)[1] for tag in tags.values()}
    assert len(found) == 1 and set(tags) == set(V1), f"not one whole trio: {tags}"
    return found.pop()


def test_promote_and_roll_back_under_load_without_a_failed_or_mixed_answer(
    versions_home: Path, tmp_path: Path
) -> None:
    rows = feature_rows(400, seed=5)
    settings = {"model_version": "v1", "candidate_version": "v2", "candidate_share": "0.3",
                "guardrail": "true", "guardrail_interval_s": "1"}  # fmt: skip
    with running(versions_home, tmp_path, **settings) as srv:
        answers: list[tuple[int, dict[str, Any]]] = []
        ready: list[int] = []
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                i = 0
                while not stop.is_set():
                    body = {"features": rows[(n * 37 + i) % len(rows)], "device_id": f"c{n}-{i}"}
                    r = http.post("/predict", json=body)
                    answers.append((r.status_code, r.json()))
                    i += 1

        def probe() -> None:
            with httpx.Client(base_url=srv.url, timeout=5) as http:
                while not stop.is_set():
                    ready.append(http.get("/readyz").status_code)
                    time.sleep(0.1)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        threads.append(threading.Thread(target=probe))
        for t in threads:
            t.start()
        try:
            time.sleep(3)
            promoted = _cli(srv.url, "promote", "--reason", "v2 better")
            time.sleep(3)
            rolled = _cli(srv.url, "rollback")
            time.sleep(3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert promoted.returncode == 0, promoted.stderr
        assert "champion   v2" in promoted.stdout and "previous   v1" in promoted.stdout
        assert rolled.returncode == 0 and "champion   v1" in rolled.stdout, rolled.stderr

        assert len(answers) > 300 and ready and set(ready) == {200}
        assert {status for status, _ in answers} == {200}
        assert not any(a["degraded"] for _, a in answers)
        seen: dict[str, str] = {}
        for _, a in answers:
            version = _version_of(a["model_versions"])
            assert a["combiner"].endswith(f"@{version}")
            if a["arm"] == "candidate":
                assert version == "v2"
            seen[a["request_id"]] = version
        # In order of answering: v1 serves the ensemble, then v2 after the promote, then v1.
        champion = [_version_of(a["model_versions"]) for _, a in answers if a["arm"] == "ensemble"]
        phases = [v for i, v in enumerate(champion) if i == 0 or v != champion[i - 1]]
        assert phases[0] == "v1" and "v2" in phases and phases[-1] == "v1"
        assert sum(a["arm"] == "candidate" for _, a in answers) > 0.1 * len(answers) / 3

        # The log holds every request with the versions its answer named.
        status = httpx.get(f"{srv.url}/admin/serving", headers=AUTH, timeout=10).json()
        assert [h["action"] for h in status["history"]] == ["rollback", "promote", "configure"]
        assert status["history"][1]["changed_by"] == "ops"
        assert status["history"][1]["reason"] == "v2 better"
        httpx.get(f"{srv.url}/ab/report", headers=AUTH, timeout=60)  # flushes the log
        db = sqlite3.connect(_db(tmp_path))
        logged = dict(db.execute("SELECT request_id, model_versions FROM predictions").fetchall())
        db.close()
        assert set(seen) <= set(logged)
        assert all(_version_of(json.loads(logged[rid])) == v for rid, v in seen.items())

        _check_admin_errors(srv.url)
        # The edge logged the refusals (kind and reason), as it does for every route.
        refusals = [line for line in srv.log_text().splitlines() if "request refused" in line]
        assert any('"/admin/serving/candidate"' in r and '"conflict"' in r for r in refusals)
        assert any('"/admin/serving/promote"' in r and '"bad_input"' in r for r in refusals)
        _check_guardrail(srv.url)
        _check_documented_examples(srv.url)


def _db(tmp_path: Path) -> Path:
    (found,) = tmp_path.glob("data-*/predictions.db")
    return found


def _check_admin_errors(url: str) -> None:
    def post(action: str, body: Any, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", AUTH)
        return httpx.post(f"{url}/admin/serving/{action}", json=body, headers=headers, timeout=60)

    for body, field in (
        ({"share": 0.2}, "version"),
        ({"version": "V2!", "share": 0.2}, "version"),
        ({"version": "latest", "share": 0.2}, "version"),
        ({"version": "v2"}, "share"),
        ({"version": "v2", "share": "0.2"}, "share"),
        ({"version": "v2", "share": 1.5}, "share"),
        ({"version": "v2", "share": 0.2, "force": True}, "force"),
        ({"version": "v2", "share": 0.2, "reason": 7}, "reason"),
        # NUL: PostgreSQL text refuses it, so the ledger would fail the change.
        ({"version": "v2", "share": 0.2, "reason": "retrained\u0000"}, "reason"),
        ([1, 2], "body"),
    ):
        r = post("candidate", body)
        status = 400 if field == "body" else 422
        assert r.status_code == status and r.json()["field"] == field, (body, r.text)
    for raw in (b"{", b"[" * 2000 + b"]" * 2000, b'{"reason": "' + b"x" * 5000 + b'"}'):
        r = httpx.post(f"{url}/admin/serving/promote", content=raw, headers=AUTH)
        assert r.status_code == 400 and r.json()["field"] == "body", r.text
    r = httpx.post(f"{url}/admin/serving/promote", content=b"x", headers={**AUTH,
                   "content-type": "text/plain"})  # fmt: skip
    assert r.status_code == 415
    assert post("promote", {}, headers={}).status_code == 401
    assert post("promote", {}, headers={"Authorization": f"Bearer {REPORT_SECRET}"}).status_code \
        == 403  # fmt: skip
    assert post("promote", {}).status_code == 409  # no candidate
    assert post("rollback", {}).status_code == 409  # rolled back already
    missing = post("candidate", {"version": "v9", "share": 0.2})
    assert missing.status_code == 409 and "yield-random-forest:v9" in missing.json()["error"]
    for bad in ("x", "\u00b2", "-1", "1001"):  # a superscript two is a digit int() refuses
        r = httpx.get(f"{url}/admin/serving", params={"history": bad}, headers=AUTH)
        assert r.status_code == 422 and r.json()["field"] == "history", (bad, r.text)
    assert httpx.get(f"{url}/admin/serving").status_code == 401
    # Nothing above changed the state.
    status = httpx.get(f"{url}/admin/serving?history=0", headers=AUTH).json()
    assert status["state"]["revision"] == 3 and status["history"] == []


def _check_guardrail(url: str) -> None:
    """A candidate the labels show worse is stopped by the guardrail, which says so."""
    started = _cli(url, "candidate", "v2", "--share", "0.5", "--reason", "guardrail drill")
    assert started.returncode == 0, started.stderr
    rows = feature_rows(1500, seed=11)
    devices = [{"features": r, "device_id": f"g-{i}"} for i, r in enumerate(rows)]
    answer = httpx.post(f"{url}/predict_batch", json={"devices": devices}, timeout=60).json()
    assert answer["arm_versions"]["candidate"] == V2 and answer["arm_versions"]["ensemble"] == V1
    # Ground truth: the candidate was wrong on every die, the champion right on every one.
    flip = {"pass": "fail", "fail": "pass"}
    outcomes = [
        {"request_id": r["request_id"],
         "actual": flip[r["prediction"]] if r["arm"] == "candidate" else r["prediction"]}
        for r in answer["results"] if r["arm"] in ("candidate", "ensemble")
    ]  # fmt: skip
    fb = httpx.post(f"{url}/feedback", json={"outcomes": outcomes}, headers=AUTH, timeout=60)
    assert fb.status_code == 200
    report = httpx.get(f"{url}/ab/report", headers=AUTH, timeout=60).json()
    assert report["candidate"] is None or report["candidate"]["decision"] == "roll back"
    deadline = time.monotonic() + 20
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/admin/serving", headers=AUTH).json()["state"]
        if state["candidate"] is None:
            break
        time.sleep(0.5)
    assert state["candidate"] is None and state["champion"] == "v1"
    assert state["action"] == "guardrail" and state["changed_by"] == "guardrail"
    assert "roll back" in state["reason"]
    samples = scrape(url)
    assert metric(samples, "yield_ensemble_serving_changes_total", action="guardrail") == 1
    assert metric(samples, "yield_ensemble_candidate_share") == 0


def _check_documented_examples(url: str) -> None:
    """The OpenAPI examples of the admin changes work, in order (v2 at 30%, promote, back)."""
    paths = httpx.get(f"{url}/docs.json").json()["paths"]
    for action, champion in (("candidate", "v1"), ("promote", "v2"), ("rollback", "v1")):
        op = paths[f"/admin/serving/{action}"]["post"]
        example = op["requestBody"]["content"]["application/json"]["example"]
        r = httpx.post(f"{url}/admin/serving/{action}", json=example, headers=AUTH, timeout=60)
        assert r.status_code == 200, (action, r.text)
        assert r.json()["state"]["champion"] == champion
        assert r.json()["state"]["reason"] == example["reason"]
        if action == "candidate":  # every member holds both versions' models
            here = httpx.get(f"{url}/admin/serving", headers=AUTH).json()["here"]
            assert here["members"] == {m: [V1[m], V2[m]] for m in V1}
            # Each member's runtime choice, as training measured it (issue 22).
            assert set(here["runtimes"]) == set(V1)
            assert all(r["source"] in ("measured", "override", "default")
                       for r in here["runtimes"].values()), here["runtimes"]  # fmt: skip


def test_replicas_on_one_postgresql_follow_each_other_within_seconds(
    versions_home: Path, tmp_path: Path
) -> None:
    url = os.environ.get("YE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("YE_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    import sqlalchemy as sa

    from ledger.migrate import drop_all

    engine = sa.create_engine(url)
    drop_all(engine)
    engine.dispose()
    settings = {"model_version": "v1", "database_url": url, "serving_poll_s": "1"}
    with (
        running(versions_home, tmp_path, **settings) as a,
        running(versions_home, tmp_path, **settings) as b,
    ):

        def here(srv: Any) -> dict[str, Any]:
            return httpx.get(f"{srv.url}/admin/serving", headers=AUTH, timeout=10).json()["here"]

        def follows(srv: Any, revision: int) -> float:
            started = time.monotonic()
            while here(srv)["revision"] != revision:
                assert time.monotonic() - started < 10, f"{srv.url} did not follow in 10 s"
                time.sleep(0.2)
            return time.monotonic() - started

        set_on_a = _cli(a.url, "candidate", "v2", "--share", "0.3")
        assert set_on_a.returncode == 0, set_on_a.stderr
        follows(b, 2)
        assert here(b)["versions"] == {"champion": V1, "candidate": V2}
        devices = [{"features": r, "device_id": f"r-{i}"} for i, r in enumerate(feature_rows(200))]
        on_b = httpx.post(f"{b.url}/predict_batch", json={"devices": devices}, timeout=60).json()
        assert {r["arm"] for r in on_b["results"]} >= {"candidate", "ensemble"}
        assert on_b["arm_versions"]["candidate"] == V2
        promoted_on_b = _cli(b.url, "promote")
        assert promoted_on_b.returncode == 0, promoted_on_b.stderr
        follows(a, 3)
        assert here(a)["versions"] == {"champion": V2}
        one = httpx.post(f"{a.url}/predict", json=devices[0], timeout=30).json()
        assert one["model_versions"] == V2
        samples = scrape(a.url)
        assert metric(samples, "yield_ensemble_serving_revision") == 3
        assert metric(samples, "yield_ensemble_model_info", member="keras",
                      version="yield-keras:v2", role="champion") == 1  # fmt: skip
        assert metric(samples, "yield_ensemble_model_info", member="keras",
                      version="yield-keras:v1", role="champion") == 0  # fmt: skip
        status = _cli(a.url, "status")
        assert "promote   by ops" in status.stdout and "candidate by ops" in status.stdout

    # A replica restarted with the same settings keeps what was promoted at run time.
    with running(versions_home, tmp_path, **settings) as c:
        assert here(c)["versions"] == {"champion": V2}
    # Changed settings are applied at start-up (champion v1 as set, candidate v2 at 20%),
    # and the champion they replaced is kept for a rollback.
    changed = {**settings, "candidate_version": "v2", "candidate_share": "0.2"}
    with running(versions_home, tmp_path, **changed) as d:
        state = httpx.get(f"{d.url}/admin/serving", headers=AUTH, timeout=10).json()["state"]
        assert (state["champion"], state["candidate"], state["share"]) == ("v1", "v2", 0.2)
        assert state["previous"] == "v2" and state["changed_by"].startswith("start-up:")


def _member_process(srv: Any, member: str) -> Any:
    """The process of the member service ``yield_<member>`` among the server's children."""
    import psutil

    for proc in psutil.Process(srv.proc.pid).children(recursive=True):
        try:
            if any(f"yield_{member}" in part for part in proc.cmdline()):
                return proc
        except psutil.Error:
            continue
    raise AssertionError(f"no process of member {member} under {srv.proc.pid}")


def _whole(srv: Any, within_s: float = 90) -> None:
    """Wait until /readyz is 200 with every member answering (none ``degraded``)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{srv.url}/readyz", timeout=2)
            if r.status_code == 200 and r.json()["degraded"] == []:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready and whole within {within_s} s:\n{srv.log_text()[-3000:]}")


def _land(store: Path, home: Path, version: str) -> None:
    """Run ``version`` of ``store``'s model store lands in ``home``'s as `train` writes one:
    each model's directory, then its ``latest`` (a copy: no second training per test)."""
    for model in sorted((store / "models").iterdir()):
        if (model / version).is_dir():
            shutil.copytree(model / version, home / "models" / model.name / version)
            (home / "models" / model.name / "latest").write_text(version)


@pytest.mark.timeout(900)  # the module's model store trains two runs first
def test_a_new_run_replaces_nothing_by_itself_and_answers_name_what_computed_them(
    versions_home: Path, tmp_path: Path
) -> None:
    """`latest` (the default) with v1, then another run v2 lands in the store: a member
    process restarted answers with v1 still (every answer names what computed it), and a
    restarted server keeps v1 as champion, saying at WARNING how to serve v2."""
    import signal

    home = tmp_path / "home"
    _land(versions_home, home, "v1")
    rows = feature_rows(60, seed=11)
    devices = [{"features": r, "device_id": f"d{i}"} for i, r in enumerate(rows)]
    data = tmp_path / "data"
    settings = {"data_dir": str(data), "cache_maxsize": "0", "challenger_fraction": "0"}

    def answers(srv: Any) -> list[dict[str, Any]]:
        """The rows of a /predict_batch of ``devices``, all on the ensemble arm of v1."""
        r = httpx.post(f"{srv.url}/predict_batch", json={"devices": devices}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["model_versions"] == V1
        return list(r.json()["results"])

    def same_votes(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
        for old, new in zip(a, b, strict=True):
            assert new["votes"] == pytest.approx(old["votes"], abs=1e-6)
            assert new["prediction"] == old["prediction"]

    with running(home, tmp_path, **settings) as srv:
        before = answers(srv)
        _land(versions_home, home, "v2")  # an untried run, trained on another seed
        member = _member_process(srv, "random_forest")
        member.send_signal(signal.SIGKILL)
        member.wait(10)
        # Two members answer while it restarts: ready, degraded, and saying which.
        probe = httpx.get(f"{srv.url}/readyz", timeout=5)
        assert probe.status_code == 200, probe.text
        assert probe.json()["degraded"] == ["random_forest"], probe.text
        assert probe.json()["members"]["xgboost"] == "ok"
        # Back, it holds v2 (its own `latest`) until told v1 serves: then whole again.
        _whole(srv)
        same_votes(before, answers(srv))

    with running(home, tmp_path, **settings) as srv:
        state = httpx.get(f"{srv.url}/admin/serving", headers=AUTH, timeout=10).json()["state"]
        assert state["champion"] == "v1" and state["revision"] == 1
        same_votes(before, answers(srv))
        warnings = [
            line for line in srv.log_text().splitlines()
            if "WARNING" in line and "latest now names run v2" in line
        ]  # fmt: skip
        assert warnings, srv.log_text()[-3000:]
        assert "pin YIELD_ENSEMBLE_MODEL_VERSION=v2" in warnings[0]


@pytest.mark.timeout(900)  # the module's model store trains two runs first
def test_every_row_names_the_versions_that_answered_it(versions_home: Path, tmp_path: Path) -> None:
    """A candidate at share 0.5: in /predict_batch and /predict_wafer (records) each row
    names its own arm's versions; columns say per arm which versions answered."""
    settings = {"model_version": "v1", "candidate_version": "v2", "candidate_share": "0.5",
                "challenger_fraction": "0"}  # fmt: skip
    rows = feature_rows(200, seed=3)
    devices = [{"features": r, "device_id": f"m{i}"} for i, r in enumerate(rows)]
    wanted = {"ensemble": V1, "candidate": V2}
    with running(versions_home, tmp_path, **settings) as srv:
        batch = httpx.post(f"{srv.url}/predict_batch", json={"devices": devices}, timeout=60)
        assert batch.status_code == 200, batch.text
        body = batch.json()
        arms = [r["arm"] for r in body["results"]]
        assert 40 < arms.count("candidate") < 160, arms
        assert [r["model_versions"] for r in body["results"]] == [wanted[a] for a in arms]
        assert body["model_versions"] == V1  # the champion's, as documented
        assert body["arm_versions"] == wanted
        wafer = {"features": rows, "device_id": [d["device_id"] for d in devices]}
        records = httpx.post(f"{srv.url}/predict_wafer", json={**wafer, "answer": "records"},
                             timeout=60).json()  # fmt: skip
        assert [r["model_versions"] for r in records["results"]] == [wanted[a] for a in arms]
        columns = httpx.post(f"{srv.url}/predict_wafer", json=wafer, timeout=60).json()
        assert columns["columns"]["arm"] == arms
        assert columns["arm_versions"] == wanted and columns["model_versions"] == V1
