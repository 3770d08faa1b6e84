"""Every SQL statement on operators and tokens (and the ending of a revoked operator's console sessions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, column, func, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency
from gateway.auth.models import ApiToken, Operator
from gateway.db.base import UTCDateTime

# The web console's sessions (``gateway.webconsole.models.ConsoleSession``), named here by table rather than
# imported: the console builds on this package, so importing it back would be a cycle (tests/test_layering.py).
_console_sessions = table(
    "console_sessions", column("id"), column("operator_id"), column("ended_at", UTCDateTime()),
)

# Every request's read, built once (issue 17: building a statement and its cache key cost more than running it).
_RESOLVE = (
    select(ApiToken, Agency, Operator)
    .outerjoin(Agency, Agency.code == ApiToken.agency_code)
    .outerjoin(Operator, Operator.id == ApiToken.operator_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def operator_by_name(self, name: str) -> Operator | None:
        result = await self.session.execute(select(Operator).where(Operator.name == name))
        return result.scalar_one_or_none()

    async def operators(self) -> Sequence[Operator]:
        result = await self.session.execute(select(Operator).order_by(Operator.created_at, Operator.name))
        return result.scalars().all()

    async def active_token_counts(self, now: datetime) -> dict[str, int]:
        """Per operator id: its tokens neither revoked nor expired at ``now``."""
        result = await self.session.execute(
            select(ApiToken.operator_id, func.count())
            .where(ApiToken.operator_id.is_not(None), ApiToken.revoked_at.is_(None),
                   (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now))
            .group_by(ApiToken.operator_id)
        )
        return {operator_id: int(count) for operator_id, count in result.all() if operator_id is not None}

    async def tokens(self, *, agency: str | None = None, operator_id: str | None = None
                     ) -> Sequence[tuple[ApiToken, Operator | None]]:
        """Tokens (with their operator, if any), oldest first; narrowed to one agency's or one operator's."""
        query = select(ApiToken, Operator).outerjoin(Operator, Operator.id == ApiToken.operator_id)
        if agency is not None:
            query = query.where(ApiToken.agency_code == agency)
        if operator_id is not None:
            query = query.where(ApiToken.operator_id == operator_id)
        result = await self.session.execute(query.order_by(ApiToken.created_at, ApiToken.id))
        return [(t, o) for t, o in result.all()]

    async def add(self, obj: Operator | ApiToken) -> None:
        self.session.add(obj)
        await self.session.flush()

    async def token(self, token_id: str) -> ApiToken | None:
        return await self.session.get(ApiToken, token_id)

    async def revoke_operator_tokens(self, operator_id: str, now: datetime) -> list[str]:
        """Revoke every token of the operator not yet revoked; the ids revoked."""
        result = await self.session.execute(
            update(ApiToken).where(ApiToken.operator_id == operator_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now).returning(ApiToken.id)
        )
        return sorted(result.scalars())

    async def end_console_sessions(self, operator_id: str, now: datetime) -> int:
        """End the operator's open console sessions; how many were open."""
        result = await self.session.execute(
            update(_console_sessions)
            .where(_console_sessions.c.operator_id == operator_id, _console_sessions.c.ended_at.is_(None))
            .values(ended_at=now).returning(_console_sessions.c.id)
        )
        return len(result.scalars().all())

    async def resolve(self, token_hash: str) -> tuple[ApiToken, Agency | None, Operator | None] | None:
        row = (await self.session.execute(_RESOLVE, {"token_hash": token_hash})).one_or_none()
        if row is None:
            return None
        return row[0], row[1], row[2]

    async def flush(self) -> None:
        await self.session.flush()
