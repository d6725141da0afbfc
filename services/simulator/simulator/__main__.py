"""Run the field simulator: ``python -m simulator --dtus 10 --meters 8 --speed 60``.

Prints the DTU list as JSON (each entry is a collector registration body) and serves
until SIGTERM or SIGINT. Client-mode DTUs dial ``--target``; ``--baud`` makes every bus as
slow as a real RS485 line; the ``--silent-share`` family injects faults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from collections.abc import Sequence

from prepaid_common.service import install_stop_signals

from simulator.dtu import DTU_KINDS, REGISTRATION_MODES
from simulator.faults import FaultPlan
from simulator.field import DEFAULT_PROFILE_MIX, FieldSimulator
from simulator.timing import FRAMING_BITS, SerialLine


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


def parse_endpoint(text: str) -> tuple[str, int]:
    """Parse ``host:port``."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host, int(port)


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
        help="weights, e.g. reference-prepaid=8,acrel-ddsy1352=1,dlt645-2007=1",
    )
    dtus = parser.add_argument_group("DTU kinds")
    dtus.add_argument(
        "--kind-mix",
        type=parse_mix,
        default={"modbus-tcp": 1.0},
        help=f"DTU kind weights among {', '.join(DTU_KINDS)} (default modbus-tcp=1)",
    )
    dtus.add_argument(
        "--target", type=parse_endpoint, help="host:port client-mode DTUs dial (the collector)"
    )
    dtus.add_argument(
        "--registration-mode",
        choices=REGISTRATION_MODES,
        default="once",
        help="client mode: LOGIN:<id> once on connect, before every packet, or both",
    )
    dtus.add_argument("--heartbeat-seconds", type=float, default=30.0, help="client mode: HB idle")
    dtus.add_argument(
        "--reconnect-seconds", type=float, default=1.0, help="client mode: wait after a drop"
    )
    line = parser.add_argument_group("serial timing (off unless --baud is given)")
    line.add_argument("--baud", type=int, help="RS485 line speed of every bus, e.g. 9600")
    line.add_argument("--framing", choices=sorted(FRAMING_BITS), default="8N1")
    line.add_argument("--turnaround-ms", type=float, default=30.0, help="meter think time")
    line.add_argument("--network-rtt-ms", type=float, default=0.0, help="cellular round trip")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--silent-share", type=float, default=0.0, help="share of dead meters")
    faults.add_argument(
        "--silent-meters", default="", help="comma-separated meter ids that never answer"
    )
    faults.add_argument("--crc-error-rate", type=float, default=0.0, help="per reply")
    faults.add_argument("--wrong-address-rate", type=float, default=0.0, help="per reply")
    faults.add_argument("--slow-reply-rate", type=float, default=0.0, help="per reply")
    faults.add_argument("--slow-reply-seconds", type=float, default=2.0)
    faults.add_argument("--flapping-dtus", type=int, default=0, help="DTUs that drop and return")
    faults.add_argument("--flap-every-seconds", type=float, default=60.0)
    faults.add_argument("--flap-down-seconds", type=float, default=5.0)
    faults.add_argument("--clock-drift-ppm", type=float, default=0.0, help="at most, either way")
    faults.add_argument("--reset-share", type=float, default=0.0, help="registers that reset")
    faults.add_argument("--reset-after-seconds", type=float, default=3600.0, help="simulated")
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> FieldSimulator:
    """Build the field the arguments describe (ValueError on a contradiction)."""
    line = None
    if args.baud:
        line = SerialLine(
            baud=args.baud,
            framing=args.framing,
            turnaround_seconds=args.turnaround_ms / 1000,
            network_rtt_seconds=args.network_rtt_ms / 1000,
        )
    plan = FaultPlan(
        silent_share=args.silent_share,
        silent_meters=tuple(m.strip() for m in args.silent_meters.split(",") if m.strip()),
        crc_error_rate=args.crc_error_rate,
        wrong_address_rate=args.wrong_address_rate,
        slow_reply_rate=args.slow_reply_rate,
        slow_reply_seconds=args.slow_reply_seconds,
        flapping_dtus=args.flapping_dtus,
        flap_every_seconds=args.flap_every_seconds,
        flap_down_seconds=args.flap_down_seconds,
        clock_drift_ppm=args.clock_drift_ppm,
        reset_share=args.reset_share,
        reset_after_seconds=args.reset_after_seconds,
    )
    return FieldSimulator(
        args.dtus,
        args.meters,
        host=args.host,
        base_port=args.base_port,
        speed=args.speed,
        seed=args.seed,
        profile_mix=args.profile_mix,
        kind_mix=args.kind_mix,
        line=line,
        target=args.target,
        registration_mode=args.registration_mode,
        heartbeat_seconds=args.heartbeat_seconds,
        reconnect_seconds=args.reconnect_seconds,
        faults=plan,
    )


def raise_file_limit() -> None:
    """Allow as many sockets as the hard limit: a city's DTUs need thousands."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(args: argparse.Namespace) -> None:
    simulator = build(args)
    stop = asyncio.Event()
    install_stop_signals(stop)
    async with simulator:
        json.dump([dtu.registration() for dtu in simulator.dtus], sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    raise_file_limit()
    try:
        asyncio.run(serve(args))
    except ValueError as error:
        sys.exit(f"simulator: {error}")


if __name__ == "__main__":
    main()
