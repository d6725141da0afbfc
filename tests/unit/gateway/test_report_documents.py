"""The energy report's rows as the files show them: metered against billed per period, the
difference and the totals, as numbers in the XLSX and as text in the PDF."""

from __future__ import annotations

import io
from decimal import Decimal

import openpyxl  # type: ignore[import-untyped]
import pypdf
from gateway.documents.pdf import render_pdf
from gateway.documents.reports import usage_document
from gateway.documents.xlsx import render_xlsx
from prepaid_common.contracts.api.billing import UsagePeriod, UsageReport

REPORT = UsageReport(
    granularity="day",
    items=[
        UsagePeriod(
            period="2026-12-01",
            metered_kwh=Decimal("12.500"),
            billed_kwh=Decimal("12.000"),
            cost=Decimal("10.20"),
        ),
        UsagePeriod(
            period="2026-12-02",
            metered_kwh=Decimal("3.250"),
            billed_kwh=Decimal("3.250"),
            cost=Decimal("2.76"),
        ),
    ],
)


def test_the_energy_report_compares_meter_and_system_in_xlsx() -> None:
    document = usage_document(REPORT, subject="meter", subject_id="M-1")
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(document)))
    rows = {row[0].value: row for row in book.active.iter_rows()}
    first = rows["2026-12-01"]
    assert [c.value for c in first[1:5]] == [12.5, 12, 0.5, 10.2]
    assert [c.number_format for c in first[1:5]] == ["0.000", "0.000", "0.000", "0.00"]
    total = rows["合计 Total"]
    assert [c.value for c in total[1:5]] == [15.75, 15.25, 0.5, 12.96]


def test_the_energy_report_pdf_carries_the_chinese_and_the_figures() -> None:
    document = usage_document(REPORT, subject="account", subject_id="户-A1")
    text = "".join(
        page.extract_text() for page in pypdf.PdfReader(io.BytesIO(render_pdf(document))).pages
    )
    for wanted in ("用电报表", "电表与系统对比", "户-A1", "12.500", "0.500", "15.750", "12.96"):
        assert wanted in text, (wanted, text)
