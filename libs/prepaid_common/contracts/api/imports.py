"""Bulk import: what the gateway reads from an operator's spreadsheet, what it asks the
collector and billing to check and to write, and what it answers.

The gateway parses the file into items (each keeps the spreadsheet row it came from) and
sends the collector the DTUs and meters, billing the tariffs, accounts and bindings. Each
service checks its own items with its own rules against what it holds, and answers the
problems by row and field; the gateway names the field by the file's own column header.

Items travel as JSON arrays (``NamedTuple``), not objects: 10,000 meters with their
accounts and bindings then stay well under a service's 1 MiB request limit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

from prepaid_common.contracts.api.collector import DtuKind

# What can be wrong with a row, for a program (the message says it for a person).
ProblemCode = Literal[
    "unreadable",  # the file is not a CSV or XLSX we can read, or has no header
    "missing",  # a value the row needs is empty
    "bad_value",  # an id, a kind or a phone number that cannot be one
    "bad_number",  # not a number, or out of range, or too many decimals
    "bad_address",  # a bus address the meter's protocol or its DTU cannot have
    "unknown_profile",  # no meter profile of that name on the collector
    "duplicate_id",  # an id twice in the file, or already there with other settings
    "duplicate_address",  # two meters at one address on one DTU
    "no_tariff",  # a new account with no tariff
    "unknown_tariff",  # a tariff id neither in the file nor defined
    "conflict",  # two rows that say different things about one DTU or account
    "too_many",  # more meters on one DTU than its bus takes
]

# The field names items and problems use; the gateway maps each to the file's column.
ImportField = Literal[
    "file",
    "dtu_id",
    "dtu_name",
    "dtu_kind",
    "host",
    "port",
    "meter_id",
    "address",
    "unit_id",
    "profile",
    "account_id",
    "tenant_name",
    "phone",
    "tariff",
    "group",
    "multiplier",
    "tariff_id",
    "tariff_name",
    "price",
]


class TariffRow(NamedTuple):
    """A flat tariff to define: from the tariffs sheet, or a price written for an account."""

    row: int
    sheet: str
    id: str
    name: str
    price_per_kwh: Decimal
    # The field the tariff came from: ``tariff_id`` (tariffs sheet) or ``tariff`` (a price).
    field: str


class DtuRow(NamedTuple):
    """A DTU as the first row naming it gives it; None: not given (kept or defaulted)."""

    row: int
    id: str
    name: str | None
    kind: DtuKind | None
    host: str | None
    port: int | None


class MeterRow(NamedTuple):
    """A meter behind a DTU: its bus address as written (unit id or DL/T 645 address)."""

    row: int
    id: str
    dtu_id: str
    address: str
    profile: str


class AccountRow(NamedTuple):
    """An account as the first row naming it gives it; name or tariff None: not given."""

    row: int
    id: str
    name: str | None
    tariff_id: str | None
    groups: list[str]


class BindingRow(NamedTuple):
    """A meter bound to an account (both named on one row)."""

    row: int
    meter_id: str
    account_id: str
    multiplier: Decimal


class FieldImport(BaseModel):
    """What the collector checks and registers: DTUs and their meters."""

    dtus: list[DtuRow] = Field(default_factory=list)
    meters: list[MeterRow] = Field(default_factory=list)


class LedgerImport(BaseModel):
    """What billing checks and writes: tariffs, accounts and bindings."""

    tariffs: list[TariffRow] = Field(default_factory=list)
    accounts: list[AccountRow] = Field(default_factory=list)
    bindings: list[BindingRow] = Field(default_factory=list)
    operator: str = Field(default="system", min_length=1, max_length=64)


class RowProblem(BaseModel):
    """A problem a service found with an item, by the row it came from and its field."""

    row: int
    sheet: str = ""
    field: ImportField
    code: ProblemCode
    message: str


class ImportCheck(BaseModel):
    """A service's verdict on its part of an import: what is new, what is there already,
    and every problem."""

    problems: list[RowProblem]
    new: dict[str, int]
    unchanged: dict[str, int]


class FieldApplied(BaseModel):
    """What the collector created (the ids a compensating removal takes away again)."""

    created_dtus: list[str]
    created_meters: list[str]
    new: dict[str, int]


class FieldRemoval(BaseModel):
    """DTUs and meters an import created, to remove when the rest of it failed."""

    dtus: list[str]
    meters: list[str]


class LedgerApplied(BaseModel):
    """What billing wrote."""

    new: dict[str, int]


# --- the public API ----------------------------------------------------------------------
class ImportProblem(BaseModel):
    """One problem in the file, where the operator sees it."""

    sheet: str = Field(description="The sheet (XLSX) or '' (CSV)")
    row: int = Field(description="Spreadsheet row, 1 = the header; 0 = the file as a whole")
    column: str = Field(description="The column as the file names it ('' for a whole row)")
    code: ProblemCode
    message: str


class ImportReport(BaseModel):
    """A dry run's or an apply's answer: counts by kind and every problem."""

    import_id: str
    dry_run: bool
    applied: bool = Field(description="True once everything was written (never a part)")
    file_format: Literal["csv", "xlsx"]
    rows: int = Field(description="Data rows read (the header not counted)")
    new: dict[str, int] = Field(description="Items the import creates, by kind")
    unchanged: dict[str, int] = Field(description="Items already there exactly as written")
    problems: list[ImportProblem]
