"""Meter profiles: a meter model's register map and capabilities, described as data.

A profile is a TOML file (see ``collector/profiles``); new meter models need no code.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

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


class MeterProfile(_Strict):
    """A meter model's register map and what the collector may do with it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
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

    @property
    def has_relay(self) -> bool:
        return self.relay is not None

    def spans(self) -> list[tuple[int, int]]:
        """Return (address, words) of every register the collector reads each poll."""
        spans = [(spec.address, spec.words) for spec in self.registers.values()]
        spans += [(spec.address, spec.words) for spec in self.tou.values()]
        if self.relay is not None:
            spans.append((self.relay.state.address, 1))
        return spans

    @model_validator(mode="after")
    def _check(self) -> MeterProfile:
        if "energy_kwh" not in self.registers:
            raise ValueError("registers.energy_kwh is required (the total active energy)")
        taken: dict[int, str] = {}
        named = [(f"registers.{q}", s.address, s.words) for q, s in self.registers.items()]
        named += [(f"tou.{p}", s.address, s.words) for p, s in self.tou.items()]
        if self.relay is not None:
            named.append(("relay.state", self.relay.state.address, 1))
        for label, address, words in named:
            for register in range(address, address + words):
                if register in taken:
                    raise ValueError(f"{label} overlaps {taken[register]} at {register:#06x}")
                taken[register] = label
        return self


def parse_profile(text: str, *, source: str) -> MeterProfile:
    """Parse and validate one profile's TOML text; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"{source}: not valid TOML: {error}") from None
    try:
        profile = MeterProfile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '(file)'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ProfileError(f"{source}: {problems}") from None
    return profile
