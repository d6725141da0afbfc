"""Run the whole product on one PC: ``python -m standalone`` (what ``make run`` does)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from prepaid_common.logs import configure_logging

from standalone.app import Standalone
from standalone.seed import DEMO_DATA_READY, low_credit_accounts
from standalone.settings import StandaloneSettings

log = logging.getLogger("standalone")


async def _announce_demo_data(product: Standalone) -> None:
    """Say when the demo data is in (or why not), and where to try a payment."""
    if product.seeding is None:
        return
    try:
        await product.seeding
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("loading the demo data failed; the product runs without it")
        return
    lines = [f"{DEMO_DATA_READY}: {len(product.low_credit_accounts)} low-credit accounts to trip."]
    if product.demo_order is not None:
        lines.append(
            f"  Pay demo:   open {product.demo_order['pay_url']} to pay "
            f"{product.demo_order['amount']} into {product.demo_order['account_id']} "
            "(the QR code's URL: the fake notifies, the relay closes)"
        )
    print("\n".join(lines) + "\n", flush=True)


async def main() -> None:
    settings = StandaloneSettings().with_local_secret()
    configure_logging(settings.log_level, settings.log_format)
    product = Standalone(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The API serves at once; a first start loads the demo data meanwhile.
        credentials = await product.start(seed_in_background=True)
        url = f"http://127.0.0.1:{settings.http_port}"
        lines = [
            "",
            "Prepaid metering is running (standalone).",
            f"  Console:    {url}/console/   (operators; {url}/ opens it)",
            f"  Phone site: {url}/m/   (tenants; a WeChat menu can link here)",
            f"  API:        {url}/api/v1   (OpenAPI: {url}/docs)",
            f"  Data:       {settings.data_dir.resolve()}",
            "  DTUs dial:  "
            + (
                f"{settings.collector_listen_host}:{settings.collector_listen_port}"
                if settings.collector_listen_port is not None
                else "(listener off)"
            ),
        ]
        if credentials.admin_password:
            lines.append(f"  Admin:      admin / {credentials.admin_password}   (shown once)")
        else:
            lines.append(
                "  Admin:      admin / (PREPAID_ADMIN_PASSWORD or the one shown at first start)"
            )
        if product.simulator is not None:
            meters = sum(len(d.meters) for d in product.simulator.dtus)
            lines.append(
                f"  Simulator:  {len(product.simulator.dtus)} DTUs, {meters} meters "
                f"at {settings.sim_speed:g}x speed"
            )
            lines.append(
                f"  Tenants:    tenant1..tenant3 / {credentials.tenant_password}"
                f"   (phone site: sign in as tenant1 at {url}/m/)"
            )
            low = low_credit_accounts(product.demo_layout())
            if settings.demo_data and low:
                lines.append("  Low credit: " + ", ".join(low[:4]) + " ...")
        if product.demo_payments is not None:
            lines.append(f"  Payments:   fake WeChat Pay and Alipay at {product.demo_payments.url}")
        if product.seeding is not None:
            lines.append(
                "  Demo data:  loading in the background (the console shows it as it comes)"
            )
        print("\n".join(lines) + "\n", flush=True)
        announced = asyncio.create_task(_announce_demo_data(product), name="demo-data-ready")
        try:
            yield
        finally:
            announced.cancel()
            await product.stop()

    product.app.router.lifespan_context = lifespan
    config = uvicorn.Config(
        product.app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main())
