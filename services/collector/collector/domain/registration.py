"""What makes a DTU's registration acceptable, and how a meter's address is kept."""

from __future__ import annotations

from collections.abc import Mapping

from prepaid_common.contracts.api.collector import DtuRegistration, MeterRegistration
from prepaid_common.errors import Invalid

from collector.domain.profiles import Dlt645Profile, Profile


def check_registration(body: DtuRegistration, profiles: Mapping[str, Profile]) -> None:
    """Refuse unknown profiles, addresses a meter's protocol cannot have, and repeats."""
    for meter in body.meters:
        profile = profiles.get(meter.profile)
        if profile is None:
            raise Invalid(
                f"meter {meter.id}: unknown profile {meter.profile!r}; "
                f"known profiles: {', '.join(sorted(profiles))}"
            )
        _check_address(body, meter, profile)
    for label, values in (
        ("meter id", [m.id for m in body.meters]),
        ("address", [stored_address(m, profiles[m.profile]) for m in body.meters]),
    ):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise Invalid(f"DTU {body.id}: {label} repeated: {', '.join(duplicates)}")


def _check_address(body: DtuRegistration, meter: MeterRegistration, profile: Profile) -> None:
    check_meter_address(body.kind, meter, profile)


def check_meter_address(kind: str, meter: MeterRegistration, profile: Profile) -> None:
    """Refuse an address the meter's protocol cannot have on a DTU of this kind."""
    if isinstance(profile, Dlt645Profile):
        if meter.address is None or len(meter.address) != 12:
            raise Invalid(f"meter {meter.id}: a DL/T 645 meter needs a 12-digit address")
        if kind == "modbus-tcp":
            raise Invalid(
                f"meter {meter.id}: DL/T 645 needs a transparent link "
                "(rtu-over-tcp or dtu-client), not a Modbus TCP gateway"
            )
    elif not meter.bus_address.isdigit() or not 1 <= int(meter.bus_address) <= 247:
        raise Invalid(f"meter {meter.id}: a Modbus unit id is 1 to 247")


def stored_address(meter: MeterRegistration, profile: Profile) -> str:
    """Return the address as kept: 12 DL/T 645 digits, or a unit id's digits ("7", not "007")."""
    if isinstance(profile, Dlt645Profile):
        return meter.bus_address
    return str(int(meter.bus_address))
