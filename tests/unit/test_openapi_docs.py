"""The OpenAPI spec as /docs.json serves it: the served schema, statuses, the key scheme."""

from __future__ import annotations

from typing import Any

from ensemble.schema import FeatureSchema
from ops import openapi


def _spec(schema: FeatureSchema | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"info": {"title": "x", "version": "None"}, "paths": {}}
    spec["paths"].update(openapi.served(lambda: schema)())
    openapi.finish(spec)
    return spec


def test_the_docs_show_the_served_schema_and_an_example_of_it() -> None:
    schema = FeatureSchema(
        names=("vdd_core", "leak_na", "ring_osc"),
        minimums=(0.9, 0.0, 400.0),
        maximums=(1.1, 80.0, 600.0),
    )
    paths = _spec(schema)["paths"]
    body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]
    features = body["schema"]["properties"]["features"]
    assert "(vdd_core, leak_na, ring_osc)" in features["description"]
    assert "vdd_v" not in str(paths["/predict"]) + str(paths["/predict_batch"])
    assert body["example"]["features"] == {"vdd_core": 1.0, "leak_na": 40.0, "ring_osc": 500.0}
    batch = paths["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]
    rows = [d["features"] for d in batch["example"]["devices"]]
    assert rows == [[1.0, 40.0, 500.0], [0.95, 20.0, 450.0]]
    wafer = paths["/predict_wafer"]["post"]["requestBody"]["content"]["application/json"]
    assert all(len(r) == 3 for r in wafer["example"]["features"])
    # Without a served schema yet: the synthetic data's six, as before.
    default = _spec(None)["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert next(iter(default["application/json"]["example"]["features"])) == "vdd_v"


def test_version_and_the_key_scheme() -> None:
    spec = _spec(None)
    assert spec["info"]["title"] == "yield-ensemble"
    assert spec["info"]["version"] == openapi.package_version() != "None"
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    keyed = [
        ("/feedback", "post"), ("/ab/report", "get"), ("/dashboard/wafers", "get"),
        ("/dashboard/wafers/{wafer_id}/map", "get"), ("/admin/serving/promote", "post"),
    ]  # fmt: skip
    for path, method in keyed:
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"apiKey": []}], path
        assert {"401", "403", "503"} <= set(operation["responses"]), path
    assert "security" not in spec["paths"]["/predict"]["post"]


def test_every_real_status_is_listed() -> None:
    paths = _spec(None)["paths"]
    for route in ("/predict", "/predict_batch", "/predict_wafer"):
        assert {"400", "413", "415", "422", "429", "503"} <= set(paths[route]["post"]["responses"])
    assert "404" in paths["/dashboard/wafers/{wafer_id}/map"]["get"]["responses"]


def test_every_keyed_route_is_in_the_spec_with_the_key_scheme_and_its_statuses() -> None:
    """Each route a key opens (``ops.access`` declarations) is documented, and Swagger UI's
    Authorize sends the key to it: /dashboard/drift/* and the spatial read were missing,
    /feedback_stdf listed 401 but had no security (the page sent no key)."""
    import service  # noqa: F401 (declares every route)
    from ops.access import ROUTES, Access

    paths = _spec(None)["paths"]
    keyed = [d for d in ROUTES.declarations() if d.access in (Access.FEEDBACK, Access.REPORT,
                                                               Access.ADMIN)]  # fmt: skip
    assert {"/dashboard/drift/timeline", "/feedback_stdf"} <= {d.path for d in keyed}
    for d in keyed:
        assert d.path in paths, f"{d.path} is served but not in /docs.json"
        for method, operation in paths[d.path].items():
            assert operation.get("security") == [{"apiKey": []}], (d.path, method)
            assert {"401", "403", "422", "503"} <= set(operation["responses"]), (d.path, method)
    for d in ROUTES.declarations():
        if d.access is Access.PREDICT:
            assert d.path in paths and "429" in paths[d.path]["post"]["responses"], d.path
    for path in ("/dashboard/drift/lots", "/dashboard/drift/wafers/{wafer_id}"):
        assert "409" in paths[path]["get"]["responses"], path


def test_predict_routes_ask_for_the_key_when_predict_keys_are_required() -> None:
    open_, keyed = openapi.paths(None), openapi.paths(None, predict_requires_key=True)
    for route in openapi.PREDICT_ROUTES:
        assert (
            "security" not in open_[route]["post"]
            and "401" not in open_[route]["post"]["responses"]
        )
        assert keyed[route]["post"]["security"] == [{"apiKey": []}], route
        assert {"401", "403", "429"} <= set(keyed[route]["post"]["responses"]), route


def test_the_groups_are_described_in_our_words_and_the_probes_list_their_503() -> None:
    spec: dict[str, Any] = {
        "tags": [{"name": "Service APIs", "description": "BentoML Service API endpoints."}],
        "paths": {p: {"get": {"responses": {"200": {}}}} for p in ("/livez", "/readyz")},
    }
    openapi.finish(spec)
    assert "BentoML" not in str(spec["tags"])
    assert [t["name"] for t in spec["tags"]][:2] == ["Service APIs", "Dashboard"]
    assert all("503" in spec["paths"][p]["get"]["responses"] for p in ("/livez", "/readyz"))


def test_every_declared_route_is_documented_but_the_documentation_itself() -> None:
    """Each route the service declares (``ops.access.ROUTES``) is in /docs.json as BentoML
    generates it with our path items, but for ``openapi.UNDOCUMENTED``."""
    import importlib

    from ops.access import ROUTES
    from service import YieldEnsemble  # declares every route and adds our path items

    generate = importlib.import_module("_bentoml_sdk.service.openapi").generate_spec
    documented = set(generate(YieldEnsemble).asdict()["paths"])
    declared = {d.path for d in ROUTES.declarations()}
    assert {"/dashboard/drift/lots/{lot_id}", "/dashboard/wafers/{wafer_id}/spatial"} <= declared
    missing = sorted(declared - documented - set(openapi.UNDOCUMENTED))
    assert not missing, f"declared routes missing from /docs.json: {missing}"
    assert set(openapi.UNDOCUMENTED) <= declared, "an exception that is no longer a route"


def test_the_drift_reads_say_409_without_a_reference_and_404_for_an_unknown_group() -> None:
    paths = _spec(None)["paths"]
    for path in (
        "/dashboard/drift/lots",
        "/dashboard/drift/wafers",
        "/dashboard/drift/timeline",
        "/dashboard/drift/lots/{lot_id}",
        "/dashboard/drift/wafers/{wafer_id}",
    ):
        get = paths[path]["get"]
        assert {"200", "401", "403", "409", "422", "503"} <= set(get["responses"]), path
        assert get["security"] == [{"apiKey": []}], path
        assert ("404" in get["responses"]) == path.endswith("}"), path
    limit = next(
        p for p in paths["/dashboard/drift/lots"]["get"]["parameters"] if p["name"] == "limit"
    )
    from ledger.drift import MAX_LIMIT

    assert limit["schema"]["maximum"] == MAX_LIMIT
