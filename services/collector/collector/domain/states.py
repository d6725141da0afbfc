"""Meter states: why a meter is not read or not billed, told apart from the error seen.

A state is one condition of one kind (``link``, ``identity``, ``clock``...): its reason (a
stable code), since when it holds, how often it was seen since, and a line of detail. A
condition of the same reason seen again keeps its ``since``; a new reason starts anew.
"""

from __future__ import annotations

from collections.abc import Iterable

LINK = "link"
IDENTITY = "identity"
CLOCK = "clock"
# The meter's own load alarm (overload, malicious_load): it opened its relay itself.
LOAD = "load"

# The order in which a meter's summary state names its conditions: the most pressing first.
_PRESSING = ("identity_mismatch", "dtu_offline", "no_reply", "wrong_unit_id", "crc_error")


def link_reason(result: str, message: str) -> str:
    """Return the link reason for a failed poll: ``result`` as counted, the error's text."""
    if result == "garbled":
        text = message.lower()
        if "crc" in text or "checksum" in text:
            return "crc_error"
        if "reply from" in text:  # a reply from another unit id or address than asked
            return "wrong_unit_id"
        return "garbled"
    return result


def summary(enabled: bool, reasons: Iterable[str]) -> str:
    """Return the one word a list shows for a meter: ok, disabled, or its worst reason."""
    if not enabled:
        return "disabled"
    present = list(reasons)
    for reason in _PRESSING:
        if reason in present:
            return reason
    return present[0] if present else "ok"
