"""Meter profiles: a meter model's register map and capabilities, described as data.

A profile is a TOML file (see ``collector/profiles``); new meter models need no code.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Annotated, Any, Literal

from prepaid_common.contracts import CommandAction
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

DataType = Literal["uint16", "int16", "uint32", "int32", "float32"]
WordOrder = Literal["big", "little"]
Quantity = Literal["energy_kwh", "power_kw", "voltage_v", "current_a"]
TouPeriod = Literal["sharp", "peak", "flat", "valley"]
# A meter's own load alarms: it tripped for power above its limit, or for a malicious load.
LoadAlarm = Literal["overload", "malicious_load"]

WORDS: dict[str, int] = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
MAX_READ_REGISTERS = 125


class ProfileError(ValueError):
    """A profile file that cannot be used; the message says which file and which field."""


def _decimal_from_text(value: Any) -> Any:
    # A TOML float is a binary approximation (0.1 is not 1/10): decimals are written as text.
    if isinstance(value, float):
        raise ValueError('write decimals as a quoted string, for example "0.01"')
    return value


DecimalText = Annotated[Decimal, BeforeValidator(_decimal_from_text)]
Address = Annotated[int, Field(ge=0, le=0xFFFF)]
Word = Annotated[int, Field(ge=0, le=0xFFFF)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterSpec(_Strict):
    """One value: where it is, its type and the scale that turns it into the quantity's unit."""

    address: Address
    type: DataType
    scale: DecimalText = Decimal(1)

    @property
    def words(self) -> int:
        return WORDS[self.type]

    @model_validator(mode="after")
    def _check(self) -> RegisterSpec:
        if not self.scale.is_finite() or self.scale <= 0:
            raise ValueError("scale must be a positive decimal")
        if self.address + self.words > 0x10000:
            raise ValueError("value runs past register 0xFFFF")
        return self


class RelayStateSpec(_Strict):
    """The register that tells whether the relay is open, and the value for each state."""

    address: Address
    type: Literal["uint16"] = "uint16"
    open: Word
    closed: Word

    @model_validator(mode="after")
    def _check(self) -> RelayStateSpec:
        if self.open == self.closed:
            raise ValueError("open and closed must be different values")
        return self


class RelayCommandSpec(_Strict):
    """The register a relay command is written to, and the value for each action."""

    address: Address
    trip: Word
    close: Word

    @model_validator(mode="after")
    def _check(self) -> RelayCommandSpec:
        if self.trip == self.close:
            raise ValueError("trip and close must be different values")
        return self


class RelaySpec(_Strict):
    state: RelayStateSpec
    # None on a secure meter: its relay is switched by sealed envelopes only.
    command: RelayCommandSpec | None = None


class HoldPowerSpec(_Strict):
    """Hold-power (保电): the register and values that switch it, and the status bit showing
    it (a meter with hold-power on refuses trips)."""

    command: Address
    on: Word
    off: Word
    state: Address
    bit: int = Field(ge=0, le=15)

    @model_validator(mode="after")
    def _check(self) -> HoldPowerSpec:
        if self.on == self.off:
            raise ValueError("on and off must be different values")
        return self


class LoadAlarmSpec(_Strict):
    """Where a meter raises its load alarms: bits of a status register, set while the alarm
    stands (the meter tripped itself for overload, or saw a malicious load's signature)."""

    state: Address
    overload_bit: int = Field(ge=0, le=15)
    # 恶性负载识别: a meter that recognises resistive heaters (and the like) by their
    # signature; None for a meter that only limits power.
    malicious_bit: int | None = Field(default=None, ge=0, le=15)

    @model_validator(mode="after")
    def _check(self) -> LoadAlarmSpec:
        if self.malicious_bit == self.overload_bit:
            raise ValueError("overload_bit and malicious_bit must be different bits")
        return self


class PowerLimitSpec(_Strict):
    """The power limit (限功率, kW) a meter trips its own relay above: one writable integer
    register, read back after a write and with every poll; and its load alarms, if any."""

    limit: RegisterSpec
    alarms: LoadAlarmSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> PowerLimitSpec:
        if self.limit.type == "float32":
            raise ValueError("limit: a power limit is written as an integer, not float32")
        return self


