"""Group commit: operations arriving together share transactions, every result comes only after its
transaction committed, the chain stays whole, and one failing operation never takes the others down."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import create_database
from gateway.db.group_commit import GroupCommit
from gateway.ledger import service as ledger
from gateway.ledger.models import LedgerEntry

ITEMS = 40


async def test_operations_arriving_together_share_transactions(db_url: str) -> None:
    db = create_database(db_url)
    try:
        group: GroupCommit[int] = GroupCommit(db, max_batch=16)
        committed_when_answered: list[int] = []

        async def one(i: int) -> int:
            async def op(session: AsyncSession) -> int:
                entry = await ledger.append(session, type="token.issued", actor=f"console:op{i}", details={"i": i})
                return entry.seq

            seq = await group.run(op)
            # Answered only once the entry is committed: another session sees it.
            async with db.read() as session:
                found = await session.get(LedgerEntry, seq)
            committed_when_answered.append(1 if found is not None else 0)
            return seq

        seqs = await asyncio.gather(*(one(i) for i in range(ITEMS)))
        await group.close()

        assert sorted(seqs) == list(range(1, ITEMS + 1))  # genesis is 0; every operation got its own entry
        assert committed_when_answered == [1] * ITEMS
        assert group.items == ITEMS
        assert group.transactions < ITEMS  # shared: at most 16 per transaction, fewer transactions than items
        assert group.transactions >= -(-ITEMS // 16)
        async with db.read() as session:
            entries = list((await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).scalars())
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
        assert [e.seq for e in entries] == list(range(ITEMS + 1))
    finally:
        await db.dispose()


async def test_one_failing_operation_does_not_take_the_batch_down(db_url: str) -> None:
    db = create_database(db_url)
    try:
        group: GroupCommit[int] = GroupCommit(db, max_batch=16)
        def op_for(i: int) -> Callable[[AsyncSession], Awaitable[int]]:
            async def op(session: AsyncSession) -> int:
                entry = await ledger.append(session, type="token.issued", actor=f"console:op{i}", details={"i": i})
                if i == 3:
                    raise RuntimeError("operation 3 is broken")
                return entry.seq

            return op

        results = await asyncio.gather(*(group.run(op_for(i)) for i in range(8)),
                                        return_exceptions=True)
        await group.close()
        assert isinstance(results[3], RuntimeError)
        assert all(isinstance(r, int) for i, r in enumerate(results) if i != 3)
        # Seven entries, not eight and not none: operation 3's entry went with its own rolled-back transaction.
        async with db.read() as session:
            actors = list((await session.execute(select(LedgerEntry.actor).where(LedgerEntry.seq > 0))).scalars())
        assert sorted(actors) == sorted(f"console:op{i}" for i in range(8) if i != 3)
    finally:
        await db.dispose()


async def test_cancelled_writer_fails_its_waiters_instead_of_hanging(db_url: str) -> None:
    db = create_database(db_url)
    try:
        group: GroupCommit[int] = GroupCommit(db, max_batch=4)
        gate = asyncio.Event()

        async def slow(session: AsyncSession) -> int:
            await gate.wait()
            return 1

        waiters = [asyncio.create_task(group.run(slow)) for _ in range(6)]
        await asyncio.sleep(0.05)
        assert group._writer is not None
        group._writer.cancel()
        results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), timeout=5)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        with pytest.raises(asyncio.CancelledError):
            await group._writer
    finally:
        await db.dispose()
