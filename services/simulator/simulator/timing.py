"""How long an RS485 bus is busy for one request: the serial-timing model.

Pure arithmetic, so a simulated bus is exactly as slow as a real one and the benchmark can
compute the field's physical maximum with the same function the simulator sleeps by.
"""

from __future__ import annotations

from dataclasses import dataclass

# Modbus-RTU defines the silent interval with 11-bit characters whatever the framing,
# and fixes it at 1.75 ms above 19200 baud (the spec's own rule).
T35_FAST_SECONDS = 0.00175
T35_CHAR_BITS = 11
FAST_BAUD = 19200
FRAMING_BITS = {"8N1": 10, "8E1": 11, "8O1": 11, "8N2": 11}


@dataclass(frozen=True)
class SerialLine:
    """One RS485 bus as seen from its DTU: line speed, framing, meter and network delays."""

    baud: int = 9600
    framing: str = "8N1"
    turnaround_seconds: float = 0.030  # the meter's own think time before it answers
    network_rtt_seconds: float = 0.0  # a cellular DTU adds one round trip per request

    def __post_init__(self) -> None:
        if self.baud <= 0:
            raise ValueError("baud must be positive")
        if self.framing not in FRAMING_BITS:
            raise ValueError(f"framing must be one of {sorted(FRAMING_BITS)}")
        if self.turnaround_seconds < 0 or self.network_rtt_seconds < 0:
            raise ValueError("delays cannot be negative")

    @property
    def bits_per_char(self) -> int:
        return FRAMING_BITS[self.framing]

    def t35_seconds(self) -> float:
        """Return the silent interval that ends a frame on this line."""
        if self.baud > FAST_BAUD:
            return T35_FAST_SECONDS
        return 3.5 * T35_CHAR_BITS / self.baud

    def wire_seconds(self, byte_count: int) -> float:
        """Return the time ``byte_count`` characters take on the line."""
        return byte_count * self.bits_per_char / self.baud

    def exchange_seconds(self, request_bytes: int, response_bytes: int) -> float:
        """Return how long one request and its answer hold the bus (0 reply bytes: silence).

        A silent meter frees the bus after the request and its gap; the master's timeout,
        not the bus, is what the waiting then costs.
        """
        seconds = self.wire_seconds(request_bytes) + self.t35_seconds() + self.network_rtt_seconds
        if response_bytes:
            seconds += (
                self.turnaround_seconds + self.wire_seconds(response_bytes) + self.t35_seconds()
            )
        return seconds


def rtu_read_bytes(count: int) -> tuple[int, int]:
    """Return (request, response) RTU bytes of an FC03/FC04 read of ``count`` registers."""
    # request: address, function, start (2), count (2), CRC (2)
    # response: address, function, byte count, 2 x count, CRC (2)
    return 8, 5 + 2 * count


def read_seconds(line: SerialLine, counts: list[int] | tuple[int, ...]) -> float:
    """Return the bus time of one meter's poll made of reads of these register counts."""
    return sum(line.exchange_seconds(*rtu_read_bytes(count)) for count in counts)
