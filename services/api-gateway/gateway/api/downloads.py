"""Answering with a file: which format a caller asked for, and the file with its name."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response

from gateway.documents.pdf import PDF_MEDIA_TYPE
from gateway.documents.xlsx import XLSX_MEDIA_TYPE

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
FileFormat = Literal["json", "xlsx", "pdf"]
FormatQuery = Annotated[
    FileFormat | None,
    Query(
        alias="format",
        description="json (default), xlsx or pdf; or ask by the Accept header",
    ),
]
# What the OpenAPI says a report route can answer besides JSON.
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            PDF_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "JSON, or the report as XLSX or PDF (?format= or Accept)",
    }
}


def wanted_format(request: Request, asked: FileFormat | None) -> FileFormat:
    """Return the format asked for by ``?format=``, else by the Accept header, else JSON."""
    if asked is not None:
        return asked
    accept = request.headers.get("accept", "")
    if XLSX_MEDIA_TYPE in accept or "application/vnd.ms-excel" in accept:
        return "xlsx"
    if PDF_MEDIA_TYPE in accept:
        return "pdf"
    return "json"


def file_response(data: bytes, *, filename: str, media_type: str) -> Response:
    """Return ``data`` as a download named ``filename`` (ASCII: every browser keeps it)."""
    return Response(
        content=data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
