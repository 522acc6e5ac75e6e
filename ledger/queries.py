"""The prediction log's read side: ground truth in, the A/B report out.

Outcomes are recorded (with their sender and history) against logged predictions;
the report reads labelled predictions in a window and hands them to ``ledger.report``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import sqlalchemy as sa

from ensemble.arms import ENSEMBLE, Arm
from ensemble.decision import Decision
from ensemble.drift import Reference
from ledger import report_drift
from ledger.report import Labelled, build_report
from ledger.retry import retried
from ledger.tables import CHUNK, outcome_events, outcomes, predictions


class UnknownArm(ValueError):
    """A report asked for an arm that is neither configured nor in the log's window."""

    def __init__(self, arm: str, known: list[str]) -> None:
        super().__init__(f"no arm {arm!r} configured or served in the window; arms: {known}")


class LedgerQueries:
    """Reads and outcome writes over ``self.engine`` (a ``PredictionLog`` supplies it)."""

    engine: sa.Engine

    def add_outcomes(
        self, items: Sequence[tuple[str, str, str]], sent_by: str = "anonymous"
    ) -> list[dict[str, Any]]:
        """Record ``(kind, id, actual)`` outcomes, kind ``request_id`` or ``device_id``.

        Returns one status per item: ``recorded``, ``unchanged``, ``replaced`` or
        ``unknown``. A device id resolves to that device's latest prediction. Every
        recorded or replaced outcome is also kept in ``outcome_events`` with
        ``sent_by`` (the API key's id) and the value it replaced. One transaction, run again
        whole across a lost connection (``ledger.retry``: a lost commit's are ``unchanged``).
        """

        def once() -> list[dict[str, Any]]:
            with self._serialised() as conn:
                return self._add_outcomes(conn, items, sent_by)

        return retried(once, what="recording outcomes")

    @contextmanager
    def _serialised(self) -> Iterator[sa.Connection]:
        """A transaction in which outcomes are read, decided and written as one step.

        SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the first read,
        so writers (in any process) queue for it. PostgreSQL: the caller locks the
        predictions it records against (``_lock``), so writers of the same prediction
        queue on its row lock, in every replica alike.
        """
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise RuntimeError(f"prediction log supports sqlite and postgresql, not {dialect}")
        if dialect == "postgresql":
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _add_outcomes(
        self, conn: sa.Connection, items: Sequence[tuple[str, str, str]], sent_by: str
    ) -> list[dict[str, Any]]:
        by_device = self._latest_requests(conn, [i for k, i, _ in items if k == "device_id"])
        asked = [i for k, i, _ in items if k == "request_id"]
        rid_column = predictions.c.request_id
        known = {rid for (rid,) in _select_in(conn, [rid_column], rid_column, asked)}
        rids = [
            by_device.get(i) if k == "device_id" else (i if i in known else None)
            for k, i, _ in items
        ]
        _lock(conn, [r for r in rids if r])
        c = outcomes.c
        previous: dict[str, str] = dict(
            _select_in(conn, [c.request_id, c.actual], c.request_id, [r for r in rids if r])
        )
        now, upserts, statuses, events = time.time(), {}, [], []
        for (kind, ident, actual), rid in zip(items, rids, strict=True):
            if rid is None:
                statuses.append(
                    {
                        kind: ident,
                        "status": "unknown",
                        "error": f"no logged prediction for this {kind}",
                    }
                )
                continue
            before = previous.get(rid)
            if before is None:
                status = "recorded"
            else:
                status = "unchanged" if before == actual else "replaced"
            previous[rid] = actual
            if status != "unchanged":
                upserts[rid] = {"request_id": rid, "actual": actual, "received_at": now}
                events.append(
                    {
                        "request_id": rid,
                        "actual": actual,
                        "previous": before,
                        "sent_by": sent_by,
                        "received_at": now,
                    }
                )
            statuses.append({kind: ident, "request_id": rid, "status": status})
        if upserts:
            self._upsert_outcomes(conn, list(upserts.values()), events)
        return statuses

    def _upsert_outcomes(
        self, conn: sa.Connection, rows: list[dict[str, Any]], events: list[dict[str, Any]]
    ) -> None:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(outcomes)
        stmt = stmt.on_conflict_do_update(
            index_elements=[outcomes.c.request_id],
            set_={"actual": stmt.excluded.actual, "received_at": stmt.excluded.received_at},
        )
        for part in _chunks(rows, CHUNK * 10):
            conn.execute(stmt, part)
        for part in _chunks(events, CHUNK * 10):
            conn.execute(sa.insert(outcome_events), part)

    def outcome_history(
        self, since: float | None = None, until: float | None = None, limit: int = 20
    ) -> dict[str, Any]:
        """Who sent the outcomes received in [since, until), and the latest replacements."""
        e = outcome_events.c
        window = []
        if since is not None:
            window.append(e.received_at >= since)
        if until is not None:
            window.append(e.received_at < until)
        replaced = e.previous.is_not(None)
        by_sender = (
            sa.select(e.sent_by, sa.func.count(), sa.func.sum(sa.case((replaced, 1), else_=0)))
            .where(*window)
            .group_by(e.sent_by)
        )
        latest = (
            sa.select(e.request_id, e.previous, e.actual, e.sent_by, e.received_at)
            .where(replaced, *window)
            .order_by(e.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            senders = {
                who: {"outcomes": int(n), "replaced": int(r or 0)}
                for who, n, r in conn.execute(by_sender)
            }
            replacements = [
                {"request_id": rid, "old": old, "new": new, "sent_by": who, "received_at": at}
                for rid, old, new, who, at in conn.execute(latest)
            ]
        return {
            "by_sender": senders,
            "replaced": sum(v["replaced"] for v in senders.values()),
            "latest_replacements": replacements,
        }

    def _latest_requests(self, conn: sa.Connection, device_ids: Sequence[str]) -> dict[str, str]:
        latest: dict[str, tuple[float, str]] = {}
        c = predictions.c
        for dev, ts, rid in _select_in(
            conn, [c.device_id, c.ts, c.request_id], c.device_id, device_ids
        ):
            if dev not in latest or (ts, rid) > latest[dev]:
                latest[dev] = (ts, rid)
        return {dev: rid for dev, (_, rid) in latest.items()}

    def _window(
        self, q: sa.Select[Any], since: float | None, until: float | None, arm: str | None
    ) -> sa.Select[Any]:
        if since is not None:
            q = q.where(predictions.c.ts >= since)
        if until is not None:
            q = q.where(predictions.c.ts < until)
        if arm is not None:
            q = q.where(predictions.c.arm == arm)
        return q

    def served(
        self, since: float | None = None, until: float | None = None, arm: str | None = None
    ) -> dict[str, int]:
        q = sa.select(predictions.c.arm, sa.func.count()).group_by(predictions.c.arm)
        with self.engine.connect() as conn:
            return dict(conn.execute(self._window(q, since, until, arm)).all())

    def assigned(
        self, since: float | None = None, until: float | None = None, arm: str | None = None
    ) -> dict[str, int]:
        """Devices per arm the split assigned them to (the serving arm on older rows)."""
        c = predictions.c
        given = sa.func.coalesce(c.assigned_arm, c.arm, type_=sa.String)
        q = cast("sa.Select[Any]", sa.select(given, sa.func.count()).group_by(given))
        with self.engine.connect() as conn:
            rows = conn.execute(self._window(q, since, until, arm)).all()
        return {str(row[0]): int(row[1]) for row in rows}

    def report(
        self,
        arms: Sequence[Arm],
        since: float | None = None,
        until: float | None = None,
        arm: str | None = None,
        decision: Decision | None = None,
        served_key: str | None = None,
        candidate: Mapping[str, Any] | None = None,
        reference: Reference | None = None,
    ) -> dict[str, Any]:
        """The A/B report (``ledger.report``) over predictions in [since, until); ``decision``,
        ``served_key``, ``candidate``: see ``ledger.report.build_report``; ``reference``: the
        champion's, for the ``drift`` section (``ledger.report_drift``). Arms are judged as they
        were served in the window: each arm's latest logged spec (what served it, its share)
        wins over today's ``arms``, which fill in for old rows and for arms with no rows yet."""
        served_as = {a.name: a for a in arms}
        served_as.update(self.served_arms(since, until))
        if arm is not None and arm not in served_as:
            raise UnknownArm(arm, sorted(served_as))
        if arm is not None:
            served_as = {n: a for n, a in served_as.items() if n in (arm, ENSEMBLE)}
        report = build_report(
            self.labelled(since, until, arm),
            self.served(since, until, arm),
            self._members(),
            [served_as[ENSEMBLE], *(a for n, a in served_as.items() if n != ENSEMBLE)],
            window={"since": since, "until": until, "arm": arm},
            decision=decision,
            served_key=served_key,
            candidate=candidate,
            assigned=self.assigned(since, until, arm),
        )
        report["ground_truth"] = self.outcome_history(since, until)
        report["drift"] = report_drift.section(self.engine, reference, since, until)
        return report

    def served_arms(self, since: float | None = None, until: float | None = None) -> dict[str, Arm]:
        """Each arm's latest logged spec in the window (rows logged with one)."""
        c = predictions.c
        q = (
            sa.select(c.arm, c.arm_spec, sa.func.max(c.ts))
            .where(c.arm_spec.is_not(None))
            .group_by(c.arm, c.arm_spec)
        )
        latest: dict[str, tuple[float, Arm]] = {}
        with self.engine.connect() as conn:
            for name, spec, ts in conn.execute(self._window(q, since, until, None)):
                data = json.loads(spec)
                arm = Arm(name, str(data["serves"]), float(data["share"]), data.get("version"))
                if name not in latest or ts > latest[name][0]:
                    latest[name] = (ts, arm)
        return {name: arm for name, (_, arm) in latest.items()}

    def accuracy_by_arm(self) -> dict[str, tuple[int, int]]:
        """arm -> (correct, labelled) over every labelled prediction in the log."""
        correct = sa.func.sum(sa.case((predictions.c.prediction == outcomes.c.actual, 1), else_=0))
        q = (
            sa.select(predictions.c.arm, correct, sa.func.count())
            .join(outcomes, outcomes.c.request_id == predictions.c.request_id)
            .group_by(predictions.c.arm)
        )
        with self.engine.connect() as conn:
            return {arm: (int(k or 0), int(n)) for arm, k, n in conn.execute(q)}

    def labelled(
        self, since: float | None = None, until: float | None = None, arm: str | None = None
    ) -> Labelled:
        """Predictions with a recorded outcome, in time order."""
        c = predictions.c
        cols = [c.ts, c.arm, c.prediction, outcomes.c.actual, c.votes, c.model_versions]
        q = sa.select(*cols).join(outcomes, outcomes.c.request_id == c.request_id)
        with self.engine.connect() as conn:
            rows = conn.execute(self._window(q, since, until, arm).order_by(c.ts)).all()
        n = len(rows)
        cols_t = list(zip(*rows, strict=True)) if rows else [()] * len(cols)
        votes = [json.loads(v) for v in cols_t[4]]
        members = self._members({m for v in votes for m in v})
        return Labelled(
            ts=np.asarray(cols_t[0], dtype=float).reshape(n),
            arm=np.asarray(cols_t[1], dtype=object).reshape(n),
            served_pass=np.asarray([p == "pass" for p in cols_t[2]], dtype=bool).reshape(n),
            actual_pass=np.asarray([a == "pass" for a in cols_t[3]], dtype=bool).reshape(n),
            votes={
                m: np.asarray([v.get(m, np.nan) for v in votes], dtype=float).reshape(n)
                for m in members
            },
            versions=np.asarray(cols_t[5], dtype=object).reshape(n),
        )

    @staticmethod
    def _members(seen: set[str] | frozenset[str] = frozenset()) -> tuple[str, ...]:
        """Today's families in vote order, then any other member the log holds votes of."""
        from models.families import member_names

        known = member_names()
        return (*known, *sorted(set(seen) - set(known)))


def _select_in(
    conn: sa.Connection,
    columns: Sequence[sa.Column[Any]],
    key: sa.Column[Any],
    values: Sequence[str],
) -> Iterator[Any]:
    """Rows of ``columns`` whose ``key`` is among ``values``, asked CHUNK ids at a time."""
    for part in _chunks(sorted(set(values)), CHUNK):
        yield from conn.execute(sa.select(*columns).where(key.in_(part)))


def _lock(conn: sa.Connection, request_ids: Sequence[str]) -> None:
    """Lock the predictions ``request_ids`` until the transaction ends (PostgreSQL).

    Every writer locks in the same (sorted) order, so two writers of overlapping ids
    queue instead of deadlocking. SQLite holds its one write lock already.
    """
    if conn.dialect.name != "postgresql":
        return
    rid = predictions.c.request_id
    for part in _chunks(sorted(set(request_ids)), CHUNK):
        q = sa.select(rid).where(rid.in_(part)).order_by(rid).with_for_update(key_share=True)
        conn.execute(q).all()


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
