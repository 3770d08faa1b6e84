"""``/docs`` (Swagger UI) and ``/redoc`` with every script, style sheet and icon served by the gateway itself.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN (and ReDoc its fonts from Google): on a closed
government network they stay blank. The assets here come from the installed package ``fastapi-offline`` and
are served under :data:`ASSETS` from memory, so the pages need nothing but the gateway. Two things in them
would still reach out, and are switched off:

- Swagger UI sends the spec to ``validator.swagger.io`` for a badge unless ``validatorUrl`` is null;
- ReDoc's side menu shows a logo loaded from ``cdn.redoc.ly``: the bundle is served with that URL emptied
  (an empty ``src`` loads nothing, and ReDoc then hides the image).

``GATEWAY_API_DOCS=false`` leaves both pages and their assets out (``create_app``); ``/openapi.json`` stays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse

__all__ = ["ASSETS", "install"]

#: where the pages' assets are served
ASSETS = "/docs-assets"

_PACKAGE = Path(fastapi_offline.__file__).resolve().parent / "static"
_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
#: what is cut out of an asset before it is served (see the module docstring)
_OFFLINE_PATCHES = {
    "redoc.standalone.js": ((b'"https://cdn.redoc.ly/redoc/logo-mini.svg"', b'""'),),
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def _asset(name: str) -> _Asset:
    body = (_PACKAGE / name).read_bytes()
    for old, new in _OFFLINE_PATCHES.get(name, ()):
        body = body.replace(old, new)
    return _Asset(body, _MEDIA_TYPES[name], f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def install(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and :data:`ASSETS` to ``app`` (made with ``docs_url=None, redoc_url=None``)."""
    router = APIRouter(include_in_schema=False)

    def prefix(request: Request) -> str:
        root: str = request.scope.get("root_path", "")
        return root.rstrip("/")

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js", redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    @router.get(ASSETS + "/{name}")
    async def asset(name: str, request: Request) -> Response:
        if name not in _MEDIA_TYPES:
            raise HTTPException(404)
        found = _asset(name)
        headers = {"ETag": found.etag, "Cache-Control": "public, max-age=86400"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)

    app.include_router(router)
