"""Waiting on a product started as its own process (``python -m standalone``)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from standalone.seed import DEMO_DATA_READY


def wait_for_demo_data(process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Wait for the line the product prints once its demo data is loaded: the API serves
    before that (the data loads in the background), a test of the demo needs all of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"standalone exited early:\n{log.read_text()[-4000:]}")
        if DEMO_DATA_READY in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"demo data not loaded within {timeout} s:\n{log.read_text()[-4000:]}")
