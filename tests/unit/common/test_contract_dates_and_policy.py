"""Dates, clock times and the site policy as the APIs take them: text only, in range."""

from __future__ import annotations

import json
from datetime import date, time

import pytest
from prepaid_common.contracts.api.billing import SitePolicy
from prepaid_common.contracts.dates import IsoDate, LocalTime
from pydantic import TypeAdapter, ValidationError

DATES = TypeAdapter(IsoDate)
TIMES = TypeAdapter(LocalTime)


def test_a_date_is_yyyy_mm_dd_text_never_a_number() -> None:
    assert DATES.validate_python("2026-11-30") == date(2026, 11, 30)
    assert DATES.validate_json('"2026-11-30"') == date(2026, 11, 30)
    for wrong in (0, "0", "1700000000", "2026-13-01", "30.11.2026", False):
        with pytest.raises(ValidationError):
            DATES.validate_python(wrong)


def test_a_local_time_has_no_offset_and_is_no_number() -> None:
    assert TIMES.validate_python("20:00") == time(20, 0)
    for wrong in ("20:00Z", "20:00+08:00", 0, "24:00", "7:00", True):
        with pytest.raises(ValidationError):
            TIMES.validate_python(wrong)


def test_the_site_policy_refuses_an_unknown_zone_and_days_out_of_range() -> None:
    assert SitePolicy(timezone="Asia/Shanghai", friendly_weekdays=[0, 6]).zone.key == (
        "Asia/Shanghai"
    )
    for wrong in (
        {"timezone": "Nope/Nope"},
        {"timezone": "../../etc/passwd"},
        {"friendly_weekdays": [7]},
        {"friendly_weekdays": [-1]},
        {"friendly_weekdays": [False]},
        {"holidays": [0]},
        {"friendly_windows": [{"start": "20:00Z", "end": "08:00"}]},
    ):
        with pytest.raises(ValidationError):
            SitePolicy.model_validate_json(json.dumps(wrong))
