"""The collector's rules, free of I/O: profiles, decoding, read planning, link health,
poll scheduling and relay commands."""

from collector.domain import dlt645, rtu
from collector.domain.commands import (
    EXPIRED,
    CommandOpener,
    OpenedCommand,
    PlainCommandOpener,
    RefusedCommand,
    expected_relay,
    plain_envelope,
    relay_command_value,
)
from collector.domain.decoding import (
    DecodedReading,
    ImplausibleValue,
    check_plausible,
    decode_reading,
    decode_relay,
    decode_value,
    encode_value,
)
from collector.domain.link import (
    OFFLINE_AFTER_FAILURES,
    MeterLink,
    PollSchedule,
    retry_delay,
)
from collector.domain.planning import (
    ReadBlock,
    plan_profile_reads,
    plan_reads,
    registers_from_blocks,
)
from collector.domain.profiles import (
    Dlt645Profile,
    MeterProfile,
    Profile,
    ProfileError,
    RegisterSpec,
    parse_profile,
)

__all__ = [
    "EXPIRED",
    "OFFLINE_AFTER_FAILURES",
    "CommandOpener",
    "DecodedReading",
    "Dlt645Profile",
    "ImplausibleValue",
    "MeterLink",
    "MeterProfile",
    "OpenedCommand",
    "PlainCommandOpener",
    "PollSchedule",
    "Profile",
    "ProfileError",
    "ReadBlock",
    "RefusedCommand",
    "RegisterSpec",
    "check_plausible",
    "decode_reading",
    "decode_relay",
    "decode_value",
    "dlt645",
    "encode_value",
    "expected_relay",
    "parse_profile",
    "plain_envelope",
    "plan_profile_reads",
    "plan_reads",
    "registers_from_blocks",
    "relay_command_value",
    "retry_delay",
    "rtu",
]
