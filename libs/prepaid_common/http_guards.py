"""ASGI guards every HTTP app puts in front of its routes.

They run before FastAPI reads a body, so a client cannot make the one event loop of a
standalone product read and parse megabytes, or hand it a JSON number it cannot answer.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prepaid_common.http_errors import problem

# A request body larger than this is refused (413) before it is read any further.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class RequestBodyGuard:
    """Refuse a body over ``max_bytes`` (413) and a JSON body with NaN or Infinity (422)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse_too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse_too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _is_json(headers.get(b"content-type", b"")) and _has_non_finite_number(body):
            refusal = problem(
                422, "a JSON number must be finite: NaN and Infinity are not JSON", "invalid"
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body), send)

    async def _refuse_too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = problem(
            413, f"the request body is larger than {self.max_bytes} bytes", "too_large"
        )
        refusal.headers["Connection"] = "close"
        await refusal(scope, receive, send)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def _has_non_finite_number(body: bytes) -> bool:
    # Only NaN, Infinity and -Infinity are looked for; other bad JSON is FastAPI's to refuse.
    if b"NaN" not in body and b"Infinity" not in body:
        return False
    try:
        json.loads(body, parse_constant=_refuse_constant)
    except _NonFinite:
        return True
    except ValueError:
        return False
    return False


class SecurityHeaders:
    """Add the headers that keep a browser from misreading, framing or leaking an answer."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        self.extra: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts_seconds > 0:
            # Only behind TLS: a browser then refuses plain HTTP to this host for that long.
            self.extra.append((b"strict-transport-security", f"max-age={hsts_seconds}".encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self.extra if n not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", _policy(headers)))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _policy(headers: list[tuple[bytes, bytes]]) -> bytes:
    content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
    if content_type.startswith(b"text/html"):
        # Pages (the console, the phone site, /docs) load their own files only.
        return (
            b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            b"script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
        )
    return b"default-src 'none'; frame-ancestors 'none'"
