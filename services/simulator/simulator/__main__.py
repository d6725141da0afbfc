"""Run the field simulator: ``python -m simulator --dtus 10 --meters 8 --speed 60``.

Prints the DTU list as JSON (each entry is a collector registration body) and serves
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from prepaid_common.service import install_stop_signals

from simulator.field import DEFAULT_PROFILE_MIX, FieldSimulator


def parse_mix(text: str) -> dict[str, float]:
    """Parse ``reference-prepaid=8,eastron-sdm120=2`` into weights."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad weight in {part!r}") from None
    return mix


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="simulator", description=__doc__)
    parser.add_argument("--dtus", type=int, default=1, help="number of DTUs (default 1)")
    parser.add_argument("--meters", type=int, default=8, help="meters per DTU (default 8)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--base-port", type=int, default=0, help="first DTU's port, the next +1 (0: any free)"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated time speed-up")
    parser.add_argument("--seed", type=int, default=1, help="seed of loads and profiles")
    parser.add_argument(
        "--profile-mix",
        type=parse_mix,
        default=dict(DEFAULT_PROFILE_MIX),
        help="weights, e.g. reference-prepaid=8,acrel-ddsy1352=1,eastron-sdm120=1",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    simulator = FieldSimulator(
        args.dtus,
        args.meters,
        host=args.host,
        base_port=args.base_port,
        speed=args.speed,
        seed=args.seed,
        profile_mix=args.profile_mix,
    )
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with simulator:
        json.dump([dtu.registration() for dtu in simulator.dtus], sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except ValueError as error:
        sys.exit(f"simulator: {error}")


if __name__ == "__main__":
    main()
