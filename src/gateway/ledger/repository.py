"""Every SQL statement that touches the ledger and its checkpoints.

Verification reads the chain as raw rows (:data:`gateway.ledger.chain.ChainRow`), not ORM objects: on
PostgreSQL straight from the asyncpg connection, with ``recorded_at`` rendered by the server in its
canonical text form, because building a datetime and formatting it again per row would cost as much as
hashing the row. On SQLite the stored text is converted, and accepted only in the exact form SQLAlchemy
writes (anything else reads as :data:`~gateway.ledger.chain.UNREADABLE_INSTANT` and fails verification,
rather than be interpreted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, column, func, insert, or_, select, table, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.db.base import insert_rows
from gateway.ledger.chain import UNREADABLE_INSTANT, ChainRow
from gateway.ledger.models import (
    LedgerCheckpoint,
    LedgerCheckpointTimestamp,
    LedgerCosignature,
    LedgerEntry,
    LedgerMerkleNode,
    LedgerWitness,
)
from gateway.ledger.query import LedgerFilter, Visibility

# Any constant will do; it only has to be the same in every gateway process sharing the database.
_PG_LEDGER_LOCK_KEY = 0x6C656467  # "ledg"
_PG_CHECKPOINT_LOCK_KEY = 0x6C636B70  # "lckp"

_CHAIN_TAIL = "type, actor, document, document_id, sender, recipient, prev_hash, details, hash FROM ledger_entries"
_PG_INSTANT = """to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_PG_CHAIN_FROM_START = f"SELECT seq, {_PG_INSTANT}, {_CHAIN_TAIL} ORDER BY seq LIMIT $1"
_PG_CHAIN_AFTER = f"SELECT seq, {_PG_INSTANT}, {_CHAIN_TAIL} WHERE seq > $1 ORDER BY seq LIMIT $2"
_SQLITE_CHAIN_FROM_START = f"SELECT seq, recorded_at, {_CHAIN_TAIL} ORDER BY seq LIMIT :limit"
_SQLITE_CHAIN_AFTER = f"SELECT seq, recorded_at, {_CHAIN_TAIL} WHERE seq > :after ORDER BY seq LIMIT :limit"
_SQLITE_STORED_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")

# An agency's view of the ledger takes in the entries about the documents it sent or received. The ledger
# is the layer below gateway.documents (which appends to it), so it names the two columns of each table it
# reads here, as plain SQL, rather than import the ORM classes (tests/test_layering.py). The tables are the
# migrations' (documents: id, sender; deliveries: document, recipient).
_DOCUMENTS = table("documents", column("id"), column("sender"))
_DELIVERIES = table("deliveries", column("document"), column("recipient"))


def _sqlite_instant(raw: object) -> str:
    """SQLAlchemy's SQLite storage form ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC) → canonical, or unreadable."""
    if not isinstance(raw, str) or not _SQLITE_STORED_INSTANT.fullmatch(raw):
        return UNREADABLE_INSTANT
    try:
        datetime.fromisoformat(raw)  # a real calendar date and time, as the ORM will read it
    except ValueError:
        return UNREADABLE_INSTANT
    return f"{raw[:10]}T{raw[11:]}Z"


def _filter_clause(flt: LedgerFilter) -> list[ColumnElement[bool]]:
    e = LedgerEntry
    clauses: list[ColumnElement[bool]] = []
    if flt.agency is not None:
        clauses.append(or_(e.sender == flt.agency, e.recipient == flt.agency))
    if flt.document is not None:
        clauses.append(e.document == flt.document)
    if flt.document_id is not None:
        clauses.append(e.document_id == flt.document_id)
    if flt.type is not None:
        clauses.append(e.type == flt.type)
    if flt.since is not None:
        # Instants never go backwards along the chain (append writes max(now, head); verify checks it), so
        # the range starts at the first entry at or after ``since``: a bound the primary key can seek to,
        # where a filter on the instant alone would be checked row by row from the start of the ledger.
        b = aliased(LedgerEntry)
        first = (
            select(b.seq).where(b.recorded_at >= flt.since).order_by(b.recorded_at, b.seq).limit(1)
            .scalar_subquery()
        )
        clauses += [e.recorded_at >= flt.since, e.seq >= first]
    if flt.until is not None:
        b = aliased(LedgerEntry)
        last = (
            select(b.seq).where(b.recorded_at < flt.until).order_by(b.recorded_at.desc(), b.seq.desc()).limit(1)
            .scalar_subquery()
        )
        clauses += [e.recorded_at < flt.until, e.seq <= last]
    return clauses


