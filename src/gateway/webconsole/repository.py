"""Every SQL statement of the console itself (its sessions). The pages read everything else through the
domain packages' own services and repositories."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.models import ApiToken, Operator
from gateway.documents.models import Document
from gateway.ledger.models import LedgerEntry
from gateway.webconsole.models import ConsoleSession


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: ConsoleSession) -> None:
        self.session.add(row)
        await self.session.flush()

    async def resolve(self, session_id: str) -> tuple[ConsoleSession, Operator, ApiToken] | None:
        """A session with its operator and the token it was opened with."""
        result = await self.session.execute(
            select(ConsoleSession, Operator, ApiToken)
            .join(Operator, Operator.id == ConsoleSession.operator_id)
            .join(ApiToken, ApiToken.id == ConsoleSession.token_id)
            .where(ConsoleSession.id == session_id)
        )
        row = result.one_or_none()
        if row is None:
            return None
        return row[0], row[1], row[2]

    async def touch(self, session_id: str, now: datetime) -> None:
        await self.session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == session_id, ConsoleSession.ended_at.is_(None))
            .values(last_seen_at=now)
        )

    async def end(self, session_id: str, now: datetime) -> bool:
        """End a session; False when it had already ended."""
        result = await self.session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == session_id, ConsoleSession.ended_at.is_(None))
            .values(ended_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def set_last_seen(self, session_id: str, instant: datetime) -> None:
        """For tests and tools: move a session's last activity (e.g. into the past, to see it idle out)."""
        await self.session.execute(
            update(ConsoleSession).where(ConsoleSession.id == session_id).values(last_seen_at=instant)
        )


class ConsoleReadRepository:
    """The few reads the console's pages need that no domain package offers (counts by period, the ledger's
    latest entries, every entry about a document and the messages that refer to it)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def documents_by_kind(self, since: datetime) -> dict[str, int]:
        """Documents and statuses sent from ``since`` on, by kind (document | status)."""
        result = await self.session.execute(
            select(Document.kind, func.count()).where(Document.sent_at >= since).group_by(Document.kind))
        return {kind: int(count) for kind, count in result.all()}

    async def latest_ledger(self, limit: int) -> Sequence[LedgerEntry]:
        """The ledger's last ``limit`` entries, newest first."""
        result = await self.session.execute(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(limit))
        return result.scalars().all()

    async def referring(self, document: str) -> Sequence[Document]:
        """The messages that refer to ``document``: statuses about it, its recall, update or replacement."""
        result = await self.session.execute(
            select(Document).where(Document.refers_to == document).order_by(Document.sent_at, Document.id))
        return result.scalars().all()

    async def ledger_about(self, documents: Collection[str], limit: int) -> Sequence[LedgerEntry]:
        """Every entry about one of ``documents``, in seq order (at most ``limit``)."""
        if not documents:
            return []
        result = await self.session.execute(
            select(LedgerEntry).where(LedgerEntry.document.in_(sorted(documents)))
            .order_by(LedgerEntry.seq).limit(limit))
        return result.scalars().all()
