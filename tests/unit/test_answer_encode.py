"""An answer's JSON: the values ``json.dumps`` gives, strict (no NaN), the request id header."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from entry.answers import encode
from ops.edge import REQUEST_ID_HEADER


def test_an_answer_holds_the_values_json_dumps_would() -> None:
    rng = np.random.default_rng(3)
    results = [
        {"prediction": "pass", "probability": float(p), "votes": {"keras": float(p) / 3},
         "device_id": "Ωafer-7 \"quoted\"", "cached": False, "die": [3, -4], "x": None}
        for p in rng.random(200).astype(np.float32)
    ]  # fmt: skip
    body = {
        "results": results,
        "tiny": 1e-300,
        "huge": 1.7976931348623157e308,
        "ints": [0, -1, 2**53 + 1],
    }
    response = encode(body)
    assert json.loads(response.body) == json.loads(json.dumps(body)) == body
    assert response.media_type == "application/json"
    assert REQUEST_ID_HEADER in response.headers


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_refused_not_sent(bad: float) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        encode({"results": [{"probability": 0.5}, {"probability": bad}]})


def test_nan_spelled_in_a_string_is_sent_as_it_is() -> None:
    body: dict[str, Any] = {"device_id": "NaN", "note": "-Infinity"}
    assert json.loads(encode(body).body) == body


def test_an_object_json_cannot_hold_is_refused() -> None:
    with pytest.raises((TypeError, ValueError)):
        encode({"probability": np.float32(0.5)})
