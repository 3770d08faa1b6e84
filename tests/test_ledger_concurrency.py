"""Concurrent appenders, each in its own session and transaction, never fork the chain or leave a gap,
even while checkpoints are being signed alongside them."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from sqlalchemy import select

from gateway.config import Settings
from gateway.db import create_database
from gateway.ledger import service as ledger
from gateway.ledger.chain import GENESIS_PREV_HASH
from gateway.ledger.checkpointer import checkpoint_if_due
from gateway.ledger.models import LedgerCheckpoint, LedgerEntry
from gateway.ledger.verify import LedgerVerifier
from gateway.signing import GatewayKey, load_or_create

TASKS = 8
APPENDS = 25


async def test_concurrent_appenders_keep_one_gapless_chain(db_url: str, gateway_key_files: tuple[Path, Path]) -> None:
    key_file, cert_file = gateway_key_files
    key: GatewayKey = load_or_create(Settings(signing_key_file=key_file, signing_cert_file=cert_file))
    db = create_database(db_url, pool_size=TASKS + 2)
    try:
        async def appender(task: int) -> None:
            for i in range(APPENDS):
                async with db.transaction() as session:
                    await ledger.append(session, type="token.issued", actor=f"console:task{task}",
                                        details={"task": task, "i": i})
                if i % 5 == 0:
                    await asyncio.sleep(0)

        async def checkpointer(done: asyncio.Event) -> None:
            while not done.is_set():
                await checkpoint_if_due(db, key, every_entries=10, every_seconds=3600)
                await asyncio.sleep(0.01)

        done = asyncio.Event()
        signer = asyncio.create_task(checkpointer(done))
        await asyncio.gather(*(appender(t) for t in range(TASKS)))
        done.set()
        await signer
        await checkpoint_if_due(db, key, every_entries=1, every_seconds=0, force=True)  # the final head

        async with db.transaction() as session:
            entries = list((await session.execute(select(LedgerEntry).order_by(LedgerEntry.seq))).scalars())
            checkpoints = list((await session.execute(select(LedgerCheckpoint))).scalars())

        assert [e.seq for e in entries] == list(range(1 + TASKS * APPENDS))  # gapless, genesis once
        assert entries[0].prev_hash == GENESIS_PREV_HASH
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))  # no fork
        assert sorted((e.actor, e.details) for e in entries[1:]) == sorted(
            (f"console:task{t}", f'{{"i":{i},"task":{t}}}') for t in range(TASKS) for i in range(APPENDS)
        )
        assert all(a.recorded_at <= b.recorded_at for a, b in itertools.pairwise(entries))
        assert max(cp.size for cp in checkpoints) == len(entries)

        report = await LedgerVerifier(db, key.certificate).run()
        assert report.ok, report.reason
        assert report.size == 1 + TASKS * APPENDS
        assert report.checkpoints_checked == len(checkpoints)
    finally:
        await db.dispose()
