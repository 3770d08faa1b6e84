"""SQLite's writer lock held past the busy timeout (another process writing, a backup): the request answers
503 database-unavailable with Retry-After, never a 500, and nothing of it is stored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request

from gateway.db.engine import create_database
from gateway.problem_handlers import _on_database_error


async def test_a_held_sqlite_write_lock_is_a_503_not_a_500(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    db = create_database(f"sqlite+aiosqlite:///{path}", sqlite_busy_timeout_ms=100)
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(DBAPIError) as caught:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    request = Request({"type": "http", "method": "POST", "path": "/v1/envelopes", "headers": [], "query_string": b""})
    response = await _on_database_error(request, caught.value)
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert json.loads(bytes(response.body))["type"] == "urn:gateway:problem:database-unavailable"
    async with db.transaction() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0
    await db.dispose()
