"""A provider without settings is off and says so, over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
from payments.bootstrap import build
from payments.settings import PaymentsSettings
from prepaid_common.bus import InProcessBus
from prepaid_common.db import create_engine


async def test_a_provider_without_settings_is_off_and_says_so(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'payments.db'}")
    service = build(PaymentsSettings(), engine=engine, bus=InProcessBus())
    await service.migrate()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.internal_app()), base_url="http://p"
        ) as client:
            channels = (await client.get("/internal/channels")).json()
            assert [(c["provider"], c["enabled"]) for c in channels] == [
                ("wechatpay", False),
                ("alipay", False),
            ]
            assert all("off" in c["detail"] for c in channels)
            order = await client.post(
                "/internal/orders",
                json={
                    "account_id": "A-1",
                    "channel": "alipay_qr",
                    "amount": "5.00",
                    "operator": "a",
                },
            )
            assert order.status_code == 422
            assert "alipay is off" in order.json()["detail"]
            wechat = await client.post("/internal/webhooks/wechatpay", content=b"{}")
            assert (wechat.status_code, wechat.json()["code"]) == (404, "FAIL")
            alipay = await client.post("/internal/webhooks/alipay", content=b"a=b")
            assert alipay.text == "failure"
    finally:
        await engine.dispose()
