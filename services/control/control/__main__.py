"""Run the control service alone: ``python -m control`` (cluster mode, port 8103)."""

import asyncio
from functools import partial

from prepaid_common.service import run_alone

from control.bootstrap import build
from control.settings import ControlSettings

if __name__ == "__main__":
    settings = ControlSettings()
    asyncio.run(run_alone(partial(build, settings), port=settings.service_port, settings=settings))
