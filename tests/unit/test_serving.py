"""Champion and candidate versions: the state's transitions, its store on SQLite and
PostgreSQL, the candidate arm, snapshots swapped whole, and the report's advice."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from ensemble.arms import Arm, assign_arm, build_arms, with_candidate
from ensemble.cache import PredictionCache
from ensemble.decision import Decision
from ensemble.fleet import Fleet, Loaded
from ensemble.predictor import EnsemblePredictor
from ensemble.schema import FeatureSchema
from ensemble.serving import CANDIDATE, InvalidChange, ServingState, check_version, comparison
from ledger.migrate import upgrade
from ledger.report import Labelled, build_report
from ledger.serving import ServingStore
from ledger.tables import Served

MEMBERS = ("rf", "xgb", "nn")
BASE = build_arms([Arm("challenger", "xgb", 0.1)], MEMBERS)


def test_transitions_promote_keep_the_champion_for_a_rollback() -> None:
    s = ServingState(1, "v1")
    with pytest.raises(InvalidChange, match="no candidate to promote"):
        s.promoted()
    with pytest.raises(InvalidChange, match="nothing to roll back"):
        s.rolled_back()
    with pytest.raises(InvalidChange, match="champion already"):
        s.with_candidate("v1", 0.3, 0.9)
    # The whole ensemble arm would leave the champion no device to be compared with.
    for share in (0.0, 0.95, -0.1, 0.9, 0.9 - 1e-12):
        with pytest.raises(InvalidChange, match="share"):
            s.with_candidate("v2", share, 0.9)
    with pytest.raises(InvalidChange, match="promote it"):
        s.with_candidate("v2", 0.9, 0.9)
    assert s.with_candidate("v2", 0.89, 0.9).share == 0.89
    s = s.with_candidate("v2", 0.3, 0.9)
    assert (s.champion, s.candidate, s.share, s.versions) == ("v1", "v2", 0.3, ("v1", "v2"))
    p = s.promoted()
    assert (p.champion, p.candidate, p.share, p.previous) == ("v2", None, 0.0, "v1")
    r = p.rolled_back()
    assert (r.champion, r.candidate, r.previous) == ("v1", None, None)
    with pytest.raises(InvalidChange, match="no candidate to stop"):
        r.with_candidate(None, 0.0, 0.9)
    assert s.with_candidate(None, 0.0, 0.9).candidate is None


@pytest.mark.parametrize("bad", ["", "V2", "-v2", "v2-", "a b", "x" * 65, 2, None, "v2/../x"])
def test_version_names_are_model_store_versions(bad: object) -> None:
    with pytest.raises(ValueError, match="version"):
        check_version(bad)
    assert check_version("v2.4") == "v2.4" and check_version("20261127abcd") == "20261127abcd"


def test_the_candidate_arm_moves_no_device_of_the_other_arms() -> None:
    keys = [f"dev-{i}" for i in range(4000)]
    before = [assign_arm(k, BASE, "salt") for k in keys]
    arms = with_candidate(BASE, CANDIDATE, "v2", 0.3)
    assert [a.name for a in arms] == ["ensemble", "challenger", CANDIDATE]
    assert arms[0].share == pytest.approx(0.6) and arms[-1].version == "v2"
    after = [assign_arm(k, arms, "salt") for k in keys]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    # Only ensemble devices move, and only to the candidate; the challenger keeps its own.
    assert moved and all(m == ("ensemble", CANDIDATE) for m in moved)
    assert after.count(CANDIDATE) / len(keys) == pytest.approx(0.3, abs=0.03)
    assert json.loads(arms[-1].spec()) == {"serves": "ensemble", "share": 0.3, "version": "v2"}
    with pytest.raises(ValueError, match="more than"):
        with_candidate(BASE, CANDIDATE, "v2", 0.95)
    assert with_candidate(BASE, CANDIDATE, None, 0.0) == BASE


def test_the_store_keeps_every_revision_with_who_and_when(engine: sa.Engine) -> None:
    store = ServingStore(engine)
    assert store.read() is None and store.revision() == 0
    first, changed = store.change(lambda s: ServingState(0, "v1"), "start-up:host", "configure")
    assert changed and first.revision == 1 and store.revision() == 1
    s, _ = store.change(lambda s: s.with_candidate("v2", 0.3, 0.9), "ops", "candidate", "try it")
    since = s.candidate_since
    assert since is not None and s.changed_by == "ops" and s.reason == "try it"
    s, _ = store.change(lambda s: s.with_candidate("v2", 0.5, 0.9), "ops", "candidate")
    assert s.candidate_since == since and s.share == 0.5  # a new share is the same candidate
    s, _ = store.change(ServingState.promoted, "alice", "promote")
    assert (s.champion, s.previous, s.candidate_since) == ("v2", "v1", None)
    same, changed = store.change(lambda s: None, "nobody", "configure")
    assert not changed and same == store.read()
    with pytest.raises(InvalidChange):
        store.change(ServingState.promoted, "bob", "promote")
    history = store.history()
    assert [(h["revision"], h["action"], h["changed_by"]) for h in history] == [
        (4, "promote", "alice"),
        (3, "candidate", "ops"),
        (2, "candidate", "ops"),
        (1, "configure", "start-up:host"),
    ]
    assert all(h["changed_at"] >= first.changed_at for h in history)
    assert store.read() == s


def test_concurrent_changes_each_land_once_on_its_own_revision(engine: sa.Engine) -> None:
    store = ServingStore(engine)
    store.change(lambda s: ServingState(0, "v1"), "start-up", "configure")
    shares = [round(0.05 * (i + 1), 2) for i in range(8)]
    errors: list[BaseException] = []

    def change(share: float) -> None:
        try:
            store.change(lambda s: s.with_candidate("v2", share, 0.9), f"k{share}", "candidate")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=change, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    history = store.history()
    assert [h["revision"] for h in history] == list(range(9, 0, -1))
    assert sorted(h["share"] for h in history[:-1]) == shares
    assert store.read().share == history[0]["share"]  # type: ignore[union-attr]


def _loaded(version: str, names: tuple[str, ...] = ("a", "b")) -> Loaded:
    tags = {m: f"{m}:{version}" for m in MEMBERS}
    return Loaded(version, tags, FeatureSchema(names), Decision.unfitted(tags))


def _fleet(p_by_version: dict[str, float], cache: PredictionCache | None = None) -> Fleet:
    calls: list[str] = []

    def predictor(version: str, decision: Decision) -> EnsemblePredictor:
        def member(name: str):
            async def call(rows: np.ndarray) -> np.ndarray:
                calls.append(version)
                return np.full(len(rows), p_by_version[version], dtype=np.float32)

            return call

        return EnsemblePredictor(
            {m: member(m) for m in MEMBERS}, 1.0, combiner=decision.combiner("majority")
        )

    def load(version: str) -> Loaded:
        if version not in p_by_version:
            raise LookupError(f"no models of {version}")
        return _loaded(version, ("a", "b", "c") if version == "other" else ("a", "b"))

    async def prepare(versions: object) -> None:
        return None

    cache = cache if cache is not None else PredictionCache(1000)
    fleet = Fleet(BASE, "salt", cache, FeatureSchema(("a", "b")), load,
                  predictor, prepare)  # fmt: skip
    fleet.calls = calls  # type: ignore[attr-defined]
    return fleet


def test_a_snapshot_routes_the_candidate_arm_to_its_own_version() -> None:
    fleet = _fleet({"v1": 0.9, "v2": 0.1})
    snap = fleet.snapshot(ServingState(3, "v1", "v2", 0.3))
    keys = [f"d{i}" for i in range(300)]
    rows = np.zeros((300, 2), dtype=np.float32) + np.arange(300, dtype=np.float32)[:, None]
    batch = asyncio.run(snap.router.predict_batch(rows, keys))
    arms = batch.arm_names()
    # v1's members all say 0.9 (pass), v2's all 0.1 (fail).
    assert all(p == (a != CANDIDATE) for p, a in zip(batch.passed, arms, strict=True))
    assert {"ensemble", "challenger", CANDIDATE} <= set(arms)
    assert snap.tags_of(CANDIDATE)["rf"] == "rf:v2" and snap.tags_of("challenger")["rf"] == "rf:v1"
    # The log row of each device names the versions that answered it.
    served = Served(0.0, 1.0, keys, [{"device_id": k} for k in keys], rows, batch,
                    snap.model_versions, snap.arm_specs, None, snap.arm_versions)  # fmt: skip
    logged = {r[2]: json.loads(r[12])["rf"] for r in served.records()}
    assert logged == {"ensemble": "rf:v1", "challenger": "rf:v1", CANDIDATE: "rf:v2"}


def test_a_version_that_cannot_serve_is_refused_before_anything_changes() -> None:
    fleet = _fleet({"v1": 0.9, "v2": 0.1, "other": 0.5})
    with pytest.raises(InvalidChange, match="v9: no models of v9"):
        fleet.snapshot(ServingState(1, "v1", "v9", 0.3))
    with pytest.raises(InvalidChange, match="trained on features"):
        fleet.snapshot(ServingState(1, "v1", "other", 0.3))
    with pytest.raises(InvalidChange, match="share"):
        fleet.snapshot(ServingState(1, "v1", "v2", 0.95))


def test_a_switch_never_serves_a_cached_answer_of_a_retired_version() -> None:
    cache = PredictionCache(1000)
    fleet = _fleet({"v1": 0.9, "v2": 0.1}, cache)
    rows = np.ones((50, 2), dtype=np.float32) * np.arange(50, dtype=np.float32)[:, None]
    keys = [f"k{i}" for i in range(50)]
    old = fleet.snapshot(ServingState(1, "v1", "v2", 0.3))
    asyncio.run(old.router.predict_batch(rows, keys))
    assert len(cache) == 50
    promoted = fleet.snapshot(ServingState(2, "v2", None, 0.0, previous="v1"))
    dropped = fleet.retire(promoted)
    assert dropped == 50 - sum(a == CANDIDATE for a in _arms(old, keys))
    again = asyncio.run(promoted.router.predict_batch(rows, keys))
    # v2 serves every arm now; v1's answers (pass) were never served from the cache.
    assert not again.passed.any() and not again.cached.any()
    # A request that read the old snapshot before the switch still gets v1 whole.
    late = asyncio.run(old.router.predict_batch(rows, keys))
    names = late.arm_names()
    assert all(p == (a != CANDIDATE) for p, a in zip(late.passed, names, strict=True))


def _arms(snap, keys):
    return [snap.router.arm_for(k) for k in keys]


def _labelled(cand_right: int, cand_n: int, champ_right: int, champ_n: int) -> Labelled:
    v1 = json.dumps({m: f"{m}:v1" for m in MEMBERS}, sort_keys=True)
    v2 = json.dumps({m: f"{m}:v2" for m in MEMBERS}, sort_keys=True)
    arm = np.array(["ensemble"] * champ_n + [CANDIDATE] * cand_n, dtype=object)
    served = np.ones(champ_n + cand_n, dtype=bool)
    actual = np.concatenate(
        [np.arange(champ_n) < champ_right, np.arange(cand_n) < cand_right]
    ).astype(bool)
    return Labelled(
        ts=np.linspace(100.0, 200.0, champ_n + cand_n),
        arm=arm,
        served_pass=served,
        actual_pass=actual,
        votes={m: np.full(champ_n + cand_n, 0.9) for m in MEMBERS},
        versions=np.array([v1] * champ_n + [v2] * cand_n, dtype=object),
    )


def _candidate_report(data: Labelled, since: float = 0.0) -> dict:
    state = ServingState(2, "v1", "v2", 0.5, candidate_since=since)
    spec = comparison(state, {m: f"{m}:v1" for m in MEMBERS}, {m: f"{m}:v2" for m in MEMBERS})
    arms = with_candidate(BASE, CANDIDATE, "v2", 0.5)
    return build_report(data, {}, MEMBERS, arms, candidate=spec)


@pytest.mark.parametrize(
    ("cand", "champ", "advice"),
    [((2850, 3000), (2550, 3000), "promote"), ((2550, 3000), (2850, 3000), "roll back")],
)
def test_the_report_advises_promote_or_roll_back_when_the_test_is_sure(
    cand: tuple[int, int], champ: tuple[int, int], advice: str
) -> None:
    report = _candidate_report(_labelled(*cand, *champ))
    c = report["candidate"]
    assert c["decision"] == advice and c["more_labels"] == 0
    assert c["candidate_accuracy"]["n"] == 3000 and c["champion_accuracy"]["k"] == champ[0]
    assert c["sequential"]["test"].startswith("mixture SPRT")
    assert report["conclusion"].startswith(f"Candidate v2 against champion v1: {advice}")


def test_the_candidate_is_judged_once_in_its_own_section_not_among_the_arms() -> None:
    """Its arm has its figures, but no second, fixed-horizon verdict over another window,
    and it widens no other arm's correction."""
    state = ServingState(2, "v1", "v2", 0.3)
    spec = comparison(state, {m: f"{m}:v1" for m in MEMBERS}, {m: f"{m}:v2" for m in MEMBERS})
    data = _labelled(2850, 3000, 2550, 3000)
    data.arm[:600] = "challenger"  # some of the champion's rows, on the challenger arm
    report = build_report(data, {}, MEMBERS, with_candidate(BASE, CANDIDATE, "v2", 0.3),
                          candidate=spec)  # fmt: skip
    assert report["arms"][CANDIDATE]["accuracy"]["n"] == 3000
    assert list(report["comparisons"]) == ["challenger"]
    assert report["comparisons"]["challenger"]["correction"] == "none (one comparison)"
    assert set(report["sample_size"]["needed"]) == {"ensemble", "challenger"}
    assert "minus candidate" not in report["conclusion"]
    assert report["conclusion"].startswith("Candidate v2 against champion v1: promote")
    # With no challenger, nothing is compared among the arms, and nothing is missing.
    alone = with_candidate(build_arms([], MEMBERS), CANDIDATE, "v2", 0.3)
    only = build_report(_labelled(2850, 3000, 2550, 3000), {}, MEMBERS, alone, candidate=spec)
    assert only["comparisons"] == {}
    assert only["sample_size"]["note"].startswith("no arm but the candidate")
    assert "Too few labels to compare the arms" not in only["conclusion"]


