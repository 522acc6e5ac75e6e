"""The API's documentation page, ours: served at ``/`` and ``/docs``, every asset from this server.

The page is Swagger UI over ``/docs.json`` (``ops.openapi``: the served feature names,
our version, the bearer key scheme, every status). Its two files, swagger-ui-bundle.js
and swagger-ui.css, are the ones BentoML ships in its package (``_ASSET_DIR``); we serve
them under ``/docs/assets/`` with the page's start-up script, and nothing else: no tag
manager, no CDN, no validator badge (``validatorUrl: null``), no favicon fetch. A
Content-Security-Policy of ``'self'`` lets the browser load nothing from another host
even if a future Swagger UI tried.

BentoML has no setting to replace its index page: it adds its ``/`` route after the
mounted apps' routes, so the ``/`` of the app mounted here (``docs_app``) answers first.
Keys: "Authorize" takes a key's secret for the bearer scheme and sends it as
``Authorization: Bearer <secret>`` with "Try it out"; it is kept in the browser's local
storage (``persistAuthorization``) until "Logout".
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ops.access import ROUTES, Access
from ops.openapi import package_version

#: Where BentoML keeps Swagger UI's files (``tests/unit/test_docs_page.py`` fails if they move).
_ASSET_DIR = Path(bentoml.__file__).parent / "_internal" / "server" / "static_content"
ASSETS_PATH = "/docs/assets"
#: The page's start-up script: Swagger UI on /docs.json, keys kept across reloads.
INIT_JS = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
#: Only these files are served, by name; the media type of each.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "init.js": "text/javascript; charset=utf-8",
}
#: Nothing from another host: scripts, styles, images, fetches all 'self' (images also data:,
#: Swagger UI's icons are data URIs; its React styles are inline attributes).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SOURCE_MAP = re.compile(rb"\n?/[/*]# sourceMappingURL=[^\n]*\s*$")


def page(version: str) -> str:
    """The HTML page (assets by absolute path, so ``/`` and ``/docs`` serve the same one)."""
    v = html.escape(version)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>yield-ensemble {v} API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<style>
body {{ margin: 0; font-family: system-ui, sans-serif; }}
header {{ padding: 0.8em 1.5em; background: #1f3b57; color: #fff; }}
header h1 {{ margin: 0; font-size: 1.3em; }} header p {{ margin: 0.3em 0 0; font-size: 0.9em; }}
header code {{ background: rgba(255,255,255,0.15); padding: 0 0.3em; }}
</style></head><body>
<header><h1>yield-ensemble <span id="version">{v}</span>: HTTP API</h1>
<p>Routes with a lock need an API key: press <b>Authorize</b>, paste the key's secret
(<code>Authorization: Bearer &lt;secret&gt;</code>), then <b>Try it out</b>. The key stays in
this browser's local storage until <b>Logout</b>. The spec itself: <a style="color:#fff"
href="/docs.json">/docs.json</a>.</p></header>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js" charset="utf-8"></script>
<script src="{ASSETS_PATH}/init.js" charset="utf-8"></script>
</body></html>
"""


@functools.cache
def asset(name: str) -> bytes:
    """One asset's bytes (source-map comments removed: the map is not shipped).

    Raises KeyError for a name not in ``ASSETS``, OSError when BentoML's file is gone.
    """
    if name not in ASSETS:
        raise KeyError(name)
    if name == "init.js":
        return INIT_JS.encode()
    return _SOURCE_MAP.sub(b"\n", (_ASSET_DIR / name).read_bytes())


@functools.cache
def _page() -> bytes:
    return page(package_version()).encode()


async def _docs(request: Request) -> Response:
    """GET / and /docs: the API's documentation page."""
    return HTMLResponse(_page(), headers={"Content-Security-Policy": CSP,
                                          "Cache-Control": "no-cache"})  # fmt: skip


async def _asset(request: Request) -> Response:
    """GET /docs/assets/{name}: one of the page's files, 404 for any other name."""
    name = request.path_params["name"]
    if name not in ASSETS:
        return Response(status_code=404)
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(asset(name), media_type=ASSETS[name], headers=headers)


#: Mounted at "/" (BentoML's PassiveMount matches only these paths).
docs_app = Starlette(
    routes=[
        Route(ROUTES.declare("/", Access.OPEN), _docs, methods=["GET"]),
        Route(ROUTES.declare("/docs", Access.OPEN), _docs, methods=["GET"]),
        Route(ROUTES.declare("/docs/", Access.OPEN), _docs, methods=["GET"]),
        Route(ROUTES.declare(ASSETS_PATH + "/{name}", Access.OPEN), _asset, methods=["GET"]),
    ]
)
