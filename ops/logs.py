"""Logging at the service edge: one JSON object per line, or plain text for development."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

#: Loggers yield-ensemble writes to; BentoML keeps its own.
LOGGERS = ("yield_ensemble", "ensemble", "ledger", "models", "ops")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"fields": {...}}`` adds keys to it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # No secret in any line: a URL's password is hidden wherever it appears.
        return redact(json.dumps(entry, default=str))


#: The password part of a URL's user info (``scheme://user:password@host``).
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s/]*@")


def redact(text: str) -> str:
    """``text`` with every URL's password shown as ``***`` (a database URL in an error).

    A text without ``://`` holds no URL and is returned as it is: the expression tries
    a scheme at every word of the text, ~27 us for a request's log line, which every
    request writes.
    """
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(r"\1***@", text)


#: Control characters, which would end or forge a line of a text log.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with each control character written as its escape (a newline as ``\\n``)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class EscapeControls(logging.Filter):
    """Escapes control characters in a record's message and arguments.

    On ``bentoml.access``, whose text lines show the request path as the client sent
    it: a path with an encoded newline (``/x%0A...``) would otherwise start a forged
    line of the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = escape_controls(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                escape_controls(a) if isinstance(a, str) else a for a in record.args
            )
        return True


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for a developer's terminal; control
    characters of the message and fields are escaped, a traceback keeps its lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        fields = getattr(record, "fields", {})
        if fields:
            line += " " + escape_controls(" ".join(f"{k}={v}" for k, v in fields.items()))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def configure(fmt: str, level: str) -> None:
    """Send yield-ensemble's loggers to stderr in ``fmt`` ("json" or "text") at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    access = logging.getLogger("bentoml.access")
    if not any(isinstance(f, EscapeControls) for f in access.filters):
        access.addFilter(EscapeControls())
