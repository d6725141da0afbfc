"""Simulated DTUs (Modbus TCP gateways) serving their meters on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from simulator.clock import SimClock
from simulator.meter import SimulatedMeter
from simulator.modbus import MAX_MBAP_LENGTH, MBAP_HEADER, MBAP_PROTOCOL, handle_request, mbap_frame
from simulator.registers import PROFILE_NAMES

log = logging.getLogger(__name__)

DEFAULT_PROFILE_MIX: Mapping[str, float] = {
    "reference-prepaid": 0.8,
    "acrel-ddsy1352": 0.1,
    "eastron-sdm120": 0.1,
}


class SimulatedDtu:
    """A Modbus TCP gateway in front of one RS485 bus.

    A unit id with no meter behind it gets no reply at all, as on a real bus.
    """

    def __init__(self, dtu_id: str, meters: Sequence[SimulatedMeter], *, host: str, port: int):
        self.dtu_id = dtu_id
        self.host = host
        self.port = port
        self.meters = list(meters)
        self._by_unit = {meter.unit_id: meter for meter in self.meters}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.requests_answered = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen (again on the same port after a stop, so clients can reconnect)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection, like a gateway losing power."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._connections):
            writer.close()
        for writer in list(self._connections):
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()

    def registration(self) -> dict[str, Any]:
        """Describe the DTU as the collector's ``POST /internal/dtus`` body expects it."""
        return {
            "id": self.dtu_id,
            "name": f"Simulated {self.dtu_id}",
            "host": self.host,
            "port": self.port,
            "meters": [
                {
                    "id": meter.meter_id,
                    "unit_id": meter.unit_id,
                    "profile": meter.profile,
                    "base_load_kw": meter.base_load_kw,
                }
                for meter in self.meters
            ],
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                header = await reader.readexactly(MBAP_HEADER.size)
                transaction_id, protocol, length, unit_id = MBAP_HEADER.unpack(header)
                if not 2 <= length <= MAX_MBAP_LENGTH:
                    break  # not Modbus: drop the connection as a gateway would
                pdu = await reader.readexactly(length - 1)
                if protocol != MBAP_PROTOCOL:
                    continue
                reply = handle_request(self._by_unit.get(unit_id), pdu)
                if not reply:
                    continue
                self.requests_answered += 1
                writer.write(mbap_frame(transaction_id, unit_id, reply))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()


class FieldSimulator:
    """Many DTUs, each with a bus of meters, sharing one simulated clock."""

    def __init__(
        self,
        dtu_count: int,
        meters_per_dtu: int,
        *,
        host: str = "127.0.0.1",
        base_port: int = 0,
        speed: float = 1.0,
        seed: int = 1,
        profile_mix: Mapping[str, float] | None = None,
        start: datetime | None = None,
        clock: SimClock | None = None,
    ) -> None:
        if dtu_count < 1 or not 1 <= meters_per_dtu <= 247:
            raise ValueError("need at least one DTU and 1-247 meters per DTU")
        self.clock = clock or SimClock(speed=speed, start=start)
        rng = random.Random(seed)
        profiles = assign_profiles(profile_mix or DEFAULT_PROFILE_MIX, dtu_count * meters_per_dtu)
        rng.shuffle(profiles)
        self._dtus: list[SimulatedDtu] = []
        for index in range(dtu_count):
            dtu_id = f"DTU{index + 1:04d}"
            meters = [
                SimulatedMeter(
                    meter_id=f"{dtu_id}-{unit_id:02d}",
                    unit_id=unit_id,
                    profile=profiles[index * meters_per_dtu + unit_id - 1],
                    base_load_kw=round(rng.uniform(0.5, 5.0), 1),
                    clock=self.clock,
                    seed=seed,
                    initial_energy_kwh=round(rng.uniform(0.0, 2000.0), 2),
                )
                for unit_id in range(1, meters_per_dtu + 1)
            ]
            port = base_port + index if base_port else 0
            self._dtus.append(SimulatedDtu(dtu_id, meters, host=host, port=port))
        self._meters = {meter.meter_id: meter for dtu in self._dtus for meter in dtu.meters}

    @property
    def dtus(self) -> list[SimulatedDtu]:
        return list(self._dtus)

    def dtu(self, dtu_id: str) -> SimulatedDtu:
        """Return one DTU by id."""
        for dtu in self._dtus:
            if dtu.dtu_id == dtu_id:
                return dtu
        raise KeyError(dtu_id)

    def meter(self, meter_id: str) -> SimulatedMeter:
        """Return one meter by id (``DTU0001-03``)."""
        return self._meters[meter_id]

    async def start(self) -> None:
        """Open every DTU's listening socket."""
        try:
            for dtu in self._dtus:
                await dtu.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every DTU."""
        for dtu in self._dtus:
            await dtu.stop()

    async def __aenter__(self) -> FieldSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def assign_profiles(mix: Mapping[str, float], count: int) -> list[str]:
    """Share ``count`` meters among profiles by weight (largest remainder), in mix order."""
    unknown = set(mix) - set(PROFILE_NAMES)
    if unknown:
        raise ValueError(f"unknown profiles {sorted(unknown)}; known: {list(PROFILE_NAMES)}")
    total = sum(mix.values())
    if total <= 0 or any(weight < 0 for weight in mix.values()):
        raise ValueError("profile weights must be zero or more, and not all zero")
    quotas = {name: count * weight / total for name, weight in mix.items()}
    shares = {name: int(quota) for name, quota in quotas.items()}
    by_remainder = sorted(mix, key=lambda name: quotas[name] - shares[name], reverse=True)
    for name in by_remainder[: count - sum(shares.values())]:
        shares[name] += 1
    return [name for name, share in shares.items() for _ in range(share)]
