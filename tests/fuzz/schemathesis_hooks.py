"""Schemathesis checks of our own, loaded with SCHEMATHESIS_HOOKS=tests.fuzz.schemathesis_hooks."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


def _refuse(token: str) -> None:
    raise ValueError(f"{token} is not JSON (RFC 8259)")


@schemathesis.check
def strict_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every JSON answer parses as strict JSON: no NaN, Infinity or -Infinity."""
    if "json" not in response.headers.get("content-type", [""])[0]:
        return None
    json.loads(response.text, parse_constant=_refuse)
    return True
