"""The fuzzer's strict-JSON check fails on what it is there to catch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.fuzz.schemathesis_hooks import strict_json


def _response(text: str, content_type: str = "application/json") -> SimpleNamespace:
    return SimpleNamespace(text=text, headers={"content-type": [content_type]})


def test_nan_in_an_answer_fails_the_check() -> None:
    with pytest.raises(ValueError, match="NaN"):
        strict_json(None, _response('{"probability": NaN}'), None)
    with pytest.raises(ValueError, match="Infinity"):
        strict_json(None, _response('{"p": -Infinity}'), None)


def test_strict_json_and_other_media_pass() -> None:
    assert strict_json(None, _response('{"probability": 0.5}'), None) is True
    assert strict_json(None, _response("NaN", "text/plain"), None) is None
