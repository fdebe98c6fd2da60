"""``GET /static/{name}``: the stylesheet, the vendored htmx script and hipdx's own small script, and nothing else."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

STATIC = Path(__file__).parent / "static"
#: The files /static serves, and nothing else.
STATIC_FILES = {"hipdx.css": "text/css", "htmx.min.js": "text/javascript", "hipdx.js": "text/javascript"}


def routes() -> APIRouter:
    """The static files (no patient data: no sign-in)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "public, max-age=3600"})

    return router
