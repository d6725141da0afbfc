"""The public app: the API's routers under ``/api/v1``, the error model, metrics, health."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prepaid_common.correlation import CorrelateRequests
from prepaid_common.http_errors import install_error_handlers, problem_responses
from prepaid_common.http_guards import RequestBodyGuard, SecurityHeaders
from prepaid_common.metrics import metrics_router, observe_http_requests
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from gateway.api import PREFIX, ROUTERS
from gateway.api.deps import ApiContext
from gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from gateway.idempotency import MAX_KEY_LENGTH, IdempotencyKeys, keyed
from gateway.operations import GatewayOperations
from gateway.upstream import Upstreams
from gateway.web import install_front_ends


def build_public_app(*, operations: GatewayOperations, upstreams: Upstreams) -> FastAPI:
    """Assemble the public app: routes, errors, guards, docs, metrics, health."""
    settings = operations.settings
    app = FastAPI(
        title="Prepaid metering API",
        version="1",
        description="Meters, accounts, ledgers, top-ups and relay commands.",
        generate_unique_id_function=operation_id,
        docs_url=None,  # served below from local files, not a CDN
        redoc_url=None,
    )
    app.state.context = ApiContext(operations=operations, upstreams=upstreams)
    install_error_handlers(app)
    observe_http_requests(app, app_name="gateway")
    app.add_middleware(IdempotencyKeys, operations=operations, router=app.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-API-Key"],
            expose_headers=["Retry-After", "Idempotent-Replayed"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts_seconds=settings.hsts_seconds)
    # Outermost: nothing reads a body before its size and numbers are checked.
    app.add_middleware(RequestBodyGuard, max_bytes=settings.http_max_body_bytes)
    # Around everything (it reads no body): each request's X-Request-ID, kept or made, is on
    # its log lines, the calls to the services and the messages it causes.
    app.add_middleware(CorrelateRequests)
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX, responses=PUBLIC_PROBLEMS)
    if settings.public_metrics:
        app.include_router(metrics_router())
    app.add_api_route("/healthz", healthz, include_in_schema=False)
    install_local_docs(app)
    install_front_ends(app)
    app.openapi = partial(openapi_with_idempotency_keys, app)  # type: ignore[method-assign]
    return app


def install_local_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from the files of the swagger-ui-bundle package."""
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route("/docs", docs, include_in_schema=False)
    app.add_api_route("/docs/oauth2-redirect", oauth2_redirect, include_in_schema=False)


def openapi_with_idempotency_keys(app: FastAPI) -> dict[str, Any]:
    """Return the OpenAPI document with the Idempotency-Key header on every keyed POST (and
    command-issuing PUT)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        keyed_operations = [
            operation
            for path, methods in schema["paths"].items()
            for method, operation in methods.items()
            if keyed(method.upper(), path)
        ]
        for operation in keyed_operations:
            operation.setdefault("parameters", []).append(
                {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Send the same key again to get the first answer again "
                    "(kept a day); another request under the key is a 409",
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


async def healthz() -> dict[str, str]:
    """Say the gateway is up."""
    return {"status": "ok", "service": "gateway"}