def test_the_report_says_how_many_more_labels_while_unsure() -> None:
    c = _candidate_report(_labelled(190, 200, 185, 200))["candidate"]
    assert c["decision"] == "keep collecting" and c["more_labels"] > 0
    assert f"about {c['more_labels']} more labelled devices" in c["summary"]


def test_the_report_counts_only_rows_since_the_candidate_was_set() -> None:
    data = _labelled(2850, 3000, 2550, 3000)
    late = _candidate_report(data, since=150.0)["candidate"]
    assert late["champion_accuracy"]["n"] == 0  # the champion's rows all came before
    assert late["decision"] == "keep collecting"
    assert "no labelled device on the champion since the candidate was set" in late["summary"]


def test_the_html_report_shows_the_candidate_and_its_advice() -> None:
    from ledger.html_report import render

    report = _candidate_report(_labelled(2850, 3000, 2550, 3000))
    page = render({**report, "ground_truth": []})
    assert "Candidate v2 against champion v1</h2>" in page
    assert "v2 against champion v1: promote" in page and "v2 (candidate, 50%)" in page


class _Seen:
    """An observer that keeps what it was told."""

    def __init__(self) -> None:
        self.revisions: list[int] = []
        self.changes: list[str] = []
        self.failures = 0

    def serving(self, snapshot) -> None:
        self.revisions.append(snapshot.state.revision)

    def serving_change(self, action: str) -> None:
        self.changes.append(action)

    def serving_sync_failure(self) -> None:
        self.failures += 1


