"""Run the payments service alone: ``python -m payments`` (cluster mode, port 8104)."""

import asyncio
from functools import partial

from prepaid_common.service import run_alone

from payments.bootstrap import build
from payments.settings import PaymentsSettings

if __name__ == "__main__":
    settings = PaymentsSettings()
    asyncio.run(run_alone(partial(build, settings), port=settings.service_port, settings=settings))
