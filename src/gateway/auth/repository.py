"""Every SQL statement on operators and tokens."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency
from gateway.auth.models import ApiToken, Operator


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def operator_by_name(self, name: str) -> Operator | None:
        result = await self.session.execute(select(Operator).where(Operator.name == name))
        return result.scalar_one_or_none()

    async def add(self, obj: Operator | ApiToken) -> None:
        self.session.add(obj)
        await self.session.flush()

    async def token(self, token_id: str) -> ApiToken | None:
        return await self.session.get(ApiToken, token_id)

    async def resolve(self, token_hash: str) -> tuple[ApiToken, Agency | None, Operator | None] | None:
        result = await self.session.execute(
            select(ApiToken, Agency, Operator)
            .outerjoin(Agency, Agency.code == ApiToken.agency_code)
            .outerjoin(Operator, Operator.id == ApiToken.operator_id)
            .where(ApiToken.token_hash == token_hash)
        )
        row = result.one_or_none()
        if row is None:
            return None
        return row[0], row[1], row[2]

    async def flush(self) -> None:
        await self.session.flush()
