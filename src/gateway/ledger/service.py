"""Appending to the ledger inside the caller's transaction (the same one as the state change it records).

The head is locked from the first append of a transaction to its commit (every other appender, in this
process or another, waits), so an append does as little as possible: the lock, the head's (seq, hash,
instant), one INSERT. A transaction that appends again (a claim of several deliveries, a delivery and its
automatic status) already holds the lock and knows the head it wrote itself, so it skips both; the head is
remembered per session transaction, and not past an entry written inside a savepoint (which could still
be rolled back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ledger.chain import (
    GENESIS_PREV_HASH,
    GENESIS_TYPE,
    EntryFields,
    canonical_json,
    entry_hash,
    genesis_details,
)
from gateway.ledger.events import EVENT_TYPES
from gateway.ledger.models import LedgerEntry
from gateway.ledger.repository import LedgerRepository

GATEWAY_ACTOR = "gateway"
_HEAD = "gateway.ledger.held_head"

Head = tuple[int, str, datetime]


def _held_head(session: AsyncSession) -> Head | None:
    """The head this transaction appended last, while it holds the lock; None otherwise."""
    held = session.info.get(_HEAD)
    if held is None:
        return None
    transaction, head = held
    if transaction is not session.sync_session.get_transaction():
        return None
    return cast("Head", head)


def _remember(session: AsyncSession, entry: LedgerEntry) -> None:
    if session.in_nested_transaction():
        session.info.pop(_HEAD, None)  # a savepoint rolled back would take this entry with it
    else:
        session.info[_HEAD] = (session.sync_session.get_transaction(), (entry.seq, entry.hash, entry.recorded_at))


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One entry to append (what :func:`append` takes as keywords)."""

    type: str
    actor: str
    document: str | None = None
    document_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    details: Mapping[str, Any] | None = None


async def append(
    session: AsyncSession,
    *,
    type: str,
    actor: str,
    document: str | None = None,
    document_id: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> LedgerEntry:
    """Append one entry; the chain head is locked until the caller's transaction ends.

    The recorded instant is the gateway's clock read after the lock is held, and never earlier than the
    head's, so instants along the chain never go backwards.
    """
    entries = await append_many(session, [Event(type, actor, document, document_id, sender, recipient, details)])
    return entries[0]


async def append_many(session: AsyncSession, events: Sequence[Event]) -> list[LedgerEntry]:
    """Append entries in this order with one INSERT (one lock, one read of the head), as :func:`append`."""
    entries = await next_entries(session, events)
    await write(session, entries)
    return entries[len(entries) - len(events):]


async def next_entries(session: AsyncSession, events: Sequence[Event]) -> list[LedgerEntry]:
    """The entries ``events`` will be, in this order, chained on the head (locked first, until the end of the
    transaction) and preceded by the genesis entry when the ledger is empty: their seqs, instants and hashes
    are final, but nothing is written until :func:`write`.

    For a caller that stores the instant with its own rows as it writes them (acceptance: the sent instant
    goes into the document's INSERT, no UPDATE after). The caller must :func:`write` all of them in the same
    transaction before anything else is appended in it."""
    for event in events:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown ledger event type {event.type!r}; declare it in gateway.ledger.events")
    if not events:
        return []
    repo = LedgerRepository(session)
    head = _held_head(session)
    if head is None:
        await repo.lock_head()
        head = await repo.head_position()
    now = _now()
    entries: list[LedgerEntry] = []
    if head is None:
        genesis = _make(0, now, GENESIS_TYPE, GATEWAY_ACTOR, None, None, None, None, GENESIS_PREV_HASH,
                        genesis_details())
        entries.append(genesis)
        head = (genesis.seq, genesis.hash, genesis.recorded_at)
    seq, prev_hash, instant = head
    for event in events:
        entry = _make(seq + 1, max(now, instant), event.type, event.actor, event.document, event.document_id,
                      event.sender, event.recipient, prev_hash, event.details or {})
        entries.append(entry)
        seq, prev_hash, instant = entry.seq, entry.hash, entry.recorded_at
    _remember(session, entries[-1])
    return entries


async def write(session: AsyncSession, entries: Sequence[LedgerEntry]) -> None:
    """INSERT the entries :func:`next_entries` made, in one statement."""
    await LedgerRepository(session).add_all(entries)


def _make(
    seq: int,
    recorded_at: datetime,
    type: str,
    actor: str,
    document: str | None,
    document_id: str | None,
    sender: str | None,
    recipient: str | None,
    prev_hash: str,
    details: Mapping[str, Any],
) -> LedgerEntry:
    fields = EntryFields(
        seq=seq,
        recorded_at=recorded_at,
        type=type,
        actor=actor,
        document=document,
        document_id=document_id,
        sender=sender,
        recipient=recipient,
        prev_hash=prev_hash,
        details=canonical_json(dict(details)),
    )
    return LedgerEntry(
        seq=fields.seq,
        recorded_at=fields.recorded_at,
        type=fields.type,
        actor=fields.actor,
        document=fields.document,
        document_id=fields.document_id,
        sender=fields.sender,
        recipient=fields.recipient,
        details=fields.details,
        prev_hash=fields.prev_hash,
        hash=entry_hash(fields),
    )
