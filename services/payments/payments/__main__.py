"""Run the payments service alone: ``python -m payments`` (cluster mode)."""

import asyncio
import os

from prepaid_common.service import run_alone

from payments.service import PaymentsService

if __name__ == "__main__":
    asyncio.run(
        run_alone(PaymentsService, port=int(os.environ.get("PREPAID_SERVICE_PORT", "8104")))
    )
