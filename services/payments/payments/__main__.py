"""Run the payments service alone: ``python -m payments`` (cluster mode)."""

import asyncio
import os

from prepaid_common.service import run_alone
from prepaid_common.settings import CommonSettings

from payments.service import PaymentsService

if __name__ == "__main__":
    port = int(os.environ.get("PREPAID_SERVICE_PORT", "8104"))
    asyncio.run(run_alone(PaymentsService, port=port, settings=CommonSettings()))
