"""How the service tells a client the ledger's database failed, without importing SQLAlchemy
where it is not loaded yet (the member processes import the service module too)."""

from __future__ import annotations

from ensemble.switchboard import cause_line

__all__ = ["cause_line", "safe_url", "unavailable"]


def unavailable(exc: BaseException) -> str | None:
    """What to answer (with 503) when ``exc`` says the ledger's database cannot be reached
    or read now: down, unreachable, locked, or a file that is not a database. None for any
    other error, which stays a 500: a query the database refuses as malformed, or bad data,
    is a bug to fix, not an outage to wait out."""
    import sqlalchemy.exc as sx

    if isinstance(exc, (sx.OperationalError, sx.InternalError)) or type(exc) is sx.DatabaseError:
        return f"the ledger's database is unavailable now: {cause_line(exc)}"
    return None


def safe_url(url: str) -> str:
    """``url`` with its password hidden, for messages and logs; a URL SQLAlchemy cannot
    parse is not echoed at all (it may hold a password where the parser did not look)."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(a database URL that cannot be parsed)"
