"""Reading an uploaded spreadsheet (CSV or XLSX) into sheets of text cells."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from openpyxl import load_workbook  # type: ignore[import-untyped]
from prepaid_common.errors import Invalid

FileFormat = Literal["csv", "xlsx"]

_ZIP_MAGIC = b"PK\x03\x04"
# The old binary Excel format (OLE2): not read; the operator saves as .xlsx.
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"


@dataclass(frozen=True)
class Sheet:
    """A sheet's header and its data rows, each cell as text ('' when empty).

    ``first_row`` is the spreadsheet row number of ``rows[0]`` (the header is the row
    before it), so that a problem names the row the operator sees.
    """

    name: str
    headers: list[str]
    rows: list[list[str]]
    first_row: int = 2


def file_format(data: bytes) -> FileFormat:
    """Return whether the bytes are an XLSX workbook or (anything else) CSV text."""
    if data.startswith(_ZIP_MAGIC):
        return "xlsx"
    if data.startswith(_XLS_MAGIC):
        raise Invalid("an .xls workbook (Excel 97-2003): save it as .xlsx or .csv")
    return "csv"


def read_sheets(data: bytes) -> tuple[FileFormat, list[Sheet]]:
    """Return the file's format and its sheets (a CSV is one sheet named '')."""
    kind = file_format(data)
    if kind == "xlsx":
        return kind, _read_xlsx(data)
    return kind, [_read_csv(data)]


def _read_csv(data: bytes) -> Sheet:
    text = _decode(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:4096], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    lines = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    return _sheet("", lines)


def _decode(data: bytes) -> str:
    # Excel on a Chinese Windows saves "CSV" in GB18030 (GBK); elsewhere UTF-8, often with
    # a byte-order mark.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Invalid("the CSV is neither UTF-8 nor GB18030 text")


def _read_xlsx(data: bytes) -> list[Sheet]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise Invalid(f"the XLSX workbook cannot be read: {error}") from None
    try:
        return [
            _sheet(ws.title, [[_text(v) for v in row] for row in ws.iter_rows(values_only=True)])
            for ws in book.worksheets
        ]
    finally:
        book.close()


def _sheet(name: str, lines: list[list[str]]) -> Sheet:
    # Rows before the header that are blank are skipped; the header is the first row with text.
    start = next((i for i, line in enumerate(lines) if any(line)), len(lines))
    if start == len(lines):
        return Sheet(name=name, headers=[], rows=[], first_row=start + 2)
    headers = lines[start]
    width = len(headers)
    rows = [(line + [""] * width)[:width] for line in lines[start + 1 :]]
    return Sheet(name=name, headers=headers, rows=rows, first_row=start + 2)


def _text(value: object) -> str:
    """A cell as the operator typed it: integers without '.0', dates as ISO dates."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()
