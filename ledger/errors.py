"""How the service tells a client the ledger's database failed, without importing SQLAlchemy
where it is not loaded yet (the member processes import the service module too)."""

from __future__ import annotations


def cause_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of what went wrong: a database driver's own message (SQLAlchemy
    keeps it as ``orig``) without the statement and the link SQLAlchemy adds."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return (lines[0] if lines else type(cause).__name__)[:limit]


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
    """``url`` as a log line or an error may show it: its password hidden, whatever its form
    (SQLAlchemy's own rendering, or the text with any ``user:password@`` masked)."""
    import sqlalchemy as sa

    from ops.logs import redact

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: its text, masked
        masked = redact(url)
        if masked == url and "@" in url:
            # No "scheme://" for redact to find (a typo such as "postgresql+psycopg//u:pw@h"):
            # everything from the first ":" to the last "@" may be a password.
            head, _, host = url.rpartition("@")
            masked = f"{head.split(':', 1)[0]}:***@{host}"
        return masked
