"""Verifying the ledger: recompute the hash chain and hold it against every signed checkpoint.

Where recomputation starts:

- ``genesis`` (the default): from the first entry. Every entry is recomputed.
- ``checkpoint``: from the last checkpoint such that it, and every checkpoint before it, has a signature
  that verifies with the gateway certificate and a signed head hash that is still the stored hash of entry
  size-1. The entries below it are vouched for by that signature instead of being recomputed: an edit
  there that left the hash columns untouched goes unseen, so run a verification from genesis as well, now and
  then. It exists because a pass over millions of entries takes seconds.

Whatever the start, every checkpoint is checked, in order of size: its signature with the gateway
certificate, then its head hash against the chain, then (when it carries one, migration 0009) its Merkle root
against the root recomputed from the verified entries' hashes (:class:`gateway.ledger.merkle.Frontier`, O(log n)
memory; in ``checkpoint`` mode the frontier resumes from the stored tree at the anchor). The answer names the
first problem along the ledger:

==================================  =============================================================================
problem                             answer
==================================  =============================================================================
entry k edited                      ``first_bad_seq`` k: its hash does not match its content
entry k deleted                     ``first_bad_seq`` k: the sequence has a gap there
entries k and k+1 swapped           ``first_bad_seq`` k: its previous hash does not match
entries rewritten with new hashes   ``first_bad_seq`` = size of the last checkpoint that still matched (or 0):
                                    a later checkpoint's signed head no longer matches (``bad_checkpoint``)
last entries deleted                ``first_bad_seq`` = the ledger's length: a checkpoint covers more entries
checkpoint forged or altered        ``bad_checkpoint`` its size, ``first_bad_seq`` null: signature fails
checkpoint root not the entries'    ``bad_checkpoint`` its size, ``first_bad_seq`` = size of the last checkpoint
                                    that still matched: its stored root differs from the recomputed one
==================================  =============================================================================

``size`` is the number of entries from genesis that verified (recomputed, or vouched for by a checkpoint);
when ``ok`` it is the ledger's length. ``ok`` is set in exactly one place, after every check has passed;
every other way out of :meth:`LedgerVerifier.run` is a failure (fail closed).

Rows are read in keyset batches (``seq > last``), each in its own short transaction (on SQLite every
transaction holds the write lock), the next batch in flight while the current one is hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from gateway.db import Database
from gateway.ledger import tree
from gateway.ledger.chain import GENESIS_PREV_HASH, ChainBroken, ChainRow, ChainWalker
from gateway.ledger.checkpoint import CheckpointSignatureInvalid, SignedCheckpoint, verify_signature
from gateway.ledger.merkle import Frontier, leaf_hash
from gateway.ledger.models import LedgerCheckpoint
from gateway.ledger.repository import CheckpointRepository, LedgerRepository

VerifyMode = Literal["genesis", "checkpoint"]
DEFAULT_BATCH = 10_000
_SLICE = 1_000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    size: int
    first_bad_seq: int | None
    reason: str | None
    mode: VerifyMode
    verified_from: int
    checkpoints_checked: int
    bad_checkpoint: int | None
    latest_checkpoint: int | None
    #: checkpoints whose Merkle root was recomputed and matched
    roots_checked: int = 0


_gc_pauses = 0


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while rows stream through (reference counting still frees them).

    A million rows are a million short-lived tracked objects; the collector would otherwise run thousands
    of times over them for nothing (about 10% of the verify time). Nested and concurrent verifications
    share the pause; the collector's previous state is restored when the last one ends.
    """
    global _gc_pauses
    was_enabled = gc.isenabled()
    if _gc_pauses == 0 and not was_enabled:
        yield
        return
    _gc_pauses += 1
    gc.disable()
    try:
        yield
    finally:
        _gc_pauses -= 1
        if _gc_pauses == 0:
            gc.enable()


class _Failed(Exception):
    def __init__(self, size: int, first_bad_seq: int | None, reason: str, bad_checkpoint: int | None = None) -> None:
        super().__init__(reason)
        self.size = size
        self.first_bad_seq = first_bad_seq
        self.reason = reason
        self.bad_checkpoint = bad_checkpoint


def signed(row: LedgerCheckpoint) -> SignedCheckpoint:
    return SignedCheckpoint(
        size=row.size,
        head_hash=row.head_hash,
        signed_at=row.signed_at,
        algorithm=row.algorithm,
        signature=row.signature,
        certificate_sha256=row.certificate_sha256,
    )


