"""A report as something to print or open in Excel: a title, facts, tables of typed cells.

The renderers (``xlsx``, ``pdf``) draw the same ``Document``; each column's kind decides
how a value is written: money as a number with two decimals, energy with three, dates as
dates, so that a spreadsheet adds them up and a printout reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

CellKind = Literal["text", "integer", "money", "energy", "date", "datetime"]
Cell = str | int | Decimal | date | datetime | None

# What each kind looks like in a spreadsheet cell.
NUMBER_FORMATS: dict[CellKind, str] = {
    "text": "@",
    "integer": "0",
    "money": "0.00",
    "energy": "0.000",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm:ss",
}


@dataclass(frozen=True)
class Column:
    """A table column: its header, the kind of its values and its width in characters."""

    header: str
    kind: CellKind = "text"
    width: int = 14


@dataclass(frozen=True)
class Table:
    """Rows under a heading; ``total`` (optional) is a last row printed in bold."""

    heading: str
    columns: tuple[Column, ...]
    rows: list[tuple[Cell, ...]]
    total: tuple[Cell, ...] | None = None
    # In a workbook, the sheet of its own the table goes on (tables naming the same sheet
    # share it); None: the first sheet, under the facts. A PDF prints every table in order.
    sheet: str | None = None


@dataclass(frozen=True)
class Fact:
    """A labelled value above the tables (户号, 月份, 应缴金额 ...)."""

    label: str
    value: Cell
    kind: CellKind = "text"


@dataclass(frozen=True)
class Document:
    """A whole report; ``name`` is the file name without its extension."""

    title: str
    name: str
    facts: list[Fact] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Date-times are shown in this zone (the site's), without their offset.
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))


def local(value: datetime, zone: ZoneInfo) -> datetime:
    """A date-time as the site's wall clock shows it (naive: spreadsheets have no zones)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(zone).replace(tzinfo=None)


def as_text(value: Cell, kind: CellKind, zone: ZoneInfo) -> str:
    """A cell as printed: money with two decimals, energy with three, ISO dates."""
    if value is None:
        return ""
    if kind == "money" and isinstance(value, Decimal | int):
        return f"{Decimal(value):,.2f}"
    if kind == "energy" and isinstance(value, Decimal | int):
        return f"{Decimal(value):,.3f}"
    if isinstance(value, datetime):
        return local(value, zone).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
