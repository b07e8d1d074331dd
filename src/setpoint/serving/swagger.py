"""``GET /docs``: Swagger UI, where a person reads the API and tries a request.

Its files come from the ``swagger-ui-bundle`` package and are served from
``/docs/static/``, so the page works on a network with no way out (nothing is fetched
from elsewhere; the Content-Security-Policy forbids it, and the spec validator, which
would call out, is off). The page, its script and its static files are open to anyone
who reaches the server: they hold no data. What the page shows comes from
``/openapi.json``, which needs a ``read`` key when the server needs keys; the page then
asks for a key first, keeps it in the tab's session storage only, and sends it as
``Authorization: Bearer`` with every request it makes (the document and "Try it out").
Without the package, ``/docs`` leads to ``/docs/plain``: the server-rendered page
without script (``serving.openapi``), which needs the ``read`` key itself.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from setpoint import __version__
from setpoint.serving.auth import PAGE_PREFIX
from setpoint.serving.state import ServingState

STATIC = PAGE_PREFIX.rstrip("/")
SCRIPT = "/docs/setpoint.js"

# Everything the page loads comes from this server; Swagger UI styles its elements
# inline and draws icons as data: images.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'"
)


def assets() -> Path | None:
    """The directory of Swagger UI's files, or None when the package is missing."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


def routes(state: ServingState) -> list[BaseRoute]:
    folder = assets()

    async def page(request: Request) -> Response:
        if folder is None:
            return RedirectResponse("docs/plain", status_code=307)
        return Response(
            shell(keys=state.guard.required),
            media_type="text/html",
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
        )

    async def script(_: Request) -> Response:
        return Response(_SCRIPT, media_type="text/javascript")

    out: list[BaseRoute] = [Route("/docs", page), Route(SCRIPT, script)]
    if folder is not None:
        out.append(Mount(STATIC, app=StaticFiles(directory=folder), name="swagger-ui"))
    return out


def shell(*, keys: bool) -> str:
    """The page: Swagger UI's stylesheet and script, ours, and (``keys``: the server
    needs a key) a form for the key. Links are relative, so a proxy's path prefix holds."""
    version = html.escape(__version__)
    form = (
        "<form id=setpoint-key><label>This server needs an API key (scope read to see "
        "the API, predict to try it): <input type=password name=key autocomplete=off "
        "required></label> <button>Use this key</button></form>"
        if keys
        else ""
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>setpoint {version}"
        "</title><link rel=icon href='docs/static/favicon-32x32.png'>"
        "<link rel=stylesheet href='docs/static/swagger-ui.css'></head><body>"
        f"<div style='margin:1rem 2rem;font-family:sans-serif'>{form}Without script: <a "
        "href='docs/plain'>the plain page</a>.</div><div id=swagger-ui></div>"
        "<script src='docs/static/swagger-ui-bundle.js'></script>"
        "<script src='docs/setpoint.js'></script></body></html>"
    )


# Starts Swagger UI once a key is known (or at once when none is needed), and adds the
# key to each request unless "Authorize" set one.
_SCRIPT = """\
"use strict";
(function () {
  var STORED = "setpoint-api-key";
  var form = document.getElementById("setpoint-key");
  function key() { return sessionStorage.getItem(STORED) || ""; }
  function start() {
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      validatorUrl: null,
      deepLinking: false,
      requestInterceptor: function (request) {
        if (key() && !request.headers.Authorization && !request.headers["X-API-Key"]) {
          request.headers.Authorization = "Bearer " + key();
        }
        return request;
      },
    });
  }
  if (!form) { start(); return; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(STORED, form.elements.key.value.trim());
    form.elements.key.value = "";
    start();
  });
  if (key()) { start(); }
})();
"""
