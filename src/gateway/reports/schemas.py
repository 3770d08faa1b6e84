"""The report's JSON shapes. Names are part of the HTTP contract (DESIGN.md): add fields, never rename."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from gateway.reports.service import TIMEZONE_NAME, Figures, MonthlyReport


class FiguresOut(BaseModel):
    sent: int
    received: int
    delivered: int
    dead: int
    signed_xml: int
    signed_pdf: int
    signed_xml_share: float | None
    signed_pdf_share: float | None
    delivery_seconds_median: float | None
    delivery_seconds_p95: float | None
    status_06: int
    deviations: dict[str, int] = Field(
        description="deviation code → messages sent in the month that carry it (README, Interoperability)"
    )
    with_deviations: int = Field(description="messages sent in the month that carry at least one deviation")
    sent_local: int = Field(
        description="of sent, documents carried within this gateway: submitted here by a local agency and "
        "addressed to local agencies only"
    )
    sent_forwarded: int = Field(
        description="of sent, cross-border documents going out: submitted here with at least one recipient reached "
        "through the upstream axis (a delivery of mode upstream), whether or not it also has local recipients"
    )
    sent_from_upstream: int = Field(
        description="of sent, cross-border documents coming in: they arrived from the upstream axis (their sender "
        "is the upstream agency that sent them). sent_local + sent_forwarded + sent_from_upstream = sent"
    )

    @classmethod
    def fields_of(cls, f: Figures) -> dict[str, Any]:
        return {
            "sent": f.sent, "received": f.received, "delivered": f.delivered, "dead": f.dead,
            "signed_xml": f.signed_xml, "signed_pdf": f.signed_pdf, "signed_xml_share": f.signed_xml_share,
            "signed_pdf_share": f.signed_pdf_share, "delivery_seconds_median": f.delivery_seconds_median,
            "delivery_seconds_p95": f.delivery_seconds_p95, "status_06": f.status_06,
            "deviations": f.deviations, "with_deviations": f.with_deviations, "sent_local": f.sent_local,
            "sent_forwarded": f.sent_forwarded, "sent_from_upstream": f.sent_from_upstream,
        }


class AgencyFiguresOut(FiguresOut):
    code: str
    name: str


class MonthlyReportOut(BaseModel):
    month: str = Field(examples=["2026-11"])
    timezone: str = Field(examples=[TIMEZONE_NAME], description="the month's boundaries are local to this zone")
    start: datetime = Field(description="first instant of the month (inclusive)")
    end: datetime = Field(description="first instant after the month (exclusive)")
    generated_at: datetime
    agencies: list[AgencyFiguresOut]
    totals: FiguresOut

    @classmethod
    def of(cls, report: MonthlyReport) -> MonthlyReportOut:
        return cls(
            month=str(report.month),
            timezone=TIMEZONE_NAME,
            start=report.month.start,
            end=report.month.end,
            generated_at=report.generated_at,
            agencies=[
                AgencyFiguresOut(code=a.code, name=a.name, **FiguresOut.fields_of(a.figures))
                for a in report.agencies
            ],
            totals=FiguresOut(**FiguresOut.fields_of(report.totals)),
        )
