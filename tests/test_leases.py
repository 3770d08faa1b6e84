"""Named leases (gateway.db.leases): one holder at a time, taken over only once expired, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gateway.db import create_database
from gateway.db.leases import LeaseRepository

T0 = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


async def test_one_holder_until_it_expires_or_releases(db_url: str) -> None:
    db = create_database(db_url)
    try:
        async def acquire(owner: str, now: datetime, seconds: float = 60) -> bool:
            async with db.transaction() as session:
                return await LeaseRepository(session).acquire("poller", owner, now, now + timedelta(seconds=seconds))

        assert await acquire("a", T0) is True  # created
        assert await acquire("b", T0 + timedelta(seconds=30)) is False  # held
        assert await acquire("a", T0 + timedelta(seconds=30)) is True  # extended by its holder
        assert await acquire("b", T0 + timedelta(seconds=80)) is False  # still held: extended to 90 s
        assert await acquire("b", T0 + timedelta(seconds=91)) is True  # expired: taken over
        assert await acquire("a", T0 + timedelta(seconds=92)) is False
        async with db.transaction() as session:
            await LeaseRepository(session).release("poller", "a")  # not the holder: nothing happens
            assert await LeaseRepository(session).holder("poller") == ("b", T0 + timedelta(seconds=151))
            await LeaseRepository(session).release("poller", "b")
        assert await acquire("a", T0 + timedelta(seconds=93)) is True  # released: free at once
    finally:
        await db.dispose()


async def test_racing_processes_never_both_hold_it(db_url: str) -> None:
    dbs = [create_database(db_url) for _ in range(4)]
    try:
        async def acquire(i: int) -> bool:
            async with dbs[i].transaction() as session:
                return await LeaseRepository(session).acquire("race", f"p{i}", T0, T0 + timedelta(seconds=60))

        results = await asyncio.gather(*(acquire(i) for i in range(4)))
        assert sorted(results) == [False, False, False, True]
    finally:
        for db in dbs:
            await db.dispose()
