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
from models.base import check_schemas, configured_state
from models.base import load_version as base_load_version
from ops.auth import KeyRing, load_keys
from ops.settings import get_ops_settings

logger = logging.getLogger("yield_ensemble")


def load_version(version: str | None = None) -> Loaded:
    """``models.base.load_version`` with the served combiner; None: the champion of the
    ledger's serving state (the settings' version before any start wrote one), so every
    process of a replica starts from the one resolved version, never its own ``latest``."""
    if version is None:
        version = serving_champion()
    return base_load_version(version, get_settings().combiner)


def serving_champion() -> str | None:
    """The champion of the ledger's serving state, or None if none is written yet."""
    from ledger.engine import make_engine
    from ledger.serving import ServingStore
    from ledger.settings import get_ledger_settings

    engine = make_engine(get_ledger_settings().log_url)
    try:
        state = ServingStore(engine).read()
    except Exception as exc:  # no tables yet: the start-up check makes them
        logger.info("no serving state to start from (%s): the settings' version",
                    type(exc).__name__)  # fmt: skip
        return None
    finally:
        engine.dispose()
    return None if state is None else state.champion


def reconcile(engine: Any) -> ServingState:
    """The ledger's serving state, with the start-up settings applied where they changed
    (``ledger.serving.reconcile``); a WARNING when a setting written ``latest`` now names
    another run than the one serving (the ledger's state wins: a new run is not a decision)."""
    from ledger.serving import LATEST, ServingStore
    from ledger.serving import reconcile as apply_settings

    by = f"start-up:{socket.gethostname()}"[:64]
    settings = get_settings()
    wanted = configured_state(settings)
    state, changed = apply_settings(ServingStore(engine), wanted, by)
    if changed:
        logger.info("serving state %d from the start-up settings: %s", state.revision,
                    state.as_dict())  # fmt: skip
    if settings.model_version == LATEST and wanted.champion != state.champion:
        logger.warning(
            "YIELD_ENSEMBLE_MODEL_VERSION=latest now names run %s, but the serving state "
            "(revision %d, %s by %s) serves champion %s, which keeps serving: a newly trained "
            "run is not served until an operator decides. To serve %s, try it as a candidate "
            "(`yield-ensemble candidate %s --share 0.1`, then `yield-ensemble promote`), or "
            "pin YIELD_ENSEMBLE_MODEL_VERSION=%s and restart",
            wanted.champion, state.revision, state.action, state.changed_by, state.champion,
            wanted.champion, wanted.champion, wanted.champion,
        )  # fmt: skip
    return state


def check_keys() -> KeyRing:
    """The configured API keys; raises KeyConfigError naming the bad entry (never a secret)."""
    ops = get_ops_settings()
    return KeyRing(load_keys(ops.api_keys, ops.api_keys_file))


def check_log(started: Loaded | None = None) -> Loaded:
    """Create the prediction log's tables and agree the serving state; raises, naming the
    location (without its password), if it cannot be written, or naming the version this
    store cannot serve. ``started``: a version loaded already, reused if it serves.
    Returns the champion of the serving state, as loaded (its schema is the service's)."""
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
        loaded: list[Loaded] = []
        for version in state.versions:
            try:
                same = started is not None and version == started.version
                loaded.append(started if same and started else load_version(version))
            except Exception as exc:
                raise RuntimeError(
                    f"the serving state in {log.safe_url} (revision {state.revision}, by "
                    f"{state.changed_by}) serves version {version}, which this service cannot "
                    f"serve: {exc}. Serve with the model store that has that run "
                    f"(BENTOML_HOME), or make a run this store has the champion: "
                    f"YIELD_ENSEMBLE_MODEL_VERSION=<run> (`bentoml models list` names them; "
                    f"the ledger keeps {version} as the previous champion), or start a ledger "
                    f"of its own (YIELD_ENSEMBLE_DATA_DIR)"
                ) from exc
            wrong = loaded[-1].other_features(loaded[0].schema)
            if wrong:
                raise RuntimeError(wrong)
        return loaded[0]
    finally:
        log.close()


def check_deployment() -> None:
    """Every start-up check, once, before the workers start."""
    check_keys()
    check_schemas(get_settings().model_version)
    check_log()
