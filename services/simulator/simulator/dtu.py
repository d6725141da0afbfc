"""Simulated DTUs of the three kinds a site has, each in front of one RS485 bus.

- ``modbus-tcp``: a Modbus TCP gateway we dial (MBAP; unit id = RS485 address);
- ``rtu-over-tcp``: a serial device server in transparent mode we dial (raw RTU frames);
- ``dtu-client``: a cellular DTU that dials the collector, registers, sends heartbeats, and
  passes raw frames (Modbus-RTU or DL/T 645) to its bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Any, Literal

from simulator.bus import GATEWAY_TARGET_FAILED, Rs485Bus
from simulator.faults import DtuFaults
from simulator.meter import SimulatedMeter
from simulator.modbus import MAX_MBAP_LENGTH, MBAP_HEADER, MBAP_PROTOCOL, mbap_frame
from simulator.timing import SerialLine

log = logging.getLogger(__name__)

DtuKind = Literal["modbus-tcp", "rtu-over-tcp", "dtu-client"]
DTU_KINDS: tuple[DtuKind, ...] = ("modbus-tcp", "rtu-over-tcp", "dtu-client")
RegistrationMode = Literal["once", "prefix", "both"]
REGISTRATION_MODES: tuple[RegistrationMode, ...] = ("once", "prefix", "both")
HEARTBEAT = b"HB"
# A raw stream that never forms a frame is noise: drop it rather than buffer forever.
MAX_RAW_BUFFER = 1024


class SimulatedDtu:
    """One DTU and its bus. A unit id with no meter behind it gets no reply, as on a bus."""

    def __init__(
        self,
        dtu_id: str,
        meters: Sequence[SimulatedMeter],
        *,
        host: str,
        port: int,
        kind: DtuKind = "modbus-tcp",
        line: SerialLine | None = None,
        registration_packet: bytes | None = None,
        registration_mode: RegistrationMode = "once",
        heartbeat_seconds: float = 30.0,
        reconnect_seconds: float = 1.0,
        faults: DtuFaults | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if kind not in DTU_KINDS:
            raise ValueError(f"kind must be one of {DTU_KINDS}")
        if registration_mode not in REGISTRATION_MODES:
            raise ValueError(f"registration_mode must be one of {REGISTRATION_MODES}")
        if heartbeat_seconds <= 0 or reconnect_seconds < 0:
            raise ValueError("heartbeat_seconds must be positive, reconnect_seconds not negative")
        if kind == "modbus-tcp" and any(m.address is not None for m in meters):
            raise ValueError(f"{dtu_id}: a Modbus TCP gateway cannot carry DL/T 645 meters")
        self.dtu_id = dtu_id
        self.kind: DtuKind = kind
        # For a client-mode DTU, host and port are the endpoint it dials (its target).
        self.host = host
        self.port = port
        self.meters = list(meters)
        self.bus = Rs485Bus(self.meters, line=line, rng=rng or random.Random(dtu_id))
        self.registration_packet = registration_packet or f"LOGIN:{dtu_id}".encode()
        self.registration_mode: RegistrationMode = registration_mode
        self.heartbeat_seconds = heartbeat_seconds
        self.reconnect_seconds = reconnect_seconds
        self.faults = faults or DtuFaults()
        self.requests_answered = 0
        self.connects = 0  # client mode: how many times it got through to its target
        self._server: asyncio.Server | None = None
        self._dialer: asyncio.Task[None] | None = None
        self._connections: set[BusConnection] = set()

    # --- what others see ------------------------------------------------------------------
    @property
    def target(self) -> tuple[str, int] | None:
        """The endpoint a client-mode DTU dials; None for the kinds we dial."""
        return (self.host, self.port) if self.kind == "dtu-client" else None

    @property
    def line(self) -> SerialLine | None:
        return self.bus.line

    @property
    def running(self) -> bool:
        return self._server is not None or self._dialer is not None

    @property
    def connected(self) -> bool:
        """Whether a TCP connection is open right now (either direction)."""
        return bool(self._connections)

    def registration(self) -> dict[str, Any]:
        """Describe the DTU as the collector's ``POST /internal/dtus`` body expects it."""
        body: dict[str, Any] = {"id": self.dtu_id, "name": f"Simulated {self.dtu_id}"}
        if self.kind != "modbus-tcp":
            body["kind"] = self.kind
        if self.kind == "dtu-client":
            body["registration"] = self.registration_packet.decode("ascii", "replace")
            # The collector strips a prefix wherever it comes; "both" starts with one too.
            body["registration_mode"] = "once" if self.registration_mode == "once" else "prefix"
            body["heartbeat"] = HEARTBEAT.decode()
            # Three missed heartbeats mean a dead link.
            body["link_timeout_seconds"] = 3 * self.heartbeat_seconds
        else:
            body["host"] = self.host
            body["port"] = self.port
        body["meters"] = [_meter_registration(meter) for meter in self.meters]
        return body

    # --- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (again on the same port after a stop), or start dialling the target."""
        if self.kind == "dtu-client":
            if self._dialer is None:
                self._dialer = asyncio.create_task(self._dial(), name=f"dtu-{self.dtu_id}")
            return
        if self._server is not None:
            return
        framing: Framing = "mbap" if self.kind == "modbus-tcp" else "raw"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: BusConnection(self, framing), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening or dialling and drop every connection, like losing power."""
        server, self._server = self._server, None
        dialer, self._dialer = self._dialer, None
        if server is not None:
            server.close()
        if dialer is not None:
            dialer.cancel()
        await self.drop_connections()
        if dialer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await dialer
        if server is not None:
            await server.wait_closed()

    async def drop_connections(self) -> None:
        """Close the open connections but keep serving (a link that breaks and comes back)."""
        for connection in list(self._connections):
            connection.close()
        for connection in list(self._connections):
            await connection.wait_closed()

    async def _dial(self) -> None:
        """Connect to the target, register, serve; after a drop wait and dial again."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                _transport, connection = await loop.create_connection(
                    lambda: BusConnection(self, "raw", dialled=True), self.host, self.port
                )
            except OSError:
                await asyncio.sleep(self.reconnect_seconds)
                continue
            self.connects += 1
            await connection.wait_closed()
            await asyncio.sleep(self.reconnect_seconds)


