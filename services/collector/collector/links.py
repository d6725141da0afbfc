"""Links to an RS485 bus: one TCP connection, one request in flight, whatever the DTU kind.

``modbus.ModbusLink`` speaks MBAP to a Modbus TCP gateway (``domain.mbap``). ``RawLink``
carries raw bytes: Modbus RTU frames with CRC or DL/T 645 frames, over a connection we dial (a
serial device server in transparent mode) or one a DTU in client mode opened to us. pymodbus
has no client for an accepted socket and no DL/T 645, so RawLink frames the bytes itself
(``domain.rtu``, ``domain.dlt645``) and strips the DTU's registrations and heartbeats
(``domain.stream``) before decoding.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from collector.domain import dlt645, rtu
from collector.domain.dlt645 import Frame as Dlt645Frame
from collector.domain.planning import ReadBlock
from collector.domain.stream import InboundStream

T = TypeVar("T")

# After a garbled reply, the rest of it may still be arriving: wait for this much quiet.
SETTLE_SECONDS = 0.05
# After a timeout, a late reply may still come; RTU has no transaction id to tell it from
# the next answer, so the next request first waits this long (at most) for the line to hush.
LATE_REPLY_SECONDS = 0.25


class LinkDown(Exception):
    """The TCP connection to the DTU could not be opened or broke."""


class MeterSilent(Exception):
    """No (usable) reply from the meter in time."""


class MeterGarbled(MeterSilent):
    """A reply came but is not the answer asked for (CRC, address, framing)."""


class MeterRefused(Exception):
    """The meter answered with an exception (Modbus) or its error flag (DL/T 645)."""

    def __init__(self, code: int, *, final: bool = False, detail: str = "") -> None:
        super().__init__(detail or f"meter answered exception {code:#04x}")
        self.code = code
        # Sending the same again cannot succeed (a wrong password: meters count those
        # toward a lock-out), so no retry.
        self.final = final


class BusLink(Protocol):
    """One bus behind one connection; callers never overlap requests."""

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None:
        """Open the connection; raise LinkDown if it cannot be."""

    def close(self) -> None:
        """Close the connection (idempotent)."""

    async def read(self, unit_id: int, function: int, block: ReadBlock) -> list[int]:
        """Read one block of holding (03) or input (04) registers."""

    async def write(self, unit_id: int, address: int, value: int) -> None:
        """Write one holding register (06)."""

    async def write_many(self, unit_id: int, address: int, values: list[int]) -> None:
        """Write consecutive holding registers (16)."""

    async def dlt645(self, frame: bytes, *, reply: bool = True) -> dlt645.Frame | None:
        """Send a DL/T 645 frame; return the frame that answers it (None if ``reply`` is off)."""


class RequestGap:
    """Keep a quiet gap between one request's end and the next one's start."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._done_at = -float("inf")

    async def wait(self) -> None:
        pause = self._done_at + self.seconds - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)

    def done(self) -> None:
        self._done_at = time.monotonic()


