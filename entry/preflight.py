"""Every area's settings, read and validated when ``service.py`` starts importing ours.

Modules read their settings at import (``models.services``, ``service``); a bad one raised
from whichever came first, as a traceback. Imported first, this stops ``bentoml serve``
with one line naming the variable (``ensemble.settings.SettingsError``) and exit 2.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from ensemble.settings import SettingsError, get_settings
from ledger.settings import get_ledger_settings
from ops.settings import get_ops_settings


def cannot_start(reason: object) -> NoReturn:
    """Stop ``bentoml serve`` with one line saying why, exit status 2, no traceback."""
    print(f"error: yield-ensemble cannot start: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None


try:
    get_settings(), get_ops_settings(), get_ledger_settings()
except SettingsError as exc:
    cannot_start(exc)
