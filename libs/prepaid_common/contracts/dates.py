"""Dates as the APIs take them: ``YYYY-MM-DD`` text only.

Pydantic would also read a number (``0``, ``"1700000000"``) as a Unix time; a client that
sends one has made a mistake, and it is refused (422) instead of becoming 1970-01-01.
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Any

from pydantic import BeforeValidator

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_text_only(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("a date must be written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_text_only)]

_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$")


def _local_time_text_only(value: Any) -> Any:
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if not isinstance(value, str) or not _LOCAL_TIME.fullmatch(value):
        # A number or an offset ("12:00Z") is refused: a site's clock time has neither.
        raise ValueError("a local time must be written HH:MM or HH:MM:SS, without an offset")
    return value


# A wall-clock time of the site (its zone is the site's), e.g. "20:00".
LocalTime = Annotated[time, BeforeValidator(_local_time_text_only)]
