"""A ``Document`` as a printable A4 PDF, Chinese included with no font file on the machine.

reportlab's CID font ``STSong-Light`` is one of the Adobe Asian fonts every PDF reader
carries: the PDF names it and the reader draws it, so nothing is embedded or installed.
"""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    LongTable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus.flowables import Flowable  # type: ignore[import-untyped]

from gateway.documents.layout import Cell, CellKind, Column, Document, Table, as_text

PDF_MEDIA_TYPE = "application/pdf"
FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))

_TITLE = ParagraphStyle("title", fontName=FONT, fontSize=16, leading=22, spaceAfter=6)
_HEADING = ParagraphStyle("heading", fontName=FONT, fontSize=11, leading=16, spaceBefore=8)
_BODY = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12)
_NUMERIC: frozenset[CellKind] = frozenset({"integer", "money", "energy"})


def render_pdf(document: Document) -> bytes:
    """Return the document as a PDF (landscape when a table has more than six columns)."""
    wide = any(len(table.columns) > 6 for table in document.tables)
    out = io.BytesIO()
    template = SimpleDocTemplate(
        out,
        pagesize=landscape(A4) if wide else A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=document.title,
        author="prepaid metering",
    )
    story: list[Flowable] = [Paragraph(_escape(document.title), _TITLE)]
    if document.facts:
        facts = [
            [fact.label, as_text(fact.value, fact.kind, document.zone)] for fact in document.facts
        ]
        story.append(_grid(facts, numeric_columns={1}, header=False, widths=[40 * mm, 70 * mm]))
    for table in document.tables:
        story.append(Paragraph(_escape(table.heading), _HEADING))
        story.append(_table(table, document))
    for note in document.notes:
        story.append(Spacer(1, 4 * mm))
        story.append(Paragraph(_escape(note), _BODY))
    template.build(story)
    return out.getvalue()


def _table(table: Table, document: Document) -> Flowable:
    rows: list[list[Any]] = [[column.header for column in table.columns]]
    rows += [_texts(row, table.columns, document) for row in table.rows]
    if not table.rows:
        rows.append(["—"] + [""] * (len(table.columns) - 1))
    if table.total is not None:
        rows.append(_texts(table.total, table.columns, document))
    numeric = {i for i, column in enumerate(table.columns) if column.kind in _NUMERIC}
    grid = _grid(rows, numeric_columns=numeric, header=True, widths=None)
    if table.total is not None:
        grid.setStyle(TableStyle([("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black)]))
    return grid


def _texts(row: tuple[Cell, ...], columns: tuple[Column, ...], document: Document) -> list[str]:
    return [
        as_text(value, column.kind, document.zone)
        for value, column in zip(row, columns, strict=True)
    ]


def _grid(
    rows: list[list[Any]], *, numeric_columns: set[int], header: bool, widths: list[float] | None
) -> LongTable:
    grid = LongTable(rows, colWidths=widths, repeatRows=1 if header else 0)
    style: list[tuple[Any, ...]] = [
        ("FONTNAME", (0, 0), (-1, -1), FONT),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)))
    for index in numeric_columns:
        style.append(("ALIGN", (index, 1 if header else 0), (index, -1), "RIGHT"))
    grid.setStyle(TableStyle(style))
    return grid


def _escape(text: str) -> str:
    # Paragraphs read a little markup: a tenant's name is text, never markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
