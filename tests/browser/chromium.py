"""A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for our pages.

No browser is downloaded (no ``playwright install``): Playwright drives the system's
Chromium, in a fresh profile directory, with its background traffic (updates, sync,
QUIC) switched off, so every request a page makes is the page's own. ``Watched`` records
each request, uncaught JavaScript error and console error of a page.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def require_chromium() -> None:
    """Skip the calling test when no Chromium (or no Playwright) is installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    pytest.importorskip("playwright.sync_api")


@contextlib.contextmanager
def browser(profile: Path) -> Iterator[Any]:
    """A Playwright ``BrowserContext`` of Chromium on a fresh profile in ``profile``."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    shutil.rmtree(profile, ignore_errors=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=ARGS, headless=True,
            viewport={"width": 1200, "height": 900},
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()


@dataclass
class Watched:
    """A page and what it did: every request's URL, uncaught errors, console errors."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def elsewhere(self, origin: str) -> list[str]:
        """Requests to anything but ``origin`` (scheme://host:port, or a file:// URL)."""
        if origin.startswith("file://"):
            return [u for u in self.requests if u != origin]
        want = urlsplit(origin)[:2]
        return [u for u in self.requests if urlsplit(u)[:2] != want]


def watch(context: Any) -> Watched:
    """A new page of ``context``, watched from its first request."""
    page = context.new_page()
    watched = Watched(page)
    page.on("request", lambda r: watched.requests.append(r.url))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and watched.console_errors.append(m.text))
    return watched


def box(page: Any, selector: str) -> dict[str, float]:
    """The bounding box (x, y, width, height in CSS px) of the one element ``selector``."""
    found = page.locator(selector)
    assert found.count() == 1, f"{selector}: {found.count()} elements"
    rect = found.bounding_box()
    assert rect is not None, f"{selector} is not rendered"
    return dict(rect)


def boxes(page: Any, selector: str) -> list[dict[str, float]]:
    """The bounding boxes of every rendered element ``selector`` matches."""
    return [dict(b) for b in (e.bounding_box() for e in page.locator(selector).all()) if b]


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two boxes share more than a hairline (0.5 px)."""
    across = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    down = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return across > 0.5 and down > 0.5


def inside(a: dict[str, float], b: dict[str, float], slack: float = 1.0) -> bool:
    """Whether box ``a`` lies within box ``b`` (to ``slack`` px)."""
    return (a["x"] >= b["x"] - slack and a["y"] >= b["y"] - slack
            and a["x"] + a["width"] <= b["x"] + b["width"] + slack
            and a["y"] + a["height"] <= b["y"] + b["height"] + slack)  # fmt: skip
