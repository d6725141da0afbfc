"""The public app: the API's routers under ``/api/v1``, the error model, metrics, health."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from prepaid_common.http_errors import install_error_handlers, problem_responses
from prepaid_common.http_guards import RequestBodyGuard
from prepaid_common.metrics import HTTP_REQUESTS, metrics_router

from gateway.api import PREFIX, ROUTERS
from gateway.api.deps import ApiContext
from gateway.idempotency import EXEMPT_PREFIXES, MAX_KEY_LENGTH, IdempotencyKeys
from gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from gateway.operations import GatewayOperations
from gateway.upstream import Upstreams
from gateway.web import install_front_ends


def build_public_app(*, operations: GatewayOperations, upstreams: Upstreams) -> FastAPI:
    """Assemble the public app: routes, errors, metrics, health."""
    app = FastAPI(
        title="Prepaid metering API",
        version="1",
        description="Meters, accounts, ledgers, top-ups and relay commands.",
        generate_unique_id_function=operation_id,
    )
    app.state.context = ApiContext(operations=operations, upstreams=upstreams)
    install_error_handlers(app)
    app.middleware("http")(measure)
    app.add_middleware(IdempotencyKeys, operations=operations)
    app.add_middleware(RequestBodyGuard)  # outermost: nothing reads a body before its check
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX, responses=PUBLIC_PROBLEMS)
    app.include_router(metrics_router())
    app.add_api_route("/healthz", healthz, include_in_schema=False)
    install_front_ends(app)
    app.openapi = partial(openapi_with_idempotency_keys, app)  # type: ignore[method-assign]
    return app


def openapi_with_idempotency_keys(app: FastAPI) -> dict[str, Any]:
    """Return the OpenAPI document with the Idempotency-Key header on every keyed POST."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path, methods in schema["paths"].items():
            post = methods.get("post")
            if post is None or not path.startswith("/api/v1/") or path.startswith(EXEMPT_PREFIXES):
                continue
            post.setdefault("parameters", []).append(
                {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Send the same key again to get the first answer again "
                    "(kept a day); another request under the key is a 422",
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                }
            )
        app.openapi_schema = schema
    return app.openapi_schema


# Every status a public route may answer besides its own success (problem details).
PUBLIC_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 502, 503, 504)


def operation_id(route: APIRoute) -> str:
    """Name a route's operation after its function: stable, short, read by code generators."""
    return route.name


async def measure(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Time each request into the HTTP histogram, labelled by its route's path template."""
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    HTTP_REQUESTS.labels("gateway", request.method, path, str(response.status_code)).observe(
        time.perf_counter() - started
    )
    return response


async def healthz() -> dict[str, str]:
    """Say the gateway is up."""
    return {"status": "ok", "service": "gateway"}
