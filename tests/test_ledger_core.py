"""The ledger is append-only in the database itself, and its chain verifies from genesis."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from gateway.db import create_database
from gateway.ledger import service as ledger
from gateway.ledger.chain import GENESIS_PREV_HASH, verify_entries
from gateway.ledger.models import LedgerEntry


async def _fill(db_url: str, n: int) -> None:
    db = create_database(db_url)
    try:
        for i in range(n):
            async with db.transaction() as session:
                await ledger.append(session, type="token.issued", actor="console:test", sender="000.00.00.H41",
                                    details={"token_id": f"t{i}", "note": "Văn phòng"})
    finally:
        await db.dispose()


async def _entries(db_url: str) -> list[LedgerEntry]:
    db = create_database(db_url)
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).scalars())
    finally:
        await db.dispose()


async def test_chain_starts_at_genesis_and_verifies(db_url: str) -> None:
    await _fill(db_url, 5)
    entries = await _entries(db_url)
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4, 5]
    assert entries[0].type == "ledger.genesis"
    assert entries[0].prev_hash == GENESIS_PREV_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    verdict = verify_entries(e.to_stored() for e in entries)
    assert verdict.ok
    assert verdict.size == 6
    assert verdict.first_bad_seq is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET actor = 'someone else' WHERE seq = 1",
        "DELETE FROM ledger_entries WHERE seq = 2",
        "DELETE FROM ledger_entries",
    ],
)
async def test_database_refuses_to_change_the_ledger(db_url: str, statement: str) -> None:
    await _fill(db_url, 3)
    db = create_database(db_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.engine.begin() as conn:
                await conn.execute(text(statement))
    finally:
        await db.dispose()
    entries = await _entries(db_url)
    assert len(entries) == 4
    assert entries[1].actor == "console:test"


async def test_postgresql_refuses_truncate(pg_url: str) -> None:
    # TRUNCATE exists only on PostgreSQL; SQLite's delete-everything is covered above.
    await _fill(pg_url, 1)
    db = create_database(pg_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.engine.begin() as conn:
                await conn.execute(text("TRUNCATE ledger_entries"))
    finally:
        await db.dispose()


def test_verify_names_the_edited_entry() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from gateway.ledger.chain import EntryFields, StoredEntry, entry_hash

    entries: list[StoredEntry] = []
    prev = GENESIS_PREV_HASH
    for seq in range(4):
        fields = EntryFields(seq, datetime(2026, 11, 21, tzinfo=UTC), "t", "gateway", None, None, None, None, prev,
                             '{"n":' + str(seq) + "}")
        entries.append(StoredEntry(fields, entry_hash(fields)))
        prev = entries[-1].hash
    tampered = list(entries)
    tampered[2] = StoredEntry(replace(entries[2].fields, actor="x"), entries[2].hash)
    assert verify_entries(tampered).first_bad_seq == 2
    assert verify_entries(entries[:2] + entries[3:]).first_bad_seq == 2
    swapped = [entries[0], entries[2], entries[1], entries[3]]
    assert verify_entries(swapped).first_bad_seq == 1
