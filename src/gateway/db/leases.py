"""Named leases: a loop that must run in one process at a time across every process sharing the database.

A lease is a row ``(name, owner, until)``. :meth:`LeaseRepository.acquire` takes it when it is free, expired,
or already the caller's (then it is extended), with one conditional statement, so that two processes racing
for it can never both hold it: on PostgreSQL the row lock serialises them, on SQLite the single writer does.
The holder renews it well before ``until``; a holder that dies simply stops renewing and another process
takes the lease once it has expired. Used by the upstream poller (:mod:`gateway.upstream.poller`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base, UTCDateTime


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LeaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def acquire(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take or extend the lease ``name`` until ``until``; False when another owner holds it unexpired."""
        taken = await self.session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.owner.is_(None), Lease.owner == owner, Lease.until < now))
            .values(owner=owner, until=until)
            .returning(Lease.name)
            .execution_options(synchronize_session=False)
        )
        if taken.first() is not None:
            return True
        exists = await self.session.execute(select(Lease.name).where(Lease.name == name))
        if exists.first() is not None:
            return False
        try:
            async with self.session.begin_nested():
                self.session.add(Lease(name=name, owner=owner, until=until))
        except IntegrityError:  # another process created it first: it holds it
            return False
        return True

    async def release(self, name: str, owner: str) -> None:
        await self.session.execute(
            update(Lease).where(Lease.name == name, Lease.owner == owner).values(owner=None, until=None)
            .execution_options(synchronize_session=False)
        )

    async def holder(self, name: str) -> tuple[str | None, datetime | None]:
        row = (await self.session.execute(select(Lease.owner, Lease.until).where(Lease.name == name))).first()
        return (row.owner, row.until) if row is not None else (None, None)
