"""Liveness and readiness of an entry worker, for ``/livez`` and ``/readyz``.

Each check has its own short timeout and runs in the probes' own thread: a stopped
member, a locked database or a queue of slow reports makes a replica unready within a
second, never a hanging probe, and reads cannot fill the probes' queue.

Readiness is about whether this replica answers correctly now, not whether it is whole:

- unready until every member has loaded the serving versions once (start-up, a change);
- unready while the prediction log has no durable place for rows;
- unready while a member that answers holds other versions than the serving ones (a
  member process restarted since, until it is told again): its answers would not be
  the versions every answer names;
- unready while fewer than ``MIN_MEMBERS`` members answer (predictions would be 503);
- otherwise ready, even with a member not answering (stopped, restarting): predictions
  are voted by the others and flagged ``degraded``, as the degraded policy says. Taking
  the replica out of service would only move its traffic onto the other replicas while
  they are as likely to lose a member. ``/readyz``'s body names the members not
  answering, and ``yield_ensemble_member_up{member}`` is 0 for them.

``ReadinessRoute`` answers ``GET /readyz`` with that verdict as JSON (BentoML's own answers
a bare status); ``/livez`` stays BentoML's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ensemble.fleet import Snapshot
from ensemble.predictor import MIN_MEMBERS
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


@dataclass
class Readiness:
    """One probe's verdict: ``problem`` None when ready; ``members`` says per member
    ``ok`` or why it did not answer (those are ``degraded``)."""

    problem: str | None
    members: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.problem is None

    @property
    def degraded(self) -> list[str]:
        """Members not answering now, whose votes the answers go without."""
        return sorted(m for m, why in self.members.items() if why != "ok")

    def body(self) -> dict[str, Any]:
        """``/readyz``'s JSON: ``ready``, ``degraded`` (member names), ``members``, and on a
        503 the ``error``."""
        out: dict[str, Any] = {"ready": self.ready, "degraded": self.degraded,
                               "members": self.members}  # fmt: skip
        if self.problem is not None:
            out["error"] = f"not ready: {self.problem}"
        return out


async def ready(runtime: Runtime) -> bool:
    """Ready or not (BentoML's ``__is_ready__``); see ``check``."""
    return (await check(runtime)).ready


async def check(runtime: Runtime) -> Readiness:
    """This replica's readiness now (module docstring); sets ``member_up`` per member.

    The log and the members are asked at once: a probe takes at most ~``CHECK_S``."""
    names = list(runtime.proxies)
    problem, *answers = await asyncio.gather(
        _log_problem(runtime), *(_info(runtime.proxies[m]) for m in names)
    )
    infos = [a for a in answers if isinstance(a, Mapping)]
    members = {
        m: "ok" if isinstance(a, Mapping) else a for m, a in zip(names, answers, strict=True)
    }
    for m, why in members.items():
        runtime.metrics.member_up.labels(member=m).set(why == "ok")
    if problem is not None:
        logger.warning("not ready: %s", problem)
        return Readiness(problem, members)
    if not runtime.switch.prepared:
        logger.info("not ready: members still loading %s", runtime.serving.state.versions)
        return Readiness(f"members still loading {runtime.serving.state.versions}", members)
    problem = members_problem(runtime.serving, infos)
    if problem is not None:
        logger.error("not ready: %s; telling the members again what serves", problem)
        runtime.switch.remind()
        return Readiness(problem, members)
    verdict = Readiness(None, members)
    if len(infos) < MIN_MEMBERS:
        verdict.problem = (
            f"{len(infos)} of {len(names)} members answer, the ensemble needs {MIN_MEMBERS} "
            f"({'; '.join(f'{m}: {members[m]}' for m in verdict.degraded)})"
        )
        logger.warning("not ready: %s", verdict.problem)
    elif _DEGRADED.get(id(runtime), []) != verdict.degraded:
        # Said when it changes, not on every probe.
        if verdict.degraded:
            logger.warning("ready, degraded: %s", {m: members[m] for m in verdict.degraded})
        else:
            logger.info("ready: every member answers again")
    _DEGRADED[id(runtime)] = verdict.degraded
    return verdict


#: The members each runtime was last seen degraded of (``check`` logs a change).
_DEGRADED: dict[int, list[str]] = {}


async def _log_problem(runtime: Runtime) -> str | None:
    """Why the prediction log has no durable place for rows now, or None."""
    try:
        problem: str | None = await asyncio.wait_for(runtime.probe(runtime.log.accepting), CHECK_S)
        return problem
    except TimeoutError:
        return f"the prediction log database did not answer within {CHECK_S} s"


async def _info(proxy: Any) -> Mapping[str, Any] | str:
    """A member's ``info()``, or why it did not answer within ``CHECK_S``."""
    try:
        info: Mapping[str, Any] = await asyncio.wait_for(proxy.to_async.info(), CHECK_S)
        return info
    except TimeoutError:
        return f"did not answer within {CHECK_S} s"
    except Exception as exc:  # a member still starting up, or stopped
        return f"not answering: {str(exc)[:200] or type(exc).__name__}"


def members_problem(serving: Snapshot, infos: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the members that answered (``info()`` each) cannot answer for ``serving`` now,
    or None.

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


class ReadinessRoute:
    """ASGI middleware answering ``GET /readyz`` with ``check``'s verdict as JSON: 200, or
    503 with ``error``. Before the worker has built its runtime, BentoML's own answers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/readyz" and scope["method"] == "GET":
            from entry.answers import encode, request_id
            from entry.runtime import current

            try:
                runtime = current()
            except RuntimeError:
                pass
            else:
                verdict = await check(runtime)
                body = {"request_id": request_id(), **verdict.body()}
                response = encode(body, 200 if verdict.ready else 503)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