class LedgerVerifier:
    """Verifies the ledger in ``db`` against checkpoints signed by ``certificate`` (None: any checkpoint fails)."""

    def __init__(
        self, db: Database, certificate: x509.Certificate | None, *, batch_size: int = DEFAULT_BATCH
    ) -> None:
        self.db = db
        self.certificate = certificate
        self.batch_size = batch_size

    async def run(self, mode: VerifyMode = "genesis") -> VerifyReport:
        return await _Verification(self.db, self.certificate, self.batch_size).run(mode)


class _Verification:
    """One run: the verifier's state lives here, so runs never share it."""

    def __init__(self, db: Database, certificate: x509.Certificate | None, batch_size: int) -> None:
        self.db = db
        self.certificate = certificate
        self.batch_size = batch_size
        self._checked = 0
        self._roots_checked = 0
        self._matched = 0  # size of the last checkpoint whose head matched the chain (0: genesis)
        self._roots: dict[int, str] = {}  # checkpoint size -> its stored Merkle root (hex)

    async def run(self, mode: VerifyMode) -> VerifyReport:
        async with self.db.sessionmaker() as session:
            rows = await CheckpointRepository(session).all()
        checkpoints = [signed(row) for row in rows]
        self._roots = {row.size: row.root_hash for row in rows if row.root_hash is not None}
        latest = checkpoints[-1].size if checkpoints else None
        start, prev_hash = 0, GENESIS_PREV_HASH
        try:
            if mode == "checkpoint":
                start, prev_hash = await self._anchor(checkpoints)
            size = await self._walk(start, prev_hash, [cp for cp in checkpoints if cp.size > start])
        except _Failed as failure:
            return VerifyReport(
                ok=False, size=failure.size, first_bad_seq=failure.first_bad_seq, reason=failure.reason, mode=mode,
                verified_from=start, checkpoints_checked=self._checked, bad_checkpoint=failure.bad_checkpoint,
                latest_checkpoint=latest, roots_checked=self._roots_checked,
            )
        return VerifyReport(
            ok=True, size=size, first_bad_seq=None, reason=None, mode=mode, verified_from=start,
            checkpoints_checked=self._checked, bad_checkpoint=None, latest_checkpoint=latest,
            roots_checked=self._roots_checked,
        )

    def _check(self, checkpoint: SignedCheckpoint, stored_head: str | None, verified: int,
               root: bytes | None = None) -> None:
        """One checkpoint against the chain; ``stored_head`` is the (verified or stored) hash of entry size-1,
        ``root`` the Merkle root recomputed from the verified entries at its size (None: not recomputed)."""
        # 1. The signature, with the gateway certificate only.
        if self.certificate is None:
            raise _Failed(verified, None, f"checkpoint at size {checkpoint.size}: no gateway certificate to check it",
                          checkpoint.size)
        try:
            verify_signature(checkpoint, self.certificate)
        except CheckpointSignatureInvalid as exc:
            raise _Failed(verified, None, str(exc), checkpoint.size) from exc
        # 2. The signed head is the chain's: else entries since the last matching checkpoint were rewritten.
        if stored_head != checkpoint.head_hash:
            raise _Failed(
                self._matched, self._matched,
                f"entries from {self._matched} on are not those checkpoint {checkpoint.size} signed: rewritten",
                checkpoint.size,
            )
        # 3. Its Merkle root, when it has one and the entries below it were recomputed.
        stored_root = self._roots.get(checkpoint.size)
        if stored_root is not None and root is not None:
            if stored_root != root.hex():
                raise _Failed(
                    self._matched, self._matched,
                    f"checkpoint {checkpoint.size}: its Merkle root is not the root of the entries it covers",
                    checkpoint.size,
                )
            self._roots_checked += 1
        self._checked += 1
        self._matched = checkpoint.size

    async def _anchor(self, checkpoints: Sequence[SignedCheckpoint]) -> tuple[int, str]:
        """The last checkpoint of the longest run, from the first, that checks out against stored hashes."""
        async with self.db.sessionmaker() as session:
            stored = await LedgerRepository(session).hashes_at([cp.size - 1 for cp in checkpoints])
        start, prev_hash = 0, GENESIS_PREV_HASH
        for cp in checkpoints:
            try:
                self._check(cp, stored.get(cp.size - 1), cp.size)
            except _Failed:
                # Not the answer yet: the walk from the last good anchor meets this checkpoint again and
                # names the entry.
                break
            start, prev_hash = cp.size, cp.head_hash
        return start, prev_hash

    async def _walk(self, start: int, prev_hash: str, checkpoints: Sequence[SignedCheckpoint]) -> int:
        async with self.db.sessionmaker() as session:
            frontier = await tree.frontier(session, start)  # None: the stored tree does not reach the anchor
        walked = await walk_from(self.db, start, prev_hash, [cp.size for cp in checkpoints], self.batch_size,
                                 frontier)
        size = walked.next_seq
        # Checkpoints that end inside what was recomputed come first: they may name an earlier problem than
        # a break.
        upcoming = list(checkpoints)
        while upcoming and upcoming[0].size <= size:
            cp = upcoming.pop(0)
            self._check(cp, walked.heads[cp.size], cp.size, walked.roots.get(cp.size))
        if walked.broken is not None:
            seq, reason = walked.broken
            raise _Failed(seq, seq, reason)
        if upcoming:
            cp = upcoming[0]
            if self.certificate is not None:
                try:
                    verify_signature(cp, self.certificate)
                except CheckpointSignatureInvalid as exc:
                    raise _Failed(size, None, str(exc), cp.size) from exc
            raise _Failed(
                size, size, f"the ledger ends at {size} entries but checkpoint {cp.size} was signed over {cp.size}: "
                "entries are missing", cp.size,
            )
        return size


