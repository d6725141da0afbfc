"""The one error model of every HTTP API: ``{"detail": "...", "code": "..."}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ServiceError(Exception):
    """An error a caller can act on; carries its HTTP status and a stable code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class Invalid(ServiceError):
    status_code = 422
    code = "invalid"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every ``ServiceError`` with its status and the common error body."""

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        return JSONResponse(
            status_code=error.status_code,
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


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class Unavailable(ServiceError):
    status_code = 503
    code = "unavailable"


class BadGateway(ServiceError):
    status_code = 502
    code = "bad_gateway"
