"""Clock sync decisions for meters with a clock: set it, leave it, or call it an anomaly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

ClockVerdict = Literal["in_time", "set", "anomaly"]


@dataclass(frozen=True)
class ClockJudgement:
    verdict: ClockVerdict
    drift_seconds: float  # meter minus reference: positive when the meter runs ahead


def judge_clock(
    meter_time: datetime, reference: datetime, *, tolerance_seconds: int, max_set_seconds: int
) -> ClockJudgement:
    """Decide what to do about a meter's clock.

    Within ``tolerance_seconds`` it is left alone; up to ``max_set_seconds`` it is set (DL/T
    645 meters accept a broadcast time set only within 10 minutes of their own clock); beyond
    that a set would be refused or hide a fault, so it is reported instead.
    """
    drift = (meter_time - reference).total_seconds()
    if abs(drift) <= tolerance_seconds:
        return ClockJudgement("in_time", drift)
    if abs(drift) <= max_set_seconds:
        return ClockJudgement("set", drift)
    return ClockJudgement("anomaly", drift)
