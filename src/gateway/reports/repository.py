"""The monthly report's reads over the register, documents, attachments and deliveries.

Aggregates in SQL where it can (counts per sender and per state); the delivery times are streamed, one
row per delivery, because the percentiles are computed in Python the same way on both databases.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.agency.models import Agency
from gateway.documents.models import Attachment, Delivery, Document

#: the key of :meth:`ReportRepository.deviations`' counters that counts messages with any deviation
MARKED = "*"


@dataclass(frozen=True, slots=True)
class SentCounts:
    sent: int
    signed_xml: int
    signed_pdf: int
    status_06: int
    #: of ``sent``, each document once by where it went (issue 15): the three add up to ``sent``
    local: int
    forwarded: int
    from_upstream: int


class ReportRepository:
    """The monthly report's reads over documents, attachments and deliveries, for [start, end) in UTC."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def agencies(self) -> list[tuple[str, str, bool]]:
        """Every agency: code, name, and whether it was imported from the upstream's register."""
        result = await self.session.execute(select(Agency.code, Agency.name, Agency.source).order_by(Agency.code))
        return [(code, name, source == "upstream") for code, name, source in result]

    async def sent_counts(self, start: datetime, end: datetime) -> dict[str, SentCounts]:
        """Per sender: documents sent in the range; of them XML-signed, with a valid PDF signature, at status 06;
        and each of them once by where it went: arrived from the upstream axis (``documents.upstream_doc_id``
        set), else forwarded (at least one delivery of mode ``upstream``), else local."""
        d = Document
        status = aliased(Document)
        pdf_signed = exists().where(Attachment.document == d.id, Attachment.pdf_signature == "valid")
        reached_06 = exists().where(status.kind == "status", status.status_code == "06", status.refers_to == d.id)
        from_upstream = d.upstream_doc_id.is_not(None)
        forwarded = exists().where(Delivery.document == d.id, Delivery.mode == "upstream")
        stmt = (
            select(
                d.sender,
                func.count(),
                func.sum(case((d.signed, 1), else_=0)),
                func.sum(case((pdf_signed, 1), else_=0)),
                func.sum(case((reached_06, 1), else_=0)),
                func.sum(case((from_upstream, 0), (forwarded, 0), else_=1)),
                func.sum(case((from_upstream, 0), (forwarded, 1), else_=0)),
                func.sum(case((from_upstream, 1), else_=0)),
            )
            .where(d.kind == "document", d.sent_at >= start, d.sent_at < end)
            .group_by(d.sender)
        )
        result = await self.session.execute(stmt)
        return {
            sender: SentCounts(int(sent), int(xml or 0), int(pdf or 0), int(s06 or 0), int(local or 0),
                               int(fwd or 0), int(up or 0))
            for sender, sent, xml, pdf, s06, local, fwd, up in result
        }

    async def deviations(self, start: datetime, end: datetime) -> dict[str, Counter[str]]:
        """Per sender: how many of the messages (documents and statuses) it sent in the range carry each
        deviation code (a message counts once per code, however often the quirk repeats in it), and under
        the key :data:`MARKED` how many carry any."""
        stmt = select(Document.sender, Document.deviations).where(
            Document.sent_at >= start, Document.sent_at < end, Document.deviations != "[]",
            Document.automatic.is_(False),
        )
        out: dict[str, Counter[str]] = defaultdict(Counter)
        result = await self.session.stream(stmt.execution_options(yield_per=5_000))
        async for sender, raw in result:
            codes = {d["code"] for d in json.loads(raw)}
            out[sender].update(codes)
            out[sender][MARKED] += 1 if codes else 0
        return dict(out)

    async def final_states(self, start: datetime, end: datetime) -> dict[tuple[str, str], int]:
        """(sender, state) → deliveries now delivered or dead, of the documents sent in the range."""
        stmt = (
            select(Document.sender, Delivery.state, func.count())
            .join(Document, Delivery.document == Document.id)
            .where(
                Document.kind == "document",
                Document.sent_at >= start,
                Document.sent_at < end,
                Delivery.state.in_(("delivered", "dead")),
            )
            .group_by(Document.sender, Delivery.state)
        )
        result = await self.session.execute(stmt)
        return {(sender, state): int(n) for sender, state, n in result}

    async def received(self, start: datetime, end: datetime) -> AsyncIterator[tuple[str, datetime, datetime]]:
        """(recipient, sent_at, received_at) of every document delivery received in the range."""
        stmt = (
            select(Delivery.recipient, Document.sent_at, Delivery.received_at)
            .join(Document, Delivery.document == Document.id)
            .where(Document.kind == "document", Delivery.received_at >= start, Delivery.received_at < end)
        )
        result = await self.session.stream(stmt.execution_options(yield_per=5_000))
        async for recipient, sent_at, received_at in result:
            if received_at is not None:
                yield recipient, sent_at, received_at
