"""A ``Document`` as an XLSX workbook: numbers as numbers, money as '0.00', dates as dates."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Alignment, Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from openpyxl.worksheet.worksheet import Worksheet  # type: ignore[import-untyped]

from gateway.documents.layout import (
    NUMBER_FORMATS,
    Cell,
    CellKind,
    Column,
    Document,
    Table,
    local,
)

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_BOLD = Font(bold=True)
# A sheet's title is at most 31 characters and has none of these.
_NOT_IN_TITLES = str.maketrans({c: "_" for c in "[]:*?/\\"})


def render_xlsx(document: Document) -> bytes:
    """Return the document as an XLSX workbook: facts and tables on the first sheet, and
    each table that names a sheet of its own on that sheet."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = _sheet_title(document.title)
    sheet.append([document.title])
    sheet.cell(row=1, column=1).font = Font(bold=True, size=14)
    for fact in document.facts:
        sheet.append([fact.label])
        _write(sheet, sheet.max_row, 2, fact.value, fact.kind, document)
    # Column widths by sheet title; a sheet is here once something is written on it.
    widths: dict[str, dict[int, int]] = {sheet.title: {1: 16, 2: 16}}
    for table in document.tables:
        target = sheet
        if table.sheet is not None:
            title = _sheet_title(table.sheet)
            if title not in book.sheetnames:
                book.create_sheet(title)
            target = book[title]
        if target.title in widths:
            target.append([])
        _write_table(target, table, document, widths.setdefault(target.title, {}))
    for note in document.notes:
        sheet.append([note])
    for title, columns in widths.items():
        for index, width in columns.items():
            book[title].column_dimensions[get_column_letter(index)].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_title(text: str) -> str:
    return text.translate(_NOT_IN_TITLES)[:31] or "report"


def _write_table(
    sheet: Worksheet, table: Table, document: Document, widths: dict[int, int]
) -> None:
    sheet.append([table.heading])
    sheet.cell(row=sheet.max_row, column=1).font = _BOLD
    sheet.append([column.header for column in table.columns])
    header_row = sheet.max_row
    for index, column in enumerate(table.columns, start=1):
        sheet.cell(row=header_row, column=index).font = _BOLD
        sheet.cell(row=header_row, column=index).alignment = Alignment(wrap_text=True)
        widths[index] = max(widths.get(index, 0), column.width)
    for row in table.rows:
        _write_row(sheet, row, table.columns, document)
    if table.total is not None:
        _write_row(sheet, table.total, table.columns, document)
        for index in range(1, len(table.columns) + 1):
            sheet.cell(row=sheet.max_row, column=index).font = _BOLD


def _write_row(
    sheet: Worksheet, row: tuple[Cell, ...], columns: tuple[Column, ...], document: Document
) -> None:
    sheet.append([None])
    number = sheet.max_row
    for index, (value, column) in enumerate(zip(row, columns, strict=True), start=1):
        _write(sheet, number, index, value, column.kind, document)


def _write(
    sheet: Worksheet, row: int, column: int, value: Cell, kind: CellKind, document: Document
) -> None:
    cell = sheet.cell(row=row, column=column)
    cell.value = _value(value, kind, document)
    if value is not None and kind != "text":
        cell.number_format = NUMBER_FORMATS[kind]


def _value(value: Cell, kind: CellKind, document: Document) -> Any:
    if value is None:
        return None
    if kind in ("money", "energy") and isinstance(value, Decimal | int):
        # Written as the decimal's own digits (a number cell); the format shows the places.
        return value
    if kind == "integer" and isinstance(value, int | Decimal):
        return int(value)
    if isinstance(value, datetime):
        return local(value, document.zone)
    if isinstance(value, date):
        return value
    return str(value) if not isinstance(value, int | Decimal) else value
