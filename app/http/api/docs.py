"""The interactive API docs, offline: Swagger UI at /docs and ReDoc at /redoc, their scripts, style and icon served
by the service itself from the installed fastapi-offline package (FastAPI's own pages load them from a CDN and, on a
machine without internet, render blank). ReDoc's web fonts are left out (it falls back to the system's), and so is
the Redocly logo it would fetch from cdn.redoc.ly (an empty source: the page then hides it, as it does offline):
the docs pages ask nothing of another origin, with or without internet."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

ASSETS = Path(str(files("fastapi_offline") / "static"))
# path -> (file in ASSETS, media type)
FILES = {
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript"),
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css"),
    "/docs/favicon.png": ("favicon.png", "image/png"),
    "/redoc/redoc.standalone.js": ("redoc.standalone.js", "text/javascript"),
}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
REDOCLY_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def router(openapi_url: str, title: str) -> tuple[APIRouter, frozenset[str]]:
    """The docs pages and their assets, and every path they answer (open like the pages when keys are on)."""
    pages = APIRouter(include_in_schema=False)

    @pages.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url="/docs/swagger-ui-bundle.js",
            swagger_css_url="/docs/swagger-ui.css",
            swagger_favicon_url="/docs/favicon.png",
            oauth2_redirect_url=OAUTH2_REDIRECT,
        )

    @pages.get(OAUTH2_REDIRECT)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @pages.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url="/redoc/redoc.standalone.js",
            redoc_favicon_url="/docs/favicon.png",
            with_google_fonts=False,
        )

    for path, (name, media) in FILES.items():
        content = (ASSETS / name).read_bytes().replace(REDOCLY_LOGO, b"")
        pages.add_api_route(path, _asset(content, media), methods=["GET"])
    return pages, frozenset({"/docs", OAUTH2_REDIRECT, "/redoc", *FILES})


def _asset(content: bytes, media: str):
    async def asset() -> Response:
        return Response(content, media_type=media, headers={"Cache-Control": "public, max-age=86400"})

    return asset
