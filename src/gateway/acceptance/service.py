""":func:`accept`: write an accepted message and fix its sent instant, in the caller's transaction.

The steps, in order:

1. the ledger entries are made (:func:`gateway.ledger.service.next_entries`: the head locked until the
   transaction ends, read once, the entries chained on it): any the caller must record first in the same
   transaction (the delivered transition that made the gateway's automatic 01), then this message's own
   entry. Its recorded instant is the sent instant (Điều 11.1);
2. the rows, each written once and already final: the document (with the sent instant, its entry's
   sequence number and hash), its attachment rows and one delivery row per target (push: due at once;
   pull: waiting in the target's inbox; all made at the sent instant). Core INSERTs, one per table, not the
   ORM's unit of work (issue 17's profile: the flush cost more than the statements);
3. the ledger entries, in one INSERT.

Since the instant is known before the document is written, there is no UPDATE of the document afterwards.
In a group commit (gateway.db.group_commit) the head is locked from the first message of the batch on
anyway; a message alone holds it for the three or four statements of steps 2 and 3.

Nothing here commits: the caller's unit of work does (CONTRIBUTING.md, "Transactions").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.documents.models import Attachment, Delivery, Document
from gateway.documents.repository import DocumentRepository
from gateway.envelope.deviations import Deviation
from gateway.ledger import service as ledger
from gateway.ledger.models import LedgerEntry


@dataclass(frozen=True)
class NewAttachment:
    content_id: str
    name: str
    content_type: str | None
    sha256: str
    size: int
    #: ``none`` | ``valid`` | ``invalid`` for a PDF (gateway.pdfsig), None for any other file
    pdf_signature: str | None = None


@dataclass(frozen=True)
class Message:
    """What is accepted, as the checks established it (never read back from the bytes here)."""

    kind: Literal["document", "status"]
    sender: str
    document_id: str
    envelope_sha256: str
    envelope_size: int
    signed: bool
    signer_certificate: str | None
    priority: int
    multipart: bool = False
    subject: str | None = None
    type_name: str | None = None
    code: str | None = None
    promulgation_date: date | None = None
    business_doc_type: int = 0
    #: for a status: its code and the gateway id of the document it is about
    status_code: str | None = None
    refers_to: str | None = None
    attachments: tuple[NewAttachment, ...] = ()
    #: the tolerated quirks of the envelope (gateway.envelope.deviations), stored with the document
    deviations: tuple[Deviation, ...] = ()
    #: the status 01 the gateway wrote itself when the document arrived (not the agency's own statement)
    automatic: bool = False
    #: a message fetched from the upstream axis: the upstream's DocId of it
    upstream_doc_id: str | None = None


@dataclass(frozen=True)
class Target:
    """A delivery to make: the agency's code and how it receives (``push`` or ``pull``), from the register."""

    code: str
    mode: str


@dataclass(frozen=True)
class Event:
    """The message's own ledger entry: its type, who is recorded as acting, and what it states."""

    type: str
    actor: str
    details: Mapping[str, Any]
    #: the entry's ``recipient`` column (the automatic 01 names the original's sender there)
    recipient: str | None = None


@dataclass
class Accepted:
    """The rows as written and committed with the caller's transaction; ``entry`` fixed the sent instant."""

    document: Document
    attachments: list[Attachment]
    deliveries: list[Delivery]
    entry: LedgerEntry


async def accept(
    session: AsyncSession,
    message: Message,
    targets: Sequence[Target],
    event: Event,
    *,
    preceded_by: Sequence[ledger.Event] = (),
) -> Accepted:
    """Write ``message`` with one delivery per target and its ledger entry; fix its sent instant.

    Raises :class:`sqlalchemy.exc.IntegrityError` when the database refuses the rows (a concurrent
    acceptance of the same DocumentId, or of the same status): the caller decides what that means.
    """
    [accepted] = await _accept_all(session, [Acceptance(message, targets, event)], preceded_by)
    return accepted


