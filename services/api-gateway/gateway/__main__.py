"""Run the gateway alone: ``python -m gateway`` (cluster mode)."""

from __future__ import annotations

import asyncio
from functools import partial

from prepaid_common.service import run_alone

from gateway.bootstrap import build
from gateway.settings import GatewaySettings


async def main() -> None:
    """Serve the public API on ``PREPAID_HTTP_PORT``, creating the first admin if needed."""
    settings = GatewaySettings()
    await run_alone(
        partial(build, settings, seed_admin_on_start=True),
        port=settings.http_port,
        settings=settings,
    )


if __name__ == "__main__":
    asyncio.run(main())