Framing = Literal["mbap", "raw"]


class BusConnection(asyncio.Protocol):
    """One TCP connection to a DTU: requests in, each reply out once the bus has carried it.

    A protocol rather than a stream coroutine: a request costs one callback and, with a
    timed line, one timer, which keeps thousands of DTUs cheap in one process.
    """

    def __init__(self, dtu: SimulatedDtu, framing: Framing, *, dialled: bool = False) -> None:
        self._dtu = dtu
        self._bus = dtu.bus
        self._mbap = framing == "mbap"
        self._dialled = dialled
        # A DTU set to "prefix" puts its registration before every packet it sends.
        self._prefix = (
            dtu.registration_packet if dialled and dtu.registration_mode != "once" else b""
        )
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._last_traffic = self._loop.time()
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._dtu._connections.add(self)
        if self._dialled:
            if self._dtu.registration_mode in ("once", "both"):
                transport.write(self._dtu.registration_packet)
            self._arm_heartbeat(self._dtu.heartbeat_seconds)

    def connection_lost(self, exc: Exception | None) -> None:
        self._dtu._connections.discard(self)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._last_traffic = self._loop.time()
        self._buffer += data
        if self._mbap:
            self._take_mbap()
        else:
            self._take_raw()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        """Wait for the connection to be gone (shielded: a cancelled waiter leaves it be)."""
        await asyncio.shield(self.closed)

    # --- requests -------------------------------------------------------------------------
    def _take_mbap(self) -> None:
        buffer, bus = self._buffer, self._bus
        while len(buffer) >= MBAP_HEADER.size:
            transaction_id, protocol, length, unit_id = MBAP_HEADER.unpack_from(buffer)
            if not 2 <= length <= MAX_MBAP_LENGTH:
                self.close()  # not Modbus: drop the connection as a gateway would
                return
            end = 6 + length
            if len(buffer) < end:
                return
            pdu = bytes(buffer[MBAP_HEADER.size : end])
            del buffer[:end]
            if protocol != MBAP_PROTOCOL:
                continue
            answer = bus.modbus(unit_id, pdu)
            # On the bus the gateway sends address + PDU + CRC and gets the same back.
            request_bytes = len(pdu) + 3
            if answer is None:
                bus.reserve(request_bytes, 0)
                continue
            unit, reply, garbled, delay = answer
            wait = bus.reserve(request_bytes, len(reply) + 3, delay)
            if garbled:
                # The gateway checks the bus CRC and reports the failure instead.
                unit, reply = unit_id, bytes([(pdu[0] | 0x80) & 0xFF, GATEWAY_TARGET_FAILED])
            self._send_after(wait, mbap_frame(transaction_id, unit, reply))

    def _take_raw(self) -> None:
        buffer, bus = self._buffer, self._bus
        while buffer:
            used, reply, request_bytes = bus.take_raw(buffer)
            if not used:
                break
            request = bytes(buffer[:used])
            del buffer[:used]
            faults = self._dtu.faults
            if faults.echo and self._transport is not None:
                # The converter hears its own transmission: the request comes back first.
                self._transport.write(self._prefix + request)
            if reply is None:
                bus.reserve(request_bytes, 0)
                continue
            wait = bus.reserve(request_bytes, len(reply), bus.take_extra_delay())
            reply = faults.stray_bytes + reply
            if faults.heartbeat_mid_reply:
                self._send_in_pieces(wait, reply)
            else:
                self._send_after(wait, self._prefix + reply)
        if len(buffer) > MAX_RAW_BUFFER:
            buffer.clear()

    def _send_in_pieces(self, wait: float, reply: bytes) -> None:
        """Send half the answer, the heartbeat, then the rest, each its own packet."""
        half = len(reply) // 2
        pieces = (reply[:half], HEARTBEAT, reply[half:])
        for index, piece in enumerate(pieces):
            # A few ms apart: TCP keeps them separate packets, as the DTU sent them.
            self._loop.call_later(max(wait, 0.0) + 0.02 * index, self._send, self._prefix + piece)

    def _send_after(self, wait: float, frame: bytes) -> None:
        if wait > 0:
            self._loop.call_later(wait, self._send, frame)
        else:
            self._send(frame)

    def _send(self, frame: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the link dropped while the bus was busy: the reply is lost
        self._dtu.requests_answered += 1
        self._last_traffic = self._loop.time()
        transport.write(frame)

    # --- heartbeats (client mode) ---------------------------------------------------------
    def _arm_heartbeat(self, after: float) -> None:
        self._heartbeat = self._loop.call_later(after, self._heartbeat_due)

    def _heartbeat_due(self) -> None:
        """Say ``HB`` once the link has been idle for the interval; check again later."""
        interval = self._dtu.heartbeat_seconds
        idle = self._loop.time() - self._last_traffic
        if idle >= interval * 0.999:
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(HEARTBEAT)
            self._last_traffic = self._loop.time()
            idle = 0.0
        self._arm_heartbeat(interval - idle)


def _meter_registration(meter: SimulatedMeter) -> dict[str, Any]:
    body: dict[str, Any] = {"id": meter.meter_id, "profile": meter.profile}
    # A DL/T 645 meter is known by its 12-digit address, a Modbus meter by its unit id.
    if meter.address is not None:
        body["address"] = meter.address
    else:
        body["unit_id"] = meter.unit_id
    body["base_load_kw"] = meter.base_load_kw
    return body
