"""The import template: the columns an import reads, in XLSX (with a tariffs sheet and the
instructions) or CSV (the main sheet's header only)."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from openpyxl.worksheet.worksheet import Worksheet  # type: ignore[import-untyped]

from gateway.documents.columns import MAIN_COLUMNS, TARIFF_COLUMNS, ImportColumn

INSTRUCTIONS = (
    "一行一块表（或一个户、一个集中器）。A row is a meter (or an account, or a DTU).",
    "同一集中器、同一户可出现在多行：各行须一致。One DTU or account may be on several rows; "
    "they must agree.",
    "电价填电价编号（本表“tariffs”页或系统中已有），或直接填单价（元/kWh）。"
    "电价 is a tariff id (the tariffs sheet, or defined already) or a flat price in yuan/kWh.",
    "先“预检”（不写入），无问题后再“导入”：全部写入或全不写入。Check first (nothing is "
    "written), then apply: everything is written, or nothing.",
    "已存在且完全一致的表、户、集中器不重复创建；不一致的报错。Ids already there exactly as "
    "written are left unchanged; otherwise they are problems.",
)


def template_xlsx() -> bytes:
    """Return the template workbook: meters, tariffs, and the instructions (说明)."""
    book = Workbook()
    meters = book.active
    assert meters is not None
    meters.title = "meters"
    _header(meters, MAIN_COLUMNS)
    tariffs = book.create_sheet("tariffs")
    _header(tariffs, TARIFF_COLUMNS)
    notes = book.create_sheet("说明")
    notes.append(["列/column", "说明/meaning", "示例/example"])
    for cell in notes[1]:
        cell.font = Font(bold=True)
    for column in (*MAIN_COLUMNS, *TARIFF_COLUMNS):
        notes.append([column.header, column.note, column.example])
    notes.append([])
    for line in INSTRUCTIONS:
        notes.append([line])
    notes.column_dimensions["A"].width = 22
    notes.column_dimensions["B"].width = 70
    notes.column_dimensions["C"].width = 20
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _header(sheet: Worksheet, columns: tuple[ImportColumn, ...]) -> None:
    sheet.append([column.header for column in columns])
    for index, column in enumerate(columns, start=1):
        cell = sheet.cell(row=1, column=index)
        cell.font = Font(bold=True)
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = max(14, len(column.header) + 4)
        # Ids, addresses and phone numbers are text: Excel must not drop leading zeros.
        if column.field != "port":
            for row in range(2, 2001):
                sheet.cell(row=row, column=index).number_format = "@"


def template_csv() -> bytes:
    """Return the CSV template: the main sheet's header (UTF-8 with a BOM, so that Excel
    opens the Chinese headers right)."""
    out = io.StringIO()
    csv.writer(out).writerow([column.header for column in MAIN_COLUMNS])
    return out.getvalue().encode("utf-8-sig")
