"""Fake WeChat Pay and Alipay beside the standalone product, so a tenant can "pay" a QR code.

They speak the real protocols with keys of their own (kept in the data directory); payments
is configured for them exactly as for the real providers, only with their addresses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from simulator.payproviders import BackgroundServer, FakeKeys, FakeProviders


class DemoPayments:
    """The fake providers on a port of their own, and the payments settings that reach them."""

    def __init__(self, data_dir: Path, *, host: str, port: int) -> None:
        directory = data_dir / "fake-payment-keys"
        self.keys = FakeKeys.load_or_generate(directory)
        self.fake = FakeProviders(self.keys)
        self.server = BackgroundServer(host=host, port=port)
        self._merchant = self.keys.write_merchant_files(directory / "merchant")

    @property
    def url(self) -> str:
        """Where the fake providers listen."""
        return self.server.url

    def payments_settings(self, *, public_base_url: str) -> dict[str, Any]:
        """Return the payments settings that point at the fakes (as the PREPAID_* would)."""
        settings: dict[str, Any] = {
            name: Path(value) if name.endswith(("_file", "_dir")) else value
            for name, value in self._merchant.items()
        }
        return {
            **settings,
            "wechatpay_base_url": self.url,
            "alipay_gateway_url": f"{self.url}/gateway.do",
            "public_base_url": public_base_url,
        }

    async def start(self) -> None:
        """Start serving the fake providers."""
        await self.server.start(self.fake.app)

    async def stop(self) -> None:
        """Stop serving and drop pending notifications."""
        await self.server.stop()
        await self.fake.aclose()


async def start_demo_order(client: httpx.AsyncClient, account_id: str) -> dict[str, str]:
    """Start a WeChat Pay QR order through the public API; return what to show."""
    answer = await client.post(
        f"/api/v1/accounts/{account_id}/orders",
        json={"channel": "wechat_native", "amount": "50.00"},
    )
    answer.raise_for_status()
    order = answer.json()
    return {
        "account_id": account_id,
        "amount": str(order["amount"]),
        "out_trade_no": str(order["out_trade_no"]),
        "pay_url": str(order["code_url"]),
    }
