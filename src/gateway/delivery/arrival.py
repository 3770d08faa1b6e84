"""The gateway's own status 01 (Đã đến) when a document arrives: build, sign, accept.

When a recipient's received instant is fixed (a push answered 2xx, or a pull ``done`` acknowledgement),
the gateway writes the status message the recipient's software would have written (``From`` = the
recipient, ``ResponseFor`` = the original, ``StatusCode`` 01, ``Timestamp`` = the received instant), signs
it with the gateway's own key (the profile XML signature: the sender verifies it with
``GET /v1/gateway/certificate``, and knows it is the gateway's statement, not the recipient's), and accepts
it through :func:`gateway.acceptance.accept_unless_duplicate` as a status from that recipient, routed to
the sender, in the same transaction as the delivered transition, ledgered as ``status.auto_arrived`` after
``delivery.delivered`` (right after it for one delivery; in the push worker's batch, after the batch's
delivered entries: :func:`record_delivered_many`). It is stored marked ``automatic`` (migration 0005). No
01 is made for a status message, nor when the recipient already reported 01 itself. A 01 about a document
from an agency of the upstream axis is stored but not forwarded there (the upstream writes its own when the document is
acknowledged to it). A 01 the recipient's software sends after the
gateway's (software built on the axis's libraries always does) is accepted and routed as the recipient's own
statement, never refused: the automatic 01 stays the evidence of the received instant (README, "Statuses").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.acceptance import Acceptance, Event, Message, accept_many, accept_unless_duplicate
from gateway.agency.models import Agency
from gateway.agency.repository import AgencyRepository
from gateway.documents.models import Document
from gateway.envelope import Organ, ResponseFor, StatusSpec, build_status, envelope_sha256, sign
from gateway.ledger import service as ledger
from gateway.ledger.service import GATEWAY_ACTOR

from .repository import DeliveryRepository, Job
from .rules import ARRIVED, delivery_targets, status_targets


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


def original_of(document: Document) -> Original:
    return Original(id=document.id, kind=document.kind, sender=document.sender, document_id=document.document_id,
                    code=document.code, promulgation_date=document.promulgation_date, priority=document.priority)


def original_of_job(job: Job) -> Original:
    return Original(id=job.document, kind=job.kind, sender=job.sender, document_id=job.document_id, code=job.code,
                    promulgation_date=job.promulgation_date, priority=job.priority)


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


@dataclass(frozen=True)
class Arrived:
    """A delivered transition to ledger and, when ``arrival`` is given, its automatic 01 to accept."""

    delivered: ledger.Event
    original: Original
    recipient: str
    received_at: datetime
    #: the bytes of :func:`build_arrival`, already in the blob store; None: no 01 was made
    arrival: bytes | None
    delivery_id: str


async def record_delivered(
    session: AsyncSession,
    delivered: ledger.Event,
    original: Original,
    recipient: str,
    received_at: datetime,
    arrival: bytes | None,
    certificate: x509.Certificate,
    *,
    delivery_id: str,
) -> str | None:
    """Ledger the delivered transition and, right after it, accept the automatic 01 (``arrival``, the bytes
    of :func:`build_arrival`, already in the blob store; None: none was made). The 01's gateway id, or None
    when it was not made: the original is a status, the recipient reported 01 itself before, or the gateway's
    01 for this recipient and document already exists (the unique index of migration 0005 refuses a second
    one, and only that 01 is dropped, never the delivered transition)."""
    [made] = await record_delivered_many(
        session, [Arrived(delivered, original, recipient, received_at, arrival, delivery_id)], certificate)
    return made


async def record_delivered_many(session: AsyncSession, items: Sequence[Arrived], certificate: x509.Certificate,
                                *, before: Sequence[ledger.Event] = ()) -> list[str | None]:
    """:func:`record_delivered` for many deliveries in the caller's transaction, the push worker's batch of
    outcomes: one query for the 01s already reported, one for the senders in the register, then the ledger
    entries (``before``, then every delivered transition) in one INSERT, then all the 01s at once
    (:func:`gateway.acceptance.accept_many`: one INSERT per table). The reads all come before the first
    append, which locks the ledger head until the commit: the head is held for a handful of statements
    whatever the size of the batch, not for each 01's own (issue 17's fan-out profile)."""
    wanted = [i for i in items if i.arrival is not None and i.original.kind == "document"]
    reported = await DeliveryRepository(session).statuses_reported(
        ARRIVED, [(i.recipient, i.original.id) for i in wanted])
    wanted = [i for i in wanted if (i.recipient, i.original.id) not in reported]
    senders = await AgencyRepository(session).get_many(sorted({i.original.sender for i in wanted}))
    # One 01: its delivered transition goes in with it, right before its entry. Many: every delivered
    # transition in the first INSERT, then the 01s together.
    alone_with = {id(wanted[0])} if len(wanted) == 1 else set()
    await ledger.append_many(session, [*before, *(i.delivered for i in items if id(i) not in alone_with)])
    if not wanted:
        return [None] * len(items)
    cert_sha = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    pending = [(item, _arrival_acceptance(item, senders, cert_sha)) for item in wanted]
    if len(pending) == 1:
        [(item, one)] = pending
        alone = await accept_unless_duplicate(session, one.message, one.targets, one.event,
                                              preceded_by=[item.delivered])
        return [None if i is not item or alone is None else alone.document.id for i in items]
    # Every 01 at once (one INSERT per table) in a savepoint; should the database refuse one of them as a
    # duplicate (migration 0005), each is accepted on its own instead and only that one is dropped.
    made: dict[int, str | None] = {}
    try:
        async with session.begin_nested():
            accepted = await accept_many(session, [one for _, one in pending])
        made = {id(item): a.document.id for (item, _), a in zip(pending, accepted, strict=True)}
    except IntegrityError:
        for item, one in pending:
            alone = await accept_unless_duplicate(session, one.message, one.targets, one.event)
            made[id(item)] = None if alone is None else alone.document.id
    return [made.get(id(i)) for i in items]


def _arrival_acceptance(item: Arrived, senders: Mapping[str, Agency], cert_sha: str) -> Acceptance:
    """The automatic 01 of ``item`` as a message to accept: from the recipient, routed to the sender."""
    original, recipient, arrival = item.original, item.recipient, item.arrival
    assert arrival is not None
    digest = envelope_sha256(arrival)
    codes = status_targets(ARRIVED, recipient, original.sender, [recipient])
    # Not to an agency of the upstream axis: the upstream makes its own 01 when this gateway acknowledges the
    # document there, and the recipient's own statuses are forwarded; this one stays here as the evidence.
    targets = [t for t in delivery_targets(senders[c] for c in codes if c in senders) if t.mode != "upstream"]
    message = Message(
        kind="status", sender=recipient, document_id=original.document_id, envelope_sha256=digest,
        envelope_size=len(arrival), signed=True, signer_certificate=cert_sha, priority=original.priority,
        code=original.code, promulgation_date=original.promulgation_date, status_code=ARRIVED,
        refers_to=original.id, automatic=True,
    )
    event = Event("status.auto_arrived", GATEWAY_ACTOR, recipient=original.sender, details={
        "status_code": ARRIVED, "refers_to": original.id, "delivery": item.delivery_id,
        "received_at": item.received_at.isoformat(), "envelope_sha256": digest, "signed_by": "gateway",
        "signer_certificate": cert_sha, "routed_to": sorted(t.code for t in targets)})
    return Acceptance(message, targets, event)
