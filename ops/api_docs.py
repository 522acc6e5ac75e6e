"""What the HTTP API says of its request fields: the descriptions the endpoints' signatures carry.

BentoML builds the spec of ``/predict``, ``/predict_batch``, ``/predict_wafer`` and
``/feedback`` from those signatures; the path items it misses are ``ops.openapi``'s.
"""

from __future__ import annotations

from ensemble.validation import ID_RULE

FEATURES_DOC = (
    "The device's parametric measurements: a list in the served schema's order, or an "
    "object keyed by feature name (the names and an example: the /predict path item)."
)
#: What every identifier must be (device, wafer, lot): the dashboard reads them in paths.
ID_RULE_DOC = (
    f"An id is a string or an integer (never a boolean or a float) of {ID_RULE}: "
    "the dashboard's paths (/dashboard/wafers/{wafer_id}) could not address others."
)
ID_DOC = (
    "Optional key; the first of device_id, wafer_id, lot_id given fixes the A/B arm. " + ID_RULE_DOC
)
WAFER_FEATURES_DOC = (
    "The dies' measurements: a matrix (one row per die, features in schema order) or an "
    'object of one array per feature name, {"vdd_v": [...], "idd_ma": [...], ...}.'
)
WAFER_IDS_DOC = (
    "device_id: an array, one per die (optional), each id once. wafer_id, lot_id: one value "
    "for every die, or an array. The first given fixes each die's A/B arm. " + ID_RULE_DOC
)
DIE_DOC = (
    "The dies' positions on the wafer, integer arrays (die_x and die_y together); "
    "one die per position of a wafer."
)
ANSWER_DOC = '"columns" (default): results as arrays; "records": /predict_batch\'s shape.'
OUTCOMES_DOC = (
    'Ground truth: [{"request_id": ..., "actual": "pass"|"fail"}] or with "device_id" '
    "instead of request_id (the device's latest prediction)."
)
