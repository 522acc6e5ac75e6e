"""Turn request JSON into float32 feature rows, or say exactly which field is wrong."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ensemble.errors import ECHO_CHARS as ECHO_CHARS
from ensemble.errors import InvalidInput as InvalidInput
from ensemble.errors import shown as shown
from ensemble.schema import FeatureSchema

#: The models compute in float32: a larger magnitude becomes infinity there.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Earliest and latest report window bounds accepted (unix seconds): 1970 to the year 9999.
TIME_RANGE = (0.0, 253_402_300_799.0)
#: A query's count (limit, offset, history): ASCII digits, at most 10.
COUNT = re.compile("[0-9]{1,10}")
#: A report bound in unix seconds: ASCII digits, an optional fraction.
SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


def number(value: Any, field: str) -> float:
    # bool is an int subclass; a yield dashboard sending true/false for Vdd is a bug.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(field, f"must be a number, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise InvalidInput(field, f"must be finite, got {shown(value)}")
    if abs(number) > FLOAT32_MAX:
        raise InvalidInput(
            field, f"must be within +-{FLOAT32_MAX:.6g} (the models' float32), got {shown(value)}"
        )
    return number


def parse_features(raw: Any, schema: FeatureSchema, field: str = "features") -> list[float]:
    """One device's features as a list in schema order.

    ``raw`` is either a list of numbers in schema order or a mapping from
    feature name to number; every feature must be present, no others.
    """
    if isinstance(raw, Mapping):
        unknown = [k for k in raw if schema.index(k) is None]
        if unknown:
            raise InvalidInput(
                f"{field}.{unknown[0]}",
                f"unknown feature; expected the features {list(schema.names)}",
            )
        missing = [n for n in schema.names if n not in raw]
        if missing:
            raise InvalidInput(f"{field}.{missing[0]}", "missing feature")
        return [number(raw[n], f"{field}.{n}") for n in schema.names]
    if isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)):
        if len(raw) != len(schema):
            raise InvalidInput(
                field,
                f"expected {len(schema)} values in the order {list(schema.names)}, got {len(raw)}",
            )
        return [number(v, f"{field}[{i}] ({schema.names[i]})") for i, v in enumerate(raw)]
    raise InvalidInput(
        field, f"must be a list of {len(schema)} numbers or an object keyed by feature name"
    )


def _fast_rows(rows: list[Any], width: int) -> np.ndarray | None:
    """Vectorised path for the common case of all-list, all-numeric rows.

    Returns None when anything is unusual; the caller then validates row by row,
    which also produces the precise error message.
    """
    if not all(type(r) is list and len(r) == width for r in rows):
        return None
    for row in rows:
        for v in row:
            if type(v) is not float and type(v) is not int:
                return None
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except OverflowError:  # an integer beyond float range: the slow path names it
        return None
    # Also false for NaN and infinity; anything beyond float32 would become infinity.
    if not (np.abs(arr) <= FLOAT32_MAX).all():
        return None
    return arr.astype(np.float32)


def parse_rows(
    rows: list[Any], schema: FeatureSchema, field: str, row_field: str = "{field}[{i}].features"
) -> np.ndarray:
    """Many devices' features, ``rows[i]`` being ``parse_features`` input, as (n, k) float32.

    ``row_field`` names row ``i`` in errors (``devices[3].features`` by default).
    """
    fast = _fast_rows(rows, len(schema))
    if fast is not None:
        return fast
    parsed = [
        parse_features(r, schema, row_field.format(field=field, i=i)) for i, r in enumerate(rows)
    ]
    return np.asarray(parsed, dtype=np.float32).reshape(len(parsed), len(schema))


#: Characters no identifier or reason may hold: control characters (NUL, which PostgreSQL
#: text refuses; newlines, which forge lines in plain-text logs) and lone surrogates (which
#: no database can encode).
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str, field: str, allowed: str = "") -> str:
    """``text``, or InvalidInput naming ``field`` if it holds a character of ``UNPRINTABLE``
    (but those of ``allowed``)."""
    found = UNPRINTABLE.search(text.translate({ord(c): " " for c in allowed}) if allowed else text)
    if found:
        raise InvalidInput(
            field,
            f"must not contain control characters or lone surrogates, got {found.group()!r} "
            f"in {shown(text)}",
        )
    return text


#: Characters an identifier may not hold: the dashboard reads a wafer at
#: ``/dashboard/wafers/{wafer_id}``, and a server decodes ``%2F`` before routing, so no
#: encoding lets a client address an id holding one of these (nor one that is . or ..,
#: which clients resolve as path segments).
UNADDRESSABLE = re.compile(r"[/\\?#%]")
#: The identifier rule, as the errors and the API docs state it.
ID_RULE = "1 to 256 printable characters, none of / \\ ? # %, and not . or .."


def parse_identifier(raw: Any, field: str, *, addressable: bool = True) -> str | None:
    """An optional identifier (device, wafer, lot) of ``ID_RULE``, or InvalidInput naming
    ``field``. A string, or an integer (kept as its decimal text); never a boolean, a
    float (``1.0`` would become ``"1"``) or a container. ``addressable=False`` (looking
    up ids stored before the rule) drops the check of ``UNADDRESSABLE``."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise InvalidInput(field, f"must be a string (or an integer), got {shown(raw)}")
    if isinstance(raw, int) and raw.bit_length() > 851:  # over 256 digits; str() fails past 4300
        raise InvalidInput(field, f"must be {ID_RULE}, got {shown(raw)}")
    text = str(raw) if isinstance(raw, str) else format(raw)
    if not text or len(text) > 256:
        raise InvalidInput(field, f"must be {ID_RULE}, got {len(text)} characters")
    printable(text, field)
    if addressable and (UNADDRESSABLE.search(text) or text in (".", "..")):
        raise InvalidInput(field, f"must be {ID_RULE} (the dashboard's paths), got {shown(text)}")
    return text


