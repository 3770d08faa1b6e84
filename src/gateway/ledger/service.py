"""Appending to the ledger inside the caller's transaction (the same one as the state change it records)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.ledger import events
from gateway.ledger.chain import (
    GENESIS_PREV_HASH,
    GENESIS_TYPE,
    EntryFields,
    canonical_json,
    entry_hash,
    genesis_details,
)
from gateway.ledger.models import LedgerEntry
from gateway.ledger.repository import LedgerRepository

GATEWAY_ACTOR = "gateway"


def _now() -> datetime:
    return datetime.now(UTC)


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
    if type not in events.EVENT_TYPES:
        raise ValueError(f"unknown ledger event type {type!r}; declare it in gateway.ledger.events")
    repo = LedgerRepository(session)
    await repo.lock_head()
    head = await repo.head()
    now = _now()
    if head is None:
        head = _make(0, now, GENESIS_TYPE, GATEWAY_ACTOR, None, None, None, None, GENESIS_PREV_HASH,
                     genesis_details())
        await repo.add(head)
    recorded_at = max(now, head.recorded_at)
    entry = _make(head.seq + 1, recorded_at, type, actor, document, document_id, sender, recipient, head.hash,
                  details or {})
    await repo.add(entry)
    return entry


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
