"""Every SQL statement on the register tables."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency, AgencyCertificate


class AgencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, code: str) -> Agency | None:
        return await self.session.get(Agency, code)

    async def get_many(self, codes: Sequence[str]) -> dict[str, Agency]:
        if not codes:
            return {}
        result = await self.session.execute(select(Agency).where(Agency.code.in_(list(codes))))
        return {a.code: a for a in result.scalars()}

    async def all(self) -> Sequence[Agency]:
        result = await self.session.execute(select(Agency).order_by(Agency.code))
        return result.scalars().all()

    async def by_alt_code(self, alt_code: str) -> Agency | None:
        result = await self.session.execute(select(Agency).where(Agency.alt_code == alt_code))
        return result.scalar_one_or_none()

    async def add(self, agency: Agency) -> None:
        self.session.add(agency)
        await self.session.flush()

    async def flush(self) -> None:
        await self.session.flush()

    async def certificates(self, code: str) -> Sequence[AgencyCertificate]:
        result = await self.session.execute(
            select(AgencyCertificate)
            .where(AgencyCertificate.agency_code == code)
            .order_by(AgencyCertificate.added_at, AgencyCertificate.sha256)
        )
        return result.scalars().all()

    async def certificates_for(self, codes: Sequence[str]) -> dict[str, list[AgencyCertificate]]:
        out: dict[str, list[AgencyCertificate]] = {c: [] for c in codes}
        if not codes:
            return out
        result = await self.session.execute(
            select(AgencyCertificate)
            .where(AgencyCertificate.agency_code.in_(list(codes)))
            .order_by(AgencyCertificate.added_at, AgencyCertificate.sha256)
        )
        for cert in result.scalars():
            out[cert.agency_code].append(cert)
        return out

    async def certificate(self, sha256: str) -> AgencyCertificate | None:
        return await self.session.get(AgencyCertificate, sha256)

    async def add_certificate(self, cert: AgencyCertificate) -> None:
        self.session.add(cert)
        await self.session.flush()
