"""The pieces every OpenAPI path item of ours is built from: answers, statuses, parameters."""

from __future__ import annotations

from typing import Any

ID = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 256}, {"type": "integer"}]}
NUMBERS = {"type": "array", "items": {"type": "number"}}


def error_response(description: str) -> dict[str, Any]:
    """A response with the edge's error body: ``error``, ``request_id``, and ``field`` (422)."""
    schema = {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {"type": "string"},
            "request_id": {"type": "string"},
            "field": {"type": "string", "description": "the wrong field (422)"},
        },
    }
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def time_parameter(name: str, what: str, example: str) -> dict[str, Any]:
    """A query parameter holding a time: unix seconds or ISO 8601."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{what}: unix seconds or ISO 8601 (UTC unless it says otherwise).",
        "schema": {"type": "string", "example": example},
    }


def ok_response(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A 200 answer: a JSON object of ``request_id`` and ``properties``."""
    schema = {"type": "object", "properties": {"request_id": {"type": "string"}, **properties}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def statuses(role: str | None, body: bool, unavailable: bool) -> dict[str, Any]:
    """The edge's error answers for a route: by ``role`` needed, whether it takes a
    ``body``, and whether it answers 503 when members or the log are ``unavailable``."""
    out: dict[str, Any] = {}
    if body:
        out["400"] = error_response("Malformed JSON or a missing field (BentoML's validation).")
    if role:
        out["401"] = error_response("No API key, or an unknown one (WWW-Authenticate: Bearer).")
        out["403"] = error_response(f"The key has no {role} role.")
    if body:
        out["413"] = error_response(
            "Body over YIELD_ENSEMBLE_MAX_BODY_MB, refused before it is read."
        )
        out["415"] = error_response("The body is not application/json.")
    out["422"] = error_response("A field is wrong; `field` names it (and the device or die).")
    if unavailable:
        out["503"] = error_response(
            "Fewer than two members answered, or the prediction log can take no rows."
        )
    elif role:  # every keyed route reads or writes the prediction log
        out["503"] = error_response(
            "The prediction log cannot be read or written now, or the request waited over "
            "30 s behind other reads (`Retry-After` says when to try again)."
        )
    return out


def post(
    operation: str,
    description: str,
    request: dict[str, Any],
    example: dict[str, Any],
    ok: dict[str, Any],
    role: str | None = None,
    unavailable: bool = True,
) -> dict[str, Any]:
    """A POST path item taking a JSON body (``request`` schema, ``example``); the predict
    routes answer 429 too."""
    item = {
        "post": {
            "tags": ["Service APIs"],
            "operationId": f"yield_ensemble__{operation}",
            "description": description,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request, "example": example}},
            },
            "responses": {"200": ok, **statuses(role, True, unavailable)},
            **security(role),
        }
    }
    if operation.startswith("predict"):
        answers = item["post"]["responses"]
        answers["429"] = error_response(
            "More work than the replica takes now (Retry-After); nothing was done."
        )
    return item


#: The API keys, as the spec's security scheme (Swagger UI's "Authorize" button).
SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key's secret (YIELD_ENSEMBLE_API_KEYS[_FILE], `make serve` "
        "makes data/api-keys), sent as `Authorization: Bearer <secret>`.",
    }
}


def security(role: str | None) -> dict[str, Any]:
    """The operation's ``security``: the bearer key when it needs a ``role``."""
    return {"security": [{"apiKey": []}]} if role else {}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


WINDOW = [
    query("since", {"type": "string", "example": "2026-11-01T00:00:00Z"},
          "Window start: ISO 8601 or unix seconds."),
    query("until", {"type": "string", "example": "2099-01-01T00:00:00Z"},
          "Window end, later than since."),
]  # fmt: skip
PAGE = [
    query("limit", {"type": "integer", "minimum": 1, "maximum": 10000, "example": 100},
          "Rows per page."),
    query("offset", {"type": "integer", "minimum": 0, "example": 0}, "First row of the page."),
]  # fmt: skip


def get(
    operation: str,
    description: str,
    parameters: list[dict[str, Any]],
    ok: dict[str, Any],
    not_found: bool = False,
) -> dict[str, Any]:
    """A GET path item of the dashboard (a ``report`` key), 404 when ``not_found``."""
    responses = {"200": ok, **statuses("report", False, False)}
    if not_found:
        responses["404"] = error_response("No prediction for this wafer in the window.")
    return {
        "get": {
            "tags": ["Dashboard"],
            "operationId": f"yield_ensemble__{operation}",
            "description": description + " Needs a `report` key.",
            "parameters": parameters,
            "responses": responses,
            **security("report"),
        }
    }
