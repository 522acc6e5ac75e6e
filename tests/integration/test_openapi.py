"""The OpenAPI spec a dashboard developer reads: every route, typed, with working examples."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.serving import Server

from .conftest import AUTH

pytestmark = pytest.mark.integration

ROUTES = {
    ("post", "/predict"): None,
    ("post", "/predict_batch"): None,
    ("post", "/predict_wafer"): None,
    ("post", "/feedback"): "feedback",
    ("get", "/ab/report"): "report",
    ("get", "/dashboard/wafers"): "report",
    ("get", "/dashboard/lots"): "report",
    ("get", "/dashboard/wafers/{wafer_id}"): "report",
    ("get", "/dashboard/wafers/{wafer_id}/map"): "report",
    ("get", "/dashboard/wafers/{wafer_id}/spatial"): "report",
    ("get", "/dashboard/drift/lots"): "report",
    ("get", "/dashboard/drift/wafers"): "report",
    ("get", "/dashboard/drift/lots/{lot_id}"): "report",
    ("get", "/dashboard/drift/wafers/{wafer_id}"): "report",
    ("get", "/dashboard/drift/timeline"): "report",
    ("get", "/admin/serving"): "admin",
}
#: Documented too; their examples change what serves, so ``test_versions`` posts them.
ADMIN_CHANGES = ("/admin/serving/candidate", "/admin/serving/promote", "/admin/serving/rollback")


def _example_url(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    params = {}
    for p in operation.get("parameters", []):
        example = p["schema"].get("example")
        assert example is not None, f"{path}: parameter {p['name']} has no example"
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", str(example))
        else:
            params[p["name"]] = example
    return path, params


def test_every_route_is_typed_with_statuses_and_an_example_the_server_accepts(
    server: Server,
) -> None:
    spec = httpx.get(f"{server.url}/docs.json").json()
    paths = spec["paths"]
    for (method, path), role in ROUTES.items():
        assert path in paths and method in paths[path], path
        op = paths[path][method]
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["type"] == "object" and ok.get("properties"), f"{path}: untyped answer"
        assert "422" in op["responses"], path
        if role is not None:
            assert {"401", "403"} <= set(op["responses"]), path
        if method == "post":
            body = op["requestBody"]["content"]["application/json"]
            assert body["schema"]["properties"] and body["schema"]["required"], path
            assert {"400", "413", "415"} <= set(op["responses"]), path
            assert "example" in body, f"{path}: no example"
    for path in ADMIN_CHANGES:
        responses = paths[path]["post"]["responses"]
        assert {"200", "401", "403", "409", "422"} <= set(responses), path
    # Every example works against the real server, in an order that makes the reads non-empty.
    for method, path in ROUTES:
        op = paths[path][method]
        if method == "post":
            example = op["requestBody"]["content"]["application/json"]["example"]
            r = httpx.post(f"{server.url}{path}", json=example, headers=AUTH, timeout=30)
        else:
            url, params = _example_url(path, op)
            r = httpx.get(f"{server.url}{url}", params=params, headers=AUTH, timeout=30)
        assert r.status_code == 200, (path, r.text[:500])
    # BentoML's Swagger page, and /docs pointing to it.
    docs = httpx.get(f"{server.url}/docs", follow_redirects=True)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_the_served_spec_has_our_version_the_key_scheme_and_the_served_features(
    server: Server,
) -> None:
    from ops.openapi import package_version

    spec = httpx.get(f"{server.url}/docs.json").json()
    assert spec["info"]["version"] == package_version() and spec["info"]["version"] != "None"
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert spec["paths"]["/feedback"]["post"]["security"] == [{"apiKey": []}]
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    named = body["example"]["features"]
    assert isinstance(named, dict) and list(named)[:2] == ["vdd_v", "idd_ma"], named
    answer = httpx.post(f"{server.url}/predict", json=body["example"], timeout=60)
    assert answer.status_code == 200, answer.text
