"""Every route is declared with the access it needs; an undeclared one is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.routing import Route

from ops.access import ROUTES, Access, RouteTable
from ops.auth import KeyRing, load_keys
from ops.edge import EdgeConfig, EdgeMiddleware


def _service_paths() -> list[str]:
    """Every path the entry serves: its APIs and the routes of the apps mounted beside."""
    from service import YieldEnsemble

    paths = [api.route for api in YieldEnsemble.apis.values()]
    for app, prefix, _ in YieldEnsemble.mount_apps:
        for route in getattr(app, "routes", []):
            if isinstance(route, Route):
                paths.append(prefix.rstrip("/") + route.path)
    return paths


def test_every_route_of_the_service_is_declared() -> None:
    paths = _service_paths()
    assert {"/predict", "/predict_wafer", "/feedback", "/ab/report", "/admin/serving"} <= set(paths)
    undeclared = [p for p in paths if ROUTES.find(p) is None]
    assert not undeclared, f"routes without an access declaration: {undeclared}"


def test_the_roles_are_the_documented_ones() -> None:
    _service_paths()  # declares every route
    want = {
        "/predict": Access.PREDICT,
        "/feedback": Access.FEEDBACK,
        "/ab/report": Access.REPORT,
        "/dashboard/wafers/W1/map": Access.REPORT,
        "/dashboard/drift/lots/L1": Access.REPORT,
        "/dashboard/drift/timeline": Access.REPORT,
        "/admin/serving/promote": Access.ADMIN,
        "/readyz": Access.OPEN,
    }
    for path, access in want.items():
        found = ROUTES.find(path)
        assert found is not None and found.access is access, path
    assert Access.PREDICT.role(False) is None and Access.PREDICT.role(True) == "predict"


def _call(table_path: str, path: str, header: str | None = None) -> tuple[int, bytes]:
    """One GET of ``path`` through the edge in front of an app that answers 200."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    table = RouteTable()
    table.declare(table_path, Access.REPORT)
    keys = KeyRing(load_keys("r:report:" + "s" * 24, None))
    edge = EdgeMiddleware(app, EdgeConfig(keys=keys), routes=table)
    headers = [(b"authorization", header.encode())] if header else []
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    asyncio.run(edge(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("path", ["/new_route", "/dashboard", "/reports/x"])
def test_an_undeclared_route_is_refused_before_the_app_runs(path: str) -> None:
    status, body = _call("/reports", path)
    assert status == 404 and b"no route" in body


def test_a_declared_route_asks_for_its_role() -> None:
    assert _call("/reports", "/reports")[0] == 401
    assert _call("/reports", "/reports", "Bearer " + "s" * 24) == (200, b"ok")


def test_a_path_finds_the_first_declaration_covering_it_every_time() -> None:
    table = RouteTable()
    table.declare("/a/*", Access.REPORT)
    table.declare("/a/b", Access.OPEN)  # covered by the wildcard declared first
    table.declare("/c", Access.FEEDBACK)
    table.declare("/c/{id}", Access.ADMIN)
    for _ in range(2):  # the second lookup is the kept one
        assert table.find("/a/b").access is Access.REPORT  # type: ignore[union-attr]
        assert table.find("/c").access is Access.FEEDBACK  # type: ignore[union-attr]
        assert table.find("/c/7").access is Access.ADMIN  # type: ignore[union-attr]
        assert table.find("/d") is None
    table.declare("/d", Access.OPEN)  # a later declaration is found too
    assert table.find("/d").access is Access.OPEN  # type: ignore[union-attr]
