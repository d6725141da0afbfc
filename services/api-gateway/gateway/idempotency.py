"""``Idempotency-Key`` on the public API's POSTs (and the PUTs that issue a meter command):
the first answer is kept and given again.

Per principal and key, for a day: the same key with the same request gets the first answer
again (``Idempotent-Replayed: true``) without doing anything twice; with another request, or
while the first is still running, it is a 409. Only successful answers are kept, so a
refused request may be corrected and sent again under its key.
"""

from __future__ import annotations

import hashlib

from prepaid_common.errors import ServiceError
from prepaid_common.http_errors import problem
from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.operations import API_KEY_PREFIX, GatewayOperations

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
# Posts that create nothing a retry could duplicate, or that are not the caller's to repeat.
EXEMPT_PREFIXES = ("/api/v1/auth/", "/api/v1/webhooks/")
# PUTs that issue a meter command each time (a repeat would send it again): keyed like POSTs.
KEYED_PUT_SUFFIXES = ("/power-limit",)


def keyed(method: str, path: str) -> bool:
    """Whether a request to the public API takes an Idempotency-Key."""
    if not path.startswith("/api/v1/") or path.startswith(EXEMPT_PREFIXES):
        return False
    return method == "POST" or (method == "PUT" and path.endswith(KEYED_PUT_SUFFIXES))


class IdempotencyKeys:
    """ASGI middleware keeping and replaying answers to POSTs sent with an Idempotency-Key."""

    def __init__(
        self, app: ASGIApp, *, operations: GatewayOperations, router: Router | None = None
    ) -> None:
        self.app = app
        self.operations = operations
        # The app's routes, read at each request (they are added after the middleware).
        self.router = router
        self.in_flight: set[tuple[str, str]] = set()

    def _routed(self, scope: Scope) -> bool:
        """Whether a route takes this method at this path: any other request is the router's
        404 or 405, never a key's 409 (a key reused on an undeclared method)."""
        if self.router is None:
            return True
        return any(route.matches(scope)[0] is Match.FULL for route in self.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        key_bytes = headers.get(HEADER.lower().encode())
        path: str = scope.get("path", "")
        method: str = scope.get("method", "")
        if key_bytes is None or not keyed(method, path) or not self._routed(scope):
            await self.app(scope, receive, send)
            return
        key = key_bytes.decode("latin-1")
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            await problem(
                422, f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters", "invalid"
            )(scope, receive, send)
            return
        principal = await self._principal(headers)
        if principal is None:  # not signed in: the route answers 401
            await self.app(scope, receive, send)
            return
        body = await _read(receive)
        query: bytes = scope.get("query_string", b"")
        request = f"{method} {path}?".encode() + query + b"\n" + body
        request_hash = hashlib.sha256(request).hexdigest()
        kept = await self.operations.kept_answer(principal=principal, key=key)
        if kept is not None:
            kept_hash, status, kept_body = kept
            if kept_hash != request_hash:
                await problem(
                    409, f"this {HEADER} was used for another request", "idempotency_key_reused"
                )(scope, receive, send)
                return
            replay = Response(
                kept_body,
                status_code=status,
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
            await replay(scope, receive, send)
            return
        if (principal, key) in self.in_flight:
            await problem(409, f"a request with this {HEADER} is still being answered", "conflict")(
                scope, receive, send
            )
            return
        self.in_flight.add((principal, key))
        try:
            status, answer = await self._answer(scope, body, send)
        finally:
            self.in_flight.discard((principal, key))
        if 200 <= status < 300:
            await self.operations.keep_answer(
                principal=principal,
                key=key,
                request_hash=request_hash,
                status=status,
                body=answer.decode("utf-8", errors="replace"),
            )

    async def _principal(self, headers: dict[bytes, bytes]) -> str | None:
        api_key = headers.get(b"x-api-key", b"").decode("latin-1")
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        token = authorization[7:] if authorization[:7].lower() == "bearer " else ""
        try:
            if api_key or token.startswith(API_KEY_PREFIX):
                found = await self.operations.principal_of_api_key(key=api_key or token)
            else:
                found = await self.operations.principal_of_token(token=token)
        except ServiceError:
            return None
        return found.username

    async def _answer(self, scope: Scope, body: bytes, send: Send) -> tuple[int, bytes]:
        """Run the route with the body read, passing its answer on and keeping a copy."""
        status = 500
        chunks: list[bytes] = []
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        return status, b"".join(chunks)


async def _read(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
