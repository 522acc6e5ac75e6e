"""The writer's batch encoding: the same JSON as one dumps, in pieces, NaN refused."""

from __future__ import annotations

import json
import math

import pytest

from ledger.engine import ENCODE_CHUNK, _encode_in_pieces, strict_json


@pytest.mark.parametrize("n", [0, 1, ENCODE_CHUNK, ENCODE_CHUNK + 1, 3 * ENCODE_CHUNK + 7])
def test_pieces_make_the_same_json(n: int) -> None:
    records = [[f"r.{i}", i * 0.5, {"m": [i, None]}, "é"] for i in range(n)]
    assert json.loads(_encode_in_pieces(records)) == records


def test_a_nan_anywhere_refuses_only_its_row() -> None:
    records = [[f"r.{i}", 1.0] for i in range(2 * ENCODE_CHUNK)]
    records[ENCODE_CHUNK + 3][1] = math.nan
    good, payload, refused = strict_json(records)
    assert payload is None and len(good) == 2 * ENCODE_CHUNK - 1
    assert [r[0] for r, _ in refused] == [f"r.{ENCODE_CHUNK + 3}"]