def _switchboard(tmp_path: Path, report=None):
    from ensemble.switchboard import Switchboard

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    store = ServingStore(engine)
    state, _ = store.change(lambda s: ServingState(0, "v1"), "start-up", "configure")
    fleet = _fleet({"v1": 0.9, "v2": 0.1, "other": 0.5})
    prepared: list[tuple[str, ...]] = []

    async def prepare(versions) -> None:
        if "v2" in versions and getattr(fleet, "v2_broken", False):
            raise RuntimeError("member xgb could not load ['v2']")
        prepared.append(tuple(versions))

    fleet.prepare = prepare
    seen = _Seen()
    board = Switchboard(fleet, store, state, seen, 0.01, report=report)
    return board, store, fleet, seen, prepared


def test_a_change_is_made_here_first_and_another_replica_follows(tmp_path: Path) -> None:
    board, store, _, seen, prepared = _switchboard(tmp_path)
    from ensemble.switchboard import Switchboard

    replica = Switchboard(_fleet({"v1": 0.9, "v2": 0.1}), store, store.read(), _Seen(), 0.01)
    new = asyncio.run(
        board.change("candidate", lambda s: s.with_candidate("v2", 0.3, 0.9), "ops", "try")
    )
    assert board.serving.state == new and board.serving.candidate is not None
    assert prepared[-1] == ("v1", "v2") and seen.changes == ["candidate"]
    assert replica.serving.state.revision == 1
    asyncio.run(replica.follow())
    assert replica.serving.state.revision == 2 and replica.serving.candidate.name == "v2"
    status = board.status(5)
    assert status["state"]["candidate"] == "v2" and status["here"]["revision"] == 2
    assert [h["action"] for h in status["history"]] == ["candidate", "configure"]


