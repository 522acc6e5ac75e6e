"""Liveness and readiness of an entry worker, for ``/livez`` and ``/readyz``.

Each check has its own short timeout and runs in the probes' own thread: a stopped
member, a locked database or a queue of slow reports makes a replica unready within a
second, never a hanging probe, and reads cannot fill the probes' queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ensemble.fleet import Snapshot
from entry.runtime import Runtime
from ledger.settings import get_ledger_settings

logger = logging.getLogger("yield_ensemble")
#: Longest a readiness check waits for the database or the members.
CHECK_S = 0.5


def alive(runtime: Runtime) -> bool:
    """Alive unless the log writer has held rows without moving any for too long."""
    stalled = runtime.log.stalled_for()
    if stalled >= get_ledger_settings().prediction_log_stall_s:
        logger.error("not alive: the prediction log writer has moved no row for %.0f s "
                     "(%s)", stalled, runtime.log.status.database_error)  # fmt: skip
        return False
    return True


async def ready(runtime: Runtime) -> bool:
    """Ready when every member holds the serving versions (checked on every probe) and the
    log takes rows."""
    try:
        problem = await asyncio.wait_for(runtime.probe(runtime.log.accepting), CHECK_S)
    except TimeoutError:
        problem = f"the prediction log database did not answer within {CHECK_S} s"
    if problem is not None:
        logger.warning("not ready: %s", problem)
        return False
    if not runtime.switch.prepared:
        logger.info("not ready: members still loading %s", runtime.serving.state.versions)
        return False
    try:
        infos = await asyncio.wait_for(
            asyncio.gather(*(p.to_async.info() for p in runtime.proxies.values())), CHECK_S
        )
    except Exception as exc:  # a member still starting up, or stopped
        logger.info("not ready: members: %s", str(exc) or type(exc).__name__)
        return False
    problem = members_problem(runtime.serving, infos)
    if problem is not None:
        logger.error("not ready: %s; telling the members again what serves", problem)
        runtime.switch.remind()
        return False
    return True


def members_problem(serving: Snapshot, infos: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the members (``info()`` each) cannot answer for ``serving`` now, or None.

    Checked on every probe, not once: a member process restarted since holds only its
    own start-up model, maybe another run, until it is told what serves again.
    """
    versions = [v for v in (serving.champion, serving.candidate) if v is not None]
    for info in infos:
        member = info["member"]
        wanted = {v.tags[member] for v in versions if member in v.tags}
        missing = sorted(wanted - set(info.get("loaded", ())))
        if missing:
            return (
                f"member {member} holds {sorted(info.get('loaded', ()))}, not the serving "
                f"{missing} (restarted, or it unloaded them)"
            )
    return None
