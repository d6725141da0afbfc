"""The secure element of a "secure prepaid" meter: it verifies sealed commands itself.

A secure meter is personalised with its own keys (diversified from the master keys by its
id, one per key version) and never sees a master key. It keeps the last counter it took and
its own UTC clock, and refuses an envelope that is forged or altered (the MAC does not
verify), meant for another meter, replayed (counter not above its own) or expired. The
collector only carries the envelope: whatever it is told, it cannot make the meter act.

Pure: bytes in, a verified command or a refusal out; the register map applies what passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prepaid_common.sealing import (
    Command,
    EnvelopeRefused,
    MeterKeys,
    MeterResult,
    envelope_from_words,
    open_at_meter,
)

_REFUSALS: dict[str, MeterResult] = {
    "forged": "forged",
    "replayed": "replayed",
    "expired": "expired",
    "wrong_meter": "wrong_meter",
    "malformed": "malformed",
    "unknown_key": "unknown_key",
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SecureElement:
    """One meter's keys, last counter, clock and the result of the last envelope."""

    meter_id: str
    keys: MeterKeys = field(repr=False)
    last_counter: int = 0
    result: MeterResult = "none"
    # The secure clock keeps UTC (real time: the simulated display clock may run faster);
    # a test moves it to play a meter whose clock is ahead.
    clock_offset: timedelta = timedelta()
    # Every refusal, newest last, with its reason: what a meter's event log would keep.
    refusals: list[tuple[MeterResult, str]] = field(default_factory=list)
    utc_now: Callable[[], datetime] = field(default=_utc_now, repr=False)

    def now(self) -> datetime:
        """Return the secure clock's time (UTC)."""
        return self.utc_now() + self.clock_offset

    def receive(self, words: list[int]) -> Command | None:
        """Verify the envelope a register block carries; None (and the result set) if refused.

        An envelope that verifies takes its counter at once, whether or not the meter then
        manages to carry it out: the same envelope never runs twice.
        """
        try:
            raw = envelope_from_words(words)
            command = open_at_meter(
                raw,
                self.keys,
                meter_id=self.meter_id,
                now=self.now(),
                last_counter=self.last_counter,
            )
        except EnvelopeRefused as refused:
            self.refuse(_REFUSALS.get(refused.kind, "malformed"), refused.detail)
            return None
        self.last_counter = command.counter
        self.result = "accepted"
        return command

    def refuse(self, result: MeterResult, detail: str) -> None:
        """Record why the last envelope was not carried out."""
        self.result = result
        self.refusals.append((result, detail))
