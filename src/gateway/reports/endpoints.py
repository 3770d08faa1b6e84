"""``/v1/reports/monthly``: the Điều 15.11 figures, for operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import CurrentOperator, SessionDep
from gateway.problem_handlers import problems
from gateway.problems import Forbidden, Unauthenticated
from gateway.reports.errors import ReportMonthInvalid
from gateway.reports.schemas import MonthlyReportOut
from gateway.reports.service import Month, monthly_report

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get(
    "/monthly",
    response_model=MonthlyReportOut,
    responses=problems(Unauthenticated, Forbidden, ReportMonthInvalid),
)
async def report_monthly(
    operator: CurrentOperator,
    session: SessionDep,
    month: Annotated[str, Query(description="YYYY-MM, a calendar month in Asia/Ho_Chi_Minh", examples=["2026-11"])],
) -> MonthlyReportOut:
    """The Điều 15.11 figures per agency for one month (see ``gateway.reports.service`` for each figure)."""
    report = await monthly_report(session, Month.parse(month))
    return MonthlyReportOut.of(report)
