"""Every route's answer: its work awaited, encoded as JSON, or its error rendered.

``answer`` is the one wrapper around each handler of the entry: a ``ServiceError``
becomes its own status; a database outage the ledger recognises becomes a 503
(``LedgerUnavailable``); anything else a 500 whose traceback the edge logs. The edge
(``ops.edge``) logs and counts each error once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from ensemble.errors import Internal, LedgerUnavailable, ServiceError
from ensemble.responses import strict_json
from ops.edge import REQUEST_ID_HEADER, current, render

#: Called with (endpoint, seconds) for every answered request (the duration histogram).
Observe = Callable[[str, float], None]


def request_id() -> str:
    """The id the edge gave the request being handled."""
    state = current()
    return state.request_id if state is not None else "0" * 16


def classify(exc: BaseException) -> ServiceError:
    """The error a client sees for ``exc``: itself if typed, a 503 if the ledger's database
    is down or unreadable now (``ledger.errors.unavailable``), else ``Internal`` (500)."""
    if isinstance(exc, ServiceError):
        return exc
    from ledger.errors import unavailable

    message = unavailable(exc)
    return Internal() if message is None else LedgerUnavailable(message)


def failed(exc: BaseException) -> Response:
    """The rendered answer to ``exc`` (see ``classify``)."""
    error = classify(exc)
    return render(error, None if error is exc else exc)


def encode(body: Any, status: int = 200) -> Response:
    """``body`` as strict JSON (``ensemble.responses.strict_json``: ValueError or TypeError
    when it has none) with the request id header. Encoded here, not by BentoML: its
    pydantic dump of a 10,000-device answer took 44% of the entry's CPU (py-spy --gil)."""
    text = strict_json(body)
    return Response(
        text,
        status_code=status,
        media_type="application/json",
        headers={REQUEST_ID_HEADER: request_id()},
    )


async def answer(
    endpoint: str, work: Awaitable[dict[str, Any]], observe: Observe | None = None
) -> Response:
    """``work``'s result as the answer, or its error rendered; timed into ``observe``."""
    started = time.perf_counter()
    try:
        body = await work
        response = encode(body)
    except Exception as exc:
        return failed(exc)
    if observe is not None:
        observe(endpoint, time.perf_counter() - started)
    return response
