"""Meter profiles: a meter model's register map and capabilities, described as data.

A profile is a TOML file (see ``collector/profiles``); new meter models need no code.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Annotated, Any, Literal

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
    command: RelayCommandSpec


class ClockSpec(_Strict):
    """Six consecutive UINT16 registers: year, month, day, hour, minute, second (FC16)."""

    address: Address
    # Drift beyond this is set right; drift beyond max_set_seconds is an anomaly instead.
    tolerance_seconds: int = Field(default=30, ge=1)
    max_set_seconds: int = Field(default=86400, ge=1)


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
    purchase_amount: RegisterSpec
    purchase_count: RegisterSpec

    @model_validator(mode="after")
    def _check(self) -> LocalCreditSpec:
        for label, spec in (("count", self.count), ("purchase_count", self.purchase_count)):
            if spec.type not in COUNT_TYPES or spec.scale != 1:
                raise ValueError(f"{label}: a purchase count is a uint16 or uint32 with scale 1")
        if self.purchase_amount.type == "float32":
            raise ValueError("purchase_amount: an amount is written as an integer, not float32")
        if self.purchase_count.address != self.purchase_amount.address + self.purchase_amount.words:
            raise ValueError(
                "purchase_count must follow purchase_amount: one FC16 write carries both"
            )
        return self

    def named(self) -> list[tuple[str, RegisterSpec]]:
        """Return each register with its key, for messages."""
        return [
            ("credit", self.credit),
            ("count", self.count),
            ("purchase_amount", self.purchase_amount),
            ("purchase_count", self.purchase_count),
        ]


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
        for label, address, words in named:
            for register in range(address, address + words):
                if register in taken:
                    raise ValueError(f"{label} overlaps {taken[register]} at {register:#06x}")
                taken[register] = label
        if (self.pt_ratio is None) != (self.ct_ratio is None):
            raise ValueError("pt_ratio and ct_ratio go together")
        return self

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
    # 00010000 forward active total (what is billed), or 00000000 combined active total.
    energy: Literal["forward", "combined"] = "forward"
    max_energy_kwh: DecimalText = Decimal("999999.99")
    max_power_kw: DecimalText = Decimal("100")
    # Status word 3 tells the relay; remote control (0x1C) trips and closes it.
    relay: bool = False
    # Privilege byte + 3 password bytes, and the operator code, as sent (hex, 4 bytes).
    password: HexWord = "02000000"
    operator: HexWord = "00000000"
    # Clock read from 04000101/04000102; broadcast time set only within max_set_seconds.
    clock: bool = False
    clock_tolerance_seconds: int = Field(default=30, ge=1)
    clock_max_set_seconds: int = Field(default=600, ge=1)

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
