"""Faults a field has, injected per meter and per DTU so the collector can be tried on them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class MeterFaults:
    """How one meter misbehaves; rates are chances per request."""

    silent: bool = False  # dead meter or broken drop cable: never answers
    crc_error_rate: float = 0.0  # a bit flipped on the line after the CRC was computed
    wrong_address_rate: float = 0.0  # a neighbour answers instead (crosstalk, duplicate id)
    slow_reply_rate: float = 0.0
    slow_reply_seconds: float = 2.0  # longer than a collector's timeout: a late, stale reply

    def __post_init__(self) -> None:
        for rate in (self.crc_error_rate, self.wrong_address_rate, self.slow_reply_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError("fault rates are chances between 0 and 1")
        if self.slow_reply_seconds < 0:
            raise ValueError("slow_reply_seconds cannot be negative")

    @property
    def any(self) -> bool:
        return (
            self.silent
            or self.crc_error_rate > 0
            or self.wrong_address_rate > 0
            or self.slow_reply_rate > 0
        )


@dataclass
class DtuFaults:
    """A DTU whose link drops every ``flap_every_seconds`` for ``flap_down_seconds``, and
    what its raw (transparent) side does to the bytes.

    - ``echo``: the RS485 converter hears its own transmission and sends each request back
      before the meter's answer;
    - ``stray_bytes``: noise on the line (a turnaround glitch) before every answer;
    - ``heartbeat_mid_reply``: the heartbeat falls between two pieces of one answer, each
      piece its own packet (a client-mode DTU's idle timer firing while a meter answers).
    """

    flap_every_seconds: float | None = None
    flap_down_seconds: float = 5.0
    echo: bool = False
    stray_bytes: bytes = b""
    heartbeat_mid_reply: bool = False

    def __post_init__(self) -> None:
        if self.flap_every_seconds is not None and self.flap_every_seconds <= 0:
            raise ValueError("flap_every_seconds must be positive")
        if self.flap_down_seconds < 0:
            raise ValueError("flap_down_seconds cannot be negative")


@dataclass(frozen=True)
class FaultPlan:
    """Faults spread over a whole field by share, chosen reproducibly from the seed."""

    silent_share: float = 0.0
    crc_error_rate: float = 0.0
    wrong_address_rate: float = 0.0
    slow_reply_rate: float = 0.0
    slow_reply_seconds: float = 2.0
    flapping_dtus: int = 0
    flap_every_seconds: float = 60.0
    flap_down_seconds: float = 5.0
    clock_drift_ppm: float = 0.0  # each meter drifts by up to this much, either way
    reset_share: float = 0.0  # meters whose energy register resets once...
    reset_after_seconds: float = 3600.0  # ...this many simulated seconds after the start
    silent_meters: tuple[str, ...] = field(default_factory=tuple)  # by id, on top of the share

    def __post_init__(self) -> None:
        for share in (self.silent_share, self.reset_share):
            if not 0.0 <= share <= 1.0:
                raise ValueError("shares are fractions between 0 and 1")
        if self.flapping_dtus < 0 or self.clock_drift_ppm < 0:
            raise ValueError("flapping_dtus and clock_drift_ppm cannot be negative")
        # Validate the per-meter and per-DTU values once, here.
        MeterFaults(
            crc_error_rate=self.crc_error_rate,
            wrong_address_rate=self.wrong_address_rate,
            slow_reply_rate=self.slow_reply_rate,
            slow_reply_seconds=self.slow_reply_seconds,
        )
        DtuFaults(self.flap_every_seconds, self.flap_down_seconds)

    def meter_faults(self, rng: random.Random, meter_id: str) -> MeterFaults:
        """Draw one meter's faults."""
        silent = meter_id in self.silent_meters or rng.random() < self.silent_share
        return MeterFaults(
            silent=silent,
            crc_error_rate=self.crc_error_rate,
            wrong_address_rate=self.wrong_address_rate,
            slow_reply_rate=self.slow_reply_rate,
            slow_reply_seconds=self.slow_reply_seconds,
        )