def repeated(values: Sequence[Any], field: str, what: str) -> None:
    """InvalidInput naming both indexes if a value other than None occurs twice in
    ``values``; ``field`` names entry ``i`` (``"devices[{i}].device_id"``), ``what`` the
    value in the message."""
    present = [v for v in values if v is not None]
    if len(set(present)) == len(present):  # the usual case, at C speed
        return
    first: dict[Any, int] = {}
    for i, value in enumerate(values):
        if value is None:
            continue
        j = first.setdefault(value, i)
        if j != i:
            raise InvalidInput(
                field.format(i=i),
                f"{what} {shown(value)} is also at index {j}; each must be unique",
            )


#: Identifier fields of a device, in the order they are tried as the sticky A/B split key.
ID_FIELDS: tuple[str, ...] = ("device_id", "wafer_id", "lot_id")
#: The body fields of each JSON route that predicts or labels; any other is refused.
REQUEST_FIELDS: dict[str, tuple[str, ...]] = {
    "/predict": ("features", *ID_FIELDS),
    "/predict_batch": ("devices",),
    "/predict_wafer": ("features", *ID_FIELDS, "die_x", "die_y", "answer"),
    "/feedback": ("outcomes",),
}


def unknown_field(field: str, allowed: Sequence[str]) -> InvalidInput:
    """The error for a field nobody reads: it names the field and the fields there are."""
    return InvalidInput(field, f"unknown field; the fields are {', '.join(allowed)}")


def split_key(ids: dict[str, str | None]) -> str | None:
    """The sticky split key: the first of device_id, wafer_id, lot_id that is given."""
    return next((ids[f] for f in ID_FIELDS if ids.get(f) is not None), None)


_DEVICE_FIELDS = frozenset({"features", *ID_FIELDS})