class RawLink:
    """Raw frames over TCP: a serial device server we dial, or a DTU that dialled us."""

    def __init__(
        self,
        *,
        timeout: float,
        gap: float = 0.0,
        dial: tuple[str, int] | None = None,
        stream: InboundStream | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.dial_to = dial
        self.stream = stream or InboundStream(registration=b"")
        self.last_traffic = time.monotonic()
        self.lost_reason = ""
        self._timeout = timeout
        self._gap = RequestGap(gap)
        self._on_lost = on_lost
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()
        self._late_reply_possible = False

    @property
    def connected(self) -> bool:
        return (
            self._writer is not None
            and not self._writer.is_closing()
            and self._pump is not None
            and not self._pump.done()
        )

    async def connect(self) -> None:
        if self.connected:
            return
        if self.dial_to is None:
            raise LinkDown(self.lost_reason or "waiting for the DTU to connect")
        host, port = self.dial_to
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as error:
            raise LinkDown(f"cannot connect to {host}:{port}: {error or 'timed out'}") from None
        self.adopt(reader, writer)

    def adopt(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: bytes = b""
    ) -> None:
        """Use this connection from now on; an older one is closed (the new socket wins)."""
        self.close()
        self.lost_reason = ""
        self.stream.clear()
        self.stream.feed(received)
        self.last_traffic = time.monotonic()
        self._writer = writer
        self._pump = asyncio.create_task(self._receive(reader, writer), name="collector-link-rx")

    def close(self, reason: str = "closed by the collector") -> None:
        writer, self._writer = self._writer, None
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
        if writer is not None:
            self.lost_reason = reason
            writer.close()
        self._arrived.set()

    def silent_for(self) -> float:
        """Seconds since the DTU last sent anything (a reply, a heartbeat, a registration)."""
        return time.monotonic() - self.last_traffic

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(4096):
                self.last_traffic = time.monotonic()
                self.stream.feed(chunk)
                self._arrived.set()
        except OSError:
            pass
        if writer is self._writer:
            self.lost_reason = "the DTU closed the connection"
            self._writer = None
            writer.close()
            self._arrived.set()
            if self._on_lost is not None:
                self._on_lost()

    # --- requests -------------------------------------------------------------------------
    async def read(self, unit_id: int, function: int, block: ReadBlock) -> list[int]:
        request = rtu.read_request(unit_id, function, block.address, block.count)
        return list((await self._modbus(request)).words)

    async def write(self, unit_id: int, address: int, value: int) -> None:
        await self._modbus(rtu.write_single_request(unit_id, address, value))

    async def write_many(self, unit_id: int, address: int, values: list[int]) -> None:
        await self._modbus(rtu.write_multiple_request(unit_id, address, values))

    async def _modbus(self, request: rtu.RtuRequest) -> rtu.RtuReply:
        reply = await self._transact(request.frame, lambda data: rtu.parse_reply(data, request))
        assert reply is not None
        if reply.exception_code is not None:
            raise MeterRefused(reply.exception_code)
        return reply

    async def dlt645(self, frame: bytes, *, reply: bool = True) -> dlt645.Frame | None:
        if not reply:
            await self._send(frame)
            self._gap.done()
            return None
        _used, request = dlt645.parse_frame(frame)
        assert request is not None
        await self._send(frame)
        problems: list[str] = []
        self.stream.heartbeat_inside_frames = True  # the frame's checksum guards the cut
        try:
            async with asyncio.timeout(self._timeout):
                return await self._dlt645_reply(request, problems)
        except TimeoutError:
            self._late_reply_possible = True
            if problems:
                raise MeterGarbled(f"garbled reply: {problems[-1]}") from None
            raise MeterSilent("no reply") from None
        finally:
            self.stream.heartbeat_inside_frames = False
            self._gap.done()

    async def _dlt645_reply(self, request: Dlt645Frame, problems: list[str]) -> Dlt645Frame:
        """Wait for the answer to ``request``, dropping what is not it.

        DL/T 645 frames carry the meter's address, so the parser resynchronises on the next
        ``68`` after stray bytes, drops a converter's echo of the request and drops a late
        answer from the meter polled before: none of them spoils this poll. A garbled frame
        or an answer from another address fails the poll (garbled, not silent) only if no
        good answer follows before the timeout.
        """
        while True:
            buffer = self.stream.buffer
            if buffer and not self.stream.awaiting_token:
                found = dlt645.scan(bytes(buffer))
                if found.garbled:
                    problems.append(found.garbled)
                if found.used:
                    self.stream.consume(found.used)
                if found.frame is not None:
                    if dlt645.is_reply_to(found.frame, request):
                        return found.frame
                    other = found.frame.address
                    if found.frame.control & dlt645.REPLY and other != request.address:
                        problems.append(f"reply from {other}, asked {request.address}")
                    continue  # an echo or a late answer: ours may still come
            if not self.connected:
                raise LinkDown(self.lost_reason or "connection closed")
            self._arrived.clear()
            await self._arrived.wait()

    async def _send(self, frame: bytes) -> None:
        if not self.connected or self._writer is None:
            raise LinkDown(self.lost_reason or "not connected")
        await self._gap.wait()
        if self._late_reply_possible:
            self._late_reply_possible = False
            await self._quiet(min(LATE_REPLY_SECONDS, self._timeout / 2))
        self.stream.clear()  # a late reply to an earlier request is not this one's
        try:
            self._writer.write(frame)
            await self._writer.drain()
        except OSError as error:
            self.close(f"send failed: {error}")
            raise LinkDown(f"send failed: {error}") from None

    async def _transact(
        self, frame: bytes, parse: Callable[[bytes], tuple[int, T | None]]
    ) -> T | None:
        await self._send(frame)
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    if self.stream.buffer and not self.stream.awaiting_token:
                        try:
                            used, result = parse(bytes(self.stream.buffer))
                        except (rtu.GarbledFrame, dlt645.GarbledFrame) as error:
                            await self._settle()
                            raise MeterGarbled(f"garbled reply: {error}") from None
                        if result is not None:
                            self.stream.consume(used)
                            return result
                    if not self.connected:
                        raise LinkDown(self.lost_reason or "connection closed")
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            self._late_reply_possible = True
            raise MeterSilent("no reply") from None
        finally:
            self._gap.done()

    async def _settle(self) -> None:
        """Let the rest of a garbled reply arrive and drop it, so it cannot spoil the next."""
        await self._quiet(SETTLE_SECONDS)

    async def _quiet(self, window: float) -> None:
        """Wait until nothing has arrived for ``window`` (a babbling line: one timeout)."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            self._arrived.clear()
            try:
                async with asyncio.timeout(window):
                    await self._arrived.wait()
            except TimeoutError:
                break
        self.stream.clear()
