"""The two front ends, served as static files: the operator's console and the tenant's phone site.

Both are plain HTML, CSS and JavaScript modules that call the public API (/api/v1) like any
third party; nothing is built or fetched at run time, so they work on a PC with no internet.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from gateway.web.qr import router as qr_router

STATIC = Path(__file__).parent / "static"
CONSOLE_PATH = "/console/"
PHONE_PATH = "/m/"


def install_front_ends(app: FastAPI) -> None:
    """Serve the console at /console/, the phone site at /m/, and send / to the console."""
    app.add_api_route("/", to_console, include_in_schema=False)
    app.include_router(qr_router)
    # html=True answers a folder with its index.html, so /m/ is the page a WeChat menu opens.
    app.mount("/console", StaticFiles(directory=STATIC / "console", html=True), name="console")
    app.mount("/m", StaticFiles(directory=STATIC / "m", html=True), name="phone")
    app.mount("/web", StaticFiles(directory=STATIC / "common"), name="web-common")


async def to_console() -> RedirectResponse:
    """Open the operator's console."""
    return RedirectResponse(CONSOLE_PATH, status_code=307)
