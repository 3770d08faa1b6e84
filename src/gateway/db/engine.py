"""Engine and session factory for SQLite (aiosqlite, the embedded default) and PostgreSQL (asyncpg).

SQLite: WAL, foreign keys on, and every transaction starts with ``BEGIN IMMEDIATE`` so that a
read-then-write transaction (the ledger append reads the head, then writes) never fails half way with
"database is locked": writers queue on the busy timeout instead.

Reads that decide nothing on their own (authentication, the checks before an envelope's write
transaction, which the write transaction's constraints back up) use :meth:`Database.read`: on PostgreSQL
no BEGIN/COMMIT round trips (autocommit, each statement sees what is committed when it starts); on SQLite
a deferred ``BEGIN`` that does not take the single writer lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

#: the execution option that marks the connections of :meth:`Database.read` sessions
READ_ONLY = "gateway_read_only"


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    _reader: AsyncEngine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The reader shares the pool. PostgreSQL: the isolation level is set on checkout and put back on
        # return (no round trip on asyncpg, where autocommit only means the driver sends no BEGIN). SQLite:
        # the option only tells the "begin" hook to start a deferred transaction.
        options: dict[str, Any] = {READ_ONLY: True}
        if self.dialect != "sqlite":
            options["isolation_level"] = "AUTOCOMMIT"
        self._reader = self.engine.execution_options(**options)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any exception."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only (see the module docstring); writing through it is a bug."""
        async with self.sessionmaker(bind=self._reader) as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_setup(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions start (see the "begin" hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")  # deferred: a consistent snapshot, no writer lock
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_database(
    url: str, *, echo: bool = False, pool_size: int = 10, pool_timeout: float = 30.0, pre_ping: bool = False,
    sqlite_busy_timeout_ms: int = 30_000,
) -> Database:
    """The engine and sessions for ``url``.

    Pool: ``pool_size`` connections kept, an eighth more on overflow; a checkout waits ``pool_timeout`` seconds
    (then ``sqlalchemy.exc.TimeoutError``, answered 503 database-unavailable). On SQLite a writer waits up to
    ``sqlite_busy_timeout_ms`` for the write lock ("database is locked" after it: also 503). Connections are
    not pinged on checkout unless ``pre_ping``: a ping is one more round trip for every transaction, and after
    a database restart SQLAlchemy invalidates the whole pool on the first dead connection it meets, so one
    request per process gets a 503 it may retry (nothing of it was committed) instead of every request paying
    the ping.
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": pre_ping}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": sqlite_busy_timeout_ms / 1000}
    if parsed.database != ":memory:":
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size // 8
        kwargs["pool_timeout"] = pool_timeout
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _sqlite_setup(engine, sqlite_busy_timeout_ms)
    return Database(engine=engine, sessionmaker=async_sessionmaker(engine, expire_on_commit=False))
