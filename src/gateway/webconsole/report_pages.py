"""The monthly report (Điều 15.11) in the console: ``/console/report?month=YYYY-MM`` as a table and a chart,
and ``/console/report.csv?month=YYYY-MM`` as a spreadsheet.

The figures are the API's (``GET /v1/reports/monthly``): the same ``monthly_report`` and the same
``MonthlyReportOut``, so the page, the CSV, the API and ``gateway report monthly`` never disagree. A bad
month is the report's own ``report-month-invalid`` (422), shown as the console's error page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

# The API's CSV conventions (the ledger export): the UTF-8 byte order mark, without which spreadsheet software
# garbles Vietnamese, and the guard that writes a cell a spreadsheet would run as a formula with a leading
# apostrophe (CSV injection: an agency's name is whatever an operator typed).
from gateway.csv_export import CSV_BOM, CSV_MEDIA_TYPE, csv_cell
from gateway.deps import SessionDep
from gateway.reports.schemas import AgencyFiguresOut, FiguresOut, MonthlyReportOut
from gateway.reports.service import VN_TZ, Month, monthly_report
from gateway.webconsole.chart import grouped_bar_chart
from gateway.webconsole.render import SECURITY_HEADERS, render
from gateway.webconsole.session import CurrentConsoleUser

router = APIRouter()

#: the chart stays readable on a 1366-pixel screen up to this many agencies; beyond, the busiest are drawn
CHART_AGENCIES = 30

MonthQuery = Annotated[str | None, Query(description="YYYY-MM, a calendar month in Asia/Ho_Chi_Minh")]


def _count(value: Any) -> str:
    return str(value)


def _share(value: Any) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def _seconds(value: Any) -> str:
    return "" if value is None else f"{value:.1f}"


@dataclass(frozen=True)
class Column:
    field: str
    #: the heading in the CSV and, in full, the table heading's tooltip
    label: str
    #: the table's heading (seventeen columns on a 1366-pixel screen)
    short: str
    fmt: Callable[[Any], str] = _count


#: the report's figures, in the order of the table and the CSV, with their Vietnamese headings
COLUMNS: tuple[Column, ...] = (
    Column("sent", "Văn bản gửi", "Gửi"),
    Column("sent_local", "Gửi nội bộ", "Nội bộ"),
    Column("sent_forwarded", "Gửi lên trục", "Lên trục"),
    Column("sent_from_upstream", "Đến từ trục", "Từ trục"),
    Column("received", "Văn bản nhận", "Nhận"),
    Column("delivered", "Đã chuyển phát", "Đã chuyển"),
    Column("dead", "Chuyển phát thất bại", "Thất bại"),
    Column("signed_xml", "Ký số XML", "Ký số XML"),
    Column("signed_xml_share", "Tỷ lệ ký số XML (%)", "% XML", _share),
    Column("signed_pdf", "Ký số PDF", "Ký số PDF"),
    Column("signed_pdf_share", "Tỷ lệ ký số PDF (%)", "% PDF", _share),
    Column("delivery_seconds_median", "Thời gian nhận, trung vị (giây)", "Trung vị (giây)", _seconds),
    Column("delivery_seconds_p95", "Thời gian nhận, P95 (giây)", "P95 (giây)", _seconds),
    Column("status_06", "Đã hoàn thành (trạng thái 06)", "Hoàn thành (06)"),
    Column("with_deviations", "Thông điệp có sai lệch", "Sai lệch"),
)

#: the chart's series: what each agency sent and received, and how its sent documents' deliveries ended
SERIES: tuple[tuple[str, str], ...] = (
    ("sent", "Gửi"),
    ("received", "Nhận"),
    ("delivered", "Đã chuyển phát"),
    ("dead", "Thất bại"),
)


def current_month(now: datetime | None = None) -> Month:
    """The calendar month it is now in Việt Nam."""
    local = (now or datetime.now(VN_TZ)).astimezone(VN_TZ)
    return Month(local.year, local.month)


def previous_month(month: Month) -> Month | None:
    prev = Month(month.year - 1, 12) if month.month == 1 else Month(month.year, month.month - 1)
    return prev if prev.year >= 1970 else None


def next_month(month: Month) -> Month | None:
    nxt = Month(month.year + 1, 1) if month.month == 12 else Month(month.year, month.month + 1)
    return nxt if nxt.year <= 9998 else None


def cells(figures: FiguresOut) -> list[tuple[Column, str]]:
    return [(c, c.fmt(getattr(figures, c.field))) for c in COLUMNS]


def report_csv(report: MonthlyReportOut) -> str:
    """The report as CSV for spreadsheet software: the UTF-8 byte order mark, a heading row in Vietnamese,
    one row per agency, then the totals; shares in percent and times in seconds with one decimal (the page's
    figures), an empty cell where the report has none (nothing sent, nothing received)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["Tháng", "Mã định danh", "Tên cơ quan", *(c.label for c in COLUMNS)])
    rows: list[tuple[str, str, FiguresOut]] = [(a.code, a.name, a) for a in report.agencies]
    rows.append(("", "Tổng cộng", report.totals))
    for code, name, figures in rows:
        writer.writerow([report.month, csv_cell(code), csv_cell(name), *(text for _, text in cells(figures))])
    return CSV_BOM + buffer.getvalue()