class AlarmThresholdsSpec(_Strict):
    """The two credit alarm levels (yuan) a local-prepaid meter warns at: ``first``, then the
    lower ``second``; written with FC16 in one request (``second`` follows ``first``)."""

    first: RegisterSpec
    second: RegisterSpec

    @model_validator(mode="after")
    def _check(self) -> AlarmThresholdsSpec:
        for label, spec in (("first", self.first), ("second", self.second)):
            if spec.type == "float32":
                raise ValueError(f"{label}: an alarm level is written as an integer, not float32")
        if self.second.address != self.first.address + self.first.words:
            raise ValueError("second must follow first: one FC16 write carries both")
        return self


SECURE_MAX_BYTES = 244  # an FC16 write of 123 words: the byte count, then 122 words


class SecureSpec(_Strict):
    """A meter that verifies sealed envelopes itself (the "secure prepaid" kind).

    The collector writes the envelope unchanged (FC16 at ``envelope``: the byte count, then
    the bytes two per word, high byte first) and reads back ``result`` (UINT16: what the
    meter did, ``prepaid_common.sealing.METER_RESULT_CODES``) and the UINT32 after it (the
    last counter the meter took). ``commands`` are the kinds the meter carries out.
    """

    envelope: Address
    max_bytes: int = Field(default=SECURE_MAX_BYTES, ge=32, le=SECURE_MAX_BYTES)
    result: Address
    commands: tuple[CommandAction, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> SecureSpec:
        words = 1 + (self.max_bytes + 1) // 2
        if self.envelope + words > 0x10000 or self.result + 3 > 0x10000:
            raise ValueError("envelope or result block runs past register 0xFFFF")
        if self.envelope <= self.result + 2 and self.result < self.envelope + words:
            raise ValueError("result overlaps the envelope block")
        return self


class ClockSpec(_Strict):
    """Six consecutive UINT16 registers: year, month, day, hour, minute, second (FC16)."""

    address: Address
    # Drift beyond this is set right; drift beyond max_set_seconds is an anomaly instead.
    tolerance_seconds: int = Field(default=30, ge=1)
    max_set_seconds: int = Field(default=86400, ge=1)


class IdentitySpec(_Strict):
    """The register that tells which device answers: its serial number (an integer).

    Read on first contact and after every reconnect, with its own function code (a serial
    number is often a holding register on a meter whose values are input registers).
    """

    address: Address
    type: Literal["uint16", "uint32"] = "uint32"
    function: Literal[3, 4] = 3

    @property
    def words(self) -> int:
        return WORDS[self.type]


COUNT_TYPES = ("uint16", "uint32")


class LocalCreditSpec(_Strict):
    """A local-prepaid meter keeps its own credit: where it shows it and takes purchases.

    ``credit`` (yuan) and ``count`` (purchases taken) are read each poll. A purchase is
    written with FC16 in one request: ``purchase_amount`` (yuan) and, right after it,
    ``purchase_count``. The meter takes only its count + 1, answers the same count again as
    success without adding (a retried write), and refuses any other count with an exception.
    """

    credit: RegisterSpec
    count: RegisterSpec
    # None on a secure meter: purchases reach it in sealed envelopes, not in registers.
    purchase_amount: RegisterSpec | None = None
    purchase_count: RegisterSpec | None = None

    @property
    def takes_purchases(self) -> bool:
        """Whether purchases are written to registers (not sealed envelopes)."""
        return self.purchase_amount is not None

    @model_validator(mode="after")
    def _check(self) -> LocalCreditSpec:
        if (self.purchase_amount is None) != (self.purchase_count is None):
            raise ValueError("purchase_amount and purchase_count go together")
        counts = [("count", self.count)]
        if self.purchase_count is not None:
            counts.append(("purchase_count", self.purchase_count))
        for label, spec in counts:
            if spec.type not in COUNT_TYPES or spec.scale != 1:
                raise ValueError(f"{label}: a purchase count is a uint16 or uint32 with scale 1")
        if self.purchase_amount is None or self.purchase_count is None:
            return self
        if self.purchase_amount.type == "float32":
            raise ValueError("purchase_amount: an amount is written as an integer, not float32")
        if self.purchase_count.address != self.purchase_amount.address + self.purchase_amount.words:
            raise ValueError(
                "purchase_count must follow purchase_amount: one FC16 write carries both"
            )
        return self

    def named(self) -> list[tuple[str, RegisterSpec]]:
        """Return each register with its key, for messages."""
        named = [("credit", self.credit), ("count", self.count)]
        if self.purchase_amount is not None and self.purchase_count is not None:
            named += [
                ("purchase_amount", self.purchase_amount),
                ("purchase_count", self.purchase_count),
            ]
        return named


ProfileName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]


