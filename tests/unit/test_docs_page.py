"""The documentation page as served: ours, its few files from this server, nothing else.

The page in a real browser (renders, no other host, the key works) is
``tests/integration/test_docs_page.py``; this checks what it is made of.
"""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from ops import docs_page
from ops.access import ROUTES, Access


def test_bentoml_still_ships_the_swagger_ui_files_we_serve() -> None:
    """Fails when BentoML moves or drops them (``docs_page._ASSET_DIR``)."""
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        body = docs_page.asset(name)
        assert len(body) > 100_000, name
        assert b"sourceMappingURL" not in body[-500:], name  # no map to fetch


def test_the_page_names_no_other_host_and_only_its_own_files() -> None:
    page = docs_page.page("1.2.3")
    assert "yield-ensemble 1.2.3" in page
    assert not re.search(r"(https?:)?//", page.replace('href="/docs.json"', "")), page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert set(sources) == {"data:,", "/docs.json", *(f"/docs/assets/{n}" for n in
                            ("swagger-ui.css", "swagger-ui-bundle.js", "init.js"))}  # fmt: skip
    init = docs_page.asset("init.js").decode()
    assert 'url: "/docs.json"' in init and "validatorUrl: null" in init
    assert "persistAuthorization: true" in init and "//" not in init


def test_root_docs_and_assets_are_served_open_and_nothing_else() -> None:
    client = TestClient(docs_page.docs_app)
    for path in ("/", "/docs", "/docs/"):
        r = client.get(path)
        assert r.status_code == 200 and "swagger-ui" in r.text, path
        assert "default-src 'self'" in r.headers["content-security-policy"]
        declared = ROUTES.find(path)
        assert declared is not None and declared.access is Access.OPEN, path
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/docs/assets/swagger-initializer.js").status_code == 404
    assert client.get("/docs/assets/..%2Fhttp_app.py").status_code == 404
    assert ROUTES.find("/static_content/swagger-ui.css") is None  # BentoML's copy: closed
