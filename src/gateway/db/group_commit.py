"""Group commit: many small writes that arrive together share one transaction.

Every transaction that writes to the ledger holds the chain head from its first append to its commit, so
writers queue one behind the other; a push worker finishing 16 deliveries at once would otherwise commit
16 times in a row, each waiting for the lock, the head, the disk flush and its own busy event loop. Here
whatever arrives while a transaction is being written waits for the next one, and that one writes all of
them (up to ``max_batch``): one lock, one head, one flush for the lot.

Each item is an operation ``op(session) -> result`` that runs inside the shared transaction, in arrival
order, unless the owner hands in ``apply``: a function given the session and the batch's operations that
returns their results in the same order, for an owner whose operations are records it can write together
(the push worker: one statement for many rows, one ledger INSERT, rather than each item's own). Nothing
is weakened: an item's result is handed back only after the transaction holding it has
committed. Should the batch fail as a whole (an error in one item), every item of it is run again in a
transaction of its own, so one bad item never takes the others down with it; the failing item's error goes
to its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from .engine import Database

R = TypeVar("R")
Operation = Callable[[AsyncSession], Awaitable[R]]
Apply = Callable[[AsyncSession, list[Operation[R]]], Awaitable[list[R]]]


async def one_by_one(session: AsyncSession, ops: list[Operation[R]]) -> list[R]:
    """The default ``apply``: each operation in turn."""
    return [await op(session) for op in ops]


class GroupCommit(Generic[R]):
    def __init__(self, db: Database, max_batch: int = 64, apply: Apply[R] | None = None) -> None:
        self.db = db
        self.max_batch = max(1, max_batch)
        self.apply: Apply[R] = apply if apply is not None else one_by_one
        self._pending: list[tuple[Operation[R], asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: transactions committed and items they carried (for tests and metrics)
        self.transactions = 0
        self.items = 0

    async def run(self, op: Operation[R]) -> R:
        """Run ``op`` in the next shared transaction; its result once that transaction has committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="group commit")
        return await future

    async def close(self) -> None:
        """Wait for what is pending to be written (the owner calls this when it stops)."""
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write(self) -> None:
        batch: list[tuple[Operation[R], asyncio.Future[R]]] = []
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._commit(batch)
                batch = []
        except BaseException as exc:  # cancelled (shutdown) or a bug: nobody may wait for ever
            for _, future in [*batch, *self._pending]:
                if not future.done():
                    future.set_exception(asyncio.CancelledError() if isinstance(exc, asyncio.CancelledError)
                                         else exc)
            self._pending.clear()
            raise

    async def _commit(self, batch: list[tuple[Operation[R], asyncio.Future[R]]]) -> None:
        try:
            async with self.db.transaction() as session:
                results = await self.apply(session, [op for op, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            for item in batch:  # one of them spoiled the batch: each on its own
                await self._commit([item])
            return
        self.transactions += 1
        self.items += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
