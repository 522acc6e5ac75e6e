"""Guards against BentoML's dependency-client recycling fault returning."""

from __future__ import annotations

from models.services import KerasMember, RandomForestMember, XGBoostMember
from service import YieldEnsemble


def test_members_keep_their_client_session() -> None:
    # BentoML closes the entry's session to a dependency every max_requests calls
    # and max_age seconds, failing calls in flight (ServerDisconnectedError).
    for member in (RandomForestMember, XGBoostMember, KerasMember):
        conn = member.config["runner_connection"]
        assert conn["max_requests"] >= 10**9, member.name
        assert conn["max_age"] >= 10**8, member.name


def test_entry_depends_on_the_three_members() -> None:
    deps = {d.on.name for d in YieldEnsemble.dependencies.values()}
    assert deps == {"yield_random_forest", "yield_xgboost", "yield_keras"}


def test_members_batch_adaptively() -> None:
    for member in (RandomForestMember, XGBoostMember, KerasMember):
        api = member.apis["predict_proba"]
        assert api.batchable and api.max_batch_size >= 10_000
