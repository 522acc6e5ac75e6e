"""The API's documentation page in a real headless Chromium, on the shared served instance:
ours at / and /docs, nothing fetched from another host, the served version and feature
names, and a key entered with Authorize that "Try it out" sends (200) and Logout drops (401)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.chromium import Watched, browser, watch
from tests.serving import Server

from .conftest import REPORT_SECRET

pytestmark = pytest.mark.integration
#: The key-protected route tried from the page (a ``report`` key opens it).
KEYED = '[id$="-yield_ensemble__ab_report"]'


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with browser(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


def _open(context: Any, url: str) -> Watched:
    watched = watch(context)
    watched.page.goto(url)
    watched.page.wait_for_selector(".information-container .title", timeout=30_000)
    return watched


def _try(page: Any) -> str:
    """Execute GET /ab/report from its panel (opened, "Try it out" on); the status shown."""
    op = page.locator(KEYED)
    body = op.locator(".opblock-body")
    if not body.is_visible():
        op.locator(".opblock-summary").click()
        body.wait_for()
    execute = op.get_by_role("button", name="Execute")
    if not execute.is_visible():
        op.get_by_role("button", name="Try it out").click()
    clear = op.get_by_role("button", name="Clear")
    if clear.is_visible():
        clear.click()  # the previous answer goes; the next status shown is the new one
    execute.click()
    status = op.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=30_000)
    return str(status.inner_text()).strip()


def _authorize(page: Any, secret: str | None) -> None:
    """Swagger UI's Authorize dialog: the key's ``secret`` entered, or (None) Logout."""
    page.locator(".auth-wrapper .btn.authorize").click()
    dialog = page.locator(".dialog-ux")
    buttons = dialog.locator(".auth-btn-wrapper button")
    if secret is None:
        buttons.filter(has_text="Logout").click()
    else:
        dialog.locator("input").fill(secret)
        buttons.filter(has_text="Authorize").click()
    dialog.locator(".auth-btn-wrapper .btn-done").click()


def test_the_docs_page_is_ours_and_loads_nothing_from_another_host(
    server: Server, context: Any
) -> None:
    from ops.openapi import package_version

    spec = httpx.get(f"{server.url}/docs.json").json()
    example = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    names = list(example["example"]["features"])
    for path in ("/", "/docs"):
        watched = _open(context, server.url + path)
        page = watched.page
        assert page.title() == f"yield-ensemble {package_version()} API"
        assert package_version() in page.inner_text(".information-container .title")
        assert "BentoML" not in page.inner_text("body")
        predict = page.locator("#operations-Service_APIs-yield_ensemble__predict")
        predict.locator(".opblock-summary").click()
        shown = predict.locator(".opblock-body").inner_text()
        assert all(name in shown for name in names), (names, shown[:500])
        assert page.locator(".btn.authorize").count() == 1
        assert watched.elsewhere(server.url) == [], watched.requests
        assert watched.errors == [] and watched.console_errors == [], watched.console_errors
        page.close()


def test_a_key_entered_with_authorize_is_sent_by_try_it_out(server: Server, context: Any) -> None:
    watched = _open(context, server.url + "/docs")
    page = watched.page
    assert _try(page) == "401"  # no key yet
    _authorize(page, REPORT_SECRET)
    assert _try(page) == "200"
    # Kept across a reload (persistAuthorization), until Logout.
    page.reload()
    page.wait_for_selector(".information-container .title")
    assert _try(page) == "200"
    _authorize(page, None)
    assert _try(page) == "401"
    assert watched.elsewhere(server.url) == [], watched.requests
    assert watched.errors == []
    # The page's only console errors are the two 401s it was asked to show.
    assert all("401" in e for e in watched.console_errors), watched.console_errors
