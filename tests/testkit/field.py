"""A tiny fake field for collector tests: meters on one RS485 bus, reached three ways.

``FakeBus`` answers raw Modbus RTU and DL/T 645-2007 request bytes the way meters would,
with faults on demand (silence, a garbled CRC, a reply from the wrong address).
``serve_raw`` puts a bus behind a TCP port as a serial device server in transparent mode;
``DialInDtu`` is a DTU in client mode that dials the collector's listener, registers
(``LOGIN:<id>`` once, or before every packet) and sends ``HB`` heartbeats when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from collector.domain import dlt645
from collector.domain.rtu import crc16, with_crc

Fault = Literal["none", "silent", "garbled", "wrong_address"]


@dataclass
class ModbusMeter:
    """The reference prepaid profile's registers: energy, V, A, W, relay state and command."""

    unit: int
    energy_hundredths: int = 123_456
    relay_open: bool = False
    fault: Fault = "none"
    clock: datetime | None = None
    serial: int = 0  # 0: the unit id's number (UINT32 at 0x0050, the profile's identity)

    def registers(self) -> dict[int, int]:
        words = dict.fromkeys(range(0x0000, 0x0016), 0)
        words[0x0000], words[0x0001] = divmod(self.energy_hundredths, 0x10000)
        words[0x000A], words[0x000B] = 2305, 512
        words[0x000C], words[0x000D] = 0, 0 if self.relay_open else 1180
        words[0x0010] = 1 if self.relay_open else 0
        if self.clock is not None:
            c = self.clock
            for offset, value in enumerate((c.year, c.month, c.day, c.hour, c.minute, c.second)):
                words[0x0020 + offset] = value
        words[0x0050], words[0x0051] = divmod(self.serial or 1_000_000 + self.unit, 0x10000)
        return words


@dataclass
class Dlt645Meter:
    """A DL/T 645-2007 meter: forward energy, status word 3, clock, remote control."""

    address: str
    energy_kwh: Decimal = Decimal("2345.67")
    relay_open: bool = False
    clock_offset: timedelta = timedelta(0)
    fault: Fault = "none"
    broadcast_sets: int = 0

    def now(self) -> datetime:
        return (datetime.now() + self.clock_offset).replace(microsecond=0)


@dataclass
class FakeBus:
    """The meters behind one DTU; ``requests`` counts what reached the bus."""

    modbus: dict[int, ModbusMeter] = field(default_factory=dict)
    dlt645: dict[str, Dlt645Meter] = field(default_factory=dict)
    requests: int = 0
    connections: int = 0  # TCP connections a serial device server accepted

    def answer(self, request: bytes) -> bytes | None:
        """Return the reply bytes to one request frame, or None for silence."""
        self.requests += 1
        if request[:1] in (b"\xfe", b"\x68"):
            return self._answer_dlt645(request)
        return self._answer_rtu(request)

    # --- Modbus RTU -------------------------------------------------------------------------
    def _answer_rtu(self, request: bytes) -> bytes | None:
        if len(request) < 8 or struct.unpack("<H", request[-2:])[0] != crc16(request[:-2]):
            return None
        unit, function = request[0], request[1]
        meter = self.modbus.get(unit)
        if meter is None or meter.fault == "silent":
            return None
        words = meter.registers()
        if function in (3, 4):
            address, count = struct.unpack(">HH", request[2:6])
            wanted = range(address, address + count)
            if any(a not in words for a in wanted):
                return _faulty(meter, bytes((unit, function | 0x80, 2)))
            body = bytes((unit, function, 2 * count)) + b"".join(
                struct.pack(">H", words[a]) for a in wanted
            )
            return _faulty(meter, body)
        if function == 6:
            address, value = struct.unpack(">HH", request[2:6])
            if address != 0x0011 or value not in (0x1A, 0x1B):
                return _faulty(meter, bytes((unit, 0x86, 3)))
            meter.relay_open = value == 0x1A
            return _faulty(meter, request[:6])
        if function == 16:
            address, count = struct.unpack(">HH", request[2:6])
            values = struct.unpack(f">{count}H", request[7 : 7 + 2 * count])
            if address == 0x0020 and count == 6:
                meter.clock = datetime(*values)
            return _faulty(meter, request[:6])
        return _faulty(meter, bytes((unit, function | 0x80, 1)))

    # --- DL/T 645 ---------------------------------------------------------------------------
    def _answer_dlt645(self, request: bytes) -> bytes | None:
        try:
            _used, frame = dlt645.parse_frame(request)
        except dlt645.GarbledFrame:
            return None
        if frame is None:
            return None
        if frame.address == dlt645.BROADCAST and frame.control == dlt645.BROADCAST_TIME:
            self._broadcast_time(frame.data)
            return None
        meter = self.dlt645.get(frame.address)
        if meter is None or meter.fault == "silent":
            return None
        if frame.control == dlt645.READ:
            identifier = int.from_bytes(frame.data[:4], "little")
            value = self._value(meter, identifier)
            if value is None:
                reply = dlt645.Frame(meter.address, 0xD1, b"\x02")
            else:
                reply = dlt645.Frame(meter.address, 0x91, frame.data[:4] + value)
        elif frame.control == dlt645.REMOTE_CONTROL:
            command = frame.data[8]
            meter.relay_open = command == dlt645.TRIP
            reply = dlt645.Frame(meter.address, 0x9C, b"")
        else:
            reply = dlt645.Frame(meter.address, frame.control | 0xC0, b"\x01")
        if meter.fault == "wrong_address":
            reply = dlt645.Frame(_other_address(meter.address), reply.control, reply.data)
        wire = dlt645.build_frame(reply)
        if meter.fault == "garbled":
            wire = wire[:-2] + bytes(((wire[-2] + 1) & 0xFF,)) + wire[-1:]
        return wire

    @staticmethod
    def _value(meter: Dlt645Meter, identifier: int) -> bytes | None:
        if identifier == dlt645.FORWARD_ENERGY:
            return dlt645.encode_energy(meter.energy_kwh)
        if identifier == dlt645.STATUS_WORD_3:
            return (0x0010 if meter.relay_open else 0).to_bytes(2, "little")
        date, time = dlt645.encode_clock(meter.now())
        return {dlt645.DATE: date, dlt645.TIME: time}.get(identifier)

    def _broadcast_time(self, data: bytes) -> None:
        second, minute, hour, day, month, year = (dlt645.bcd_number(bytes((b,))) for b in data)
        at = datetime(2000 + year, month, day, hour, minute, second)
        for meter in self.dlt645.values():
            # Meters take a broadcast time only within 10 minutes of their own clock.
            if abs((meter.now() - at).total_seconds()) <= 600:
                meter.clock_offset = at - datetime.now().replace(microsecond=0)
                meter.broadcast_sets += 1


