"""Every SQL statement on the VXP systems, and the register's parent links they are served through."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency
from gateway.vxp.models import VxpSystem


class VxpRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, system_id: str) -> VxpSystem | None:
        return await self.session.get(VxpSystem, system_id)

    async def get_for_update(self, system_id: str) -> VxpSystem | None:
        """The row, locked until the end of the transaction on PostgreSQL (two revocations at once ledger one);
        SQLite's writers are serialized already (``BEGIN IMMEDIATE``)."""
        return await self.session.get(VxpSystem, system_id, with_for_update=True)

    async def all(self) -> Sequence[VxpSystem]:
        result = await self.session.execute(
            select(VxpSystem).order_by(VxpSystem.agency_code, VxpSystem.created_at, VxpSystem.system_id)
        )
        return result.scalars().all()

    async def add(self, system: VxpSystem) -> None:
        self.session.add(system)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    async def parent_links(self) -> list[tuple[str, str | None]]:
        """Every registered agency's ``(code, parent_code)``, active or not: the whole register's tree in one
        read (a few thousand short rows at most), walked in Python."""
        result = await self.session.execute(select(Agency.code, Agency.parent_code))
        return [(code, parent) for code, parent in result.all()]
