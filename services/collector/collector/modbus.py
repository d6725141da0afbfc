"""The Modbus TCP gateway adapter (MBAP): one connection to one DTU, one request in flight.

The frames are few and fixed (read 03/04, write 06, write 16), so the link speaks MBAP
itself over an asyncio protocol rather than through pymodbus's client: the collector's CPU
per read is what decides how many meters one process keeps fresh, and the general client's
transaction manager costs more than the rest of a poll (docs/benchmarks.md). The framing
is pure (``domain.mbap``); every reply is checked against its request (transaction id,
unit id, function, byte count) before a register counts, and a reply to a request that
timed out is recognised by its transaction id and dropped.
"""

from __future__ import annotations

import asyncio

from collector.domain import dlt645, mbap
from collector.domain.planning import ReadBlock
from collector.links import LinkDown, MeterGarbled, MeterRefused, MeterSilent, RequestGap

__all__ = ["LinkDown", "MeterRefused", "MeterSilent", "ModbusLink"]


class _MbapProtocol(asyncio.Protocol):
    """Splits the byte stream into MBAP frames and hands the awaited one to its request."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: str | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[bytes] | None = None
        self._transaction = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def expect(self, transaction: int) -> asyncio.Future[bytes]:
        # Bytes already buffered may be the start of a late reply: it completes and is
        # dropped by its transaction id.
        self._transaction = transaction
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def data_received(self, data: bytes) -> None:
        if not self._buffer and mbap.whole_frame(data):
            # The usual case, one reply in one segment: no copy through the buffer.
            waiter = self._waiter
            if (
                waiter is not None
                and not waiter.done()
                and mbap.transaction_of(data) == self._transaction
            ):
                waiter.set_result(data)
            return
        self._buffer += data
        while True:
            try:
                frame = mbap.take_frame(self._buffer)
            except mbap.Garbled as error:
                self._buffer.clear()
                self._fail(MeterGarbled(f"garbled reply: {error}"))
                return
            if frame is None:
                return
            waiter = self._waiter
            # Any other frame answers a request that already timed out: dropped.
            if (
                waiter is not None
                and not waiter.done()
                and mbap.transaction_of(frame) == self._transaction
            ):
                waiter.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = str(exc) if exc else "connection closed by the DTU"
        self._fail(LinkDown(self.lost))

    def _fail(self, error: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)


_EARLY = 0.001  # seconds


def _expire(reply: asyncio.Future[bytes]) -> None:
    if not reply.done():
        reply.set_exception(MeterSilent("no reply"))


class ModbusLink:
    """One MBAP connection to a gateway; reconnection is the caller's decision."""

    def __init__(self, host: str, port: int, *, timeout: float, gap: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.dial_to = (host, port)
        self._timeout = timeout
        self._gap = RequestGap(gap)
        self._protocol: _MbapProtocol | None = None
        self._transaction = 0
        # Each block's request PDU, built once: a bus reads the same block every poll.
        self._read_pdus: dict[tuple[int, int, int], bytes] = {}
        # The reply awaited, when it times out (loop time), and the one timer that watches
        # it: re-armed when it fires early, not made and cancelled for every request.
        self._awaited: asyncio.Future[bytes] | None = None
        self._deadline = 0.0
        self._watch: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        protocol = self._protocol
        return (
            protocol is not None
            and protocol.lost is None
            and protocol.transport is not None
            and not protocol.transport.is_closing()
        )

    async def connect(self) -> None:
        """Open the connection; raise LinkDown if the DTU cannot be reached."""
        if self.connected:
            return
        self.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                _transport, protocol = await loop.create_connection(
                    _MbapProtocol, self.host, self.port
                )
        except (OSError, TimeoutError) as error:
            reason = error or "timed out"
            raise LinkDown(f"cannot connect to {self.host}:{self.port}: {reason}") from None
        self._protocol = protocol

    def close(self) -> None:
        """Close the connection (idempotent)."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    async def read(self, unit_id: int, function: int, block: ReadBlock) -> list[int]:
        """Read one block of holding (03) or input (04) registers."""
        key = (function, block.address, block.count)
        pdu = self._read_pdus.get(key)
        if pdu is None:
            pdu = self._read_pdus[key] = mbap.read_request(function, block.address, block.count)
        reply = await self._call(unit_id, pdu)
        try:
            return mbap.read_reply(reply, function=function, count=block.count)
        except mbap.Garbled as error:
            raise MeterGarbled(f"garbled reply: {error}") from None

    async def write(self, unit_id: int, address: int, value: int) -> None:
        """Write one holding register (function 06); the meter echoes the request."""
        pdu = mbap.write_request(address, value)
        if await self._call(unit_id, pdu) != pdu:
            raise MeterGarbled("write 06 was not echoed")

    async def write_many(self, unit_id: int, address: int, values: list[int]) -> None:
        """Write consecutive holding registers (function 16)."""
        pdu = mbap.write_many_request(address, values)
        if await self._call(unit_id, pdu) != pdu[:5]:
            raise MeterGarbled("write 16 reply does not name the registers written")

    async def dlt645(self, frame: bytes, *, reply: bool = True) -> dlt645.Frame | None:
        """A gateway converts MBAP to RTU: it cannot carry DL/T 645 (registration refuses it)."""
        raise MeterSilent("DL/T 645 needs a transparent link, not a Modbus TCP gateway")

    def _check_deadline(self) -> None:
        """The watch fired: expire the awaited reply if its time is up, else wait on."""
        self._watch = None
        reply = self._awaited
        if reply is None or reply.done():
            return  # idle: the next request arms the watch again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline - _EARLY:  # the loop may run a timer this early
            _expire(reply)
        else:
            self._watch = loop.call_at(self._deadline, self._check_deadline)

    async def _call(self, unit_id: int, pdu: bytes) -> bytes:
        """Send one request; return the reply's PDU (exceptions raised as MeterRefused)."""
        protocol = self._protocol
        if protocol is None or not self.connected or protocol.transport is None:
            raise LinkDown("not connected")
        gap = self._gap
        if gap.seconds > 0:
            await gap.wait()
        try:
            self._transaction = (self._transaction + 1) & 0xFFFF
            reply = protocol.expect(self._transaction)
            protocol.transport.write(mbap.frame(self._transaction, unit_id, pdu))
            # No timeout scope and no timer per request (this runs for every request on
            # every bus): the link's one watch expires the reply at its deadline.
            loop = asyncio.get_running_loop()
            self._awaited, self._deadline = reply, loop.time() + self._timeout
            if self._watch is None:
                self._watch = loop.call_at(self._deadline, self._check_deadline)
            try:
                frame = await reply
            finally:
                self._awaited = None
        finally:
            if gap.seconds > 0:
                gap.done()
        if mbap.unit_of(frame) != unit_id:
            # A gateway must answer for the unit asked: a neighbour's registers never pass.
            raise MeterGarbled(f"reply from unit {mbap.unit_of(frame)}, asked {unit_id}")
        answer = mbap.pdu_of(frame)
        if answer[0] == pdu[0] | 0x80:
            raise MeterRefused(answer[1] if len(answer) > 1 else 0)
        if answer[0] != pdu[0]:
            raise MeterGarbled(f"reply to function {answer[0]}, asked {pdu[0]}")
        return answer
