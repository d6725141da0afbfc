"""Run the notifications service alone: ``python -m notifications`` (cluster mode, port 8105)."""

import asyncio
from functools import partial

from prepaid_common.service import run_alone

from notifications.bootstrap import build
from notifications.settings import NotificationsSettings

if __name__ == "__main__":
    settings = NotificationsSettings()
    asyncio.run(run_alone(partial(build, settings), port=settings.service_port, settings=settings))
