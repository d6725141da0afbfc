"""What installers do to a field, acted out on a simulated DTU's bus.

- ``swap_meter``: the device at a meter's address replaced by another one (another serial
  number, its own register), as when a meter is changed without telling the platform;
- ``readdress_meter``: a meter set to another unit id (or DL/T 645 address) on its bus;
- ``remove_meter``: a meter taken off the bus (nobody answers at its address).

The collector must tell each from the meter it registered there (its identity check).
"""

from __future__ import annotations

from simulator.dtu import SimulatedDtu
from simulator.meter import SimulatedMeter


def swap_meter(
    dtu: SimulatedDtu, meter_id: str, *, serial: int, energy_kwh: float = 0.0
) -> SimulatedMeter:
    """Put another device where ``meter_id`` answers; return the new device.

    The new one has the old one's address and model, another serial number and its own
    register (``energy_kwh``), under the id ``<meter_id>~<serial>``.
    """
    old = _meter(dtu, meter_id)
    new = SimulatedMeter(
        meter_id=f"{meter_id}~{serial}",
        unit_id=old.unit_id,
        profile=old.profile,
        base_load_kw=old.base_load_kw,
        clock=old.clock,
        initial_energy_kwh=energy_kwh,
        address=old.address,
    )
    new.serial = serial
    dtu.meters[dtu.meters.index(old)] = new
    _rewire(dtu)
    return new


def readdress_meter(
    dtu: SimulatedDtu, meter_id: str, *, unit_id: int | None = None, address: str | None = None
) -> None:
    """Set a meter to answer at another unit id (Modbus) or address (DL/T 645)."""
    meter = _meter(dtu, meter_id)
    if unit_id is not None:
        if not 1 <= unit_id <= 247:
            raise ValueError("a unit id is 1 to 247")
        meter.unit_id = unit_id
    if address is not None:
        if len(address) != 12 or not address.isdigit():
            raise ValueError("a DL/T 645 address is 12 decimal digits")
        meter.address = address
    _rewire(dtu)


def remove_meter(dtu: SimulatedDtu, meter_id: str) -> SimulatedMeter:
    """Take a meter off the bus; return it."""
    meter = _meter(dtu, meter_id)
    dtu.meters.remove(meter)
    _rewire(dtu)
    return meter


def _meter(dtu: SimulatedDtu, meter_id: str) -> SimulatedMeter:
    for meter in dtu.meters:
        if meter.meter_id == meter_id:
            return meter
    raise KeyError(f"no meter {meter_id} on {dtu.dtu_id}")


def _rewire(dtu: SimulatedDtu) -> None:
    """Let the bus answer for the meters as they are now (a later one wins an address)."""
    bus = dtu.bus
    bus.meters = list(dtu.meters)
    bus.by_unit = {m.unit_id: m for m in bus.meters if m.address is None}
    bus.by_address = {m.address: m for m in bus.meters if m.address is not None}
