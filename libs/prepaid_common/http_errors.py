"""The one error model of every HTTP API: ``{"detail": "...", "code": "..."}``.

The edge is the only place that knows which status code each kind of error gets. A
dependency that cannot be reached (the database down, a timeout) is a 503 with
``Retry-After``, never a 500: the same request may succeed in a few seconds.
"""

from __future__ import annotations

import logging

import aiormq.exceptions
import asyncpg  # type: ignore[import-untyped]
import httpx
import sqlalchemy.exc
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
from prepaid_common.failures import is_infrastructure_failure

log = logging.getLogger(__name__)

# Seconds a client is asked to wait before trying again after a 503.
RETRY_AFTER_SECONDS = 5

# Raw errors that may mean a dependency is down; ``is_infrastructure_failure`` decides.
_MAYBE_INFRASTRUCTURE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.SQLAlchemyError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    aiormq.exceptions.AMQPError,
    httpx.TransportError,
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
        headers: dict[str, str] | None = None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        elif status == 503:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return JSONResponse(
            status_code=status,
            content={"detail": error.detail, "code": error.code},
            headers=headers,
        )

    async def _dependency_down(request: Request, error: Exception) -> JSONResponse:
        if not is_infrastructure_failure(error):
            raise error  # a bug: the server error middleware answers 500 and logs it
        log.warning(
            "dependency unavailable; answered 503",
            extra={"path": request.url.path, "error": repr(error)},
        )
        return JSONResponse(
            status_code=503,
            content={"detail": "a dependency is unavailable; try again", "code": "unavailable"},
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for kind in _MAYBE_INFRASTRUCTURE:
        app.add_exception_handler(kind, _dependency_down)

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
