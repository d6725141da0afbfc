"""The one error model of every HTTP API: ``{"detail": "...", "code": "..."}``.

The edge is the only place that knows which status code each kind of error gets.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from prepaid_common.errors import (
    BadGateway,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TimedOut,
    Unauthorized,
    Unavailable,
)

# Most specific first: a subclass of one of these gets its parent's status.
STATUS_BY_ERROR: tuple[tuple[type[ServiceError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (Invalid, 422),
    (Unauthorized, 401),
    (Forbidden, 403),
    (Unavailable, 503),
    (BadGateway, 502),
    (TimedOut, 504),
)


def status_of(error: ServiceError) -> int:
    """Return the HTTP status for a service error (400 for the plain base class)."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


def install_error_handlers(app: FastAPI) -> None:
    """Answer every ``ServiceError`` with its status and the common error body."""

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        status = status_of(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            status_code=status,
            content={"detail": error.detail, "code": error.code},
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        detail = "; ".join(
            f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg')}"
            for problem in problems
        )
        return JSONResponse(
            status_code=422,
            content={
                "detail": detail or "invalid request",
                "code": "invalid",
                "errors": jsonable_encoder(
                    [{k: v for k, v in p.items() if k != "ctx"} for p in problems]
                ),
            },
        )
