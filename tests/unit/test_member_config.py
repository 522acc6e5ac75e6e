"""The member services come from the family registry, each with the settings BentoML needs."""

from __future__ import annotations

from typing import Any

import pytest

from ensemble.settings import Settings
from models.families import Family, families, member_names
from models.services import MEMBER_SERVICES
from service import YieldEnsemble


def test_members_keep_their_client_session() -> None:
    # BentoML closes the entry's session to a dependency every max_requests calls
    # and max_age seconds, failing calls in flight (ServerDisconnectedError).
    for member in MEMBER_SERVICES.values():
        conn = member.config["runner_connection"]
        assert conn["max_requests"] >= 10**9, member.name
        assert conn["max_age"] >= 10**8, member.name


def test_entry_depends_on_one_service_per_family() -> None:
    deps = {d.on.name for d in YieldEnsemble.dependencies.values()}
    assert deps == {f"yield_{f.name}" for f in families()}
    assert member_names() == ("random_forest", "xgboost", "keras")


def test_members_batch_adaptively() -> None:
    for member in MEMBER_SERVICES.values():
        api = member.apis["predict_proba"]
        assert api.batchable and api.max_batch_size >= 10_000


def test_the_member_api_the_entry_calls_per_request_makes_no_span() -> None:
    """With tracing off (the default) a member traces none of the calls the entry makes
    per request: OpenTelemetry's spans were 28% of a member's CPU (py-spy, 16 clients)."""
    import asyncio

    import numpy as np
    from opentelemetry.util.http import ExcludeList

    from entry.runtime import member_call

    called: list[str] = []

    class Calls:
        def __getattr__(self, name: str) -> Any:
            async def call(rows: np.ndarray, *args: Any) -> np.ndarray:
                called.append(name)
                return np.full(len(rows), 0.5)

            return call

    proxy = type("Proxy", (), {"to_async": Calls()})()
    asyncio.run(member_call(proxy, "20261130000000abcd")(np.zeros((1, 6), np.float32)))
    assert called == ["predict_version"]
    for member in MEMBER_SERVICES.values():
        excluded = ExcludeList(member.config["tracing"]["excluded_urls"])
        route = member.apis[called[0]].route
        assert excluded.url_disabled(f"http://127.0.0.1:3000{route}"), (member.name, route)


def test_a_family_name_must_be_a_safe_identifier() -> None:
    with pytest.raises(ValueError, match="family name"):
        Family("Bad Name", "x", ("a",), adapter="m:A", trainer="m:T")
    with pytest.raises(ValueError, match="at least one runtime"):
        Family("ok", "x", (), adapter="m:A", trainer="m:T")


def test_runtime_defaults_to_each_family_s_first() -> None:
    s = Settings(runtimes={"keras": "tensorflow"})
    assert [s.runtime(m) for m in member_names()] == ["onnx", "onnx", "tensorflow"]
