"""The errors a request can end in: each carries its HTTP status and its kind.

One base, ``ServiceError``; a new status or kind is one subclass here. The edge
(``ops.edge``) is the one place that renders an error as JSON, logs it once and counts
it in ``yield_ensemble_errors_total{kind}``: handlers raise, they do not answer errors
themselves. ``kind`` is the metric label and the log line's ``kind``; ``KINDS`` lists
every kind there is, for the metric's help and the alert rules.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: Longest echo of a client's value in an error message or log line.
ECHO_CHARS = 64


def shown(value: Any, limit: int = ECHO_CHARS, *, quote: bool = True) -> str:
    """``repr(value)`` (or ``str`` without ``quote``) cut to ``limit`` characters for echoing."""
    if isinstance(value, str) and len(value) > 4 * limit:
        value = value[: 4 * limit]  # never repr a 10 MB string just to cut it
    elif isinstance(value, (list, dict)) and len(value) > limit:
        return f"a {type(value).__name__} of {len(value)} items"
    elif isinstance(value, int) and value.bit_length() > 4 * limit:
        # repr raises ValueError past 4,300 digits (sys.set_int_max_str_digits).
        return f"an integer of {value.bit_length()} bits"
    text = repr(value) if quote else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... (cut)"


class ServiceError(Exception):
    """A request's failure as the client sees it: ``status``, ``kind`` and the message.

    ``field`` names the part of the request at fault (a dotted path, or "body"), when
    there is one; ``headers`` are added to the answer (``Retry-After`` on a 503).
    """

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "internal"
    field: str | None = None
    retry_after_s: int | None = None
    #: A 5xx that is part of a normal day (a worker refusing work as it stops): logged at
    #: WARNING, not ERROR, so an alert on ERROR lines stays quiet through a rollout.
    routine: ClassVar[bool] = False

    @property
    def status_code(self) -> int:
        return self.status

    def headers(self) -> dict[str, str]:
        """Headers of the answer besides the content type and request id."""
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(self.retry_after_s)}

    def body(self) -> dict[str, Any]:
        """The answer's JSON body, but for the request id the edge adds."""
        out: dict[str, Any] = {"error": str(self)}
        if self.field is not None:
            out["field"] = self.field
        return out


class InvalidInput(ServiceError, ValueError):
    """A request field is wrong (422). ``field`` is a dotted path into the request."""

    status = 422
    kind = "bad_input"

    def __init__(self, field: str, message: str) -> None:
        field = shown(field, ECHO_CHARS * 2, quote=False)
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Malformed(InvalidInput):
    """A body that cannot be read at all (not JSON, not an object): 400."""

    status = 400


class NotFound(ServiceError):
    """Nothing is there (404): an unknown route, wafer or lot."""

    status = 404
    kind = "not_found"


class Conflict(ServiceError):
    """The request cannot apply to the state as it is now (409)."""

    status = 409
    kind = "conflict"


class TooLarge(ServiceError):
    """The body is over the limit (413), as sent or as it expands."""

    status = 413
    kind = "too_large"
    field = "body"


class UnsupportedMedia(ServiceError):
    """A content type or encoding the route does not take (415)."""

    status = 415
    kind = "unsupported_media_type"


class Unauthenticated(ServiceError):
    """No usable credentials (401)."""

    status = 401
    kind = "unauthenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    """Valid credentials without the role the route needs, or a route with no role (403)."""

    status = 403
    kind = "forbidden"


class Unavailable(ServiceError):
    """The service cannot answer now, nothing was done; try again (503)."""

    status = 503
    kind = "unavailable"
    retry_after_s = 1


class ReadsBusy(Unavailable):
    """Too many reads (reports, dashboards, feedback) wait ahead of this one for a read
    thread of the entry worker; nothing was done (503, ``Retry-After``)."""

    kind = "reads_busy"
    retry_after_s = 5


class Stopping(Unavailable):
    """The worker got SIGTERM while this read waited for a read thread; nothing was done
    (503, ``Retry-After``): another replica answers it, and the pod does not wait for a
    queue of reads to empty before it can exit."""

    kind = "stopping"
    routine = True


class MembersUnavailable(Unavailable):
    """Too few members answered to vote."""

    kind = "members_unavailable"


class LogBackedUp(Unavailable):
    """The prediction log holds as many unwritten rows as it may."""

    kind = "log_backed_up"


class LedgerUnavailable(Unavailable):
    """The ledger's database cannot be read or written now (its error line is the message)."""

    kind = "ledger_unavailable"


class ServingUnavailable(Unavailable):
    """The ledger's serving state cannot be read or written now; nothing changed."""

    kind = "serving_unavailable"


class MemberLoadFailed(Unavailable):
    """A member could not load the model versions a serving change needs."""

    kind = "member_load_failed"


class NotInThisBuild(ServiceError):
    """A route this build cannot serve: a library it needs is not installed here (501)."""

    status = 501
    kind = "not_in_this_build"


class Internal(ServiceError):
    """A fault no handler expected (500): the log has the traceback, the client a line."""

    def __init__(self) -> None:
        super().__init__("internal error; the service log has the details")


def _every_kind() -> tuple[str, ...]:
    seen: dict[str, None] = {}
    todo: list[type[ServiceError]] = [ServiceError]
    while todo:
        cls = todo.pop(0)
        seen.setdefault(cls.kind)
        todo.extend(cls.__subclasses__())
    return tuple(seen)


#: Kinds besides the classes': a client that went away mid-request, BentoML's own
#: refusals (405), any other status.
EXTRA_KINDS = ("client_disconnected", "method_not_allowed", "client_error")


def kinds() -> tuple[str, ...]:
    """Every error kind, for the errors metric's help and the alert rules."""
    return (*_every_kind(), *EXTRA_KINDS)


#: Kind by status, for answers made by others (BentoML's own) that name none.
BY_STATUS = {
    400: "bad_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_input",
    429: "overloaded",
    500: "internal",
    503: "unavailable",
}


class Overloaded(ServiceError):
    """More work than this replica takes now; refused before any work starts (429)."""

    status = 429
    kind = "overloaded"
    retry_after_s = 1
