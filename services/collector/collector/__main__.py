"""Run the collector alone: ``python -m collector`` (cluster mode, port 8101)."""

import asyncio
from functools import partial

from prepaid_common.service import run_alone

from collector.bootstrap import build
from collector.settings import CollectorSettings


def main() -> None:
    settings = CollectorSettings()
    asyncio.run(run_alone(partial(build, settings), port=settings.service_port, settings=settings))


if __name__ == "__main__":
    main()
