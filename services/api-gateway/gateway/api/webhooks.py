"""The providers' notifications, on the public port without login: forwarded untouched.

The signature covers the raw bytes and a few headers, so the gateway neither parses nor
re-encodes them; payments verifies and answers, and its answer goes back as it is
(WeChat Pay reads the status code, Alipay the text ``success``).
"""

from __future__ import annotations

from typing import Literal

import httpx
from fastapi import APIRouter, Request, Response

from gateway.api.deps import Payments

router = APIRouter(tags=["payment webhooks"])

# What the signatures and the payload need; nothing of the caller's other headers.
FORWARDED_HEADERS = frozenset(
    {
        "content-type",
        "request-id",
        "wechatpay-nonce",
        "wechatpay-serial",
        "wechatpay-signature",
        "wechatpay-signature-type",
        "wechatpay-timestamp",
    }
)


# Each provider's own answers: WeChat Pay JSON, Alipay plain text ("success"/"failure").
# A request the gateway itself refuses (an unknown provider) is a problem, as everywhere.
_PROVIDER_ANSWERS = {
    "application/json": {},
    "text/plain": {"schema": {"type": "string"}},
    "application/problem+json": {},
}


@router.post(
    "/webhooks/{provider}",
    response_class=Response,
    responses={
        status: {"description": "The provider's answer", "content": _PROVIDER_ANSWERS}
        for status in (200, 400, 401, 404, 409, 422, 503)
    },
)
async def provider_notification(
    provider: Literal["wechatpay", "alipay"], request: Request, payments: Payments
) -> Response:
    """A payment provider's notification (WeChat Pay v3 or Alipay), verified by payments."""
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_HEADERS}
    try:
        answer = await payments.client.post(
            f"/internal/webhooks/{provider}", content=await request.body(), headers=headers
        )
    except httpx.TransportError:
        # Not received: each provider retries on its own schedule.
        if provider == "wechatpay":
            return Response(
                b'{"code":"FAIL","message":"payments unavailable"}',
                status_code=503,
                media_type="application/json",
            )
        return Response(b"failure", status_code=503, media_type="text/plain")
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type"),
    )
