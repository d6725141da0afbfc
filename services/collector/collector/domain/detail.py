"""A reading's values beyond energy and power, kept with the meter's last reading as JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from collector.domain.decoding import DecodedReading


def reading_detail_text(reading: DecodedReading) -> str | None:
    """Return the reading's TOU registers, voltage, current and power limit as JSON (None:
    it has none).

    Written by hand, every poll: the text ``json.dumps(..., sort_keys=True)`` gives for the
    same values (``_reading_detail_json``), a fifth of its cost. A Decimal's text is digits,
    sign, point and exponent: nothing to escape.
    """
    parts: list[str] = []
    append = parts.append
    current, tou = reading.current_a, reading.tou_kwh
    if current is not None:
        append(f'"current_a": "{current!s}"')
    if reading.power_limit_kw is not None:
        append(f'"power_limit_kw": "{reading.power_limit_kw!s}"')
    if tou:
        flat, peak, sharp, valley = (
            tou.get("flat"),
            tou.get("peak"),
            tou.get("sharp"),
            tou.get("valley"),
        )
        if (  # all four, in the order JSON sorts them (``is``: a Decimal's == asks an ABC)
            flat is not None and peak is not None and sharp is not None and valley is not None
        ) and len(tou) == 4:
            append(
                f'"tou_kwh": {{"flat": "{flat!s}", "peak": "{peak!s}", '
                f'"sharp": "{sharp!s}", "valley": "{valley!s}"}}'
            )
        else:
            periods = ", ".join(f'"{period}": "{tou[period]!s}"' for period in sorted(tou))
            append(f'"tou_kwh": {{{periods}}}')
    if reading.voltage_v is not None:
        append(f'"voltage_v": "{reading.voltage_v!s}"')
    return "{" + ", ".join(parts) + "}" if parts else None


def _reading_detail_json(reading: DecodedReading) -> str | None:
    """What ``reading_detail_text`` writes, by the json module (the tests compare them)."""
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