def parse_batch(
    devices: Any, schema: FeatureSchema, max_devices: int
) -> tuple[np.ndarray, list[dict[str, str | None]]]:
    """A ``/predict_batch`` body's ``devices`` list as (features, identifiers per device)."""
    if not isinstance(devices, list):
        raise InvalidInput("devices", "must be a list of {features, device_id} objects")
    if not devices:
        raise InvalidInput("devices", "must hold at least one device")
    if len(devices) > max_devices:
        raise InvalidInput(
            "devices", f"at most {max_devices} devices per request, got {len(devices)}"
        )
    feature_rows: list[Any] = []
    ids: list[dict[str, str | None]] = []
    for i, device in enumerate(devices):
        if not isinstance(device, Mapping):
            raise InvalidInput(f"devices[{i}]", "must be an object with 'features'")
        if "features" not in device:
            raise InvalidInput(f"devices[{i}].features", "missing")
        if not device.keys() <= _DEVICE_FIELDS:
            extra = sorted(set(device) - _DEVICE_FIELDS)[0]
            raise unknown_field(f"devices[{i}].{extra}", ("features", *ID_FIELDS))
        feature_rows.append(device["features"])
        # The field's name is formatted only for an id given (10,000 devices: 30,000
        # f-strings otherwise, 10% of the parse).
        ids.append({
            f: None if (v := device.get(f)) is None else parse_identifier(v, f"devices[{i}].{f}")
            for f in ID_FIELDS
        })  # fmt: skip
    repeated([d["device_id"] for d in ids], "devices[{i}].device_id", "device_id")
    return parse_rows(feature_rows, schema, "devices"), ids


#: What ``actual`` may say in feedback.
OUTCOME_VALUES: tuple[str, ...] = ("pass", "fail")


def parse_outcomes(raw: Any, max_items: int) -> list[tuple[str, str, str]]:
    """A ``/feedback`` body's ``outcomes`` as ``(kind, id, actual)``, kind request_id/device_id."""
    if not isinstance(raw, list):
        raise InvalidInput("outcomes", "must be a list of {request_id|device_id, actual} objects")
    if not raw:
        raise InvalidInput("outcomes", "must hold at least one outcome")
    if len(raw) > max_items:
        raise InvalidInput("outcomes", f"at most {max_items} outcomes per call, got {len(raw)}")
    parsed = []
    for i, item in enumerate(raw):
        field = f"outcomes[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(field, "must be an object with request_id or device_id, and actual")
        extra = set(item) - {"request_id", "device_id", "actual"}
        if extra:
            raise unknown_field(
                f"{field}.{sorted(extra)[0]}", ("request_id", "device_id", "actual")
            )
        keys = [k for k in ("request_id", "device_id") if item.get(k) is not None]
        if len(keys) != 1:
            raise InvalidInput(field, "give exactly one of request_id and device_id")
        ident = parse_identifier(item[keys[0]], f"{field}.{keys[0]}", addressable=False)
        actual = item.get("actual")
        if actual not in OUTCOME_VALUES:
            raise InvalidInput(f"{field}.actual", f"must be 'pass' or 'fail', got {shown(actual)}")
        parsed.append((keys[0], str(ident), str(actual)))
    return parsed


def parse_time(raw: str | None, field: str) -> float | None:
    """A report window bound: unix seconds or ISO 8601 (UTC unless it says otherwise)."""
    if raw is None or raw == "":
        return None
    hint = f"must be unix seconds or ISO 8601 like 2026-11-26T08:00:00Z, got {shown(raw)}"
    if len(raw) > ECHO_CHARS or not raw.isascii():  # int() and float() read '١' as 1
        raise InvalidInput(field, hint)
    if SECONDS.fullmatch(raw):
        moment = float(raw)
    elif not raw[:1].isdigit():  # float() also reads '+1', ' 1', '1_0', 'inf', '1e3'
        raise InvalidInput(field, hint)
    else:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(field, hint) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        moment = parsed.timestamp()
    low, high = TIME_RANGE
    if not low <= moment <= high:  # also false for nan; inf and 1e309 are out of range
        raise InvalidInput(field, f"must be a time from 1970 to the year 9999, got {shown(raw)}")
    return moment


def parse_window(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """A report window ``[since, until)`` from its two optional bounds; until must be later."""
    start, end = parse_time(since, "since"), parse_time(until, "until")
    if start is not None and end is not None and end <= start:
        raise InvalidInput("until", "must be later than since")
    return start, end


def parse_count(raw: str | None, field: str, default: int, low: int, high: int) -> int:
    """An integer query parameter (``limit``, ``offset``) within [low, high]."""
    if raw is None:
        return default
    # Not int() alone: it takes '+5', ' 5', '1_0' and '١', and raises past 4,300 digits.
    if not COUNT.fullmatch(raw):
        raise InvalidInput(field, f"must be a whole number {low} to {high}, got {shown(raw)}")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(field, f"must be {low} to {high}, got {value}")
    return value
