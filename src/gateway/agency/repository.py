"""Every SQL statement on the register tables."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from sqlalchemy import String, bindparam, delete, insert, literal_column, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CompoundSelect

from gateway.agency.models import Agency, AgencyAlias, AgencyCertificate

NameKind = Literal["code", "alt_code", "alias"]

_PG_NAMES_LOCK_KEY = 0x6E616D65  # "name"
#: rows or IN-list items per statement (both databases bound the parameters of one statement)
_CHUNK = 500


# Intake's reads, built once (issue 17: building a statement and its cache key on every call cost more than
# running it); the values are bound per call.
_MANY = select(Agency).where(Agency.code.in_(bindparam("codes", expanding=True)))


@dataclass(frozen=True)
class NameHolder:
    """``name`` is held by agency ``agency_code`` as its code, its alt_code or one of its aliases."""

    name: str
    kind: NameKind
    agency_code: str


class AgencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, code: str) -> Agency | None:
        return await self.session.get(Agency, code)

    async def get_many(self, codes: Sequence[str]) -> dict[str, Agency]:
        if not codes:
            return {}
        result = await self.session.execute(_MANY, {"codes": list(codes)})
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

    async def lock_names(self) -> None:
        """Serialize changes to the register's names (codes, alt_codes, aliases) until the end of this
        transaction, so that the uniqueness across the three, which no single constraint holds, is checked
        against everything committed before.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions already start with BEGIN
        IMMEDIATE (see gateway.db.engine), so only one writer exists at a time.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_NAMES_LOCK_KEY})

    async def holders(self, names: Collection[str]) -> list[NameHolder]:
        """Every agency holding one of ``names`` as its code, its alt_code or an alias (the register's one
        namespace of names), ordered by name, then kind."""
        wanted = sorted(set(names))
        if not wanted:
            return []
        query: CompoundSelect[str | None, str, str] = union_all(
            select(Agency.code.label("name"), literal_column("'code'", String).label("kind"),
                   Agency.code.label("agency_code"))
            .where(Agency.code.in_(wanted)),
            select(Agency.alt_code, literal_column("'alt_code'", String), Agency.code)
            .where(Agency.alt_code.in_(wanted)),
            select(AgencyAlias.alias, literal_column("'alias'", String), AgencyAlias.agency_code)
            .where(AgencyAlias.alias.in_(wanted)),
        )
        rows = (await self.session.execute(query)).all()
        found = [NameHolder(name, cast(NameKind, k), code) for name, k, code in rows if name is not None]
        return sorted(found, key=lambda h: (h.name, h.kind, h.agency_code))

    async def alias_map(self) -> dict[str, str]:
        """Every alias and every alt_code → the code of the agency it names (to resolve a To or From that
        names an agency other than by its code)."""
        query: CompoundSelect[str | None, str] = union_all(
            select(AgencyAlias.alias, AgencyAlias.agency_code),
            select(Agency.alt_code, Agency.code).where(Agency.alt_code.is_not(None)),
        )
        return {name: code for name, code in (await self.session.execute(query)).all() if name is not None}

    async def aliases_of(self, code: str) -> list[str]:
        result = await self.session.execute(
            select(AgencyAlias.alias).where(AgencyAlias.agency_code == code).order_by(AgencyAlias.alias)
        )
        return list(result.scalars())

    async def aliases_for(self, codes: Sequence[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c: [] for c in codes}
        if not codes:
            return out
        result = await self.session.execute(
            select(AgencyAlias.agency_code, AgencyAlias.alias)
            .where(AgencyAlias.agency_code.in_(list(codes)))
            .order_by(AgencyAlias.agency_code, AgencyAlias.alias)
        )
        for code, alias in result.all():
            out[code].append(alias)
        return out

    async def replace_aliases(self, code: str, aliases: Collection[str]) -> None:
        """The agency's aliases become exactly ``aliases``; the primary key refuses (IntegrityError) an alias
        another agency holds, even one committed after the caller's checks."""
        await self.session.execute(delete(AgencyAlias).where(AgencyAlias.agency_code == code))
        if aliases:
            await self.session.execute(
                insert(AgencyAlias), [{"alias": a, "agency_code": code} for a in sorted(set(aliases))]
            )

    # -- the upstream register sync (gateway.upstream.sync): set-wise, for registers of thousands of agencies

    async def all_aliases(self) -> dict[str, list[str]]:
        """Every alias of the register: agency code → its aliases, sorted (agencies without one are absent)."""
        result = await self.session.execute(
            select(AgencyAlias.agency_code, AgencyAlias.alias).order_by(AgencyAlias.agency_code, AgencyAlias.alias)
        )
        out: dict[str, list[str]] = {}
        for code, alias in result.all():
            out.setdefault(code, []).append(alias)
        return out

    async def add_all(self, agencies: Sequence[Agency]) -> None:
        """Insert ``agencies`` in the order given (a parent before its children)."""
        self.session.add_all(agencies)
        await self.session.flush()

    async def replace_aliases_of(self, aliases: Mapping[str, Collection[str]]) -> None:
        """The aliases of each agency named in ``aliases`` become exactly the ones given: all of theirs are
        deleted first, so an alias may move from one of them to another in one call."""
        codes = sorted(aliases)
        for i in range(0, len(codes), _CHUNK):
            await self.session.execute(delete(AgencyAlias).where(AgencyAlias.agency_code.in_(codes[i:i + _CHUNK])))
        rows = [{"alias": a, "agency_code": code} for code in codes for a in sorted(set(aliases[code]))]
        for i in range(0, len(rows), _CHUNK):
            await self.session.execute(insert(AgencyAlias), rows[i:i + _CHUNK])
