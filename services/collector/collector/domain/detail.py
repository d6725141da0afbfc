"""A reading's values beyond energy and power, kept with the meter's last reading as JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from collector.domain.decoding import DecodedReading


def reading_detail_text(reading: DecodedReading) -> str | None:
    """Return the reading's TOU registers, voltage, current and power limit as JSON (None:
    it has none)."""
    detail: dict[str, Any] = {}
    if reading.tou_kwh:
        detail["tou_kwh"] = {period: str(value) for period, value in reading.tou_kwh.items()}
    if reading.voltage_v is not None:
        detail["voltage_v"] = str(reading.voltage_v)
    if reading.current_a is not None:
        detail["current_a"] = str(reading.current_a)
    if reading.power_limit_kw is not None:
        detail["power_limit_kw"] = str(reading.power_limit_kw)
    return json.dumps(detail, sort_keys=True) if detail else None


def reading_detail_from_text(text: str | None) -> dict[str, Any]:
    """Return what ``reading_detail_text`` kept, as decimals ({} for none or unreadable)."""
    if not text:
        return {}
    try:
        kept = json.loads(text)
    except ValueError:
        return {}
    detail: dict[str, Any] = {}
    if isinstance(kept.get("tou_kwh"), dict):
        detail["tou_kwh"] = {period: Decimal(value) for period, value in kept["tou_kwh"].items()}
    for name in ("voltage_v", "current_a", "power_limit_kw"):
        if kept.get(name) is not None:
            detail[name] = Decimal(kept[name])
    return detail