def _charted(agencies: list[AgencyFiguresOut]) -> list[AgencyFiguresOut]:
    """The agencies worth a group of bars: those with any charted figure, the busiest :data:`CHART_AGENCIES`
    of them (by documents sent and received), in the report's order."""
    active = [a for a in agencies if any(getattr(a, field) for field, _ in SERIES)]
    if len(active) <= CHART_AGENCIES:
        return active
    busiest = sorted(active, key=lambda a: (-(a.sent + a.received), a.code))[:CHART_AGENCIES]
    keep = {a.code for a in busiest}
    return [a for a in active if a.code in keep]


def report_chart(report: MonthlyReportOut) -> tuple[str, int]:
    """(the chart's SVG, how many agencies with traffic were left out of it)."""
    charted = _charted(report.agencies)
    active = sum(1 for a in report.agencies if any(getattr(a, field) for field, _ in SERIES))
    groups = [(a.name, {label: float(getattr(a, field)) for field, label in SERIES}) for a in charted]
    svg = grouped_bar_chart(
        groups,
        title=f"Văn bản gửi, nhận và kết quả chuyển phát theo cơ quan, tháng {report.month}",
        description=("Biểu đồ cột nhóm: với mỗi cơ quan, số văn bản gửi, số văn bản nhận, số lượt chuyển phát "
                     "thành công và thất bại của văn bản gửi trong tháng. Số liệu đầy đủ ở bảng bên dưới."),
        series=[label for _, label in SERIES],
        element_id="report-chart",
        empty_text="Không có văn bản nào trong tháng này",
    )
    return svg, active - len(charted)


async def _report(session: SessionDep, month: str | None) -> MonthlyReportOut:
    parsed = Month.parse(month) if month is not None else current_month()  # ReportMonthInvalid: a 422 page
    return MonthlyReportOut.of(await monthly_report(session, parsed))


@router.get("/report", response_class=HTMLResponse)
async def report_page(request: Request, user: CurrentConsoleUser, session: SessionDep,
                      month: MonthQuery = None) -> HTMLResponse:
    report = await _report(session, month)
    parsed = Month.parse(report.month)
    svg, left_out = report_chart(report)
    context = {
        "report": report,
        "columns": COLUMNS,
        "rows": [(a, cells(a)) for a in report.agencies],
        "totals": cells(report.totals),
        "chart": Markup(svg),  # noqa: S704 -- built by gateway.webconsole.chart, which escapes every text
        "left_out": left_out,
        "chart_agencies": CHART_AGENCIES,
        "previous": previous_month(parsed),
        "next": next_month(parsed),
        "current": str(current_month()),
    }
    return render(request, "report.html", context, user=user)


@router.get("/report.csv")
async def report_csv_download(user: CurrentConsoleUser, session: SessionDep,
                              month: MonthQuery = None) -> Response:
    report = await _report(session, month)
    return Response(
        report_csv(report).encode("utf-8"),
        media_type=CSV_MEDIA_TYPE,
        headers={**SECURITY_HEADERS,
                 "Content-Disposition": f'attachment; filename="bao-cao-thang-{report.month}.csv"'},
    )
