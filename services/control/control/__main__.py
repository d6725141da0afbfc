"""Run the control service alone: ``python -m control`` (cluster mode)."""

import asyncio
import os

from prepaid_common.service import run_alone
from prepaid_common.settings import CommonSettings

from control.service import ControlService

if __name__ == "__main__":
    port = int(os.environ.get("PREPAID_SERVICE_PORT", "8103"))
    asyncio.run(run_alone(ControlService, port=port, settings=CommonSettings()))
