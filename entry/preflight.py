"""Every area's settings, read and validated when ``service.py`` starts importing ours.

Modules read their settings at import (``models.services``, ``service``); a bad one raised
from whichever came first, as a traceback. Imported first, this stops ``bentoml serve``
with one line naming the variable (``ensemble.settings.SettingsError``) and exit 2.
"""

from __future__ import annotations

import sys

from ensemble.settings import SettingsError, get_settings
from ledger.settings import get_ledger_settings
from ops.settings import get_ops_settings

try:
    get_settings(), get_ops_settings(), get_ledger_settings()
except SettingsError as exc:
    print(f"error: yield-ensemble cannot start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
