"""A QR code as SVG, drawn on the server so a payment link can be scanned from a PC screen."""

from __future__ import annotations

import io
from typing import Annotated

import segno
from fastapi import APIRouter, Query, Response

router = APIRouter()

# A payment provider's code_url is well under this; the cap keeps the code scannable.
MAX_TEXT = 1024


@router.get("/web/qr.svg", include_in_schema=False)
async def qr_svg(text: Annotated[str, Query(min_length=1, max_length=MAX_TEXT)]) -> Response:
    """Answer the QR code of ``text`` as an SVG image."""
    code = segno.make(text, error="m", micro=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="svg", scale=6, border=2, xmldecl=False, svgns=True, title="QR")
    return Response(
        buffer.getvalue(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=300"},
    )
