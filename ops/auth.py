"""API keys with roles: who may predict, send ground truth, read reports, administer.

Keys come from ``YIELD_ENSEMBLE_API_KEYS`` (comma-separated) or a file (one per
line, for Kubernetes Secrets), each ``id:role+role:secret``. Only a SHA-256 digest
of each secret is kept, compared in constant time; a secret never appears in an
error or a log line, only the key's id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ensemble.errors import Forbidden, Unauthenticated

ROLES: tuple[str, ...] = ("predict", "feedback", "report", "admin")
#: Shortest secret accepted: 16 characters (the README shows how to make a random one).
MIN_SECRET = 16
_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class KeyConfigError(ValueError):
    """A configured key is malformed; the message names it by position and id, never secret."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    roles: frozenset[str]
    digest: bytes

    def allows(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles


def parse_keys(entries: Iterable[str], source: str) -> list[ApiKey]:
    """Keys from ``id:role+role:secret`` entries; blank entries and ``#`` comments are skipped."""
    keys: list[ApiKey] = []
    for n, raw in enumerate(entries, start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":", 2)
        where = f"{source} entry {n}"
        if len(parts) != 3:
            raise KeyConfigError(f"{where}: expected id:role+role:secret")
        key_id, roles_text, secret = parts
        if not _ID.fullmatch(key_id):
            raise KeyConfigError(f"{where}: id must be 1-64 of A-Z a-z 0-9 _ . @ -")
        roles = frozenset(roles_text.split("+"))
        unknown = sorted(roles - set(ROLES))
        if unknown or not roles_text:
            raise KeyConfigError(f"{where} ({key_id}): unknown role {unknown}; roles: {ROLES}")
        if len(secret) < MIN_SECRET:
            raise KeyConfigError(f"{where} ({key_id}): secret shorter than {MIN_SECRET} characters")
        if any(k.id == key_id for k in keys):
            raise KeyConfigError(f"{where}: id {key_id} appears twice")
        keys.append(ApiKey(key_id, roles, _digest(secret)))
    return keys


def load_keys(inline: str | None, file: Path | None) -> list[ApiKey]:
    """Every configured key: the inline list and the file's lines."""
    keys = parse_keys((inline or "").split(","), "YIELD_ENSEMBLE_API_KEYS") if inline else []
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyConfigError(f"YIELD_ENSEMBLE_API_KEYS_FILE {file}: {exc.strerror}") from None
        keys += parse_keys(text.splitlines(), f"YIELD_ENSEMBLE_API_KEYS_FILE {file}")
    ids = [k.id for k in keys]
    if len(set(ids)) != len(ids):
        raise KeyConfigError("a key id appears both in YIELD_ENSEMBLE_API_KEYS and in the file")
    return keys


class KeyRing:
    """Checks ``Authorization: Bearer <secret>`` headers against the configured keys."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = list(keys)

    def authenticate(self, header: str | None, role: str) -> ApiKey:
        """The key the header names, if it has ``role``; raises Unauthenticated
        (401) or Forbidden (403) otherwise."""
        if not self.keys:
            raise Unauthenticated(
                f"this endpoint needs an API key with the {role} role and none is configured; "
                "set YIELD_ENSEMBLE_API_KEYS or YIELD_ENSEMBLE_API_KEYS_FILE",
            )
        scheme, _, secret = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated(f"send Authorization: Bearer <key> with the {role} role")
        digest = _digest(secret.strip())
        found = None
        for key in self.keys:  # every key is compared: the time does not say which matched
            if hmac.compare_digest(key.digest, digest):
                found = key
        if found is None:
            raise Unauthenticated("unknown API key")
        if not found.allows(role):
            raise Forbidden(f"key {found.id} does not have the {role} role")
        return found


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
