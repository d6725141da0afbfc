"""What reading a meter's identity asks of its bus link (the serial number registers of a
Modbus meter; DL/T 645 meters: ``meter_io.read_identity``)."""

from __future__ import annotations

from collector import meter_io
from collector.domain import MeterProfile, Profile, ReadBlock
from collector.domain.identity import decode_identity
from collector.links import BusLink
from collector.records import MeterConfig


async def read_identity(link: BusLink, meter: MeterConfig, profile: Profile) -> str | None:
    """Return the identity the device at the meter's address tells; None: none to read."""
    if isinstance(profile, MeterProfile):
        spec = profile.identity
        if spec is None:
            return None
        words = await link.read(meter.unit_id, spec.function, ReadBlock(spec.address, spec.words))
        return decode_identity(spec, words, profile.word_order)
    return await meter_io.read_identity(link, meter, profile)
