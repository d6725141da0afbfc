"""One simulated RS485 bus: who answers a request, what the line does to it, how long it takes.

Every DTU kind puts its requests on a bus; the bus is busy for exactly the time the serial
model says, one request at a time, so a fast client cannot read a bus faster than a real one.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

from simulator import dlt645
from simulator.faults import MeterFaults
from simulator.meter import SimulatedMeter
from simulator.modbus import handle_request
from simulator.rtu import crc_ok, request_length, rtu_frame
from simulator.timing import SerialLine

GATEWAY_TARGET_FAILED = 0x0B  # what a Modbus TCP gateway answers when the bus reply was bad


class Rs485Bus:
    """The meters on one bus, their faults, and the line's timing."""

    def __init__(
        self,
        meters: Sequence[SimulatedMeter],
        *,
        line: SerialLine | None = None,
        rng: random.Random | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.meters = list(meters)
        self._now = now
        self.line = line
        self.by_unit = {m.unit_id: m for m in self.meters if m.address is None}
        self.by_address: dict[str, SimulatedMeter] = {}
        for meter in self.meters:
            if meter.address is not None:
                self.by_address[meter.address] = meter
        # Only misbehaving meters are listed, so a healthy request costs one dict miss.
        self.faults: dict[str, MeterFaults] = {}
        self.counters: Counter[str] = Counter()
        self._rng = rng or random.Random(0)
        self._free_at = 0.0
        self._extra = 0.0  # slow-reply delay of the last raw answer

    # --- timing ---------------------------------------------------------------------------
    def reserve(self, request_bytes: int, response_bytes: int, extra: float = 0.0) -> float:
        """Book this exchange on the line; return the seconds until its reply is complete.

        Booking the line's next free instant is the bus lock: exchanges never overlap, and
        a request that arrives while another is on the line waits for it.
        """
        if self.line is None and not extra:
            return 0.0
        now = self._now()
        busy = self.line.exchange_seconds(request_bytes, response_bytes) if self.line else 0.0
        self._free_at = max(now, self._free_at) + busy + extra
        return self._free_at - now

    # --- Modbus ---------------------------------------------------------------------------
    def modbus(self, unit_id: int, pdu: bytes) -> tuple[int, bytes, bool, float] | None:
        """Answer a Modbus PDU: (answering unit, reply PDU, garbled on the line, extra delay).

        None is silence: nobody at that address, a silent meter, or a broadcast.
        """
        meter = self.by_unit.get(unit_id)
        if meter is None:
            return None
        faults = self.faults.get(meter.meter_id) if self.faults else None
        garbled, delay = False, 0.0
        if faults is not None:
            if faults.silent:
                self.counters["silent"] += 1
                return None
            meter, garbled, delay = self._misbehave(meter, faults)
        reply = handle_request(meter, pdu)
        if not reply:
            return None
        self.counters["answered"] += 1
        return meter.unit_id, reply, garbled, delay

    def _misbehave(
        self, meter: SimulatedMeter, faults: MeterFaults
    ) -> tuple[SimulatedMeter, bool, float]:
        rng = self._rng
        delay = 0.0
        if faults.slow_reply_rate and rng.random() < faults.slow_reply_rate:
            self.counters["slow"] += 1
            delay = faults.slow_reply_seconds
        garbled = bool(faults.crc_error_rate) and rng.random() < faults.crc_error_rate
        if garbled:
            self.counters["crc_error"] += 1
        if faults.wrong_address_rate and rng.random() < faults.wrong_address_rate:
            neighbour = self._neighbour(meter)
            if neighbour is not None:
                self.counters["wrong_address"] += 1
                meter = neighbour
        return meter, garbled, delay

    def _neighbour(self, meter: SimulatedMeter) -> SimulatedMeter | None:
        same_protocol = [
            m
            for m in self.meters
            if m is not meter and (m.address is None) == (meter.address is None)
        ]
        return self._rng.choice(same_protocol) if same_protocol else None

    # --- raw streams (serial device servers, client-mode DTUs) ----------------------------
    def take_raw(self, buffer: bytearray) -> tuple[int, bytes | None, int]:
        """Consume one request from a raw byte stream and answer it.

        Returns (bytes used, reply frame or None, request bytes on the wire); 0 bytes used
        means the request is not complete yet. Bad frames are dropped, as a meter ignores
        what it cannot check. The caller waits for the line before sending the reply.
        """
        if dlt645.looks_like_frame(buffer):
            used, frame = dlt645.decode_frame(buffer)
            if used and frame is not None:
                return used, self._dlt645(frame), used
            if used or len(buffer) < 64:
                return used, None, used
            # No DL/T 645 frame completes: take it as Modbus after all.
        length = request_length(buffer)
        if length is None:
            return 0, None, 0
        frame_bytes = bytes(buffer[:length])
        if not crc_ok(frame_bytes) or frame_bytes[0] == 0:
            return length, None, length  # garbled request, or a broadcast: no reply
        answer = self.modbus(frame_bytes[0], frame_bytes[1:-2])
        if answer is None:
            return length, None, length
        unit, pdu, garbled, delay = answer
        reply = rtu_frame(unit, pdu)
        if garbled:
            reply = _flip_bit(reply, self._rng)
        self._extra = delay
        return length, reply, length

    def take_extra_delay(self) -> float:
        """Return (and forget) the slow-reply delay of the last answer from ``take_raw``."""
        extra, self._extra = self._extra, 0.0
        return extra

    def _dlt645(self, frame: dlt645.Dlt645Frame) -> bytes | None:
        meter = self.by_address.get(frame.address)
        faults = self.faults.get(meter.meter_id) if meter is not None and self.faults else None
        garbled = False
        if meter is not None and faults is not None:
            if faults.silent:
                self.counters["silent"] += 1
                return None
            answering, garbled, self._extra = self._misbehave(meter, faults)
            if answering is not meter:
                # The neighbour answers the same identifier with its own address and data.
                assert answering.address is not None
                frame = dlt645.Dlt645Frame(answering.address, frame.control, frame.data)
        replies = dlt645.answer(self.by_address, frame)
        if not replies:
            return None
        self.counters["answered"] += 1
        reply = replies[0]
        return _flip_bit(reply, self._rng) if garbled else reply


def _flip_bit(frame: bytes, rng: random.Random) -> bytes:
    """Flip one bit near the end of the data (not the CRC or checksum), as line noise does."""
    # The last bytes before the trailer are data in both RTU and DL/T 645 replies.
    index = rng.randrange(max(1, len(frame) - 10), len(frame) - 2)
    flipped = bytearray(frame)
    flipped[index] ^= 1 << rng.randrange(8)
    return bytes(flipped)
