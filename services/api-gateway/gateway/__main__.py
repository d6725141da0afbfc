"""Run the gateway alone: ``python -m gateway`` (cluster mode).

``python -m gateway reset-admin-password`` instead gives the user ``admin`` a new password
(``PREPAID_ADMIN_PASSWORD``, or a generated one it prints), enables it and revokes its tokens:
the way back in when the admin's password is lost. It reaches the database the gateway uses
(``PREPAID_DATABASE_URL``) directly and needs no other service.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from functools import partial

from prepaid_common.bus.memory import InProcessBus
from prepaid_common.db import create_engine
from prepaid_common.service import run_alone

from gateway.bootstrap import build
from gateway.operations import ADMIN
from gateway.settings import GatewaySettings


async def main() -> None:
    """Serve the public API on ``PREPAID_HTTP_PORT``, creating the first admin if needed."""
    settings = GatewaySettings()
    await run_alone(
        partial(build, settings, seed_admin_on_start=True),
        port=settings.http_port,
        settings=settings,
    )


async def reset_admin_password(settings: GatewaySettings) -> str | None:
    """Set the admin's password (configured, or generated and returned); create it if gone."""
    engine = create_engine(settings.database_url)
    try:
        gateway = build(settings, engine=engine, bus=InProcessBus())
        await gateway.migrate()
        generated = await gateway.ensure_admin()  # the admin was gone: made anew
        if generated is not None:
            return generated
        configured = settings.admin_password
        password = configured.get_secret_value() if configured else secrets.token_urlsafe(12)
        await gateway.operations.set_password(username=ADMIN, password=password)
        return None if configured else password
    finally:
        await gateway.upstreams.aclose()
        await engine.dispose()


def _reset() -> None:
    settings = GatewaySettings()
    generated = asyncio.run(reset_admin_password(settings))
    if generated:
        print(f"The password of admin is now: {generated}", flush=True)
    else:
        print("The password of admin is now the one PREPAID_ADMIN_PASSWORD holds.", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["reset-admin-password"]:
        _reset()
    elif sys.argv[1:]:
        sys.exit(f"usage: python -m gateway [reset-admin-password] (not {' '.join(sys.argv[1:])})")
    else:
        asyncio.run(main())
