"""The monthly figures of Điều 15.11 (seeds/001: a report on the 15th of each month), per agency.

The figures are the ones seeds/004 tracks: how much went electronically, how much was digitally signed,
how fast it arrived. The month is Vietnam's calendar month: from the 1st at 00:00 to the next 1st at 00:00
in Asia/Ho_Chi_Minh (UTC+07:00 all year; no daylight saving since 1975), i.e. from 17:00 UTC on the last
day of the month before. Only documents count (``documents.kind = 'document'``); status messages are
not documents in the sense of Điều 15.11.

Per agency:

==========================  ======================================================================================
``sent``                    documents it sent whose sent instant falls in the month
``received``                deliveries of documents to it whose received instant falls in the month
``delivered``, ``dead``     deliveries of the documents it sent in the month that are now ``delivered`` / ``dead``
``signed_xml``              of ``sent``, documents whose XML signature was verified at intake
``signed_pdf``              of ``sent``, documents with at least one attachment whose PDF signature is ``valid``
``*_share``                 that count divided by ``sent`` (null when nothing was sent)
``delivery_seconds_*``      median and 95th percentile of (received instant - sent instant), in seconds, over
                            the ``received`` deliveries; linear interpolation between closest ranks (as
                            PostgreSQL ``percentile_cont`` and numpy's default); null when nothing was received
``status_06``               of ``sent``, documents that have reached status 06 (a status message with code 06
                            referring to them), as of when the report is made
``sent_local``              of ``sent``, documents carried within this gateway: submitted here by a local
                            agency and addressed to local agencies only
``sent_forwarded``          of ``sent``, cross-border documents going out: submitted here, with at least one
                            recipient reached through the upstream axis (a delivery of mode ``upstream``),
                            local recipients or not
``sent_from_upstream``      of ``sent``, cross-border documents coming in: they arrived from the upstream
                            axis (``documents.upstream_doc_id`` set; the sender is the upstream agency that
                            sent them); counted here even should one of them also have an upstream delivery
``deviations``              deviation code → how many messages (documents and statuses) the agency sent in
                            the month carry it (README, "Interoperability"): what to ask its vendor to fix
``with_deviations``         how many messages it sent in the month carry at least one deviation
==========================  ======================================================================================

``sent_local + sent_forwarded + sent_from_upstream = sent``: each document is counted once, so the
report separates local from cross-border traffic per agency and in the totals.

``totals`` holds the same figures over all agencies. Every local agency is listed, idle ones with zeros, so
that the report is complete; an agency imported from the upstream's register (there may be hundreds) is listed
only when it had traffic in the month.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.reports.errors import ReportMonthInvalid
from gateway.reports.repository import MARKED, ReportRepository, SentCounts

VN_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
TIMEZONE_NAME = "Asia/Ho_Chi_Minh"
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, raw: str) -> Month:
        match = _MONTH.fullmatch(raw.strip())
        if match is None or not 1970 <= int(match.group(1)) <= 9998:
            raise ReportMonthInvalid("month: YYYY-MM, e.g. 2026-11", field="month")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        """The first instant of the month in Vietnam (aware, +07:00)."""
        return datetime(self.year, self.month, 1, tzinfo=VN_TZ)

    @property
    def end(self) -> datetime:
        """The first instant after the month in Vietnam (exclusive)."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=VN_TZ)
        return datetime(self.year, self.month + 1, 1, tzinfo=VN_TZ)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks over ``ordered`` (ascending); None when empty."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Figures:
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
    deviations: dict[str, int]
    with_deviations: int
    sent_local: int
    sent_forwarded: int
    sent_from_upstream: int


@dataclass(frozen=True, slots=True)
class AgencyFigures:
    code: str
    name: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    month: Month
    generated_at: datetime
    agencies: list[AgencyFigures]
    totals: Figures


def _figures(counts: SentCounts, delivered: int, dead: int, durations: list[float],
             deviations: Counter[str]) -> Figures:
    durations.sort()
    return Figures(
        sent=counts.sent,
        received=len(durations),
        delivered=delivered,
        dead=dead,
        signed_xml=counts.signed_xml,
        signed_pdf=counts.signed_pdf,
        signed_xml_share=counts.signed_xml / counts.sent if counts.sent else None,
        signed_pdf_share=counts.signed_pdf / counts.sent if counts.sent else None,
        delivery_seconds_median=percentile(durations, 0.5),
        delivery_seconds_p95=percentile(durations, 0.95),
        status_06=counts.status_06,
        deviations={code: n for code, n in sorted(deviations.items()) if code != MARKED},
        with_deviations=deviations[MARKED],
        sent_local=counts.local,
        sent_forwarded=counts.forwarded,
        sent_from_upstream=counts.from_upstream,
    )


async def monthly_report(session: AsyncSession, month: Month, *, now: datetime | None = None) -> MonthlyReport:
    repo = ReportRepository(session)
    start, end = month.start.astimezone(UTC), month.end.astimezone(UTC)
    agencies = await repo.agencies()
    sent = await repo.sent_counts(start, end)
    final = await repo.final_states(start, end)
    deviations = await repo.deviations(start, end)
    durations: dict[str, list[float]] = defaultdict(list)
    async for recipient, sent_at, received_at in repo.received(start, end):
        durations[recipient].append((received_at - sent_at).total_seconds())

    none = SentCounts(0, 0, 0, 0, 0, 0, 0)
    rows = [
        AgencyFigures(
            code=code,
            name=name,
            figures=_figures(sent.get(code, none), final.get((code, "delivered"), 0), final.get((code, "dead"), 0),
                             list(durations.get(code, [])), deviations.get(code, Counter())),
        )
        for code, name, upstream in agencies
        # an agency of the upstream's register (hundreds of them) is listed only when it had traffic
        if not upstream or code in sent or code in durations or code in deviations
        or any(key[0] == code for key in final)
    ]
    total_counts = SentCounts(
        sent=sum(c.sent for c in sent.values()),
        signed_xml=sum(c.signed_xml for c in sent.values()),
        signed_pdf=sum(c.signed_pdf for c in sent.values()),
        status_06=sum(c.status_06 for c in sent.values()),
        local=sum(c.local for c in sent.values()),
        forwarded=sum(c.forwarded for c in sent.values()),
        from_upstream=sum(c.from_upstream for c in sent.values()),
    )
    totals = _figures(
        total_counts,
        sum(n for (_, state), n in final.items() if state == "delivered"),
        sum(n for (_, state), n in final.items() if state == "dead"),
        [d for values in durations.values() for d in values],
        sum(deviations.values(), Counter()),
    )
    return MonthlyReport(month=month, generated_at=now or datetime.now(UTC), agencies=rows, totals=totals)
