"""The two front ends, served as static files: the operator's console and the tenant's phone site.

Both are plain HTML, CSS and JavaScript modules that call the public API (/api/v1) like any
third party; nothing is built or fetched at run time, so they work on a PC with no internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.web.qr import router as qr_router

STATIC = Path(__file__).parent / "static"
CONSOLE_PATH = "/console/"
PHONE_PATH = "/m/"
# The pages load their own files only; no inline script, no eval, never inside a frame.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'"
)


class FrontEndFiles(StaticFiles):
    """Static files that carry the pages' policy on every answer, a 304 too.

    A browser keeps the headers of a 304 in place of the cached page's, and a 304 has no
    content type to choose a policy by; so the policy is set here, for each file.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        """Answer the file (or 304) with the pages' policy, revalidated on every load."""
        response = await super().get_response(path, scope)
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        # No build step means no hashed names: revalidate (ETag) so an upgrade shows at once.
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def install_front_ends(app: FastAPI) -> None:
    """Serve the console at /console/, the phone site at /m/, and send / to the console."""
    app.add_api_route("/", to_console, include_in_schema=False)
    app.include_router(qr_router)
    # html=True answers a folder with its index.html, so /m/ is the page a WeChat menu opens.
    app.mount("/console", FrontEndFiles(directory=STATIC / "console", html=True), name="console")
    app.mount("/m", FrontEndFiles(directory=STATIC / "m", html=True), name="phone")
    app.mount("/web", FrontEndFiles(directory=STATIC / "common"), name="web-common")


async def to_console() -> RedirectResponse:
    """Open the operator's console."""
    return RedirectResponse(CONSOLE_PATH, status_code=307)
