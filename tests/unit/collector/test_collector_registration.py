"""What a DTU's registration must satisfy, and how meter addresses are kept."""

from __future__ import annotations

from typing import Any

import pytest
from collector.domain.registration import check_registration, stored_address
from collector.profiles import load_profiles
from prepaid_common.contracts.api.collector import DtuRegistration, MeterRegistration
from prepaid_common.errors import Invalid
from pydantic import ValidationError

PROFILES = load_profiles()


def dtu(*meters: dict[str, Any], kind: str = "rtu-over-tcp") -> DtuRegistration:
    return DtuRegistration.model_validate(
        {"id": "D1", "name": "d", "kind": kind, "host": "h", "port": 1, "meters": list(meters)}
    )


def test_a_good_registration_passes() -> None:
    check_registration(
        dtu(
            {"id": "M1", "unit_id": 1, "profile": "reference-prepaid"},
            {"id": "M2", "address": "000000000042", "profile": "dlt645-2007"},
        ),
        PROFILES,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (dtu({"id": "M1", "unit_id": 1, "profile": "nope"}), "unknown profile"),
        (dtu({"id": "M1", "address": "42", "profile": "dlt645-2007"}), "12-digit"),
        (
            dtu(
                {"id": "M1", "address": "000000000042", "profile": "dlt645-2007"}, kind="modbus-tcp"
            ),
            "transparent link",
        ),
        (dtu({"id": "M1", "address": "000000000300", "profile": "reference-prepaid"}), "1 to 247"),
        (
            dtu(
                {"id": "M1", "unit_id": 7, "profile": "reference-prepaid"},
                {"id": "M2", "address": "007", "profile": "reference-prepaid"},
            ),
            "address repeated: 7",
        ),
        (
            dtu(
                {"id": "M1", "unit_id": 1, "profile": "reference-prepaid"},
                {"id": "M1", "unit_id": 2, "profile": "reference-prepaid"},
            ),
            "meter id repeated: M1",
        ),
    ],
)
def test_a_bad_registration_is_refused(body: DtuRegistration, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        check_registration(body, PROFILES)


def test_a_modbus_address_is_kept_as_its_unit_ids_digits() -> None:
    meter = MeterRegistration(id="M1", address="007", profile="reference-prepaid")
    assert stored_address(meter, PROFILES["reference-prepaid"]) == "7"
    meter = MeterRegistration(id="M2", address="000000000042", profile="dlt645-2007")
    assert stored_address(meter, PROFILES["dlt645-2007"]) == "000000000042"


def test_ids_follow_the_one_identifier_rule() -> None:
    assert DtuRegistration(id="site:12", name="n", kind="dtu-client").registration == (
        "LOGIN:site:12"
    )
    with pytest.raises(ValidationError):
        DtuRegistration(id="a.b", name="n", kind="dtu-client")
