"""On a test about to time out, print what every asyncio task is waiting on.

pytest-timeout prints the threads' stacks, where an asyncio test that hangs shows only its
event loop idling in ``select``: the task that waits forever is invisible there. Shortly
before the timeout, this prints each pending task's own stack (on stderr, which the report
of the failing test shows).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Iterator

import pytest

# Seconds before pytest-timeout's own limit at which the tasks are printed.
_AHEAD = 5.0


def _print_pending_tasks() -> None:
    tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    print(f"\n+++ {len(tasks)} pending asyncio tasks +++", file=sys.stderr)
    for task in tasks:
        print(f"--- {task.get_name()}", file=sys.stderr)
        # Read from another thread while the loop runs: a frame may move on meanwhile,
        # which is harmless for a report of where a hung task sits.
        task.print_stack(limit=12, file=sys.stderr)


@pytest.fixture(autouse=True)
def report_hung_tasks(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else request.config.getini("timeout")
    limit = float(limit or 0)
    if limit <= _AHEAD:
        yield
        return
    timer = threading.Timer(limit - _AHEAD, _print_pending_tasks)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
