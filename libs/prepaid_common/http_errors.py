"""The one error model of every HTTP API: RFC 9457 problem details (``application/problem+json``)
with ``detail`` and our stable ``code`` (and ``errors``, per field, with a 422).

The edge is the only place that knows which status code each kind of error gets. A
dependency that cannot be reached (the database down, a timeout) is a 503 with
``Retry-After``, never a 500: the same request may succeed in a few seconds.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import aiormq.exceptions
import asyncpg  # type: ignore[import-untyped]
import httpx
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from prepaid_common.contracts.api.problems import Problem
from prepaid_common.errors import (
    BadGateway,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TimedOut,
    TooManyRequests,
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
    (TooManyRequests, 429),
)


def status_of(error: ServiceError) -> int:
    """Return the HTTP status for a service error (400 for the plain base class)."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


PROBLEM_MEDIA_TYPE = "application/problem+json"

# The longest value a 422 echoes back: a client sent it, so it only needs a reminder.
_ECHO_LIMIT = 100

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    502: "bad_gateway",
    503: "unavailable",
    504: "timed_out",
}


def problem(
    status: int,
    detail: str,
    code: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """Return a problem-details answer."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code or _CODE_BY_STATUS.get(status, "error"),
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(
        status_code=status, content=body, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return OpenAPI ``responses`` documenting each status as a problem answer."""
    return {
        status: {
            "model": Problem,
            "description": _title(status),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def _field_problem(raw: Any) -> dict[str, Any]:
    """One validation error, its input echoed only when short and finite."""
    item: dict[str, Any] = {
        "loc": [part if isinstance(part, int) else str(part) for part in raw.get("loc", ())],
        "msg": str(raw.get("msg", "")),
        "type": str(raw.get("type", "")),
    }
    value = raw.get("input")
    if (
        (isinstance(value, bool | int) and abs(value) < 10**18)
        or (isinstance(value, float) and math.isfinite(value))
        or (isinstance(value, str) and len(value) <= _ECHO_LIMIT and value.isprintable())
    ):
        item["input"] = value
    return item


def _allowed_methods(request: Request) -> list[str]:
    # The documented methods of the path that matches (literal paths first), read once.
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        request.app.state, "allowed_methods", None
    )
    if table is None:
        # A literal path (``/meters/read-all``) is its own resource, not an id of a template.
        paths = sorted(request.app.openapi().get("paths", {}).items(), key=lambda p: "{" in p[0])
        table = [
            (compile_path(path)[0], {method.upper() for method in operations})
            for path, operations in paths
        ]
        request.app.state.allowed_methods = table
    methods: set[str] = set()
    for pattern, allowed in table:
        if pattern.match(request.url.path):
            methods = allowed.copy()
            break
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


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
        elif isinstance(error, TooManyRequests):
            headers = {"Retry-After": str(error.retry_after)}
        return problem(status, error.detail, error.code, headers=headers)

    async def _dependency_down(request: Request, error: Exception) -> JSONResponse:
        if not is_infrastructure_failure(error):
            raise error  # a bug: the server error middleware answers 500 and logs it
        log.warning(
            "dependency unavailable; answered 503",
            extra={"path": request.url.path, "error": repr(error)},
        )
        return problem(
            503,
            "a dependency is unavailable; try again",
            "unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for kind in _MAYBE_INFRASTRUCTURE:
        app.add_exception_handler(kind, _dependency_down)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (no such route, a method not allowed, a bad body's framing).
        detail = error.detail if isinstance(error.detail, str) else _title(error.status_code)
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names the methods of the first route on the path; a path served by
            # several routes (GET and POST apart) allows all of theirs.
            headers["Allow"] = ", ".join(_allowed_methods(request)) or headers.get("Allow", "")
        return problem(error.status_code, detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [_field_problem(raw) for raw in error.errors()]
        detail = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in problems
        )
        return problem(422, detail[:1000] or "invalid request", "invalid", errors=problems)
