"""Run the billing service alone: ``python -m billing`` (cluster mode)."""

import asyncio
import os

from prepaid_common.service import run_alone
from prepaid_common.settings import CommonSettings

from billing.service import BillingService

if __name__ == "__main__":
    port = int(os.environ.get("PREPAID_SERVICE_PORT", "8102"))
    asyncio.run(run_alone(BillingService, port=port, settings=CommonSettings()))
