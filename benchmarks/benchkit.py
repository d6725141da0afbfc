"""What every benchmark records beside its figures: the machine, the command, the time."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and the load when the run began (the machine is shared)."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def write_results(output: str | Path, results: dict[str, Any], *, began: float) -> None:
    """Stamp the results with the command and date, write them as JSON and print them."""
    results |= {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "total_seconds": round(time.monotonic() - began, 1),
    }
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


def service_port() -> int:
    """A free TCP port below the kernel's ephemeral range, for a service to listen on.

    A port the kernel hands out (bind to 0) is in the ephemeral range, where the collector's
    thousands of outgoing connections to DTUs also take theirs: a service started a minute
    after its port was chosen could find it taken ("address already in use").
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(max(1024, low - 12000), low))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
