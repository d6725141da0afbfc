"""Correlation ids: one id per request, carried from HTTP through the bus into every log line.

An HTTP request brings its ``X-Request-ID`` (or gets a new one); the id lives in a context
variable while the request is served, goes out with every call the gateway makes to a service
and inside every envelope the unit of work emits, and a consumer handling that envelope binds
it again. The log filter puts it on every line (``correlation_id``), so one grep follows a
top-up from the API to the relay.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prepaid_common.contracts import Envelope

CORRELATION_HEADER = "X-Request-ID"
# A client's id is kept only when it is short and plain: it goes into logs and headers.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def current_id() -> str | None:
    """Return the correlation id of the work in hand, if any."""
    return _current.get()


def new_id() -> str:
    """Return a fresh correlation id."""
    return uuid.uuid4().hex


@contextmanager
def correlated(correlation_id: str | None) -> Iterator[None]:
    """Bind ``correlation_id`` to the work done inside the block."""
    token = _current.set(correlation_id)
    try:
        yield
    finally:
        _current.reset(token)


class CorrelationFilter(logging.Filter):
    """Add ``correlation_id`` to every record logged while one is bound."""

    def filter(self, record: logging.LogRecord) -> bool:
        correlation_id = _current.get()
        if correlation_id is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id
        return True


class CorrelateRequests:
    """ASGI middleware: bind the request's X-Request-ID (or a new one) and answer with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = CORRELATION_HEADER.lower().encode()
        given = next((v for k, v in scope["headers"] if k == header), b"").decode("latin-1")
        correlation_id = given if _ACCEPTED.fullmatch(given) else new_id()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (header, correlation_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        with correlated(correlation_id):
            await self.app(scope, receive, send_with_id)


async def send_correlation_id(request: httpx.Request) -> None:
    """httpx request hook: pass the bound correlation id on to the service called."""
    correlation_id = _current.get()
    if correlation_id is not None:
        request.headers[CORRELATION_HEADER] = correlation_id


def correlate_handler(
    handler: Callable[[Envelope], Awaitable[None]],
) -> Callable[[Envelope], Awaitable[None]]:
    """Wrap a bus handler so that it runs under its envelope's correlation id."""

    async def handle(envelope: Envelope) -> None:
        with correlated(envelope.correlation_id or envelope.message_id):
            await handler(envelope)

    return handle
