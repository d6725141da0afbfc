"""Clock decisions for meters with a clock: leave it, correct it (and how), or report it.

What a correction may do is the protocol's to say. A Modbus meter's clock registers are
written to that meter alone. A DL/T 645 broadcast time set (0x08) reaches every meter on
the bus, and a meter takes it only within a window of its own clock (±5 minutes in the
standard); further off needs the programmed time set (0x14 with the password), addressed
to the one meter. Stepping a far-off clock by several broadcasts is not done: each step
would also pull the correct clocks of the other meters on the bus that lie within its
window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

ClockVerdict = Literal["in_time", "broadcast", "set", "anomaly"]


@dataclass(frozen=True)
class ClockJudgement:
    verdict: ClockVerdict
    drift_seconds: float  # meter minus reference: positive when the meter runs ahead
    reason: str = ""  # why an anomaly is one


def judge_clock(
    meter_time: datetime,
    reference: datetime,
    *,
    tolerance_seconds: int,
    max_set_seconds: int,
    broadcast_seconds: int | None = None,
    can_set: bool = True,
) -> ClockJudgement:
    """Decide what to do about a meter's clock.

    Within ``tolerance_seconds`` it is left alone. Beyond ``max_set_seconds`` a correction
    would hide a fault (a flat battery, a tampered meter): it is reported. In between, a
    broadcast corrects it where the protocol has one and the drift is inside its window
    (``broadcast_seconds``); else an addressed set (``can_set``), else it is reported.
    """
    drift = (meter_time - reference).total_seconds()
    off = abs(drift)
    if off <= tolerance_seconds:
        return ClockJudgement("in_time", drift)
    if off > max_set_seconds:
        return ClockJudgement("anomaly", drift, f"beyond the {max_set_seconds} s a set may correct")
    if broadcast_seconds is not None and off <= broadcast_seconds:
        return ClockJudgement("broadcast", drift)
    if can_set:
        return ClockJudgement("set", drift)
    return ClockJudgement(
        "anomaly",
        drift,
        f"beyond the ±{broadcast_seconds} s a broadcast time set may move it, and the "
        "profile allows no programmed time set (clock_write)",
    )


def meter_time_now(reference: datetime, offset: timedelta | None) -> datetime:
    """The meter's own time now: the reference moved by its last known offset."""
    return reference if offset is None else reference + offset
