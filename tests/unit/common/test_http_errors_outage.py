"""A dependency that cannot be reached is a 503 with ``Retry-After``; a bug stays a 500."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI
from prepaid_common.errors import Unavailable
from prepaid_common.http_errors import install_error_handlers


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/")
    async def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        Unavailable("billing service unreachable"),
    ],
    ids=repr,
)
async def test_an_unreachable_dependency_is_a_503_with_retry_after(error: Exception) -> None:
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response.json()["detail"]
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    ],
    ids=repr,
)
async def test_anything_else_is_still_a_500(error: Exception) -> None:
    transport = httpx.ASGITransport(app=app_raising(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
    assert response.status_code == 500
