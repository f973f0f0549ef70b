"""GET /: the playground page, and /static/ its hand-written script and style (served here, nothing from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(tags=["playground"])


@router.get("/", include_in_schema=False)
async def playground() -> FileResponse:
    """The playground: draw a digit, drop a photo, type a review, load a series."""
    return FileResponse(STATIC / "index.html", media_type="text/html")