class MeterProfile(_Strict):
    """A Modbus meter model's register map and what the collector may do with it."""

    name: ProfileName
    protocol: Literal["modbus"] = "modbus"
    description: str = ""
    # Facts not checked against a second source or a real meter, one line each.
    unverified: tuple[str, ...] = ()
    read_function: Literal[3, 4]
    word_order: WordOrder = "big"
    # Registers between two wanted ones that the meter answers, so one read may span them.
    max_gap: int = Field(default=0, ge=0, le=MAX_READ_REGISTERS)
    # Plausibility limits: a decoded value beyond them is garbled, never a reading.
    max_energy_kwh: DecimalText = Decimal("999999.99")
    max_power_kw: DecimalText = Decimal("100")
    registers: dict[Quantity, RegisterSpec]
    tou: dict[TouPeriod, RegisterSpec] = Field(default_factory=dict)
    relay: RelaySpec | None = None
    clock: ClockSpec | None = None
    # PT and CT ratio registers (UINT16): energy = raw x scale x PT x CT (Acrel ADL400).
    pt_ratio: RegisterSpec | None = None
    ct_ratio: RegisterSpec | None = None
    # A local-prepaid meter: its own credit and purchase count, and where purchases go.
    local_credit: LocalCreditSpec | None = None
    # Hold-power (保电) and the credit alarm levels, on models that take them in registers.
    hold_power: HoldPowerSpec | None = None
    alarm_thresholds: AlarmThresholdsSpec | None = None
    # The power limit register (and load alarm bits), on models that have one; read with
    # every poll. A plain meter takes the limit in it; a secure one by envelope only.
    power_limit: PowerLimitSpec | None = None
    # A meter that verifies sealed envelopes itself: every command goes to it sealed.
    secure: SecureSpec | None = None
    # Where the meter tells its serial number (models that have one).
    identity: IdentitySpec | None = None

    @property
    def has_relay(self) -> bool:
        return self.relay is not None

    @property
    def has_local_credit(self) -> bool:
        return self.local_credit is not None

    def spans(self) -> list[tuple[int, int]]:
        """Return (address, words) of every register the collector reads each poll."""
        spans = [(spec.address, spec.words) for spec in self.registers.values()]
        spans += [(spec.address, spec.words) for spec in self.tou.values()]
        if self.relay is not None:
            spans.append((self.relay.state.address, 1))
        spans += [(spec.address, spec.words) for spec in self._ratios()]
        if self.local_credit is not None:
            spans += [(spec.address, spec.words) for spec in self.local_credit_reads()]
        if self.power_limit is not None:
            limit = self.power_limit.limit
            spans.append((limit.address, limit.words))
            if self.power_limit.alarms is not None:
                spans.append((self.power_limit.alarms.state, 1))
        return spans

    def local_credit_reads(self) -> list[RegisterSpec]:
        """Return the credit and purchase count registers (none without local credit)."""
        if self.local_credit is None:
            return []
        return [self.local_credit.credit, self.local_credit.count]

    def _ratios(self) -> list[RegisterSpec]:
        return [spec for spec in (self.pt_ratio, self.ct_ratio) if spec is not None]

    @model_validator(mode="after")
    def _check(self) -> MeterProfile:
        if "energy_kwh" not in self.registers:
            raise ValueError("registers.energy_kwh is required (the total active energy)")
        taken: dict[int, str] = {}
        named = [(f"registers.{q}", s.address, s.words) for q, s in self.registers.items()]
        named += [(f"tou.{p}", s.address, s.words) for p, s in self.tou.items()]
        if self.relay is not None:
            named.append(("relay.state", self.relay.state.address, 1))
        named += [(label, s.address, s.words) for label, s in self._named_ratios()]
        if self.local_credit is not None:
            named += [
                (f"local_credit.{label}", s.address, s.words)
                for label, s in self.local_credit.named()
            ]
        if self.power_limit is not None:
            limit = self.power_limit.limit
            named.append(("power_limit.limit", limit.address, limit.words))
        for label, address, words in named:
            for register in range(address, address + words):
                if register in taken:
                    raise ValueError(f"{label} overlaps {taken[register]} at {register:#06x}")
                taken[register] = label
        if (self.pt_ratio is None) != (self.ct_ratio is None):
            raise ValueError("pt_ratio and ct_ratio go together")
        self._check_commands()
        return self

    def _check_commands(self) -> None:
        plain_writes = [
            label
            for label, present in (
                ("relay.command", self.relay is not None and self.relay.command is not None),
                ("hold_power", self.hold_power is not None),
                ("alarm_thresholds", self.alarm_thresholds is not None),
                (
                    "local_credit.purchase_amount",
                    self.local_credit is not None and self.local_credit.takes_purchases,
                ),
            )
            if present
        ]
        if self.secure is not None:
            if plain_writes:
                raise ValueError(
                    f"a secure meter takes commands in sealed envelopes only: remove "
                    f"{', '.join(plain_writes)}"
                )
            if {"trip", "close"} & set(self.secure.commands) and self.relay is None:
                raise ValueError("secure.commands trips or closes: relay.state is needed")
            return
        if self.relay is not None and self.relay.command is None:
            raise ValueError("relay.command is required (only a secure meter goes without)")
        if self.local_credit is not None and not self.local_credit.takes_purchases:
            raise ValueError(
                "local_credit.purchase_amount and purchase_count are required "
                "(only a secure meter takes purchases in envelopes)"
            )

    def _named_ratios(self) -> list[tuple[str, RegisterSpec]]:
        pairs = [("pt_ratio", self.pt_ratio), ("ct_ratio", self.ct_ratio)]
        return [(label, spec) for label, spec in pairs if spec is not None]


