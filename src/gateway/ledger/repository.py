"""Every SQL statement that touches the ledger table."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ledger.models import LedgerEntry

# Any constant will do; it only has to be the same in every gateway process sharing the database.
_PG_LEDGER_LOCK_KEY = 0x6C656467  # "ledg"


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_head(self) -> None:
        """Serialize appends until the end of this transaction.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions already start with
        BEGIN IMMEDIATE (see gateway.db.engine), so only one writer exists at a time.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LEDGER_LOCK_KEY})

    async def head(self) -> LedgerEntry | None:
        result = await self.session.execute(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1))
        return result.scalar_one_or_none()

    async def add(self, entry: LedgerEntry) -> None:
        self.session.add(entry)
        await self.session.flush()

    async def get(self, seq: int) -> LedgerEntry | None:
        return await self.session.get(LedgerEntry, seq)
