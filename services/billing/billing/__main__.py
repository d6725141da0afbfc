"""Run the billing service alone: ``python -m billing`` (cluster mode)."""

import asyncio
from functools import partial

from prepaid_common.service import run_alone

from billing.bootstrap import build
from billing.settings import BillingSettings

if __name__ == "__main__":
    settings = BillingSettings()
    asyncio.run(run_alone(partial(build, settings), port=settings.service_port, settings=settings))
