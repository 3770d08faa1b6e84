"""The schema comes only from Alembic: upgrade → downgrade → upgrade on both databases."""

from __future__ import annotations

from sqlalchemy import inspect

from gateway.db import create_database
from gateway.db.migrate import current_revision, downgrade_sync, head_revision, upgrade_sync


async def test_migrations_upgrade_downgrade_upgrade(db_url: str) -> None:
    db = create_database(db_url)
    try:
        async with db.engine.begin() as conn:
            assert await conn.run_sync(current_revision) == head_revision()
            await conn.run_sync(downgrade_sync)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert tables <= {"alembic_version"}
            assert await conn.run_sync(current_revision) is None
        async with db.engine.begin() as conn:
            await conn.run_sync(upgrade_sync)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            assert {"agencies", "agency_certificates", "operators", "api_tokens", "ledger_entries"} <= tables
            assert await conn.run_sync(current_revision) == head_revision()
    finally:
        await db.dispose()