def _visibility_clause(visibility: Visibility) -> list[ColumnElement[bool]]:
    """An agency sees entries naming it, and entries about documents it sent or received."""
    code = visibility.agency
    if code is None:
        return []
    e = LedgerEntry
    sent = select(_DOCUMENTS.c.id).where(_DOCUMENTS.c.sender == code)
    received = select(_DELIVERIES.c.document).where(_DELIVERIES.c.recipient == code)
    return [or_(e.sender == code, e.recipient == code, e.document.in_(sent), e.document.in_(received))]


class LedgerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def lock_head(self) -> None:
        """Serialize appends until the end of this transaction.

        PostgreSQL: a transaction-scoped advisory lock. SQLite: transactions already start with
        BEGIN IMMEDIATE (see gateway.db.engine), so only one writer exists at a time.
        """
        if self._dialect == "postgresql":
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LEDGER_LOCK_KEY})

    async def head(self) -> LedgerEntry | None:
        result = await self.session.execute(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1))
        return result.scalar_one_or_none()

    async def add(self, entry: LedgerEntry) -> None:
        self.session.add(entry)
        await self.session.flush()

    async def add_all(self, entries: Sequence[LedgerEntry]) -> None:
        """One INSERT for all of them (the entries stay transient: never changed after they are made)."""
        await insert_rows(self.session, entries)

    async def get(self, seq: int) -> LedgerEntry | None:
        return await self.session.get(LedgerEntry, seq)

    async def of_document(self, document: str, entry_type: str, below: int) -> Sequence[LedgerEntry]:
        """The entries of one type about one gateway document with ``seq < below``, in seq order."""
        result = await self.session.execute(
            select(LedgerEntry).where(LedgerEntry.document == document, LedgerEntry.type == entry_type,
                                      LedgerEntry.seq < below).order_by(LedgerEntry.seq))
        return result.scalars().all()

    # -- verification ----------------------------------------------------------------------------------

    async def chain_rows(self, after: int | None, limit: int) -> Sequence[ChainRow]:
        """Up to ``limit`` raw rows in seq order, after seq ``after`` (None: from the lowest seq stored)."""
        if self._dialect == "postgresql":
            connection = await self.session.connection()
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection  # asyncpg.Connection: records unpack like tuples
            if after is None:
                records = await driver.fetch(_PG_CHAIN_FROM_START, limit)
            else:
                records = await driver.fetch(_PG_CHAIN_AFTER, after, limit)
            return cast("Sequence[ChainRow]", records)
        if after is None:
            result = await self.session.execute(text(_SQLITE_CHAIN_FROM_START), {"limit": limit})
        else:
            result = await self.session.execute(text(_SQLITE_CHAIN_AFTER), {"after": after, "limit": limit})
        return [(r[0], _sqlite_instant(r[1]), *r[2:]) for r in result]

    async def hashes_at(self, seqs: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for i in range(0, len(seqs), 500):
            chunk = list(seqs[i:i + 500])
            result = await self.session.execute(
                select(LedgerEntry.seq, LedgerEntry.hash).where(LedgerEntry.seq.in_(chunk))
            )
            found.update({seq: hash_ for seq, hash_ in result})
        return found

    async def size(self) -> int:
        """The number of entries by the head's seq (gaps are verification's business, not this count's)."""
        result = await self.session.execute(select(func.max(LedgerEntry.seq)))
        top = result.scalar_one_or_none()
        return 0 if top is None else int(top) + 1

    async def head_position(self) -> tuple[int, str, datetime] | None:
        """(seq, hash, recorded_at) of the committed head."""
        result = await self.session.execute(
            select(LedgerEntry.seq, LedgerEntry.hash, LedgerEntry.recorded_at)
            .order_by(LedgerEntry.seq.desc())
            .limit(1)
        )
        row = result.one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    # -- queries ---------------------------------------------------------------------------------------

    async def seqs_after(self, after: int, limit: int) -> Sequence[int]:
        """Up to ``limit`` committed seqs above ``after``, ascending: the primary key alone (the event feed reads
        these to find where the ledger is contiguous before it reads the entries themselves)."""
        result = await self.session.execute(
            select(LedgerEntry.seq).where(LedgerEntry.seq > after).order_by(LedgerEntry.seq).limit(limit))
        return result.scalars().all()

    async def page(
        self,
        flt: LedgerFilter,
        visibility: Visibility,
        *,
        after: int | None,
        limit: int,
        upto: int | None = None,
        types: frozenset[str] | None = None,
    ) -> Sequence[LedgerEntry]:
        """Entries matching ``flt`` that ``visibility`` may see, in seq order, after ``after`` (keyset); with
        ``types``, only entries of one of those types (the event feed's repeatable ``type``)."""
        clauses = [*_filter_clause(flt), *_visibility_clause(visibility)]
        if types is not None:
            clauses.append(LedgerEntry.type.in_(sorted(types)))
        if after is not None:
            clauses.append(LedgerEntry.seq > after)
        if upto is not None:
            clauses.append(LedgerEntry.seq <= upto)
        stmt = select(LedgerEntry).where(*clauses).order_by(LedgerEntry.seq).limit(limit)
        result = await self.session.execute(stmt)
        return result.scalars().all()


class CheckpointRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def try_lock(self) -> bool:
        """One checkpoint writer at a time across processes (SQLite: BEGIN IMMEDIATE already is one)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return True
        result = await self.session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PG_CHECKPOINT_LOCK_KEY}
        )
        return bool(result.scalar_one())

    async def all(self) -> Sequence[LedgerCheckpoint]:
        result = await self.session.execute(select(LedgerCheckpoint).order_by(LedgerCheckpoint.size))
        return result.scalars().all()

    async def latest(self) -> LedgerCheckpoint | None:
        result = await self.session.execute(
            select(LedgerCheckpoint).order_by(LedgerCheckpoint.size.desc()).limit(1)
        )
        return result.scalar_one_or_none()

    async def get(self, size: int) -> LedgerCheckpoint | None:
        return await self.session.get(LedgerCheckpoint, size)

    async def unstamped(self, limit: int) -> Sequence[LedgerCheckpoint]:
        """Checkpoints with a signed note and no timestamp yet, oldest first."""
        stamped = select(LedgerCheckpointTimestamp.size).where(LedgerCheckpointTimestamp.size == LedgerCheckpoint.size)
        result = await self.session.execute(
            select(LedgerCheckpoint).where(LedgerCheckpoint.note.is_not(None), ~stamped.exists())
            .order_by(LedgerCheckpoint.size).limit(limit))
        return result.scalars().all()

    async def witnesses(self) -> Sequence[LedgerWitness]:
        result = await self.session.execute(select(LedgerWitness).order_by(LedgerWitness.name))
        return result.scalars().all()

    async def witness(self, name: str) -> LedgerWitness | None:
        return await self.session.get(LedgerWitness, name)

    async def cosignatures(self, size: int) -> Sequence[LedgerCosignature]:
        result = await self.session.execute(
            select(LedgerCosignature).where(LedgerCosignature.size == size).order_by(LedgerCosignature.witness))
        return result.scalars().all()

    async def keep(self, row: LedgerWitness | LedgerCosignature) -> None:
        self.session.add(row)
        await self.session.flush()

    async def timestamp(self, size: int) -> LedgerCheckpointTimestamp | None:
        return await self.session.get(LedgerCheckpointTimestamp, size)

    async def add_timestamp(self, stamp: LedgerCheckpointTimestamp) -> None:
        self.session.add(stamp)
        await self.session.flush()

    async def page(self, after: int | None, limit: int) -> Sequence[LedgerCheckpoint]:
        stmt = select(LedgerCheckpoint)
        if after is not None:
            stmt = stmt.where(LedgerCheckpoint.size > after)
        result = await self.session.execute(stmt.order_by(LedgerCheckpoint.size).limit(limit))
        return result.scalars().all()

    async def add(self, checkpoint: LedgerCheckpoint) -> None:
        self.session.add(checkpoint)
        await self.session.flush()


class MerkleRepository:
    """The stored nodes of the ledger's Merkle tree (``ledger_merkle_nodes``), hashes as bytes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def size(self) -> int:
        """How many leaves the stored tree covers (its level-0 nodes, always a prefix of the ledger)."""
        result = await self.session.execute(
            select(func.max(LedgerMerkleNode.idx)).where(LedgerMerkleNode.level == 0))
        last: int | None = result.scalar_one_or_none()
        return 0 if last is None else last + 1

    async def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        wanted = sorted(set(keys))
        found: dict[tuple[int, int], bytes] = {}
        for i in range(0, len(wanted), 200):
            chunk = wanted[i:i + 200]
            result = await self.session.execute(
                select(LedgerMerkleNode.level, LedgerMerkleNode.idx, LedgerMerkleNode.hash)
                .where(tuple_(LedgerMerkleNode.level, LedgerMerkleNode.idx).in_(chunk)))
            found.update({(level, idx): bytes.fromhex(h) for level, idx, h in result})
        return found

    async def add(self, nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if nodes:
            await self.session.execute(insert(LedgerMerkleNode), [
                {"level": level, "idx": idx, "hash": h.hex()} for level, idx, h in nodes])