def test_a_change_that_cannot_serve_writes_nothing(tmp_path: Path) -> None:
    board, store, fleet, seen, _ = _switchboard(tmp_path)
    for version in ("v9", "other"):  # not in the store; other features
        with pytest.raises(InvalidChange):
            asyncio.run(board.change("candidate",
                                     lambda s, v=version: s.with_candidate(v, 0.3, 0.9), "ops",
                                     None))  # fmt: skip
    fleet.v2_broken = True  # a member that cannot load it
    with pytest.raises(RuntimeError, match="could not load"):
        asyncio.run(board.change("candidate", lambda s: s.with_candidate("v2", 0.3, 0.9), "ops",
                                 None))  # fmt: skip
    assert store.revision() == 1 and board.serving.state.revision == 1 and seen.changes == []


def test_a_replica_that_cannot_read_the_state_keeps_serving_and_says_so(tmp_path: Path) -> None:
    board, store, _, seen, _ = _switchboard(tmp_path)

    async def briefly() -> None:
        task = asyncio.create_task(board.run())
        await asyncio.sleep(0.1)
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE serving_state"))
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(briefly())
    assert board.prepared and seen.failures >= 1 and board.serving.state.champion == "v1"


def test_a_stopping_worker_stops_following_without_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At SIGTERM the members go while the entry drains: the state is no longer followed,
    a failure meanwhile is neither counted nor logged as an error, and ``run`` returns."""
    board, store, _, seen, _ = _switchboard(tmp_path)
    stopping = threading.Event()
    board.stopping = stopping.is_set

    async def briefly() -> None:
        task = asyncio.create_task(board.run())
        await asyncio.sleep(0.1)
        stopping.set()
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE serving_state"))
        await asyncio.wait_for(task, 2)

    with caplog.at_level(logging.INFO, logger="ensemble.switchboard"):
        asyncio.run(briefly())
    assert board.prepared and seen.failures == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("stopped following" in r.getMessage() for r in caplog.records)


def test_the_guardrail_stops_a_candidate_the_report_finds_worse(tmp_path: Path) -> None:
    verdict = {"decision": "keep collecting", "summary": "keep collecting"}
    board, store, _, seen, _ = _switchboard(tmp_path, report=lambda since: {"candidate": verdict})
    asyncio.run(board.change("candidate", lambda s: s.with_candidate("v2", 0.3, 0.9), "ops", None))
    asyncio.run(board.guard())
    assert store.read().candidate == "v2"  # type: ignore[union-attr]
    verdict.update(decision="roll back", summary="Candidate v2 against champion v1: roll back")
    asyncio.run(board.guard())
    state = store.read()
    assert state is not None and state.candidate is None and state.action == "guardrail"
    assert state.changed_by == "guardrail" and "roll back" in (state.reason or "")
    assert seen.changes == ["candidate", "guardrail"] and board.serving.candidate is None


def test_a_ledger_that_fails_refuses_changes_and_status_with_a_clear_error(
    tmp_path: Path,
) -> None:
    from ensemble.switchboard import ServingUnavailable

    board, store, *_ = _switchboard(tmp_path)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE serving_history"))
    # The change reads the state, loads the members, then fails writing the history: the
    # state row is rolled back with it.
    with pytest.raises(ServingUnavailable, match="nothing changed") as failed:
        asyncio.run(board.change("candidate", lambda s: s.with_candidate("v2", 0.3, 0.9),
                                 "ops", None))  # fmt: skip
    assert store.revision() == 1 and board.serving.state.revision == 1
    # The driver's own line, without SQLAlchemy's statement and link.
    assert "no such table: serving_history" in str(failed.value)
    assert "\n" not in str(failed.value) and "sqlalche.me" not in str(failed.value)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE serving_state"))
    with pytest.raises(ServingUnavailable, match="cannot be read: no such table") as unread:
        board.status(5)
    assert "sqlalche.me" not in str(unread.value)
    with pytest.raises(ServingUnavailable):
        asyncio.run(board.change("promote", ServingState.promoted, "ops", None))


def test_two_replicas_promoting_at_once_promote_once(tmp_path: Path) -> None:
    from ensemble.switchboard import Switchboard

    board, store, *_ = _switchboard(tmp_path)
    asyncio.run(board.change("candidate", lambda s: s.with_candidate("v2", 0.3, 0.9), "ops", None))
    other = Switchboard(_fleet({"v1": 0.9, "v2": 0.1}), store, store.read(), _Seen(), 0.01)

    async def both() -> list[object]:
        return await asyncio.gather(
            board.change("promote", ServingState.promoted, "alice", None),
            other.change("promote", ServingState.promoted, "bob", None),
            return_exceptions=True,
        )

    results = asyncio.run(both())
    won = [r for r in results if isinstance(r, ServingState)]
    lost = [r for r in results if isinstance(r, InvalidChange)]
    assert len(won) == 1 and len(lost) == 1, results
    assert [h["action"] for h in store.history()] == ["promote", "candidate", "configure"]
    assert store.read().champion == "v2" and store.read().previous == "v1"  # type: ignore[union-attr]


def test_the_html_report_says_the_candidate_advice_once_and_the_window_in_words() -> None:
    from ledger.html_report import render

    report = _candidate_report(_labelled(2850, 3000, 2550, 3000))
    page = render({**report, "ground_truth": []})
    assert page.count(html_escape(report["candidate"]["summary"])) == 1
    assert "- to -" not in page and "Window: every logged prediction to now" in page
    dies = [{"x": 0, "y": 0, "prediction": "pass", "actual": None, "arm": "ensemble",
             "probability": 0.9}]  # fmt: skip
    maps = {f"W{i}": dies for i in range(6)}
    rule = "the 6 with the most labelled dies"
    page = render({**report, "ground_truth": []}, wafer_maps=maps, wafers_total=10,
                  wafers_rule=rule)  # fmt: skip
    assert "6 of the window's 10 wafers drawn: the 6 with the most labelled dies." in page
    assert "6 of the window's 6 wafers drawn" in render(
        {**report, "ground_truth": []}, wafer_maps=maps, wafers_total=6
    )


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_the_candidate_arm_line_judges_one_candidate_version_not_two_pooled() -> None:
    # v2 was the candidate first and was right on every die; v3 replaced it and is right on
    # half. Pooled, the line said 75%: neither version's accuracy.
    v2, v3 = (json.dumps({m: f"{m}:{v}" for m in MEMBERS}, sort_keys=True) for v in ("v2", "v3"))
    n = 200
    data = Labelled(
        ts=np.arange(2 * n, dtype=float),
        arm=np.array([CANDIDATE] * (2 * n), dtype=object),
        served_pass=np.ones(2 * n, dtype=bool),
        actual_pass=np.concatenate([np.ones(n, bool), np.arange(n) % 2 == 0]),
        votes={m: np.full(2 * n, 0.9) for m in MEMBERS},
        versions=np.array([v2] * n + [v3] * n, dtype=object),
    )
    arms = with_candidate(BASE, CANDIDATE, "v3", 0.5)
    # Without a serving candidate: the newest version's rows.
    line = build_report(data, {}, MEMBERS, arms)["arms"][CANDIDATE]
    assert line["labelled"] == n and line["accuracy"]["k"] == n // 2
    (left,) = line["left_out"]
    assert left["model_versions"]["rf"] == "rf:v2" and left["labelled"] == n
    # With v2 serving as the candidate again (v3 rolled back): v2's rows.
    state = ServingState(4, "v1", "v2", 0.5, candidate_since=0.0)
    spec = comparison(state, {m: f"{m}:v1" for m in MEMBERS}, {m: f"{m}:v2" for m in MEMBERS})
    line = build_report(data, {}, MEMBERS, arms, candidate=spec)["arms"][CANDIDATE]
    assert line["labelled"] == n and line["accuracy"]["k"] == n
    assert line["left_out"][0]["model_versions"]["rf"] == "rf:v3"
    # One version in the window: nothing left out.
    line = build_report(data.where(data.ts < n), {}, MEMBERS, arms)["arms"][CANDIDATE]
    assert line["labelled"] == n and "left_out" not in line


def test_the_html_report_says_when_the_candidate_line_left_a_version_out() -> None:
    from ledger.html_report import render

    report = _candidate_report(_labelled(2850, 3000, 2550, 3000))
    assert "left out" not in render({**report, "ground_truth": []})
    report["arms"][CANDIDATE]["left_out"] = [{"model_versions": {"rf": "rf:v0"}, "labelled": 12,
                                              "first_ts": 1.0, "last_ts": 2.0}]  # fmt: skip
    assert "12 labelled rows of 1 other version(s) left out" in render(
        {**report, "ground_truth": []}
    )