@dataclass(frozen=True)
class Acceptance:
    """One message to accept with :func:`accept_many`; called with a session, it is :func:`accept` of it (an
    operation for :class:`gateway.db.group_commit.GroupCommit`)."""

    message: Message
    targets: Sequence[Target]
    event: Event

    async def __call__(self, session: AsyncSession) -> Accepted:
        return await accept(session, self.message, self.targets, self.event)


async def accept_many(session: AsyncSession, items: Sequence[Acceptance]) -> list[Accepted]:
    """:func:`accept` of several messages at once, in this order: one lock and head, one INSERT per table for
    all of them (a group commit's batch). Should the database refuse any row, nothing of any is written (the
    caller's transaction fails: the group commit then tries each alone)."""
    return await _accept_all(session, items, ())


async def _accept_all(session: AsyncSession, items: Sequence[Acceptance],
                      preceded_by: Sequence[ledger.Event]) -> list[Accepted]:
    uuids = [str(uuid.uuid4()) for _ in items]
    own = [ledger.Event(i.event.type, i.event.actor, document=u, document_id=i.message.document_id,
                        sender=i.message.sender, recipient=i.event.recipient, details=i.event.details)
           for i, u in zip(items, uuids, strict=True)]
    entries = await ledger.next_entries(session, [*preceded_by, *own])  # step 1
    accepted = [Accepted(*_rows(i.message, i.targets, u, entry), entry)
                for i, u, entry in zip(items, uuids, entries[len(entries) - len(items):], strict=True)]
    await DocumentRepository(session).insert_accepted(  # step 2
        [a.document for a in accepted],
        [row for a in accepted for row in a.attachments],
        [row for a in accepted for row in a.deliveries],
    )
    await ledger.write(session, entries)  # step 3
    return accepted


async def accept_unless_duplicate(
    session: AsyncSession,
    message: Message,
    targets: Sequence[Target],
    event: Event,
    *,
    preceded_by: Sequence[ledger.Event] = (),
) -> Accepted | None:
    """:func:`accept` for a message that may lose a race it is allowed to lose (the automatic 01 against the
    recipient's own 01): it goes in a savepoint, and should the database refuse its rows as a duplicate only
    the message is dropped (None) — the ``preceded_by`` entries are recorded all the same (the savepoint's
    entries are rolled back with it; the head is read again after)."""
    try:
        async with session.begin_nested():
            return await accept(session, message, targets, event, preceded_by=preceded_by)
    except IntegrityError:
        await ledger.append_many(session, preceded_by)
        return None


Rows = tuple[Document, list[Attachment], list[Delivery]]


def _rows(message: Message, targets: Sequence[Target], document_uuid: str, entry: LedgerEntry) -> Rows:
    now = entry.recorded_at  # the sent instant (Điều 11.1); every row made with the message carries it
    document = Document(
        id=document_uuid, kind=message.kind, sender=message.sender, document_id=message.document_id,
        envelope_sha256=message.envelope_sha256, envelope_size=message.envelope_size, multipart=message.multipart,
        signed=message.signed, signer_certificate=message.signer_certificate, subject=message.subject,
        type_name=message.type_name, code=message.code, promulgation_date=message.promulgation_date,
        priority=message.priority, business_doc_type=message.business_doc_type, status_code=message.status_code,
        refers_to=message.refers_to, sent_at=now, ledger_seq=entry.seq, ledger_hash=entry.hash,
        deviations=json.dumps([d.as_json() for d in message.deviations], ensure_ascii=False),
        automatic=message.automatic, upstream_doc_id=message.upstream_doc_id,
    )
    attachments = [
        Attachment(document=document_uuid, ordinal=i, content_id=a.content_id, name=a.name,
                   content_type=a.content_type, sha256=a.sha256, size=a.size, pdf_signature=a.pdf_signature)
        for i, a in enumerate(message.attachments)
    ]
    deliveries = [
        Delivery(id=str(uuid.uuid4()), document=document_uuid, recipient=t.code, mode=t.mode, state="pending",
                 priority=message.priority, created_at=now, updated_at=now, attempts=0,
                 next_attempt_at=now if t.mode in ("push", "upstream") else None, lease_owner=None, lease_until=None,
                 last_error=None, received_at=None)
        for t in targets
    ]
    return document, attachments, deliveries



