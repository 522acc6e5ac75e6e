"""Start-up: the checks that stop a bad deployment before any worker serves.

``bentoml serve`` runs ``check_deployment`` once before the workers start, so a bad
model store, API-key file, ledger or serving state stops the server with a message
naming it, instead of a worker restarting in a loop.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from ensemble.fleet import Loaded
from ensemble.serving import ServingState
from ensemble.settings import get_settings
from models.base import configured_state
from models.base import load_version as base_load_version
from ops.auth import KeyRing, load_keys
from ops.settings import get_ops_settings

logger = logging.getLogger("yield_ensemble")


def load_version(version: str | None = None) -> Loaded:
    """``models.base.load_version`` with the served combiner."""
    return base_load_version(version, get_settings().combiner)


def reconcile(engine: Any) -> ServingState:
    """The ledger's serving state, with the start-up settings applied if they changed
    (``ledger.serving.reconcile``)."""
    from ledger.serving import ServingStore
    from ledger.serving import reconcile as apply_settings

    by = f"start-up:{socket.gethostname()}"[:64]
    state, changed = apply_settings(ServingStore(engine), configured_state(get_settings()), by)
    if changed:
        logger.info("serving state %d from the start-up settings: %s", state.revision,
                    state.as_dict())  # fmt: skip
    return state


def check_keys() -> KeyRing:
    """The configured API keys; raises KeyConfigError naming the bad entry (never a secret)."""
    ops = get_ops_settings()
    return KeyRing(load_keys(ops.api_keys, ops.api_keys_file))


def check_log(started: Loaded) -> None:
    """Create the prediction log's tables and agree the serving state; raises, naming the
    location (without its password), if it cannot be written, or naming the version this
    store cannot serve (``started``: the start-up version, as loaded)."""
    from ledger.errors import cause_line, safe_url
    from ledger.predlog import PredictionLog
    from ledger.settings import get_ledger_settings

    url = get_ledger_settings().log_url
    try:
        log = PredictionLog(url)
    except Exception as exc:
        raise RuntimeError(
            f"prediction log {safe_url(url)} cannot be opened: {cause_line(exc)}"
        ) from None
    try:
        problem = log.writable()
        if problem is not None:
            raise RuntimeError(problem)
        state = reconcile(log.engine)
        for version in state.versions:
            try:
                loaded = started if version == started.version else load_version(version)
            except Exception as exc:
                raise RuntimeError(
                    f"the serving state in {log.safe_url} (revision {state.revision}, by "
                    f"{state.changed_by}) serves version {version}, which this service cannot "
                    f"serve: {exc}"
                ) from exc
            wrong = loaded.other_features(started.schema)
            if wrong:
                raise RuntimeError(wrong)
    finally:
        log.close()


def check_deployment() -> None:
    """Every start-up check, once, before the workers start."""
    started = load_version()
    check_keys()
    check_log(started)
