"""Declarative base with a naming convention (so migrations name constraints the same on both databases)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC instant with microseconds on both databases.

    SQLite has no time zone type; values are stored as naive UTC and come back aware, so that the
    instants the gateway fixes (sent, received) compare and serialise the same everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


async def insert_rows(session: AsyncSession, rows: Sequence[Base]) -> None:
    """INSERT new rows of one mapped class in one statement (many rows: one multi-row INSERT), without the
    ORM's unit of work: the objects stay transient (not in the session), to be read, never changed.

    For the write paths that make many rows and read none back (acceptance, the ledger): the unit of work's
    flush cost more than the statement itself in issue 17's profile. Every row must have the same attributes
    set; an attribute left unset takes the column's default."""
    if not rows:
        return
    model = type(rows[0])
    keys = [c.key for c in model.__mapper__.column_attrs]
    values = [{k: row.__dict__[k] for k in keys if k in row.__dict__} for row in rows]
    # render_nulls: a None is written as NULL, not left out, so rows that differ only in which values are None
    # stay one statement (the ORM's bulk INSERT otherwise splits them into one statement per set of keys).
    await session.execute(insert(model).execution_options(render_nulls=True), values)
