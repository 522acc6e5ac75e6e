"""The ledger's schema, brought up to date by Alembic migrations (``migrations/versions``).

Stored data outlives code: a schema change is a new file in ``migrations/versions``,
never ``create_all`` alone. ``upgrade`` runs at start-up (``bentoml serve`` does it once
before workers start; every log opens with it, a no-op at head). A database that
release 0.1.0 created has no ``alembic_version`` table: it is stamped with the
revision its tables show, then upgraded. On PostgreSQL an advisory lock keeps
replicas that start together from migrating twice.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key of ledger migrations (any constant shared by all replicas).
LOCK_KEY = 0x59454C44


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this code knows."""
    script = ScriptDirectory.from_config(_config(None))  # type: ignore[arg-type]
    return str(script.get_current_head())


def current(engine: sa.Engine) -> str | None:
    """The database's revision (None for an empty or pre-Alembic database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``, stamping a pre-Alembic 0.1.0 database first."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        tables = set(sa.inspect(conn).get_table_names())
        config = _config(conn)
        if "alembic_version" not in tables and "predictions" in tables:
            command.stamp(config, "0002" if "outcome_events" in tables else "0001")
        command.upgrade(config, revision)


def drop_all(engine: sa.Engine) -> None:
    """Drop every ledger table and the revision marker (tests start from empty)."""
    with engine.begin() as conn:
        for table in (
            "serving_history",
            "serving_state",
            "outcome_events",
            "outcomes",
            "predictions",
            "alembic_version",
        ):
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
