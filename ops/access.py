"""Who may call which route: declared with each route, denied when undeclared.

Every route the entry serves is declared where it is defined, with the access it
needs (``ROUTES.declare``); the edge (``ops.edge``) asks ``ROUTES.access(path)`` before
anything reads the body. A path no declaration covers is refused (404), so a route
somebody adds without a declaration is closed, not open; ``tests/unit/test_access.py``
fails when a route of the service has no declaration.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Access(enum.Enum):
    """What a route needs. ``PREDICT`` is open unless predict keys are required."""

    OPEN = "open"
    PREDICT = "predict"
    FEEDBACK = "feedback"
    REPORT = "report"
    ADMIN = "admin"

    def role(self, predict_requires_key: bool) -> str | None:
        """The API-key role this access asks for, or None (anyone)."""
        if self is Access.OPEN or (self is Access.PREDICT and not predict_requires_key):
            return None
        role: str = self.value
        return role


#: The media type of the routes whose body is a tester's file (``/predict_stdf``, ...).
FILE_MEDIA = "application/octet-stream"


@dataclass(frozen=True)
class Declaration:
    path: str  # exact, with {param} segments, or a prefix ending in "/"
    access: Access
    body: str | None = None  # the media type the route's POST takes, None: no body checks


def _pattern(path: str) -> re.Pattern[str]:
    if path.endswith("/*"):
        return re.compile(re.escape(path[:-1]) + ".*")
    parts = [("[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p))
             for p in path.split("/")]  # fmt: skip
    return re.compile("/".join(parts))


class RouteTable:
    """The declared routes, looked up by request path."""

    def __init__(self) -> None:
        self._routes: list[tuple[re.Pattern[str], Declaration]] = []
        # Paths found declared as they are (``/predict``): their lookup, kept. At most one
        # entry per declaration, whatever paths clients send.
        self._exact: dict[str, Declaration] = {}

    def declare(self, path: str, access: Access, body: str | None = None) -> str:
        """Declare ``path`` (``/a/{id}``, or ``/a/*`` for everything below ``/a/``);
        returns ``path`` so a route can be declared where it is defined."""
        self._routes.append((_pattern(path), Declaration(path, access, body)))
        self._exact.clear()
        return path

    def find(self, path: str) -> Declaration | None:
        """The declaration covering ``path``; None: undeclared (refused)."""
        found = self._exact.get(path)
        if found is not None:
            return found
        for pattern, declaration in self._routes:
            if pattern.fullmatch(path):
                if declaration.path == path:
                    self._exact[path] = declaration
                return declaration
        return None

    def declarations(self) -> list[Declaration]:
        return [d for _, d in self._routes]


#: The entry's routes. BentoML's own routes are declared here; ours where they are made.
ROUTES = RouteTable()
for _path in ("/docs.json", "/schema.json", "/healthz", "/livez", "/readyz", "/metrics"):
    ROUTES.declare(_path, Access.OPEN)