HexWord = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}$")]


class Dlt645Profile(_Strict):
    """A DL/T 645-2007 meter model: which data items to read and what it accepts."""

    name: ProfileName
    protocol: Literal["dlt645"]
    description: str = ""
    unverified: tuple[str, ...] = ()
    # 00010000 forward active total (what is billed), or 00000000 combined active total
    # (signed: its top bit is the sign, so a meter that ran backwards reads negative).
    energy: Literal["forward", "combined"] = "forward"
    # The four tariff-rate registers (rates 1-4: sharp, peak, flat, valley) with the total.
    tou: bool = False
    # Active power 02030000, phase A voltage 02010100 and current 02020100, every poll.
    instantaneous: bool = False
    # Total and rates in one block read (xxxxFF00); off for meters that answer no blocks.
    block_reads: bool = True
    max_energy_kwh: DecimalText = Decimal("999999.99")
    max_power_kw: DecimalText = Decimal("100")
    # Status word 3 tells the relay; remote control (0x1C) trips and closes it.
    relay: bool = False
    # Close as 1C (direct close, a State Grid extension) or 1B (close allowed, base 2007).
    close_command: Literal["1B", "1C"] = "1C"
    # Privilege byte then the password, and the operator code, as written (hex, 4 bytes);
    # both travel low byte first (PA P0 P1 P2, C0 C1 C2 C3).
    password: HexWord = "02000000"
    operator: HexWord = "00000000"
    # Clock read from 04000101/04000102. A broadcast time set (0x08) moves a clock only
    # within clock_broadcast_seconds of its own time; further (up to clock_max_set_seconds)
    # needs the programmed time set (0x14 with the password), if clock_write allows it.
    clock: bool = False
    clock_tolerance_seconds: int = Field(default=30, ge=1)
    clock_broadcast_seconds: int = Field(default=300, ge=1)
    clock_max_set_seconds: int = Field(default=600, ge=1)
    clock_write: bool = False
    # Read the meter number (04000402) on first contact and after a reconnect.
    identity: bool = False

    @property
    def has_relay(self) -> bool:
        return self.relay

    @property
    def has_local_credit(self) -> bool:
        # 00900200 remaining money and 03330201 purchase count exist, but purchases need
        # the meter's ESAM: not supported here yet.
        return False


Profile = MeterProfile | Dlt645Profile
_PROFILE = TypeAdapter[Profile](Annotated[Profile, Field(discriminator="protocol")])


def parse_profile(text: str, *, source: str) -> Profile:
    """Parse and validate one profile's TOML text; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"{source}: not valid TOML: {error}") from None
    try:
        data.setdefault("protocol", "modbus")
        profile = _PROFILE.validate_python(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'][1:]) or '(file)'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ProfileError(f"{source}: {problems}") from None
    return profile
