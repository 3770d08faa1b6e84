"""Where a status message goes, and the gateway's own status 01 (Đã đến) when a document arrives.

Routing (EDXML.md codes): a status from a recipient goes to the document's sender; a recall (13) from the
sender goes to every recipient of the document, who answer 15 (accept) or 16 (refuse), which go back to
the sender like any status. The reporting agency itself never receives its own status, and a suspended
agency receives nothing new (its status is still stored and shown in the document view). Each target gets
a delivery row like a document's, push or pull as the register says, with the original's priority (a
status about an urgent document is urgent too).

The automatic 01: when a recipient's received instant is fixed (a push answered 2xx, or a pull ``done``
acknowledgement), the gateway writes the status message the recipient's software would have written
(``From`` = the recipient, ``ResponseFor`` = the original, ``StatusCode`` 01, ``Timestamp`` = the received
instant), signs it with the gateway's own key (the profile XML signature: the sender verifies it with
``GET /v1/gateway/certificate``, and knows it is the gateway's statement, not the recipient's), stores
it as a status document from that recipient, and routes it to the sender, in the same transaction as the
state change, ledgered as ``status.auto_arrived``. No 01 is made for a status message, nor when the
recipient already reported 01 itself; a 01 the recipient sends after the gateway's is a duplicate (409).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.models import Agency
from gateway.documents.models import Delivery, Document
from gateway.envelope import Organ, ResponseFor, StatusSpec, build_status, envelope_sha256, sign
from gateway.ledger import service as ledger
from gateway.ledger.models import LedgerEntry
from gateway.ledger.service import GATEWAY_ACTOR

from .repository import DeliveryRepository

ARRIVED = "01"
RECALL = "13"


def status_targets(code: str, reporter: str, original_sender: str, recipients: Sequence[str]) -> list[str]:
    """Who receives a status ``code`` reported by ``reporter`` about a document (pure)."""
    targets = [r for r in recipients if r != reporter] if code == RECALL else [original_sender]
    return [t for t in dict.fromkeys(targets) if t != reporter]


def new_deliveries(document: str, targets: Sequence[Agency], priority: int, now: datetime) -> list[Delivery]:
    return [
        Delivery(id=str(uuid.uuid4()), document=document, recipient=a.code, mode=a.delivery_mode, state="pending",
                 priority=priority, created_at=now, updated_at=now, attempts=0,
                 next_attempt_at=now if a.delivery_mode == "push" else None, lease_owner=None, lease_until=None,
                 last_error=None, received_at=None)
        for a in targets
        if a.active
    ]


def fix_sent_instant(document: Document, deliveries: Sequence[Delivery], entry: LedgerEntry) -> None:
    """The ledger entry that accepted a document fixes its sent instant: onto the document (with the entry's
    seq and hash) and onto the given deliveries (created then, and due then if pushed)."""
    document.sent_at = entry.recorded_at
    document.ledger_seq = entry.seq
    document.ledger_hash = entry.hash
    for delivery in deliveries:
        delivery.created_at = delivery.updated_at = entry.recorded_at
        if delivery.next_attempt_at is not None:
            delivery.next_attempt_at = entry.recorded_at


@dataclass(frozen=True)
class Original:
    """What the automatic 01 needs to know of the document that arrived."""

    id: str
    kind: str
    sender: str
    document_id: str
    code: str | None
    promulgation_date: date | None
    priority: int


def build_arrival(original: Original, recipient: str, recipient_name: str | None, received_at: datetime,
                  key: PrivateKeyTypes, certificate: x509.Certificate) -> bytes:
    """The signed status 01 for ``original`` arriving at ``recipient`` (CPU: run it in a thread)."""
    xml = build_status(StatusSpec(
        response_for=ResponseFor(organ_id=original.sender, document_id=original.document_id, code=original.code,
                                 promulgation_date=original.promulgation_date),
        sender=Organ(recipient, recipient_name),
        status_code=ARRIVED,
        description="Đã đến (gateway: received instant fixed)",
        timestamp=received_at,
    ))
    return sign(xml, key, certificate)  # type: ignore[arg-type]  # the gateway key is RSA or EC


@dataclass
class PendingArrival:
    """An automatic 01 stored and routed, its ledger entry not yet written (:func:`arrival_event`)."""

    status_id: str
    document: Document
    rows: list[Delivery]
    details: dict[str, Any]
    original: Original
    recipient: str


async def prepare_arrival(
    session: AsyncSession,
    original: Original,
    recipient: str,
    received_at: datetime,
    status_bytes: bytes,
    certificate: x509.Certificate,
    *,
    delivery_id: str,
) -> PendingArrival | None:
    """The automatic 01's status document and its deliveries (None: not made), not yet ledgered.

    ``status_bytes`` must already be in the blob store. The caller then appends its own ledger entry (the
    delivered transition) and :func:`arrival_event` in one go, and calls :func:`arrival_ledgered`: rows
    first, entries last, since the ledger head is locked from a transaction's first append to its commit.
    """
    repo = DeliveryRepository(session)
    if original.kind != "document" or await repo.status_exists(recipient, original.id, ARRIVED):
        return None
    try:
        # A savepoint: should the recipient's own 01 commit concurrently (the unique index of migration
        # 0004 refuses the second), only the automatic 01 is dropped, never the delivered transition.
        async with session.begin_nested():
            return await _store_arrival(session, repo, original, recipient, received_at, status_bytes, certificate,
                                        delivery_id)
    except IntegrityError:
        return None


def arrival_event(pending: PendingArrival) -> ledger.Event:
    """The 01's ledger entry, ``status.auto_arrived``, to append after the caller's own entry."""
    return ledger.Event("status.auto_arrived", GATEWAY_ACTOR, document=pending.status_id,
                        document_id=pending.original.document_id, sender=pending.recipient,
                        recipient=pending.original.sender, details=pending.details)


async def arrival_ledgered(session: AsyncSession, pending: PendingArrival, entry: LedgerEntry) -> str:
    """The entry's instant is the 01's sent instant: onto its document and deliveries."""
    fix_sent_instant(pending.document, pending.rows, entry)
    await session.flush()
    return pending.status_id


async def _store_arrival(session: AsyncSession, repo: DeliveryRepository, original: Original, recipient: str,
                         received_at: datetime, status_bytes: bytes, certificate: x509.Certificate,
                         delivery_id: str) -> PendingArrival:
    now = received_at
    status_id = str(uuid.uuid4())
    digest = envelope_sha256(status_bytes)
    cert_sha = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    document = Document(
        id=status_id, kind="status", sender=recipient, document_id=original.document_id, envelope_sha256=digest,
        envelope_size=len(status_bytes), multipart=False, signed=True, signer_certificate=cert_sha, subject=None,
        type_name=None, code=original.code, promulgation_date=original.promulgation_date,
        priority=original.priority, business_doc_type=0, status_code=ARRIVED, refers_to=original.id,
        sent_at=now, ledger_seq=0, ledger_hash="",
    )
    session.add(document)
    await session.flush()
    targets = await repo.agencies(status_targets(ARRIVED, recipient, original.sender, [recipient]))
    rows = new_deliveries(status_id, list(targets.values()), original.priority, now)
    repo.add(rows)
    await session.flush()
    details = {"status_code": ARRIVED, "refers_to": original.id, "delivery": delivery_id,
               "received_at": received_at.isoformat(), "envelope_sha256": digest,
               "signed_by": "gateway", "signer_certificate": cert_sha,
               "routed_to": sorted(r.recipient for r in rows)}
    return PendingArrival(status_id, document, rows, details, original, recipient)
