"""The serving state in the ledger's database: one current row and its history.

Every replica reads the same row, so they serve the same versions; a change is a
compare-and-set on the revision, so two admins (or two replicas starting with new
settings) never both win: the loser reads the new state and tries its change again
on top of it, or finds nothing left to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from ensemble.serving import ServingState
from ledger.errors import cause_line
from ledger.tables import serving_history, serving_state

#: Attempts at a change that keeps losing the compare-and-set to other writers.
ATTEMPTS = 20
#: The columns a state and its history share (all but the row keys).
_FIELDS = tuple(c.name for c in serving_history.columns if c.name != "revision")


class ServingStore:
    """Read and change the serving state over ``engine`` (the prediction log's)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def describe(self, exc: BaseException) -> str:
        """What went wrong in ``exc`` in one line: the driver's own message, without the
        statement and the link SQLAlchemy adds (``ledger.errors.cause_line``)."""
        return cause_line(exc)

    def read(self) -> ServingState | None:
        """The current state, or None before the first start-up wrote one."""
        with self.engine.connect() as conn:
            return _read(conn)

    def revision(self) -> int:
        """The current revision (0 when there is none): the cheap query replicas poll."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(serving_state.c.revision).where(serving_state.c.id == 1)
            ).scalar()
        return int(value or 0)

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` revisions, newest first."""
        query = sa.select(serving_history).order_by(serving_history.c.revision.desc())
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def change(
        self,
        make: Callable[[ServingState | None], ServingState | None],
        changed_by: str,
        action: str,
        reason: str | None = None,
    ) -> tuple[ServingState, bool]:
        """Apply ``make`` to the current state: (the state now, whether this call changed it).

        ``make`` returns the new state, or None for "nothing to change"; it may raise
        (``ensemble.serving.InvalidChange``), which this passes on. Raises RuntimeError if
        other writers win every attempt.
        """
        last: Exception | None = None
        for _ in range(ATTEMPTS):
            try:
                done = self._attempt(make, changed_by, action, reason)
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
                # Another writer got there first (on SQLite, a snapshot gone stale): retry.
                last = exc
                time.sleep(0.05)
                continue
            if done is not None:
                return done
        raise RuntimeError(
            f"the serving state could not be changed in {ATTEMPTS} attempts ({last})"
        ) from last

    def _attempt(
        self,
        make: Callable[[ServingState | None], ServingState | None],
        changed_by: str,
        action: str,
        reason: str | None,
    ) -> tuple[ServingState, bool] | None:
        """One compare-and-set: the result, or None when another writer won the race."""
        with self.engine.begin() as conn:
            current = _read(conn)
            wanted = make(current)
            if wanted is None:
                if current is None:
                    raise RuntimeError("no serving state, and nothing to make one from")
                return current, False
            now = time.time()
            fresh = wanted.candidate is not None and (
                current is None or current.candidate != wanted.candidate
            )
            new = replace(
                wanted,
                revision=(current.revision if current else 0) + 1,
                candidate_since=now if fresh else wanted.candidate_since,
                changed_at=now,
                changed_by=changed_by,
                action=action,
                reason=reason,
            )
            if new.candidate is None:
                new = replace(new, candidate_since=None)
            values = {f: getattr(new, f) for f in _FIELDS}
            if current is None:
                # Two first writers: the primary key fails one of them (IntegrityError).
                conn.execute(
                    serving_state.insert().values(
                        id=1, revision=1, configured=new.configured, **values
                    )
                )
            else:
                done = conn.execute(
                    serving_state.update()
                    .where(serving_state.c.id == 1)
                    .where(serving_state.c.revision == current.revision)
                    .values(revision=new.revision, configured=new.configured, **values)
                )
                if done.rowcount != 1:
                    return None
            conn.execute(serving_history.insert().values(revision=new.revision, **values))
            return new, True


def _read(conn: sa.Connection) -> ServingState | None:
    row = conn.execute(sa.select(serving_state).where(serving_state.c.id == 1)).mappings().first()
    if row is None:
        return None
    return ServingState(
        revision=int(row["revision"]),
        champion=row["champion"],
        candidate=row["candidate"],
        share=float(row["share"]),
        previous=row["previous"],
        changed_at=float(row["changed_at"]),
        changed_by=row["changed_by"],
        action=row["action"],
        reason=row["reason"],
        configured=row["configured"],
        candidate_since=row["candidate_since"],
    )


#: What a version setting written as ``latest`` means: the newest run when it is read.
LATEST = "latest"


def written_settings(configured: str | None, current: ServingState) -> dict[str, Any]:
    """The start-up settings as written that ``current`` last applied (``configured``).

    States recorded before the settings were kept as written hold the concrete versions
    they resolved to; those read as the settings that would resolve to them now.
    """
    try:
        value = json.loads(configured or "null")
    except ValueError:
        value = None
    if isinstance(value, dict) and "model_version" in value:
        return value
    old = value if isinstance(value, dict) else {}
    return {"model_version": old.get("champion", current.champion),
            "candidate_version": old.get("candidate"), "candidate_share": old.get("share", 0.0),
            "resolved": True}  # fmt: skip


def _unchanged(setting: str | None, before: str | None, resolved: bool) -> bool:
    """Whether a version setting is the one applied before (``resolved``: ``before`` is the
    run a setting resolved to then, and ``latest`` counts as the same setting)."""
    return setting == before or (resolved and setting == LATEST)


def reconcile(store: ServingStore, wanted: ServingState, by: str) -> tuple[ServingState, bool]:
    """The state after applying the start-up settings ``wanted`` if they differ from what
    the last start applied (``configured``: the settings as written, so ``latest`` naming
    a newly trained run is the same setting): a replica restarted with the same settings
    keeps what was promoted or rolled back at run time. A replaced champion is kept as
    ``previous``, for a rollback.
    """
    new = json.loads(wanted.configured or "{}")

    def make(current: ServingState | None) -> ServingState | None:
        if current is None:
            return wanted
        old = written_settings(current.configured, current)
        resolved = bool(old.get("resolved"))
        same = (
            _unchanged(new["model_version"], old["model_version"], resolved)
            and _unchanged(new["candidate_version"], old["candidate_version"], resolved)
            and float(new["candidate_share"]) == float(old["candidate_share"] or 0.0)
        )
        if same:
            # Recorded as written from now on (a state written with resolved versions).
            return None if current.configured == wanted.configured else (
                replace(current, configured=wanted.configured))  # fmt: skip
        previous = current.previous
        if current.champion != wanted.champion:
            previous = current.champion
        return replace(wanted, previous=previous)

    return store.change(make, by, "configure", "start-up settings")
