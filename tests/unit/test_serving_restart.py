"""A restart applies only the start-up settings an operator changed: ``latest`` naming a
newly trained run is not a change, so a promote or rollback made at run time stays, on
SQLite and PostgreSQL (``ledger.serving.reconcile``, ``models.base.configured_state``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from ensemble.serving import ServingState
from ensemble.settings import Settings
from ledger.serving import ServingStore, reconcile
from models import base


def _wanted(monkeypatch: pytest.MonkeyPatch, newest: str, **settings: Any) -> ServingState:
    """What a start with ``settings`` asks for while ``latest`` names run ``newest``."""
    monkeypatch.setattr(base, "resolve_version", lambda v: newest if v == "latest" else v)
    return base.configured_state(Settings(**settings))


def test_the_settings_are_kept_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = _wanted(monkeypatch, "v7", candidate_version="v3", candidate_share=0.2)
    assert (wanted.champion, wanted.candidate, wanted.share) == ("v7", "v3", 0.2)
    assert json.loads(wanted.configured or "") == {
        "model_version": "latest", "candidate_version": "v3", "candidate_share": 0.2,
    }  # fmt: skip


def test_a_new_run_does_not_undo_a_rollback(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ServingStore(engine)
    state, changed = reconcile(store, _wanted(monkeypatch, "v1"), "start-up:a")
    assert changed and state.champion == "v1"
    store.change(lambda s: s.with_candidate("v2", 0.3, 0.9), "ops", "candidate")  # type: ignore[union-attr]
    store.change(ServingState.promoted, "ops", "promote")  # type: ignore[arg-type]
    rolled, _ = store.change(ServingState.rolled_back, "ops", "rollback")  # type: ignore[arg-type]
    assert rolled.champion == "v1"
    # A weak run v3 is trained; the replica restarts with the same settings (`latest`).
    state, changed = reconcile(store, _wanted(monkeypatch, "v3"), "start-up:b")
    assert not changed and state == rolled and state.champion == "v1"
    assert store.read() == rolled


def test_changed_settings_are_applied_and_the_same_ones_are_not(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ServingStore(engine)
    reconcile(store, _wanted(monkeypatch, "v1"), "start-up")
    store.change(lambda s: s.with_candidate("v2", 0.3, 0.9), "ops", "candidate")  # type: ignore[union-attr]
    store.change(ServingState.promoted, "ops", "promote")  # type: ignore[arg-type]
    # The champion pinned in the settings: applied, the one replaced kept for a rollback.
    pinned = {"model_version": "v5", "candidate_version": "v4", "candidate_share": 0.1}
    state, changed = reconcile(store, _wanted(monkeypatch, "v9", **pinned), "s")
    assert changed and (state.champion, state.previous, state.candidate) == ("v5", "v2", "v4")
    # The same settings again: nothing changes, whatever `latest` names now.
    same, changed = reconcile(store, _wanted(monkeypatch, "v11", **pinned), "s")
    assert not changed and same == state
    # Back to `latest`: a changed setting, applied (the newest run, v11).
    state, changed = reconcile(store, _wanted(monkeypatch, "v11"), "s")
    assert changed and (state.champion, state.previous, state.candidate) == ("v11", "v5", None)


def test_a_state_written_with_resolved_versions_keeps_its_champion(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state recorded before the settings were kept as written (the versions `latest`
    resolved to then) is not undone by `latest` naming a newer run."""
    store = ServingStore(engine)
    legacy = json.dumps({"champion": "v1", "candidate": None, "share": 0.0}, sort_keys=True)
    store.change(lambda s: ServingState(0, "v1", configured=legacy), "start-up", "configure")
    store.change(lambda s: s.with_candidate("v2", 0.3, 0.9), "ops", "candidate")  # type: ignore[union-attr]
    store.change(ServingState.promoted, "ops", "promote")  # type: ignore[arg-type]
    store.change(ServingState.rolled_back, "ops", "rollback")  # type: ignore[arg-type]
    state, _ = reconcile(store, _wanted(monkeypatch, "v3"), "start-up")
    assert (state.champion, state.candidate) == ("v1", None)
    assert json.loads(state.configured or "")["model_version"] == "latest"
    # A pinned champion other than the recorded one is a changed setting.
    state, changed = reconcile(store, _wanted(monkeypatch, "v3", model_version="v2"), "s")
    assert changed and (state.champion, state.previous) == ("v2", "v1")
