"""The SQL behind the operational figures (:mod:`gateway.health.figures`): what an operator watches and alerts on.

Each statement is one cheap read: deliveries counted by state (an index-only scan of
``ix_deliveries_state_updated`` on PostgreSQL), the oldest waiting delivery among the few waiting rows, the
ledger's head and the last checkpoint, each by its primary key's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.documents.models import Delivery
from gateway.ledger.models import LedgerCheckpoint, LedgerEntry


class HealthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def deliveries_by_state(self) -> dict[str, int]:
        """How many deliveries are in each state (states with none are absent)."""
        rows = await self.session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        return {state: int(count) for state, count in rows.all()}

    async def oldest_waiting(self, states: Sequence[str]) -> tuple[str, datetime] | None:
        """The delivery in ``states`` that has waited longest, and since when: its creation, or its re-queueing
        by an operator (a re-queued delivery waits from then, not from the document's sending)."""
        since = func.coalesce(Delivery.requeued_at, Delivery.created_at)
        row = (await self.session.execute(
            select(Delivery.id, since).where(Delivery.state.in_(list(states))).order_by(since, Delivery.id).limit(1)
        )).one_or_none()
        return None if row is None else (row[0], row[1])

    async def ledger_head_seq(self) -> int | None:
        return (await self.session.execute(select(func.max(LedgerEntry.seq)))).scalar_one_or_none()

    async def last_checkpoint(self) -> tuple[int, datetime] | None:
        """(size, signed_at) of the newest checkpoint."""
        row = (await self.session.execute(
            select(LedgerCheckpoint.size, LedgerCheckpoint.signed_at).order_by(LedgerCheckpoint.size.desc()).limit(1)
        )).one_or_none()
        return None if row is None else (row[0], row[1])