def _faulty(meter: ModbusMeter, body: bytes) -> bytes:
    if meter.fault == "wrong_address":
        return with_crc(bytes(((meter.unit % 247) + 1,)) + body[1:])
    frame = with_crc(body)
    if meter.fault == "garbled":
        return frame[:-1] + bytes((frame[-1] ^ 0x5A,))
    return frame


def _other_address(address: str) -> str:
    return f"{(int(address) + 1) % 10**12:012d}"


async def _answer_frames(bus: FakeBus, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Yield a reply for each request read (one request in flight, as on RS485)."""
    while chunk := await reader.read(4096):
        reply = bus.answer(chunk)
        if reply is not None:
            yield reply


@asynccontextmanager
async def serve_raw(bus: FakeBus) -> AsyncIterator[tuple[str, int]]:
    """A serial device server in transparent mode: raw frames over TCP, on a free port."""
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        bus.connections += 1
        try:
            async for reply in _answer_frames(bus, reader):
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        await server.wait_closed()


class DialInDtu:
    """A DTU in client mode: dials the collector, registers, forwards frames, beats."""

    def __init__(
        self,
        dtu_id: str,
        bus: FakeBus,
        port: int,
        *,
        mode: Literal["once", "prefix"] = "once",
        heartbeat_seconds: float = 0.2,
        answer: bool = True,
    ) -> None:
        self.registration = f"LOGIN:{dtu_id}".encode()
        self.bus = bus
        self.port = port
        self.mode = mode
        self.heartbeat_seconds = heartbeat_seconds
        self.answer = answer
        self.heartbeats = True
        self.heartbeats_sent = 0
        self.closed_by_peer = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writer = writer
        self.closed_by_peer = asyncio.Event()
        writer.write(self.registration)
        await writer.drain()
        self._tasks = [
            asyncio.create_task(self._forward(reader, writer)),
            asyncio.create_task(self._beat(writer)),
        ]

    def _packet(self, payload: bytes) -> bytes:
        return self.registration + payload if self.mode == "prefix" else payload

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async for reply in _answer_frames(self.bus, reader):
                if self.answer:
                    writer.write(self._packet(reply))
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        self.closed_by_peer.set()

    async def _beat(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await asyncio.sleep(self.heartbeat_seconds)
                if self.heartbeats:
                    writer.write(self._packet(b"HB"))
                    await writer.drain()
                    self.heartbeats_sent += 1

    async def drop(self) -> None:
        """Close the connection from the DTU's side."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writer is not None:
            self._writer.close()

    async def abandon(self) -> None:
        """Stop talking but leave the socket open (the link died somewhere on the way)."""
        self.heartbeats = False
        self.answer = False