@dataclass(frozen=True, slots=True)
class Walked:
    """What a walk established: how far it verified, the first break, and the recomputed hash of entry
    size-1 for each checkpoint size asked for that ends inside the verified part."""

    next_seq: int
    broken: tuple[int, str] | None
    heads: dict[int, str]
    #: the Merkle root at each such size, when a frontier was given
    roots: dict[int, bytes]


async def walk_from(
    db: Database, start: int, prev_hash: str, marks: Sequence[int], batch_size: int = DEFAULT_BATCH,
    frontier: Frontier | None = None,
) -> Walked:
    """Recompute the entries from ``start`` (after an entry whose hash is ``prev_hash``) to the last one; with a
    ``frontier`` (of the first ``start`` leaves), the Merkle root at each mark too."""
    walker = ChainWalker(start, prev_hash)
    pending = sorted(marks)
    wanted = set(marks)
    heads: dict[int, str] = {}
    roots: dict[int, bytes] = {}
    broken: tuple[int, str] | None = None
    with _cyclic_gc_paused():
        batches = _batches(db, start - 1 if start > 0 else None, batch_size)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                batch_start = walker.next_seq
                try:
                    for i in range(0, len(batch), _SLICE):
                        chunk = batch[i:i + _SLICE]
                        before = walker.next_seq
                        try:
                            walker.feed(chunk)
                        finally:  # the verified rows of the chunk, even when it broke part-way
                            if frontier is not None:
                                for row in chunk[:walker.next_seq - before]:
                                    frontier.push(leaf_hash(bytes.fromhex(row[10])))
                                    if frontier.size in wanted:
                                        roots[frontier.size] = frontier.root()
                        # Let the event loop read the next batch off the socket between slices, so that the
                        # database keeps sending while this process hashes (else it stalls on a full buffer).
                        await asyncio.sleep(0)
                except ChainBroken as exc:
                    broken = (exc.seq, str(exc))
                while pending and pending[0] <= walker.next_seq:
                    mark = pending.pop(0)
                    heads[mark] = batch[mark - 1 - batch_start][10]
                if broken is not None:
                    break
    return Walked(walker.next_seq, broken, heads, roots)


async def _fetch(db: Database, after: int | None, limit: int) -> Sequence[ChainRow]:
    async with db.sessionmaker() as session:
        return await LedgerRepository(session).chain_rows(after, limit)


async def _batches(db: Database, after: int | None, limit: int) -> AsyncGenerator[Sequence[ChainRow], None]:
    task: asyncio.Future[Sequence[ChainRow]] | None = asyncio.ensure_future(_fetch(db, after, limit))
    try:
        while task is not None:
            batch = await task
            task = None
            if not batch:
                return
            last = batch[-1][0]
            if len(batch) >= limit and isinstance(last, int):
                task = asyncio.ensure_future(_fetch(db, last, limit))
                await asyncio.sleep(0)  # the next query goes out before this batch takes the CPU
            yield batch
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
